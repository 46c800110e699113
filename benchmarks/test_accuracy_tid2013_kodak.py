"""Real human judgments: TID2013 rebuilt from the Kodak photographs.

Run (one command; the first run rebuilds the images, 25-60 min on 2 cores)::

    ASNA_BENCH_CACHE=~/.cache/asna_bench ASNA_BENCH_OUT=bench_out \\
        python -m pytest benchmarks/test_accuracy_tid2013_kodak.py -m benchmark -s

The shared tool ``tid2013_kodak/rebuild.py`` (``ASNA_SHARED_DATA/../tools``)
rebuilds 1,560 of TID2013's 3,000 images (24 references x 13 of the 24
types x 5 levels) in TID2013's own layout, with TID2013's human MOS; the
benchmark runs it once into ``ASNA_BENCH_CACHE/tid2013_kodak`` (resumable,
two references at a time), or reads ``ASNA_TID2013_KODAK``, a folder the
tool already wrote. Reported, with 95% bootstrap intervals, overall and per
type, on all 1,560 images and on the strict 1,320 of the 11 faithfully
rebuilt types:

* every shipped ASNA weights file (``asna_metric.list_weights()``), marked
  with whether Kodak photographs were among its training references (then
  its figures are not content-disjoint);
* PSNR, SSIM and MS-SSIM as computed by this package on the rebuilt images
  (full-range BT.601 luma in floating point, no downsampling);
* beside them, the official TID2013 values of the same images for PSNR,
  SSIM, MS-SSIM, FSIM, FSIMc and VIF (``official/`` of the tool): what the
  field has published for these very images. TID2013's PSNR is on MATLAB's
  ``rgb2ycbcr`` Y (studio range, rounded to 8 bits), and its SSIM and
  MS-SSIM are Wang's MATLAB code on that Y, SSIM after its automatic 2x
  downsampling of a 384x512 image.

Our PSNR must rank the images as the official PSNR does (SRCC within 0.01):
the check that the rebuild is faithful. Scatter plots go to
``ASNA_BENCH_OUT/tid2013_kodak_scatter*.png``, the figures to
``accuracy_TID2013-kodak.json``. Nothing here trains or selects anything:
TID2013 is reported, never fitted.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from asna_metric._provenance import describe_weights, run_metadata
from asna_metric.data import tid2013_kodak
from asna_metric.data.baselines import build_metric
from asna_metric.data.predict import PredictionCache, metric_key, predict
from asna_metric.data.readers import PairRecord, read_tid2013
from asna_metric.data.report import (
    coverage,
    evaluate_records,
    format_coverage,
    format_per_type,
    format_table,
    plot_results,
    write_results,
)

pytestmark = pytest.mark.benchmark

REPO = Path(__file__).resolve().parents[1]
REFS = range(1, 25)
CHUNK = 2  # references per call of the tool: the unit of resumption
# Official per-image values of the tool's official/ folder, by the label we report.
OFFICIAL = {
    "PSNR (official)": "PSNR.txt",
    "SSIM (official)": "SSIM.txt",
    "MS-SSIM (official)": "MSSIM.txt",
    "FSIM (official)": "FSIM.txt",
    "FSIMc (official)": "FSIMc.txt",
    "VIF (official)": "VIFP.txt",
}
OURS = {"psnr": "PSNR (ours)", "ssim": "SSIM (ours)", "ms_ssim": "MS-SSIM (ours)"}


def _tool(shared: Path) -> Path:
    tool = shared.parent / "tools" / "tid2013_kodak"
    if not (tool / "rebuild.py").is_file():
        pytest.skip(f"the TID2013 rebuild tool is not at {tool} (ASNA_SHARED_DATA/../tools)")
    return tool


def _rebuild(tool: Path, out: Path) -> None:
    """Run the tool on ``CHUNK`` references at a time; a finished chunk leaves a marker."""
    jobs = max(1, min(CHUNK, os.cpu_count() or 1))
    for first in REFS[::CHUNK]:
        last = min(first + CHUNK - 1, REFS[-1])
        marker = out / f".rebuilt-{first:02d}-{last:02d}"
        if marker.is_file():
            continue
        print(f"rebuilding TID2013 references {first}-{last} into {out} ...", flush=True)
        command = [sys.executable, str(tool / "rebuild.py"), "--out", str(out)]
        command += ["--refs", f"{first}-{last}", "--jobs", str(jobs)]
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        marker.touch()


@pytest.fixture(scope="module")
def tid_root(shared_data_root: Path, bench_cache: Path) -> Path:
    given = os.environ.get("ASNA_TID2013_KODAK")
    if given:
        root = Path(given).expanduser()
        if (
            not (root / "mos_with_names.txt").is_file()
            or not (root / tid2013_kodak.MARKER).is_file()
        ):
            pytest.fail(f"ASNA_TID2013_KODAK={given} is not a folder written by rebuild.py")
        return root
    root = bench_cache / "tid2013_kodak"
    root.mkdir(parents=True, exist_ok=True)
    _rebuild(_tool(shared_data_root), root)
    return root


def _kodak_in_training(weights: str) -> bool:
    """Whether the weights' training labels came from Kodak photographs (their metadata)."""
    from asna_metric.weights import resolve_weights, weights_info

    info = weights_info(resolve_weights(weights))
    return "kodak" in str(info.get("data", "")).lower()


def _official(tool: Path, records: list[PairRecord]) -> dict[str, list[float | None]]:
    """The official value of each record for each official metric (file order = label order)."""
    names = [
        line.split()[1].lower()
        for line in (tool / "official" / "mos_with_names.txt").read_text().splitlines()
        if line.strip()
    ]
    columns = {}
    for label, filename in OFFICIAL.items():
        values = [float(v) for v in (tool / "official" / filename).read_text().split()]
        if label.startswith("PSNR"):
            # TID2013 writes 100000 dB for an infinite PSNR (111 images where the distorted
            # Y equals the reference's, e.g. saturation change): cap it at 100 dB as our
            # PSNR does, or the logistic fit of PLCC is meaningless (ranks are unchanged).
            values = [min(v, 100.0) for v in values]
        if len(values) != len(names):
            pytest.fail(f"{filename}: {len(values)} values for {len(names)} images")
        by_name = dict(zip(names, values, strict=True))
        columns[label] = [by_name.get(r.dist.name.lower()) for r in records]
    return columns


def _cell_mean_check(
    records: list[PairRecord], columns: dict[str, list[float | None]]
) -> dict[str, tuple[float, float]]:
    """Each column's SRCC against the human MOS and against the MOS of its (type, level) cell.

    The KADID protocol labels synthetic pairs with cell means; if a metric
    ranked cell means much better or worse than per-image scores, comparing
    its SRCC on synthetic pairs with its published value would mislead.
    """
    from asna_metric.data.evaluation import srcc

    cells: dict[tuple[str, int | None], list[float]] = {}
    for r in records:
        cells.setdefault((r.dis_type, r.level), []).append(r.quality)
    mean = {k: sum(v) / len(v) for k, v in cells.items()}
    target = [r.quality for r in records]
    cell_target = [mean[(r.dis_type, r.level)] for r in records]
    out = {"(cell means themselves)": (srcc(cell_target, target), 1.0)}
    for label, values in columns.items():
        kept = [i for i, v in enumerate(values) if v is not None]
        x = [values[i] for i in kept]
        out[label] = (srcc(x, [target[i] for i in kept]), srcc(x, [cell_target[i] for i in kept]))
    return out


def test_accuracy_on_tid2013_rebuilt_from_kodak(
    tid_root: Path, shared_data_root: Path, bench_cache: Path, bench_out: Path
) -> None:
    from asna_metric.data.evaluation import srcc
    from asna_metric.weights import list_weights

    full = read_tid2013(tid_root)
    dataset = full.present()
    records = list(dataset)
    if len(records) < len(tid2013_kodak.REBUILT_TYPES) * 5 * 24:
        pytest.fail(f"{tid_root} holds {len(records)} rebuilt images; expected 1,560")
    groups = {
        "all 13 types": records,
        "strict 11 types": tid2013_kodak.strict_records(records),
    }

    functions: dict[str, Any] = {name: build_metric(name) for name in OURS}
    labels = dict(OURS)
    kodak: dict[str, bool] = {}
    weights_of: dict[str, str] = {}
    for weights in list_weights():
        key = metric_key("asna", weights, None)
        functions[key] = build_metric("asna", weights=weights)
        labels[key] = f"ASNA {weights}"
        kodak[labels[key]] = _kodak_in_training(weights)
        weights_of[labels[key]] = weights
    tool = _tool(shared_data_root)  # before the costly scoring: skip early without it
    cache = PredictionCache(bench_cache / "TID2013-kodak.predictions.csv", root=tid_root)
    workers = int(os.environ.get("ASNA_BENCH_WORKERS", "2"))
    predictions, failures = predict(
        records, functions, cache, batch_size=4, workers=workers, desc="TID2013-kodak"
    )
    for key, messages in failures.items():
        if messages:
            pytest.fail(f"{labels[key]} failed on {len(messages)} images, e.g. {messages[0]}")
    columns = {labels[k]: v for k, v in predictions.items()}
    columns.update(_official(tool, records))

    row = {(r.dist, r.ref): i for i, r in enumerate(records)}
    results = []
    for group, members in groups.items():
        for label, values in columns.items():
            entry = evaluate_records(
                members,
                [values[row[(r.dist, r.ref)]] for r in members],
                metric=label,
                dataset=f"TID2013-kodak:{group}",
                bootstrap=1000,
            )
            entry["source"] = "official TID2013 value" if "official" in label else "this package"
            if label in kodak:
                entry["kodak_in_training"] = kodak[label]
            results.append(entry)

    info = {
        group: coverage(members, total=len(full), type_names=tid2013_kodak.REBUILT_TYPES)
        for group, members in groups.items()
    }
    print()
    for group, summary in info.items():
        print(format_coverage(f"TID2013 rebuilt from Kodak, {group}", summary))
    print(format_table(results))
    for label, seen in kodak.items():
        if seen:
            print(f"{label}: trained on Kodak photographs (refs/kodak24): not content-disjoint")
    for group in groups:
        subset = [e for e in results if e["dataset"].endswith(group)]
        print(f"\nSRCC per type, {group}:")
        print(format_per_type(subset, list(tid2013_kodak.REBUILT_TYPES)))

    ours = next(e for e in results if e["metric"] == "PSNR (ours)" and "all" in e["dataset"])
    official = next(
        e for e in results if e["metric"] == "PSNR (official)" and "all" in e["dataset"]
    )
    gap = abs(ours["srcc"] - official["srcc"])
    agreement = srcc(
        [columns["PSNR (ours)"][i] for i in range(len(records))],
        [columns["PSNR (official)"][i] for i in range(len(records))],
    )
    print(
        f"\nrebuild fidelity: SRCC vs MOS of our PSNR {ours['srcc']:.4f}, official PSNR "
        f"{official['srcc']:.4f} (gap {gap:.4f}); our PSNR against the official PSNR: SRCC "
        f"{agreement:.4f}"
    )

    cell_check = _cell_mean_check(records, columns)
    print("\nSRCC against per-image MOS and against (type, level) cell means (the KADID protocol):")
    for label, (per_image, cell) in cell_check.items():
        print(f"  {label:32s} {per_image:.4f}  {cell:.4f}")

    for group in groups:
        panels = [e for e in results if e["dataset"].endswith(group)]
        suffix = "" if group.startswith("all") else "_strict"
        plot_results(panels, bench_out / f"tid2013_kodak_scatter{suffix}.png")
    metadata = run_metadata(
        "pytest benchmarks/test_accuracy_tid2013_kodak.py -m benchmark",
        weights={label: describe_weights(w) for label, w in weights_of.items()},
        folder=REPO,
    )
    metadata["notes"] = [
        "TID2013 rebuilt from the Kodak photographs by the project's tid2013_kodak tool: "
        f"{len(records)} of TID2013's 3,000 images, human MOS from TID2013",
        f"approximately rebuilt types: {', '.join(tid2013_kodak.APPROXIMATE_TYPES)}",
        "ours: PSNR/SSIM/MS-SSIM on full-range BT.601 luma in float, no downsampling "
        "(pytorch-msssim); official: TID2013's MATLAB values on rgb2ycbcr Y",
    ]
    write_results(
        bench_out / "accuracy_TID2013-kodak.json",
        results,
        metadata,
        coverage=info,
        fidelity={"psnr_srcc_gap": gap, "psnr_ours_vs_official_srcc": agreement},
        cell_mean_check={
            k: {"per_image_mos": a, "cell_means": b} for k, (a, b) in cell_check.items()
        },
    )
    print(f"wrote {bench_out / 'accuracy_TID2013-kodak.json'}")
    assert gap < 0.01, f"our PSNR's SRCC differs from the official PSNR's by {gap:.4f}"
