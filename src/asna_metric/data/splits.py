"""Content-disjoint and type-disjoint splits of rated pairs.

Pairs that share a reference image share content, so a model evaluated on a
pair whose reference it saw in training is partly evaluated on memory. Every
split here keeps all pairs of one reference on the same side.

Assignment is by a seeded hash of each ``ref_id``: it depends only on the set
of references and the seed, never on the order of the records, and adding a
reference moves no other reference between sides of a ``k``-fold split.

Example:
    >>> from asna_metric.data.splits import split_by_reference
    >>> train, val = split_by_reference(dataset, val_fraction=0.2, seed=0)  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from typing import Any, overload

from asna_metric.data.readers import IQADataset, PairRecord
from asna_metric.errors import InputError

__all__ = [
    "DEFAULT_HELD_OUT_TYPES",
    "k_fold_by_reference",
    "leave_types_out",
    "split_by_reference",
]

#: KADID-10k types held out by :func:`leave_types_out` unless told otherwise.
#:
#: One per family, each with a sibling left in training, and each spanning a
#: wide range of human MOS over its five levels (so rank correlation within
#: the held-out set means something):
#:
#: * ``Lens_Blur`` (blur; Gaussian and motion blur stay in training),
#: * ``Multiplicative_Noise`` (noise; the additive and impulse noises stay),
#: * ``Color_Shift`` (colour; a geometric colour artefact unlike the
#:   saturation and quantisation types that stay),
#: * ``JP2K`` (compression; JPEG stays: ringing and blur instead of blocks),
#: * ``Jitter`` (spatial; pixel displacement, like the patch and pixelate
#:   types that stay, but with no counterpart in TID2013 or LIVE).
DEFAULT_HELD_OUT_TYPES: tuple[str, ...] = (
    "Lens_Blur",
    "Multiplicative_Noise",
    "Color_Shift",
    "JP2K",
    "Jitter",
)


def _records(records: Iterable[PairRecord] | IQADataset, name: str) -> list[PairRecord]:
    items = list(records)
    if not items:
        raise InputError(f"{name}: expected at least one record, got none. Check the dataset.")
    bad = [type(r).__name__ for r in items if not isinstance(r, PairRecord)]
    if bad:
        raise InputError(
            f"{name}: expected PairRecord items, got {len(bad)} of type {sorted(set(bad))}. "
            "Pass a dataset from asna_metric.data or a list of PairRecord."
        )
    return items


def _wrap(source: Iterable[PairRecord] | IQADataset, records: list[PairRecord], suffix: str) -> Any:
    if isinstance(source, IQADataset):
        return source.subset(records, name=f"{source.name}/{suffix}")
    return records


def _order(ref_ids: Iterable[str], seed: int) -> list[str]:
    """Sort reference ids by a seeded hash: a reproducible shuffle independent of input order."""
    unique = set(ref_ids)
    return sorted(unique, key=lambda r: hashlib.sha256(f"{seed}\x00{r}".encode()).hexdigest())


@overload
def split_by_reference(  # type: ignore[overload-overlap]
    records: IQADataset, *, val_fraction: float = ..., seed: int = ...
) -> tuple[IQADataset, IQADataset]: ...


@overload
def split_by_reference(
    records: Iterable[PairRecord], *, val_fraction: float = ..., seed: int = ...
) -> tuple[list[PairRecord], list[PairRecord]]: ...


def split_by_reference(
    records: Iterable[PairRecord] | IQADataset,
    *,
    val_fraction: float = 0.2,
    seed: int = 0,
) -> tuple[list[PairRecord], list[PairRecord]] | tuple[IQADataset, IQADataset]:
    """Split pairs into content-disjoint train and validation sets.

    Args:
        records: Pairs (a dataset or any iterable of :class:`PairRecord`).
        val_fraction: Fraction of the *references* to hold out, in ``(0, 1)``;
            rounded, at least one reference on each side.
        seed: Seed of the assignment.

    Returns:
        ``(train, val)``, each keeping the input's record order; datasets
        when given a dataset (names suffixed ``/train`` and ``/val``), lists
        otherwise.

    Raises:
        InputError: No records, fewer than two references, or
            ``val_fraction`` outside ``(0, 1)``.
    """
    items = _records(records, "split_by_reference")
    if not 0.0 < val_fraction < 1.0:
        raise InputError(
            f"val_fraction must be in (0, 1), got {val_fraction}. Use e.g. 0.2 for 20% of "
            "the references."
        )
    order = _order((r.ref_id for r in items), seed)
    if len(order) < 2:
        raise InputError(
            f"split_by_reference needs at least 2 distinct references, got {len(order)} "
            f"({order}). A content-disjoint split is impossible with one reference image."
        )
    n_val = min(len(order) - 1, max(1, round(val_fraction * len(order))))
    val_refs = set(order[:n_val])
    train = [r for r in items if r.ref_id not in val_refs]
    val = [r for r in items if r.ref_id in val_refs]
    return _wrap(records, train, "train"), _wrap(records, val, "val")


@overload
def k_fold_by_reference(  # type: ignore[overload-overlap]
    records: IQADataset, k: int = ..., *, seed: int = ...
) -> list[tuple[IQADataset, IQADataset]]: ...


@overload
def k_fold_by_reference(
    records: Iterable[PairRecord], k: int = ..., *, seed: int = ...
) -> list[tuple[list[PairRecord], list[PairRecord]]]: ...


def k_fold_by_reference(
    records: Iterable[PairRecord] | IQADataset,
    k: int = 5,
    *,
    seed: int = 0,
) -> list[tuple[list[PairRecord], list[PairRecord]]] | list[tuple[IQADataset, IQADataset]]:
    """Make ``k`` content-disjoint folds: each reference is validation in exactly one.

    Args:
        records: Pairs (a dataset or any iterable of :class:`PairRecord`).
        k: Number of folds, at least 2 and at most the number of references.
        seed: Seed of the assignment.

    Returns:
        ``k`` pairs ``(train, val)``; the validation sets partition the
        records. Datasets when given a dataset, lists otherwise.

    Raises:
        InputError: No records or ``k`` out of range.
    """
    items = _records(records, "k_fold_by_reference")
    order = _order((r.ref_id for r in items), seed)
    if not 2 <= k <= len(order):
        raise InputError(
            f"k must be between 2 and the number of references ({len(order)}), got {k}. "
            "Use fewer folds."
        )
    fold_of = {ref: i % k for i, ref in enumerate(order)}
    folds = []
    for fold in range(k):
        train = [r for r in items if fold_of[r.ref_id] != fold]
        val = [r for r in items if fold_of[r.ref_id] == fold]
        folds.append(
            (_wrap(records, train, f"fold{fold}-train"), _wrap(records, val, f"fold{fold}-val"))
        )
    return folds


def _type_key(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


@overload
def leave_types_out(  # type: ignore[overload-overlap]
    records: IQADataset, held_out_types: Sequence[str] = ...
) -> tuple[IQADataset, IQADataset]: ...


@overload
def leave_types_out(
    records: Iterable[PairRecord], held_out_types: Sequence[str] = ...
) -> tuple[list[PairRecord], list[PairRecord]]: ...


def leave_types_out(
    records: Iterable[PairRecord] | IQADataset,
    held_out_types: Sequence[str] = DEFAULT_HELD_OUT_TYPES,
) -> tuple[list[PairRecord], list[PairRecord]] | tuple[IQADataset, IQADataset]:
    """Split pairs by distortion type: train on some types, test on the others.

    Type names are matched ignoring case and punctuation (``"jp2k"`` matches
    ``"JP2K"``, ``"contrast dist"`` matches ``"Contrast Dist."``).

    Args:
        records: Pairs (a dataset or any iterable of :class:`PairRecord`).
        held_out_types: Types for the test side; by default
            :data:`DEFAULT_HELD_OUT_TYPES` (five KADID-10k types, one per
            family).

    Returns:
        ``(train, test)``; datasets when given a dataset (names suffixed
        ``/seen-types`` and ``/held-out-types``), lists otherwise.

    Raises:
        InputError: A held-out type is absent from the records, or nothing
            would be left for training.
    """
    items = _records(records, "leave_types_out")
    if isinstance(held_out_types, str):
        held_out_types = (held_out_types,)
    present = {_type_key(r.dis_type): r.dis_type for r in items}
    wanted = {_type_key(t): t for t in held_out_types}
    absent = [t for key, t in wanted.items() if key not in present]
    if absent or not wanted:
        raise InputError(
            f"leave_types_out: held-out types {absent or list(held_out_types)} are not among "
            f"the records' types {sorted(present.values())}. Pass types that occur in the data."
        )
    test = [r for r in items if _type_key(r.dis_type) in wanted]
    train = [r for r in items if _type_key(r.dis_type) not in wanted]
    if not train:
        raise InputError(
            f"leave_types_out: holding out {sorted(wanted.values())} leaves no training "
            "pairs. Hold out fewer types."
        )
    return _wrap(records, train, "seen-types"), _wrap(records, test, "held-out-types")
