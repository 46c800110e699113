"""Views of the test-time self-ensemble (pure functions).

A :class:`View` is an exact rotation/flip of the image plane (one of the 8
elements of the dihedral group) combined with a scaling of the CIE L*
(lightness) channel. The same view is applied to the distorted and the
reference image; spatial outputs are brought back with
:func:`invert_dihedral`. Training augmentation reuses these functions.

The paper's self-ensemble averages 22 views: 4 rotations, 3 flips and L
scales 0.1 to 1.5. Its rotations were off by one pixel and its scaling
wrapped bright values around (a cast to ``uint8`` without clipping); here
rotations and flips are exact permutations of the pixels and the scaled
lightness is clipped to ``[0, 100]``.

Example:
    >>> import torch
    >>> x = torch.rand(1, 3, 32, 48)
    >>> len(views("flips")), len(views("full"))
    (8, 20)
    >>> all(torch.equal(invert_dihedral(apply_dihedral(x, k), k), x) for k in range(8))
    True

References:
    Ayyoubzadeh, Royat: "(ASNA) An Attention-based Siamese-Difference Neural
    Network with Surrogate Ranking Loss function for Perceptual Image Quality
    Assessment", CVPR Workshops (NTIRE) 2021.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from asna_metric.color import lab_to_rgb, rgb_to_lab
from asna_metric.errors import InputError

__all__ = [
    "L_SCALES",
    "SELF_ENSEMBLE_MODES",
    "SelfEnsembleMode",
    "View",
    "apply_dihedral",
    "apply_view",
    "apply_views",
    "invert_dihedral",
    "lab_to_rgb",
    "rgb_to_lab",
    "scale_lightness",
    "views",
]

# The mode names live in the torch-free _options (the command line imports them).
from asna_metric._options import SELF_ENSEMBLE_MODES, SelfEnsembleMode

#: Lightness scales of the ``"full"`` self-ensemble: 0.3 to 1.5 in steps of
#: 0.1, without 1.0 (the dihedral views already cover it).
L_SCALES: tuple[float, ...] = tuple(round(0.1 * i, 1) for i in range(3, 16) if i != 10)


@dataclass(frozen=True)
class View:
    """One view of the self-ensemble.

    Attributes:
        dihedral: Element of the dihedral group, ``0..7``: ``k % 4``
            counter-clockwise quarter turns, preceded by a left-right flip
            when ``k >= 4`` (see :func:`apply_dihedral`).
        l_scale: Factor applied to the CIE L* channel (1.0 leaves the colours
            untouched).
    """

    dihedral: int = 0
    l_scale: float = 1.0

    def __post_init__(self) -> None:
        if not isinstance(self.dihedral, int) or not 0 <= self.dihedral < 8:
            raise InputError(
                f"View.dihedral must be an integer in 0..7; got {self.dihedral!r}. "
                "Use k % 4 quarter turns plus 4 for a preceding left-right flip."
            )
        if not self.l_scale > 0:
            raise InputError(f"View.l_scale must be a positive number; got {self.l_scale!r}.")


def views(mode: SelfEnsembleMode) -> tuple[View, ...]:
    """The views of a self-ensemble mode.

    Args:
        mode: ``"none"`` (1 view: the identity), ``"flips"`` (8 views: every
            rotation by quarter turns, with and without a flip) or ``"full"``
            (20 views: the 8 dihedral views plus the 12 lightness scales of
            :data:`L_SCALES` on the identity orientation).

    Returns:
        The views, identity first.

    Raises:
        InputError: ``mode`` is not one of the three modes.
    """
    if mode == "none":
        return (View(),)
    if mode == "flips":
        return tuple(View(k) for k in range(8))
    if mode == "full":
        return tuple(View(k) for k in range(8)) + tuple(View(0, s) for s in L_SCALES)
    raise InputError(
        f"self_ensemble must be one of {list(SELF_ENSEMBLE_MODES)}; got {mode!r}. "
        "'none' (the default) is fastest, 'flips' averages 8 views, 'full' adds 12 "
        "lightness scales."
    )


def _check_dihedral(k: int) -> None:
    if not isinstance(k, int) or not 0 <= k < 8:
        raise InputError(f"dihedral index must be an integer in 0..7; got {k!r}.")


def apply_dihedral(x: Tensor, k: int) -> Tensor:
    """Rotate and/or flip the last two dimensions exactly.

    Args:
        x: Tensor ``(..., H, W)``.
        k: Dihedral element ``0..7``: flip left-right first when ``k >= 4``,
            then rotate by ``k % 4`` counter-clockwise quarter turns.

    Returns:
        The transformed tensor, ``(..., H, W)`` or ``(..., W, H)`` for odd ``k``.

    Raises:
        InputError: ``k`` is not in ``0..7``.
    """
    _check_dihedral(k)
    if k >= 4:
        x = x.flip(-1)
    return torch.rot90(x, k % 4, dims=(-2, -1)) if k % 4 else x


def invert_dihedral(x: Tensor, k: int) -> Tensor:
    """Undo :func:`apply_dihedral` (``invert_dihedral(apply_dihedral(x, k), k) == x``).

    Use it to bring a map computed on a transformed image back onto the
    original image plane.

    Args:
        x: Tensor ``(..., H, W)``.
        k: The dihedral element that was applied.

    Returns:
        The tensor in the original orientation.

    Raises:
        InputError: ``k`` is not in ``0..7``.
    """
    _check_dihedral(k)
    if k % 4:
        x = torch.rot90(x, -(k % 4), dims=(-2, -1))
    return x.flip(-1) if k >= 4 else x


def _lab_precision(x: Tensor) -> Tensor:
    """Cast half-precision tensors to float32 for the colour conversion."""
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


def _scale_lab(lab: Tensor, factor: float, dtype: torch.dtype) -> Tensor:
    """Scale the L* channel of a Lab tensor, clip it to [0, 100] and return RGB."""
    lightness = (lab[..., :1, :, :] * factor).clamp(0.0, 100.0)
    scaled = torch.cat((lightness, lab[..., 1:, :, :]), dim=-3)
    return lab_to_rgb(scaled, clip=True).to(dtype)


def scale_lightness(x: Tensor, factor: float) -> Tensor:
    """Scale the CIE L* channel of RGB images.

    The images go to CIE L*a*b* (D65), L* is multiplied by ``factor`` and
    clipped to ``[0, 100]`` and the result goes back to sRGB clipped to
    ``[0, 1]``. Differentiable. Half-precision inputs are converted in float32
    and returned in their own dtype. (The paper's code wrapped values above
    255 around instead of clipping them.)

    Args:
        x: RGB images ``(..., 3, H, W)`` in ``[0, 1]``.
        factor: Positive lightness factor; 1 returns ``x`` up to the
            round-trip error of the conversion.

    Returns:
        RGB images of the same shape and dtype, in ``[0, 1]``.

    Raises:
        InputError: ``factor`` is not positive or ``x`` has no channel
            dimension of size 3.
    """
    if not factor > 0:
        raise InputError(f"factor must be positive; got {factor!r}.")
    if x.dim() < 3 or x.shape[-3] != 3:
        raise InputError(
            f"scale_lightness expects RGB images (..., 3, H, W); got shape {tuple(x.shape)}."
        )
    return _scale_lab(rgb_to_lab(_lab_precision(x)), factor, x.dtype)


def apply_view(x: Tensor, view: View) -> Tensor:
    """Apply one view (lightness scale, then rotation/flip) to RGB images.

    Args:
        x: RGB images ``(..., 3, H, W)`` in ``[0, 1]``.
        view: The view.

    Returns:
        The transformed images.
    """
    if view.l_scale != 1.0:
        x = scale_lightness(x, view.l_scale)
    return apply_dihedral(x, view.dihedral)


def apply_views(x: Tensor, views: Sequence[View]) -> list[Tensor]:
    """Apply several views to the same images, converting to Lab at most once.

    Args:
        x: RGB images ``(..., 3, H, W)`` in ``[0, 1]``.
        views: The views.

    Returns:
        One tensor per view, equal to ``apply_view(x, view)``.
    """
    lab: Tensor | None = None
    out = []
    for view in views:
        y = x
        if view.l_scale != 1.0:
            if lab is None:
                lab = rgb_to_lab(_lab_precision(x))
            y = _scale_lab(lab, view.l_scale, x.dtype)
        out.append(apply_dihedral(y, view.dihedral))
    return out
