"""asna_metric: a learned full-reference perceptual image-quality metric.

The public names are imported lazily, so ``import asna_metric`` stays cheap
and subpackages (``asna_metric.train``, ``asna_metric.data``) load on their own.

Example:
    >>> from asna_metric import ASNA
    >>> metric = ASNA()  # doctest: +SKIP
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from asna_metric._version import __version__

if TYPE_CHECKING:
    from asna_metric.functional import asna
    from asna_metric.metric import ASNA, ASNALoss
    from asna_metric.weights import list_weights

__all__ = ["ASNA", "ASNALoss", "__version__", "asna", "list_weights"]

_LAZY = {
    "ASNA": "asna_metric.metric",
    "ASNALoss": "asna_metric.metric",
    "asna": "asna_metric.functional",
    "list_weights": "asna_metric.weights",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'asna_metric' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
