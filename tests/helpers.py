"""Plain helpers shared by several test modules (``import helpers``: tests/ is on pythonpath)."""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from asna_metric import weights as W
from asna_metric.nets import build_net

#: Environment variable naming the shared data folder (labels/, refs/).
SHARED_DATA_ENV = "ASNA_SHARED_DATA"

#: Where the shared data is looked for when the variable is not set: beside the repository.
DEFAULT_SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def find_shared_data(environ: Mapping[str, str] = os.environ) -> tuple[Path, str | None]:
    """Locate the shared data folder: ``(resolved path, reason it is unusable or None)``.

    The reason says where the data was looked for (the resolved path, and
    whether it came from the environment variable or the default) and what
    to set, so that a skipped test tells a new contributor how to run it.
    """
    given = environ.get(SHARED_DATA_ENV)
    root = Path(given).expanduser().resolve() if given else DEFAULT_SHARED_DATA
    if (root / "labels").is_dir():
        return root, None
    source = (
        f"from {SHARED_DATA_ENV}={given!r}"
        if given
        else f"the default, ../shared/data beside the repository; {SHARED_DATA_ENV} is not set"
    )
    return root, (
        f"shared data not found: looked for {root / 'labels'} ({source}). To run this test, "
        f"set {SHARED_DATA_ENV} to the folder that holds labels/ and refs/ (the project's "
        f"shared/data), e.g. {SHARED_DATA_ENV}=/path/to/shared/data pytest ..."
    )


# A tiny ASNA network: a weights file of it saves and loads in milliseconds.
TINY = {
    "encoder_widths": [2, 2, 4, 4],
    "decoder_widths": [4, 4, 4, 4],
    "head_widths": [4, 4],
    "attention_width": 2,
    "residual_blocks": 1,
    "head_hidden": 4,
}


def save_tiny_weights(
    path: Path, *, seed: int, name: str, config: Mapping[str, Any] = TINY
) -> Path:
    """Save one randomly initialised ASNA network (seeded by ``seed``) to ``path``."""
    torch.manual_seed(seed)
    return W.save_ensemble(path, [build_net("asna", config)], name=name)


def direct_score(weights: Path, dist: Path, ref: Path) -> float:
    """Score of one pair with the Python API, no self-ensemble (what the CLI must print)."""
    from asna_metric.metric import ASNA

    with torch.no_grad():
        return float(ASNA(weights, self_ensemble="none")(dist, ref)[0])


def write_png16(path: Path, pixels: np.ndarray) -> None:
    """Write a 16-bit PNG (grey, grey+alpha, RGB or RGBA) with a minimal encoder.

    Pillow cannot write 16-bit colour PNGs; ``pixels`` is ``HxW`` or ``HxWxC``
    (C = 1..4) ``uint16``.
    """
    if pixels.ndim == 2:
        pixels = pixels[:, :, None]
    height, width, channels = pixels.shape
    color_type = {1: 0, 2: 4, 3: 2, 4: 6}[channels]
    rows = b"".join(b"\x00" + pixels[y].astype(">u2").tobytes() for y in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 16, color_type, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def assert_receptive_margin(
    net: torch.nn.Module, dist: torch.Tensor, ref: torch.Tensor, pixel: int
) -> None:
    """Flip one pixel of ``dist`` (batch of one): no map cell beyond the margin may change.

    The distance of a 1/8-resolution map cell to ``(pixel, pixel)`` is the
    Chebyshev distance from the pixel to the cell's 8x8 block; something
    must change (the pixel is seen), nothing farther than
    ``net.receptive_margin``.
    """
    changed = dist.clone()
    changed[..., pixel, pixel] = 1 - changed[..., pixel, pixel]
    with torch.no_grad():
        q0, w0 = net.forward_maps(dist, ref)
        q1, w1 = net.forward_maps(changed, ref)
    delta = ((q1 - q0).abs() + (w1 - w0).abs())[0, 0]
    cells = torch.arange(delta.shape[0]) * 8
    gap = (cells - pixel).clamp(min=0) + (pixel - cells - 7).clamp(min=0)
    distance = torch.maximum(gap[:, None], gap[None, :])
    assert delta.max() > 0
    assert delta[distance > net.receptive_margin].abs().max() == 0
