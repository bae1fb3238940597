"""Domain-adaptation loss L_da of StyleAnime §4.2.3 (Eq. 6–7) and its latent-code discriminator D1.

D1 follows e4e (Tov et al. 2021) as the paper says: a 4-layer MLP.  Like the official StyleAnime code it judges the
whole W+ code at once (flattened n_latent × style_dim), so it sees the structure/appearance split jointly.  Codes from
target-domain inputs (E_p(y_p), E_s(y)) are the real samples, codes from source-domain inputs the fakes.  Losses use
the logistic form: −log σ(D1(·)) = softplus(−logit), −log(1 − σ(D1(·))) = softplus(logit).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .gan import d_logistic_loss

__all__ = ["LatentDiscriminator", "da_loss_encoder", "da_loss_discriminator"]


class LatentDiscriminator(nn.Module):
    """D1: W+ codes (B, n_latent, style_dim) → logits (B, 1); ``n_layers`` Linear layers with LeakyReLU(0.2) between."""

    def __init__(self, n_latent: int, style_dim: int, hidden: int | None = None, n_layers: int = 4):
        super().__init__()
        if n_layers < 2:
            raise ValueError(f"LatentDiscriminator n_layers={n_layers}: expected >= 2")
        hidden = hidden or style_dim
        self.n_latent, self.style_dim = n_latent, style_dim
        layers: list[nn.Module] = [nn.Linear(n_latent * style_dim, hidden), nn.LeakyReLU(0.2)]
        for _ in range(n_layers - 2):
            layers += [nn.Linear(hidden, hidden), nn.LeakyReLU(0.2)]
        layers.append(nn.Linear(hidden, 1))
        self.mlp = nn.Sequential(*layers)

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        if w.ndim != 3 or tuple(w.shape[1:]) != (self.n_latent, self.style_dim):
            raise ValueError(f"latent codes of shape {tuple(w.shape)}: expected (B, {self.n_latent}, {self.style_dim})")
        return self.mlp(w.flatten(1))


def da_loss_encoder(source_logits: torch.Tensor) -> torch.Tensor:
    """L_da^E (Eq. 6): −E[log D1(cat(E_p(x_p), E_s(x)))] on source codes; log 2 at zero logits, → 0 as D1 says
    'real'."""
    return F.softplus(-source_logits).mean()


def da_loss_discriminator(target_logits: torch.Tensor, source_logits: torch.Tensor) -> torch.Tensor:
    """L_da^D1 (Eq. 7): −E[log(1 − D1(source codes))] − E[log D1(target codes)]; 2·log 2 at zero logits."""
    return d_logistic_loss(target_logits, source_logits)
