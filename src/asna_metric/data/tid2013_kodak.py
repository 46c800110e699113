"""TID2013 rebuilt from the Kodak photographs: what the rebuilt subset is, and how to find it.

The project's data tool ``tid2013_kodak/rebuild.py`` (in the shared tools,
not in this package) rebuilds 13 of TID2013's 24 distortion types on its 24
natural references (384x512 crops of the Kodak photographs) from TID2013's
official per-image values, in TID2013's own layout and names, with
TID2013's human MOS: 1,560 of the 3,000 images. Eleven types are rebuilt
faithfully (PSNR matches the official values by construction, SSIM within
0.002); two, JPEG 2000 (OpenJPEG is not TID2013's encoder) and
high-frequency noise (its exact spectrum is unknown), only approximately.
None of TID2013's exotic types (non-eccentricity pattern noise, chromatic
aberrations, transmission errors, ...) is rebuilt, so results on the subset
are not results on TID2013.

This module holds those facts, so that ``asna-metric eval`` and the
benchmark report on the subset as a subset, and report the strict 11-type
set beside the full one.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from asna_metric.data.readers import TID2013_TYPES

if TYPE_CHECKING:
    from asna_metric.data.readers import IQADataset, PairRecord

__all__ = [
    "APPROXIMATE_TYPES",
    "FAITHFUL_TYPES",
    "MARKER",
    "REBUILT_TYPES",
    "is_rebuilt",
    "strict_records",
]

#: TID2013 type indices (1-based, as in the file names) the tool rebuilds faithfully.
FAITHFUL_INDICES = (1, 2, 3, 6, 7, 8, 10, 16, 17, 18, 19)
#: TID2013 type indices the tool rebuilds only approximately (JPEG 2000, high-frequency noise).
APPROXIMATE_INDICES = (5, 11)

FAITHFUL_TYPES: tuple[str, ...] = tuple(TID2013_TYPES[i - 1] for i in FAITHFUL_INDICES)
APPROXIMATE_TYPES: tuple[str, ...] = tuple(TID2013_TYPES[i - 1] for i in APPROXIMATE_INDICES)
REBUILT_TYPES: tuple[str, ...] = tuple(
    TID2013_TYPES[i - 1] for i in sorted(FAITHFUL_INDICES + APPROXIMATE_INDICES)
)

#: File the tool writes beside ``mos_with_names.txt`` (our values against the official ones).
MARKER = "fidelity.csv"


def is_rebuilt(dataset: IQADataset) -> bool:
    """Whether a TID2013 dataset was read from the tool's output rather than the release.

    Args:
        dataset: A dataset read with :func:`asna_metric.data.readers.read_tid2013`.

    Returns:
        ``True`` when its folder holds the tool's :data:`MARKER` file.
    """
    root = dataset.root
    return dataset.name == "TID2013" and root is not None and (Path(root) / MARKER).is_file()


def strict_records(records: list[PairRecord]) -> list[PairRecord]:
    """The pairs of the faithfully rebuilt types (the strict 11-type set).

    Args:
        records: Pairs of the rebuilt set.

    Returns:
        The pairs whose type is in :data:`FAITHFUL_TYPES`, in order.
    """
    return [r for r in records if r.dis_type in FAITHFUL_TYPES]
