"""Fixtures and the shared runner of the accuracy benchmarks.

Environment:

* ``ASNA_DATA_ROOT``: folder holding your copies of the rated datasets
  (``kadid10k/``, ``tid2013/``, ``databaserelease2/``, ``CSIQ/``, ``PIPAL/``
  in their official layouts, or the layout of the shared label CSVs);
  the dataset benchmarks skip without it.
* ``ASNA_SHARED_DATA``: the project's shared data (``labels/``, ``refs/``),
  default ``../shared/data`` beside the repository.
* ``ASNA_BENCH_CACHE``: where synthesised pairs and per-pair predictions are
  kept between runs (default: a temporary folder, so nothing is reused).
* ``ASNA_BENCH_OUT``: where the JSON results go (default: a temporary folder).
* ``ASNA_SELF_ENSEMBLE``: ASNA's test-time self-ensemble (none, flips, full;
  default: the package default).
* ``ASNA_WEIGHTS``: ASNA weights (registry name or ``.safetensors`` path);
  the default weights when unset. ASNA is skipped, with the reason, when
  they cannot be loaded.
* ``ASNA_BENCH_WORKERS``: DataLoader processes decoding images (default 2).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from asna_metric._provenance import describe_weights, run_metadata
from asna_metric.data.baselines import build_metric
from asna_metric.data.predict import PredictionCache, metric_key, predict
from asna_metric.data.readers import PairRecord
from asna_metric.data.report import evaluate_records, format_table, write_results

REPO = Path(__file__).resolve().parents[1]
BASELINES = ("psnr", "ssim", "ms_ssim")


@pytest.fixture(scope="session")
def bench_out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = Path(os.environ.get("ASNA_BENCH_OUT") or tmp_path_factory.mktemp("bench_out"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def write_json(tmp_path: Path) -> Callable[[str, dict[str, Any]], Path]:
    """``write_json(name, payload)``: write ``payload`` with run info to ``$ASNA_BENCH_OUT/name``.

    Without ``ASNA_BENCH_OUT`` the file goes to the test's ``tmp_path``.
    """

    def write(name: str, payload: dict[str, Any]) -> Path:
        root = Path(os.environ.get("ASNA_BENCH_OUT", tmp_path))
        root.mkdir(parents=True, exist_ok=True)
        info = run_metadata(f"pytest benchmarks ({name})", folder=REPO)
        path = root / name
        path.write_text(json.dumps({**info, **payload}, indent=1) + "\n")
        print(f"wrote {path}")
        return path

    return write


@pytest.fixture(scope="session")
def bench_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = Path(os.environ.get("ASNA_BENCH_CACHE") or tmp_path_factory.mktemp("bench_cache"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="session")
def shared_data_root() -> Path:
    root = Path(os.environ.get("ASNA_SHARED_DATA") or REPO.parent / "shared" / "data")
    if not (root / "labels").is_dir() or not (root / "refs").is_dir():
        pytest.skip(
            f"shared data not found at {root}: set ASNA_SHARED_DATA to the folder holding "
            "labels/ and refs/"
        )
    return root.resolve()


@pytest.fixture(scope="session")
def data_root() -> Path:
    value = os.environ.get("ASNA_DATA_ROOT")
    if not value:
        pytest.skip("ASNA_DATA_ROOT is not set: point it at your copies of the rated datasets")
    root = Path(value).expanduser()
    if not root.is_dir():
        pytest.skip(f"ASNA_DATA_ROOT={value} is not a folder")
    return root


def _metric_functions(
    asna: Sequence[tuple[str, str | None]],
) -> tuple[dict[str, Any], dict[str, str], list[str], dict[str, str | None]]:
    """Build the baselines and each ASNA entry; weights that do not load fail the benchmark.

    Returns:
        ``(functions, labels, notes, asna_weights)``: cache key -> callable,
        cache key -> label printed in the table, notes, and cache key ->
        weights for the ASNA entries.
    """
    functions: dict[str, Any] = {}
    labels: dict[str, str] = {}
    notes: list[str] = []
    asna_weights: dict[str, str | None] = {}
    for name in BASELINES:
        functions[name] = build_metric(name)
        labels[name] = name
    mode = os.environ.get("ASNA_SELF_ENSEMBLE") or None
    for label, weights in asna:
        try:
            fn = build_metric("asna", weights=weights, self_ensemble=mode)
        except (ImportError, ValueError, OSError) as exc:  # InputError, missing file, bad weights
            # A benchmark asked for this ASNA: without it the benchmark has not run.
            pytest.fail(f"{label}: the weights {weights or 'default'} did not load: {exc}")
        key = metric_key("asna", weights, mode)
        functions[key] = fn
        labels[key] = label
        asna_weights[key] = weights
    return functions, labels, notes, asna_weights


def default_asna() -> list[tuple[str, str | None]]:
    """The ASNA entry of a benchmark: weights from ``ASNA_WEIGHTS`` or the default."""
    return [("asna", os.environ.get("ASNA_WEIGHTS") or None)]


@pytest.fixture(scope="session")
def run_accuracy(bench_out: Path, bench_cache: Path) -> Callable[..., list[dict[str, Any]]]:
    """Score pairs with every metric and report correlations for named subsets.

    The baselines score every record; the learned metrics (``asna``, a list
    of ``(label, weights)``) score only the records of ``asna_subsets``
    (default: all subsets), since on a CPU they cost far more per pair; ``only``
    narrows one learned metric (by label) to some of those subsets.
    """

    def run(
        name: str,
        records: Sequence[PairRecord],
        subsets: dict[str, Sequence[PairRecord]],
        *,
        root: Path | None,
        published: dict[str, float] | None = None,
        notes: Sequence[str] = (),
        bootstrap: int = 1000,
        asna: Sequence[tuple[str, str | None]] | None = None,
        asna_subsets: Sequence[str] | None = None,
        only: dict[str, Sequence[str]] | None = None,
    ) -> list[dict[str, Any]]:
        functions, labels, build_notes, asna_weights = _metric_functions(
            default_asna() if asna is None else asna
        )
        learned_subsets = set(subsets if asna_subsets is None else asna_subsets)
        only = dict(only or {})  # label -> the subsets that learned metric is scored on
        cache = PredictionCache(bench_cache / f"{name}.predictions.csv", root=root)
        workers = int(os.environ.get("ASNA_BENCH_WORKERS", "2"))
        records = list(records)
        index = {(r.dist, r.ref): i for i, r in enumerate(records)}
        baselines = {k: f for k, f in functions.items() if k not in asna_weights}
        predictions, failures = predict(
            records, baselines, cache, batch_size=4, workers=workers, desc=name
        )
        for key in asna_weights:
            wanted = learned_subsets & set(only.get(labels[key], subsets))
            learned_rows = sorted({index[(r.dist, r.ref)] for s in wanted for r in subsets[s]})
            learned_pred, learned_fail = predict(
                [records[i] for i in learned_rows],
                {key: functions[key]},
                cache,
                batch_size=4,
                workers=workers,
                desc=f"{name} {labels[key]}",
            )
            column: list[float | None] = [None] * len(records)
            for i, value in zip(learned_rows, learned_pred[key], strict=True):
                column[i] = value
            predictions[key] = column
            failures[key] = learned_fail.get(key, [])
        results = []
        for subset, members in subsets.items():
            rows = [index[(r.dist, r.ref)] for r in members]
            for key, label in labels.items():
                if key in asna_weights and (
                    subset not in learned_subsets or subset not in only.get(label, subsets)
                ):
                    continue
                entry = evaluate_records(
                    [records[i] for i in rows],
                    [predictions[key][i] for i in rows],
                    metric=label,
                    dataset=f"{name}:{subset}",
                    bootstrap=bootstrap,
                )
                entry["metric_key"] = key
                if published and label in published:
                    entry["published_srcc"] = published[label]
                results.append(entry)
        print()
        print(format_table(results))
        for key, messages in failures.items():
            if messages:
                print(f"{key}: {len(messages)} pairs failed, e.g. {messages[0]}")
        for note in [*build_notes, *notes]:
            print(note)
        if published:
            print(
                "published SRCC for comparison: "
                + ", ".join(f"{k} {v}" for k, v in published.items())
            )
        metadata = run_metadata(
            f"pytest benchmarks ({name})",
            weights={labels[k]: describe_weights(w) for k, w in asna_weights.items()},
            folder=REPO,
        )
        metadata["notes"] = [*build_notes, *notes]
        metadata["pairs"] = len(records)
        path = bench_out / f"accuracy_{name}.json"
        write_results(path, results, metadata)
        print(f"wrote {path}")
        scored = {e["metric"] for e in results if "error" not in e}
        absent = [labels[k] for k in asna_weights if labels[k] not in scored]
        if absent:
            pytest.fail(f"the benchmark asked for {absent} and they scored no subset")
        if not results:
            pytest.fail(f"{name}: no metric produced a result")
        return results

    return run
