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
import json
import logging
import math
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal, cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from asna_metric.ensemble import SelfEnsembleMode, View, apply_views, invert_dihedral, views
from asna_metric.errors import InputError, WeightsIntegrityError
from asna_metric.inputs import check_pair, to_batch
from asna_metric.nets import PairQualityNet
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
        score_range: ``(0.0, 1.0)``: 1 for an identical pair.
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
        self.calibration_scale, self.calibration_offset = _calibration(metadata)
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
        On the 2-core CPU of ``docs/performance.md``, at 512x384, it made
        the default network 1.0-1.1x faster and the full-resolution networks
        of ``asna-kadid-synth`` 1.2x faster, after a one-off compilation of
        seconds to tens of seconds per input shape
        (``benchmarks/speed/compile_check.py``); it pays off for long runs
        over images of few distinct sizes. It needs a C++ compiler on the CPU
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
        dist, ref = self._prepare(dist, ref)
        with self._grad_context(dist, ref) as needs_grad:
            quality, weight, counts = self._maps(dist, ref)
            num = (counts * weight * quality).sum(dim=(2, 3, 4))
            den = (counts * weight).sum(dim=(2, 3, 4))
            score = (num / den).mean(dim=0)
        return score if needs_grad else score.clone()

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
                _upsample(t, self.map_stride)[..., :height, :width]
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
        dist_p = _reflect_pad(dist, padded_h, padded_w)
        ref_p = _reflect_pad(ref, padded_h, padded_w)
        qualities: list[Tensor] = []
        weights: list[Tensor] = []
        for net, margin in zip(self.members, self._margins, strict=True):
            if getattr(net, "spatially_faithful", True):
                rows = _tile_grid(padded_h, self.tile_size, margin, self.size_multiple)
                cols = _tile_grid(padded_w, self.tile_size, margin, self.size_multiple)
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
            q_rows: list[list[list[Tensor]]] = []  # [row][col][view]
            w_rows: list[list[list[Tensor]]] = []
            for r0, r1, c_r0, c_r1 in rows:
                q_cols, w_cols = [], []
                for c0, c1, c_c0, c_c1 in cols:
                    q_views, w_views = self._tile_maps(
                        cast(PairQualityNet, net),
                        dist_p[..., r0:r1, c0:c1],
                        ref_p[..., r0:r1, c0:c1],
                    )
                    s = self.map_stride
                    crop = (
                        slice(None),
                        slice(None),
                        slice((c_r0 - r0) // s, (c_r1 - r0) // s),
                        slice((c_c0 - c0) // s, (c_c1 - c0) // s),
                    )
                    q_cols.append([q[crop] for q in q_views])
                    w_cols.append([w[crop] for w in w_views])
                q_rows.append(q_cols)
                w_rows.append(w_cols)
            for v in range(len(self.views)):
                qualities.append(_stitch([[col[v] for col in row] for row in q_rows]))
                weights.append(_stitch([[col[v] for col in row] for row in w_rows]))
        counts = _valid_counts(height, width, padded_h, padded_w, self.map_stride, dist.device)
        quality = torch.stack(qualities)
        if (self.calibration_scale, self.calibration_offset) != (1.0, 0.0):
            # Per location, so the map's weighted mean is still exactly the score.
            quality = quality * self.calibration_scale + self.calibration_offset
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
    """ASNA as a loss: ``1 - score``, lower is better.

    Args:
        weights: As for :class:`ASNA`.
        reduction: ``"mean"`` (default), ``"sum"`` or ``"none"`` (per image,
            shape ``(N,)``).
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
        >>> restored = torch.rand(1, 3, 32, 32, requires_grad=True)
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
        self_ensemble: SelfEnsembleMode = "none",
        tile_size: int | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
        revision: str | None = None,
        local_files_only: bool | None = None,
    ) -> None:
        super().__init__()
        _check_reduction(reduction)
        self.reduction = reduction
        self.metric = ASNA(
            weights,
            self_ensemble=self_ensemble,
            tile_size=tile_size,
            cache_dir=cache_dir,
            revision=revision,
            local_files_only=local_files_only,
        )

    @classmethod
    def from_metric(cls, metric: ASNA, *, reduction: Reduction = "mean") -> ASNALoss:
        """Wrap an existing :class:`ASNA` (e.g. one built with :meth:`ASNA.from_networks`).

        Args:
            metric: The metric.
            reduction: See :class:`ASNALoss`.

        Returns:
            The loss module.
        """
        _check_reduction(reduction)
        loss = cls.__new__(cls)
        nn.Module.__init__(loss)
        loss.reduction = reduction
        loss.metric = metric
        return loss

    def forward(self, dist: Any, ref: Any) -> Tensor:
        """Compute ``1 - ASNA(dist, ref)``.

        Args:
            dist: Distorted (e.g. restored) images.
            ref: Reference images.

        Returns:
            A scalar for ``"mean"``/``"sum"``, else ``(N,)``.
        """
        loss = 1.0 - self.metric(dist, ref)
        if self.reduction == "mean":
            return loss.mean()
        if self.reduction == "sum":
            return loss.sum()
        return loss


def _calibration(metadata: dict[str, str]) -> tuple[float, float]:
    """Read the affine calibration ``quality = scale * raw + offset`` of a weights file.

    Trained networks' raw outputs are on a compressed scale; the calibration,
    fitted on training pairs (``scripts/calibrate_weights.py``) and stored in
    the file's metadata as ``{"scale": a, "offset": b}`` with ``a > 0``, maps
    them onto the quality scale (about 1 for identical images). Being affine
    and increasing, it changes no rank or linear correlation.
    """
    raw = metadata.get("calibration")
    if not raw:
        return 1.0, 0.0
    try:
        values = json.loads(raw)
        scale, offset = float(values["scale"]), float(values["offset"])
    except (ValueError, TypeError, KeyError) as exc:
        raise WeightsIntegrityError(
            f'weights metadata \'calibration\' must be JSON {{"scale": a, "offset": b}}; '
            f"got {raw!r}. Re-save the file with scripts/calibrate_weights.py."
        ) from exc
    if not (math.isfinite(scale) and math.isfinite(offset)) or scale <= 0:
        raise WeightsIntegrityError(
            f"weights calibration must be finite with a positive scale; got scale={scale}, "
            f"offset={offset}."
        )
    return scale, offset


def _check_reduction(reduction: str) -> None:
    if reduction not in ("mean", "sum", "none"):
        raise InputError(f"reduction must be 'mean', 'sum' or 'none'; got {reduction!r}.")


def _batch_views(tensors: list[Tensor]) -> Tensor:
    """Concatenate views along the batch, in ``channels_last`` (one view: no copy if it is)."""
    x = tensors[0] if len(tensors) == 1 else torch.cat(tensors)
    return x.contiguous(memory_format=torch.channels_last)


def _reflect_pad(x: Tensor, height: int, width: int) -> Tensor:
    """Pad the bottom and right of ``x`` by reflection up to ``height x width``.

    Padding wider than the image minus one pixel is done in several
    reflections (a reflection can reach only ``size - 1`` pixels).
    """
    while x.shape[-2] < height or x.shape[-1] < width:
        pad_h = min(height - x.shape[-2], x.shape[-2] - 1)
        pad_w = min(width - x.shape[-1], x.shape[-1] - 1)
        x = F.pad(x, (0, pad_w, 0, pad_h), mode="reflect")
    return x


def _tile_grid(
    length: int, tile: int, margin: int, multiple: int = 16
) -> list[tuple[int, int, int, int]]:
    """Tiles along one axis: ``(tile_start, tile_end, core_start, core_end)``.

    The cores partition ``[0, length)``; every tile reaches at least
    ``margin`` beyond its core except at the image border. The fewest tiles
    of at most ``tile`` pixels are used, all of one size, the smallest
    multiple of ``multiple`` that covers the axis with that many tiles (so a
    1024 px axis takes three 448 px tiles rather than three of 512 px): less
    computed overlap for the same bound on memory. All positions stay
    multiples of ``multiple`` when ``length`` and ``margin`` are.
    """
    if length <= tile:
        return [(0, length, 0, length)]
    # k tiles of size s cover k * s - 2 * (k - 1) * margin pixels of cores.
    interior = tile - 2 * margin
    count = 2 + max(0, -(-(length - 2 * (tile - margin)) // interior))
    size = -(-(length + 2 * (count - 1) * margin) // (count * multiple)) * multiple
    size = min(max(size, 2 * margin + multiple), tile)
    out = [(0, size, 0, size - margin)]
    for _ in range(count - 2):
        core_start = out[-1][3]
        out.append(
            (
                core_start - margin,
                core_start - margin + size,
                core_start,
                core_start + size - 2 * margin,
            )
        )
    out.append((length - size, length, out[-1][3], length))
    return out


def _stitch(pieces: list[list[Tensor]]) -> Tensor:
    """Concatenate a grid of map pieces (rows of columns)."""
    return torch.cat([torch.cat(row, dim=-1) for row in pieces], dim=-2)


def _upsample(x: Tensor, factor: int) -> Tensor:
    """Nearest-neighbour upsampling by an integer factor (exact repetition)."""
    return x.repeat_interleave(factor, dim=-2).repeat_interleave(factor, dim=-1)


def _valid_counts(
    height: int, width: int, padded_h: int, padded_w: int, stride: int, device: torch.device
) -> Tensor:
    """Number of unpadded input pixels covered by each map location, ``(1, 1, 1, h, w)``."""
    rows = (height - torch.arange(0, padded_h, stride, device=device)).clamp(0, stride)
    cols = (width - torch.arange(0, padded_w, stride, device=device)).clamp(0, stride)
    return (rows[:, None] * cols[None, :]).float().view(1, 1, 1, *rows.shape, *cols.shape)
