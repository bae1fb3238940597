"""The web app (pipelines/web.py): its job functions called directly on a shipped clip with tiny models, the page's
error path, cleanup, `vidanime serve`, and (when Chromium and Playwright are installed) a headless-browser run."""
import contextlib
import json
import os
import shutil
import socket
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from tests.pipelines.app_helpers import face_labels, save_model, save_parser, tiny_parser, tiny_styleanime, write_labels
from tests.video.media import make_clip
from vidanime.errors import CheckpointError, ConfigError, MediaError

gr = pytest.importorskip("gradio")

from pipelines.web import IDENTITY_NOTE, WebConfig, build_app, cleanup_jobs, translate_image, translate_video  # noqa: E402

CHROMIUM = os.environ.get("VIDANIME_CHROMIUM", "/usr/bin/chromium")


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    d = tmp_path_factory.mktemp("models")
    return (save_model(d / "p2a.pt", tiny_styleanime("p2a", sensitive=True)),
            save_parser(d / "parser.pt", tiny_parser(skin_everywhere=True)))


@pytest.fixture
def config(models, tmp_path):
    return WebConfig(workdir=str(tmp_path / "web"), checkpoint=str(models[0]), parser=str(models[1]), max_seconds=30)


def _frames(path):
    from vidanime.video.io import VideoReader

    with VideoReader(path) as r:
        return np.stack([f.image for f in r]), r.info


def test_translate_video_on_shipped_clip_with_tiny_model(config, assets):
    clip = assets / "video" / "liveportrait_d0.mp4"
    o = translate_video(clip, config, end="6f", faces="largest", progress=False)
    res = o.result
    assert res.frames == 6 and res.faces == 6 and res.tracks == 1
    out, info = _frames(o.output)
    src, src_info = _frames(clip)
    assert out.shape == (6, 512, 512, 3) and info.fps == src_info.fps
    diff = np.abs(out.astype(int) - src[:6].astype(int)).mean(-1)  # (T, H, W)
    assert diff[:, 200:320, 200:320].mean() > 10  # the face is translated, not passed through
    assert diff[:, :40].mean() < 3  # the top rows (away from the face) are the input, re-encoded
    prev, pinfo = _frames(o.preview)
    assert len(prev) == 6 and pinfo.width == 2 * 512 + 256
    report = json.loads(Path(o.report).read_text())
    assert report["frames"] == 6 and report["temporal"] == o.temporal
    assert set(o.temporal) == {"warp_error", "flicker_index"}
    assert f"{o.temporal['flicker_index']['value']:.3f}" in o.message and IDENTITY_NOTE not in o.message
    assert all(Path(f).parent == Path(o.output).parent and Path(f).is_file() for f in o.files)


def test_identity_fallback_is_said_in_the_page(tmp_path, assets):
    from vidanime.registry import resolve_path

    try:
        resolve_path("styleanime-p2a")
        pytest.skip("a bundled p2a model is installed, so there is no identity fallback")
    except CheckpointError:
        pass
    o = translate_video(assets / "video" / "liveportrait_d0.mp4", WebConfig(workdir=str(tmp_path)), end="3f",
                        progress=False)
    assert IDENTITY_NOTE in o.message and o.result.model.startswith("identity")
    with pytest.raises(ConfigError, match="fine-tuning .* needs a StyleAnime checkpoint"):
        translate_video(assets / "video" / "liveportrait_d0.mp4", WebConfig(workdir=str(tmp_path)), finetune=10)


def test_bad_uploads_are_one_line_errors(config, assets, tmp_path):
    clip = assets / "video" / "liveportrait_d0.mp4"  # 3.12 s, 2.9 MB
    text = tmp_path / "notes.mp4"
    text.write_text("not a video\n")
    with pytest.raises(MediaError, match="notes.mp4"):
        translate_video(text, config)
    with pytest.raises(MediaError, match="no video uploaded"):
        translate_video(None, config)
    with pytest.raises(MediaError, match=r"is 2\.\d MB: uploads are limited to 1 MB"):
        translate_video(clip, WebConfig(workdir=config.workdir, max_upload_mb=1))
    with pytest.raises(MediaError, match=r"lasts 3\.1 s: videos are limited to 2 s"):
        translate_video(clip, WebConfig(workdir=config.workdir, max_seconds=2))
    with pytest.raises(ConfigError, match="fine-tune iterations 99999"):
        translate_video(clip, config, finetune=99999)
    with pytest.raises(ConfigError, match="max_seconds=0"):
        WebConfig(max_seconds=0).check()
    # a video without a face is translated (passed through) and the page says so
    o = translate_video(make_clip(tmp_path / "noface.mp4", n=6, size=(64, 64), fps=10), config, progress=False)
    assert o.result.faces == 0 and "No face was found" in o.message


def _page_fn(app, name):
    return next(f.fn for f in app.fns.values() if getattr(f.fn, "__name__", "") == name)


def test_page_handlers_show_errors_and_keep_serving(config, tmp_path):
    app = build_app(config)
    assert isinstance(app, gr.Blocks)
    run_video, run_image = _page_fn(app, "run_video"), _page_fn(app, "run_image")
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    *outs, msg = run_video(str(text), "p2a", 1.0, 0.7, 0, "all", "", "")
    assert outs == [None] * 4 and msg.startswith("**Error:**") and "notes.txt" in msg and "\n" not in msg
    *outs, msg = run_image(str(text), None, None, "p2a", 1.0, 0.7, 0)
    assert outs == [None, None] and msg.startswith("**Error:**") and "not an image file" in msg
    no_face = make_clip(tmp_path / "nf.mp4", n=6, size=(64, 64), fps=10)
    *outs, msg = run_video(str(no_face), "p2a", 1.0, 0.7, 0, "all", "", "")
    assert Path(outs[0]).is_file() and "No face was found" in msg  # the same app keeps serving after errors
    jobs = [f for f in app.fns.values() if f.name in ("run_video", "run_image")]
    assert len(jobs) == 2 and all(f.concurrency_limit == 1 and f.concurrency_id == "device" for f in jobs)


def _face_image(assets, tmp_path):
    src = sorted((assets / "faces" / "images").glob("*.jpg"))[0]
    return src


def test_translate_image_matches_the_image_pipeline(config, models, assets, tmp_path):
    from pipelines.image_translate import ImageTranslatePipeline
    from pipelines.translate import build_recolor, build_upscaler
    from vidanime.models.parser import config_of
    from vidanime.registry import load_model

    face = _face_image(assets, tmp_path)
    net = load_model(models[1], format="vidanime.parser")
    ref = ImageTranslatePipeline.from_pretrained(models[0], parser=net, parser_labels=config_of(net).label_set,
                                                 progress=False, recolor=build_recolor("p2a"))  # the CLI's default
    ref.upscaler = build_upscaler("p2a", "auto", ref.model)  # the CLI's default too
    for faces, shape, note in (("auto", (256, 256, 3), "Faces found and pasted back"),  # auto: a photo's faces
                               ("aligned", (64, 64, 3), "Translated as one aligned face crop")):  # 2x: upscaler
        o = translate_image(face, config, faces=faces)
        got = np.array(Image.open(o.output))
        assert got.shape == shape and "Parsed by the face parser" in o.message and note in o.message
        ref(face, tmp_path / f"ref_{faces}.png", resize=True, faces=faces)
        np.testing.assert_array_equal(got, np.array(Image.open(tmp_path / f"ref_{faces}.png")))  # same code path
    # the page's recolour slider at 0: the model's own colours, as the pipeline without recolouring
    plain = np.array(Image.open(translate_image(face, config, faces="aligned", recolor=0).output))
    ref.recolor = None
    ref(face, tmp_path / "ref_plain.png", resize=True, faces="aligned")
    np.testing.assert_array_equal(plain, np.array(Image.open(tmp_path / "ref_plain.png")))
    # an edited parsing map (label PNG at the image's size) changes the result
    lab = write_labels(tmp_path / "map.png", face_labels(256))
    edited = translate_image(face, config, parsing=lab)
    assert "Used your parsing map" in edited.message
    assert np.abs(np.array(Image.open(edited.output)).astype(int) - got).mean() > 1
    other = sorted((assets / "faces" / "images").glob("*.jpg"))[1]
    styled = translate_image(face, config, reference=other)
    assert np.abs(np.array(Image.open(styled.output)).astype(int) - got).mean() > 0.5
    # test-time refinement (the bundled anime parser judges the layout): other pixels, said in the message
    refined = translate_image(face, config, refine=3, faces="aligned")
    assert "Refined for 3 steps" in refined.message
    assert np.abs(np.array(Image.open(refined.output)).astype(int) - got).mean() > 0.5
    with pytest.raises(CheckpointError, match="start the server with --checkpoint"):
        translate_image(face, WebConfig(workdir=config.workdir, checkpoint=str(tmp_path / "missing.pt")))


def test_cleanup_removes_only_old_jobs(tmp_path):
    old, new = tmp_path / "job-old", tmp_path / "job-new"
    for d in (old, new):
        d.mkdir()
        (d / "out.mp4").write_bytes(b"x")
    t = time.time() - 3600
    os.utime(old, (t, t))
    keep = tmp_path / "other"
    keep.mkdir()
    os.utime(keep, (t, t))
    assert cleanup_jobs(tmp_path, older_than_s=1800) == 1
    assert not old.exists() and new.exists() and keep.exists()


def test_serve_command_help_and_missing_gradio(monkeypatch):
    import importlib.util

    from pipelines.commands.serve import cli

    r = CliRunner().invoke(cli, ["--help"])
    assert r.exit_code == 0 and "127.0.0.1" in r.output and "--max-upload-mb" in r.output
    assert "--share" not in r.output
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "gradio" else real(name, *a))
    r = CliRunner().invoke(cli, [])
    assert r.exit_code == 1 and "pip install '.[web]'" in r.output and len(r.output.strip().splitlines()) == 1


# ---------------------------------------------------------------------------------------------- headless browser
def _browser_missing() -> str | None:
    if not Path(CHROMIUM).is_file():
        return f"no Chromium at {CHROMIUM} (apt-get install chromium, or set VIDANIME_CHROMIUM)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install playwright; the system Chromium is used)"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


BROWSER_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                "--no-first-run"]


@contextlib.contextmanager
def _served_page(config: WebConfig):
    """The app served on a free localhost port and a headless Chromium page open on it; both closed after."""
    from playwright.sync_api import sync_playwright

    from pipelines.web import launch

    port = _free_port()
    app = launch(config, port=port, block=False)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=BROWSER_ARGS)
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            page.goto(f"http://127.0.0.1:{port}/", wait_until="domcontentloaded", timeout=60_000)
            yield page
            browser.close()
    finally:
        app.close()


def _run_image_job(page, image: Path) -> None:
    """Image tab: upload ``image``, run, wait for the result; the page says the face was found and pasted back."""
    page.get_by_role("tab", name="Image").click()
    page.locator("#image-input input[type=file]").set_input_files(str(image))
    page.locator("#image-input img").first.wait_for(timeout=30_000)
    page.locator("#image-run").click()
    page.locator("#image-status").get_by_text("Done").wait_for(timeout=120_000)
    page.locator("#image-status").get_by_text("pasted back").wait_for(timeout=5_000)
    img = page.locator("#image-output img").first
    img.wait_for(timeout=30_000)
    # pasted back: the result has the photo's size, not the model's crop size
    assert img.evaluate("e => e.complete && e.naturalWidth") == Image.open(image).width


def _run_video_job(page, clip: Path, end: str) -> None:
    """Video tab: upload ``clip``, translate up to ``end``, wait until the translated video is in the page."""
    page.get_by_role("tab", name="Video").click()
    page.locator("#video-input input[type=file]").set_input_files(str(clip))
    page.locator("#video-input video").first.wait_for(timeout=30_000)
    page.locator("#video-end textarea, #video-end input").first.fill(end)
    page.locator("#video-run").click()
    if os.environ.get("VIDANIME_WEB_PROGRESS_SHOT"):  # a look at the progress bar, by hand
        page.wait_for_timeout(3000)
        page.screenshot(path=os.environ["VIDANIME_WEB_PROGRESS_SHOT"], full_page=True)
    page.locator("#video-status").get_by_text("Done").wait_for(timeout=300_000)
    out = page.locator("#video-output video").first
    out.wait_for(timeout=30_000)
    assert "_p2a.mp4" in out.get_attribute("src")


@pytest.mark.slow
@pytest.mark.skipif(_browser_missing() is not None, reason=str(_browser_missing()))
def test_browser_image_and_video_jobs_show_results(config, assets, tmp_path):
    """Tiny test model: a bad upload shows an error and the server keeps serving; image and video jobs finish."""
    with _served_page(config) as page:
        # bad input first: a text file as the video → a message in the page
        text = tmp_path / "notes.mp4"
        text.write_text("not a video")
        page.locator("#video-input input[type=file]").set_input_files(str(text))
        page.locator("#video-run").click()
        page.locator("#video-status").get_by_text("Error").wait_for(timeout=60_000)
        page.reload(wait_until="domcontentloaded")  # a fresh page (the same server) for the next uploads
        _run_image_job(page, _face_image(assets, tmp_path))
        _run_video_job(page, assets / "video" / "liveportrait_d0.mp4", "6f")


@pytest.mark.slow
@pytest.mark.skipif(_browser_missing() is not None, reason=str(_browser_missing()))
def test_browser_screenshot_with_the_bundled_model(assets, tmp_path):
    """The page as a user first sees it: ``vidanime serve`` defaults (bundled p2a model, parser, detector), a photo
    then a shipped clip.  The screenshot is the README's (``VIDANIME_WEB_SCREENSHOT=docs/web_app.png``)."""
    config = WebConfig(workdir=str(tmp_path / "web"), max_seconds=30)  # no --checkpoint/--parser: the defaults
    shot = tmp_path / "web_app.png"
    with _served_page(config) as page:
        _run_image_job(page, _face_image(assets, tmp_path))
        _run_video_job(page, assets / "video" / "liveportrait_d0.mp4", "25f")
        status = page.locator("#video-status").inner_text()
        assert "model: styleanime-p2a" in status and "identity" not in status.lower()
        page.wait_for_timeout(1000)  # let the video elements paint their first frame
        page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    if os.environ.get("VIDANIME_WEB_SCREENSHOT"):  # e.g. docs/web_app.png for the README
        shutil.copyfile(shot, os.environ["VIDANIME_WEB_SCREENSHOT"])


def test_page_starts_from_the_models_measured_defaults(tmp_path):
    """The α and refine sliders start at the checkpoint's saved inference defaults (the CLI's defaults), not at α 1."""
    from pipelines.web import _default_alpha, _default_refine
    from vidanime.registry import load_model

    saved = load_model("styleanime-p2a").inference
    assert _default_alpha(WebConfig()) == pytest.approx(saved["alpha"]) and saved["alpha"] < 1
    assert _default_refine(WebConfig()) == int(saved.get("refine", 0))
    missing = WebConfig(checkpoint=str(tmp_path / "none.pt"))
    assert _default_alpha(missing) == 1.0 and _default_refine(missing) == 0
