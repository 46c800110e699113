"""Heatmaps of ASNA quality maps: where is the distorted image worse?

:meth:`asna_metric.ASNA.map` gives a quality map at input resolution whose
weighted mean is the score. This module renders it over the distorted image
with a colour map and a colour bar on the score scale (matplotlib, Agg
canvas: no display needed), and holds the small tools used to check that a
map points at the right place: :func:`paste_region` (a reference with one
box replaced by a distorted copy), :func:`worst_pixels` and :func:`mask_iou`.

matplotlib is imported only when a figure is drawn; install it with
``pip install 'asna-metric[eval]'``.

Example:
    >>> import torch
    >>> from asna_metric.nets import build_net
    >>> from asna_metric.metric import ASNA
    >>> net = build_net("siamese_diff", {"encoder_widths": [4, 4, 4, 4],
    ...                                  "decoder_widths": [4, 4, 4, 4]})
    >>> metric = ASNA.from_networks([net], self_ensemble="none")
    >>> ref = torch.rand(1, 3, 64, 96)
    >>> dist = paste_region(ref, ref.flip(-1), (16, 32, 48, 64))
    >>> quality = metric.map(dist, ref)
    >>> fig = render_heatmap(dist, quality, ref=ref)  # doctest: +SKIP
    >>> save_heatmap("heat.png", dist, quality, score=0.83)  # doctest: +SKIP
    >>> worst_pixels(quality, 0.1).shape
    torch.Size([1, 1, 64, 96])
"""

from __future__ import annotations

import os
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch
from torch import Tensor

from asna_metric.errors import InputError
from asna_metric.inputs import to_batch

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "DEFAULT_CMAP",
    "SCORE_LABEL",
    "box_mask",
    "mask_iou",
    "paste_region",
    "render_heatmap",
    "save_heatmap",
    "worst_pixels",
]

#: Colour map of the heatmaps: perceptually uniform, readable in grey and by
#: colour-blind readers; reversed so that the worst places are the bright ones.
DEFAULT_CMAP = "magma_r"

#: Colour bar label: the map is on the score scale. Identical pairs do not reach
#: 1 with the shipped weights (0.79-0.91 measured; see ``ASNA.score_range``).
SCORE_LABEL = "ASNA quality (higher is better)\nidentical pairs score about 0.8-0.9"

#: Font size of the figure title (points).
TITLE_FONTSIZE = 10

#: The image panels are drawn at least this many pixels along their longer side
#: (small images are enlarged with nearest-neighbour sampling).
MIN_PANEL_PX = 400

Box = tuple[int, int, int, int]
ValueRange = tuple[float, float] | Literal["auto"]


def _require_matplotlib() -> Any:
    """Import matplotlib's object-oriented API (no pyplot, no global backend change)."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise ImportError(
            "rendering heatmaps needs matplotlib, which is not installed; install it with "
            "pip install 'asna-metric[eval]'."
        ) from exc
    return Figure, FigureCanvasAgg


def _one_image(x: Any, name: str) -> Tensor:
    """One RGB image as a ``(3, H, W)`` float tensor in ``[0, 1]`` on the CPU."""
    batch = to_batch(x, name=name)
    if batch.shape[0] != 1:
        raise InputError(
            f"{name} must hold one image to render; got a batch of {batch.shape[0]}. "
            f"Render one image at a time ({name}[i])."
        )
    return batch[0].detach().float().cpu()


def _one_map(quality: Any, name: str) -> Tensor:
    """A quality map as an ``(H, W)`` float tensor on the CPU."""
    if isinstance(quality, np.ndarray):
        quality = torch.from_numpy(quality)
    if not isinstance(quality, Tensor):
        raise InputError(
            f"{name} must be a tensor or numpy array (the output of ASNA.map); got "
            f"{type(quality).__name__}."
        )
    q = quality.detach().float().cpu()
    while q.dim() > 2 and q.shape[0] == 1:
        q = q[0]
    if q.dim() != 2:
        raise InputError(
            f"{name} must be one map of shape (H, W), (1, H, W) or (1, 1, H, W); got "
            f"{tuple(quality.shape)}. Render one image at a time ({name}[i])."
        )
    if not torch.isfinite(q).all():
        raise InputError(f"{name} holds NaN or infinite values; expected a finite map.")
    return q


def _check_range(value_range: ValueRange, q: Tensor) -> tuple[float, float]:
    if isinstance(value_range, str):
        if value_range != "auto":
            raise InputError(
                f"value_range must be a (low, high) pair or 'auto'; got {value_range!r}."
            )
        low, high = float(q.min()), float(q.max())
        if high - low < 1e-6:  # a constant map: centre it in a small window
            low, high = low - 0.01, high + 0.01
        return low, high
    try:
        low, high = (float(v) for v in value_range)
    except (TypeError, ValueError) as exc:
        raise InputError(
            f"value_range must be a (low, high) pair of numbers or 'auto'; got {value_range!r}."
        ) from exc
    if not (np.isfinite(low) and np.isfinite(high) and low < high):
        raise InputError(
            f"value_range must satisfy low < high (finite); got ({low}, {high}). "
            "Use (0.0, 1.0), the score scale, or 'auto' for the map's own range."
        )
    return low, high


def render_heatmap(
    dist: Any,
    quality: Any,
    *,
    ref: Any | None = None,
    score: float | None = None,
    title: str | None = None,
    alpha: float = 0.5,
    cmap: str = DEFAULT_CMAP,
    value_range: ValueRange = (0.0, 1.0),
    label: str = SCORE_LABEL,
) -> Figure:
    """Draw a quality map over the distorted image, with a colour bar.

    The map is blended over the distorted image with opacity ``alpha``; the
    colour bar shows the colour map at full opacity on the score scale. With
    ``ref`` the reference and the distorted image are drawn to its left,
    so the three panels read "reference, distorted, where it is worse".

    Args:
        dist: The distorted image: a tensor ``(3, H, W)`` / ``(1, 3, H, W)``
            in ``[0, 1]``, a PIL image, a numpy array or a path.
        quality: Its quality map ``(H, W)``, ``(1, H, W)`` or ``(1, 1, H, W)``
            (tensor or numpy), e.g. ``ASNA.map(dist, ref)``.
        ref: The reference image, to draw beside it (optional).
        score: The pooled score, shown in the title.
        title: Title; by default ``"ASNA score 0.8123"`` when ``score`` is
            given, else none. A given title is followed by the score.
        alpha: Opacity of the map over the image, in ``[0, 1]``.
        cmap: A matplotlib colour map name; the default puts the worst places
            in bright colours.
        value_range: Map values at the two ends of the colour bar: the score
            scale ``(0.0, 1.0)`` by default (colours comparable between
            images), or ``"auto"`` for the map's own minimum and maximum
            (stronger contrast; the colour bar says which values are shown).
        label: Colour bar label.

    Returns:
        A :class:`matplotlib.figure.Figure` on an Agg canvas (no pyplot
        state: it is freed with the last reference to it).

    Raises:
        ImportError: matplotlib is not installed.
        InputError: The images and the map do not match, or an option is invalid.
    """
    figure_cls, canvas_cls = _require_matplotlib()
    from matplotlib import colormaps
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    image = _one_image(dist, "dist")
    q = _one_map(quality, "quality")
    height, width = image.shape[-2:]
    if tuple(q.shape) != (height, width):
        raise InputError(
            f"quality must have the image's size {height}x{width}; got "
            f"{q.shape[0]}x{q.shape[1]}. Pass the map computed for this image (ASNA.map)."
        )
    # With a reference: reference, distorted, overlay; without: the overlay alone.
    panels: list[tuple[str, Tensor]] = []
    if ref is not None:
        reference = _one_image(ref, "ref")
        if reference.shape != image.shape:
            raise InputError(
                f"ref must have dist's shape {tuple(image.shape)}; got {tuple(reference.shape)}."
            )
        panels = [("reference", reference), ("distorted", image)]
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0 <= alpha <= 1:
        raise InputError(f"alpha must be a number in [0, 1]; got {alpha!r}.")
    try:
        colormap = colormaps[cmap]
    except (KeyError, TypeError) as exc:
        raise InputError(
            f"cmap must be a matplotlib colour map name such as 'magma_r' or 'viridis'; "
            f"got {cmap!r}."
        ) from exc
    low, high = _check_range(value_range, q)

    scale = max(1.0, MIN_PANEL_PX / max(height, width))
    dpi = 100
    panel_w, panel_h = width * scale / dpi, height * scale / dpi
    n_axes = len(panels) + 1
    fig = figure_cls(figsize=(n_axes * panel_w + 1.4, panel_h + 0.8), dpi=dpi, layout="constrained")
    canvas_cls(fig)
    axes = fig.subplots(1, n_axes, squeeze=False)[0]
    norm = Normalize(vmin=low, vmax=high)
    for ax, (name, panel) in zip(axes, panels, strict=False):
        ax.imshow(panel.permute(1, 2, 0).numpy(), interpolation="nearest")
        ax.set_title(name, fontsize=9)
    overlay_ax = axes[-1]
    overlay_ax.imshow(image.permute(1, 2, 0).numpy(), interpolation="nearest")
    overlay_ax.imshow(
        q.numpy(), cmap=colormap, norm=norm, alpha=float(alpha), interpolation="nearest"
    )
    if panels:
        overlay_ax.set_title("quality map over the distorted image", fontsize=9)
    for ax in axes:
        ax.set_axis_off()
    bar = fig.colorbar(
        ScalarMappable(norm=norm, cmap=colormap), ax=list(axes), fraction=0.05, pad=0.02
    )
    if value_range == "auto":
        label = f"{label}\n(colours stretched to this map's range)"
    bar.set_label(label, fontsize=8)
    bar.ax.tick_params(labelsize=7)
    heading = title
    if score is not None:
        heading = f"{title}: ASNA {score:.4f}" if title else f"ASNA score {score:.4f}"
    if heading:
        heading = _wrap_to_width(fig, heading, TITLE_FONTSIZE)
        extra_lines = heading.count("\n")
        if extra_lines:  # grow the figure rather than shrink the panels
            width_in, height_in = fig.get_size_inches()
            fig.set_size_inches(width_in, height_in + extra_lines * TITLE_FONTSIZE * 1.3 / 72)
        fig.suptitle(heading, fontsize=TITLE_FONTSIZE)
    return fig


def _wrap_to_width(fig: Figure, text: str, fontsize: float) -> str:
    """Break ``text`` into lines (at spaces) that fit inside the figure's width.

    matplotlib neither wraps nor shrinks a figure title, so a long one is cut
    at both edges of a one-panel figure; the width is measured with the
    figure's own renderer.
    """
    renderer = fig.canvas.get_renderer()  # type: ignore[attr-defined]
    available = fig.bbox.width * 0.96

    def widest(candidate: str) -> float:
        probe = fig.text(0, 0, candidate, fontsize=fontsize)
        try:
            return float(probe.get_window_extent(renderer).width)
        finally:
            probe.remove()

    lines = text
    chars = len(text)
    while chars > 10 and widest(lines) > available:
        chars = int(chars * 0.9)
        lines = "\n".join(textwrap.wrap(text, chars, break_long_words=False))
    return lines


def save_heatmap(
    path: str | os.PathLike[str],
    dist: Any,
    quality: Any,
    *,
    dpi: int = 100,
    **kwargs: Any,
) -> Path:
    """Render :func:`render_heatmap` into an image file (PNG, JPEG, PDF, SVG, ...).

    The file is written deterministically: the matplotlib version is not
    stored in it.

    Args:
        path: Output file; its suffix picks the format. Parent folders are created.
        dist: The distorted image (see :func:`render_heatmap`).
        quality: Its quality map.
        dpi: Resolution of raster formats (100 draws images at their own
            size or larger).
        **kwargs: Keyword arguments of :func:`render_heatmap` (``ref``,
            ``score``, ``title``, ``alpha``, ``cmap``, ``value_range``, ``label``).

    Returns:
        The path written.

    Raises:
        ImportError: matplotlib is not installed.
        InputError: Invalid inputs, options or file format.
    """
    path = Path(path)
    _, canvas_cls = _require_matplotlib()
    formats = canvas_cls.get_supported_filetypes()
    suffix = path.suffix.lower().lstrip(".")
    if suffix not in formats:
        raise InputError(
            f"cannot write a heatmap to '{path}': the suffix must name an image format, one of "
            f"{', '.join(sorted(formats))}. Use a .png file name."
        )
    fig = render_heatmap(dist, quality, **kwargs)
    # No version or date stamps: the same inputs give the same bytes.
    stamps: dict[str, dict[str, Any]] = {
        "png": {"Software": None},
        "pdf": {"Creator": None, "Producer": None, "CreationDate": None},
        "svg": {"Creator": None, "Date": None},
    }
    options: dict[str, Any] = {"dpi": dpi}
    if suffix in stamps:
        options["metadata"] = stamps[suffix]
    path.parent.mkdir(parents=True, exist_ok=True)
    import matplotlib

    with matplotlib.rc_context({"svg.hashsalt": "asna_metric"}):  # fixed SVG element ids
        fig.savefig(path, **options)
    return path


def worst_pixels(quality: Tensor, fraction: float = 0.1) -> Tensor:
    """Mark the lowest-quality pixels of each map.

    Pixels at or below the ``fraction`` quantile of their map are marked,
    so ties at the threshold (the maps repeat each value over an 8x8 block)
    can make the marked share slightly larger than ``fraction``.

    Args:
        quality: Maps ``(N, 1, H, W)`` (or ``(H, W)``).
        fraction: Share of the pixels to mark, in ``(0, 1]``.

    Returns:
        A boolean tensor of ``quality``'s shape.

    Raises:
        InputError: ``fraction`` is outside ``(0, 1]`` or ``quality`` is empty.
    """
    if isinstance(fraction, bool) or not 0 < float(fraction) <= 1:
        raise InputError(f"fraction must be in (0, 1]; got {fraction!r}.")
    if quality.numel() == 0:
        raise InputError("quality is empty; expected a map (N, 1, H, W).")
    flat = quality.detach().reshape(-1, quality.shape[-2] * quality.shape[-1]).float()
    k = max(1, round(float(fraction) * flat.shape[1]))
    threshold = flat.kthvalue(k, dim=1, keepdim=True).values
    return (flat <= threshold).reshape(quality.shape)


def mask_iou(a: Tensor, b: Tensor) -> Tensor:
    """Intersection over union of two boolean masks, per image.

    Args:
        a: Masks ``(N, ...)`` (or one mask without a batch dimension).
        b: Masks of the same shape.

    Returns:
        IoU per image ``(N,)`` (float32); 1 where both masks are empty.

    Raises:
        InputError: The shapes differ.
    """
    if a.shape != b.shape:
        raise InputError(
            f"masks must have the same shape; got {tuple(a.shape)} and {tuple(b.shape)}."
        )
    if a.dim() < 3:
        a, b = a[None], b[None]
    a, b = a.bool().flatten(1), b.bool().flatten(1)
    inter = (a & b).sum(dim=1).float()
    union = (a | b).sum(dim=1).float()
    return torch.where(union > 0, inter / union.clamp(min=1), torch.ones_like(union))


def box_mask(shape: Sequence[int], box: Box) -> Tensor:
    """Boolean mask of one box ``(top, left, height, width)`` over maps of ``shape``.

    Args:
        shape: Shape of the mask to build; its last two entries are ``H, W``.
        box: ``(top, left, height, width)`` in pixels.

    Returns:
        A boolean tensor of ``shape``.

    Raises:
        InputError: The box is empty or leaves the image.
    """
    height, width = int(shape[-2]), int(shape[-1])
    top, left, box_h, box_w = _check_box(box, height, width)
    mask = torch.zeros(tuple(shape), dtype=torch.bool)
    mask[..., top : top + box_h, left : left + box_w] = True
    return mask


def _check_box(box: Box, height: int, width: int) -> Box:
    try:
        top, left, box_h, box_w = (int(v) for v in box)
    except (TypeError, ValueError) as exc:
        raise InputError(f"box must be (top, left, height, width) in pixels; got {box!r}.") from exc
    if (
        box_h < 1
        or box_w < 1
        or top < 0
        or left < 0
        or top + box_h > height
        or left + box_w > width
    ):
        raise InputError(
            f"box (top={top}, left={left}, height={box_h}, width={box_w}) must be non-empty and "
            f"lie inside the {height}x{width} image."
        )
    return top, left, box_h, box_w


def paste_region(ref: Tensor, distorted: Tensor, box: Box) -> Tensor:
    """A reference with one box taken from a distorted copy (a local distortion).

    Distort the whole reference (so that filters see real neighbours), then
    keep the distortion only inside the box: the rest of the result is
    identical to the reference, bit for bit.

    Args:
        ref: Reference images ``(N, 3, H, W)`` or ``(3, H, W)``.
        distorted: A distorted copy of ``ref``, same shape.
        box: ``(top, left, height, width)`` in pixels.

    Returns:
        The locally distorted images, ``ref``'s shape.

    Raises:
        InputError: The shapes differ or the box leaves the image.
    """
    if not isinstance(ref, Tensor) or not isinstance(distorted, Tensor):
        raise InputError(
            f"ref and distorted must be tensors; got {type(ref).__name__} and "
            f"{type(distorted).__name__}. Convert with asna_metric.inputs.to_batch."
        )
    if ref.shape != distorted.shape:
        raise InputError(
            f"distorted must have ref's shape {tuple(ref.shape)}; got {tuple(distorted.shape)}."
        )
    mask = box_mask(ref.shape[-2:], box).to(ref.device)
    return torch.where(mask, distorted.to(ref.dtype), ref)
