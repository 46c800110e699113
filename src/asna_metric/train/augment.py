"""Training augmentation for image pairs: crop, dihedral and Lab lightness.

Every transform is drawn once and applied identically to the distorted and
the reference image, so the pair stays aligned and its label stays valid
(the paper's assumption: a rotation, flip or uniform lightness change of
*both* images does not change how much the distortion hurts).

Differences from the official code, on purpose: rotations are exact
``rot90``/flips (the official ones shift by a pixel), and lightness scaling
clips to [0, 1] (the official code wrapped values above 1 through a uint8
cast, turning bright regions dark).

References:
    Ayyoubzadeh and Royat, "(ASNA) An Attention-based Siamese-Difference
    Neural Network with Surrogate Ranking Loss function for Perceptual Image
    Quality Assessment", CVPR Workshops (NTIRE) 2021.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from asna_metric.errors import InputError

__all__ = ["AugmentParams", "PairAugment", "apply_params", "crop_pair", "random_crop_box"]


@dataclass(frozen=True)
class AugmentParams:
    """One drawn augmentation, shared by both images of a pair.

    Attributes:
        dihedral: Symmetry of the square, 0..7, as in
            :func:`asna_metric.ensemble.apply_dihedral` (a left-right flip
            when ``k >= 4``, then ``k % 4`` quarter turns).
        l_scale: Factor applied to the Lab lightness (1.0 leaves it).
    """

    dihedral: int = 0
    l_scale: float = 1.0


def _check_pair(dist: Tensor, ref: Tensor) -> None:
    if not isinstance(dist, Tensor) or not isinstance(ref, Tensor):
        raise InputError(
            f"dist and ref must be torch tensors; got {type(dist).__name__} and "
            f"{type(ref).__name__}. Convert with asna_metric.inputs.to_batch first."
        )
    if dist.shape != ref.shape or dist.dim() not in (3, 4) or dist.shape[-3] != 3:
        raise InputError(
            "dist and ref must have the same shape (3, H, W) or (N, 3, H, W); got "
            f"{tuple(dist.shape)} and {tuple(ref.shape)}. Crop or resize one of them first."
        )


def random_crop_box(
    height: int, width: int, size: int, generator: torch.Generator
) -> tuple[int, int]:
    """Draw the top-left corner of a ``size`` x ``size`` crop.

    Args:
        height: Image height.
        width: Image width.
        size: Crop side.
        generator: Source of randomness.

    Returns:
        ``(top, left)``.

    Raises:
        InputError: If the image is smaller than the crop.
    """
    if height < size or width < size:
        raise InputError(
            f"a {size}x{size} crop needs an image at least that large; got {height}x{width}. "
            "Lower data.crop_size or drop the small images."
        )
    top = int(torch.randint(0, height - size + 1, (1,), generator=generator))
    left = int(torch.randint(0, width - size + 1, (1,), generator=generator))
    return top, left


def crop_pair(dist: Tensor, ref: Tensor, top: int, left: int, size: int) -> tuple[Tensor, Tensor]:
    """Cut the same square from both images.

    Args:
        dist: Distorted image, ``(..., C, H, W)``.
        ref: Reference image, same shape.
        top: Top row of the crop.
        left: Left column of the crop.
        size: Crop side.

    Returns:
        The two crops (views, not copies).
    """
    return (
        dist[..., top : top + size, left : left + size],
        ref[..., top : top + size, left : left + size],
    )


def apply_params(dist: Tensor, ref: Tensor, params: AugmentParams) -> tuple[Tensor, Tensor]:
    """Apply one drawn augmentation to both images of a pair.

    Args:
        dist: Distorted image(s), float in [0, 1], ``(3, H, W)`` or
            ``(N, 3, H, W)``.
        ref: Reference image(s), same shape.
        params: The transform to apply.

    Returns:
        ``(dist, ref)`` transformed, still in [0, 1].

    Raises:
        InputError: If the shapes differ or are not RGB images.
    """
    from asna_metric.ensemble import apply_dihedral, scale_lightness

    _check_pair(dist, ref)
    if params.dihedral:
        dist = apply_dihedral(dist, params.dihedral)
        ref = apply_dihedral(ref, params.dihedral)
    if params.l_scale != 1.0:
        dist = scale_lightness(dist, params.l_scale).clamp(0.0, 1.0)
        ref = scale_lightness(ref, params.l_scale).clamp(0.0, 1.0)
    return dist, ref


class PairAugment:
    """Random dihedral symmetry and Lab lightness scaling for image pairs.

    The draw uses only the generator it is given, so a sample's augmentation
    is a function of its seed (the trainer derives one per (seed, epoch,
    position): resumed runs and any number of DataLoader workers draw the
    same transforms).

    Args:
        dihedral: Draw one of the 8 symmetries of the square uniformly.
        l_scale_prob: Probability of scaling the lightness.
        l_scale_min: Smallest lightness factor (uniform draw).
        l_scale_max: Largest lightness factor.

    Raises:
        InputError: If the probability or the range is invalid.

    Example:
        >>> import torch
        >>> aug = PairAugment(l_scale_prob=1.0)
        >>> g = torch.Generator().manual_seed(0)
        >>> d, r = aug(torch.rand(3, 32, 32), torch.rand(3, 32, 32), g)
        >>> d.shape, bool(d.min() >= 0 and d.max() <= 1)
        (torch.Size([3, 32, 32]), True)
    """

    def __init__(
        self,
        *,
        dihedral: bool = True,
        l_scale_prob: float = 0.5,
        l_scale_min: float = 0.3,
        l_scale_max: float = 1.5,
    ) -> None:
        if not 0.0 <= l_scale_prob <= 1.0:
            raise InputError(
                f"l_scale_prob must be a probability in [0, 1]; got {l_scale_prob}. "
                "Use 0 to disable lightness scaling."
            )
        if not 0.0 < l_scale_min <= l_scale_max:
            raise InputError(
                f"the lightness range must satisfy 0 < min <= max; got [{l_scale_min}, "
                f"{l_scale_max}]. The paper uses [0.3, 1.5]."
            )
        self.dihedral = bool(dihedral)
        self.l_scale_prob = float(l_scale_prob)
        self.l_scale_min = float(l_scale_min)
        self.l_scale_max = float(l_scale_max)

    def sample(self, generator: torch.Generator) -> AugmentParams:
        """Draw one transform.

        The number of draws from ``generator`` is fixed (three), whatever
        the options, so turning one transform off does not change the others.

        Args:
            generator: Source of randomness.

        Returns:
            The drawn parameters.
        """
        u = torch.rand(3, generator=generator, dtype=torch.float64).tolist()
        k = min(int(u[0] * 8), 7) if self.dihedral else 0
        scale = 1.0
        if u[1] < self.l_scale_prob:
            scale = self.l_scale_min + (self.l_scale_max - self.l_scale_min) * u[2]
        return AugmentParams(dihedral=k, l_scale=scale)

    def __call__(
        self, dist: Tensor, ref: Tensor, generator: torch.Generator
    ) -> tuple[Tensor, Tensor]:
        """Draw a transform and apply it to both images.

        Args:
            dist: Distorted image(s), float in [0, 1].
            ref: Reference image(s), same shape.
            generator: Source of randomness.

        Returns:
            ``(dist, ref)`` transformed identically.
        """
        return apply_params(dist, ref, self.sample(generator))

    def __repr__(self) -> str:
        return (
            f"PairAugment(dihedral={self.dihedral}, l_scale_prob={self.l_scale_prob}, "
            f"l_scale_min={self.l_scale_min}, l_scale_max={self.l_scale_max})"
        )
