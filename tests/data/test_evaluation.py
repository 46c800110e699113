"""Correlation statistics, the logistic fit and bootstrap intervals."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from scipy import optimize, stats

from asna_metric.data.evaluation import (
    bootstrap_ci,
    evaluate,
    fit_logistic,
    krcc,
    logistic4,
    plcc,
    plcc_fitted,
    rmse_fitted,
    srcc,
)
from asna_metric.errors import InputError


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(7)


def _reference_logistic(x: np.ndarray, b1: float, b2: float, b3: float, b4: float) -> np.ndarray:
    # The VQEG formula written out independently of the package.
    return (b1 - b2) / (1.0 + np.exp(-(x - b3) / abs(b4))) + b2


def test_rank_and_linear_correlations_match_scipy(rng: np.random.Generator) -> None:
    x = rng.normal(size=60)
    y = x + rng.normal(scale=0.8, size=60)
    assert srcc(x, y) == pytest.approx(stats.spearmanr(x, y).statistic, abs=1e-12)
    assert krcc(x, y) == pytest.approx(stats.kendalltau(x, y).statistic, abs=1e-12)
    assert plcc(x, y) == pytest.approx(stats.pearsonr(x, y).statistic, abs=1e-12)
    assert srcc(-x, y) == pytest.approx(-srcc(x, y))


def test_logistic_plcc_matches_an_independent_fit(rng: np.random.Generator) -> None:
    x = rng.uniform(0.0, 40.0, size=200)
    y = _reference_logistic(x, 4.8, 1.1, 22.0, 4.0) + rng.normal(scale=0.15, size=200)
    params, _ = optimize.curve_fit(
        _reference_logistic, x, y, p0=[y.max(), y.min(), np.median(x), np.std(x)], maxfev=10000
    )
    expected = stats.pearsonr(_reference_logistic(x, *params), y).statistic
    fit = fit_logistic(x, y)
    assert fit.kind == "logistic"
    assert plcc_fitted(x, y) == pytest.approx(expected, abs=1e-6)
    assert plcc_fitted(x, y) > plcc(x, y)  # the fit removes the non-linearity
    residual = np.sqrt(np.mean((_reference_logistic(x, *params) - y) ** 2))
    assert rmse_fitted(x, y) == pytest.approx(residual, rel=1e-5)


def test_exact_logistic_relation_gives_unit_plcc_either_direction() -> None:
    x = np.linspace(-3.0, 3.0, 50)
    y = logistic4(x, 1.0, 0.0, 0.5, 0.7)
    assert plcc(x, y) < 0.99
    assert plcc_fitted(x, y) == pytest.approx(1.0, abs=1e-6)
    # a decreasing metric (a distance): the fit bends the other way
    assert plcc_fitted(-x, y) == pytest.approx(1.0, abs=1e-6)
    assert srcc(-x, y) == pytest.approx(-1.0)


def test_fit_falls_back_to_a_line() -> None:
    tiny = fit_logistic([0.1, 0.5, 0.2, 0.9], [1.0, 3.0, 2.0, 4.0])
    assert tiny.kind == "linear"  # four points cannot pin four parameters
    constant = evaluate([0.5] * 6, [1, 2, 3, 4, 5, 6], bootstrap=0)
    assert constant["fit"]["kind"] == "linear"
    assert math.isnan(constant["srcc"]) and math.isnan(constant["plcc"])
    assert math.isnan(constant["krcc"])


def test_bootstrap_intervals(rng: np.random.Generator) -> None:
    x = rng.uniform(size=80)
    y = np.sqrt(x) + rng.normal(scale=0.1, size=80)
    result = evaluate(x, y, bootstrap=200, seed=3)
    for name in ("srcc", "plcc", "plcc_raw", "krcc", "rmse"):
        low, high = result["ci"][name]
        assert low <= result[name] <= high, name
        assert low < high
    again = evaluate(x, y, bootstrap=200, seed=3)
    assert again["ci"] == result["ci"]
    other = evaluate(x, y, bootstrap=200, seed=4)
    assert other["ci"] != result["ci"]
    narrow = bootstrap_ci(x, y, resamples=200, level=0.5, seed=3)
    assert narrow["srcc"][1] - narrow["srcc"][0] < result["ci"]["srcc"][1] - result["ci"]["srcc"][0]
    refitted = bootstrap_ci(x, y, resamples=30, seed=3, refit=True)
    assert refitted["plcc"][0] <= result["plcc"] <= refitted["plcc"][1]
    assert refitted["srcc"] == pytest.approx(bootstrap_ci(x, y, resamples=30, seed=3)["srcc"])


def test_per_type_breakdown(rng: np.random.Generator) -> None:
    x = rng.uniform(size=30)
    y = x.copy()
    y[20:] = 1.0 - x[20:]  # type "c" ranks backwards
    types = ["a"] * 10 + ["b"] * 10 + ["c"] * 8 + ["d"] * 2
    y[28:] = x[28:]
    result = evaluate(x, y, types=types, bootstrap=0)
    assert list(result["per_type"]) == ["a", "b", "c", "d"]
    assert result["per_type"]["a"]["srcc"] == pytest.approx(1.0)
    assert result["per_type"]["a"]["n"] == 10
    assert result["per_type"]["c"]["srcc"] == pytest.approx(-1.0)
    assert result["per_type"]["d"] == {"n": 2}
    assert result["ci"] == {} and result["bootstrap"] == 0
    json.dumps(result)  # serialisable as is


def test_accepts_tensors_and_columns() -> None:
    pred = torch.tensor([[0.1], [0.4], [0.35], [0.8], [0.9]])
    target = [1.0, 2.0, 2.5, 4.0, 4.5]
    assert srcc(pred, target) == pytest.approx(0.9)


@pytest.mark.parametrize(
    ("pred", "target", "match"),
    [
        ([1.0, 2.0, 3.0], [1.0, 2.0], "same length"),
        ([1.0, 2.0], [1.0, 2.0], "at least 3 pairs"),
        ([1.0, float("nan"), 3.0], [1.0, 2.0, 3.0], r"1 of 3 values are NaN.*indices \[1\]"),
        ([[1.0, 2.0], [3.0, 4.0]], [1.0, 2.0, 3.0, 4.0], "one-dimensional"),
        (["a", "b", "c"], [1.0, 2.0, 3.0], "sequence of numbers"),
    ],
)
def test_bad_inputs(pred: object, target: object, match: str) -> None:
    with pytest.raises(InputError, match=match):
        evaluate(pred, target, bootstrap=0)


def test_bad_options() -> None:
    x, y = [1.0, 2.0, 3.0, 4.0], [1.0, 3.0, 2.0, 4.0]
    with pytest.raises(InputError, match="one type per pair"):
        evaluate(x, y, types=["a"], bootstrap=0)
    with pytest.raises(InputError, match="at least 10"):
        evaluate(x, y, bootstrap=5)
    with pytest.raises(InputError, match="level"):
        bootstrap_ci(x, y, level=1.5)
