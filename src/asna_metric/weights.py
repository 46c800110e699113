"""Weights: the registry of released ensembles, resolving them, and the file format.

One ``.safetensors`` file holds a whole ensemble (see ``docs/design.md``,
"Weights files"):

* tensors ``members.{i}.{state_dict key}``, buffers included (BatchNorm
  running statistics);
* string metadata: ``asna_metric_format = "1"``, ``members`` (a JSON list of
  ``{"arch": ..., "config": {...}}``, one per network), ``name``,
  ``description``, ``asna_metric_version`` and free-form provenance
  (``train_command``, ``seed``, ``data``, ...).

Released weights are listed in :data:`REGISTRY` as :class:`WeightsSpec`
entries pinned to a full Hub commit and a sha256, and are fetched with
``huggingface_hub`` (cache, revision, offline mode) unless a copy ships
inside the package. A local ``.safetensors`` path is always accepted as the
escape hatch.
"""

from __future__ import annotations

import json
import logging
import os
import re
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from asna_metric._provenance import sha256_file
from asna_metric._version import __version__
from asna_metric.errors import (
    InputError,
    UnknownWeightsError,
    WeightsIntegrityError,
    WeightsNotFoundError,
)

__all__ = [
    "DEFAULT_WEIGHTS",
    "FORMAT_VERSION",
    "REGISTRY",
    "WeightsSpec",
    "get_spec",
    "list_weights",
    "load_ensemble",
    "load_state_file",
    "resolve_weights",
    "save_ensemble",
    "sha256_file",
    "weights_info",
]

logger = logging.getLogger(__name__)

FORMAT_VERSION = "1"
"""Value of the ``asna_metric_format`` metadata key written by :func:`save_ensemble`."""

DEFAULT_WEIGHTS = "asna-quarter-kadid-synth"
"""Name of the weights :class:`asna_metric.ASNA` loads when none are given."""

_RESERVED_METADATA = frozenset(
    {"asna_metric_format", "members", "name", "description", "asna_metric_version"}
)
_HEX40 = re.compile(r"[0-9a-f]{40}")
_HEX64 = re.compile(r"[0-9a-f]{64}")
_TRUE = {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class WeightsSpec:
    """A released weights file, pinned to an exact Hub commit and content hash.

    Attributes:
        name: Registry name, e.g. ``"asna-kadid-synth"``.
        repo_id: Hugging Face Hub model repository, ``"org/name"``.
        revision: Full 40-character commit hash of the file's Hub revision
            (never a branch name: a branch can move and change the scores),
            or ``None`` for weights that ship embedded in the package and
            have not been uploaded yet: they are then identified by their
            sha256 alone and never fetched from the Hub.
        filename: File name inside the repository (``*.safetensors``).
        sha256: Hex sha256 of the file, checked after every resolve.
        embedded: File name under ``asna_metric/_weights/`` when a copy ships
            inside the package (the default weights), else ``None``.
        description: One line on what the weights were trained on.
        license: Licence of the weights (SPDX identifier).
        input_note: The preprocessing the weights expect; results are only
            comparable under it.
    """

    name: str
    repo_id: str
    revision: str | None
    filename: str
    sha256: str
    embedded: str | None = None
    description: str = ""
    license: str = "Apache-2.0"
    input_note: str = "RGB in [0, 1], (dist, ref), no resizing; any size >= 32x32"

    def __post_init__(self) -> None:
        """Validate the pins so that a bad registry entry fails at import, not at download."""
        if not self.name or not isinstance(self.name, str):
            raise InputError(f"WeightsSpec.name must be a non-empty string; got {self.name!r}.")
        if self.repo_id.count("/") != 1:
            raise InputError(
                f"WeightsSpec {self.name!r}: repo_id must look like 'org/name'; got "
                f"{self.repo_id!r}."
            )
        if self.revision is None and self.embedded is None:
            raise InputError(
                f"WeightsSpec {self.name!r}: revision may only be None for embedded weights; "
                "upload the file (scripts/upload_weights.py) and pin the commit it prints."
            )
        if self.revision is not None and not _HEX40.fullmatch(self.revision):
            raise InputError(
                f"WeightsSpec {self.name!r}: revision must be a full 40-character lowercase "
                f"hex commit hash; got {self.revision!r}. Pin the commit that "
                "scripts/upload_weights.py printed, not a branch or tag."
            )
        if not _HEX64.fullmatch(self.sha256):
            raise InputError(
                f"WeightsSpec {self.name!r}: sha256 must be 64 lowercase hex characters; got "
                f"{self.sha256!r}."
            )
        if not self.filename.endswith(".safetensors"):
            raise InputError(
                f"WeightsSpec {self.name!r}: filename must end in .safetensors; got "
                f"{self.filename!r}."
            )
        if self.embedded is not None and not self.embedded.endswith(".safetensors"):
            raise InputError(
                f"WeightsSpec {self.name!r}: embedded must be None or a .safetensors file name; "
                f"got {self.embedded!r}."
            )


def _not_uploaded(name: str, sha256: str, description: str) -> WeightsSpec:
    """Spec of weights that ship embedded and are not on the Hub yet.

    Repository, file and embedded copy all follow the name; with
    ``revision=None`` the sha256 alone identifies the file.
    """
    filename = f"{name}.safetensors"
    return WeightsSpec(
        name=name,
        repo_id=f"asna-metric/{name}",
        revision=None,
        filename=filename,
        sha256=sha256,
        embedded=filename,
        description=description,
    )


REGISTRY: dict[str, WeightsSpec] = {
    spec.name: spec
    for spec in (
        _not_uploaded(
            "asna-quarter-kadid-synth",
            "5968c752afcdcc35833415707d5f8a215b952877baf6d2332266c8c9562e21e3",
            "One ASNA (attention) network at quarter resolution (input_unshuffle=4, two "
            "encoder levels) trained on KADID-protocol synthetic pairs (25 KADID-10k "
            "distortion types x 5 levels on 92 photographs, KADID human cell-mean labels), "
            "CPU recipe, seed 0; see docs/model_card.md",
        ),
        _not_uploaded(
            "asna-kadid-synth",
            "bd18e27a8a3036f14872a9e362d8602202eca0939bd399c570848e5d3da87496",
            "The previous default: ASNA (attention) + plain Siamese-Difference networks at "
            "full resolution, trained on the same KADID-protocol synthetic pairs with the "
            "12-epoch CPU recipe, seed 0; 5.7x the time of the default at 512x384; see "
            "docs/model_card.md",
        ),
        _not_uploaded(
            "asna-effnet-kadid-synth",
            "0f06e7b53ed31a267c91143c36ca06f8f0c1eb79b73c03afa6b43ae534259d9a",
            "Identity-anchored EfficientNet-Lite0 network (encoder initialised from ImageNet "
            "weights, Apache-2.0) + the ASNA network of asna-kadid-synth, trained on the "
            "same KADID-protocol synthetic pairs and recipe as asna-kadid-synth; see "
            "docs/model_card.md",
        ),
    )
}
"""Released weights by name.

Upload new weights with ``scripts/upload_weights.py``
prints the revision and sha256 of an upload, which are then added here as a
``WeightsSpec`` (the default, :data:`DEFAULT_WEIGHTS`, with ``embedded`` set
and its file copied to ``src/asna_metric/_weights/``). Until then, pass a
local ``.safetensors`` file wherever a weights name is accepted.
"""


def list_weights() -> list[str]:
    """Return the names of the registered weights, sorted.

    Returns:
        Registry names accepted by :func:`resolve_weights` and
        ``asna_metric.ASNA(weights=...)``.

    Example:
        >>> isinstance(list_weights(), list)
        True
    """
    return sorted(REGISTRY)


def get_spec(name: str) -> WeightsSpec:
    """Return the registry entry called ``name``.

    Args:
        name: A name from :func:`list_weights`.

    Returns:
        The pinned :class:`WeightsSpec`.

    Raises:
        UnknownWeightsError: If ``name`` is not registered; the message lists
            the valid names.
    """
    try:
        return REGISTRY[name]
    except KeyError:
        pass
    if REGISTRY:
        valid = ", ".join(repr(n) for n in list_weights())
        known = f"Valid names: {valid}."
    else:
        known = "No weights are registered in this version of asna_metric."
    raise UnknownWeightsError(
        f"unknown weights {name!r}. {known} Alternatively pass the path to a local "
        ".safetensors file written by asna_metric.weights.save_ensemble."
    )


# (resolved path, size, mtime_ns) -> sha256, so a file is hashed once per process.
_VERIFIED: dict[tuple[str, int, int], str] = {}


def _verify_sha256(path: Path, expected: str, name: str) -> None:
    real = path.resolve()
    stat = real.stat()
    key = (str(real), stat.st_size, stat.st_mtime_ns)
    actual = _VERIFIED.get(key)
    if actual is None:
        actual = sha256_file(real)
    if actual != expected:
        where = f"{path}" if real == path else f"{path} (a link to {real})"
        raise WeightsIntegrityError(
            f"weights {name!r} at {where} have sha256 {actual}, expected {expected}. The file "
            "is corrupt, truncated or was replaced. Delete it (and the file it links to) and "
            "run again to download a fresh copy."
        )
    _VERIFIED[key] = actual


def _looks_like_path(weights: str | os.PathLike[str]) -> bool:
    if isinstance(weights, os.PathLike):
        return True
    return (
        weights.endswith(".safetensors")
        or "/" in weights
        or os.sep in weights
        or weights.startswith(("~", "."))
    )


def _offline_from_env() -> bool:
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in _TRUE:
        return True
    try:
        from huggingface_hub import constants
    except ImportError:  # pragma: no cover - huggingface_hub is a dependency
        return False
    return bool(getattr(constants, "HF_HUB_OFFLINE", False))


def resolve_weights(
    weights: str | os.PathLike[str],
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    revision: str | None = None,
    local_files_only: bool | None = None,
) -> Path:
    """Return a local path to the weights file named or pointed to by ``weights``.

    * A path to an existing ``.safetensors`` file is returned as is (your
      file: no hash check).
    * A registry name resolves to the copy shipped inside the package when
      there is one, else to ``huggingface_hub.hf_hub_download`` of the pinned
      revision (using and filling the Hugging Face cache). The file's sha256
      is checked against the registry.

    Args:
        weights: A name from :func:`list_weights` or a path to a
            ``.safetensors`` file.
        cache_dir: Hugging Face cache folder; ``None`` uses the default
            (``HF_HUB_CACHE`` / ``HF_HOME``).
        revision: Hub commit to fetch instead of the pinned one. The
            registry's sha256 then no longer applies and is not checked.
        local_files_only: Only look in the cache, never the network.
            ``None`` follows the ``HF_HUB_OFFLINE`` environment variable.

    Returns:
        Path of the weights file.

    Raises:
        UnknownWeightsError: If ``weights`` is neither a registered name nor
            a path.
        WeightsNotFoundError: If a given path does not exist, or the file is
            not cached and cannot (or may not) be downloaded.
        WeightsIntegrityError: If a registry file's sha256 does not match.
        InputError: If a path exists but is not a ``.safetensors`` file.
    """
    if isinstance(weights, str) and weights in REGISTRY:
        return _resolve_registered(
            REGISTRY[weights],
            cache_dir=cache_dir,
            revision=revision,
            local_files_only=local_files_only,
        )
    if not isinstance(weights, (str, os.PathLike)):
        raise InputError(
            f"weights must be a registry name or a path to a .safetensors file; got "
            f"{type(weights).__name__}. Use one of {list_weights()} or a file path."
        )
    if not _looks_like_path(weights):
        get_spec(str(weights))  # raises UnknownWeightsError listing the valid names
    return _resolve_local(Path(weights).expanduser())


def _resolve_local(path: Path) -> Path:
    if not path.exists():
        raise WeightsNotFoundError(
            f"weights file {str(path)!r} does not exist. Check the path, or pass one of the "
            f"registered names: {list_weights() or 'none in this version'}."
        )
    if not path.is_file() or path.suffix != ".safetensors":
        raise InputError(
            f"weights path {str(path)!r} must be a .safetensors file; got "
            f"{'a directory' if path.is_dir() else repr(path.suffix or 'no suffix')}. Only "
            "safetensors files are loaded (pickle checkpoints can run code): write one with "
            "asna_metric.weights.save_ensemble."
        )
    return path


def _resolve_registered(
    spec: WeightsSpec,
    *,
    cache_dir: str | os.PathLike[str] | None,
    revision: str | None,
    local_files_only: bool | None,
) -> Path:
    pinned = revision is None or revision == spec.revision
    if spec.embedded is not None and pinned:
        path = _embedded_path(spec.embedded)
        if path is not None:
            _verify_sha256(path, spec.sha256, spec.name)
            return path
        logger.debug("embedded copy %s of %s not found; using the Hub", spec.embedded, spec.name)
    if spec.revision is None and revision is None:
        raise WeightsNotFoundError(
            f"weights {spec.name!r} ship inside the package ({spec.embedded}) and are not on "
            "the Hub yet, but the embedded file is missing from this installation. Reinstall "
            "asna-metric (`pip install --force-reinstall asna-metric`) or pass a local "
            ".safetensors path."
        )
    hub_revision = revision if revision is not None else spec.revision
    assert hub_revision is not None  # the embedded-only case raised above
    path = _hub_download(
        spec,
        revision=hub_revision,
        cache_dir=cache_dir,
        local_files_only=_offline_from_env() if local_files_only is None else local_files_only,
    )
    if pinned:
        _verify_sha256(path, spec.sha256, spec.name)
    else:
        logger.warning(
            "weights %r fetched at revision %s instead of the pinned %s: sha256 not checked",
            spec.name,
            revision,
            spec.revision,
        )
    return path


def _embedded_path(filename: str) -> Path | None:
    from importlib.resources import files

    resource = files("asna_metric") / "_weights" / filename
    # Only a real file on disk can be returned (not a zip member of a zipped install).
    if isinstance(resource, Path) and resource.is_file():
        return resource
    return None


def _hub_download(
    spec: WeightsSpec,
    *,
    revision: str,
    cache_dir: str | os.PathLike[str] | None,
    local_files_only: bool,
) -> Path:
    try:
        import huggingface_hub
    except ImportError as exc:  # pragma: no cover - huggingface_hub is a dependency
        raise ImportError(
            "downloading registered weights needs huggingface_hub: pip install huggingface_hub"
        ) from exc
    try:
        local = huggingface_hub.hf_hub_download(
            spec.repo_id,
            spec.filename,
            revision=revision,
            cache_dir=None if cache_dir is None else str(cache_dir),
            local_files_only=local_files_only,
            library_name="asna_metric",
            library_version=__version__,
        )
    except Exception as exc:  # huggingface_hub raises many types; all mean "not available"
        if not isinstance(exc, (OSError, ValueError)) and not _is_hub_error(exc):
            raise
        raise WeightsNotFoundError(
            _not_found_message(spec, revision, cache_dir, local_files_only, exc)
        ) from exc
    return Path(local)


def _is_hub_error(exc: BaseException) -> bool:
    module = type(exc).__module__ or ""
    return module.startswith(("huggingface_hub", "requests", "httpx", "urllib3"))


def _not_found_message(
    spec: WeightsSpec,
    revision: str,
    cache_dir: str | os.PathLike[str] | None,
    local_files_only: bool,
    exc: BaseException,
) -> str:
    kind = type(exc).__name__
    if kind == "LocalEntryNotFoundError" or kind == "OfflineModeIsEnabled":
        if local_files_only:
            reason = (
                "the file is not in the Hugging Face cache and downloading is off "
                "(HF_HUB_OFFLINE is set or local_files_only=True)"
            )
        else:
            reason = "the file is not in the Hugging Face cache and the Hub could not be reached"
    elif kind in ("RepositoryNotFoundError", "GatedRepoError"):
        reason = f"the Hub repository {spec.repo_id} is missing, private or gated"
    elif kind == "RevisionNotFoundError":
        reason = f"revision {revision} does not exist in {spec.repo_id}"
    elif kind in ("EntryNotFoundError", "RemoteEntryNotFoundError"):
        reason = f"{spec.filename} does not exist at revision {revision}"
    else:
        reason = f"{kind}: {exc}"
    cache = cache_dir if cache_dir is not None else "the default cache (HF_HUB_CACHE)"
    return (
        f"could not get weights {spec.name!r} ({spec.repo_id}, file {spec.filename}, revision "
        f"{revision}): {reason}. Cache searched: {cache}. To fix, either connect to the "
        f"internet and retry (unset HF_HUB_OFFLINE); or pre-download the file on a connected "
        f"machine with `hf download {spec.repo_id} {spec.filename} --revision {revision}` "
        f"(`huggingface-cli download ...` on older huggingface_hub) and copy the cache; or "
        f"pass a local file, e.g. ASNA(weights='/path/to/{spec.filename}') or "
        f"--weights /path/to/{spec.filename}."
    )


def _json_metadata_value(key: str, value: object) -> str:
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, sort_keys=True)
    except (TypeError, ValueError) as exc:
        raise InputError(
            f"extra_metadata[{key!r}] must be a string or JSON-serialisable; got "
            f"{type(value).__name__}. Convert it with str() first."
        ) from exc


def save_ensemble(
    path: str | os.PathLike[str],
    members: Sequence[nn.Module],
    *,
    name: str,
    description: str = "",
    extra_metadata: Mapping[str, object] | None = None,
) -> Path:
    """Write an ensemble of networks to one ``.safetensors`` file.

    The file is written to a temporary name and renamed, so an interrupted
    save never leaves a half-written file under ``path``.

    Args:
        path: Destination, ending in ``.safetensors``; parent folders are
            created.
        members: The networks, each with ``arch`` and a JSON-serialisable
            ``config`` (as built by ``asna_metric.nets.build_net``).
        name: Name stored in the metadata (e.g. the registry name).
        description: One line stored in the metadata.
        extra_metadata: Provenance such as ``train_command``, ``seed``,
            ``data``; non-string values are stored as JSON.

    Returns:
        The path written.

    Raises:
        InputError: If ``members`` is empty, a member lacks ``arch`` or
            ``config``, a metadata key is reserved, or ``path`` does not end
            in ``.safetensors``.
    """
    from safetensors.torch import save_file

    path = Path(path).expanduser()
    if path.suffix != ".safetensors":
        raise InputError(
            f"path must end in .safetensors; got {str(path)!r}. Rename it, e.g. "
            f"{path.with_suffix('.safetensors').name!r}."
        )
    if len(members) == 0:
        raise InputError("members must hold at least one network; got an empty sequence.")
    described = []
    tensors: dict[str, torch.Tensor] = {}
    for i, net in enumerate(members):
        arch, config = getattr(net, "arch", None), getattr(net, "config", None)
        if not isinstance(arch, str) or not isinstance(config, dict):
            raise InputError(
                f"members[{i}] ({type(net).__name__}) must have a str `arch` and a dict "
                "`config`; got "
                f"arch={arch!r}, config type {type(config).__name__}. Build networks with "
                "asna_metric.nets.build_net."
            )
        try:
            json.dumps(config)
        except (TypeError, ValueError) as exc:
            raise InputError(
                f"members[{i}].config must be JSON-serialisable; {exc}. Keep only plain "
                "numbers, strings, lists and dicts in it."
            ) from exc
        described.append({"arch": arch, "config": config})
        for key, value in net.state_dict().items():
            # A copy per tensor: safetensors refuses tensors that share memory.
            tensors[f"members.{i}.{key}"] = value.detach().to("cpu", copy=True).contiguous()
    extra = dict(extra_metadata or {})
    clash = sorted(_RESERVED_METADATA.intersection(extra))
    if clash:
        raise InputError(
            f"extra_metadata must not set the reserved keys {clash}; pass name and "
            "description as arguments and rename the others."
        )
    metadata = {key: _json_metadata_value(key, value) for key, value in extra.items()}
    metadata.update(
        asna_metric_format=FORMAT_VERSION,
        members=json.dumps(described, sort_keys=True),
        name=name,
        description=description,
        asna_metric_version=__version__,
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata=metadata)
        # mkstemp creates the file private (0600); give it the usual umask-based mode.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    logger.info("saved %d network(s) to %s", len(members), path)
    return path


def _read_header(path: Path) -> tuple[dict[str, str], dict[str, tuple[int, ...]]]:
    """Return (metadata, tensor shapes) of a safetensors file without loading tensors."""
    from safetensors import safe_open

    if not path.is_file():
        raise WeightsNotFoundError(
            f"weights file {str(path)!r} does not exist. Check the path or resolve a "
            "registry name with asna_metric.weights.resolve_weights."
        )
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = dict(handle.metadata() or {})
            shapes = {key: tuple(handle.get_slice(key).get_shape()) for key in handle.keys()}
    except Exception as exc:  # safetensors raises SafetensorError and others on bad files
        raise WeightsIntegrityError(_corrupt_message(path, exc)) from exc
    return metadata, shapes


def _corrupt_message(path: Path, exc: BaseException) -> str:
    return (
        f"cannot read weights file {str(path)!r}: {type(exc).__name__}: {exc}. The file is "
        "not a valid safetensors file (truncated download or wrong file?). Delete it and "
        "download or save it again."
    )


def _parse_members(path: Path, metadata: Mapping[str, str]) -> list[dict[str, Any]]:
    fmt = metadata.get("asna_metric_format")
    if fmt is None or "members" not in metadata:
        missing = [k for k in ("asna_metric_format", "members") if k not in metadata]
        raise WeightsIntegrityError(
            f"weights file {str(path)!r} lacks the metadata {missing}: it was not written by "
            "asna_metric.weights.save_ensemble. Re-save the networks with save_ensemble."
        )
    if fmt != FORMAT_VERSION:
        raise WeightsIntegrityError(
            f"weights file {str(path)!r} has format {fmt!r}; this asna_metric {__version__} "
            f"reads format {FORMAT_VERSION!r}. Upgrade asna_metric (pip install -U asna-metric)."
        )
    try:
        members = json.loads(metadata["members"])
    except json.JSONDecodeError as exc:
        members, error = None, str(exc)
    else:
        error = "expected a non-empty JSON list of {'arch': str, 'config': dict}"
    valid = (
        isinstance(members, list)
        and len(members) > 0
        and all(
            isinstance(m, dict)
            and isinstance(m.get("arch"), str)
            and isinstance(m.get("config"), dict)
            for m in members
        )
    )
    if not valid:
        raise WeightsIntegrityError(
            f"weights file {str(path)!r} has invalid 'members' metadata ({error}); got "
            f"{metadata['members'][:200]!r}. Re-save the networks with save_ensemble."
        )
    return list(members)


def weights_info(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a weights file's metadata without building the networks.

    Args:
        path: A ``.safetensors`` file written by :func:`save_ensemble`.

    Returns:
        The string metadata (``name``, ``description``, provenance, ...),
        with ``members`` parsed to a list of ``{"arch", "config"}`` dicts and
        two added entries: ``num_tensors`` and ``num_elements`` (all values,
        parameters and buffers).

    Raises:
        WeightsNotFoundError: If the file does not exist.
        WeightsIntegrityError: If it is not a valid weights file.
    """
    path = Path(path).expanduser()
    metadata, shapes = _read_header(path)
    info: dict[str, Any] = dict(metadata)
    info["members"] = _parse_members(path, metadata)
    info["num_tensors"] = len(shapes)
    numel = 0
    for shape in shapes.values():
        count = 1
        for dim in shape:
            count *= dim
        numel += count
    info["num_elements"] = numel
    return info


def load_state_file(
    path: str | os.PathLike[str],
) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Read a plain ``.safetensors`` file of tensors (a state dict) and its metadata.

    For files that are not ensembles (:func:`load_ensemble`): the learned
    sorter's weights, converted encoder weights (``[model] init``). The caller
    checks the keys against its network.

    Args:
        path: The ``.safetensors`` file.

    Returns:
        ``(tensors, metadata)``: every tensor, on the CPU, by key, and the
        file's string metadata (empty when it has none).

    Raises:
        WeightsNotFoundError: If the file does not exist.
        WeightsIntegrityError: If it is not a readable safetensors file.
    """
    from safetensors.torch import load_file

    path = Path(path).expanduser()
    metadata, _ = _read_header(path)
    try:
        tensors = load_file(str(path), device="cpu")
    except Exception as exc:  # truncated data after a valid header
        raise WeightsIntegrityError(_corrupt_message(path, exc)) from exc
    return tensors, metadata


def _summarise(keys: Sequence[str], limit: int = 5) -> str:
    listed = ", ".join(sorted(keys)[:limit])
    return listed + (f", ... ({len(keys)} in all)" if len(keys) > limit else "")


def load_ensemble(path: str | os.PathLike[str]) -> tuple[list[nn.Module], dict[str, str]]:
    """Build and load the networks stored in a weights file, strictly.

    Every tensor must match a parameter or buffer of the rebuilt networks
    with the same shape, and every parameter and buffer must be present.

    Args:
        path: A ``.safetensors`` file written by :func:`save_ensemble`.

    Returns:
        ``(networks, metadata)``: the networks in eval mode on the CPU, in
        the stored order, and the file's string metadata.

    Raises:
        WeightsNotFoundError: If the file does not exist.
        WeightsIntegrityError: If the file is truncated or corrupt, lacks
            the metadata, names an unknown architecture, or its tensors do
            not match the networks (missing or unexpected keys, wrong
            shapes).
    """
    from safetensors.torch import load_file

    from asna_metric.nets import build_net

    path = Path(path).expanduser()
    metadata, _ = _read_header(path)
    members = _parse_members(path, metadata)
    try:
        tensors = load_file(str(path), device="cpu")
    except Exception as exc:  # truncated data after a valid header
        raise WeightsIntegrityError(_corrupt_message(path, exc)) from exc

    by_member: list[dict[str, torch.Tensor]] = [{} for _ in members]
    stray: list[str] = []
    pattern = re.compile(r"members\.(\d+)\.(.+)")
    for key, value in tensors.items():
        match = pattern.fullmatch(key)
        if match is None or int(match.group(1)) >= len(members):
            stray.append(key)
        else:
            by_member[int(match.group(1))][match.group(2)] = value
    if stray:
        raise WeightsIntegrityError(
            f"weights file {str(path)!r} holds tensors that belong to no member "
            f"(the file lists {len(members)}): {_summarise(stray)}. The file does not match "
            "its metadata; re-save it with save_ensemble."
        )

    nets: list[nn.Module] = []
    for i, (member, state) in enumerate(zip(members, by_member, strict=True)):
        try:
            net = build_net(member["arch"], member["config"])
        except Exception as exc:
            raise WeightsIntegrityError(
                f"weights file {str(path)!r}: member {i} (arch {member['arch']!r}) cannot be "
                f"built: {type(exc).__name__}: {exc}. The file may need a newer asna_metric "
                "(pip install -U asna-metric)."
            ) from exc
        expected = net.state_dict()
        missing = [k for k in expected if k not in state]
        unexpected = [k for k in state if k not in expected]
        if missing or unexpected:
            parts = []
            if missing:
                parts.append(f"missing {_summarise(missing)}")
            if unexpected:
                parts.append(f"unexpected {_summarise(unexpected)}")
            raise WeightsIntegrityError(
                f"weights file {str(path)!r}: member {i} ({member['arch']}) does not match its "
                f"network: {'; '.join(parts)}. The file is damaged or was written for another "
                "configuration; re-save it with save_ensemble."
            )
        wrong = [
            f"{k}: file {tuple(state[k].shape)} vs network {tuple(v.shape)}"
            for k, v in expected.items()
            if tuple(state[k].shape) != tuple(v.shape)
        ]
        if wrong:
            raise WeightsIntegrityError(
                f"weights file {str(path)!r}: member {i} ({member['arch']}) has tensors of the "
                f"wrong shape: {'; '.join(wrong[:5])}. The stored config does not match the "
                "weights; re-save it with save_ensemble."
            )
        net.load_state_dict(state, strict=True)
        net.eval()
        nets.append(net)
    return nets, metadata
