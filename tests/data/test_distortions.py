"""KADID-10k distortions: one property per type that the official generator implies.

The generator (``imdist_generator.m``) min-max maps its input, applies the
type's function and min-max maps the result. The checks below test what
that code says each type does, on small images.
"""

from __future__ import annotations

import io
import itertools
import math

import numpy as np
import pytest
import torch
from PIL import Image

from asna_metric.color import hsv_to_rgb, rgb_to_hsv
from asna_metric.data import distortions as D
from asna_metric.data.distortions import DISTORTIONS, distort, minmax_map

# imdist_generator.m's level table, type by type.
OFFICIAL_LEVELS = {
    1: (0.1, 0.5, 1, 2, 5),
    2: (1, 2, 4, 6, 8),
    3: (1, 2, 4, 6, 10),
    4: (1, 3, 6, 8, 12),
    5: (1, 3, 6, 8, 12),
    6: (64, 48, 32, 16, 8),
    7: (0.4, 0.2, 0.1, 0, -0.4),
    8: (1, 2, 3, 6, 9),
    9: (16, 32, 45, 120, 400),
    10: (43, 36, 24, 7, 4),
    11: (0.001, 0.002, 0.003, 0.005, 0.01),
    12: (0.0001, 0.0005, 0.001, 0.002, 0.003),
    13: (0.001, 0.005, 0.01, 0.02, 0.03),
    14: (0.001, 0.005, 0.01, 0.02, 0.05),
    15: (0.01, 0.03, 0.05, 0.1, 0.15),
    16: (0.1, 0.2, 0.4, 0.7, 1.1),
    17: (0.05, 0.1, 0.2, 0.4, 0.8),
    18: (0.15, 0.08, 0, -0.08, -0.15),
    19: (0.05, 0.1, 0.2, 0.5, 1),
    20: (20, 40, 60, 80, 100),
    21: (0.01, 0.05, 0.1, 0.2, 0.5),
    22: (20, 16, 13, 10, 7),
    23: (2, 4, 6, 8, 10),
    24: (1, 2, 3, 6, 12),
    25: (0.3, 0.15, 0, -0.4, -0.6),
}


# Small tensors: one torch thread (the shared fixture of tests/conftest.py).
pytestmark = pytest.mark.usefixtures("one_thread")


def _photo_like(n: int = 2, size: int = 96, seed: int = 0) -> torch.Tensor:
    """Smooth colour field, sharp rectangles and fine texture, not spanning [0, 1]."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(n, 3, 5, 5, generator=g)
    field = torch.nn.functional.interpolate(coarse, size=(size, size), mode="bicubic")
    field = field.clamp(0.1, 0.9)
    for i in range(n):
        for _ in range(3):
            top, left = (int(v) for v in torch.randint(0, size - 24, (2,), generator=g))
            field[i, :, top : top + 20, left : left + 24] = torch.rand(3, 1, 1, generator=g) * 0.8
    return (field + 0.03 * torch.randn(n, 3, size, size, generator=g)).clamp(0.05, 0.95)


def _grey_with_anchors(value: float = 0.5, size: int = 128) -> torch.Tensor:
    """Flat grey with a black and a white corner, so that min-max mapping is a no-op."""
    x = torch.full((1, 3, size, size), value)
    x[..., :8, :8] = 0.0
    x[..., -8:, -8:] = 1.0
    return x


def _centre(x: torch.Tensor) -> torch.Tensor:
    return x[..., 16:-16, 16:-16]


# --------------------------------------------------------------------------- generic


def test_level_tables_are_the_official_ones() -> None:
    for dist_type, levels in OFFICIAL_LEVELS.items():
        assert DISTORTIONS[dist_type].levels == tuple(float(v) for v in levels), dist_type


def test_min_size_is_the_package_one() -> None:
    from asna_metric import inputs

    assert D.MIN_SIZE == inputs.MIN_SIZE


def test_minmax_map_per_image() -> None:
    x = torch.stack([torch.full((3, 4, 4), 0.2), torch.linspace(0.2, 0.6, 48).view(3, 4, 4)])
    y = minmax_map(x)
    assert torch.equal(y[0], x[0])  # a constant image is left alone
    assert float(y[1].min()) == 0.0 and float(y[1].max()) == 1.0
    torch.testing.assert_close(y[1], (x[1] - 0.2) / 0.4)


@pytest.mark.parametrize("dist_type", sorted(DISTORTIONS))
def test_every_output_is_min_max_mapped(dist_type: int) -> None:
    x = _photo_like(1, 64, seed=dist_type)
    for level in (1, 5):
        out = distort(x, dist_type, level, seed=3)
        assert out.shape == x.shape and out.dtype == x.dtype
        assert float(out.min()) == 0.0 and float(out.max()) == 1.0, (dist_type, level)


@pytest.mark.parametrize("dist_type", sorted(DISTORTIONS))
def test_per_type_function_is_the_generator_step(dist_type: int) -> None:
    entry = DISTORTIONS[dist_type]
    x = _photo_like(1, 64, seed=40 + dist_type)
    kwargs = {"generator": torch.Generator().manual_seed(5)} if entry.stochastic else {}
    direct = entry.function(x, entry.levels[3], **kwargs)
    assert torch.equal(direct, distort(x, dist_type, 4, seed=5))


# --------------------------------------------------------------------------- per type


def test_gaussian_blur_kernel_spans_two_sigma() -> None:
    x = torch.zeros(1, 3, 33, 33)
    x[..., 16, 16] = 1.0
    out = D.gaussian_blur(x, 1.0)  # imgaussfilt: 2 * ceil(2 sigma) + 1 = 5 taps
    rows = out[0, 0].abs().sum(dim=1).nonzero().flatten()
    assert rows.tolist() == [14, 15, 16, 17, 18]


def test_lens_blur_disk_support_and_symmetry() -> None:
    x = torch.zeros(1, 3, 33, 33)
    x[..., 16, 16] = 1.0
    out = D.lens_blur(x, 4.0)[0, 0]
    assert out.abs().sum(dim=1).nonzero().flatten().tolist() == list(range(12, 21))
    torch.testing.assert_close(out, out.T)
    torch.testing.assert_close(out, out.flip(0))
    assert float(out[12, 12]) == 0.0  # the disk does not reach the square's corner


def test_motion_blur_is_a_line_of_the_level_length() -> None:
    x = _photo_like(1, 64, seed=1)
    assert torch.equal(distort(x, 3, 1, seed=0), minmax_map(x))  # length 1: identity
    delta = torch.zeros(1, 3, 41, 41)
    delta[..., 20, 20] = 1.0
    for seed in range(4):
        out = D.motion_blur(delta, 10, generator=torch.Generator().manual_seed(seed))[0, 0]
        support = out.nonzero()
        extent = (support.max(dim=0).values - support.min(dim=0).values).max()
        assert 9 <= int(extent) <= 11
        torch.testing.assert_close(out, out.flip(0, 1))  # point-symmetric line


def test_color_diffusion_keeps_grey_images() -> None:
    ramp = torch.linspace(0, 1, 64).view(1, 1, 1, 64).expand(1, 3, 64, 64).contiguous()
    for level in range(1, 6):
        torch.testing.assert_close(distort(ramp, 4, level), ramp, atol=2e-4, rtol=0)


def test_color_shift_moves_green_down_and_right_at_edges_only() -> None:
    x = torch.full((1, 3, 96, 96), 0.5)
    x[:, 0, :8, :8] = 0.0  # anchors for min-max in the red channel
    x[:, 0, -8:, -8:] = 1.0
    x[:, 1, :, 48:] = 0.9  # a vertical green edge
    for seed in range(3):
        out = D.color_shift(x, 12, generator=torch.Generator().manual_seed(seed))
        assert torch.equal(out[:, 0], x[:, 0]) and torch.equal(out[:, 2], x[:, 2])
        green = out[0, 1]
        # Shifted right: just right of the edge the old (darker) green leaks in; left of the
        # edge nothing brighter arrives.
        assert float(green[48:52, 48:52].mean()) < 0.9
        assert float(green[:, :48].max()) <= 0.5 + 1e-6
        # Far from the edge the mask is zero.
        assert torch.equal(green[:, :24], x[0, 1, :, :24])


def test_color_quantization_uses_at_most_the_palette() -> None:
    x = _photo_like(1, 96, seed=2)
    for level, colours in ((1, 64), (5, 8)):
        out = distort(x, 6, level)
        distinct = torch.unique(out[0].reshape(3, -1).T, dim=0).shape[0]
        assert 2 <= distinct <= colours


def test_saturation_hsv_zero_is_grey_and_negative_is_rescaled() -> None:
    x = _photo_like(1, 64, seed=3)
    grey = distort(x, 7, 4)  # factor 0
    assert torch.equal(grey[:, 0], grey[:, 1]) and torch.equal(grey[:, 1], grey[:, 2])
    inverted = distort(x, 7, 5)  # factor -0.4: values beyond 1 before the final mapping
    assert float(inverted.max()) == 1.0
    assert float(minmax_map(x).max()) == 1.0
    # The overshoot is squeezed, not clipped: fewer values sit at 1 than in a clipped copy.
    hsv = rgb_to_hsv(minmax_map(x))
    raw = hsv_to_rgb(torch.cat((hsv[:, :1], -0.4 * hsv[:, 1:2], hsv[:, 2:]), dim=1))
    assert float(raw.max()) > 1.0
    assert int((inverted == 1).sum()) < int((raw >= 1).sum())


def test_saturation_lab_level_one_is_identity() -> None:
    x = _photo_like(1, 64, seed=4)
    torch.testing.assert_close(distort(x, 8, 1), minmax_map(x), atol=1e-6, rtol=0)


def test_jpeg2000_level_five_is_ratio_400() -> None:
    x = _photo_like(1, 128, seed=5)
    assert DISTORTIONS[9].levels[4] == 400
    array = (minmax_map(x)[0].permute(1, 2, 0) * 255).round().to(torch.uint8).numpy()
    buffer = io.BytesIO()
    Image.fromarray(array).save(
        buffer,
        format="JPEG2000",
        quality_mode="rates",
        quality_layers=[400.0],
        irreversible=True,
        mct=1,
    )
    assert len(buffer.getvalue()) <= 128 * 128 * 3 / 400 * 1.5 + 200  # the ratio is honoured
    mse = [float(((distort(x, 9, lv) - minmax_map(x)) ** 2).mean()) for lv in (4, 5)]
    assert mse[1] > mse[0] > 0


def test_jpeg_level_one_is_quality_43() -> None:
    x = _photo_like(1, 64, seed=6)
    mapped = minmax_map(x)
    array = (mapped[0].permute(1, 2, 0) * 255).round().to(torch.uint8).numpy()

    def roundtrip(quality: int) -> torch.Tensor:
        buffer = io.BytesIO()
        Image.fromarray(array).save(buffer, format="JPEG", quality=quality, subsampling=2)
        decoded = np.array(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"))
        return minmax_map(torch.from_numpy(decoded).permute(2, 0, 1).float().unsqueeze(0) / 255)

    out = distort(x, 10, 1)
    assert torch.equal(out, roundtrip(43))
    assert not torch.equal(out, roundtrip(36))


def test_white_noise_has_the_level_variance() -> None:
    x = _grey_with_anchors()
    out = distort(x, 11, 5, seed=0)  # variance 0.01, clipping negligible around 0.5
    residual = _centre(out - x)
    assert math.isclose(float(residual.var()), 0.01, rel_tol=0.06)


def test_ycbcr_noise_follows_matlab_studio_range() -> None:
    # BT.601 studio range inverse (ycbcr2rgb): each RGB row's gains on Y, Cb, Cr.
    inverse = np.linalg.inv(
        np.array([[65.481, 128.553, 24.966], [-37.797, -74.203, 112.0], [112.0, -93.786, -18.214]])
        / 255
    )
    expected = (inverse**2).sum(axis=1)  # RGB variance per unit YCbCr variance
    x = _grey_with_anchors()
    out = distort(x, 12, 5, seed=1)
    variances = _centre(out - out[..., 40:88, 40:88].mean(dim=(-2, -1), keepdim=True))
    measured = variances.pow(2).mean(dim=(0, 2, 3)).numpy()
    # The final min-max mapping scales all channels alike: compare ratios.
    np.testing.assert_allclose(measured / measured[1], expected / expected[1], rtol=0.08)


def test_impulse_noise_density_and_values() -> None:
    x = _grey_with_anchors()
    out = _centre(distort(x, 13, 5, seed=2))  # density 0.03
    hit = out != 0.5
    assert math.isclose(float(hit.double().mean()), 0.03, rel_tol=0.15)
    assert bool(((out[hit] == 0) | (out[hit] == 1)).all())
    assert math.isclose(float((out[hit] == 0).double().mean()), 0.5, abs_tol=0.08)


def test_multiplicative_noise_is_uniform_speckle() -> None:
    x = _grey_with_anchors()
    out = _centre(distort(x, 14, 5, seed=3))  # variance 0.05 of a uniform factor
    relative = (out - 0.5) / 0.5
    half_width = math.sqrt(12 * 0.05) / 2
    assert float(relative.abs().max()) <= half_width + 1e-6  # bounded, unlike Gaussian noise
    assert math.isclose(float(relative.var()), 0.05, rel_tol=0.06)


def test_denoising_removes_most_of_the_noise() -> None:
    x = _photo_like(1, 64, seed=7)
    mapped = minmax_map(x)
    for level, variance in ((1, 0.01), (5, 0.15)):
        out = distort(x, 15, level, seed=4)
        mse = float(((out - mapped) ** 2).mean())
        assert mse < variance / 2, (level, mse)


def test_brighten_and_darken_move_the_mean_and_keep_black_and_white() -> None:
    x = _photo_like(1, 64, seed=8)
    x[..., :4, :4], x[..., -4:, -4:] = 0.0, 1.0
    brighter = [float(distort(x, 16, lv).mean()) for lv in range(1, 6)]
    darker = [float(distort(x, 17, lv).mean()) for lv in range(1, 6)]
    assert all(a < b for a, b in itertools.pairwise(brighter))
    assert all(a > b for a, b in itertools.pairwise(darker))
    assert float(x.mean()) < brighter[0] and float(x.mean()) > darker[0]
    strongest = distort(x, 17, 5)  # parabola 1.6 x^2 - 0.6 x: black up to 0.375
    assert bool((strongest[x <= 0.37] == 0).all())


def test_mean_shift_is_a_clipped_stretch() -> None:
    x = minmax_map(_photo_like(1, 64, seed=9))
    assert torch.equal(distort(x, 18, 3), x)  # offset 0 leaves a mapped image unchanged
    torch.testing.assert_close(distort(x, 18, 1), x.clamp(max=0.85) / 0.85, atol=1e-6, rtol=0)
    torch.testing.assert_close(distort(x, 18, 5), (x - 0.15).clamp(min=0) / 0.85, atol=1e-6, rtol=0)


def test_jitter_keeps_flat_regions_and_scatters_edges() -> None:
    x = torch.zeros(1, 3, 64, 64)
    x[..., 32:] = 1.0
    out = distort(x, 19, 5, seed=5)
    # Cubic convolution overshoots at the edge and the final min-max mapping rescales the
    # whole image, but flat regions stay flat.
    left, right = out[..., :20], out[..., 44:]
    assert float(left.max() - left.min()) < 1e-5 and float(right.max() - right.min()) < 1e-5
    assert float(right.min()) - float(left.max()) > 0.5
    near_edge = out[..., 28:36]
    assert float((near_edge - x[..., 28:36]).abs().max()) > 0.1


def test_non_eccentricity_patches_stay_inside_the_official_area() -> None:
    x = _photo_like(1, 96, seed=10)
    mapped = minmax_map(x)
    out = distort(x, 20, 5, seed=6)  # corners 16..h-32 (1-based), moved by -8..8
    assert not torch.equal(out, mapped)
    assert torch.equal(out[..., :7, :], mapped[..., :7, :])
    assert torch.equal(out[..., :, :7], mapped[..., :, :7])
    assert torch.equal(out[..., 96 - 8 :, :], mapped[..., 96 - 8 :, :])


def test_pixelate_blocks_follow_the_scale() -> None:
    x = _photo_like(1, 96, seed=11)
    out = distort(x, 21, 5)[0, 0]  # scale 0.95 - 0.5^0.6
    distinct_rows = 1 + int((out[1:] != out[:-1]).any(dim=1).sum())
    assert distinct_rows <= math.ceil((0.95 - 0.5**0.6) * 96)


def test_quantization_has_threshold_levels_shared_by_channels() -> None:
    x = _photo_like(1, 96, seed=12)
    for level, thresholds in ((1, 20), (5, 7)):
        out = distort(x, 22, level)
        values = torch.unique(out)
        assert len(values) <= thresholds + 1
        assert float(values[0]) == 0.0 and float(values[-1]) == 1.0


def test_color_blocks_are_flat_32px_squares() -> None:
    x = _photo_like(1, 96, seed=13)
    mapped = minmax_map(x)
    out = distort(x, 23, 1, seed=7)  # two blocks
    changed = (out != mapped).any(dim=1)[0]
    assert 0 < int(changed.sum()) <= 2 * 32 * 32
    rows, cols = changed.nonzero().T
    assert int(rows.max() - rows.min()) <= 96 and int(cols.max() - cols.min()) <= 96


def test_high_sharpen_keeps_grey_and_grows_with_level() -> None:
    x = _photo_like(1, 64, seed=14).mean(dim=1, keepdim=True).expand(1, 3, 64, 64).contiguous()
    laplace = torch.tensor([[0.0, 1, 0], [1, -4, 1], [0, 1, 0]]).view(1, 1, 3, 3)
    energy = []
    for level in range(1, 6):
        out = distort(x, 24, level)
        torch.testing.assert_close(out[:, 0], out[:, 1], atol=2e-4, rtol=0)
        energy.append(float(torch.nn.functional.conv2d(out[:, :1], laplace).abs().mean()))
    assert all(a < b for a, b in itertools.pairwise(energy)), energy


def test_contrast_curve_is_an_s_curve_at_level_three() -> None:
    ramp = torch.linspace(0, 1, 101).view(1, 1, 1, 101).expand(1, 3, 32, 101).contiguous()
    for level in range(1, 6):
        out = distort(ramp, 25, level)[0, 0, 0]
        assert bool((out[1:] >= out[:-1] - 1e-6).all()), level  # monotone curve
        assert math.isclose(float(out[50]), 0.5, abs_tol=1e-6)  # passes through (0.5, 0.5)
    s_curve = distort(ramp, 25, 3)[0, 0, 0]
    assert math.isclose(float(s_curve[30]), 0.25, abs_tol=1e-6)  # (0.3, 0.25 - 0/4)
    flat = distort(ramp, 25, 5)[0, 0, 0]
    assert math.isclose(float(flat[30]), 0.4, abs_tol=1e-6)  # (0.3, 0.25 + 0.6/4)


def test_denoising_applies_a_given_grayscale_denoiser_per_channel() -> None:
    x = _photo_like(1, 64, seed=15)
    calls: list[tuple[tuple[int, ...], float]] = []

    def keep_noisy(noisy: torch.Tensor, sigma: float) -> torch.Tensor:
        calls.append((tuple(noisy.shape), sigma))
        return noisy

    out = D.denoising(x, 0.05, generator=torch.Generator().manual_seed(2), denoiser=keep_noisy)
    assert calls == [((1, 1, 64, 64), math.sqrt(0.05))] * 3
    noise = torch.randn(
        (3, 64, 64), generator=torch.Generator().manual_seed(2), dtype=torch.float64
    )
    expected = minmax_map((minmax_map(x) + math.sqrt(0.05) * noise.float()).clamp(0, 1))
    torch.testing.assert_close(out, expected, atol=1e-6, rtol=0)
