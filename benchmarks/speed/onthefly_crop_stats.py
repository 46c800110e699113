"""Whole photograph then crop, or a window around the crop: statistics and cost per KADID type.

For each type and level, on ``--photos`` photographs of the ``val`` split
(one random crop each, the same crop and noise seed in both modes), the
on-the-fly dataset makes the distorted crop twice: from the whole
photograph (the default, KADID's way: its generator min-max maps whole
images) and from a window of the crop plus ``--margin`` pixels. Printed per
type: PSNR (dB, of the mean squared error over the crops) and mean SSIM
of the crops against their reference in each mode, the differences, and
the milliseconds per item of each mode. A type may be distorted on a window
(``window_types``) when its differences stay within ``--tolerance`` (0.02 dB
and 0.02 SSIM by default).

Usage (from the repository root, data root from ASNA_SHARED_DATA)::

    OMP_NUM_THREADS=1 python benchmarks/speed/onthefly_crop_stats.py --photos 8 \\
        --out benchmarks/speed/results/onthefly_crop_stats.json
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import write_result

from asna_metric.data.baselines import ssim
from asna_metric.data.distortions import DISTORTIONS
from asna_metric.train.onthefly import OnTheFlyItem, build_onthefly

ROOT = Path(__file__).resolve().parents[2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=8)
    parser.add_argument("--crop", type=int, default=96)
    parser.add_argument("--margin", type=int, default=32)
    parser.add_argument("--levels", type=int, nargs="+", default=[1, 3, 5])
    parser.add_argument("--types", type=int, nargs="+", default=sorted(DISTORTIONS))
    parser.add_argument("--tolerance", type=float, default=0.02)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    shared = Path(os.environ.get("ASNA_SHARED_DATA", ROOT / ".." / "shared" / "data"))
    common = {"crop_size": args.crop, "pairs_per_epoch": args.photos, "seed": 0}
    whole = build_onthefly(shared / "refs", "val", window_types=(), **common)  # type: ignore[arg-type]
    window = build_onthefly(shared / "refs", "val", window_types=args.types, **common)  # type: ignore[arg-type]
    window.margin = args.margin
    step = max(1, len(whole.photos) // args.photos)
    rows = []
    print(
        "type  name          PSNR whole/window (diff)   SSIM whole/window (diff)   ms whole/window"
    )
    for type_id in args.types:
        stats: dict[str, list[float]] = {k: [] for k in ("pw", "pc", "sw", "sc", "tw", "tc")}
        for level in args.levels:
            for k in range(args.photos):
                photo = whole.cache.get(whole.photos[k * step])
                window.cache.get(window.photos[k * step])
                base = whole.plan(k * step, size=(photo.shape[1], photo.shape[2]))
                plan = OnTheFlyItem(
                    k * step, base.top, base.left, type_id, level, base.seed, base.augment_seed
                )
                for key, dataset in (("w", whole), ("c", window)):
                    started = time.perf_counter()
                    dist, ref, _ = dataset.render(plan)
                    stats["t" + key].append(time.perf_counter() - started)
                    d, r = dist.float().div(255).unsqueeze(0), ref.float().div(255).unsqueeze(0)
                    stats["p" + key].append(float((d - r).square().mean()))
                    stats["s" + key].append(float(ssim(d, r)))
        mean = {k: sum(v) / len(v) for k, v in stats.items()}
        # PSNR of the mean squared error: identical crops (infinite PSNR) stay finite.
        for key in ("pw", "pc"):
            mean[key] = 10 * math.log10(1.0 / max(mean[key], 1e-12))
        row = {
            "type": type_id,
            "name": DISTORTIONS[type_id].name,
            "psnr_whole": mean["pw"],
            "psnr_window": mean["pc"],
            "ssim_whole": mean["sw"],
            "ssim_window": mean["sc"],
            "ms_whole": 1000 * mean["tw"],
            "ms_window": 1000 * mean["tc"],
        }
        row["psnr_diff"] = row["psnr_window"] - row["psnr_whole"]
        row["ssim_diff"] = row["ssim_window"] - row["ssim_whole"]
        row["within_tolerance"] = (
            abs(row["psnr_diff"]) <= args.tolerance and abs(row["ssim_diff"]) <= args.tolerance
        )
        rows.append(row)
        print(
            f"{type_id:>4}  {row['name']:<24}  {row['psnr_whole']:6.2f}/{row['psnr_window']:6.2f} "
            f"({row['psnr_diff']:+.3f})   {row['ssim_whole']:.3f}/{row['ssim_window']:.3f} "
            f"({row['ssim_diff']:+.4f})   {row['ms_whole']:6.1f}/{row['ms_window']:6.1f}"
            + ("  ok" if row["within_tolerance"] else "")
        )
    n = len(rows)
    print(
        f"mean ms per item: whole {sum(r['ms_whole'] for r in rows) / n:.1f}, window "
        f"{sum(r['ms_window'] for r in rows) / n:.1f}; within tolerance: "
        f"{[r['type'] for r in rows if r['within_tolerance']]}"
    )
    write_result(
        args.out,
        photos=args.photos,
        crop=args.crop,
        margin=args.margin,
        levels=args.levels,
        tolerance=args.tolerance,
        rows=rows,
    )


if __name__ == "__main__":
    main()
