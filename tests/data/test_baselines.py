"""PSNR, SSIM and MS-SSIM baselines and the metric registry."""

from __future__ import annotations

import itertools

import pytest
import torch

from asna_metric.data.baselines import METRICS, build_metric, ms_ssim, psnr, ssim
from asna_metric.errors import InputError


def _smooth(generator: torch.Generator, size: int, n: int = 2) -> torch.Tensor:
    coarse = torch.rand(n, 3, size // 8, size // 8, generator=generator)
    return torch.nn.functional.interpolate(coarse, size=(size, size), mode="bilinear").clamp(0, 1)


def _noisy(x: torch.Tensor, sigma: float, generator: torch.Generator) -> torch.Tensor:
    return (x + sigma * torch.randn(x.shape, generator=generator)).clamp(0, 1)


def test_psnr_identical_is_capped_and_known_offset(generator: torch.Generator) -> None:
    ref = _smooth(generator, 32) * 0.8
    assert torch.equal(psnr(ref, ref), torch.full((2,), 100.0))
    # a uniform offset of 0.1 on every channel: MSE 0.01 in RGB and in luma
    assert psnr(ref + 0.1, ref, channels="rgb") == pytest.approx([20.0, 20.0], abs=1e-4)
    assert psnr(ref + 0.1, ref) == pytest.approx([20.0, 20.0], abs=1e-4)


@pytest.mark.parametrize("fn", [psnr, ssim])
def test_scores_fall_as_noise_grows(fn, generator: torch.Generator) -> None:  # type: ignore[no-untyped-def]
    ref = _smooth(generator, 48)
    scores = [fn(_noisy(ref, s, generator), ref) for s in (0.02, 0.08, 0.2)]
    for better, worse in itertools.pairwise(scores):
        assert torch.all(better > worse)


def test_ssim_and_ms_ssim_of_identical_images_are_one(generator: torch.Generator) -> None:
    small = _smooth(generator, 48)
    assert ssim(small, small) == pytest.approx([1.0, 1.0], abs=1e-5)
    assert ssim(small, small, channels="rgb") == pytest.approx([1.0, 1.0], abs=1e-5)
    large = _smooth(generator, 176, n=1)
    assert ms_ssim(large, large) == pytest.approx([1.0], abs=1e-5)
    noisy = _noisy(large, 0.1, generator)
    assert ms_ssim(noisy, large).item() < 0.99


def test_batch_equals_items(generator: torch.Generator) -> None:
    ref = _smooth(generator, 40, n=3)
    dist = _noisy(ref, 0.05, generator)
    for fn in (psnr, ssim):
        batch = fn(dist, ref)
        assert batch.shape == (3,)
        single = torch.cat([fn(dist[i : i + 1], ref[i : i + 1]) for i in range(3)])
        torch.testing.assert_close(batch, single)


def test_small_images_and_bad_inputs_raise(generator: torch.Generator) -> None:
    x = _smooth(generator, 64)
    with pytest.raises(InputError, match=r"at least 161x161.*MS-SSIM"):
        ms_ssim(x, x)
    tiny = torch.rand(1, 3, 8, 8, generator=generator)
    with pytest.raises(InputError, match="at least 11x11"):
        ssim(tiny, tiny)
    with pytest.raises(InputError, match="same shape"):
        psnr(x, x[:1])
    with pytest.raises(InputError, match=r"\(N, 3, H, W\)"):
        psnr(x[0], x[0])
    with pytest.raises(InputError, match="float"):
        psnr((x * 255).to(torch.uint8), (x * 255).to(torch.uint8))
    with pytest.raises(InputError, match="'y' or 'rgb'"):
        psnr(x, x, channels="lab")  # type: ignore[arg-type]


def test_registry() -> None:
    assert set(METRICS) == {"asna", "psnr", "ssim", "ms_ssim"}
    assert all(spec.higher_is_better for spec in METRICS.values())
    assert METRICS["asna"].uses_weights and not METRICS["psnr"].uses_weights
    assert build_metric("MS-SSIM") is ms_ssim
    with pytest.raises(InputError, match="unknown metric 'lpips'"):
        build_metric("lpips")
