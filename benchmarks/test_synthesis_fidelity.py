"""How faithful the KADID-10k synthesis is: classic metrics on our pairs vs on real KADID-10k.

Run: ``pytest benchmarks/test_synthesis_fidelity.py -m benchmark -s -p no:cacheprovider``.

The official KADID-10k generator's 25 types x 5 levels
(:mod:`asna_metric.data.distortions`) are applied to held-out photographs
(the ``test`` split of :func:`asna_metric.data.splits.reference_split`:
photographs of ``refs/cbsd68``, ``refs/bsds500``, ``refs/urban100``, used as
stored, as ``asna-metric synth`` uses them). Each pair is labelled with
KADID's human cell mean for its (type, level), and PSNR, SSIM and MS-SSIM
(:mod:`asna_metric.data.baselines`: luma channel, SSIM and MS-SSIM from
pytorch-msssim, 11x11 Gaussian window, no pre-downsampling) are ranked
against those labels. If the synthesis distorts as KADID did, their SRCC
should be close to the values published for real KADID-10k (Lin et al. 2019:
PSNR 0.68, SSIM 0.72, MS-SSIM 0.80). The labels carry human judgment of how
bad each distortion is, not of how it interacts with a particular image.

The distorted images are rounded to 8 bits, as the PNG files of ``asna-metric
synth`` (and KADID's BMP files) are; the reference is the photograph as
stored (not min-max mapped), as in KADID. Seeds follow
:func:`asna_metric.data.synthesis.item_seed` (seed 0).

Environment:

* ``ASNA_SHARED_DATA``: the shared data (``refs/``, ``labels/``).
* ``ASNA_FIDELITY_REFS``: use only the first N photographs of the test split
  (default: all 60).
* ``ASNA_FIDELITY_GENERATOR``: path of a Python file with a
  ``distort(images, type, level, generator=...)`` to benchmark instead of the
  package's (e.g. an older version, for a before/after table).
* ``ASNA_BENCH_WORKERS``: threads distorting photographs (default 2).
* ``ASNA_BENCH_OUT``: where ``synthesis_fidelity.json`` goes.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from asna_metric.data import baselines
from asna_metric.data.evaluation import srcc
from asna_metric.data.kadid_cells import KADID_CELL_MOS, KADID_TYPE_NAMES
from asna_metric.data.synthesis import item_seed

pytestmark = pytest.mark.benchmark

PUBLISHED_KADID = {"psnr": 0.68, "ssim": 0.72, "ms_ssim": 0.80}
TARGET = 0.05  # each metric's SRCC should lie within this of its published value
METRICS: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "psnr": baselines.psnr,
    "ssim": baselines.ssim,
    "ms_ssim": baselines.ms_ssim,
}


def _generator_function() -> tuple[Callable[..., torch.Tensor], str]:
    path = os.environ.get("ASNA_FIDELITY_GENERATOR")
    if not path:
        from asna_metric.data.distortions import distort

        return distort, "asna_metric.data.distortions"
    spec = importlib.util.spec_from_file_location("fidelity_generator", path)
    if spec is None or spec.loader is None:
        pytest.fail(f"ASNA_FIDELITY_GENERATOR={path} is not a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module.distort, str(path)


def _photographs(root: Path) -> list[Path]:
    try:
        from asna_metric.data.splits import reference_split
    except ImportError as exc:
        pytest.skip(f"asna_metric.data.splits.reference_split is not available: {exc}")
    names = reference_split()["test"]
    limit = os.environ.get("ASNA_FIDELITY_REFS")
    if limit:
        names = names[: int(limit)]
    paths = [root / "refs" / name for name in names]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        pytest.skip(f"test-split photographs missing under {root / 'refs'}: {missing[:3]}")
    return paths


def _load(path: Path) -> torch.Tensor:
    array = np.array(Image.open(path).convert("RGB"), dtype=np.uint8)
    return torch.from_numpy(array).permute(2, 0, 1).unsqueeze(0).float() / 255.0


def _score_photograph(
    path: Path, distort: Callable[..., torch.Tensor]
) -> list[tuple[int, int, dict[str, float]]]:
    ref = _load(path)
    rows = []
    for dist_type in range(1, 26):
        for level in range(1, 6):
            generator = torch.Generator().manual_seed(item_seed(0, path.stem, dist_type))
            dist = distort(ref, dist_type, level, generator=generator)
            dist = dist.clamp(0, 1).mul(255).round().div(255)  # the 8-bit file
            scores = {name: float(fn(dist, ref)[0]) for name, fn in METRICS.items()}
            rows.append((dist_type, level, scores))
    return rows


def _table(rows: list[tuple[int, int, dict[str, float]]]) -> dict[str, dict[str, float]]:
    """SRCC of each metric against the cell means: overall and per type."""
    labels = np.array([KADID_CELL_MOS[t][lv - 1] for t, lv, _ in rows])
    types = np.array([t for t, _, _ in rows])
    out: dict[str, dict[str, float]] = {}
    for name in METRICS:
        values = np.array([s[name] for _, _, s in rows])
        entry = {"all": srcc(values, labels)}
        for t in range(1, 26):
            mask = types == t
            entry[str(t)] = srcc(values[mask], labels[mask])
        out[name] = entry
    return out


def _format(table: dict[str, dict[str, float]]) -> str:
    lines = [f"{'type':<28}" + "".join(f"{name:>9}" for name in METRICS)]
    lines.append(
        f"{'published KADID-10k':<28}" + "".join(f"{PUBLISHED_KADID[n]:>9.2f}" for n in METRICS)
    )
    lines.append(f"{'all pairs':<28}" + "".join(f"{table[n]['all']:>9.3f}" for n in METRICS))
    for t in range(1, 26):
        label = f"{t:>2} {KADID_TYPE_NAMES[t - 1]}"
        lines.append(f"{label:<28}" + "".join(f"{table[n][str(t)]:>9.3f}" for n in METRICS))
    return "\n".join(lines)


def test_synthesis_fidelity(shared_data_root: Path, write_json: Any) -> None:
    pytest.importorskip("pytorch_msssim", reason="SSIM and MS-SSIM need pytorch-msssim")
    distort, source = _generator_function()
    paths = _photographs(shared_data_root)
    workers = int(os.environ.get("ASNA_BENCH_WORKERS", "2"))
    threads = torch.get_num_threads()
    torch.set_num_threads(max(1, threads // workers))
    start = time.perf_counter()
    try:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            per_photo = list(pool.map(lambda p: _score_photograph(p, distort), paths))
    finally:
        torch.set_num_threads(threads)
    elapsed = time.perf_counter() - start
    rows = [row for photo in per_photo for row in photo]
    table = _table(rows)
    print(
        f"\nKADID-protocol fidelity: {len(paths)} test-split photographs x 25 types x 5 levels "
        f"= {len(rows)} pairs, generator {source}, {elapsed:.0f} s\n"
        "SRCC against the KADID-10k cell means (PSNR/SSIM/MS-SSIM on luma; SSIM and MS-SSIM "
        "from pytorch-msssim)\n" + _format(table)
    )
    write_json(
        "synthesis_fidelity.json",
        {
            "generator": source,
            "photographs": [f"{p.parent.name}/{p.name}" for p in paths],
            "pairs": len(rows),
            "published_kadid10k": PUBLISHED_KADID,
            "srcc": table,
            "seconds": elapsed,
            "pairs_scores": [
                {"photo": f"{p.parent.name}/{p.name}", "type": t, "level": lv, **scores}
                for p, photo in zip(paths, per_photo, strict=True)
                for t, lv, scores in photo
            ],
        },
    )
    for name, published in PUBLISHED_KADID.items():
        assert np.isfinite(table[name]["all"])
        assert abs(table[name]["all"] - published) <= TARGET, (
            f"{name}: SRCC {table[name]['all']:.3f} on our pairs vs {published} on KADID-10k "
            f"(target: within {TARGET})"
        )
