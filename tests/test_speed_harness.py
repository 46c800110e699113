"""Correctness of the speed harness and of the rebuilt baselines (no timings asserted)."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
import torch

from asna_metric.errors import InputError

SPEED = Path(__file__).resolve().parents[1] / "benchmarks" / "speed"


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, SPEED / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def speed() -> Iterator[dict[str, ModuleType]]:
    """The benchmark scripts as modules; sys.path and sys.modules restored afterwards."""
    names = ("baselines", "harness", "run_speed")
    saved_path = list(sys.path)
    saved_modules = {n: sys.modules[n] for n in names if n in sys.modules}
    try:
        yield {n: _load(n) for n in names}
    finally:
        sys.path[:] = saved_path
        for n in names:
            sys.modules.pop(n, None)
        sys.modules.update(saved_modules)


@pytest.fixture(scope="module")
def baselines(speed: dict[str, ModuleType]) -> ModuleType:
    return speed["baselines"]


@pytest.fixture(scope="module")
def harness(speed: dict[str, ModuleType]) -> ModuleType:
    return speed["harness"]


# --------------------------------------------------------------------------- baselines


def test_trunks_match_published_parameter_counts(baselines: ModuleType) -> None:
    counts = baselines.PARAMETER_COUNTS
    assert baselines.count_parameters(baselines.alexnet_features()) == counts["alexnet_features"]
    assert baselines.count_parameters(baselines.vgg16_features()) == counts["vgg16_features"]
    assert round(counts["alexnet_features"] / 1e6, 2) == 2.47
    assert round(counts["vgg16_features"] / 1e6, 1) == 14.7


@pytest.mark.parametrize(
    ("net", "lins", "trunk"), [("alex", 1_152, 2_469_696), ("vgg", 1_472, 14_714_688)]
)
def test_lpips_parameter_counts(baselines: ModuleType, net: str, lins: int, trunk: int) -> None:
    model = baselines.LPIPS(net)
    assert baselines.lpips_lin_parameters(model) == lins
    # LPIPS = trunk (cut at its last tap; the final pooling holds nothing) + linear layers.
    assert baselines.count_parameters(model) == trunk + lins


def test_dists_parameter_count(baselines: ModuleType) -> None:
    model = baselines.DISTS()
    assert baselines.count_parameters(model) == 14_714_688 + 2 * 1_475
    pools = [m for m in model.modules() if isinstance(m, baselines.L2Pooling)]
    assert len(pools) == 4
    assert not any(isinstance(m, torch.nn.MaxPool2d) for m in model.modules())


def _pair(generator: torch.Generator, n: int, h: int, w: int) -> tuple[torch.Tensor, torch.Tensor]:
    ref = torch.rand(n, 3, h, w, generator=generator)
    dist = (ref + 0.2 * torch.randn(n, 3, h, w, generator=generator)).clamp(0, 1)
    return dist, ref


@pytest.mark.parametrize("name", ["psnr", "ssim", "lpips-alex", "lpips-vgg", "dists"])
def test_baselines_return_one_score_per_pair(
    harness: ModuleType, generator: torch.Generator, name: str
) -> None:
    model = harness.build_method(name)
    dist, ref = _pair(generator, 2, 32, 48)
    with torch.inference_mode():
        out = model(dist, ref)
        single = model(dist[1:], ref[1:])
    assert out.shape == (2,)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out[1:], single, rtol=1e-4, atol=1e-5)


def test_ms_ssim_returns_one_score_per_pair(
    harness: ModuleType, generator: torch.Generator
) -> None:
    dist, ref = _pair(generator, 2, 176, 176)  # MS-SSIM needs sides above 160
    with torch.inference_mode():
        out = harness.build_method("ms-ssim")(dist, ref)
    assert out.shape == (2,)


@pytest.mark.parametrize("name", ["lpips-alex", "lpips-vgg", "dists"])
def test_distances_vanish_on_identical_pairs(
    harness: ModuleType, generator: torch.Generator, name: str
) -> None:
    model = harness.build_method(name)
    dist, ref = _pair(generator, 2, 32, 32)
    with torch.inference_mode():
        same = model(ref, ref)
        different = model(dist, ref)
    torch.testing.assert_close(same, torch.zeros(2), atol=1e-5, rtol=0)
    assert (different > same + 1e-6).all()


@pytest.mark.parametrize("name", ["lpips-alex", "dists"])
def test_baselines_give_a_gradient_to_dist_only(
    harness: ModuleType, generator: torch.Generator, name: str
) -> None:
    model = harness.build_method(name)
    dist, ref = _pair(generator, 2, 32, 32)
    dist.requires_grad_(True)
    model(dist, ref).sum().backward()
    assert dist.grad is not None and torch.isfinite(dist.grad).all()
    assert dist.grad.abs().sum() > 0
    assert all(p.grad is None for p in model.parameters())


def test_baselines_reject_mismatched_shapes(baselines: ModuleType) -> None:
    with pytest.raises(InputError, match="same shape"):
        baselines.LPIPS("alex")(torch.rand(1, 3, 64, 64), torch.rand(1, 3, 64, 32))
    with pytest.raises(InputError, match="'alex' or 'vgg'"):
        baselines.LPIPS("squeeze")


def test_l2_pooling_halves_and_preserves_constants(baselines: ModuleType) -> None:
    pool = baselines.L2Pooling(4)
    x = torch.full((1, 4, 16, 16), 0.5)
    y = pool(x)
    assert y.shape == (1, 4, 8, 8)
    # Away from the zero padding, the L2 mean of a constant is the constant.
    torch.testing.assert_close(y[..., 1:, 1:], torch.full((1, 4, 7, 7), 0.5))


# --------------------------------------------------------------------------- harness


def test_summarize_median_and_iqr(harness: ModuleType) -> None:
    t = harness.summarize([5.0, 1.0, 3.0, 2.0, 4.0], warmup=2)
    assert t.median_s == 3.0
    assert (t.q1_s, t.q3_s, t.iqr_s) == (2.0, 4.0, 2.0)
    assert (t.min_s, t.max_s, t.repeats, t.warmup) == (1.0, 5.0, 5, 2)
    single = harness.summarize([0.25])
    assert single.iqr_s == 0.0 and single.median_s == 0.25
    with pytest.raises(ValueError, match="at least one"):
        harness.summarize([])


def test_time_callable_counts_warmup_and_repeats(harness: ModuleType) -> None:
    calls = []
    timing = harness.time_callable(
        lambda: calls.append(1), warmup=2, min_repeats=3, max_repeats=4, budget_s=1e9
    )
    assert len(calls) == 2 + 4
    assert timing.repeats == 4 and timing.warmup == 2
    assert timing.min_s <= timing.q1_s <= timing.median_s <= timing.q3_s <= timing.max_s


def test_time_callable_stops_at_budget(harness: ModuleType) -> None:
    calls = []
    timing = harness.time_callable(
        lambda: calls.append(1), warmup=0, min_repeats=2, max_repeats=50, budget_s=0.0
    )
    assert timing.repeats == 2 and len(calls) == 2
    with pytest.raises(ValueError, match="min_repeats"):
        harness.time_callable(lambda: None, min_repeats=3, max_repeats=2)


def test_make_pair_is_deterministic_and_in_range(harness: ModuleType) -> None:
    d1, r1 = harness.make_pair(2, 40, 24)
    d2, r2 = harness.make_pair(2, 40, 24)
    assert d1.shape == r1.shape == (2, 3, 40, 24)
    assert torch.equal(d1, d2) and torch.equal(r1, r2)
    assert float(d1.min()) >= 0 and float(d1.max()) <= 1
    assert not torch.equal(d1, r1)


def test_environment_reports_threads_and_versions(harness: ModuleType) -> None:
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        env = harness.environment()
    finally:
        torch.set_num_threads(before)
    assert env["torch_num_threads"] == 1
    assert env["versions"]["torch"] == torch.__version__
    assert env["device"] == "cpu" and env["cpu_model"]
    assert harness.peak_rss_bytes() >= harness.current_rss_bytes() > 0


def test_unknown_method_is_rejected(harness: ModuleType) -> None:
    with pytest.raises(ValueError, match="unknown method"):
        harness.build_method("lpips-squeeze")


def test_subprocess_measures_peak_memory(harness: ModuleType) -> None:
    row = harness.measure_in_subprocess("psnr", batch=1, height=64, width=64, threads=1)
    assert "error" not in row, row.get("error")
    assert row["output_shape"] == [1]
    assert row["torch_num_threads"] == 1
    assert row["peak_rss_bytes"] >= row["rss_before_bytes"] > 10 * 2**20  # torch is loaded


def test_markdown_report_from_a_result(speed: dict[str, ModuleType]) -> None:
    harness, run_speed = speed["harness"], speed["run_speed"]
    timing = harness.summarize([0.1, 0.2]).to_dict()
    result = {
        "environment": harness.environment(),
        "weights": {"name": "random-official-width", "random": True},
        "throughput": [
            {
                "method": m,
                "height": 32,
                "width": 32,
                "batch": 1,
                "pairs_per_s": rate,
                "ratio_to_lpips_alex": rate / 10.0,
                "timing": timing,
                "peak_rss_bytes": 300 * 2**20,
                "peak_increment_bytes": 20 * 2**20,
            }
            for m, rate in (("lpips-alex", 10.0), ("psnr", 1000.0))
        ],
        "scaling": [
            {
                "method": "lpips-alex",
                "height": 256,
                "width": 256,
                "timing": timing,
                "peak_rss_bytes": 2**30,
            }
        ],
    }
    text = run_speed.markdown(result)
    assert "| psnr | 1,000 (100x) |" in text
    assert "| lpips-alex | 256 |" in text
    assert "random, official widths" in text
    assert "| lpips-alex | 300 (+20) |" in text
    assert "256 | 0.07 | 0.15 |" in text  # median of 0.1 and 0.2 s
