"""TID2013 rebuilt from Kodak: the reader and ``asna-metric eval`` on a few rebuilt images.

The shared tool (``../shared/tools/tid2013_kodak/rebuild.py``) rebuilds ten
images here (reference I01; mean shift, faithful, and high-frequency noise,
approximate), in TID2013's own layout with its full ``mos_with_names.txt``:
the reader must see a subset, and the report must say so.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from asna_metric.cli import main
from asna_metric.data import tid2013_kodak
from asna_metric.data.readers import MissingFilesError, read_tid2013


@pytest.fixture(scope="module")
def rebuilt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from helpers import find_shared_data

    shared, missing = find_shared_data()
    if missing:
        pytest.skip(missing)
    tool = shared.parent / "tools" / "tid2013_kodak" / "rebuild.py"
    if not tool.is_file() or not (shared / "refs" / "kodak").is_dir():
        pytest.skip(
            f"the TID2013 rebuild tool or the Kodak photographs are not at {tool.parent} and "
            f"{shared / 'refs' / 'kodak'}: set ASNA_SHARED_DATA to the project's shared/data"
        )
    pytest.importorskip("scipy", reason="the rebuild tool needs scipy (the eval extra)")
    out = tmp_path_factory.mktemp("tid2013_kodak")
    subprocess.run(
        [sys.executable, str(tool), "--out", str(out), "--refs", "1", "--types", "5,16"],
        check=True,
        capture_output=True,
        timeout=300,
    )
    return out


def test_reader_sees_the_rebuilt_images_as_part_of_tid2013(rebuilt: Path) -> None:
    dataset = read_tid2013(rebuilt)
    assert len(dataset) == 3000  # the release's whole label file
    with pytest.raises(MissingFilesError) as info:
        dataset.check_files()
    present = [r for r in dataset if r.dist not in set(info.value.missing)]
    assert len(present) == 10
    assert list(dataset.present()) == present  # the same subset, in order
    assert {r.dis_type for r in present} == {"High_Frequency_Noise", "Mean_Shift"}
    assert {r.ref_id for r in present} == {"I01"}
    assert all(r.ref.is_file() for r in present)
    assert tid2013_kodak.is_rebuilt(dataset)
    strict = tid2013_kodak.strict_records(present)
    assert {r.dis_type for r in strict} == {"Mean_Shift"}


def test_eval_reports_the_subset_and_the_strict_set(
    rebuilt: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "tid.json"
    args = ["eval", "--dataset", "TID2013", "--root", str(rebuilt), "--skip-missing"]
    args += ["--metric", "psnr", "--workers", "0", "--bootstrap", "0", "--json", str(out)]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "TID2013: subset, 10 of 3,000 pairs, 1 references, 2 of 24 types" in text
    assert "rebuilt from the Kodak photographs" in text
    document = json.loads(out.read_text())
    coverage = document["coverage"]
    assert coverage["TID2013"]["subset"] is True
    assert coverage["TID2013"]["types"] == {"High_Frequency_Noise": 5, "Mean_Shift": 5}
    assert "JP2K" in coverage["TID2013"]["approximate_types"]
    assert coverage["TID2013:strict"]["types"] == {"Mean_Shift": 5}
    assert "--skip-missing" in document["metadata"]["command"]  # the command reproduces the run
    datasets = [r["dataset"] for r in document["results"]]
    assert datasets == ["TID2013", "TID2013:strict"]
    assert [r["n"] for r in document["results"]] == [10, 5]


def test_our_psnr_ranks_the_rebuilt_images_as_the_official_psnr(rebuilt: Path) -> None:
    import csv

    from asna_metric.data.baselines import psnr
    from asna_metric.data.evaluation import srcc
    from asna_metric.inputs import to_batch

    with (rebuilt / "fidelity.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    ref = to_batch(rebuilt / "reference_images" / "I01.BMP", name="ref")
    ours = [
        float(psnr(to_batch(rebuilt / "distorted_images" / r["image"], name="dist"), ref))
        for r in rows
    ]
    official = [float(r["official_psnr"]) for r in rows]
    assert srcc(ours, official) > 0.95
