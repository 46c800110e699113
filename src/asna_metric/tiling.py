"""Tiled evaluation of fully convolutional quality networks on images of any size.

:class:`asna_metric.ASNA` pads both images by reflection to a multiple of the
networks' ``size_multiple`` (:func:`reflect_pad`), cuts the padded pair into
overlapping tiles (:func:`tile_grid`, one grid per axis), runs the network on
each tile, keeps the *core* of each tile's map (the part at least
``receptive_margin`` pixels away from a cut) and puts the cores back together
(:func:`run_tiled`, :func:`stitch`). :func:`valid_counts` says how many
unpadded pixels each map location covers, so that padding never enters the
pooled score, and :func:`upsample` brings maps back to input resolution.

All functions are pure and work on tensors only; none of them knows about
weights, views or calibration.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "Span",
    "TileFn",
    "reflect_pad",
    "run_tiled",
    "stitch",
    "tile_grid",
    "upsample",
    "valid_counts",
]

Span = tuple[int, int, int, int]
"""One tile along one axis: ``(tile_start, tile_end, core_start, core_end)`` in pixels."""

TileFn = Callable[[Tensor, Tensor], tuple[Sequence[Tensor], Sequence[Tensor]]]
"""Maps of one tile pair: ``(qualities, weights)``, one ``(N, 1, h, w)`` map per view."""


def reflect_pad(x: Tensor, height: int, width: int) -> Tensor:
    """Pad the bottom and right of ``x`` by reflection up to ``height x width``.

    Padding wider than the image minus one pixel is done in several
    reflections (a reflection can reach only ``size - 1`` pixels).

    Args:
        x: Images ``(..., H, W)`` with ``H <= height`` and ``W <= width``.
        height: Padded height.
        width: Padded width.

    Returns:
        The padded images ``(..., height, width)``; ``x`` itself when no
        padding is needed.
    """
    while x.shape[-2] < height or x.shape[-1] < width:
        pad_h = min(height - x.shape[-2], x.shape[-2] - 1)
        pad_w = min(width - x.shape[-1], x.shape[-1] - 1)
        x = F.pad(x, (0, pad_w, 0, pad_h), mode="reflect")
    return x


def tile_grid(length: int, tile: int, margin: int, multiple: int = 16) -> list[Span]:
    """Tiles along one axis: ``(tile_start, tile_end, core_start, core_end)``.

    The cores partition ``[0, length)``; every tile reaches at least
    ``margin`` beyond its core except at the image border. The fewest tiles
    of at most ``tile`` pixels are used, all of one size, the smallest
    multiple of ``multiple`` that covers the axis with that many tiles (so a
    1024 px axis takes three 448 px tiles rather than three of 512 px): less
    computed overlap for the same bound on memory. All positions stay
    multiples of ``multiple`` when ``length`` and ``margin`` are.

    Args:
        length: Length of the (padded) axis in pixels.
        tile: Largest tile length; at least ``2 * margin + multiple``.
        margin: Context kept on each side of a core (the networks'
            receptive margin, rounded up to ``multiple``).
        multiple: Size multiple of the networks.

    Returns:
        The tiles in order; one tile ``(0, length, 0, length)`` when the axis
        fits in one.

    Example:
        >>> tile_grid(1024, 512, 80)
        [(0, 448, 0, 368), (288, 736, 368, 656), (576, 1024, 656, 1024)]
    """
    if length <= tile:
        return [(0, length, 0, length)]
    # k tiles of size s cover k * s - 2 * (k - 1) * margin pixels of cores.
    interior = tile - 2 * margin
    count = 2 + max(0, -(-(length - 2 * (tile - margin)) // interior))
    size = -(-(length + 2 * (count - 1) * margin) // (count * multiple)) * multiple
    size = min(max(size, 2 * margin + multiple), tile)
    out = [(0, size, 0, size - margin)]
    for _ in range(count - 2):
        core_start = out[-1][3]
        out.append(
            (
                core_start - margin,
                core_start - margin + size,
                core_start,
                core_start + size - 2 * margin,
            )
        )
    out.append((length - size, length, out[-1][3], length))
    return out


def stitch(pieces: Sequence[Sequence[Tensor]]) -> Tensor:
    """Concatenate a grid of map pieces (rows of columns) into one map.

    Args:
        pieces: ``pieces[row][col]``, maps ``(..., h, w)`` whose heights agree
            along a row and widths along a column.

    Returns:
        The assembled map.
    """
    return torch.cat([torch.cat(list(row), dim=-1) for row in pieces], dim=-2)


def run_tiled(
    fn: TileFn,
    dist: Tensor,
    ref: Tensor,
    rows: Sequence[Span],
    cols: Sequence[Span],
    stride: int,
) -> tuple[list[Tensor], list[Tensor]]:
    """Run ``fn`` on every tile of a padded pair and stitch each view's cores.

    Args:
        fn: Maps of one tile pair (one quality and one weight map per view,
            at ``1 / stride`` of the tile's resolution).
        dist: Padded distorted images ``(N, 3, H, W)``.
        ref: Padded reference images, same shape.
        rows: Tiles along the height (:func:`tile_grid`).
        cols: Tiles along the width.
        stride: Input pixels per map location; tile and core positions must
            be multiples of it.

    Returns:
        ``(qualities, weights)``: per view, the ``(N, 1, H / stride, W / stride)``
        map of the whole image.
    """
    q_rows: list[list[list[Tensor]]] = []  # [row][col][view]
    w_rows: list[list[list[Tensor]]] = []
    for r0, r1, c_r0, c_r1 in rows:
        q_cols: list[list[Tensor]] = []
        w_cols: list[list[Tensor]] = []
        for c0, c1, c_c0, c_c1 in cols:
            q_views, w_views = fn(dist[..., r0:r1, c0:c1], ref[..., r0:r1, c0:c1])
            crop = (
                slice(None),
                slice(None),
                slice((c_r0 - r0) // stride, (c_r1 - r0) // stride),
                slice((c_c0 - c0) // stride, (c_c1 - c0) // stride),
            )
            q_cols.append([q[crop] for q in q_views])
            w_cols.append([w[crop] for w in w_views])
        q_rows.append(q_cols)
        w_rows.append(w_cols)
    num_views = len(q_rows[0][0])
    qualities = [stitch([[col[v] for col in row] for row in q_rows]) for v in range(num_views)]
    weights = [stitch([[col[v] for col in row] for row in w_rows]) for v in range(num_views)]
    return qualities, weights


def upsample(x: Tensor, factor: int) -> Tensor:
    """Nearest-neighbour upsampling by an integer factor (exact repetition).

    Args:
        x: Maps ``(..., h, w)``.
        factor: Repetitions along each spatial axis.

    Returns:
        Maps ``(..., h * factor, w * factor)``.
    """
    return x.repeat_interleave(factor, dim=-2).repeat_interleave(factor, dim=-1)


def valid_counts(
    height: int, width: int, padded_h: int, padded_w: int, stride: int, device: torch.device
) -> Tensor:
    """Number of unpadded input pixels covered by each map location.

    Args:
        height: Height of the image before padding.
        width: Width before padding.
        padded_h: Padded height (a multiple of ``stride``).
        padded_w: Padded width.
        stride: Input pixels per map location along each axis.
        device: Device of the result.

    Returns:
        Float32 counts ``(1, 1, 1, padded_h / stride, padded_w / stride)``
        (``stride ** 2`` inside the image, fewer at its bottom and right
        border, 0 over pure padding).
    """
    rows = (height - torch.arange(0, padded_h, stride, device=device)).clamp(0, stride)
    cols = (width - torch.arange(0, padded_w, stride, device=device)).clamp(0, stride)
    return (rows[:, None] * cols[None, :]).float().view(1, 1, 1, *rows.shape, *cols.shape)
