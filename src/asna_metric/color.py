"""Differentiable colour-space conversions on ``(..., 3, H, W)`` tensors.

All functions take and return float tensors with the colour channels in
dimension ``-3``; RGB is sRGB-encoded in [0, 1] (D65 white). Conversions are
exact inverses of each other up to float rounding inside the gamut.

References:
    IEC 61966-2-1 (sRGB transfer function); CIE 1976 L*a*b*; ITU-R BT.601
    (YCbCr, full range as in JPEG/JFIF).
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = [
    "hsv_to_rgb",
    "lab_to_rgb",
    "linear_to_srgb",
    "rgb_to_hsv",
    "rgb_to_lab",
    "rgb_to_ycbcr",
    "srgb_to_linear",
    "ycbcr_to_rgb",
]

_RGB_TO_XYZ = (
    (0.412453, 0.357580, 0.180423),
    (0.212671, 0.715160, 0.072169),
    (0.019334, 0.119193, 0.950227),
)
_WHITE_D65 = (0.950456, 1.0, 1.088754)
_EPS = 6.0 / 29.0


def _mix(x: Tensor, matrix: Tensor) -> Tensor:
    """Apply a 3x3 matrix to the channel dimension (-3) of ``x``."""
    return torch.einsum("ij,...jhw->...ihw", matrix.to(dtype=x.dtype, device=x.device), x)


def srgb_to_linear(x: Tensor) -> Tensor:
    """Undo the sRGB transfer curve.

    Args:
        x: sRGB values in [0, 1].

    Returns:
        Linear-light values, same shape.
    """
    return torch.where(x <= 0.04045, x / 12.92, ((x.clamp(min=0.04045) + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(x: Tensor) -> Tensor:
    """Apply the sRGB transfer curve.

    Args:
        x: Linear-light values in [0, 1].

    Returns:
        sRGB values, same shape.
    """
    return torch.where(
        x <= 0.0031308, 12.92 * x, 1.055 * x.clamp(min=0.0031308) ** (1.0 / 2.4) - 0.055
    )


def rgb_to_lab(rgb: Tensor) -> Tensor:
    """Convert sRGB in [0, 1] to CIE L*a*b* (L in [0, 100]).

    Args:
        rgb: Tensor of shape ``(..., 3, H, W)``.

    Returns:
        L*a*b* tensor of the same shape.
    """
    xyz = _mix(srgb_to_linear(rgb), torch.tensor(_RGB_TO_XYZ, dtype=torch.float64))
    white = torch.tensor(_WHITE_D65, dtype=rgb.dtype, device=rgb.device).view(3, 1, 1)
    t = xyz / white
    f = torch.where(
        t > _EPS**3, t.clamp(min=_EPS**3) ** (1.0 / 3.0), t / (3 * _EPS**2) + 4.0 / 29.0
    )
    fx, fy, fz = f.unbind(dim=-3)
    lightness = 116.0 * fy - 16.0
    a = 500.0 * (fx - fy)
    b = 200.0 * (fy - fz)
    return torch.stack((lightness, a, b), dim=-3)


def lab_to_rgb(lab: Tensor, *, clip: bool = True) -> Tensor:
    """Convert CIE L*a*b* to sRGB.

    Args:
        lab: Tensor of shape ``(..., 3, H, W)``, L in [0, 100].
        clip: Clip the result to [0, 1] (out-of-gamut colours are clipped).

    Returns:
        sRGB tensor of the same shape.
    """
    lightness, a, b = lab.unbind(dim=-3)
    fy = (lightness + 16.0) / 116.0
    fx = fy + a / 500.0
    fz = fy - b / 200.0
    f = torch.stack((fx, fy, fz), dim=-3)
    t = torch.where(f > _EPS, f**3, 3 * _EPS**2 * (f - 4.0 / 29.0))
    white = torch.tensor(_WHITE_D65, dtype=lab.dtype, device=lab.device).view(3, 1, 1)
    xyz = t * white
    inverse = torch.linalg.inv(torch.tensor(_RGB_TO_XYZ, dtype=torch.float64))
    linear = _mix(xyz, inverse)
    if clip:
        linear = linear.clamp(0.0, 1.0)
    rgb = linear_to_srgb(linear.clamp(min=0.0))
    return rgb.clamp(0.0, 1.0) if clip else rgb


_RGB_TO_YCBCR = (
    (0.299, 0.587, 0.114),
    (-0.168736, -0.331264, 0.5),
    (0.5, -0.418688, -0.081312),
)


def rgb_to_ycbcr(rgb: Tensor) -> Tensor:
    """Convert RGB in [0, 1] to full-range YCbCr (BT.601, Cb/Cr centred on 0.5).

    Args:
        rgb: Tensor of shape ``(..., 3, H, W)``.

    Returns:
        YCbCr tensor with Y, Cb, Cr in [0, 1].
    """
    out = _mix(rgb, torch.tensor(_RGB_TO_YCBCR, dtype=torch.float64))
    offset = torch.tensor((0.0, 0.5, 0.5), dtype=rgb.dtype, device=rgb.device).view(3, 1, 1)
    return out + offset


def ycbcr_to_rgb(ycbcr: Tensor) -> Tensor:
    """Invert :func:`rgb_to_ycbcr` (no clipping).

    Args:
        ycbcr: Tensor of shape ``(..., 3, H, W)``.

    Returns:
        RGB tensor of the same shape.
    """
    offset = torch.tensor((0.0, 0.5, 0.5), dtype=ycbcr.dtype, device=ycbcr.device).view(3, 1, 1)
    inverse = torch.linalg.inv(torch.tensor(_RGB_TO_YCBCR, dtype=torch.float64))
    return _mix(ycbcr - offset, inverse)


def rgb_to_hsv(rgb: Tensor, eps: float = 1e-8) -> Tensor:
    """Convert RGB in [0, 1] to HSV with hue in [0, 1).

    Args:
        rgb: Tensor of shape ``(..., 3, H, W)``.
        eps: Guard against division by zero for grey pixels.

    Returns:
        HSV tensor of the same shape.
    """
    r, g, b = rgb.unbind(dim=-3)
    maxc, argmax = rgb.max(dim=-3)
    minc = rgb.min(dim=-3).values
    delta = maxc - minc
    safe = delta + eps
    hue_r = ((g - b) / safe) % 6.0
    hue_g = (b - r) / safe + 2.0
    hue_b = (r - g) / safe + 4.0
    hue = torch.where(argmax == 0, hue_r, torch.where(argmax == 1, hue_g, hue_b)) / 6.0
    hue = torch.where(delta > 0, hue, torch.zeros_like(hue)) % 1.0
    sat = torch.where(maxc > 0, delta / (maxc + eps), torch.zeros_like(maxc))
    return torch.stack((hue, sat, maxc), dim=-3)


def hsv_to_rgb(hsv: Tensor) -> Tensor:
    """Invert :func:`rgb_to_hsv`.

    Args:
        hsv: Tensor of shape ``(..., 3, H, W)``, hue in [0, 1).

    Returns:
        RGB tensor of the same shape.
    """
    h, s, v = hsv.unbind(dim=-3)
    k = torch.stack([(n + h * 6.0) % 6.0 for n in (5.0, 3.0, 1.0)], dim=-3)
    ramp = torch.clamp(torch.minimum(k, 4.0 - k), 0.0, 1.0)
    return v.unsqueeze(-3) - (v * s).unsqueeze(-3) * ramp
