"""Training augmentation: one transform shared by both images, values kept in [0, 1]."""

from __future__ import annotations

import pytest
import torch

from asna_metric.errors import InputError
from asna_metric.train.augment import (
    AugmentParams,
    PairAugment,
    apply_params,
    crop_pair,
    random_crop_box,
)
from asna_metric.train.pairs import EpochSampler, TrainPairs


def _pair(generator: torch.Generator, size: int = 24) -> tuple[torch.Tensor, torch.Tensor]:
    ref = torch.rand(3, size, size, generator=generator)
    dist = (ref + 0.1 * torch.randn(3, size, size, generator=generator)).clamp(0, 1)
    return dist, ref


def test_identical_images_stay_identical(generator: torch.Generator) -> None:
    aug = PairAugment(l_scale_prob=1.0)
    _, ref = _pair(generator)
    for seed in range(16):
        g = torch.Generator().manual_seed(seed)
        a, b = aug(ref.clone(), ref.clone(), g)
        assert torch.equal(a, b)


@pytest.mark.parametrize("seed", range(8))
def test_same_transform_applied_to_both(generator: torch.Generator, seed: int) -> None:
    aug = PairAugment(l_scale_prob=1.0)
    dist, ref = _pair(generator)
    params = aug.sample(torch.Generator().manual_seed(seed))
    out_dist, out_ref = aug(dist, ref, torch.Generator().manual_seed(seed))
    # Applying the drawn parameters to each image on its own gives the same result.
    alone_dist, _ = apply_params(dist, dist, params)
    alone_ref, _ = apply_params(ref, ref, params)
    assert torch.equal(out_dist, alone_dist)
    assert torch.equal(out_ref, alone_ref)


def test_dihedral_moves_pixels_together(generator: torch.Generator) -> None:
    dist, ref = _pair(generator)
    for k in range(8):
        out_dist, out_ref = apply_params(dist, ref, AugmentParams(dihedral=k, l_scale=1.0))
        # The pixelwise difference map is carried along by the same symmetry.
        diff, _ = apply_params(dist - ref + 0.5, dist - ref + 0.5, AugmentParams(k, 1.0))
        torch.testing.assert_close(out_dist - out_ref + 0.5, diff)
        assert sorted(out_dist.flatten().tolist()) == sorted(dist.flatten().tolist())
    quarter, _ = apply_params(dist, ref, AugmentParams(dihedral=1, l_scale=1.0))
    assert not torch.equal(quarter, dist)


def test_lightness_scaling_clips_and_keeps_range() -> None:
    bright = torch.full((3, 16, 16), 0.95)
    bright[:, :4] = 0.05
    out, _ = apply_params(bright, bright, AugmentParams(dihedral=0, l_scale=1.5))
    assert out.min() >= 0.0 and out.max() <= 1.0
    # Clipped, not wrapped: the bright region stays the brightest.
    assert out[:, 8:].mean() > 0.9
    assert out[:, 8:].mean() > out[:, :4].mean()
    dark, _ = apply_params(bright, bright, AugmentParams(dihedral=0, l_scale=0.3))
    assert dark.mean() < bright.mean()


@pytest.mark.parametrize("seed", range(4))
def test_random_augmentation_stays_in_unit_range(seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    dist = torch.rand(3, 20, 20, generator=g) ** 0.2  # mostly bright
    ref = torch.rand(3, 20, 20, generator=g) ** 0.2
    aug = PairAugment(l_scale_prob=1.0, l_scale_min=1.2, l_scale_max=1.5)
    for _ in range(8):
        a, b = aug(dist, ref, g)
        for x in (a, b):
            assert torch.isfinite(x).all() and x.min() >= 0 and x.max() <= 1


def test_sampling_is_seeded_and_uses_the_range() -> None:
    aug = PairAugment(l_scale_prob=1.0, l_scale_min=0.3, l_scale_max=1.5)
    draws = [aug.sample(torch.Generator().manual_seed(s)) for s in range(200)]
    again = [aug.sample(torch.Generator().manual_seed(s)) for s in range(200)]
    assert draws == again
    assert {d.dihedral for d in draws} == set(range(8))
    scales = [d.l_scale for d in draws]
    assert min(scales) >= 0.3 and max(scales) <= 1.5
    assert max(scales) - min(scales) > 0.9
    off = PairAugment(dihedral=False, l_scale_prob=0.0)
    assert all(off.sample(torch.Generator().manual_seed(s)) == AugmentParams() for s in range(20))


def test_crop_is_at_the_same_place(generator: torch.Generator) -> None:
    dist, ref = _pair(generator, size=40)
    top, left = random_crop_box(40, 40, 16, generator)
    a, b = crop_pair(dist, ref, top, left, 16)
    assert a.shape == b.shape == (3, 16, 16)
    assert torch.equal(a, dist[:, top : top + 16, left : left + 16])
    assert torch.equal(b, ref[:, top : top + 16, left : left + 16])


def test_train_pairs_crop_same_location(tmp_path: object, generator: torch.Generator) -> None:
    from dataclasses import dataclass
    from pathlib import Path

    from PIL import Image

    folder = Path(str(tmp_path))
    ref = (torch.rand(3, 40, 48, generator=generator) * 255).to(torch.uint8)
    dist = 255 - ref  # a known pixelwise relation between the two images
    for name, image in (("ref.png", ref), ("dist.png", dist)):
        Image.fromarray(image.permute(1, 2, 0).numpy()).save(folder / name)

    @dataclass
    class Record:
        dist: Path
        ref: Path
        quality: float

    dataset = TrainPairs(
        [Record(folder / "dist.png", folder / "ref.png", 0.5)],
        crop_size=16,
        augment=PairAugment(l_scale_prob=0.0),
    )
    sampler = EpochSampler(1, samples_per_epoch=8, seed=3)
    for item in sampler:
        d, r, q = dataset[item]
        assert d.shape == r.shape == (3, 16, 16)
        torch.testing.assert_close(d, 1.0 - r, atol=1e-6, rtol=0)
        assert float(q) == 0.5


def test_invalid_options_raise() -> None:
    with pytest.raises(InputError, match="probability"):
        PairAugment(l_scale_prob=1.5)
    with pytest.raises(InputError, match="range"):
        PairAugment(l_scale_min=1.5, l_scale_max=0.3)
    with pytest.raises(InputError, match="same shape"):
        apply_params(torch.rand(3, 8, 8), torch.rand(3, 8, 9), AugmentParams())
    with pytest.raises(InputError, match="crop"):
        random_crop_box(10, 40, 16, torch.Generator())
