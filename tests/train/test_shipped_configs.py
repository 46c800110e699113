"""Every training config under ``configs/`` loads and builds its network."""

from __future__ import annotations

from pathlib import Path

import pytest

from asna_metric.nets import build_net
from asna_metric.train.config import load_config

CONFIGS = sorted((Path(__file__).resolve().parents[2] / "configs").glob("*.toml"))


def test_configs_are_found() -> None:
    assert len(CONFIGS) >= 10


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_config_loads_and_builds_its_network(path: Path) -> None:
    config = load_config(path)
    assert config.name == path.stem
    net = build_net(config.model.arch, config.model.net)
    # Training crops and validation crops must fit the network's size multiple.
    assert config.data.crop_size % net.size_multiple == 0
    assert config.data.val_crop % net.size_multiple == 0
