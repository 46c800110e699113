from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from asna_metric import weights as W
from asna_metric._version import __version__
from asna_metric.cli import main
from asna_metric.nets import build_net
from helpers import TINY, direct_score, save_tiny_weights

MODEL = ["--self-ensemble", "none", "--device", "cpu"]


@pytest.fixture
def tiny_weights(tmp_path: Path) -> Path:
    return save_tiny_weights(tmp_path / "weights" / "tiny.safetensors", seed=5, name="tiny-cli")


def _read_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture
def folders(tmp_path: Path, assets: Path) -> tuple[Path, Path]:
    """Small pairs cut from the sample pair, plus the awkward cases."""
    dist_full = np.asarray(Image.open(assets / "asna_pair" / "dist.png").convert("RGB"))
    ref_full = np.asarray(Image.open(assets / "asna_pair" / "ref.png").convert("RGB"))
    dist_dir, ref_dir = tmp_path / "dist", tmp_path / "ref"
    (dist_dir / "sub").mkdir(parents=True)
    (ref_dir / "sub").mkdir(parents=True)
    for i, name in enumerate(["a.png", "b.png", "c.bmp", "sub/d.png", "sub/e.PNG"]):
        y, x = 40 * i, 30 * i
        Image.fromarray(dist_full[y : y + 48, x : x + 48]).save(dist_dir / name)
        Image.fromarray(ref_full[y : y + 48, x : x + 48]).save(ref_dir / name)
    (dist_dir / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    Image.fromarray(ref_full[:48, :48]).save(ref_dir / "broken.png")
    Image.fromarray(dist_full[:48, :48]).save(dist_dir / "size.png")
    Image.fromarray(ref_full[:48, :56]).save(ref_dir / "size.png")
    Image.fromarray(dist_full[:48, :48]).save(dist_dir / "orphan.png")
    Image.fromarray(ref_full[:48, :48]).save(ref_dir / "lonely.png")
    (dist_dir / "notes.txt").write_text("not an image")
    return dist_dir, ref_dir


GOOD = {"a.png", "b.png", "c.bmp", "sub/d.png", "sub/e.PNG"}
ALL_KEYS = {(k, k) for k in GOOD | {"broken.png", "size.png"}} | {
    ("orphan.png", ""),
    ("", "lonely.png"),
}


# --- score ----------------------------------------------------------------------------


def test_score_prints_the_model_score(
    tiny_weights: Path, assets: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dist, ref = assets / "asna_pair" / "dist.png", assets / "asna_pair" / "ref.png"
    code = main(["score", str(dist), str(ref), "--weights", str(tiny_weights), *MODEL])
    out = capsys.readouterr().out
    assert code == 0
    assert float(out) == pytest.approx(direct_score(tiny_weights, dist, ref), abs=1e-6)


def test_score_json(tiny_weights: Path, assets: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dist, ref = assets / "asna_pair" / "dist.png", assets / "asna_pair" / "ref.png"
    code = main(["score", str(dist), str(ref), "--weights", str(tiny_weights), *MODEL, "--json"])
    record = json.loads(capsys.readouterr().out)
    assert code == 0
    assert record["weights"]["name"] == "tiny-cli" and record["weights"]["source"] == "local"
    assert record["weights"]["sha256"] == W.sha256_file(tiny_weights)
    assert record["weights"]["revision"] is None
    assert record["asna_metric_version"] == __version__
    assert record["self_ensemble"] == "none" and isinstance(record["score"], float)


def test_score_errors_exit_2(
    tiny_weights: Path, tmp_path: Path, assets: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ref = assets / "asna_pair" / "ref.png"
    missing = tmp_path / "missing.png"
    assert main(["score", str(missing), str(ref), "--weights", str(tiny_weights), *MODEL]) == 2
    assert "missing.png" in capsys.readouterr().err
    assert main(["score", str(ref), str(ref), "--weights", "no-such-weights", *MODEL]) == 2
    assert "unknown weights 'no-such-weights'" in capsys.readouterr().err


def _help(command: str, capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as info:
        main([command, "--help"])
    assert info.value.code == 0
    return " ".join(capsys.readouterr().out.split())


def test_help_states_the_score_scale_as_measured(capsys: pytest.CaptureFixture[str]) -> None:
    # Identical pairs score 0.79-0.91 with the shipped weights: "1 = identical" was untrue.
    for command in ("score", "map"):
        text = _help(command, capsys)
        assert "1 = identical" not in text
        assert "higher is better; identical pairs score highest, about 0.8-0.9" in text


def test_score_dir_help_states_the_measured_compile_speed_up(
    capsys: pytest.CaptureFixture[str],
) -> None:
    text = _help("score-dir", capsys)
    assert "1.2x faster" not in text  # docs/performance.md measured 1.01x for compile()
    assert "1.01x at 512x384" in text and "docs/performance.md" in text


def test_self_ensemble_choices_and_device_errors(
    tiny_weights: Path, assets: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from asna_metric.ensemble import SELF_ENSEMBLE_MODES

    text = _help("score", capsys)
    assert "{" + ",".join(SELF_ENSEMBLE_MODES) + "}" in text
    ref = str(assets / "asna_pair" / "ref.png")
    argv = ["score", ref, ref, "--weights", str(tiny_weights), "--device"]
    assert main([*argv, "no-such-device"]) == 2
    assert "--device must be auto or a torch device" in capsys.readouterr().err
    assert main([*argv, "auto"]) == 0  # "auto" is accepted, as everywhere else
    assert float(capsys.readouterr().out) > 0


# --- score-dir ------------------------------------------------------------------------


def _score_dir(folders: tuple[Path, Path], out: Path, weights: Path, *extra: str) -> int:
    dist_dir, ref_dir = folders
    return main(
        [
            "score-dir",
            str(dist_dir),
            str(ref_dir),
            "--out",
            str(out),
            "--weights",
            str(weights),
            *MODEL,
            *extra,
        ]
    )


def test_score_dir_rows_and_errors(
    folders: tuple[Path, Path], tiny_weights: Path, tmp_path: Path
) -> None:
    out = tmp_path / "scores.csv"
    assert _score_dir(folders, out, tiny_weights, "--workers", "0") == 1
    rows = _read_rows(out)
    assert {(r["dist"], r["ref"]) for r in rows} == ALL_KEYS and len(rows) == len(ALL_KEYS)
    by_dist = {r["dist"] or r["ref"]: r for r in rows}
    for name in GOOD:
        assert by_dist[name]["status"] == "ok" and by_dist[name]["error"] == ""
    assert by_dist["broken.png"]["status"] == "error"
    assert "broken.png" in by_dist["broken.png"]["error"]
    assert "same shape" in by_dist["size.png"]["error"]
    assert "no reference" in by_dist["orphan.png"]["error"]
    assert "no distorted image" in by_dist["lonely.png"]["error"]
    dist_dir, ref_dir = folders
    expected = direct_score(tiny_weights, dist_dir / "sub/d.png", ref_dir / "sub/d.png")
    assert float(by_dist["sub/d.png"]["score"]) == pytest.approx(expected, abs=2e-6)
    settings = json.loads(out.with_name("scores.csv.json").read_text())
    assert settings["weights"]["name"] == "tiny-cli" and settings["self_ensemble"] == "none"


def test_score_dir_workers_and_batches_agree(
    folders: tuple[Path, Path], tiny_weights: Path, tmp_path: Path
) -> None:
    serial, parallel = tmp_path / "serial.csv", tmp_path / "parallel.csv"
    assert _score_dir(folders, serial, tiny_weights, "--workers", "0") == 1
    code = _score_dir(folders, parallel, tiny_weights, "--workers", "1", "--batch-size", "3")
    assert code == 1
    a = {(r["dist"], r["ref"]): r for r in _read_rows(serial)}
    b = {(r["dist"], r["ref"]): r for r in _read_rows(parallel)}
    assert a.keys() == b.keys()
    for key, row in a.items():
        assert row["status"] == b[key]["status"]
        if row["status"] == "ok":
            assert float(row["score"]) == pytest.approx(float(b[key]["score"]), abs=2e-6)


def test_score_dir_resumes_without_duplicates(
    folders: tuple[Path, Path], tiny_weights: Path, tmp_path: Path
) -> None:
    out = tmp_path / "scores.csv"
    assert _score_dir(folders, out, tiny_weights, "--workers", "0") == 1
    full = {(r["dist"], r["ref"]): r for r in _read_rows(out)}
    # Simulate a crash: two finished rows (with a sentinel score that a re-run would not
    # reproduce), an old error row, and a last row cut in the middle.
    lines = [
        "dist,ref,score,status,error",
        "a.png,a.png,0.123456,ok,",
        "sub/d.png,sub/d.png,0.654321,ok,",
        "broken.png,broken.png,,error,old message",
    ]
    out.write_text("\n".join(lines) + "\nb.png,b.png,0.5", encoding="utf-8")
    assert _score_dir(folders, out, tiny_weights, "--workers", "0") == 1
    rows = _read_rows(out)
    keys = [(r["dist"], r["ref"]) for r in rows]
    assert len(keys) == len(set(keys)) and set(keys) == ALL_KEYS
    resumed = {(r["dist"], r["ref"]): r for r in rows}
    assert resumed[("a.png", "a.png")]["score"] == "0.123456"  # kept, not recomputed
    assert resumed[("sub/d.png", "sub/d.png")]["score"] == "0.654321"
    assert resumed[("b.png", "b.png")]["score"] == full[("b.png", "b.png")]["score"]
    assert resumed[("broken.png", "broken.png")]["error"] != "old message"  # retried
    # A complete file resumes to itself, and the exit code still reports the failures.
    before = out.read_text(encoding="utf-8")
    assert _score_dir(folders, out, tiny_weights, "--workers", "0") == 1
    after = _read_rows(out)
    assert {(r["dist"], r["ref"]): r["score"] for r in after} == {
        (r["dist"], r["ref"]): r["score"] for r in rows
    }
    assert len(after) == len(before.splitlines()) - 1


def test_score_dir_refuses_other_settings_and_foreign_csv(
    folders: tuple[Path, Path],
    tiny_weights: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "scores.csv"
    assert _score_dir(folders, out, tiny_weights, "--workers", "0") == 1
    other = W.save_ensemble(tmp_path / "other.safetensors", [build_net("asna", TINY)], name="other")
    before = out.read_bytes()
    assert _score_dir(folders, out, other, "--workers", "0") == 2
    assert "other settings" in capsys.readouterr().err
    assert out.read_bytes() == before
    foreign = tmp_path / "foreign.csv"
    foreign.write_text("a,b\n1,2\n", encoding="utf-8")
    assert _score_dir(folders, foreign, tiny_weights, "--workers", "0") == 2
    assert "not a score-dir CSV" in capsys.readouterr().err


def test_score_dir_missing_folder(
    tiny_weights: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = _score_dir(
        (tmp_path / "nope", tmp_path), tmp_path / "s.csv", tiny_weights, "--workers", "0"
    )
    assert code == 2 and "DIST_DIR must be an existing folder" in capsys.readouterr().err


def test_score_dir_compile_flag_compiles_the_networks(
    folders: tuple[Path, Path], tiny_weights: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from asna_metric.metric import ASNA

    calls: list[dict[str, object]] = []
    original = ASNA.compile

    def spy(self: ASNA, **options: object) -> None:
        calls.append(options)
        original(self, backend="eager")  # capture graphs without a C++ toolchain

    monkeypatch.setattr(ASNA, "compile", spy)
    out = tmp_path / "scores.csv"
    _score_dir(folders, out, tiny_weights, "--workers", "0", "--compile")
    assert calls == [{}]
    dist_dir, ref_dir = folders
    row = next(r for r in _read_rows(out) if r["dist"] == "sub/d.png")
    expected = direct_score(tiny_weights, dist_dir / "sub/d.png", ref_dir / "sub/d.png")
    assert float(row["score"]) == pytest.approx(expected, abs=1e-5)
