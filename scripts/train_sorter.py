"""Train the shipped sorters of ``asna_metric.train`` (CPU, about 10 minutes on one core).

Reproduces ``src/asna_metric/train/_weights/sorter_{pairwise,paper16}.safetensors``
and writes ``sorter_log.json`` / ``sorter_log.txt`` beside them with the exact
command, seed, library versions, the training curve and a held-out evaluation.

    python scripts/train_sorter.py --seed 0 --out src/asna_metric/train/_weights

Results are deterministic for a given seed, torch version and thread count
(``--threads``, default 1).
"""

from __future__ import annotations

import argparse
import json
import platform
import shlex
import sys
import time
from pathlib import Path

import torch

from asna_metric._version import __version__
from asna_metric.train.sorter import (
    PairwiseSorter,
    PaperSorter,
    exact_ranks,
    fit_sorter,
    sample_vectors,
    save_sorter,
)

DEFAULT_OUT = Path(__file__).resolve().parents[1] / "src" / "asna_metric" / "train" / "_weights"
EVAL_LENGTHS = (4, 8, 16, 32, 64, 128, 256)


def evaluate(
    sorter: torch.nn.Module, lengths: tuple[int, ...], seed: int
) -> dict[str, dict[str, float]]:
    """Mean absolute rank error in positions on fresh vectors, per length and kind."""
    g = torch.Generator().manual_seed(seed)
    out: dict[str, dict[str, float]] = {}
    with torch.no_grad():
        for n in lengths:
            out[str(n)] = {}
            for kind in ("normal", "uniform", "skewed"):
                x = sample_vectors(max(8, 16384 // n), n, generator=g, kind=kind)
                err = (sorter(x) - exact_ranks(x)).abs().mean() * (n - 1)
                out[str(n)][kind] = round(float(err), 4)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--pairwise-steps", type=int, default=400)
    parser.add_argument("--pairwise-lr", type=float, default=3e-3)
    parser.add_argument("--target-width", type=float, default=0.5)
    parser.add_argument("--paper-steps", type=int, default=800)
    parser.add_argument("--paper-batch", type=int, default=256)
    parser.add_argument("--paper-lr", type=float, default=1e-3)
    parser.add_argument("--skip-paper", action="store_true")
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    command = "python " + " ".join(shlex.quote(a) for a in [sys.argv[0], *(argv or sys.argv[1:])])
    record: dict[str, object] = {
        "command": command,
        "seed": args.seed,
        "args": {k: str(v) for k, v in vars(args).items()},
        "versions": {
            "asna_metric": __version__,
            "torch": torch.__version__,
            "python": platform.python_version(),
            "machine": platform.machine(),
        },
        "data": "asna_metric.train.sorter.sample_vectors(kind='mixed'): 1/3 N(0,2), "
        "1/3 U(-10,10), 1/3 skewed (Kumaraswamy, lognormal, two-normal mixture + 1e-3 noise)",
    }
    lines: list[str] = [f"command: {command}", f"seed: {args.seed}"]

    def say(text: str) -> None:
        print(text, flush=True)
        lines.append(text)

    jobs = [("pairwise", PairwiseSorter, args.pairwise_steps)]
    if not args.skip_paper:
        jobs.append(("paper16", PaperSorter, args.paper_steps))
    for name, cls, steps in jobs:
        torch.manual_seed(args.seed)
        sorter = cls()
        start = time.monotonic()
        if name == "pairwise":
            lengths: tuple[int, ...] = (4, 8, 16, 32, 64, 128, 256)
            log = fit_sorter(
                sorter,
                steps=steps,
                lengths=lengths,
                pairs_per_step=65536,
                lr=args.pairwise_lr,
                target_width=args.target_width,
                seed=args.seed,
                log_every=50,
                callback=lambda r, name=name: say(f"{name} {json.dumps(r)}"),
            )
            eval_lengths = EVAL_LENGTHS
        else:
            lengths = (16,)
            log = fit_sorter(
                sorter,
                steps=steps,
                lengths=lengths,
                pairs_per_step=args.paper_batch * 256,
                lr=args.paper_lr,
                target_width=0.0,
                seed=args.seed,
                log_every=50,
                callback=lambda r, name=name: say(f"{name} {json.dumps(r)}"),
            )
            eval_lengths = (16,)
        seconds = time.monotonic() - start
        vectors = (
            sum(
                max(1, (65536 if name == "pairwise" else args.paper_batch * 256) // (n * n))
                for n in lengths
            )
            * steps
            // len(lengths)
        )
        metrics = evaluate(sorter, eval_lengths, seed=args.seed + 1000)
        say(
            f"{name}: {seconds:.0f} s, ~{vectors} training vectors, "
            f"held-out MAE (positions) {json.dumps(metrics)}"
        )
        save_sorter(
            args.out / f"sorter_{name}.safetensors",
            sorter,
            metadata={
                "train_command": command,
                "seed": str(args.seed),
                "steps": str(steps),
                "train_seconds": f"{seconds:.0f}",
                "heldout_mae_positions": json.dumps(metrics),
                "asna_metric_version": __version__,
                "torch_version": torch.__version__,
            },
        )
        record[name] = {
            "steps": steps,
            "approx_training_vectors": vectors,
            "seconds": round(seconds, 1),
            "parameters": sum(p.numel() for p in sorter.parameters()),
            "heldout_mae_positions": metrics,
            "log": log,
        }
    (args.out / "sorter_log.json").write_text(json.dumps(record, indent=1) + "\n")
    (args.out / "sorter_log.txt").write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
