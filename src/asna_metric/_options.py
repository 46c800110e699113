"""Option values shared by the library and the command line, importable without torch."""

from __future__ import annotations

from typing import Literal

__all__ = ["SELF_ENSEMBLE_MODES", "SelfEnsembleMode"]

SelfEnsembleMode = Literal["none", "flips", "full"]
#: The test-time self-ensemble modes (see :mod:`asna_metric.ensemble`).
SELF_ENSEMBLE_MODES: tuple[str, ...] = ("none", "flips", "full")
