"""Convert images to ``(N, 3, H, W)`` float tensors in ``[0, 1]`` and validate pairs.

This is the public boundary of the package: PIL images, numpy arrays and
file paths are converted here and nowhere else, so every other module can
assume float RGB tensors in ``[0, 1]``.

Conversion rules (:func:`to_batch`):

* **Tensors** must be floating point, ``(N, 3, H, W)`` or ``(3, H, W)``; they
  keep their device and their autograd graph (a float32 tensor is returned
  as is, other float dtypes are cast to float32, differentiably). Integer
  tensors are rejected: divide by 255 (or 65535) yourself, so that the scale
  is never guessed.
* **numpy arrays** are channels-last: ``HxW``, ``HxWx1``, ``HxWx3`` or
  ``HxWx4``; ``uint8`` is divided by 255, ``uint16`` by 65535, floating
  point must already be in ``[0, 1]``.
* **PIL images**: 8-bit modes are divided by 255; 16-bit modes (``I;16*``)
  and mode ``I`` (how older Pillow opens 16-bit PNGs; values must lie in
  ``[0, 65535]``) by 65535; mode ``F`` must already be in ``[0, 1]``.
* **Paths** (``str`` or ``os.PathLike``) are opened with Pillow. 16-bit PNGs
  (grey, grey+alpha, RGB, RGBA) are read at full 16-bit precision, which
  Pillow alone does not do for colour images. EXIF orientation is *not*
  applied: pixels are scored as stored, like the IQA datasets' own files.
* **Lists and tuples** of any of the above are concatenated along the batch
  axis; all items must have the same height and width.

Grey images are replicated to three channels and an alpha channel is
dropped (not composited), which is what ``PIL.Image.convert("RGB")`` does
and what the lpips and pyiqa image loaders therefore do too. An image whose
alpha is 0 everywhere (fully transparent) is still scored on its colour
values, with a ``UserWarning``: such files often hold no meaningful colour.

:func:`read_image` is the one image-file decoder of the package: scoring
(:func:`to_batch` of a path), the training datasets
(:mod:`asna_metric.train.pairs`) and synthesis (:mod:`asna_metric.data.synthesis`)
all read files through it (or :func:`read_image_pixels`, its undivided
samples), so they see the same pixels from the same file.
"""

from __future__ import annotations

import logging
import math
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from asna_metric.errors import InputError

if TYPE_CHECKING:
    from PIL import Image as PILImage

__all__ = [
    "MIN_SIZE",
    "RANGE_TOLERANCE",
    "check_images",
    "check_pair",
    "read_image",
    "read_image_pixels",
    "to_batch",
]

logger = logging.getLogger(__name__)

MIN_SIZE = 32
"""Smallest accepted height and width in pixels (the encoder downsamples 8x)."""

RANGE_TOLERANCE = 1e-4
"""Values in ``[-RANGE_TOLERANCE, 1 + RANGE_TOLERANCE]`` pass the range check.

The slack absorbs rounding from resizing or colour conversion; anything
further out is almost always a ``[0, 255]`` image or a ``[-1, 1]`` tensor.
"""

_MODES_8BIT_GREY = frozenset({"1", "L", "LA", "La"})
_MODES_16BIT = frozenset({"I;16", "I;16L", "I;16B", "I;16N"})
# Raw modes Pillow uses for 16-bit colour PNGs; it keeps only the high byte.
_PNG16_RAWMODES = {"RGB;16B": ("RGB;16L", 3), "RGBA;16B": ("RGBA;16L", 4)}


def to_batch(x: Any, *, name: str) -> torch.Tensor:
    """Convert an image, or a list of images, to a float32 ``(N, 3, H, W)`` tensor.

    See the module docstring for the exact rules per input type.

    Args:
        x: A tensor ``(N, 3, H, W)`` or ``(3, H, W)`` in ``[0, 1]``; a PIL
            image; a numpy array ``HxW``, ``HxWx1``, ``HxWx3`` or ``HxWx4``
            (``uint8``, ``uint16`` or float in ``[0, 1]``); a path to an
            image file; or a list/tuple of these (same height and width).
        name: What the argument is called (``"dist"``, ``"ref"``), used in
            error messages.

    Returns:
        A float32 tensor ``(N, 3, H, W)``. Tensor inputs keep their device
        and gradient; everything else is on the CPU.

    Raises:
        InputError: If ``x`` has an unsupported type, dtype, shape or mode,
            if a float array lies outside ``[0, 1]``, or if a file cannot be
            read.

    Shape:
        - Output: ``(N, 3, H, W)``.

    Example:
        >>> import numpy as np
        >>> to_batch(np.zeros((40, 48, 3), dtype=np.uint8), name="dist").shape
        torch.Size([1, 3, 40, 48])
    """
    if isinstance(x, torch.Tensor):
        return _tensor_to_batch(x, name)
    if isinstance(x, np.ndarray):
        return _array_to_batch(x, name)
    if isinstance(x, (str, os.PathLike)):
        return _array_to_batch(read_image_pixels(x, name=name), f"{name} ({x})")
    if isinstance(x, (list, tuple)):
        return _sequence_to_batch(x, name)
    if _is_pil_image(x):
        return _array_to_batch(_pil_to_array(x, name), name)
    raise InputError(
        f"{name} must be a torch.Tensor, PIL.Image, numpy array, file path or a list of "
        f"these; got {type(x).__name__}. Convert it to one of the accepted types first."
    )


def read_image(path: str | os.PathLike[str], *, name: str = "input") -> torch.Tensor:
    """Read an image file as a float32 ``(3, H, W)`` tensor in ``[0, 1]``.

    The same rules as :func:`to_batch` for a path (it is what ``to_batch``
    does with one): 8-bit files are divided by 255, 16-bit PNGs are read at
    full precision and divided by 65535, grey is replicated to RGB, alpha is
    dropped (with a ``UserWarning`` when it is 0 everywhere), EXIF
    orientation is not applied.

    Args:
        path: The image file (PNG, JPEG, BMP, TIFF, WebP, ... : what Pillow opens).
        name: What the image is called in messages (``"dist"``,
            ``"reference"``: "cannot read reference image ...").

    Returns:
        A float32 tensor ``(3, H, W)`` on the CPU.

    Raises:
        InputError: The file does not exist or cannot be decoded, or its
            mode has no RGB meaning.

    Example:
        >>> import tempfile, numpy as np
        >>> from PIL import Image
        >>> path = tempfile.mkdtemp() + "/grey.png"
        >>> Image.fromarray(np.full((4, 6), 255, np.uint8)).save(path)
        >>> read_image(path).shape, float(read_image(path).min())
        (torch.Size([3, 4, 6]), 1.0)
    """
    return _array_to_batch(read_image_pixels(path, name=name), f"{name} ({path})")[0]


def read_image_pixels(path: str | os.PathLike[str], *, name: str = "input") -> np.ndarray:
    """Read an image file's samples as stored, before scaling to ``[0, 1]``.

    :func:`read_image` is ``to_batch(read_image_pixels(path))[0]``; this
    form lets a cache keep 8-bit images at one byte per sample (and 16-bit
    ones at two) instead of four.

    Args:
        path: The image file.
        name: What the image is called in error messages.

    Returns:
        A numpy array ``(H, W)`` (grey) or ``(H, W, 3)``: ``uint8`` for
        8-bit files, ``uint16`` for 16-bit ones (grey and colour PNGs at
        full precision, 16-bit TIFF grey), ``float32`` for floating-point
        files (PIL mode ``F``, values not checked here). Alpha is dropped.

    Raises:
        InputError: The file does not exist or cannot be decoded.
    """
    return _read_image(Path(path), name)


def check_images(
    images: torch.Tensor, *, name: str = "images", tolerance: float = RANGE_TOLERANCE
) -> None:
    """Check that ``images`` is a valid batch of RGB images in ``[0, 1]``.

    The per-tensor half of :func:`check_pair`: a floating-point tensor,
    4-D with 3 channels, height and width at least :data:`MIN_SIZE`, no NaN
    or infinite values, every value in ``[-tolerance, 1 + tolerance]``.

    Args:
        images: Images ``(N, 3, H, W)``.
        name: What the argument is called, for the messages.
        tolerance: Slack of the range check (:data:`RANGE_TOLERANCE` by
            default).

    Raises:
        InputError: If any check fails; the message names the argument,
            what was expected, what was received and the fix.

    Example:
        >>> import torch
        >>> check_images(torch.rand(1, 3, 40, 40), name="dist")
    """
    _check_structure(images, name)
    _check_size(images, name)
    _check_values(images, name, tolerance=tolerance)


def check_pair(dist: torch.Tensor, ref: torch.Tensor) -> None:
    """Check that ``dist`` and ``ref`` form a valid pair of image batches.

    Checks, in order: both are floating-point tensors on the same device;
    4-D with 3 channels; the same shape; height and width at least
    :data:`MIN_SIZE`; no NaN or infinite values; every value in ``[0, 1]``
    up to :data:`RANGE_TOLERANCE`. The finiteness and range checks read
    the minimum and maximum of each tensor (one reduction each; on a GPU
    this synchronises once).

    Args:
        dist: Distorted images ``(N, 3, H, W)``.
        ref: Reference images, same shape as ``dist``.

    Raises:
        InputError: If any check fails; the message names the offending
            argument, what was expected, what was received and the fix.

    Example:
        >>> import torch
        >>> x = torch.rand(2, 3, 64, 64)
        >>> check_pair(x, x.clone())
    """
    for name, t in (("dist", dist), ("ref", ref)):
        _check_structure(t, name)
    if dist.device != ref.device:
        raise InputError(
            f"dist and ref must be on the same device; got {dist.device} and {ref.device}. "
            "Move one of them with .to(other.device)."
        )
    if dist.shape != ref.shape:
        fix = "Resize or crop one of them so both match."
        if dist.shape[1:] == ref.shape[1:]:
            fix = (
                "The batch sizes differ: pass one ref per dist image (e.g. "
                "ref.expand(dist.shape[0], -1, -1, -1) to reuse a single reference)."
            )
        raise InputError(
            f"dist and ref must have the same shape; got {tuple(dist.shape)} and "
            f"{tuple(ref.shape)}. {fix}"
        )
    _check_size(dist, "images")
    for name, t in (("dist", dist), ("ref", ref)):
        _check_values(t, name)


def _check_structure(t: torch.Tensor, name: str) -> None:
    """Raise unless ``t`` is a floating-point ``(N, 3, H, W)`` tensor."""
    if not isinstance(t, torch.Tensor):
        raise InputError(
            f"{name} must be a torch.Tensor; got {type(t).__name__}. Convert it with "
            "asna_metric.inputs.to_batch first."
        )
    if not t.is_floating_point():
        raise InputError(_integer_dtype_message(name, t.dtype))
    if t.ndim != 4:
        raise InputError(
            f"{name} must be 4-D (N, 3, H, W); got shape {tuple(t.shape)}. Add a batch "
            "axis with x.unsqueeze(0) or convert with asna_metric.inputs.to_batch."
        )
    if t.shape[1] != 3:
        raise InputError(
            f"{name} must have 3 (RGB) channels in dim 1; got shape {tuple(t.shape)}. "
            "Replicate grey images with x.expand(-1, 3, -1, -1), drop alpha with "
            "x[:, :3], or move channels first with x.permute(0, 3, 1, 2)."
        )


def _check_size(t: torch.Tensor, name: str) -> None:
    height, width = t.shape[-2:]
    if height < MIN_SIZE or width < MIN_SIZE:
        raise InputError(
            f"{name} must be at least {MIN_SIZE}x{MIN_SIZE} pixels; got {height}x{width} "
            "(H x W). Upscale them or score a larger crop."
        )


def _check_values(t: torch.Tensor, name: str, *, tolerance: float = RANGE_TOLERANCE) -> None:
    """Raise if ``t`` has non-finite values or values outside ``[0, 1]`` (with tolerance)."""
    if t.numel() == 0:
        raise InputError(f"{name} is empty (shape {tuple(t.shape)}); pass at least one image.")
    with torch.no_grad():
        low, high = (v.item() for v in torch.aminmax(t.detach()))
        if not (math.isfinite(low) and math.isfinite(high)):
            bad = int((~torch.isfinite(t.detach())).sum().item())
            raise InputError(
                f"{name} contains {bad} NaN or infinite value(s) out of {t.numel()}; "
                "expected finite values in [0, 1]. Check the pipeline that produced it "
                "(e.g. torch.nan_to_num(x) if the NaNs are harmless)."
            )
    if low < -tolerance or high > 1.0 + tolerance:
        if high > 1.5:
            hint = "it looks like [0, 255]: divide by 255"
        elif low < -RANGE_TOLERANCE * 10 and low >= -1.0 - RANGE_TOLERANCE:
            hint = "it looks like [-1, 1]: use (x + 1) / 2"
        else:
            hint = "clip it with x.clamp(0, 1)"
        raise InputError(
            f"{name} must hold values in [0, 1]; got min {low:.6g}, max {high:.6g} "
            f"(tolerance {tolerance:g}). Fix: {hint}."
        )


def _integer_dtype_message(name: str, dtype: torch.dtype) -> str:
    return (
        f"{name} must be a floating-point tensor in [0, 1]; got dtype {dtype}. "
        "Convert it with x.float() / 255 for 8-bit images (x.float() / 65535 for 16-bit)."
    )


def _tensor_to_batch(x: torch.Tensor, name: str) -> torch.Tensor:
    if not x.is_floating_point():
        raise InputError(_integer_dtype_message(name, x.dtype))
    if x.ndim == 3:
        x = x.unsqueeze(0)
    if x.ndim != 4 or x.shape[1] != 3:
        raise InputError(
            f"{name} must be a tensor of shape (N, 3, H, W) or (3, H, W); got "
            f"{tuple(x.shape)}. Channels go first: use x.permute(0, 3, 1, 2) for NHWC, "
            "x.expand(-1, 3, -1, -1) for grey and x[:, :3] to drop alpha."
        )
    return x if x.dtype == torch.float32 else x.float()


def _array_to_batch(a: np.ndarray, name: str) -> torch.Tensor:
    """Convert a channels-last numpy image to ``(1, 3, H, W)`` float32."""
    if a.ndim == 3 and a.shape[-1] not in (1, 3, 4):
        hint = ""
        if a.shape[0] in (1, 3, 4):
            hint = " It looks channels-first: use np.moveaxis(x, 0, -1)."
        raise InputError(
            f"{name} must be a numpy array HxW, HxWx1, HxWx3 or HxWx4 (channels last); got "
            f"shape {a.shape}.{hint} For a batch, pass a list of arrays."
        )
    if a.ndim not in (2, 3):
        raise InputError(
            f"{name} must be a numpy array HxW, HxWx1, HxWx3 or HxWx4; got shape {a.shape}. "
            "For a batch, pass a list of arrays (or a tensor (N, 3, H, W))."
        )
    if a.dtype == np.uint8:
        out = a.astype(np.float32) / np.float32(255.0)
    elif a.dtype == np.uint16:
        out = a.astype(np.float32) / np.float32(65535.0)
    elif np.issubdtype(a.dtype, np.floating):
        out = a.astype(np.float32)  # a copy: torch.from_numpy needs a writable array
        _check_array_range(out, name)
    else:
        raise InputError(
            f"{name} must be a uint8, uint16 or floating-point array; got dtype {a.dtype}. "
            "Convert it with x.astype(np.uint8) (0..255), x.astype(np.uint16) (0..65535) or "
            "x.astype(np.float32) / max_value."
        )
    if out.ndim == 2:
        out = out[:, :, None]
    if out.shape[-1] == 4:  # alpha dropped, as PIL.Image.convert("RGB") does
        if out.size and float(out[:, :, 3].max()) <= 0.0:
            _warn_transparent(name)
        out = out[:, :, :3]
    t = torch.from_numpy(np.ascontiguousarray(out)).permute(2, 0, 1).unsqueeze(0)
    if t.shape[1] == 1:
        t = t.repeat(1, 3, 1, 1)
    return t.contiguous()


def _check_array_range(a: np.ndarray, name: str) -> None:
    if a.size == 0:
        raise InputError(f"{name} is empty (shape {a.shape}); pass at least one pixel.")
    finite = np.isfinite(a)
    if not finite.all():
        raise InputError(
            f"{name} contains {int(a.size - finite.sum())} NaN or infinite value(s); "
            "expected finite floats in [0, 1]. Fix the data (e.g. np.nan_to_num)."
        )
    low, high = float(a.min()), float(a.max())
    if low < -RANGE_TOLERANCE or high > 1.0 + RANGE_TOLERANCE:
        hint = "divide by 255" if high > 1.5 else "clip it with np.clip(x, 0, 1)"
        raise InputError(
            f"{name} is a float array and must hold values in [0, 1]; got min {low:.6g}, "
            f"max {high:.6g}. Fix: {hint}, or pass the original uint8/uint16 array."
        )


def _sequence_to_batch(items: Sequence[Any], name: str) -> torch.Tensor:
    if len(items) == 0:
        raise InputError(f"{name} is an empty {type(items).__name__}; pass at least one image.")
    batches = [to_batch(item, name=f"{name}[{i}]") for i, item in enumerate(items)]
    sizes = {tuple(b.shape[-2:]) for b in batches}
    if len(sizes) > 1:
        listed = ", ".join(f"{name}[{i}]: {tuple(b.shape[-2:])}" for i, b in enumerate(batches))
        raise InputError(
            f"all images in {name} must have the same height and width to form a batch; "
            f"got {listed}. Resize them, or score them one by one."
        )
    devices = {b.device for b in batches}
    if len(devices) > 1:
        raise InputError(
            f"all tensors in {name} must be on one device; got {sorted(map(str, devices))}. "
            "Move them with .to(device) first."
        )
    return batches[0] if len(batches) == 1 else torch.cat(batches, dim=0)


def _is_pil_image(x: object) -> bool:
    # Checked without importing PIL when it is not loaded yet: a PIL image
    # cannot exist unless PIL.Image has been imported.
    import sys

    module = sys.modules.get("PIL.Image")
    return module is not None and isinstance(x, module.Image)


def _warn_transparent(name: str) -> None:
    warnings.warn(
        f"{name} is fully transparent (alpha 0 at every pixel); it is scored on its colour "
        "values as if it were opaque (alpha is dropped, not composited). If those colours "
        "mean nothing, composite the image onto a background first, e.g. "
        "Image.alpha_composite(Image.new('RGBA', im.size, 'white'), im).",
        UserWarning,
        stacklevel=2,
    )


def _pil_fully_transparent(im: PILImage.Image) -> bool:
    """Whether a PIL image has an alpha channel (or transparency key) that is 0 everywhere."""
    bands = im.getbands()
    try:
        if "A" in bands or "a" in bands:
            alpha = im.getchannel("A" if "A" in bands else "a")
        elif "transparency" in im.info:
            alpha = im.convert("RGBA").getchannel("A")
        else:
            return False
        extrema: Any = alpha.getextrema()
    except (ValueError, OSError):
        return False  # no RGBA meaning: the conversion below reports it
    return bool(im.width and im.height) and extrema[1] == 0


def _pil_to_array(im: PILImage.Image, name: str) -> np.ndarray:
    """Return the pixels of a PIL image as uint8, uint16 or float32 numpy data."""
    mode = im.mode
    if _pil_fully_transparent(im):
        _warn_transparent(name)
    if mode in _MODES_8BIT_GREY:
        return np.asarray(im.convert("L"))
    if mode in _MODES_16BIT:
        return np.asarray(im).astype(np.uint16)
    if mode == "I":
        a = np.asarray(im)
        if a.size and (int(a.min()) < 0 or int(a.max()) > 65535):
            raise InputError(
                f"{name} is a 32-bit integer image (PIL mode 'I') with values in "
                f"[{int(a.min())}, {int(a.max())}]; only [0, 65535] (16-bit) is accepted. "
                "Scale it to [0, 1] and pass a float array or tensor."
            )
        return a.astype(np.uint16)
    if mode == "F":
        return np.asarray(im, dtype=np.float32)
    try:
        return np.asarray(im.convert("RGB"))
    except (ValueError, OSError) as exc:
        raise InputError(
            f"{name} has PIL mode {mode!r}, which cannot be converted to RGB ({exc}). "
            "Convert it to 'RGB' or 'L' yourself first."
        ) from exc


def _read_image(path: Path, name: str) -> np.ndarray:
    """Read an image file to a numpy array (uint8, uint16 or float32)."""
    from PIL import Image, UnidentifiedImageError

    path = path.expanduser()
    if not path.is_file():
        reason = "it is a directory" if path.is_dir() else "no such file"
        raise InputError(
            f"cannot read {name} image '{path}': {reason}. Check the path (relative paths "
            f"are resolved from {Path.cwd()})."
        )
    try:
        with Image.open(path) as im:
            rawmode = _png_rawmode(im)
            if rawmode is not None:
                try:
                    return _read_png16(path, rawmode, f"{name} ('{path}')")
                except (OSError, ValueError, AttributeError, TypeError) as exc:
                    logger.warning(
                        "%s: 16-bit PNG read at 8-bit precision (%s: %s); convert it to a "
                        "16-bit numpy array yourself for full precision",
                        path,
                        type(exc).__name__,
                        exc,
                    )
            im.load()
            return _pil_to_array(im, f"{name} ('{path}')")
    except InputError:
        raise
    except (
        UnidentifiedImageError,
        Image.DecompressionBombError,
        OSError,
        ValueError,
        SyntaxError,
    ) as exc:
        raise InputError(
            f"cannot read {name} image '{path}': {type(exc).__name__}: {exc}. Check that the "
            "file is a complete image Pillow can open (PNG, JPEG, BMP, TIFF, WebP)."
        ) from exc


def _png_rawmode(im: Any) -> str | None:
    """Return the raw mode of a 16-bit colour or grey+alpha PNG, else ``None``."""
    tiles: Any = getattr(im, "tile", ())
    if im.format != "PNG" or len(tiles) != 1:
        return None
    args = tiles[0][3]  # (codec, extents, offset, args), a tuple in every Pillow
    rawmode = args if isinstance(args, str) else (args[0] if args else None)
    if rawmode in _PNG16_RAWMODES or rawmode == "LA;16B":
        return str(rawmode)
    return None


def _decode_with_rawmode(path: Path, rawmode: str, mode: str | None = None) -> np.ndarray:
    """Decode a PNG with Pillow's own decoder, unpacking its rows with ``rawmode``."""
    from PIL import Image

    im: Any
    with Image.open(path) as im:
        codec, extents, offset, args = im.tile[0]
        new_args = rawmode if isinstance(args, str) else (rawmode, *args[1:])
        tile = (codec, extents, offset, new_args)
        im.tile = [type(im.tile[0])(*tile) if hasattr(im.tile[0], "_fields") else tile]
        if mode is not None:
            im._mode = mode  # Pillow >= 10.1 keeps the mode here
            if im.mode != mode:
                im.mode = mode  # older Pillow
            if im.mode != mode:
                raise OSError(f"this Pillow cannot re-decode a PNG as mode {mode!r}")
        im.load()
        return np.asarray(im).copy()


def _read_png16(path: Path, rawmode: str, name: str) -> np.ndarray:
    """Read a 16-bit RGB, RGBA or grey+alpha PNG at full precision as uint16.

    Pillow has no 16-bit colour mode: it unfilters the rows correctly but
    keeps only the high byte of each sample. Unpacking the same rows a second
    time as little-endian recovers the low bytes, and the two halves give the
    exact 16-bit values. Grey+alpha is unpacked as one 32-bit integer per
    pixel (grey in the high half). Alpha is dropped (with a warning when it
    is 0 everywhere).
    """
    if rawmode == "LA;16B":
        packed = _decode_with_rawmode(path, "I;32B", mode="I").astype(np.int64) & 0xFFFFFFFF
        if packed.size and int((packed & 0xFFFF).max()) == 0:
            _warn_transparent(name)
        return (packed >> 16).astype(np.uint16)
    low_mode, channels = _PNG16_RAWMODES[rawmode]
    high = _decode_with_rawmode(path, rawmode).astype(np.uint16)
    low = _decode_with_rawmode(path, low_mode).astype(np.uint16)
    pixels = (high << 8) | low
    if channels == 4:
        if pixels.size and int(pixels[:, :, 3].max()) == 0:
            _warn_transparent(name)
        return pixels[:, :, :3]
    return pixels
