"""Start a training run from a file of tensors (``[model] init``), e.g. ImageNet encoder weights.

Example:
    >>> import tempfile, torch
    >>> from pathlib import Path
    >>> from safetensors.torch import save_file
    >>> net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 1), torch.nn.Conv2d(4, 1, 1))
    >>> path = Path(tempfile.mkdtemp()) / "first.safetensors"
    >>> save_file({"weight": torch.ones(4, 3, 1, 1), "bias": torch.zeros(4)}, str(path))
    >>> info = load_init_weights(net, path, prefix="0.")
    >>> info["tensors"], bool((net[0].weight == 1).all())
    (2, True)
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from torch import nn

from asna_metric.errors import InputError

__all__ = ["load_init_weights"]

# Metadata keys of a converted file that are worth carrying into a run's records.
_PROVENANCE_KEYS = ("source_package", "source_version", "source_sha256", "license")


def load_init_weights(
    net: nn.Module, path: str | os.PathLike[str], *, prefix: str = ""
) -> dict[str, Any]:
    """Load every tensor of a ``.safetensors`` file into a network's state.

    Strict about the file: each key, with ``prefix`` prepended, must name a
    parameter or buffer of ``net`` of the same shape (values are cast to its
    dtype). Parameters the file does not mention keep their values.

    Args:
        net: The network, freshly built.
        path: The ``.safetensors`` file.
        prefix: Prepended to the file's keys (``"encoder."`` to load an
            encoder's tensors into ``net.encoder``).

    Returns:
        What was loaded, for the run's records: ``path`` (absolute),
        ``sha256``, ``prefix``, ``tensors`` (count), ``values`` (number of
        loaded values), ``covered`` (the fraction of the values under
        ``prefix`` that came from the file) and the file's provenance
        metadata (``source_package``, ``source_version``, ``license``, ...)
        when present.

    Raises:
        InputError: If the file is missing, not a safetensors file, empty,
            or holds a key the network lacks or a tensor of another shape.
    """
    from asna_metric.errors import WeightsIntegrityError
    from asna_metric.weights import load_state_file, sha256_file

    file = Path(path)
    if not file.is_file():
        raise InputError(
            f"model.init file {str(file)!r} does not exist. Create it (for the EfficientNet-Lite0 "
            "encoder: python scripts/convert_efficientnet_lite0.py) or clear model.init."
        )
    try:
        tensors, metadata = load_state_file(file)
    except WeightsIntegrityError as exc:
        raise InputError(
            f"model.init file {str(file)!r} is not a readable safetensors file ({exc}). "
            "Pass a .safetensors file of tensors."
        ) from exc
    if not tensors:
        raise InputError(f"model.init file {str(file)!r} holds no tensors; expected at least one.")

    state = net.state_dict()
    missing = sorted(prefix + k for k in tensors if prefix + k not in state)
    wrong = sorted(
        f"{prefix + k}: file {tuple(t.shape)}, network {tuple(state[prefix + k].shape)}"
        for k, t in tensors.items()
        if prefix + k in state and tuple(t.shape) != tuple(state[prefix + k].shape)
    )
    if missing or wrong:
        arch = getattr(net, "arch", type(net).__name__)
        problems = []
        if missing:
            problems.append(
                f"{len(missing)} key(s) the network lacks, e.g. {missing[:4]} (the network's "
                f"keys under {prefix!r} look like {[k for k in state if k.startswith(prefix)][:3]})"
            )
        if wrong:
            problems.append(f"{len(wrong)} tensor(s) of another shape, e.g. {wrong[:4]}")
        raise InputError(
            f"model.init file {str(file)!r} does not fit the {arch!r} network with prefix "
            f"{prefix!r}: {'; '.join(problems)}. Check model.arch, model.net and "
            "model.init_prefix, or convert the weights for this architecture."
        )
    merged = dict(state)
    merged.update({prefix + k: t.to(state[prefix + k].dtype) for k, t in tensors.items()})
    net.load_state_dict(merged, strict=True)

    loaded = sum(t.numel() for t in tensors.values())
    under = sum(v.numel() for k, v in state.items() if k.startswith(prefix))
    info: dict[str, Any] = {
        "path": str(file.resolve()),
        "sha256": sha256_file(file),
        "prefix": prefix,
        "tensors": len(tensors),
        "values": loaded,
        "covered": round(loaded / under, 6) if under else 0.0,
    }
    info.update({k: metadata[k] for k in _PROVENANCE_KEYS if k in metadata})
    return info
