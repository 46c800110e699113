"""Device selection shared by the command line, evaluation and training."""

from __future__ import annotations

from typing import TYPE_CHECKING

from asna_metric.errors import InputError

if TYPE_CHECKING:
    import torch

__all__ = ["resolve_device"]


def resolve_device(name: str | None = "auto", *, option: str = "--device") -> torch.device:
    """Turn a device name into a ``torch.device``, checking that it exists here.

    Args:
        name: ``"auto"`` or ``None`` (CUDA when available, else CPU), or any
            ``torch.device`` string: ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ...
        option: How the caller's users spell the setting, for error messages
            (``--device``, ``runtime.device``).

    Returns:
        The device.

    Raises:
        InputError: The name is not a device, or CUDA was asked for and is
            not available.
    """
    import torch

    if name is None or name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError) as exc:
        raise InputError(
            f"{option} must be auto or a torch device such as cpu, cuda or cuda:1; got {name!r}."
        ) from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InputError(
            f"{option} {name} was requested but torch sees no CUDA device here. Use cpu, or "
            "install a CUDA build of torch."
        )
    return device
