"""``asna-metric score``, ``score-dir`` and ``map``: score image pairs from the shell.

``score DIST REF`` prints one score. ``score-dir DIST_DIR REF_DIR --out
scores.csv`` scores every pair of images with the same relative path in both
folders, decoding in DataLoader worker processes while the model runs,
appending one CSV row per pair as it goes (``dist,ref,score,status,error``,
paths relative to the two folders), and resuming an interrupted run from the
rows already in the CSV. The settings of a run (weights, revision,
self-ensemble, version) are kept beside the CSV in ``<out>.json``; a resume
with different settings is refused, so one file never mixes two models.

``map DIST REF --out heat.png`` draws the quality map over the distorted image
(colour bar on the score scale, pooled score in the title); ``--raw map.npy``
saves the float32 map ``(H, W)`` and, beside it, the pooling weights as
``map.weights.npy`` (``score = (weights * map).sum() / weights.sum()``).
``--raw`` needs only numpy; ``--out`` needs matplotlib (the ``eval`` extra).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import logging
import os
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from asna_metric._devices import resolve_device
from asna_metric._options import SELF_ENSEMBLE_MODES
from asna_metric._version import __version__
from asna_metric.errors import InputError

if TYPE_CHECKING:
    import torch

__all__ = ["IMAGE_EXTENSIONS", "register"]

logger = logging.getLogger(__name__)

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"})
"""File suffixes (case-insensitive) that ``score-dir`` treats as images."""

CSV_FIELDS = ("dist", "ref", "score", "status", "error")

#: What a score means, for --help and the heatmap's colour bar (measured with
#: the shipped weights: identical pairs score 0.79-0.91, see ASNA.score_range).
SCORE_MEANING = (
    "higher is better; identical pairs score highest, about 0.8-0.9 with the shipped weights"
)

_HEATMAP_SUFFIXES = (".png", ".jpg", ".jpeg", ".pdf", ".svg", ".tif", ".tiff")


def register(subparsers: Any) -> None:
    """Add the ``score``, ``score-dir`` and ``map`` subcommands.

    Args:
        subparsers: The object returned by ``ArgumentParser.add_subparsers``.
    """
    from asna_metric.weights import DEFAULT_WEIGHTS

    def add_model_options(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--weights",
            default=DEFAULT_WEIGHTS,
            metavar="NAME|PATH",
            help=f"registry name or local .safetensors file (default: {DEFAULT_WEIGHTS})",
        )
        p.add_argument(
            "--self-ensemble",
            choices=SELF_ENSEMBLE_MODES,
            default="none",
            help="test-time views averaged per pair (default: none)",
        )
        p.add_argument(
            "--device",
            default=None,
            help="torch device: cpu, cuda, cuda:N (default: cuda when available, else cpu)",
        )

    score = subparsers.add_parser(
        "score",
        help="score one distorted image against its reference",
        description=f"Print the ASNA quality of DIST against REF ({SCORE_MEANING}).",
    )
    score.add_argument("dist", type=Path, help="distorted image file")
    score.add_argument("ref", type=Path, help="reference image file")
    add_model_options(score)
    score.add_argument(
        "--json", action="store_true", help="print a JSON object with weights and version"
    )
    score.set_defaults(func=_run_score)

    score_dir = subparsers.add_parser(
        "score-dir",
        help="score every image pair of two folders into a CSV (resumable)",
        description=(
            "Score each image in DIST_DIR against the image with the same relative path in "
            "REF_DIR. Rows are appended to --out as they are scored; running the same command "
            "again resumes, re-trying failed rows. Exit code 1 when any row failed."
        ),
    )
    score_dir.add_argument("dist_dir", type=Path, metavar="DIST_DIR", help="distorted images")
    score_dir.add_argument("ref_dir", type=Path, metavar="REF_DIR", help="reference images")
    score_dir.add_argument(
        "--out",
        type=Path,
        required=True,
        help="CSV to write and resume from; columns dist,ref (paths relative to the two "
        "folders),score,status,error",
    )
    add_model_options(score_dir)
    score_dir.add_argument(
        "--workers",
        type=_non_negative_int,
        default=min(4, max(0, (os.cpu_count() or 1) - 1)),
        help="decoding worker processes; 0 decodes in the main process (default: cores - 1, "
        "at most 4)",
    )
    score_dir.add_argument(
        "--batch-size",
        type=_positive_int,
        default=1,
        help="pairs per forward pass; pairs of different sizes run separately (default: 1)",
    )
    score_dir.add_argument(
        "--compile",
        action="store_true",
        help="torch.compile the networks (needs a C++ compiler). With the default weights "
        "it measured 1.01x at 512x384 on one CPU thread, after 22 s of compilation and 12 s "
        "more at each new image size (docs/performance.md); it may pay off with other weights "
        "or on a GPU",
    )
    score_dir.set_defaults(func=_run_score_dir)

    quality_map = subparsers.add_parser(
        "map",
        help="draw where DIST is worse than REF (a heatmap of the quality map)",
        description=(
            "Compute the ASNA quality map of DIST against REF; --out draws it over DIST with a "
            f"colour bar on the score scale ({SCORE_MEANING}) and the pooled score in the "
            "title (needs matplotlib: pip install 'asna-metric[eval]'); --raw saves the map "
            "as a float32 (H, W) .npy array and the pooling weights beside it as "
            "<name>.weights.npy (score = (weights * map).sum() / weights.sum()), with numpy "
            "only. At least one of the two is required. The score is printed on stdout."
        ),
    )
    quality_map.add_argument("dist", type=Path, help="distorted image file")
    quality_map.add_argument("ref", type=Path, help="reference image file")
    quality_map.add_argument(
        "--out",
        type=Path,
        default=None,
        help="heatmap image to write (.png; .jpg, .pdf and .svg work too); needs matplotlib",
    )
    quality_map.add_argument(
        "--raw",
        type=Path,
        default=None,
        metavar="MAP.npy",
        help="save the float32 map (H, W) here, and the pooling weights as MAP.weights.npy",
    )
    add_model_options(quality_map)
    quality_map.add_argument(
        "--alpha",
        type=_unit_float,
        default=0.5,
        help="opacity of the map over the image, 0..1 (default: 0.5)",
    )
    quality_map.add_argument(
        "--range",
        dest="value_range",
        choices=("score", "auto"),
        default="score",
        help="colour bar span: the score scale 0..1, comparable between images (default), or "
        "the map's own min..max (more contrast)",
    )
    quality_map.add_argument(
        "--with-ref",
        action="store_true",
        help="draw the reference and the distorted image beside the heatmap",
    )
    quality_map.set_defaults(func=_run_map)


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text}")
    return value


def _unit_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1], got {text}")
    return value


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text}")
    return value


# --- shared helpers -------------------------------------------------------------------


def _weights_provenance(weights: str) -> dict[str, Any]:
    """Describe the weights a run uses, for JSON output and the resume check.

    ``{"weights": {name, sha256, revision, repo_id, source}}``: the one
    description of :func:`asna_metric._provenance.describe_weights`.
    """
    from asna_metric._provenance import describe_weights

    return {"weights": describe_weights(weights)}


def _settings_key(settings: dict[str, Any]) -> tuple[Any, Any]:
    """What must match for scores to be comparable: the weights' sha256 and the mode.

    Reads the sidecar of this version and of earlier ones (``weights_sha256``).
    """
    weights = settings.get("weights")
    sha256 = weights.get("sha256") if isinstance(weights, dict) else settings.get("weights_sha256")
    return sha256, settings.get("self_ensemble")


def _load_model(args: argparse.Namespace, device: torch.device) -> torch.nn.Module:
    from asna_metric.metric import ASNA

    model = ASNA(weights=args.weights, self_ensemble=args.self_ensemble)
    if getattr(args, "compile", False):
        model.compile()
    return model.to(device)


# --- score ----------------------------------------------------------------------------


def _run_score(args: argparse.Namespace) -> int:
    import torch

    from asna_metric.inputs import check_pair, to_batch

    device = resolve_device(args.device)
    provenance = _weights_provenance(args.weights)
    dist = to_batch(args.dist, name="dist")
    ref = to_batch(args.ref, name="ref")
    check_pair(dist, ref)
    model = _load_model(args, device)
    with torch.no_grad():
        score = float(model(dist.to(device), ref.to(device))[0])
    if args.json:
        record = {
            "dist": str(args.dist),
            "ref": str(args.ref),
            "score": score,
            **provenance,
            "self_ensemble": args.self_ensemble,
            "asna_metric_version": __version__,
            "device": str(device),
        }
        print(json.dumps(record, indent=2))
    else:
        print(f"{score:.6f}")
    return 0


# --- map ------------------------------------------------------------------------------


def _raw_paths(raw: Path) -> tuple[Path, Path]:
    """The map and weights files of ``--raw``: ``map.npy`` and ``map.weights.npy``."""
    if raw.suffix.lower() != ".npy":
        raise InputError(f"--raw must name a .npy file; got '{raw}'. Use e.g. --raw map.npy.")
    return raw, raw.with_name(raw.stem + ".weights.npy")


def _has_matplotlib() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def _no_matplotlib_message(written: Sequence[Path], score: float | None) -> str:
    done = ""
    if written:
        done = f" The map was saved ({', '.join(str(p) for p in written)}; score {score:.6f})."
    return (
        "asna-metric map --out needs matplotlib to draw the heatmap, and it is not installed: "
        "pip install 'asna-metric[eval]' (or pip install matplotlib), or pass only --raw "
        f"MAP.npy, which needs numpy alone.{done}"
    )


def _run_map(args: argparse.Namespace) -> int:
    import numpy as np
    import torch

    from asna_metric.inputs import check_pair, to_batch
    from asna_metric.metric import ASNA

    out: Path | None = args.out
    if out is None and args.raw is None:
        raise InputError(
            "asna-metric map needs --out HEAT.png (a heatmap; needs matplotlib), --raw MAP.npy "
            "(the map as numpy arrays) or both."
        )
    if out is not None and out.suffix.lower() not in _HEATMAP_SUFFIXES:
        raise InputError(
            f"--out must name an image file (.png, .jpg, .pdf, .svg, .tif); got '{out}'. "
            "Use e.g. --out heat.png."
        )
    raw = _raw_paths(args.raw) if args.raw is not None else None
    can_draw = out is None or _has_matplotlib()
    if not can_draw and raw is None:  # fail before the model is loaded
        raise InputError(_no_matplotlib_message([], None))
    device = resolve_device(args.device)
    dist = to_batch(args.dist, name="dist")
    ref = to_batch(args.ref, name="ref")
    check_pair(dist, ref)
    model = ASNA(weights=args.weights, self_ensemble=args.self_ensemble).to(device)
    with torch.no_grad():
        quality, weights = model.map(dist.to(device), ref.to(device), return_weights=True)
    quality, weights = quality.float().cpu()[0, 0], weights.float().cpu()[0, 0]
    score = float((weights * quality).sum() / weights.sum())
    written: list[Path] = []
    if raw is not None:  # numpy only: written even when the heatmap cannot be drawn
        raw[0].parent.mkdir(parents=True, exist_ok=True)
        np.save(raw[0], quality.numpy().astype(np.float32))
        np.save(raw[1], weights.numpy().astype(np.float32))
        written += list(raw)
    if not can_draw:
        raise InputError(_no_matplotlib_message(written, score))
    if out is not None:
        from asna_metric.viz import save_heatmap

        name = model.weights_name
        save_heatmap(
            out,
            dist,
            quality,
            ref=ref if args.with_ref else None,
            score=score,
            title=f"{args.dist.name} vs {args.ref.name} ({name}, self-ensemble "
            f"{args.self_ensemble})",
            alpha=args.alpha,
            value_range="auto" if args.value_range == "auto" else (0.0, 1.0),
        )
        written.insert(0, out)
    print(f"{score:.6f}")
    print(f"map: wrote {', '.join(str(p) for p in written)}", file=sys.stderr)
    return 0


# --- score-dir: pairing ---------------------------------------------------------------


@dataclass(frozen=True)
class _Job:
    """One CSV row to produce: a pair to score, or a file without a partner."""

    dist: str  # relative POSIX path, "" when missing
    ref: str
    error: str = ""  # set for files without a partner

    @property
    def key(self) -> tuple[str, str]:
        return (self.dist, self.ref)


def _list_images(root: Path) -> set[str]:
    return {
        path.relative_to(root).as_posix()
        for path in root.rglob("*")
        if path.suffix.lower() in IMAGE_EXTENSIONS and path.is_file()
    }


def _pair_jobs(dist_dir: Path, ref_dir: Path) -> list[_Job]:
    for label, folder in (("DIST_DIR", dist_dir), ("REF_DIR", ref_dir)):
        if not folder.is_dir():
            raise InputError(f"{label} must be an existing folder; got '{folder}'. Check the path.")
    dists, refs = _list_images(dist_dir), _list_images(ref_dir)
    if not dists:
        raise InputError(
            f"no images found in DIST_DIR '{dist_dir}' (looked for "
            f"{', '.join(sorted(IMAGE_EXTENSIONS))}, in sub-folders too)."
        )
    jobs = [_Job(rel, rel) for rel in sorted(dists & refs)]
    jobs += [
        _Job(rel, "", f"no reference with the same relative path in REF_DIR '{ref_dir}'")
        for rel in sorted(dists - refs)
    ]
    jobs += [
        _Job("", rel, f"no distorted image with the same relative path in DIST_DIR '{dist_dir}'")
        for rel in sorted(refs - dists)
    ]
    return jobs


# --- score-dir: decoding in workers ---------------------------------------------------


class _PairDataset:
    """Map-style dataset decoding one pair per item; errors are returned, not raised."""

    def __init__(self, dist_dir: Path, ref_dir: Path, jobs: Sequence[_Job]) -> None:
        self.dist_dir = dist_dir
        self.ref_dir = ref_dir
        self.jobs = list(jobs)

    def __len__(self) -> int:
        return len(self.jobs)

    def __getitem__(self, index: int) -> dict[str, Any]:
        from asna_metric.inputs import check_pair, to_batch

        job = self.jobs[index]
        item: dict[str, Any] = {"index": index, "dist": None, "ref": None, "error": ""}
        try:
            dist = to_batch(self.dist_dir / job.dist, name="dist")
            ref = to_batch(self.ref_dir / job.ref, name="ref")
            check_pair(dist, ref)
        except InputError as exc:
            item["error"] = str(exc)
        except Exception as exc:  # a worker must never die on one bad file
            item["error"] = f"{type(exc).__name__}: {exc}"
        else:
            item["dist"], item["ref"] = dist, ref
        return item


def _keep_list(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Collate function: keep items apart (sizes may differ; errors carry no tensors)."""
    return items


# --- score-dir: CSV and resume --------------------------------------------------------


def _read_done(out: Path) -> dict[tuple[str, str], list[str]]:
    """Return the complete ``ok`` rows of an existing CSV, repairing a cut last line.

    The file is rewritten (atomically) with only those rows, so failed rows
    are retried and appended again without duplicates.
    """
    data = out.read_bytes()
    if not data:
        return {}
    complete = data if data.endswith(b"\n") else data[: data.rfind(b"\n") + 1]
    if len(complete) != len(data):
        logger.info("%s: dropping a partly written last line (interrupted run)", out)
    try:
        text = complete.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(
            f"--out '{out}' exists but is not a UTF-8 score-dir CSV ({exc}). Choose another "
            "--out or delete the file."
        ) from exc
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader, None)
    if header is None:
        return {}
    if tuple(header) != CSV_FIELDS:
        raise InputError(
            f"--out '{out}' exists but is not a score-dir CSV (header {header}, expected "
            f"{list(CSV_FIELDS)}). Choose another --out or delete the file."
        )
    done: dict[tuple[str, str], list[str]] = {}
    for row in reader:
        if len(row) != len(CSV_FIELDS) or row[3] != "ok":
            continue
        try:
            float(row[2])
        except ValueError:
            continue
        done[(row[0], row[1])] = row
    return done


def _rewrite_csv(out: Path, rows: Sequence[Sequence[str]]) -> None:
    tmp = out.with_name(f".{out.name}.tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(CSV_FIELDS)
        writer.writerows(rows)
    os.replace(tmp, out)


def _check_settings(out: Path, settings: dict[str, Any], resuming: bool) -> None:
    sidecar = out.with_name(out.name + ".json")
    if resuming and sidecar.is_file():
        try:
            previous = json.loads(sidecar.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            previous = None
        if isinstance(previous, dict) and _settings_key(previous) != _settings_key(settings):
            then = dict(
                zip(("weights_sha256", "self_ensemble"), _settings_key(previous), strict=True)
            )
            now = dict(
                zip(("weights_sha256", "self_ensemble"), _settings_key(settings), strict=True)
            )
            raise InputError(
                f"--out '{out}' holds scores from other settings ({then}); this run uses "
                f"{now}. Mixing them would make the scores incomparable: choose another --out, "
                "or delete the file to start over."
            )
    elif resuming:
        logger.warning("%s has no settings file %s; resuming without checking", out, sidecar)
    sidecar.write_text(json.dumps(settings, indent=2) + "\n", encoding="utf-8")


def _batches(items: list[dict[str, Any]], batch_size: int) -> Iterator[list[dict[str, Any]]]:
    """Group decoded items into runs of the same image size (at most batch_size)."""
    groups: dict[tuple[int, ...], list[dict[str, Any]]] = {}
    for item in items:
        groups.setdefault(tuple(item["dist"].shape), []).append(item)
    for group in groups.values():
        for start in range(0, len(group), batch_size):
            yield group[start : start + batch_size]


def _score_group(
    model: torch.nn.Module, group: list[dict[str, Any]], device: torch.device
) -> list[tuple[float | None, str]]:
    import torch

    try:
        with torch.no_grad():
            dist = torch.cat([item["dist"] for item in group]).to(device)
            ref = torch.cat([item["ref"] for item in group]).to(device)
            scores = model(dist, ref).float().cpu().tolist()
        return [(float(s), "") for s in scores]
    except (InputError, RuntimeError) as exc:
        if len(group) > 1:  # find out which pair failed
            return [r for item in group for r in _score_group(model, [item], device)]
        return [(None, f"{type(exc).__name__}: {exc}")]


def _run_score_dir(args: argparse.Namespace) -> int:
    from torch.utils.data import DataLoader

    from asna_metric._progress import progress

    dist_dir: Path = args.dist_dir
    ref_dir: Path = args.ref_dir
    out: Path = args.out
    device = resolve_device(args.device)
    jobs = _pair_jobs(dist_dir, ref_dir)
    settings = {
        **_weights_provenance(args.weights),
        "self_ensemble": args.self_ensemble,
        "asna_metric_version": __version__,
        "dist_dir": str(dist_dir.resolve()),
        "ref_dir": str(ref_dir.resolve()),
    }

    resuming = out.is_file() and out.stat().st_size > 0
    done = _read_done(out) if resuming else {}
    out.parent.mkdir(parents=True, exist_ok=True)
    _check_settings(out, settings, resuming)
    wanted = {job.key for job in jobs}
    kept = [row for key, row in done.items() if key in wanted]
    _rewrite_csv(out, kept)
    todo = [job for job in jobs if job.key not in done]
    pairs = [job for job in todo if not job.error]
    if kept:
        logger.info("resuming %s: %d pair(s) already scored, %d to go", out, len(kept), len(todo))

    model = _load_model(args, device) if pairs else None  # fail before writing rows
    failures = 0
    with (
        open(out, "a", newline="", encoding="utf-8") as handle,
        progress(total=len(jobs), initial=len(kept), desc="score-dir") as bar,
    ):
        writer = csv.writer(handle, lineterminator="\n")

        def write(job: _Job, score: float | None, error: str) -> None:
            nonlocal failures
            status = "ok" if score is not None else "error"
            failures += status == "error"
            value = "" if score is None else f"{score:.6f}"
            writer.writerow([job.dist, job.ref, value, status, " ".join(error.split())])
            handle.flush()
            bar.update(1)
            if failures:
                bar.set_postfix(errors=failures)

        for job in todo:
            if job.error:
                write(job, None, job.error)
        if model is not None:
            loader: DataLoader[Any] = DataLoader(
                _PairDataset(dist_dir, ref_dir, pairs),  # type: ignore[arg-type]
                batch_size=args.batch_size,
                num_workers=args.workers,
                collate_fn=_keep_list,
                shuffle=False,
            )
            for items in loader:
                for item in items:
                    if item["error"]:
                        write(pairs[item["index"]], None, item["error"])
                decoded = [item for item in items if not item["error"]]
                for group in _batches(decoded, args.batch_size):
                    for item, (score, error) in zip(
                        group, _score_group(model, group, device), strict=True
                    ):
                        write(pairs[item["index"]], score, error)

    scored = len(kept) + len(todo) - failures
    print(
        f"score-dir: {scored} pair(s) scored ({len(kept)} from an earlier run), "
        f"{failures} failed; wrote {out}",
        file=sys.stderr,
    )
    return 1 if failures else 0
