"""StyleAnime base training (paper §4.2, §5.1): encoders E_p, E_s and the discriminators D1 (codes), D2 (images)
trained with the target-domain generator frozen.

One iteration (``StyleAnimeTrainer.train_step``):

1. target batch (y, y_p) and source batch (x, x_p); w_y = E(y, y_p), w_x = E(x, x_p); ŷ = G(w_y), x̂ = G(w_x);
2. D step: L_da^D1(D1(w_y), D1(w_x)) (Eq. 7) + L_adv^D2(D2(y), D2(ŷ), D2(x̂)) (Eq. 9), lazy R1 (γ/2 ‖∇_y D2(y)‖²) on y;
3. E step: Eq. 10 with the just-updated D1/D2 (see :mod:`vidanime.losses.styleanime`).

Adam at lr 1e-4 for all three (paper).  Multi-GPU / multi-node: run under ``torchrun``; RANK/WORLD_SIZE/LOCAL_RANK are
read from the environment, the encoders and discriminators are wrapped in DistributedDataParallel, each process
draws its slice of a global batch (:class:`~vidanime.data.domains.ShardedSampler`), and only rank 0 logs and writes.
BatchNorm statistics of the IR-SE encoders and D2's minibatch-stddev are per process unless ``sync_bn`` (CUDA only);
with ``freeze_bn`` and ``mbstd_group: 1`` a step is exactly the single-process step on the concatenated batch.
``amp`` runs the forward passes in bfloat16 autocast on CUDA (R1 stays in float32).
A training checkpoint holds weights, optimizers, step, sampler positions and RNG states: resume is bit-exact on CPU.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal, Mapping

import numpy as np
import torch

from .. import labels as L
from ..config import config_to_dict
from ..data.domains import DomainDataConfig, DomainDataset, ShardedSampler
from ..errors import CheckpointError, ConfigError
from ..losses.gan import r1_penalty
from ..losses.latent import LatentDiscriminator, da_loss_discriminator
from ..losses.styleanime import StyleAnimeLoss, StyleAnimeLossConfig, adv_loss_discriminator
from ..models.styleanime import StyleAnime, StyleAnimeConfig, save_styleanime
from ..models.stylegan2 import Discriminator
from .harness import Budget, Every, RunningMean, TrainLoop, autocast, configure_device, shorter_budget, to_channels_last
from .refine import StructureLoss
from .run_dir import RunDir
from .warmup import LatentWarmup, LatentWarmupConfig

logger = logging.getLogger(__name__)

TRAIN_FORMAT = "vidanime.styleanime.train"

__all__ = ["TRAIN_FORMAT", "TrainOptions", "TrainStyleAnimeConfig", "StyleAnimeTrainer", "DistInfo",
           "setup_distributed", "resolve_device", "ConsistencyConfig", "discriminator_record",
           "discriminators_from_checkpoint", "model_discriminators"]


@dataclass
class TrainOptions:
    """Optimisation and bookkeeping (the ``train:`` section); ``batch`` is per process."""

    iterations: int = 100_000
    batch: int = 8
    lr: float = 1e-4  # encoders (paper)
    d_lr: float = 1e-4  # D1 and D2 (paper)
    betas: tuple[float, float] = (0.9, 0.999)
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N (under torchrun: cuda:LOCAL_RANK)
    amp: bool = False  # bfloat16 autocast on CUDA
    channels_last: bool | None = None  # encoders' and D2's convolutions in NHWC order (None: yes; to_channels_last)
    freeze_bn: bool = False  # encoders' BatchNorm in eval mode (running statistics fixed)
    sync_bn: bool = True  # SyncBatchNorm across processes (CUDA + DDP only)
    mbstd_group: int = 4  # D2 minibatch-stddev group size (StyleGAN2: 4; 1 = per-sample D2)
    log_every: int = 50
    sample_every: int = 1000
    checkpoint_every: int = 5000
    keep_checkpoints: int = 2  # newest training checkpoints kept (0 = all)
    n_samples: int = 8  # rows of the sample grid
    time_limit_min: float = 0.0  # stop (and save) after this many minutes (0 = no limit)
    threads: int = 0  # torch CPU threads (0 = torch's default)
    progress: bool = True


@dataclass
class ConsistencyConfig:
    """Translation consistency on the source batch (an addition to the paper, the training-time form of
    ``--refine``): the translation x̂ = G(E(x)) of each source image should keep x's layout — cross-entropy of an
    output-domain parser's grouped probabilities on x̂ against x's parsing
    (:class:`~vidanime.train.refine.StructureLoss`) — and its hair / skin / eye colours (L_cp of Eq. 4–5 applied to
    x̂ against x, where the paper applies it only to the target reconstruction).  Off by default (the paper's
    training)."""

    lambda_structure: float = 0.0
    lambda_colour: float = 0.0
    parser: str = ""  # output-domain parser (bundled name or path); "" = warmup.parser, else target.parser

    def __post_init__(self) -> None:
        if self.lambda_structure < 0 or self.lambda_colour < 0:
            raise ConfigError(f"consistency.lambda_structure / lambda_colour = {self.lambda_structure} / "
                              f"{self.lambda_colour}: expected numbers >= 0")

    @property
    def enabled(self) -> bool:
        return self.lambda_structure > 0 or self.lambda_colour > 0


@dataclass
class TrainStyleAnimeConfig:
    """Everything ``vidanime train`` needs; the resolved copy is saved in the run folder and every checkpoint.

    ``generator``: the target-domain StyleGAN2 (our ``vidanime.stylegan2`` checkpoint, a ``train-gan`` training
    checkpoint, or a rosinality ``.pt``); its discriminator, when the file has one, initialises D2.  ``"random"``
    keeps a random generator (tests only).  ``init``: a ``vidanime.styleanime`` checkpoint to start the encoders from.
    """

    name: str = "styleanime"
    task: Literal["p2a", "a2p", "other"] = "p2a"  # p2a = portrait → anime (target = anime); saved as model.direction
    model: StyleAnimeConfig = field(default_factory=StyleAnimeConfig)
    generator: str = ""
    init: str = ""
    target: DomainDataConfig = field(default_factory=DomainDataConfig)
    source: DomainDataConfig = field(default_factory=DomainDataConfig)
    loss: StyleAnimeLossConfig = field(default_factory=StyleAnimeLossConfig)
    warmup: LatentWarmupConfig = field(default_factory=LatentWarmupConfig)
    consistency: ConsistencyConfig = field(default_factory=ConsistencyConfig)
    train: TrainOptions = field(default_factory=TrainOptions)
    run_dir: str = "runs"

    def __post_init__(self) -> None:
        t = self.train
        for key in ("iterations", "batch", "log_every", "sample_every", "checkpoint_every", "n_samples", "mbstd_group"):
            minimum = 0 if key == "iterations" else 1
            if getattr(t, key) < minimum:
                raise ConfigError(f"train.{key} = {getattr(t, key)}: expected an integer >= {minimum}")
        if t.lr <= 0 or t.d_lr <= 0:
            raise ConfigError(f"train.lr / d_lr = {t.lr} / {t.d_lr}: expected positive learning rates")
        if not all(0 <= b < 1 for b in t.betas):
            raise ConfigError(f"train.betas = {list(t.betas)}: expected two numbers in [0, 1)")
        if not (t.device in ("auto", "cpu", "cuda") or t.device.startswith("cuda:")):
            raise ConfigError(f"train.device = '{t.device}': expected auto, cpu, cuda or cuda:N")


# ------------------------------------------------------------------------------------------------------ distributed
@dataclass
class DistInfo:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def setup_distributed(device_hint: str = "auto") -> DistInfo:
    """Read torchrun's RANK / WORLD_SIZE / LOCAL_RANK; with WORLD_SIZE > 1 join the process group (NCCL on CUDA,
    else gloo) unless already joined."""
    import torch.distributed as dist

    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        use_cuda = device_hint != "cpu" and torch.cuda.is_available()
        if use_cuda:
            torch.cuda.set_device(local)
        dist.init_process_group("nccl" if use_cuda else "gloo")
    return DistInfo(dist.get_rank(), dist.get_world_size(), local)


def resolve_device(device: str, dist_info: DistInfo | None = None) -> torch.device:
    """``auto`` → CUDA if available; under DDP, ``cuda`` means ``cuda:LOCAL_RANK``."""
    from .harness import resolve_device as resolve_one

    dev = resolve_one(device)
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device("cuda", dist_info.local_rank if dist_info is not None else 0)
    return dev


def discriminator_record(d1: Mapping[str, torch.Tensor], d2: Mapping[str, torch.Tensor], d1_layers: int,
                         mbstd_group: int) -> dict[str, Any]:
    """The ``discriminators`` entry of an exported StyleAnime checkpoint (read by
    :func:`discriminators_from_checkpoint`): D1/D2 state dicts on the CPU and what is needed to rebuild them."""
    return {"d1": {k: v.detach().cpu() for k, v in d1.items()}, "d2": {k: v.detach().cpu() for k, v in d2.items()},
            "d1_layers": int(d1_layers), "mbstd_group": int(mbstd_group)}


def discriminators_from_checkpoint(data: Mapping[str, Any], model: StyleAnime,
                                   source: str = "checkpoint") -> tuple[LatentDiscriminator, Discriminator] | None:
    """D1 and D2 saved with an exported StyleAnime (``discriminators`` in the checkpoint), frozen and in eval mode;
    None when the file has none (checkpoints from before they were saved, official files)."""
    from ..checkpoint import check_state_dict

    disc = data.get("discriminators") if isinstance(data, Mapping) else None
    if not disc:
        return None
    gcfg = model.config.generator
    d1 = LatentDiscriminator(gcfg.n_latent, gcfg.style_dim, n_layers=int(disc.get("d1_layers", 4)))
    d2 = Discriminator(gcfg)
    d2.stddev_group = int(disc.get("mbstd_group", 4))
    check_state_dict(d1, {k: v.float() for k, v in disc["d1"].items()}, source=f"{source} (D1)")
    check_state_dict(d2, {k: v.float() for k, v in disc["d2"].items()}, source=f"{source} (D2)")
    return d1.eval().requires_grad_(False), d2.eval().requires_grad_(False)


def model_discriminators(model: StyleAnime,
                         source: str = "checkpoint") -> tuple[LatentDiscriminator, Discriminator] | None:
    """D1 and D2 saved with the checkpoint ``model`` was loaded from (``model.discriminator_state``), frozen and in
    eval mode; None when it had none."""
    return discriminators_from_checkpoint({"discriminators": getattr(model, "discriminator_state", None)}, model,
                                          source=source)


def _requires_grad(module: torch.nn.Module, flag: bool) -> None:
    for p in module.parameters():
        p.requires_grad_(flag)


class _PairEncoder(torch.nn.Module):
    """Both domains through the encoders in one forward (so DDP sees one forward per backward)."""

    def __init__(self, encoder: torch.nn.Module):
        super().__init__()
        self.encoder = encoder

    def forward(self, onehot_y: torch.Tensor, y: torch.Tensor, onehot_x: torch.Tensor,
                x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        return (*self.encoder(onehot_y, y), *self.encoder(onehot_x, x))


class _MultiD(torch.nn.Module):
    """Several separate discriminator passes in one forward (D2's minibatch-stddev forbids concatenating them)."""

    def __init__(self, disc: torch.nn.Module):
        super().__init__()
        self.disc = disc

    def forward(self, *images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(self.disc(im) for im in images)


def _allreduce_grads(module: torch.nn.Module, world: int) -> None:
    """Average the gradients of ``module`` over the process group (missing gradients count as zero)."""
    import torch.distributed as dist

    params = [p for p in module.parameters() if p.requires_grad]
    for p in params:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
    flat = torch.cat([p.grad.reshape(-1) for p in params])
    dist.all_reduce(flat)
    flat /= world
    offset = 0
    for p in params:
        n = p.numel()
        p.grad.copy_(flat[offset : offset + n].view_as(p))
        offset += n


# ------------------------------------------------------------------------------------------------------------ trainer
class _DistributedMean(RunningMean):
    """:class:`RunningMean` whose means are taken over all ranks under DDP (one all-reduce per log row)."""

    def __init__(self, dist_info: DistInfo, device: torch.device):
        super().__init__()
        self.dist_info, self.device = dist_info, device

    def pop(self) -> dict[str, float]:
        if self.dist_info.world == 1:
            return super().pop()
        import torch.distributed as dist

        keys = sorted(self.sums)
        vals = torch.tensor([self.sums[k] for k in keys] + [float(self.count)], dtype=torch.float64)
        vals = vals.to(self.device if self.device.type == "cuda" else torch.device("cpu"))
        dist.all_reduce(vals)
        vals = vals.cpu()
        self.sums, self.count = {}, 0
        n = max(vals[-1].item(), 1.0)
        return {k: vals[i].item() / n for i, k in enumerate(keys)}


class StyleAnimeTrainer:
    """Holds the model (E_p, E_s, frozen G), D1, D2, optimizers, samplers and step; ``train()`` runs the loop.

    Args:
        config: the resolved :class:`TrainStyleAnimeConfig`.
        target, source: the two domains' datasets (labels in ``config.model.label_set``, size = model image size).
        dist_info: rank / world size (default: single process).
    """

    def __init__(self, config: TrainStyleAnimeConfig, target: DomainDataset, source: DomainDataset,
                 dist_info: DistInfo | None = None, device: torch.device | str | None = None):
        self.config = config
        self.dist = dist_info or DistInfo()
        t = config.train
        self.device = torch.device(device) if device is not None else resolve_device(t.device, self.dist)
        configure_device(self.device)
        self.target, self.source = target, source
        for ds, what in ((target, "target"), (source, "source")):
            if ds.size != config.model.image_size or ds.label_set != config.model.label_set:
                raise ConfigError(f"{what} dataset is {ds.size} px / '{ds.label_set}' labels; the model expects "
                                  f"{config.model.image_size} px / '{config.model.label_set}'")
        torch.manual_seed(t.seed)  # same initial weights on every rank
        if config.task in ("p2a", "a2p") and config.model.direction is None:
            config.model.direction = config.task  # recorded in checkpoints: translate refuses the wrong direction
        self.model = StyleAnime(config.model)
        gcfg = config.model.generator
        self.D1 = LatentDiscriminator(gcfg.n_latent, gcfg.style_dim, n_layers=config.loss.d1_layers)
        self.D2 = Discriminator(gcfg)
        self.D2.stddev_group = t.mbstd_group
        self._load_generator(config.generator)
        if config.init:
            self._load_init(config.init)
        self.model.to(self.device)
        self.D1.to(self.device)
        self.D2.to(self.device)
        to_channels_last(t.channels_last, self.model.encoder, self.D2)  # not G: its grouped convs need NCHW
        if self.dist.world > 1 and t.sync_bn:
            if self.device.type == "cuda":
                self.model.encoder = torch.nn.SyncBatchNorm.convert_sync_batchnorm(self.model.encoder)
            elif not t.freeze_bn:
                logger.info("sync_bn needs CUDA: BatchNorm statistics stay per process")
        # One forward per backward for each wrapped module; under DDP, E_p's unused FPN lateral layer needs
        # find_unused_parameters.  D1/D2 are called unwrapped in the E step (their weights are not updated there).
        self.enc: torch.nn.Module = _PairEncoder(self.model.encoder)
        self.d1: torch.nn.Module = self.D1
        self.d2: torch.nn.Module = _MultiD(self.D2)
        if self.dist.world > 1:
            from torch.nn.parallel import DistributedDataParallel as DDP

            ids = [self.device.index] if self.device.type == "cuda" else None
            self.enc = DDP(self.enc, device_ids=ids, find_unused_parameters=True)
            self.d1 = DDP(self.d1, device_ids=ids)
            self.d2 = DDP(self.d2, device_ids=ids)
        self.e_optim = torch.optim.Adam(self.model.encoder.parameters(), lr=t.lr, betas=t.betas)
        self.d1_optim = torch.optim.Adam(self.D1.parameters(), lr=t.d_lr, betas=t.betas)
        self.d2_optim = torch.optim.Adam(self.D2.parameters(), lr=t.d_lr, betas=t.betas)
        self.loss = StyleAnimeLoss(config.loss, config.model.label_set, self.device)
        self.warmup = self._build_warmup(config.warmup)
        self.structure = self._build_structure(config.consistency)
        self.target_sampler = ShardedSampler(len(target), t.batch, self.dist.rank, self.dist.world, seed=t.seed)
        self.source_sampler = ShardedSampler(len(source), t.batch, self.dist.rank, self.dist.world, seed=t.seed + 1)
        self.step = 0
        self.use_amp = bool(t.amp) and self.device.type == "cuda"
        if t.amp and not self.use_amp:
            logger.warning("train.amp is only used on CUDA; training in float32 on %s", self.device)
        self.meter = _DistributedMean(self.dist, self.device)  # metric sums since the last row (checkpointed)

    # -- weights from elsewhere ------------------------------------------------------------------------------------
    def _load_generator(self, path: str) -> None:
        from .gan import load_init_weights

        gen = self.model.decoder
        if not path:
            raise ConfigError("generator is empty: set it to the target-domain StyleGAN2 checkpoint "
                              "(vidanime train-gan output, or a rosinality .pt); 'random' for tests only")
        if path == "random":
            logger.warning("generator: RANDOM StyleGAN2 weights (generator: random) — for tests and demos only")
            latent_avg = None
        else:
            from ..checkpoint import check_state_dict

            w = load_init_weights(path, self.config.model.generator)
            check_state_dict(gen, w["g_ema"], source=f"generator {path}")
            if w["d"] is not None:
                check_state_dict(self.D2, w["d"], source=f"generator {path} (discriminator)")
                logger.info("D2 initialised from the discriminator in %s", path)
            latent_avg = w["latent_avg"]
            logger.info("generator loaded from %s", path)
        if latent_avg is None:
            with torch.no_grad():
                z = torch.randn(4096, gen.style_dim, generator=torch.Generator().manual_seed(12345))
                latent_avg = gen.style(z).mean(0, keepdim=True)
        self.model.set_latent_avg(latent_avg)
        gen.requires_grad_(False)

    def _load_init(self, path: str) -> None:
        """Start the encoders (and D1/D2, when the file carries them) from a StyleAnime checkpoint or registry name:
        a fine-tune that begins with untrained discriminators would first push the encoders by noise."""
        from ..checkpoint import check_state_dict
        from ..registry import load

        loaded = load(path, expect="styleanime")  # once: the encoders and the discriminators come from the same file
        path, init = str(loaded.path), loaded.model
        if init.config.label_set != self.config.model.label_set or init.n_latent != self.model.n_latent:
            raise ConfigError(f"init {path}: a {init.n_latent}-code / '{init.config.label_set}' model, the config "
                              f"asks for {self.model.n_latent} / '{self.config.model.label_set}'")
        check_state_dict(self.model.encoder, init.encoder.state_dict(), source=f"init {path} (encoders)")
        discs = discriminators_from_checkpoint(loaded.metadata, init, source=f"init {path}")
        same = lambda a, b: {k: v.shape for k, v in a.state_dict().items()} == {  # noqa: E731
            k: v.shape for k, v in b.state_dict().items()}
        if discs is not None and same(discs[0], self.D1) and same(discs[1], self.D2):
            self.D1.load_state_dict(discs[0].state_dict())
            self.D2.load_state_dict(discs[1].state_dict())
            logger.info("encoders, D1 and D2 initialised from %s", path)
        else:
            logger.info("encoders initialised from %s (no matching discriminators in it: D1/D2 start fresh)", path)

    def _build_warmup(self, wcfg: LatentWarmupConfig) -> LatentWarmup | None:
        """The latent-supervised warm-up (see :mod:`vidanime.train.warmup`), or None when it is off."""
        if not wcfg.enabled:
            return None
        name = wcfg.parser or self.config.target.parser
        if not name:
            raise ConfigError("warmup needs a face parser for the generator's renders: set warmup.parser (e.g. "
                              "parser-anime) or target.parser")
        from ..registry import load_model

        parser = load_model(name, device=self.device, format="vidanime.parser")
        logger.info("latent warm-up: %d steps alone, then weight %g beside Eq. 10; renders labelled by %s",
                    wcfg.iterations, wcfg.weight, name)
        return LatentWarmup(wcfg, self.model, parser).to(self.device)

    def _build_structure(self, ccfg: ConsistencyConfig) -> StructureLoss | None:
        """The structure term of the translation consistency, or None when it is off."""
        if ccfg.lambda_structure <= 0:
            return None
        name = ccfg.parser or self.config.warmup.parser or self.config.target.parser
        if not name:
            raise ConfigError("consistency.lambda_structure needs an output-domain parser: set consistency.parser "
                              "(e.g. parser-anime)")
        from ..registry import load_model

        parser = load_model(name, device=self.device, format="vidanime.parser")
        return StructureLoss(parser, self.config.model.label_set, self.device)

    # -- helpers ---------------------------------------------------------------------------------------------------
    def _autocast(self) -> Any:
        return autocast(self.device, self.use_amp)

    def _encoders_train(self) -> None:
        self.model.train_encoders(self.config.train.freeze_bn)

    def _encode_both(self, y: torch.Tensor, yp: torch.Tensor, x: torch.Tensor,
                     xp: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """W+ codes of both batches through the (possibly DDP-wrapped) encoders: latent_avg + [E_p; E_s]."""
        rp_y, rs_y, rp_x, rs_x = self.enc(self.model.parsing_input(yp), y, self.model.parsing_input(xp), x)
        la = self.model.latent_avg
        n_s = self.model.n_structure_codes
        return (torch.cat([rp_y + la[:n_s], rs_y + la[n_s:]], dim=1),
                torch.cat([rp_x + la[:n_s], rs_x + la[n_s:]], dim=1))

    def next_batches(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """This rank's (y, y_p, x, x_p) for the next step, on the device."""
        ti, tf = self.target_sampler.next()
        si, sf = self.source_sampler.next()
        y, yp = self.target.batch(ti, tf)
        x, xp = self.source.batch(si, sf)
        d = self.device
        return y.to(d), yp.to(d), x.to(d), xp.to(d)

    # -- one iteration ---------------------------------------------------------------------------------------------
    def forward(self, y: torch.Tensor, yp: torch.Tensor, x: torch.Tensor, xp: torch.Tensor) -> dict[str, torch.Tensor]:
        """Encode both batches and decode them with the frozen G (graph kept for the E step)."""
        with self._autocast():
            w_y, w_x = self._encode_both(y, yp, x, xp)
            return {"w_y": w_y, "w_x": w_x, "y_hat": self.model.decode(w_y), "x_hat": self.model.decode(w_x)}

    def d_loss(self, y: torch.Tensor, fwd: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        """D1 + D2 losses (Eq. 7, Eq. 9 without R1) on detached codes/images."""
        lam = self.config.loss
        zero = y.new_zeros((), dtype=torch.float32)
        l_d1, l_d2, m = zero, zero, {}
        with self._autocast():
            if lam.lambda_da > 0:  # D1 is a per-sample MLP: one pass over [target codes; source codes]
                w_y, w_x = fwd["w_y"].detach(), fwd["w_x"].detach()
                logits = self.d1(torch.cat([w_y, w_x])).float()
                l_d1 = da_loss_discriminator(logits[: len(w_y)], logits[len(w_y) :])
                m["d1_loss"] = l_d1.item()
            if lam.lambda_adv > 0:
                real, fake_y, fake_x = self.d2(y, fwd["y_hat"].detach(), fwd["x_hat"].detach())
                l_d2 = adv_loss_discriminator(real.float(), fake_y.float(), fake_x.float())
                m.update(d2_loss=l_d2.item(), d2_real_logit=real.float().mean().item())
        return l_d1 + l_d2, m

    def r1_loss(self, y: torch.Tensor) -> tuple[torch.Tensor, float]:
        """γ/2 · R1 · r1_every on real target images (float32)."""
        lam = self.config.loss
        y_r = y.detach().float().requires_grad_(True)
        r1 = r1_penalty(self.D2(y_r).float(), y_r)  # unwrapped: gradients are averaged by hand (see train_step)
        return lam.r1_gamma / 2 * r1 * lam.r1_every, r1.item()

    def e_loss(self, y: torch.Tensor, yp: torch.Tensor, fwd: Mapping[str, torch.Tensor], x: torch.Tensor | None = None,
               xp: torch.Tensor | None = None) -> tuple[torch.Tensor, dict[str, float]]:
        """Eq. 10 for the encoders (D1/D2 used without DDP: their weights are not updated here), plus the translation
        consistency on the source batch (x, xp) when ``consistency`` is on."""
        lam = self.config.loss
        with self._autocast():
            d1_src = self.D1(fwd["w_x"]) if lam.lambda_da > 0 else None
            d2_rec = self.D2(fwd["y_hat"]) if lam.lambda_adv > 0 else None
            d2_tr = self.D2(fwd["x_hat"]) if lam.lambda_adv > 0 else None
        total, parts = self.loss(y, fwd["y_hat"], yp, d1_src, d2_rec, d2_tr)
        out = {k: v.item() for k, v in parts.items()}
        c = self.config.consistency
        if c.enabled and x is not None and xp is not None:
            x_hat = fwd["x_hat"].float()
            if self.structure is not None:
                st = self.structure(x_hat, xp).mean()
                total = total + c.lambda_structure * st
                out["tc_structure"] = st.item()
            if c.lambda_colour > 0:
                col, _ = self.loss.color(x_hat, x, xp)
                total = total + c.lambda_colour * col
                out["tc_colour"] = col.item()
        out["loss"] = total.item()
        return total, out

    def warmup_loss(self) -> tuple[torch.Tensor, dict[str, float]]:
        """The warm-up term on a fresh synthetic batch: encode G(w) and its parsing, regress onto w."""
        if self.warmup is None:
            raise ConfigError("warmup_loss called with the warm-up off (warmup.iterations = warmup.weight = 0)")
        batch = self.warmup.sample()
        with self._autocast():
            rp, rs = self.model.encoder(self.model.parsing_input(batch.labels), batch.image)
            la = self.model.latent_avg
            n_s = self.model.n_structure_codes
            w_hat = torch.cat([rp + la[:n_s], rs + la[n_s:]], dim=1)
        return self.warmup.loss(w_hat.float(), batch)

    def warmup_step(self) -> dict[str, float]:
        """One encoder update on the warm-up loss alone (no discriminator step, no real images)."""
        self._encoders_train()
        loss, metrics = self.warmup_loss()
        self.e_optim.zero_grad(set_to_none=True)
        loss.backward()
        if self.dist.world > 1:
            _allreduce_grads(self.model.encoder, self.dist.world)
        self.e_optim.step()
        self.step += 1
        metrics["loss"] = loss.item()
        return metrics

    def train_step(self) -> dict[str, float]:
        """One D1/D2 update (+ lazy R1) and one encoder update; returns scalar metrics of this rank's batch.

        During the first ``warmup.iterations`` steps only the latent-supervised warm-up runs (:meth:`warmup_step`);
        after them the warm-up loss is added to Eq. 10 with weight ``warmup.weight``."""
        if self.warmup is not None and self.step < self.config.warmup.iterations:
            return self.warmup_step()
        lam = self.config.loss
        y, yp, x, xp = self.next_batches()
        self._encoders_train()
        self.D1.train()
        self.D2.train()
        fwd = self.forward(y, yp, x, xp)
        metrics: dict[str, float] = {}

        use_d = lam.lambda_da > 0 or lam.lambda_adv > 0
        if use_d:
            _requires_grad(self.D1, True)
            _requires_grad(self.D2, True)
            d_loss, m = self.d_loss(y, fwd)
            self.d1_optim.zero_grad(set_to_none=True)
            self.d2_optim.zero_grad(set_to_none=True)
            d_loss.backward()
            self.d1_optim.step()
            self.d2_optim.step()
            metrics.update(m)
            if lam.lambda_adv > 0 and lam.r1_gamma > 0 and self.step % lam.r1_every == 0:
                r1_loss, r1 = self.r1_loss(y)
                self.d2_optim.zero_grad(set_to_none=True)
                r1_loss.backward()
                if self.dist.world > 1:
                    _allreduce_grads(self.D2, self.dist.world)
                self.d2_optim.step()
                metrics["r1"] = r1
            _requires_grad(self.D1, False)
            _requires_grad(self.D2, False)

        e_loss, m = self.e_loss(y, yp, fwd, x, xp)
        if self.warmup is not None and self.config.warmup.weight > 0:
            wu, wm = self.warmup_loss()
            e_loss = e_loss + self.config.warmup.weight * wu
            m.update(wm)
            m["loss"] = e_loss.item()
        self.e_optim.zero_grad(set_to_none=True)
        e_loss.backward()
        self.e_optim.step()
        metrics.update(m)
        self.step += 1
        return metrics

    # -- samples ---------------------------------------------------------------------------------------------------
    @torch.no_grad()
    def sample_grid(self) -> torch.Tensor:
        """Rows of [target input | target parsing | reconstruction | source input | source parsing | translation]
        for the first ``n_samples`` items of each domain: (6·n, 3, S, S) in [-1, 1]."""
        n = self.config.train.n_samples
        nt, ns = min(n, len(self.target)), min(n, len(self.source))
        y, yp = self.target.batch(list(range(nt)))
        x, xp = self.source.batch(list(range(ns)))
        k = min(nt, ns)
        y, yp, x, xp = y[:k], yp[:k], x[:k], xp[:k]
        was = self.model.training
        self.model.eval()
        d = self.device
        y_hat = self.model.decode(self.model.encode(y.to(d), yp.to(d))).float().cpu()
        x_hat = self.model.decode(self.model.encode(x.to(d), xp.to(d))).float().cpu()
        self.model.train(was)
        ls = self.config.model.label_set

        def colour(lab: torch.Tensor) -> torch.Tensor:
            rgb = torch.from_numpy(np.stack([L.colorize(m.numpy(), ls) for m in lab]))
            return rgb.permute(0, 3, 1, 2).float().div(127.5).sub(1.0)

        cols = [y, colour(yp), y_hat, x, colour(xp), x_hat]
        return torch.stack(cols, dim=1).reshape(-1, *y.shape[1:])

    # -- state -----------------------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue bit-exactly (weights, optimizers, step, samplers, RNG states)."""

        def cpu(sd: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
            return {k: v.detach().cpu() for k, v in sd.items()}

        return {
            "state_dict": {"model": cpu(self.model.state_dict()), "d1": cpu(self.D1.state_dict()),
                           "d2": cpu(self.D2.state_dict())},
            "e_optim": self.e_optim.state_dict(),
            "d1_optim": self.d1_optim.state_dict(),
            "d2_optim": self.d2_optim.state_dict(),
            "train_step": self.step,  # not "step": RunDir.save_checkpoint takes that positionally
            "samplers": {"target": self.target_sampler.state_dict(), "source": self.source_sampler.state_dict()},
            "rng": {"torch_cpu": torch.get_rng_state(),
                    "torch_cuda": torch.cuda.get_rng_state(self.device) if self.device.type == "cuda" else None},
            "metrics_accum": self.meter.state_dict(),
            "world_size": self.dist.world,
        }

    def load_state_dict(self, ckpt: Mapping[str, Any], source: str = "checkpoint") -> None:
        """Restore a :meth:`state_dict` (a loaded training checkpoint)."""
        from ..checkpoint import check_state_dict

        sd = ckpt["state_dict"]
        missing = [k for k in ("model", "d1", "d2") if k not in sd]
        if missing:
            raise CheckpointError(f"{source}: training checkpoint lacks {', '.join(missing)} in its state_dict")
        check_state_dict(self.model, {k: v.to(self.device) for k, v in sd["model"].items()}, source=f"{source} (model)")
        check_state_dict(self.D1, sd["d1"], source=f"{source} (D1)")
        check_state_dict(self.D2, sd["d2"], source=f"{source} (D2)")
        try:
            self.e_optim.load_state_dict(ckpt["e_optim"])
            self.d1_optim.load_state_dict(ckpt["d1_optim"])
            self.d2_optim.load_state_dict(ckpt["d2_optim"])
        except (KeyError, ValueError) as exc:
            raise CheckpointError(f"{source}: optimizer state does not fit ({exc})") from None
        self.step = int(ckpt["train_step"])
        self.target_sampler.load_state_dict(ckpt["samplers"]["target"])
        self.source_sampler.load_state_dict(ckpt["samplers"]["source"])
        torch.set_rng_state(ckpt["rng"]["torch_cpu"])
        if self.device.type == "cuda" and ckpt["rng"].get("torch_cuda") is not None:
            torch.cuda.set_rng_state(ckpt["rng"]["torch_cuda"], self.device)
        self.meter.load_state_dict(ckpt.get("metrics_accum"))

    def discriminator_state(self) -> dict[str, Any]:
        """D1 and D2 as they stand, for the exported model (the per-clip fine-tune's L_base uses them, Eq. 10)."""
        return discriminator_record(self.D1.state_dict(), self.D2.state_dict(), self.config.loss.d1_layers,
                                    self.config.train.mbstd_group)

    def save(self, run: RunDir) -> tuple[Path, Path]:
        """Write the training checkpoint and the exported ``vidanime.styleanime`` model for the current step."""
        t = self.config.train
        resolved = config_to_dict(self.config)
        train_path = run.save_checkpoint(self.step, kind="train", format=TRAIN_FORMAT, config=resolved,
                                         keep=t.keep_checkpoints, **self.state_dict())
        model_path = save_styleanime(run.checkpoint_path(self.step, kind="styleanime"), self.model, step=self.step,
                                     train_config=resolved, discriminators=self.discriminator_state())
        if t.keep_checkpoints:
            run.prune_checkpoints("styleanime", t.keep_checkpoints)
        return train_path, model_path

    # -- the loop --------------------------------------------------------------------------------------------------
    def _stop_sync(self, out_of_time: bool) -> bool:
        """Under DDP all ranks stop at the same step: any rank out of time stops them all."""
        if self.dist.world == 1:
            return out_of_time
        import torch.distributed as dist

        flag = torch.tensor([float(out_of_time)], device=self.device if self.device.type == "cuda" else "cpu")
        dist.all_reduce(flag)
        return flag.item() > 0

    def train(self, run: RunDir | None = None, iterations: int | None = None,
              callback: Callable[[int, dict[str, float]], None] | None = None,
              budget: Budget | None = None) -> list[dict[str, Any]]:
        """Run until ``iterations`` (default ``config.train.iterations``) are done or the wall-clock ``budget`` (or
        ``train.time_limit_min``, whichever is shorter) is spent; returns the logged rows.

        Rank 0 writes metrics rows every ``log_every`` steps, sample grids every ``sample_every`` and checkpoints
        every ``checkpoint_every`` and at the end (also when the budget stops the run early).
        """
        t = self.config.train
        total = t.iterations if iterations is None else iterations
        main = self.dist.is_main
        budget = shorter_budget(budget, t.time_limit_min)
        hooks = []
        if main and run is not None:
            hooks = [Every(lambda s: run.save_image_grid(self.sample_grid(), s, nrow=6), steps=t.sample_every),
                     Every(lambda s: self.save(run), steps=t.checkpoint_every)]
        loop = TrainLoop(self.train_step, start=self.step, total=total, log_every=t.log_every,
                         log_fn=run.log_metrics if main and run is not None else None, hooks=hooks, budget=budget,
                         images_per_step=t.batch * self.dist.world, finite_keys=("loss",),
                         stop_sync=self._stop_sync if self.dist.world > 1 else None, desc="train styleanime",
                         progress=t.progress and main, device=self.device, on_step=callback, meter=self.meter)
        return loop.run().rows
