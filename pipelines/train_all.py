"""`vidanime train-all`: train the whole model set to a wall-clock budget, then export it as an installable folder.

The recipe is a table of stages in a YAML file (``configs/train_all.yaml`` for 2 CPU cores,
``configs/train_all_gpu.yaml`` for one GPU).  Each stage is one job of a known kind, run in this process in order:

========== ================================================================ =========================
kind       what it runs                                                     output ({stage name})
========== ================================================================ =========================
gan        StyleGAN2 (:class:`pipelines.train_gan.TrainGANPipeline`)        exported generator .pt
parser     a face parser (:func:`vidanime.train.parser.train_parser`)       exported parser .pt
pseudo     parser pseudo-labels of an image folder (ParsePipeline)          images/ + masks/ folder
facebank   FaceBank of a generator's W codes                                facebank .pt
styleanime StyleAnime encoders (:func:`pipelines.train_styleanime`)         exported styleanime .pt
interp     the IFNet interpolator of L_fic (:func:`interp.train.train_ifnet`) exported ifnet .pt
distill    refinement distillation of encoders (:mod:`pipelines.distill`)    styleanime .pt
========== ================================================================ =========================

A stage's ``set`` overrides may name earlier outputs as ``{stage}`` and the data folder as ``{assets}``.  The budget is
split by the ``share`` column: each stage gets ``remaining × share / (shares of the stages still to run)``, so time a
stage leaves unused goes to the later ones.  A stage that raises is logged and recorded; stages that need its output
are skipped, the others still run and export.  Before the budgeted run a smoke pass runs every stage for one step on
tiny data on the same device (``smoke_seconds``), so a device or dtype bug costs seconds, not the budget.  A stage
that fails its smoke step is tried once more with its ``fallback`` overrides (e.g. ``train.amp: false``: float32
instead of bf16), which the budgeted run then uses too.  A smoke failure that remains stops the run, or, with
``keep_going`` (``--keep-going``, for one-shot runs on a lent machine), leaves that stage and the stages that need
its output out of the budgeted run, which trains and exports the rest.

The output folder holds ``runs/`` (resumable run folders, never for git), the exported ``<model>.pt`` files with
``registry.json`` (sha256; ``vidanime weights install OUT`` copies them into the package), ``train-all.json``
(per-stage status, seconds, steps, speed) and ``train-all.log``.
"""
from __future__ import annotations

import json
import logging
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from interp.train import export_path
from pipelines.base import Pipeline
from pipelines.facebank import build_facebank_from_file
from pipelines.interp import train_pipeline
from pipelines.parse import ParsePipeline
from pipelines.train_gan import TrainGANPipeline
from vidanime.checkpoint import load_checkpoint
from vidanime.config import load_config
from vidanime.data.pack import default_assets_root, materialize
from vidanime.errors import ConfigError, VidanimeError
from vidanime.fileio import atomic_write_text
from vidanime.train.export import ExportItem, export_models
from vidanime.train.harness import Budget, device_name, resolve_device
from vidanime.train.run_dir import RunDir, checkpoint_step, find_latest_run

logger = logging.getLogger(__name__)

__all__ = ["StageConfig", "ExportConfig", "TrainAllConfig", "TrainAllPipeline", "StageResult", "KINDS",
           "default_assets_root"]

KINDS = ("gan", "parser", "pseudo", "facebank", "styleanime", "interp", "distill")
_PLACEHOLDER = re.compile(r"\{([A-Za-z0-9_]+)\}")
REPO = Path(__file__).resolve().parents[1]


@dataclass
class StageConfig:
    """One row of the recipe table."""

    name: str = ""
    kind: str = ""  # one of KINDS
    share: float = 0.0  # share of the budget (renormalised over the stages still to run)
    config: str = ""  # the stage's own training YAML (gan, parser, styleanime, interp), relative to the repository
    set: dict[str, Any] = field(default_factory=dict)  # dotted overrides; "{stage}" / "{assets}" are substituted
    smoke: dict[str, Any] = field(default_factory=dict)  # extra overrides in the smoke pass (small data)
    # overrides tried when the stage fails its smoke step (e.g. {train.amp: false}); kept for the budgeted run if
    # the retry passes
    fallback: dict[str, Any] = field(default_factory=dict)
    enabled: bool = True


@dataclass
class ExportConfig:
    """One exported model: registry ``name`` ← the output of ``stage``."""

    name: str = ""
    stage: str = ""
    description: str = ""
    facebank: str = ""  # styleanime: the facebank stage whose bank ships inside the checkpoint
    # styleanime: test-time defaults (alpha, k[, anchor_layers], refine)
    inference: dict[str, Any] = field(default_factory=dict)
    # exported instead when ``stage`` has no output (e.g. the encoders when their distillation failed)
    fallback_stage: str = ""
    # other formats: "float16" halves the file (weights load back into float32 modules); "" ships them as trained
    dtype: str = ""

    def __post_init__(self) -> None:
        if self.dtype not in ("", "float32", "float16"):
            raise ConfigError(f"train-all export '{self.name}': dtype={self.dtype!r}, expected 'float16' or "
                              "'float32' (or leave it out)")


@dataclass
class TrainAllConfig:
    """The whole recipe: stages in order, what to export, and the smoke pass."""

    name: str = "train_all"
    smoke_seconds: float = 20.0  # the smoke pass's total allowance (every stage runs at least one step)
    export_share: float = 0.03  # budget kept back for the export at the end
    stages: list[StageConfig] = field(default_factory=list)
    exports: list[ExportConfig] = field(default_factory=list)

    def __post_init__(self) -> None:
        names = [s.name for s in self.stages]
        for s in self.stages:
            if not s.name or not re.fullmatch(r"[A-Za-z0-9_]+", s.name):
                raise ConfigError(f"train-all stage name '{s.name}': use letters, digits and '_'")
            if s.kind not in KINDS:
                raise ConfigError(f"train-all stage '{s.name}': kind '{s.kind}' is not one of {', '.join(KINDS)}")
            if s.share < 0:
                raise ConfigError(f"train-all stage '{s.name}': share {s.share} must be >= 0")
            for value in [*s.set.values(), *s.fallback.values()]:
                for ref in _PLACEHOLDER.findall(str(value)):
                    if ref != "assets" and (ref not in names or names.index(ref) >= names.index(s.name)):
                        raise ConfigError(f"train-all stage '{s.name}' uses {{{ref}}}, which is not an earlier stage")
        if len(set(names)) != len(names):
            raise ConfigError("train-all stage names must be unique")
        for e in self.exports:
            for ref in filter(None, (e.stage, e.fallback_stage)):
                if ref not in names:
                    raise ConfigError(f"train-all export '{e.name}' names unknown stage '{ref}'")


@dataclass
class StageResult:
    """What one stage did: ``status`` = ok | failed | skipped, its output, seconds, and speed when known."""

    name: str
    kind: str
    status: str
    seconds: float = 0.0
    allowance: float | None = None
    output: str = ""
    error: str = ""
    step: int | None = None
    img_per_s: float | None = None
    fallback: bool = False  # ran with the stage's fallback overrides


def _last_row(run_path: Path) -> dict[str, Any]:
    rows = [r for r in RunDir(run_path).read_metrics() if "it_per_s" in r]
    return rows[-1] if rows else {}


class TrainAllPipeline(Pipeline):
    """``TrainAllPipeline.from_config_file(path)(out, budget=Budget(540), device="cuda", data=...)``."""

    def __init__(self, config: TrainAllConfig, source: str = "config"):
        self.config = config
        self.source = source

    @classmethod
    def from_config_file(cls, path: str | os.PathLike,
                         overrides: Mapping[str, Any] | None = None) -> "TrainAllPipeline":
        """Load a recipe YAML (a relative path is also looked up in the repository, so it works from any folder)."""
        p = Path(path)
        if not p.is_file() and not p.is_absolute() and (REPO / p).is_file():
            p = REPO / p
        if not p.is_file():
            raise ConfigError(f"train-all config not found: {path}")
        return cls(load_config(p, TrainAllConfig, overrides=overrides), source=str(path))

    # ----------------------------------------------------------------------------------------------------- inputs
    def check_inputs(self, out: Path, assets: Path, stages: list[str] | None) -> None:
        """One-line errors for a missing data folder, an unknown stage or a stage config that does not exist."""
        if not assets.is_dir():
            raise ConfigError(f"training data folder not found: {assets} (give --data PACK.pt or an assets folder, "
                              "or set $VIDANIME_ASSETS)")
        known = [s.name for s in self.config.stages]
        for s in stages or []:
            if s not in known:
                raise ConfigError(f"unknown stage '{s}' (stages of {self.source}: {', '.join(known)})")
        for s in self.config.stages:
            if s.config and not (REPO / s.config).is_file() and not Path(s.config).is_file():
                raise ConfigError(f"stage '{s.name}': config {s.config} not found")
        if out.exists() and not out.is_dir():
            raise ConfigError(f"--out {out} exists and is not a folder")

    # -------------------------------------------------------------------------------------------------------- run
    def __call__(self, out: str | os.PathLike, budget: Budget | None = None, device: str = "auto",
                 data: str | os.PathLike | None = None, stages: list[str] | None = None, smoke: bool = True,
                 resume: bool = False, export: bool = True, smoke_only: bool = False,
                 keep_going: bool = False) -> dict[str, Any]:
        """Smoke pass, then every enabled stage within ``budget``, then the export into ``out``; returns the summary
        (also written to ``out/train-all.json``).  ``smoke_only`` stops after a passing smoke pass; ``keep_going``
        runs the stages that passed the smoke pass instead of stopping when some did not."""
        budget = budget or Budget(None)
        out = Path(out).expanduser().resolve()
        dev = resolve_device(device)
        assets = self._assets(data, out)
        self.check_inputs(out, assets, stages)
        out.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(out / "train-all.log", encoding="utf-8")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        handler.setLevel(logging.INFO)
        root_logger = logging.getLogger()
        previous_level = root_logger.level
        root_logger.addHandler(handler)
        root_logger.setLevel(min(previous_level or logging.WARNING, logging.INFO))  # the log file gets INFO rows
        try:
            logger.info("train-all %s: device %s (%s), data %s, budget %s", self.source, dev, device_name(dev),
                        assets, "none" if budget.seconds is None else f"{budget.seconds:.0f} s")
            summary: dict[str, Any] = {"config": self.source, "device": str(dev), "device_name": device_name(dev),
                                       "budget_s": budget.seconds, "data": str(assets)}
            fallback: set[str] = set()  # stages whose smoke step passed only with their fallback overrides
            if smoke:
                smoke_results = self._run_stages(out / "smoke", assets, dev, Budget(self.config.smoke_seconds),
                                                 stages, smoke=True, resume=False)
                summary["smoke"] = [r.__dict__ for r in smoke_results]
                fallback = {r.name for r in smoke_results if r.status == "ok" and r.fallback}
                failed = [r for r in smoke_results if r.status != "ok"]
                if failed and not (keep_going and not smoke_only):
                    self._write_summary(out, summary)
                    raise VidanimeError(f"smoke pass failed in stage {failed[0].name}: {failed[0].error or 'skipped'} "
                                        f"(see {out / 'train-all.log'})")
                if failed:
                    stages = [r.name for r in smoke_results if r.status == "ok"]
                    summary["left_out"] = [r.name for r in failed]
                    logger.warning("smoke pass failed in stage(s) %s; --keep-going: training %s",
                                   ", ".join(r.name for r in failed), ", ".join(stages) or "nothing")
                if smoke_only:
                    summary["seconds"] = budget.elapsed()
                    self._write_summary(out, summary)
                    return summary
            keep = budget.seconds * self.config.export_share if budget.seconds is not None else 0.0
            main = budget.part(None if budget.seconds is None else max(0.0, budget.remaining() - keep))
            results = self._run_stages(out / "runs", assets, dev, main, stages, smoke=False, resume=resume,
                                       fallback=fallback)
            summary["stages"] = [r.__dict__ for r in results]
            if export:
                summary["exported"] = self._export(results, out)
            summary["seconds"] = budget.elapsed()
            self._write_summary(out, summary)
            return summary
        finally:
            root_logger.removeHandler(handler)
            root_logger.setLevel(previous_level)
            handler.close()

    def _assets(self, data: str | os.PathLike | None, out: Path) -> Path:
        """The data folder: a data pack (.pt) is unpacked once into ``out/data``; a folder is used as it is."""
        if data is None:
            return default_assets_root()
        p = Path(data).expanduser()
        if p.is_file():
            dest = out / "data"
            materialize(p, dest)
            return dest
        return p

    def _run_stages(self, root: Path, assets: Path, dev: Any, budget: Budget, only: list[str] | None, smoke: bool,
                    resume: bool, fallback: set[str] | frozenset[str] = frozenset()) -> list[StageResult]:
        """Run the stages in order; in the smoke pass a failing stage is retried once with its ``fallback``
        overrides, and in the budgeted run the stages named in ``fallback`` use them."""
        todo = [s for s in self.config.stages if s.enabled and (only is None or s.name in only)]
        outputs: dict[str, str] = {}
        if only is not None:  # stages not asked for may have left outputs in an earlier call: reuse them
            outputs.update(self._existing_outputs(root))
        results = []
        root.mkdir(parents=True, exist_ok=True)
        for i, stage in enumerate(todo):
            shares = sum(max(s.share, 1e-6) for s in todo[i:])
            allowance = None if budget.seconds is None else budget.remaining() * max(stage.share, 1e-6) / shares
            if smoke:
                allowance = budget.remaining() / (len(todo) - i)
            part = budget.part(allowance)
            t0 = time.perf_counter()
            result = self._run_stage(stage, root, assets, dev, part, allowance, outputs, smoke, resume,
                                     stage.name in fallback)
            if smoke and result.status == "failed" and stage.fallback:
                logger.warning("stage %s: smoke step failed; trying again with its fallback %s", stage.name,
                               stage.fallback)
                retry = self._run_stage(stage, root / "fallback", assets, dev, budget.part(allowance), allowance,
                                        outputs, smoke, resume, True)
                if retry.status == "ok":
                    result = retry
                else:
                    result.error += f"; with the fallback {stage.fallback}: {retry.error}"
            result.seconds = time.perf_counter() - t0
            results.append(result)
            _record_outputs(root, outputs)
        return results

    def _run_stage(self, stage: StageConfig, root: Path, assets: Path, dev: Any, part: Budget,
                   allowance: float | None, outputs: dict[str, str], smoke: bool, resume: bool,
                   use_fallback: bool) -> StageResult:
        """One stage; its output goes into ``outputs`` when it finishes.  Never raises: the result says what
        happened."""
        result = StageResult(stage.name, stage.kind, "ok", allowance=allowance, fallback=use_fallback)
        try:
            overrides = self._overrides(stage, assets, outputs, dev, smoke, use_fallback)
            logger.info("stage %s (%s)%s: %s", stage.name, stage.kind,
                        "" if allowance is None else f", {allowance:.0f} s", overrides)
            root.mkdir(parents=True, exist_ok=True)
            output, info = STAGE_RUNNERS[stage.kind](stage, overrides, root, part, dev, resume)
            result.output = str(output)
            result.step, result.img_per_s = info.get("step"), info.get("img_per_s")
            outputs[stage.name] = str(output)
        except _MissingInput as exc:
            result.status, result.error = "skipped", str(exc)
            logger.warning("stage %s skipped: %s", stage.name, exc)
        except Exception as exc:  # noqa: BLE001 - one stage's failure must not lose the others' results
            result.status, result.error = "failed", f"{type(exc).__name__}: {exc}"
            logger.exception("stage %s failed", stage.name)
        return result

    @staticmethod
    def _existing_outputs(root: Path) -> dict[str, str]:
        f = root / "outputs.json"
        return json.loads(f.read_text()) if f.is_file() else {}

    def _overrides(self, stage: StageConfig, assets: Path, outputs: Mapping[str, str], dev: Any,
                   smoke: bool, use_fallback: bool = False) -> dict[str, Any]:
        def sub(value: Any) -> Any:
            if isinstance(value, list):
                return [sub(v) for v in value]
            if isinstance(value, dict):
                return {k: sub(v) for k, v in value.items()}
            if not isinstance(value, str):
                return value

            def one(m: re.Match) -> str:
                ref = m.group(1)
                if ref == "assets":
                    return str(assets)
                if ref not in outputs:
                    raise _MissingInput(f"needs the output of stage '{ref}', which did not finish")
                return outputs[ref]

            return _PLACEHOLDER.sub(one, value)

        merged = {**stage.set, **(stage.smoke if smoke else {}), **(stage.fallback if use_fallback else {})}
        return {k: sub(v) for k, v in merged.items()}

    def _export(self, results: list[StageResult], out: Path) -> list[str]:
        by_name = {r.name: r for r in results if r.status == "ok"}
        outputs = {**self._existing_outputs(out / "runs"), **{k: r.output for k, r in by_name.items()}}
        items = []
        for e in self.config.exports:
            src = outputs.get(e.stage)
            if not src and e.fallback_stage and outputs.get(e.fallback_stage):
                logger.warning("export %s: stage %s has no output, exporting stage %s's instead", e.name, e.stage,
                               e.fallback_stage)
                src = outputs[e.fallback_stage]
            if not src:
                logger.warning("export %s: stage %s has no output", e.name, e.stage)
                continue
            fmt = _format_of(Path(src))
            items.append(ExportItem(e.name, Path(src), fmt, e.description,
                                    facebank=Path(outputs[e.facebank]) if e.facebank in outputs else None,
                                    inference=e.inference or None,
                                    parser_names={outputs[x.stage]: x.name for x in self.config.exports
                                                  if x.stage in outputs},
                                    dtype=e.dtype or None))
        export_models(items, out, merge=False)
        return [i.name for i in items]

    @staticmethod
    def _write_summary(out: Path, summary: Mapping[str, Any]) -> None:
        atomic_write_text(out / "train-all.json", json.dumps(summary, indent=2, default=str) + "\n")


class _MissingInput(VidanimeError):
    """A stage needs the output of an earlier stage that failed or was not run."""


def _record_outputs(root: Path, outputs: Mapping[str, str]) -> None:
    atomic_write_text(root / "outputs.json", json.dumps(dict(outputs), indent=2) + "\n")


def _format_of(path: Path) -> str:
    return str(load_checkpoint(path)["format"])


def _config_path(stage: StageConfig) -> Path:
    p = Path(stage.config)
    return p if p.is_absolute() or p.is_file() else REPO / stage.config


# ------------------------------------------------------------------------------------------------------ stage runners
# Each runner: (stage, overrides, runs root, budget, device, resume) -> (output path, {"step", "img_per_s"})
def _run_gan(stage: StageConfig, overrides: dict, root: Path, budget: Budget, dev: Any, resume: bool):
    overrides = {"train.device": str(dev), "name": stage.name, **overrides}
    pipe = TrainGANPipeline.from_config_file(_config_path(stage), overrides)
    result = pipe(run_dir=root, resume="auto" if resume else None, budget=budget)
    if result.generator_checkpoint is None:
        raise VidanimeError(f"stage {stage.name} wrote no generator")
    return result.generator_checkpoint, {"step": result.step, **_speed(result.run_dir)}


def _run_parser(stage: StageConfig, overrides: dict, root: Path, budget: Budget, dev: Any, resume: bool):
    from vidanime.train.parser import load_train_config, train_parser  # local: two modules name load_train_config

    overrides = {"train.device": str(dev), "runs_root": str(root), "name": stage.name, **overrides}
    cfg = load_train_config(_config_path(stage), overrides)
    run = train_parser(cfg, resume="auto" if resume and _has_run(root, stage.name) else None, budget=budget)
    ckpt = run.latest_checkpoint("parser")
    if ckpt is None:
        raise VidanimeError(f"stage {stage.name} wrote no parser")
    return ckpt, {"step": checkpoint_step(ckpt), **_speed(run.path)}


def _run_pseudo(stage: StageConfig, overrides: dict, root: Path, budget: Budget, dev: Any, resume: bool):
    opts = dict(overrides)
    for key in ("model", "images"):
        if key not in opts:
            raise ConfigError(f"stage {stage.name}: set.{key} is required for a pseudo stage")
    out = root / stage.name
    if resume and (out / "done.json").is_file():
        return out, {}
    pipe = ParsePipeline.from_pretrained(opts.pop("model"), device=dev, batch_size=int(opts.pop("batch_size", 16)))
    images = opts.pop("images")
    scales = opts.pop("tta_scales", [1.0])
    stats = pipe.pseudo_label(images, out, scales=[float(s) for s in scales], budget=budget, **opts)
    if not stats["kept"]:
        raise VidanimeError(f"stage {stage.name}: no image passed the confidence thresholds")
    atomic_write_text(out / "done.json", json.dumps(stats, indent=2) + "\n")
    return out, {"step": stats["kept"]}


def _run_facebank(stage: StageConfig, overrides: dict, root: Path, budget: Budget, dev: Any, resume: bool):
    opts = dict(overrides)
    if "generator" not in opts:
        raise ConfigError(f"stage {stage.name}: set.generator is required for a facebank stage")
    out = root / f"{stage.name}.pt"
    bank = build_facebank_from_file(opts["generator"], out, n_codes=int(opts.get("size", 10000)),
                                    seed=int(opts.get("seed", 0)), device=dev)
    return out, {"step": len(bank)}


def _run_styleanime(stage: StageConfig, overrides: dict, root: Path, budget: Budget, dev: Any, resume: bool):
    from pipelines.train_styleanime import load_train_config, train_styleanime  # local: see _run_parser

    overrides = {"train.device": str(dev), "run_dir": str(root), "name": stage.name, **overrides}
    cfg = load_train_config(_config_path(stage), overrides)
    run = train_styleanime(cfg, resume="auto" if resume and _has_run(root, stage.name) else None, run_root=root,
                           budget=budget)
    ckpt = run.latest_checkpoint("styleanime") if run is not None else None
    if ckpt is None:
        raise VidanimeError(f"stage {stage.name} wrote no styleanime checkpoint")
    return ckpt, {"step": checkpoint_step(ckpt), **_speed(run.path)}


def _run_interp(stage: StageConfig, overrides: dict, root: Path, budget: Budget, dev: Any, resume: bool):
    overrides = {"out_dir": str(root), "name": stage.name, **overrides}
    run = train_pipeline(_config_path(stage), overrides,
                         resume="auto" if resume and _has_run(root, stage.name) else None, budget=budget,
                         device=str(dev))
    ckpt = export_path(run)
    if ckpt is None:
        raise VidanimeError(f"stage {stage.name} wrote no interpolator")
    return ckpt, {"step": checkpoint_step(ckpt), **_speed(run.path)}


def _run_distill(stage: StageConfig, overrides: dict, root: Path, budget: Budget, dev: Any, resume: bool):
    from pipelines.distill import DistillRunConfig, distill_refine

    opts = dict(overrides)
    for key in ("model", "faces"):
        if key not in opts:
            raise ConfigError(f"stage {stage.name}: set.{key} is required for a distill stage")
    known = set(DistillRunConfig.__dataclass_fields__)
    if unknown := sorted(set(opts) - known):
        raise ConfigError(f"stage {stage.name}: unknown distill option(s) {', '.join(unknown)}; "
                          f"known: {', '.join(sorted(known))}")
    out = root / stage.name
    done = out / "done.json"
    if resume and done.is_file():
        found = json.loads(done.read_text())
        if Path(found["checkpoint"]).is_file():
            return Path(found["checkpoint"]), {"step": found["step"]}
    ckpt = distill_refine(DistillRunConfig(**opts), out, budget=budget, device=dev)
    step = checkpoint_step(ckpt)
    atomic_write_text(done, json.dumps({"checkpoint": str(ckpt), "step": step}, indent=2) + "\n")
    return ckpt, {"step": step}


def _has_run(root: Path, name: str) -> bool:
    return find_latest_run(root, name=name) is not None


def _speed(run_path: Path) -> dict[str, Any]:
    row = _last_row(Path(run_path))
    return {"img_per_s": row.get("img_per_s")}


STAGE_RUNNERS: dict[str, Callable[..., tuple[Path, dict[str, Any]]]] = {
    "gan": _run_gan, "parser": _run_parser, "pseudo": _run_pseudo, "facebank": _run_facebank,
    "styleanime": _run_styleanime, "interp": _run_interp, "distill": _run_distill,
}
