"""Accuracy on the human-rated datasets: SRCC, PLCC (logistic), KRCC with 95% CIs.

Run: ``ASNA_DATA_ROOT=/data/iqa pytest benchmarks/test_accuracy_datasets.py -m benchmark -s``

Each dataset is read in its official layout under ``ASNA_DATA_ROOT`` (see
``docs/evaluation.md``), or, failing that, through the shared label CSV with
``ASNA_DATA_ROOT`` as the root of its paths. A dataset that is not there is
skipped with the reason; one that is there but incomplete fails.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from asna_metric.data.readers import (
    IQADataset,
    MissingFilesError,
    load_dataset,
    read_labels_csv,
)

pytestmark = pytest.mark.benchmark

# Published SRCC of the baselines (and ASNA where known) on the whole dataset.
PUBLISHED = {
    "KADID-10k": {"psnr": 0.68, "ssim": 0.72, "ms_ssim": 0.80},
    "PIPAL": {"psnr": 0.24, "ssim": 0.36, "asna": 0.75},  # NTIRE 2021 test split
}


def _dataset(name: str, data_root: Path, shared: Path | None) -> IQADataset:
    try:
        dataset = load_dataset(name, data_root)
    except MissingFilesError as official:
        labels = shared / "labels" / f"{name}.csv" if shared else None
        if labels is None or not labels.is_file():
            pytest.skip(f"{name} not found under {data_root}: {official}")
        dataset = read_labels_csv(labels, data_root)
        try:
            dataset.check_files()
        except MissingFilesError as exc:
            if len(exc.missing) == exc.total:
                pytest.skip(f"{name} not found under {data_root} (official layout or {labels})")
            raise
        return dataset
    dataset.check_files()
    return dataset


@pytest.mark.parametrize("name", ["PIPAL", "TID2013", "LIVE", "KADID-10k", "CSIQ"])
def test_accuracy_on_dataset(name: str, data_root: Path, run_accuracy, request) -> None:  # type: ignore[no-untyped-def]
    try:
        shared = request.getfixturevalue("shared_data_root")
    except pytest.skip.Exception:
        shared = None
    dataset = _dataset(name, data_root, shared)
    notes = []
    if name == "PIPAL":
        notes.append("PIPAL: training split (the NTIRE test labels are not public)")
    results = run_accuracy(
        name,
        list(dataset),
        {"all": list(dataset)},
        root=dataset.root,
        published=PUBLISHED.get(name),
        notes=notes,
    )
    assert results
