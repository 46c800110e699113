"""Regenerate a reference split manifest (train / val / test / eval_only by photograph).

Deterministic: the same photographs and seed give byte-identical output.

    python scripts/make_reference_split.py --refs ../shared/data/refs \
        --out src/asna_metric/data/_splits/refs-v1.json

A changed split is a new manifest: give it a new --name (refs-v2...) rather
than overwriting refs-v1, whose test photographs results have been reported on.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from asna_metric.data.splits import (
    DEFAULT_REFERENCE_SPLIT,
    DEFAULT_SPLIT_FOLDERS,
    EVAL_ONLY_FOLDERS,
    make_reference_split,
)


def manifest_text(manifest: dict) -> str:
    return json.dumps(manifest, indent=1, sort_keys=True) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--refs", type=Path, required=True, help="refs root (shared/data/refs)")
    parser.add_argument("--out", type=Path, required=True, help="manifest JSON to write")
    parser.add_argument("--name", default=DEFAULT_REFERENCE_SPLIT)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--folders", nargs="+", default=list(DEFAULT_SPLIT_FOLDERS))
    parser.add_argument("--eval-only", nargs="+", default=list(EVAL_ONLY_FOLDERS))
    parser.add_argument("--val-fraction", type=float, default=0.1)
    parser.add_argument("--test-fraction", type=float, default=0.1)
    args = parser.parse_args(argv)
    manifest = make_reference_split(
        args.refs,
        name=args.name,
        seed=args.seed,
        folders=args.folders,
        eval_only_folders=args.eval_only,
        val_fraction=args.val_fraction,
        test_fraction=args.test_fraction,
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(manifest_text(manifest), encoding="utf-8")
    counts = {k: sum(v.values()) for k, v in manifest["counts"].items()}
    print(f"wrote {args.out}: {counts}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
