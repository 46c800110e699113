"""Time a training step waits for on-the-fly pairs, as a fraction of the step.

A real step: the network of a shipped config (``configs/asna_quarter_cpu.toml``,
the recipe of the default weights asna-quarter-kadid-synth, or
``configs/asna_cpu.toml``) built with ``asna_metric.nets.build_net``,
forward + backward + Adam with an MSE loss, batch and crop from the config,
one torch thread in the main process (the configs' ``runtime.threads``).
The data: ``build_onthefly`` on the ``train`` split of the reference
photographs, drawn through a ``DistortionGroupSampler`` (as the trainer does
with ``data.source = "onthefly"``; ``--crops-per-distortion 1`` is the plain
``EpochSampler`` draw) by a DataLoader with ``--workers`` worker processes
(each one thread). The wait of a step is the time ``next(loader)`` blocks;
the fraction is ``wait / (wait + compute)`` over the measured steps, after
warm-up. The distortion-cache hit rate is that of the measured run: the
DataLoader hands batch ``b`` to worker ``b % workers``, and the script
replays those lookups (keys only, no pixels) through one cache per worker.
The load average of the machine is printed before and after each run (the
machine may be shared).

Usage (from the repository root, data root from ASNA_SHARED_DATA)::

    OMP_NUM_THREADS=1 python benchmarks/speed/onthefly_wait.py \\
        --config configs/asna_quarter_cpu.toml --workers 1 2 --crops-per-distortion 1 8 \\
        --steps 30 --out benchmarks/speed/results/onthefly_wait.json
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
from asna_metric.train.onthefly import DistortionCache, DistortionGroupSampler, build_onthefly

ROOT = Path(__file__).resolve().parents[2]


def hit_rate(dataset, sampler, batch: int, workers: int, cache_bytes: int) -> float:
    """Replay the run's distortion-cache lookups, one cache per worker."""
    from PIL import Image

    sizes: dict[int, tuple[int, int]] = {}
    caches = [DistortionCache(cache_bytes) for _ in range(max(workers, 1))]
    lookups = 0
    for position, item in enumerate(sampler):
        worker = (position // batch) % max(workers, 1)
        photo = item[0] % len(dataset.photos)
        if photo not in sizes:
            with Image.open(dataset.photos[photo]) as image:
                sizes[photo] = (image.height, image.width)
        plan = dataset.plan(item, size=sizes[photo])
        if not plan.dist_type:
            continue
        key = dataset.distortion_key(plan, sizes[photo])
        lookups += 1
        height, width = sizes[photo]
        if caches[worker].get(key) is None:
            caches[worker].put(key, torch.empty(3, height, width, dtype=torch.uint8))
    hits = sum(c.hits for c in caches)
    return hits / max(lookups, 1)


def measure(config: dict, refs: Path, workers: int, k: int, steps: int, warmup: int) -> dict:
    torch.set_num_threads(1)
    data, optim = config["data"], config["optim"]
    net = build_net(config["model"]["arch"], config["model"].get("net", {}))
    optimizer = torch.optim.Adam(net.parameters(), lr=optim["lr"])
    batch, crop = optim["batch_size"], data["crop_size"]
    total = (steps + warmup) * batch
    cache_bytes = data.get("distortion_cache_mb", 64) * 2**20
    dataset = build_onthefly(
        refs,
        "train",
        crop_size=crop,
        pairs_per_epoch=total,
        seed=0,
        identity_rate=data.get("identity_rate", 0.05),
        distortion_cache_bytes=cache_bytes,
    )
    sampler = DistortionGroupSampler(
        len(dataset),
        samples_per_epoch=total,
        seed=0,
        crops_per_distortion=k,
        batch_size=batch,
        num_photos=len(dataset.photos),
    )
    hits = hit_rate(dataset, sampler, batch, workers, cache_bytes)
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=batch, sampler=sampler, num_workers=workers, drop_last=True
    )
    load_before = os.getloadavg()
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
        "crops_per_distortion": k,
        "batch_size": batch,
        "crop": crop,
        "steps": steps,
        "warmup": warmup,
        "wait_fraction": wait / (wait + compute),
        "wait_median_s": statistics.median(waits),
        "wait_mean_s": wait / len(waits),
        "compute_median_s": statistics.median(computes),
        "step_median_s": statistics.median(w + c for w, c in zip(waits, computes, strict=True)),
        "distortion_cache_hit_rate": hits,
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=ROOT / "configs" / "asna_quarter_cpu.toml")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--crops-per-distortion", type=int, nargs="+", default=[1, 8])
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
    for k in args.crops_per_distortion:
        for workers in args.workers:
            result = measure(config, refs, workers, k, args.steps, args.warmup)
            results.append(result)
            print(
                f"{args.config.name}: workers {workers}, crops/distortion {k}, batch "
                f"{result['batch_size']}, crop {result['crop']}: wait "
                f"{100 * result['wait_fraction']:.1f}% of the step (median wait "
                f"{result['wait_median_s'] * 1000:.0f} ms, mean "
                f"{result['wait_mean_s'] * 1000:.0f} ms, compute "
                f"{result['compute_median_s'] * 1000:.0f} ms), cache hits "
                f"{100 * result['distortion_cache_hit_rate']:.0f}%, load "
                f"{result['load_average_before'][0]:.1f} -> {result['load_average_after'][0]:.1f}",
                flush=True,
            )
    write_result(args.out, config=str(args.config.resolve().relative_to(ROOT)), results=results)


if __name__ == "__main__":
    main()
