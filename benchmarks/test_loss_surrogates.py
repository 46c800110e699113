"""Accuracy of the rank surrogates: sorter rank error and agreement with 1 - SRCC.

Run: ``pytest benchmarks/test_loss_surrogates.py -m benchmark -s``
(JSON goes to ``$ASNA_BENCH_OUT/loss_surrogates.json``, else a temporary folder).

Vectors here come from numpy's generator (beta, lognormal, normal, uniform),
not from the sorter's training sampler.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr

from asna_metric.train import (
    listwise_kl_loss,
    load_sorter,
    pearson_loss,
    rank_loss,
    soft_rank,
    soft_rank_loss,
)
from asna_metric.train.sorter import exact_ranks

pytestmark = pytest.mark.benchmark

SIZES = (8, 16, 32, 64, 128)
KINDS = ("normal", "uniform", "beta", "lognormal")


def draw(rng: np.random.Generator, kind: str, batch: int, n: int) -> np.ndarray:
    if kind == "normal":
        x = rng.normal(0.0, 2.0, (batch, n))
    elif kind == "uniform":
        x = rng.uniform(-10.0, 10.0, (batch, n))
    elif kind == "beta":  # quality scores piled up near the top of [0, 1]
        x = rng.beta(5.0, 2.0, (batch, n))
    else:  # lognormal, e.g. error-like scores
        x = rng.lognormal(0.0, 0.8, (batch, n))
    return x + 1e-4 * x.std() * rng.standard_normal(x.shape)  # ties-free


def test_sorter_rank_error(write_json) -> None:
    rng = np.random.default_rng(2024)
    sorters = {"pairwise": load_sorter("pairwise"), "paper16": load_sorter("paper16")}
    results: dict[str, dict[str, dict[str, float]]] = {}
    print("\nmean absolute rank error, positions (fresh vectors; target < 0.5)")
    print(f"{'n':>4} " + " ".join(f"{k:>10}" for k in KINDS) + "   method")
    for n in SIZES:
        x_by_kind = {
            k: torch.from_numpy(draw(rng, k, max(16, 32768 // n), n)).float() for k in KINDS
        }
        for method in ("pairwise", "paper16", "soft_rank(T=0.5)"):
            if method == "paper16" and n != 16:
                continue
            row = {}
            for kind, x in x_by_kind.items():
                with torch.no_grad():
                    est = sorters[method](x) if method in sorters else soft_rank(x, temperature=0.5)
                row[kind] = float((est - exact_ranks(x)).abs().mean() * (n - 1))
            results.setdefault(method, {})[str(n)] = row
            print(f"{n:>4} " + " ".join(f"{row[k]:>10.3f}" for k in KINDS) + f"   {method}")
    write_json("loss_surrogates_rank_error.json", {"mae_positions": results})
    worst = max(max(r.values()) for r in results["pairwise"].values())
    assert worst < 0.5, f"learned sorter rank error {worst:.3f} positions"


def test_surrogates_track_one_minus_srcc(write_json) -> None:
    rng = np.random.default_rng(7)
    pairs = 400
    surrogates = {
        "rank(pairwise)": lambda p, t: rank_loss(p, t),
        "rank(paper16)": lambda p, t: rank_loss(p, t, sorter="paper16"),
        "soft_rank(T=0.5)": lambda p, t: soft_rank_loss(p, t, temperature=0.5),
        "listwise_kl(T=1)": lambda p, t: listwise_kl_loss(p, t),
        "pearson": lambda p, t: pearson_loss(p, t),
    }
    results: dict[str, dict[str, float]] = {}
    print(
        "\nSpearman correlation between each surrogate and the true 1 - SRCC "
        f"({pairs} pairs per size; target > 0.95)"
    )
    print(f"{'n':>4} " + " ".join(f"{k:>17}" for k in surrogates))
    for n in SIZES:
        true, values = [], {k: [] for k in surrogates}
        for i in range(pairs):
            kind = KINDS[i % len(KINDS)]
            target = draw(rng, kind, 1, n)[0]
            # Correlation from -1 to 1 in a Gaussian copula, then a random monotone map.
            rho = rng.uniform(-1.0, 1.0)
            z = (target - target.mean()) / target.std()
            latent = rho * z + math.sqrt(1 - rho**2) * rng.standard_normal(n)
            pred = (
                np.exp(latent * rng.uniform(0.2, 1.0)) if i % 2 else latent * rng.uniform(0.01, 100)
            )
            true.append(1.0 - spearmanr(pred, target)[0])
            p, t = torch.from_numpy(pred).float(), torch.from_numpy(target).float()
            with torch.no_grad():
                for name, fn in surrogates.items():
                    if name == "rank(paper16)" and n != 16:
                        continue
                    values[name].append(float(fn(p, t)))
        row = {name: float(spearmanr(v, true)[0]) for name, v in values.items() if v}
        results[str(n)] = row
        print(f"{n:>4} " + " ".join(f"{row.get(k, float('nan')):>17.4f}" for k in surrogates))
    write_json("loss_surrogates_srcc.json", {"spearman_vs_true_1_minus_srcc": results})
    assert min(r["rank(pairwise)"] for r in results.values()) > 0.95
