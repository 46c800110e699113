"""Score the pairs of a rated dataset with metrics, with a resumable per-pair cache.

The scoring half of evaluation (the statistics are in
:mod:`asna_metric.data.evaluation`, the reports in
:mod:`asna_metric.data.report`), shared by ``asna-metric eval`` and the
accuracy benchmarks: :func:`predict` decodes pairs in ``DataLoader`` workers,
batches pairs of one size and appends every prediction to a
:class:`PredictionCache`, so an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import csv
import logging
import math
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from asna_metric.errors import InputError

if TYPE_CHECKING:
    from asna_metric.data.readers import PairRecord

__all__ = ["PredictionCache", "metric_key", "predict"]

logger = logging.getLogger(__name__)

_CACHE_COLUMNS = ("metric", "dist", "ref", "prediction")


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
