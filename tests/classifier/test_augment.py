"""Float augmentations: stay in [0, 1], no uint8 wrap-around, reproducible from a seed."""

import torch

from lusynth.classifier.augment import STD_EPS, augment_batch, box_blur, flip, gamma, speckle, standardize


def test_speckle_on_bright_pixels_saturates_instead_of_wrapping() -> None:
    x = torch.full((1, 32, 32), 250 / 255)
    y = speckle(x, fraction=0.5, delta=10 / 255, generator=torch.Generator().manual_seed(0))
    assert y.min() >= 250 / 255 - 1e-6  # the reference's uint8 +10 turned 250 into 4
    assert y.max() <= 1.0 and (y == 1.0).float().mean() > 0.2


def test_every_augmentation_keeps_the_unit_range_in_any_order() -> None:
    g = torch.Generator().manual_seed(1)
    x = torch.rand(64, 1, 16, 16)
    y = augment_batch(x, generator=g, p=1.0)
    assert y.shape == x.shape and y.min() >= 0 and y.max() <= 1


def test_augmentations_are_reproducible_from_the_generator() -> None:
    x = torch.rand(8, 1, 16, 16)
    a = augment_batch(x, generator=torch.Generator().manual_seed(3))
    b = augment_batch(x, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(a, b)


def test_single_steps() -> None:
    x = torch.arange(16.0).reshape(1, 4, 4) / 15
    torch.testing.assert_close(flip(flip(x)), x)
    assert gamma(x, 2.0)[0, 1, 1] < x[0, 1, 1]
    const = torch.full((1, 9, 9), 0.3)
    torch.testing.assert_close(box_blur(const, 5), const)  # odd kernel, reflected borders: no shift or darkening
    raw = torch.rand(4, 1, 8, 8) * 0.2 + 0.5
    z = standardize(raw)
    torch.testing.assert_close(z.mean(dim=(1, 2, 3)), torch.zeros(4), atol=1e-5, rtol=0)
    s = raw.std(dim=(1, 2, 3), unbiased=False)
    torch.testing.assert_close(z.std(dim=(1, 2, 3), unbiased=False), s / (s + STD_EPS), atol=1e-5, rtol=0)  # unit std up to eps
    assert standardize(torch.full((1, 1, 8, 8), 77 / 255)).abs().max() < 1e-3  # a flat frame stays ~0, well-conditioned
