"""Time a training step waits for on-the-fly pairs, as a fraction of the step.

A real step: the network of a shipped config (``configs/asna_quarter_cpu.toml``,
the recipe of the default weights asna-quarter-kadid-synth, or
``configs/asna_cpu.toml``) built with ``asna_metric.nets.build_net``,
forward + backward + Adam with an MSE loss, batch and crop from the config,
one torch thread in the main process (the configs' ``runtime.threads``).
The data: ``build_onthefly`` on the ``train`` split of the reference
photographs, drawn through an ``EpochSampler`` by a DataLoader with
``--workers`` worker processes (each one thread). The wait of a step is the
time ``next(loader)`` blocks; the fraction is ``wait / (wait + compute)``
over the measured steps, after warm-up.

Usage (from the repository root, data root from ASNA_SHARED_DATA)::

    OMP_NUM_THREADS=1 python benchmarks/speed/onthefly_wait.py \\
        --config configs/asna_quarter_cpu.toml --workers 1 2 --steps 30 \\
        --out benchmarks/speed/results/onthefly_wait.json
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import tomllib
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import write_result

from asna_metric.nets import build_net
from asna_metric.train.onthefly import build_onthefly
from asna_metric.train.pairs import EpochSampler

ROOT = Path(__file__).resolve().parents[2]


def measure(config: dict, refs: Path, workers: int, steps: int, warmup: int) -> dict:
    torch.set_num_threads(1)
    data, optim = config["data"], config["optim"]
    net = build_net(config["model"]["arch"], config["model"].get("net", {}))
    optimizer = torch.optim.Adam(net.parameters(), lr=optim["lr"])
    batch, crop = optim["batch_size"], data["crop_size"]
    total = (steps + warmup) * batch
    dataset = build_onthefly(refs, "train", crop_size=crop, pairs_per_epoch=total, seed=0)
    sampler = EpochSampler(len(dataset), samples_per_epoch=total, seed=0)
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=batch, sampler=sampler, num_workers=workers, drop_last=True
    )
    waits, computes = [], []
    iterator = iter(loader)
    for step in range(steps + warmup):
        started = time.perf_counter()
        dist, ref, quality = next(iterator)
        waited = time.perf_counter() - started
        started = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        loss = torch.nn.functional.mse_loss(net(dist, ref), quality)
        loss.backward()
        optimizer.step()
        computed = time.perf_counter() - started
        if step >= warmup:
            waits.append(waited)
            computes.append(computed)
    wait, compute = sum(waits), sum(computes)
    return {
        "workers": workers,
        "batch_size": batch,
        "crop": crop,
        "steps": steps,
        "wait_fraction": wait / (wait + compute),
        "wait_median_s": statistics.median(waits),
        "compute_median_s": statistics.median(computes),
        "step_median_s": statistics.median(w + c for w, c in zip(waits, computes, strict=True)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=ROOT / "configs" / "asna_quarter_cpu.toml")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    shared = Path(os.environ.get("ASNA_SHARED_DATA", ROOT / ".." / "shared" / "data"))
    refs = shared / "refs"
    if not refs.is_dir():
        raise SystemExit(f"reference photographs not found at {refs}; set ASNA_SHARED_DATA")
    config = tomllib.loads(args.config.read_text())
    results = []
    for workers in args.workers:
        result = measure(config, refs, workers, args.steps, args.warmup)
        results.append(result)
        print(
            f"{args.config.name}: workers {workers}, batch {result['batch_size']}, crop "
            f"{result['crop']}: wait {100 * result['wait_fraction']:.1f}% of the step "
            f"(median wait {result['wait_median_s'] * 1000:.0f} ms, compute "
            f"{result['compute_median_s'] * 1000:.0f} ms)"
        )
    write_result(args.out, config=str(args.config.resolve().relative_to(ROOT)), results=results)


if __name__ == "__main__":
    main()
