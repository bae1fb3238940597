"""StyleGAN2 training and fine-tuning: config dataclasses and the :class:`GANTrainer` loop.

The recipe is StyleGAN2's (config F, as in rosinality's ``train.py``): non-saturating logistic loss, lazy R1 on reals
every ``d_reg_every`` D steps, optional lazy path-length regularisation every ``g_reg_every`` G steps (``pl_weight`` 0
disables it), style mixing, Adam with lazy-regularisation-corrected lr/betas, and an EMA copy of G (half-life in
thousands of images, with StyleGAN2-ADA's ramp-up) that is the generator we export.  DiffAugment-style augmentation
of everything D sees is optional.

Every random draw of the loop (data order, flips, z, mixing index, augmentation, path-length directions) comes from one
``torch.Generator``; the models' noise injection uses torch's global RNG.  Both states, the optimizers, the EMA and
the step counter are in the training checkpoint, so a resumed run continues bit-exactly (on CPU; CUDA kernels are not
guaranteed deterministic).
"""
from __future__ import annotations

import copy
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import torch

from ..config import config_from_dict, config_to_dict
from ..data.images import IMAGE_EXTENSIONS, ImageFolderDataset
from ..errors import CheckpointError, ConfigError
from ..losses.gan import d_logistic_loss, g_nonsaturating_loss, path_length_penalty, r1_penalty
from ..models.ops import UPFIRDN2D_IMPLS, get_upfirdn2d_impl, set_upfirdn2d_impl
from ..models.stylegan2 import Discriminator, Generator, StyleGAN2Config, save_generator
from .augment import POLICIES, DiffAugment
from .harness import Budget, Every, RunningMean, TrainLoop, configure_device, threads, to_channels_last
from .run_dir import RunDir

logger = logging.getLogger(__name__)

TRAIN_FORMAT = "vidanime.stylegan2.train"
GENERATOR_FORMAT = "vidanime.stylegan2"

__all__ = [
    "TRAIN_FORMAT",
    "GENERATOR_FORMAT",
    "DataConfig",
    "AugmentConfig",
    "TrainConfig",
    "TrainGANConfig",
    "GANTrainer",
    "build_dataset",
    "load_init_weights",
]


# ------------------------------------------------------------------------------------------------------- configs


@dataclass
class DataConfig:
    """The image folder to train on (paths relative to the working directory)."""

    path: str = ""
    limit: int | None = None  # first N sorted files (None = all)
    files: list[str] | None = None  # explicit file list (relative to path) instead of searching
    extensions: list[str] = field(default_factory=lambda: list(IMAGE_EXTENSIONS))
    hflip: bool = True
    skip_bad: bool = False
    preload: bool = True  # decode all images once, keep uint8 copies in memory


@dataclass
class AugmentConfig:
    """Optional differentiable augmentation of real and fake images before D (DiffAugment)."""

    enabled: bool = False
    policy: list[str] = field(default_factory=lambda: list(POLICIES))
    translation_ratio: float = 0.125
    cutout_ratio: float = 0.5


@dataclass
class TrainConfig:
    """Optimisation, regularisation, EMA and bookkeeping intervals (in iterations)."""

    iterations: int = 10_000  # total iterations of the run (a resumed run continues up to this)
    batch: int = 8
    lr: float = 0.002
    betas: tuple[float, float] = (0.0, 0.99)
    r1_gamma: float = 10.0
    d_reg_every: int = 16
    g_reg_every: int = 4
    pl_weight: float = 0.0  # path-length weight; 0 disables it (StyleGAN2 config F uses 2)
    pl_decay: float = 0.01
    pl_batch_shrink: int = 2
    mixing: float = 0.9  # style-mixing probability
    ema_halflife_kimg: float = 10.0  # EMA half-life in thousands of images
    ema_rampup: float | None = 0.05  # half-life ≤ rampup × images seen so far (None: off)
    ema_decay: float | None = None  # fixed per-step EMA decay; overrides the half-life when set
    seed: int = 0
    device: str = "cpu"
    log_every: int = 50
    sample_every: int = 500
    checkpoint_every: int = 1000
    keep_checkpoints: int = 3  # newest training checkpoints kept (0 = all)
    n_samples: int = 16  # images in each sample grid (fixed z)
    progress: bool = True  # tqdm progress bar
    upfirdn2d: str = "fast"  # StyleGAN2 filter op used while training: "fast" or "reference" (same results)
    channels_last: bool | None = None  # D's convolutions in NHWC order (None: yes; harness.to_channels_last)
    threads: int | None = None  # torch CPU threads while training (None: torch's default)
    augment: AugmentConfig = field(default_factory=AugmentConfig)


@dataclass
class TrainGANConfig:
    """Everything ``vidanime train-gan`` needs; the resolved copy is saved with the run and in every checkpoint."""

    name: str = "stylegan2"
    model: StyleGAN2Config = field(default_factory=StyleGAN2Config)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    init_from: str | None = None  # rosinality .pt or our checkpoint to fine-tune from
    run_dir: str = "runs"  # root folder of the numbered run folders

    def __post_init__(self) -> None:
        t = self.train
        for key in ("iterations", "batch", "d_reg_every", "g_reg_every", "log_every", "sample_every",
                    "checkpoint_every", "n_samples", "pl_batch_shrink"):
            value = getattr(t, key)
            minimum = 0 if key == "iterations" else 1
            if value < minimum:
                raise ConfigError(f"train.{key} = {value}: expected an integer >= {minimum}")
        if t.lr <= 0:
            raise ConfigError(f"train.lr = {t.lr}: expected a positive learning rate")
        if not all(0 <= b < 1 for b in t.betas):
            raise ConfigError(f"train.betas = {list(t.betas)}: expected two numbers in [0, 1)")
        if t.r1_gamma < 0 or t.pl_weight < 0:
            raise ConfigError(f"train.r1_gamma / pl_weight = {t.r1_gamma} / {t.pl_weight}: expected >= 0")
        if not 0 <= t.mixing <= 1:
            raise ConfigError(f"train.mixing = {t.mixing}: expected a probability in [0, 1]")
        if t.ema_decay is not None and not 0 <= t.ema_decay < 1:
            raise ConfigError(f"train.ema_decay = {t.ema_decay}: expected a number in [0, 1) or null")
        if t.ema_halflife_kimg <= 0:
            raise ConfigError(f"train.ema_halflife_kimg = {t.ema_halflife_kimg}: expected a positive number")
        bad = [p for p in t.augment.policy if p not in POLICIES]
        if bad:
            raise ConfigError(f"train.augment.policy: unknown op '{bad[0]}' (expected some of: {', '.join(POLICIES)})")
        if t.threads is not None and t.threads < 1:
            raise ConfigError(f"train.threads = {t.threads}: expected a positive integer or null")
        if t.upfirdn2d not in UPFIRDN2D_IMPLS:
            raise ConfigError(f"train.upfirdn2d = '{t.upfirdn2d}': expected one of {list(UPFIRDN2D_IMPLS)}")
        if not (t.device == "cpu" or t.device == "cuda" or t.device.startswith("cuda:")):
            raise ConfigError(f"train.device = '{t.device}': expected 'cpu', 'cuda' or 'cuda:N'")


def build_dataset(data: DataConfig, size: int) -> ImageFolderDataset:
    """The training images of ``data`` at ``size`` px."""
    if not data.path:
        raise ConfigError("data.path is empty: set it to a folder of training images (e.g. --set data.path=DIR)")
    return ImageFolderDataset(data.path, size, files=data.files, limit=data.limit, extensions=data.extensions,
                              hflip=data.hflip, skip_bad=data.skip_bad, preload=data.preload)


def load_init_weights(path: str | Path, model: StyleGAN2Config) -> dict[str, Any]:
    """Weights to fine-tune from: our generator/training checkpoint or a rosinality ``.pt``.

    Returns a dict with ``g`` (G state dict), ``g_ema``, ``d`` (or None) and ``latent_avg`` (or None).  The
    architecture stored in the file must equal ``model``; otherwise a :class:`ConfigError` names the differing keys.
    """
    from ..checkpoint import read_torch_file

    # once: our formats and the rosinality layout (which pickles its options) are told apart by their keys
    raw = read_torch_file(path, allow_namespaces=True)
    if isinstance(raw, dict) and "format" in raw:
        fmt = raw["format"]
        if fmt not in (GENERATOR_FORMAT, TRAIN_FORMAT):
            raise CheckpointError(f"init_from {path}: a '{fmt}' checkpoint, "
                                  f"expected '{GENERATOR_FORMAT}' or '{TRAIN_FORMAT}'")
        stored = raw.get("config") or {}
        stored_model = stored.get("model", {}) if fmt == TRAIN_FORMAT else stored
        _check_same_model(config_from_dict(stored_model, StyleGAN2Config, source=f"{path} config"), model, str(path))
        if fmt == GENERATOR_FORMAT:
            sd = raw["state_dict"]
            return {"g": sd, "g_ema": sd, "d": None, "latent_avg": raw.get("latent_avg")}
        sd = raw["state_dict"]
        return {"g": sd["g"], "g_ema": sd["g_ema"], "d": sd["d"], "latent_avg": None}
    from ..importers.rosinality import rosinality_from_data  # imported only for rosinality files

    imported = rosinality_from_data(raw, str(path))
    _check_same_model(imported.config, model, str(path))
    g_ema = imported.generator.state_dict()
    g = getattr(imported, "g", None)
    disc = getattr(imported, "discriminator", None)
    return {"g": g.state_dict() if g is not None else g_ema, "g_ema": g_ema,
            "d": disc.state_dict() if disc is not None else None, "latent_avg": getattr(imported, "latent_avg", None)}


def _check_same_model(stored: StyleGAN2Config, wanted: StyleGAN2Config, source: str) -> None:
    a, b = config_to_dict(stored), config_to_dict(wanted)
    diff = [f"{k}: {a[k]!r} in the file vs {b[k]!r} in the config" for k in b if a.get(k) != b[k]]
    if diff:
        raise ConfigError(f"{source}: model architecture differs from the config's model section ({'; '.join(diff)})")


# ------------------------------------------------------------------------------------------------------- trainer


def _requires_grad(module: torch.nn.Module, flag: bool) -> None:
    for p in module.parameters():
        p.requires_grad_(flag)


def _adam(params, lr: float, betas: tuple[float, float], reg_every: int | None) -> torch.optim.Adam:
    """Adam with StyleGAN2's lazy-regularisation correction of lr and betas (ratio = k / (k + 1))."""
    ratio = reg_every / (reg_every + 1) if reg_every else 1.0
    return torch.optim.Adam(params, lr=lr * ratio, betas=(betas[0] ** ratio, betas[1] ** ratio))


class GANTrainer:
    """StyleGAN2 trainer holding G, D, G_ema, optimizers, RNG and step; ``train()`` runs the loop into a run folder.

    Args:
        config: the resolved :class:`TrainGANConfig`.
        dataset: training images; anything with ``sample_batch(B, generator) -> (B, 3, S, S) in [-1, 1]``.
    """

    def __init__(self, config: TrainGANConfig, dataset: ImageFolderDataset):
        self.config = config
        t = config.train
        self.device = torch.device(t.device)
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise ConfigError(f"train.device = '{t.device}' but CUDA is not available; use --device cpu")
        configure_device(self.device)
        if self.device.type == "cuda" and getattr(dataset, "_cache", None) is not None:
            dataset.to(self.device)  # the preloaded images live on the GPU: batches are gathered there
        self.dataset = dataset
        torch.manual_seed(t.seed)  # model initialisation and noise injection use the global RNG
        self.G = Generator(config.model).to(self.device)
        self.D = Discriminator(config.model).to(self.device)
        to_channels_last(t.channels_last, self.D)  # not G: its grouped convs need NCHW
        self.G_ema = copy.deepcopy(self.G).eval()
        _requires_grad(self.G_ema, False)
        self.use_pl = t.pl_weight > 0
        self.g_optim = _adam(self.G.parameters(), t.lr, t.betas, t.g_reg_every if self.use_pl else None)
        self.d_optim = _adam(self.D.parameters(), t.lr, t.betas, t.d_reg_every if t.r1_gamma > 0 else None)
        self.augment = DiffAugment(t.augment.policy, t.augment.translation_ratio, t.augment.cutout_ratio) \
            if t.augment.enabled else None
        self.rng = torch.Generator().manual_seed(t.seed)  # data, z, mixing, augment, path-length directions
        self.step = 0  # completed iterations
        self.mean_path_length = torch.zeros(())
        self.sample_z = torch.randn(t.n_samples, config.model.style_dim,
                                    generator=torch.Generator().manual_seed(t.seed + 1))
        self.meter = RunningMean()  # metric sums since the last log row (checkpointed: resumed rows are exact)
        self._real_stats: tuple[torch.Tensor, torch.Tensor] | None = None

    # -- weights from elsewhere ------------------------------------------------------------------------------------
    def init_from(self, path: str | Path) -> None:
        """Start from the weights in ``path`` (fine-tuning); optimizers, step and RNG stay fresh."""
        from ..checkpoint import check_state_dict

        w = load_init_weights(path, self.config.model)
        check_state_dict(self.G, w["g"], source=f"init_from {path} (G)")
        check_state_dict(self.G_ema, w["g_ema"], source=f"init_from {path} (G_ema)")
        if w["d"] is not None:
            check_state_dict(self.D, w["d"], source=f"init_from {path} (D)")
        else:
            logger.info("init_from %s has no discriminator: D starts from random weights", path)
        logger.info("initialised from %s", path)

    # -- random draws ----------------------------------------------------------------------------------------------
    def _z(self, batch: int) -> list[torch.Tensor]:
        """One z (B, style_dim), or two for style mixing with probability ``mixing``."""
        dim = self.config.model.style_dim
        mix = self.config.train.mixing > 0 and float(torch.rand((), generator=self.rng)) < self.config.train.mixing
        zs = [torch.randn(batch, dim, generator=self.rng) for _ in range(2 if mix else 1)]
        return [z.to(self.device) for z in zs]

    def _generate(self, batch: int, return_latents: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        zs = self._z(batch)
        inject = int(torch.randint(1, self.G.n_latent, (), generator=self.rng)) if len(zs) == 2 else None
        return self.G(zs, return_latents=return_latents, inject_index=inject, randomize_noise=True)

    def _aug(self, x: torch.Tensor) -> torch.Tensor:
        return self.augment(x, generator=self.rng) if self.augment is not None else x

    # -- one iteration ---------------------------------------------------------------------------------------------
    def train_step(self) -> dict[str, float]:
        """One D update (+ lazy R1), one G update (+ lazy path length), one EMA update; returns scalar metrics."""
        t = self.config.train
        G, D = self.G, self.D
        metrics: dict[str, float] = {}
        real = self.dataset.sample_batch(t.batch, generator=self.rng).to(self.device)

        # Discriminator.
        _requires_grad(G, False)
        _requires_grad(D, True)
        with torch.no_grad():
            fake, _ = self._generate(t.batch)
        fake_logits = D(self._aug(fake))
        real_logits = D(self._aug(real))
        d_loss = d_logistic_loss(real_logits, fake_logits)
        self.d_optim.zero_grad(set_to_none=True)
        d_loss.backward()
        self.d_optim.step()
        metrics.update(d_loss=d_loss.item(), real_logit=real_logits.mean().item(), fake_logit=fake_logits.mean().item())

        if t.r1_gamma > 0 and self.step % t.d_reg_every == 0:
            real_r = real.detach().requires_grad_(True)
            logits = D(self._aug(real_r))
            r1 = r1_penalty(logits, real_r)
            self.d_optim.zero_grad(set_to_none=True)
            (t.r1_gamma / 2 * r1 * t.d_reg_every).backward()
            self.d_optim.step()
            metrics["r1"] = r1.item()

        # Generator.
        _requires_grad(G, True)
        _requires_grad(D, False)
        fake, _ = self._generate(t.batch)
        g_loss = g_nonsaturating_loss(D(self._aug(fake)))
        self.g_optim.zero_grad(set_to_none=True)
        g_loss.backward()
        self.g_optim.step()
        metrics["g_loss"] = g_loss.item()

        if self.use_pl and self.step % t.g_reg_every == 0:
            pl_batch = max(1, t.batch // t.pl_batch_shrink)
            fake, latents = self._generate(pl_batch, return_latents=True)
            pl, self.mean_path_length, lengths = path_length_penalty(
                fake, latents, self.mean_path_length.to(self.device), t.pl_decay, generator=self.rng)
            self.g_optim.zero_grad(set_to_none=True)
            (t.pl_weight * t.g_reg_every * pl).backward()
            self.g_optim.step()
            self.mean_path_length = self.mean_path_length.cpu()
            metrics.update(pl_penalty=pl.item(), path_length=lengths.mean().item())

        self.step += 1
        metrics["ema_beta"] = self._update_ema()
        return metrics

    def ema_beta(self) -> float:
        """Per-step EMA decay: 0.5 ** (batch / half-life in images), half-life ramped up early (StyleGAN2-ADA)."""
        t = self.config.train
        if t.ema_decay is not None:
            return t.ema_decay
        ema_nimg = t.ema_halflife_kimg * 1000
        if t.ema_rampup is not None:
            ema_nimg = min(ema_nimg, self.step * t.batch * t.ema_rampup)
        return 0.5 ** (t.batch / max(ema_nimg, 1e-8))

    @torch.no_grad()
    def _update_ema(self) -> float:
        beta = self.ema_beta()
        for p_ema, p in zip(self.G_ema.parameters(), self.G.parameters()):
            p_ema.copy_(p.detach().lerp(p_ema, beta))
        for b_ema, b in zip(self.G_ema.buffers(), self.G.buffers()):
            b_ema.copy_(b)
        return beta

    # -- samples and statistics ------------------------------------------------------------------------------------
    @torch.no_grad()
    def samples(self, n: int | None = None) -> torch.Tensor:
        """G_ema images (n, 3, S, S) in ~[-1, 1] for the fixed sample z, with fixed noise (no RNG is consumed)."""
        z = self.sample_z[: n or len(self.sample_z)].to(self.device)
        img, _ = self.G_ema([z], randomize_noise=False)
        return img.cpu()

    @torch.no_grad()
    def latent_avg(self, n: int = 4096) -> torch.Tensor:
        """Mean mapped w of G_ema (1, style_dim), from a fixed seed so the training RNG is untouched."""
        z = torch.randn(n, self.config.model.style_dim, generator=torch.Generator().manual_seed(12345))
        return self.G_ema.style(z.to(self.device)).mean(0, keepdim=True).cpu()

    def real_stats(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-channel mean and std of the training images (up to 512 of them), computed once."""
        if self._real_stats is None:
            n = min(len(self.dataset), 512)
            x = torch.stack([ImageFolderDataset.to_float(self.dataset.get_uint8(i)) for i in range(n)])
            self._real_stats = (x.mean(dim=(0, 2, 3)), x.std(dim=(0, 2, 3)))
        return self._real_stats

    def sample_stats(self) -> dict[str, float]:
        """Quality proxies of the fixed-z G_ema samples: colour-statistics distance to the data, pixel std,
        diversity."""
        x = self.samples()
        mean_r, std_r = self.real_stats()
        mean_f, std_f = x.mean(dim=(0, 2, 3)), x.std(dim=(0, 2, 3))
        dist = torch.cat([mean_f - mean_r, std_f - std_r]).norm().item()
        return {
            "color_stat_dist": dist,
            "sample_pixel_std": x.flatten(1).std(dim=1).mean().item(),
            "sample_diversity": (x - x.mean(0, keepdim=True)).pow(2).mean().sqrt().item(),
        }

    # -- state -----------------------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue bit-exactly: weights, optimizers, step, RNG states (as tensors)."""
        state = {
            "g": self.G.state_dict(),
            "d": self.D.state_dict(),
            "g_ema": self.G_ema.state_dict(),
        }
        extras = {
            "g_optim": self.g_optim.state_dict(),
            "d_optim": self.d_optim.state_dict(),
            "step": self.step,
            "mean_path_length": self.mean_path_length.clone(),
            "rng": {
                "train": self.rng.get_state(),
                "torch_cpu": torch.get_rng_state(),
                "torch_cuda": torch.cuda.get_rng_state(self.device) if self.device.type == "cuda" else None,
            },
            "metrics_accum": self.meter.state_dict(),
        }
        return {"state_dict": state, **extras}

    def load_state_dict(self, ckpt: Mapping[str, Any], source: str = "checkpoint") -> None:
        """Restore a :meth:`state_dict` (as loaded from a training checkpoint)."""
        from ..checkpoint import check_state_dict

        sd = ckpt["state_dict"]
        missing = [k for k in ("g", "d", "g_ema") if k not in sd]
        if missing:
            raise CheckpointError(f"{source}: training checkpoint lacks {', '.join(missing)} in its state_dict")
        check_state_dict(self.G, sd["g"], source=f"{source} (G)")
        check_state_dict(self.D, sd["d"], source=f"{source} (D)")
        check_state_dict(self.G_ema, sd["g_ema"], source=f"{source} (G_ema)")
        try:
            self.g_optim.load_state_dict(ckpt["g_optim"])
            self.d_optim.load_state_dict(ckpt["d_optim"])
        except (KeyError, ValueError) as exc:
            raise CheckpointError(f"{source}: optimizer state does not fit ({exc})") from None
        self.step = int(ckpt["step"])
        self.mean_path_length = torch.as_tensor(ckpt.get("mean_path_length", 0.0), dtype=torch.float32).cpu()
        rng = ckpt["rng"]
        self.rng.set_state(rng["train"])
        torch.set_rng_state(rng["torch_cpu"])
        if self.device.type == "cuda" and rng.get("torch_cuda") is not None:
            torch.cuda.set_rng_state(rng["torch_cuda"], self.device)
        self.meter.load_state_dict(ckpt.get("metrics_accum"))

    def save(self, run: RunDir) -> tuple[Path, Path]:
        """Write the training checkpoint and the exported G_ema generator checkpoint for the current step."""
        t = self.config.train
        resolved = config_to_dict(self.config)
        state = self.state_dict()
        train_path = run.save_checkpoint(self.step, kind="train", format=TRAIN_FORMAT, config=resolved,
                                         keep=t.keep_checkpoints, **state)
        gen_path = run.checkpoint_path(self.step, kind="generator")
        save_generator(gen_path, self.G_ema, latent_avg=self.latent_avg(), step=self.step, train_config=resolved)
        if t.keep_checkpoints:
            run.prune_checkpoints("generator", t.keep_checkpoints)
        return train_path, gen_path

    # -- the loop --------------------------------------------------------------------------------------------------
    def _row_extras(self, step: int) -> dict[str, Any]:
        return {"kimg": round(step * self.config.train.batch / 1000, 4), **self.sample_stats()}

    def train(
        self,
        run: RunDir | None = None,
        iterations: int | None = None,
        callback: Callable[[int, dict[str, float]], None] | None = None,
        budget: Budget | None = None,
    ) -> list[dict[str, Any]]:
        """Run until ``iterations`` (default ``config.train.iterations``) are completed or ``budget`` is spent;
        returns the logged rows.

        With ``run``: metrics rows every ``log_every`` steps, sample grids every ``sample_every``, checkpoints every
        ``checkpoint_every`` and at the end (also when the budget stops the run).
        """
        t = self.config.train
        total = t.iterations if iterations is None else iterations
        if run is not None and self.step == 0:
            run.save_image_grid(self.dataset.sample_batch(min(t.n_samples, 64), torch.Generator().manual_seed(0)),
                                step=0, prefix="reals")
        hooks = []
        if run is not None:
            hooks = [Every(lambda s: run.save_image_grid(self.samples(), s), steps=t.sample_every),
                     Every(lambda s: self.save(run), steps=t.checkpoint_every)]
        loop = TrainLoop(self.train_step, start=self.step, total=total, log_every=t.log_every, row_fn=self._row_extras,
                         log_fn=run.log_metrics if run is not None else None, hooks=hooks, budget=budget,
                         images_per_step=t.batch, finite_keys=("g_loss", "d_loss"), desc="train-gan",
                         progress=t.progress, device=self.device, on_step=callback, meter=self.meter,
                         log_at_end=False)
        self.G.train()
        self.D.train()
        previous_impl = get_upfirdn2d_impl()
        set_upfirdn2d_impl(t.upfirdn2d)  # process-wide choices, restored when the loop ends
        try:
            with threads(t.threads):
                return loop.run().rows
        finally:
            set_upfirdn2d_impl(previous_impl)
