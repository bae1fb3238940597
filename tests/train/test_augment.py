"""DiffAugment-style augmentation: exact shifts/cutouts, reproducible with a generator, differentiable."""
from __future__ import annotations

import pytest
import torch

from vidanime.train.augment import DiffAugment, color, cutout, translation


def test_translation_moves_a_pixel_and_pads_with_zeros():
    x = torch.zeros(16, 3, 16, 16)
    x[:, :, 8, 8] = torch.tensor([1.0, 2.0, 3.0])
    out = translation(x, ratio=0.125, generator=torch.Generator().manual_seed(0))
    shifts = set()
    for i in range(16):
        nz = out[i, 0].nonzero()
        assert nz.shape == (1, 2)  # one pixel, moved, never lost at this offset range
        dy, dx = int(nz[0, 0]) - 8, int(nz[0, 1]) - 8
        assert abs(dy) <= 2 and abs(dx) <= 2
        assert out[i, :, 8 + dy, 8 + dx].tolist() == [1.0, 2.0, 3.0]
        shifts.add((dy, dx))
    assert len(shifts) > 3
    ones = translation(torch.ones(8, 1, 16, 16), 0.125, torch.Generator().manual_seed(1))
    assert set(ones.unique().tolist()) <= {0.0, 1.0} and ones.sum() > 8 * 16 * 12


def test_cutout_zeros_one_square():
    x = torch.ones(32, 3, 16, 16)
    out = cutout(x, ratio=0.5, generator=torch.Generator().manual_seed(0))
    zeros = (out[:, 0] == 0).sum(dim=(1, 2))
    assert (zeros <= 64).all() and (zeros > 0).all() and (zeros == 64).any()
    assert torch.equal(out[:, 0], out[:, 2])  # same mask for every channel


def test_color_on_constant_image_is_brightness_shift():
    x = torch.full((5, 3, 4, 4), 0.2)
    out = color(x, generator=torch.Generator().manual_seed(3))
    r = torch.rand((5, 1, 1, 1), generator=torch.Generator().manual_seed(3))  # the first draw is the brightness
    assert torch.allclose(out, x + (r - 0.5), atol=1e-6)


def test_reproducible_differentiable_and_policy_checked():
    aug = DiffAugment()
    x = torch.randn(4, 3, 16, 16, requires_grad=True)
    a = aug(x, generator=torch.Generator().manual_seed(5))
    b = aug(x, generator=torch.Generator().manual_seed(5))
    assert torch.equal(a, b) and not torch.equal(a, x)
    a.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    y = torch.randn(2, 3, 8, 8)
    assert torch.equal(DiffAugment(policy=())(y), y)
    with pytest.raises(ValueError, match="colour"):
        DiffAugment(policy=("colour",))
