"""Pairs per second of ``asna-metric score-dir`` on a folder of PNG pairs, by worker count.

Writes ``--pairs`` deterministic 512x384 pairs (``harness.make_pair``, one seed
per pair) as 8-bit PNGs into a temporary folder (or ``--folder``), then runs
the command line as a user would, once per ``--workers`` value, into a fresh
CSV each time, and reports wall time, pairs per second and the number of rows
written. Process start-up and weight loading are included: that is what a
user waits for.

Usage (from the repository root)::

    python benchmarks/speed/score_dir_check.py --pairs 200 --workers 0 1 \\
        --out benchmarks/speed/results/score_dir.json
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness


def write_pairs(folder: Path, pairs: int, height: int, width: int) -> None:
    """``folder/dist/NNNN.png`` and ``folder/ref/NNNN.png`` (skips files already there)."""
    for sub in ("dist", "ref"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    for i in range(pairs):
        name = f"{i:04d}.png"
        if (folder / "dist" / name).exists() and (folder / "ref" / name).exists():
            continue
        dist, ref = harness.make_pair(1, height, width, seed=i)
        for sub, image in (("dist", dist), ("ref", ref)):
            array = (image[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
            Image.fromarray(array).save(folder / sub / name)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=200)
    parser.add_argument("--height", type=int, default=384)
    parser.add_argument("--width", type=int, default=512)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--threads", type=int, default=1, help="OMP_NUM_THREADS of the command")
    parser.add_argument("--folder", type=Path, help="where the pairs are written (kept)")
    parser.add_argument("--out", type=Path, help="JSON result file")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.folder or Path(tmp) / "pairs"
        write_pairs(folder, args.pairs, args.height, args.width)
        rows = []
        for workers in args.workers:
            csv_path = Path(tmp) / f"scores-w{workers}.csv"
            command = [
                sys.executable, "-m", "asna_metric.cli", "score-dir",
                str(folder / "dist"), str(folder / "ref"),
                "--out", str(csv_path), "--workers", str(workers), "--device", "cpu",
            ]  # fmt: skip
            env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
            start = time.perf_counter()
            subprocess.run(command, check=True, env=env, stdout=subprocess.DEVNULL)
            seconds = time.perf_counter() - start
            with csv_path.open(newline="") as handle:
                scored = [r for r in csv.DictReader(handle) if r["status"] == "ok"]
            row = {
                "workers": workers,
                "threads": args.threads,
                "seconds": round(seconds, 2),
                "pairs_per_second": round(len(scored) / seconds, 3),
                "rows_ok": len(scored),
            }
            rows.append(row)
            print(
                f"workers={workers}: {len(scored)} pairs in {seconds:.1f} s = "
                f"{row['pairs_per_second']:.2f} pairs/s",
                flush=True,
            )
    harness.write_result(args.out, size=[args.height, args.width], pairs=args.pairs, results=rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
