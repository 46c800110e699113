"""Accuracy and speed of the single-network ASNA variants trained for issue 6 (and the paper's).

For each run of :data:`VARIANTS` this collects the best validation epoch
(``metrics.jsonl``), the SRCC on the 2,250 held-out pairs and, where its
leave-types-out twin was trained, the twin's SRCC on the 450 held-out pairs
of unseen types (both from the accuracy benchmark's JSON under
``training/eval/<variant>/``; the default's is ``training/eval/``), checks
whether the identical pair outscores all 125 KADID type/level settings on
``tests/assets/asna_pair/ref.png`` (the property
``tests/test_shipped_weights.py`` requires of shipped weights), and times one
512x384 pair on one thread
(median of 30 calls after warm-up, interleaved with the LPIPS-AlexNet
rebuild of ``benchmarks/speed/baselines.py`` so that both see the same load).

Run from the repository root after the benchmark runs of
``training/reproduce.sh`` step 6 (which also retrains the runs: their
``best.safetensors`` are not kept in git, see ``training/runs/README.md``)::

    python training/eval/variants.py   # writes training/eval/variants.json
"""

import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, "benchmarks/speed")

from baselines import LPIPS

from asna_metric import ASNA
from asna_metric.data.distortions import distort
from asna_metric.inputs import to_batch
from asna_metric.weights import sha256_file

# name -> (run folder, benchmark output folder)
VARIANTS = {
    "asna (paper, full resolution)": ("asna_cpu", "asna_cpu_single"),
    "half, 4 levels, wide": ("asna_fast_wide_cpu", "asna_fast_wide"),
    "half, 3 levels, 5x5": ("asna_half_cpu", "asna_half"),
    "half, 3 levels, 5x5, 36 epochs": ("asna_half_long_cpu", "asna_half_long"),
    "half, 3 levels, 3x3": ("asna_half_k3_cpu", "asna_half_k3"),
    "half, 3 levels, 3x3, 36 epochs": ("asna_half_k3_long_cpu", "asna_half_k3_long"),
    "quarter, 2 levels (the default)": ("asna_quarter_cpu", "."),
    "quarter, 2 levels, 36 epochs": ("asna_quarter_long_cpu", "asna_quarter_long"),
}
RUNS = Path("training/runs")
EVAL = Path("training/eval")


def _row(results: list[dict], metric: str, dataset: str) -> dict | None:
    for r in results:
        if r["metric"] == metric and r["dataset"] == dataset:
            return {"srcc": round(r["srcc"], 4), "ci": [round(x, 4) for x in r["ci"]["srcc"]]}
    return None


def _identity_violations(metric: ASNA) -> list[list[float]]:
    """(type, level, excess) of every setting that scores above the identical pair."""
    ref = to_batch("tests/assets/asna_pair/ref.png", name="ref")
    with torch.inference_mode():
        identical = metric(ref, ref).item()
        out = []
        for t in range(1, 26):
            dist = torch.cat([distort(ref, t, level, seed=0) for level in range(1, 6)])
            for level, score in enumerate(metric(dist, ref.expand(5, -1, -1, -1)).tolist(), 1):
                if score > identical + 1e-4:  # the test's tolerance for ties
                    out.append([t, level, round(score - identical, 4)])
    return out


def _timed(fn, repeats: int = 30) -> float:
    with torch.inference_mode():
        fn()
        fn()
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def main() -> None:
    """Collect, time and write every variant of VARIANTS."""
    torch.set_num_threads(1)
    generator = torch.Generator().manual_seed(0)
    ref = torch.rand(1, 3, 384, 512, generator=generator)
    dist = (ref + 0.05 * torch.randn(ref.shape, generator=generator)).clamp(0, 1)
    lpips = LPIPS("alex").eval()
    out = {}
    for name, (run, bench) in VARIANTS.items():
        weights = RUNS / run / "best.safetensors"
        if not weights.is_file():
            print(f"skipped {name}: {weights} missing")
            continue
        metrics = [json.loads(line) for line in (RUNS / run / "metrics.jsonl").open()]
        best = max(metrics, key=lambda m: m["val_srcc"])
        entry = {
            "run": run,
            "weights_sha256": sha256_file(weights),
            "best_epoch": best["epoch"],
            "epochs": len(metrics),
            "val_srcc": round(best["val_srcc"], 4),
        }
        accuracy = EVAL / bench / "accuracy_KADID-synth.json"
        if accuracy.is_file():
            data = json.loads(accuracy.read_text())
            results = data["results"]
            entry["held_out_refs"] = _row(results, "asna", "KADID-synth:val-refs")
            lto_weights = data["metadata"].get("weights", {}).get("asna-leave-types-out", {})
            if lto_weights.get("name") == f"{run}_leave_types_out":  # its own twin
                entry["unseen_types_twin"] = _row(
                    results, "asna-leave-types-out", "KADID-synth:val-refs+held-out-types"
                )
        metric = ASNA(str(weights))
        entry["identity_violations"] = _identity_violations(metric)
        asna_ms = _timed(lambda metric=metric: metric(dist, ref))
        lpips_ms = _timed(lambda: lpips(dist, ref))
        entry.update(
            ms_per_pair_512x384=round(asna_ms, 1),
            lpips_alex_ms=round(lpips_ms, 1),
            speed_vs_lpips_alex=round(lpips_ms / asna_ms, 2),
        )
        out[name] = entry
        print(name, json.dumps(entry))
    (EVAL / "variants.json").write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
