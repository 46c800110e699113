"""Plain helpers shared by several test modules (``import helpers``: tests/ is on pythonpath)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from asna_metric import weights as W
from asna_metric.nets import build_net

# A tiny ASNA network: a weights file of it saves and loads in milliseconds.
TINY = {
    "encoder_widths": [2, 2, 4, 4],
    "decoder_widths": [4, 4, 4, 4],
    "head_widths": [4, 4],
    "attention_width": 2,
    "residual_blocks": 1,
    "head_hidden": 4,
}


def save_tiny_weights(
    path: Path, *, seed: int, name: str, config: Mapping[str, Any] = TINY
) -> Path:
    """Save one randomly initialised ASNA network (seeded by ``seed``) to ``path``."""
    torch.manual_seed(seed)
    return W.save_ensemble(path, [build_net("asna", config)], name=name)


def direct_score(weights: Path, dist: Path, ref: Path) -> float:
    """Score of one pair with the Python API, no self-ensemble (what the CLI must print)."""
    from asna_metric.metric import ASNA

    with torch.no_grad():
        return float(ASNA(weights, self_ensemble="none")(dist, ref)[0])
