"""The paper's plain Siamese-Difference variants (with and without a ConvLSTM front end)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import Tensor, nn

from asna_metric.nets._blocks import LocationHead, TileSequenceConvLSTM
from asna_metric.nets._siamese import PairQualityNet, SiameseDifferenceBackbone, head_trunk

__all__ = ["SiameseDiffConvLSTMNet", "SiameseDiffNet"]

# Measured like ASNANet's margin (invert one pixel of a 512x512 pair through a
# random default network, for 6 positions of the pixel within a 16x16 block):
# map cells farther than 68 px never change (70 px by counting kernel extents),
# so an 80 px overlap (a multiple of 16) makes tiled inference exact up to
# float rounding.
DEFAULT_RECEPTIVE_MARGIN = 80


class SiameseDiffNet(PairQualityNet):
    """The paper's plain Siamese-Difference network, with a per-location pooled head.

    The same shared encoder and asymmetric difference decoder as
    :class:`~asna_metric.nets.ASNANet`, without BatchNorm, attention and
    residual blocks: the stride-4 and stride-2 convolutions feed the
    per-location head directly (quality through a sigmoid, as in the paper,
    and a positive pooling weight).

    With ``convlstm=True`` (registry name ``"siamese_diff_convlstm"``) each
    image is first cut into a ``lstm_grid x lstm_grid`` grid of tiles (72x72
    tiles at 288x288), a ConvLSTM runs over the tiles in row-major order and
    its last hidden state, ``(N, lstm_hidden, H / 4, W / 4)``, replaces the
    image as the encoder's input. Its map is computed at tile resolution and
    then repeated over the grid, so that it still has ``H / 8 x W / 8``
    locations and its weighted mean is the score; a location of that map
    describes the same position *in every tile*, not a place in the image.
    Such a network reports ``spatially_faithful = False``: its map is not a
    spatial quality map and tiled inference does not apply to it.

    Args:
        convlstm: Add the ConvLSTM front end.
        stem_channels: Channels of the first convolution.
        stem_kernel: Its kernel size.
        encoder_widths: Channels of the encoder levels.
        encoder_kernels: Kernel sizes of the encoder levels.
        decoder_widths: Channels of the decoder convolutions, deepest first.
        decoder_kernel: Kernel size of the decoder convolutions.
        head_widths: Channels of the stride-4 and stride-2 convolutions.
        head_kernel: Their kernel size.
        head_hidden: Hidden channels of the per-location head.
        negative_slope: LeakyReLU slope.
        lstm_hidden: ConvLSTM channels (``convlstm=True`` only).
        lstm_kernel: ConvLSTM kernel size (``convlstm=True`` only).
        lstm_grid: Tiles per side (``convlstm=True`` only).
        receptive_margin: Overlap in pixels kept around each tile in tiled
            inference; 80 px by default, above the measured strict receptive
            radius of 68 px (tiling is then exact up to float rounding).

    Attributes:
        size_multiple: 16 (plain) or ``lstm_grid * 16`` = 64 (ConvLSTM).
        map_stride: 8.

    Example:
        >>> import torch
        >>> x = torch.rand(2, 3, 64, 64)
        >>> tuple(SiameseDiffNet()(x, x).shape)
        (2,)
        >>> net = SiameseDiffNet(convlstm=True)
        >>> net.arch, net.size_multiple, tuple(net.forward_maps(x, x)[0].shape)
        ('siamese_diff_convlstm', 64, (2, 1, 8, 8))
    """

    def __init__(
        self,
        convlstm: bool = False,
        *,
        stem_channels: int = 3,
        stem_kernel: int = 5,
        encoder_widths: Sequence[int] = (8, 16, 32, 64),
        encoder_kernels: Sequence[int] = (5, 5, 3, 3),
        decoder_widths: Sequence[int] = (64, 64, 32, 16),
        decoder_kernel: int = 3,
        head_widths: Sequence[int] = (32, 32),
        head_kernel: int = 3,
        head_hidden: int = 32,
        negative_slope: float = 0.5,
        lstm_hidden: int = 32,
        lstm_kernel: int = 5,
        lstm_grid: int = 4,
        receptive_margin: int = DEFAULT_RECEPTIVE_MARGIN,
    ) -> None:
        super().__init__()
        self.convlstm = convlstm
        config: dict[str, Any] = {
            "stem_channels": stem_channels,
            "stem_kernel": stem_kernel,
            "encoder_widths": list(encoder_widths),
            "encoder_kernels": list(encoder_kernels),
            "decoder_widths": list(decoder_widths),
            "decoder_kernel": decoder_kernel,
            "head_widths": list(head_widths),
            "head_kernel": head_kernel,
            "head_hidden": head_hidden,
            "negative_slope": negative_slope,
        }
        if convlstm:
            config.update(lstm_hidden=lstm_hidden, lstm_kernel=lstm_kernel, lstm_grid=lstm_grid)
        config["receptive_margin"] = receptive_margin
        self._config = config
        self.lstm = (
            TileSequenceConvLSTM(3, lstm_hidden, lstm_kernel, lstm_grid) if convlstm else None
        )
        self.backbone = SiameseDifferenceBackbone(
            in_channels=lstm_hidden if convlstm else 3,
            stem_channels=stem_channels,
            stem_kernel=stem_kernel,
            encoder_widths=encoder_widths,
            encoder_kernels=encoder_kernels,
            decoder_widths=decoder_widths,
            decoder_kernel=decoder_kernel,
            negative_slope=negative_slope,
            batch_norm=False,
        )
        self.trunk = nn.Sequential(
            *head_trunk(
                self.backbone.out_channels,
                head_widths,
                head_kernel,
                negative_slope=negative_slope,
                batch_norm=False,
            )
        )
        self.head = LocationHead(head_widths[-1], head_hidden)
        self.grid = lstm_grid if convlstm else 1
        self.size_multiple = self.grid * 2 ** len(encoder_widths)
        self.receptive_margin = receptive_margin
        self.spatially_faithful = not convlstm

    @property
    def arch(self) -> str:  # type: ignore[override]
        """``"siamese_diff_convlstm"`` with the ConvLSTM front end, else ``"siamese_diff"``."""
        return "siamese_diff_convlstm" if self.convlstm else "siamese_diff"

    def features(self, dist: Tensor, ref: Tensor) -> tuple[Tensor, Tensor]:
        """Backbone inputs: the images in ``[-1, 1]``, or the ConvLSTM's last states.

        Args:
            dist: Distorted images ``(N, 3, H, W)`` in ``[0, 1]``.
            ref: Reference images, same shape.

        Returns:
            The two backbone inputs.
        """
        a, b = super().features(dist, ref)
        if self.lstm is None:
            return a, b
        return self.lstm(a), self.lstm(b)

    def forward_maps(self, dist: Tensor, ref: Tensor) -> tuple[Tensor, Tensor]:
        """Per-location quality and pooling weight.

        For the ConvLSTM variant the tile-resolution maps are repeated over
        the ``lstm_grid x lstm_grid`` grid (see the class notes).

        Args:
            dist: Distorted images ``(N, 3, H, W)`` in ``[0, 1]``, ``H`` and
                ``W`` multiples of :attr:`size_multiple`.
            ref: Reference images, same shape.

        Returns:
            ``(quality, weight)``, each ``(N, 1, H / 8, W / 8)``.
        """
        quality, weight = super().forward_maps(dist, ref)
        if self.grid > 1:
            quality = quality.repeat(1, 1, self.grid, self.grid)
            weight = weight.repeat(1, 1, self.grid, self.grid)
        return quality, weight


class SiameseDiffConvLSTMNet(SiameseDiffNet):
    """:class:`SiameseDiffNet` with the ConvLSTM front end (``"siamese_diff_convlstm"``).

    Takes the same keyword arguments as :class:`SiameseDiffNet` except
    ``convlstm``, which is always ``True``.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(True, **kwargs)
