"""Speed and memory of ASNA against PSNR, SSIM, MS-SSIM, LPIPS and DISTS.

Usage (from the repository root, in the project's virtual environment)::

    python benchmarks/speed/run_speed.py --out benchmarks/speed/results/cpu.json
    python benchmarks/speed/run_speed.py --quick --out /tmp/speed.json   # smoke run
    python benchmarks/speed/plot_scaling.py benchmarks/speed/results/cpu.json

Sections (``--sections``, all by default):

* ``throughput``: pairs per second and peak resident memory of every method,
  at 288x288, 512x384 and 1024x1024 (batch 1) and 288x288 (batch 16). Each runs
  in a fresh subprocess (so peak memory is its own) on the same
  deterministic inputs, under ``inference_mode``: one warm-up call, then
  timed calls (at least ``--min-repeats``, until ``--budget`` seconds or
  ``--max-repeats``; a first call longer than ``--long-call-s`` is the one
  sample); median and IQR; ratio to LPIPS-AlexNet. A
  configuration whose cost, extrapolated from the same method's smaller
  ones, exceeds ``--max-call-s`` is recorded as skipped.
* ``loss``: forward + backward (gradient with respect to ``dist``) at
  256x256, batch 16, in this process.
* ``scaling``: time and peak memory from 256 to 4096 pixels a side for ASNA
  (no self-ensemble) and LPIPS-AlexNet, each size in a fresh subprocess.

The JSON holds the environment (commit, versions, CPU, thread count), the
weights used and every timing; a Markdown summary goes to stdout and, with
``--markdown``, to a file.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness

SIZES = ((288, 288), (384, 512), (1024, 1024))  # (height, width); 512x384 is TID2013/KADID
BATCH = 16
BATCHED_SIZES = ((288, 288),)  # batch 16 costs 16x batch 1: on 2 cores, the paper's size only
SCALING_SIDES = (256, 512, 1024, 2048, 4096)
SCALING_METHODS = ("asna-none", "lpips-alex")
LOSS_METHODS = (
    "asna-none",
    "asna-flips",
    "psnr",
    "ssim",
    "ms-ssim",
    "lpips-alex",
    "lpips-vgg",
    "dists",
)
REFERENCE = "lpips-alex"
RANDOM_WEIGHTS_NAME = "random-official-width"


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- weights


def prepare_weights(requested: str | None, tmpdir: Path) -> tuple[str, dict[str, Any]]:
    """Weights for the ASNA timings and a description of them for the JSON.

    Uses ``requested`` when given, else the package's default weights when
    they resolve offline, else a random ensemble with the official widths
    (three members: ``asna``, ``siamese_diff``, ``siamese_diff_convlstm``),
    saved in ``tmpdir``. Cost does not depend on weight values.
    """
    if requested is not None:
        return requested, {"name": requested, "random": False}
    try:
        from asna_metric.weights import DEFAULT_WEIGHTS, REGISTRY, resolve_weights

        path = resolve_weights(DEFAULT_WEIGHTS, local_files_only=True)
        spec = REGISTRY[DEFAULT_WEIGHTS]
        return str(path), {
            "name": spec.name,
            "revision": spec.revision,
            "sha256": spec.sha256,
            "random": False,
        }
    except Exception as exc:
        reason = f"{type(exc).__name__}: {exc}"
    from asna_metric.nets import build_net
    from asna_metric.weights import save_ensemble

    torch.manual_seed(0)
    archs = ("asna", "siamese_diff", "siamese_diff_convlstm")
    members = [build_net(arch, {}) for arch in archs]
    path = tmpdir / f"{RANDOM_WEIGHTS_NAME}.safetensors"
    save_ensemble(
        path,
        members,
        name=RANDOM_WEIGHTS_NAME,
        description="Random weights with the official widths, for timing only.",
    )
    params = [sum(p.numel() for p in m.parameters()) for m in members]
    return str(path), {
        "name": RANDOM_WEIGHTS_NAME,
        "revision": None,
        "random": True,
        "members": [
            {"arch": a, "config": m.config, "parameters": n}
            for a, m, n in zip(archs, members, params, strict=True)
        ],
        "note": (
            "Trained default weights were not available offline "
            f"({reason}); timed a random ensemble with the official widths and the "
            "default ensemble's three architectures. Cost does not depend on weight values."
        ),
    }


# --------------------------------------------------------------------------- sections


def _estimate(rows: list[dict[str, Any]], method: str, batch: int, pixels: int) -> float | None:
    """Seconds per call of ``method`` at ``batch x pixels``, from its cheapest measured row.

    Cost is taken as proportional to pairs x pixels (what the scaling section
    checks); ``None`` when nothing was measured yet.
    """
    done = [r for r in rows if r["method"] == method and "timing" in r]
    if not done:
        return None
    r = min(done, key=lambda r: r["batch"] * r["height"] * r["width"])
    per = r["timing"]["median_s"] / (r["batch"] * r["height"] * r["width"])
    return float(per * batch * pixels)


def run_throughput(args: argparse.Namespace, weights: str) -> list[dict[str, Any]]:
    """Pairs per second and peak memory; one fresh subprocess per configuration."""
    rows: list[dict[str, Any]] = []
    configs = [(1, h, w) for h, w in args.sizes] + [
        (args.batch, h, w) for h, w in args.batched_sizes
    ]
    for batch, height, width in configs:
        ref_rate = None
        for name in sorted(args.methods, key=lambda m: m != REFERENCE):  # reference first
            config = {"method": name, "height": height, "width": width, "batch": batch}
            estimate = _estimate(rows, name, batch, height * width)
            if estimate is not None and estimate > args.max_call_s:
                rows.append({**config, "skipped": f"estimated {estimate:.0f} s per call"})
                log(f"skip {name} {width}x{height} b{batch}: estimated {estimate:.0f} s per call")
                continue
            row = harness.measure_in_subprocess(
                name,
                batch=batch,
                height=height,
                width=width,
                threads=args.threads,
                weights=weights if name.startswith("asna") else None,
                timed=True,
                budget_s=args.budget,
                min_repeats=args.min_repeats,
                max_repeats=args.max_repeats,
                long_call_s=args.long_call_s,
                timeout_s=args.timeout,
            )
            if "error" in row:
                rows.append(row)
                log(f"{name} {width}x{height} b{batch}: ERROR {row['error']}")
                continue
            timing = row["timing"]
            rate = batch / timing["median_s"]
            if name == REFERENCE:
                ref_rate = rate
            row.update(
                pairs_per_s=rate,
                pairs_per_s_q1=batch / timing["q3_s"],
                pairs_per_s_q3=batch / timing["q1_s"],
                ratio_to_lpips_alex=None if ref_rate is None else rate / ref_rate,
            )
            rows.append(row)
            log(
                f"{name:11s} {width}x{height} b{batch}: {rate:8.3f} pairs/s "
                f"(median {timing['median_s'] * 1e3:.0f} ms, IQR {timing['iqr_s'] * 1e3:.0f} ms, "
                f"n={timing['repeats']}), peak {row['peak_rss_bytes'] / 2**20:.0f} MiB"
            )
    return rows


def run_loss(
    args: argparse.Namespace, weights: str, throughput: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Forward + backward (gradient with respect to dist), in this process, same inputs."""
    side, batch = args.loss_side, args.loss_batch
    dist, ref = harness.make_pair(batch, side, side)
    rows: list[dict[str, Any]] = []
    ref_time = None
    for name in sorted(LOSS_METHODS, key=lambda m: m != REFERENCE):
        if name not in args.methods:
            continue
        # A backward pass costs about twice the forward one.
        estimate = _estimate(throughput, name, batch, side * side)
        if estimate is not None and 3 * estimate > args.max_loss_s:
            rows.append(
                {
                    "method": name,
                    "side": side,
                    "batch": batch,
                    "skipped": f"estimated {3 * estimate:.0f} s per step",
                }
            )
            log(f"skip loss {name}: estimated {3 * estimate:.0f} s per step")
            continue
        model = harness.build_method(name, weights=weights)

        def step(model: torch.nn.Module = model) -> torch.Tensor:
            d = dist.clone().requires_grad_(True)
            model(d, ref).sum().backward()
            if d.grad is None:
                raise RuntimeError("no gradient reached dist")
            return d.grad

        try:
            start = time.perf_counter()
            grad = step()  # warm-up
            first = time.perf_counter() - start
            if first >= args.long_call_s:
                timing = harness.summarize([first], warmup=0)
            else:
                timing = harness.time_callable(
                    step,
                    warmup=0,
                    min_repeats=args.min_repeats,
                    max_repeats=args.max_repeats,
                    budget_s=args.budget,
                )
                timing.warmup = 1
        except RuntimeError as exc:
            rows.append({"method": name, "side": side, "batch": batch, "error": str(exc)})
            log(f"loss {name}: ERROR {exc}")
            continue
        if name == REFERENCE:
            ref_time = timing.median_s
        rows.append(
            {
                "method": name,
                "side": side,
                "batch": batch,
                "pairs_per_s": batch / timing.median_s,
                "ratio_to_lpips_alex": None if ref_time is None else ref_time / timing.median_s,
                "grad_finite": bool(torch.isfinite(grad).all()),
                "timing": timing.to_dict(),
            }
        )
        log(
            f"loss {name:11s} {side}x{side} b{batch}: {timing.median_s * 1e3:8.1f} ms "
            f"(IQR {timing.iqr_s * 1e3:.1f} ms, n={timing.repeats})"
        )
        del model
    return rows


def run_scaling(args: argparse.Namespace, weights: str) -> list[dict[str, Any]]:
    rows = []
    for name in SCALING_METHODS:
        if name not in args.methods:
            continue
        for side in args.scaling_sides:
            row = harness.measure_in_subprocess(
                name,
                batch=1,
                height=side,
                width=side,
                threads=args.threads,
                weights=weights if name.startswith("asna") else None,
                timed=True,
                budget_s=args.scaling_budget,
                min_repeats=args.min_repeats,
                max_repeats=args.max_repeats,
                long_call_s=args.long_call_s,
                timeout_s=args.timeout,
            )
            rows.append(row)
            if "error" in row:
                log(f"scaling {name} {side}: ERROR {row['error']}")
                continue
            t = row["timing"]
            log(
                f"scaling {name:11s} {side:5d}: {t['median_s']:8.3f} s (n={t['repeats']}), "
                f"peak {row['peak_rss_bytes'] / 2**20:.0f} MiB"
            )
    return rows


def run_breakdown(args: argparse.Namespace, weights: str) -> dict[str, Any]:
    """Where ASNA's time goes at 512x384, batch 1: each member alone, and the top operators."""
    from torch.profiler import ProfilerActivity, profile

    from asna_metric.weights import load_ensemble

    height, width = args.breakdown_size
    dist, ref = harness.make_pair(1, height, width)
    nets, _ = load_ensemble(weights)
    members = []
    for net in nets:
        net.eval().requires_grad_(False)
        multiple = int(net.size_multiple)
        if height % multiple or width % multiple:
            raise RuntimeError(f"breakdown size must be a multiple of {multiple}")
        with torch.inference_mode():
            net(dist, ref)
            timing = harness.time_callable(
                lambda net=net: net(dist, ref),
                warmup=0,
                min_repeats=args.min_repeats,
                max_repeats=args.max_repeats,
                budget_s=args.budget,
            )
        members.append(
            {
                "arch": net.arch,
                "parameters": sum(p.numel() for p in net.parameters()),
                "timing": timing.to_dict(),
            }
        )
        log(f"member {net.arch:22s}: {timing.median_s * 1e3:.0f} ms")
    metric = harness.build_method("asna-none", weights=weights)
    with torch.inference_mode():
        metric(dist, ref)
        with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
            metric(dist, ref)
    events = prof.key_averages(group_by_input_shape=True)
    total = sum(e.self_cpu_time_total for e in events)
    top = sorted(events, key=lambda e: e.self_cpu_time_total, reverse=True)[: args.profile_rows]
    return {
        "height": height,
        "width": width,
        "members": members,
        "profile_self_cpu_total_ms": total / 1e3,
        "profile_top": [
            {
                "op": e.key,
                "input_shapes": str(e.input_shapes)[:120],
                "calls": e.count,
                "self_cpu_ms": e.self_cpu_time_total / 1e3,
                "share": e.self_cpu_time_total / total if total else None,
            }
            for e in top
        ],
    }


# --------------------------------------------------------------------------- report


def _mib(n: float) -> str:
    return f"{n / 2**20:,.0f}"


def _grid(
    rows: list[dict[str, Any]], cell: Callable[[dict[str, Any]], str], title: str
) -> list[str]:
    """A methods x configurations table of the throughput rows."""
    configs = sorted(
        {(r["width"], r["height"], r["batch"]) for r in rows}, key=lambda c: (c[2], c[0] * c[1])
    )
    methods = list(dict.fromkeys(r["method"] for r in rows))
    lookup = {(r["method"], r["width"], r["height"], r["batch"]): r for r in rows}
    head = " | ".join(f"{w}x{h} b{b}" for w, h, b in configs)
    lines = [title, "", f"| method | {head} |", "|---" * (len(configs) + 1) + "|"]
    for m in methods:
        cells = []
        for c in configs:
            r = lookup.get((m, *c))
            if r is None:
                cells.append("-")
            elif "skipped" in r:
                cells.append("skipped")
            elif "error" in r:
                cells.append("error")
            else:
                cells.append(cell(r))
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    return [*lines, ""]


def _num(x: float) -> str:
    """Three significant digits without exponents (1,234 / 12.3 / 0.0123)."""
    return f"{x:,.0f}" if abs(x) >= 100 else f"{x:.3g}"


def _rate_cell(r: dict[str, Any]) -> str:
    ratio = r["ratio_to_lpips_alex"]
    single = "*" if r["timing"]["repeats"] == 1 else ""
    return f"{_num(r['pairs_per_s'])}{single}" + (f" ({_num(ratio)}x)" if ratio is not None else "")


def _memory_cell(r: dict[str, Any]) -> str:
    return f"{_mib(r['peak_rss_bytes'])} (+{_mib(r['peak_increment_bytes'])})"


def markdown(result: dict[str, Any]) -> str:
    """Markdown tables of a result dict (the ones docs/performance.md shows)."""
    env = result["environment"]
    weights = result["weights"]
    lines = [
        f"Commit `{(env['commit'] or 'unknown')[:12]}`, torch {env['versions']['torch']}, "
        f"{env['cpu_model']}, {env['torch_num_threads']} threads; weights "
        f"`{weights['name']}`" + (" (random, official widths)" if weights.get("random") else ""),
        "",
    ]
    thr = result.get("throughput", [])
    if thr:
        lines += _grid(
            thr,
            _rate_cell,
            "Pairs per second (median; speed relative to LPIPS-AlexNet in brackets; "
            "* a single timed call):",
        )
        lines += _grid(
            thr,
            _memory_cell,
            "Peak resident memory, MiB (whole process; added by scoring in brackets):",
        )
        skipped = [r for r in thr if "skipped" in r]
        if skipped:
            lines += [
                "Skipped (over the per-call cap): "
                + "; ".join(
                    f"{r['method']} {r['width']}x{r['height']} b{r['batch']} ({r['skipped']})"
                    for r in skipped
                ),
                "",
            ]
    loss = result.get("loss", [])
    if loss:
        lines += [
            f"As a loss (forward + backward to dist), {loss[0]['side']}x{loss[0]['side']}, "
            f"batch {loss[0]['batch']}:",
            "",
            "| method | ms per batch | pairs/s | speed vs LPIPS-AlexNet |",
            "|---|---|---|---|",
        ]
        for r in loss:
            if "skipped" in r or "error" in r:
                why = r.get("skipped") or f"error: {r['error']}"
                lines.append(f"| {r['method']} | {why} | | |")
                continue
            ratio = r["ratio_to_lpips_alex"]
            lines.append(
                f"| {r['method']} | {r['timing']['median_s'] * 1e3:.0f} | "
                f"{_num(r['pairs_per_s'])} | "
                + ("-" if ratio is None else f"{_num(ratio)}x")
                + " |"
            )
        lines.append("")
    scaling = result.get("scaling", [])
    if scaling:
        lines += [
            "Scaling, batch 1 (time per pair; peak resident memory of the process):",
            "",
            "| method | side | megapixels | seconds | seconds per megapixel | peak MiB |",
            "|---|---|---|---|---|---|",
        ]
        for r in scaling:
            if "error" in r:
                lines.append(f"| {r['method']} | {r['height']} | | error: {r['error']} | | |")
                continue
            mp = r["height"] * r["width"] / 1e6
            t = r["timing"]["median_s"]
            lines.append(
                f"| {r['method']} | {r['height']} | {mp:.2f} | {_num(t)} | {_num(t / mp)} | "
                f"{_mib(r['peak_rss_bytes'])} |"
            )
        lines.append("")
    breakdown = result.get("breakdown")
    if breakdown:
        lines += [
            f"ASNA members alone, {breakdown['width']}x{breakdown['height']}, batch 1:",
            "",
            "| member | parameters | ms per pair |",
            "|---|---|---|",
        ]
        for m in breakdown["members"]:
            lines.append(
                f"| {m['arch']} | {m['parameters']:,} | {m['timing']['median_s'] * 1e3:.0f} |"
            )
        lines += [
            "",
            "Top operators of ASNA (self_ensemble='none') by self CPU time:",
            "",
            "| operator | input shapes | calls | share |",
            "|---|---|---|---|",
        ]
        for e in breakdown["profile_top"]:
            lines.append(f"| {e['op']} | `{e['input_shapes']}` | {e['calls']} | {e['share']:.1%} |")
        lines.append("")
    return "\n".join(lines)


# --------------------------------------------------------------------------- main

SECTIONS = ("throughput", "loss", "scaling", "breakdown")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--out", type=Path, required=True, help="JSON file to write")
    p.add_argument("--markdown", type=Path, help="also write the Markdown tables here")
    p.add_argument("--threads", type=int, default=torch.get_num_threads(), help="torch threads")
    p.add_argument("--weights", help="ASNA weights (name or .safetensors); default: see README")
    p.add_argument("--sections", nargs="+", default=list(SECTIONS), choices=SECTIONS)
    p.add_argument("--methods", nargs="+", default=list(harness.METHODS), choices=harness.METHODS)
    p.add_argument("--min-repeats", type=int, default=3, help="timed calls at least (default 3)")
    p.add_argument("--max-repeats", type=int, default=10, help="timed calls at most (default 10)")
    p.add_argument("--budget", type=float, default=2.0, help="seconds of timed calls per config")
    p.add_argument("--scaling-budget", type=float, default=3.0)
    p.add_argument(
        "--long-call-s",
        type=float,
        default=8.0,
        help="a first call this long is the only sample (default 8)",
    )
    p.add_argument(
        "--max-call-s",
        type=float,
        default=75.0,
        help="skip configurations estimated (from smaller ones) above this (default 40)",
    )
    p.add_argument(
        "--max-loss-s",
        type=float,
        default=150.0,
        help="skip loss steps estimated (3x the forward) above this (default 150)",
    )
    p.add_argument("--timeout", type=float, default=600.0, help="per subprocess, seconds")
    p.add_argument("--quick", action="store_true", help="tiny smoke run (seconds, not minutes)")
    args = p.parse_args(argv)
    args.sizes = list(SIZES)
    args.batch = BATCH
    args.batched_sizes = list(BATCHED_SIZES)
    args.scaling_sides = list(SCALING_SIDES)
    args.loss_side, args.loss_batch = 256, 16
    args.breakdown_size = (384, 512)
    args.profile_rows = 15
    if args.quick:
        args.breakdown_size = (192, 192)
        args.sizes = [(192, 192)]
        args.batch = 2
        args.batched_sizes = [(192, 192)]
        args.scaling_sides = [192, 256]
        args.loss_side, args.loss_batch = 192, 2
        args.min_repeats, args.max_repeats, args.budget, args.scaling_budget = 1, 1, 0.0, 0.0
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    started = time.monotonic()
    result: dict[str, Any] = {
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "environment": harness.environment("cpu"),
        "settings": {
            "warmup": 1,
            "min_repeats": args.min_repeats,
            "max_repeats": args.max_repeats,
            "budget_s": args.budget,
            "scaling_budget_s": args.scaling_budget,
            "long_call_s": args.long_call_s,
            "max_call_s": args.max_call_s,
            "max_loss_s": args.max_loss_s,
            "batch1_sizes_hw": args.sizes,
            "batched_sizes_hw": args.batched_sizes,
            "batch": args.batch,
            "inference_mode": True,
            "dtype": "float32",
            "input": "smooth random reference + Gaussian noise, seed 0 (harness.make_pair)",
            "quick": args.quick,
        },
    }
    with tempfile.TemporaryDirectory(prefix="asna_speed_") as tmp:
        weights, info = prepare_weights(args.weights, Path(tmp))
        result["weights"] = info
        if info.get("random"):
            log(info["note"])
        if "throughput" in args.sections:
            log("section throughput (one subprocess per configuration)")
            result["throughput"] = run_throughput(args, weights)
        if "loss" in args.sections:
            log("section loss")
            result["loss"] = run_loss(args, weights, result.get("throughput", []))
        if "scaling" in args.sections:
            log("section scaling (one subprocess per size)")
            result["scaling"] = run_scaling(args, weights)
        if "breakdown" in args.sections:
            log("section breakdown (ASNA members alone, profiler)")
            result["breakdown"] = run_breakdown(args, weights)
    result["environment"]["load_average_at_end"] = list(os.getloadavg())
    result["wall_time_s"] = time.monotonic() - started
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    text = markdown(result)
    if args.markdown:
        args.markdown.write_text(text + "\n", encoding="utf-8")
    print(text)
    log(f"wrote {args.out} in {result['wall_time_s']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
