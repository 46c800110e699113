"""A small timing and memory harness (no pytest-benchmark needed).

* :func:`time_callable`: warm-up calls, then timed repeats until a repeat
  count or a time budget is reached; reports the median and the
  inter-quartile range (IQR) of the per-call wall times.
* :func:`measure_in_subprocess`: runs one configuration in a fresh Python
  process and reads its peak resident memory (``VmHWM`` from
  ``/proc/self/status``, else ``getrusage(RUSAGE_SELF).ru_maxrss``), so the
  allocations of one method never inflate the figure of the next.
* :func:`environment`: what a result must be cited with: commit, versions,
  device, CPU model, thread count.

The methods themselves are built by :func:`build_method` from a short name
(``"asna-none"``, ``"lpips-alex"``, ...), both in the parent and in the
child processes, so every measurement sees the same code and inputs.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from asna_metric._provenance import device_description, git_state
from asna_metric.ensemble import SELF_ENSEMBLE_MODES

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import baselines  # noqa: E402  (sibling module; benchmarks/ is not a package)

__all__ = [
    "ASNA_MODES",
    "METHODS",
    "Timing",
    "build_method",
    "environment",
    "make_pair",
    "measure_in_subprocess",
    "peak_rss_bytes",
    "summarize",
    "time_callable",
]

ASNA_MODES = SELF_ENSEMBLE_MODES  # one list: asna_metric.ensemble's
METHODS = (
    *(f"asna-{mode}" for mode in ASNA_MODES),
    "psnr",
    "ssim",
    "ms-ssim",
    "lpips-alex",
    "lpips-vgg",
    "dists",
)


# --------------------------------------------------------------------------- timing


@dataclass
class Timing:
    """Wall-clock statistics of repeated calls, in seconds per call."""

    median_s: float
    q1_s: float
    q3_s: float
    iqr_s: float
    min_s: float
    max_s: float
    warmup: int
    repeats: int
    times_s: list[float] = field(repr=False)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (per-call times rounded to microseconds)."""
        out = asdict(self)
        out["times_s"] = [round(t, 6) for t in self.times_s]
        return out


def summarize(times: list[float], *, warmup: int = 0) -> Timing:
    """Median, quartiles and IQR of ``times`` (at least one value).

    Quartiles use the "inclusive" method (linear interpolation between order
    statistics, as ``numpy.percentile``'s default), which is defined for any
    sample size of two or more; a single value has zero spread.
    """
    if not times:
        raise ValueError("summarize needs at least one time; got an empty list.")
    if len(times) == 1:
        q1 = q3 = times[0]
    else:
        q1, _, q3 = statistics.quantiles(times, n=4, method="inclusive")
    return Timing(
        median_s=statistics.median(times),
        q1_s=q1,
        q3_s=q3,
        iqr_s=q3 - q1,
        min_s=min(times),
        max_s=max(times),
        warmup=warmup,
        repeats=len(times),
        times_s=list(times),
    )


def time_callable(
    fn: Callable[[], Any],
    *,
    warmup: int = 1,
    min_repeats: int = 3,
    max_repeats: int = 20,
    budget_s: float = 5.0,
) -> Timing:
    """Time ``fn()``: ``warmup`` untimed calls, then between ``min_repeats`` and ``max_repeats``.

    Repeats stop once ``max_repeats`` calls are timed or, after ``min_repeats``,
    once the timed calls add up to ``budget_s`` seconds. Each call is timed on
    its own with :func:`time.perf_counter` (CUDA is synchronised when in use).
    """
    if warmup < 0 or min_repeats < 1 or max_repeats < min_repeats:
        raise ValueError(
            "need warmup >= 0 and 1 <= min_repeats <= max_repeats; got "
            f"warmup={warmup}, min_repeats={min_repeats}, max_repeats={max_repeats}."
        )
    sync = torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None)
    for _ in range(warmup):
        fn()
    sync()
    times: list[float] = []
    while len(times) < max_repeats:
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
        if len(times) >= min_repeats and sum(times) >= budget_s:
            break
    return summarize(times, warmup=warmup)


# --------------------------------------------------------------------------- memory


def _proc_status_kib(key: str) -> int | None:
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def peak_rss_bytes() -> int:
    """Peak resident set size of this process so far, in bytes."""
    hwm = _proc_status_kib("VmHWM")
    if hwm is not None:
        return hwm * 1024
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # macOS reports bytes


def current_rss_bytes() -> int:
    """Current resident set size of this process, in bytes (0 where unknown)."""
    rss = _proc_status_kib("VmRSS")
    return 0 if rss is None else rss * 1024


# --------------------------------------------------------------------------- methods


def make_pair(
    batch: int, height: int, width: int, *, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """A deterministic ``(dist, ref)`` pair: a smooth random reference plus noise."""
    gen = torch.Generator().manual_seed(seed)
    coarse = torch.rand(batch, 3, max(height // 16, 1), max(width // 16, 1), generator=gen)
    ref = torch.nn.functional.interpolate(
        coarse, size=(height, width), mode="bilinear", align_corners=False
    )
    ref = (ref + 0.1 * torch.rand(batch, 3, height, width, generator=gen)).clamp(0, 1)
    dist = (ref + 0.05 * torch.randn(batch, 3, height, width, generator=gen)).clamp(0, 1)
    return dist.contiguous(), ref.contiguous()


def build_method(name: str, *, weights: str | None = None) -> torch.nn.Module:
    """Build a frozen, eval-mode method by its benchmark name.

    Args:
        name: One of :data:`METHODS`.
        weights: Weights for the ASNA methods (a ``.safetensors`` path or a
            registry name); ignored by the others.
    """
    if name.startswith("asna-"):
        from asna_metric import ASNA

        mode = name.removeprefix("asna-")
        if mode not in ASNA_MODES:
            raise ValueError(f"unknown ASNA mode {mode!r}; expected one of {ASNA_MODES}.")
        model: torch.nn.Module = ASNA(weights, self_ensemble=mode)  # type: ignore[arg-type]
    elif name == "psnr":
        model = baselines.PSNR()
    elif name == "ssim":
        model = baselines.SSIM()
    elif name == "ms-ssim":
        model = baselines.MSSSIM()
    elif name == "lpips-alex":
        model = baselines.LPIPS("alex")
    elif name == "lpips-vgg":
        model = baselines.LPIPS("vgg")
    elif name == "dists":
        model = baselines.DISTS()
    else:
        raise ValueError(f"unknown method {name!r}; expected one of {METHODS}.")
    model.eval()
    model.requires_grad_(False)
    return model


# --------------------------------------------------------------------------- environment


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``, else :func:`platform.processor`)."""
    return device_description("cpu")["device_name"]


def environment(device: str = "cpu") -> dict[str, Any]:
    """Everything a speed figure must be cited with."""
    import numpy

    versions: dict[str, str | None] = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": numpy.__version__,
    }
    for dist_name in ("asna-metric", "pytorch-msssim", "safetensors"):
        try:
            versions[dist_name] = importlib.metadata.version(dist_name)
        except importlib.metadata.PackageNotFoundError:
            versions[dist_name] = None
    git = git_state(REPO)
    return {
        "commit": git["commit"],
        "commit_dirty": git["dirty"],
        "versions": versions,
        "device": device,
        "device_name": torch.cuda.get_device_name() if device == "cuda" else cpu_model(),
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch_num_threads": torch.get_num_threads(),
        "torch_num_interop_threads": torch.get_num_interop_threads(),
        "mkldnn": torch.backends.mkldnn.is_available(),
        "platform": platform.platform(),
        "load_average_at_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }


def write_result(path: Path | None, **fields: Any) -> None:
    """Write ``{"environment": environment(), **fields}`` as JSON; nothing when ``path`` is None."""
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"environment": environment(), **fields}, indent=2) + "\n")


# --------------------------------------------------------------------------- subprocess


def measure_in_subprocess(
    method: str,
    *,
    batch: int,
    height: int,
    width: int,
    threads: int,
    weights: str | None = None,
    timed: bool = False,
    budget_s: float = 5.0,
    min_repeats: int = 3,
    max_repeats: int = 5,
    long_call_s: float = 10.0,
    timeout_s: float = 900.0,
) -> dict[str, Any]:
    """Run one configuration in a fresh interpreter; return its peak memory (and timing).

    The child sets the thread count, builds the method, makes the inputs
    (:func:`make_pair`, so every method sees the same pixels), records its
    resident memory and runs the method under :func:`torch.inference_mode`:
    once, or, when ``timed``, a warm-up call followed by timed repeats
    (:func:`time_callable` with ``min_repeats``, ``max_repeats`` and
    ``budget_s``; when the first call took ``long_call_s`` or more it is the
    only sample). ``peak_rss_bytes`` is the whole process
    (interpreter, torch, weights, inputs, scoring); ``peak_increment_bytes``
    is what scoring added to the resident memory just before the first call.

    Returns:
        The child's JSON dict merged with the configuration; on failure the
        configuration with an ``"error"`` entry.
    """
    spec = {
        "method": method,
        "batch": batch,
        "height": height,
        "width": width,
        "threads": threads,
        "weights": weights,
        "timed": timed,
        "budget_s": budget_s,
        "min_repeats": min_repeats,
        "max_repeats": max_repeats,
        "long_call_s": long_call_s,
    }
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", json.dumps(spec)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired:
        return {**spec, "error": f"timed out after {timeout_s:.0f} s"}
    if proc.returncode != 0:
        tail = proc.stderr.strip().splitlines()[-3:]
        return {**spec, "error": f"exit code {proc.returncode}: {' | '.join(tail)}"}
    lines = proc.stdout.strip().splitlines()
    return {**spec, **json.loads(lines[-1])}


def _child(spec: dict[str, Any]) -> dict[str, Any]:
    torch.set_num_threads(int(spec["threads"]))
    model = build_method(spec["method"], weights=spec["weights"])
    dist, ref = make_pair(spec["batch"], spec["height"], spec["width"])
    before = current_rss_bytes()
    result: dict[str, Any] = {"torch_num_threads": torch.get_num_threads()}
    with torch.inference_mode():
        start = time.perf_counter()
        out = model(dist, ref)
        first = time.perf_counter() - start
        result["output_shape"] = list(out.shape)
        result["first_call_s"] = first
        if spec["timed"]:
            if first >= float(spec["long_call_s"]):
                # Warm-up effects are negligible next to a call this long: the
                # first call is the one sample (no spread).
                timing = summarize([first], warmup=0)
            else:
                timing = time_callable(
                    lambda: model(dist, ref),
                    warmup=0,  # the first call above was the warm-up
                    min_repeats=int(spec["min_repeats"]),
                    max_repeats=int(spec["max_repeats"]),
                    budget_s=float(spec["budget_s"]),
                )
                timing.warmup = 1
            result["timing"] = timing.to_dict()
    peak = peak_rss_bytes()
    result.update(
        rss_before_bytes=before,
        peak_rss_bytes=peak,
        peak_increment_bytes=max(peak - before, 0),
    )
    return result


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        print(json.dumps(_child(json.loads(sys.argv[2]))))
    else:
        sys.exit("harness.py is a library; run run_speed.py (see README.md).")
