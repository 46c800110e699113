"""Cost-equivalent rebuilds of the metrics users would otherwise use, for timing only.

The ``lpips`` and ``DISTS_pytorch`` packages import torchvision, which cannot be
installed beside the torch this project pins, and their pretrained weights
cannot be downloaded on the benchmark host. The speed and memory of a network
do not depend on its weight values, so this module rebuilds the exact
architectures (same layers, shapes, strides, paddings, pooling and pooling of
the distances) with random weights:

* LPIPS (Zhang et al., CVPR 2018): the input scaling layer, torchvision's
  AlexNet ``features`` up to ``relu5`` or VGG16 ``features`` up to ``relu5_3``,
  unit-normalisation over channels at five taps, squared differences, one
  1x1 linear layer (no bias) per tap and a spatial average.
* DISTS (Ding et al., TPAMI 2020): ImageNet normalisation, VGG16 with every
  max-pooling replaced by L2 pooling (3x3 Hann filter, stride 2), the image
  itself plus five stages, per-channel mean (structure) and variance /
  covariance (texture) similarities weighted by ``alpha`` and ``beta``.

The scores of these modules are meaningless (random weights); their cost is
the real one. ``PARAMETER_COUNTS`` lists the published counts that the tests
check against.

Everything here takes ``(dist, ref)`` as ``(N, 3, H, W)`` floats in ``[0, 1]``
and returns ``(N,)``, like :class:`asna_metric.ASNA`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "DISTS",
    "LPIPS",
    "MSSSIM",
    "PARAMETER_COUNTS",
    "PSNR",
    "SSIM",
    "L2Pooling",
    "alexnet_features",
    "count_parameters",
    "lpips_lin_parameters",
    "vgg16_features",
]

# Published parameter counts of the rebuilt parts (torchvision model docs and
# the LPIPS / DISTS releases). The tests compare the rebuilds against these.
PARAMETER_COUNTS: dict[str, int] = {
    "alexnet_features": 2_469_696,  # "2.47M"
    "vgg16_features": 14_714_688,  # "14.7M" (13 conv layers; the pools hold nothing)
    "lpips_lin_alex": 1_152,  # 64 + 192 + 384 + 256 + 256
    "lpips_lin_vgg": 1_472,  # 64 + 128 + 256 + 512 + 512
    "dists_alpha_beta": 2 * 1_475,  # 3 + 64 + 128 + 256 + 512 + 512, twice
}

# VGG16 configuration "D": output channels, "M" = 2x2 max-pooling.
_VGG16_CFG: tuple[int | str, ...] = (
    64,
    64,
    "M",
    128,
    128,
    "M",
    256,
    256,
    256,
    "M",
    512,
    512,
    512,
    "M",
    512,
    512,
    512,
    "M",
)


def count_parameters(module: nn.Module) -> int:
    """Number of scalar parameters (buffers excluded) of ``module``."""
    return sum(p.numel() for p in module.parameters())


def alexnet_features() -> nn.Sequential:
    """AlexNet ``features`` with torchvision's layer indices (ReLUs at 1, 4, 7, 9, 11)."""
    return nn.Sequential(
        nn.Conv2d(3, 64, kernel_size=11, stride=4, padding=2),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(kernel_size=3, stride=2),
        nn.Conv2d(64, 192, kernel_size=5, padding=2),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(kernel_size=3, stride=2),
        nn.Conv2d(192, 384, kernel_size=3, padding=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(384, 256, kernel_size=3, padding=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(256, 256, kernel_size=3, padding=1),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(kernel_size=3, stride=2),
    )


def vgg16_features(pool: Callable[[int], nn.Module] | None = None) -> nn.Sequential:
    """VGG16 ``features`` with torchvision's layer indices.

    Args:
        pool: Factory ``channels -> module`` for the pooling layers; ``None``
            keeps torchvision's 2x2 max-pooling.
    """
    layers: list[nn.Module] = []
    channels = 3
    for item in _VGG16_CFG:
        if item == "M":
            layers.append(nn.MaxPool2d(2, 2) if pool is None else pool(channels))
        else:
            width = int(item)
            layers += [nn.Conv2d(channels, width, kernel_size=3, padding=1), nn.ReLU(inplace=True)]
            channels = width
    return nn.Sequential(*layers)


def _check_pair(dist: torch.Tensor, ref: torch.Tensor) -> None:
    from asna_metric.errors import InputError

    if dist.ndim != 4 or dist.shape[1] != 3 or dist.shape != ref.shape:
        raise InputError(
            "dist and ref must both be (N, 3, H, W) tensors of the same shape; got "
            f"{tuple(dist.shape)} and {tuple(ref.shape)}. Add a batch axis or crop one of them."
        )


class LPIPS(nn.Module):
    """LPIPS with the original architecture and random weights (timing stand-in).

    Args:
        net: ``"alex"`` or ``"vgg"``.

    Shape:
        ``(N, 3, H, W)`` twice, in ``[0, 1]`` -> ``(N,)`` (a distance: lower is better).
    """

    # Layer indices in ``features`` after which LPIPS takes its five taps.
    _TAPS: ClassVar[dict[str, tuple[int, ...]]] = {
        "alex": (1, 4, 7, 9, 11),
        "vgg": (3, 8, 15, 22, 29),
    }
    _CHANNELS: ClassVar[dict[str, tuple[int, ...]]] = {
        "alex": (64, 192, 384, 256, 256),
        "vgg": (64, 128, 256, 512, 512),
    }

    def __init__(self, net: str = "alex") -> None:
        super().__init__()
        if net not in self._TAPS:
            from asna_metric.errors import InputError

            raise InputError(f"net must be 'alex' or 'vgg'; got {net!r}. Pick one of those.")
        self.net_name = net
        features = alexnet_features() if net == "alex" else vgg16_features()
        last = self._TAPS[net][-1]
        # LPIPS cuts the trunk at its last tap; later layers are never run.
        self.features = nn.Sequential(*list(features.children())[: last + 1])
        self.taps = self._TAPS[net]
        self.lins = nn.ModuleList(
            nn.Sequential(nn.Dropout(), nn.Conv2d(c, 1, kernel_size=1, bias=False))
            for c in self._CHANNELS[net]
        )
        with torch.no_grad():  # LPIPS clamps its linear weights to be non-negative
            for lin in self.lins:
                lin[1].weight.abs_()
        self.register_buffer("shift", torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1))
        self.eval()

    def _taps(self, x: torch.Tensor) -> list[torch.Tensor]:
        out = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in self.taps:
                out.append(x)
        return out

    def forward(self, dist: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
        """LPIPS distance of each pair, ``(N,)``."""
        _check_pair(dist, ref)
        # lpips(normalize=True): [0, 1] -> [-1, 1], then the scaling layer.
        x = ((dist * 2 - 1) - self.shift) / self.scale
        y = ((ref * 2 - 1) - self.shift) / self.scale
        total = dist.new_zeros(dist.shape[0])
        for fx, fy, lin in zip(self._taps(x), self._taps(y), self.lins, strict=True):
            nx = fx / (fx.pow(2).sum(dim=1, keepdim=True).sqrt() + 1e-10)
            ny = fy / (fy.pow(2).sum(dim=1, keepdim=True).sqrt() + 1e-10)
            total = total + lin((nx - ny).pow(2)).mean(dim=(1, 2, 3))
        return total


class L2Pooling(nn.Module):
    """DISTS's L2 pooling: sqrt of a 3x3 Hann-weighted mean of squares, stride 2."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        hann = torch.tensor([0.5, 1.0, 0.5])
        kernel = hann[:, None] * hann[None, :]
        kernel = kernel / kernel.sum()
        self.register_buffer("kernel", kernel.expand(channels, 1, 3, 3).contiguous())
        self.channels = channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Pool ``x`` by two."""
        out = F.conv2d(x.pow(2), self.kernel, stride=2, padding=1, groups=self.channels)
        return (out + 1e-12).sqrt()


class DISTS(nn.Module):
    """DISTS with the original architecture and random weights (timing stand-in).

    Shape:
        ``(N, 3, H, W)`` twice, in ``[0, 1]`` -> ``(N,)`` (a distance: lower is better).
    """

    # Stage boundaries in the L2-pooled VGG16 ``features`` (pools at 4, 9, 16, 23).
    _STAGES = ((0, 4), (4, 9), (9, 16), (16, 23), (23, 30))
    CHANNELS = (3, 64, 128, 256, 512, 512)

    def __init__(self) -> None:
        super().__init__()
        features = list(vgg16_features(pool=L2Pooling).children())
        self.stages = nn.ModuleList(nn.Sequential(*features[a:b]) for a, b in self._STAGES)
        total = sum(self.CHANNELS)
        self.alpha = nn.Parameter(torch.rand(1, total, 1, 1) * 0.1 + 0.01)
        self.beta = nn.Parameter(torch.rand(1, total, 1, 1) * 0.1 + 0.01)
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))
        self.eval()

    def _stages(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = (x - self.mean) / self.std
        out = [x]
        for stage in self.stages:
            x = stage(x)
            out.append(x)
        return out

    def forward(self, dist: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
        """DISTS distance of each pair, ``(N,)``."""
        _check_pair(dist, ref)
        c1 = c2 = 1e-6
        weight_sum = self.alpha.sum() + self.beta.sum()
        alphas = torch.split(self.alpha / weight_sum, list(self.CHANNELS), dim=1)
        betas = torch.split(self.beta / weight_sum, list(self.CHANNELS), dim=1)
        structure = dist.new_zeros(dist.shape[0])
        texture = dist.new_zeros(dist.shape[0])
        for fx, fy, a, b in zip(self._stages(dist), self._stages(ref), alphas, betas, strict=True):
            mx = fx.mean(dim=(2, 3), keepdim=True)
            my = fy.mean(dim=(2, 3), keepdim=True)
            s1 = (2 * mx * my + c1) / (mx.pow(2) + my.pow(2) + c1)
            structure = structure + (a * s1).sum(dim=(1, 2, 3))
            vx = (fx - mx).pow(2).mean(dim=(2, 3), keepdim=True)
            vy = (fy - my).pow(2).mean(dim=(2, 3), keepdim=True)
            cov = (fx * fy).mean(dim=(2, 3), keepdim=True) - mx * my
            s2 = (2 * cov + c2) / (vx + vy + c2)
            texture = texture + (b * s2).sum(dim=(1, 2, 3))
        return 1 - (structure + texture)


class PSNR(nn.Module):
    """PSNR in dB for images in ``[0, 1]`` (higher is better), ``(N,)``."""

    def forward(self, dist: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
        """PSNR of each pair."""
        _check_pair(dist, ref)
        mse = (dist - ref).pow(2).mean(dim=(1, 2, 3)).clamp_min(1e-10)
        return -10 * torch.log10(mse)


class SSIM(nn.Module):
    """SSIM from ``pytorch_msssim`` (Gaussian window 11, sigma 1.5), ``(N,)``."""

    def forward(self, dist: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
        """SSIM of each pair."""
        from pytorch_msssim import ssim

        _check_pair(dist, ref)
        return ssim(dist, ref, data_range=1.0, size_average=False)


class MSSSIM(nn.Module):
    """MS-SSIM from ``pytorch_msssim`` (five scales), ``(N,)``; needs sides above 160."""

    def forward(self, dist: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
        """MS-SSIM of each pair."""
        from pytorch_msssim import ms_ssim

        _check_pair(dist, ref)
        return ms_ssim(dist, ref, data_range=1.0, size_average=False)


def lpips_lin_parameters(model: LPIPS) -> int:
    """Parameters of the LPIPS 1x1 linear layers only."""
    return count_parameters(model.lins)
