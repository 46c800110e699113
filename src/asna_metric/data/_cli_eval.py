"""``asna-metric eval``: correlation of metrics with human scores on a dataset.

Argument parsing only: scoring is :mod:`asna_metric.data.predict`, the
statistics :mod:`asna_metric.data.evaluation`, the reports
:mod:`asna_metric.data.report` and the run metadata
:mod:`asna_metric._provenance`, shared with the accuracy benchmarks.
"""

from __future__ import annotations

import argparse
import logging
import os
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from asna_metric._options import SELF_ENSEMBLE_MODES
from asna_metric.errors import InputError

if TYPE_CHECKING:
    from asna_metric.data.readers import IQADataset

__all__ = ["register"]

logger = logging.getLogger(__name__)

_DEFAULT_METRICS = ("asna", "psnr", "ssim", "ms_ssim")
#: What ``synth`` writes beside its labels; ``eval`` reads it to know the score convention.
_SYNTH_MANIFEST = "synthesis.json"
_SYNTH_DATASET = "KADID-10k"


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``eval`` subcommand.

    Args:
        subparsers: The dispatcher's subparsers object.
    """
    parser = subparsers.add_parser(
        "eval",
        help="correlate metrics with human scores on a rated dataset",
        description=(
            "Score every pair of a human-rated dataset with one or more metrics and report "
            "SRCC, PLCC (after the 4-parameter logistic fit), KRCC and RMSE against the human "
            "quality, with bootstrap confidence intervals and a per-type breakdown. "
            "Predictions are cached, so an interrupted run resumes."
        ),
    )
    source = parser.add_argument_group("data")
    source.add_argument(
        "--labels",
        type=Path,
        help="label CSV with columns dis_img_path,dis_type,ref_img_path,score "
        "(paths relative to --root); omit to read --dataset in its official layout",
    )
    source.add_argument(
        "--root", type=Path, required=True, help="root of your copy of the dataset's images"
    )
    source.add_argument(
        "--dataset",
        help="dataset name (KADID-10k, TID2013, TID2008, LIVE, CSIQ, PIPAL, ...): the score "
        "convention for --labels (default: the CSV's file name), or the official layout to "
        "read when --labels is omitted",
    )
    source.add_argument(
        "--types", nargs="+", metavar="TYPE", help="evaluate only these distortion types"
    )
    source.add_argument(
        "--split",
        choices=("all", "train", "val"),
        default="all",
        help="evaluate on all pairs or one side of the content-disjoint split (default: all)",
    )
    source.add_argument(
        "--val-fraction", type=float, default=0.2, help="fraction of references in val (0.2)"
    )
    source.add_argument("--seed", type=int, default=0, help="seed of the split and bootstrap")
    source.add_argument(
        "--skip-missing",
        action="store_true",
        help="drop pairs whose images are missing instead of stopping",
    )
    metrics = parser.add_argument_group("metrics")
    metrics.add_argument(
        "--metric",
        action="append",
        dest="metrics",
        metavar="NAME",
        help=f"metric to evaluate, repeatable: asna, psnr, ssim, ms_ssim "
        f"(default: {' '.join(_DEFAULT_METRICS)})",
    )
    metrics.add_argument("--weights", help="ASNA weights: registry name or .safetensors path")
    metrics.add_argument(
        "--self-ensemble",
        choices=SELF_ENSEMBLE_MODES,
        default=None,
        help="ASNA test-time self-ensemble (default: the metric's default, none)",
    )
    metrics.add_argument("--device", default="auto", help="cpu, cuda, cuda:1, ... (default: auto)")
    metrics.add_argument("--batch-size", type=int, default=8, help="pairs per batch (8)")
    metrics.add_argument(
        "--workers",
        type=int,
        default=min(4, os.cpu_count() or 1),
        help="DataLoader processes decoding images (0: in the main process)",
    )
    output = parser.add_argument_group("output")
    output.add_argument("--json", type=Path, help="write results and metadata to this JSON file")
    output.add_argument(
        "--cache",
        type=Path,
        help="per-pair predictions CSV, read to resume and appended to "
        "(default: beside --json as NAME.predictions.csv; none without --json)",
    )
    output.add_argument("--no-cache", action="store_true", help="do not read or write a cache")
    output.add_argument(
        "--plot", type=Path, help="scatter of predictions vs human quality (PNG, one per metric)"
    )
    output.add_argument(
        "--bootstrap", type=int, default=1000, help="bootstrap resamples for CIs (0: none)"
    )
    parser.set_defaults(func=_run)


# --------------------------------------------------------------------------- data


def _label_convention(labels: Path, dataset: str | None) -> str:
    """The score convention of a label CSV: ``--dataset``, the ``synth`` manifest, or the name."""
    from asna_metric.data.readers import CONVENTIONS, get_convention

    if dataset is not None:
        name = dataset
    elif (labels.parent / _SYNTH_MANIFEST).is_file():
        # Pairs made by ``asna-metric synth``: labelled with KADID-10k's MOS.
        return _SYNTH_DATASET
    else:
        name = labels.stem
    try:
        return get_convention(name).name
    except InputError:
        source = "--dataset" if dataset is not None else f"the file name {labels.name!r}"
        raise InputError(
            f"cannot tell how the scores of {labels} map to quality: {source} names no known "
            f"dataset ({name!r}). Pass --dataset with one of {', '.join(sorted(CONVENTIONS))} "
            "(the dataset whose score scale the CSV uses)."
        ) from None


def _load_records(args: argparse.Namespace) -> IQADataset:
    from asna_metric.data.readers import load_dataset, read_labels_csv
    from asna_metric.data.splits import _type_key, split_by_reference

    if args.labels is not None:
        convention = _label_convention(args.labels, args.dataset)
        dataset = read_labels_csv(args.labels, args.root, dataset=convention)
    elif args.dataset is not None:
        dataset = load_dataset(args.dataset, args.root)
    else:
        raise InputError(
            "eval needs --labels CSV (generic label file) or --dataset NAME (official layout "
            "under --root); got neither. Pass one of them."
        )
    if args.types:
        wanted = {_type_key(t) for t in args.types}
        kept = [r for r in dataset if _type_key(r.dis_type) in wanted]
        if not kept:
            raise InputError(
                f"--types {args.types} matches no pair; the dataset's types are "
                f"{list(dataset.dis_types)}. Check the spelling."
            )
        dataset = dataset.subset(kept)
    if args.split != "all":
        train, val = split_by_reference(dataset, val_fraction=args.val_fraction, seed=args.seed)
        dataset = train if args.split == "train" else val
    return dataset


def _drop_missing(dataset: IQADataset, skip_missing: bool) -> IQADataset:
    """The dataset less the pairs whose images are missing (``--skip-missing``), else it raises."""
    if not skip_missing:
        dataset.check_files()
        return dataset
    kept = dataset.present()
    if len(kept) == 0:
        dataset.check_files()  # raises MissingFilesError, listing the missing files
    if len(kept) < len(dataset):
        logger.warning(
            "skipping pairs with missing images: %d of %d pairs left",
            len(kept),
            len(dataset),
        )
    return kept


def _groups(dataset: IQADataset) -> dict[str, list[Any]]:
    """The sets to report: all pairs, and the strict set of a rebuilt TID2013."""
    from asna_metric.data import tid2013_kodak

    groups = {dataset.name: list(dataset)}
    if tid2013_kodak.is_rebuilt(dataset):
        strict = tid2013_kodak.strict_records(list(dataset))
        if strict and len(strict) < len(dataset):
            groups[f"{dataset.name}:strict"] = strict
    return groups


def _coverage(
    dataset: IQADataset, full: IQADataset, groups: dict[str, list[Any]]
) -> dict[str, Any]:
    from asna_metric.data import tid2013_kodak
    from asna_metric.data.readers import TID2013_TYPES
    from asna_metric.data.report import coverage

    names = list(TID2013_TYPES) if dataset.name == "TID2013" else list(full.dis_types)
    info = {
        group: coverage(records, total=len(full), type_names=names)
        for group, records in groups.items()
    }
    if tid2013_kodak.is_rebuilt(dataset):
        info[dataset.name]["source"] = (
            "TID2013 rebuilt from the Kodak photographs (tid2013_kodak tool): "
            f"{len(tid2013_kodak.FAITHFUL_TYPES)} types rebuilt faithfully, "
            f"{', '.join(tid2013_kodak.APPROXIMATE_TYPES)} approximately; not TID2013 itself"
        )
        info[dataset.name]["approximate_types"] = list(tid2013_kodak.APPROXIMATE_TYPES)
    return info


def _command_line(args: argparse.Namespace, metric_names: Sequence[str]) -> str:
    parts = ["asna-metric", "eval"]
    for option in ("labels", "root", "dataset"):
        if getattr(args, option) is not None:
            parts += [f"--{option}", str(getattr(args, option))]
    for name in metric_names:
        parts += ["--metric", name]
    if args.weights:
        parts += ["--weights", args.weights]
    if args.self_ensemble is not None:
        parts += ["--self-ensemble", args.self_ensemble]
    if args.skip_missing:
        parts.append("--skip-missing")
    if args.types:
        parts += ["--types", *args.types]
    if args.split != "all":
        parts += ["--split", args.split, "--val-fraction", str(args.val_fraction)]
    parts += ["--seed", str(args.seed), "--bootstrap", str(args.bootstrap)]
    for option in ("json", "cache", "plot"):
        if getattr(args, option) is not None:
            parts += [f"--{option}", str(getattr(args, option))]
    return shlex.join(parts)


# --------------------------------------------------------------------------- command


def _run(args: argparse.Namespace) -> int:
    from asna_metric._devices import resolve_device
    from asna_metric._provenance import describe_weights, run_metadata
    from asna_metric.data.baselines import METRICS, build_metric
    from asna_metric.data.predict import PredictionCache, metric_key, predict
    from asna_metric.data.readers import MissingFilesError
    from asna_metric.data.report import (
        evaluate_records,
        format_coverage,
        format_table,
        plot_results,
        write_results,
    )

    names = []
    for raw in args.metrics or _DEFAULT_METRICS:
        name = raw.strip().lower().replace("-", "_")
        if name not in METRICS:
            raise InputError(
                f"--metric: unknown metric {raw!r}; expected one of {sorted(METRICS)}."
            )
        if name not in names:
            names.append(name)
    if args.bootstrap and args.bootstrap < 10:
        raise InputError(f"--bootstrap must be 0 or at least 10, got {args.bootstrap}.")
    try:
        full = _load_records(args)
        dataset = _drop_missing(full, args.skip_missing)
    except MissingFilesError as exc:
        print(f"asna-metric eval: error: {exc}", file=sys.stderr)
        return 2
    device = resolve_device(args.device)
    cache_path = None
    if not args.no_cache:
        cache_path = args.cache
        if cache_path is None and args.json is not None:
            cache_path = args.json.with_name(args.json.stem + ".predictions.csv")
    cache = PredictionCache(cache_path, root=dataset.root)
    keys = {name: metric_key(name, args.weights, args.self_ensemble) for name in names}
    functions = {
        keys[name]: build_metric(
            name, weights=args.weights, device=device, self_ensemble=args.self_ensemble
        )
        for name in names
    }
    logger.info(
        "%s: %d pairs, %d references; metrics %s; %d cached predictions",
        dataset.name,
        len(dataset),
        len(dataset.ref_ids),
        ", ".join(names),
        len(cache),
    )
    records = list(dataset)
    predictions, failures = predict(
        records,
        functions,
        cache,
        batch_size=args.batch_size,
        workers=args.workers,
        desc=f"eval {dataset.name}",
    )
    groups = _groups(dataset)
    row = {(r.dist, r.ref): i for i, r in enumerate(records)}
    results = []
    for name in names:
        key = keys[name]
        for message in failures[key][:5]:
            logger.warning("%s failed: %s", name, message)
        if len(failures[key]) > 5:
            logger.warning("%s failed on %d pairs in all", name, len(failures[key]))
        for group, members in groups.items():
            entry = evaluate_records(
                members,
                [predictions[key][row[(r.dist, r.ref)]] for r in members],
                metric=name,
                dataset=group,
                bootstrap=args.bootstrap,
                seed=args.seed,
            )
            entry["metric_key"] = key
            results.append(entry)
    info = _coverage(dataset, full, groups)
    for group, summary in info.items():
        if summary["subset"] or len(info) > 1:
            print(format_coverage(group, summary))
            if "source" in summary:
                print(f"  ({summary['source']})")
    print(format_table(results))
    if args.plot is not None:
        plot_results(results, args.plot)
        logger.info("wrote %s", args.plot)
    if args.json is not None:
        model = getattr(functions.get(keys.get("asna", "")), "model", None)
        weights = None
        if "asna" in names:
            weights = model.provenance if model is not None else describe_weights(args.weights)
        metadata = run_metadata(_command_line(args, names), weights=weights, device=device)
        metadata.update(
            dataset=dataset.name,
            labels=args.labels.name if args.labels else None,
            split=args.split,
            seed=args.seed,
        )
        write_results(args.json, results, metadata, coverage=info)
        logger.info("wrote %s", args.json)
    failed = any(e["failed"] or "error" in e for e in results)
    return 1 if failed else 0
