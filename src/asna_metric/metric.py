"""The ASNA metric: a frozen ensemble of networks, any image size, test-time self-ensemble.

Example:
    >>> import torch
    >>> from asna_metric import ASNA
    >>> metric = ASNA()  # doctest: +SKIP
    >>> dist, ref = torch.rand(2, 3, 256, 256), torch.rand(2, 3, 256, 256)
    >>> metric(dist, ref).shape  # doctest: +SKIP
    torch.Size([2])
"""

from __future__ import annotations

import contextlib
import copy
import functools
import logging
import math
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal, cast

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from asna_metric.calibration import Calibration
from asna_metric.ensemble import SelfEnsembleMode, View, apply_views, invert_dihedral, views
from asna_metric.errors import InputError, WeightsIntegrityError
from asna_metric.inputs import check_images, check_pair, to_batch
from asna_metric.nets import PairQualityNet
from asna_metric.tiling import reflect_pad, run_tiled, tile_grid, upsample, valid_counts
from asna_metric.weights import DEFAULT_WEIGHTS

__all__ = ["ASNA", "ASNALoss"]

logger = logging.getLogger(__name__)

Reduction = Literal["mean", "sum", "none"]

#: Views of one tile are run together while ``views x N x tile pixels`` stays
#: below this many pixels (about 1 GB of activations for the default network
#: in inference); larger batches are split into chunks of views.
BATCH_PIXELS = 1 << 20

#: Tile side of networks that do not state their own ``tile_size``.
DEFAULT_TILE_SIZE = 512

#: :class:`ASNALoss` accepts images up to this far outside ``[0, 1]``
#: (overshoot of image-producing networks); further out raises.
LOSS_RANGE_SLACK = 0.5


class ASNA(nn.Module):
    """ASNA full-reference image-quality metric (higher is better, in ``[0, 1]``).

    Scores a distorted image against its reference with a frozen ensemble of
    ASNA networks, averaged over the members and over the test-time
    self-ensemble views (the same rotation/flip/lightness change applied to
    both images).

    Any size of at least 32x32 is accepted, without resizing: both images
    are padded identically (reflection) to a multiple of the networks'
    ``size_multiple`` and the padded pixels are left out of the pooling.
    Images larger than ``tile_size`` are processed tile by tile; each tile
    keeps an overlap of the networks' ``receptive_margin`` around the part
    of the map it contributes, so memory stays bounded (a 2048x2048 pair
    works on a laptop) and the result is close to the untiled one.

    The score is the weighted mean of the quality map, with the networks'
    per-location weights: for each member and view, ``sum(w * q) / sum(w)``
    over the valid pixels of the input (map locations are 8x8 blocks, the
    last ones cut by the image border count only their valid pixels), then
    the mean over members and views. :meth:`map` returns a quality map at
    input resolution whose weighted mean with the returned weights is the
    score.

    The module is always in eval mode and its parameters never receive
    gradients; the score is differentiable with respect to the images.

    Args:
        weights: A registry name (see :func:`asna_metric.list_weights`) or a
            path to a ``.safetensors`` file written by
            :func:`asna_metric.weights.save_ensemble`.
        self_ensemble: ``"none"`` (1 view, the default), ``"flips"`` (the 8
            rotations and flips) or ``"full"`` (20 views: those 8 and 12
            lightness scales), see :func:`asna_metric.ensemble.views`. With
            the default weights ``"flips"`` took 4.2x the time of ``"none"``
            on two threads (7.7x on one) and gave no measurable accuracy
            gain (held-out SRCC 0.9071 against 0.9065,
            ``training/eval/flips_vs_none.json``).
        tile_size: Largest tile side, in pixels, processed at once; larger
            images are tiled. Rounded down to a multiple of the networks'
            ``size_multiple``. ``None`` (the default) takes the smallest of
            the members' own ``tile_size`` (512 px for networks at the input
            resolution, ``512 * input_unshuffle`` for the others: 2048 px for
            the default weights).
        cache_dir: Hugging Face cache folder for registry weights.
        revision: Hub commit to fetch instead of the pinned one.
        local_files_only: Never reach the network; ``None`` follows
            ``HF_HUB_OFFLINE``.

    Attributes:
        higher_is_better: ``True``.
        score_range: ``(0.0, 1.0)``, the quality scale. Identical pairs
            score highest, but not 1: about 0.8-0.9 with the shipped weights
            (0.79-0.91 on six Kodak photographs and the sample pair).
        weights_name: Name stored in the weights file (or the registry name).
        weights_revision: Hub revision of registry weights, ``None`` for a
            local file (see ``weights_sha256``).
        weights_sha256: sha256 of the weights file.
        self_ensemble: The self-ensemble mode.

    Raises:
        InputError: An option has an invalid value.
        UnknownWeightsError: ``weights`` is neither a registry name nor a path.
        WeightsNotFoundError: The weights are not available locally and
            cannot be downloaded.
        WeightsIntegrityError: The weights file is corrupt or does not match.

    Example:
        >>> import torch
        >>> from asna_metric.nets import build_net
        >>> net = build_net("asna", {"encoder_widths": [4, 4, 4, 4],
        ...                          "decoder_widths": [4, 4, 4, 4]})
        >>> metric = ASNA.from_networks([net], self_ensemble="none")
        >>> x = torch.rand(2, 3, 48, 40)
        >>> metric(x, x.flip(-1)).shape
        torch.Size([2])
        >>> metric.map(x, x).shape
        torch.Size([2, 1, 48, 40])

    References:
        Ayyoubzadeh, Royat: "(ASNA) An Attention-based Siamese-Difference
        Neural Network with Surrogate Ranking Loss function for Perceptual
        Image Quality Assessment", CVPR Workshops (NTIRE) 2021.
    """

    higher_is_better: ClassVar[bool] = True
    score_range: ClassVar[tuple[float, float]] = (0.0, 1.0)

    members: nn.ModuleList
    weights_name: str
    weights_revision: str | None
    weights_sha256: str | None

    def __init__(
        self,
        weights: str | os.PathLike[str] = DEFAULT_WEIGHTS,
        *,
        self_ensemble: SelfEnsembleMode = "none",
        tile_size: int | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
        revision: str | None = None,
        local_files_only: bool | None = None,
    ) -> None:
        super().__init__()
        from asna_metric.weights import REGISTRY, load_ensemble, resolve_weights, sha256_file

        path = resolve_weights(
            weights, cache_dir=cache_dir, revision=revision, local_files_only=local_files_only
        )
        nets, metadata = load_ensemble(path)
        registered = isinstance(weights, str) and weights in REGISTRY
        self._setup(
            nets,
            name=metadata.get("name") or (str(weights) if registered else Path(path).name),
            revision=(revision or REGISTRY[str(weights)].revision) if registered else None,
            sha256=REGISTRY[str(weights)].sha256 if registered and not revision else None,
            metadata=metadata,
            self_ensemble=self_ensemble,
            tile_size=tile_size,
        )
        if self.weights_sha256 is None:
            self.weights_sha256 = sha256_file(path)

    @property
    def provenance(self) -> dict[str, Any]:
        """What to cite these scores with: weights name, sha256, Hub revision and source.

        The schema of :func:`asna_metric._provenance.describe_weights`, which
        every output that cites weights uses (``score --json``, ``eval``,
        the benchmarks): ``source`` is ``"embedded"``, ``"hub"``, ``"local"``
        or ``"memory"`` (:meth:`from_networks`: no file identifies them).
        """
        from asna_metric.weights import REGISTRY

        spec = REGISTRY.get(self.weights_name)
        registered = spec is not None and spec.sha256 == self.weights_sha256
        if self.weights_revision is not None:
            source = "hub"
        elif registered:
            source = "embedded"
        else:
            source = "local" if self.weights_sha256 is not None else "memory"
        return {
            "name": self.weights_name,
            "sha256": self.weights_sha256,
            "revision": self.weights_revision,
            "repo_id": spec.repo_id
            if spec is not None and (registered or source == "hub")
            else None,
            "source": source,
        }

    @classmethod
    def from_networks(
        cls,
        nets: Sequence[nn.Module],
        *,
        name: str = "custom",
        self_ensemble: SelfEnsembleMode = "none",
        tile_size: int | None = None,
    ) -> ASNA:
        """Build the metric around networks held in memory (tests, training, validation).

        The networks are copied (the originals keep training, if they were);
        the copies are frozen and put in eval mode.

        Args:
            nets: Networks from :mod:`asna_metric.nets` (one or more).
            name: Name shown in ``repr``.
            self_ensemble: See :class:`ASNA`.
            tile_size: See :class:`ASNA`.

        Returns:
            The metric.

        Raises:
            InputError: ``nets`` is empty or holds something that is not an
                ASNA network, or an option is invalid.
        """
        metric = cls.__new__(cls)
        nn.Module.__init__(metric)
        metric._setup(
            [copy.deepcopy(net) for net in nets],
            name=name,
            revision=None,
            sha256=None,
            metadata={},
            self_ensemble=self_ensemble,
            tile_size=tile_size,
        )
        return metric

    def _setup(
        self,
        nets: list[nn.Module],
        *,
        name: str,
        revision: str | None,
        sha256: str | None,
        metadata: dict[str, str],
        self_ensemble: SelfEnsembleMode,
        tile_size: int | None,
    ) -> None:
        if not nets:
            raise InputError("nets must hold at least one network; got an empty sequence.")
        for i, net in enumerate(nets):
            missing = [
                attr
                for attr in ("forward_maps", "size_multiple", "map_stride", "receptive_margin")
                if not hasattr(net, attr)
            ]
            if not isinstance(net, nn.Module) or missing:
                raise InputError(
                    f"nets[{i}] must be an asna_metric.nets network; got "
                    f"{type(net).__name__} (missing {missing}). Build it with "
                    "asna_metric.nets.build_net."
                )
        strides = {int(net.map_stride) for net in nets}  # type: ignore[arg-type]
        if len(strides) != 1:
            raise InputError(
                f"all networks of an ensemble must share one map_stride; got {sorted(strides)}."
            )
        self.members = nn.ModuleList(nets)
        # channels_last: the narrow convolutions run ~1.5x faster on CPU (see
        # docs/performance.md); the inputs are converted in _tile_maps.
        self.members.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        self.requires_grad_(False)
        super().train(False)
        self.map_stride: int = strides.pop()
        self.size_multiple: int = math.lcm(*(int(n.size_multiple) for n in nets))  # type: ignore[arg-type]
        self.weights_name = name
        self.weights_revision = revision
        self.weights_sha256 = sha256
        self.weights_metadata = dict(metadata)
        self.calibration = Calibration.from_metadata(metadata)
        #: Every member scores exactly 1 at identity, so the ensemble does too.
        exact = [bool(getattr(n, "identity_exact", False)) for n in nets]
        self.identity_exact: bool = all(exact)
        if any(exact) and not (self.calibration.is_identity):
            raise WeightsIntegrityError(
                f"weights {name!r} hold an identity-exact network (asna_id) and an affine "
                f"calibration {self.calibration}, which would move the top of the scale away "
                "from 1. Save the file without a calibration: its monotone quality map is "
                "learnt with the network."
            )
        self.calibration_scale = self.calibration.scale
        self.calibration_offset = self.calibration.offset
        self.self_ensemble: str = self_ensemble
        self.views: tuple[View, ...] = views(self_ensemble)
        if tile_size is None:
            tile_size = min(int(getattr(n, "tile_size", DEFAULT_TILE_SIZE)) for n in nets)
        if isinstance(tile_size, bool) or not isinstance(tile_size, int):
            raise InputError(f"tile_size must be an int or None; got {type(tile_size).__name__}.")
        # Networks whose maps are not spatial are never tiled: no margin.
        self._margins = [
            -(-int(n.receptive_margin) // self.size_multiple) * self.size_multiple  # type: ignore[arg-type]
            if getattr(n, "spatially_faithful", True)
            else 0
            for n in nets
        ]
        smallest = 2 * max(self._margins) + self.size_multiple
        if tile_size < smallest:
            raise InputError(
                f"tile_size must be at least {smallest} px for these networks (twice the "
                f"receptive margin {max(self._margins)} plus {self.size_multiple}); got "
                f"{tile_size}. Use a larger tile_size, or None for the networks' own."
            )
        self.tile_size = tile_size // self.size_multiple * self.size_multiple
        self._compile_options: dict[str, Any] | None = None
        self._compiled: dict[int, Any] = {}

    def compile(self, **options: Any) -> None:
        """Compile the networks with :func:`torch.compile` (opt-in; scores unchanged within 1e-5).

        Unlike :meth:`torch.nn.Module.compile`, which would compile the whole
        ``forward`` including the conversion of PIL images and paths, this
        compiles each member's ``forward_maps``, lazily on the first call.
        On one CPU thread at 512x384 (``docs/performance.md``,
        ``benchmarks/speed/compile_check.py``) it made the default network
        1.01x faster (1.12x with ``dynamic=True``) and the full-resolution
        networks of ``asna-kadid-synth`` 1.22x faster, after a compilation
        of 22 s (15 s with ``dynamic=True``) and, without ``dynamic=True``,
        12 s more at each new input shape; it pays off for long runs over
        images of few distinct sizes. It needs a C++ compiler on the CPU
        (inductor generates C++).

        Args:
            **options: Keyword arguments of :func:`torch.compile` (e.g.
                ``dynamic=True`` to compile once for all sizes, ``mode``).
        """
        self._compile_options = dict(options)
        self._compiled = {}

    def __getstate__(self) -> dict[str, Any]:
        """Copy and pickle without the compiled functions (recompiled on demand)."""
        state = dict(self.__dict__)
        state["_compiled"] = {}
        return state

    def _forward_maps(self, net: PairQualityNet) -> Any:
        """``net.forward_maps``, compiled when :meth:`compile` was called."""
        if self._compile_options is None:
            return net.forward_maps
        fn = self._compiled.get(id(net))
        if fn is None:
            fn = self._compiled[id(net)] = torch.compile(net.forward_maps, **self._compile_options)
        return fn

    def train(self, mode: bool = True) -> ASNA:
        """Keep the metric in eval mode (it never trains; BatchNorm stays frozen).

        Args:
            mode: Ignored.

        Returns:
            ``self``.
        """
        return super().train(False)

    def __repr__(self) -> str:
        if self.weights_revision is not None:
            origin = f"revision={self.weights_revision!r}"
        elif self.weights_sha256 is not None:
            # Local files and embedded weights not yet on the Hub: the hash identifies them.
            origin = f"revision=None, sha256={self.weights_sha256[:16]}..."
        else:
            origin = "revision=None (networks in memory)"
        return (
            f"{type(self).__name__}(weights={self.weights_name!r}, {origin}, "
            f"self_ensemble={self.self_ensemble!r}, members={len(self.members)}, "
            f"tile_size={self.tile_size})"
        )

    # ------------------------------------------------------------------ public

    def forward(self, dist: Any, ref: Any) -> Tensor:
        """Score distorted images against their references.

        Args:
            dist: Distorted images: a tensor ``(N, 3, H, W)`` or ``(3, H, W)``
                in ``[0, 1]``, or anything :func:`asna_metric.inputs.to_batch`
                accepts (PIL images, numpy arrays, paths, lists).
            ref: Reference images, the same shape.

        Returns:
            Quality scores ``(N,)``, float32 in ``[0, 1]``, higher is better;
            differentiable with respect to tensor inputs that require grad.

        Raises:
            InputError: The inputs are not a valid pair (shape, size below
                32x32, values outside ``[0, 1]``, ...).
        """
        return 1.0 - self._score_deficit(dist, ref)

    def _score_deficit(self, dist: Any, ref: Any) -> Tensor:
        """``1 - forward(dist, ref)``, computed without cancellation (see :meth:`_deficit`)."""
        dist, ref = self._prepare(dist, ref)
        with self._grad_context(dist, ref) as needs_grad:
            deficit = self._deficit(dist, ref)
        return deficit if needs_grad else deficit.clone()

    def _deficit(self, dist: Tensor, ref: Tensor) -> Tensor:
        """``1 - score`` pooled as the weighted mean of ``1 - quality``, without cancellation.

        Pooling ``1 - q`` rather than ``q`` makes an identity-exact network's
        deficit exactly 0 at identity with exactly zero gradient, through
        the pooling weights too, and keeps full float resolution near the
        top of the scale (``ASNALoss`` uses it directly).
        """
        quality, weight, counts = self._maps(dist, ref)
        num = (counts * weight * (1.0 - quality)).sum(dim=(2, 3, 4))
        den = (counts * weight).sum(dim=(2, 3, 4))
        return (num / den).mean(dim=0)

    def map(
        self, dist: Any, ref: Any, *, return_weights: bool = False
    ) -> Tensor | tuple[Tensor, Tensor]:
        """Quality map at input resolution (and the weights that pool it into the score).

        Each map location of the networks covers an 8x8 block of the input
        and is repeated over it. Members and views are combined so that
        ``(weights * quality).sum((1, 2, 3)) / weights.sum((1, 2, 3))``
        equals :meth:`forward` (up to float rounding): for every member and
        view the weights are divided by their sum over the image, the
        returned weights are their mean (they sum to 1 per image) and the
        quality map is the correspondingly weighted mean of the views'
        quality maps, each brought back to the original orientation.

        Args:
            dist: Distorted images (as for :meth:`forward`).
            ref: Reference images.
            return_weights: Also return the pooling weights.

        Returns:
            The quality map ``(N, 1, H, W)`` in ``[0, 1]`` (float32), or
            ``(quality, weights)`` with ``weights`` of the same shape.

        Raises:
            InputError: The inputs are not a valid pair.
        """
        dist, ref = self._prepare(dist, ref)
        height, width = dist.shape[-2:]
        with self._grad_context(dist, ref) as needs_grad:
            quality, weight, counts = self._maps(dist, ref)
            den = (counts * weight).sum(dim=(2, 3, 4), keepdim=True)
            norm = weight / den  # per member and view, sums to 1 over the valid pixels
            pooled_weight = norm.mean(dim=0)
            pooled_quality = (norm * quality).mean(dim=0) / pooled_weight
            out = [
                upsample(t, self.map_stride)[..., :height, :width]
                for t in (pooled_quality, pooled_weight)
            ]
        if not needs_grad:
            out = [t.clone() for t in out]
        return (out[0], out[1]) if return_weights else out[0]

    # ----------------------------------------------------------------- helpers

    def _prepare(self, dist: Any, ref: Any) -> tuple[Tensor, Tensor]:
        """Convert and validate the inputs, and move them to the members' device and dtype."""
        dist = to_batch(dist, name="dist")
        ref = to_batch(ref, name="ref")
        check_pair(dist, ref)
        param = next(self.members.parameters())
        dist = dist.to(device=param.device, dtype=param.dtype).clamp(0.0, 1.0)
        ref = ref.to(device=param.device, dtype=param.dtype).clamp(0.0, 1.0)
        return dist, ref

    @contextlib.contextmanager
    def _grad_context(self, dist: Tensor, ref: Tensor) -> Iterator[bool]:
        """Run under inference mode unless a gradient with respect to an input is wanted."""
        needs_grad = torch.is_grad_enabled() and (dist.requires_grad or ref.requires_grad)
        if needs_grad:
            yield True
        else:
            with torch.inference_mode():
                yield False

    def _maps(self, dist: Tensor, ref: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Quality and weight maps of every member and view, at map resolution.

        Returns:
            ``(quality, weight, counts)``: ``quality`` and ``weight`` are
            float32 ``(P, N, 1, h, w)`` for ``P = members x views`` on the
            padded image (``h = ceil(H / size_multiple) * size_multiple / map_stride``),
            in the original orientation; ``counts`` ``(1, 1, 1, h, w)`` holds
            the number of valid (unpadded) input pixels of each location.
        """
        height, width = dist.shape[-2:]
        padded_h = -(-height // self.size_multiple) * self.size_multiple
        padded_w = -(-width // self.size_multiple) * self.size_multiple
        dist_p = reflect_pad(dist, padded_h, padded_w)
        ref_p = reflect_pad(ref, padded_h, padded_w)
        qualities: list[Tensor] = []
        weights: list[Tensor] = []
        for net, margin in zip(self.members, self._margins, strict=True):
            if getattr(net, "spatially_faithful", True):
                rows = tile_grid(padded_h, self.tile_size, margin, self.size_multiple)
                cols = tile_grid(padded_w, self.tile_size, margin, self.size_multiple)
            else:  # a map that is not spatial cannot be stitched: one tile
                rows, cols = [(0, padded_h, 0, padded_h)], [(0, padded_w, 0, padded_w)]
            if len(rows) * len(cols) > 1:
                logger.debug(
                    "%dx%d image: %d tiles of at most %d px",
                    height,
                    width,
                    len(rows) * len(cols),
                    self.tile_size,
                )
            tile_fn = functools.partial(self._tile_maps, cast(PairQualityNet, net))
            q_views, w_views = run_tiled(tile_fn, dist_p, ref_p, rows, cols, self.map_stride)
            qualities += q_views
            weights += w_views
        counts = valid_counts(height, width, padded_h, padded_w, self.map_stride, dist.device)
        # Per location, so the map's weighted mean is still exactly the score.
        quality = self.calibration.apply(torch.stack(qualities))
        return quality, torch.stack(weights), counts

    def _tile_maps(
        self, net: PairQualityNet, dist: Tensor, ref: Tensor
    ) -> tuple[list[Tensor], list[Tensor]]:
        """Maps of one tile under every view, back in the tile's orientation (float32)."""
        n, _, tile_h, tile_w = dist.shape
        dist_views = apply_views(dist, self.views)
        ref_views = apply_views(ref, self.views)
        per_chunk = max(1, BATCH_PIXELS // (n * tile_h * tile_w))
        qualities: list[Tensor] = [dist] * len(self.views)  # placeholders, all replaced
        weights: list[Tensor] = [dist] * len(self.views)
        # Views that keep the tile's shape and those that transpose it are batched apart.
        for group in (
            [i for i, v in enumerate(self.views) if v.dihedral % 2 == parity] for parity in (0, 1)
        ):
            for start in range(0, len(group), per_chunk):
                chunk = group[start : start + per_chunk]
                q, w = self._forward_maps(net)(
                    _batch_views([dist_views[i] for i in chunk]),
                    _batch_views([ref_views[i] for i in chunk]),
                )
                for i, q_i, w_i in zip(chunk, q.float().split(n), w.float().split(n), strict=True):
                    k = self.views[i].dihedral
                    qualities[i] = invert_dihedral(q_i, k)
                    weights[i] = invert_dihedral(w_i, k)
        return qualities, weights


class ASNALoss(nn.Module):
    """ASNA as a loss: ``1 - score``, lower is better, tolerant of slightly out-of-range images.

    Networks that produce images (restoration, residual super-resolution)
    overshoot ``[0, 1]`` a little; :class:`ASNA` itself rejects such values,
    but the loss accepts them: both images are clamped to ``[0, 1]`` before
    they are scored, and the part outside the range is penalised,
    ``range_weight * mean(relu(x - 1) ** 2 + relu(-x) ** 2)`` per image and
    input, so that the gradient of an out-of-range pixel always points back
    into the range (a clamp alone would give it no gradient at all). For
    images inside ``[0, 1]`` the loss is ``1 - ASNA(dist, ref)`` (to float
    rounding: it pools ``1 - q`` directly).

    Values further than :data:`LOSS_RANGE_SLACK` outside ``[0, 1]`` (below
    -0.5 or above 1.5), NaN and infinity still raise
    :class:`~asna_metric.errors.InputError`: they come from a ``[0, 255]``
    or ``[-1, 1]`` convention, or a diverged network, not from overshoot.

    Args:
        weights: As for :class:`ASNA`.
        reduction: ``"mean"`` (default), ``"sum"`` or ``"none"`` (per image,
            shape ``(N,)``).
        range_weight: Weight of the out-of-range penalty (non-negative;
            0 turns it off, leaving clamped pixels without gradient).
        self_ensemble: As for :class:`ASNA`.
        tile_size: As for :class:`ASNA`.
        cache_dir: As for :class:`ASNA`.
        revision: As for :class:`ASNA`.
        local_files_only: As for :class:`ASNA`.

    Raises:
        InputError: ``reduction`` or another option is invalid.

    Example:
        >>> import torch
        >>> from asna_metric.nets import build_net
        >>> net = build_net("siamese_diff", {"encoder_widths": [4, 4, 4, 4],
        ...                                  "decoder_widths": [4, 4, 4, 4]})
        >>> loss_fn = ASNALoss.from_metric(ASNA.from_networks([net], self_ensemble="none"))
        >>> restored = (torch.rand(1, 3, 32, 32) * 1.1).requires_grad_()  # overshoots 1
        >>> loss = loss_fn(restored, torch.rand(1, 3, 32, 32))
        >>> loss.backward()
        >>> restored.grad.shape
        torch.Size([1, 3, 32, 32])
    """

    higher_is_better: ClassVar[bool] = False

    def __init__(
        self,
        weights: str | os.PathLike[str] = DEFAULT_WEIGHTS,
        *,
        reduction: Reduction = "mean",
        range_weight: float = 1.0,
        self_ensemble: SelfEnsembleMode = "none",
        tile_size: int | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
        revision: str | None = None,
        local_files_only: bool | None = None,
    ) -> None:
        super().__init__()
        _check_reduction(reduction)
        self.reduction = reduction
        self.range_weight = _check_range_weight(range_weight)
        self.metric = ASNA(
            weights,
            self_ensemble=self_ensemble,
            tile_size=tile_size,
            cache_dir=cache_dir,
            revision=revision,
            local_files_only=local_files_only,
        )

    @classmethod
    def from_metric(
        cls, metric: ASNA, *, reduction: Reduction = "mean", range_weight: float = 1.0
    ) -> ASNALoss:
        """Wrap an existing :class:`ASNA` (e.g. one built with :meth:`ASNA.from_networks`).

        Args:
            metric: The metric.
            reduction: See :class:`ASNALoss`.
            range_weight: See :class:`ASNALoss`.

        Returns:
            The loss module.
        """
        _check_reduction(reduction)
        loss = cls.__new__(cls)
        nn.Module.__init__(loss)
        loss.reduction = reduction
        loss.range_weight = _check_range_weight(range_weight)
        loss.metric = metric
        return loss

    def forward(self, dist: Any, ref: Any) -> Tensor:
        """Compute ``1 - ASNA(clamp(dist), clamp(ref))`` plus the out-of-range penalty.

        Args:
            dist: Distorted (e.g. restored) images: a tensor ``(N, 3, H, W)``
                or ``(3, H, W)``, finite, within ``[-0.5, 1.5]``, or anything
                :func:`asna_metric.inputs.to_batch` accepts.
            ref: Reference images, the same shape.

        Returns:
            A scalar for ``"mean"``/``"sum"``, else ``(N,)``.

        Raises:
            InputError: The inputs are not a valid pair, hold NaN or
                infinite values, or values more than 0.5 outside ``[0, 1]``.
        """
        dist = to_batch(dist, name="dist")
        ref = to_batch(ref, name="ref")
        penalty = dist.new_zeros(dist.shape[0])
        for name, x in (("dist", dist), ("ref", ref)):
            check_images(x, name=name, tolerance=LOSS_RANGE_SLACK)
            if self.range_weight:
                excess = F.relu(x - 1.0).square() + F.relu(-x).square()
                penalty = penalty + excess.flatten(1).mean(dim=1)
        # 1 - score, pooled directly: exactly 0 with zero gradient at identity for
        # identity-exact networks, and no float32 cancellation near the top.
        deficit = self.metric._score_deficit(dist.clamp(0.0, 1.0), ref.clamp(0.0, 1.0))
        loss = deficit + self.range_weight * penalty.to(deficit.dtype)
        if self.reduction == "mean":
            return loss.mean()
        if self.reduction == "sum":
            return loss.sum()
        return loss


def _check_reduction(reduction: str) -> None:
    if reduction not in ("mean", "sum", "none"):
        raise InputError(f"reduction must be 'mean', 'sum' or 'none'; got {reduction!r}.")


def _check_range_weight(weight: float) -> float:
    if isinstance(weight, bool) or not isinstance(weight, (int, float)):
        raise InputError(f"range_weight must be a number >= 0; got {type(weight).__name__}.")
    if not (math.isfinite(weight) and weight >= 0):
        raise InputError(f"range_weight must be a finite number >= 0; got {weight!r}.")
    return float(weight)


def _batch_views(tensors: list[Tensor]) -> Tensor:
    """Concatenate views along the batch, in ``channels_last`` (one view: no copy if it is)."""
    x = tensors[0] if len(tensors) == 1 else torch.cat(tensors)
    return x.contiguous(memory_format=torch.channels_last)
