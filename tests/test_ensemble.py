"""Tests of asna_metric.ensemble: exact dihedral views, lightness scaling, view sets."""

from __future__ import annotations

import pytest
import torch

from asna_metric.color import rgb_to_lab
from asna_metric.ensemble import (
    L_SCALES,
    View,
    apply_dihedral,
    apply_view,
    apply_views,
    invert_dihedral,
    scale_lightness,
    views,
)
from asna_metric.errors import InputError


def test_view_sets() -> None:
    assert views("none") == (View(),)
    flips = views("flips")
    assert len(flips) == 8 and len(set(flips)) == 8
    assert {v.dihedral for v in flips} == set(range(8))
    assert all(v.l_scale == 1.0 for v in flips)
    full = views("full")
    assert len(full) == 20 and full[:8] == flips
    assert [v.l_scale for v in full[8:]] == list(L_SCALES)
    assert all(v.dihedral == 0 for v in full[8:])
    assert L_SCALES[0] == pytest.approx(0.3) and L_SCALES[-1] == pytest.approx(1.5)
    assert 1.0 not in L_SCALES and len(L_SCALES) == 12


def test_invalid_views_raise() -> None:
    with pytest.raises(InputError, match="self_ensemble"):
        views("rotations")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="dihedral"):
        View(8)
    with pytest.raises(InputError, match="l_scale"):
        View(0, 0.0)
    with pytest.raises(InputError, match="dihedral"):
        apply_dihedral(torch.zeros(1, 3, 4, 4), -1)


@pytest.mark.parametrize("k", range(8))
def test_invert_dihedral_inverts_apply_dihedral(k: int, generator: torch.Generator) -> None:
    x = torch.rand(2, 3, 5, 7, generator=generator)
    y = apply_dihedral(x, k)
    assert y.shape == ((2, 3, 7, 5) if k % 2 else (2, 3, 5, 7))
    assert torch.equal(invert_dihedral(y, k), x)
    assert torch.equal(apply_dihedral(invert_dihedral(x, k), k), x)


def test_dihedral_elements_are_exact_and_distinct(generator: torch.Generator) -> None:
    x = torch.rand(1, 1, 6, 6, generator=generator)
    images = [apply_dihedral(x, k) for k in range(8)]
    for i in range(8):
        for j in range(i + 1, 8):
            assert not torch.equal(images[i], images[j])
    # Exact permutations of the pixels: no row or column lost or shifted.
    for y in images:
        assert torch.equal(y.flatten().sort().values, x.flatten().sort().values)
    assert torch.equal(images[1], torch.rot90(x, 1, dims=(-2, -1)))
    assert torch.equal(images[4], x.flip(-1))
    # The set is a group: composing two elements gives an element.
    for a in range(8):
        for b in range(8):
            composed = apply_dihedral(apply_dihedral(x, a), b)
            assert any(torch.equal(composed, y) for y in images)


def test_scale_lightness_identity_and_range(generator: torch.Generator) -> None:
    x = torch.rand(2, 3, 16, 16, generator=generator)
    torch.testing.assert_close(scale_lightness(x, 1.0), x, rtol=0, atol=1e-4)
    for factor in (0.3, 0.7, 1.5, 3.0):
        y = scale_lightness(x, factor)
        assert y.shape == x.shape and y.dtype == x.dtype
        assert y.min() >= 0 and y.max() <= 1


def test_scale_lightness_clips_instead_of_wrapping() -> None:
    white = torch.ones(1, 3, 4, 4)
    grey = torch.full((1, 3, 4, 4), 0.5)
    assert torch.allclose(scale_lightness(white, 1.5), white, atol=1e-4)  # no wrap to dark
    brighter = rgb_to_lab(scale_lightness(grey, 1.3))[:, 0]
    darker = rgb_to_lab(scale_lightness(grey, 0.5))[:, 0]
    lightness = rgb_to_lab(grey)[:, 0]
    torch.testing.assert_close(brighter, lightness * 1.3, rtol=1e-3, atol=1e-2)
    torch.testing.assert_close(darker, lightness * 0.5, rtol=1e-3, atol=1e-2)


def test_scale_lightness_is_differentiable(generator: torch.Generator) -> None:
    x = 0.2 + 0.6 * torch.rand(1, 3, 3, 3, generator=generator, dtype=torch.float64)
    x.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda t: scale_lightness(t, 0.8), (x,))


def test_scale_lightness_half_precision(generator: torch.Generator) -> None:
    x = torch.rand(1, 3, 8, 8, generator=generator)
    y = scale_lightness(x.to(torch.bfloat16), 0.7)
    assert y.dtype == torch.bfloat16
    torch.testing.assert_close(y.float(), scale_lightness(x, 0.7), rtol=0, atol=1e-2)
    with pytest.raises(InputError, match="positive"):
        scale_lightness(x, -1.0)
    with pytest.raises(InputError, match="RGB"):
        scale_lightness(x[:, :2], 0.5)


def test_apply_views_matches_apply_view(generator: torch.Generator) -> None:
    x = torch.rand(2, 3, 8, 12, generator=generator)
    batch = apply_views(x, views("full"))
    for view, y in zip(views("full"), batch, strict=True):
        assert torch.equal(y, apply_view(x, view))
    assert torch.equal(apply_view(x, View(3)), apply_dihedral(x, 3))
    assert torch.equal(apply_view(x, View(0, 0.5)), scale_lightness(x, 0.5))
