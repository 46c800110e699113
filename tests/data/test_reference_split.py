"""The committed split of the reference photographs: disjoint, complete, reproducible, guarded."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from asna_metric.data.splits import (
    REFERENCE_SPLIT_NAMES,
    check_not_eval_only,
    load_split_manifest,
    make_reference_split,
    reference_split,
    resolve_reference_split,
)
from asna_metric.errors import InputError

SCRIPT = Path(__file__).parents[2] / "scripts" / "make_reference_split.py"


def _photos(folder: Path, count: int, seed: int) -> None:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for i in range(count):
        array = rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)
        Image.fromarray(array).save(folder / f"{folder.name}_{i:02d}.png")


@pytest.fixture
def refs_root(tmp_path: Path) -> Path:
    root = tmp_path / "refs"
    _photos(root / "alpha", 10, 0)
    _photos(root / "beta", 20, 1)
    _photos(root / "kodak", 3, 2)
    return root


def _make(root: Path, **kwargs: object) -> dict:
    kwargs.setdefault("eval_only_folders", ("kodak",))
    return make_reference_split(root, folders=("alpha", "beta"), **kwargs)  # type: ignore[arg-type]


def test_shipped_split_is_disjoint_complete_and_stratified() -> None:
    manifest = load_split_manifest("refs-v1")
    split = reference_split("refs-v1")
    assert list(split) == list(REFERENCE_SPLIT_NAMES)
    content = [p for name in ("train", "val", "test") for p in split[name]]
    assert len(content) == len(set(content)) == 600
    assert {p.split("/")[0] for p in content} == {"bsds500", "cbsd68", "urban100"}
    counts = {name: len(split[name]) for name in REFERENCE_SPLIT_NAMES}
    assert counts == {"train": 480, "val": 60, "test": 60, "eval_only": 48}
    for name in ("train", "val", "test"):
        assert split[name] == sorted(split[name])
        assert {p.split("/")[0] for p in split[name]} == {"bsds500", "cbsd68", "urban100"}
    assert {p.split("/")[0] for p in split["eval_only"]} == {"kodak", "kodak24"}
    hashes = [h for name in REFERENCE_SPLIT_NAMES for h in manifest["splits"][name].values()]
    assert len(hashes) == len(set(hashes)) == 648  # no file appears twice under two names
    assert all(len(h) == 64 for h in hashes)


def test_shipped_split_matches_the_shared_photographs(shared_data: Path) -> None:
    rebuilt = make_reference_split(shared_data / "refs", name="refs-v1", seed=0)
    assert rebuilt == load_split_manifest("refs-v1")
    for name in REFERENCE_SPLIT_NAMES:
        paths = resolve_reference_split(shared_data / "refs", name)  # type: ignore[arg-type]
        assert [p.relative_to(shared_data / "refs").as_posix() for p in paths] == sorted(
            reference_split()[name]
        )
    train = resolve_reference_split(shared_data / "refs", "train", verify=False)
    check_not_eval_only(train)  # no Kodak image in training, by folder or by bytes
    with pytest.raises(InputError, match="reserved for evaluation"):
        check_not_eval_only([shared_data / "refs" / "kodak24" / "kodim01.png"])


def test_split_is_deterministic_stratified_and_seeded(refs_root: Path) -> None:
    first = _make(refs_root, seed=3)
    assert first == _make(refs_root, seed=3)
    assert first["counts"]["val"] == {"alpha": 1, "beta": 2}
    assert first["counts"]["test"] == {"alpha": 1, "beta": 2}
    assert first["counts"]["train"] == {"alpha": 8, "beta": 16}
    assert sorted(first["splits"]["eval_only"]) == [f"kodak/kodak_{i:02d}.png" for i in range(3)]
    other = _make(refs_root, seed=4)
    assert other["splits"]["val"] != first["splits"]["val"]
    # Adding a folder's photograph does not move the other folder's photographs.
    _photos(refs_root / "gamma", 10, 5)
    grown = make_reference_split(
        refs_root, folders=("alpha", "beta", "gamma"), eval_only_folders=("kodak",), seed=3
    )
    for name in ("train", "val", "test"):
        kept = {p: h for p, h in grown["splits"][name].items() if not p.startswith("gamma/")}
        assert kept == first["splits"][name]


def test_script_regenerates_byte_identical_manifest(refs_root: Path, tmp_path: Path) -> None:
    outputs = []
    for run in range(2):
        out = tmp_path / f"split{run}.json"
        argv = [sys.executable, str(SCRIPT), "--refs", str(refs_root), "--out", str(out)]
        argv += ["--folders", "alpha", "beta", "--eval-only", "kodak", "--name", "t"]
        subprocess.run(argv, check=True, capture_output=True, timeout=120)
        outputs.append(out.read_bytes())
    assert outputs[0] == outputs[1]
    manifest = load_split_manifest(tmp_path / "split0.json")
    assert manifest == _make(refs_root, name="t", eval_only_folders=("kodak",))


def test_resolve_reports_missing_and_changed_files(refs_root: Path) -> None:
    manifest = _make(refs_root)
    val = resolve_reference_split(refs_root, "val", manifest=manifest)
    assert len(val) == 3 and all(p.is_file() for p in val)
    target = val[0]
    Image.fromarray(np.zeros((40, 48, 3), np.uint8)).save(target)
    with pytest.raises(InputError, match="differ from split"):
        resolve_reference_split(refs_root, "val", manifest=manifest)
    assert resolve_reference_split(refs_root, "val", manifest=manifest, verify=False) == val
    target.unlink()
    with pytest.raises(InputError, match="missing"):
        resolve_reference_split(refs_root, "val", manifest=manifest, verify=False)
    with pytest.raises(InputError, match="split must be one of"):
        resolve_reference_split(refs_root, "validation", manifest=manifest)  # type: ignore[arg-type]


def test_eval_only_photographs_are_refused(refs_root: Path, tmp_path: Path) -> None:
    manifest = _make(refs_root)
    check_not_eval_only(
        resolve_reference_split(refs_root, "train", manifest=manifest), manifest=manifest
    )
    with pytest.raises(InputError, match="folder kodak/"):
        check_not_eval_only([refs_root / "kodak" / "kodak_00.png"], manifest=manifest)
    renamed = tmp_path / "innocent" / "photo.png"
    renamed.parent.mkdir()
    shutil.copy(refs_root / "kodak" / "kodak_01.png", renamed)
    with pytest.raises(InputError, match=r"same bytes as kodak/kodak_01\.png"):
        check_not_eval_only([renamed], manifest=manifest)


def test_invalid_manifests_are_rejected(refs_root: Path, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="unknown reference split"):
        load_split_manifest("refs-v0")
    with pytest.raises(InputError, match="both split and eval-only"):
        make_reference_split(refs_root, folders=("alpha", "kodak"), eval_only_folders=("kodak",))
    manifest = _make(refs_root)
    leaked = json.loads(json.dumps(manifest))
    path, digest = next(iter(leaked["splits"]["eval_only"].items()))
    leaked["splits"]["train"]["alpha/copy.png"] = digest
    (tmp_path / "leak.json").write_text(json.dumps(leaked))
    with pytest.raises(InputError, match="same bytes as an eval-only"):
        load_split_manifest(tmp_path / "leak.json")
    overlap = json.loads(json.dumps(manifest))
    overlap["splits"]["val"][path] = digest
    (tmp_path / "overlap.json").write_text(json.dumps(overlap))
    with pytest.raises(InputError, match="both"):
        load_split_manifest(tmp_path / "overlap.json")
