"""Exceptions raised at the public boundary of asna_metric.

Every exception subclasses a builtin so that callers who do not know this
package can still catch it (``except ValueError``), and every message states
what was expected, what was received and how to fix it.
"""

from __future__ import annotations

__all__ = [
    "InputError",
    "UnknownWeightsError",
    "WeightsIntegrityError",
    "WeightsNotFoundError",
]


class InputError(ValueError):
    """An argument (image, tensor, option, file) is not what the function accepts."""


class UnknownWeightsError(InputError):
    """A weights name is not in the registry and is not a path to a ``.safetensors`` file."""


class WeightsNotFoundError(FileNotFoundError):
    """Weights could not be found locally and could not (or may not) be downloaded."""


class WeightsIntegrityError(ValueError):
    """A weights file is corrupt, truncated, has the wrong sha256 or does not match its network."""
