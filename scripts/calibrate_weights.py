"""Fit and store the affine calibration of an ensemble weights file.

Trained networks' raw scores are on a compressed scale (identical images
score well below 1). This script scores a seeded sample of *training* pairs
(the content-disjoint split's training side, so the held-out references stay
unseen), fits ``quality = scale * raw + offset`` by least squares, and
rewrites the weights file with the calibration in its metadata. The map is
affine and increasing: SRCC, KRCC and PLCC are unchanged.

Usage:
    python scripts/calibrate_weights.py WEIGHTS.safetensors --labels A.csv --labels B.csv \
        [--pairs 600] [--seed 0] [--val-fraction 0.2] [--out OUT.safetensors]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

import torch

from asna_metric._progress import progress
from asna_metric.data.readers import read_labels_csv
from asna_metric.data.splits import split_by_reference
from asna_metric.inputs import to_batch
from asna_metric.metric import ASNA
from asna_metric.weights import load_ensemble, save_ensemble, sha256_file


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("weights", type=Path)
    parser.add_argument("--labels", type=Path, action="append", required=True)
    parser.add_argument("--dataset", default="KADID-10k", help="score convention of the labels")
    parser.add_argument("--pairs", type=int, default=600, help="training pairs to score")
    parser.add_argument("--seed", type=int, default=0, help="seed of the split and the sample")
    parser.add_argument("--val-fraction", type=float, default=0.2)
    parser.add_argument("--out", type=Path, help="output file (default: rewrite WEIGHTS)")
    args = parser.parse_args(argv)

    records = []
    for csv in args.labels:
        records += list(read_labels_csv(csv, csv.parent, dataset=args.dataset))
    train, _ = split_by_reference(records, val_fraction=args.val_fraction, seed=args.seed)
    train = list(train)
    sample = random.Random(args.seed).sample(train, min(args.pairs, len(train)))

    nets, metadata = load_ensemble(args.weights)
    metric = ASNA.from_networks(nets, self_ensemble="none")  # raw, uncalibrated scores
    raw, target = [], []
    with torch.inference_mode():
        for record in progress(sample, desc="calibrate"):
            score = metric(
                to_batch(str(record.dist), name="dist"), to_batch(str(record.ref), name="ref")
            )
            raw.append(float(score))
            target.append(float(record.quality))
    x = torch.tensor(raw, dtype=torch.float64)
    y = torch.tensor(target, dtype=torch.float64)
    design = torch.stack([x, torch.ones_like(x)], dim=1)
    scale, offset = torch.linalg.lstsq(design, y.unsqueeze(1)).solution.squeeze(1).tolist()
    if scale <= 0:
        print(
            f"fitted scale {scale} is not positive: the network ranks pairs backwards",
            file=sys.stderr,
        )
        return 1
    residual = float(
        ((design @ torch.tensor([scale, offset], dtype=torch.float64)) - y).pow(2).mean().sqrt()
    )
    calibration = {
        "scale": scale,
        "offset": offset,
        "fitted_on": f"{len(sample)} training-split pairs of {[str(p) for p in args.labels]} "
        f"(seed {args.seed}, val_fraction {args.val_fraction}), self_ensemble none",
        "rmse": residual,
        "raw_range": [float(x.min()), float(x.max())],
    }
    reserved = {"asna_metric_format", "members", "name", "description", "asna_metric_version"}
    extra = {k: v for k, v in metadata.items() if k not in reserved}
    extra["calibration"] = json.dumps(calibration)
    out = args.out or args.weights
    save_ensemble(
        out,
        nets,
        name=metadata.get("name", out.stem),
        description=metadata.get("description", ""),
        extra_metadata=extra,
    )
    print(json.dumps({**calibration, "file": str(out), "sha256": sha256_file(out)}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
