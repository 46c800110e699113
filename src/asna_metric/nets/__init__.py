"""Network architectures of the ASNA paper (no I/O, no input validation).

Every network takes ``(dist, ref)``, each ``(N, 3, H, W)`` in ``[0, 1]`` with
``H`` and ``W`` multiples of ``net.size_multiple``, and offers
``net.forward_maps(dist, ref) -> (quality, weight)`` (each ``(N, 1, H / 8,
W / 8)``) and ``net(dist, ref) -> (N,)``, the weighted mean of the quality
map. ``build_net(net.arch, net.config)`` rebuilds a network of the same
shape.

Example:
    >>> net = build_net("asna", {"encoder_widths": [4, 4, 8, 8]})
    >>> rebuilt = build_net(net.arch, net.config)
    >>> rebuilt.config == net.config
    True
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

from asna_metric.errors import InputError
from asna_metric.nets._siamese import PairQualityNet
from asna_metric.nets.asna import ASNANet
from asna_metric.nets.asna_id import ASNAIdentityNet
from asna_metric.nets.efficientnet import EfficientLiteSiameseNet
from asna_metric.nets.siamese import SiameseDiffConvLSTMNet, SiameseDiffNet

__all__ = [
    "ARCHITECTURES",
    "ASNAIdentityNet",
    "ASNANet",
    "EfficientLiteSiameseNet",
    "PairQualityNet",
    "SiameseDiffConvLSTMNet",
    "SiameseDiffNet",
    "build_net",
]

ARCHITECTURES: dict[str, type[PairQualityNet]] = {
    "asna": ASNANet,
    "asna_id": ASNAIdentityNet,
    "efficientnet_lite0": EfficientLiteSiameseNet,
    "siamese_diff": SiameseDiffNet,
    "siamese_diff_convlstm": SiameseDiffConvLSTMNet,
}


def build_net(arch: str, config: Mapping[str, Any] | None = None) -> PairQualityNet:
    """Build a network from its registry name and configuration.

    Args:
        arch: A key of :data:`ARCHITECTURES`.
        config: Keyword arguments of the architecture's constructor (as in
            ``net.config``); ``None`` or missing keys take the paper's values.

    Returns:
        A new, randomly initialised network in training mode.

    Raises:
        InputError: ``arch`` is unknown or ``config`` holds a key the
            architecture does not take.
    """
    if arch not in ARCHITECTURES:
        raise InputError(
            f"unknown architecture {arch!r}; expected one of {sorted(ARCHITECTURES)}. "
            "Check the 'arch' entry of the weights file's metadata."
        )
    cls = ARCHITECTURES[arch]
    config = dict(config or {})
    accepted = {
        name
        for name, p in inspect.signature(cls.__init__).parameters.items()
        if p.kind is p.KEYWORD_ONLY
    }
    if cls is SiameseDiffConvLSTMNet:
        accepted = {
            name
            for name, p in inspect.signature(SiameseDiffNet.__init__).parameters.items()
            if p.kind is p.KEYWORD_ONLY
        }
    unknown = sorted(set(config) - accepted)
    if unknown:
        raise InputError(
            f"architecture {arch!r} does not take the configuration keys {unknown}; "
            f"it accepts {sorted(accepted)}. The weights file was probably written by a "
            "newer asna_metric: upgrade the package."
        )
    return cls(**config)
