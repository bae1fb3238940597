"""Per-clip fine-tune of the StyleAnime encoders (paper §6.3.3): L_final = λ_base·L_base + λ6·L_lcsc + λ7·L_fic.

* :class:`ClipTriplets` — the clip as training data: one face pass over the clip (detect → track → smooth → align,
  :class:`~vidanime.video.faces.FaceProcessor`) records, per track, the frame indices, the frame→crop matrices and the
  parsing labels the model is fed at inference (same parser, same causal per-track smoothing,
  :meth:`~vidanime.models.face_translator.StyleAnimeFaceTranslator.model_inputs`).  Consecutive triplets
  (i−1, i, i+1) of one track are then sampled at random.  The aligned crops are kept in memory (uint8, crop size)
  while they fit in ``cache_mb``; beyond that the frames are re-read by random access
  (:class:`~vidanime.video.frames.FrameSource`) and re-warped with the stored matrices.  Labels always stay in
  memory (one byte a pixel at the model size: 64 KB per face-frame at 256 px).
* Losses: L_lcsc (Eq. 15) = ‖(w[i+1] + w[i−1]) / 2 − w[i]‖₂ per W+ code, averaged over codes and triplets (the
  :func:`~vidanime.metrics.temporal.latent_roughness` of the triplet); L_fic (Eq. 16) = mean squared error between
  M(x̂[i−1], x̂[i+1]) and x̂[i] (images in [−1, 1], M a frozen differentiable interpolator from :mod:`interp`);
  L_base = Eq. 10 with the clip as the source domain: the self-supervised terms (λ1 L_rec + λ2 L_lpips + λ3 L_cp) on
  target-domain images of the checkpoint's training set, and — with the frozen D1/D2 saved in the checkpoint —
  λ4 L_da^E on the clip's codes, λ3 L_cp of each translation against its own frame (so the fine-tune keeps that
  person's colours) and, with ``base.adversarial`` (off by default: it drew artefacts on the demo clip), λ5 L_adv^E
  on the reconstructions and the clip's translations (the middle frame of each triplet).  Checkpoints without
  discriminators (older exports, official files) get the self-supervised terms and the clip's L_cp.
* :class:`ClipFinetuner` — Adam (lr 1e-4) on the encoders only; G stays frozen, encoder BatchNorm statistics stay fixed
  (``freeze_bn``, small correlated batches).  Run folder with metrics JSONL and resumable training checkpoints
  (bit-exact on CPU: weights, optimizer, step, samplers, RNG).
"""
from __future__ import annotations

import logging
import math
import os
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..config import config_to_dict
from ..errors import CheckpointError, ConfigError, MediaError
from ..video.faces import FaceConfig
from .harness import Budget, Every, RunningMean, TrainLoop, to_channels_last
from .run_dir import RunDir

logger = logging.getLogger(__name__)

FINETUNE_FORMAT = "vidanime.styleanime.finetune"
EXPORT_NAME = "styleanime.pt"

__all__ = ["FINETUNE_FORMAT", "EXPORT_NAME", "FinetuneOptions", "BaseLossConfig", "FinetuneConfig", "TrackFrames",
           "ClipTriplets", "lcsc_loss", "fic_loss", "ClipFinetuner", "base_data_config"]


# ------------------------------------------------------------------------------------------------------------ config
@dataclass
class FinetuneOptions:
    """Optimisation and bookkeeping (the ``train:`` section); paper values by default (5,000 iterations, lr 1e-4,
    λ6 = λ7 = 1)."""

    iterations: int = 5000
    # wall-clock limit of the training loop as a multiple of the clip's duration (0 = none): the loop stops at
    # `iterations` or after seconds_per_clip_second × clip seconds, whichever comes first (`--finetune auto`: 10)
    seconds_per_clip_second: float = 0.0
    batch: int = 4  # triplets per step (3·batch clip images)
    base_batch: int = 4  # target-domain images per step for L_base
    lr: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.999)
    lambda_lcsc: float = 1.0  # λ6
    lambda_fic: float = 1.0  # λ7
    lambda_base: float = 1.0  # weight of L_base (Eq. 18 adds it with weight 1)
    freeze_bn: bool = True  # encoders' BatchNorm in eval mode (running statistics kept from the base training)
    channels_last: bool | None = None  # encoders' convolutions in NHWC order (None: yes; harness.to_channels_last)
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    log_every: int = 50
    checkpoint_every: int = 1000
    keep_checkpoints: int = 1  # newest training checkpoints kept (0 = all)
    progress: bool = True


@dataclass
class BaseLossConfig:
    """Where L_base's target-domain images come from: the training config recorded in the checkpoint (or its run
    folder), with ``data`` / ``mask_labels`` / ``limit`` overriding its ``target`` section and ``loss`` overriding
    keys of its ``loss`` section (e.g. ``lpips_backbone``).  ``enabled: false`` drops L_base (tests only).
    ``adversarial``: Eq. 10's image term L_adv^E with the checkpoint's D2 on the clip's translations — off by default:
    on the demo clip (200 iterations) it painted blotchy high-frequency texture into the face; L_da^E with D1 and the
    clip's L_cp stay on.  ``if_missing: off`` (what ``translate --finetune`` sets) drops L_base with a warning when
    its data is not on this machine, e.g. after a plain ``pip install``; ``error`` (``vidanime finetune``) refuses."""

    enabled: bool = True
    adversarial: bool = False
    data: str = ""
    mask_labels: str = ""
    limit: int | None = None
    loss: dict = field(default_factory=dict)
    if_missing: str = "error"  # "error", or "off": L_base dropped (logged) when its data is not on this machine

    def __post_init__(self) -> None:
        if self.if_missing not in ("error", "off"):
            raise ConfigError(f"base.if_missing={self.if_missing!r}: expected 'error' or 'off'")


@dataclass
class FinetuneConfig:
    """Everything ``vidanime finetune`` needs; the resolved copy is the run folder's config.yaml."""

    input: str = ""
    start: str | None = None
    end: str | None = None
    checkpoint: str = ""
    parser: str = ""
    interp: str = "classical"  # interp.load name or path (frozen, differentiable M of Eq. 16)
    tracks: list[int] | None = None  # track ids to fine-tune on (None = every track with a triplet)
    parsing_smooth: int = 2  # as StyleAnimeFaceTranslator (the translation's default), so inputs match inference
    cache_mb: int = 1024  # keep aligned crops in memory up to this size, else random access into the clip
    background_fill: float | None = None  # as StyleAnimeFaceTranslator: None = the checkpoint's default
    face: FaceConfig = field(default_factory=FaceConfig)
    base: BaseLossConfig = field(default_factory=BaseLossConfig)
    train: FinetuneOptions = field(default_factory=FinetuneOptions)

    def __post_init__(self) -> None:
        t = self.train
        for key in ("batch", "base_batch", "log_every", "checkpoint_every"):
            if getattr(t, key) < 1:
                raise ConfigError(f"train.{key} = {getattr(t, key)}: expected an integer >= 1")
        if t.iterations < 0 or t.keep_checkpoints < 0:
            raise ConfigError(f"train.iterations / keep_checkpoints = {t.iterations} / {t.keep_checkpoints}: "
                              "expected integers >= 0")
        if t.lr <= 0:
            raise ConfigError(f"train.lr = {t.lr}: expected a positive learning rate")
        if not (math.isfinite(t.seconds_per_clip_second) and t.seconds_per_clip_second >= 0):
            raise ConfigError(f"train.seconds_per_clip_second = {t.seconds_per_clip_second}: expected a number >= 0 "
                              "(0 = no time limit)")
        for key in ("lambda_lcsc", "lambda_fic", "lambda_base"):
            if getattr(t, key) < 0:
                raise ConfigError(f"train.{key} = {getattr(t, key)}: expected a number >= 0")
        if self.background_fill is not None and (isinstance(self.background_fill, bool) or not isinstance(
                self.background_fill, (int, float)) or not 0.0 <= float(self.background_fill) <= 1.0):
            raise ConfigError(f"background_fill = {self.background_fill!r}: expected a number in [0, 1] (or null: "
                              "the checkpoint's default)")
        if self.parsing_smooth < 0 or self.cache_mb < 0:
            raise ConfigError(f"parsing_smooth / cache_mb = {self.parsing_smooth} / {self.cache_mb}: expected >= 0")


# -------------------------------------------------------------------------------------------------------------- data
@dataclass
class TrackFrames:
    """One track of the clip: source ``frames`` (T,) absolute indices, frame→crop ``matrices`` (T, 2, 3),
    model-input ``labels`` (T, M, M) uint8 in the model's label set, ``crops`` (T, S, S, 3) uint8 or None."""

    track_id: int
    frames: list[int] = field(default_factory=list)
    matrices: list[np.ndarray] = field(default_factory=list)
    labels: list[torch.Tensor] = field(default_factory=list)
    crops: list[np.ndarray] | None = field(default_factory=list)


class ClipTriplets:
    """Consecutive aligned-crop triplets (i−1, i, i+1) of the tracks of one clip (see the module docstring)."""

    def __init__(self, path: str | os.PathLike, tracks: Sequence[TrackFrames], crop_size: int, image_size: int,
                 border: str = "reflect", n_frames: int = 0, fps: float = 0.0, background_fill: float = 0.0,
                 label_set: str = "bisenet"):
        self.path = Path(path)
        # E_s is fed the crops as at inference: background moved to anime white when the checkpoint says so
        self.background_fill, self.label_set = float(background_fill), label_set
        self.tracks = list(tracks)
        self.crop_size, self.image_size, self.border = int(crop_size), int(image_size), border
        self.n_frames, self.fps = n_frames, float(fps)
        self.centres: list[tuple[int, int]] = [
            (k, t) for k, tr in enumerate(self.tracks) for t in range(1, len(tr.frames) - 1)
            if tr.frames[t - 1] + 1 == tr.frames[t] == tr.frames[t + 1] - 1
        ]
        self._source = None

    def __len__(self) -> int:
        return len(self.centres)

    @property
    def seconds(self) -> float:
        """Duration of the frames the face pass read (0 when the frame rate is unknown)."""
        return self.n_frames / self.fps if self.fps > 0 else 0.0

    @property
    def cached(self) -> bool:
        """True when the crops are held in memory (no decoding while training)."""
        return all(tr.crops is not None for tr in self.tracks)

    # ---- collection ----------------------------------------------------------------------------------------------
    @classmethod
    def collect(cls, path: str | os.PathLike, translator: Any, face_config: FaceConfig,
                start: str | float | None = None, end: str | float | None = None,
                tracks: Sequence[int] | None = None, cache_mb: float = 1024,
                progress: bool = True, detector: Any = None) -> "ClipTriplets":
        """One face pass over ``path`` (frame range ``start``/``end``): per track, frame indices, matrices and the
        labels ``translator.model_inputs`` feeds the model (a :class:`StyleAnimeFaceTranslator`; it is reset first)."""
        from tqdm.auto import tqdm

        from ..video.faces import FaceProcessor
        from ..video.io import VideoReader

        wanted = None if tracks is None else {int(t) for t in tracks}
        found: dict[int, TrackFrames] = {}
        cache_bytes, caching = 0, cache_mb > 0
        limit = cache_mb * 2**20
        with VideoReader(path, start=start, end=end) as reader:
            n, fps = len(reader), float(reader.info.fps)
            if n < 3:
                raise MediaError(f"{Path(path).name} has {n} frame(s) in the selected range; the fine-tune needs at "
                                 "least 3 consecutive frames (triplets i-1, i, i+1)")
            processor = FaceProcessor(face_config, detector=detector, fps=float(reader.info.fps))
            indices: deque[int] = deque()
            n_read = 0

            def images():
                nonlocal n_read
                for frame in reader:
                    indices.append(frame.index)
                    n_read += 1
                    yield frame.image

            translator.reset()
            bar = tqdm(total=n, desc="finetune: faces", unit="frame", disable=not progress, leave=False)
            try:
                for ff in processor.process(images()):
                    index = indices.popleft()
                    bar.update(1)
                    if not ff.faces:
                        continue
                    _, labels, _ = translator.model_inputs(np.stack([f.crop for f in ff.faces]),
                                                           [f.track_id for f in ff.faces])
                    for face, lab in zip(ff.faces, labels):
                        if wanted is not None and face.track_id not in wanted:
                            continue
                        tr = found.setdefault(face.track_id, TrackFrames(face.track_id))
                        tr.frames.append(int(index))
                        tr.matrices.append(np.asarray(face.matrix, np.float64))
                        tr.labels.append(lab.to(torch.uint8).cpu())
                        if caching:
                            tr.crops.append(face.crop)
                            cache_bytes += face.crop.nbytes
                            if cache_bytes > limit:
                                logger.info("aligned crops exceed %.0f MB: reading frames by random access instead",
                                            cache_mb)
                                caching = False
                                for t in found.values():
                                    t.crops = None
            finally:
                bar.close()
        if n_read < 3:
            raise MediaError(f"{Path(path).name} has {n_read} decodable frame(s); the fine-tune needs at least 3")
        if not caching:
            for t in found.values():
                t.crops = None
        s = face_config.crop_size
        out = cls(path, [found[k] for k in sorted(found)], s, translator.model.image_size, face_config.border,
                  n_frames=n_read, fps=fps, background_fill=getattr(translator, "background_fill", 0.0),
                  label_set=translator.model.config.label_set)
        logger.info("clip %s: %d frames, %d track(s), %d triplets; crops %s", Path(path).name, n_read, len(found),
                    len(out), "in memory" if out.cached else "read by random access")
        return out

    # ---- batches -------------------------------------------------------------------------------------------------
    def _crops(self, items: Sequence[tuple[int, int]]) -> np.ndarray:
        """Aligned crops (N, S, S, 3) uint8 for (track, position) items: from memory or re-warped from the clip."""
        if self.cached:
            return np.stack([self.tracks[k].crops[t] for k, t in items])
        from ..video.align import warp_face
        from ..video.frames import FrameSource

        if self._source is None:
            self._source = FrameSource(self.path)
        idx = [self.tracks[k].frames[t] for k, t in items]
        uniq = sorted(set(idx))
        frames = dict(zip(uniq, self._source.get_frames(uniq)))
        return np.stack([warp_face(frames[i], self.tracks[k].matrices[t], self.crop_size, self.border)
                         for i, (k, t) in zip(idx, items)])

    def batch(self, which: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """Triplets ``which`` (indices into :attr:`centres`) → images (3B, 3, M, M) in [-1, 1] and labels (3B, M, M)
        int64, ordered (i−1, i, i+1) per triplet; the image is fed exactly as at inference (antialiased resize, the
        background filled as the translator fills it)."""
        from ..models.face_translator import fill_background

        items = [(k, t + d) for j in which for k, t in [self.centres[int(j)]] for d in (-1, 0, 1)]
        crops = self._crops(items)
        x = torch.from_numpy(crops).permute(0, 3, 1, 2).float().div(255.0)
        m = self.image_size
        x = F.interpolate(x, size=(m, m), mode="bilinear", antialias=True, align_corners=False) * 2 - 1
        labels = torch.stack([self.tracks[k].labels[t] for k, t in items]).long()
        return fill_background(x, labels, self.label_set, self.background_fill), labels

    def close(self) -> None:
        if self._source is not None:
            self._source.close()
            self._source = None


# ------------------------------------------------------------------------------------------------------------ losses
def lcsc_loss(w: torch.Tensor) -> torch.Tensor:
    """L_lcsc (Eq. 15) for W+ triplets (B, 3, L, D): mean over triplets and codes of ‖(w[2] + w[0]) / 2 − w[1]‖₂."""
    if w.ndim != 4 or w.shape[1] != 3:
        raise ValueError(f"expected W+ triplets (B, 3, L, D), got {tuple(w.shape)}")
    second = (w[:, 2] + w[:, 0]) / 2 - w[:, 1]
    return second.float().norm(dim=-1).mean()


def fic_loss(frames: torch.Tensor, interp: Callable[..., torch.Tensor]) -> torch.Tensor:
    """L_fic (Eq. 16) for translated triplets (B, 3, 3, H, W) in [-1, 1]: mean squared error between
    M(x̂[i−1], x̂[i+1]) (M works in [0, 1]) and x̂[i]; gradients reach all three frames."""
    if frames.ndim != 5 or frames.shape[1] != 3:
        raise ValueError(f"expected image triplets (B, 3, 3, H, W), got {tuple(frames.shape)}")
    def to01(x: torch.Tensor) -> torch.Tensor:
        return (x.float().clamp(-1, 1) + 1) / 2

    mid = interp(to01(frames[:, 0]), to01(frames[:, 2]), 0.5) * 2 - 1
    return F.mse_loss(mid, frames[:, 1].float())


# ------------------------------------------------------------------------------------------------------- base data
def resolve_recorded_data(root: str) -> str:
    """A data folder as a training config records it, found from any working directory: as written when it exists,
    else — a path into the project's shared assets, e.g. ``../shared/assets/anime`` — under
    :func:`vidanime.data.pack.default_assets_root` ($VIDANIME_ASSETS honoured); else unchanged."""
    if not root or Path(root).is_dir():
        return root
    marker = "shared/assets/"
    posix = Path(root).as_posix()
    if marker in posix:
        from ..data.pack import default_assets_root

        found = default_assets_root() / posix.split(marker, 1)[1]
        if found.is_dir():
            return str(found)
    return root


def base_data_found(train_config: Mapping[str, Any] | None, base: BaseLossConfig) -> bool:
    """Whether L_base's target-domain images (``base.data``, else the recorded ``target.root``) are on this machine."""
    root = base.data or str((dict(train_config or {}).get("target") or {}).get("root") or "")
    return bool(root) and Path(resolve_recorded_data(root)).is_dir()


def base_data_config(train_config: Mapping[str, Any] | None, base: BaseLossConfig, label_set: str,
                     source: str = "checkpoint") -> tuple[Any, Any]:
    """(DomainDataConfig, StyleAnimeLossConfig) for L_base from a training config (plain data, may be None) and the
    overrides in ``base``; a missing dataset is a one-line :class:`ConfigError` naming the way out."""
    from ..config import config_from_dict
    from ..data.domains import DomainDataConfig
    from ..losses.styleanime import StyleAnimeLossConfig

    tc = dict(train_config or {})
    target = dict(tc.get("target") or {})
    where = f"the training config of {source}"
    if base.data:
        target["root"], where = base.data, "--base-data"
    if base.mask_labels:
        target["mask_labels"] = base.mask_labels
    if base.limit is not None:
        target["limit"] = base.limit
    root = resolve_recorded_data(str(target.get("root") or ""))
    target["root"] = root
    # parse plain images when a batch first draws them: a fine-tune of a few hundred steps draws a fraction of the
    # recorded 2,000 (parsing them all took 14 s of a 35-s run on 2 cores)
    target["lazy"] = True
    if not root:
        raise ConfigError(f"{source} records no target-domain training data for L_base; give the target domain's "
                          "images/ + masks/ with `vidanime finetune --base-data DIR` (or --no-base, tests only)")
    if not Path(root).is_dir():
        raise ConfigError(f"L_base data folder {root} (from {where}) not found; give the target-domain data with "
                          "`vidanime finetune --base-data DIR` (or --no-base, tests only)")
    data_cfg = config_from_dict(target, DomainDataConfig, source="base data")
    loss_cfg = config_from_dict({**dict(tc.get("loss") or {}), **base.loss}, StyleAnimeLossConfig, source="base loss")
    return data_cfg, loss_cfg


# ----------------------------------------------------------------------------------------------------------- trainer
class ClipFinetuner:
    """Fine-tunes ``model``'s encoders on ``triplets`` (+ L_base on ``base``/``base_loss`` when given).

    Args:
        config: the resolved :class:`FinetuneConfig` (``train`` section used here).
        model: a :class:`~vidanime.models.styleanime.StyleAnime` (moved to ``device``; G stays frozen).
        triplets: the clip's :class:`ClipTriplets`.
        interp: frozen differentiable M(img0, img1, t) for L_fic (None when λ7 = 0).
        base, base_loss: a :class:`~vidanime.data.domains.DomainDataset` of the target domain and a
            :class:`~vidanime.losses.styleanime.StyleAnimeLoss`; None = no L_base.
    """

    def __init__(self, config: FinetuneConfig, model: Any, triplets: ClipTriplets, interp: Any = None,
                 base: Any = None, base_loss: Any = None, device: torch.device | str = "cpu",
                 extras: Mapping[str, Any] | None = None, discriminators: tuple[Any, Any] | None = None):
        from ..data.domains import ShardedSampler

        t = config.train
        self.config, self.device = config, torch.device(device)
        if len(triplets) == 0:
            raise MediaError(f"{triplets.path.name}: no track has 3 consecutive frames with a face; nothing to "
                             "fine-tune on")
        if t.lambda_fic > 0 and interp is None:
            raise ConfigError("train.lambda_fic > 0 needs a frame-interpolation model (--interp NAME|PATH)")
        if (base is None) != (base_loss is None):
            raise ConfigError("L_base needs both the target-domain dataset and its loss")
        if base is not None and (base.size != model.image_size or base.label_set != model.config.label_set):
            raise ConfigError(f"L_base data is {base.size} px / '{base.label_set}' labels; the model expects "
                              f"{model.image_size} px / '{model.config.label_set}'")
        self.model = model.to(self.device)
        self.model.decoder.requires_grad_(False)
        self.model.encoder.requires_grad_(True)
        to_channels_last(t.channels_last, self.model.encoder)
        self.triplets, self.interp, self.base, self.base_loss = triplets, interp, base, base_loss
        self.extras = dict(extras or {})
        # Frozen D1/D2 saved with the model: Eq. 10's L_da^E and L_adv^E in L_base, with the clip as the source domain
        self.d1, self.d2 = (d.to(self.device) for d in discriminators) if discriminators else (None, None)
        self.optim = torch.optim.Adam(self.model.encoder.parameters(), lr=t.lr, betas=t.betas)
        self.rng = torch.Generator().manual_seed(t.seed)
        self.base_sampler = ShardedSampler(len(base), t.base_batch, seed=t.seed) if base is not None else None
        self.step = 0
        self.meter = RunningMean()  # metric sums since the last log row (checkpointed: resumed rows are exact)

    # -- one iteration ---------------------------------------------------------------------------------------------
    def video_losses(self, x: torch.Tensor, labels: torch.Tensor,
                     decode: bool = False) -> dict[str, torch.Tensor]:
        """L_lcsc and (λ7 > 0) L_fic of triplet batches from :meth:`ClipTriplets.batch` (graph kept); the codes
        ``w`` (3B, L, D) and, when decoded (λ7 > 0 or ``decode``), the translations ``img`` come along."""
        w = self.model.encode(x.to(self.device), labels.to(self.device))  # (3B, L, D)
        b = w.shape[0] // 3
        out = {"lcsc": lcsc_loss(w.view(b, 3, *w.shape[1:])), "w": w}
        if self.config.train.lambda_fic > 0 or decode:
            img = self.model.decode(w)
            out["img"] = img
            if self.config.train.lambda_fic > 0:
                out["fic"] = fic_loss(img.view(b, 3, *img.shape[1:]), self.interp)
        return out

    def train_step(self) -> dict[str, float]:
        """One Adam step on the encoders; returns the unweighted terms and the total ``loss``.

        L_base is Eq. 10 with the clip as the source domain: the self-supervised terms on target-domain images, and,
        when D1/D2 came with the model, L_da^E on the clip's codes and L_adv^E on the reconstruction and the clip's
        translations, plus L_cp of each translation against its own frame (the clip's colours)."""
        t = self.config.train
        which = torch.randint(len(self.triplets), (t.batch,), generator=self.rng).tolist()
        x, labels = self.triplets.batch(which)
        x, labels = x.to(self.device), labels.to(self.device)
        self.model.train_encoders(self.config.train.freeze_bn)
        use_base = self.base is not None and t.lambda_base > 0
        parts = self.video_losses(x, labels, decode=use_base)
        w, img = parts.pop("w"), parts.pop("img", None)
        total = t.lambda_lcsc * parts["lcsc"] + t.lambda_fic * parts.get("fic", 0.0)
        metrics = {k: v.item() for k, v in parts.items()}
        if use_base:
            lam = self.base_loss.config
            idx, flips = self.base_sampler.next()
            y, yp = self.base.batch(idx, flips)
            y, yp = y.to(self.device), yp.to(self.device)
            y_hat = self.model.decode(self.model.encode(y, yp))
            d1_src = self.d1(w) if self.d1 is not None and lam.lambda_da > 0 else None
            with_adv = (self.config.base.adversarial and self.d2 is not None and img is not None
                        and lam.lambda_adv > 0)
            # D2 sees the middle frame of each triplet (a third of the clip images: the same expectation, and D2's
            # pure-PyTorch blur is the costliest part of a CPU step)
            mid = img.view(-1, 3, *img.shape[1:])[:, 1] if with_adv else None
            d2_rec, d2_clip = (self.d2(y_hat), self.d2(mid)) if with_adv else (None, None)
            l_base, base_parts = self.base_loss(y, y_hat, yp, d1_src, d2_rec, d2_clip)
            if img is not None and lam.lambda_cp > 0:  # the clip's own colours (hair, skin, eyes)
                clip_cp, _ = self.base_loss.color(img, x, labels)
                l_base = l_base + lam.lambda_cp * clip_cp
                metrics["base_clip_cp"] = clip_cp.item()
            total = total + t.lambda_base * l_base
            metrics["base"] = l_base.item()
            keep = ("rec", "lpips", "cp") + (("da",) if d1_src is not None else ()) + (("adv",) if with_adv else ())
            metrics.update({f"base_{k}": v.item() for k, v in base_parts.items() if k in keep})
        self.optim.zero_grad(set_to_none=True)
        total.backward()
        self.optim.step()
        self.step += 1
        metrics["loss"] = float(total.item())
        return metrics

    @torch.no_grad()
    def evaluate(self, which: Sequence[int] | None = None, batch: int = 8) -> dict[str, float]:
        """Mean L_lcsc / L_fic over triplets ``which`` (default: all) with the model in eval mode."""
        which = list(range(len(self.triplets))) if which is None else list(which)
        was = self.model.training
        self.model.eval()
        sums: dict[str, float] = {}
        for i in range(0, len(which), batch):
            chunk = which[i : i + batch]
            for k, v in self.video_losses(*self.triplets.batch(chunk)).items():
                if k in ("w", "img"):
                    continue
                sums[k] = sums.get(k, 0.0) + v.item() * len(chunk)
        self.model.train(was)
        return {k: v / max(len(which), 1) for k, v in sums.items()}

    # -- state -----------------------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue bit-exactly on CPU: model, optimizer, step, samplers, RNG states."""
        return {
            "state_dict": {"model": {k: v.detach().cpu() for k, v in self.model.state_dict().items()}},
            "optim": self.optim.state_dict(),
            "train_step": self.step,
            "rng": {"triplets": self.rng.get_state(), "torch_cpu": torch.get_rng_state()},
            "base_sampler": self.base_sampler.state_dict() if self.base_sampler is not None else None,
            "metrics_accum": self.meter.state_dict(),
        }

    def load_state_dict(self, ckpt: Mapping[str, Any], source: str = "checkpoint") -> None:
        """Restore a :meth:`state_dict` (a loaded ``vidanime.styleanime.finetune`` checkpoint)."""
        from ..checkpoint import check_state_dict

        sd = ckpt.get("state_dict") or {}
        if "model" not in sd:
            raise CheckpointError(f"{source}: fine-tune checkpoint lacks the model weights")
        check_state_dict(self.model, {k: v.to(self.device) for k, v in sd["model"].items()}, source=source)
        try:
            self.optim.load_state_dict(ckpt["optim"])
        except (KeyError, ValueError) as exc:
            raise CheckpointError(f"{source}: optimizer state does not fit ({exc})") from None
        self.step = int(ckpt["train_step"])
        self.rng.set_state(ckpt["rng"]["triplets"])
        torch.set_rng_state(ckpt["rng"]["torch_cpu"])
        if self.base_sampler is not None and ckpt.get("base_sampler"):
            self.base_sampler.load_state_dict(ckpt["base_sampler"])
        self.meter.load_state_dict(ckpt.get("metrics_accum"))

    def export(self, path: str | os.PathLike) -> Path:
        """The fine-tuned model as a ``vidanime.styleanime`` checkpoint (what ``translate --checkpoint`` loads)."""
        from ..models.styleanime import save_styleanime

        return save_styleanime(path, self.model, step=self.step, finetune_config=config_to_dict(self.config),
                               **self.extras)

    def save(self, run: RunDir) -> tuple[Path, Path]:
        """Training checkpoint (checkpoints/finetune-<step>.pt) + the exported model (``styleanime.pt``)."""
        t = self.config.train
        train_path = run.save_checkpoint(self.step, kind="finetune", format=FINETUNE_FORMAT,
                                         config=config_to_dict(self.config), keep=t.keep_checkpoints,
                                         **self.state_dict())
        return train_path, self.export(run.path / EXPORT_NAME)

    # -- the loop --------------------------------------------------------------------------------------------------
    def train(self, run: RunDir | None = None, iterations: int | None = None,
              callback: Callable[[int, dict[str, float]], None] | None = None,
              budget: Budget | None = None) -> list[dict[str, Any]]:
        """Run until ``iterations`` (default ``config.train.iterations``) or the wall-clock ``budget``; log every
        ``log_every`` steps, save every ``checkpoint_every`` and at the end.  Returns the logged rows."""
        t = self.config.train
        total = t.iterations if iterations is None else iterations
        hooks = [Every(lambda s: self.save(run), steps=t.checkpoint_every)] if run is not None else []
        loop = TrainLoop(self.train_step, start=self.step, total=total, log_every=t.log_every,
                         log_fn=run.log_metrics if run is not None else None, hooks=hooks, budget=budget,
                         finite_keys=("loss",), desc="finetune", progress=t.progress, device=self.device,
                         on_step=callback, meter=self.meter)
        return loop.run().rows
