"""Tests of asna_metric.functional: same numbers as the class, cached models."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from asna_metric import functional
from asna_metric.errors import InputError, UnknownWeightsError
from asna_metric.functional import asna, asna_map
from asna_metric.metric import ASNA
from asna_metric.nets import build_net
from asna_metric.weights import save_ensemble

TINY = {
    "encoder_widths": [4, 4, 4, 4],
    "decoder_widths": [4, 4, 4, 4],
    "head_widths": [4, 4],
    "head_hidden": 4,
}


@pytest.fixture(scope="module")
def weights_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    nets = [build_net("asna", {**TINY, "attention_width": 4}), build_net("siamese_diff", TINY)]
    for net in nets:
        with torch.no_grad():
            net.head.out.weight.mul_(30.0)
    path = tmp_path_factory.mktemp("weights") / "tiny.safetensors"
    save_ensemble(path, nets, name="tiny-functional")
    return path


@pytest.fixture(autouse=True)
def _fresh_cache() -> None:
    functional.clear_cache()


def _pair(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    ref = torch.rand(2, 3, 40, 52, generator=g)
    return (ref + 0.1 * torch.randn(ref.shape, generator=g)).clamp(0, 1), ref


@pytest.mark.parametrize("mode", ["none", "flips"])
def test_functional_equals_class(weights_file: Path, mode: str) -> None:
    dist, ref = _pair(0)
    metric = ASNA(weights_file, self_ensemble=mode)  # type: ignore[arg-type]
    expected = metric(dist, ref)
    got = asna(dist, ref, weights=weights_file, self_ensemble=mode)  # type: ignore[arg-type]
    assert torch.equal(got, expected)
    quality, weights = asna_map(
        dist,
        ref,
        weights=str(weights_file),
        self_ensemble=mode,  # type: ignore[arg-type]
        return_weights=True,
    )
    expected_q, expected_w = metric.map(dist, ref, return_weights=True)
    assert torch.equal(quality, expected_q) and torch.equal(weights, expected_w)


def test_models_are_cached_per_options(weights_file: Path) -> None:
    dist, ref = _pair(1)
    asna(dist, ref, weights=weights_file, self_ensemble="none")
    asna(dist, ref, weights=str(weights_file), self_ensemble="none", device="cpu")
    asna_map(dist, ref, weights=weights_file, self_ensemble="none")
    info = functional._cached_metric.cache_info()
    assert (info.misses, info.hits) == (1, 2)
    asna(dist, ref, weights=weights_file, self_ensemble="flips")
    assert functional._cached_metric.cache_info().misses == 2


def test_functional_gradients(weights_file: Path) -> None:
    dist, ref = _pair(2)
    dist.requires_grad_(True)
    asna(dist, ref, weights=weights_file, self_ensemble="none").sum().backward()
    assert dist.grad is not None and dist.grad.abs().sum() > 0


def test_functional_errors(weights_file: Path, tmp_path: Path) -> None:
    dist, ref = _pair(3)
    with pytest.raises(UnknownWeightsError):
        asna(dist, ref, weights="no-such-weights")
    with pytest.raises(InputError, match="self_ensemble"):
        asna(dist, ref, weights=weights_file, self_ensemble="all")  # type: ignore[arg-type]
    with pytest.raises(FileNotFoundError):
        asna(dist, ref, weights=tmp_path / "missing.safetensors")
