"""``asna-metric eval``: correlation of metrics with human scores on a dataset.

The helpers here (:func:`predict`, :func:`evaluate_records`,
:func:`format_table`, :func:`plot_results`, :func:`run_metadata`) are shared
with the accuracy benchmarks.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import json
import logging
import math
import os
import platform
import shlex
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from asna_metric.errors import InputError

if TYPE_CHECKING:
    import torch

    from asna_metric.data.readers import IQADataset, PairRecord

__all__ = [
    "PredictionCache",
    "evaluate_records",
    "format_table",
    "metric_key",
    "plot_results",
    "predict",
    "register",
    "run_metadata",
    "weights_metadata",
]

logger = logging.getLogger(__name__)

_DEFAULT_METRICS = ("asna", "psnr", "ssim", "ms_ssim")
_CACHE_COLUMNS = ("metric", "dist", "ref", "prediction")


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
        choices=("none", "flips", "full"),
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


def _load_records(args: argparse.Namespace) -> IQADataset:
    from asna_metric.data.readers import load_dataset, read_labels_csv
    from asna_metric.data.splits import _type_key, split_by_reference

    if args.labels is not None:
        dataset = read_labels_csv(args.labels, args.root, dataset=args.dataset)
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


class _PairImages:
    """Map-style dataset decoding one pair per item (runs in DataLoader workers)."""

    def __init__(self, records: Sequence[PairRecord]) -> None:
        self.records = list(records)

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> tuple[int, Any, Any, str | None]:
        from asna_metric.inputs import to_batch

        record = self.records[index]
        try:
            dist = to_batch(record.dist, name="dist")[0]
            ref = to_batch(record.ref, name="ref")[0]
        except (InputError, OSError) as exc:
            return index, None, None, str(exc)
        if dist.shape != ref.shape:
            return (
                index,
                None,
                None,
                f"dist {tuple(dist.shape[1:])} and ref {tuple(ref.shape[1:])} sizes differ",
            )
        return index, dist, ref, None


def _collate(batch: list[Any]) -> list[Any]:
    return batch


# --------------------------------------------------------------------------- cache


def metric_key(name: str, weights: str | None = None, self_ensemble: str | None = None) -> str:
    """Identify a metric configuration in the prediction cache.

    Args:
        name: Metric name.
        weights: Weights name or path (learned metrics only).
        self_ensemble: Self-ensemble mode (learned metrics only; ``None``
            is the metric's default).

    Returns:
        ``name`` for baselines; ``asna@<weights>#<sha256 start>/<mode>`` for
        ASNA, so that new weights or another mode never reuse old predictions.
    """
    import inspect

    from asna_metric.data.baselines import METRICS

    if not METRICS[name].uses_weights:
        return name
    from asna_metric.metric import ASNA
    from asna_metric.weights import DEFAULT_WEIGHTS, REGISTRY, sha256_file

    if self_ensemble is None:
        self_ensemble = inspect.signature(ASNA).parameters["self_ensemble"].default
    weights = DEFAULT_WEIGHTS if weights is None else weights
    path = Path(weights).expanduser()
    if weights in REGISTRY:
        ident = f"{weights}#{REGISTRY[weights].sha256[:12]}"
    elif path.is_file():
        ident = f"{path.name}#{sha256_file(path)[:12]}"
    else:
        ident = weights
    return f"{name}@{ident}/{self_ensemble}"


@dataclass
class PredictionCache:
    """Per-pair predictions in a CSV (``metric,dist,ref,prediction``), appended as computed.

    Paths are stored relative to ``root`` when they lie under it, so a cache
    survives moving the dataset. A truncated last line (an interrupted write)
    is ignored.

    Attributes:
        path: The CSV file, or ``None`` for an in-memory cache.
        root: Folder the stored paths are relative to.
    """

    path: Path | None
    root: Path | None = None
    _values: dict[tuple[str, str, str], float] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        if self.path is None or not self.path.is_file():
            return
        with self.path.open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            if reader.fieldnames is None or any(c not in reader.fieldnames for c in _CACHE_COLUMNS):
                raise InputError(
                    f"cache {self.path} is not a predictions file: expected the header "
                    f"{','.join(_CACHE_COLUMNS)}, got {reader.fieldnames}. Pass another --cache "
                    "path or delete that file."
                )
            for row in reader:
                try:
                    value = float(row["prediction"])
                except (TypeError, ValueError):
                    continue  # an interrupted write
                if row["metric"] and row["dist"] and row["ref"] is not None:
                    self._values[(row["metric"], row["dist"], row["ref"])] = value
        logger.info("read %d cached predictions from %s", len(self._values), self.path)

    def __len__(self) -> int:
        return len(self._values)

    def _relative(self, path: Path) -> str:
        if self.root is not None:
            try:
                return path.resolve().relative_to(self.root.resolve()).as_posix()
            except ValueError:
                pass
        return path.as_posix()

    def key(self, metric: str, record: PairRecord) -> tuple[str, str, str]:
        """Cache key of one prediction."""
        return metric, self._relative(record.dist), self._relative(record.ref)

    def get(self, metric: str, record: PairRecord) -> float | None:
        """The cached prediction, or ``None``."""
        return self._values.get(self.key(metric, record))

    def add(self, metric: str, items: Sequence[tuple[PairRecord, float]]) -> None:
        """Store predictions and append them to the file."""
        rows: list[tuple[str, ...]] = []
        for record, value in items:
            key = self.key(metric, record)
            self._values[key] = value
            rows.append((*key, repr(float(value))))
        if self.path is None or not rows:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        new = not self.path.is_file() or self.path.stat().st_size == 0
        if not new:
            with self.path.open("rb") as handle:  # an interrupted write leaves no newline
                handle.seek(-1, os.SEEK_END)
                if handle.read(1) not in (b"\n", b"\r"):
                    rows.insert(0, ())
        with self.path.open("a", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            if new:
                writer.writerow(_CACHE_COLUMNS)
            writer.writerows(rows)


# --------------------------------------------------------------------------- predict


def _device(name: str) -> torch.device:
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return torch.device(name)
    except RuntimeError:
        raise InputError(f"--device: expected cpu, cuda or cuda:N, got {name!r}.") from None


def _same_shape_runs(items: list[tuple[int, Any, Any]]) -> Iterator[list[tuple[int, Any, Any]]]:
    run: list[tuple[int, Any, Any]] = []
    for item in items:
        if run and item[1].shape != run[0][1].shape:
            yield run
            run = []
        run.append(item)
    if run:
        yield run


def predict(
    records: Sequence[PairRecord],
    metrics: dict[str, Callable[[Any, Any], Any]],
    cache: PredictionCache,
    *,
    batch_size: int = 8,
    workers: int = 0,
    desc: str = "eval",
) -> tuple[dict[str, list[float | None]], dict[str, list[str]]]:
    """Score every pair with every metric, reusing and extending the cache.

    Images are decoded by a ``DataLoader`` (``workers`` processes); pairs of
    the same size are batched together. A pair that cannot be read, or that
    a metric rejects, is recorded as a failure for that metric and skipped.

    Args:
        records: The pairs.
        metrics: ``{cache key: fn(dist, ref) -> (N,)}``.
        cache: Prediction cache (read first, appended after each batch).
        batch_size: Pairs per batch.
        workers: DataLoader worker processes.
        desc: Progress-bar label.

    Returns:
        ``(predictions, failures)``: per metric key, one prediction (or
        ``None``) per record, and the failure messages.
    """
    import torch
    from torch.utils.data import DataLoader

    from asna_metric._progress import progress

    predictions: dict[str, list[float | None]] = {
        key: [cache.get(key, r) for r in records] for key in metrics
    }
    failures: dict[str, list[str]] = {key: [] for key in metrics}
    todo = [i for i in range(len(records)) if any(predictions[k][i] is None for k in metrics)]
    if not todo:
        return predictions, failures
    if batch_size < 1 or workers < 0:
        raise InputError(
            f"--batch-size must be >= 1 and --workers >= 0, got {batch_size} and {workers}."
        )
    subset = [records[i] for i in todo]
    loader: DataLoader[Any] = DataLoader(
        _PairImages(subset),  # type: ignore[arg-type]
        batch_size=batch_size,
        num_workers=workers,
        collate_fn=_collate,
        shuffle=False,
    )
    with progress(total=len(records), desc=desc, initial=len(records) - len(todo)) as bar:
        for batch in loader:
            loaded = []
            for local, dist, ref, error in batch:
                index = todo[local]
                if error is not None:
                    for key in metrics:
                        if predictions[key][index] is None:
                            failures[key].append(f"{records[index].dist}: {error}")
                else:
                    loaded.append((index, dist, ref))
            for key, fn in metrics.items():
                pending = [item for item in loaded if predictions[key][item[0]] is None]
                for run in _same_shape_runs(pending):
                    dist = torch.stack([item[1] for item in run])
                    ref = torch.stack([item[2] for item in run])
                    try:
                        values = fn(dist, ref).detach().double().cpu().reshape(-1).tolist()
                    except InputError as exc:
                        failures[key].extend(f"{records[i].dist}: {exc}" for i, _, _ in run)
                        continue
                    done = []
                    for (i, _, _), value in zip(run, values, strict=True):
                        if math.isfinite(value):
                            predictions[key][i] = value
                            done.append((records[i], value))
                        else:
                            failures[key].append(f"{records[i].dist}: non-finite score {value}")
                    cache.add(key, done)
            bar.update(len(batch))
    return predictions, failures


def evaluate_records(
    records: Sequence[PairRecord],
    values: Sequence[float | None],
    *,
    metric: str,
    dataset: str,
    bootstrap: int = 1000,
    seed: int = 0,
) -> dict[str, Any]:
    """Evaluate one metric's predictions against the records' human quality.

    Pairs without a prediction are left out (``failed`` counts them).

    Args:
        records: The pairs.
        values: One prediction (or ``None``) per record.
        metric: Metric label for the result.
        dataset: Dataset label for the result.
        bootstrap: Bootstrap resamples (0: no intervals).
        seed: Bootstrap seed.

    Returns:
        The result entry: ``metric, dataset, n, failed`` and the fields of
        :func:`asna_metric.data.evaluation.evaluate`, plus ``pred`` and
        ``target`` (dropped before writing JSON).
    """
    from asna_metric.data.evaluation import evaluate

    kept = [(r, v) for r, v in zip(records, values, strict=True) if v is not None]
    entry: dict[str, Any] = {"metric": metric, "dataset": dataset, "n": len(kept)}
    entry["failed"] = len(records) - len(kept)
    if len(kept) < 3:
        entry["error"] = f"only {len(kept)} pairs scored; at least 3 are needed"
        return entry
    pred = [v for _, v in kept]
    target = [r.quality for r, _ in kept]
    stats = evaluate(
        pred, target, types=[r.dis_type for r, _ in kept], bootstrap=bootstrap, seed=seed
    )
    entry.update(stats)
    entry["n"] = len(kept)
    entry["pred"], entry["target"] = pred, target
    return entry


def _interval(entry: dict[str, Any], name: str) -> str:
    value = entry.get(name)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    bounds = entry.get("ci", {}).get(name)
    text = f"{value:.3f}"
    if bounds and all(b is not None and not math.isnan(b) for b in bounds):
        text += f" [{bounds[0]:.3f}, {bounds[1]:.3f}]"
    return text


def format_table(results: Sequence[dict[str, Any]]) -> str:
    """Render results as a plain-text table (metric, dataset, n, SRCC, PLCC, KRCC with CIs).

    Args:
        results: Entries from :func:`evaluate_records`.

    Returns:
        The table, one line per entry, with a header.
    """
    header = ("metric", "dataset", "n", "SRCC", "PLCC", "KRCC")
    rows = [header]
    for entry in results:
        if "error" in entry:
            rows.append(
                (entry["metric"], entry["dataset"], str(entry["n"]), entry["error"], "", "")
            )
            continue
        rows.append(
            (
                entry["metric"],
                entry["dataset"],
                str(entry["n"]),
                _interval(entry, "srcc"),
                _interval(entry, "plcc"),
                _interval(entry, "krcc"),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        for row in rows
    ]
    lines.insert(1, "  ".join("-" * width for width in widths))
    level = next((e.get("ci_level") for e in results if e.get("ci")), None)
    if level is not None:
        lines.append(f"[{level:.0%} bootstrap percentile intervals; PLCC after logistic fit]")
    return "\n".join(line.rstrip() for line in lines)


def plot_results(results: Sequence[dict[str, Any]], path: Path) -> None:
    """Scatter each metric's predictions against human quality, with the fitted logistic.

    One panel per result; uses matplotlib's Agg canvas (no display, no
    global backend change).

    Args:
        results: Entries from :func:`evaluate_records` (with ``pred``).
        path: Output image (PNG).

    Raises:
        ImportError: matplotlib is not installed.
    """
    try:
        from matplotlib.figure import Figure
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("--plot needs matplotlib: pip install 'asna-metric[eval]'") from exc
    import numpy as np

    from asna_metric.data.evaluation import LogisticFit

    panels = [e for e in results if e.get("pred")]
    if not panels:
        raise InputError("nothing to plot: no metric produced predictions.")
    columns = min(3, len(panels))
    rows = math.ceil(len(panels) / columns)
    figure = Figure(figsize=(4.2 * columns, 3.8 * rows), layout="constrained")
    axes = figure.subplots(rows, columns, squeeze=False)
    for ax in axes.ravel()[len(panels) :]:
        ax.set_visible(False)
    for ax, entry in zip(axes.ravel(), panels, strict=False):
        x = np.asarray(entry["pred"], dtype=float)
        y = np.asarray(entry["target"], dtype=float)
        ax.scatter(x, y, s=6, alpha=0.4, linewidths=0)
        fit = LogisticFit(tuple(entry["fit"]["params"]), entry["fit"]["kind"])
        grid = np.linspace(x.min(), x.max(), 200)
        ax.plot(grid, fit(grid), color="C3", linewidth=1.5, label=f"{fit.kind} fit")
        ax.set_title(
            f"{entry['metric']} on {entry['dataset']}\n"
            f"SRCC {entry['srcc']:.3f}  PLCC {entry['plcc']:.3f}  n={entry['n']}",
            fontsize=9,
        )
        ax.set_xlabel("prediction")
        ax.set_ylabel("human quality (0..1)")
        ax.legend(loc="lower right", fontsize=7)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)


# --------------------------------------------------------------------------- metadata


def _git_commit() -> str | None:
    folder = Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=folder,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    commit = out.stdout.strip()
    return commit if out.returncode == 0 and len(commit) == 40 else None


def weights_metadata(weights: str | None) -> dict[str, Any]:
    """Describe ASNA weights for citing results: name, revision or file hash.

    Args:
        weights: Registry name, ``.safetensors`` path, or ``None`` (default).

    Returns:
        ``{"name", "revision", "repo_id"}`` for registry weights,
        ``{"name", "path", "sha256"}`` for a file (``name`` from its
        metadata); ``"error"`` when the weights cannot be described.
    """
    from asna_metric import weights as weights_module

    name = weights if weights is not None else weights_module.DEFAULT_WEIGHTS
    path = Path(name).expanduser()
    try:
        if path.is_file():
            info = weights_module.weights_info(path)
            return {
                "name": info.get("name", path.stem),
                "path": str(path),
                "sha256": weights_module.sha256_file(path),
            }
        spec = weights_module.get_spec(name)
    except (InputError, OSError, ValueError) as exc:
        return {"name": name, "error": str(exc)}
    return {"name": spec.name, "revision": spec.revision, "repo_id": spec.repo_id}


def _model_weights(fn: Any, weights: str | None) -> dict[str, Any]:
    model = getattr(fn, "model", None)
    name = getattr(model, "weights_name", None)
    if name is None:
        return weights_metadata(weights)
    return {
        "name": name,
        "revision": getattr(model, "weights_revision", None),
        "sha256": getattr(model, "weights_sha256", None),
    }


def run_metadata(command: str, *, weights: dict[str, Any] | None = None) -> dict[str, Any]:
    """Versions, commit, date and command, for a results file.

    Args:
        command: The command line that produced the results.
        weights: Output of :func:`weights_metadata`, when ASNA ran.

    Returns:
        A JSON-serialisable dict.
    """
    from importlib import metadata

    import torch

    from asna_metric._version import __version__

    versions: dict[str, str | None] = {}
    for distribution in ("numpy", "scipy", "pytorch-msssim", "pillow"):
        try:
            versions[distribution] = metadata.version(distribution)
        except metadata.PackageNotFoundError:
            versions[distribution] = None
    return {
        "package": "asna-metric",
        "package_version": __version__,
        "torch_version": torch.__version__,
        "python_version": platform.python_version(),
        "versions": versions,
        "git_commit": _git_commit(),
        "weights": weights,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": command,
    }


def _json_safe(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


def _command_line(args: argparse.Namespace, metric_names: Sequence[str]) -> str:
    parts = ["asna-metric", "eval"]
    for option in ("labels", "root", "dataset"):
        if getattr(args, option) is not None:
            parts += [f"--{option}", str(getattr(args, option))]
    for name in metric_names:
        parts += ["--metric", name]
    if args.weights:
        parts += ["--weights", args.weights]
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
    from asna_metric.data.baselines import METRICS, build_metric
    from asna_metric.data.readers import MissingFilesError

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
        dataset = _load_records(args)
        try:
            dataset.check_files()
        except MissingFilesError as exc:
            if not args.skip_missing:
                raise
            missing = set(exc.missing)
            dataset = dataset.subset(
                r for r in dataset if r.dist not in missing and r.ref not in missing
            )
            logger.warning(
                "skipping pairs with missing images: %d of %d files missing; %d pairs left",
                len(missing),
                exc.total,
                len(dataset),
            )
            if len(dataset) == 0:
                raise
    except MissingFilesError as exc:
        print(f"asna-metric eval: error: {exc}", file=sys.stderr)
        return 2
    device = _device(args.device)
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
    predictions, failures = predict(
        list(dataset),
        functions,
        cache,
        batch_size=args.batch_size,
        workers=args.workers,
        desc=f"eval {dataset.name}",
    )
    results = []
    for name in names:
        key = keys[name]
        for message in failures[key][:5]:
            logger.warning("%s failed: %s", name, message)
        if len(failures[key]) > 5:
            logger.warning("%s failed on %d pairs in all", name, len(failures[key]))
        entry = evaluate_records(
            list(dataset),
            predictions[key],
            metric=name,
            dataset=dataset.name,
            bootstrap=args.bootstrap,
            seed=args.seed,
        )
        entry["metric_key"] = key
        results.append(entry)
    print(format_table(results))
    if args.plot is not None:
        plot_results(results, args.plot)
        logger.info("wrote %s", args.plot)
    if args.json is not None:
        metadata = run_metadata(
            _command_line(args, names),
            weights=_model_weights(functions.get(keys.get("asna", "")), args.weights)
            if "asna" in names
            else None,
        )
        metadata.update(
            dataset=dataset.name,
            labels=str(args.labels) if args.labels else None,
            root=str(args.root),
            split=args.split,
            seed=args.seed,
            device=str(device),
            cache=str(cache_path) if cache_path else None,
        )
        clean = [{k: v for k, v in e.items() if k not in ("pred", "target")} for e in results]
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(
            json.dumps(_json_safe({"metadata": metadata, "results": clean}), indent=2) + "\n",
            encoding="utf-8",
        )
        logger.info("wrote %s", args.json)
    failed = any(e["failed"] or "error" in e for e in results)
    return 1 if failed else 0
