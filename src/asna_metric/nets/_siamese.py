"""The Siamese-Difference backbone shared by every ASNA network variant."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from asna_metric.nets._blocks import (
    AttentionBlock,
    ConvBlock,
    LocationHead,
    ResidualBlock,
    encode_levels,
)

__all__ = ["PairQualityNet", "SiameseDifferenceBackbone"]


class SiameseDifferenceBackbone(nn.Module):
    """Shared encoder and asymmetric difference decoder.

    Both images go through one encoder: a stem convolution, then one
    convolution per level with a 2x2 max-pool between levels (level ``i``
    runs at ``1 / 2**i`` of the input resolution). The decoder starts from
    the *first* image's deepest features (max-pool, convolution, nearest
    upsampling x2) and, from the deepest level up, concatenates the absolute
    difference of the two encoders' features at that level, then applies a
    convolution and a nearest upsampling x2. At full resolution it ends with
    the concatenation of its last features and the level-1 difference.

    Args:
        in_channels: Channels of the inputs.
        stem_channels: Output channels of the stem convolution.
        stem_kernel: Kernel size of the stem convolution.
        encoder_widths: Channels of the encoder level convolutions.
        encoder_kernels: Kernel sizes of the encoder level convolutions.
        decoder_widths: Channels of the decoder convolutions, deepest first
            (the first is the convolution below the deepest encoder level);
            as many as ``encoder_widths``.
        decoder_kernel: Kernel size of the decoder convolutions.
        negative_slope: LeakyReLU slope.
        batch_norm: BatchNorm after every activation.
    """

    def __init__(
        self,
        *,
        in_channels: int,
        stem_channels: int,
        stem_kernel: int,
        encoder_widths: Sequence[int],
        encoder_kernels: Sequence[int],
        decoder_widths: Sequence[int],
        decoder_kernel: int,
        negative_slope: float,
        batch_norm: bool,
    ) -> None:
        super().__init__()
        if len(encoder_kernels) != len(encoder_widths) or len(decoder_widths) != len(
            encoder_widths
        ):
            raise ValueError(
                "encoder_widths, encoder_kernels and decoder_widths must have the same length; "
                f"got {len(encoder_widths)}, {len(encoder_kernels)} and {len(decoder_widths)}"
            )
        opts: dict[str, Any] = {"negative_slope": negative_slope, "batch_norm": batch_norm}
        self.stem = ConvBlock(in_channels, stem_channels, stem_kernel, **opts)
        widths = [stem_channels, *encoder_widths]
        self.encoder = nn.ModuleList(
            ConvBlock(widths[i], widths[i + 1], encoder_kernels[i], **opts)
            for i in range(len(encoder_widths))
        )
        self.bottom = ConvBlock(encoder_widths[-1], decoder_widths[0], decoder_kernel, **opts)
        levels = len(encoder_widths)
        self.decoder = nn.ModuleList(
            ConvBlock(
                decoder_widths[j] + encoder_widths[levels - 1 - j],
                decoder_widths[j + 1],
                decoder_kernel,
                **opts,
            )
            for j in range(levels - 1)
        )
        self.out_channels = decoder_widths[-1] + encoder_widths[0]
        self.levels = levels

    def encode(self, x: Tensor) -> list[Tensor]:
        """Features of every encoder level, full resolution first.

        Args:
            x: Input ``(N, in_channels, H, W)``.

        Returns:
            One tensor per level.
        """
        return encode_levels(self.stem, self.encoder, x)

    def forward(self, a: Tensor, b: Tensor) -> Tensor:
        """Difference features at full resolution.

        Args:
            a: First input (the decoder starts from its features), ``(N, C, H, W)``.
            b: Second input, same shape; ``H`` and ``W`` multiples of ``2**levels``.

        Returns:
            Features ``(N, out_channels, H, W)``.
        """
        if self.training:
            # BatchNorm's batch statistics must be those of each image set alone.
            fa = self.encode(a)
            fb = self.encode(b)
        else:
            # One encoder pass over both images: identical results, fewer and
            # larger operator calls (faster, and better use of several threads).
            both = self.encode(torch.cat((a, b)))
            fa = [f[: a.shape[0]] for f in both]
            fb = [f[a.shape[0] :] for f in both]
        x = F.interpolate(self.bottom(F.max_pool2d(fa[-1], 2)), scale_factor=2.0, mode="nearest")
        for j, block in enumerate(self.decoder):
            level = self.levels - 1 - j
            x = block(torch.cat((x, (fa[level] - fb[level]).abs()), dim=1))
            x = F.interpolate(x, scale_factor=2.0, mode="nearest")
        return torch.cat((x, (fa[0] - fb[0]).abs()), dim=1)


class PairQualityNet(nn.Module):
    """Base class of the ASNA networks: a Siamese-Difference backbone and a pooled head.

    Subclasses build ``self.backbone``, ``self.trunk`` (a module mapping the
    backbone's features to head features at ``1 / map_stride`` resolution)
    and ``self.head`` (a :class:`~asna_metric.nets._blocks.LocationHead`), and
    store their constructor arguments in ``self._config``.

    Attributes:
        arch: Registry name of the architecture (see :func:`asna_metric.nets.build_net`).
        size_multiple: Input heights and widths must be multiples of this.
        map_stride: Input pixels per map location along each axis.
        receptive_margin: Overlap in input pixels that tiled inference keeps
            around each tile (see the subclasses for how it was estimated).
        tile_size: The tile side (input pixels) that
            :class:`asna_metric.ASNA` uses by default for this network (512:
            the side that bounds the paper-shaped networks' activations).
        spatially_faithful: Whether map location ``(i, j)`` describes the
            input block at ``(i, j) * map_stride``; tiled inference and
            spatial maps are only meaningful when it is ``True``.
        identity_exact: Whether the quality is exactly 1 wherever ``dist``
            equals ``ref`` by construction (``asna_id``); such networks must
            not be given an affine calibration, which would move the top.
    """

    arch: ClassVar[str]
    identity_exact: ClassVar[bool] = False
    map_stride: int = 8
    size_multiple: int
    receptive_margin: int
    tile_size: int = 512
    spatially_faithful: bool = True
    input_unshuffle: int = 1
    backbone: SiameseDifferenceBackbone
    trunk: nn.Module
    head: LocationHead
    _config: dict[str, Any]

    @property
    def config(self) -> dict[str, Any]:
        """Constructor arguments, JSON-serialisable: ``build_net(net.arch, net.config)``."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in self._config.items()}

    def features(self, dist: Tensor, ref: Tensor) -> tuple[Tensor, Tensor]:
        """Map both images from ``[0, 1]`` to ``[-1, 1]`` and pixel-unshuffle them.

        Args:
            dist: Distorted images ``(N, 3, H, W)`` in ``[0, 1]``.
            ref: Reference images, same shape.

        Returns:
            The two backbone inputs, ``(N, 3 f^2, H / f, W / f)`` for
            ``f = input_unshuffle`` (1 for the paper-shaped networks).
        """
        return unshuffle_pair(dist * 2.0 - 1.0, ref * 2.0 - 1.0, self.input_unshuffle)

    def forward_maps(self, dist: Tensor, ref: Tensor) -> tuple[Tensor, Tensor]:
        """Per-location quality and pooling weight.

        Args:
            dist: Distorted images ``(N, 3, H, W)`` in ``[0, 1]``, ``H`` and
                ``W`` multiples of :attr:`size_multiple`.
            ref: Reference images, same shape.

        Returns:
            ``(quality, weight)``, each ``(N, 1, H / map_stride, W / map_stride)``:
            quality in ``[0, 1]`` (higher is better) and a positive weight.
        """
        a, b = self.features(dist, ref)
        return self.head(self.trunk(self.backbone(a, b)))

    def forward(self, dist: Tensor, ref: Tensor) -> Tensor:
        """Quality score: the weighted mean of the quality map.

        Args:
            dist: Distorted images ``(N, 3, H, W)`` in ``[0, 1]``.
            ref: Reference images, same shape.

        Returns:
            Scores ``(N,)`` in ``[0, 1]``, higher is better.
        """
        quality, weight = self.forward_maps(dist, ref)
        return (weight * quality).sum(dim=(1, 2, 3)) / weight.sum(dim=(1, 2, 3))

    def extra_repr(self) -> str:
        """Summarise the architecture in ``repr``."""
        params = sum(p.numel() for p in self.parameters())
        return f"arch={self.arch!r}, parameters={params}"


def unshuffle_pair(a: Tensor, b: Tensor, factor: int) -> tuple[Tensor, Tensor]:
    """Pixel-unshuffle both images by ``factor`` (unchanged for 1).

    Args:
        a: First image batch ``(N, C, H, W)``.
        b: Second image batch, same shape.
        factor: Unshuffle factor ``f``; ``H`` and ``W`` multiples of it.

    Returns:
        The two batches, ``(N, C f^2, H / f, W / f)``.
    """
    if factor == 1:
        return a, b
    return F.pixel_unshuffle(a, factor), F.pixel_unshuffle(b, factor)


def head_trunk(
    in_channels: int,
    head_widths: Sequence[int],
    head_kernel: int,
    *,
    negative_slope: float,
    batch_norm: bool,
    first_stride: int = 4,
) -> list[nn.Module]:
    """The stride-4 then stride-2 convolutions that bring features to 1/8 resolution.

    Args:
        in_channels: Channels of the backbone output.
        head_widths: Channels of the two convolutions.
        head_kernel: Their kernel size.
        negative_slope: LeakyReLU slope.
        batch_norm: BatchNorm after each activation.
        first_stride: Stride of the first convolution: 4 for a backbone at
            the input resolution, less for one that already runs below it.

    Returns:
        The two convolution blocks.
    """
    if len(head_widths) != 2:
        raise ValueError(f"head_widths must hold two widths; got {list(head_widths)}")
    opts: dict[str, Any] = {"negative_slope": negative_slope, "batch_norm": batch_norm}
    return [
        ConvBlock(in_channels, head_widths[0], head_kernel, stride=first_stride, **opts),
        ConvBlock(head_widths[0], head_widths[1], head_kernel, stride=2, **opts),
    ]


def attention_and_residuals(
    in_channels: int, attention_width: int, residual_blocks: int
) -> tuple[list[nn.Module], int]:
    """The optional attention block followed by residual blocks.

    Args:
        in_channels: Channels entering the block.
        attention_width: Width of the attention block; 0 leaves it out.
        residual_blocks: Number of residual blocks after it.

    Returns:
        The modules and the number of channels they output.
    """
    modules: list[nn.Module] = []
    channels = in_channels
    if attention_width:
        modules.append(AttentionBlock(channels, attention_width))
        channels = attention_width
    modules.extend(ResidualBlock(channels) for _ in range(residual_blocks))
    return modules, channels
