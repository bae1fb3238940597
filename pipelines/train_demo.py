"""`make train-demo`: the recipe that trains vidanime's bundled default models from the shipped data, resumably.

Stages, each a command of its own with a numbered run folder under ``training/`` (tracked in git, so a long run
continues in a later session with ``--resume auto``):

1. ``gan``       anime StyleGAN2, 64 px (configs/stylegan2_demo.yaml) on ../shared/assets/anime
2. ``parser``    portrait face parser (configs/parser_demo.yaml) on ../shared/assets/faces (CelebAMask-HQ)
3. ``facebank``  FaceBank of the generator's W codes
4. ``encoders``  StyleAnime E_p/E_s (configs/styleanime_demo.yaml) on the frozen generator; the anime faces are
                 parsed by the portrait parser (pseudo-labels: no labelled anime set ships)
5. ``export``    copy the latest exported models into vidanime/weights/ and record their sha256 in registry.json

``python -m pipelines.train_demo --stages gan,parser`` runs a subset; a stage whose run already reached its
iteration count returns at once.  Slow: hours on 2 CPU cores (see README, "Bundled default model").
"""
from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
from pathlib import Path

import click

from vidanime.log import setup_logging

logger = logging.getLogger("vidanime.train_demo")

REPO = Path(__file__).resolve().parents[1]
STAGES = ("gan", "parser", "facebank", "encoders", "export")

# Registry name -> (glob of the exported checkpoint under training/, format, description)
EXPORTS = {
    "stylegan2-anime-demo": ("*-stylegan2_demo/checkpoints/generator-*.pt", "vidanime.stylegan2",
                             "64-px anime StyleGAN2 trained from scratch on the 10,000 shipped anime face crops"),
    "parser-portrait": ("*-parser_demo/checkpoints/parser-*.pt", "vidanime.parser",
                        "BiSeNet (width 0.25) face parser, 19 BiSeNet classes, trained on 810 CelebAMask-HQ faces"),
    "styleanime-p2a": ("*-styleanime_demo/checkpoints/styleanime-*.pt", "vidanime.styleanime",
                       "64-px StyleAnime portrait-to-anime encoders + the demo anime generator"),
}


def _vidanime(*args: str) -> None:
    cmd = [sys.executable, "-m", "pipelines.cli", *args]
    logger.info("$ vidanime %s", " ".join(args))
    subprocess.run(cmd, check=True, cwd=REPO)


def _latest(root: Path, pattern: str) -> Path | None:
    found = sorted(root.glob(pattern))
    return found[-1] if found else None


def _resume(root: Path, run_name: str) -> list[str]:
    """``--resume auto`` when a run of ``run_name`` with a training checkpoint exists under ``root``, else nothing."""
    return ["--resume", "auto"] if _latest(root, f"*-{run_name}/checkpoints/train-*.pt") else []


def export(root: Path) -> list[str]:
    """Copy the newest exported checkpoint of each model into vidanime/weights and update registry.json."""
    from vidanime.checkpoint import sha256_file
    from vidanime.fileio import atomic_write_text
    from vidanime.registry import REGISTRY_FILE, WEIGHTS_DIR

    registry = json.loads(REGISTRY_FILE.read_text()) if REGISTRY_FILE.is_file() else {"models": {}}
    done = []
    for name, (pattern, fmt, description) in EXPORTS.items():
        src = _latest(root, pattern)
        if src is None:
            logger.info("export: no %s yet (%s)", name, pattern)
            continue
        dst = WEIGHTS_DIR / f"{name}.pt"
        shutil.copyfile(src, dst)
        step = src.stem.rsplit("-", 1)[-1].lstrip("0") or "0"
        registry["models"][name] = {"file": dst.name, "sha256": sha256_file(dst), "format": fmt,
                                    "description": f"{description} (step {step}; from {src.relative_to(root)})"}
        done.append(name)
    atomic_write_text(REGISTRY_FILE, json.dumps(registry, indent=2) + "\n")
    return done


@click.command()
@click.option("--stages", default=",".join(STAGES), show_default=True, help="Comma-separated stages to run.")
@click.option("--root", default="training", show_default=True, help="Folder for the run folders (tracked in git).")
@click.option("--lpips-backbone", default="random", show_default=True,
              help="ImageNet AlexNet weights for the LPIPS loss; 'random' (no download possible here) is logged loudly.")
def main(stages: str, root: str, lpips_backbone: str) -> None:
    """Train (or continue training) the bundled default models, then export them into the package."""
    setup_logging(0)
    wanted = [s.strip() for s in stages.split(",") if s.strip()]
    unknown = sorted(set(wanted) - set(STAGES))
    if unknown:
        raise click.BadParameter(f"unknown stage(s) {', '.join(unknown)}; expected {', '.join(STAGES)}")
    rootp = (REPO / root).resolve()
    rootp.mkdir(parents=True, exist_ok=True)
    if "gan" in wanted:
        _vidanime("train-gan", "--config", "configs/stylegan2_demo.yaml", "--run-dir", str(rootp),
                  *_resume(rootp, "stylegan2_demo"))
    if "parser" in wanted:
        _vidanime("parser", "train", "--config", "configs/parser_demo.yaml", "--set", f"runs_root={rootp}",
                  *_resume(rootp, "parser_demo"))
    generator = _latest(rootp, EXPORTS["stylegan2-anime-demo"][0])
    if "facebank" in wanted:
        if generator is None:
            raise click.ClickException("facebank: no trained generator yet; run the gan stage first")
        _vidanime("facebank", "build", "--generator", str(generator), "--size", "10000", "--out",
                  str(rootp / "facebank_demo.pt"))
    if "encoders" in wanted:
        parser = _latest(rootp, EXPORTS["parser-portrait"][0])
        if generator is None or parser is None:
            raise click.ClickException("encoders: need the generator and the parser first (stages gan, parser)")
        _vidanime("train", "--config", "configs/styleanime_demo.yaml", "--generator", str(generator),
                  "--set", f"target.parser={parser}", "--set", f"run_dir={rootp}",
                  "--lpips-backbone", lpips_backbone, *_resume(rootp, "styleanime_demo"))
    if "export" in wanted:
        click.echo(f"exported: {', '.join(export(rootp)) or 'nothing yet'}")


if __name__ == "__main__":
    main()
