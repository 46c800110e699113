"""Classical full-reference baselines: PSNR, SSIM and MS-SSIM.

Every function takes ``(dist, ref)`` as ``(N, 3, H, W)`` float RGB in
``[0, 1]`` and returns ``(N,)``, higher is better, like
:class:`asna_metric.ASNA`.

Conventions (state them when you report numbers):

* Colour: by default all three compute on luma ``Y`` (ITU-R BT.601, full
  range, as :func:`asna_metric.color.rgb_to_ycbcr`), the usual practice of
  IQA papers for SSIM; ``channels="rgb"`` computes on the RGB channels
  (PSNR: MSE over all channels; SSIM/MS-SSIM: mean of the per-channel
  values). ``data_range`` is 1; no rescaling to 0..255, no rounding, no
  downsampling before SSIM.
* PSNR: ``10 log10(1 / MSE)`` per image, capped at 100 dB (MSE floored at
  ``1e-10``), so identical images give 100 dB rather than ``inf`` and every
  statistic stays finite.
* SSIM and MS-SSIM come from the ``pytorch-msssim`` package (v1.0, MIT, no
  torchvision): 11x11 Gaussian window, sigma 1.5, ``K = (0.01, 0.03)``,
  valid (unpadded) filtering. MS-SSIM uses its five scales with the
  standard weights and so needs a shorter side of at least 161 pixels;
  smaller images raise :class:`~asna_metric.errors.InputError` (use SSIM,
  or upsample). SSIM needs at least 11x11.

``METRICS`` maps names to :class:`MetricSpec`; ``"asna"`` builds
:class:`asna_metric.ASNA` lazily, with the weights the caller names.

Example:
    >>> import torch
    >>> from asna_metric.data.baselines import psnr
    >>> ref = torch.rand(1, 3, 32, 32)
    >>> psnr(ref.clamp(0.1, 0.9), ref).shape
    torch.Size([1])
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import Tensor

from asna_metric.errors import InputError

__all__ = [
    "METRICS",
    "MetricSpec",
    "build_metric",
    "ms_ssim",
    "psnr",
    "ssim",
]

Channels = Literal["y", "rgb"]

_PSNR_CAP_DB = 100.0
_SSIM_WINDOW = 11
_MS_SSIM_MIN_SIDE = (_SSIM_WINDOW - 1) * 2**4 + 1  # pytorch-msssim's check: side > 160


def _check(dist: Tensor, ref: Tensor, name: str, min_side: int) -> None:
    for label, x in (("dist", dist), ("ref", ref)):
        if not isinstance(x, Tensor):
            raise InputError(
                f"{name}: {label} must be a torch.Tensor (N, 3, H, W) in [0, 1], got "
                f"{type(x).__name__}. Convert it with asna_metric.inputs.to_batch."
            )
        if x.ndim != 4 or x.shape[1] != 3:
            raise InputError(
                f"{name}: {label} must have shape (N, 3, H, W), got {tuple(x.shape)}. Add a "
                "batch dimension or convert grayscale to RGB."
            )
        if not x.is_floating_point():
            raise InputError(
                f"{name}: {label} must be a float tensor in [0, 1], got {x.dtype}. Divide "
                "integer images by 255."
            )
    if dist.shape != ref.shape:
        raise InputError(
            f"{name}: dist and ref must have the same shape, got {tuple(dist.shape)} and "
            f"{tuple(ref.shape)}. Resize or crop one of them first."
        )
    if min(dist.shape[-2:]) < min_side:
        raise InputError(
            f"{name}: images must be at least {min_side}x{min_side}, got "
            f"{tuple(dist.shape[-2:])}. "
            + (
                "MS-SSIM downsamples four times with an 11x11 window; use ssim or psnr for "
                "small images, or upsample them."
                if name == "ms_ssim"
                else "Use larger images."
            )
        )


def _channels(x: Tensor, channels: Channels) -> Tensor:
    if channels == "rgb":
        return x
    if channels == "y":
        from asna_metric.color import rgb_to_ycbcr

        return rgb_to_ycbcr(x)[:, :1]
    raise InputError(f"channels must be 'y' or 'rgb', got {channels!r}.")


def psnr(dist: Tensor, ref: Tensor, *, channels: Channels = "y", data_range: float = 1.0) -> Tensor:
    """Peak signal-to-noise ratio per image, in dB, capped at 100 dB.

    Args:
        dist: Distorted images ``(N, 3, H, W)`` in ``[0, 1]``.
        ref: Reference images, same shape.
        channels: ``"y"`` (luma, default) or ``"rgb"``.
        data_range: Peak value (1 for images in ``[0, 1]``).

    Returns:
        ``(N,)`` PSNR in dB, higher is better; identical images give 100.

    Raises:
        InputError: Shapes or types are wrong.
    """
    _check(dist, ref, "psnr", 1)
    a, b = _channels(dist.double(), channels), _channels(ref.double(), channels)
    mse = (a - b).pow(2).flatten(1).mean(dim=1).clamp_min(data_range**2 * 1e-10)
    return (10.0 * torch.log10(data_range**2 / mse)).clamp_max(_PSNR_CAP_DB).to(dist.dtype)


def _msssim_module() -> Any:
    try:
        import pytorch_msssim
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "SSIM and MS-SSIM need pytorch-msssim: pip install 'asna-metric[eval]'"
        ) from exc
    return pytorch_msssim


def ssim(dist: Tensor, ref: Tensor, *, channels: Channels = "y") -> Tensor:
    """Structural similarity (Wang et al. 2004) per image, via ``pytorch-msssim``.

    Args:
        dist: Distorted images ``(N, 3, H, W)`` in ``[0, 1]``, at least 11x11.
        ref: Reference images, same shape.
        channels: ``"y"`` (luma, default) or ``"rgb"`` (mean over channels).

    Returns:
        ``(N,)`` SSIM, 1 for identical images, higher is better.

    Raises:
        InputError: Shapes or types are wrong, or the images are too small.
        ImportError: pytorch-msssim is not installed.

    References:
        Z. Wang, A. C. Bovik, H. R. Sheikh, E. P. Simoncelli, "Image quality
        assessment: from error visibility to structural similarity", IEEE TIP
        2004.
    """
    _check(dist, ref, "ssim", _SSIM_WINDOW)
    module = _msssim_module()
    a, b = _channels(dist.float(), channels), _channels(ref.float(), channels)
    return module.ssim(a, b, data_range=1.0, size_average=False).to(dist.dtype)


def ms_ssim(dist: Tensor, ref: Tensor, *, channels: Channels = "y") -> Tensor:
    """Multi-scale structural similarity (Wang et al. 2003) per image, via ``pytorch-msssim``.

    Args:
        dist: Distorted images ``(N, 3, H, W)`` in ``[0, 1]``, shorter side
            at least 161 pixels.
        ref: Reference images, same shape.
        channels: ``"y"`` (luma, default) or ``"rgb"`` (mean over channels).

    Returns:
        ``(N,)`` MS-SSIM, 1 for identical images, higher is better.

    Raises:
        InputError: Shapes or types are wrong, or the images are too small.
        ImportError: pytorch-msssim is not installed.

    References:
        Z. Wang, E. P. Simoncelli, A. C. Bovik, "Multiscale structural
        similarity for image quality assessment", Asilomar 2003.
    """
    _check(dist, ref, "ms_ssim", _MS_SSIM_MIN_SIDE)
    module = _msssim_module()
    a, b = _channels(dist.float(), channels), _channels(ref.float(), channels)
    return module.ms_ssim(a, b, data_range=1.0, size_average=False).to(dist.dtype)


MetricFn = Callable[[Tensor, Tensor], Tensor]


@dataclass(frozen=True)
class MetricSpec:
    """A named metric the evaluation can run.

    Attributes:
        name: Registry name (``"psnr"``).
        description: One line for tables and ``--help``.
        higher_is_better: Direction of the scores.
        build: ``build(weights=None, device="cpu") -> fn`` with ``fn(dist,
            ref) -> (N,)``; ``weights`` only matters to learned metrics.
        uses_weights: Whether ``weights`` is meaningful.
        min_side: Smallest image side the metric accepts.
    """

    name: str
    description: str
    higher_is_better: bool
    build: Callable[..., MetricFn]
    uses_weights: bool = False
    min_side: int = 1


def _plain(fn: MetricFn) -> Callable[..., MetricFn]:
    def build(
        weights: str | None = None, device: str | torch.device = "cpu", self_ensemble: Any = None
    ) -> MetricFn:
        return fn

    return build


def _build_asna(
    weights: str | None = None,
    device: str | torch.device = "cpu",
    self_ensemble: Any = None,
) -> MetricFn:
    from asna_metric.metric import ASNA
    from asna_metric.weights import DEFAULT_WEIGHTS

    options = {} if self_ensemble is None else {"self_ensemble": self_ensemble}
    model = ASNA(weights=DEFAULT_WEIGHTS if weights is None else weights, **options)
    model = model.to(device)

    def run(dist: Tensor, ref: Tensor) -> Tensor:
        with torch.inference_mode():
            return model(dist=dist.to(device), ref=ref.to(device)).float().cpu()

    run.model = model  # type: ignore[attr-defined]
    return run


#: Metrics known to ``asna-metric eval`` and the benchmarks, by name.
METRICS: dict[str, MetricSpec] = {
    "asna": MetricSpec(
        "asna", "ASNA (this package), learned", True, _build_asna, uses_weights=True
    ),
    "psnr": MetricSpec("psnr", "PSNR on luma, dB, capped at 100", True, _plain(psnr)),
    "ssim": MetricSpec(
        "ssim", "SSIM on luma (pytorch-msssim)", True, _plain(ssim), min_side=_SSIM_WINDOW
    ),
    "ms_ssim": MetricSpec(
        "ms_ssim",
        "MS-SSIM on luma (pytorch-msssim), 5 scales",
        True,
        _plain(ms_ssim),
        min_side=_MS_SSIM_MIN_SIDE,
    ),
}


def build_metric(
    name: str,
    *,
    weights: str | None = None,
    device: str | torch.device = "cpu",
    self_ensemble: str | None = None,
) -> MetricFn:
    """Build a registered metric's scoring function.

    Args:
        name: A key of :data:`METRICS` (``"ms-ssim"`` is accepted for
            ``"ms_ssim"``).
        weights: Weights name or ``.safetensors`` path for learned metrics.
        device: Device to run on.
        self_ensemble: Test-time self-ensemble of learned metrics
            (``"none"``, ``"flips"``, ``"full"``; ``None``: the metric's default).

    Returns:
        ``fn(dist, ref) -> (N,)``.

    Raises:
        InputError: Unknown name.
    """
    key = name.strip().lower().replace("-", "_")
    if key not in METRICS:
        raise InputError(
            f"unknown metric {name!r}: expected one of {sorted(METRICS)}. Check the spelling."
        )
    return METRICS[key].build(weights=weights, device=device, self_ensemble=self_ensemble)
