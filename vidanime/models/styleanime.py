"""StyleAnime (paper §4): disentangled encoders E_p (parsing → structure codes) and E_s (image → appearance codes)
driving a frozen StyleGAN2 generator, with optional FaceBank aggregation (§4.3) at test time.

Submodule names follow the official code, so its checkpoints load with a plain ``load_state_dict``:
``encoder.encoder_1.*`` = E_p, ``encoder.encoder_2.*`` = E_s, ``decoder.*`` = the rosinality-layout generator, plus our
``latent_avg`` buffer (n_latent, style_dim) (the official file keeps it beside the state dict).

At 256 px: w = latent_avg + [E_p(one_hot(parsing)) (10 codes) ; E_s(image) (4 codes)], a (B, 14, 512) W+ code; the
generator always uses its fixed noise buffers (re-randomised noise flickers in video).  Images are (B, 3, S, S) RGB
in [-1, 1]; parsing maps are (B, S, S) integer labels in the model's ``label_set`` or their (B, C, S, S) one-hot.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Mapping

import torch
from torch import nn

from .. import labels as label_sets
from ..errors import CheckpointError, ConfigError, VidanimeError
from .encoders import EncoderConfig, GradualStyleEncoder, split_levels
from .facebank import FaceBank
from .stylegan2 import Generator, StyleGAN2Config

logger = logging.getLogger(__name__)

FORMAT = "vidanime.styleanime"

__all__ = ["FORMAT", "StyleAnimeConfig", "DisentangledEncoders", "StyleAnime", "styleanime_from_checkpoint",
           "save_styleanime"]


@dataclass
class StyleAnimeConfig:
    """StyleAnime architecture: generator, encoder backbone, parsing label set and the structure/appearance split.

    ``n_structure_codes`` (E_p's share of the W+ codes, the rest come from E_s) and ``n_coarse_codes`` (E_p codes read
    from the coarse FPN level) default to the paper's 10 and 3 of 14, scaled to the generator's n_latent.
    ``image_size`` is the encoders' input side (defaults to the generator size).  ``direction``: the translation the
    encoders were trained for (``"p2a"`` portrait → anime, ``"a2p"`` anime → portrait); ``None`` = not recorded
    (checkpoints from before the field), accepted for either direction.
    """

    generator: StyleGAN2Config = field(default_factory=StyleGAN2Config)
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    label_set: Literal["bisenet", "danbooru", "celebamask"] = "bisenet"
    image_size: int | None = None
    n_structure_codes: int | None = None
    n_coarse_codes: int | None = None
    direction: Literal["p2a", "a2p"] | None = None

    def __post_init__(self) -> None:
        if isinstance(self.generator, Mapping):
            from ..config import config_from_dict

            self.generator = config_from_dict(self.generator, StyleGAN2Config, "generator")
        if isinstance(self.encoder, Mapping):
            from ..config import config_from_dict

            self.encoder = config_from_dict(self.encoder, EncoderConfig, "encoder")
        label_sets.num_classes(self.label_set)  # raises on an unknown set
        if self.image_size is None:
            self.image_size = self.generator.size
        levels = split_levels(self.generator.n_latent, self.n_structure_codes, self.n_coarse_codes)
        self.n_structure_codes = sum(lv != "fine" for lv in levels)
        self.n_coarse_codes = sum(lv == "coarse" for lv in levels)
        if self.image_size < 16 or self.image_size & (self.image_size - 1):
            raise ConfigError(f"image_size={self.image_size}: expected a power of two >= 16")

    @property
    def n_latent(self) -> int:
        return self.generator.n_latent

    @property
    def levels(self) -> list[str]:
        """FPN level of each W+ code (coarse/medium for E_p, fine for E_s)."""
        return split_levels(self.n_latent, self.n_structure_codes, self.n_coarse_codes)

    @property
    def n_classes(self) -> int:
        return label_sets.num_classes(self.label_set)


class DisentangledEncoders(nn.Module):
    """E_p (``encoder_1``, one-hot parsing → structure codes) and E_s (``encoder_2``, RGB → appearance codes)."""

    def __init__(self, config: StyleAnimeConfig):
        super().__init__()
        levels = config.levels
        n_s = config.n_structure_codes
        dim, size = config.generator.style_dim, config.image_size
        self.encoder_1 = GradualStyleEncoder(config.n_classes, levels[:n_s], config.encoder, dim, size)
        self.encoder_2 = GradualStyleEncoder(3, levels[n_s:], config.encoder, dim, size)

    def forward(self, parsing_onehot: torch.Tensor, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, C, S, S) one-hot, (B, 3, S, S) image → residual codes (B, n_s, D), (B, n_latent − n_s, D)."""
        return self.encoder_1(parsing_onehot), self.encoder_2(image)


class StyleAnime(nn.Module):
    """E_p + E_s + frozen generator G (+ latent_avg); optional ``facebank`` (a :class:`FaceBank`, not a submodule)."""

    def __init__(self, config: StyleAnimeConfig | None = None, facebank: FaceBank | None = None):
        super().__init__()
        config = config or StyleAnimeConfig()
        self.config = config
        self.encoder = DisentangledEncoders(config)
        self.decoder = Generator(config.generator)
        self.decoder.requires_grad_(False)
        self.register_buffer("latent_avg", torch.zeros(config.n_latent, config.generator.style_dim))
        self.facebank = facebank
        # Test-time defaults measured for this model and saved with it (``inference`` in the checkpoint): FaceBank
        # ``alpha`` and ``k`` used when a caller passes alpha=None, ``anchor_layers`` (W+ layers that take the FaceBank
        # anchor alone whenever the bank is used, whatever alpha) and ``refine`` steps for still images.
        self.inference: dict[str, Any] = {}
        # The training's discriminators D1/D2 as saved with the checkpoint (``discriminators``: state dicts, not
        # submodules), for the per-clip fine-tune's L_base and the refinement's anime terms; None when absent.
        self.discriminator_state: dict[str, Any] | None = None

    # ---- properties ----------------------------------------------------------------------------------------------
    @property
    def n_latent(self) -> int:
        return self.config.n_latent

    @property
    def n_structure_codes(self) -> int:
        return int(self.config.n_structure_codes)

    @property
    def image_size(self) -> int:
        return int(self.config.image_size)

    def train(self, mode: bool = True) -> "StyleAnime":
        """Train mode for the encoders only; the frozen generator stays in eval mode."""
        super().train(mode)
        self.decoder.eval()
        return self

    def train_encoders(self, freeze_bn: bool = False) -> "StyleAnime":
        """Train mode for the encoders (as :meth:`train`); with ``freeze_bn`` their BatchNorm layers stay in eval mode,
        so the running statistics are kept and small or correlated batches (a clip's frames) do not shift them."""
        self.train()
        if freeze_bn:
            for m in self.encoder.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    m.eval()
        return self

    def to(self, *args: Any, **kwargs: Any) -> "StyleAnime":
        out = super().to(*args, **kwargs)
        if self.facebank is not None:
            self.facebank.to(self.latent_avg.device)
        return out

    def set_latent_avg(self, latent_avg: torch.Tensor) -> None:
        """Set the average code from (D,), (1, D), (n_latent, D) or (1, n_latent, D) (a W code is repeated)."""
        d, n = self.config.generator.style_dim, self.n_latent
        la = torch.as_tensor(latent_avg).detach().float()
        if la.shape[-1:] != (d,) or la.ndim > 3 or (la.ndim >= 2 and la.reshape(-1, d).shape[0] not in (1, n)):
            raise CheckpointError(f"latent_avg of shape {tuple(la.shape)}: expected ({d},), (1, {d}) or ({n}, {d})")
        self.latent_avg.copy_(la.reshape(-1, d).expand(n, d))

    # ---- input checks --------------------------------------------------------------------------------------------
    def _check_image(self, image: torch.Tensor, what: str = "image") -> torch.Tensor:
        s = self.image_size
        if not isinstance(image, torch.Tensor) or not image.is_floating_point():
            raise VidanimeError(f"{what} must be a float tensor (B, 3, {s}, {s}) in [-1, 1]")
        if image.ndim == 3:
            image = image[None]
        if image.ndim != 4 or image.shape[1] != 3:
            raise VidanimeError(
                f"{what} has shape {tuple(image.shape)}: expected an RGB batch (B, 3, {s}, {s}) (3 channels)"
            )
        if tuple(image.shape[-2:]) != (s, s):
            raise VidanimeError(
                f"{what} size {image.shape[-1]}x{image.shape[-2]} does not match the model: expected {s}x{s}"
            )
        return image

    def parsing_input(self, parsing: torch.Tensor) -> torch.Tensor:
        """Integer labels (B, S, S) in ``config.label_set`` or one-hot (B, C, S, S) → float one-hot (B, C, S, S)."""
        s, c, name = self.image_size, self.config.n_classes, self.config.label_set
        if not isinstance(parsing, torch.Tensor):
            raise VidanimeError(f"parsing must be a tensor of labels (B, {s}, {s}) or one-hot (B, {c}, {s}, {s})")
        if parsing.is_floating_point():
            if parsing.ndim != 4 or parsing.shape[1] != c:
                raise VidanimeError(
                    f"one-hot parsing has shape {tuple(parsing.shape)}: expected (B, {c}, {s}, {s}) "
                    f"({c} classes of label set '{name}')"
                )
            onehot = parsing
        else:
            onehot = label_sets.one_hot(parsing, name)
        if tuple(onehot.shape[-2:]) != (s, s):
            raise VidanimeError(
                f"parsing size {onehot.shape[-1]}x{onehot.shape[-2]} does not match the model: expected {s}x{s}"
            )
        return onehot.to(self.latent_avg)

    # ---- encode / decode -----------------------------------------------------------------------------------------
    def encode_structure(self, parsing: torch.Tensor) -> torch.Tensor:
        """E_p: parsing → structure codes (B, n_structure, D), latent_avg included (W+ codes 0…n_s−1)."""
        n_s = self.n_structure_codes
        return self.encoder.encoder_1(self.parsing_input(parsing)) + self.latent_avg[:n_s]

    def encode_appearance(self, image: torch.Tensor) -> torch.Tensor:
        """E_s: image (B, 3, S, S) in [-1, 1] → appearance codes (B, n_latent − n_s, D), latent_avg included."""
        image = self._check_image(image).to(self.latent_avg)
        return self.encoder.encoder_2(image) + self.latent_avg[self.n_structure_codes :]

    def encode(self, image: torch.Tensor, parsing: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) image in [-1, 1] + its parsing → W+ code w (B, n_latent, D) (14×512 at 256 px)."""
        structure = self.encode_structure(parsing)
        appearance = self.encode_appearance(image)
        if appearance.shape[0] != structure.shape[0]:
            if appearance.shape[0] != 1:
                raise VidanimeError(
                    f"{appearance.shape[0]} images for {structure.shape[0]} parsing maps: "
                    "expected the same batch size, or 1 image"
                )
            appearance = appearance.expand(structure.shape[0], -1, -1)
        return torch.cat([structure, appearance], dim=1)

    def decode(self, w: torch.Tensor) -> torch.Tensor:
        """W+ (B, n_latent, D) → image (B, 3, size, size) in about [-1, 1], with the generator's fixed noise buffers."""
        d = self.config.generator.style_dim
        if w.ndim != 3 or tuple(w.shape[1:]) != (self.n_latent, d):
            raise VidanimeError(f"latent codes have shape {tuple(w.shape)}: expected (B, {self.n_latent}, {d})")
        return self.decoder.synthesis(w, noise=None, randomize_noise=False)

    def forward(self, image: torch.Tensor, parsing: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Training pass without FaceBank: (image, parsing) → (decoded image, w)."""
        w = self.encode(image, parsing)
        return self.decode(w), w

    def aggregate(
        self, w: torch.Tensor, alpha: float | None, k: int | None = None, facebank: FaceBank | None = None
    ) -> torch.Tensor:
        """FaceBank Eq. 14 on W+ codes; ``alpha`` None = the model's saved default (``inference["alpha"]``), none saved
        or 1 returns w (no bank needed); ``k`` None = the saved ``inference["k"]``, else 10.  Whenever the bank is
        used, the layers of the model's saved ``inference["anchor_layers"]`` take the anchor alone (see
        :meth:`FaceBank.aggregate`)."""
        if alpha is None and self.inference.get("alpha") is not None:
            alpha = float(self.inference["alpha"])
        k = int(self.inference.get("k", 10)) if k is None else int(k)  # the bank's knn checks 1 <= k <= its size
        if alpha is not None and not 0.0 <= float(alpha) <= 1.0:
            raise VidanimeError(f"alpha={alpha}: expected a number in [0, 1]")
        if alpha is None or float(alpha) == 1.0:
            return w
        bank = facebank if facebank is not None else self.facebank
        if bank is None:
            raise VidanimeError(f"alpha={alpha} needs a FaceBank: load one (--facebank BANK) or use alpha 1")
        if bank.config.style_dim != w.shape[-1] or (bank.config.space == "w+" and bank.config.n_latent != w.shape[1]):
            raise VidanimeError(
                f"FaceBank codes ({bank.config.space}, {bank.config.n_latent}x{bank.config.style_dim}) do not fit "
                f"this model's W+ ({w.shape[1]}x{w.shape[2]})"
            )
        return bank.aggregate(w, float(alpha), k=k, anchor_layers=self.inference.get("anchor_layers") or ())

    @torch.no_grad()
    def translate(
        self,
        image: torch.Tensor | None,
        parsing: torch.Tensor,
        alpha: float | None = None,
        reference: torch.Tensor | None = None,
        k: int | None = None,
        facebank: FaceBank | None = None,
        return_latents: bool = False,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Translate: structure from ``parsing``, appearance from ``reference`` if given (style mixing, e.g.
        manga-to-portrait) else from ``image``; FaceBank aggregation with ``alpha`` < 1.  → image (B, 3, S, S)."""
        source = reference if reference is not None else image
        if source is None:
            raise VidanimeError("translate needs an image or a reference image for the appearance codes")
        w = self.encode(source, parsing)
        w = self.aggregate(w, alpha, k=k, facebank=facebank)
        out = self.decode(w)
        return (out, w) if return_latents else out


# ---- checkpoints ---------------------------------------------------------------------------------------------------
def styleanime_from_checkpoint(ckpt: Mapping[str, Any]) -> StyleAnime:
    """Build a :class:`StyleAnime` from a loaded ``vidanime.styleanime`` checkpoint dict (config, state_dict,
    facebank)."""
    from ..checkpoint import check_state_dict
    from ..config import config_from_dict

    if ckpt.get("format") != FORMAT:
        raise CheckpointError(f"checkpoint format {ckpt.get('format')!r}: expected '{FORMAT}'")
    config = config_from_dict(ckpt.get("config") or {}, StyleAnimeConfig, source=f"{FORMAT} config")
    model = StyleAnime(config)
    check_state_dict(model, ckpt["state_dict"], source=f"{FORMAT} checkpoint")
    bank = ckpt.get("facebank")
    if bank is not None:
        model.facebank = FaceBank.from_checkpoint({"format": "vidanime.facebank", **bank})
    model.inference = dict(ckpt.get("inference") or {})
    model.discriminator_state = ckpt.get("discriminators") or None
    return model.eval()


def save_styleanime(path: str | os.PathLike, model: StyleAnime, facebank: FaceBank | None = None,
                    dtype: str = "float32", **extras: Any) -> Path:
    """Save ``model`` (and a FaceBank: the argument, else the model's own) as a ``vidanime.styleanime`` checkpoint.

    ``dtype="float16"`` stores the floating-point weights in half precision (half the file; they load back into
    fp32 modules, and the bundled model's outputs stay within 1/255 of fp32, tested)."""
    from ..checkpoint import half_floats, save_checkpoint
    from ..config import config_to_dict

    if dtype not in ("float32", "float16"):
        raise VidanimeError(f"dtype={dtype!r}: expected 'float32' or 'float16'")
    bank = facebank if facebank is not None else model.facebank
    if model.inference and "inference" not in extras:
        extras["inference"] = dict(model.inference)
    if model.discriminator_state and "discriminators" not in extras:
        extras["discriminators"] = model.discriminator_state
    if dtype == "float16" and extras.get("discriminators"):  # D1/D2 too: they load back with .float()
        extras["discriminators"] = {
            k: (half_floats(v) if isinstance(v, Mapping) else v) for k, v in extras["discriminators"].items()}
    if bank is not None:
        extras["facebank"] = {"config": config_to_dict(bank.config), "state_dict": {"codes": bank.codes.detach().cpu()}}
    state = half_floats(model.state_dict()) if dtype == "float16" else model.state_dict()
    path = save_checkpoint(path, format=FORMAT, config=model.config, state_dict=state, **extras)
    logger.debug("saved StyleAnime (%d px) to %s", model.config.generator.size, path)
    return path
