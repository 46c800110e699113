"""``asna-metric synth``: KADID-protocol synthesis of human-calibrated pairs."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

__all__ = ["register"]

_EPILOG = """\
types: ids 1..25, KADID names (GBLUR, JPEG, "Contrast Dist.") or function
names (gaussian_blur, jpeg), separated by spaces or commas; default all 25.
Labels are KADID-10k's human cell mean MOS (1..5) for each (type, level):
they say how bad a distortion is, not how it interacts with each image.
Rerunning with the same --out and --seed resumes an interrupted run.

With --split, --refs is the refs root (the folder holding cbsd68/, bsds500/,
urban100/, kodak/...) and only the photographs of that split of the reference
manifest (--manifest, default refs-v1) are used, after checking their sha256.

examples:
  asna-metric synth --refs shared/data/refs/kodak24 --out kadid_kodak --workers 2
  asna-metric synth --refs shared/data/refs --split test --out kadid_test
"""


def register(subparsers: Any) -> None:
    """Add the ``synth`` subcommand.

    Args:
        subparsers: The object returned by ``ArgumentParser.add_subparsers``.
    """
    parser = subparsers.add_parser(
        "synth",
        help="distort reference images with KADID's 25 types x 5 levels, labelled by KADID MOS",
        description=(
            "Apply KADID-10k's 25 distortion types at their 5 levels to a folder of "
            "reference images and write OUT/dist/*.png, OUT/refs/*.png and OUT/labels.csv "
            "(dis_img_path,dis_type,ref_img_path,score)."
        ),
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--refs", required=True, type=Path, metavar="DIR", help="folder of reference images"
    )
    parser.add_argument("--out", required=True, type=Path, metavar="DIR", help="output folder")
    parser.add_argument(
        "--split",
        choices=("train", "val", "test", "eval_only"),
        help="only this split of the reference manifest (--refs is then the refs root)",
    )
    parser.add_argument(
        "--manifest",
        default=None,
        metavar="NAME|FILE",
        help="reference split manifest for --split: a shipped name or a JSON file "
        "(default: refs-v1)",
    )
    parser.add_argument(
        "--types", nargs="+", metavar="TYPE", help="distortion types (default: all 25)"
    )
    parser.add_argument(
        "--levels", nargs="+", metavar="LEVEL", help="levels 1..5 (default: all five)"
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    parser.add_argument(
        "--identity",
        action="store_true",
        help="also list one undistorted pair per reference (score 5.0)",
    )
    parser.add_argument(
        "--workers", type=int, default=1, metavar="N", help="worker threads (default: 1)"
    )
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.set_defaults(func=_run)


def _split(values: list[str] | None) -> list[str] | None:
    if values is None:
        return None
    return [part.strip() for value in values for part in value.split(",") if part.strip()]


def _run(args: argparse.Namespace) -> int:
    from asna_metric.data.synthesis import synthesize
    from asna_metric.errors import InputError

    if args.manifest is not None and args.split is None:
        raise InputError("--manifest needs --split (which split of the manifest to use).")
    references = None
    if args.split is not None:
        from asna_metric.data.splits import DEFAULT_REFERENCE_SPLIT, resolve_reference_split

        paths = resolve_reference_split(
            args.refs, args.split, manifest=args.manifest or DEFAULT_REFERENCE_SPLIT
        )
        references = [str(p) for p in paths]
    levels = _split(args.levels)
    if levels is not None:
        bad = [level for level in levels if level not in {"1", "2", "3", "4", "5"}]
        if bad:
            raise InputError(f"--levels takes integers 1..5; got {', '.join(bad)}.")
    labels = synthesize(
        args.refs,
        args.out,
        types=_split(args.types),
        levels=None if levels is None else [int(level) for level in levels],
        seed=args.seed,
        include_identity=args.identity,
        progress=not args.no_progress,
        workers=args.workers,
        references=references,
    )
    with labels.open() as handle:
        pairs = sum(1 for _ in handle) - 1
    print(f"wrote {pairs} labelled pairs to {labels}")
    return 0
