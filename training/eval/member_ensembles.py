"""Accuracy of single networks and of their two-member average, from cached benchmark predictions.

An ensemble's raw score is the mean of its members' raw scores (the
calibration is affine and increasing, so it changes no SRCC, KRCC or PLCC
after the logistic fit), so the two-member figures follow from the members'
per-pair predictions that the accuracy benchmark cached. Run from the
repository root after the two benchmark runs of ``training/reproduce.sh``
step 5 (they fill ``runs/bench_cache_eff`` and ``runs/bench_cache_asna``; the runs'
``best.safetensors``, not kept in git, come from its training runs, see
``training/runs/README.md``)::

    python training/eval/member_ensembles.py
"""

import csv
import json
from collections import defaultdict
from pathlib import Path

import numpy as np

from asna_metric.data.evaluation import evaluate
from asna_metric.data.readers import read_labels_csv
from asna_metric.weights import sha256_file

CACHES = (
    "runs/bench_cache_eff/KADID-synth.predictions.csv",
    "runs/bench_cache_asna/KADID-synth.predictions.csv",
)
RUNS = {
    "efficientnet_lite0": "training/runs/efficientnet_lite0_cpu/best.safetensors",
    "asna": "training/runs/asna_cpu/best.safetensors",
    "efficientnet_lite0 (leave-types-out)": (
        "training/runs/efficientnet_lite0_cpu_leave_types_out/best.safetensors"
    ),
    "asna (leave-types-out)": "training/runs/asna_cpu_leave_types_out/best.safetensors",
    "efficientnet_lite0 anchored": "training/runs/efficientnet_lite0_anchored_cpu/best.safetensors",
    "efficientnet_lite0 anchored (leave-types-out)": (
        "training/runs/efficientnet_lite0_anchored_cpu_leave_types_out/best.safetensors"
    ),
}
PAIRINGS = {
    "val-refs (2,250 pairs)": ("efficientnet_lite0", "asna"),
    "val-refs x held-out types (450 pairs)": (
        "efficientnet_lite0 (leave-types-out)",
        "asna (leave-types-out)",
    ),
    "anchored: val-refs (2,250 pairs)": ("efficientnet_lite0 anchored", "asna"),
    "anchored: val-refs x held-out types (450 pairs)": (
        "efficientnet_lite0 anchored (leave-types-out)",
        "asna (leave-types-out)",
    ),
}

predictions: dict[str, dict[tuple[str, str], float]] = defaultdict(dict)
for cache in CACHES:
    with open(cache, newline="") as handle:
        for row in csv.DictReader(handle):
            predictions[row["metric"]][(row["dist"], row["ref"])] = float(row["prediction"])
quality = {}
for name in ("kodak24", "cbsd68"):
    root = Path("runs/synth") / name
    for r in read_labels_csv(root / "labels.csv", root, dataset="KADID-10k"):
        key = (
            f"{name}/{r.dist.relative_to(root).as_posix()}",
            f"{name}/{r.ref.relative_to(root).as_posix()}",
        )
        quality[key] = (r.quality, r.dis_type)


def cached(run: str) -> dict[tuple[str, str], float]:
    """The benchmark's cached predictions of one run's ``best.safetensors``."""
    prefix = f"asna@best.safetensors#{sha256_file(RUNS[run])[:12]}/"
    (metric,) = [m for m in predictions if m.startswith(prefix)]
    return predictions[metric]


result = {}
for subset, (first, second) in PAIRINGS.items():
    a, b = cached(first), cached(second)
    keys = sorted(a)
    target = np.array([quality[k][0] for k in keys])
    types = [quality[k][1] for k in keys]
    rows = {}
    for label, pred in (
        (first, [a[k] for k in keys]),
        (second, [b[k] for k in keys]),
        ("mean of the two", [(a[k] + b[k]) / 2 for k in keys]),
    ):
        stats = evaluate(np.array(pred), target, types=types, bootstrap=1000, seed=0)
        rows[label] = {key: stats[key] for key in ("n", "srcc", "plcc", "krcc", "ci")}
        ci = stats["ci"]
        figures = "  ".join(
            f"{key.upper()} {stats[key]:.3f} [{ci[key][0]:.3f}, {ci[key][1]:.3f}]"
            for key in ("srcc", "plcc", "krcc")
        )
        print(f"{subset:48s} {label:38s} {figures}")
    result[subset] = rows
Path("training/eval/member_ensembles.json").write_text(json.dumps(result, indent=2) + "\n")
