"""Functional form of the metric: ``asna(dist, ref)`` with a cached model.

The first call with a given weights file, self-ensemble mode, device and
dtype builds an :class:`asna_metric.ASNA` and keeps it (up to
:data:`CACHE_SIZE` models); later calls reuse it and return exactly the
numbers the class returns.

Example:
    >>> import torch
    >>> from asna_metric import asna
    >>> dist, ref = torch.rand(1, 3, 64, 64), torch.rand(1, 3, 64, 64)
    >>> asna(dist, ref).shape  # doctest: +SKIP
    torch.Size([1])
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from asna_metric.ensemble import SelfEnsembleMode
from asna_metric.errors import InputError
from asna_metric.metric import ASNA
from asna_metric.weights import DEFAULT_WEIGHTS

__all__ = ["CACHE_SIZE", "asna", "asna_map", "clear_cache"]

#: Number of (weights, self-ensemble, device, dtype) models kept in memory.
CACHE_SIZE = 4


def _weights_key(weights: str | os.PathLike[str]) -> tuple[str, int, int]:
    """Key of a weights argument: a registry name, or a file with its size and mtime.

    A file that is overwritten in place gets a new key, so a stale model is
    never reused.
    """
    if not isinstance(weights, (str, os.PathLike)):
        raise InputError(
            f"weights must be a registry name or a path to a .safetensors file; got "
            f"{type(weights).__name__}."
        )
    path = Path(weights).expanduser()
    if isinstance(weights, os.PathLike) or path.suffix == ".safetensors":
        try:
            stat = path.resolve().stat()
        except OSError:
            return str(path), -1, -1  # ASNA() raises the informative error
        return str(path.resolve()), stat.st_size, stat.st_mtime_ns
    return str(weights), -1, -1


@functools.lru_cache(maxsize=CACHE_SIZE)
def _cached_metric(
    weights_key: tuple[str, int, int], self_ensemble: str, device: str, dtype: torch.dtype
) -> ASNA:
    metric = ASNA(weights_key[0], self_ensemble=self_ensemble)  # type: ignore[arg-type]
    return metric.to(device=device, dtype=dtype)


def _get_metric(
    dist: Any,
    weights: str | os.PathLike[str],
    self_ensemble: SelfEnsembleMode,
    device: str | torch.device | None,
    dtype: torch.dtype,
) -> ASNA:
    if device is None:
        device = dist.device if isinstance(dist, Tensor) else torch.device("cpu")
    return _cached_metric(_weights_key(weights), self_ensemble, str(torch.device(device)), dtype)


def clear_cache() -> None:
    """Drop the models kept by :func:`asna` and :func:`asna_map`."""
    _cached_metric.cache_clear()


def asna(
    dist: Any,
    ref: Any,
    *,
    weights: str | os.PathLike[str] = DEFAULT_WEIGHTS,
    self_ensemble: SelfEnsembleMode = "none",
    device: str | torch.device | None = None,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """ASNA quality of ``dist`` against ``ref`` (higher is better, in ``[0, 1]``).

    Same numbers as ``ASNA(weights, self_ensemble=...)(dist, ref)``.

    Args:
        dist: Distorted images: a tensor ``(N, 3, H, W)`` or ``(3, H, W)`` in
            ``[0, 1]``, a PIL image, a numpy array, a path, or a list of these.
        ref: Reference images, the same shape.
        weights: A registry name or a path to a ``.safetensors`` file.
        self_ensemble: ``"none"`` (default), ``"flips"`` or ``"full"``.
        device: Device to run on; ``None`` uses ``dist``'s device for a
            tensor, else the CPU.
        dtype: Floating-point type of the networks (float32 by default;
            float16/bfloat16 on a GPU).

    Returns:
        Scores ``(N,)``, float32.

    Raises:
        InputError: Invalid inputs or options.
        UnknownWeightsError: ``weights`` is neither a registry name nor a path.
        WeightsNotFoundError: The weights are not available.
    """
    return _get_metric(dist, weights, self_ensemble, device, dtype)(dist, ref)


def asna_map(
    dist: Any,
    ref: Any,
    *,
    weights: str | os.PathLike[str] = DEFAULT_WEIGHTS,
    self_ensemble: SelfEnsembleMode = "none",
    device: str | torch.device | None = None,
    dtype: torch.dtype = torch.float32,
    return_weights: bool = False,
) -> Tensor | tuple[Tensor, Tensor]:
    """ASNA quality map at input resolution (see :meth:`asna_metric.ASNA.map`).

    Args:
        dist: Distorted images (as for :func:`asna`).
        ref: Reference images.
        weights: A registry name or a path to a ``.safetensors`` file.
        self_ensemble: ``"none"`` (default), ``"flips"`` or ``"full"``.
        device: Device to run on (as for :func:`asna`).
        dtype: Floating-point type of the networks.
        return_weights: Also return the pooling weights.

    Returns:
        The map ``(N, 1, H, W)``, or ``(map, weights)``; the weighted mean
        of the map is :func:`asna`'s score.

    Raises:
        InputError: Invalid inputs or options.
        UnknownWeightsError: ``weights`` is neither a registry name nor a path.
        WeightsNotFoundError: The weights are not available.
    """
    metric = _get_metric(dist, weights, self_ensemble, device, dtype)
    return metric.map(dist, ref, return_weights=return_weights)
