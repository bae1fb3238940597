"""StyleGAN2 losses (Karras et al. 2020): non-saturating logistic G/D losses, R1 and path-length penalties.

Pure functions of tensors; the trainer decides when to call them (lazy regularisation) and how to weight them.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

__all__ = ["d_logistic_loss", "g_nonsaturating_loss", "r1_penalty", "path_length_penalty"]


def d_logistic_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """Discriminator logistic loss: mean softplus(-D(real)) + mean softplus(D(fake)); logits (B, 1) → scalar.

    Equals -log sigmoid(D(x)) - log(1 - sigmoid(D(G(z)))), computed stably; log(4) ≈ 1.386 at zero logits.
    """
    return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()


def g_nonsaturating_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """Generator non-saturating loss: mean softplus(-D(G(z))) = -log sigmoid(D(G(z))); log(2) ≈ 0.693 at zero logits."""
    return F.softplus(-fake_logits).mean()


def r1_penalty(real_logits: torch.Tensor, real_images: torch.Tensor) -> torch.Tensor:
    """R1 penalty (Mescheder et al. 2018): mean over the batch of ||∇_x D(x)||² on real images.

    ``real_images`` (B, C, H, W) must have ``requires_grad=True`` and ``real_logits`` (B, 1) must depend on them.
    The graph is kept (``create_graph=True``) so the penalty can be back-propagated into D; the caller multiplies it
    by γ/2 (and by the lazy-regularisation interval).
    """
    (grad,) = torch.autograd.grad(outputs=real_logits.sum(), inputs=real_images, create_graph=True)
    return grad.pow(2).reshape(grad.shape[0], -1).sum(1).mean()


def path_length_penalty(
    fake_images: torch.Tensor,
    latents: torch.Tensor,
    mean_path_length: torch.Tensor | float,
    decay: float = 0.01,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Path-length regularisation (StyleGAN2 §3.2): penalise the variance of ||J_wᵀ y|| around its running mean.

    Args:
        fake_images: G(w) (B, 3, H, W), computed from ``latents`` with the graph kept.
        latents: the W+ codes (B, n_latent, style_dim) the images were made from.
        mean_path_length: running mean ``a`` of the path lengths (scalar tensor or float; 0 at the start).
        decay: exponential-moving-average rate of ``a``.
        generator: RNG for the random image-space direction y ~ N(0, I)/sqrt(H·W).

    Returns:
        (penalty, new mean path length (detached), per-sample path lengths (B,) (detached)).
    """
    h, w = fake_images.shape[2], fake_images.shape[3]
    rng_device = generator.device if generator is not None else fake_images.device
    noise = torch.randn(fake_images.shape, generator=generator, device=rng_device, dtype=fake_images.dtype)
    noise = noise.to(fake_images.device) / math.sqrt(h * w)
    (grad,) = torch.autograd.grad(outputs=(fake_images * noise).sum(), inputs=latents, create_graph=True)
    lengths = grad.pow(2).sum(2).mean(1).sqrt()
    mean = torch.as_tensor(mean_path_length, dtype=lengths.dtype, device=lengths.device)
    new_mean = mean + decay * (lengths.detach().mean() - mean)
    penalty = (lengths - new_mean).pow(2).mean()
    return penalty, new_mean.detach(), lengths.detach()
