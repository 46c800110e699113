"""Two-process CPU training with torchrun (gloo): both ranks train, rank 0 writes."""

from __future__ import annotations

import math
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

TOML = """
name = "tiny-ddp"
seed = 3
epochs = 2

[model]
arch = "asna"
net = {{ stem_channels = 3, encoder_widths = [4, 4, 4, 4], decoder_widths = [4, 4, 4, 4], \
head_widths = [4, 4], attention_width = 4, residual_blocks = 1, head_hidden = 4 }}

[data]
labels = "{labels}"
dataset = "KADID-10k"
val_fraction = 0.25
crop_size = 32
samples_per_epoch = 64
val_crop = 32

[runtime]
progress = false
threads = 1
"""


def _make_dataset(folder: Path, refs: int = 4, size: int = 48) -> Path:
    from PIL import Image

    g = torch.Generator().manual_seed(0)
    (folder / "images").mkdir(parents=True)
    rows = ["dis_img_path,dis_type,ref_img_path,score"]
    for r in range(refs):
        ref = torch.rand(3, size, size, generator=g)
        ref_name = f"images/R{r:02d}.png"
        images = {ref_name: ref}
        for level in range(1, 6):
            name = f"images/R{r:02d}_01_{level}.png"
            images[name] = (ref + 0.05 * level * torch.randn(ref.shape, generator=g)).clamp(0, 1)
            rows.append(f"{name},noise,{ref_name},{5.0 - 0.8 * (level - 1)}")
        for name, x in images.items():
            array = (x * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
            Image.fromarray(array).save(folder / name)
    (folder / "labels.csv").write_text("\n".join(rows) + "\n")
    return folder / "labels.csv"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow
def test_two_process_gloo_training(tmp_path: Path) -> None:
    from asna_metric.train.trainer import load_checkpoint
    from asna_metric.weights import load_ensemble

    labels = _make_dataset(tmp_path / "data")
    config = tmp_path / "tiny.toml"
    config.write_text(TOML.format(labels=labels.as_posix()))
    run = tmp_path / "run"
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env.update(OMP_NUM_THREADS="1", GLOO_SOCKET_IFNAME="lo")
    command = [
        sys.executable, "-m", "torch.distributed.run",
        "--nproc_per_node", "2", "--master_addr", "127.0.0.1", "--master_port", str(_free_port()),
        "-m", "asna_metric.cli", "train", "--config", str(config), "--out", str(run),
    ]  # fmt: skip
    done = subprocess.run(
        command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-4000:]
    assert "rank 0/2" in output and "rank 1/2" in output  # both processes trained

    checkpoint = load_checkpoint(run / "last.pt")
    assert checkpoint["epoch"] == 2
    history = checkpoint["history"]
    assert all(h["world_size"] == 2 for h in history)
    # 64 samples per epoch split over 2 ranks: 32 each, 2 steps of 16 per rank.
    assert [h["steps"] for h in history] == [2, 2]
    assert all(math.isfinite(h["train_loss"]) and math.isfinite(h["val_srcc"]) for h in history)
    state = checkpoint["model"]
    assert all(torch.isfinite(t).all() for t in state.values() if t.is_floating_point())
    members, _ = load_ensemble(run / "best.safetensors")
    ref = torch.rand(1, 3, 32, 32)
    assert torch.isfinite(members[0](ref, ref)).all()
    # Only rank 0 writes: one log, one metrics line per epoch.
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 2
    assert sorted(p.name for p in run.iterdir()) == [
        "best.pt",
        "best.safetensors",
        "config.json",
        "last.pt",
        "metrics.jsonl",
        "train.log",
    ]
