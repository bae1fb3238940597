"""Per-clip fine-tune job (paper §6.3.3): clip → face pass → triplets → encoder fine-tune → run folder + checkpoint.

``FinetunePipeline(config)(run_dir)`` checks the inputs, runs one face pass over the clip (the same detector, tracker,
alignment and parser smoothing as ``vidanime translate``), fine-tunes the encoders with L_base + λ6·L_lcsc + λ7·L_fic
(:mod:`vidanime.train.finetune`) and writes ``run_dir``::

    config.yaml                       the resolved FinetuneConfig
    metrics.jsonl                     training rows (loss, lcsc, fic, base, ...) and eval rows (eval_lcsc, eval_fic)
    checkpoints/finetune-<step>.pt    training state (resume)
    styleanime.pt                     the fine-tuned model: vidanime translate IN OUT --checkpoint run_dir/styleanime.pt

``finetune_for_translate`` is the ``translate --finetune N`` hook: fine-tune into a run folder beside the output
(resumed when it is already there) and return the exported checkpoint.
"""
from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Mapping

import interp
from pipelines.base import Pipeline
from vidanime.checkpoint import load_checkpoint, sha256_file
from vidanime.config import apply_overrides, config_from_dict, config_to_dict
from vidanime.data.domains import DomainDataset
from vidanime.errors import CheckpointError, ConfigError, MediaError, VidanimeError
from vidanime.fileio import atomic_write_text, check_input_file, check_output_path
from vidanime.losses.styleanime import StyleAnimeLoss
from vidanime.models.face_translator import StyleAnimeFaceTranslator
from vidanime.registry import load, load_model, resolve_path
from vidanime.train.finetune import (
    EXPORT_NAME,
    FINETUNE_FORMAT,
    ClipFinetuner,
    ClipTriplets,
    FinetuneConfig,
    base_data_config,
    base_data_found,
)
from vidanime.train.harness import Budget
from vidanime.train.run_dir import RunDir
from vidanime.train.styleanime import model_discriminators, resolve_device
from vidanime.video.faces import FaceConfig
from vidanime.video.probe import probe

logger = logging.getLogger(__name__)

__all__ = ["FINETUNE_AUTO", "FinetuneResult", "FinetunePipeline", "clip_budget", "finetune_for_translate",
           "finetune_requested", "finetune_settings"]


@dataclass
class FinetuneResult:
    """What a run did: run folder, exported checkpoint, steps, clip statistics, L_lcsc/L_fic before and after."""

    run_dir: str
    checkpoint: str
    steps: int
    frames: int
    tracks: int
    triplets: int
    seconds: float
    before: dict[str, float] | None = None
    after: dict[str, float] | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)


def clip_budget(seconds_per_clip_second: float, clip_seconds: float) -> Any:
    """The training loop's wall-clock :class:`~vidanime.train.harness.Budget` for a clip of ``clip_seconds``
    (None when the config sets no time limit; at least 1 s so a clip of unknown rate still trains a little)."""
    if seconds_per_clip_second <= 0:
        return None
    return Budget(max(1.0, seconds_per_clip_second * clip_seconds))


def _eval_subset(n: int, k: int) -> list[int]:
    """``k`` triplet indices spread evenly over ``n`` (all when k >= n)."""
    if k <= 0:
        return []
    if k >= n:
        return list(range(n))
    return sorted({round(i * (n - 1) / (k - 1)) for i in range(k)}) if k > 1 else [n // 2]


class FinetunePipeline(Pipeline):
    """Fine-tune a StyleAnime checkpoint on one clip: ``FinetunePipeline(config)(run_dir, resume=False)``."""

    def __init__(self, config: FinetuneConfig, eval_triplets: int = 32) -> None:
        self.config = config
        self.eval_triplets = int(eval_triplets)

    # ------------------------------------------------------------------------------------------------------- checks
    @staticmethod
    def check_inputs(config: FinetuneConfig) -> tuple[Path, Path]:
        """Clip exists with >= 3 frames, checkpoint / parser / interpolator resolvable; → (checkpoint, parser) paths.
        Raises a one-line error naming the bad value."""
        if not config.input:
            raise MediaError("no input video given")
        src = check_input_file(config.input, "input video")
        info = probe(src)
        if info.frame_count < 3:
            raise MediaError(f"{src.name} has {info.frame_count} frame(s); the fine-tune needs at least 3 consecutive "
                             "frames (triplets i-1, i, i+1)")
        if not config.checkpoint or not config.parser:
            raise ConfigError("the fine-tune needs a StyleAnime checkpoint and a parser (--checkpoint, --parser)")
        ckpt, parser = resolve_path(config.checkpoint), resolve_path(config.parser)
        if config.interp not in interp.BUILTIN_NAMES:
            try:  # a trial load (a second or less; the run loads it again) so a wrong file fails before the face pass
                interp.load(resolve_path(config.interp), device="cpu")
            except VidanimeError as exc:
                raise CheckpointError(f"--interp {config.interp}: {exc}") from None
        backbone = (config.base.loss or {}).get("lpips_backbone")
        if config.base.enabled and backbone and str(backbone) != "random":
            from vidanime.metrics.lpips_metrics import load_lpips

            try:  # the same trial load for the LPIPS trunk of L_base (loaded again by its loss)
                load_lpips("alex", backbone)
            except VidanimeError as exc:
                raise CheckpointError(f"--lpips-backbone {backbone}: {exc}") from None
        if config.train.lambda_fic == 0 and config.train.lambda_lcsc == 0 and not config.base.enabled:
            raise ConfigError("all loss weights are 0 (lambda_lcsc, lambda_fic) and L_base is off: nothing to train")
        return ckpt, parser

    @staticmethod
    def resume_config(run_dir: str | os.PathLike, overrides: Mapping[str, Any] | None = None) -> FinetuneConfig:
        """The config stored in ``run_dir``'s latest fine-tune checkpoint with dotted-key ``overrides`` applied
        (e.g. ``{"train.iterations": 8000}`` to train longer)."""
        path = RunDir.open(run_dir).latest_checkpoint("finetune")
        if path is None:
            raise CheckpointError(f"--resume {run_dir}: the folder holds no fine-tune checkpoint "
                                  "(expected checkpoints/finetune-*.pt)")
        stored = load_checkpoint(path, format=FINETUNE_FORMAT)["config"]
        return config_from_dict(apply_overrides(stored, overrides or {}, str(path)), FinetuneConfig,
                                source=f"{path} config")

    # ---------------------------------------------------------------------------------------------------- loading
    @staticmethod
    def _load_model(path: Path, device: Any) -> tuple[Any, dict | None, tuple[Any, Any] | None]:
        """(StyleAnime, the training config recorded with it or None, its frozen D1/D2 or None): our checkpoint, or
        an official .pt."""
        loaded = load(path, expect="styleanime")  # one read: the model, its training config and D1/D2
        model, train_config, discs = loaded.model, loaded.train_config, None
        if loaded.ours:
            discs = model_discriminators(model, source=str(path))  # the model carries the file's D1/D2
        if train_config is None:
            run = RunDir.of_checkpoint(path)
            if run is not None:
                train_config = run.read_config()
        return model.to(device), train_config, discs

    # --------------------------------------------------------------------------------------------------------- run
    def __call__(self, run_dir: str | os.PathLike, resume: bool = False, detector: Any = None) -> FinetuneResult:
        """Fine-tune into ``run_dir`` (a new or empty folder; with ``resume`` the folder of an earlier run)."""
        cfg = self.config
        t0 = time.perf_counter()
        ckpt_path, parser_path = self.check_inputs(cfg)
        out = Path(run_dir)
        state = None
        if resume:
            run = RunDir.open(out)
            state_path = run.latest_checkpoint("finetune")
            if state_path is None:
                raise CheckpointError(f"--resume {out}: the folder holds no fine-tune checkpoint")
            state = load_checkpoint(state_path, format=FINETUNE_FORMAT)
            stored = state["config"]
            for key in ("input", "checkpoint", "parser", "start", "end"):
                if stored.get(key) != getattr(cfg, key):
                    raise ConfigError(f"--resume {out}: the run fine-tuned {key}={stored.get(key)!r}, not "
                                      f"{getattr(cfg, key)!r}; use another run folder")
        else:
            if out.exists() and (not out.is_dir() or not _restartable(out)):
                raise ConfigError(f"{out} is not empty and holds no fine-tune this run can continue: choose "
                                  "another run folder (`vidanime finetune --resume` continues an earlier one)")
            check_output_path(out, "run folder", folder=True)  # before the model and the face pass
            run = RunDir(out)

        t = cfg.train
        device = resolve_device(t.device)
        model, train_config, discs = self._load_model(ckpt_path, device)
        use_base = cfg.base.enabled and t.lambda_base > 0
        if use_base and cfg.base.if_missing == "off" and not base_data_found(train_config, cfg.base):
            logger.warning("L_base off: the target-domain training images the model records are not on this machine "
                           "(give them with `vidanime finetune --base-data DIR`); the fine-tune uses the clip's own "
                           "losses only")
            use_base = False
        if use_base:  # before the face pass: a missing dataset fails fast
            data_cfg, loss_cfg = base_data_config(train_config, cfg.base, model.config.label_set,
                                                  source=str(ckpt_path))
        parser = load_model(parser_path, device=device, format="vidanime.parser")
        translator = StyleAnimeFaceTranslator(model, parser, device=device, parsing_smooth=cfg.parsing_smooth,
                                              background_fill=cfg.background_fill)
        triplets = ClipTriplets.collect(cfg.input, translator, cfg.face, start=cfg.start, end=cfg.end,
                                        tracks=cfg.tracks, cache_mb=cfg.cache_mb, progress=t.progress,
                                        detector=detector)
        if len(triplets) == 0:
            what = f"tracks {cfg.tracks}" if cfg.tracks else "no track"
            raise MediaError(f"{Path(cfg.input).name}: {what} with 3 consecutive frames with a face "
                             f"({len(triplets.tracks)} track(s) found); nothing to fine-tune on")
        del parser, translator

        base = base_loss = None
        if use_base:
            base = DomainDataset(data_cfg, model.config.label_set, model.image_size, device=device, name="base")
            base_loss = StyleAnimeLoss(loss_cfg, model.config.label_set, device)
        else:
            logger.warning("L_base is OFF: the encoders are fine-tuned on the clip's temporal losses alone and may "
                           "drift from the target domain (for tests only)")
        m = interp.load(cfg.interp, device=device) if t.lambda_fic > 0 else None
        out.mkdir(parents=True, exist_ok=True)  # only now: a clip without faces leaves no half-made run folder
        if state is None and run.metrics_path.is_file():  # an earlier run here stopped before its first checkpoint
            logger.info("%s: starting again over an earlier run that stopped before its first checkpoint", out)
            run.metrics_path.unlink()
        run.write_config(cfg)
        extras = {"train_config": train_config} if train_config is not None else {}
        if use_base and discs is None:
            logger.info("%s holds no discriminators: L_base without its adversarial terms (L_da^E, L_adv^E)",
                        ckpt_path.name)
        trainer = ClipFinetuner(cfg, model, triplets, interp=m, base=base, base_loss=base_loss, device=device,
                                extras=extras, discriminators=discs if use_base else None)
        subset = _eval_subset(len(triplets), self.eval_triplets)
        before = None
        if state is not None:
            trainer.load_state_dict(state, source=str(state_path))
            run.truncate_metrics(trainer.step)
            logger.info("resuming %s at step %d of %d", state_path, trainer.step, t.iterations)
        elif subset:
            before = trainer.evaluate(subset)
            run.log_metrics({"step": 0, **{f"eval_{k}": v for k, v in before.items()}})
        budget = clip_budget(t.seconds_per_clip_second, triplets.seconds)
        logger.info("fine-tuning %s on %s: %d triplets in %d track(s), %d iterations%s, device %s",
                    ckpt_path.name, Path(cfg.input).name, len(triplets), len(triplets.tracks), t.iterations,
                    "" if budget is None else f" or {budget.seconds:.0f} s", device)
        try:
            trainer.train(run, budget=budget)
            if trainer.step == 0 or not (run.path / EXPORT_NAME).is_file():
                trainer.save(run)  # 0 iterations: still export the (unchanged) model
            after = trainer.evaluate(subset) if subset else None
            if after is not None:
                run.log_metrics({"step": trainer.step, **{f"eval_{k}": v for k, v in after.items()}})
        finally:
            triplets.close()
        return FinetuneResult(
            run_dir=str(run.path), checkpoint=str(run.path / EXPORT_NAME), steps=trainer.step,
            frames=triplets.n_frames, tracks=len(triplets.tracks), triplets=len(triplets),
            seconds=round(time.perf_counter() - t0, 2), before=before, after=after,
        )


def _restartable(folder: Path) -> bool:
    """Whether a fresh fine-tune may write into ``folder``: it is empty, or holds only what a run that stopped before
    its first checkpoint left (config.yaml, metrics.jsonl, an empty checkpoints/), so an interrupted or failed run's
    folder can simply be given again."""
    left = {p.name for p in folder.iterdir()}
    ckpts = folder / "checkpoints"
    return left <= {"config.yaml", "metrics.jsonl", "checkpoints"} and not (ckpts.is_dir() and any(ckpts.iterdir()))


FINETUNE_AUTO = "auto"
# `--finetune auto`: at most AUTO_ITERATIONS, and no longer than AUTO_SECONDS_PER_CLIP_SECOND × the clip's duration
# of training (the face pass and the translation come on top); chosen from bench/bench_temporal.py's curve of warp
# error against iterations on the talking-face clips (README, "Per-clip fine-tuning")
AUTO_ITERATIONS = 300
AUTO_SECONDS_PER_CLIP_SECOND = 10.0


def finetune_settings(value: int | str) -> tuple[int, float]:
    """``--finetune`` value → (iterations, seconds_per_clip_second): ``N`` is N iterations with no time limit,
    ``"auto"`` is :data:`AUTO_ITERATIONS` within :data:`AUTO_SECONDS_PER_CLIP_SECOND` × the clip's duration."""
    if isinstance(value, str) and value.strip().lower() == FINETUNE_AUTO:
        return AUTO_ITERATIONS, AUTO_SECONDS_PER_CLIP_SECOND
    try:
        n = int(value)
    except (TypeError, ValueError):
        raise ConfigError(f"--finetune {value!r}: expected a number of iterations or 'auto'") from None
    if n < 1:
        raise ConfigError(f"--finetune {value!r}: expected a number of iterations >= 1 (0 = no fine-tune) or 'auto'")
    return n, 0.0


def finetune_requested(value: int | str | None) -> bool:
    """True when a ``--finetune`` value asks for a fine-tune (``"auto"`` or N >= 1; 0/None = off)."""
    if isinstance(value, str):
        return value.strip().lower() == FINETUNE_AUTO or (value.strip().isdigit() and int(value) > 0)
    return bool(value) and int(value) > 0


def finetune_for_translate(input: str | os.PathLike, output: str | os.PathLike, checkpoint: str, parser: str,
                           iterations: int | str, face_config: FaceConfig | None = None, start: str | None = None,
                           end: str | None = None, device: str = "cpu", interp: str = "classical",
                           run_dir: str | os.PathLike | None = None, progress: bool = True,
                           overrides: Mapping[str, Any] | None = None) -> Path:
    """``translate --finetune N|auto``: fine-tune ``checkpoint`` on ``input`` for ``iterations`` (N, or ``"auto"``:
    see :func:`finetune_settings`) into ``run_dir`` (default: ``<output>.finetune`` beside the output, resumed when
    it already holds this clip's fine-tune) and return the exported checkpoint to translate with.  ``overrides`` are
    extra ``{"dotted.key": value}`` config settings (e.g. ``{"base.limit": 200}``)."""
    steps, per_clip_second = finetune_settings(iterations)
    out = Path(run_dir) if run_dir is not None else Path(output).with_suffix(".finetune")
    overrides = {"base.if_missing": "off", **dict(overrides or {}), "train.iterations": steps,
                 "train.seconds_per_clip_second": per_clip_second, "train.device": device, "train.progress": progress}
    base_id = _base_identity(input, start, end, checkpoint, parser)
    if overrides.get("background_fill") is not None:  # a fine-tune on other inputs is another fine-tune
        base_id["background_fill"] = float(overrides["background_fill"])
    resume = out.is_dir() and RunDir(out).latest_checkpoint("finetune") is not None
    if resume and _read_base_identity(out) != base_id:
        # another clip, range, model or parser (or the bundled model was updated): never reuse it silently
        moved = _move_aside(out)
        logger.warning("%s holds a fine-tune of another clip or model: moved it to %s and starting anew", out, moved)
        resume = False
    if resume:
        cfg = FinetunePipeline.resume_config(out, overrides)
    else:
        base = FinetuneConfig(input=str(input), start=None if start is None else str(start),
                              end=None if end is None else str(end), checkpoint=str(checkpoint), parser=str(parser),
                              interp=interp, face=face_config or FaceConfig(device=device))
        cfg = config_from_dict(apply_overrides(config_to_dict(base), overrides), FinetuneConfig)
    result = FinetunePipeline(cfg)(out, resume=resume)

    atomic_write_text(out / BASE_FILE, json.dumps(base_id, indent=1) + "\n")
    logger.info("fine-tuned model kept in %s (reuse: --checkpoint %s)", result.run_dir, result.checkpoint)
    return Path(result.checkpoint)


BASE_FILE = "base.json"  # what a translate-time fine-tune was made from, so a later run resumes only the same thing


def _base_identity(input: str | os.PathLike, start: Any, end: Any, checkpoint: str, parser: str) -> dict[str, Any]:
    """The clip (path, size, mtime), range, and the sha256 of the model and parser files a fine-tune starts from."""
    src = Path(input).resolve()
    st = src.stat()
    return {"input": str(src), "size": st.st_size, "mtime_ns": st.st_mtime_ns,
            "start": None if start is None else str(start), "end": None if end is None else str(end),
            "checkpoint": sha256_file(resolve_path(checkpoint)), "parser": sha256_file(resolve_path(parser))}


def _read_base_identity(run_dir: Path) -> dict[str, Any] | None:
    f = run_dir / BASE_FILE
    try:
        return json.loads(f.read_text()) if f.is_file() else None
    except (OSError, json.JSONDecodeError):
        return None


def _move_aside(run_dir: Path) -> Path:
    """Rename ``run_dir`` to the first free ``<name>.old``, ``<name>.old2``, … beside it (nothing is deleted)."""
    n = 1
    while True:
        target = run_dir.with_name(f"{run_dir.name}.old{'' if n == 1 else n}")
        if not target.exists():
            run_dir.rename(target)
            return target
        n += 1
