from __future__ import annotations

from importlib.resources import files

import pytest
import torch

from asna_metric.errors import (
    InputError,
    UnknownWeightsError,
    WeightsIntegrityError,
    WeightsNotFoundError,
)
from asna_metric.train.sorter import (
    SORTERS,
    PairwiseSorter,
    PaperSorter,
    exact_ranks,
    fit_sorter,
    load_sorter,
    sample_vectors,
    save_sorter,
    smooth_ranks,
    sorter_metadata,
    standardize,
)

pytestmark = pytest.mark.usefixtures("one_thread")


def _mae_positions(sorter: torch.nn.Module, x: torch.Tensor) -> float:
    with torch.no_grad():
        return float((sorter(x) - exact_ranks(x)).abs().mean() * (x.shape[-1] - 1))


@pytest.mark.parametrize("name", list(SORTERS))
def test_shipped_weights_are_package_resources(name) -> None:
    resource = files("asna_metric.train").joinpath("_weights", SORTERS[name])
    assert resource.is_file()
    assert resource.read_bytes()[:8]  # readable without the network (guarded by conftest)
    meta = sorter_metadata(name)
    assert meta["seed"] and "train_sorter.py" in meta["train_command"]


@pytest.mark.parametrize("name", list(SORTERS))
def test_loaded_sorters_are_frozen_and_cached(name) -> None:
    sorter = load_sorter(name)
    assert not sorter.training
    assert not any(p.requires_grad for p in sorter.parameters())
    assert load_sorter(name) is sorter
    assert load_sorter(name, dtype=torch.float64) is not sorter


@pytest.mark.parametrize("n", [4, 16, 64, 256])
@pytest.mark.parametrize("kind", ["normal", "uniform", "skewed"])
def test_pairwise_sorter_is_accurate_at_any_length(n, kind, generator) -> None:
    x = sample_vectors(max(2, 1024 // n), n, generator=generator, kind=kind)
    assert _mae_positions(load_sorter("pairwise"), x) < 0.5


def test_paper_sorter_is_accurate_at_16_and_rejects_other_lengths(generator) -> None:
    sorter = load_sorter("paper16")
    assert _mae_positions(sorter, sample_vectors(256, 16, generator=generator)) < 1.2
    with pytest.raises(InputError, match="length 16"):
        sorter(torch.rand(2, 8))


def test_sorters_ignore_shift_and_scale(generator) -> None:
    x = sample_vectors(4, 16, generator=generator)
    for name in SORTERS:
        sorter = load_sorter(name)
        with torch.no_grad():
            torch.testing.assert_close(sorter(100 * x - 3), sorter(x), atol=1e-4, rtol=0)


def test_pairwise_sorter_is_permutation_equivariant_with_mean_one_half(generator) -> None:
    net = PairwiseSorter(hidden=8, context=3).double()
    x = torch.randn(3, 11, generator=generator, dtype=torch.float64)
    perm = torch.randperm(11, generator=generator)
    with torch.no_grad():
        out = net(x)
        torch.testing.assert_close(net(x[:, perm]), out[:, perm])
        torch.testing.assert_close(out.mean(-1), torch.full((3,), 0.5, dtype=torch.float64))
        assert net(x[0]).shape == (11,)


@pytest.mark.parametrize("name", list(SORTERS))
def test_shipped_sorters_gradcheck_float64(name, generator) -> None:
    sorter = load_sorter(name, dtype=torch.float64)
    x = torch.randn(2, 16, generator=generator, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(sorter, (x,), eps=1e-6, atol=1e-5)


def test_smooth_ranks_and_standardize(generator) -> None:
    x = sample_vectors(64, 32, generator=generator, kind="skewed")
    torch.testing.assert_close(smooth_ranks(x, 0.0), exact_ranks(x))
    smooth = smooth_ranks(x, 0.5)
    assert 0.0 < float((smooth - exact_ranks(x)).abs().mean() * 31) < 0.4
    torch.testing.assert_close(smooth.mean(-1), torch.full((64,), 0.5))
    z = standardize(x)
    torch.testing.assert_close(z.mean(-1), torch.zeros(64), atol=1e-5, rtol=0)
    torch.testing.assert_close(z.std(-1, unbiased=False), torch.ones(64), atol=1e-4, rtol=0)
    assert torch.equal(standardize(torch.full((2, 5), 3.0)), torch.zeros(2, 5))


def test_sample_vectors(generator) -> None:
    a = sample_vectors(5, 7, generator=torch.Generator().manual_seed(3))
    b = sample_vectors(5, 7, generator=torch.Generator().manual_seed(3))
    assert a.shape == (5, 7) and torch.equal(a, b)
    for kind in ("normal", "uniform", "skewed"):
        x = sample_vectors(50, 16, generator=generator, kind=kind)
        assert torch.isfinite(x).all()
        # no exact ties, so exact ranks are well defined
        assert all(len(torch.unique(row)) == 16 for row in x)
    with pytest.raises(InputError, match="kind"):
        sample_vectors(2, 4, kind="cauchy")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="n >= 2"):
        sample_vectors(2, 1)


def test_fit_sorter_learns(generator) -> None:
    net = PairwiseSorter(hidden=8, context=2)
    x = sample_vectors(64, 8, generator=generator)
    before = _mae_positions(net, x)
    log = fit_sorter(net, steps=60, lengths=(4, 8), pairs_per_step=4096, lr=1e-2, log_every=20)
    assert len(log) == 3 and not net.training
    assert _mae_positions(net, x) < before
    with pytest.raises(InputError, match="lengths"):
        fit_sorter(net, steps=1, lengths=(1,))


def test_save_and_load_roundtrip(tmp_path, generator) -> None:
    net = PaperSorter(length=4).eval()
    path = tmp_path / "s.safetensors"
    save_sorter(path, net, metadata={"seed": 7})
    loaded = load_sorter(path)
    x = torch.randn(3, 4, generator=generator)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), net(x))
    with pytest.raises(InputError, match="PairwiseSorter"):
        save_sorter(tmp_path / "x.safetensors", torch.nn.Linear(2, 2))


def test_load_errors(tmp_path) -> None:
    with pytest.raises(UnknownWeightsError, match="pairwise"):
        load_sorter("nope")
    with pytest.raises(WeightsNotFoundError):
        load_sorter(tmp_path / "missing.safetensors")
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a safetensors file")
    with pytest.raises(WeightsIntegrityError):
        load_sorter(bad)
    from safetensors.torch import save_file

    other = tmp_path / "other.safetensors"
    save_file({"w": torch.zeros(2)}, str(other))
    with pytest.raises(WeightsIntegrityError, match="not an asna_metric sorter"):
        load_sorter(other)
    with pytest.raises(InputError, match="length"):
        PaperSorter(length=1)
