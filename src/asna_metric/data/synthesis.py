"""Human-calibrated synthetic training data: the KADID-10k protocol.

KADID-10k's human scores are explained almost entirely by *which*
distortion was applied at *which* level. :func:`synthesize` applies KADID's
25 distortion types at its 5 levels (:mod:`asna_metric.data.distortions`)
to any folder of reference photographs and labels each pair with KADID's
human mean opinion score for that (type, level) cell
(:mod:`asna_metric.data.kadid_cells`). The labels carry human judgment of
how bad each distortion is, not of how it interacts with a particular
image: say so wherever results on such data are reported.

Output layout (``OUT``)::

    OUT/refs/{stem}.png                 8-bit RGB copy of each reference
    OUT/dist/{stem}_{TT}_{LL}.png       type TT (01..25), level LL (01..05)
    OUT/labels.csv                      dis_img_path,dis_type,ref_img_path,score
    OUT/synthesis.json                  seed, types, levels, package version

``labels.csv`` uses the generic label format shared with the dataset
readers: paths relative to ``OUT`` with ``/`` separators, ``dis_type`` the
KADID type name (as in ``KADID-10k.csv``; ``identity`` for undistorted
pairs), ``score`` the KADID cell mean MOS on 1..5 (higher is better; 5.0 for
identity pairs). File names follow KADID's ``I01_01_01.png`` pattern, so
the type and level can be read back from them.

Example:
    >>> from asna_metric.data.synthesis import synthesize
    >>> labels = synthesize("refs/", "kadid_synth/", types=[1, "JPEG"])  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import logging
import os
import tempfile
import threading
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from asna_metric._progress import progress as progress_bar
from asna_metric._version import __version__
from asna_metric.data.distortions import DISTORTIONS, Distortion, distort, resolve_type
from asna_metric.data.kadid_cells import KADID_CELL_MOS
from asna_metric.data.readers import LABEL_COLUMNS  # the columns synthesis writes
from asna_metric.errors import InputError

__all__ = [
    "DISTORTIONS",
    "IDENTITY_SCORE",
    "IDENTITY_TYPE",
    "IMAGE_SUFFIXES",
    "LABEL_COLUMNS",
    "SynthesisItem",
    "cell_score",
    "distort",
    "item_seed",
    "list_references",
    "plan_synthesis",
    "synthesize",
]

logger = logging.getLogger(__name__)

IDENTITY_TYPE = "identity"
"""``dis_type`` of undistorted (reference, reference) pairs."""

IDENTITY_SCORE = 5.0
"""MOS given to identity pairs: the top of KADID's 1..5 scale (quality 1.0)."""

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".ppm", ".webp")
"""File suffixes read as reference images (case-insensitive)."""

_MANIFEST = "synthesis.json"
_FORMAT = "asna_metric.synthesis/1"


@dataclass(frozen=True)
class SynthesisItem:
    """One planned output pair.

    Attributes:
        ref: Source reference image.
        ref_out: Path of the reference copy, relative to the output folder.
        dis_out: Path of the distorted image, relative to the output folder
            (equal to ``ref_out`` for identity pairs).
        dist_type: KADID type id 1..25, or 0 for an identity pair.
        level: Level 1..5, or 0 for an identity pair.
        dis_type_name: ``dis_type`` column value.
        score: KADID cell mean MOS (1..5).
    """

    ref: Path
    ref_out: str
    dis_out: str
    dist_type: int
    level: int
    dis_type_name: str
    score: float


def cell_score(dist_type: int | str, level: int) -> float:
    """KADID-10k's human mean opinion score for a (type, level) cell.

    Args:
        dist_type: Type id 1..25 or name (see :func:`distortions.resolve_type`).
        level: Level 1..5.

    Returns:
        Mean MOS over KADID's 81 references, on 1..5 (higher is better).
        Map it to the quality scale with ``(mos - 1) / 4``.

    Raises:
        InputError: Unknown type or level.

    Example:
        >>> cell_score("GBLUR", 1)
        4.6122
    """
    type_id = resolve_type(dist_type)
    if isinstance(level, bool) or not isinstance(level, int) or not 1 <= level <= 5:
        raise InputError(f"level must be an integer 1..5; got {level!r}.")
    return KADID_CELL_MOS[type_id][level - 1]


def item_seed(seed: int, ref_stem: str, dist_type: int) -> int:
    """Seed of the generator for one reference and distortion type.

    Derived by hashing, so an output does not depend on the order of work
    or on which subset of types, levels or references is generated. The
    level is deliberately left out: the five levels of one (reference,
    type) share their random draws (noise field, angle, patch positions)
    and differ only in strength.

    Args:
        seed: The run's seed (non-negative).
        ref_stem: Reference file name without suffix.
        dist_type: Type id 1..25.

    Returns:
        A 63-bit seed for ``torch.Generator().manual_seed``.
    """
    digest = hashlib.sha256(f"asna-synth:{seed}:{ref_stem}:{dist_type}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


def list_references(refs_dir: str | os.PathLike[str]) -> list[Path]:
    """Reference images directly inside ``refs_dir``, sorted by name.

    Args:
        refs_dir: Folder of reference photographs (not searched recursively).

    Returns:
        Image paths (suffixes in :data:`IMAGE_SUFFIXES`).

    Raises:
        InputError: The folder is missing, holds no image, or two images
            share a stem (``a.png`` and ``a.jpg``), which would collide in
            the output names.
    """
    folder = Path(refs_dir)
    if not folder.is_dir():
        raise InputError(
            f"reference folder {str(folder)!r} does not exist or is not a folder; "
            "pass the folder that holds the reference images (e.g. shared/data/refs/kodak24)."
        )
    paths = sorted(
        p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
    )
    if not paths:
        raise InputError(
            f"no reference images in {str(folder)!r}; expected files ending in "
            f"{', '.join(IMAGE_SUFFIXES)} directly inside it."
        )
    stems: dict[str, Path] = {}
    for path in paths:
        if path.stem in stems:
            raise InputError(
                f"two references share the name {path.stem!r} ({stems[path.stem].name}, "
                f"{path.name}); output files are named by stem. Rename one of them."
            )
        stems[path.stem] = path
    return paths


def _given(
    refs_dir: str | os.PathLike[str], references: Sequence[str | os.PathLike[str]]
) -> list[Path]:
    """Check a given list of references: existing files with distinct stems."""
    paths = [Path(refs_dir) / p for p in references]
    if not paths:
        raise InputError("references is empty; pass None for every image in refs_dir.")
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise InputError(
            f"{len(missing)} of the {len(paths)} references do not exist, e.g. {missing[:3]}. "
            "Check --refs (the folder the listed paths are relative to)."
        )
    stems: dict[str, Path] = {}
    for path in paths:
        if path.stem in stems:
            raise InputError(
                f"two references share the name {path.stem!r} ({stems[path.stem]}, {path}); "
                "output files are named by stem. Rename one of them."
            )
        stems[path.stem] = path
    return paths


def _normalise_types(types: Iterable[int | str] | None) -> list[int]:
    if types is None:
        return sorted(DISTORTIONS)
    if isinstance(types, (str, int)):
        types = [types]
    chosen = sorted({resolve_type(t) for t in types})
    if not chosen:
        raise InputError("types is empty; pass None for all 25 types or at least one type.")
    return chosen


def _normalise_levels(levels: Iterable[int] | None) -> list[int]:
    if levels is None:
        return [1, 2, 3, 4, 5]
    if isinstance(levels, int):
        levels = [levels]
    chosen = set()
    for level in levels:
        if isinstance(level, bool) or not isinstance(level, int) or not 1 <= level <= 5:
            raise InputError(f"levels must be integers 1..5; got {level!r}.")
        chosen.add(level)
    if not chosen:
        raise InputError("levels is empty; pass None for all five levels or at least one.")
    return sorted(chosen)


def plan_synthesis(
    refs: Sequence[Path],
    *,
    types: Iterable[int | str] | None = None,
    levels: Iterable[int] | None = None,
    include_identity: bool = False,
) -> list[SynthesisItem]:
    """Every output pair for these references, in ``labels.csv`` order.

    Args:
        refs: Reference images (see :func:`list_references`).
        types: Type ids or names; ``None`` for all 25.
        levels: Levels 1..5; ``None`` for all five.
        include_identity: Add one (reference, reference) pair per reference,
            scored :data:`IDENTITY_SCORE`.

    Returns:
        Items ordered by reference, then identity, type and level.
    """
    type_ids, level_ids = _normalise_types(types), _normalise_levels(levels)
    items = []
    for ref in refs:
        ref_out = f"refs/{ref.stem}.png"
        if include_identity:
            items.append(SynthesisItem(ref, ref_out, ref_out, 0, 0, IDENTITY_TYPE, IDENTITY_SCORE))
        for type_id in type_ids:
            for level in level_ids:
                items.append(
                    SynthesisItem(
                        ref=ref,
                        ref_out=ref_out,
                        dis_out=f"dist/{ref.stem}_{type_id:02d}_{level:02d}.png",
                        dist_type=type_id,
                        level=level,
                        dis_type_name=DISTORTIONS[type_id].name,
                        score=KADID_CELL_MOS[type_id][level - 1],
                    )
                )
    return items


def _load_rgb(path: Path) -> Tensor:
    """A reference as a (1, 3, H, W) float tensor in [0, 1], rounded to 8 bits.

    Decoded by :func:`asna_metric.inputs.read_image`, the decoder scoring and
    training use (16-bit files at full precision), then rounded to the 8-bit
    grid of the PNGs written here, so that the distortions start from exactly
    the pixels of the stored reference copy.
    """
    from asna_metric.inputs import read_image

    try:
        image = read_image(path, name="reference")
    except InputError as exc:
        raise InputError(f"{exc} Or remove it from the folder.") from exc
    return image.mul(255.0).round_().div_(255.0).unsqueeze(0)


def _encode_png(image: Tensor) -> bytes:
    """(1, 3, H, W) in [0, 1] to 8-bit RGB PNG bytes (rounded)."""
    from PIL import Image

    array = image[0].clamp(0, 1).mul(255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def _write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to a temporary file beside ``path``, then rename it into place.

    A reader (or a resumed run) therefore sees either no file or a complete one.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise


def _labels_text(items: Sequence[SynthesisItem]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(LABEL_COLUMNS)
    for item in items:
        writer.writerow((item.dis_out, item.dis_type_name, item.ref_out, repr(item.score)))
    return buffer.getvalue()


def _check_manifest(out: Path, seed: int) -> None:
    path = out / _MANIFEST
    if not path.is_file():
        return
    try:
        previous = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise InputError(
            f"{str(path)!r} is not readable JSON ({exc}); delete it or choose another --out."
        ) from exc
    if previous.get("seed") != seed:
        raise InputError(
            f"{str(out)!r} holds images made with seed {previous.get('seed')!r}, not {seed}; "
            "resuming would mix the two. Use the same seed or another output folder."
        )
    if previous.get("asna_metric_version") != __version__:
        logger.warning(
            "%s was started by asna_metric %s (this is %s); existing images are kept as they are.",
            out,
            previous.get("asna_metric_version"),
            __version__,
        )


def synthesize(
    refs_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    types: Iterable[int | str] | None = None,
    levels: Iterable[int] | None = None,
    seed: int = 0,
    include_identity: bool = False,
    progress: bool = True,
    workers: int = 1,
    references: Sequence[str | os.PathLike[str]] | None = None,
) -> Path:
    """Distort every reference with KADID's types and levels and write labelled pairs.

    References keep their size (no resizing); each is stored once as an
    8-bit RGB PNG under ``OUT/refs/``. Distorted images are 8-bit RGB PNGs
    under ``OUT/dist/``. An interrupted run resumes: images already present
    are complete (every file is written to a temporary name and renamed) and
    are skipped, and ``labels.csv`` is rewritten from the full plan at the
    end, so a rerun gives the same CSV.

    Results are deterministic given ``seed``: each (reference, type) uses a
    generator seeded from the seed, the reference's stem and the type
    (:func:`item_seed`), independent of order, ``workers`` and subsets.

    Args:
        refs_dir: Folder of reference images (see :func:`list_references`).
        out_dir: Output folder (created if needed).
        types: Type ids 1..25 or names (KADID's, e.g. ``"GBLUR"``, or the
            function names, e.g. ``"gaussian_blur"``); ``None`` for all 25.
        levels: Levels 1..5; ``None`` for all five.
        seed: Non-negative seed of the whole run.
        include_identity: Also list one undistorted pair per reference with
            score 5.0 (its ``dis_img_path`` is the reference copy itself).
        progress: Show a progress bar (on a terminal).
        workers: Threads working on different (reference, type) pairs; while
            they run, torch's intra-op thread count is divided among them.
        references: The reference images to use, instead of every image in
            ``refs_dir`` (relative paths are relative to ``refs_dir``), e.g.
            one split of :func:`asna_metric.data.splits.reference_split`.
            Their stems must be distinct.

    Returns:
        Path of the written ``labels.csv``.

    Raises:
        InputError: Bad arguments, unreadable references, or an output
            folder started with a different seed.
    """
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise InputError(f"seed must be a non-negative integer; got {seed!r}.")
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise InputError(f"workers must be a positive integer; got {workers!r}.")
    refs = list_references(refs_dir) if references is None else _given(refs_dir, references)
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise InputError(f"output path {str(out)!r} exists and is not a folder; choose another.")
    items = plan_synthesis(refs, types=types, levels=levels, include_identity=include_identity)
    out.mkdir(parents=True, exist_ok=True)
    _check_manifest(out, seed)

    # Work units: one per reference copy and one per (reference, type) with missing levels.
    units: list[tuple[Path, Distortion | None, list[SynthesisItem]]] = []
    done = 0
    for ref in refs:
        ref_copy = out / "refs" / f"{ref.stem}.png"
        if ref_copy.is_file():
            done += 1
        else:
            units.append((ref, None, []))
    pending: dict[tuple[Path, int], list[SynthesisItem]] = {}
    for item in items:
        if not item.dist_type:
            continue
        if (out / item.dis_out).is_file():
            done += 1
        else:
            pending.setdefault((item.ref, item.dist_type), []).append(item)
    units.extend((ref, DISTORTIONS[t], todo) for (ref, t), todo in pending.items())
    total = len(refs) + sum(1 for item in items if item.dist_type)
    logger.info(
        "synthesising %d images from %d references into %s (%d already present)",
        total - done,
        len(refs),
        out,
        done,
    )

    # Written before any image so that an interrupted run cannot be resumed with another seed.
    manifest = {
        "format": _FORMAT,
        "asna_metric_version": __version__,
        "seed": seed,
        "types": sorted({item.dist_type for item in items if item.dist_type}),
        "levels": sorted({item.level for item in items if item.level}),
        "include_identity": include_identity,
        "references": len(refs),
        "pairs": len(items),
        "labels": "KADID-10k cell mean MOS (1..5), identity pairs 5.0",
    }
    _write_atomic(out / _MANIFEST, (json.dumps(manifest, indent=2) + "\n").encode())
    lock = threading.Lock()
    bar = progress_bar(total=total, desc="synth", initial=done, disable=None if progress else True)

    def run(unit: tuple[Path, Distortion | None, list[SynthesisItem]]) -> None:
        ref, entry, todo = unit
        image = _load_rgb(ref)
        if entry is None:
            _write_atomic(out / "refs" / f"{ref.stem}.png", _encode_png(image))
            with lock:
                bar.update(1)
            return
        for item in todo:
            generator = torch.Generator().manual_seed(item_seed(seed, ref.stem, entry.id))
            result = distort(image, entry.id, item.level, generator=generator)
            _write_atomic(out / item.dis_out, _encode_png(result))
            with lock:
                bar.update(1)

    # Worker threads share the machine's cores with torch's own intra-op threads.
    threads = torch.get_num_threads()
    if workers > 1:
        torch.set_num_threads(max(1, threads // workers))
    try:
        if workers == 1:
            for unit in units:
                run(unit)
        else:
            with ThreadPoolExecutor(max_workers=workers) as pool:
                futures = [pool.submit(run, unit) for unit in units]
                try:
                    for future in futures:
                        future.result()
                except BaseException:
                    for future in futures:
                        future.cancel()
                    raise
    finally:
        torch.set_num_threads(threads)
        bar.close()

    labels = out / "labels.csv"
    _write_atomic(labels, _labels_text(items).encode())
    return labels
