"""Does ``torch.compile`` make ASNA faster on this machine? Prints and records the answer.

Times ``ASNA(self_ensemble="none")`` with the default weights eagerly, after
``metric.compile()`` and after ``metric.compile(dynamic=True)`` (inductor
backend), and reports the per-pair medians, the first call (which compiles),
the first call at a second image size (which recompiles unless dynamic) and
the largest score difference from the eager result.

Usage (from the repository root)::

    python benchmarks/speed/compile_check.py --threads 1 --out benchmarks/speed/results/compile.json

Compilation needs a C++ compiler on the CPU (inductor generates C++); it
recompiles for every new input shape (``dynamic=None`` lets torch decide
after the second shape), which is why the compile time is reported beside the
gain.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness

from asna_metric import ASNA


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--height", type=int, default=384)
    parser.add_argument("--width", type=int, default=512)
    parser.add_argument("--budget", type=float, default=3.0, help="seconds of timed calls")
    parser.add_argument("--out", type=Path, help="JSON result file")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    dist, ref = harness.make_pair(1, args.height, args.width)
    # A second size: what a new shape costs (recompilation) once compiled.
    dist2, ref2 = harness.make_pair(1, args.height + 64, args.width - 64)
    rows = []
    expected = None
    with torch.inference_mode():
        for label, options in (
            ("eager", None),
            ("compile()", {}),
            ("compile(dynamic=True)", {"dynamic": True}),
        ):
            metric = ASNA(self_ensemble="none")
            if options is not None:
                metric.compile(**options)
            start = time.perf_counter()
            score = metric(dist, ref)
            first_s = time.perf_counter() - start
            start = time.perf_counter()
            metric(dist2, ref2)
            new_shape_s = time.perf_counter() - start
            timing = harness.time_callable(lambda m=metric: m(dist, ref), budget_s=args.budget)
            expected = score if expected is None else expected
            row = {
                "mode": label,
                "first_call_s": round(first_s, 2),
                "new_shape_first_call_s": round(new_shape_s, 2),
                "median_ms": round(timing.median_s * 1000, 2),
                "iqr_ms": round(timing.iqr_s * 1000, 2),
                "score_difference": float((score - expected).abs().max()),
            }
            rows.append(row)
            print(
                f"{label:>22}: {row['median_ms']:.1f} ms per pair (IQR {row['iqr_ms']:.1f}); "
                f"first call {row['first_call_s']:.1f} s, first call at a new size "
                f"{row['new_shape_first_call_s']:.1f} s; |score - eager| "
                f"{row['score_difference']:.1e}",
                flush=True,
            )
    base = rows[0]["median_ms"]
    for row in rows:
        row["speedup"] = round(base / row["median_ms"], 3)
    harness.write_result(
        args.out,
        size=[args.height, args.width],
        weights=metric.weights_name,
        weights_sha256=metric.weights_sha256,
        results=rows,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
