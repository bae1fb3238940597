"""`make train-demo`: the recipe that trains vidanime's bundled default models from the shipped data, resumably.

Stages, each a command of its own with a numbered run folder under the runs root (``--root``, default
``~/.cache/vidanime/runs/train-demo`` or ``$VIDANIME_RUNS/train-demo``: resumable training states never go into git,
so a long run continues in a later sitting on the same machine with ``--resume auto``):

1. ``gan``       anime StyleGAN2, 64 px (configs/demo_stylegan2.yaml) on ../shared/assets/anime
2. ``parser``    portrait face parser (configs/demo_parser_portrait.yaml) on ../shared/assets/faces (CelebAMask-HQ);
   ``parser_danet``  the same data and schedule with the paper's DANet head (configs/demo_parser_portrait_danet.yaml),
                 bundled as ``parser-portrait-danet``
3. ``anime_parser``  (a) a teacher: the portrait parser fine-tuned on portraits drawn as anime
                 (configs/demo_parser_anime_teacher.yaml, vidanime/data/animeize.py); (b) its flip- and
                 scale-averaged, colour-refined (vidanime/data/pseudo_labels.py) confident labels on the first 4,000
                 shipped anime faces (into ROOT/anime_pseudo_v2); (c) the anime parser, started from the teacher,
                 trained on them (configs/demo_parser_anime.yaml)
4. ``facebank``  FaceBank of the generator's W codes
5. ``encoders``  StyleAnime E_p/E_s (configs/demo_styleanime_p2a.yaml) on the frozen generator with the paper's five
                 losses; the anime faces are parsed by the anime parser of stage 3 (no labelled anime set ships);
                 then a second run of the same config started from the first one's export (``styleanime_cont``,
                 fresh optimizers, 62 minutes), which is the bundled model.  The
                 additions to the paper (configs/demo_styleanime_p2a_keep.yaml: warm-up on the generator's own
                 samples + translation consistency) were measured and not bundled (README, "Keeping the person")
   ``distill`` refinement distillation of that model (pipelines/recipes/distill_refine.py: 25 refinement steps on each
                 of the 810 training portraits, then 600 steps of E_p/E_s regressing the refined codes), then a second
                 round from its result (800 steps on its refined codes and the W+ inversions of 400 anime crops,
                 weights blended 0.3 with the first round's), the bundled model
6. ``interp``    the IFNet interpolator for the fine-tune's L_fic (configs/demo_interp_ifnet.yaml) on frame triplets
                 of the shipped clips: the config's 1,000 steps (starting at the averaging baseline), then continued
                 to 2,000 (``--resume auto --steps 2000``, a second cosine schedule), as the bundled model was made
   ``upscaler``  the x2 drawing upscaler (configs/demo_upscaler.yaml) on the shipped anime faces, 128 → 64 px pairs
7. ``export``    copy the latest exported models into vidanime/weights/, record their sha256 in registry.json, and
                 copy each run's provenance (config.yaml, metrics.jsonl, last sample grid) into the repository's
                 ``training/`` folder

``python -m pipelines.recipes.train_demo --stages gan,parser`` runs a subset; a stage whose run already reached its
iteration count returns at once.  Slow: hours on 2 CPU cores (see README, "Bundled default model").
"""
from __future__ import annotations

import logging
import shutil
import subprocess
import sys
from pathlib import Path

import click

from vidanime.log import setup_logging
from vidanime.registry import WEIGHTS_DIR
from vidanime.train.export import ExportItem, export_models
from vidanime.train.run_dir import RunDir, checkpoint_step, default_runs_root

logger = logging.getLogger("vidanime.train_demo")

REPO = Path(__file__).resolve().parents[2]
STAGES = ("gan", "parser", "parser_danet", "anime_parser", "facebank", "encoders", "distill", "interp", "upscaler",
          "export")
IFNET_STEPS = (1000, 2000)  # the config's run, then its continuation

# Test-time defaults written into the exported model, chosen from `python -m pipelines.recipes.report_demo` (README,
# "Keeping the person"): FaceBank alpha (None = off) and k, and the still-image --refine steps.
# The anime parser's teacher and how it labels the shipped anime faces (stage anime_parser).
ANIME_TEACHER = "*-parser_anime_teacher_demo/checkpoints/parser-*.pt"
PSEUDO_LABEL_ARGS = ("--min-confidence", "0.6", "--feature-confidence", "0.3", "--min-kept", "0.6", "--limit", "4000",
                     "--tta-scales", "1,1.25", "--flip-tta", "--colour-refine", "0.3")
# README "Keeping the person": the anime look against keeping the person, swept over alpha and then per W+ layer (the
# finest of the 10 codes from the bank alone was better on every measure for these encoders; measure again for others).
INFERENCE = {"styleanime-p2a": {"alpha": 0.75, "k": 80, "anchor_layers": [9], "refine": 0}}
CONTINUATION = "styleanime_cont"  # the second encoders run (from the first one's export), which is bundled
PROVENANCE = REPO / "training"  # tracked: each run's config.yaml, metrics.jsonl and last sample grid, nothing else
# Registry name -> (glob of the exported checkpoint under the runs root, format, description)
EXPORTS = {
    "stylegan2-anime-demo": ("*-stylegan2_demo/checkpoints/generator-*.pt", "vidanime.stylegan2",
                             "64-px anime StyleGAN2 trained from scratch on the 10,000 shipped anime face crops"),
    "parser-portrait": ("*-parser_demo/checkpoints/parser-*.pt", "vidanime.parser",
                        "BiSeNet (width 0.25) face parser, 19 BiSeNet classes, trained on 810 CelebAMask-HQ faces"),
    "parser-portrait-danet": ("*-parser_danet_demo/checkpoints/parser-*.pt", "vidanime.parser",
                              "DANet (dilated ResNet width 0.25, output stride 8, position + channel attention) face "
                              "parser, 19 BiSeNet classes, trained on 810 CelebAMask-HQ faces"),
    "parser-anime": ("*-parser_anime_demo/checkpoints/parser-*.pt", "vidanime.parser",
                     "BiSeNet (width 0.25) anime face parser, 19 BiSeNet classes: the portrait parser fine-tuned on "
                     "portraits drawn as anime (teacher), then trained on that teacher's confident, flip- and "
                     "scale-averaged, colour-refined labels of 4,000 shipped anime faces (pseudo-labels)"),
    "upscaler-anime": ("*-upscaler_demo/checkpoints/upscaler-*.pt", "vidanime.upscaler",
                       "x2 learned upscaler of the 64-px demo generator's drawings (48 channels, 8 residual blocks), "
                       "trained on the shipped anime faces area-resized 128 -> 64 px, faces 9,000 on held out"),
    "ifnet-demo": ("interp/*-ifnet_avg_demo/checkpoints/ifnet-*.pt", "vidanime.interp.ifnet",
                   "small RIFE-style IFNet frame interpolator (M of the fine-tune loss L_fic), trained on triplets "
                   "of the shipped anime and talking-face clips"),
    "styleanime-p2a": ("*-distill_refine2/checkpoints/styleanime-*.pt", "vidanime.styleanime",
                       "64-px StyleAnime portrait-to-anime encoders + the demo anime generator "
                       "+ a 10,000-code FaceBank (fp16 storage): the continuation of the encoders run, then two "
                       "rounds of refinement distillation on the 810 training portraits (the second also on the W+ "
                       "inversions of 400 anime crops, blended 0.3 with the first round's weights)"),
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


# Parser runs the encoders' training config may name -> the bundled name recorded in the exported StyleAnime.
PARSER_NAMES = {"*" + EXPORTS[p][0]: p for p in ("parser-anime", "parser-portrait")}


def export(root: Path) -> list[str]:
    """Copy the newest exported checkpoint of each model into vidanime/weights and update registry.json."""
    items = []
    for name, (pattern, fmt, description) in EXPORTS.items():
        src = _latest(root, pattern)
        if src is None:
            logger.info("export: no %s yet (%s)", name, pattern)
            continue
        step = checkpoint_step(src)
        styleanime = fmt == "vidanime.styleanime"
        items.append(ExportItem(
            name, src, fmt, f"{description} (step {step}; from {src.relative_to(root)})",
            facebank=root / "facebank_demo.pt" if styleanime else None,
            inference=INFERENCE.get(name) if styleanime else None,
            parser_names=PARSER_NAMES if styleanime else None))
    export_models(items, WEIGHTS_DIR)
    copy_provenance(root, PROVENANCE)
    return [item.name for item in items]


def copy_provenance(root: Path, dest: Path) -> list[Path]:
    """Copy each run folder's config.yaml, metrics.jsonl and newest sample grid (no checkpoints) from the runs root
    into ``dest`` (the repository's ``training/``), mirroring the run folder names."""
    copied = []
    for cfg in sorted(root.glob("**/config.yaml")):
        run = cfg.parent
        out = dest / run.relative_to(root)
        files = [cfg, run / "metrics.jsonl"]
        grid = _latest(run, "samples/step-*.png")
        files += [grid] if grid is not None else []
        for f in files:
            if f.is_file():
                target = out / f.relative_to(run)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(f, target)
                copied.append(target)
    return copied


@click.command()
@click.option("--stages", default=",".join(STAGES), show_default=True, help="Comma-separated stages to run.")
@click.option("--root", default=None,
              help="Runs root for the resumable run folders (never in git) "
                   "[default: ~/.cache/vidanime/runs/train-demo, or $VIDANIME_RUNS/train-demo].")
@click.option("--lpips-backbone", default="random", show_default=True,
              help="ImageNet AlexNet weights for the LPIPS loss; "
                   "'random' (no download possible here) is logged loudly.")
def main(stages: str, root: str | None, lpips_backbone: str) -> None:
    """Train (or continue training) the bundled default models, then export them into the package."""
    setup_logging(0)
    wanted = [s.strip() for s in stages.split(",") if s.strip()]
    unknown = sorted(set(wanted) - set(STAGES))
    if unknown:
        raise click.BadParameter(f"unknown stage(s) {', '.join(unknown)}; expected {', '.join(STAGES)}")

    rootp = Path(root).expanduser().resolve() if root else default_runs_root() / "train-demo"
    rootp.mkdir(parents=True, exist_ok=True)
    if "gan" in wanted:
        _vidanime("train-gan", "--config", "configs/demo_stylegan2.yaml", "--run-dir", str(rootp),
                  *_resume(rootp, "stylegan2_demo"))
    if "parser" in wanted:
        _vidanime("parser", "train", "--config", "configs/demo_parser_portrait.yaml", "--set", f"runs_root={rootp}",
                  *_resume(rootp, "parser_demo"))
    if "parser_danet" in wanted:
        _vidanime("parser", "train", "--config", "configs/demo_parser_portrait_danet.yaml", "--set",
                  f"runs_root={rootp}", *_resume(rootp, "parser_danet_demo"))
    if "anime_parser" in wanted:
        parser = _latest(rootp, EXPORTS["parser-portrait"][0])
        if parser is None:
            raise click.ClickException("anime_parser: needs the portrait parser first (stage parser)")
        # (a) the teacher: the portrait parser fine-tuned on portraits drawn as anime (labels warped alongside)
        _vidanime("parser", "train", "--config", "configs/demo_parser_anime_teacher.yaml", "--set",
                  f"runs_root={rootp}", "--set", f"init={parser}", *_resume(rootp, "parser_anime_teacher_demo"))
        teacher = _latest(rootp, ANIME_TEACHER)
        if teacher is None:
            raise click.ClickException(f"anime_parser: the teacher run left no checkpoint ({ANIME_TEACHER})")
        # (b) its confident, flip- and scale-averaged labels on shipped anime faces (never the held-out ones)
        pseudo = rootp / "anime_pseudo_v2"
        if not (pseudo / "masks").is_dir():
            _vidanime("parser", "pseudo-label", str(REPO.parent / "shared" / "assets" / "anime"), str(pseudo),
                      "--model", str(teacher), *PSEUDO_LABEL_ARGS)
        # (c) the student, from the teacher, on those labels: the bundled parser-anime
        _vidanime("parser", "train", "--config", "configs/demo_parser_anime.yaml", "--set", f"runs_root={rootp}",
                  "--set", f"data.root={pseudo}", "--set", f"init={teacher}", *_resume(rootp, "parser_anime_demo"))
    generator = _latest(rootp, EXPORTS["stylegan2-anime-demo"][0])
    if "facebank" in wanted:
        if generator is None:
            raise click.ClickException("facebank: no trained generator yet; run the gan stage first")
        _vidanime("facebank", "build", "--generator", str(generator), "--size", "10000", "--out",
                  str(rootp / "facebank_demo.pt"))
    if "encoders" in wanted:
        parser = _latest(rootp, EXPORTS["parser-anime"][0])  # the anime faces' parsing maps
        if generator is None or parser is None:
            raise click.ClickException("encoders: need the generator and the anime parser first (stages gan, "
                                       "anime_parser)")
        _vidanime("train", "--config", "configs/demo_styleanime_p2a.yaml", "--generator", str(generator),
                  "--set", f"target.parser={parser}", "--set", f"run_dir={rootp}",
                  "--lpips-backbone", lpips_backbone, *_resume(rootp, "styleanime_demo"))
        # ... then continued from that export with fresh optimizers for 62 minutes (1,255 steps on the 2-core Xeon):
        # hair/skin/eye colour EMD 0.186 -> 0.165, parser-free layout 0.172 -> 0.207 (README, "Bundled default model")
        first = _latest(rootp, "*-styleanime_demo/checkpoints/styleanime-*.pt")
        if first is None:
            raise click.ClickException("encoders: the first encoders run left no export")
        _vidanime("train", "--config", "configs/demo_styleanime_p2a.yaml", "--generator", str(generator),
                  "--set", f"target.parser={parser}", "--set", f"run_dir={rootp}", "--set", f"init={first}",
                  "--set", f"name={CONTINUATION}", "--set", "train.iterations=1500", "--set", "train.time_limit_min=62",
                  "--lpips-backbone", lpips_backbone, *_resume(rootp, CONTINUATION))
    if "distill" in wanted:
        # ... then test-time refinement (25 steps) distilled into the encoders on the 810 training portraits: at no
        # cost per frame, hair colour EMD 0.172 -> 0.108, layout 0.207 -> 0.232 (README, "Keeping the person")
        cont = _latest(rootp, f"*-{CONTINUATION}/checkpoints/styleanime-*.pt")
        if cont is None:
            raise click.ClickException("distill: needs the encoders' continuation run first (stage encoders)")

        run = _latest(rootp, "*-distill_refine") or RunDir.create(rootp, "distill_refine").path
        subprocess.run([sys.executable, "-m", "pipelines.recipes.distill_refine", "--out", str(run), "--model",
                        str(cont), "--refine", "25", "--steps", "600"], check=True, cwd=REPO)
        # ... and a second round from that export: its refined codes plus the W+ inversions of 400 anime crops
        # (reconstruction 11.9 -> 13.3 dB at the full step), blended 0.3 of the way so P(anime) stays >= 0.8
        first = _latest(rootp, "*-distill_refine/checkpoints/styleanime-*.pt")
        run2 = _latest(rootp, "*-distill_refine2") or RunDir.create(rootp, "distill_refine2").path
        subprocess.run([sys.executable, "-m", "pipelines.recipes.distill_refine", "--out", str(run2), "--model",
                        str(first), "--refine", "25", "--steps", "800", "--anime", "400", "--invert-steps", "50",
                        "--blend", "0.3"], check=True, cwd=REPO)
    if "interp" in wanted:
        interp_args = ["interp", "train", "--config", "configs/demo_interp_ifnet.yaml", "--set",
                       f"out_dir={rootp / 'interp'}"]
        first, total = IFNET_STEPS
        if _latest(rootp, "interp/*-ifnet_avg_demo/checkpoints/train-*.pt") is None:
            _vidanime(*interp_args, "--steps", str(first))
        _vidanime(*interp_args, "--resume", "auto", "--steps", str(total))
    if "upscaler" in wanted:
        _vidanime("train-upscaler", "--config", "configs/demo_upscaler.yaml", "--set", f"runs_root={rootp}",
                  *_resume(rootp, "upscaler_demo"))
    if "export" in wanted:
        click.echo(f"exported: {', '.join(export(rootp)) or 'nothing yet'}")


if __name__ == "__main__":
    main()
