"""Pairs per second of the KADID-10k distortions (:mod:`asna_metric.data.distortions`), by type.

For each of the 25 types and each image size, one timed call makes the five
levels of one image (five pairs, each level with its own seeded generator, as
``asna-metric synth`` does); the figure is ``5 / median`` pairs per second, and
"overall" is all 125 pairs of one image over the sum of the 25 medians. The
image is a deterministic smooth random picture (``harness.make_pair``'s
reference) unless ``--photo`` names a photograph, which is centre-cropped or
resized to each size. Sizes: KADID's 512x384 and the 256x256 training crop.

Usage (from the repository root)::

    OMP_NUM_THREADS=1 python benchmarks/speed/synthesis_speed.py --threads 1 \\
        --out benchmarks/speed/results/synthesis_speed.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness

from asna_metric.data.distortions import DISTORTIONS, distort

SIZES = ((384, 512), (256, 256))  # (height, width)


def _image(height: int, width: int, photo: Path | None) -> torch.Tensor:
    if photo is None:
        return harness.make_pair(1, height, width, seed=0)[1]
    from PIL import Image

    with Image.open(photo) as image:
        rgb = image.convert("RGB")
        scale = max(height / rgb.height, width / rgb.width)
        if scale > 1:
            size = (round(rgb.width * scale + 0.5), round(rgb.height * scale + 0.5))
            rgb = rgb.resize(size, Image.Resampling.BICUBIC)
        left, top = (rgb.width - width) // 2, (rgb.height - height) // 2
        array = np.array(rgb.crop((left, top, left + width, top + height)), dtype=np.uint8)
    return torch.from_numpy(array).permute(2, 0, 1).unsqueeze(0).float() / 255.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--photo", type=Path, default=None, help="photograph to distort")
    parser.add_argument("--budget", type=float, default=3.0, help="seconds per measurement")
    parser.add_argument("--types", type=int, nargs="*", default=sorted(DISTORTIONS))
    parser.add_argument("--out", type=Path, default=None, help="JSON output path")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    results: dict[str, dict[str, dict[str, float]]] = {}
    for height, width in SIZES:
        image = _image(height, width, args.photo)
        key = f"{width}x{height}"
        results[key] = {}
        for dist_type in args.types:

            def five_levels(t: int = dist_type, x: torch.Tensor = image) -> None:
                for level in range(1, 6):
                    distort(x, t, level, generator=torch.Generator().manual_seed(level))

            timing = harness.time_callable(
                five_levels, warmup=1, min_repeats=3, max_repeats=10, budget_s=args.budget
            )
            results[key][str(dist_type)] = {
                "pairs_per_s": 5 / timing.median_s,
                "median_s_per_pair": timing.median_s / 5,
                "iqr_s_per_pair": timing.iqr_s / 5,
            }
        total = sum(r["median_s_per_pair"] for r in results[key].values())
        results[key]["overall"] = {
            "pairs_per_s": len(args.types) / total,
            "median_s_per_pair": total / len(args.types),
            "iqr_s_per_pair": float("nan"),
        }

    header = f"{'type':<28}" + "".join(f"{key + ' pairs/s':>20}" for key in results)
    print(header)
    for name in [str(t) for t in args.types] + ["overall"]:
        label = "overall" if name == "overall" else f"{name:>2} {DISTORTIONS[int(name)].name}"
        cells = "".join(f"{results[key][name]['pairs_per_s']:>20.2f}" for key in results)
        print(f"{label:<28}{cells}")
    if args.out is not None:
        payload = {
            "benchmark": "synthesis_speed",
            "photo": str(args.photo) if args.photo else "harness.make_pair(seed=0) reference",
            "environment": harness.environment("cpu"),
            "results": results,
        }
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(payload, indent=1, allow_nan=True) + "\n")
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
