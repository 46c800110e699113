"""ASNA: the attention-based Siamese-Difference network with a pooled head."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from asna_metric.errors import InputError
from asna_metric.nets._blocks import LocationHead
from asna_metric.nets._siamese import (
    PairQualityNet,
    SiameseDifferenceBackbone,
    attention_and_residuals,
    head_trunk,
)

__all__ = ["ASNANet"]

# Measured on a randomly initialised default network: one pixel of a 512x512
# distorted image was inverted and the change of the quality and weight maps
# recorded against the distance (Chebyshev, in input pixels) from that pixel
# to each map cell's 8x8 block. Without the attention block's global channel
# gate, cells farther than 116 px never changed (the strict receptive radius,
# over 6 positions of the pixel in a 16x16 block); with it, far cells moved by
# ~1e-7 only; the change fell below 0.1% of its peak beyond 72 px and below 1%
# beyond 25-39 px. Tiling keeps 80 px (the 0.1% level rounded up to a
# multiple of 16) around each tile's core.
DEFAULT_RECEPTIVE_MARGIN = 80

# Strides that ``input_unshuffle`` may take: the map stays at 1/8 of the
# input, so the head's first convolution has stride 8 / 2 / input_unshuffle.
UNSHUFFLE_FACTORS = (1, 2, 4)


class ASNANet(PairQualityNet):
    """The ASNA attention network, with a per-location pooled head.

    Follows the paper's attention variant: a shared encoder (stem, then
    levels of 8/16/32/64 channels with kernels 5/5/3/3, each convolution
    followed by LeakyReLU(0.5) and BatchNorm), an asymmetric decoder that
    starts from the distorted image's deepest features and adds the absolute
    feature differences at each level, a stride-4 and a stride-2 convolution,
    an attention block and three residual blocks. The paper's
    ``flatten -> dense`` head (63% of its parameters, and the reason it only
    accepted 288x288 inputs) is replaced by the same computation at every
    location: a quality map in ``[0, 1]`` and a positive weight map, whose
    weighted mean is the score. Any input whose sides are multiples of
    :attr:`size_multiple` is accepted.

    Inputs are ``(dist, ref)`` in ``[0, 1]``; the network maps them to
    ``[-1, 1]`` itself. The decoder starts from ``dist``.

    ``input_unshuffle=2`` (a departure from the paper, for speed) rearranges
    each 2x2 block of input pixels into 12 channels (``pixel_unshuffle``)
    before the stem, so that the whole backbone runs at half the input
    resolution: about a quarter of the arithmetic and memory traffic, no
    pixel discarded. The head's first convolution then has stride 2 instead
    of 4, and the map keeps one location per 8x8 input block.

    Args:
        stem_channels: Channels of the first 5x5 convolution.
        stem_kernel: Its kernel size.
        encoder_widths: Channels of the encoder levels.
        encoder_kernels: Kernel sizes of the encoder levels.
        decoder_widths: Channels of the decoder convolutions, deepest first.
        decoder_kernel: Kernel size of the decoder convolutions.
        head_widths: Channels of the stride-4 and stride-2 convolutions.
        head_kernel: Their kernel size.
        attention_width: Width of the attention block (0 leaves it out, an
            ablation whose maps are strictly local).
        residual_blocks: Number of residual blocks.
        head_hidden: Hidden channels of the per-location head.
        negative_slope: LeakyReLU slope.
        receptive_margin: Overlap in pixels kept around each tile in tiled
            inference (a multiple of :attr:`size_multiple` is best).
        input_unshuffle: 1 (the paper), 2 or 4: the backbone runs at
            ``1 / input_unshuffle`` of the input resolution, its stem taking
            ``3 * input_unshuffle**2`` channels.

    Raises:
        InputError: ``input_unshuffle`` is not 1, 2 or 4.

    Attributes:
        size_multiple: ``input_unshuffle * 2 ** len(encoder_widths)`` (16 by default).
        tile_size: ``512 * input_unshuffle``: the default tile side of
            :class:`asna_metric.ASNA` (the same activation memory per tile).
        map_stride: 8: one map location per 8x8 input block.
        receptive_margin: The tiling overlap. The default, 80 px, was
            measured: invert one pixel of a 512x512 pair and record how far
            the map changes. Nothing local changes farther than 116 px (the
            strict receptive radius), and the change is below 0.1% of its peak
            beyond 72 px. The attention block's channel gate pools over the
            whole image (or tile), so tiled scores are close to, not
            identical with, untiled ones.

    Example:
        >>> import torch
        >>> net = ASNANet().eval()
        >>> x = torch.rand(1, 3, 64, 96)
        >>> quality, weight = net.forward_maps(x, x)
        >>> tuple(quality.shape), tuple(net(x, x).shape)
        ((1, 1, 8, 12), (1,))

    References:
        Ayyoubzadeh, Royat: "(ASNA) An Attention-based Siamese-Difference
        Neural Network with Surrogate Ranking Loss function for Perceptual
        Image Quality Assessment", CVPR Workshops (NTIRE) 2021.
    """

    arch = "asna"

    def __init__(
        self,
        *,
        stem_channels: int = 3,
        stem_kernel: int = 5,
        encoder_widths: Sequence[int] = (8, 16, 32, 64),
        encoder_kernels: Sequence[int] = (5, 5, 3, 3),
        decoder_widths: Sequence[int] = (64, 64, 32, 16),
        decoder_kernel: int = 3,
        head_widths: Sequence[int] = (32, 32),
        head_kernel: int = 3,
        attention_width: int = 8,
        residual_blocks: int = 3,
        head_hidden: int = 32,
        negative_slope: float = 0.5,
        receptive_margin: int = DEFAULT_RECEPTIVE_MARGIN,
        input_unshuffle: int = 1,
    ) -> None:
        super().__init__()
        if input_unshuffle not in UNSHUFFLE_FACTORS:
            raise InputError(
                f"input_unshuffle must be one of {UNSHUFFLE_FACTORS} (the map stays at 1/8 "
                f"of the input); got {input_unshuffle!r}"
            )
        self._config = {
            "stem_channels": stem_channels,
            "stem_kernel": stem_kernel,
            "encoder_widths": list(encoder_widths),
            "encoder_kernels": list(encoder_kernels),
            "decoder_widths": list(decoder_widths),
            "decoder_kernel": decoder_kernel,
            "head_widths": list(head_widths),
            "head_kernel": head_kernel,
            "attention_width": attention_width,
            "residual_blocks": residual_blocks,
            "head_hidden": head_hidden,
            "negative_slope": negative_slope,
            "receptive_margin": receptive_margin,
        }
        if input_unshuffle != 1:  # configs of paper-shaped networks stay as they were
            self._config["input_unshuffle"] = input_unshuffle
        self.input_unshuffle = input_unshuffle
        self.backbone = SiameseDifferenceBackbone(
            in_channels=3 * input_unshuffle**2,
            stem_channels=stem_channels,
            stem_kernel=stem_kernel,
            encoder_widths=encoder_widths,
            encoder_kernels=encoder_kernels,
            decoder_widths=decoder_widths,
            decoder_kernel=decoder_kernel,
            negative_slope=negative_slope,
            batch_norm=True,
        )
        trunk = head_trunk(
            self.backbone.out_channels,
            head_widths,
            head_kernel,
            negative_slope=negative_slope,
            batch_norm=True,
            first_stride=4 // input_unshuffle,
        )
        extra, channels = attention_and_residuals(head_widths[-1], attention_width, residual_blocks)
        self.trunk = nn.Sequential(*trunk, *extra)
        self.head = LocationHead(channels, head_hidden)
        self.size_multiple = input_unshuffle * 2 ** len(encoder_widths)
        self.receptive_margin = receptive_margin
        self.tile_size = 512 * input_unshuffle  # the same activations per tile
