from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from asna_metric.errors import InputError
from asna_metric.inputs import (
    MIN_SIZE,
    RANGE_TOLERANCE,
    check_images,
    check_pair,
    read_image,
    read_image_pixels,
    to_batch,
)
from helpers import write_png16


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(7)


# --- tensors ---------------------------------------------------------------------------


def test_tensor_float32_is_returned_without_copy() -> None:
    x = torch.rand(2, 3, 8, 8)
    assert to_batch(x, name="dist") is x


def test_tensor_3d_gets_batch_axis_and_keeps_gradient() -> None:
    x = torch.rand(3, 8, 8, dtype=torch.float64, requires_grad=True)
    out = to_batch(x, name="dist")
    assert out.shape == (1, 3, 8, 8) and out.dtype == torch.float32
    out.sum().backward()
    assert x.grad is not None and torch.allclose(x.grad, torch.ones_like(x))


@pytest.mark.parametrize("dtype", [torch.uint8, torch.int64, torch.bool])
def test_integer_tensor_rejected_with_hint(dtype: torch.dtype) -> None:
    with pytest.raises(InputError, match=r"dist must be a floating-point.*/ 255"):
        to_batch(torch.zeros(1, 3, 8, 8, dtype=dtype), name="dist")


@pytest.mark.parametrize("shape", [(1, 1, 8, 8), (1, 8, 8, 3), (8, 8), (2, 1, 3, 8, 8)])
def test_tensor_bad_shape_rejected(shape: tuple[int, ...]) -> None:
    with pytest.raises(InputError, match=r"ref must be a tensor of shape \(N, 3, H, W\)"):
        to_batch(torch.rand(shape), name="ref")


# --- numpy -----------------------------------------------------------------------------


def test_numpy_uint8_and_uint16_scaling(rng: np.random.Generator) -> None:
    a8 = rng.integers(0, 256, (5, 6, 3), dtype=np.uint8)
    a16 = rng.integers(0, 65536, (5, 6, 3), dtype=np.uint16)
    t8 = to_batch(a8, name="x")
    t16 = to_batch(a16, name="x")
    assert t8.shape == (1, 3, 5, 6) and t8.dtype == torch.float32
    assert torch.allclose(t8[0].permute(1, 2, 0), torch.from_numpy(a8 / 255.0).float())
    assert torch.allclose(t16[0].permute(1, 2, 0), torch.from_numpy(a16 / 65535.0).float())


@pytest.mark.parametrize("shape", [(5, 6), (5, 6, 1)])
def test_numpy_grey_replicated(rng: np.random.Generator, shape: tuple[int, ...]) -> None:
    a = rng.integers(0, 256, shape, dtype=np.uint8)
    t = to_batch(a, name="x")
    assert t.shape == (1, 3, 5, 6)
    assert torch.equal(t[:, 0], t[:, 1]) and torch.equal(t[:, 0], t[:, 2])
    assert torch.allclose(t[0, 0], torch.from_numpy(a.reshape(5, 6) / 255.0).float())


def test_numpy_rgba_drops_alpha_like_pil(rng: np.random.Generator) -> None:
    a = rng.integers(0, 256, (5, 6, 4), dtype=np.uint8)
    t = to_batch(a, name="x")
    expected = np.asarray(Image.fromarray(a, "RGBA").convert("RGB"))
    assert torch.allclose(t[0].permute(1, 2, 0), torch.from_numpy(expected / 255.0).float())


def test_numpy_float_read_only_array_ok() -> None:
    a = np.full((4, 4, 3), 0.25, dtype=np.float32)
    a.setflags(write=False)
    assert torch.allclose(to_batch(a, name="x"), torch.full((1, 3, 4, 4), 0.25))


def test_numpy_float_out_of_range_rejected() -> None:
    with pytest.raises(InputError, match=r"max 255.*divide by 255"):
        to_batch(np.full((4, 4, 3), 255.0), name="dist")


def test_numpy_float_nan_rejected() -> None:
    a = np.zeros((4, 4, 3))
    a[0, 0] = np.nan
    with pytest.raises(InputError, match="contains 3 NaN"):
        to_batch(a, name="dist")


def test_numpy_channels_first_rejected_with_hint() -> None:
    with pytest.raises(InputError, match=r"channels-first: use np.moveaxis"):
        to_batch(np.zeros((3, 40, 40), dtype=np.uint8), name="dist")


@pytest.mark.parametrize(
    ("array", "pattern"),
    [
        (np.zeros((2, 4, 4, 3), dtype=np.uint8), "pass a list of arrays"),
        (np.zeros((4, 4, 3), dtype=np.int32), r"got dtype int32"),
        (np.zeros((4, 4, 2), dtype=np.uint8), r"HxWx4 \(channels last\)"),
    ],
)
def test_numpy_bad_inputs(array: np.ndarray, pattern: str) -> None:
    with pytest.raises(InputError, match=pattern):
        to_batch(array, name="dist")


# --- PIL -------------------------------------------------------------------------------


def test_pil_modes(rng: np.random.Generator) -> None:
    rgb = rng.integers(0, 256, (5, 6, 3), dtype=np.uint8)
    grey = rng.integers(0, 256, (5, 6), dtype=np.uint8)
    t_rgb = to_batch(Image.fromarray(rgb, "RGB"), name="x")
    assert torch.allclose(t_rgb[0].permute(1, 2, 0), torch.from_numpy(rgb / 255.0).float())
    t_l = to_batch(Image.fromarray(grey, "L"), name="x")
    assert torch.allclose(t_l[0], torch.from_numpy(grey / 255.0).float().expand(3, 5, 6))
    rgba = Image.fromarray(np.dstack([rgb, np.full((5, 6), 128, np.uint8)]), "RGBA")
    assert torch.equal(to_batch(rgba, name="x"), t_rgb)  # alpha dropped, not composited
    la = Image.fromarray(np.dstack([grey, grey]), "LA")
    assert torch.equal(to_batch(la, name="x"), t_l)
    palette = Image.fromarray(rgb, "RGB").convert("P")
    expected = np.asarray(palette.convert("RGB")) / 255.0
    t_p = to_batch(palette, name="x")
    assert torch.allclose(t_p[0].permute(1, 2, 0), torch.from_numpy(expected).float())


def test_pil_16bit_and_float_modes(rng: np.random.Generator) -> None:
    a16 = rng.integers(0, 65536, (5, 6), dtype=np.uint16)
    t = to_batch(Image.fromarray(a16), name="x")
    assert torch.allclose(t[0, 1], torch.from_numpy(a16 / 65535.0).float())
    t_i = to_batch(Image.fromarray(a16.astype(np.int32)), name="x")
    assert torch.equal(t_i, t)
    f = rng.random((5, 6), dtype=np.float32)
    t_f = to_batch(Image.fromarray(f), name="x")
    assert torch.allclose(t_f[0, 2], torch.from_numpy(f))
    with pytest.raises(InputError, match=r"mode 'I'.*\[0, 65535\]"):
        to_batch(Image.fromarray(np.full((4, 4), 70000, np.int32)), name="x")


# --- paths -----------------------------------------------------------------------------


@pytest.mark.parametrize("channels", [1, 2, 3, 4])
def test_png16_full_precision(tmp_path: Path, rng: np.random.Generator, channels: int) -> None:
    pixels = rng.integers(0, 65536, (7, 9, channels), dtype=np.uint16)
    # Values whose high bytes agree but low bytes differ: lost by an 8-bit decode.
    pixels[0, 0], pixels[0, 1] = 0x1200, 0x12FF
    path = tmp_path / "img16.png"
    write_png16(path, pixels)
    t = to_batch(path, name="dist")
    colour = pixels[:, :, :3] if channels >= 3 else np.repeat(pixels[:, :, :1], 3, axis=2)
    expected = torch.from_numpy(colour.astype(np.float64) / 65535.0).permute(2, 0, 1)
    assert t.shape == (1, 3, 7, 9)
    assert torch.allclose(t[0].double(), expected, atol=1e-7)
    assert t[0, 0, 0, 0] != t[0, 0, 0, 1]


def test_png8_rgba_and_grey_files(tmp_path: Path, rng: np.random.Generator) -> None:
    rgba = rng.integers(0, 256, (6, 5, 4), dtype=np.uint8)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    t = to_batch(str(tmp_path / "a.png"), name="ref")
    assert torch.allclose(t[0].permute(1, 2, 0), torch.from_numpy(rgba[:, :, :3] / 255.0).float())
    grey = rng.integers(0, 256, (6, 5), dtype=np.uint8)
    Image.fromarray(grey, "L").save(tmp_path / "g.png")
    t = to_batch(tmp_path / "g.png", name="ref")
    assert torch.allclose(t[0], torch.from_numpy(grey / 255.0).float().expand(3, 6, 5))


def test_sample_pair_loads(assets: Path) -> None:
    t = to_batch([assets / "asna_pair" / "dist.png", assets / "asna_pair" / "ref.png"], name="x")
    assert t.shape == (2, 3, 288, 288) and 0.0 <= float(t.min()) and float(t.max()) <= 1.0


def test_missing_and_unreadable_paths(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"cannot read dist image '.*nope.png': no such file"):
        to_batch(tmp_path / "nope.png", name="dist")
    with pytest.raises(InputError, match="it is a directory"):
        to_batch(tmp_path, name="dist")
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image at all")
    with pytest.raises(InputError, match=r"cannot read ref image '.*bad.png': Unidentified"):
        to_batch(str(bad), name="ref")
    good = tmp_path / "cut.png"
    Image.fromarray(np.zeros((64, 64, 3), np.uint8) + 9).save(good)
    cut = tmp_path / "cut2.png"
    cut.write_bytes(good.read_bytes()[:60])
    with pytest.raises(InputError, match=r"cannot read ref image '.*cut2.png'"):
        to_batch(cut, name="ref")


# --- lists and other types ------------------------------------------------------------


def test_list_of_mixed_items_is_stacked(rng: np.random.Generator) -> None:
    a = rng.integers(0, 256, (5, 6, 3), dtype=np.uint8)
    t = to_batch([a, torch.rand(3, 5, 6), torch.rand(2, 3, 5, 6)], name="x")
    assert t.shape == (4, 3, 5, 6)


def test_list_size_mismatch_and_empty() -> None:
    with pytest.raises(InputError, match=r"same height and width.*x\[1\]: \(6, 5\)"):
        to_batch([torch.rand(3, 5, 6), torch.rand(3, 6, 5)], name="x")
    with pytest.raises(InputError, match="empty list"):
        to_batch([], name="x")


def test_unsupported_type() -> None:
    with pytest.raises(InputError, match=r"dist must be a torch.Tensor, .*got int"):
        to_batch(3, name="dist")


# --- check_pair ------------------------------------------------------------------------


def _pair(shape: tuple[int, ...] = (2, 3, MIN_SIZE, MIN_SIZE + 8)) -> tuple[torch.Tensor, ...]:
    return torch.rand(shape), torch.rand(shape)


def test_check_pair_accepts_valid_and_tolerance() -> None:
    dist, ref = _pair()
    dist[0, 0, 0, 0] = 1.0 + RANGE_TOLERANCE / 2
    ref[0, 0, 0, 0] = -RANGE_TOLERANCE / 2
    check_pair(dist, ref)


def test_check_pair_shape_mismatch_names_both_shapes() -> None:
    with pytest.raises(InputError, match=r"same shape; got \(1, 3, 40, 40\) and \(1, 3, 40, 48\)"):
        check_pair(torch.rand(1, 3, 40, 40), torch.rand(1, 3, 40, 48))
    with pytest.raises(InputError, match=r"ref.expand"):
        check_pair(torch.rand(2, 3, 40, 40), torch.rand(1, 3, 40, 40))


def test_check_pair_channels_size_dims_dtype() -> None:
    with pytest.raises(InputError, match="3 \\(RGB\\) channels"):
        check_pair(torch.rand(1, 1, 40, 40), torch.rand(1, 1, 40, 40))
    with pytest.raises(InputError, match=f"at least {MIN_SIZE}x{MIN_SIZE}.*got 31x40"):
        check_pair(torch.rand(1, 3, 31, 40), torch.rand(1, 3, 31, 40))
    with pytest.raises(InputError, match="must be 4-D"):
        check_pair(torch.rand(3, 40, 40), torch.rand(3, 40, 40))
    with pytest.raises(InputError, match="floating-point"):
        check_pair(torch.zeros(1, 3, 40, 40, dtype=torch.uint8), torch.rand(1, 3, 40, 40))
    with pytest.raises(InputError, match=r"must be a torch\.Tensor"):
        check_pair(np.zeros((1, 3, 40, 40)), torch.rand(1, 3, 40, 40))  # type: ignore[arg-type]


def test_check_pair_counts_nan_and_inf() -> None:
    dist, ref = _pair()
    ref[0, 0, 0, :2] = float("nan")
    ref[1, 2, 3, 4] = float("inf")
    with pytest.raises(InputError, match="ref contains 3 NaN or infinite"):
        check_pair(dist, ref)


@pytest.mark.parametrize(
    ("scale", "shift", "hint"),
    [(255.0, 0.0, "divide by 255"), (2.0, -1.0, r"\(x \+ 1\) / 2"), (1.0, 0.01, "clamp")],
)
def test_check_pair_range(scale: float, shift: float, hint: str) -> None:
    dist, ref = _pair()
    dist = dist * scale + shift
    dist[0, 0, 0, 0] = scale + shift  # make the max certain
    with pytest.raises(InputError, match=rf"dist must hold values in \[0, 1\]; got min .*{hint}"):
        check_pair(dist, ref)


# --- transparency ----------------------------------------------------------------------

TRANSPARENT = r"fully transparent \(alpha 0 at every pixel\).*composite"


def _rgba(rng: np.random.Generator, alpha: int) -> np.ndarray:
    rgba = rng.integers(0, 256, (6, 5, 4), dtype=np.uint8)
    rgba[:, :, 3] = alpha
    return rgba


def test_fully_transparent_array_and_pil_warn_but_keep_colours(rng: np.random.Generator) -> None:
    rgba = _rgba(rng, 0)
    expected = torch.from_numpy(rgba[:, :, :3] / 255.0).float().permute(2, 0, 1)
    with pytest.warns(UserWarning, match=TRANSPARENT):
        t = to_batch(rgba, name="dist")
    assert torch.allclose(t[0], expected)  # still scored as stored
    with pytest.warns(UserWarning, match="dist is fully transparent"):
        to_batch(Image.fromarray(rgba, "RGBA"), name="dist")
    grey_alpha = np.dstack([rgba[:, :, 0], rgba[:, :, 3]])
    with pytest.warns(UserWarning, match="ref is fully transparent"):
        to_batch(Image.fromarray(grey_alpha, "LA"), name="ref")
    with pytest.warns(UserWarning, match=TRANSPARENT):
        to_batch(rgba.astype(np.float32) / 255.0, name="dist")


def test_fully_transparent_files_warn_and_name_the_file(
    tmp_path: Path, rng: np.random.Generator
) -> None:
    path = tmp_path / "clear.png"
    Image.fromarray(_rgba(rng, 0), "RGBA").save(path)
    with pytest.warns(UserWarning, match=r"dist \('.*clear\.png'\) is fully transparent"):
        to_batch(path, name="dist")
    for channels in (2, 4):
        pixels = rng.integers(0, 65536, (7, 9, channels), dtype=np.uint16)
        pixels[:, :, -1] = 0
        png16 = tmp_path / f"clear16_{channels}.png"
        write_png16(png16, pixels)
        with pytest.warns(UserWarning, match=TRANSPARENT):
            t = read_image(png16, name="ref")
        colour = pixels[:, :, :3] if channels == 4 else np.repeat(pixels[:, :, :1], 3, axis=2)
        assert torch.equal(t, torch.from_numpy(colour / np.float32(65535.0)).permute(2, 0, 1))


def test_partly_transparent_images_do_not_warn(tmp_path: Path, rng: np.random.Generator) -> None:
    rgba = _rgba(rng, 0)
    rgba[0, 0, 3] = 1  # one visible pixel is enough
    to_batch(rgba, name="dist")  # filterwarnings=error: a warning would fail the test
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    to_batch(tmp_path / "a.png", name="dist")
    pixels = rng.integers(1, 65536, (7, 9, 4), dtype=np.uint16)
    write_png16(tmp_path / "a16.png", pixels)
    read_image(tmp_path / "a16.png")


# --- read_image ------------------------------------------------------------------------


@pytest.mark.parametrize("bits", [8, 16])
def test_read_image_is_to_batch_of_a_path(
    tmp_path: Path, rng: np.random.Generator, bits: int
) -> None:
    path = tmp_path / "img.png"
    if bits == 8:
        pixels: np.ndarray = rng.integers(0, 256, (7, 9, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(path)
    else:
        pixels = rng.integers(0, 65536, (7, 9, 3), dtype=np.uint16)
        write_png16(path, pixels)
    stored = read_image_pixels(path)
    assert stored.dtype == pixels.dtype and np.array_equal(stored, pixels)
    image = read_image(path)
    assert image.shape == (3, 7, 9) and image.dtype == torch.float32
    assert torch.equal(image, to_batch(path, name="dist")[0])
    assert torch.equal(image[None], to_batch(stored, name="dist"))


def test_read_image_errors_name_the_image(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"cannot read reference image '.*gone.png': no such"):
        read_image(tmp_path / "gone.png", name="reference")


# --- check_images ----------------------------------------------------------------------


def test_check_images_checks_one_batch_with_its_name() -> None:
    check_images(torch.rand(2, 3, MIN_SIZE, MIN_SIZE), name="restored")
    with pytest.raises(InputError, match="restored must have 3 \\(RGB\\) channels"):
        check_images(torch.rand(1, 4, 40, 40), name="restored")
    with pytest.raises(InputError, match=f"restored must be at least {MIN_SIZE}x{MIN_SIZE}"):
        check_images(torch.rand(1, 3, 20, 40), name="restored")
    holed = torch.rand(1, 3, 40, 40)
    holed[0, 1, 2, 3] = float("nan")
    with pytest.raises(InputError, match="restored contains 1 NaN"):
        check_images(holed, name="restored")
    wide = torch.rand(1, 3, 40, 40) * 1.2
    with pytest.raises(InputError, match=r"restored must hold values in \[0, 1\]"):
        check_images(wide, name="restored")
    check_images(wide, name="restored", tolerance=0.5)
