"""Bundled weights (vidanime/weights): every registry entry exists, matches its sha256, and loads into a working
model."""
import pytest
import torch

from vidanime.errors import CheckpointError
from vidanime.registry import available_models, load_model, verify

ENTRIES = available_models()


def test_registry_is_readable():
    assert isinstance(ENTRIES, list)  # an empty registry is allowed while the demo models are in training


@pytest.mark.parametrize("entry", ENTRIES, ids=[e.name for e in ENTRIES])
def test_bundled_model_checksum_and_load(entry):
    assert verify(entry), f"{entry.name}: file missing or sha256 mismatch"
    if entry.format.startswith("vidanime.interp."):  # interpolators load through interp (a package above vidanime)
        import interp

        with pytest.raises(CheckpointError, match="frame interpolator: load it with interp.load"):
            load_model(entry.name)
        model = interp.load(entry.name)
    else:
        model = load_model(entry.name)
    assert not model.training
    torch.manual_seed(0)
    if entry.format == "vidanime.stylegan2":
        z = torch.randn(8, model.style_dim)
        with torch.no_grad():
            img, _ = model([z])
        assert img.shape[-1] == model.size
        # non-degenerate: images have structure and differ across z
        assert img.std(dim=(1, 2, 3)).min() > 0.1 and (img[0] - img[1]).abs().mean() > 0.05
    elif entry.format == "vidanime.parser":
        s = model.config.image_size
        with torch.no_grad():
            logits = model(torch.rand(1, 3, s, s))
        assert logits.shape[1] == model.config.num_classes
    elif entry.format == "vidanime.styleanime":
        s = model.image_size
        img = torch.rand(2, 3, s, s) * 2 - 1
        lab = torch.zeros(2, s, s, dtype=torch.long)
        lab[:, s // 4 : 3 * s // 4, s // 4 : 3 * s // 4] = 1  # a square of skin
        with torch.no_grad():
            out, w = model(img, lab)
        assert out.shape == img.shape and torch.isfinite(out).all()
        assert model.facebank is not None and len(model.facebank) >= 1000  # the FaceBank ships inside
    elif entry.format == "vidanime.interp.ifnet":
        assert not any(p.requires_grad for p in model.parameters())
        a = torch.rand(1, 3, 64, 64)
        with torch.no_grad():
            mid = model(a, a, 0.5)
        assert (mid - a).abs().mean() < 0.05  # two equal frames: the middle frame is that frame
    elif entry.format == "vidanime.upscaler":
        # a smooth picture (what a drawing is, away from its lines)
        x = torch.nn.functional.interpolate(torch.rand(1, 3, 4, 4) * 2 - 1, size=(16, 16), mode="bilinear")
        with torch.no_grad():
            y = model(x)
        assert y.shape == (1, 3, 16 * model.scale, 16 * model.scale) and torch.isfinite(y).all()
        # an upscaler: shrinking its output back gives (nearly) its input
        assert (torch.nn.functional.avg_pool2d(y, model.scale) - x).abs().mean() < 0.05
    else:
        pytest.fail(f"no load test for format {entry.format}")


def _bundled(name):
    if name not in {e.name for e in ENTRIES}:
        pytest.skip(f"{name} is not bundled yet")


def test_bundled_model_translates_a_real_frame_into_the_anime_domain(assets):
    """One frame of a shipped talking-face clip through the bundled p2a model: the domain classifier puts the output
    closer to the anime faces than the input crop."""
    _bundled("styleanime-p2a")
    from pipelines.translate import TranslatePipeline
    from vidanime.data.image_io import read_image_rgb
    from vidanime.data.images import list_images
    from vidanime.metrics.domain import DomainClassifier
    from vidanime.video.align import estimate_similarity, warp_face
    from vidanime.video.detect import create_detector
    from vidanime.video.io import VideoReader

    with VideoReader(assets / "video" / "liveportrait_d3.mp4") as r:
        frame = next(iter(r)).image
    det = create_detector("mtcnn").detect([frame])[0]
    assert len(det) == 1
    m, _ = estimate_similarity(det[0].landmarks, 256)
    crop = warp_face(frame, m, 256)
    pipe = TranslatePipeline.from_pretrained()
    out = pipe.translator(crop[None], [0]).crops[0]

    anime = list_images(assets / "anime")
    faces = sorted((assets / "faces" / "images").glob("*.jpg"))
    clf = DomainClassifier.fit([read_image_rgb(p) for p in anime[-200:]], [read_image_rgb(p) for p in faces[:200]])
    anime_mean = float(clf.score([read_image_rgb(p) for p in anime[-260:-200]]).mean())
    p_in, p_out = clf.score([crop, out])
    assert abs(p_out - anime_mean) < abs(p_in - anime_mean), (p_in, p_out, anime_mean)
    assert p_out > p_in


def test_fp16_storage_of_the_bundled_styleanime_costs_nothing():
    """styleanime-p2a ships its weights in fp16; its outputs match the fp32 export it came from (kept under the runs
    root of `make train-demo` on the machine that trained it, never in git)."""
    import re

    from vidanime.registry import get_entry, load_styleanime, resolve_path
    from vidanime.train.run_dir import default_runs_root

    _bundled("styleanime-p2a")
    m = re.search(r"from (\S+?\.pt)", get_entry("styleanime-p2a").description)
    src = default_runs_root() / "train-demo" / m.group(1) if m else None
    if src is None or not src.is_file():
        pytest.skip("the fp32 export named in the registry is not on this machine (runs root of make train-demo)")
    a, b = load_styleanime(resolve_path("styleanime-p2a")), load_styleanime(src)
    stored = torch.load(resolve_path("styleanime-p2a"), weights_only=True)["state_dict"]
    assert any(v.dtype == torch.float16 for v in stored.values())
    s = a.image_size
    img = torch.rand(4, 3, s, s) * 2 - 1
    lab = torch.randint(0, 19, (4, s // 8, s // 8)).repeat_interleave(8, 1).repeat_interleave(8, 2)
    with torch.no_grad():
        ya, _ = a(img, lab)
        yb, _ = b(img, lab)
    assert (ya - yb).abs().max() < 2 / 255 * 2  # within 2/255 of the [0, 1] image (values here are in [-1, 1])


@pytest.mark.parametrize("name", ["parser-portrait", "parser-portrait-danet"])
def test_bundled_portrait_parsers_on_held_out_faces(name, assets):
    """Both bundled portrait parsers label 16 of the faces they never saw: pixel accuracy well above the 'all
    background/skin' level (README: 90.1 % / 90.5 % on all 90 held-out faces)."""
    _bundled(name)
    import numpy as np

    from pipelines.recipes.report_demo import heldout_portraits, parse

    _, images, gt = heldout_portraits(assets / "faces", limit=16)
    pred = parse(load_model(name, format="vidanime.parser"), images)
    acc = float((pred == gt).mean())
    majority = max(float((gt == c).mean()) for c in np.unique(gt))
    assert acc > 0.85 and acc > majority + 0.4, (acc, majority)


def test_bundled_translation_depends_on_the_person(assets):
    """The bundled p2a model keeps something of each person (issue: it drew nearly the same face for every input).
    On 16 held-out portraits, at the bundled defaults: the parser-free layout measure (grey thumbnails, own output
    minus the others) and hair colour specificity (Lab distance to own input / to the others; 1 = ignored) are both
    on the right side of thresholds set at about half the measured distance from the average-face baseline."""
    _bundled("styleanime-p2a")
    from pipelines.recipes.report_demo import (
        heldout_portraits,
        portrait_scores,
        portrait_translator,
        translate_portraits,
    )

    translator = portrait_translator(load_model("styleanime-p2a"), load_model("parser-portrait"))
    _, images, labels = heldout_portraits(assets / "faces", limit=16)
    outputs, _ = translate_portraits(translator, images)
    r = portrait_scores(images, labels, outputs, load_model("parser-anime"))
    # Measured on these 16 (2-core Intel Xeon): layout 0.206, hair specificity 0.749; the average face G(w_avg) for
    # every input scores exactly 0 and 1.  (Parser-measured structure is 13.7 % against the average face's 15.5 %
    # here: the bundled model does not beat it there yet, README.)
    assert r["layout_kept"] > 0.12 and r["hair_colour_specificity"] < 0.9, r


def test_default_recolouring_carries_the_hair_colour(assets):
    """The default --recolor (0.7, README "Keeping the person") moves each drawing's hair toward its own input's
    colour: on 16 held-out portraits hair specificity (1 = ignored) falls well below the model's own and the hair EMD
    with it, while the parser-free layout does not move (it changes colours, not shapes).  All 90: 0.60 -> 0.30,
    hair EMD 0.129 -> 0.068, layout 0.208 -> 0.203."""
    _bundled("styleanime-p2a")
    from pipelines.recipes.report_demo import (
        heldout_portraits,
        portrait_scores,
        portrait_translator,
        translate_portraits,
    )
    from pipelines.translate import build_recolor

    model, parser, anime = load_model("styleanime-p2a"), load_model("parser-portrait"), load_model("parser-anime")
    _, images, labels = heldout_portraits(assets / "faces", limit=16)
    r = {}
    for name, recolor in (("plain", None), ("default", build_recolor("p2a"))):
        out, _ = translate_portraits(portrait_translator(model, parser, recolor=recolor), images)
        r[name] = portrait_scores(images, labels, out, anime)
    plain, rc = r["plain"], r["default"]
    assert rc["hair_colour_specificity"] < 0.7 * plain["hair_colour_specificity"], r
    assert rc["colour_emd"]["hair"] < 0.7 * plain["colour_emd"]["hair"], r
    assert abs(rc["layout_kept"] - plain["layout_kept"]) < 0.03, r


@pytest.mark.slow
def test_bundled_default_looks_more_anime_than_the_encoders_own_codes(assets):
    """The bundled default FaceBank alpha (0.75 with k 80 and the finest code from the bank, README "Defaults") exists
    because the encoders' own codes (alpha 1) give blotchy off-manifold drawings: on 32 held-out portraits, the
    default's outputs are closer to real anime faces in the anime parser's features (anime_look_kid) than alpha 1's
    and than the average face's."""
    _bundled("styleanime-p2a")
    import numpy as np

    from pipelines.recipes.report_demo import (
        ANIME_HELDOUT_START,
        anime_images,
        at_size,
        average_face,
        heldout_portraits,
        portrait_translator,
        translate_portraits,
    )
    from vidanime.metrics.domain import anime_look_kids

    model, portrait_parser = load_model("styleanime-p2a"), load_model("parser-portrait")
    assert model.inference == {"alpha": 0.75, "k": 80, "anchor_layers": [9], "refine": 0}
    _, images, _ = heldout_portraits(assets / "faces", limit=32)
    sets = {}
    for name, alpha in (("default", None), ("alpha1", 1.0)):
        out, _ = translate_portraits(portrait_translator(model, portrait_parser, alpha=alpha), images)
        sets[name] = at_size(out, 64)  # compared at the model's size, as the report does
    sets["average_face"] = np.stack([average_face(model, 64)] * 32)
    reference = np.stack(anime_images(assets / "anime", ANIME_HELDOUT_START + 200, 200, size=64))
    kid = anime_look_kids(load_model("parser-anime"), sets, reference)
    assert kid["default"] < kid["average_face"] < kid["alpha1"], kid


def a2p_bar(model: str, count: int = 64) -> tuple[bool, dict]:
    """The bar for bundling an anime → portrait model, on ``count`` held-out anime faces (report_a2p): the outputs
    look more like portraits than the unchanged anime inputs do, by a margin (portrait-look KID at most half the
    inputs'; the bundled p2a model's anime-look KID is 0.36x its inputs'), are on the portrait side of the domain
    classifier, and keep something of each input (the p2a test's floors: layout > 0.12, hair specificity < 0.9)."""
    from pipelines.recipes.report_a2p import measure

    r, _, _ = measure(model, count=count)
    k = r["portrait_kid"]
    ok = (k["outputs"] <= 0.5 * k["inputs"] and r["p_anime"]["outputs"] < 0.5 and r["layout_kept"] > 0.12
          and r["hair_colour_specificity"] < 0.9)
    return ok, r


@pytest.mark.slow
def test_bundled_a2p_model_passes_the_bar(assets):
    """None is bundled yet: the CPU-trained a2p models drew one melted or blurry face for every input (README
    "Applications"; the 2026-12-06 run passed these numbers at α 0.7 and still did, so passing is necessary, not
    sufficient: look at the montage too); the GPU recipe's a2p export must pass this to be bundled."""
    _bundled("styleanime-a2p")
    ok, r = a2p_bar("styleanime-a2p")
    assert ok, r


def test_bundled_upscaler_beats_bicubic_on_held_out_anime_faces(assets):
    """The x2 drawing upscaler on 32 anime faces it never saw (index 9,000 on), 64 → 128 px: PSNR well above the
    bicubic upscale it starts from (README: +4.x dB on 200 of them)."""
    _bundled("upscaler-anime")
    from vidanime.data.images import list_images
    from vidanime.train.upscaler import evaluate_upscaler, load_pairs

    net = load_model("upscaler-anime", format="vidanime.upscaler")
    files = list_images(assets / "anime")[9000:9032]
    scores = evaluate_upscaler(net, *load_pairs(files, net.config.train_size, net.scale))
    assert scores["psnr"] > scores["psnr_bicubic"] + 3.0, scores
