"""Plot time and peak memory against image size from a run_speed.py JSON.

Usage::

    python benchmarks/speed/plot_scaling.py benchmarks/speed/results/cpu.json \
        --out docs/performance_scaling.png

Left: seconds per pair against megapixels (log-log), with a dotted line of
slope 1 through each method's middle point: points on it mean the cost grows
linearly with the pixel count. Right: peak resident memory of the process.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

DEFAULT_OUT = Path(__file__).resolve().parents[2] / "docs" / "performance_scaling.png"
LABELS = {"asna-none": "ASNA (no self-ensemble)", "lpips-alex": "LPIPS-AlexNet"}


def scaling_series(result: dict[str, Any]) -> dict[str, list[tuple[float, float, float]]]:
    """``method -> [(megapixels, seconds, peak GiB), ...]`` from the ``scaling`` section."""
    series: dict[str, list[tuple[float, float, float]]] = {}
    for row in result.get("scaling", []):
        if "error" in row:
            continue
        mp = row["height"] * row["width"] / 1e6
        series.setdefault(row["method"], []).append(
            (mp, row["timing"]["median_s"], row["peak_rss_bytes"] / 2**30)
        )
    for points in series.values():
        points.sort()
    return series


def plot(result: dict[str, Any], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series = scaling_series(result)
    if not series:
        raise SystemExit("the JSON has no scaling rows; run run_speed.py --sections scaling")
    env = result["environment"]
    fig, (ax_t, ax_m) = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
    for i, (method, points) in enumerate(series.items()):
        color = f"C{i}"
        mp = [p[0] for p in points]
        sec = [p[1] for p in points]
        mem = [p[2] for p in points]
        label = LABELS.get(method, method)
        ax_t.plot(mp, sec, "o-", color=color, label=label)
        mid = len(mp) // 2
        ax_t.plot(
            [mp[0], mp[-1]],
            [sec[mid] * mp[0] / mp[mid], sec[mid] * mp[-1] / mp[mid]],
            ":",
            color=color,
            alpha=0.7,
        )
        ax_m.plot(mp, mem, "o-", color=color, label=label)
        for x, y, p in zip(mp, sec, points, strict=True):
            side = round((p[0] * 1e6) ** 0.5)
            ax_t.annotate(f"{side}²", (x, y), textcoords="offset points", xytext=(4, -10), size=7)
    ax_t.set(
        xscale="log",
        yscale="log",
        xlabel="megapixels per image",
        ylabel="seconds per pair (batch 1)",
        title="Time (dotted: linear in pixel count)",
    )
    ax_m.axhline(4.0, color="grey", ls="--", lw=1)
    ax_m.text(0.02, 4.05, "4 GiB", transform=ax_m.get_yaxis_transform(), color="grey", size=8)
    ax_m.set(
        xscale="log",
        xlabel="megapixels per image",
        ylabel="peak resident memory (GiB)",
        title="Peak memory of the process",
    )
    ax_m.set_ylim(bottom=0)
    for ax in (ax_t, ax_m):
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    fig.suptitle(
        f"{env['cpu_model']}, torch.get_num_threads() = {env['torch_num_threads']}, "
        f"torch {env['versions']['torch']}",
        size=9,
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("json", type=Path, help="output of run_speed.py")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = p.parse_args(argv)
    plot(json.loads(args.json.read_text(encoding="utf-8")), args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
