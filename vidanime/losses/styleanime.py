"""The StyleAnime training objective (paper §4.2, Eq. 1–10) and the image-adversarial loss L_adv (Eq. 8–9).

Which batch feeds which term (the paper's split into self-supervision on the target domain and adaptation to the
source domain):

* target batch (y, y_p), ŷ = G(cat(E_p(y_p), E_s(y))): L_rec (Eq. 2), L_lpips (Eq. 3), L_cp (Eq. 4–5, masks from y_p),
  the "real" codes of D1 (Eq. 7), and ŷ as one of D2's fakes (Eq. 8–9); y itself is D2's real sample (+ R1).
* source batch (x, x_p), x̂ = G(cat(E_p(x_p), E_s(x))): the "fake" codes of D1 (L_da, Eq. 6–7) and x̂ as D2's other
  fake (Eq. 8–9).  No pixel loss touches x̂ (there is no ground truth for a translation).

Eq. 8 prints a minus sign between its two expectations; read as intended (both fakes should look real to D2),
L_adv^E = −E log D2(ŷ) − E log D2(x̂).  Eq. 10: L = λ1 L_rec + λ2 L_lpips + λ3 L_cp + λ4 L_da^E + λ5 L_adv^E.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from .color import ColorPreservationLoss
from .latent import da_loss_encoder
from .reconstruction import LPIPSLoss, l2_loss

__all__ = ["StyleAnimeLossConfig", "adv_loss_encoder", "adv_loss_discriminator", "StyleAnimeLoss"]


@dataclass
class StyleAnimeLossConfig:
    """Loss weights (paper §5.1 values by default) and loss options (the ``loss:`` section of a training config)."""

    lambda_rec: float = 2.5  # λ1, pixel L2 (Eq. 2)
    lambda_lpips: float = 2.0  # λ2, LPIPS (Eq. 3)
    lambda_cp: float = 0.1  # λ3, colour preservation (Eq. 5)
    lambda_da: float = 0.1  # λ4, latent domain adaptation (Eq. 6)
    lambda_adv: float = 0.1  # λ5, image adversarial (Eq. 8)
    alpha_hair: float = 1.0  # α_h of Eq. 5
    alpha_skin: float = 1.0  # α_s
    alpha_eyes: float = 1.0  # α_e
    cp_mode: Literal["hm", "soft_hist"] = "hm"  # histogram-matching guidance (paper) or soft-histogram distance
    cp_bins: int = 64  # soft_hist only
    lpips_net: Literal["alex", "vgg", "squeeze"] = "alex"
    lpips_backbone: str = ""  # torchvision ImageNet trunk file ("" = $VIDANIME_LPIPS_BACKBONE); "random" = tests only
    r1_gamma: float = 10.0  # γ of Eq. 9
    r1_every: int = 16  # lazy R1: every k D2 steps, weighted ×k (StyleGAN2); 1 = every step as written in Eq. 9
    d1_layers: int = 4  # D1 MLP depth (e4e: 4)

    def __post_init__(self) -> None:
        for key in ("lambda_rec", "lambda_lpips", "lambda_cp", "lambda_da", "lambda_adv", "alpha_hair", "alpha_skin",
                    "alpha_eyes", "r1_gamma"):
            if getattr(self, key) < 0:
                raise ConfigError(f"loss.{key} = {getattr(self, key)}: expected a number >= 0")
        if self.r1_every < 1 or self.cp_bins < 2 or self.d1_layers < 2:
            raise ConfigError(f"loss.r1_every / cp_bins / d1_layers = {self.r1_every} / {self.cp_bins} / "
                              f"{self.d1_layers}: expected >= 1 / >= 2 / >= 2")


def adv_loss_encoder(fake_target_logits: torch.Tensor, fake_source_logits: torch.Tensor) -> torch.Tensor:
    """L_adv^E (Eq. 8): −E log D2(ŷ) − E log D2(x̂) (non-saturating); 2·log 2 at zero logits."""
    return F.softplus(-fake_target_logits).mean() + F.softplus(-fake_source_logits).mean()


def adv_loss_discriminator(real_logits: torch.Tensor, fake_target_logits: torch.Tensor,
                           fake_source_logits: torch.Tensor) -> torch.Tensor:
    """L_adv^D2 without R1 (Eq. 9): −E log(1 − D2(ŷ)) − E log(1 − D2(x̂)) − E log D2(y); 3·log 2 at zero logits."""
    return (F.softplus(fake_target_logits).mean() + F.softplus(fake_source_logits).mean()
            + F.softplus(-real_logits).mean())


class StyleAnimeLoss(nn.Module):
    """Eq. 10 for the encoders, given the images, the target parsing and D1/D2 logits on the fakes.

    LPIPS is only built when λ2 > 0 (it needs the backbone weights, see
    :func:`vidanime.metrics.lpips_metrics.load_lpips`).
    """

    def __init__(self, config: StyleAnimeLossConfig, label_set: str, device: Any = "cpu"):
        super().__init__()
        self.config = config
        self.lpips = (LPIPSLoss(config.lpips_net, config.lpips_backbone or None, device)
                      if config.lambda_lpips > 0 else None)
        self.color = ColorPreservationLoss(label_set, config.alpha_hair, config.alpha_skin, config.alpha_eyes,
                                           mode=config.cp_mode, bins=config.cp_bins)

    def forward(
        self,
        target: torch.Tensor,
        recon: torch.Tensor,
        target_labels: torch.Tensor,
        d1_source_logits: torch.Tensor | None,
        d2_recon_logits: torch.Tensor | None,
        d2_translation_logits: torch.Tensor | None,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """→ (total, {rec, lpips, cp, cp_hair, cp_skin, cp_eyes, da, adv}: unweighted terms, detached).

        ``target`` y and ``recon`` ŷ are (B, 3, H, W) in [-1, 1]; ``target_labels`` y_p (B, H, W).  Logit arguments
        may be None when their λ is 0.
        """
        c = self.config
        zero = recon.new_zeros((), dtype=torch.float32)
        rec = l2_loss(recon, target)
        lp = self.lpips(recon, target) if self.lpips is not None else zero
        cp, cp_parts = self.color(recon, target, target_labels) if c.lambda_cp > 0 else (zero, {})
        da = da_loss_encoder(d1_source_logits.float()) if d1_source_logits is not None and c.lambda_da > 0 else zero
        adv = (adv_loss_encoder(d2_recon_logits.float(), d2_translation_logits.float())
               if d2_recon_logits is not None and d2_translation_logits is not None and c.lambda_adv > 0 else zero)
        total = c.lambda_rec * rec + c.lambda_lpips * lp + c.lambda_cp * cp + c.lambda_da * da + c.lambda_adv * adv
        parts = {"rec": rec, "lpips": lp, "cp": cp, "da": da, "adv": adv}
        parts.update({f"cp_{k}": v for k, v in cp_parts.items()})
        return total, {k: v.detach() for k, v in parts.items()}
