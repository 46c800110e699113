"""Accuracy on KADID-protocol pairs synthesised from the shared reference photographs.

Run: ``pytest benchmarks/test_accuracy_synthetic.py -m benchmark -s``
(set ``ASNA_BENCH_CACHE`` to keep the synthesised images between runs,
``ASNA_BENCH_SYNTH`` to reuse pairs already made by ``asna-metric synth``
(a folder with ``kodak24/labels.csv`` and ``cbsd68/labels.csv``, e.g. the
training data; identity pairs are dropped), and ``ASNA_BENCH_MAX_REFS`` to
use a subset of the 92 references: synthesising one reference's 125 pairs
takes 15-60 s of CPU). By default the pairs of the held-out references are
scored; ``ASNA_BENCH_ALL=1`` adds every pair for the baselines.

ASNA is scored on the held-out references only (it costs far more per pair
than the baselines on a CPU): the default weights (or ``ASNA_WEIGHTS``) on the
content-disjoint split, and the leave-types-out model
(``ASNA_WEIGHTS_LTO``, default ``training/runs/asna_cpu_leave_types_out/
best.safetensors``, trained with ``configs/asna_cpu_leave_types_out.toml``
without the held-out types) on held-out references x held-out types.

KADID-10k's 25 distortion types at its 5 levels are applied to
``refs/kodak24`` and ``refs/cbsd68`` and every pair is labelled with KADID's
human mean opinion score for its (type, level) cell. Reported on: all pairs;
the content-disjoint held-out references (``split_by_reference``,
``val_fraction=0.2, seed=0``); the held-out distortion types
(``leave_types_out`` defaults); and held-out references x held-out types.
The labels carry human judgment of how bad each distortion is, not of how it
interacts with a particular image; the baselines' SRCC against their
published KADID-10k values (PSNR 0.68, SSIM 0.72, MS-SSIM 0.80) shows how
faithful the synthesis is.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from asna_metric.data.readers import IQADataset, read_labels_csv
from asna_metric.data.splits import leave_types_out, split_by_reference

pytestmark = pytest.mark.benchmark

REF_SETS = ("kodak24", "cbsd68")
REPO = Path(__file__).resolve().parents[1]
# The leave-types-out twin of the default weights' network (same config, five types excluded).
LTO_WEIGHTS = REPO / "training/runs/asna_quarter_cpu_leave_types_out/best.safetensors"
SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
PUBLISHED_KADID = {"psnr": 0.68, "ssim": 0.72, "ms_ssim": 0.80}


def _chosen_references(refs_root: Path) -> dict[str, list[Path]]:
    sets = {
        name: sorted(p for p in (refs_root / name).iterdir() if p.suffix.lower() in SUFFIXES)
        for name in REF_SETS
        if (refs_root / name).is_dir()
    }
    limit = os.environ.get("ASNA_BENCH_MAX_REFS")
    if not limit:
        return sets
    # Alternate between the sets so that a subset keeps both kinds of content.
    chosen: dict[str, list[Path]] = {name: [] for name in sets}
    queues = {name: list(paths) for name, paths in sets.items()}
    while sum(map(len, chosen.values())) < int(limit) and any(queues.values()):
        for name, queue in queues.items():
            if queue and sum(map(len, chosen.values())) < int(limit):
                chosen[name].append(queue.pop(0))
    return {name: paths for name, paths in chosen.items() if paths}


def test_accuracy_on_synthetic_kadid_protocol(
    shared_data_root: Path, bench_cache: Path, run_accuracy
) -> None:  # type: ignore[no-untyped-def]
    from asna_metric.data.synthesis import synthesize

    sets = _chosen_references(shared_data_root / "refs")
    if not sets:
        pytest.skip(f"no reference photographs under {shared_data_root / 'refs'}")
    records = []
    reuse = os.environ.get("ASNA_BENCH_SYNTH")
    synth_root = Path(reuse) if reuse else bench_cache / "synth"
    for name, paths in sets.items():
        if reuse:
            labels = synth_root / name / "labels.csv"
            if not labels.is_file():
                pytest.skip(f"ASNA_BENCH_SYNTH={reuse} has no {name}/labels.csv")
            stems = {p.stem for p in paths}
            records += [
                r
                for r in read_labels_csv(labels, synth_root / name, dataset="KADID-10k")
                if r.dis_type != "identity" and Path(r.ref).stem in stems
            ]
            continue
        inputs = bench_cache / "refs" / name
        if inputs.exists():
            shutil.rmtree(inputs)
        inputs.mkdir(parents=True)
        for path in paths:
            shutil.copy2(path, inputs / path.name)
        labels = synthesize(
            inputs, synth_root / name, seed=0, workers=max(1, (os.cpu_count() or 1) - 1)
        )
        records += list(read_labels_csv(labels, synth_root / name, dataset="KADID-10k"))
    dataset = IQADataset("KADID-synth", tuple(records), True, (1.0, 5.0), root=synth_root)
    _, val = split_by_reference(dataset, val_fraction=0.2, seed=0)
    _, held_types = leave_types_out(dataset)
    val_keys = {(r.dist, r.ref) for r in val}
    both = [r for r in held_types if (r.dist, r.ref) in val_keys]
    refs = {name: len(paths) for name, paths in sets.items()}
    lto = os.environ.get("ASNA_WEIGHTS_LTO") or str(LTO_WEIGHTS)
    asna = [("asna", os.environ.get("ASNA_WEIGHTS") or None), ("asna-leave-types-out", lto)]
    subsets = {"val-refs": list(val), "val-refs+held-out-types": both}
    if os.environ.get("ASNA_BENCH_ALL") == "1":  # every pair: about 20 min more on 2 cores
        subsets = {"all": list(dataset), **subsets, "held-out-types": list(held_types)}
    results = run_accuracy(
        "KADID-synth",
        list(dataset) if "all" in subsets else list(val),
        subsets,
        root=synth_root,
        published=PUBLISHED_KADID,
        asna=asna,
        asna_subsets=("val-refs", "val-refs+held-out-types"),
        only={"asna-leave-types-out": ("val-refs+held-out-types",)},
        notes=[
            f"references: {refs}; pairs: {len(dataset)}; held-out types: "
            f"{', '.join(held_types.dis_types)}",
            "labels: KADID-10k human cell means per (type, level); they do not carry how a "
            "distortion interacts with a particular image",
        ],
    )
    assert results
