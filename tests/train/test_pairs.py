"""One decoder for scoring, training and synthesis: the same pixels from the same file."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from asna_metric.data.synthesis import _load_rgb
from asna_metric.errors import InputError
from asna_metric.inputs import read_image, to_batch
from asna_metric.train.pairs import ImageStore, TrainPairs, ValPairs, to_unit_float
from helpers import write_png16

HEIGHT, WIDTH = 36, 44


@pytest.fixture
def png16(tmp_path: Path) -> tuple[Path, np.ndarray]:
    """A 16-bit RGB PNG whose low bytes matter (an 8-bit decode loses them)."""
    pixels = np.random.default_rng(3).integers(0, 65536, (HEIGHT, WIDTH, 3), dtype=np.uint16)
    pixels[0, 0], pixels[0, 1] = 0x1200, 0x12FF  # same high byte, 18 and ~19 in 8 bits
    path = tmp_path / "ref16.png"
    write_png16(path, pixels)
    return path, pixels


def _record(dist: Path, ref: Path) -> SimpleNamespace:
    return SimpleNamespace(dist=dist, ref=ref, quality=0.5)


def test_sixteen_bit_png_gives_the_same_pixels_to_scoring_training_and_synthesis(
    png16: tuple[Path, np.ndarray],
) -> None:
    path, pixels = png16
    expected = torch.from_numpy(pixels / np.float32(65535.0)).permute(2, 0, 1)
    scored = to_batch(path, name="dist")[0]
    assert torch.equal(scored, expected) and torch.equal(read_image(path), scored)

    store = ImageStore("memory")
    assert torch.equal(to_unit_float(store.get(path)), scored)
    assert store.nbytes == 2 * 3 * HEIGHT * WIDTH  # 16 bits per sample, not 32
    val_dist, val_ref, _ = ValPairs([_record(path, path)], store=store)[0]
    assert torch.equal(val_dist, scored) and torch.equal(val_ref, scored)
    crop = HEIGHT  # full height: the random crop only moves along the width
    train_dist, _, _ = TrainPairs([_record(path, path)], crop_size=crop, store=store)[0, 0]
    windows = [scored[:, :, left : left + crop] for left in range(WIDTH - crop + 1)]
    assert any(torch.equal(train_dist, window) for window in windows)

    # Synthesis decodes with the same reader, then rounds to the 8-bit grid it writes:
    # 0x12FF is 18.99 in 8 bits, so it becomes 19 (the old decoder truncated it to 18).
    synth = _load_rgb(path)[0]
    assert torch.equal(synth, scored.mul(255).round().div(255))
    assert round(float(synth[0, 0, 1]) * 255) == 19 and round(float(synth[0, 0, 0]) * 255) == 18


def test_eight_bit_files_are_identical_everywhere_and_cached_as_bytes(tmp_path: Path) -> None:
    pixels = np.random.default_rng(4).integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8)
    path = tmp_path / "ref8.png"
    Image.fromarray(pixels).save(path)
    scored = read_image(path)
    store = ImageStore("memory")
    assert store.get(path).dtype == torch.uint8 and store.nbytes == 3 * HEIGHT * WIDTH
    assert torch.equal(to_unit_float(store.get(path)), scored)
    assert torch.equal(_load_rgb(path)[0], scored)


def test_grey_and_rgba_files_follow_the_scoring_rules(tmp_path: Path) -> None:
    grey = np.random.default_rng(5).integers(0, 65536, (HEIGHT, WIDTH), dtype=np.uint16)
    Image.fromarray(grey).save(tmp_path / "grey16.png")
    rgba = np.random.default_rng(6).integers(1, 256, (HEIGHT, WIDTH, 4), dtype=np.uint8)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "rgba.png")
    store = ImageStore("none")
    for name in ("grey16.png", "rgba.png"):
        cached = store.get(tmp_path / name)
        assert cached.shape == (3, HEIGHT, WIDTH)
        assert torch.equal(to_unit_float(cached), read_image(tmp_path / name))
    assert len(store) == 0


def test_store_errors_stay_actionable(tmp_path: Path) -> None:
    store = ImageStore()
    with pytest.raises(InputError, match=r"listed in the labels does not exist.*data\.root"):
        store.get(tmp_path / "missing.png")
    (tmp_path / "bad.png").write_bytes(b"not an image")
    with pytest.raises(InputError, match=r"cannot read training image '.*bad\.png'"):
        store.get(tmp_path / "bad.png")


def test_to_unit_float_never_returns_a_view_of_the_cache() -> None:
    cached = torch.rand(3, 8, 8)
    out = to_unit_float(cached)
    out.mul_(0)
    assert cached.abs().sum() > 0
