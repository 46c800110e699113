"""``asna-metric map``: heatmap PNG, raw map and weights, errors."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from asna_metric.cli import main
from helpers import direct_score, save_tiny_weights

MODEL = ["--self-ensemble", "none", "--device", "cpu"]
HEIGHT, WIDTH = 45, 70  # odd sizes: padded inside the metric, cropped back in the map


@pytest.fixture
def tiny_weights(tmp_path: Path) -> Path:
    return save_tiny_weights(tmp_path / "weights" / "tiny.safetensors", seed=7, name="tiny-map")


@pytest.fixture
def images(tmp_path: Path, assets: Path) -> tuple[Path, Path]:
    """A small pair cut from the sample pair."""
    paths = []
    for name in ("dist", "ref"):
        full = np.asarray(Image.open(assets / "asna_pair" / f"{name}.png").convert("RGB"))
        path = tmp_path / f"{name}.png"
        Image.fromarray(full[100 : 100 + HEIGHT, 60 : 60 + WIDTH]).save(path)
        paths.append(path)
    return paths[0], paths[1]


def test_map_writes_heatmap_raw_map_and_weights(
    tmp_path: Path,
    tiny_weights: Path,
    images: tuple[Path, Path],
    capsys: pytest.CaptureFixture[str],
) -> None:
    dist, ref = images
    out, raw = tmp_path / "out" / "heat.png", tmp_path / "raw" / "map.npy"
    args = ["map", str(dist), str(ref), "--out", str(out), "--raw", str(raw)]
    code = main([*args, "--weights", str(tiny_weights), *MODEL])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    score = float(captured.out.strip())
    assert score == pytest.approx(direct_score(tiny_weights, dist, ref), abs=1e-5)
    assert str(out) in captured.err

    with Image.open(out) as image:
        assert image.format == "PNG"
        width, height = image.size
        pixels = np.asarray(image.convert("RGB"))
    assert WIDTH <= width < 3000 and HEIGHT <= height < 2000
    assert pixels.std() > 10  # something was drawn

    quality = np.load(raw)
    weights = np.load(tmp_path / "raw" / "map.weights.npy")
    assert quality.shape == weights.shape == (HEIGHT, WIDTH)
    assert quality.dtype == weights.dtype == np.float32
    assert quality.min() >= 0 and quality.max() <= 1 and quality.std() > 0
    assert weights.min() > 0 and weights.sum() == pytest.approx(1.0, abs=1e-4)
    assert float((weights * quality).sum() / weights.sum()) == pytest.approx(score, abs=1e-5)


def test_map_with_ref_draws_three_panels(
    tmp_path: Path, tiny_weights: Path, images: tuple[Path, Path]
) -> None:
    dist, ref = images
    widths = []
    for extra in ([], ["--with-ref", "--range", "auto", "--alpha", "0.8"]):
        out = tmp_path / f"heat{len(extra)}.png"
        argv = ["map", str(dist), str(ref), "--out", str(out), "--weights", str(tiny_weights)]
        code = main([*argv, *MODEL, *extra])
        assert code == 0
        with Image.open(out) as image:
            widths.append(image.size[0])
    assert widths[1] > 2 * widths[0] * 0.9


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"dist": "missing.png"}, "no such file"),
        ({"ref": "missing.png"}, "no such file"),
        ({"out": "heat.txt"}, "--out must name an image file"),
        ({"raw": "map.csv"}, "--raw must name a .npy file"),
        ({"weights": "no-such-weights"}, "unknown weights"),
    ],
)
def test_map_bad_arguments_exit_2_with_a_clear_message(
    tmp_path: Path,
    tiny_weights: Path,
    images: tuple[Path, Path],
    capsys: pytest.CaptureFixture[str],
    change: dict[str, str],
    message: str,
) -> None:
    values = {
        "dist": str(images[0]),
        "ref": str(images[1]),
        "out": str(tmp_path / "heat.png"),
        "raw": str(tmp_path / "map.npy"),
        "weights": str(tiny_weights),
    }
    values.update({k: str(tmp_path / v) if k != "weights" else v for k, v in change.items()})
    argv = ["map", values["dist"], values["ref"], "--out", values["out"], "--raw", values["raw"]]
    code = main([*argv, "--weights", values["weights"], *MODEL])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("asna-metric map: error:") and message in err
    assert not (tmp_path / "heat.png").exists() and not (tmp_path / "map.npy").exists()


def test_map_size_mismatch_exits_2(
    tmp_path: Path,
    tiny_weights: Path,
    images: tuple[Path, Path],
    capsys: pytest.CaptureFixture[str],
) -> None:
    dist, _ = images
    ref = tmp_path / "small.png"
    Image.open(dist).crop((0, 0, 40, 40)).save(ref)
    code = main(["map", str(dist), str(ref), "--out", str(tmp_path / "h.png"), *MODEL])
    assert code == 2 and "same shape" in capsys.readouterr().err


def test_map_alpha_out_of_range_is_a_usage_error(images: tuple[Path, Path], tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as info:
        main(["map", *map(str, images), "--out", str(tmp_path / "h.png"), "--alpha", "1.5"])
    assert info.value.code == 2


@pytest.fixture
def no_matplotlib(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make ``import matplotlib`` fail, as on the plain install (no extras)."""
    monkeypatch.setitem(sys.modules, "matplotlib", None)


@pytest.mark.usefixtures("no_matplotlib")
def test_map_raw_needs_no_matplotlib(
    tmp_path: Path,
    tiny_weights: Path,
    images: tuple[Path, Path],
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The plain install (no extras) can still save the map as numpy arrays."""
    raw = tmp_path / "map.npy"
    code = main(
        ["map", *map(str, images), "--raw", str(raw), "--weights", str(tiny_weights), *MODEL]
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    score = float(captured.out.strip())
    quality, weights = np.load(raw), np.load(tmp_path / "map.weights.npy")
    assert quality.shape == (HEIGHT, WIDTH)
    assert float((weights * quality).sum() / weights.sum()) == pytest.approx(score, abs=1e-5)


@pytest.mark.usefixtures("no_matplotlib")
@pytest.mark.parametrize("with_raw", [False, True])
def test_map_out_without_matplotlib_names_the_extra_after_writing_raw(
    tmp_path: Path,
    tiny_weights: Path,
    images: tuple[Path, Path],
    capsys: pytest.CaptureFixture[str],
    with_raw: bool,
) -> None:
    out, raw = tmp_path / "heat.png", tmp_path / "map.npy"
    argv = ["map", *map(str, images), "--out", str(out)]
    code = main(
        [*argv, *(["--raw", str(raw)] if with_raw else []), "--weights", str(tiny_weights), *MODEL]
    )
    err = capsys.readouterr().err
    assert code == 2
    assert "needs matplotlib" in err and "pip install 'asna-metric[eval]'" in err
    assert (str(raw) in err) is with_raw  # says what it did write
    assert raw.is_file() is (tmp_path / "map.weights.npy").is_file() is with_raw
    assert not out.exists()


def test_map_needs_out_or_raw(
    tiny_weights: Path, images: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["map", *map(str, images), "--weights", str(tiny_weights), *MODEL])
    assert code == 2 and "--out HEAT.png" in capsys.readouterr().err
