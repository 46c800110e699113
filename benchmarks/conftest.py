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

from asna_metric.data._cli_eval import (
    PredictionCache,
    _json_safe,
    evaluate_records,
    format_table,
    metric_key,
    predict,
    run_metadata,
    weights_metadata,
)
from asna_metric.data.baselines import build_metric
from asna_metric.data.readers import PairRecord

REPO = Path(__file__).resolve().parents[1]
BASELINES = ("psnr", "ssim", "ms_ssim")


@pytest.fixture(scope="session")
def bench_out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = Path(os.environ.get("ASNA_BENCH_OUT") or tmp_path_factory.mktemp("bench_out"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


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


def _metric_functions(weights: str | None) -> tuple[dict[str, Any], dict[str, str], list[str]]:
    """Build the baselines and, when its weights load, ASNA; report why ASNA is left out."""
    functions, labels, notes = {}, {}, []
    for name in BASELINES:
        functions[name] = build_metric(name)
        labels[name] = name
    try:
        fn = build_metric("asna", weights=weights)
    except (ImportError, ValueError, OSError) as exc:  # InputError, missing file, bad weights
        notes.append(f"ASNA skipped: {type(exc).__name__}: {exc}")
    else:
        key = metric_key("asna", weights)
        functions[key] = fn
        labels[key] = "asna"
    return functions, labels, notes


@pytest.fixture(scope="session")
def run_accuracy(bench_out: Path, bench_cache: Path) -> Callable[..., list[dict[str, Any]]]:
    """Score pairs with every metric and report correlations for named subsets."""

    def run(
        name: str,
        records: Sequence[PairRecord],
        subsets: dict[str, Sequence[PairRecord]],
        *,
        root: Path | None,
        published: dict[str, float] | None = None,
        notes: Sequence[str] = (),
        bootstrap: int = 1000,
    ) -> list[dict[str, Any]]:
        weights = os.environ.get("ASNA_WEIGHTS") or None
        functions, labels, build_notes = _metric_functions(weights)
        cache = PredictionCache(bench_cache / f"{name}.predictions.csv", root=root)
        workers = int(os.environ.get("ASNA_BENCH_WORKERS", "2"))
        predictions, failures = predict(
            list(records), functions, cache, batch_size=4, workers=workers, desc=name
        )
        index = {(r.dist, r.ref): i for i, r in enumerate(records)}
        results = []
        for subset, members in subsets.items():
            rows = [index[(r.dist, r.ref)] for r in members]
            for key, label in labels.items():
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
            weights=weights_metadata(weights)
            if any(v == "asna" for v in labels.values())
            else None,
        )
        metadata["notes"] = [*build_notes, *notes]
        metadata["pairs"] = len(records)
        clean = [{k: v for k, v in e.items() if k not in ("pred", "target")} for e in results]
        path = bench_out / f"accuracy_{name}.json"
        path.write_text(json.dumps(_json_safe({"metadata": metadata, "results": clean}), indent=2))
        print(f"wrote {path}")
        return results

    return run
