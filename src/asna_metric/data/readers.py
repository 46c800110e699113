"""Readers for human-rated full-reference IQA datasets.

Each reader takes the root of a user's own copy of a dataset, laid out as in
its official release, and returns an :class:`IQADataset`: a list of
:class:`PairRecord` (distorted path, reference path, raw human score, the
score mapped to the package's quality scale, distortion type, level and
reference id) plus the dataset's score direction and range. Nothing is
downloaded and no image is opened: :meth:`IQADataset.check_files` checks that
the images exist, and the evaluation code decodes them.

Quality scale: every reader maps its raw scores onto ``[0, 1]``, higher is
better (1 = an undistorted pair), by the dataset's :class:`ScoreConvention`:

============  =====================  =====================================
dataset       raw score              quality ``q``
============  =====================  =====================================
KADID-10k     MOS 1..5, higher best  ``(MOS - 1) / 4``
TID2013/2008  MOS 0..9, higher best  ``MOS / 9``
LIVE (R2)     DMOS, lower best       ``clip(1 - DMOS / 100, 0, 1)``
CSIQ          DMOS 0..1, lower best  ``1 - DMOS``
PIPAL         Elo, higher best       ``sigmoid((Elo - 1449.05) / 121.35)``
============  =====================  =====================================

LIVE's realigned DMOS runs slightly outside 0..100 (about -2.6 to 111.8 in
release 2), so a handful of pairs clip to 0 or 1; the raw score is kept in
:attr:`PairRecord.score` and rank correlations use it unchanged. PIPAL's Elo
has no fixed range; the logistic uses the standardisation of the ASNA paper's
training code (mean 1449.05, standard deviation 121.35 of the PIPAL training
labels), is fixed (the same Elo always maps to the same quality, whatever
subset is read) and keeps the order of the scores.

Example:
    >>> from asna_metric.data import read_kadid10k
    >>> dataset = read_kadid10k("~/datasets/kadid10k")  # doctest: +SKIP
    >>> dataset.check_files()  # doctest: +SKIP
    >>> len(dataset), dataset[0].quality  # doctest: +SKIP
    (10125, 0.8925)
"""

from __future__ import annotations

import csv
import logging
import math
import os
import re
import zipfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath
from typing import Any, overload
from xml.etree import ElementTree

from asna_metric.data.kadid_cells import KADID_TYPE_NAMES
from asna_metric.errors import InputError

__all__ = [
    "CONVENTIONS",
    "DATASETS",
    "KADID_TYPES",
    "LABEL_COLUMNS",
    "TID2013_TYPES",
    "IQADataset",
    "MissingFilesError",
    "PairRecord",
    "ScoreConvention",
    "get_convention",
    "load_dataset",
    "read_csiq",
    "read_kadid10k",
    "read_labels_csv",
    "read_live",
    "read_pipal",
    "read_tid2008",
    "read_tid2013",
]

logger = logging.getLogger(__name__)

#: KADID-10k's 25 distortion types, in the order of the type index in its file names
#: (the names in the generated :mod:`asna_metric.data.kadid_cells`).
KADID_TYPES: tuple[str, ...] = KADID_TYPE_NAMES

#: TID2013's 24 distortion types (TID2008 uses the first 17), by file-name index.
TID2013_TYPES: tuple[str, ...] = (
    "AWGN",
    "Chroma_Noise",
    "Pink_Noise",
    "Masked_Noise",
    "High_Frequency_Noise",
    "Impluse_Noise",
    "Quantization_Noise",
    "GBLUR",
    "Denoising",
    "JPEG",
    "JP2K",
    "JPEG_Transmission_Error",
    "JP2K_Transmission_Error",
    "Non_Eccentricity_Pattern_Noise",
    "Block_Dist.",
    "Mean_Shift",
    "Contrast_Dist.",
    "Saturation_Dist.",
    "Multi._Gaussian Noise",
    "Comfort_Noise",
    "Noisy_Image_Compression",
    "Dithering",
    "Chroma_Aberrations",
    "Sparse_Sampling",
)

# LIVE release 2: folders in the order of the DMOS vector, with their sizes
# (reference copies included; ``orgs`` marks them).
_LIVE_FOLDERS: tuple[tuple[str, int], ...] = (
    ("jp2k", 227),
    ("jpeg", 233),
    ("wn", 174),
    ("gblur", 174),
    ("fastfading", 174),
)

# CSIQ: ``dst_type`` in the DMOS spreadsheet -> (folder, file-name tag, type name).
_CSIQ_TYPES: dict[str, tuple[str, str, str]] = {
    "noise": ("awgn", "AWGN", "AWGN"),
    "awgn": ("awgn", "AWGN", "AWGN"),
    "jpeg": ("jpeg", "JPEG", "JPEG"),
    "jpeg 2000": ("jpeg2000", "jpeg2000", "JP2K"),
    "jpeg2000": ("jpeg2000", "jpeg2000", "JP2K"),
    "fnoise": ("fnoise", "fnoise", "Pink_Noise"),
    "blur": ("blur", "BLUR", "GBLUR"),
    "contrast": ("contrast", "contrast", "Contrast Dist."),
}

_MAX_LISTED = 10


class MissingFilesError(FileNotFoundError):
    """Files a dataset needs (label files or images) are not where they should be.

    Attributes:
        missing: The missing paths (all of them, not only the listed ones).
        total: How many paths were checked.
    """

    def __init__(self, message: str, missing: Sequence[Path] = (), total: int = 0) -> None:
        super().__init__(message)
        self.missing = tuple(missing)
        self.total = total


@dataclass(frozen=True)
class ScoreConvention:
    """How a dataset's raw human scores map onto the quality scale ``[0, 1]``.

    Attributes:
        name: Canonical dataset name (``"KADID-10k"``).
        kind: What the score is: ``"MOS"``, ``"DMOS"`` or ``"Elo"``.
        higher_is_better: Whether a higher raw score means better quality.
        score_range: Nominal ``(low, high)`` of the raw score.
        logistic: ``(centre, scale)`` for a logistic map
            ``q = 1 / (1 + exp(-(score - centre) / scale))`` (scores without a
            fixed range, such as Elo); ``None`` for the linear map of
            ``score_range`` onto ``[0, 1]`` (flipped when lower is better,
            clipped).
        level_pattern: Regular expression with a group named ``level`` that
            reads the distortion level from the distorted file's name, or
            ``None`` when the names carry no level.
    """

    name: str
    kind: str
    higher_is_better: bool
    score_range: tuple[float, float]
    logistic: tuple[float, float] | None = None
    level_pattern: str | None = None

    def to_quality(self, score: float) -> float:
        """Map one raw score to quality in ``[0, 1]``, higher is better.

        Args:
            score: Raw human score on this dataset's scale.

        Returns:
            The quality, clipped to ``[0, 1]``.
        """
        if self.logistic is not None:
            centre, scale = self.logistic
            z = max(-60.0, min(60.0, (score - centre) / scale))
            q = 1.0 / (1.0 + math.exp(-z))
        else:
            low, high = self.score_range
            q = (score - low) / (high - low)
        if not self.higher_is_better:
            q = 1.0 - q
        return min(1.0, max(0.0, q))

    def level_of(self, dist_name: str) -> int | None:
        """Read the distortion level from a distorted image's file name.

        Args:
            dist_name: File name (or path) of the distorted image.

        Returns:
            The level, or ``None`` when the convention has no pattern or the
            name does not match it.
        """
        if self.level_pattern is None:
            return None
        name = dist_name.replace("\\", "/").rsplit("/", 1)[-1]
        match = re.search(self.level_pattern, name, re.IGNORECASE)
        return int(match.group("level")) if match else None


# ``{ref}_{type}_{level}.ext`` (KADID-10k, TID2013/2008 and the synthesised KADID-protocol sets).
_TYPE_LEVEL = r"_\d+_(?P<level>\d+)\.[a-z0-9]+$"

#: Score conventions of the datasets this package knows, by canonical name.
CONVENTIONS: dict[str, ScoreConvention] = {
    c.name: c
    for c in (
        ScoreConvention("KADID-10k", "MOS", True, (1.0, 5.0), level_pattern=_TYPE_LEVEL),
        ScoreConvention("TID2013", "MOS", True, (0.0, 9.0), level_pattern=_TYPE_LEVEL),
        ScoreConvention("TID2008", "MOS", True, (0.0, 9.0), level_pattern=_TYPE_LEVEL),
        ScoreConvention("LIVE", "DMOS", False, (0.0, 100.0)),
        ScoreConvention(
            "CSIQ", "DMOS", False, (0.0, 1.0), level_pattern=r"\.(?P<level>\d+)\.[a-z]+$"
        ),
        ScoreConvention("PIPAL", "Elo", True, (900.0, 1900.0), logistic=(1449.05, 121.35)),
        ScoreConvention("LIVE_MD", "DMOS", False, (0.0, 100.0)),
        ScoreConvention("Toyama", "MOS", True, (1.0, 5.0)),
    )
}


def _key(name: str) -> str:
    """Normalise a dataset name for lookups: lower case, letters and digits only."""
    return re.sub(r"[^a-z0-9]", "", name.lower())


_ALIASES = {"kadid": "KADID-10k", "tid": "TID2013", "live2": "LIVE", "liver2": "LIVE"}


def get_convention(name: str) -> ScoreConvention:
    """Look up a dataset's score convention by name (case and punctuation ignored).

    Args:
        name: Dataset name such as ``"KADID-10k"``, ``"kadid10k"`` or ``"tid2013"``.

    Returns:
        The registered :class:`ScoreConvention`.

    Raises:
        InputError: The name is not registered.
    """
    wanted = _key(name)
    wanted = _key(_ALIASES.get(wanted, wanted))
    for canonical, convention in CONVENTIONS.items():
        if _key(canonical) == wanted:
            return convention
    raise InputError(
        f"unknown dataset {name!r}: expected one of {sorted(CONVENTIONS)}. Pass the dataset "
        "name explicitly, or a ScoreConvention(name, kind, higher_is_better, score_range) "
        "that says how its scores map to quality."
    )


@dataclass(frozen=True)
class PairRecord:
    """One rated (distorted, reference) pair.

    Attributes:
        dist: Path of the distorted image.
        ref: Path of its reference image.
        score: Raw human score as published (MOS, DMOS or Elo).
        quality: ``score`` mapped to ``[0, 1]``, higher is better.
        dis_type: Distortion type name.
        level: Distortion level (1 = mildest), or ``None`` when the dataset
            has no levels.
        ref_id: Identifier of the reference content (for content-disjoint
            splits).
    """

    dist: Path
    ref: Path
    score: float
    quality: float
    dis_type: str
    level: int | None
    ref_id: str


@dataclass(frozen=True)
class IQADataset(Sequence[PairRecord]):
    """A human-rated full-reference dataset: records plus the score convention.

    Indexing with an integer gives a :class:`PairRecord`; with a slice, a new
    dataset. The object never opens an image (it does not import torch).

    Attributes:
        name: Dataset name.
        records: The pairs, in the order of the label file.
        higher_is_better: Whether a higher raw score means better quality.
        score_range: Nominal ``(low, high)`` of the raw score.
        root: Folder the paths were resolved against (``None`` if unknown).
    """

    name: str
    records: tuple[PairRecord, ...]
    higher_is_better: bool
    score_range: tuple[float, float]
    root: Path | None = field(default=None, compare=False)

    def __len__(self) -> int:
        return len(self.records)

    def __iter__(self) -> Iterator[PairRecord]:
        return iter(self.records)

    @overload
    def __getitem__(self, index: int) -> PairRecord: ...

    @overload
    def __getitem__(self, index: slice) -> IQADataset: ...

    def __getitem__(self, index: int | slice) -> PairRecord | IQADataset:
        if isinstance(index, slice):
            return self.subset(self.records[index])
        return self.records[index]

    def __repr__(self) -> str:
        return (
            f"IQADataset(name={self.name!r}, n={len(self)}, references={len(self.ref_ids)}, "
            f"types={len(self.dis_types)}, higher_is_better={self.higher_is_better}, "
            f"score_range={self.score_range}, root={str(self.root) if self.root else None!r})"
        )

    @property
    def dis_types(self) -> tuple[str, ...]:
        """Distortion types present, in order of first appearance."""
        return tuple(dict.fromkeys(r.dis_type for r in self.records))

    @property
    def ref_ids(self) -> tuple[str, ...]:
        """Reference ids present, in order of first appearance."""
        return tuple(dict.fromkeys(r.ref_id for r in self.records))

    @property
    def qualities(self) -> list[float]:
        """The quality of every record (``[0, 1]``, higher is better)."""
        return [r.quality for r in self.records]

    @property
    def scores(self) -> list[float]:
        """The raw score of every record."""
        return [r.score for r in self.records]

    def subset(self, records: Iterable[PairRecord], name: str | None = None) -> IQADataset:
        """Make a dataset with the same convention holding other records.

        Args:
            records: The records to keep.
            name: New name; the current one when ``None``.

        Returns:
            A new :class:`IQADataset`.
        """
        return replace(self, records=tuple(records), name=self.name if name is None else name)

    def present(self) -> IQADataset:
        """The pairs whose distorted and reference images both exist (a subset says so).

        Returns:
            This dataset when nothing is missing, else the subset of pairs
            with both files present (possibly empty).
        """
        try:
            self.check_files()
        except MissingFilesError as exc:
            missing = set(exc.missing)
            return self.subset(r for r in self if r.dist not in missing and r.ref not in missing)
        return self

    def check_files(self) -> None:
        """Check that every distorted and reference image exists.

        Raises:
            MissingFilesError: One or more images are missing; the message
                gives the count and the first few paths.
        """
        paths = list(dict.fromkeys(p for r in self.records for p in (r.dist, r.ref)))
        missing = [p for p in paths if not p.is_file()]
        if missing:
            raise MissingFilesError(
                f"{self.name}: {len(missing)} of {len(paths)} image files are missing"
                f"{f' under {self.root}' if self.root else ''}; first "
                f"{min(len(missing), _MAX_LISTED)}: {_listing(missing)}. Point root at the "
                "top folder of your copy of the dataset, laid out as in its official release "
                "(see docs/evaluation.md), and check that the copy is complete.",
                missing=missing,
                total=len(paths),
            )


def _listing(paths: Sequence[Path]) -> str:
    shown = ", ".join(str(p) for p in paths[:_MAX_LISTED])
    more = len(paths) - _MAX_LISTED
    return shown + (f" (and {more} more)" if more > 0 else "")


class _PathResolver:
    """Resolve relative paths under a root, tolerating case differences.

    Official releases are not consistent about case (TID2013 lists
    ``i01.bmp`` for the file ``I01.BMP``); each folder is listed once and
    names are matched exactly first, then ignoring case. A path that cannot
    be found is returned as written, for :meth:`IQADataset.check_files` to
    report. Works on strings (pathlib is slow for tens of thousands of rows).
    """

    def __init__(self) -> None:
        self._listings: dict[str, tuple[set[str], dict[str, str]] | None] = {}

    def _listing(self, folder: str) -> tuple[set[str], dict[str, str]] | None:
        if folder not in self._listings:
            try:
                names = os.listdir(folder)
            except OSError:
                self._listings[folder] = None
            else:
                self._listings[folder] = (set(names), {n.lower(): n for n in names})
        return self._listings[folder]

    def resolve(self, base: Path, relative: str) -> Path:
        parts = [p for p in relative.strip().replace("\\", "/").split("/") if p and p != "."]
        current = os.fspath(base)
        for i, part in enumerate(parts):
            listing = self._listing(current)
            actual = None
            if listing is not None:
                names, lowered = listing
                actual = part if part in names else lowered.get(part.lower())
            if actual is None:
                return Path(os.path.join(current, *parts[i:]))
            current = os.path.join(current, actual)
        return Path(current)


def _as_root(root: str | Path) -> Path:
    path = Path(root).expanduser()
    if not path.is_dir():
        raise MissingFilesError(
            f"dataset root {str(path)!r} is not a folder: expected the top folder of your "
            "copy of the dataset. Check the path.",
            missing=[path],
            total=1,
        )
    return path


def _locate(root: Path, marker: str, children: Sequence[str], dataset: str, layout: str) -> Path:
    """Find the folder holding ``marker`` (a label file) in ``root`` or a known child."""
    resolver = _PathResolver()
    for folder in (root, *(root / c for c in children)):
        candidate = resolver.resolve(folder, marker)
        if candidate.is_file():
            return candidate
    try:
        entries = sorted(p.name for p in root.iterdir())[:_MAX_LISTED]
    except OSError:
        entries = []
    raise MissingFilesError(
        f"{dataset}: expected the release's label file {marker!r} in {str(root)!r} "
        f"(or in one of its subfolders {list(children)}); that folder holds {entries}. "
        f"Point root at the folder laid out as {layout}.",
        missing=[root / marker],
        total=1,
    )


def _parse_float(text: str, where: str) -> float:
    try:
        value = float(text.strip())
    except ValueError:
        raise InputError(
            f"{where}: expected a number for the score, got {text!r}. Fix or remove that row."
        ) from None
    if not math.isfinite(value):
        raise InputError(f"{where}: expected a finite score, got {text!r}. Fix that row.")
    return value


def _dataset(
    convention: ScoreConvention, records: list[PairRecord], root: Path, source: Path
) -> IQADataset:
    if not records:
        raise InputError(
            f"{convention.name}: the label file {str(source)!r} holds no pairs: expected at "
            "least one row. Check that it is the right, complete file."
        )
    logger.debug("read %d %s pairs from %s", len(records), convention.name, source)
    return IQADataset(
        name=convention.name,
        records=tuple(records),
        higher_is_better=convention.higher_is_better,
        score_range=convention.score_range,
        root=root,
    )


def _record(
    convention: ScoreConvention,
    dist: Path,
    ref: Path,
    score: float,
    dis_type: str,
    level: int | None,
    ref_id: str,
) -> PairRecord:
    return PairRecord(
        dist=dist,
        ref=ref,
        score=score,
        quality=convention.to_quality(score),
        dis_type=dis_type,
        level=level,
        ref_id=ref_id,
    )


LABEL_COLUMNS = ("dis_img_path", "dis_type", "ref_img_path", "score")
"""Columns of the generic label CSV (:func:`read_labels_csv`; ``asna-metric synth`` writes it)."""


def read_labels_csv(
    csv_path: str | Path,
    root: str | Path,
    *,
    dataset: str | None = None,
    convention: ScoreConvention | None = None,
) -> IQADataset:
    """Read the generic label CSV ``dis_img_path,dis_type,ref_img_path,score``.

    Paths in the file are relative to ``root``. The files in the project's
    shared ``labels/`` folder start with the dataset's folder
    (``KADID-10k/images/I01_01_01.png``): pass the folder that *contains*
    ``KADID-10k/``; pointing ``root`` at ``KADID-10k/`` itself also works (a
    leading component equal to the root's own name is dropped). Case
    differences between the file and the disk are tolerated.

    Args:
        csv_path: The label CSV.
        root: Folder the paths are relative to. It need not exist to read
            the labels; :meth:`IQADataset.check_files` checks the images.
        dataset: Name of the dataset whose score convention applies; the CSV
            file's stem (``KADID-10k.csv`` -> ``"KADID-10k"``) when ``None``.
        convention: An explicit convention; overrides ``dataset``.

    Returns:
        The dataset.

    Raises:
        MissingFilesError: ``csv_path`` does not exist.
        InputError: Missing columns, no rows, a non-numeric or non-finite
            score, or an unknown dataset name without ``convention``.
    """
    path = Path(csv_path).expanduser()
    if not path.is_file():
        raise MissingFilesError(
            f"label file {str(path)!r} does not exist: expected a CSV with the columns "
            f"{','.join(LABEL_COLUMNS)}. Check the path.",
            missing=[path],
            total=1,
        )
    if convention is None:
        convention = get_convention(dataset if dataset is not None else path.stem)
    base = Path(root).expanduser()
    resolver = _PathResolver()
    records: list[PairRecord] = []
    strip_first: bool | None = None
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        header = [h.strip() for h in (reader.fieldnames or [])]
        missing_columns = [c for c in LABEL_COLUMNS if c not in header]
        if missing_columns:
            raise InputError(
                f"{path}: expected the columns {','.join(LABEL_COLUMNS)}, got header "
                f"{header or '(empty file)'}; missing {missing_columns}. Write a header row with "
                "those names (paths relative to root, the raw score)."
            )
        reader.fieldnames = header
        for line, row in enumerate(reader, start=2):
            where = f"{path}, line {line}"
            dist_rel, ref_rel = (row["dis_img_path"] or "").strip(), (row["ref_img_path"] or "")
            if not dist_rel or not ref_rel.strip():
                raise InputError(
                    f"{where}: expected both image paths, got {dist_rel!r} and {ref_rel!r}. "
                    "Fix or remove that row."
                )
            score = _parse_float(row["score"] or "", where)
            if strip_first is None:
                first = PurePosixPath(dist_rel.replace("\\", "/")).parts[0]
                strip_first = first.lower() == base.name.lower() and not (base / first).exists()
            if strip_first:
                dist_rel = "/".join(PurePosixPath(dist_rel.replace("\\", "/")).parts[1:])
                ref_rel = "/".join(PurePosixPath(ref_rel.strip().replace("\\", "/")).parts[1:])
            records.append(
                _record(
                    convention,
                    resolver.resolve(base, dist_rel),
                    resolver.resolve(base, ref_rel),
                    score,
                    (row["dis_type"] or "").strip() or "unknown",
                    convention.level_of(dist_rel),
                    os.path.splitext(ref_rel.strip().replace("\\", "/").rsplit("/", 1)[-1])[0],
                )
            )
    return _dataset(convention, records, base, path)


def read_kadid10k(root: str | Path) -> IQADataset:
    """Read KADID-10k as released (``dmos.csv`` and ``images/``).

    ``dmos.csv`` has the columns ``dist_img,ref_img,dmos,var``; despite its
    name the ``dmos`` column is a MOS on 1..5, higher is better. Distorted
    images are named ``I{ref}_{type}_{level}.png``.

    Args:
        root: Folder holding ``dmos.csv`` and ``images/`` (or its parent,
            when the folder is called ``kadid10k`` or ``KADID-10k``).

    Returns:
        10,125 pairs for the full release; ``quality = (MOS - 1) / 4``.

    Raises:
        MissingFilesError: ``dmos.csv`` not found.
        InputError: The label file is malformed.
    """
    convention = CONVENTIONS["KADID-10k"]
    label = _locate(
        _as_root(root), "dmos.csv", ("kadid10k", "KADID-10k"), "KADID-10k", "dmos.csv + images/"
    )
    folder, resolver = label.parent, _PathResolver()
    records = []
    with label.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        header = [h.strip() for h in (reader.fieldnames or [])]
        needed = ("dist_img", "ref_img", "dmos")
        if any(c not in header for c in needed):
            raise InputError(
                f"{label}: expected the columns dist_img,ref_img,dmos,var, got {header}. "
                "Use the dmos.csv of the KADID-10k release."
            )
        reader.fieldnames = header
        for line, row in enumerate(reader, start=2):
            dist_name, ref_name = row["dist_img"].strip(), row["ref_img"].strip()
            score = _parse_float(row["dmos"], f"{label}, line {line}")
            match = re.match(r"^(I\d+)_(\d+)_(\d+)\.", dist_name, re.IGNORECASE)
            type_index = int(match.group(2)) if match else 0
            dis_type = (
                KADID_TYPES[type_index - 1] if 1 <= type_index <= len(KADID_TYPES) else "unknown"
            )
            records.append(
                _record(
                    convention,
                    resolver.resolve(folder, f"images/{dist_name}"),
                    resolver.resolve(folder, f"images/{ref_name}"),
                    score,
                    dis_type,
                    int(match.group(3)) if match else None,
                    Path(ref_name).stem,
                )
            )
    return _dataset(convention, records, folder, label)


def _read_tid(root: str | Path, name: str, children: Sequence[str]) -> IQADataset:
    convention = CONVENTIONS[name]
    label = _locate(
        _as_root(root),
        "mos_with_names.txt",
        children,
        name,
        "mos_with_names.txt + distorted_images/ + reference_images/",
    )
    folder, resolver = label.parent, _PathResolver()
    records = []
    with label.open(encoding="utf-8-sig", errors="replace") as handle:
        for line_number, line in enumerate(handle, start=1):
            fields = line.split()
            if not fields:
                continue
            where = f"{label}, line {line_number}"
            if len(fields) != 2:
                raise InputError(
                    f"{where}: expected 'MOS file_name', got {line.strip()!r}. "
                    f"Use the mos_with_names.txt of the {name} release."
                )
            score = _parse_float(fields[0], where)
            dist_name = fields[1]
            match = re.match(r"^i(\d+)_(\d+)_(\d+)\.", dist_name, re.IGNORECASE)
            if match is None:
                raise InputError(
                    f"{where}: expected a distorted image named like i01_01_1.bmp, got "
                    f"{dist_name!r}. Use the mos_with_names.txt of the {name} release."
                )
            ref_id = f"I{match.group(1)}"
            type_index = int(match.group(2))
            dis_type = (
                TID2013_TYPES[type_index - 1]
                if 1 <= type_index <= len(TID2013_TYPES)
                else f"type_{type_index:02d}"
            )
            records.append(
                _record(
                    convention,
                    resolver.resolve(folder, f"distorted_images/{dist_name}"),
                    resolver.resolve(folder, f"reference_images/{ref_id}.BMP"),
                    score,
                    dis_type,
                    int(match.group(3)),
                    ref_id,
                )
            )
    return _dataset(convention, records, folder, label)


def read_tid2013(root: str | Path) -> IQADataset:
    """Read TID2013 as released (``mos_with_names.txt`` and the two image folders).

    Each line of ``mos_with_names.txt`` is ``MOS name`` (MOS on 0..9, higher
    is better); distorted images are ``i{ref}_{type}_{level}.bmp`` and the
    references ``I{ref}.BMP`` (case differences are tolerated).

    Args:
        root: Folder holding ``mos_with_names.txt`` (or its parent, when the
            folder is called ``tid2013`` or ``TID2013``).

    Returns:
        3,000 pairs for the full release; ``quality = MOS / 9``.

    Raises:
        MissingFilesError: ``mos_with_names.txt`` not found.
        InputError: The label file is malformed.
    """
    return _read_tid(root, "TID2013", ("tid2013", "TID2013"))


def read_tid2008(root: str | Path) -> IQADataset:
    """Read TID2008 as released (same layout as TID2013, 17 types x 4 levels).

    Args:
        root: Folder holding ``mos_with_names.txt`` (or its parent, when the
            folder is called ``tid2008`` or ``TID2008``).

    Returns:
        1,700 pairs for the full release; ``quality = MOS / 9``.

    Raises:
        MissingFilesError: ``mos_with_names.txt`` not found.
        InputError: The label file is malformed.
    """
    return _read_tid(root, "TID2008", ("tid2008", "TID2008"))


def _mat_vector(data: dict[str, Any], keys: Sequence[str], source: Path) -> list[Any]:
    import numpy as np

    for key in keys:
        if key in data:
            return list(np.asarray(data[key]).ravel())
    raise InputError(
        f"{source}: expected a variable named one of {list(keys)}, found "
        f"{sorted(k for k in data if not k.startswith('__'))}. Use the file of the "
        "LIVE release 2."
    )


def _mat_string(value: Any) -> str:
    import numpy as np

    array = np.asarray(value).ravel()
    return str(array[0]) if array.size else ""


def read_live(root: str | Path, *, realigned: bool = True) -> IQADataset:
    """Read the LIVE image quality database, release 2, as released.

    Layout: ``dmos_realigned.mat`` (``dmos_new``, ``orgs``) or ``dmos.mat``
    (``dmos``, ``orgs``), ``refnames_all.mat`` (``refnames_all``), and the
    folders ``jp2k`` (227 images), ``jpeg`` (233), ``wn``, ``gblur`` and
    ``fastfading`` (174 each) named ``img{i}.bmp``, plus ``refimgs``. The DMOS
    vector runs over the folders in that order; entries with ``orgs == 1``
    are the references' own copies and are skipped (779 distorted pairs
    remain). Reading ``.mat`` files needs scipy (``pip install
    asna-metric[eval]``).

    DMOS is lower-is-better; ``quality = clip(1 - DMOS / 100, 0, 1)``. The
    realigned DMOS (the default, the one the literature reports) spans about
    -2.6 to 111.8, so a few pairs clip.

    Args:
        root: Folder holding the ``.mat`` files (or its parent, when the
            folder is called ``databaserelease2``, ``live`` or ``LIVE``).
        realigned: Use ``dmos_realigned.mat`` (default) or ``dmos.mat``.

    Returns:
        The dataset.

    Raises:
        MissingFilesError: A ``.mat`` file is missing.
        InputError: The files do not have the release's variables or sizes.
        ImportError: scipy is not installed.
    """
    try:
        from scipy.io import loadmat
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "reading LIVE's .mat label files needs scipy: pip install 'asna-metric[eval]'"
        ) from exc
    convention = CONVENTIONS["LIVE"]
    mat_name = "dmos_realigned.mat" if realigned else "dmos.mat"
    layout = f"{mat_name} + refnames_all.mat + jp2k/ jpeg/ wn/ gblur/ fastfading/ refimgs/"
    children = ("databaserelease2", "live", "LIVE", "release2")
    label = _locate(_as_root(root), mat_name, children, "LIVE", layout)
    folder, resolver = label.parent, _PathResolver()
    names_file = _locate(folder, "refnames_all.mat", (), "LIVE", layout)
    data = loadmat(str(label))
    dmos = [float(v) for v in _mat_vector(data, ("dmos_new", "dmos"), label)]
    if "orgs" in data:
        orgs = [int(v) for v in _mat_vector(data, ("orgs",), label)]
    else:
        plain = resolver.resolve(folder, "dmos.mat")
        if not plain.is_file():
            raise MissingFilesError(
                f"LIVE: {label.name} has no 'orgs' vector and dmos.mat (which has it) is not "
                f"in {str(folder)!r}. Copy dmos.mat from the release beside it.",
                missing=[plain],
                total=1,
            )
        orgs = [int(v) for v in _mat_vector(loadmat(str(plain)), ("orgs",), plain)]
    refnames = [
        _mat_string(v) for v in _mat_vector(loadmat(str(names_file)), ("refnames_all",), names_file)
    ]
    expected = sum(size for _, size in _LIVE_FOLDERS)
    sizes = {"dmos": len(dmos), "orgs": len(orgs), "refnames_all": len(refnames)}
    if any(size != expected for size in sizes.values()):
        raise InputError(
            f"LIVE: expected {expected} entries in each of dmos, orgs and refnames_all "
            f"(release 2), got {sizes}. Use the .mat files of the LIVE release 2."
        )
    records = []
    index = 0
    for dis_type, size in _LIVE_FOLDERS:
        for i in range(1, size + 1):
            if not orgs[index]:
                refname = refnames[index]
                records.append(
                    _record(
                        convention,
                        resolver.resolve(folder, f"{dis_type}/img{i}.bmp"),
                        resolver.resolve(folder, f"refimgs/{refname}"),
                        dmos[index],
                        dis_type,
                        None,
                        Path(refname).stem,
                    )
                )
            index += 1
    return _dataset(convention, records, folder, label)


def _xlsx_rows(path: Path, sheet: str | None = None) -> list[list[str]]:
    """Read one worksheet of an ``.xlsx`` file as rows of strings (standard library only)."""
    ns = {
        "m": "http://schemas.openxmlformats.org/spreadsheetml/2006/main",
        "r": "http://schemas.openxmlformats.org/officeDocument/2006/relationships",
        "p": "http://schemas.openxmlformats.org/package/2006/relationships",
    }
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            shared: list[str] = []
            if "xl/sharedStrings.xml" in names:
                root = ElementTree.fromstring(archive.read("xl/sharedStrings.xml"))
                for item in root.findall("m:si", ns):
                    shared.append("".join(t.text or "" for t in item.iter(f"{{{ns['m']}}}t")))
            workbook = ElementTree.fromstring(archive.read("xl/workbook.xml"))
            rels = ElementTree.fromstring(archive.read("xl/_rels/workbook.xml.rels"))
            targets = {r.get("Id"): r.get("Target", "") for r in rels.findall("p:Relationship", ns)}
            sheets = [
                (s.get("name", ""), targets.get(s.get(f"{{{ns['r']}}}id"), ""))
                for s in workbook.findall("m:sheets/m:sheet", ns)
            ]
            if not sheets:
                raise InputError(f"{path}: the workbook has no worksheet. Use the release's file.")
            chosen = next((s for s in sheets if sheet and s[0].lower() == sheet.lower()), sheets[0])
            target = chosen[1].lstrip("/")
            target = target if target.startswith("xl/") else f"xl/{target}"
            worksheet = ElementTree.fromstring(archive.read(target))
    except (zipfile.BadZipFile, KeyError, ElementTree.ParseError) as exc:
        raise InputError(
            f"{path}: expected an .xlsx workbook, could not read it ({exc}). Export the sheet "
            "to CSV and pass that file instead."
        ) from None
    rows: list[list[str]] = []
    for row in worksheet.iter(f"{{{ns['m']}}}row"):
        values: dict[int, str] = {}
        for cell in row.findall("m:c", ns):
            letters = re.match(r"[A-Z]+", cell.get("r", "")) if cell.get("r") else None
            column = len(values)
            if letters:
                column = 0
                for ch in letters.group(0):
                    column = column * 26 + ord(ch) - 64
                column -= 1
            kind = cell.get("t", "n")
            if kind == "inlineStr":
                text = "".join(t.text or "" for t in cell.iter(f"{{{ns['m']}}}t"))
            else:
                v = cell.find("m:v", ns)
                text = v.text or "" if v is not None else ""
                if kind == "s" and text:
                    text = shared[int(text)]
            values[column] = text
        if values:
            rows.append([values.get(i, "") for i in range(max(values) + 1)])
    return rows


def _table_from_rows(
    rows: list[list[str]], needed: Sequence[str], source: Path
) -> list[dict[str, str]]:
    """Find the header row (the first holding every ``needed`` column) and return dict rows."""
    for i, row in enumerate(rows):
        header = [c.strip().lower() for c in row]
        if all(n in header for n in needed):
            return [
                {header[j]: (r[j] if j < len(r) else "") for j in range(len(header))}
                for r in rows[i + 1 :]
                if any(c.strip() for c in r)
            ]
    raise InputError(
        f"{source}: expected a header row with the columns {list(needed)}, found none. Use "
        "the release's DMOS file, or a CSV export of its 'all_by_image' sheet."
    )


def read_csiq(root: str | Path, *, label_file: str | Path | None = None) -> IQADataset:
    """Read CSIQ as released (``csiq.DMOS.xlsx``, ``dst_imgs/``, ``src_imgs/``).

    The DMOS workbook is read with the standard library (sheet
    ``all_by_image``, columns ``image, dst_idx, dst_type, dst_lev, dmos_std,
    dmos``); a CSV export of that sheet with the same columns works too
    (``csiq.DMOS.csv`` beside the images, or ``label_file``). Distorted images
    are ``dst_imgs/{folder}/{image}.{TAG}.{level}.png`` with the folders
    ``awgn, jpeg, jpeg2000, fnoise, blur, contrast``; references
    ``src_imgs/{image}.png``.

    DMOS is on 0..1, lower is better; ``quality = 1 - DMOS``.

    Args:
        root: Folder holding the workbook, ``dst_imgs/`` and ``src_imgs/``
            (or its parent, when the folder is called ``csiq`` or ``CSIQ``).
        label_file: Explicit DMOS file (``.xlsx`` or ``.csv``).

    Returns:
        866 pairs for the full release.

    Raises:
        MissingFilesError: No DMOS file found.
        InputError: The file is malformed or names an unknown distortion.
    """
    convention = CONVENTIONS["CSIQ"]
    base = _as_root(root)
    if label_file is not None:
        label = Path(label_file).expanduser()
        if not label.is_file():
            raise MissingFilesError(
                f"CSIQ: label file {str(label)!r} does not exist. Check the path.",
                missing=[label],
                total=1,
            )
        folder = label.parent if (label.parent / "dst_imgs").is_dir() else base
    else:
        found: Path | None = None
        for marker in ("csiq.DMOS.xlsx", "csiq.DMOS.csv", "csiq_dmos.csv"):
            try:
                found = _locate(base, marker, ("csiq", "CSIQ"), "CSIQ", "")
                break
            except MissingFilesError:
                continue
        if found is None:
            raise MissingFilesError(
                f"CSIQ: expected the release's csiq.DMOS.xlsx (or a CSV export of its "
                f"'all_by_image' sheet named csiq.DMOS.csv) in {str(base)!r} or its csiq/ "
                "subfolder. Point root at the folder holding it, dst_imgs/ and src_imgs/, or "
                "pass label_file.",
                missing=[base / "csiq.DMOS.xlsx"],
                total=1,
            )
        label = found
        folder = label.parent
    needed = ("image", "dst_type", "dst_lev", "dmos")
    if label.suffix.lower() == ".xlsx":
        table = _table_from_rows(_xlsx_rows(label, "all_by_image"), needed, label)
    else:
        with label.open(newline="", encoding="utf-8-sig") as handle:
            table = _table_from_rows(list(csv.reader(handle)), needed, label)
    resolver = _PathResolver()
    records = []
    for row_number, row in enumerate(table, start=1):
        where = f"{label}, row {row_number}"
        image = row["image"].strip()
        if re.fullmatch(r"\d+\.0+", image):  # numeric image names read back as floats
            image = image.split(".")[0]
        kind = row["dst_type"].strip().lower()
        if kind not in _CSIQ_TYPES:
            raise InputError(
                f"{where}: unknown dst_type {row['dst_type']!r}; expected one of "
                f"{sorted(set(_CSIQ_TYPES))}. Use the release's DMOS file."
            )
        folder_name, tag, dis_type = _CSIQ_TYPES[kind]
        level = int(_parse_float(row["dst_lev"], where))
        records.append(
            _record(
                convention,
                resolver.resolve(folder, f"dst_imgs/{folder_name}/{image}.{tag}.{level}.png"),
                resolver.resolve(folder, f"src_imgs/{image}.png"),
                _parse_float(row["dmos"], where),
                dis_type,
                level,
                image,
            )
        )
    return _dataset(convention, records, folder, label)


def read_pipal(root: str | Path) -> IQADataset:
    """Read the PIPAL training set as released for NTIRE 2021/2022.

    Layout: ``Train_Label/*.txt`` (one file per reference, lines
    ``A0001_00_00.bmp,1520.0648``: distorted name, Elo), ``Train_Ref/A0001.bmp``
    and the distorted images in ``Train_Dis/`` or in the download's
    ``Distortion_1/`` .. ``Distortion_4/`` folders (both are searched).

    The Elo score is higher-is-better and has no fixed range; quality is
    ``sigmoid((Elo - 1449.05) / 121.35)``, the ASNA paper's standardisation
    (see the module docstring). ``dis_type`` is ``PIPAL_{group}``, the
    distortion-group code in the middle of the file name (``00`` .. ``06``);
    PIPAL has no levels.

    Args:
        root: Folder holding ``Train_Label/`` (or its parent, when the folder
            is called ``PIPAL`` or ``pipal``).

    Returns:
        23,200 pairs for the full training set.

    Raises:
        MissingFilesError: ``Train_Label/`` not found or empty.
        InputError: A label file is malformed.
    """
    convention = CONVENTIONS["PIPAL"]
    base = _as_root(root)
    folder = None
    for candidate in (base, base / "PIPAL", base / "pipal"):
        labels_dir = _PathResolver().resolve(candidate, "Train_Label")
        if labels_dir.is_dir():
            folder = candidate
            break
    if folder is None:
        raise MissingFilesError(
            f"PIPAL: expected the folder Train_Label/ in {str(base)!r} (or in its PIPAL/ "
            "subfolder). Point root at the folder holding Train_Label/, Train_Ref/ and the "
            "distorted images (Train_Dis/ or Distortion_1/ .. Distortion_4/).",
            missing=[base / "Train_Label"],
            total=1,
        )
    label_files = sorted(p for p in labels_dir.iterdir() if p.suffix.lower() == ".txt")
    if not label_files:
        raise MissingFilesError(
            f"PIPAL: {labels_dir} holds no .txt label files; expected one per reference "
            "(A0001.txt ...). Check that the label archive was extracted there.",
            missing=[labels_dir / "A0001.txt"],
            total=1,
        )
    dist_index: dict[str, Path] = {}
    for sub in sorted(folder.iterdir()):
        if sub.is_dir() and (
            sub.name.lower() == "train_dis" or sub.name.lower().startswith("distortion")
        ):
            for image in sub.iterdir():
                dist_index.setdefault(image.name.lower(), image)
    resolver = _PathResolver()
    records = []
    for label in label_files:
        with label.open(encoding="utf-8-sig") as handle:
            for line_number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                where = f"{label}, line {line_number}"
                fields = [f.strip() for f in line.split(",")]
                if len(fields) < 2:
                    raise InputError(
                        f"{where}: expected 'name,Elo', got {line.strip()!r}. Use the label "
                        "files of the PIPAL release."
                    )
                name, score = fields[0], _parse_float(fields[1], where)
                parts = Path(name).stem.split("_")
                ref_id = parts[0]
                dis_type = f"PIPAL_{parts[1]}" if len(parts) > 1 else "PIPAL"
                dist = dist_index.get(name.lower(), folder / "Train_Dis" / name)
                records.append(
                    _record(
                        convention,
                        dist,
                        resolver.resolve(folder, f"Train_Ref/{ref_id}.bmp"),
                        score,
                        dis_type,
                        None,
                        ref_id,
                    )
                )
    return _dataset(convention, records, folder, labels_dir)


#: Readers of the official layouts, by canonical dataset name.
DATASETS: dict[str, Callable[..., IQADataset]] = {
    "KADID-10k": read_kadid10k,
    "TID2013": read_tid2013,
    "TID2008": read_tid2008,
    "LIVE": read_live,
    "CSIQ": read_csiq,
    "PIPAL": read_pipal,
}


def load_dataset(name: str, root: str | Path, **kwargs: Any) -> IQADataset:
    """Read a dataset in its official layout by name.

    Args:
        name: Dataset name (case and punctuation ignored): one of
            :data:`DATASETS`.
        root: Root of the user's copy.
        **kwargs: Passed to the reader (``realigned`` for LIVE,
            ``label_file`` for CSIQ).

    Returns:
        The dataset.

    Raises:
        InputError: Unknown name.
    """
    canonical = get_convention(name).name
    if canonical not in DATASETS:
        raise InputError(
            f"no reader for the official layout of {canonical}: expected one of "
            f"{sorted(DATASETS)}. Use read_labels_csv with a label CSV instead."
        )
    return DATASETS[canonical](root, **kwargs)
