"""Dataset readers (official layouts and the generic CSV) and splits."""

from __future__ import annotations

import csv
import random
import subprocess
import sys
import zipfile
from pathlib import Path
from xml.sax.saxutils import escape

import numpy as np
import pytest
from PIL import Image

from asna_metric.data.readers import (
    CONVENTIONS,
    DATASETS,
    IQADataset,
    MissingFilesError,
    PairRecord,
    ScoreConvention,
    get_convention,
    load_dataset,
    read_csiq,
    read_kadid10k,
    read_labels_csv,
    read_live,
    read_pipal,
    read_tid2013,
)
from asna_metric.data.splits import (
    DEFAULT_HELD_OUT_TYPES,
    k_fold_by_reference,
    leave_types_out,
    split_by_reference,
)
from asna_metric.errors import InputError


def _image(path: Path, value: int = 128) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (4, 4), (value, value, value)).save(path)
    return path


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


# ----------------------------------------------------------------- KADID-10k


def _kadid_tree(root: Path) -> Path:
    rows = [
        ("I01_01_01.png", "I01.png", 4.57, 0.3),
        ("I01_11_05.png", "I01.png", 2.0, 0.5),
        ("I02_25_03.png", "I02.png", 1.0, 0.1),
    ]
    lines = ["dist_img,ref_img,dmos,var"] + [",".join(map(str, r)) for r in rows]
    _write(root / "dmos.csv", "\n".join(lines) + "\n")
    for dist, ref, _, _ in rows:
        _image(root / "images" / dist)
        _image(root / "images" / ref)
    return root


def test_kadid_reader_records_and_quality(tmp_path: Path) -> None:
    dataset = read_kadid10k(_kadid_tree(tmp_path / "kadid10k"))
    assert isinstance(dataset, IQADataset)
    assert dataset.name == "KADID-10k" and dataset.higher_is_better
    assert len(dataset) == 3
    first, second, third = dataset
    assert first.dist == tmp_path / "kadid10k" / "images" / "I01_01_01.png"
    assert first.ref == tmp_path / "kadid10k" / "images" / "I01.png"
    assert (first.dis_type, first.level, first.ref_id) == ("GBLUR", 1, "I01")
    assert (second.dis_type, second.level) == ("AWGN", 5)
    assert (third.dis_type, third.level, third.ref_id) == ("Contrast Dist.", 3, "I02")
    assert first.quality == pytest.approx((4.57 - 1) / 4)
    assert third.quality == 0.0
    assert first.score == 4.57
    dataset.check_files()


def test_kadid_reader_finds_release_folder_under_parent(tmp_path: Path) -> None:
    _kadid_tree(tmp_path / "kadid10k")
    assert len(read_kadid10k(tmp_path)) == 3
    assert len(load_dataset("kadid", tmp_path)) == 3


def test_kadid_reader_missing_label_file(tmp_path: Path) -> None:
    (tmp_path / "images").mkdir()
    with pytest.raises(MissingFilesError, match=r"dmos\.csv") as info:
        read_kadid10k(tmp_path)
    assert isinstance(info.value, FileNotFoundError)


# ----------------------------------------------------------------- TID2013


def test_tid2013_reader_tolerates_case_and_maps_quality(tmp_path: Path) -> None:
    _write(tmp_path / "mos_with_names.txt", "5.51429 i01_01_1.bmp\n0.9 i02_24_5.bmp\n\n")
    _image(tmp_path / "distorted_images" / "i01_01_1.bmp")
    _image(tmp_path / "distorted_images" / "i02_24_5.bmp")
    _image(tmp_path / "reference_images" / "I01.BMP")
    _image(tmp_path / "reference_images" / "I02.BMP")
    dataset = read_tid2013(tmp_path)
    assert [r.dis_type for r in dataset] == ["AWGN", "Sparse_Sampling"]
    assert [r.level for r in dataset] == [1, 5]
    assert dataset[0].ref.name == "I01.BMP"
    assert dataset[0].quality == pytest.approx(5.51429 / 9)
    assert dataset[0].quality > dataset[1].quality
    dataset.check_files()


def test_tid2013_reader_rejects_malformed_line(tmp_path: Path) -> None:
    _write(tmp_path / "mos_with_names.txt", "5.5 i01_01_1.bmp extra\n")
    with pytest.raises(InputError, match="line 1"):
        read_tid2013(tmp_path)


# ----------------------------------------------------------------- LIVE


def _live_tree(root: Path, dmos: np.ndarray, orgs: np.ndarray, n_names: int = 982) -> Path:
    from scipy.io import savemat

    root.mkdir(parents=True, exist_ok=True)
    savemat(root / "dmos_realigned.mat", {"dmos_new": dmos[None, :], "orgs": orgs[None, :]})
    names = np.empty((1, n_names), dtype=object)
    for i in range(n_names):
        names[0, i] = f"ref{i % 29:02d}.bmp"
    savemat(root / "refnames_all.mat", {"refnames_all": names})
    return root


def test_live_reader_skips_originals_and_maps_dmos(tmp_path: Path) -> None:
    dmos = np.linspace(0.0, 100.0, 982)
    dmos[1], dmos[2] = -2.5, 110.0
    orgs = np.zeros(982)
    orgs[0] = orgs[227] = orgs[981] = 1
    dataset = read_live(_live_tree(tmp_path / "databaserelease2", dmos, orgs))
    assert dataset.name == "LIVE" and not dataset.higher_is_better
    assert len(dataset) == 979
    first = dataset[0]
    assert first.dist == tmp_path / "databaserelease2" / "jp2k" / "img2.bmp"
    assert first.ref.name == "ref01.bmp" and first.ref.parent.name == "refimgs"
    assert first.score == -2.5 and first.quality == 1.0
    assert dataset[1].score == 110.0 and dataset[1].quality == 0.0
    assert dataset[226].dist.parent.name == "jpeg" and dataset[226].dist.name == "img2.bmp"
    assert dataset[-1].dist.name == "img173.bmp" and dataset[-1].dis_type == "fastfading"
    qualities = [r.quality for r in dataset[3:10]]
    assert qualities == sorted(qualities, reverse=True)  # DMOS rises: quality falls
    assert {r.dis_type for r in dataset} == {"jp2k", "jpeg", "wn", "gblur", "fastfading"}


def test_live_reader_rejects_wrong_sizes(tmp_path: Path) -> None:
    _live_tree(tmp_path, np.zeros(982), np.zeros(982), n_names=10)
    with pytest.raises(InputError, match="982"):
        read_live(tmp_path)


def test_missing_images_reported_once_with_count(tmp_path: Path) -> None:
    dataset = read_live(_live_tree(tmp_path, np.zeros(982), np.zeros(982)))
    with pytest.raises(MissingFilesError) as info:
        dataset.check_files()
    message = str(info.value)
    total = len({p for r in dataset for p in (r.dist, r.ref)})
    assert f"{total} of {total} image files are missing" in message
    assert f"and {total - 10} more" in message
    assert len(info.value.missing) == total and info.value.total == total


# ----------------------------------------------------------------- CSIQ


def _xlsx(path: Path, rows: list[list[object]], sheet: str = "all_by_image") -> Path:
    """A minimal workbook: shared strings for text, numbers inline."""
    strings: list[str] = []
    cells_xml = []
    for r, row in enumerate(rows, start=1):
        cells = []
        for c, value in enumerate(row):
            ref = f"{chr(65 + c)}{r}"
            if isinstance(value, str):
                strings.append(value)
                cells.append(f'<c r="{ref}" t="s"><v>{len(strings) - 1}</v></c>')
            else:
                cells.append(f'<c r="{ref}"><v>{value}</v></c>')
        cells_xml.append(f'<row r="{r}">{"".join(cells)}</row>')
    main = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
    rel = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(
            "xl/workbook.xml",
            f'<workbook xmlns="{main}" xmlns:r="{rel}"><sheets>'
            f'<sheet name="readme" sheetId="1" r:id="rId1"/>'
            f'<sheet name="{sheet}" sheetId="2" r:id="rId2"/></sheets></workbook>',
        )
        archive.writestr(
            "xl/_rels/workbook.xml.rels",
            '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
            '<Relationship Id="rId1" Target="worksheets/sheet1.xml" Type="ws"/>'
            '<Relationship Id="rId2" Target="worksheets/sheet2.xml" Type="ws"/>'
            "</Relationships>",
        )
        archive.writestr(
            "xl/worksheets/sheet1.xml",
            f'<worksheet xmlns="{main}"><sheetData><row r="1"><c r="A1" t="inlineStr">'
            "<is><t>nothing here</t></is></c></row></sheetData></worksheet>",
        )
        archive.writestr(
            "xl/worksheets/sheet2.xml",
            f'<worksheet xmlns="{main}"><sheetData>{"".join(cells_xml)}</sheetData></worksheet>',
        )
        archive.writestr(
            "xl/sharedStrings.xml",
            f'<sst xmlns="{main}">'
            + "".join(f"<si><t>{escape(s)}</t></si>" for s in strings)
            + "</sst>",
        )
    return path


_CSIQ_ROWS: list[list[object]] = [
    ["CSIQ DMOS"],
    ["image", "dst_idx", "dst_type", "dst_lev", "dmos_std", "dmos"],
    [1600, 1, "noise", 1, 0.02, 0.061989],
    ["aerial_city", 3, "jpeg 2000", 3, 0.05, 0.5],
    ["1600", 6, "contrast", 2, 0.01, 0.2],
]


def test_csiq_reader_reads_xlsx(tmp_path: Path) -> None:
    root = tmp_path / "CSIQ"
    root.mkdir()
    _xlsx(root / "csiq.DMOS.xlsx", _CSIQ_ROWS)
    _image(root / "dst_imgs" / "awgn" / "1600.AWGN.1.png")
    _image(root / "src_imgs" / "1600.png")
    dataset = read_csiq(tmp_path)  # found in the CSIQ/ subfolder
    assert len(dataset) == 3 and not dataset.higher_is_better
    first, second, third = dataset
    assert first.dist == root / "dst_imgs" / "awgn" / "1600.AWGN.1.png"
    assert first.ref == root / "src_imgs" / "1600.png"
    assert (first.dis_type, first.level, first.ref_id) == ("AWGN", 1, "1600")
    assert first.quality == pytest.approx(1 - 0.061989)
    assert second.dist.relative_to(root).as_posix() == (
        "dst_imgs/jpeg2000/aerial_city.jpeg2000.3.png"
    )
    assert (second.dis_type, second.quality) == ("JP2K", 0.5)
    assert third.dis_type == "Contrast Dist." and third.ref_id == "1600"


def test_csiq_reader_reads_csv_export(tmp_path: Path) -> None:
    with (tmp_path / "csiq.DMOS.csv").open("w", newline="") as handle:
        csv.writer(handle).writerows(_CSIQ_ROWS[1:])
    assert [r.dis_type for r in read_csiq(tmp_path)] == ["AWGN", "JP2K", "Contrast Dist."]


def test_csiq_reader_rejects_unknown_type(tmp_path: Path) -> None:
    rows = [*_CSIQ_ROWS[1:2], [1600, 1, "gamma", 1, 0.0, 0.1]]
    with (tmp_path / "csiq.DMOS.csv").open("w", newline="") as handle:
        csv.writer(handle).writerows(rows)
    with pytest.raises(InputError, match="gamma"):
        read_csiq(tmp_path)


# ----------------------------------------------------------------- PIPAL


def test_pipal_reader_searches_distortion_folders(tmp_path: Path) -> None:
    _write(
        tmp_path / "Train_Label" / "A0001.txt",
        "A0001_00_00.bmp,1520.0648\nA0001_06_03.bmp,1449.05\n",
    )
    _write(tmp_path / "Train_Label" / "A0002.txt", "A0002_03_01.bmp,1100.5\n")
    _image(tmp_path / "Distortion_1" / "A0001_00_00.bmp")
    _image(tmp_path / "Train_Dis" / "A0001_06_03.bmp")
    _image(tmp_path / "Train_Ref" / "A0001.bmp")
    dataset = read_pipal(tmp_path)
    assert len(dataset) == 3 and dataset.higher_is_better
    first, second, third = dataset
    assert first.dist == tmp_path / "Distortion_1" / "A0001_00_00.bmp"
    assert second.dist == tmp_path / "Train_Dis" / "A0001_06_03.bmp"
    assert first.ref == tmp_path / "Train_Ref" / "A0001.bmp"
    assert (first.dis_type, first.level, first.ref_id) == ("PIPAL_00", None, "A0001")
    assert second.quality == pytest.approx(0.5)
    assert 0.0 < third.quality < second.quality < first.quality < 1.0
    with pytest.raises(MissingFilesError, match="2 of 5 image files"):
        dataset.check_files()  # A0002's distorted and reference images


# ----------------------------------------------------------------- generic CSV


def _labels(path: Path, rows: list[tuple[str, str, str, str]], header: str | None = None) -> Path:
    lines = [header or "dis_img_path,dis_type,ref_img_path,score"]
    lines += [",".join(r) for r in rows]
    return _write(path, "\n".join(lines) + "\n")


_ROWS = [
    ("KADID-10k/images/I01_01_01.png", "GBLUR", "KADID-10k/images/I01.png", "4.57"),
    ("KADID-10k/images/I01_01_05.png", "GBLUR", "KADID-10k/images/I01.png", "1.3"),
]


def test_generic_csv_paths_relative_to_root(tmp_path: Path) -> None:
    labels = _labels(tmp_path / "KADID-10k.csv", _ROWS)
    dataset = read_labels_csv(labels, tmp_path / "data")
    assert dataset.name == "KADID-10k"
    assert dataset[0].dist == tmp_path / "data" / "KADID-10k" / "images" / "I01_01_01.png"
    assert [r.level for r in dataset] == [1, 5]
    assert dataset[1].quality == pytest.approx(0.075)
    # pointing root at the dataset folder itself drops the leading component
    _image(tmp_path / "KADID-10k" / "images" / "I01.png")
    inner = read_labels_csv(labels, tmp_path / "KADID-10k")
    assert inner[0].ref == tmp_path / "KADID-10k" / "images" / "I01.png"
    assert inner[0].ref.is_file()


def test_generic_csv_explicit_convention(tmp_path: Path) -> None:
    labels = _labels(
        tmp_path / "mine.csv", [("a.png", "x", "r.png", "30"), ("b.png", "x", "r.png", "70")]
    )
    with pytest.raises(InputError, match="unknown dataset 'mine'"):
        read_labels_csv(labels, tmp_path)
    live = read_labels_csv(labels, tmp_path, dataset="LIVE")
    assert [r.quality for r in live] == pytest.approx([0.7, 0.3])
    custom = ScoreConvention("mine", "MOS", True, (0.0, 100.0))
    dataset = read_labels_csv(labels, tmp_path, convention=custom)
    assert dataset.name == "mine" and [r.quality for r in dataset] == pytest.approx([0.3, 0.7])


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ("dis_img_path,ref_img_path,score\na.png,r.png,1\n", r"missing \['dis_type'\]"),
        ("dis_img_path,dis_type,ref_img_path,score\na.png,x,r.png,good\n", "line 2.*'good'"),
        ("dis_img_path,dis_type,ref_img_path,score\na.png,x,r.png,nan\n", "finite"),
        ("dis_img_path,dis_type,ref_img_path,score\n", "holds no pairs"),
        ("", "empty file"),
        ("dis_img_path,dis_type,ref_img_path,score\n,x,r.png,1\n", "both image paths"),
    ],
)
def test_generic_csv_bad_files(tmp_path: Path, content: str, match: str) -> None:
    labels = _write(tmp_path / "TID2013.csv", content)
    with pytest.raises(InputError, match=match):
        read_labels_csv(labels, tmp_path)


def test_generic_csv_missing_file(tmp_path: Path) -> None:
    with pytest.raises(MissingFilesError, match="does not exist"):
        read_labels_csv(tmp_path / "nope.csv", tmp_path)


_SHARED = {
    # file: (rows, references, score low, score high, higher is better)
    "KADID-10k": (10125, 81, 1.0, 5.0, True),
    "TID2013": (3000, 25, 0.0, 9.0, True),
    "PIPAL": (23200, 200, 900.0, 1900.0, True),
    "LIVE": (779, 29, -5.0, 115.0, False),
    "CSIQ": (866, 30, 0.0, 1.0, False),
}


@pytest.mark.parametrize("name", sorted(_SHARED))
def test_shared_label_csvs(shared_data: Path, name: str) -> None:
    rows, refs, low, high, higher = _SHARED[name]
    dataset = read_labels_csv(shared_data / "labels" / f"{name}.csv", shared_data / "images")
    assert len(dataset) == rows
    assert len(dataset.ref_ids) == refs
    assert dataset.higher_is_better is higher
    scores = np.array(dataset.scores)
    qualities = np.array(dataset.qualities)
    assert low <= scores.min() and scores.max() <= high
    assert qualities.min() >= 0.0 and qualities.max() <= 1.0
    assert qualities.std() > 0.1  # the map spreads the scores over the scale
    # the quality map is monotone in the right direction
    order = np.argsort(scores, kind="stable")
    steps = np.diff(qualities[order])
    assert np.all(steps >= 0) if higher else np.all(steps <= 0)
    if name in ("KADID-10k", "TID2013"):
        assert {r.level for r in dataset} == {1, 2, 3, 4, 5}


def test_shared_kadid_default_held_out_types(shared_data: Path) -> None:
    dataset = read_labels_csv(shared_data / "labels" / "KADID-10k.csv", shared_data)
    train, test = leave_types_out(dataset)
    assert len(test) == len(DEFAULT_HELD_OUT_TYPES) * 81 * 5
    assert len(train) + len(test) == len(dataset)
    assert set(test.dis_types) == set(DEFAULT_HELD_OUT_TYPES)
    assert not set(train.dis_types) & set(test.dis_types)


# ----------------------------------------------------------------- conventions


def test_conventions_and_registry() -> None:
    assert get_convention("kadid10k") is CONVENTIONS["KADID-10k"]
    assert get_convention("tid-2013").name == "TID2013"
    assert set(DATASETS) >= {"KADID-10k", "TID2013", "LIVE", "CSIQ", "PIPAL"}
    with pytest.raises(InputError, match="expected one of"):
        get_convention("imagenet")
    pipal = CONVENTIONS["PIPAL"]
    assert pipal.to_quality(1449.05) == pytest.approx(0.5)
    assert pipal.to_quality(5000.0) == pytest.approx(1.0)
    assert pipal.to_quality(-5000.0) == pytest.approx(0.0, abs=1e-9)
    assert CONVENTIONS["CSIQ"].to_quality(0.25) == pytest.approx(0.75)
    assert CONVENTIONS["TID2013"].to_quality(9.0) == 1.0


def test_readers_do_not_import_torch() -> None:
    code = (
        "import sys, asna_metric.data.readers, asna_metric.data.splits; "
        "sys.exit('torch' in sys.modules or 'scipy' in sys.modules)"
    )
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


# ----------------------------------------------------------------- splits


def _records(n_refs: int = 20, per_ref: int = 4) -> list[PairRecord]:
    return [
        PairRecord(
            dist=Path(f"d{r}_{i}.png"),
            ref=Path(f"r{r}.png"),
            score=float(i),
            quality=i / per_ref,
            dis_type=f"type{i}",
            level=i + 1,
            ref_id=f"r{r}",
        )
        for r in range(n_refs)
        for i in range(per_ref)
    ]


def test_split_by_reference_is_disjoint_reproducible_and_order_free() -> None:
    records = _records()
    train, val = split_by_reference(records, val_fraction=0.2, seed=3)
    assert {r.ref_id for r in train}.isdisjoint({r.ref_id for r in val})
    assert len({r.ref_id for r in val}) == 4
    assert sorted(train + val, key=str) == sorted(records, key=str)
    shuffled = records.copy()
    random.Random(0).shuffle(shuffled)
    _, val2 = split_by_reference(shuffled, val_fraction=0.2, seed=3)
    assert {r.ref_id for r in val2} == {r.ref_id for r in val}
    other = {
        seed: {r.ref_id for r in split_by_reference(records, seed=seed)[1]} for seed in range(5)
    }
    assert len({frozenset(v) for v in other.values()}) > 1


def test_split_keeps_dataset_type() -> None:
    dataset = IQADataset("toy", tuple(_records()), True, (0.0, 1.0))
    train, val = split_by_reference(dataset)
    assert isinstance(train, IQADataset) and train.name == "toy/train"
    assert len(train) + len(val) == len(dataset)


def test_split_errors() -> None:
    with pytest.raises(InputError, match="at least 2 distinct references"):
        split_by_reference(_records(n_refs=1))
    with pytest.raises(InputError, match="val_fraction"):
        split_by_reference(_records(), val_fraction=1.0)
    with pytest.raises(InputError, match="at least one record"):
        split_by_reference([])


def test_k_fold_partitions_references() -> None:
    records = _records(n_refs=11)
    folds = k_fold_by_reference(records, 5, seed=1)
    assert len(folds) == 5
    seen: list[str] = []
    for train, val in folds:
        refs = {r.ref_id for r in val}
        assert refs.isdisjoint({r.ref_id for r in train})
        assert len(train) + len(val) == len(records)
        seen += sorted(refs)
    assert sorted(seen) == sorted({r.ref_id for r in records})
    with pytest.raises(InputError, match="k must be"):
        k_fold_by_reference(records, 12)


def test_leave_types_out_matches_loosely_and_checks() -> None:
    records = _records()
    train, test = leave_types_out(records, ["TYPE-1", "type3"])
    assert {r.dis_type for r in test} == {"type1", "type3"}
    assert {r.dis_type for r in train} == {"type0", "type2"}
    with pytest.raises(InputError, match="not among"):
        leave_types_out(records, ["JP2K"])
    with pytest.raises(InputError, match="leaves no training"):
        leave_types_out(records, ["type0", "type1", "type2", "type3"])
