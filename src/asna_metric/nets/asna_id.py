"""ASNA with an identity-exact head: the distortion comes only from feature differences.

The paper's network (and :class:`~asna_metric.nets.ASNANet`) starts its
decoder from the distorted image's deepest features and adds biases after
every difference, so an identical pair gets whatever quality those features
happen to map to (0.66-0.92 for the first shipped weights). Here the
distortion magnitude is a function of the feature differences alone, through
layers that map zero to zero, and the quality is a decreasing map of it with
the top of the scale at zero: an identical pair scores exactly 1.0.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from asna_metric.errors import InputError
from asna_metric.nets._blocks import BN_EPS, BN_MOMENTUM, WEIGHT_EPS, ResidualBlock, encode_levels
from asna_metric.nets._siamese import PairQualityNet

__all__ = ["ASNAIdentityNet", "smooth_magnitude"]

# Strides that ``input_unshuffle`` may take (the map stays at 1/8 of the input).
UNSHUFFLE_FACTORS = (1, 2, 4)

# Measured as for ASNANet on a randomly initialised default network: one
# pixel of a 512x512 distorted image inverted (6 positions in a 16x16 block),
# the change of the quality map and of the relative weight recorded against
# the Chebyshev distance from the pixel to each map cell's 8x8 block. Nothing
# changes beyond 100-104 px (the strict receptive radius; there is no global
# pooling), the change is below 1% of its peak beyond 66-80 px and below 0.1%
# beyond 86-96 px. Tiling keeps 112 px, the strict radius rounded up to a
# multiple of 16: tiled maps equal untiled ones up to float rounding.
DEFAULT_RECEPTIVE_MARGIN = 112


def smooth_magnitude(x: Tensor, eps: float) -> Tensor:
    """``sqrt(x^2 + eps^2) - eps``, computed so that it is exactly 0 at ``x = 0``.

    The direct form is not: in float32 ``sqrt(eps^2)`` need not round back to
    ``eps``. This computes the algebraically equal ``|x| * |x| / (hypot(x,
    eps) + eps)``: exactly zero (with a zero gradient) at zero, quadratic
    below ``eps``, ``|x| - eps`` above it, and free of overflow in float16
    (``|x| / (hypot + eps) <= 1``, and ``hypot`` does not square ``x``).

    Args:
        x: Any tensor.
        eps: Positive width of the quadratic region.

    Returns:
        A non-negative tensor of the same shape and dtype.

    Example:
        >>> import torch
        >>> smooth_magnitude(torch.tensor([0.0, 1e-3, 3.0]), 0.1).tolist()[0]
        0.0
    """
    a = x.abs()
    return a * (a / (torch.hypot(x, x.new_tensor(eps)) + eps))


def _conv(in_ch: int, out_ch: int, kernel: int, stride: int = 1, *, bias: bool) -> nn.Conv2d:
    return nn.Conv2d(in_ch, out_ch, kernel, stride, padding=kernel // 2, bias=bias)


class _ContentBlock(nn.Sequential):
    """Encoder block on image content: convolution -> LeakyReLU -> BatchNorm (the paper's)."""

    def __init__(
        self, in_ch: int, out_ch: int, kernel: int, *, negative_slope: float, batch_norm: bool
    ) -> None:
        layers: list[nn.Module] = [_conv(in_ch, out_ch, kernel, bias=True)]
        layers.append(nn.LeakyReLU(negative_slope))
        if batch_norm:
            layers.append(nn.BatchNorm2d(out_ch, eps=BN_EPS, momentum=BN_MOMENTUM))
        super().__init__(*layers)


class _DifferenceBlock(nn.Sequential):
    """Bias-free convolution -> LeakyReLU: maps an all-zero input to exactly zero."""

    def __init__(
        self, in_ch: int, out_ch: int, kernel: int, stride: int = 1, *, negative_slope: float
    ) -> None:
        super().__init__(
            _conv(in_ch, out_ch, kernel, stride, bias=False), nn.LeakyReLU(negative_slope)
        )


class ASNAIdentityNet(PairQualityNet):
    """ASNA with the distortion taken from feature differences only (identity scores 1).

    Keeps the paper's design: a Siamese network whose shared encoder (a stem,
    then levels of convolution -> LeakyReLU -> BatchNorm with a 2x2 max-pool
    between them) computes features ``f_l`` of both images in one batched
    call, and a decoder that, from the deepest level up, compares them level
    by level, with attention over the reference's content. What changes is
    where the distortion comes from:

    * **Difference path** (every layer maps zero to zero): the decoder sees
      only the signed differences ``d_l = f_l(dist) - f_l(ref)``, each
      multiplied by a content gate ``sigmoid(conv1x1(f_l(ref))) > 0``. It is
      the paper's decoder (max-pool and convolution below the deepest level,
      then concatenation with each level's gated difference, convolution and
      nearest upsampling), a stride-1 and a stride-2 convolution to 1/8 of
      the input, a spatial content gate and residual blocks; every
      convolution is bias-free, the activations are LeakyReLU/ReLU and no
      normalisation layer (which would add an offset) is used.
    * **Distance**: a bias-free 1x1 convolution to ``head_hidden`` channels,
      the smooth magnitude :func:`smooth_magnitude` (``sqrt(h^2 + eps^2) -
      eps``, zero and flat at zero), and a combination with non-negative
      (softplus-parametrised) weights: ``D >= 0`` per location, ``D = 0``
      exactly where the features agree, ``O(|d|^2)`` near it.
    * **Quality**: ``q = 1 - sum_k pi_k (1 - exp(-s_k D))`` with ``pi =
      softmax`` and ``s_k > 0`` learnable: a monotone decreasing map onto the
      quality scale whose top, 1 at ``D = 0``, is pinned (computed with
      ``expm1``, exactly 1.0 in floating point), the calibration to KADID's
      scale learnt with the network.
    * **Pooling weight**: positive, from the reference's content
      (``softplus(.) + 1e-4``), times ``1 + softplus(beta) D`` (distorted
      regions weigh more; with ``distortion_weighting=False`` content only).
      At ``D = 0`` the weight is the content weight and its gradient with
      respect to ``dist`` is zero.

    So for ``dist == ref`` every location has ``D = 0`` and ``q = 1``, the
    weighted mean is exactly 1.0 whatever the weights, and the gradient with
    respect to ``dist`` is exactly zero (the derivative of the magnitude is
    zero there). :meth:`forward_loss_maps` gives ``1 - q`` without the
    cancellation of computing ``1 - q`` from ``q`` (a loss keeps its
    resolution for slight distortions).

    ``input_unshuffle`` works as in :class:`~asna_metric.nets.ASNANet` (each
    ``f x f`` pixel block becomes ``3 f^2`` channels, the backbone runs at
    ``1 / f`` of the input). The deepest encoder level must sit at 1/8 of the
    input (``input_unshuffle * 2 ** (levels - 1) == 8``), the map's grid,
    where the content gate and weight are computed.

    Args:
        stem_channels: Channels of the stem convolution.
        stem_kernel: Its kernel size.
        encoder_widths: Channels of the encoder levels.
        encoder_kernels: Kernel sizes of the encoder levels.
        decoder_widths: Channels of the decoder's difference convolutions,
            deepest first (as many as ``encoder_widths``).
        decoder_kernel: Their kernel size.
        head_widths: Channels of the stride-1 and stride-2 convolutions that
            bring the difference path to 1/8 of the input.
        head_kernel: Their kernel size.
        content_width: Channels of the reference-content features at 1/8
            that give the spatial gate and the pooling weight.
        residual_blocks: Bias-free residual blocks on the difference path.
        head_hidden: Channels whose smooth magnitudes make the distance.
        quality_terms: Number of exponentials ``K`` of the quality map.
        magnitude_eps: ``eps`` of the smooth magnitude (feature units).
        distortion_weighting: Scale the pooling weight by ``1 + softplus(beta) D``.
        negative_slope: LeakyReLU slope.
        batch_norm: BatchNorm in the encoder (content path only).
        receptive_margin: Overlap in pixels kept around each tile in tiled
            inference.
        input_unshuffle: 1, 2 or 4.

    Raises:
        InputError: ``input_unshuffle`` is not 1, 2 or 4, the deepest level
            is not at 1/8 of the input, the width lists do not match, or
            ``quality_terms`` or ``magnitude_eps`` is not positive.

    Attributes:
        size_multiple: ``input_unshuffle * 2 ** len(encoder_widths)`` (16).
        map_stride: 8.
        tile_size: ``512 * input_unshuffle``.
        receptive_margin: The tiling overlap. The default, 112 px, covers
            the strict receptive radius measured on the default network (104
            px: invert one pixel and record how far the maps change, see
            ``DEFAULT_RECEPTIVE_MARGIN`` in this module); the network has no
            global pooling, so tiled maps equal untiled ones up to float
            rounding.

    Example:
        >>> import torch
        >>> net = ASNAIdentityNet().eval()
        >>> x = torch.rand(1, 3, 64, 96)
        >>> quality, weight = net.forward_maps(x, x)
        >>> tuple(quality.shape), bool((quality == 1).all()), net(x, x).tolist()
        ((1, 1, 8, 12), True, [1.0])

    References:
        Ayyoubzadeh, Royat: "(ASNA) An Attention-based Siamese-Difference
        Neural Network with Surrogate Ranking Loss function for Perceptual
        Image Quality Assessment", CVPR Workshops (NTIRE) 2021.
    """

    arch = "asna_id"
    identity_exact = True

    def __init__(
        self,
        *,
        stem_channels: int = 32,
        stem_kernel: int = 3,
        encoder_widths: Sequence[int] = (32, 64),
        encoder_kernels: Sequence[int] = (3, 3),
        decoder_widths: Sequence[int] = (64, 48),
        decoder_kernel: int = 3,
        head_widths: Sequence[int] = (32, 32),
        head_kernel: int = 3,
        content_width: int = 32,
        residual_blocks: int = 3,
        head_hidden: int = 32,
        quality_terms: int = 4,
        magnitude_eps: float = 0.1,
        distortion_weighting: bool = True,
        negative_slope: float = 0.5,
        batch_norm: bool = True,
        receptive_margin: int = DEFAULT_RECEPTIVE_MARGIN,
        input_unshuffle: int = 4,
    ) -> None:
        super().__init__()
        levels = len(encoder_widths)
        if input_unshuffle not in UNSHUFFLE_FACTORS:
            raise InputError(
                f"input_unshuffle must be one of {UNSHUFFLE_FACTORS}; got {input_unshuffle!r}"
            )
        if not levels or input_unshuffle * 2 ** (levels - 1) != self.map_stride:
            raise InputError(
                "the deepest encoder level must be at 1/8 of the input "
                f"(input_unshuffle * 2 ** (levels - 1) == 8); got input_unshuffle="
                f"{input_unshuffle} and {levels} levels. Use 4 levels with input_unshuffle=1, "
                "3 with 2, or 2 with 4."
            )
        if len(encoder_kernels) != levels or len(decoder_widths) != levels:
            raise InputError(
                "encoder_widths, encoder_kernels and decoder_widths must have the same length; "
                f"got {levels}, {len(encoder_kernels)} and {len(decoder_widths)}"
            )
        if len(head_widths) != 2:
            raise InputError(f"head_widths must hold two widths; got {list(head_widths)}")
        if quality_terms < 1 or not magnitude_eps > 0:
            raise InputError(
                "quality_terms must be at least 1 and magnitude_eps positive; got "
                f"{quality_terms} and {magnitude_eps}"
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
            "content_width": content_width,
            "residual_blocks": residual_blocks,
            "head_hidden": head_hidden,
            "quality_terms": quality_terms,
            "magnitude_eps": magnitude_eps,
            "distortion_weighting": distortion_weighting,
            "negative_slope": negative_slope,
            "batch_norm": batch_norm,
            "receptive_margin": receptive_margin,
            "input_unshuffle": input_unshuffle,
        }
        self.input_unshuffle = input_unshuffle
        self.levels = levels
        self.magnitude_eps = float(magnitude_eps)
        self.distortion_weighting = distortion_weighting
        slope = negative_slope

        # Shared encoder (content path: any layers).
        self.stem = _ContentBlock(
            3 * input_unshuffle**2,
            stem_channels,
            stem_kernel,
            negative_slope=slope,
            batch_norm=batch_norm,
        )
        widths = [stem_channels, *encoder_widths]
        self.encoder = nn.ModuleList(
            _ContentBlock(
                widths[i],
                widths[i + 1],
                encoder_kernels[i],
                negative_slope=slope,
                batch_norm=batch_norm,
            )
            for i in range(levels)
        )
        # Attention over the reference's content: one positive gate per level.
        self.level_gates = nn.ModuleList(_conv(c, c, 1, bias=True) for c in encoder_widths)

        # Difference path: bias-free, zero-preserving.
        self.bottom = _DifferenceBlock(
            encoder_widths[-1], decoder_widths[0], decoder_kernel, negative_slope=slope
        )
        self.decoder = nn.ModuleList(
            _DifferenceBlock(
                decoder_widths[j] + encoder_widths[levels - 1 - j],
                decoder_widths[j + 1],
                decoder_kernel,
                negative_slope=slope,
            )
            for j in range(levels - 1)
        )
        self.trunk = nn.Sequential(
            _DifferenceBlock(
                decoder_widths[-1] + encoder_widths[0],
                head_widths[0],
                head_kernel,
                stride=4 // input_unshuffle,
                negative_slope=slope,
            ),
            _DifferenceBlock(
                head_widths[0], head_widths[1], head_kernel, stride=2, negative_slope=slope
            ),
        )
        self.residuals = nn.Sequential(
            *(ResidualBlock(head_widths[1], bias=False) for _ in range(residual_blocks))
        )
        self.hidden = _conv(head_widths[1], head_hidden, 1, bias=False)
        # Non-negative combination of the magnitudes: softplus of free parameters.
        self.distance_logits = nn.Parameter(torch.full((head_hidden,), -3.0))

        # Reference content at 1/8: the spatial gate and the pooling weight.
        self.content = _ContentBlock(
            encoder_widths[-1], content_width, 3, negative_slope=slope, batch_norm=False
        )
        self.content_gate = _conv(content_width, head_widths[1], 1, bias=True)
        self.content_weight = _conv(content_width, 1, 1, bias=True)
        self.weight_slope = nn.Parameter(torch.tensor(-2.0))

        # Quality map: a mixture of decaying exponentials, rates log-spaced 0.1 .. 10.
        self.quality_logits = nn.Parameter(torch.zeros(quality_terms))
        rates = torch.logspace(-1.0, 1.0, quality_terms) if quality_terms > 1 else torch.ones(1)
        self.log_rates = nn.Parameter(rates.log())

        self.size_multiple = input_unshuffle * 2**levels
        self.receptive_margin = receptive_margin
        self.tile_size = 512 * input_unshuffle
        self._init_difference_path(slope)

    def _init_difference_path(self, negative_slope: float) -> None:
        """Variance-preserving initialisation of the difference path, gates mostly open.

        PyTorch's default convolution initialisation shrinks the signal by
        about 3x per layer; over the ~10 bias-free layers between the
        feature differences and the magnitude the distance of a visible
        distortion would start near 1e-5, deep in the magnitude's quadratic
        region where its gradient vanishes.
        """
        for module in (self.bottom, self.decoder, self.trunk, self.residuals, self.hidden):
            for conv in module.modules():
                if isinstance(conv, nn.Conv2d):
                    nn.init.kaiming_normal_(
                        conv.weight, a=negative_slope, nonlinearity="leaky_relu"
                    )
        for gate in (*self.level_gates, self.content_gate):
            nn.init.constant_(gate.bias, 2.0)  # sigmoid(2) = 0.88: the gates start open

    def encode(self, x: Tensor) -> list[Tensor]:
        """Encoder features of every level, shallowest first.

        Args:
            x: Encoder input ``(N, 3 f^2, H / f, W / f)``.

        Returns:
            One tensor per level.
        """
        return encode_levels(self.stem, self.encoder, x)

    def distance_maps(self, dist: Tensor, ref: Tensor) -> tuple[Tensor, Tensor]:
        """Per-location distance ``D >= 0`` and content weight, at 1/8 of the input.

        Args:
            dist: Distorted images ``(N, 3, H, W)`` in ``[0, 1]``, ``H`` and
                ``W`` multiples of :attr:`size_multiple`.
            ref: Reference images, same shape.

        Returns:
            ``(distance, weight)``, each ``(N, 1, H / 8, W / 8)``; the weight
            is the pooling weight (positive).
        """
        a, b = self.features(dist, ref)
        n = a.shape[0]
        # One call for both images, in training too: the two branches run the
        # same arithmetic on the same batch, so identical images give bitwise
        # identical features (and BatchNorm in training sees one joint batch).
        both = self.encode(torch.cat((a, b)))
        refs = [f[n:] for f in both]
        diffs = [
            (f[:n] - f[n:]) * torch.sigmoid(gate(r))
            for f, r, gate in zip(both, refs, self.level_gates, strict=True)
        ]
        x = F.interpolate(self.bottom(F.max_pool2d(diffs[-1], 2)), scale_factor=2.0)
        for j, block in enumerate(self.decoder):
            x = block(torch.cat((x, diffs[self.levels - 1 - j]), dim=1))
            x = F.interpolate(x, scale_factor=2.0)
        x = self.trunk(torch.cat((x, diffs[0]), dim=1))
        content = self.content(refs[-1])
        x = self.residuals(x * torch.sigmoid(self.content_gate(content)))
        magnitude = smooth_magnitude(self.hidden(x).float(), self.magnitude_eps)
        combine = F.softplus(self.distance_logits.float()).view(1, -1, 1, 1)
        distance = (magnitude * combine).sum(dim=1, keepdim=True)
        weight = F.softplus(self.content_weight(content).float()) + WEIGHT_EPS
        if self.distortion_weighting:
            weight = weight * (1.0 + F.softplus(self.weight_slope.float()) * distance)
        return distance, weight

    def impairment(self, distance: Tensor) -> Tensor:
        """``1 - quality`` for a distance map: ``sum_k pi_k (1 - exp(-s_k D))``.

        Args:
            distance: Non-negative distances, any shape.

        Returns:
            Values in ``[0, 1]``, 0 exactly where ``distance`` is 0, increasing.
        """
        pi = torch.softmax(self.quality_logits.float(), dim=0)
        rates = self.log_rates.float().exp()
        shape = (-1,) + (1,) * distance.dim()
        terms = -torch.expm1(-rates.view(shape) * distance.unsqueeze(0))
        return (pi.view(shape) * terms).sum(dim=0).clamp(0.0, 1.0)

    def forward_loss_maps(self, dist: Tensor, ref: Tensor) -> tuple[Tensor, Tensor]:
        """Per-location impairment ``1 - quality`` and pooling weight.

        Args:
            dist: Distorted images ``(N, 3, H, W)`` in ``[0, 1]``.
            ref: Reference images, same shape.

        Returns:
            ``(impairment, weight)``, each ``(N, 1, H / 8, W / 8)`` float32:
            impairment in ``[0, 1]`` (0 for identical content), weight positive.
        """
        distance, weight = self.distance_maps(dist, ref)
        return self.impairment(distance), weight

    def forward_maps(self, dist: Tensor, ref: Tensor) -> tuple[Tensor, Tensor]:
        """Per-location quality and pooling weight.

        Args:
            dist: Distorted images ``(N, 3, H, W)`` in ``[0, 1]``, ``H`` and
                ``W`` multiples of :attr:`size_multiple`.
            ref: Reference images, same shape.

        Returns:
            ``(quality, weight)``, each ``(N, 1, H / 8, W / 8)`` float32:
            quality in ``[0, 1]``, exactly 1 where the features of the two
            images agree, and a positive weight.
        """
        impairment, weight = self.forward_loss_maps(dist, ref)
        return 1.0 - impairment, weight

    def forward(self, dist: Tensor, ref: Tensor) -> Tensor:
        """Quality score: the weighted mean of the quality map.

        Computed as ``1 - sum(w (1 - q)) / sum(w)`` (algebraically the
        weighted mean of ``q``), so that at ``dist == ref`` the gradient with
        respect to the weights, and through them to ``ref``, is exactly zero.

        Args:
            dist: Distorted images ``(N, 3, H, W)`` in ``[0, 1]``.
            ref: Reference images, same shape.

        Returns:
            Scores ``(N,)`` in ``[0, 1]``, exactly 1 for identical images.
        """
        impairment, weight = self.forward_loss_maps(dist, ref)
        pooled = (weight * impairment).sum(dim=(1, 2, 3)) / weight.sum(dim=(1, 2, 3))
        return 1.0 - pooled

    def extra_repr(self) -> str:
        """Summarise the architecture in ``repr``."""
        return f"{super().extra_repr()}, eps={self.magnitude_eps}"
