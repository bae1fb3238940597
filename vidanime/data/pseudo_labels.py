"""Sharpening a teacher's parsing of drawn faces by colour: flat-shaded regions have one colour each.

A photo-trained parser reads an anime face with the photo's proportions: it calls pale cheeks "hair" and the middle
of a face "nose", because that is where those are in photos.  Drawn faces are flat-shaded, so within one image the
hair, the skin, the clothes and the backdrop each have a colour of their own.  :func:`colour_refine` fits one Gaussian
(CIE Lab, per channel) to the confident pixels of each of those region classes and moves each pixel's probability
*among those classes* towards the colour that fits, leaving the facial features' probabilities (eyes, brows, mouth,
nose) untouched.  An addition to the paper, used when pseudo-labelling anime faces (``vidanime parser pseudo-label
--colour-refine``).
"""
from __future__ import annotations

import numpy as np
import torch

from .. import labels as L

__all__ = ["REGION_CLASSES", "colour_refine"]

# Classes that are large flat-coloured regions in a drawing (the ones colour can tell apart).
REGION_CLASSES = ("background", "skin", "hair", "cloth", "neck", "hat")


def colour_refine(probs: torch.Tensor, image: np.ndarray, label_set: str, weight: float = 0.5, iterations: int = 2,
                  min_pixels: int = 64, min_sigma: float = 4.0) -> torch.Tensor:
    """(C, H, W) class probabilities of ``image`` ((H, W, 3) uint8 RGB, same size) → refined probabilities.

    For each of :data:`REGION_CLASSES` with at least ``min_pixels`` confident (> 0.5) pixels: Lab mean and variance
    (σ at least ``min_sigma``).  A pixel's probability mass on those classes is redistributed by
    ``prior · likelihood^weight`` (renormalised to the same mass); other classes keep theirs.  Repeated ``iterations``
    times (each refit on the refined map).  Sums over C stay 1.
    """
    import cv2

    if probs.dim() != 3 or tuple(probs.shape[1:]) != image.shape[:2]:
        raise ValueError(f"probs (C, H, W) and image (H, W, 3) must match, got {tuple(probs.shape)} and {image.shape}")
    names = L.class_names(label_set)
    ids = [names.index(n) for n in REGION_CLASSES if n in names]
    lab = torch.from_numpy(cv2.cvtColor(image, cv2.COLOR_RGB2LAB).astype(np.float32)).to(probs.device)
    p = probs.float().clone()
    for _ in range(iterations):
        conf, arg = p.max(0)
        loglik, used = [], []
        for c in ids:
            m = (arg == c) & (conf > 0.5)
            if int(m.sum()) < min_pixels:
                continue
            x = lab[m]
            mu, var = x.mean(0), x.var(0).clamp_min(min_sigma ** 2)
            loglik.append(-0.5 * (((lab - mu) ** 2) / var + torch.log(var)).sum(-1))
            used.append(c)
        if len(used) < 2:
            break
        prior = p[used]
        mass = prior.sum(0, keepdim=True)
        logpost = torch.log(prior / mass.clamp_min(1e-8) + 1e-6) + weight * torch.stack(loglik)
        p[used] = torch.softmax(logpost, dim=0) * mass
    return p
