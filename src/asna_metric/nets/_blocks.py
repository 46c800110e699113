"""Building blocks shared by the ASNA network variants."""

from __future__ import annotations

from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "AttentionBlock",
    "ConvBlock",
    "ConvLSTMCell",
    "LocationHead",
    "ResidualBlock",
    "TileSequenceConvLSTM",
]

# Keras' BatchNormalization defaults: epsilon 1e-3, moving-average momentum
# 0.99 (PyTorch counts the momentum the other way round: 1 - 0.99).
BN_EPS = 1e-3
BN_MOMENTUM = 0.01
# Floor of the per-location weight, so that a weighted mean never divides by zero.
WEIGHT_EPS = 1e-4


class ConvBlock(nn.Sequential):
    """Convolution ('same' zero padding) -> LeakyReLU -> optional BatchNorm.

    Args:
        in_channels: Input channels.
        out_channels: Output channels.
        kernel_size: Odd kernel size.
        stride: Convolution stride.
        negative_slope: Slope of the LeakyReLU for negative inputs.
        batch_norm: Append a BatchNorm layer (Keras epsilon and momentum).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        *,
        stride: int = 1,
        negative_slope: float = 0.5,
        batch_norm: bool = True,
    ) -> None:
        layers: list[nn.Module] = [
            nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding=kernel_size // 2),
            nn.LeakyReLU(negative_slope),
        ]
        if batch_norm:
            layers.append(nn.BatchNorm2d(out_channels, eps=BN_EPS, momentum=BN_MOMENTUM))
        super().__init__(*layers)


class AttentionBlock(nn.Module):
    """Channel and spatial attention, concatenated with the input and fused.

    A 3x3 convolution reduces the input to ``width`` feature channels. Two
    gates act on them: a squeeze-and-excitation channel gate (global average
    pool, ``width -> width -> width`` with ReLU then sigmoid) and a
    per-pixel, per-channel sigmoid gate from a 1x1 convolution. Both gated
    tensors are concatenated with the block's input and fused to ``width``
    channels by a 1x1 convolution.

    The channel gate's global average pool makes every output location
    depend (weakly) on the whole input: tiled inference is then an
    approximation, see :attr:`ASNANet.receptive_margin`.

    Args:
        in_channels: Input channels.
        width: Channels of the attention features and of the output.
    """

    def __init__(self, in_channels: int, width: int) -> None:
        super().__init__()
        self.features = nn.Conv2d(in_channels, width, 3, padding=1)
        self.channel_gate = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(width, width, 1),
            nn.ReLU(),
            nn.Conv2d(width, width, 1),
            nn.Sigmoid(),
        )
        self.spatial_gate = nn.Sequential(nn.Conv2d(width, width, 1), nn.Sigmoid())
        self.fuse = nn.Conv2d(in_channels + 2 * width, width, 1)

    def forward(self, x: Tensor) -> Tensor:
        """Apply the block.

        Args:
            x: Features ``(N, in_channels, h, w)``.

        Returns:
            Features ``(N, width, h, w)``.
        """
        features = F.relu(self.features(x))
        by_channel = features * self.channel_gate(features)
        by_location = features * self.spatial_gate(features)
        return self.fuse(torch.cat((x, by_channel, by_location), dim=1))


def encode_levels(stem: nn.Module, blocks: Iterable[nn.Module], x: Tensor) -> list[Tensor]:
    """Run a stem, then encoder blocks with a 2x max-pool before every block but the first.

    Args:
        stem: First layer(s).
        blocks: One module per encoder level.
        x: Input ``(N, C, H, W)``.

    Returns:
        The features of every level, shallowest (full resolution) first.
    """
    x = stem(x)
    features = []
    for i, block in enumerate(blocks):
        if i:
            x = F.max_pool2d(x, 2)
        x = block(x)
        features.append(x)
    return features


class ResidualBlock(nn.Module):
    """``x + conv(relu(conv(x)))`` with 3x3 convolutions and no normalisation.

    Args:
        channels: Input and output channels.
        bias: Convolution biases; without them zero input gives zero output
            (the difference path of ``asna_id``).
    """

    def __init__(self, channels: int, *, bias: bool = True) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=bias)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=bias)

    def forward(self, x: Tensor) -> Tensor:
        """Apply the block.

        Args:
            x: Features ``(N, C, h, w)``.

        Returns:
            Features of the same shape.
        """
        return x + self.conv2(F.relu(self.conv1(x)))


class LocationHead(nn.Module):
    """Per-location quality and weight from 1x1 convolutions.

    Replaces the paper's ``flatten -> dense`` head, which pinned the input to
    288x288, with the same computation applied at every location: a 1x1
    convolution with ReLU, then a 1x1 convolution to two channels, the
    quality (sigmoid, in ``[0, 1]``) and the pooling weight (softplus plus a
    small floor, always positive).

    With ``anchored=True`` the hidden convolution has no bias and the
    quality is ``sigmoid(b - |W h|)`` (``W``, ``b``: the output convolution's
    quality row and bias): at most ``sigmoid(b)``, reached exactly where the
    input features are zero. A network whose features vanish for an
    identical pair then scores that pair highest by construction.

    Args:
        in_channels: Input channels.
        hidden: Channels of the hidden 1x1 convolution.
        anchored: Use the anchored quality described above.
    """

    def __init__(self, in_channels: int, hidden: int, *, anchored: bool = False) -> None:
        super().__init__()
        self.anchored = anchored
        self.hidden = nn.Conv2d(in_channels, hidden, 1, bias=not anchored)
        self.out = nn.Conv2d(hidden, 2, 1)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Apply the head.

        Args:
            x: Features ``(N, C, h, w)``.

        Returns:
            ``(quality, weight)``, each ``(N, 1, h, w)``.
        """
        logits = self.out(F.relu(self.hidden(x)))
        if self.anchored:
            anchor = self.out.bias[:1].view(1, 1, 1, 1)  # type: ignore[index]
            quality = torch.sigmoid(anchor - (logits[:, :1] - anchor).abs())
        else:
            quality = torch.sigmoid(logits[:, :1])
        weight = F.softplus(logits[:, 1:]) + WEIGHT_EPS
        return quality, weight


class ConvLSTMCell(nn.Module):
    """A convolutional LSTM cell (Shi et al., 2015), without peephole terms.

    One convolution over ``[input, hidden]`` gives the input, forget, output
    and candidate gates.

    Args:
        in_channels: Channels of the input at each step.
        hidden: Channels of the hidden and cell states.
        kernel_size: Odd kernel size of the gate convolution.
    """

    def __init__(self, in_channels: int, hidden: int, kernel_size: int) -> None:
        super().__init__()
        self.hidden = hidden
        self.gates = nn.Conv2d(
            in_channels + hidden, 4 * hidden, kernel_size, padding=kernel_size // 2
        )

    def forward(
        self, x: Tensor, state: tuple[Tensor, Tensor] | None = None
    ) -> tuple[Tensor, Tensor]:
        """Advance one step.

        Args:
            x: Input ``(N, in_channels, h, w)``.
            state: ``(hidden, cell)`` from the previous step, or ``None`` for zeros.

        Returns:
            The new ``(hidden, cell)``, each ``(N, hidden, h, w)``.
        """
        if state is None:
            zeros = x.new_zeros(x.shape[0], self.hidden, x.shape[2], x.shape[3])
            state = (zeros, zeros)
        h, c = state
        i, f, o, g = self.gates(torch.cat((x, h), dim=1)).chunk(4, dim=1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        return h, c


class TileSequenceConvLSTM(nn.Module):
    """Cut an image into a grid of tiles and run a ConvLSTM over them.

    The tiles are visited in row-major order (left to right, top to bottom)
    and the last hidden state is returned: a tile-sized feature map that
    summarises the whole image.

    Args:
        in_channels: Image channels.
        hidden: ConvLSTM channels.
        kernel_size: ConvLSTM kernel size.
        grid: Tiles per side.
    """

    def __init__(self, in_channels: int, hidden: int, kernel_size: int, grid: int) -> None:
        super().__init__()
        self.grid = grid
        self.cell = ConvLSTMCell(in_channels, hidden, kernel_size)

    def forward(self, x: Tensor) -> Tensor:
        """Run the sequence.

        Args:
            x: Images ``(N, C, H, W)`` with ``H`` and ``W`` multiples of ``grid``.

        Returns:
            The last hidden state ``(N, hidden, H / grid, W / grid)``.
        """
        n, c, height, width = x.shape
        th, tw = height // self.grid, width // self.grid
        # (N, C, g, th, g, tw) -> (g, g, N, C, th, tw): row-major tile order.
        tiles = x.reshape(n, c, self.grid, th, self.grid, tw).permute(2, 4, 0, 1, 3, 5)
        tiles = tiles.reshape(self.grid * self.grid, n, c, th, tw)
        state = self.cell(tiles[0])
        for step in tiles[1:]:
            state = self.cell(step, state)
        return state[0]
