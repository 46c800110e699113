"""Provenance of results: which code, which weights, which machine.

One home for what every output that cites results records: the git state of
the source tree (:func:`git_state`), the identity of a weights file
(:func:`describe_weights`, the same schema as :attr:`asna_metric.ASNA.provenance`)
and the versions and device of a run (:func:`run_metadata`). Nothing here
records an absolute path of the machine it ran on.
"""

from __future__ import annotations

import datetime
import functools
import hashlib
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

__all__ = [
    "describe_weights",
    "device_description",
    "git_state",
    "run_metadata",
    "sha256_file",
]

_PACKAGE_DIR = Path(__file__).resolve().parent


def sha256_file(path: str | os.PathLike[str], *, chunk_size: int = 1 << 20) -> str:
    """Return the hex sha256 of a file, read in chunks (constant memory).

    Args:
        path: The file.
        chunk_size: Bytes read at a time.

    Returns:
        64 lowercase hex characters.
    """
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


@functools.lru_cache(maxsize=8)
def _git_state_cached(folder: str) -> tuple[str | None, bool | None]:
    def git(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["git", *args], cwd=folder, capture_output=True, text=True, timeout=10, check=False
        )

    try:
        head = git("rev-parse", "HEAD")
        if head.returncode != 0 or len(head.stdout.strip()) != 40:
            return None, None
        status = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return None, None
    dirty = bool(status.stdout.strip()) if status.returncode == 0 else None
    return head.stdout.strip(), dirty


def git_state(folder: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """The commit of the git tree holding ``folder`` and whether it has uncommitted changes.

    Args:
        folder: Any folder inside the tree (default: the package's own, which
            is inside the repository for an editable install and nowhere for
            a wheel).

    Returns:
        ``{"commit": 40-hex or None, "dirty": bool or None}``; ``None`` where
        there is no git tree or no git (an installed wheel).
    """
    commit, dirty = _git_state_cached(str(Path(folder or _PACKAGE_DIR).resolve()))
    return {"commit": commit, "dirty": dirty}


def describe_weights(weights: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """Identify a weights file for citing results, without loading its tensors.

    Args:
        weights: Registry name, ``.safetensors`` path, or ``None`` (the default).

    Returns:
        ``{"name", "sha256", "revision", "repo_id", "source"}``: ``source`` is
        ``"embedded"`` (ships in the package, not on the Hub yet: ``revision``
        is ``None`` and the sha256 identifies it), ``"hub"`` (pinned Hub
        revision) or ``"local"`` (a file given by path, identified by its
        sha256; the machine's path is never recorded). The same schema as
        :attr:`asna_metric.ASNA.provenance`.

    Raises:
        UnknownWeightsError: An unknown registry name.
        WeightsNotFoundError: A path that does not exist.
    """
    from asna_metric import weights as w

    name = str(weights) if weights is not None else w.DEFAULT_WEIGHTS
    if name in w.REGISTRY:
        spec = w.REGISTRY[name]
        return {
            "name": spec.name,
            "sha256": spec.sha256,
            "revision": spec.revision,
            "repo_id": spec.repo_id,
            "source": "hub" if spec.revision is not None else "embedded",
        }
    path = w.resolve_weights(name)  # raises for unknown names and missing files
    sha256 = sha256_file(path)
    for spec in w.REGISTRY.values():
        if spec.sha256 == sha256:  # a copy of registered weights is those weights
            return describe_weights(spec.name)
    info = w.weights_info(path)
    return {
        "name": str(info.get("name") or path.stem),
        "sha256": sha256,
        "revision": None,
        "repo_id": None,
        "source": "local",
    }


def device_description(device: Any = None) -> dict[str, Any]:
    """The device a run used: type, model name and thread count.

    Args:
        device: A ``torch.device`` or its string (default: ``"cpu"``).

    Returns:
        ``{"device", "device_name", "torch_num_threads", "cpu_count"}``.
    """
    import torch

    device = torch.device(device or "cpu")
    if device.type == "cuda" and torch.cuda.is_available():
        name = torch.cuda.get_device_name(device)
    else:
        name = _cpu_model()
    return {
        "device": str(device),
        "device_name": name,
        "torch_num_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
    }


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def run_metadata(
    command: str,
    *,
    weights: dict[str, Any] | None = None,
    device: Any = None,
    folder: str | os.PathLike[str] | None = None,
) -> dict[str, Any]:
    """Versions, git state, device, date and command, for a results file.

    Args:
        command: The command line that produced the results.
        weights: :func:`describe_weights` output (or a mapping of them) when
            ASNA ran.
        device: The device the run used.
        folder: A folder of the source tree whose git state to record.

    Returns:
        A JSON-serialisable dict.
    """
    from importlib import metadata

    import torch

    from asna_metric._version import __version__

    versions: dict[str, str | None] = {}
    for distribution in ("numpy", "scipy", "pytorch-msssim", "pillow"):
        try:
            versions[distribution] = metadata.version(distribution)
        except metadata.PackageNotFoundError:
            versions[distribution] = None
    git = git_state(folder)
    return {
        "package": "asna-metric",
        "package_version": __version__,
        "torch_version": torch.__version__,
        "python_version": platform.python_version(),
        "versions": versions,
        "git_commit": git["commit"],
        "git_dirty": git["dirty"],
        **device_description(device),
        "weights": weights,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": command,
    }
