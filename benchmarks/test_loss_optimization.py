"""Is ASNA a valid optimisation loss? Pixel optimisation and small restoration networks.

Run: ``pytest benchmarks/test_loss_optimization.py -m benchmark -s -p no:cacheprovider``
(``loss_optimization_<weights name>.json`` and the picture grids
``loss_pixels_<weights name>.png`` and ``loss_cnn_<task>_<weights name>.png``
go to ``$ASNA_BENCH_OUT``, else a temporary folder). Method and measured
tables: ``docs/loss_validity.md``.

Follows the protocol of Ding, Ma, Wang and Simoncelli (IJCV 2021,
"Comparison of full-reference image quality models for optimization of
image processing systems"), scaled down to a CPU:

* Photographs: centre ``CROP`` x ``CROP`` crops (default 256) of
  ``ASNA_LOSS_PHOTOS`` photographs (default 4) of the ``test`` split of the
  committed reference manifest (``refs-v1``), read from
  ``$ASNA_SHARED_DATA/refs``, taken round-robin over the source folders
  (never ``refs/kodak*``).
* (a) Pixel optimisation: from the reference plus Gaussian noise (sigma
  0.02, 0.05, 0.1, fixed seed), a Gaussian-blurred reference (sigma 1.5,
  reflected borders) and a JPEG quality-10 reference (Pillow, 4:2:0), the
  pixels are an unconstrained tensor initialised at the start and moved by
  Adam (lr 1e-3, 200 steps) on ``ASNALoss`` (which clamps its inputs into
  [0, 1] and adds its inward out-of-range penalty); the reported result is
  that tensor clamped into [0, 1].
* (b) Restoration networks: a residual CNN (``output = input + f(input)``,
  ``f`` = 4 conv 3x3 layers, 32 channels, ReLU, last layer zero-initialised
  so training starts from the identity) is trained for 500 Adam steps
  (lr 1e-3) per task and loss on random ``TRAIN_CROP`` px crops (default
  192, batch 2) of the degraded versions of the training photographs
  (``photos[0::2]``) and evaluated, output clamped into [0, 1], on the full
  crops of the held-out photographs (``photos[1::2]``). Tasks: deblur
  (Gaussian sigma 1.5), denoise (sigma 0.05, fresh noise per step), 4x
  super-resolution (input = bicubic 4x upscaling of the antialiased bicubic
  4x downscale). Losses: ``ASNALoss`` alone, L1, and 1 - MS-SSIM (luma;
  MS-SSIM needs sides of at least 161 px, hence the 192 px crops, which
  every loss uses so that all see the same crops and noise for a task).

Every result is reported with PSNR (luma and RGB), SSIM (luma), ASNA and the
mean brightness error ``mean(dist - ref) * 255`` over pixels and channels
(signed; the assertions use its absolute value).

Asserted (the issue's outcome): (a) every start ends with a higher luma PSNR,
at least 3 dB higher from sigma-0.05 noise, and no optimised image scores
above the identical pair; (b) every ASNALoss-trained network ends above its
input's luma PSNR (mean over the held-out photographs) with an absolute
mean brightness error under 2/255 on every held-out photograph. L1 and
MS-SSIM networks are reported, not asserted.

Environment (defaults in brackets):

* ``ASNA_WEIGHTS``: weights under test (registry name or ``.safetensors``) [package default].
* ``ASNA_LOSS_PHOTOS`` [4], ``ASNA_LOSS_CROP`` [256].
* ``ASNA_LOSS_STEPS_PIXEL`` [200], ``ASNA_LOSS_LR_PIXEL`` [1e-3].
* ``ASNA_LOSS_STEPS_CNN`` [500], ``ASNA_LOSS_LR_CNN`` [1e-3],
  ``ASNA_LOSS_TRAIN_CROP`` [192], ``ASNA_LOSS_BATCH`` [2].
* ``ASNA_LOSS_TASKS`` [deblur,denoise,sr4], ``ASNA_LOSS_LOSSES`` [asna,l1,ms_ssim];
  ``ASNA_LOSS_PARTS`` [pixel,cnn].
* ``ASNA_LOSS_THREADS`` [1]: ``torch.set_num_threads``.
"""

from __future__ import annotations

import io
import math
import os
import re
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from asna_metric import ASNA
from asna_metric._provenance import describe_weights
from asna_metric.data.baselines import ms_ssim, psnr, ssim
from asna_metric.data.splits import reference_split
from asna_metric.inputs import read_image
from asna_metric.metric import ASNALoss

pytestmark = pytest.mark.benchmark

NOISE_SIGMAS = (0.02, 0.05, 0.1)
BLUR_SIGMA = 1.5
JPEG_QUALITY = 10
SR_FACTOR = 4
DENOISE_SIGMA = 0.05
MIN_GAIN_NOISE_005_DB = 3.0
MAX_ABS_BRIGHTNESS_ERROR = 2.0  # in 0..255 units
SEED = 2021


def _env_int(name: str, default: int) -> int:
    return int(os.environ.get(name) or default)


def _env_float(name: str, default: float) -> float:
    return float(os.environ.get(name) or default)


def _env_list(name: str, default: Sequence[str]) -> list[str]:
    value = os.environ.get(name)
    return [v.strip() for v in value.split(",") if v.strip()] if value else list(default)


# ---------------------------------------------------------------- data


def pick_photos(n: int) -> list[str]:
    """``n`` test-split photographs, round-robin over their source folders (sorted)."""
    test = [p for p in reference_split()["test"] if not p.startswith("kodak")]
    by_source: dict[str, list[str]] = {}
    for path in test:
        by_source.setdefault(path.split("/")[0], []).append(path)
    queues = [by_source[k] for k in sorted(by_source)]
    picked: list[str] = []
    while len(picked) < n and any(queues):
        for queue in queues:
            if queue and len(picked) < n:
                picked.append(queue.pop(0))
    if len(picked) < n:
        pytest.fail(f"asked for {n} test photographs, the split holds {len(picked)}")
    return picked


def centre_crop(image: Tensor, side: int) -> Tensor:
    h, w = image.shape[-2:]
    if min(h, w) < side:
        pytest.fail(f"photograph of {h}x{w} is smaller than the {side} px crop")
    top, left = (h - side) // 2, (w - side) // 2
    return image[..., top : top + side, left : left + side]


def gaussian_blur(x: Tensor, sigma: float) -> Tensor:
    """Separable Gaussian blur, radius ``ceil(3 sigma)``, reflected borders."""
    radius = math.ceil(3.0 * sigma)
    taps = torch.arange(-radius, radius + 1, dtype=torch.float64)
    kernel = torch.exp(-0.5 * (taps / sigma) ** 2)
    kernel = (kernel / kernel.sum()).to(x.dtype)
    c = x.shape[1]
    x = F.pad(x, (radius, radius, radius, radius), mode="reflect")
    x = F.conv2d(x, kernel.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(x, kernel.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def jpeg(x: Tensor, quality: int) -> Tensor:
    from PIL import Image

    out = []
    for image in x:
        pixels = image.clamp(0, 1).mul(255).round().byte().permute(1, 2, 0).numpy()
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, format="JPEG", quality=quality, subsampling=2)
        buffer.seek(0)
        with Image.open(buffer) as decoded:
            rgb = torch.frombuffer(bytearray(decoded.convert("RGB").tobytes()), dtype=torch.uint8)
        out.append(rgb.view(*image.shape[1:], 3).permute(2, 0, 1).float() / 255.0)
    return torch.stack(out)


def bicubic_sr_input(x: Tensor, factor: int) -> Tensor:
    small = F.interpolate(x, scale_factor=1 / factor, mode="bicubic", antialias=True)
    up = F.interpolate(small, size=x.shape[-2:], mode="bicubic", align_corners=False)
    return up.clamp(0.0, 1.0)


def noisy(x: Tensor, sigma: float, generator: torch.Generator) -> Tensor:
    return (x + sigma * torch.randn(x.shape, generator=generator)).clamp(0.0, 1.0)


# ---------------------------------------------------------------- measures


def measure(dist: Tensor, ref: Tensor, metric: ASNA) -> list[dict[str, float]]:
    """Per-image PSNR (luma, RGB), SSIM (luma), ASNA and mean brightness error (0..255)."""
    dist = dist.detach().clamp(0.0, 1.0)
    with torch.no_grad():
        scores = metric(dist, ref)
    brightness = (dist - ref).flatten(1).mean(dim=1) * 255.0
    rows = []
    for i in range(dist.shape[0]):
        rows.append(
            {
                "psnr_y": float(psnr(dist[i : i + 1], ref[i : i + 1])),
                "psnr_rgb": float(psnr(dist[i : i + 1], ref[i : i + 1], channels="rgb")),
                "ssim_y": float(ssim(dist[i : i + 1], ref[i : i + 1])),
                "asna": float(scores[i]),
                "brightness_error": float(brightness[i]),
                "abs_brightness_error": abs(float(brightness[i])),
            }
        )
    return rows


def _fmt(row: dict[str, float]) -> str:
    return (
        f"{row['psnr_y']:6.2f} {row['psnr_rgb']:6.2f} {row['ssim_y']:6.4f} "
        f"{row['asna']:7.4f} {row['brightness_error']:+6.2f}"
    )


HEAD = "psnrY  psnrRGB ssimY    asna   mbe"


# ---------------------------------------------------------------- pictures


def save_grid(
    path: Path, rows: Sequence[Sequence[tuple[Tensor, str]]], *, region: int = 128
) -> None:
    """Save a grid of images (centre ``region`` px of each, at native size) with titles."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from PIL import Image

    n_rows, n_cols = len(rows), max(len(r) for r in rows)
    panel = region / 100.0  # inches at dpi 100: one screen pixel per image pixel
    fig = Figure(figsize=(n_cols * (panel + 0.1), n_rows * (panel + 0.45)), dpi=100)
    canvas = FigureCanvasAgg(fig)
    for r, row in enumerate(rows):
        for c, (image, title) in enumerate(row):
            ax = fig.add_subplot(n_rows, n_cols, r * n_cols + c + 1)
            crop = centre_crop(image.detach().clamp(0, 1), min(region, *image.shape[-2:]))
            ax.imshow(crop.permute(1, 2, 0).numpy(), interpolation="nearest")
            ax.set_title(title, fontsize=6)
            ax.set_axis_off()
    fig.subplots_adjust(left=0.01, right=0.99, bottom=0.01, top=0.95, wspace=0.04, hspace=0.3)
    canvas.draw()
    # a 256-colour palette keeps grids of noisy images small enough for docs/
    picture = Image.fromarray(np.asarray(canvas.buffer_rgba())[..., :3].copy())
    path.parent.mkdir(parents=True, exist_ok=True)
    picture.quantize(256, dither=Image.Dither.NONE).save(path, optimize=True)
    print(f"wrote {path}")


def _title(label: str, row: dict[str, float]) -> str:
    return f"{label}\nPSNR {row['psnr_y']:.2f} ASNA {row['asna']:.3f}"


# ---------------------------------------------------------------- (a) pixels


def optimise_pixels(
    loss_fn: ASNALoss, start: Tensor, ref: Tensor, *, steps: int, lr: float
) -> tuple[Tensor, list[float]]:
    """Adam on an unconstrained pixel tensor; the loss clamps it and penalises the excess."""
    x = start.clone().requires_grad_(True)
    opt = torch.optim.Adam([x], lr=lr)
    trace = []
    for _ in range(steps):
        loss = loss_fn(x, ref)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():  # stay inside the loss's accepted range [-0.5, 1.5]
            x.clamp_(-0.5, 1.5)
        trace.append(loss.item() / start.shape[0])
    return x.detach().clamp(0.0, 1.0), trace


def pixel_starts(refs: Tensor) -> dict[str, Tensor]:
    g = torch.Generator().manual_seed(SEED)
    starts = {f"noise_{s:g}": noisy(refs, s, g) for s in NOISE_SIGMAS}
    starts[f"blur_{BLUR_SIGMA:g}"] = gaussian_blur(refs, BLUR_SIGMA).clamp(0.0, 1.0)
    starts[f"jpeg_q{JPEG_QUALITY}"] = jpeg(refs, JPEG_QUALITY)
    return starts


# ---------------------------------------------------------------- (b) networks


class ResidualCNN(nn.Module):
    """``x + f(x)``, ``f`` = ``depth`` conv 3x3 layers with ReLU, the last zero-initialised."""

    def __init__(self, width: int = 32, depth: int = 4) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = 3
        for _ in range(depth - 1):
            layers += [nn.Conv2d(channels, width, 3, padding=1), nn.ReLU()]
            channels = width
        last = nn.Conv2d(channels, 3, 3, padding=1)
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)
        self.body = nn.Sequential(*layers, last)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


def make_training_loss(name: str, asna_loss: ASNALoss) -> Callable[[Tensor, Tensor], Tensor]:
    if name == "asna":
        # the network's output may overshoot [0, 1] a little: ASNALoss clamps and penalises it
        return lambda out, ref: asna_loss(out.clamp(-0.5, 1.5), ref) / out.shape[0]
    if name == "l1":
        return lambda out, ref: (out - ref).abs().mean()
    if name == "ms_ssim":
        return lambda out, ref: 1.0 - ms_ssim(out.clamp(0.0, 1.0), ref).mean()
    raise ValueError(f"unknown loss {name!r}: expected asna, l1 or ms_ssim")


def degrade(task: str, ref: Tensor, generator: torch.Generator) -> Tensor:
    if task == "deblur":
        return gaussian_blur(ref, BLUR_SIGMA).clamp(0.0, 1.0)
    if task == "denoise":
        return noisy(ref, DENOISE_SIGMA, generator)
    if task == "sr4":
        return bicubic_sr_input(ref, SR_FACTOR)
    raise ValueError(f"unknown task {task!r}: expected deblur, denoise or sr4")


def train_network(
    task: str,
    loss_name: str,
    asna_loss: ASNALoss,
    train_refs: Tensor,
    *,
    steps: int,
    lr: float,
    crop: int,
    batch: int,
) -> tuple[ResidualCNN, list[float]]:
    """Train one residual CNN; crops, noise and initialisation depend only on the task seed."""
    task_seed = SEED + {"deblur": 1, "denoise": 2, "sr4": 3}[task]
    torch.manual_seed(task_seed)
    net = ResidualCNN()
    loss_fn = make_training_loss(loss_name, asna_loss)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    crops = torch.Generator().manual_seed(task_seed)
    noise = torch.Generator().manual_seed(task_seed + 100)
    fixed_inputs = None if task == "denoise" else degrade(task, train_refs, noise)
    side = train_refs.shape[-1]
    trace = []
    for _ in range(steps):
        idx = torch.randint(0, train_refs.shape[0], (batch,), generator=crops)
        tops = torch.randint(0, side - crop + 1, (batch,), generator=crops)
        lefts = torch.randint(0, side - crop + 1, (batch,), generator=crops)
        refs = torch.stack(
            [
                train_refs[i, :, t : t + crop, s : s + crop]
                for i, t, s in zip(idx.tolist(), tops.tolist(), lefts.tolist(), strict=True)
            ]
        )
        if fixed_inputs is None:
            inputs = degrade(task, refs, noise)
        else:
            inputs = torch.stack(
                [
                    fixed_inputs[i, :, t : t + crop, s : s + crop]
                    for i, t, s in zip(idx.tolist(), tops.tolist(), lefts.tolist(), strict=True)
                ]
            )
        loss = loss_fn(net(inputs), refs)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        trace.append(loss.item())
    return net, trace


# ---------------------------------------------------------------- the benchmark


def test_asna_is_a_valid_optimisation_loss(
    shared_data_root: Path, bench_out: Path, write_json: Callable[[str, dict[str, Any]], Path]
) -> None:
    torch.set_num_threads(_env_int("ASNA_LOSS_THREADS", 1))
    weights = os.environ.get("ASNA_WEIGHTS") or None
    n_photos = _env_int("ASNA_LOSS_PHOTOS", 4)
    side = _env_int("ASNA_LOSS_CROP", 256)
    steps_pixel = _env_int("ASNA_LOSS_STEPS_PIXEL", 200)
    lr_pixel = _env_float("ASNA_LOSS_LR_PIXEL", 1e-3)
    steps_cnn = _env_int("ASNA_LOSS_STEPS_CNN", 500)
    lr_cnn = _env_float("ASNA_LOSS_LR_CNN", 1e-3)
    train_crop = _env_int("ASNA_LOSS_TRAIN_CROP", 192)
    batch = _env_int("ASNA_LOSS_BATCH", 2)
    tasks = _env_list("ASNA_LOSS_TASKS", ("deblur", "denoise", "sr4"))
    losses = _env_list("ASNA_LOSS_LOSSES", ("asna", "l1", "ms_ssim"))
    parts = _env_list("ASNA_LOSS_PARTS", ("pixel", "cnn"))
    if n_photos < 2 and "cnn" in parts:
        pytest.fail("ASNA_LOSS_PHOTOS must be at least 2: half train the networks, half evaluate")

    metric = ASNA(weights) if weights else ASNA()
    asna_loss = ASNALoss.from_metric(metric, reduction="sum")
    photos = pick_photos(n_photos)
    refs_root = shared_data_root / "refs"
    refs = torch.stack([centre_crop(read_image(refs_root / p), side) for p in photos])
    with torch.no_grad():
        identical = metric(refs, refs)
    tag = re.sub(r"[^A-Za-z0-9_.-]+", "_", metric.weights_name)  # names the output files
    print(f"\n{metric!r}\nphotos: {photos}")
    print("identical-pair ASNA: " + " ".join(f"{float(s):.4f}" for s in identical))
    config = {
        "photos": photos,
        "crop": side,
        "steps_pixel": steps_pixel,
        "lr_pixel": lr_pixel,
        "steps_cnn": steps_cnn,
        "lr_cnn": lr_cnn,
        "train_crop": train_crop,
        "batch": batch,
        "tasks": tasks,
        "losses": losses,
        "parts": parts,
        "threads": torch.get_num_threads(),
        "seed": SEED,
        "pixel_parametrisation": "unconstrained tensor, clamped into [0, 1] by ASNALoss "
        "(inward range penalty, range_weight 1); result reported clamped",
    }
    failures: list[str] = []
    pixel_results: dict[str, list[dict[str, Any]]] = {}
    cnn_results: dict[str, dict[str, Any]] = {}

    if "pixel" in parts:
        print(f"\n(a) pixel optimisation, Adam lr {lr_pixel:g}, {steps_pixel} steps")
        print(f"{'start':>10} {'photo':>26}  start: {HEAD}  |  end: {HEAD}  above_identical")
        grid_rows = []
        for name, start in pixel_starts(refs).items():
            began = time.perf_counter()
            result, trace = optimise_pixels(asna_loss, start, refs, steps=steps_pixel, lr=lr_pixel)
            seconds = time.perf_counter() - began
            before, after = measure(start, refs, metric), measure(result, refs, metric)
            entries = []
            for i, photo in enumerate(photos):
                above = after[i]["asna"] > float(identical[i]) + 1e-6
                entry = {
                    "photo": photo,
                    "start": before[i],
                    "end": after[i],
                    "psnr_y_gain": after[i]["psnr_y"] - before[i]["psnr_y"],
                    "identical_asna": float(identical[i]),
                    "above_identical": above,
                }
                entries.append(entry)
                print(
                    f"{name:>10} {photo:>26}  start: {_fmt(before[i])}  |  end: "
                    f"{_fmt(after[i])}  {above}"
                )
                if entry["psnr_y_gain"] <= 0:
                    failures.append(
                        f"pixel {name} {photo}: PSNR fell {before[i]['psnr_y']:.2f} -> "
                        f"{after[i]['psnr_y']:.2f} dB"
                    )
                if name == "noise_0.05" and entry["psnr_y_gain"] < MIN_GAIN_NOISE_005_DB:
                    failures.append(
                        f"pixel {name} {photo}: PSNR gain {entry['psnr_y_gain']:.2f} dB < "
                        f"{MIN_GAIN_NOISE_005_DB} dB"
                    )
                if above:
                    failures.append(
                        f"pixel {name} {photo}: optimised image scores {after[i]['asna']:.4f}, "
                        f"above the identical pair's {float(identical[i]):.4f}"
                    )
            pixel_results[name] = entries
            print(f"{name:>10} loss {trace[0]:.4f} -> {trace[-1]:.4f} ({seconds:.0f} s)")
            grid_rows.append(
                [
                    (start[0], _title(f"start {name}", before[0])),
                    (result[0], _title("optimised", after[0])),
                    (refs[0], _title("reference", measure(refs[:1], refs[:1], metric)[0])),
                ]
            )
        save_grid(bench_out / f"loss_pixels_{tag}.png", grid_rows)

    if "cnn" in parts:
        train_refs, eval_refs = refs[0::2], refs[1::2]
        eval_photos = photos[1::2]
        print(
            f"\n(b) residual CNN, {steps_cnn} steps, Adam lr {lr_cnn:g}, batch {batch} x "
            f"{train_crop} px crops of {photos[0::2]}; evaluated on {eval_photos}"
        )
        print(f"{'task':>8} {'loss':>8} {'photo':>26}  input: {HEAD}  |  output: {HEAD}")
        for task in tasks:
            eval_inputs = degrade(task, eval_refs, torch.Generator().manual_seed(SEED + 7))
            inputs_measured = measure(eval_inputs, eval_refs, metric)
            grid = [[(eval_inputs[0], _title(f"{task} input", inputs_measured[0]))]]
            cnn_results[task] = {"input": inputs_measured, "networks": {}}
            for loss_name in losses:
                began = time.perf_counter()
                net, trace = train_network(
                    task,
                    loss_name,
                    asna_loss,
                    train_refs,
                    steps=steps_cnn,
                    lr=lr_cnn,
                    crop=train_crop,
                    batch=batch,
                )
                seconds = time.perf_counter() - began
                with torch.no_grad():
                    out = net(eval_inputs)
                outputs = measure(out, eval_refs, metric)
                for i, photo in enumerate(eval_photos):
                    print(
                        f"{task:>8} {loss_name:>8} {photo:>26}  input: "
                        f"{_fmt(inputs_measured[i])}  |  output: {_fmt(outputs[i])}"
                    )
                mean_in = sum(r["psnr_y"] for r in inputs_measured) / len(inputs_measured)
                mean_out = sum(r["psnr_y"] for r in outputs) / len(outputs)
                worst_mbe = max(r["abs_brightness_error"] for r in outputs)
                head = min(10, len(trace))
                print(
                    f"{task:>8} {loss_name:>8} mean PSNR-Y {mean_in:.2f} -> {mean_out:.2f} dB, "
                    f"max |mbe| {worst_mbe:.2f}/255, loss {sum(trace[:head]) / head:.4f} -> "
                    f"{sum(trace[-head:]) / head:.4f} ({seconds:.0f} s)"
                )
                cnn_results[task]["networks"][loss_name] = {
                    "output": outputs,
                    "mean_psnr_y_input": mean_in,
                    "mean_psnr_y_output": mean_out,
                    "max_abs_brightness_error": worst_mbe,
                    "loss_first": trace[0],
                    "loss_last": trace[-1],
                    "seconds": seconds,
                }
                grid[0].append((out[0], _title(f"{loss_name} net", outputs[0])))
                if loss_name == "asna":
                    if mean_out <= mean_in:
                        failures.append(
                            f"cnn {task} asna: mean PSNR-Y {mean_out:.2f} dB not above the "
                            f"input's {mean_in:.2f} dB"
                        )
                    if worst_mbe >= MAX_ABS_BRIGHTNESS_ERROR:
                        failures.append(
                            f"cnn {task} asna: mean brightness error {worst_mbe:.2f}/255 >= "
                            f"{MAX_ABS_BRIGHTNESS_ERROR}/255"
                        )
            grid[0].append((eval_refs[0], "reference"))
            save_grid(bench_out / f"loss_cnn_{task}_{tag}.png", grid)

    write_json(
        f"loss_optimization_{tag}.json",
        {
            "weights": describe_weights(weights),
            "metric": repr(metric),
            "config": config,
            "identical_asna": [float(s) for s in identical],
            "pixel": pixel_results,
            "cnn": cnn_results,
            "failures": failures,
        },
    )
    for line in failures:
        print("FAILED:", line)
    assert not failures, f"{len(failures)} conditions of a valid loss failed: {failures}"
