"""Content-disjoint and type-disjoint splits of rated pairs and of reference photographs.

Pairs that share a reference image share content, so a model evaluated on a
pair whose reference it saw in training is partly evaluated on memory. Every
split here keeps all pairs of one reference on the same side.

The project's reference photographs themselves are split once, by
photograph, into train / val / test and recorded in a committed manifest
(``asna_metric/data/_splits/refs-v1.json``: seed, folders, and each split's
relative paths with their sha256). :func:`reference_split` reads it,
:func:`resolve_reference_split` finds the files under a refs root and checks
they are the ones listed, and :func:`check_not_eval_only` refuses the Kodak
photographs (the content of TID2013 and LIVE) for training or validation.
:func:`make_reference_split` rebuilds a manifest deterministically
(``scripts/make_reference_split.py``).

Assignment is by a seeded hash of each ``ref_id``: it depends only on the set
of references and the seed, never on the order of the records, and adding a
reference moves no other reference between sides of a ``k``-fold split.

Example:
    >>> from asna_metric.data.splits import split_by_reference
    >>> train, val = split_by_reference(dataset, val_fraction=0.2, seed=0)  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, overload

from asna_metric._provenance import sha256_file
from asna_metric.data.readers import IQADataset, PairRecord
from asna_metric.errors import InputError

__all__ = [
    "DEFAULT_HELD_OUT_TYPES",
    "DEFAULT_REFERENCE_SPLIT",
    "EVAL_ONLY_FOLDERS",
    "REFERENCE_SPLITS",
    "REFERENCE_SPLIT_NAMES",
    "TRAINING_SPLITS",
    "check_not_eval_only",
    "k_fold_by_reference",
    "leave_types_out",
    "load_split_manifest",
    "make_reference_split",
    "reference_split",
    "resolve_reference_split",
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


# --------------------------------------------------------------------------------------
# Reference photographs: a committed train / val / test split by photograph
# --------------------------------------------------------------------------------------

#: Manifests shipped with the package (``asna_metric/data/_splits/{name}.json``).
REFERENCE_SPLITS: tuple[str, ...] = ("refs-v1",)

#: The manifest used when none is named.
DEFAULT_REFERENCE_SPLIT = "refs-v1"

#: Split names of a manifest, in order; ``eval_only`` holds the photographs
#: that must never be trained or validated on.
REFERENCE_SPLIT_NAMES: tuple[str, ...] = ("train", "val", "test", "eval_only")

#: Splits whose photographs may be used to fit or select a model.
TRAINING_SPLITS: tuple[str, ...] = ("train", "val")

#: Folders of the refs root reserved for evaluation: the Kodak photographs
#: (``kodak/`` full size, ``kodak24/`` 500x500 crops) are the content of
#: TID2013 and LIVE.
EVAL_ONLY_FOLDERS: tuple[str, ...] = ("kodak", "kodak24")

#: Folders split into train / val / test by default.
DEFAULT_SPLIT_FOLDERS: tuple[str, ...] = ("bsds500", "cbsd68", "urban100")

_SPLIT_FORMAT = "asna_metric.reference_split/1"
_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".ppm", ".webp")
_SPLIT_METHOD = (
    "per folder, relative paths ordered by sha256(f'{seed}\\x00{path}'); the first "
    "round(val * n) are val, the next round(test * n) test, the rest train"
)


def _folder_images(root: Path, folder: str) -> list[str]:
    path = root / folder
    if not path.is_dir():
        raise InputError(
            f"reference folder {str(path)!r} does not exist; expected the refs root to hold "
            f"{folder}/ (the project's ../shared/data/refs). Pass the right root or drop "
            f"{folder!r} from the folders."
        )
    names = sorted(
        p.name for p in path.iterdir() if p.is_file() and p.suffix.lower() in _IMAGE_SUFFIXES
    )
    if not names:
        raise InputError(f"no images in {str(path)!r}; expected {', '.join(_IMAGE_SUFFIXES)}.")
    return [f"{folder}/{name}" for name in names]


def make_reference_split(
    refs_root: str | os.PathLike[str],
    *,
    name: str = DEFAULT_REFERENCE_SPLIT,
    seed: int = 0,
    folders: Sequence[str] = DEFAULT_SPLIT_FOLDERS,
    eval_only_folders: Sequence[str] = EVAL_ONLY_FOLDERS,
    val_fraction: float = 0.1,
    test_fraction: float = 0.1,
) -> dict[str, Any]:
    """Split reference photographs by photograph into train / val / test.

    Stratified by folder: each folder's photographs are ordered by a seeded
    hash of their relative path and cut into val, test and train, so every
    split holds photographs of every folder, and the result depends only on
    the file names and the seed (not on listing order or file system). The
    photographs of ``eval_only_folders`` are listed under ``eval_only``.

    Args:
        refs_root: Folder holding the photograph folders.
        name: Name recorded in the manifest.
        seed: Seed of the order.
        folders: Folders to split (relative to ``refs_root``).
        eval_only_folders: Folders reserved for evaluation.
        val_fraction: Fraction of each folder for validation.
        test_fraction: Fraction of each folder for the test split.

    Returns:
        The manifest: ``format``, ``name``, ``seed``, ``fractions``,
        ``folders``, ``eval_only_folders``, ``method``, ``counts`` and
        ``splits`` (split name -> {relative path: sha256}).

    Raises:
        InputError: A folder is missing or empty, a folder is both split and
            eval-only, the fractions leave no training photograph, or two
            photographs have the same bytes in different splits.
    """
    root = Path(refs_root)
    overlap = sorted(set(folders) & set(eval_only_folders))
    if overlap:
        raise InputError(
            f"folders {overlap} are both split and eval-only; a photograph reserved for "
            "evaluation cannot be in train or val. Remove them from folders."
        )
    if not (0.0 < val_fraction and 0.0 < test_fraction and val_fraction + test_fraction < 1.0):
        raise InputError(
            f"val_fraction and test_fraction must be positive and sum below 1; got "
            f"{val_fraction} and {test_fraction}. Use e.g. 0.1 and 0.1."
        )
    splits: dict[str, dict[str, str]] = {key: {} for key in REFERENCE_SPLIT_NAMES}
    counts: dict[str, dict[str, int]] = {key: {} for key in REFERENCE_SPLIT_NAMES}
    for folder in sorted(folders):
        order = _order(_folder_images(root, folder), seed)
        n_val = max(1, round(val_fraction * len(order)))
        n_test = max(1, round(test_fraction * len(order)))
        if n_val + n_test >= len(order):
            raise InputError(
                f"{folder}/ has {len(order)} photographs, too few for a train, val and test "
                "split. Add photographs or leave the folder out."
            )
        parts = {
            "val": order[:n_val],
            "test": order[n_val : n_val + n_test],
            "train": order[n_val + n_test :],
        }
        for split, paths in parts.items():
            splits[split].update({p: sha256_file(root / p) for p in paths})
            counts[split][folder] = len(paths)
    for folder in sorted(eval_only_folders):
        paths = _folder_images(root, folder)
        splits["eval_only"].update({p: sha256_file(root / p) for p in paths})
        counts["eval_only"][folder] = len(paths)
    manifest = {
        "format": _SPLIT_FORMAT,
        "name": name,
        "seed": seed,
        "fractions": {
            "train": round(1.0 - val_fraction - test_fraction, 6),
            "val": val_fraction,
            "test": test_fraction,
        },
        "folders": sorted(folders),
        "eval_only_folders": sorted(eval_only_folders),
        "method": _SPLIT_METHOD,
        "counts": counts,
        "splits": {key: dict(sorted(value.items())) for key, value in splits.items()},
    }
    _check_manifest(manifest, name)
    return manifest


def _check_manifest(manifest: Any, source: str) -> None:
    """Structure, disjoint paths, and no eval-only bytes in train or val."""
    if not isinstance(manifest, dict) or manifest.get("format") != _SPLIT_FORMAT:
        got = manifest.get("format") if isinstance(manifest, dict) else type(manifest).__name__
        raise InputError(
            f"{source}: not a reference split manifest (format {got!r}, expected "
            f"{_SPLIT_FORMAT!r}). Make one with scripts/make_reference_split.py."
        )
    splits = manifest.get("splits")
    if not isinstance(splits, dict) or set(splits) != set(REFERENCE_SPLIT_NAMES):
        got = sorted(splits) if isinstance(splits, dict) else splits
        raise InputError(
            f"{source}: 'splits' must have the keys {list(REFERENCE_SPLIT_NAMES)}; got {got}."
        )
    seen: dict[str, str] = {}
    for split in REFERENCE_SPLIT_NAMES:
        for path in splits[split]:
            if path in seen:
                raise InputError(
                    f"{source}: {path!r} is in both {seen[path]!r} and {split!r}; splits must "
                    "be disjoint. Regenerate the manifest."
                )
            seen[path] = split
    reserved = set(splits["eval_only"].values())
    leaked = sorted(
        path for split in TRAINING_SPLITS for path, h in splits[split].items() if h in reserved
    )
    if leaked:
        raise InputError(
            f"{source}: {len(leaked)} train/val photograph(s) have the same bytes as an "
            f"eval-only one, e.g. {leaked[:3]}. Remove the copies from the split folders."
        )


def _read_shipped(name: str) -> str:
    from importlib.resources import files

    return files("asna_metric.data").joinpath("_splits", f"{name}.json").read_text("utf-8")


def load_split_manifest(name: str | os.PathLike[str] = DEFAULT_REFERENCE_SPLIT) -> dict[str, Any]:
    """Read a reference split manifest: a shipped name or a JSON file.

    Args:
        name: One of :data:`REFERENCE_SPLITS` or the path of a manifest
            written by ``scripts/make_reference_split.py``.

    Returns:
        The manifest (see :func:`make_reference_split`).

    Raises:
        InputError: Unknown name, unreadable file, or an invalid manifest
            (overlapping splits, eval-only photographs in train or val).
    """
    key = os.fspath(name)
    if key in REFERENCE_SPLITS:
        text, source = _read_shipped(key), f"shipped split {key!r}"
    else:
        path = Path(key)
        if not path.is_file():
            raise InputError(
                f"unknown reference split {key!r}: not a shipped split "
                f"({', '.join(REFERENCE_SPLITS)}) nor a manifest file. Pass a shipped name or "
                "the path of a JSON manifest."
            )
        try:
            text, source = path.read_text("utf-8"), str(path)
        except OSError as exc:
            raise InputError(f"cannot read split manifest {key!r}: {exc}.") from exc
    try:
        manifest = json.loads(text)
    except ValueError as exc:
        raise InputError(f"{source} is not valid JSON ({exc}). Regenerate it.") from exc
    _check_manifest(manifest, source)
    return manifest


def _manifest(name: str | os.PathLike[str] | Mapping[str, Any]) -> dict[str, Any]:
    if isinstance(name, Mapping):
        manifest = dict(name)
        _check_manifest(manifest, str(manifest.get("name", "manifest")))
        return manifest
    return load_split_manifest(name)


def reference_split(
    name: str | os.PathLike[str] = DEFAULT_REFERENCE_SPLIT,
) -> dict[str, list[str]]:
    """The photographs of each split, as sorted paths relative to the refs root.

    Args:
        name: A shipped split name (:data:`REFERENCE_SPLITS`) or a manifest path.

    Returns:
        ``{"train": [...], "val": [...], "test": [...], "eval_only": [...]}``,
        paths like ``"cbsd68/101085.png"`` with ``/`` separators.

    Raises:
        InputError: See :func:`load_split_manifest`.

    Example:
        >>> split = reference_split("refs-v1")
        >>> len(split["train"]), len(split["val"]), len(split["test"])
        (480, 60, 60)
        >>> any(p.startswith("kodak") for p in split["train"] + split["val"])
        False
    """
    manifest = load_split_manifest(name)
    return {key: sorted(manifest["splits"][key]) for key in REFERENCE_SPLIT_NAMES}


def _check_split_name(split: str, allowed: Sequence[str]) -> None:
    if split not in allowed:
        raise InputError(f"split must be one of {list(allowed)}; got {split!r}.")


def resolve_reference_split(
    refs_root: str | os.PathLike[str],
    split: Literal["train", "val", "test", "eval_only"],
    *,
    manifest: str | os.PathLike[str] | Mapping[str, Any] = DEFAULT_REFERENCE_SPLIT,
    verify: bool = True,
) -> list[Path]:
    """Find a split's photographs under ``refs_root`` and check they are the listed ones.

    Args:
        refs_root: Folder holding ``cbsd68/``, ``bsds500/``, ``urban100/``...
            (the project's ``../shared/data/refs``).
        split: ``"train"``, ``"val"``, ``"test"`` or ``"eval_only"``.
        manifest: Shipped split name, manifest path, or a manifest dict.
        verify: Compare each file's sha256 with the manifest (about a second
            for the 480 training photographs); ``False`` only checks that
            they exist.

    Returns:
        Absolute paths, sorted like the manifest.

    Raises:
        InputError: Unknown split, missing files, or files whose bytes differ
            from the manifest's.
    """
    _check_split_name(split, REFERENCE_SPLIT_NAMES)
    content = _manifest(manifest)
    root = Path(refs_root).resolve()
    listed: dict[str, str] = content["splits"][split]
    missing = [p for p in listed if not (root / p).is_file()]
    if missing:
        folders = ", ".join(sorted({p.split("/")[0] for p in listed}))
        raise InputError(
            f"{len(missing)} of the {len(listed)} {split!r} photographs of split "
            f"{content.get('name')!r} are missing under {str(root)!r}, e.g. {missing[:3]}. "
            f"Pass the refs root that holds {folders}/ "
            "(the project's ../shared/data/refs)."
        )
    if verify:
        changed = [p for p, h in listed.items() if sha256_file(root / p) != h]
        if changed:
            raise InputError(
                f"{len(changed)} {split!r} photograph(s) under {str(root)!r} differ from split "
                f"{content.get('name')!r} (sha256), e.g. {changed[:3]}. Restore the original "
                "files, or make a new manifest with scripts/make_reference_split.py under a "
                "new name."
            )
    return [root / p for p in listed]


def check_not_eval_only(
    paths: Iterable[str | os.PathLike[str]],
    *,
    manifest: str | os.PathLike[str] | Mapping[str, Any] = DEFAULT_REFERENCE_SPLIT,
    what: str = "training",
) -> None:
    """Refuse photographs reserved for evaluation (the Kodak images).

    A path is refused when it lies in a folder named like one of the
    manifest's eval-only folders (``kodak``, ``kodak24``) or when its bytes
    equal an eval-only photograph's (a renamed copy). A re-encoded or
    re-cropped copy is not detected.

    Args:
        paths: Image files meant for training or validation.
        manifest: Shipped split name, manifest path or manifest dict whose
            ``eval_only`` list to check against.
        what: Use named in the message.

    Raises:
        InputError: Some paths are eval-only photographs.
    """
    content = _manifest(manifest)
    folders = set(content.get("eval_only_folders", EVAL_ONLY_FOLDERS))
    reserved = {h: p for p, h in content["splits"]["eval_only"].items()}
    refused = []
    for item in paths:
        path = Path(item)
        if path.parent.name in folders:
            refused.append(f"{path} (folder {path.parent.name}/)")
        elif path.is_file():
            copy_of = reserved.get(sha256_file(path))
            if copy_of is not None:
                refused.append(f"{path} (same bytes as {copy_of})")
    if refused:
        raise InputError(
            f"{len(refused)} photograph(s) are reserved for evaluation and cannot be used for "
            f"{what}, e.g. {refused[:3]}. The Kodak images are the content of TID2013 and LIVE; "
            "use the 'train' and 'val' splits of the reference manifest instead."
        )
