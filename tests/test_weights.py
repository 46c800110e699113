from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from asna_metric import weights as W
from asna_metric.errors import (
    InputError,
    UnknownWeightsError,
    WeightsIntegrityError,
    WeightsNotFoundError,
)
from asna_metric.nets import build_net
from helpers import TINY

REPO = "asna-test/tiny"
REVISION = "0123456789abcdef0123456789abcdef01234567"


def _tiny_members(count: int = 2) -> list[torch.nn.Module]:
    nets = []
    for seed in range(count):
        torch.manual_seed(seed)
        net = build_net("asna", TINY)
        for module in net.modules():  # non-trivial BatchNorm statistics must round-trip
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-1, 1)
                module.running_var.uniform_(0.5, 2)
        nets.append(net)
    return nets


@pytest.fixture
def saved(tmp_path: Path) -> tuple[Path, list[torch.nn.Module]]:
    members = _tiny_members()
    path = W.save_ensemble(
        tmp_path / "tiny.safetensors",
        members,
        name="tiny-test",
        description="two tiny random nets",
        extra_metadata={"seed": 3, "train_command": "none"},
    )
    return path, members


def _spec(sha256: str, name: str = "tiny-hub") -> W.WeightsSpec:
    return W.WeightsSpec(
        name=name,
        repo_id=REPO,
        revision=REVISION,
        filename="tiny.safetensors",
        sha256=sha256,
        description="test entry",
    )


def _fill_hub_cache(cache: Path, source: Path) -> Path:
    """Lay out a Hugging Face cache holding ``source`` at REVISION, as hf_hub_download does."""
    data = source.read_bytes()
    repo = cache / f"models--{REPO.replace('/', '--')}"
    blob = repo / "blobs" / hashlib.sha256(data).hexdigest()
    blob.parent.mkdir(parents=True)
    blob.write_bytes(data)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(REVISION)
    snapshot = repo / "snapshots" / REVISION / "tiny.safetensors"
    snapshot.parent.mkdir(parents=True)
    try:
        snapshot.symlink_to(os.path.relpath(blob, snapshot.parent))
    except OSError:  # no symlinks (Windows without developer mode): a copy works too
        snapshot.write_bytes(data)
    return snapshot


@pytest.fixture
def spy_download(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, object]]:
    import huggingface_hub

    calls: list[dict[str, object]] = []
    real = huggingface_hub.hf_hub_download

    def spy(*args: object, **kwargs: object) -> object:
        calls.append({"args": args, **kwargs})
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", spy)
    return calls


# --- spec and registry ----------------------------------------------------------------


def test_spec_validates_pins() -> None:
    good = _spec("a" * 64)
    assert good.revision == REVISION
    with pytest.raises(InputError, match="40-character"):
        W.WeightsSpec("x", REPO, "main", "f.safetensors", "a" * 64)
    with pytest.raises(InputError, match="sha256 must be 64"):
        W.WeightsSpec("x", REPO, REVISION, "f.safetensors", "abc")
    with pytest.raises(InputError, match="org/name"):
        W.WeightsSpec("x", "noslash", REVISION, "f.safetensors", "a" * 64)
    with pytest.raises(InputError, match=r"\.safetensors"):
        W.WeightsSpec("x", REPO, REVISION, "f.pt", "a" * 64)
    with pytest.raises(AttributeError):
        good.revision = "b" * 40  # type: ignore[misc]


def test_registry_entries_are_specs_and_default_is_named() -> None:
    assert W.DEFAULT_WEIGHTS == "asna-quarter-kadid-synth"
    assert W.list_weights() == sorted(W.REGISTRY)
    assert all(isinstance(s, W.WeightsSpec) and s.name == n for n, s in W.REGISTRY.items())


def test_unknown_name_lists_valid_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(W.REGISTRY, "tiny-hub", _spec("a" * 64))
    with pytest.raises(UnknownWeightsError, match=r"unknown weights 'nope'.*'tiny-hub'"):
        W.resolve_weights("nope")
    with pytest.raises(UnknownWeightsError, match=r"local \.safetensors"):
        W.get_spec("nope")


def test_unknown_name_with_empty_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(W, "REGISTRY", {})
    with pytest.raises(UnknownWeightsError, match="No weights are registered"):
        W.resolve_weights(W.DEFAULT_WEIGHTS)


# --- local files ----------------------------------------------------------------------


def test_save_load_round_trip(saved: tuple[Path, list[torch.nn.Module]]) -> None:
    path, members = saved
    assert W.resolve_weights(path) == path
    assert W.resolve_weights(str(path)) == path
    nets, metadata = W.load_ensemble(path)
    assert len(nets) == 2 and not any(n.training for n in nets)
    for net, original in zip(nets, members, strict=True):
        assert net.config == original.config
        for (k, a), (k2, b) in zip(
            net.state_dict().items(), original.state_dict().items(), strict=True
        ):
            assert k == k2 and torch.equal(a, b)
    assert metadata["name"] == "tiny-test" and metadata["seed"] == "3"
    assert metadata["asna_metric_format"] == "1"
    members_meta = json.loads(metadata["members"])
    assert [m["arch"] for m in members_meta] == ["asna", "asna"]
    # The two members differ, so a member mix-up would be caught above.
    assert not torch.equal(
        nets[0].state_dict()[next(iter(nets[0].state_dict()))],
        nets[1].state_dict()[next(iter(nets[1].state_dict()))],
    )


def test_weights_info_without_building(saved: tuple[Path, list[torch.nn.Module]]) -> None:
    path, members = saved
    info = W.weights_info(path)
    assert info["name"] == "tiny-test" and info["description"] == "two tiny random nets"
    assert info["members"][0]["config"] == members[0].config
    total = sum(t.numel() for m in members for t in m.state_dict().values())
    assert info["num_elements"] == total
    assert info["num_tensors"] == sum(len(m.state_dict()) for m in members)


def test_sha256_file_matches_hashlib(tmp_path: Path) -> None:
    data = os.urandom(3 * 1024 + 5)
    (tmp_path / "f").write_bytes(data)
    assert W.sha256_file(tmp_path / "f", chunk_size=1000) == hashlib.sha256(data).hexdigest()


def test_load_state_file_reads_plain_tensors_and_metadata(tmp_path: Path) -> None:
    g = torch.Generator().manual_seed(0)
    tensors = {"a.weight": torch.randn(3, 2, generator=g), "b": torch.arange(4, dtype=torch.int64)}
    path = tmp_path / "plain.safetensors"
    save_file(tensors, str(path), metadata={"arch": "x", "note": "plain"})
    loaded, metadata = W.load_state_file(path)
    assert metadata == {"arch": "x", "note": "plain"}
    assert loaded.keys() == tensors.keys()
    for key, value in tensors.items():
        assert loaded[key].dtype == value.dtype and torch.equal(loaded[key], value)
    save_file(tensors, str(tmp_path / "bare.safetensors"))
    assert W.load_state_file(tmp_path / "bare.safetensors")[1] == {}
    with pytest.raises(WeightsNotFoundError, match="does not exist"):
        W.load_state_file(tmp_path / "absent.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(WeightsIntegrityError, match=r"junk\.safetensors"):
        W.load_state_file(tmp_path / "junk.safetensors")
    data = path.read_bytes()
    (tmp_path / "cut.safetensors").write_bytes(data[: len(data) - 8])  # header intact, data cut
    with pytest.raises(WeightsIntegrityError, match="not a valid safetensors file"):
        W.load_state_file(tmp_path / "cut.safetensors")


def test_missing_local_path_and_wrong_suffix(tmp_path: Path) -> None:
    with pytest.raises(WeightsNotFoundError, match="does not exist"):
        W.resolve_weights(tmp_path / "absent.safetensors")
    with pytest.raises(WeightsNotFoundError, match="does not exist"):
        W.resolve_weights(str(tmp_path / "sub" / "absent"))
    (tmp_path / "model.pt").write_bytes(b"x")
    with pytest.raises(InputError, match=r"must be a \.safetensors file"):
        W.resolve_weights(tmp_path / "model.pt")
    with pytest.raises(WeightsNotFoundError):
        W.load_ensemble(tmp_path / "absent.safetensors")


def test_save_rejects_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="at least one network"):
        W.save_ensemble(tmp_path / "a.safetensors", [], name="x")
    with pytest.raises(InputError, match="`arch`"):
        W.save_ensemble(tmp_path / "a.safetensors", [torch.nn.Linear(2, 2)], name="x")
    with pytest.raises(InputError, match="reserved"):
        W.save_ensemble(
            tmp_path / "a.safetensors", _tiny_members(1), name="x", extra_metadata={"members": "1"}
        )
    with pytest.raises(InputError, match=r"end in \.safetensors"):
        W.save_ensemble(tmp_path / "a.pt", _tiny_members(1), name="x")
    assert list(tmp_path.iterdir()) == []  # nothing half-written left behind


# --- damaged files --------------------------------------------------------------------


@pytest.mark.parametrize("keep", [0.5, 0.999])
def test_truncated_file(saved: tuple[Path, list[torch.nn.Module]], keep: float) -> None:
    path, _ = saved
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(WeightsIntegrityError, match="not a valid safetensors file"):
        W.load_ensemble(path)


def test_header_garbage(tmp_path: Path) -> None:
    path = tmp_path / "junk.safetensors"
    path.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}......")
    with pytest.raises(WeightsIntegrityError, match=r"junk\.safetensors"):
        W.weights_info(path)


def _rewrite(path: Path, edit: object) -> None:
    from safetensors import safe_open
    from safetensors.torch import load_file

    with safe_open(str(path), "pt") as handle:
        metadata = dict(handle.metadata())
    tensors = load_file(str(path))
    edit(tensors, metadata)  # type: ignore[operator]
    save_file(tensors, str(path), metadata=metadata)


def test_missing_key(saved: tuple[Path, list[torch.nn.Module]]) -> None:
    path, _ = saved

    dropped: list[str] = []

    def drop(tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> None:
        dropped.append(sorted(k for k in tensors if k.startswith("members.1."))[0])
        del tensors[dropped[0]]

    _rewrite(path, drop)
    key = dropped[0].removeprefix("members.1.")
    with pytest.raises(WeightsIntegrityError, match=rf"member 1 \(asna\).*missing {key}"):
        W.load_ensemble(path)


def test_unexpected_and_stray_keys(saved: tuple[Path, list[torch.nn.Module]]) -> None:
    path, _ = saved
    _rewrite(path, lambda t, m: t.update({"members.0.extra.weight": torch.zeros(1)}))
    with pytest.raises(WeightsIntegrityError, match=r"unexpected extra\.weight"):
        W.load_ensemble(path)

    def stray(tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> None:
        tensors["other"] = tensors.pop("members.0.extra.weight")

    _rewrite(path, stray)
    with pytest.raises(WeightsIntegrityError, match=r"belong to no member.*other"):
        W.load_ensemble(path)


def test_shape_mismatch(saved: tuple[Path, list[torch.nn.Module]]) -> None:
    path, _ = saved

    def grow(tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> None:
        key = next(k for k, v in tensors.items() if k.startswith("members.0.") and v.ndim == 4)
        tensors[key] = torch.zeros(tensors[key].shape[0] + 1, *tensors[key].shape[1:])

    _rewrite(path, grow)
    with pytest.raises(WeightsIntegrityError, match="wrong shape"):
        W.load_ensemble(path)


@pytest.mark.parametrize(
    ("edit", "pattern"),
    [
        (lambda m: m.pop("members"), "lacks the metadata"),
        (lambda m: m.pop("asna_metric_format"), "lacks the metadata"),
        (lambda m: m.update(asna_metric_format="99"), "Upgrade asna_metric"),
        (lambda m: m.update(members="[oops"), "invalid 'members'"),
        (lambda m: m.update(members="[]"), "invalid 'members'"),
        (
            lambda m: m.update(
                members='[{"arch": "nope", "config": {}}, {"arch": "nope", "config": {}}]'
            ),
            "cannot be built",
        ),
    ],
)
def test_bad_metadata(
    saved: tuple[Path, list[torch.nn.Module]], edit: object, pattern: str
) -> None:
    path, _ = saved
    _rewrite(path, lambda t, m: edit(m))  # type: ignore[operator]
    with pytest.raises(WeightsIntegrityError, match=pattern):
        W.load_ensemble(path)


# --- registry entries: Hub cache, offline mode, integrity -----------------------------


def test_registry_entry_from_prefilled_cache_offline(
    saved: tuple[Path, list[torch.nn.Module]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    spy_download: list[dict[str, object]],
) -> None:
    path, _ = saved
    cache = tmp_path / "hf-cache"
    snapshot = _fill_hub_cache(cache, path)
    monkeypatch.setitem(W.REGISTRY, "tiny-hub", _spec(W.sha256_file(path)))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    resolved = W.resolve_weights("tiny-hub", cache_dir=cache)
    assert resolved == snapshot
    assert len(spy_download) == 1
    call = spy_download[0]
    assert call["args"] == (REPO, "tiny.safetensors")
    assert call["revision"] == REVISION and call["local_files_only"] is True
    assert call["library_name"] == "asna_metric"
    nets, metadata = W.load_ensemble(resolved)
    assert len(nets) == 2 and metadata["name"] == "tiny-test"


def test_registry_entry_not_cached_offline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, spy_download: list[dict[str, object]]
) -> None:
    monkeypatch.setitem(W.REGISTRY, "tiny-hub", _spec("a" * 64))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(WeightsNotFoundError) as info:
        W.resolve_weights("tiny-hub", cache_dir=tmp_path / "empty-cache")
    message = str(info.value)
    assert "HF_HUB_OFFLINE" in message
    assert f"hf download {REPO} tiny.safetensors --revision {REVISION}" in message
    assert "weights='/path/to/tiny.safetensors'" in message
    assert len(spy_download) == 1
    # FileNotFoundError subclass: callers who know nothing of asna_metric can catch it.
    assert isinstance(info.value, FileNotFoundError)


def test_local_files_only_argument_overrides_env(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, spy_download: list[dict[str, object]]
) -> None:
    monkeypatch.setitem(W.REGISTRY, "tiny-hub", _spec("a" * 64))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    with pytest.raises(WeightsNotFoundError, match="downloading is off"):
        W.resolve_weights("tiny-hub", cache_dir=tmp_path / "c", local_files_only=True)
    assert spy_download[0]["local_files_only"] is True


def test_sha256_mismatch(
    saved: tuple[Path, list[torch.nn.Module]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path, _ = saved
    cache = tmp_path / "hf-cache"
    snapshot = _fill_hub_cache(cache, path)
    monkeypatch.setitem(W.REGISTRY, "tiny-hub", _spec("b" * 64))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(WeightsIntegrityError) as info:
        W.resolve_weights("tiny-hub", cache_dir=cache)
    message = str(info.value)
    assert W.sha256_file(path) in message and "b" * 64 in message
    assert str(snapshot) in message and "Delete it" in message


def test_revision_override_skips_pinned_hash(
    saved: tuple[Path, list[torch.nn.Module]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path, _ = saved
    other = "f" * 40
    cache = tmp_path / "hf-cache"
    snapshot = _fill_hub_cache(cache, path)
    moved = snapshot.parent.parent / other
    snapshot.parent.rename(moved)
    monkeypatch.setitem(W.REGISTRY, "tiny-hub", _spec("b" * 64))
    resolved = W.resolve_weights("tiny-hub", cache_dir=cache, revision=other, local_files_only=True)
    assert resolved == moved / "tiny.safetensors"


def _register_embedded(
    monkeypatch: pytest.MonkeyPatch, name: str, path: Path, revision: str | None
) -> W.WeightsSpec:
    """Register ``name`` as weights shipped in the package, ``path`` being the embedded copy."""
    spec = W.WeightsSpec(
        name,
        REPO,
        revision,
        "tiny.safetensors",
        W.sha256_file(path),
        embedded="tiny.safetensors",
    )
    monkeypatch.setitem(W.REGISTRY, spec.name, spec)
    monkeypatch.setattr(W, "_embedded_path", lambda name: path if name == spec.embedded else None)
    return spec


def test_embedded_copy_preferred(
    saved: tuple[Path, list[torch.nn.Module]],
    monkeypatch: pytest.MonkeyPatch,
    spy_download: list[dict[str, object]],
) -> None:
    path, _ = saved
    spec = _register_embedded(monkeypatch, "tiny-embedded", path, REVISION)
    assert W.resolve_weights(spec.name) == path
    assert spy_download == []


def test_embedded_only_weights_without_hub_revision(
    saved: tuple[Path, list[torch.nn.Module]],
    monkeypatch: pytest.MonkeyPatch,
    spy_download: list[dict[str, object]],
) -> None:
    path, _ = saved
    spec = _register_embedded(monkeypatch, "tiny-local-only", path, None)
    assert W.resolve_weights(spec.name) == path
    # The embedded copy missing: no Hub revision to fall back on, and no download attempt.
    monkeypatch.setattr(W, "_embedded_path", lambda name: None)
    with pytest.raises(W.WeightsNotFoundError, match="not on the Hub yet"):
        W.resolve_weights(spec.name)
    assert spy_download == []
    with pytest.raises(InputError, match="only be None for embedded"):
        W.WeightsSpec("no-pin", REPO, None, "tiny.safetensors", "a" * 64)


def test_upload_script_dry_run_needs_yes(
    saved: tuple[Path, list[torch.nn.Module]], capsys: pytest.CaptureFixture[str]
) -> None:
    import importlib.util

    script = Path(__file__).parents[1] / "scripts" / "upload_weights.py"
    spec = importlib.util.spec_from_file_location("upload_weights", script)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    path, _ = saved
    assert module.main([str(path), "--repo-id", REPO]) == 1  # no --yes: nothing uploaded
    captured = capsys.readouterr()
    assert W.sha256_file(path) in captured.out and "pass --yes" in captured.err
    with pytest.raises(SystemExit):
        module.build_parser().parse_args([str(path)])  # --repo-id is required
