"""Training pairs drawn on the fly from reference photographs, labelled by KADID cell means.

Each item is made from one seed: a photograph (by index), a random crop, a
random KADID (type, level) cell (or, at ``identity_rate``, no distortion),
and the distortion's noise. By default the distortion is applied with
:func:`asna_metric.data.distortions.distort` to the whole photograph, then
cropped, as KADID-10k did: its generator min-max maps whole images, and some
types depend on the whole image (the number of pasted blocks, a palette, a
rate). Distorting only a window of the crop plus a margin is cheaper and is
offered for chosen types (``window_types``, candidates in
:data:`WINDOW_TYPES`); ``benchmarks/speed/onthefly_crop_stats.py`` measures
how far its statistics are from the whole photograph's.
The distorted image is rounded to 8 bits like the images written by
``asna-metric synth``; a crop that comes out identical to its reference
(Mean_Shift level 3, a Color_Block whose blocks all fall outside the crop)
is relabelled with the top label.

Labels are on the trainer's quality scale: ``q = (MOS - 1) / 4`` with MOS the
KADID-10k human cell mean (:func:`asna_metric.data.synthesis.cell_score`);
identity pairs get MOS 5, ``q = 1``.

Randomness: indexed with ``(index, sample_seed)`` as yielded by
:class:`asna_metric.train.pairs.EpochSampler` (seed derived from ``(seed,
epoch, position)``), an item is a pure function of that seed, so an epoch is
the same whatever the number of DataLoader workers, every epoch sees new
crops and noise, and a run resumed at an (epoch, position) continues
exactly (:class:`ResumableEpochSampler`). A plain ``int`` index gives a
fixed item (seed derived from the dataset seed and the index): a fixed
validation set drawn in memory (:class:`FixedPairs` keeps it).

Cost: distorting a whole photograph takes about 150 ms on one core (0.6 to
0.9 s for Color_Quantization, Jitter and Denoising), far more than a
training step's share. :class:`DistortionGroupSampler` lets ``k`` items
share one distorted photograph: it yields ``(index, sample_seed,
distortion_seed)``, the same photograph index and distortion seed for the
``k`` items of a group (the same slot of ``k`` consecutive batches), each
with its own crop and augmentation seed. Each worker keeps the distorted
photographs it made in a bounded cache (:class:`DistortionCache`), so a
group costs one distortion per worker that sees it. The cache changes only
the speed: an item stays a pure function of its seeds.

Example:
    >>> from asna_metric.train.onthefly import build_onthefly
    >>> train = build_onthefly("../shared/data/refs", "train", crop_size=96,
    ...                        pairs_per_epoch=2048, seed=0)  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import math
import os
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

import torch
from torch import Tensor
from torch.utils.data import Dataset

from asna_metric.data.distortions import DISTORTIONS, distort, resolve_type
from asna_metric.data.splits import (
    DEFAULT_REFERENCE_SPLIT,
    TRAINING_SPLITS,
    _type_key,
    check_not_eval_only,
    resolve_reference_split,
)
from asna_metric.data.synthesis import IDENTITY_SCORE, IDENTITY_TYPE, cell_score
from asna_metric.errors import InputError
from asna_metric.train.augment import PairAugment, random_crop_box
from asna_metric.train.pairs import EpochSampler, _decode, derive_seed

__all__ = [
    "WINDOW_TYPES",
    "DistortionCache",
    "DistortionGroupSampler",
    "FixedPairs",
    "OnTheFlyItem",
    "OnTheFlyPairs",
    "PhotoCache",
    "ResumableEpochSampler",
    "build_onthefly",
    "manifest_digest",
    "mos_to_quality",
    "select_types",
]

logger = logging.getLogger(__name__)

#: Candidate KADID types for ``window_types``: their effect at a pixel depends
#: on its neighbourhood only, up to the generator's whole-image min-max
#: mapping (pointwise tone, saturation, quantisation and contrast changes,
#: per-pixel noises, filters whose support fits in the margin). Not the
#: default: the min-max mapping and the photo's extremes make a window differ
#: from the whole photograph (measured in benchmarks/speed/onthefly_crop_stats.py).
WINDOW_TYPES: frozenset[int] = frozenset(
    {1, 2, 3, 7, 8, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 22, 24, 25}
)

#: What indexes an :class:`OnTheFlyPairs`: a fixed item's ``int``, or what a
#: sampler yields, ``(index, sample_seed)`` or ``(index, sample_seed,
#: distortion_seed)``.
Item = int | tuple[int, int] | tuple[int, int, int]

_Key = TypeVar("_Key")

_GRID = 16  # window corners on the photograph's 16-pixel grid (JPEG's 4:2:0 blocks)


def mos_to_quality(mos: float) -> float:
    """Map a KADID MOS (1..5) to the trainer's quality scale ``(MOS - 1) / 4``.

    Args:
        mos: Mean opinion score on 1..5.

    Returns:
        Quality in [0, 1].
    """
    return (float(mos) - 1.0) / 4.0


class _TensorLRU(Generic[_Key]):
    """Least-recently-used map of tensors, at most ``max_bytes`` bytes in all.

    The base of :class:`PhotoCache` and :class:`DistortionCache` (see them
    for the arguments).
    """

    def __init__(self, max_bytes: int) -> None:
        if max_bytes < 0:
            raise InputError(f"max_bytes must be >= 0; got {max_bytes}.")
        self.max_bytes = int(max_bytes)
        self._images: OrderedDict[_Key, Tensor] = OrderedDict()
        self.nbytes = 0

    def _lookup(self, key: _Key) -> Tensor | None:
        image = self._images.get(key)
        if image is not None:
            self._images.move_to_end(key)
        return image

    def _keep(self, key: _Key, image: Tensor) -> None:
        size = image.numel() * image.element_size()
        if size > self.max_bytes or key in self._images:
            return
        self._images[key] = image
        self.nbytes += size
        while self.nbytes > self.max_bytes:
            _, dropped = self._images.popitem(last=False)
            self.nbytes -= dropped.numel() * dropped.element_size()

    def __len__(self) -> int:
        return len(self._images)


class PhotoCache(_TensorLRU[str]):
    """Least-recently-used cache of decoded photographs, bounded in bytes.

    Each DataLoader worker holds its own copy. Decoded photographs are
    ``(3, H, W)`` uint8 tensors: a 481x321 photograph takes 0.46 MB, the 480
    training photographs of ``refs-v1`` about 230 MB.

    Args:
        max_bytes: Largest total size kept; 0 disables the cache.

    Raises:
        InputError: If ``max_bytes`` is negative.
    """

    def __init__(self, max_bytes: int = 512 * 2**20) -> None:
        super().__init__(max_bytes)

    def get(self, path: str | os.PathLike[str]) -> Tensor:
        """Return the decoded photograph (do not modify it in place).

        Args:
            path: Image file.

        Returns:
            ``(3, H, W)`` uint8 tensor.
        """
        key = os.fspath(path)
        image = self._lookup(key)
        if image is None:
            image = _decode(key)
            self._keep(key, image)
        return image


class DistortionCache(_TensorLRU[tuple[int, ...]]):
    """Least-recently-used cache of distorted photographs, bounded in bytes.

    Each DataLoader worker holds its own copy; entries are the 8-bit
    distorted photographs (or windows) keyed by everything that makes them:
    photograph, type, level, noise seed and region. A hit returns exactly
    what a recomputation would, so the cache changes only the speed.
    ``hits`` and ``misses`` count the lookups of this process.

    Args:
        max_bytes: Largest total size kept; 0 disables the cache.

    Raises:
        InputError: If ``max_bytes`` is negative.
    """

    def __init__(self, max_bytes: int = 64 * 2**20) -> None:
        super().__init__(max_bytes)
        self.hits = 0
        self.misses = 0

    def get(self, key: tuple[int, ...]) -> Tensor | None:
        """Return a cached distorted image (do not modify it in place), or ``None``.

        Args:
            key: The image's key (see :meth:`OnTheFlyPairs.distortion_key`).

        Returns:
            The ``(3, H, W)`` uint8 tensor, or ``None`` on a miss.
        """
        image = self._lookup(key)
        if image is None:
            self.misses += 1
        else:
            self.hits += 1
        return image

    def put(self, key: tuple[int, ...], image: Tensor) -> None:
        """Keep an image, evicting the least recently used ones beyond the limit.

        Args:
            key: The image's key.
            image: ``(3, H, W)`` uint8 tensor.
        """
        self._keep(key, image)


@dataclass(frozen=True)
class OnTheFlyItem:
    """The plan of one item (everything but the pixels).

    Attributes:
        photo: Index of the photograph in :attr:`OnTheFlyPairs.photos`.
        top: Top row of the crop.
        left: Left column of the crop.
        dist_type: KADID type id 1..25, or 0 for a drawn identity pair.
        level: Level 1..5, or 0 for a drawn identity pair.
        seed: Seed of the distortion's generator.
        augment_seed: Seed of the augmentation's generator.
    """

    photo: int
    top: int
    left: int
    dist_type: int
    level: int
    seed: int
    augment_seed: int

    @property
    def dis_type_name(self) -> str:
        """KADID type name, or ``"identity"``."""
        return DISTORTIONS[self.dist_type].name if self.dist_type else IDENTITY_TYPE

    @property
    def quality(self) -> float:
        """Label before the identical-crop check: the cell mean on the quality scale."""
        if not self.dist_type:
            return mos_to_quality(IDENTITY_SCORE)
        return mos_to_quality(cell_score(self.dist_type, self.level))


def _cells(
    types: Iterable[int | str] | None, levels: Iterable[int] | None
) -> list[tuple[int, int]]:
    type_ids = sorted(DISTORTIONS) if types is None else sorted({resolve_type(t) for t in types})
    level_ids = [1, 2, 3, 4, 5] if levels is None else sorted(set(levels))
    for level in level_ids:
        if isinstance(level, bool) or not isinstance(level, int) or not 1 <= level <= 5:
            raise InputError(f"levels must be integers 1..5; got {level!r}.")
    if not type_ids or not level_ids:
        raise InputError(
            f"no (type, level) cell to draw from (types {type_ids}, levels {level_ids}). "
            "Pass None for all 25 types and 5 levels, or at least one of each."
        )
    return [(t, level) for t in type_ids for level in level_ids]


class OnTheFlyPairs(Dataset[tuple[Tensor, Tensor, Tensor]]):
    """Random crops of reference photographs, distorted on the fly, with KADID labels.

    Yields ``(dist, ref, quality)`` like :class:`asna_metric.train.pairs.TrainPairs`:
    ``(3, crop, crop)`` float32 in [0, 1] (contiguous) and a 0-d float32
    quality in [0, 1]. Photographs keep their size (never resized).

    ``len(dataset)`` is ``pairs_per_epoch``; index ``i`` uses photograph
    ``i % len(photos)``, so an epoch of :class:`EpochSampler` (a permutation
    of the indices) visits every photograph equally often.

    Args:
        photos: Reference photographs (paths). Eval-only photographs (the
            Kodak images, by folder or by bytes) are refused.
        crop_size: Side of the square crop.
        pairs_per_epoch: Items per epoch (the dataset's length).
        seed: Seed of the fixed items drawn with ``int`` indices.
        types: KADID type ids or names to draw from; ``None`` for all 25.
        levels: Levels 1..5 to draw from; ``None`` for all five.
        identity_rate: Probability of an undistorted pair (label 1.0).
        window_types: Types distorted on a window around the crop instead of
            the whole photograph (default none; :data:`WINDOW_TYPES` lists
            the candidates).
        margin: Pixels added on each side of the crop for a window (then
            widened to the photograph's 16-pixel grid).
        augment: Augmentation applied to the crops, or ``None``.
        cache_bytes: Size limit of each worker's decoded-photo cache.
        manifest: Reference split whose eval-only list is refused.
        distortion_cache_bytes: Size limit of each worker's cache of
            distorted photographs (:class:`DistortionCache`; useful with a
            :class:`DistortionGroupSampler`).

    Raises:
        InputError: On no photographs, eval-only photographs, or bad arguments.
    """

    def __init__(
        self,
        photos: Sequence[str | os.PathLike[str]],
        *,
        crop_size: int,
        pairs_per_epoch: int,
        seed: int = 0,
        types: Iterable[int | str] | None = None,
        levels: Iterable[int] | None = None,
        identity_rate: float = 0.05,
        window_types: Iterable[int | str] | None = None,
        margin: int = 32,
        augment: PairAugment | None = None,
        cache_bytes: int = 512 * 2**20,
        manifest: str | os.PathLike[str] | Mapping[str, Any] = DEFAULT_REFERENCE_SPLIT,
        distortion_cache_bytes: int = 64 * 2**20,
    ) -> None:
        self.photos = [Path(p) for p in photos]
        if not self.photos:
            raise InputError("OnTheFlyPairs needs at least one photograph; got none.")
        check_not_eval_only(self.photos, manifest=manifest, what="on-the-fly training pairs")
        if crop_size < 1 or pairs_per_epoch < 1 or margin < 0:
            raise InputError(
                f"crop_size and pairs_per_epoch must be positive and margin >= 0; got "
                f"{crop_size}, {pairs_per_epoch} and {margin}."
            )
        if not 0.0 <= identity_rate <= 1.0:
            raise InputError(f"identity_rate must be in [0, 1]; got {identity_rate}.")
        self.crop_size = int(crop_size)
        self.pairs_per_epoch = int(pairs_per_epoch)
        self.seed = int(seed)
        self.cells = _cells(types, levels)
        self.identity_rate = float(identity_rate)
        self.window_types = frozenset(resolve_type(t) for t in (window_types or ()))
        self.margin = int(margin)
        self.augment = augment
        self.cache = PhotoCache(cache_bytes)
        self.distorted = DistortionCache(distortion_cache_bytes)

    def __len__(self) -> int:
        return self.pairs_per_epoch

    def paths(self) -> list[str]:
        """The photographs read (for logging or preloading).

        Returns:
            Photograph paths as strings.
        """
        return [os.fspath(p) for p in self.photos]

    def _seeds_of(self, item: Item) -> tuple[int, int, int]:
        if isinstance(item, tuple):
            if len(item) == 3:
                index, seed, group = item
                return int(index), int(seed), int(group)
            index, seed = item
            return int(index), int(seed), int(seed)
        seed = derive_seed(self.seed, "onthefly-fixed", int(item))
        return int(item), seed, seed

    def plan(self, item: Item, *, size: tuple[int, int]) -> OnTheFlyItem:
        """Draw an item's photograph, crop, cell and seeds (no pixels).

        The identity draw, crop and augmentation come from the sample seed;
        the (type, level) cell and the distortion noise from the distortion
        seed (the sample seed itself unless a :class:`DistortionGroupSampler`
        gives a group's).

        Args:
            item: ``(index, sample_seed)``, ``(index, sample_seed,
                distortion_seed)`` or an ``int`` index (a fixed item).
            size: ``(height, width)`` of the item's photograph.

        Returns:
            The item's plan.

        Raises:
            InputError: If the photograph is smaller than the crop.
        """
        index, seed, group = self._seeds_of(item)
        photo = index % len(self.photos)
        cell_gen = torch.Generator().manual_seed(derive_seed(seed, "cell"))
        identity = float(torch.rand((), generator=cell_gen, dtype=torch.float64))
        if group != seed:
            cell_gen = torch.Generator().manual_seed(derive_seed(group, "cell"))
            torch.rand((), generator=cell_gen, dtype=torch.float64)  # the same draws as seed's
        pick = int(torch.randint(len(self.cells), (), generator=cell_gen))
        dist_type, level = (0, 0) if identity < self.identity_rate else self.cells[pick]
        crop_gen = torch.Generator().manual_seed(derive_seed(seed, "crop"))
        try:
            top, left = random_crop_box(size[0], size[1], self.crop_size, crop_gen)
        except InputError as exc:
            raise InputError(f"{self.photos[photo]}: {exc}") from None
        return OnTheFlyItem(
            photo=photo,
            top=top,
            left=left,
            dist_type=dist_type,
            level=level,
            seed=derive_seed(group, "noise"),
            augment_seed=derive_seed(seed, "augment"),
        )

    def window(self, plan: OnTheFlyItem, size: tuple[int, int]) -> tuple[int, int, int, int]:
        """Region of the photograph to distort for an item.

        Args:
            plan: The item's plan.
            size: ``(height, width)`` of the photograph.

        Returns:
            ``(top, left, bottom, right)``: the whole photograph, or for a
            window type the crop grown by the margin, on the 16-pixel grid.
        """
        height, width = size
        if plan.dist_type not in self.window_types:
            return 0, 0, height, width
        c, m = self.crop_size, self.margin
        top = max(0, (plan.top - m) // _GRID * _GRID)
        left = max(0, (plan.left - m) // _GRID * _GRID)
        bottom = min(height, math.ceil((plan.top + c + m) / _GRID) * _GRID)
        right = min(width, math.ceil((plan.left + c + m) / _GRID) * _GRID)
        return top, left, bottom, right

    def distortion_key(self, plan: OnTheFlyItem, size: tuple[int, int]) -> tuple[int, ...]:
        """What a distorted image depends on: its key in the :class:`DistortionCache`.

        Args:
            plan: The item's plan.
            size: ``(height, width)`` of the photograph.

        Returns:
            ``(photo, type, level, noise seed, top, left, bottom, right)``.
        """
        return (plan.photo, plan.dist_type, plan.level, plan.seed, *self.window(plan, size))

    def render(self, plan: OnTheFlyItem) -> tuple[Tensor, Tensor, bool]:
        """Make an item's uint8 crops.

        Args:
            plan: The item's plan (see :meth:`plan`).

        Returns:
            ``(dist, ref, identical)``: ``(3, crop, crop)`` uint8 crops and
            whether they are equal (a drawn or an accidental identity pair).
        """
        photo = self.cache.get(self.photos[plan.photo])
        c = self.crop_size
        ref = photo[:, plan.top : plan.top + c, plan.left : plan.left + c]
        if not plan.dist_type:
            return ref, ref, True
        size = (photo.shape[1], photo.shape[2])
        top, left, bottom, right = self.window(plan, size)
        key = self.distortion_key(plan, size)
        quantised = self.distorted.get(key)
        if quantised is None:
            region = photo[:, top:bottom, left:right].unsqueeze(0).float().div_(255.0)
            generator = torch.Generator().manual_seed(plan.seed)
            result = distort(region, plan.dist_type, plan.level, generator=generator)
            quantised = result[0].mul(255.0).round_().clamp_(0, 255).to(torch.uint8)
            self.distorted.put(key, quantised)
        dist = quantised[
            :, plan.top - top : plan.top - top + c, plan.left - left : plan.left - left + c
        ]
        return dist, ref, torch.equal(dist, ref)

    def __getitem__(self, item: Item) -> tuple[Tensor, Tensor, Tensor]:
        index, _, _ = self._seeds_of(item)
        photo = self.cache.get(self.photos[index % len(self.photos)])
        plan = self.plan(item, size=(photo.shape[1], photo.shape[2]))
        dist, ref, identical = self.render(plan)
        quality = mos_to_quality(IDENTITY_SCORE) if identical else plan.quality
        dist_f = dist.float().div_(255.0)
        ref_f = ref.float().div_(255.0)
        if self.augment is not None:
            generator = torch.Generator().manual_seed(plan.augment_seed)
            dist_f, ref_f = self.augment(dist_f, ref_f, generator)
        return (
            dist_f.contiguous(),
            ref_f.contiguous(),
            torch.tensor(quality, dtype=torch.float32),
        )


class ResumableEpochSampler(EpochSampler):
    """:class:`EpochSampler` that can start an epoch part-way through.

    ``set_epoch(epoch, start=k)`` skips this rank's first ``k`` samples, so a
    run stopped after ``s`` steps of batch ``b`` resumes with ``start = s * b``
    and draws exactly what the uninterrupted run would have.

    Args:
        num_items: Size of the dataset.
        samples_per_epoch: Samples per epoch over all ranks; 0 means ``num_items``.
        seed: Run seed.
        rank: This process's rank.
        world_size: Number of processes.
    """

    #: This rank's samples skipped at the start of the epoch (see :meth:`set_epoch`).
    start: int = 0

    def set_epoch(self, epoch: int, *, start: int = 0) -> None:
        """Select the epoch and the first sample (of this rank) to yield.

        Args:
            epoch: Epoch number (0-based).
            start: Samples of this rank to skip (steps done x batch size).

        Raises:
            InputError: If ``start`` is negative or beyond the epoch.
        """
        if not 0 <= start <= super().__len__():
            raise InputError(
                f"start must be in [0, {super().__len__()}] (samples per rank per epoch); "
                f"got {start}."
            )
        super().set_epoch(epoch)
        self.start = int(start)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        for position, item in enumerate(super().__iter__()):
            if position >= self.start:
                yield item

    def __len__(self) -> int:
        return super().__len__() - self.start


class DistortionGroupSampler(ResumableEpochSampler):
    """Epoch sampler whose items share distorted photographs in groups of ``k``.

    A group is one slot (column) of ``k`` consecutive global batches, where a
    global batch is ``stride = batch_size * world_size`` positions (one step
    of all processes): position ``P`` is in batch ``t = P // stride``, column
    ``c = P % stride``, and group ``((t + c % k) // k, c)``. The shift ``c %
    k`` staggers the groups' starts, so every batch after the first starts
    about ``stride / k`` new groups (an even cost, not one expensive batch
    in ``k``). A group's items
    get the same photograph index and the same distortion seed
    ``derive_seed(seed, "group", epoch, group)`` (hence the same KADID cell
    and noise), and their own sample seed ``derive_seed(seed, "sample",
    epoch, P)`` (identity draw, crop, augmentation), yielded as ``(index,
    sample_seed, distortion_seed)``. Each batch still holds ``batch_size``
    different distortions. Groups draw their indices from seeded
    permutations of ``range(num_photos)`` (index ``i`` of an
    :class:`OnTheFlyPairs` is photograph ``i % len(photos)``), so
    photographs are visited evenly.

    DataLoader workers take whole batches in turn, so with ``w`` workers
    each worker sees about ``k / w`` items of a group and distorts it once:
    about ``w / k`` distortions per item instead of one. With ``k = 1`` it
    yields exactly what :class:`ResumableEpochSampler` yields.

    Args:
        num_items: Size of the dataset.
        samples_per_epoch: Samples per epoch over all ranks; 0 means ``num_items``.
        seed: Run seed.
        rank: This process's rank.
        world_size: Number of processes.
        crops_per_distortion: ``k``, the items of a group.
        batch_size: Items per step and process.
        num_photos: Photographs of the dataset (``len(dataset.photos)``);
            0 means ``num_items``.

    Raises:
        InputError: If ``crops_per_distortion`` or ``batch_size`` is below 1.
    """

    def __init__(
        self,
        num_items: int,
        *,
        samples_per_epoch: int = 0,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        crops_per_distortion: int = 1,
        batch_size: int = 1,
        num_photos: int = 0,
    ) -> None:
        super().__init__(
            num_items,
            samples_per_epoch=samples_per_epoch,
            seed=seed,
            rank=rank,
            world_size=world_size,
        )
        if crops_per_distortion < 1 or batch_size < 1 or num_photos < 0:
            raise InputError(
                f"crops_per_distortion and batch_size must be >= 1 and num_photos >= 0; got "
                f"{crops_per_distortion}, {batch_size} and {num_photos}."
            )
        self.num_photos = int(num_photos) or num_items
        self.crops_per_distortion = int(crops_per_distortion)
        self.stride = int(batch_size) * world_size

    def group_of(self, position: int) -> int:
        """The group of a global position.

        Args:
            position: Global position in the epoch (all ranks).

        Returns:
            The group number.
        """
        k = self.crops_per_distortion
        batch, column = divmod(position, self.stride)
        return ((batch + column % k) // k) * self.stride + column

    def __iter__(self) -> Iterator[Any]:
        if self.crops_per_distortion == 1:
            yield from super().__iter__()
            return
        positions = math.ceil(self.total / self.world_size) * self.world_size
        groups = max(self.group_of(p) for p in range(positions)) + 1
        generator = torch.Generator().manual_seed(derive_seed(self.seed, "group-order", self.epoch))
        chunks = [torch.randperm(self.num_photos, generator=generator)]
        while len(chunks) * self.num_photos < groups:
            chunks.append(torch.randperm(self.num_photos, generator=generator))
        order = torch.cat(chunks)[:groups].tolist()
        for count, position in enumerate(range(self.rank, positions, self.world_size)):
            if count < self.start:
                continue
            group = self.group_of(position)
            yield (
                order[group],
                derive_seed(self.seed, "sample", self.epoch, position),
                derive_seed(self.seed, "group", self.epoch, group),
            )


class FixedPairs(Dataset[tuple[Tensor, Tensor, Tensor]]):
    """A fixed set of on-the-fly pairs, made once and kept in memory (a validation set).

    Items ``0 .. n - 1`` of an :class:`OnTheFlyPairs` (plain ``int``
    indices: fixed items), kept as 8-bit crops: the same pairs every epoch
    without distorting again. The dataset must have no augmentation.

    Args:
        dataset: The on-the-fly dataset (``augment=None``).
        count: Number of pairs; at most ``len(dataset)``.
        num_workers: DataLoader workers used to make them (0: this process).

    Raises:
        InputError: If the dataset augments or ``count`` is out of range.
    """

    def __init__(self, dataset: OnTheFlyPairs, count: int, *, num_workers: int = 0) -> None:
        if dataset.augment is not None:
            raise InputError("FixedPairs needs an OnTheFlyPairs without augmentation.")
        if not 1 <= count <= len(dataset):
            raise InputError(f"count must be in [1, {len(dataset)}]; got {count}.")
        loader = torch.utils.data.DataLoader(
            dataset,
            batch_size=16,
            sampler=range(count),
            num_workers=num_workers,
        )
        dists, refs, qualities = [], [], []
        for dist, ref, quality in loader:
            dists.append(dist.mul(255.0).round_().to(torch.uint8))
            refs.append(ref.mul(255.0).round_().to(torch.uint8))
            qualities.append(quality)
        self.dist = torch.cat(dists)
        self.ref = torch.cat(refs)
        self.quality = torch.cat(qualities)

    def __len__(self) -> int:
        return int(self.quality.numel())

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor, Tensor]:
        return (
            self.dist[index].float().div_(255.0),
            self.ref[index].float().div_(255.0),
            self.quality[index].clone(),
        )


def select_types(
    types: Iterable[int | str] | None = None, exclude: Iterable[int | str] = ()
) -> list[int]:
    """KADID type ids to draw: ``types`` (all 25 when empty) minus ``exclude``.

    Names are matched like :func:`asna_metric.data.splits.leave_types_out`
    does (ignoring case and punctuation), or as ids and function names
    (:func:`asna_metric.data.distortions.resolve_type`).

    Args:
        types: Ids or names to draw from; ``None`` or empty for all 25.
        exclude: Ids or names left out.

    Returns:
        Sorted type ids.

    Raises:
        InputError: An unknown type, or nothing left.
    """

    def resolve(value: int | str) -> int:
        if isinstance(value, str):
            key = _type_key(value)
            for entry in DISTORTIONS.values():
                if key in (_type_key(entry.name), _type_key(entry.key)):
                    return entry.id
        return resolve_type(value)

    chosen = sorted({resolve(t) for t in types}) if types else sorted(DISTORTIONS)
    left_out = {resolve(t) for t in exclude}
    kept = [t for t in chosen if t not in left_out]
    if not kept:
        raise InputError(
            f"excluding types {sorted(left_out)} from {chosen} leaves no distortion type to "
            "draw. Exclude fewer types."
        )
    return kept


def manifest_digest(
    manifest: str | os.PathLike[str] = DEFAULT_REFERENCE_SPLIT,
) -> tuple[str, str]:
    """Name and sha256 of a reference split manifest (shipped name or file).

    Args:
        manifest: A shipped split name or a manifest path.

    Returns:
        ``(name recorded in the manifest, sha256 of the manifest's bytes)``.

    Raises:
        InputError: See :func:`asna_metric.data.splits.load_split_manifest`.
    """
    import hashlib
    from importlib.resources import files

    from asna_metric.data.splits import REFERENCE_SPLITS, load_split_manifest

    content = load_split_manifest(manifest)
    key = os.fspath(manifest)
    if key in REFERENCE_SPLITS:
        data = files("asna_metric.data").joinpath("_splits", f"{key}.json").read_bytes()
    else:
        data = Path(key).read_bytes()
    return str(content.get("name", key)), hashlib.sha256(data).hexdigest()


def build_onthefly(
    refs_root: str | os.PathLike[str],
    split: str = "train",
    *,
    crop_size: int,
    pairs_per_epoch: int,
    seed: int = 0,
    types: Iterable[int | str] | None = None,
    levels: Iterable[int] | None = None,
    identity_rate: float = 0.05,
    manifest: str | os.PathLike[str] | Mapping[str, Any] = DEFAULT_REFERENCE_SPLIT,
    verify: bool = True,
    augment: PairAugment | None = None,
    window_types: Iterable[int | str] | None = None,
    cache_bytes: int = 512 * 2**20,
    distortion_cache_bytes: int = 64 * 2**20,
) -> OnTheFlyPairs:
    """On-the-fly pairs from one split of the reference photographs.

    For training, index it with an :class:`EpochSampler` (or
    :class:`ResumableEpochSampler`) built with ``len(dataset)`` items and
    ``samples_per_epoch = pairs_per_epoch``; for a fixed validation set,
    index it with plain integers (e.g. a DataLoader without a sampler).

    Args:
        refs_root: Folder holding the split's photograph folders (the
            project's ``../shared/data/refs``).
        split: ``"train"`` or ``"val"`` (the test and eval-only photographs
            are never used to fit or select a model).
        crop_size: Side of the square crop.
        pairs_per_epoch: Items per epoch.
        seed: Seed of the fixed (``int``-indexed) items.
        types: KADID types to draw; ``None`` for all 25.
        levels: Levels to draw; ``None`` for all five.
        identity_rate: Probability of an undistorted pair (label 1.0).
        manifest: Shipped split name, manifest path or manifest dict.
        verify: Check the photographs' sha256 against the manifest.
        augment: Augmentation applied to the crops, or ``None``.
        window_types: See :class:`OnTheFlyPairs`.
        cache_bytes: Size limit of each worker's decoded-photo cache.
        distortion_cache_bytes: Size limit of each worker's cache of
            distorted photographs.

    Returns:
        The dataset.

    Raises:
        InputError: On a split other than train/val, missing or changed
            photographs, or bad arguments.
    """
    if split not in TRAINING_SPLITS:
        raise InputError(
            f"on-the-fly pairs are for training and validation: split must be one of "
            f"{list(TRAINING_SPLITS)}, got {split!r}. Synthesise the test split to disk with "
            "`asna-metric synth --split test` and evaluate on it."
        )
    photos = resolve_reference_split(refs_root, split, manifest=manifest, verify=verify)  # type: ignore[arg-type]
    logger.info("on-the-fly %s pairs: %d photographs from %s", split, len(photos), refs_root)
    return OnTheFlyPairs(
        photos,
        crop_size=crop_size,
        pairs_per_epoch=pairs_per_epoch,
        seed=seed,
        types=types,
        levels=levels,
        identity_rate=identity_rate,
        window_types=window_types,
        augment=augment,
        cache_bytes=cache_bytes,
        manifest=manifest,
        distortion_cache_bytes=distortion_cache_bytes,
    )
