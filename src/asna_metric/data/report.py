"""Reports of an evaluation: result entries, tables, scatter plots, JSON.

:func:`evaluate_records` turns one metric's predictions on a set of pairs
into a result entry (the statistics of :func:`asna_metric.data.evaluation.evaluate`);
:func:`format_table` and :func:`plot_results` show entries;
:func:`coverage` says which part of a dataset was scored, so a report on a
subset says so; :func:`write_results` writes entries and run metadata
(:func:`asna_metric._provenance.run_metadata`) as JSON. Used by
``asna-metric eval`` and the accuracy benchmarks alike.
"""

from __future__ import annotations

import json
import math
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from asna_metric.errors import InputError

if TYPE_CHECKING:
    from asna_metric.data.readers import PairRecord

__all__ = [
    "coverage",
    "evaluate_records",
    "format_coverage",
    "format_per_type",
    "format_table",
    "json_safe",
    "plot_results",
    "write_results",
]


def evaluate_records(
    records: Sequence[PairRecord],
    values: Sequence[float | None],
    *,
    metric: str,
    dataset: str,
    bootstrap: int = 1000,
    seed: int = 0,
) -> dict[str, Any]:
    """Evaluate one metric's predictions against the records' human quality.

    Pairs without a prediction are left out (``failed`` counts them).

    Args:
        records: The pairs.
        values: One prediction (or ``None``) per record.
        metric: Metric label for the result.
        dataset: Dataset label for the result.
        bootstrap: Bootstrap resamples (0: no intervals).
        seed: Bootstrap seed.

    Returns:
        The result entry: ``metric, dataset, n, failed`` and the fields of
        :func:`asna_metric.data.evaluation.evaluate`, plus ``pred`` and
        ``target`` (dropped before writing JSON).
    """
    from asna_metric.data.evaluation import evaluate

    kept = [(r, v) for r, v in zip(records, values, strict=True) if v is not None]
    entry: dict[str, Any] = {"metric": metric, "dataset": dataset, "n": len(kept)}
    entry["failed"] = len(records) - len(kept)
    if len(kept) < 3:
        entry["error"] = f"only {len(kept)} pairs scored; at least 3 are needed"
        return entry
    pred = [v for _, v in kept]
    target = [r.quality for r, _ in kept]
    stats = evaluate(
        pred, target, types=[r.dis_type for r, _ in kept], bootstrap=bootstrap, seed=seed
    )
    entry.update(stats)
    entry["n"] = len(kept)
    entry["pred"], entry["target"] = pred, target
    return entry


def _interval(entry: dict[str, Any], name: str) -> str:
    value = entry.get(name)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    bounds = entry.get("ci", {}).get(name)
    text = f"{value:.3f}"
    if bounds and all(b is not None and not math.isnan(b) for b in bounds):
        text += f" [{bounds[0]:.3f}, {bounds[1]:.3f}]"
    return text


def format_table(results: Sequence[dict[str, Any]]) -> str:
    """Render results as a plain-text table (metric, dataset, n, SRCC, PLCC, KRCC with CIs).

    Args:
        results: Entries from :func:`evaluate_records`.

    Returns:
        The table, one line per entry, with a header.
    """
    header = ("metric", "dataset", "n", "SRCC", "PLCC", "KRCC")
    rows = [header]
    for entry in results:
        if "error" in entry:
            rows.append(
                (entry["metric"], entry["dataset"], str(entry["n"]), entry["error"], "", "")
            )
            continue
        rows.append(
            (
                entry["metric"],
                entry["dataset"],
                str(entry["n"]),
                _interval(entry, "srcc"),
                _interval(entry, "plcc"),
                _interval(entry, "krcc"),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        for row in rows
    ]
    lines.insert(1, "  ".join("-" * width for width in widths))
    level = next((e.get("ci_level") for e in results if e.get("ci")), None)
    if level is not None:
        lines.append(f"[{level:.0%} bootstrap percentile intervals; PLCC after logistic fit]")
    return "\n".join(line.rstrip() for line in lines)


def format_per_type(
    results: Sequence[dict[str, Any]], types: Sequence[str] | None = None, statistic: str = "srcc"
) -> str:
    """Render one statistic per distortion type: a row per type, a column per result.

    Args:
        results: Entries from :func:`evaluate_records` (with ``per_type``).
        types: Row order (default: the types of the first entry, in its order).
        statistic: ``"srcc"``, ``"krcc"``, ``"plcc"`` or ``"plcc_raw"``.

    Returns:
        The table; ``n/a`` where a type has too few pairs or is absent.
    """
    entries = [e for e in results if "per_type" in e]
    if not entries:
        return "(no per-type results)"
    if types is None:
        types = list(entries[0]["per_type"])
    header = ["type", "n", *(str(e["metric"]) for e in entries)]
    rows = [header]
    for name in types:
        counts = [e["per_type"].get(name, {}).get("n", 0) for e in entries]
        cells = [name, str(max(counts))]
        for entry in entries:
            value = entry["per_type"].get(name, {}).get(statistic)
            ok = isinstance(value, float) and math.isfinite(value)
            cells.append(f"{value:.3f}" if ok else "n/a")
        rows.append(cells)
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(line.rstrip() for line in lines)


def plot_results(results: Sequence[dict[str, Any]], path: Path) -> None:
    """Scatter each metric's predictions against human quality, with the fitted logistic.

    One panel per result; uses matplotlib's Agg canvas (no display, no
    global backend change).

    Args:
        results: Entries from :func:`evaluate_records` (with ``pred``).
        path: Output image (PNG).

    Raises:
        ImportError: matplotlib is not installed.
    """
    try:
        from matplotlib.figure import Figure
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("--plot needs matplotlib: pip install 'asna-metric[eval]'") from exc
    import numpy as np

    from asna_metric.data.evaluation import LogisticFit

    panels = [e for e in results if e.get("pred")]
    if not panels:
        raise InputError("nothing to plot: no metric produced predictions.")
    columns = min(3, len(panels))
    rows = math.ceil(len(panels) / columns)
    figure = Figure(figsize=(4.2 * columns, 3.8 * rows), layout="constrained")
    axes = figure.subplots(rows, columns, squeeze=False)
    for ax in axes.ravel()[len(panels) :]:
        ax.set_visible(False)
    for ax, entry in zip(axes.ravel(), panels, strict=False):
        x = np.asarray(entry["pred"], dtype=float)
        y = np.asarray(entry["target"], dtype=float)
        ax.scatter(x, y, s=6, alpha=0.4, linewidths=0)
        fit = LogisticFit(tuple(entry["fit"]["params"]), entry["fit"]["kind"])
        grid = np.linspace(x.min(), x.max(), 200)
        ax.plot(grid, fit(grid), color="C3", linewidth=1.5, label=f"{fit.kind} fit")
        name = textwrap.fill(f"{entry['metric']} on {entry['dataset']}", width=44)
        ax.set_title(
            f"{name}\nSRCC {entry['srcc']:.3f}  PLCC {entry['plcc']:.3f}  n={entry['n']}",
            fontsize=9,
        )
        ax.set_xlabel("prediction")
        ax.set_ylabel("human quality (0..1)")
        ax.legend(loc="lower right", fontsize=7)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)


def json_safe(value: Any) -> Any:
    """``value`` with non-finite floats replaced by ``None`` (JSON has no NaN), recursively.

    Args:
        value: Nested dicts, lists, tuples and scalars.

    Returns:
        The same structure, JSON-serialisable where its scalars are.
    """
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value


def coverage(
    scored: Sequence[PairRecord],
    *,
    total: int | None = None,
    type_names: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Which part of a dataset a result covers: pairs, references and distortion types.

    Args:
        scored: The pairs that were scored.
        total: Pairs in the complete dataset (its label file), when known.
        type_names: The complete dataset's distortion types in their order,
            when known; types with no scored pair are listed as missing.

    Returns:
        ``{"pairs", "total_pairs", "subset", "references", "types",
        "missing_types"}``: ``types`` maps each scored type to its pair count
        in dataset order; ``subset`` is true when pairs or types are missing.
    """
    counts: dict[str, int] = {}
    for record in scored:
        counts[record.dis_type] = counts.get(record.dis_type, 0) + 1
    order = list(type_names or [])
    ordered = {t: counts[t] for t in order if t in counts}
    ordered.update({t: n for t, n in sorted(counts.items()) if t not in ordered})
    missing = [t for t in order if t not in counts]
    subset = bool(missing) or (total is not None and len(scored) < total)
    return {
        "pairs": len(scored),
        "total_pairs": total,
        "subset": subset,
        "references": len({r.ref_id for r in scored}),
        "types": ordered,
        "missing_types": missing,
    }


def format_coverage(name: str, info: dict[str, Any]) -> str:
    """One paragraph saying what a :func:`coverage` covers, for the top of a table.

    Args:
        name: The set's label (``"TID2013"``).
        info: :func:`coverage` output.

    Returns:
        The text, e.g. ``TID2013: subset, 1,560 of 3,000 pairs, 24
        references, 13 of 24 types: ...``.
    """
    types = info["types"]
    known = len(types) + len(info["missing_types"])
    head = f"{name}: " + ("subset, " if info["subset"] else "")
    if info["total_pairs"] is not None:
        head += f"{info['pairs']:,} of {info['total_pairs']:,} pairs"
    else:
        head += f"{info['pairs']:,} pairs"
    head += f", {info['references']} references, {len(types)}"
    head += f" of {known} types" if info["missing_types"] else " types"
    return head + ": " + ", ".join(f"{t} ({n})" for t, n in types.items())


def write_results(
    path: Path,
    results: Sequence[dict[str, Any]],
    metadata: dict[str, Any],
    **sections: Any,
) -> None:
    """Write result entries and metadata as JSON (per-pair values dropped).

    Args:
        path: The JSON file (its folder is created).
        results: Entries from :func:`evaluate_records`.
        metadata: Run metadata (:func:`asna_metric._provenance.run_metadata`).
        **sections: More top-level sections (``coverage=...``).
    """
    clean = [{k: v for k, v in e.items() if k not in ("pred", "target")} for e in results]
    payload = {"metadata": metadata, **sections, "results": clean}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(json_safe(payload), indent=2) + "\n", encoding="utf-8")
