"""The affine calibration stored with a weights file: ``quality = scale * raw + offset``.

Trained networks' raw outputs are on a compressed scale; a calibration,
fitted on training pairs (``scripts/calibrate_weights.py``) and stored in
the file's metadata under :data:`METADATA_KEY` as JSON ``{"scale": a,
"offset": b, ...}`` with ``a > 0``, maps them onto the quality scale. Being
affine and increasing, it changes no rank or linear correlation; applied per
map location, it keeps the weighted mean of a quality map equal to the score.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass

from torch import Tensor

from asna_metric.errors import WeightsIntegrityError

__all__ = ["METADATA_KEY", "Calibration"]

METADATA_KEY = "calibration"
"""Key of the calibration in a weights file's metadata."""


@dataclass(frozen=True)
class Calibration:
    """An increasing affine map of raw network outputs onto the quality scale.

    Attributes:
        scale: Positive slope.
        offset: Intercept.

    Example:
        >>> Calibration.from_metadata({"calibration": '{"scale": 2.0, "offset": -0.5}'})
        Calibration(scale=2.0, offset=-0.5)
        >>> Calibration.from_metadata({}).is_identity
        True
    """

    scale: float = 1.0
    offset: float = 0.0

    @classmethod
    def from_metadata(cls, metadata: Mapping[str, str]) -> Calibration:
        """Read the calibration of a weights file (the identity when it has none).

        Args:
            metadata: The file's metadata (string values).

        Returns:
            The calibration.

        Raises:
            WeightsIntegrityError: The entry is not JSON with a finite,
                positive ``scale`` and a finite ``offset``.
        """
        raw = metadata.get(METADATA_KEY)
        if not raw:
            return cls()
        try:
            values = json.loads(raw)
            scale, offset = float(values["scale"]), float(values["offset"])
        except (ValueError, TypeError, KeyError) as exc:
            raise WeightsIntegrityError(
                f'weights metadata \'calibration\' must be JSON {{"scale": a, "offset": b}}; '
                f"got {raw!r}. Re-save the file with scripts/calibrate_weights.py."
            ) from exc
        if not (math.isfinite(scale) and math.isfinite(offset)) or scale <= 0:
            raise WeightsIntegrityError(
                f"weights calibration must be finite with a positive scale; got scale={scale}, "
                f"offset={offset}."
            )
        return cls(scale, offset)

    @property
    def is_identity(self) -> bool:
        """Whether the map leaves values unchanged."""
        return (self.scale, self.offset) == (1.0, 0.0)

    def apply(self, quality: Tensor) -> Tensor:
        """Map raw qualities (a score or a map of any shape) onto the quality scale.

        Args:
            quality: Raw network outputs.

        Returns:
            ``scale * quality + offset`` (``quality`` itself for the identity).
        """
        if self.is_identity:
            return quality
        return quality * self.scale + self.offset
