"""The shared-data fixture: skipped tests say where the data was looked for and what to set."""

from __future__ import annotations

from pathlib import Path

from helpers import DEFAULT_SHARED_DATA, SHARED_DATA_ENV, find_shared_data


def test_missing_data_names_the_resolved_path_and_the_variable(tmp_path: Path) -> None:
    given = tmp_path / "nested" / ".." / "data"
    root, missing = find_shared_data({SHARED_DATA_ENV: str(given)})
    assert root == (tmp_path / "data").resolve()
    assert missing is not None
    assert str(root / "labels") in missing and ".." not in str(root)
    assert f"from {SHARED_DATA_ENV}={str(given)!r}" in missing
    assert f"set {SHARED_DATA_ENV} to the folder that holds labels/ and refs/" in missing


def test_default_location_is_beside_the_repository_and_said_so() -> None:
    root, missing = find_shared_data({})
    assert root == DEFAULT_SHARED_DATA == Path(__file__).resolve().parents[2] / "shared" / "data"
    if missing is not None:
        assert f"{SHARED_DATA_ENV} is not set" in missing and str(root / "labels") in missing


def test_present_data_is_found(tmp_path: Path) -> None:
    (tmp_path / "labels").mkdir()
    assert find_shared_data({SHARED_DATA_ENV: str(tmp_path)}) == (tmp_path.resolve(), None)
