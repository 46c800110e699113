"""Datasets of (distorted, reference, quality) pairs for training and validation.

Decoding a PNG costs more than a training step on a small CPU, so images go
through an :class:`ImageStore` that can keep them decoded in memory, at the
file's own bit depth: ``uint8`` tensors for 8-bit files (3 bytes per pixel:
a 481x321 image takes 0.46 MB, the ~9,000 synthetic training pairs about
4.3 GB, each reference stored once), 16 bits per sample for 16-bit files.
Files are decoded by :func:`asna_metric.inputs.read_image_pixels`, the
decoder scoring uses too, so training sees exactly the pixels that
:class:`asna_metric.ASNA` scores (16-bit PNGs at full precision).

Randomness never comes from a global generator: :class:`EpochSampler` yields
``(index, sample_seed)`` with the seed derived from ``(seed, epoch,
position)``, and :class:`TrainPairs` draws its crop and augmentation from
that seed alone. An epoch is therefore the same whatever the number of
DataLoader workers or processes, and a resumed run repeats it exactly.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor
from torch.utils.data import Dataset, Sampler

from asna_metric._progress import progress
from asna_metric.errors import InputError
from asna_metric.train.augment import PairAugment, crop_pair, random_crop_box

__all__ = [
    "EpochSampler",
    "ImageStore",
    "TrainPairs",
    "ValPairs",
    "derive_seed",
    "to_unit_float",
]

logger = logging.getLogger(__name__)


def derive_seed(*parts: object) -> int:
    """Derive a 63-bit seed from a tuple of ints and strings.

    Stable across processes, platforms and Python versions (unlike
    ``hash``), so every rank and worker derives the same value.

    Args:
        *parts: The key, e.g. ``(seed, "sample", epoch, position)``.

    Returns:
        A non-negative integer below ``2**63``.
    """
    digest = hashlib.blake2b(repr(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & (2**63 - 1)


def _decode(path: str | os.PathLike[str]) -> Tensor:
    """Decode an image file to a compact ``(3, H, W)`` tensor (see :func:`to_unit_float`).

    ``uint8`` for 8-bit files; 16-bit files keep their 16 bits as ``int16``
    (the ``uint16`` bit pattern: torch has no full ``uint16`` support);
    floating-point files (checked to lie in ``[0, 1]``) stay ``float32``.
    """
    import numpy as np

    from asna_metric.inputs import read_image_pixels, to_batch

    if not Path(path).is_file():
        raise InputError(
            f"image {str(path)!r} listed in the labels does not exist. Check data.root (the "
            "folder the CSV's paths are relative to)."
        )
    pixels = read_image_pixels(path, name="training")
    if pixels.ndim == 2:
        pixels = np.repeat(pixels[:, :, None], 3, axis=2)
    if pixels.dtype in (np.uint8, np.uint16):
        planar = np.array(pixels.transpose(2, 0, 1), order="C")  # one writable copy
        return torch.from_numpy(planar if planar.dtype == np.uint8 else planar.view(np.int16))
    return to_batch(pixels, name=f"training image ({path})")[0]


def to_unit_float(image: Tensor) -> Tensor:
    """Convert a tensor of :class:`ImageStore` (or a crop of one) to float32 in ``[0, 1]``.

    The same values as :func:`asna_metric.inputs.read_image` of the file:
    ``uint8`` is divided by 255, ``int16`` (16-bit samples) is read back as
    unsigned and divided by 65535, ``float32`` is returned as is.

    Args:
        image: A ``uint8``, ``int16`` or ``float32`` tensor.

    Returns:
        A new float32 tensor of the same shape (never a view of ``image``).
    """
    if image.dtype == torch.uint8:
        return image.float().div_(255.0)
    if image.dtype == torch.int16:
        return image.to(torch.int32).bitwise_and_(0xFFFF).float().div_(65535.0)
    return image.float().clone()


class ImageStore:
    """Decode images to compact ``(3, H, W)`` tensors, optionally keeping them.

    Tensors are ``uint8`` for 8-bit files, ``int16`` holding the samples of
    16-bit files, ``float32`` for floating-point files; :func:`to_unit_float`
    turns them (or crops of them) into float32 in ``[0, 1]``.

    Args:
        cache: ``"memory"`` keeps each decoded image after its first use;
            ``"none"`` decodes on every access.

    Raises:
        InputError: On an unknown cache mode.
    """

    def __init__(self, cache: Literal["memory", "none"] = "memory") -> None:
        if cache not in ("memory", "none"):
            raise InputError(f"cache must be 'memory' or 'none'; got {cache!r}.")
        self.cache = cache
        self._images: dict[str, Tensor] = {}

    def get(self, path: str | os.PathLike[str]) -> Tensor:
        """Return the decoded image.

        Args:
            path: Image file.

        Returns:
            ``(3, H, W)`` compact tensor (do not modify it in place); convert
            it with :func:`to_unit_float`.

        Raises:
            InputError: The file does not exist or cannot be decoded.
        """
        key = os.fspath(path)
        image = self._images.get(key)
        if image is None:
            image = _decode(key)
            if self.cache == "memory":
                self._images[key] = image
        return image

    def preload(self, paths: Sequence[str | os.PathLike[str]], *, show: bool | None = None) -> None:
        """Decode every image now (a no-op without the memory cache).

        Args:
            paths: Image files (duplicates are decoded once).
            show: Progress bar; ``None`` shows it on a terminal.
        """
        if self.cache != "memory":
            return
        unique = sorted({os.fspath(p) for p in paths} - set(self._images))
        for path in progress(unique, desc="decoding images", disable=None if show else True):
            self.get(path)
        logger.info("image cache: %d images, %.2f GB", len(self._images), self.nbytes / 1e9)

    @property
    def nbytes(self) -> int:
        """Bytes held by the cache."""
        return sum(t.numel() * t.element_size() for t in self._images.values())

    def __len__(self) -> int:
        return len(self._images)


def _record_paths(record: Any) -> tuple[str, str]:
    return os.fspath(record.dist), os.fspath(record.ref)


def _check_records(records: Sequence[Any], what: str) -> None:
    if len(records) == 0:
        raise InputError(
            f"the {what} set is empty. Check data.labels (and data.val_fraction: the split is "
            "by reference image, so there must be at least two references)."
        )
    for record in records[:1]:
        for attr in ("dist", "ref", "quality"):
            if not hasattr(record, attr):
                raise InputError(
                    f"{what} records must be PairRecord-like with dist, ref and quality; got "
                    f"{type(record).__name__} without {attr!r}. Read labels with "
                    "asna_metric.data.readers."
                )


class EpochSampler(Sampler[tuple[int, int]]):
    """Seeded per-epoch subset sampler with a per-sample seed, DDP-aware.

    Each epoch draws ``samples_per_epoch`` indices (a seeded permutation,
    repeated when more samples than items are asked for), pads the list to a
    multiple of ``world_size`` like ``DistributedSampler`` and hands rank
    ``r`` the positions ``r, r + world_size, ...``. Each yielded item is
    ``(index, sample_seed)`` with the seed derived from ``(seed, epoch,
    global position)``: the draws do not depend on the number of processes.

    Args:
        num_items: Size of the dataset.
        samples_per_epoch: Samples per epoch over all ranks; 0 means
            ``num_items``.
        seed: Run seed.
        rank: This process's rank.
        world_size: Number of processes.

    Raises:
        InputError: On an empty dataset or an invalid rank.
    """

    def __init__(
        self,
        num_items: int,
        *,
        samples_per_epoch: int = 0,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        if num_items < 1:
            raise InputError("EpochSampler needs at least one item; the training set is empty.")
        if world_size < 1 or not 0 <= rank < world_size:
            raise InputError(f"rank must be in [0, world_size); got rank {rank} of {world_size}.")
        self.num_items = num_items
        self.total = samples_per_epoch or num_items
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose draw the next iteration yields.

        Args:
            epoch: Epoch number (0-based).
        """
        self.epoch = epoch

    def order(self) -> list[int]:
        """All ranks' indices for the current epoch, before the rank split.

        Returns:
            A list of ``len(self) * world_size`` dataset indices.
        """
        generator = torch.Generator().manual_seed(derive_seed(self.seed, "order", self.epoch))
        chunks = []
        count = 0
        while count < self.total:
            chunks.append(torch.randperm(self.num_items, generator=generator))
            count += self.num_items
        order = torch.cat(chunks)[: self.total].tolist()
        padded = math.ceil(self.total / self.world_size) * self.world_size
        return order + order[: padded - len(order)]

    def __iter__(self) -> Iterator[tuple[int, int]]:
        order = self.order()
        for position in range(self.rank, len(order), self.world_size):
            yield order[position], derive_seed(self.seed, "sample", self.epoch, position)

    def __len__(self) -> int:
        return math.ceil(self.total / self.world_size)


class _PairRecords(Dataset[tuple[Tensor, Tensor, Tensor]]):
    """Base of :class:`TrainPairs` and :class:`ValPairs`: pair records read through a store."""

    def __init__(self, records: Sequence[Any], what: str, store: ImageStore | None) -> None:
        _check_records(records, what)
        self.records = list(records)
        self.store = store if store is not None else ImageStore("memory")

    def paths(self) -> list[str]:
        """Every image path the dataset reads (for preloading).

        Returns:
            Distorted and reference paths.
        """
        return [p for r in self.records for p in _record_paths(r)]

    def __len__(self) -> int:
        return len(self.records)


class TrainPairs(_PairRecords):
    """Random aligned crops of training pairs with their quality labels.

    Index it with ``(index, sample_seed)`` (what :class:`EpochSampler`
    yields); a plain ``int`` index uses the seed 0.

    Args:
        records: PairRecord-like objects with ``dist``, ``ref`` (paths) and
            ``quality`` (float in [0, 1], higher is better).
        crop_size: Side of the square crop (same place in both images).
        augment: Augmentation applied after the crop, or ``None``.
        store: Image decoder/cache (a new memory cache by default).

    Raises:
        InputError: If ``records`` is empty or not PairRecord-like.
    """

    def __init__(
        self,
        records: Sequence[Any],
        *,
        crop_size: int,
        augment: PairAugment | None = None,
        store: ImageStore | None = None,
    ) -> None:
        super().__init__(records, "training", store)
        self.crop_size = int(crop_size)
        self.augment = augment

    def __getitem__(self, item: tuple[int, int] | int) -> tuple[Tensor, Tensor, Tensor]:
        index, seed = item if isinstance(item, tuple) else (item, 0)
        record = self.records[index]
        dist_path, ref_path = _record_paths(record)
        dist, ref = self.store.get(dist_path), self.store.get(ref_path)
        if dist.shape != ref.shape:
            raise InputError(
                f"{dist_path} is {tuple(dist.shape[1:])} but its reference {ref_path} is "
                f"{tuple(ref.shape[1:])}; a pair must have the same size. Fix the labels file."
            )
        generator = torch.Generator().manual_seed(seed)
        try:
            top, left = random_crop_box(dist.shape[1], dist.shape[2], self.crop_size, generator)
        except InputError as exc:
            raise InputError(f"{dist_path}: {exc}") from None
        dist, ref = crop_pair(dist, ref, top, left, self.crop_size)
        dist_f = to_unit_float(dist)
        ref_f = to_unit_float(ref)
        if self.augment is not None:
            dist_f, ref_f = self.augment(dist_f, ref_f, generator)
        quality = torch.tensor(float(record.quality), dtype=torch.float32)
        return dist_f.contiguous(), ref_f.contiguous(), quality


class ValPairs(_PairRecords):
    """Fixed centre crops (or whole images) of validation pairs.

    Args:
        records: PairRecord-like objects.
        crop: Side of the centre crop; 0 keeps the whole image, cut down to
            a multiple of ``size_multiple`` (images of different sizes then
            need a batch size of 1).
        size_multiple: The network's required size multiple.
        store: Image decoder/cache.

    Raises:
        InputError: If ``records`` is empty.
    """

    def __init__(
        self,
        records: Sequence[Any],
        *,
        crop: int = 0,
        size_multiple: int = 1,
        store: ImageStore | None = None,
    ) -> None:
        super().__init__(records, "validation", store)
        self.size_multiple = max(1, int(size_multiple))
        self.crop = (int(crop) // self.size_multiple) * self.size_multiple

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor, Tensor]:
        record = self.records[index]
        dist_path, ref_path = _record_paths(record)
        dist, ref = self.store.get(dist_path), self.store.get(ref_path)
        if dist.shape != ref.shape:
            raise InputError(
                f"{dist_path} and its reference {ref_path} differ in size "
                f"({tuple(dist.shape[1:])} vs {tuple(ref.shape[1:])}). Fix the labels file."
            )
        height, width = dist.shape[1:]
        m = self.size_multiple
        if self.crop:
            if min(height, width) < self.crop:
                raise InputError(
                    f"{dist_path} is {height}x{width}, smaller than the {self.crop}x{self.crop} "
                    "validation crop. Lower data.val_crop (or set it to 0 for whole images)."
                )
            ch = cw = self.crop
        else:
            ch, cw = (height // m) * m, (width // m) * m
            if ch == 0 or cw == 0:
                raise InputError(
                    f"{dist_path} is {height}x{width}, smaller than the network's size multiple "
                    f"{m}. Drop it from the validation labels."
                )
        top, left = (height - ch) // 2, (width - cw) // 2
        dist = dist[:, top : top + ch, left : left + cw]
        ref = ref[:, top : top + ch, left : left + cw]
        quality = torch.tensor(float(record.quality), dtype=torch.float32)
        return to_unit_float(dist), to_unit_float(ref), quality


def check_paths_exist(records: Sequence[Any], limit: int = 5) -> None:
    """Fail early, before decoding, if image files are missing.

    Args:
        records: PairRecord-like objects.
        limit: How many missing paths to name in the message.

    Raises:
        InputError: If any listed image does not exist.
    """
    missing = sorted({p for r in records for p in _record_paths(r) if not Path(p).is_file()})
    if missing:
        shown = ", ".join(missing[:limit])
        raise InputError(
            f"{len(missing)} image(s) listed in the labels do not exist, e.g. {shown}. Check "
            "data.root (the folder the CSV's paths are relative to) or re-run `asna-metric synth`."
        )
