"""`make demo`: translate a default clip (or ``--video``) with the bundled model and write output + preview + still.

The default clip is made on the spot from scikit-image's public-domain astronaut photo with smooth synthetic head
motion and a tone as audio (:mod:`vidanime.data.demo_clip`), so the demo needs nothing but the installed packages.
The clip is translated exactly as ``vidanime translate in.mp4 out.mp4`` does by default (bundled ``styleanime-p2a``,
``--temporal flow``, no fine-tune).  ``--finetune N`` first fine-tunes the encoders on the clip (paper §6.3.3:
L_lcsc + L_fic through the classical DIS-flow interpolator); it was the demo's default (200) until the steady-video
defaults made it buy little on this clip while it washed out the drawn eyes (README, "make demo").  Without bundled
weights the face pipeline runs with the identity model and says so.

Imports of numpy, torch and the pipelines stay inside the functions: ``python -m pipelines.recipes.demo`` applies the
thread policy under ``__main__`` before torch loads OpenMP, which top-level imports would precede.
"""
from __future__ import annotations

import logging
import sys
from pathlib import Path

import click

from vidanime.log import setup_logging

logger = logging.getLogger("vidanime.demo")

# Per-clip fine-tune iterations of the default demo: none, as in `vidanime translate`'s default (module doc).
DEFAULT_FINETUNE = 0


def save_still(input_path: Path, output_path: Path, still_path: Path, at: float = 0.5) -> Path:
    """Write a PNG with the input and output frames side by side, taken at fraction ``at`` of the clip."""
    import numpy as np  # not at the top: the thread policy comes first (see the module docstring)
    from PIL import Image

    from vidanime.fileio import atomic_path
    from vidanime.video.io import VideoReader

    def frame_at(path: Path) -> np.ndarray:
        with VideoReader(path) as r:
            frames = list(r)
        return frames[min(len(frames) - 1, int(len(frames) * at))].image

    a, b = frame_at(input_path), frame_at(output_path)
    if a.shape != b.shape:
        import cv2

        b = cv2.resize(b, (a.shape[1], a.shape[0]), interpolation=cv2.INTER_AREA)
    with atomic_path(still_path) as tmp:
        Image.fromarray(np.concatenate([a, b], axis=1)).save(tmp, format="PNG")
    return still_path


def bundled_model_installed() -> bool:
    """Whether the bundled portrait-to-anime model is in the registry (the identity model runs otherwise)."""
    from pipelines.translate import DEFAULT_MODELS  # not at the top: see the module docstring
    from vidanime.registry import available_models

    return DEFAULT_MODELS["p2a"][0] in {m.name for m in available_models()}


# L_base of the demo's optional fine-tune: a small sample of the anime training faces.  Where they are not on this
# machine (a fresh install), translate's fine-tune drops L_base with one warning (base.if_missing: off).
BASE_LIMIT = 128


@click.command()
@click.option("--video", default=None, help="Clip to translate (default: the synthetic astronaut clip).")
@click.option("--out", "out_dir", default="demo_out", show_default=True, help="Folder for the demo's files.")
@click.option("--end", default=None, help="Only translate up to this time/frame (e.g. '25f'), for a quick run.")
@click.option("--finetune", default=DEFAULT_FINETUNE, show_default=True, type=click.IntRange(min=0),
              help="Per-clip fine-tune iterations before translating (0 = off; kept in OUT/<name>_anime.finetune).")
@click.option("--device", default="cpu", show_default=True)
@click.option("-v", "--verbose", count=True)
def main(video: str | None, out_dir: str, end: str | None, finetune: int, device: str, verbose: int) -> None:
    """Run the main job (video translation) on the bundled default model."""
    from pipelines.translate import TranslateOptions, TranslatePipeline  # not at the top: see the docstring
    from vidanime.data.demo_clip import make_demo_clip
    from vidanime.errors import VidanimeError

    setup_logging(verbose)
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
        src = Path(video) if video else out / "demo_input.mp4"
        if not video and not src.exists():
            make_demo_clip(src)
        stem = src.stem if video else "demo"
        output, preview, still = out / f"{stem}_anime.mp4", out / f"{stem}_preview.mp4", out / f"{stem}_still.png"
        checkpoint, tuned = None, 0
        if finetune > 0 and bundled_model_installed():
            from pipelines.finetune import finetune_for_translate
            from pipelines.translate import DEFAULT_MODELS

            ckpt, parser = DEFAULT_MODELS["p2a"]
            checkpoint = str(finetune_for_translate(src, output, ckpt, parser, finetune, end=end, device=device,
                                                    run_dir=out / f"{stem}_anime.finetune",
                                                    overrides={"base.limit": BASE_LIMIT}))
            tuned = finetune
        pipe = TranslatePipeline.from_pretrained(checkpoint, device=device, allow_identity=True)
        result = pipe(src, output, TranslateOptions(end=end, preview=str(preview), preset="veryfast"))
        save_still(src, output, still)
    except VidanimeError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    click.echo(f"model:   {result.model}" + (f"  (fine-tuned on the clip for {tuned} iterations)" if tuned else ""))
    click.echo(f"input:   {src}")
    click.echo(f"output:  {output}  ({result.frames} frames, {result.faces} faces, {result.seconds:.1f} s)")
    click.echo(f"preview: {preview}  (input | aligned crop + parsing | output)")
    click.echo(f"still:   {still}")


if __name__ == "__main__":
    from vidanime.threads import apply_thread_policy

    apply_thread_policy()  # before torch loads OpenMP (vidanime/threads.py)
    main()
