"""``asna-metric synth``: round trip, resume, errors."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from asna_metric.cli import main
from asna_metric.data.kadid_cells import KADID_CELL_MOS

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def refs(tmp_path: Path, request: pytest.FixtureRequest) -> Path:
    """Two small references: a crop of a real photograph when available, and a synthetic one."""
    folder = tmp_path / "refs"
    folder.mkdir()
    rng = np.random.default_rng(0)
    try:
        shared = request.getfixturevalue("shared_data")
    except pytest.skip.Exception:
        photo = (rng.random((56, 72, 3)) * 255).astype(np.uint8)
    else:
        with Image.open(shared / "refs" / "kodak24" / "kodim03.png") as image:
            photo = np.array(image.convert("RGB"))[100:156, 200:272]
    Image.fromarray(photo).save(folder / "photo.png")
    ramp = np.linspace(0, 255, 64)
    synthetic = np.stack(np.broadcast_arrays(ramp[None, :], ramp[:, None], 128.0), axis=-1)
    synthetic = synthetic[:48].astype(np.uint8)
    Image.fromarray(synthetic).save(folder / "ramp.bmp")
    return folder


def _read(labels: Path) -> list[dict[str, str]]:
    with labels.open(newline="") as handle:
        reader = csv.DictReader(handle)
        assert reader.fieldnames == ["dis_img_path", "dis_type", "ref_img_path", "score"]
        return list(reader)


def test_synth_round_trip_and_resume(
    refs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    argv = ["synth", "--refs", str(refs), "--out", str(out), "--types", "1", "jpeg,Color_Block"]
    argv += ["--levels", "1", "3", "--seed", "5", "--identity", "--no-progress"]
    assert main(argv) == 0
    assert "wrote 14 labelled pairs" in capsys.readouterr().out

    labels = out / "labels.csv"
    rows = _read(labels)
    expected = []
    for stem in ("photo", "ramp"):  # sorted by file name
        expected.append((f"refs/{stem}.png", "identity", f"refs/{stem}.png", 5.0))
        for type_id, name in ((1, "GBLUR"), (10, "JPEG"), (23, "Color_Block")):
            for level in (1, 3):
                expected.append(
                    (
                        f"dist/{stem}_{type_id:02d}_{level:02d}.png",
                        name,
                        f"refs/{stem}.png",
                        KADID_CELL_MOS[type_id][level - 1],
                    )
                )
    got = [(r["dis_img_path"], r["dis_type"], r["ref_img_path"], float(r["score"])) for r in rows]
    assert got == expected

    for row in rows:
        with (
            Image.open(out / row["dis_img_path"]) as dist,
            Image.open(out / row["ref_img_path"]) as ref,
        ):
            assert dist.mode == ref.mode == "RGB"
            assert dist.size == ref.size
    with Image.open(out / "refs" / "ramp.png") as ramp:
        assert ramp.size == (64, 48)  # sizes are kept, BMP input became PNG

    files = sorted(p for p in out.rglob("*.png"))
    assert len(files) == 2 + 2 * 3 * 2
    stamps = {p: p.stat().st_mtime_ns for p in files}
    csv_text = labels.read_text()

    # Rerun: nothing is rewritten and the CSV is identical.
    assert main(argv) == 0
    assert {p: p.stat().st_mtime_ns for p in files} == stamps
    assert labels.read_text() == csv_text
    assert not list(out.rglob("*.tmp"))

    # Resume after losing one image: only it is made again, identical to the first time.
    lost = out / "dist" / "photo_23_03.png"
    content = lost.read_bytes()
    lost.unlink()
    assert main(argv) == 0
    assert lost.read_bytes() == content
    assert {p: p.stat().st_mtime_ns for p in files if p != lost} == {
        p: t for p, t in stamps.items() if p != lost
    }
    assert labels.read_text() == csv_text


def test_synth_workers_give_the_same_images(refs: Path, tmp_path: Path) -> None:
    common = ["--refs", str(refs), "--types", "11,19", "--levels", "2", "--no-progress"]
    assert main(["synth", "--out", str(tmp_path / "a"), *common]) == 0
    assert main(["synth", "--out", str(tmp_path / "b"), "--workers", "2", *common]) == 0
    names = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*.png"))
    assert len(names) == 2 + 2 * 2
    for name in names:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--types", "99"], "unknown distortion type"),
        (["--types", "not_a_type"], "unknown distortion type"),
        (["--levels", "0"], "--levels"),
        (["--levels", "two"], "--levels"),
        (["--seed", "-1"], "seed"),
        (["--workers", "0"], "workers"),
    ],
)
def test_synth_bad_arguments_exit_2(
    refs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    argv = ["synth", "--refs", str(refs), "--out", str(tmp_path / "out"), "--no-progress", *extra]
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_synth_missing_refs_folder_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["synth", "--refs", str(tmp_path / "nope"), "--out", str(tmp_path / "out")]
    assert main(argv) == 2
    assert "does not exist" in capsys.readouterr().err


def test_synth_requires_refs_and_out(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as excinfo:
        main(["synth", "--refs", "x"])
    assert excinfo.value.code == 2
    assert "--out" in capsys.readouterr().err


def test_synth_split_uses_only_that_split(tmp_path: Path) -> None:
    import json

    from asna_metric.data.splits import make_reference_split

    root = tmp_path / "root"
    rng = np.random.default_rng(1)
    for folder, count in (("alpha", 10), ("kodak", 2)):
        (root / folder).mkdir(parents=True)
        for i in range(count):
            array = rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)
            Image.fromarray(array).save(root / folder / f"{folder}{i}.png")
    manifest = make_reference_split(root, folders=("alpha",), eval_only_folders=("kodak",))
    (tmp_path / "split.json").write_text(json.dumps(manifest))
    out = tmp_path / "out"
    argv = ["synth", "--refs", str(root), "--split", "test", "--manifest"]
    argv += [str(tmp_path / "split.json"), "--out", str(out), "--types", "1", "--levels", "2"]
    assert main([*argv, "--no-progress"]) == 0
    (test_photo,) = manifest["splits"]["test"]
    stem = Path(test_photo).stem
    assert [(r["dis_img_path"], r["ref_img_path"]) for r in _read(out / "labels.csv")] == [
        (f"dist/{stem}_01_02.png", f"refs/{stem}.png")
    ]
    assert main(["synth", "--refs", str(root), "--manifest", "refs-v1", "--out", str(out)]) == 2
