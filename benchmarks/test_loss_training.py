"""Does a rank surrogate help? Train one small regressor with MSE alone and MSE + each surrogate.

Run: ``pytest benchmarks/test_loss_training.py -m benchmark -s``
(JSON goes to ``$ASNA_BENCH_OUT/loss_training.json``, else a temporary folder).

Synthetic task: 10 features, a nonlinear target squashed onto a skewed
quality scale [0, 1] with heteroscedastic noise (noisier at low quality),
2,000 training items, 2,000 held-out items; an MLP 10-32-32-1 trained with
Adam (1e-3), batch 16 (the paper's), 1,500 steps, 5 seeds; the held-out SRCC
of each loss is reported as mean and standard deviation over seeds. The
seed fixes the data split noise and the network initialisation, and every
loss sees the same batches for a given seed.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from typing import Any

import pytest
import torch
from scipy.stats import spearmanr
from torch import Tensor

from asna_metric.train import (
    asna_training_loss,
    listwise_kl_loss,
    mse_loss,
    pearson_loss,
    rank_loss,
    soft_rank_loss,
)

pytestmark = pytest.mark.benchmark

SEEDS = (0, 1, 2, 3, 4)
STEPS = 1500
BATCH = 16
FEATURES = 10


LOSSES: dict[str, Callable[[Tensor, Tensor], Tensor]] = {
    "mse": lambda p, t: mse_loss(p, t),
    "mse+0.1*rank(pairwise)": lambda p, t: mse_loss(p, t) + 0.1 * rank_loss(p, t),
    "mse+1.0*rank(pairwise)": lambda p, t: mse_loss(p, t) + 1.0 * rank_loss(p, t),
    "mse+1.0*rank(paper16)": lambda p, t: mse_loss(p, t) + 1.0 * rank_loss(p, t, sorter="paper16"),
    "mse+1.0*soft_rank": lambda p, t: mse_loss(p, t) + 1.0 * soft_rank_loss(p, t),
    "mse+1.0*listwise_kl": lambda p, t: mse_loss(p, t) + 1.0 * listwise_kl_loss(p, t),
    "mse+1.0*pearson": lambda p, t: mse_loss(p, t) + 1.0 * pearson_loss(p, t),
    "asna(0.5,0.5,0.1)": lambda p, t: asna_training_loss(p, t),
}


def make_data(seed: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    g = torch.Generator().manual_seed(1000 + seed)
    x = torch.randn(4000, FEATURES, generator=g)
    w = torch.randn(FEATURES, generator=g) / FEATURES**0.5
    latent = torch.sin(2.0 * x[:, 0]) + x[:, 1] * x[:, 2] + torch.tanh(x @ w) + 0.5 * x[:, 3].abs()
    clean = torch.sigmoid(1.5 * latent - 0.5) ** 2  # skewed towards low quality
    noise = (0.05 + 0.15 * (1 - clean)) * torch.randn(4000, generator=g)
    y = clean + noise
    return x[:2000], y[:2000], x[2000:], clean[2000:]


def train(loss_fn: Callable[[Tensor, Tensor], Tensor], seed: int) -> float:
    x_tr, y_tr, x_te, y_te = make_data(seed)
    torch.manual_seed(seed)
    net = torch.nn.Sequential(
        torch.nn.Linear(FEATURES, 32),
        torch.nn.ReLU(),
        torch.nn.Linear(32, 32),
        torch.nn.ReLU(),
        torch.nn.Linear(32, 1),
    )
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    g = torch.Generator().manual_seed(seed)
    for _ in range(STEPS):
        idx = torch.randint(0, len(x_tr), (BATCH,), generator=g)
        loss = loss_fn(net(x_tr[idx]).squeeze(1), y_tr[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    with torch.no_grad():
        pred = net(x_te).squeeze(1)
    return float(spearmanr(pred.numpy(), y_te.numpy())[0])


def test_surrogates_in_training(write_json) -> None:
    results: dict[str, dict[str, Any]] = {}
    print(f"\nheld-out SRCC, MLP on synthetic data, {STEPS} steps, batch {BATCH}, seeds {SEEDS}")
    for name, fn in LOSSES.items():
        scores = [train(fn, s) for s in SEEDS]
        mean, std = statistics.mean(scores), statistics.stdev(scores)
        results[name] = {"srcc": scores, "mean": mean, "std": std}
        print(f"{name:>26}: {mean:.4f} +- {std:.4f}  " + " ".join(f"{s:.4f}" for s in scores))
    base = results["mse"]["srcc"]
    for name, r in results.items():
        if name != "mse":
            diffs = [a - b for a, b in zip(r["srcc"], base, strict=True)]
            r["paired_gain_vs_mse"] = {
                "mean": statistics.mean(diffs),
                "std": statistics.stdev(diffs),
            }
            print(
                f"{name:>26}: paired gain over MSE {statistics.mean(diffs):+.4f} "
                f"+- {statistics.stdev(diffs):.4f}"
            )
    write_json("loss_training.json", {"steps": STEPS, "batch": BATCH, "results": results})
    assert all(0.0 < r["mean"] <= 1.0 for r in results.values())
