"""``asna-metric eval`` end to end on a tiny handmade dataset."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from asna_metric.cli import main
from asna_metric.data import baselines
from asna_metric.data.baselines import MetricSpec

_LEVELS = {1: 0.02, 2: 0.06, 3: 0.12, 4: 0.25}  # noise sigma per level
_MOS = {1: 4.6, 2: 3.9, 3: 2.8, 4: 1.6}


@pytest.fixture
def tiny_set(tmp_path: Path) -> tuple[Path, Path]:
    """Four references x four noise levels, 40x40 PNGs, KADID-style labels."""
    rng = np.random.default_rng(0)
    root = tmp_path / "set"
    rows = []
    for r in range(4):
        coarse = rng.uniform(size=(5, 5, 3))
        ref = np.kron(coarse, np.ones((8, 8, 1)))
        ref_name = f"images/I{r:02d}.png"
        (root / "images").mkdir(parents=True, exist_ok=True)
        Image.fromarray((ref * 255).round().astype(np.uint8)).save(root / ref_name)
        for level, sigma in _LEVELS.items():
            dist = np.clip(ref + rng.normal(scale=sigma, size=ref.shape), 0, 1)
            name = f"images/I{r:02d}_11_{level:02d}.png"
            Image.fromarray((dist * 255).round().astype(np.uint8)).save(root / name)
            mos = _MOS[level] + rng.normal(scale=0.05)
            rows.append((name, "AWGN" if r % 2 else "AWGN_YCbCr", ref_name, f"{mos:.3f}"))
    labels = tmp_path / "labels.csv"
    with labels.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(("dis_img_path", "dis_type", "ref_img_path", "score"))
        writer.writerows(rows)
    return labels, root


def _args(labels: Path, root: Path, *extra: str) -> list[str]:
    return [
        "eval",
        "--labels",
        str(labels),
        "--root",
        str(root),
        "--dataset",
        "KADID-10k",
        "--metric",
        "psnr",
        "--metric",
        "ssim",
        "--workers",
        "0",
        "--bootstrap",
        "50",
        "--device",
        "cpu",
        *extra,
    ]


def test_eval_round_trip_and_resume(
    tiny_set: tuple[Path, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    labels, root = tiny_set
    out = tmp_path / "out" / "results.json"
    plot = tmp_path / "out" / "scatter.png"
    assert main(_args(labels, root, "--json", str(out), "--plot", str(plot))) == 0
    table = capsys.readouterr().out
    assert "SRCC" in table and "PLCC" in table and "KRCC" in table
    assert "psnr" in table and "ssim" in table and "KADID-10k" in table

    document = json.loads(out.read_text())
    metadata = document["metadata"]
    for key in ("package_version", "torch_version", "git_commit", "date", "command", "weights"):
        assert key in metadata
    assert metadata["command"].startswith("asna-metric eval --labels")
    assert metadata["weights"] is None  # ASNA did not run
    results = document["results"]
    assert [r["metric"] for r in results] == ["psnr", "ssim"]
    for result in results:
        assert result["dataset"] == "KADID-10k" and result["n"] == 16
        for key in ("srcc", "plcc", "plcc_raw", "krcc", "rmse"):
            assert -1.0 <= result[key] <= 1.0 or key == "rmse"
            low, high = result["ci"][key]
            assert low <= result[key] <= high
        assert set(result["per_type"]) == {"AWGN", "AWGN_YCbCr"}
        assert result["per_type"]["AWGN"]["n"] == 8
        assert result["srcc"] > 0.5  # noise dominates: both baselines rank it
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    cache = out.with_name("results.predictions.csv")
    with cache.open() as handle:
        cached = list(csv.DictReader(handle))
    assert len(cached) == 32
    assert {row["metric"] for row in cached} == {"psnr", "ssim"}
    assert not Path(cached[0]["dist"]).is_absolute()  # stored relative to the root

    # Resume: every prediction comes from the cache, the metrics never run.
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a cached prediction was recomputed")

    for name in ("psnr", "ssim"):
        spec = baselines.METRICS[name]
        monkeypatch.setitem(
            baselines.METRICS,
            name,
            MetricSpec(name, spec.description, True, lambda **_: refuse),
        )
    again = tmp_path / "out" / "again.json"
    assert main(_args(labels, root, "--json", str(again), "--cache", str(cache))) == 0
    resumed = json.loads(again.read_text())["results"]
    for first, second in zip(results, resumed, strict=True):
        assert second["srcc"] == first["srcc"] and second["plcc"] == first["plcc"]


def test_eval_resumes_a_partial_cache(
    tiny_set: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    labels, root = tiny_set
    cache = tmp_path / "preds.csv"
    assert main(_args(labels, root, "--cache", str(cache), "--bootstrap", "0")) == 0
    lines = cache.read_text().splitlines()
    cache.write_text("\n".join(lines[:5]) + "\n" + lines[5][:9])  # interrupted mid-line
    kept = sum(line.startswith("psnr,") for line in lines[1:5])
    assert kept == 4
    calls: list[int] = []
    original = baselines.psnr

    def counting(dist, ref):  # type: ignore[no-untyped-def]
        calls.append(dist.shape[0])
        return original(dist, ref)

    spec = baselines.METRICS["psnr"]
    monkeypatch.setitem(
        baselines.METRICS, "psnr", MetricSpec("psnr", spec.description, True, lambda **_: counting)
    )
    assert main(_args(labels, root, "--cache", str(cache), "--bootstrap", "0")) == 0
    assert sum(calls) == 16 - kept  # only the lost predictions are recomputed
    with cache.open() as handle:
        rows = [row for row in csv.DictReader(handle) if row["prediction"] is not None]
    psnr_rows = [row for row in rows if row["metric"] == "psnr"]
    assert len(psnr_rows) == 16 and len({row["dist"] for row in psnr_rows}) == 16
    assert all(row["dist"].startswith("images/") and float(row["prediction"]) for row in rows)


def test_eval_split_types_and_missing_images(
    tiny_set: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    labels, root = tiny_set
    out = tmp_path / "val.json"
    code = main(_args(labels, root, "--split", "val", "--val-fraction", "0.5", "--json", str(out)))
    assert code == 0
    document = json.loads(out.read_text())
    assert document["metadata"]["split"] == "val"
    assert all(r["n"] == 8 for r in document["results"])
    assert main(_args(labels, root, "--types", "awgn", "--no-cache")) == 0
    assert " 8 " in capsys.readouterr().out

    (root / "images" / "I00_11_01.png").unlink()
    (root / "images" / "I01.png").unlink()
    assert main(_args(labels, root, "--no-cache")) == 2
    error = capsys.readouterr().err
    assert "2 of 20 image files are missing" in error and "I00_11_01.png" in error
    assert main(_args(labels, root, "--no-cache", "--skip-missing")) == 0
    assert " 11 " in capsys.readouterr().out  # 16 pairs - 1 - 4 sharing the lost reference


def test_eval_usage_errors(tiny_set: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    labels, root = tiny_set
    assert main([*_args(labels, root), "--metric", "lpips"]) == 2
    assert "unknown metric 'lpips'" in capsys.readouterr().err
    assert main(["eval", "--root", str(root)]) == 2
    assert "--labels" in capsys.readouterr().err


def test_eval_runs_asna_with_a_weights_file(tiny_set: tuple[Path, Path], tmp_path: Path) -> None:
    from helpers import TINY, save_tiny_weights

    config = {**TINY, "encoder_widths": [4, 4, 4, 4], "attention_width": 4}
    weights = save_tiny_weights(
        tmp_path / "tiny.safetensors", seed=0, name="tiny-eval", config=config
    )
    labels, root = tiny_set
    out = tmp_path / "asna.json"
    args = _args(labels, root, "--json", str(out), "--bootstrap", "0")
    args[args.index("psnr")] = "asna"
    assert main([*args, "--weights", str(weights)]) == 0
    document = json.loads(out.read_text())
    assert document["metadata"]["weights"]["name"] == "tiny-eval"
    assert len(document["metadata"]["weights"]["sha256"]) == 64
    first = document["results"][0]
    assert first["metric"] == "asna" and first["n"] == 16
    assert first["metric_key"].startswith("asna@tiny.safetensors#")
    assert "--weights" in document["metadata"]["command"]


def test_metric_key_separates_weights_files_and_self_ensemble_modes(tmp_path: Path) -> None:
    from asna_metric.data.predict import metric_key

    assert metric_key("psnr", "anything", "full") == "psnr"
    first = tmp_path / "a.safetensors"
    first.write_bytes(b"one")
    key_none = metric_key("asna", str(first), "none")
    assert key_none != metric_key("asna", str(first), "flips")
    first.write_bytes(b"two")  # retrained weights under the same file name
    assert metric_key("asna", str(first), "none") != key_none


def test_synth_then_eval_round_trip(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`asna-metric synth` output is directly evaluable by `asna-metric eval`."""
    rng = np.random.default_rng(1)
    refs = tmp_path / "refs"
    refs.mkdir()
    for i in range(2):
        coarse = rng.uniform(size=(6, 8, 3))
        image = np.kron(coarse, np.ones((8, 8, 1)))  # 48x64, smooth blocks
        Image.fromarray((image * 255).round().astype(np.uint8)).save(refs / f"R{i}.png")
    out = tmp_path / "synth"
    types = ["GBLUR", "AWGN"]
    assert main(["synth", "--refs", str(refs), "--out", str(out), "--types", *types]) == 0
    labels = out / "labels.csv"
    result_file = tmp_path / "results.json"
    args = _args(labels, out, "--json", str(result_file))
    assert main(args) == 0
    assert "psnr" in capsys.readouterr().out
    results = json.loads(result_file.read_text())["results"]
    assert {r["metric"] for r in results} == {"psnr", "ssim"}
    for result in results:
        assert result["n"] == 2 * len(types) * 5
        assert set(result["per_type"]) == set(types)
        # Both distortions get worse with the level on every reference: PSNR ranks them.
        assert result["per_type"]["AWGN"]["srcc"] > 0.8


def test_eval_reads_the_output_of_synth_as_written_in_the_readme(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The README's pair of commands: ``synth --refs PHOTOS --out DATA`` then
    # ``eval --labels DATA/labels.csv --root DATA`` (no --dataset).
    rng = np.random.default_rng(3)
    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(3):
        coarse = rng.uniform(size=(6, 6, 3))
        image = np.kron(coarse, np.ones((8, 8, 1)))
        Image.fromarray((image * 255).round().astype(np.uint8)).save(photos / f"p{i}.png")
    data = tmp_path / "data"
    args = ["synth", "--refs", str(photos), "--out", str(data), "--types", "1", "11"]
    assert main(args) == 0
    capsys.readouterr()
    args = ["eval", "--labels", str(data / "labels.csv"), "--root", str(data)]
    args += ["--metric", "psnr", "--workers", "0", "--bootstrap", "0", "--device", "cpu"]
    assert main(args) == 0
    table = capsys.readouterr().out
    assert "psnr" in table and "KADID-10k" in table


def test_eval_names_the_dataset_flag_when_the_convention_is_unknown(
    tiny_set: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    labels, root = tiny_set  # labels.csv: its name says nothing about its scale
    code = main(["eval", "--labels", str(labels), "--root", str(root), "--metric", "psnr"])
    assert code == 2
    message = capsys.readouterr().err
    assert "--dataset" in message and "ScoreConvention" not in message
    assert "KADID-10k" in message  # the names it accepts
