"""Markdown tables of the TID2013-from-Kodak benchmark, for the model card.

Usage: ``python benchmarks/tid2013_tables.py BENCH_OUT/accuracy_TID2013-kodak.json``
(the JSON that ``benchmarks/test_accuracy_tid2013_kodak.py`` writes). Prints
the overall table (SRCC, PLCC, KRCC with 95% intervals, both sets) and the
per-type SRCC table, so the figures in the docs are copied by a program, not
by hand.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any


def _cell(entry: dict[str, Any], name: str) -> str:
    value = entry.get(name)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    low, high = (entry.get("ci") or {}).get(name, (None, None))
    if low is None or high is None:
        return f"{value:.3f}"
    return f"{value:.3f} [{low:.3f}, {high:.3f}]"


def _label(entry: dict[str, Any]) -> str:
    label = str(entry["metric"])
    if entry.get("kodak_in_training"):
        label += " (Kodak in training)"
    return label


def overall(results: list[dict[str, Any]]) -> str:
    """One row per metric and set: SRCC, PLCC and KRCC with their intervals."""
    lines = ["| metric | set | n | SRCC | PLCC | KRCC |", "|---|---|---|---|---|---|"]
    for e in results:
        group = e["dataset"].split(":", 1)[-1]
        cells = [_cell(e, k) for k in ("srcc", "plcc", "krcc")]
        lines.append(f"| {_label(e)} | {group} | {e['n']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def per_type(results: list[dict[str, Any]], group: str) -> str:
    """SRCC per distortion type (rows) and metric (columns) for one set."""
    entries = [e for e in results if e["dataset"].endswith(group)]
    types = list(entries[0]["per_type"])
    head = "| type | " + " | ".join(str(e["metric"]) for e in entries) + " |"
    lines = [head, "|---" * (len(entries) + 1) + "|"]
    for t in types:
        cells = []
        for e in entries:
            v = e["per_type"].get(t, {}).get("srcc")
            cells.append("n/a" if v is None else f"{v:.3f}")
        lines.append(f"| {t} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    """Print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("json", type=Path)
    args = parser.parse_args()
    document = json.loads(args.json.read_text())
    results = document["results"]
    print(overall(results))
    print()
    print(per_type(results, "all 13 types"))


if __name__ == "__main__":
    main()
