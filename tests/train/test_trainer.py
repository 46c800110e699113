"""The trainer: loss goes down, exact resume, determinism, exported weights, CLI."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
import torch

from asna_metric.errors import InputError
from asna_metric.train.config import TrainConfig, load_config, parse_override
from asna_metric.train.pairs import EpochSampler
from asna_metric.train.trainer import (
    TrainResult,
    combine_runs,
    load_checkpoint,
    train,
)

# A tiny network (a few hundred parameters) so that an epoch takes well under a second.
TINY_NET = {
    "stem_channels": 3,
    "encoder_widths": [4, 4, 4, 4],
    "decoder_widths": [4, 4, 4, 4],
    "head_widths": [4, 4],
    "attention_width": 4,
    "residual_blocks": 1,
    "head_hidden": 4,
}
LEVELS = (0.0, 0.03, 0.06, 0.1, 0.16, 0.25)


def make_dataset(folder: Path, *, refs: int = 4, size: int = 48, seed: int = 0) -> Path:
    """Write smooth reference PNGs, noisy versions at 6 levels and a KADID-style CSV."""
    from PIL import Image

    g = torch.Generator().manual_seed(seed)
    (folder / "images").mkdir(parents=True)
    rows = ["dis_img_path,dis_type,ref_img_path,score"]
    for r in range(refs):
        low = torch.rand(1, 3, 6, 6, generator=g)
        ref = torch.nn.functional.interpolate(low, size=(size, size), mode="bilinear")[0]
        ref_name = f"images/R{r:02d}.png"
        _save(ref, folder / ref_name, Image)
        for level, sigma in enumerate(LEVELS, start=1):
            dist = (ref + sigma * torch.randn(ref.shape, generator=g)).clamp(0, 1)
            name = f"images/R{r:02d}_01_{level}.png"
            _save(dist, folder / name, Image)
            mos = 5.0 - 0.7 * (level - 1)
            rows.append(f"{name},noise,{ref_name},{mos}")
    csv = folder / "labels.csv"
    csv.write_text("\n".join(rows) + "\n")
    return csv


def _save(x: torch.Tensor, path: Path, image_module: Any) -> None:
    array = (x * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    image_module.fromarray(array).save(path)


def _tiny_run(name: str, data: dict[str, Any], overrides: dict[str, Any]) -> TrainConfig:
    """Three epochs of the tiny network on ``data``, then ``overrides`` (dotted keys)."""
    config = TrainConfig.from_dict(
        {
            "name": name,
            "seed": 1,
            "epochs": 3,
            "model": {"arch": "asna", "net": TINY_NET},
            "data": data,
            "optim": {"lr": 3e-3, "lr_step_epochs": 2},
            "runtime": {"progress": False, "threads": 1},
        }
    )
    return config.with_overrides(overrides) if overrides else config


def tiny_config(labels: Path, **overrides: Any) -> TrainConfig:
    data = {
        "labels": [str(labels)],
        "dataset": "KADID-10k",
        "val_fraction": 0.25,
        "crop_size": 32,
        "samples_per_epoch": 32,
        "val_crop": 32,
    }
    return _tiny_run("tiny", data, overrides)


TOML = """
name = "tiny"
seed = 1
epochs = 2

[model]
arch = "asna"
net = {{ stem_channels = 3, encoder_widths = [4, 4, 4, 4], decoder_widths = [4, 4, 4, 4], \
head_widths = [4, 4], attention_width = 4, residual_blocks = 1, head_hidden = 4 }}

[data]
labels = "{labels}"
dataset = "KADID-10k"
val_fraction = 0.25
crop_size = 32
samples_per_epoch = 32
val_crop = 32

[optim]
lr = 3e-3

[runtime]
progress = false
threads = 1
"""


@pytest.fixture(scope="module")
def labels(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("tiny_data"))


@pytest.fixture(scope="module")
def trained(labels: Path, tmp_path_factory: pytest.TempPathFactory) -> TrainResult:
    config = tiny_config(labels, epochs=6)
    return train(config, run_dir=tmp_path_factory.mktemp("run") / "r", command="pytest tiny")


def _state(run_dir: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(run_dir / "last.pt")["model"]


def _assert_same_state(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=1e-6, msg=key)


def test_training_lowers_the_loss_and_writes_the_run(trained: TrainResult) -> None:
    losses = [h["train_loss"] for h in trained.history]
    assert len(losses) == 6 and all(math.isfinite(x) for x in losses)
    assert min(losses[-2:]) < losses[0]
    run = trained.run_dir
    for name in ("last.pt", "best.pt", "best.safetensors", "train.log", "config.json"):
        assert (run / name).is_file(), name
    lines = (run / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["epoch"] for x in lines] == [1, 2, 3, 4, 5, 6]
    assert len((run / "train.log").read_text().splitlines()) >= 7  # start + one per epoch
    assert 1 <= trained.best_epoch <= 6 and -1 <= trained.best_val_srcc <= 1
    checkpoint = load_checkpoint(run / "last.pt")
    assert checkpoint["epoch"] == 6
    assert checkpoint["scheduler"]["last_epoch"] == 6
    assert checkpoint["optimizer"]["param_groups"][0]["lr"] == pytest.approx(3e-3 * 0.5**3)
    assert {"torch", "python"} <= set(checkpoint["rng"])
    assert not list(run.glob(".*tmp"))  # atomic writes leave no temporaries


def test_exported_weights_load_and_score(trained: TrainResult, generator: torch.Generator) -> None:
    from asna_metric.metric import ASNA
    from asna_metric.weights import load_ensemble

    assert trained.weights_path is not None
    members, metadata = load_ensemble(trained.weights_path)
    assert len(members) == 1 and members[0].arch == "asna"
    assert metadata["train_command"] == "pytest tiny"
    assert metadata["seed"] == "1"
    assert json.loads(metadata["config"])["model"]["net"]["encoder_widths"] == [4, 4, 4, 4]
    data = json.loads(metadata["data"])
    assert data["train_references"] == 3 and data["val_references"] == 1
    assert len(data["labels"][0]["sha256"]) == 64
    from asna_metric._provenance import git_state

    git = git_state()  # recorded as one string, as in the shipped weights files
    expected = (
        "unknown" if git["commit"] is None else git["commit"] + ("+dirty" * bool(git["dirty"]))
    )
    assert metadata["git_commit"] == expected
    assert float(metadata["val_srcc"]) == pytest.approx(trained.best_val_srcc, abs=1e-6)
    best = load_checkpoint(trained.run_dir / "best.pt")["model"]
    _assert_same_state(members[0].state_dict(), best)

    metric = ASNA.from_networks(members)
    ref = torch.rand(2, 3, 64, 64, generator=generator)
    dist = (ref + 0.2 * torch.randn(ref.shape, generator=generator)).clamp(0, 1)
    scores = metric(dist, ref)
    assert scores.shape == (2,) and torch.isfinite(scores).all()


def _train_interrupted_in_epoch_2(
    config: TrainConfig, run_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Train into ``run_dir`` and stop (KeyboardInterrupt) in epoch 2 before its checkpoint."""
    import asna_metric.train.trainer as trainer_module

    real_validate = trainer_module._validate
    calls = {"n": 0}

    def interrupting_validate(*args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 2:  # in epoch 2, after its training steps, before its checkpoint
            raise KeyboardInterrupt
        return real_validate(*args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(trainer_module, "_validate", interrupting_validate)
        with pytest.raises(KeyboardInterrupt):
            train(config, run_dir=run_dir)


def test_resume_after_interruption_is_exact(
    labels: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tiny_config(labels)
    full = train(config, run_dir=tmp_path / "full")

    _train_interrupted_in_epoch_2(config, tmp_path / "cut", monkeypatch)
    assert load_checkpoint(tmp_path / "cut" / "last.pt")["epoch"] == 1

    resumed = train(config, run_dir=tmp_path / "cut", resume=True)
    _assert_same_state(_state(tmp_path / "full"), _state(tmp_path / "cut"))
    assert [h["train_loss"] for h in resumed.history] == [h["train_loss"] for h in full.history]
    assert resumed.best_val_srcc == full.best_val_srcc
    lines = (tmp_path / "cut" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["epoch"] for x in lines] == [1, 2, 3]


def test_stop_and_extend_matches_one_run(labels: Path, tmp_path: Path) -> None:
    config = tiny_config(labels)
    train(config, run_dir=tmp_path / "full")
    part = train(config, run_dir=tmp_path / "parts", stop_after_epochs=1)
    assert part.epochs_completed == 1
    train(config, run_dir=tmp_path / "parts", resume=True)
    _assert_same_state(_state(tmp_path / "full"), _state(tmp_path / "parts"))


def test_same_seed_same_run_other_seed_differs(labels: Path, tmp_path: Path) -> None:
    config = tiny_config(labels, epochs=2)
    a = train(config, run_dir=tmp_path / "a")
    b = train(config, run_dir=tmp_path / "b")
    assert [h["val_srcc"] for h in a.history] == [h["val_srcc"] for h in b.history]
    assert [h["train_loss"] for h in a.history] == [h["train_loss"] for h in b.history]
    _assert_same_state(_state(tmp_path / "a"), _state(tmp_path / "b"))
    c = train(config.with_overrides({"seed": 2}), run_dir=tmp_path / "c")
    assert [h["train_loss"] for h in c.history] != [h["train_loss"] for h in a.history]


def test_run_folder_and_resume_guards(labels: Path, tmp_path: Path) -> None:
    config = tiny_config(labels, epochs=1)
    train(config, run_dir=tmp_path / "run")
    with pytest.raises(InputError, match="--resume"):
        train(config, run_dir=tmp_path / "run")
    with pytest.raises(InputError, match="crop_size"):
        train(config.with_overrides({"data.crop_size": 64}), run_dir=tmp_path / "run", resume=True)
    done = train(config, run_dir=tmp_path / "run", resume=True)  # already complete: no-op
    assert done.epochs_completed == 1


def test_invalid_data_settings_raise(labels: Path, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="samples"):
        train(tiny_config(labels, **{"data.samples_per_epoch": 4}), run_dir=tmp_path / "a")
    with pytest.raises(InputError, match="does not exist"):
        train(tiny_config(tmp_path / "missing.csv"), run_dir=tmp_path / "b")
    with pytest.raises(InputError, match=r"data\.labels"):
        train(TrainConfig(), run_dir=tmp_path / "c")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_cuda_raises_before_writing(labels: Path, tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"runtime\.device cuda"):
        train(tiny_config(labels, **{"runtime.device": "cuda"}), run_dir=tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_config_file_overrides_and_validation(labels: Path, tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    path = tmp_path / "sub" / "tiny.toml"
    path.write_text(TOML.format(labels=labels.as_posix()))
    config = load_config(path, {"epochs": 5, "data.crop_size": 48})
    assert config.name == "tiny" and config.epochs == 5 and config.data.crop_size == 48
    assert config.optim.batch_size == 16 and config.optim.lr == 3e-3
    assert config.loss.beta == 0.1 and config.loss.alpha == 0.5
    assert config.augment.l_scale_max == 1.5
    assert TrainConfig.from_dict(config.to_dict()) == config

    rel = tmp_path / "sub" / "rel.toml"
    rel.write_text('[data]\nlabels = "../data/labels.csv"\nroot = "imgs"\n')
    loaded = load_config(rel)
    assert loaded.data.labels == (str((tmp_path / "data" / "labels.csv").resolve()),)
    assert loaded.data.root == str((tmp_path / "sub" / "imgs").resolve())

    with pytest.raises(InputError, match="unknown key"):
        TrainConfig.from_dict({"data": {"crop_sise": 64}})
    with pytest.raises(InputError, match="unknown config key"):
        TrainConfig.from_dict({"epoch": 3})
    with pytest.raises(InputError, match=r"data\.crop_size"):
        TrainConfig.from_dict({"data": {"crop_size": 8}})
    with pytest.raises(InputError, match=r"runtime\.device"):
        TrainConfig().with_overrides({"runtime.device": "tpu"})
    with pytest.raises(InputError, match="does not exist"):
        load_config(tmp_path / "nope.toml")
    assert parse_override("data.crop_size=64") == ("data.crop_size", 64)
    assert parse_override("runtime.device=cuda") == ("runtime.device", "cuda")
    assert parse_override("optim.lr=5e-5") == ("optim.lr", 5e-5)
    with pytest.raises(InputError, match="KEY=VALUE"):
        parse_override("epochs")


def test_sampler_splits_an_epoch_between_ranks() -> None:
    single = list(EpochSampler(10, samples_per_epoch=24, seed=5))
    assert len(single) == 24
    counts = torch.bincount(torch.tensor([i for i, _ in single]), minlength=10)
    assert counts.max() - counts.min() <= 1  # permutations, not draws with replacement
    ranks = [
        list(EpochSampler(10, samples_per_epoch=24, seed=5, rank=r, world_size=2)) for r in (0, 1)
    ]
    merged = [x for pair in zip(*ranks, strict=True) for x in pair]
    assert merged == single  # same samples and seeds, whatever the number of processes
    sampler = EpochSampler(10, samples_per_epoch=24, seed=5)
    sampler.set_epoch(1)
    assert list(sampler) != single
    sampler.set_epoch(0)
    assert list(sampler) == single


class _Constant(torch.nn.Module):
    """Scores every pair 0.5: validation correlations are undefined."""

    def forward(self, dist: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
        return torch.full((dist.shape[0],), 0.5)


def test_validation_statistics_are_the_evaluation_ones(labels: Path) -> None:
    """Validation SRCC/PLCC are asna_metric.data.evaluation's, ties in the labels included."""
    import contextlib

    stats = pytest.importorskip("scipy.stats")
    from asna_metric.data.evaluation import plcc, srcc
    from asna_metric.nets import build_net
    from asna_metric.train.pairs import ValPairs
    from asna_metric.train.trainer import _validate, load_records

    records = load_records(tiny_config(labels))[:12]  # two references with the same six labels
    dataset = ValPairs(records, crop=32, size_multiple=1)
    cpu, plain = torch.device("cpu"), contextlib.nullcontext
    torch.manual_seed(0)
    net = build_net("asna", TINY_NET)
    got = _validate(net, dataset, batch_size=12, device=cpu, autocast=plain)
    items = [dataset[i] for i in range(12)]
    with torch.no_grad():  # the same single batch, in eval mode as _validate left it
        pred = net(torch.stack([x[0] for x in items]), torch.stack([x[1] for x in items]))
    target = torch.stack([x[2] for x in items])
    assert len(set(target.tolist())) == 6  # every label twice: ties
    assert got == (srcc(pred, target), plcc(pred, target))  # the same functions, bit for bit
    assert got[0] == pytest.approx(stats.spearmanr(pred, target)[0], abs=1e-12)
    assert got[1] == pytest.approx(stats.pearsonr(pred.double(), target.double())[0], abs=1e-12)

    undefined = _validate(_Constant(), dataset, batch_size=5, device=cpu, autocast=plain)
    assert all(math.isnan(x) for x in undefined)
    two = ValPairs(records[:2], crop=32, size_multiple=1)  # a correlation needs 3 pairs
    assert all(math.isnan(x) for x in _validate(net, two, batch_size=5, device=cpu, autocast=plain))


def test_missing_scipy_fails_before_training(
    labels: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "scipy", None)  # `import scipy.stats` now raises
    monkeypatch.setitem(sys.modules, "scipy.stats", None)
    with pytest.raises(ImportError, match=r"asna-metric\[train\]"):
        train(tiny_config(labels, epochs=1), run_dir=tmp_path / "run")
    assert not (tmp_path / "run").exists()  # nothing trained, nothing written


def test_cli_train_and_ensemble(
    labels: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from asna_metric.cli import main
    from asna_metric.weights import load_ensemble

    config = tmp_path / "tiny.toml"
    config.write_text(TOML.format(labels=labels.as_posix()))
    for seed in ("1", "2"):
        argv = ["train", "--config", str(config), "--out", str(tmp_path / f"run{seed}")]
        assert main([*argv, "--epochs", "1", "--seed", seed, "--no-progress"]) == 0
        assert (tmp_path / f"run{seed}" / "best.safetensors").is_file()
    assert "val SRCC" in capsys.readouterr().out
    # Resume without --config reads the run's saved config; extending epochs is allowed.
    assert main(["train", "--out", str(tmp_path / "run1"), "--resume", "--epochs", "2"]) == 0
    assert load_checkpoint(tmp_path / "run1" / "last.pt")["epoch"] == 2

    out = tmp_path / "ens.safetensors"
    assert (
        main(
            [
                "ensemble",
                str(tmp_path / "run1"),
                str(tmp_path / "run2"),
                "--out",
                str(out),
                "--name",
                "tiny-ens",
            ]
        )
        == 0
    )
    members, metadata = load_ensemble(out)
    assert len(members) == 2 and metadata["name"] == "tiny-ens"
    provenance = json.loads(metadata["members_provenance"])
    assert [p["seed"] for p in provenance] == ["1", "2"]
    assert json.loads(metadata["seed"]) == ["1", "2"]
    assert main(["train", "--out", str(tmp_path / "nothing"), "--resume"]) == 2  # no config


def test_finetune_from_weights(trained: TrainResult, labels: Path, tmp_path: Path) -> None:
    from asna_metric.cli import main
    from asna_metric.weights import load_ensemble

    out = tmp_path / "ft"
    common = [
        "--labels",
        str(labels),
        "--dataset",
        "kadid10k",
        "--out",
        str(out),
        "--epochs",
        "1",
        "--crop-size",
        "32",
        "--samples-per-epoch",
        "32",
        "--set",
        "data.val_crop=32",
        "--set",
        "data.val_fraction=0.25",
        "--threads",
        "1",
        "--no-progress",
    ]
    assert main(["finetune", "--init", str(trained.weights_path), "--member", "0", *common]) == 0
    members, metadata = load_ensemble(out / "finetuned.safetensors")
    assert len(members) == 1 and members[0].config["encoder_widths"] == [4, 4, 4, 4]
    provenance = json.loads(metadata["members_provenance"])
    assert "member 0" in provenance[0]["init_weights"]
    bad = ["finetune", "--init", str(trained.weights_path), "--member", "3", *common]
    assert main(bad) == 2  # no such member


def test_combine_runs_requires_weights(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="best weights"):
        combine_runs([tmp_path], tmp_path / "x.safetensors", name="x")
    with pytest.raises(InputError, match="at least one"):
        combine_runs([], tmp_path / "x.safetensors", name="x")


def test_excluded_types_never_reach_training_or_validation(labels: Path) -> None:
    import dataclasses

    from asna_metric.train.trainer import _split, load_records

    config = tiny_config(labels)
    # Give every other pair a second distortion type.
    records = [
        dataclasses.replace(r, dis_type="blur") if i % 2 else r
        for i, r in enumerate(load_records(config))
    ]
    excluded = config.with_overrides({"data.exclude_types": ["BLUR"]})  # matched ignoring case
    train_records, val_records = _split(excluded, records)
    assert train_records and val_records
    assert {r.dis_type for r in [*train_records, *val_records]} == {"noise"}
    # Without the option, the same split keeps both types.
    train_all, val_all = _split(config, records)
    assert {r.dis_type for r in [*train_all, *val_all]} == {"noise", "blur"}


# ----------------------------------------------------------------- model.init
def _init_file(path: Path, *, seed: int) -> dict[str, torch.Tensor]:
    """Tensors for the tiny ASNA network's stem, keyed without the 'backbone.' prefix."""
    from safetensors.torch import save_file

    g = torch.Generator().manual_seed(seed)
    tensors = {
        "stem.0.weight": 0.1 * torch.randn(3, 3, 5, 5, generator=g),
        "stem.0.bias": 0.1 * torch.randn(3, generator=g),
    }
    save_file(tensors, str(path), metadata={"source_package": "test", "license": "Apache-2.0"})
    return tensors


def test_model_init_file_is_applied_recorded_and_not_reapplied_on_resume(
    labels: Path, tmp_path: Path
) -> None:
    from asna_metric.weights import load_ensemble, sha256_file

    path = tmp_path / "stem.safetensors"
    tensors = _init_file(path, seed=3)
    config = tiny_config(
        labels, **{"epochs": 2, "model.init": str(path), "model.init_prefix": "backbone."}
    )

    # Applied before training: with a negligible learning rate the stem keeps the file's values.
    frozen = train(config.with_overrides({"epochs": 1, "optim.lr": 1e-12}), run_dir=tmp_path / "f")
    stem = load_checkpoint(frozen.run_dir / "last.pt")["model"]
    torch.testing.assert_close(stem["backbone.stem.0.weight"], tensors["stem.0.weight"])
    torch.testing.assert_close(stem["backbone.stem.0.bias"], tensors["stem.0.bias"])

    full = train(config, run_dir=tmp_path / "full")
    log = (full.run_dir / "train.log").read_text()
    assert "init: " in log and sha256_file(path) in log
    checkpoint = load_checkpoint(full.run_dir / "last.pt")
    assert checkpoint["init_file"]["sha256"] == sha256_file(path)
    assert (
        checkpoint["init_file"]["prefix"] == "backbone." and checkpoint["init_file"]["tensors"] == 2
    )
    assert full.weights_path is not None
    _, metadata = load_ensemble(full.weights_path)
    recorded = json.loads(metadata["init_file"])
    assert recorded["path"] == str(path.resolve()) and recorded["sha256"] == sha256_file(path)
    assert recorded["source_package"] == "test"
    assert "stem.safetensors" in metadata["init_weights"]

    # Resuming takes the checkpoint's weights: the file is not read again (here: it is gone).
    train(config, run_dir=tmp_path / "parts", stop_after_epochs=1)
    path.unlink()
    resumed = train(config, run_dir=tmp_path / "parts", resume=True)
    _assert_same_state(_state(tmp_path / "full"), _state(tmp_path / "parts"))
    assert [h["train_loss"] for h in resumed.history] == [h["train_loss"] for h in full.history]
    assert "not re-applied" in (tmp_path / "parts" / "train.log").read_text()
    assert load_checkpoint(tmp_path / "parts" / "last.pt")["init_file"] == checkpoint["init_file"]


def test_model_init_errors_and_relative_paths(labels: Path, tmp_path: Path) -> None:
    from safetensors.torch import save_file

    path = tmp_path / "stem.safetensors"
    _init_file(path, seed=3)
    with pytest.raises(InputError, match="lacks"):  # the keys need the prefix
        train(tiny_config(labels, **{"model.init": str(path)}), run_dir=tmp_path / "a")
    wrong = tmp_path / "wrong.safetensors"
    save_file({"stem.0.bias": torch.zeros(4)}, str(wrong))
    with pytest.raises(InputError, match="another shape"):
        train(
            tiny_config(labels, **{"model.init": str(wrong), "model.init_prefix": "backbone."}),
            run_dir=tmp_path / "b",
        )
    with pytest.raises(InputError, match="does not exist"):
        train(
            tiny_config(labels, **{"model.init": str(tmp_path / "none.safetensors")}),
            run_dir=tmp_path / "c",
        )
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not a safetensors file")
    with pytest.raises(InputError, match="not a readable safetensors file"):
        train(tiny_config(labels, **{"model.init": str(junk)}), run_dir=tmp_path / "d")
    with pytest.raises(InputError, match=r"model\.init"):
        TrainConfig.from_dict({"model": {"init": "weights.pt"}})

    (tmp_path / "cfg").mkdir()
    toml = tmp_path / "cfg" / "rel.toml"
    toml.write_text('[model]\ninit = "../stem.safetensors"\ninit_prefix = "backbone."\n')
    loaded = load_config(toml)
    assert loaded.model.init == str(path.resolve()) and loaded.model.init_prefix == "backbone."
    assert TrainConfig.from_dict(loaded.to_dict()) == loaded


def test_efficientnet_lite0_trains_from_a_converted_encoder(labels: Path, tmp_path: Path) -> None:
    from safetensors.torch import save_file

    from asna_metric.nets import build_net
    from asna_metric.weights import load_ensemble

    torch.manual_seed(11)
    encoder = build_net("efficientnet_lite0", {}).encoder.state_dict()
    path = tmp_path / "encoder.safetensors"
    save_file(encoder, str(path))
    tiny = {"tap_width": 4, "fuse_width": 4, "attention_width": 4, "residual_blocks": 1}
    config = tiny_config(
        labels,
        **{
            "epochs": 1,
            "model.arch": "efficientnet_lite0",
            "model.net": {**tiny, "head_hidden": 4},
            "model.init": str(path),
            "model.init_prefix": "encoder.",
        },
    )
    result = train(config, run_dir=tmp_path / "run")
    assert result.epochs_completed == 1 and math.isfinite(result.last_train_loss)
    assert result.weights_path is not None
    members, metadata = load_ensemble(result.weights_path)
    assert members[0].arch == "efficientnet_lite0"
    assert json.loads(metadata["init_file"])["covered"] == 1.0


# ----------------------------------------------------------------- on-the-fly pairs
def _smooth_photo(g: torch.Generator, height: int, width: int) -> torch.Tensor:
    low = torch.rand(1, 3, 5, 5, generator=g)
    photo = torch.nn.functional.interpolate(low, size=(height, width), mode="bilinear")[0]
    lo = photo.amin(dim=(1, 2), keepdim=True)
    hi = photo.amax(dim=(1, 2), keepdim=True)
    return (photo - lo) / (hi - lo)  # every channel spans [0, 1], like a photograph


@pytest.fixture(scope="module")
def photo_refs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Tiny photographs in two folders plus a Kodak folder, and a split manifest of them."""
    from PIL import Image

    from asna_metric.data.splits import make_reference_split

    root = tmp_path_factory.mktemp("refs")
    g = torch.Generator().manual_seed(3)
    for folder, count in (("alpha", 10), ("beta", 10), ("kodak", 1)):
        (root / folder).mkdir()
        for i in range(count):
            _save(_smooth_photo(g, 40 + 4 * (i % 3), 48), root / folder / f"{i:02d}.png", Image)
    manifest = make_reference_split(
        root, name="tiny-v1", folders=("alpha", "beta"), eval_only_folders=("kodak",)
    )
    path = root.parent / "tiny-v1.json"
    path.write_text(json.dumps(manifest, indent=1))
    return root, path


CHEAP = ["GBLUR", "JPEG", "AWGN", "Mean_Shift", "Color_Block"]


def onthefly_config(photo_refs: tuple[Path, Path], **overrides: Any) -> TrainConfig:
    root, manifest = photo_refs
    data = {
        "source": "onthefly",
        "refs": str(root),
        "split_manifest": str(manifest),
        "types": CHEAP,
        "crop_size": 32,
        "samples_per_epoch": 48,
        "val_pairs": 8,
        "val_crop": 32,
        "crops_per_distortion": 2,
    }
    return _tiny_run("tiny_otf", data, overrides)


def test_onthefly_training_runs_and_records_its_data(
    photo_refs: tuple[Path, Path], tmp_path: Path
) -> None:
    from asna_metric.weights import load_ensemble

    result = train(onthefly_config(photo_refs, epochs=2), run_dir=tmp_path / "run")
    assert result.epochs_completed == 2
    assert all(math.isfinite(h["train_loss"]) and h["steps"] == 3 for h in result.history)
    assert result.weights_path is not None
    _, metadata = load_ensemble(result.weights_path)
    data = json.loads(metadata["data"])
    manifest = photo_refs[1]
    import hashlib

    assert data["source"] == "onthefly"
    assert data["split_manifest"] == "tiny-v1"
    assert data["split_manifest_sha256"] == hashlib.sha256(manifest.read_bytes()).hexdigest()
    assert data["train_folders"] == ["alpha", "beta"] and data["val_folders"] == ["alpha", "beta"]
    assert data["train_references"] == 16 and data["val_references"] == 2
    assert data["types"] == [1, 10, 11, 18, 23] and data["levels"] == [1, 2, 3, 4, 5]
    assert data["identity_rate"] == 0.05 and data["seed"] == 1
    assert data["val_pairs"] == 8 and data["eval_only_in_training"] is False
    assert "kodak" not in json.dumps(data["train_folders"] + data["val_folders"])


def test_onthefly_resume_after_interruption_is_exact(
    photo_refs: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = onthefly_config(photo_refs, **{"data.num_workers": 1})
    full = train(config, run_dir=tmp_path / "full")

    _train_interrupted_in_epoch_2(config, tmp_path / "cut", monkeypatch)
    # Resumed in the main process (no workers): the draws do not depend on the workers.
    resumed = train(
        config.with_overrides({"data.num_workers": 0}), run_dir=tmp_path / "cut", resume=True
    )
    _assert_same_state(_state(tmp_path / "full"), _state(tmp_path / "cut"))
    assert [h["train_loss"] for h in resumed.history] == [h["train_loss"] for h in full.history]
    assert [h["val_srcc"] for h in resumed.history] == [h["val_srcc"] for h in full.history]


def test_onthefly_excluded_types_and_config_checks(
    photo_refs: tuple[Path, Path], tmp_path: Path
) -> None:
    from asna_metric.train.trainer import _build_data, _Dist

    config = onthefly_config(photo_refs, **{"data.exclude_types": ["jpeg", "awgn"]})
    data = _build_data(config, size_multiple=1, ddp=_Dist())
    assert data.info["types"] == [1, 18, 23]
    assert data.info["excluded_types"] == ["jpeg", "awgn"]
    drawn = {data.train_set.plan(item, size=(40, 48)).dist_type for item in data.sampler}
    assert drawn <= {0, 1, 18, 23} and drawn & {1, 18, 23}
    assert len(data.val_set) == 8
    again = _build_data(config, size_multiple=1, ddp=_Dist())  # the same fixed validation set
    assert torch.equal(data.val_set.dist, again.val_set.dist)
    with pytest.raises(InputError, match="leaves no distortion type"):
        _build_data(
            onthefly_config(photo_refs, **{"data.exclude_types": CHEAP}),
            size_multiple=1,
            ddp=_Dist(),
        )
    with pytest.raises(InputError, match=r"data\.labels"):
        onthefly_config(photo_refs, **{"data.labels": ["x.csv"]})
    with pytest.raises(InputError, match=r"data\.refs"):
        onthefly_config(photo_refs, **{"data.refs": ""})
    with pytest.raises(InputError, match=r"data\.levels"):
        onthefly_config(photo_refs, **{"data.levels": [0]})
    # Paths in a file are relative to the file, like data.labels.
    (tmp_path / "sub").mkdir()
    toml = tmp_path / "sub" / "otf.toml"
    toml.write_text(
        '[data]\nsource = "onthefly"\nrefs = "../refs"\nsplit_manifest = "m/split.json"\n'
    )
    loaded = load_config(toml)
    assert loaded.data.refs == str((tmp_path / "refs").resolve())
    assert loaded.data.split_manifest == str((tmp_path / "sub" / "m" / "split.json").resolve())
    assert load_config(toml, {"data.split_manifest": "refs-v1"}).data.split_manifest == "refs-v1"
    assert TrainConfig.from_dict(loaded.to_dict()) == loaded
