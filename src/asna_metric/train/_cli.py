"""``asna-metric train``, ``finetune`` and ``ensemble``: the training command line.

Heavy imports (torch, the trainer) happen inside the handlers so that
``asna-metric --help`` stays fast.
"""

from __future__ import annotations

import argparse
import logging
import shlex
import sys
from pathlib import Path
from typing import Any

from asna_metric.errors import InputError

__all__ = ["register"]

logger = logging.getLogger(__name__)


def _add_overrides(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("overrides (applied on top of the config)")
    group.add_argument("--epochs", type=int, help="number of epochs")
    group.add_argument("--seed", type=int, help="run seed (initialisation, split, sampling)")
    group.add_argument("--device", choices=("cpu", "cuda", "auto"), help="where to train")
    group.add_argument("--amp", choices=("none", "bf16", "fp16"), help="mixed precision on CUDA")
    group.add_argument("--threads", type=int, help="torch CPU threads (0: torch's default)")
    group.add_argument("--num-workers", type=int, help="DataLoader worker processes")
    group.add_argument("--crop-size", type=int, help="side of the square training crops")
    group.add_argument("--samples-per-epoch", type=int, help="pairs drawn per epoch (0: all)")
    group.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="any config key, e.g. --set optim.lr=5e-5 --set model.net.attention_width=8 "
        "(value read as TOML; repeatable)",
    )
    group.add_argument(
        "--no-progress", action="store_true", help="no progress bar (log lines only)"
    )


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    from asna_metric.train.config import parse_override

    table = {
        "epochs": "epochs",
        "seed": "seed",
        "device": "runtime.device",
        "amp": "runtime.amp",
        "threads": "runtime.threads",
        "num_workers": "data.num_workers",
        "crop_size": "data.crop_size",
        "samples_per_epoch": "data.samples_per_epoch",
    }
    out: dict[str, Any] = {}
    for text in args.set:
        key, value = parse_override(text)
        out[key] = value
    for attr, key in table.items():
        value = getattr(args, attr, None)
        if value is not None:
            out[key] = value
    if getattr(args, "labels", None):
        out["data.labels"] = [str(Path(p).resolve()) for p in args.labels]
    if getattr(args, "root", None):
        out["data.root"] = str(Path(args.root).resolve())
    if getattr(args, "dataset", None):
        out["data.dataset"] = args.dataset
    if args.no_progress:
        out["runtime.progress"] = False
    return out


def _load(args: argparse.Namespace) -> Any:
    from asna_metric.train.config import TrainConfig, load_config
    from asna_metric.train.trainer import LAST, load_checkpoint

    overrides = _overrides(args)
    if args.config:
        return load_config(args.config, overrides)
    if getattr(args, "resume", False) and args.out and (Path(args.out) / LAST).is_file():
        saved = load_checkpoint(Path(args.out) / LAST)["config"]
        return TrainConfig.from_dict(saved).with_overrides(overrides)
    if args.command == "finetune":
        return TrainConfig(name="finetune").with_overrides(overrides)
    raise InputError(
        "no config: pass --config CONFIG.toml (see configs/), or --out RUN_DIR --resume to "
        "continue a run with its saved config."
    )


def _command_line() -> str:
    return shlex.join(["asna-metric", *sys.argv[1:]]) if sys.argv else "asna-metric"


def _run_train(args: argparse.Namespace) -> int:
    from asna_metric.train.trainer import describe, train

    config = _load(args)
    result = train(
        config,
        run_dir=args.out,
        resume=args.resume,
        command=_command_line(),
        stop_after_epochs=args.stop_after,
    )
    if result.rank == 0:
        print(describe(result))
    return 0


def _run_finetune(args: argparse.Namespace) -> int:
    from asna_metric.train.trainer import combine_runs, describe, train
    from asna_metric.weights import load_ensemble, resolve_weights

    config = _load(args)
    init_path = Path(args.init)
    if not init_path.is_file():
        init_path = resolve_weights(args.init)
    members, metadata = load_ensemble(init_path)
    indices = list(range(len(members)))
    if args.member is not None:
        if not 0 <= args.member < len(members):
            raise InputError(
                f"--member must be in [0, {len(members) - 1}] for {init_path} "
                f"({len(members)} member(s)); got {args.member}."
            )
        indices = [args.member]
    out = Path(args.out) if args.out else Path("runs") / f"finetune-{config.name}"
    command = _command_line()
    runs = []
    rank = 0
    for index in indices:
        member = members[index]
        logger.info("fine-tuning member %d of %s (%s)", index, init_path, member.arch)
        result = train(
            config,
            run_dir=out / f"member{index}",
            resume=args.resume,
            init=member,
            init_description=f"{init_path.name} member {index} ({metadata.get('name', '')})",
            command=command,
        )
        rank = result.rank
        runs.append(result.run_dir)
        if rank == 0:
            print(describe(result))
    if rank == 0:
        path = combine_runs(
            runs,
            out / "finetuned.safetensors",
            name=args.name or f"{metadata.get('name', 'asna')}-finetuned",
            command=command,
        )
        print(f"fine-tuned ensemble of {len(runs)} member(s): {path}")
    return 0


def _run_ensemble(args: argparse.Namespace) -> int:
    from asna_metric.train.trainer import combine_runs

    path = combine_runs(
        args.runs,
        args.out,
        name=args.name,
        description=args.description or "",
        command=_command_line(),
    )
    print(f"wrote {path}")
    return 0


def register(subparsers: Any) -> None:
    """Add the ``train``, ``finetune`` and ``ensemble`` subcommands.

    Args:
        subparsers: The object returned by ``ArgumentParser.add_subparsers``.
    """
    train = subparsers.add_parser(
        "train",
        help="train a network (CPU, CUDA or torchrun) from a TOML config",
        description="Train one ASNA network following the paper's recipe. Under torchrun "
        "(python -m torch.distributed.run --nproc_per_node N -m asna_metric.cli train ...) "
        "the epoch is split between processes, each taking optim.batch_size pairs per step.",
    )
    train.add_argument("--config", help="TOML config (see configs/)")
    train.add_argument("--out", help="run folder (default runs/NAME-seedSEED)")
    train.add_argument(
        "--resume", action="store_true", help="continue from RUN_DIR/last.pt when it exists"
    )
    train.add_argument(
        "--labels", action="append", help="labels CSV (repeatable); replaces data.labels"
    )
    train.add_argument("--root", help="folder the CSV paths are relative to")
    train.add_argument("--dataset", help="score convention of the labels (e.g. KADID-10k)")
    train.add_argument(
        "--stop-after",
        type=int,
        metavar="N",
        help="stop after N epochs in this call (resume later with --resume)",
    )
    _add_overrides(train)
    train.set_defaults(func=_run_train)

    finetune = subparsers.add_parser(
        "finetune",
        help="fine-tune existing weights on your own labelled pairs",
        description="Start from a weights file (each ensemble member in turn, or one with "
        "--member) and train on a labels CSV (PIPAL, TID2013, KADID-10k, ...); writes one "
        "run folder per member and RUN_DIR/finetuned.safetensors.",
    )
    finetune.add_argument("--init", required=True, help="weights file or registry name")
    finetune.add_argument("--member", type=int, help="fine-tune only this member (0-based)")
    finetune.add_argument(
        "--labels", action="append", required=True, help="labels CSV (repeatable)"
    )
    finetune.add_argument("--root", help="folder the CSV paths are relative to")
    finetune.add_argument(
        "--dataset", help="score convention: tid2013, kadid10k, pipal, ... (default: CSV stem)"
    )
    finetune.add_argument("--config", help="TOML config (default: the paper recipe)")
    finetune.add_argument("--out", help="output folder (default runs/finetune-NAME)")
    finetune.add_argument("--name", help="name stored in the fine-tuned weights")
    finetune.add_argument("--resume", action="store_true", help="continue interrupted members")
    _add_overrides(finetune)
    finetune.set_defaults(func=_run_finetune)

    ensemble = subparsers.add_parser(
        "ensemble",
        help="combine the best networks of several runs into one weights file",
        description="Read RUN_DIR/best.safetensors of each run (or .safetensors files) and "
        "write one ensemble file with every run's provenance in its metadata.",
    )
    ensemble.add_argument("runs", nargs="+", metavar="RUN_DIR", help="run folders or files")
    ensemble.add_argument("--out", required=True, help="destination .safetensors file")
    ensemble.add_argument("--name", required=True, help="ensemble name stored in the file")
    ensemble.add_argument("--description", help="one-line description stored in the file")
    ensemble.set_defaults(func=_run_ensemble)
