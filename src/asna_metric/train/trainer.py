"""The ASNA trainer: seeded, resumable, single-process or DistributedDataParallel.

Recipe (the paper's): Adam at 1e-4, 16 pairs per step, the learning rate
halved every 10 epochs (StepLR), loss ``0.5 MSE + 0.5 (1 - PLCC) + 0.1
rank`` (:class:`asna_metric.train.losses.ASNATrainingLoss`; the rank term
uses the package's learned sorter), random aligned
crops with dihedral and Lab-lightness augmentation shared by both images,
labels = quality in [0, 1]. Validation reports SRCC and PLCC (plain
Pearson, no logistic fit: a cheap monitor, not the benchmark protocol;
computed by :func:`asna_metric.data.evaluation.srcc` and
:func:`~asna_metric.data.evaluation.plcc`, hence scipy in the ``train``
extra) on a fixed subset of fixed centre crops of the content-disjoint
validation split.

Steps of a run (one function each, below :func:`train`): the checkpoint to
resume from, the seeded network, the data (datasets and epoch sampler: the
pairs of labels files, or with ``data.source = "onthefly"`` pairs drawn on
the fly from reference photographs, :mod:`asna_metric.train.onthefly`), the
optimiser, the start or resumed state, then per epoch the training steps,
validation and the checkpoints and weights export.

Reproducibility: every random draw derives from ``(seed, epoch, ...)``: the
initial weights from ``(seed, "init")``, the epoch's pair order from
``(seed, "order", epoch)``, each sample's crop and augmentation from
``(seed, "sample", epoch, position)`` and the global generators are
re-seeded from ``(seed, "epoch", epoch)`` at every epoch. A run stopped at
any point and resumed from its last checkpoint ends with the same weights as
an uninterrupted one (bitwise on CPU with ``runtime.deterministic``).

Files in the run folder (written by rank 0 only): ``config.json`` (the
resolved config), ``train.log`` (a line per epoch), ``metrics.jsonl`` (a
JSON object per epoch), ``last.pt`` and ``best.pt`` (full checkpoints,
written atomically) and ``best.safetensors`` (the best weights as a
one-member ensemble, with provenance metadata).

Multi-process: launch with ``torchrun`` (``python -m torch.distributed.run
--nproc_per_node N -m asna_metric.cli train ...``). Each process takes
``optim.batch_size`` pairs per step (the effective batch is ``N`` times
larger), ``data.samples_per_epoch`` is split between the processes, the
backend is gloo on CPU and NCCL on CUDA.
"""

from __future__ import annotations

import contextlib
import datetime
import functools
import json
import logging
import math
import os
import random
import shlex
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from asna_metric._devices import resolve_device
from asna_metric._progress import progress
from asna_metric._provenance import git_state
from asna_metric._version import __version__
from asna_metric.errors import InputError
from asna_metric.train.augment import PairAugment
from asna_metric.train.config import RESUMABLE_KEYS, TrainConfig
from asna_metric.train.pairs import (
    EpochSampler,
    ImageStore,
    TrainPairs,
    ValPairs,
    check_paths_exist,
    derive_seed,
)
from asna_metric.weights import sha256_file

__all__ = [
    "TrainResult",
    "combine_runs",
    "describe",
    "load_checkpoint",
    "load_records",
    "train",
]

logger = logging.getLogger(__name__)

CHECKPOINT_FORMAT = 1
LAST, BEST, WEIGHTS = "last.pt", "best.pt", "best.safetensors"


@dataclass
class TrainResult:
    """What a training run produced.

    Attributes:
        run_dir: The run folder.
        weights_path: ``RUN_DIR/best.safetensors`` (the best epoch's weights,
            loadable with :func:`asna_metric.weights.load_ensemble`), or
            ``None`` before any epoch finished.
        best_epoch: 1-based epoch with the highest validation SRCC.
        best_val_srcc: That SRCC.
        best_val_plcc: The PLCC at that epoch.
        epochs_completed: Epochs finished so far (equal to ``config.epochs``
            when the run is complete).
        history: One dict per finished epoch (as in ``metrics.jsonl``).
        rank: This process's rank (0 without ``torchrun``).
        world_size: Number of processes.
    """

    run_dir: Path
    weights_path: Path | None
    best_epoch: int
    best_val_srcc: float
    best_val_plcc: float
    epochs_completed: int
    history: list[dict[str, Any]] = field(default_factory=list)
    rank: int = 0
    world_size: int = 1

    @property
    def last_train_loss(self) -> float:
        """Mean training loss of the last finished epoch (nan if none)."""
        return float(self.history[-1]["train_loss"]) if self.history else math.nan


# ----------------------------------------------------------------- statistics
def _correlations(pred: Tensor, target: Tensor) -> tuple[float, float]:
    """SRCC and PLCC (plain Pearson, no logistic fit) of validation predictions.

    The statistics are those of :mod:`asna_metric.data.evaluation`
    (:func:`~asna_metric.data.evaluation.srcc`, average ranks for ties, and
    :func:`~asna_metric.data.evaluation.plcc`, the ``plcc_raw`` of
    ``asna-metric eval``), so a run's validation figures and an evaluation of
    the same predictions agree to the last bit.

    Args:
        pred: Finite predictions ``(N,)``.
        target: Labels ``(N,)``.

    Returns:
        ``(srcc, plcc)``; ``nan`` for a constant side, and both ``nan`` below
        the 3 pairs a correlation needs.
    """
    from asna_metric.data.evaluation import plcc, srcc

    if pred.numel() < 3:
        return math.nan, math.nan
    return srcc(pred, target), plcc(pred, target)


# ----------------------------------------------------------------- data
def load_records(config: TrainConfig) -> list[Any]:
    """Read every labels file of a config into one list of PairRecords.

    Args:
        config: The run config (``data.labels``, ``data.root``,
            ``data.dataset``).

    Returns:
        The concatenated records, in file order.

    Raises:
        InputError: If no labels file is configured or one is missing.
    """
    from asna_metric.data.readers import read_labels_csv

    if not config.data.labels:
        raise InputError(
            "no training labels: data.labels is empty. Set it in the config or pass "
            "--labels DATA_DIR/labels.csv (made by `asna-metric synth`)."
        )
    records: list[Any] = []
    for csv in config.data.labels:
        path = Path(csv)
        if not path.is_file():
            raise InputError(
                f"labels file {csv!r} does not exist. Create it with `asna-metric synth --refs "
                "REFS_DIR --out DATA_DIR` or point data.labels at your dataset's CSV."
            )
        root = Path(config.data.root) if config.data.root else path.parent
        records.extend(read_labels_csv(path, root, dataset=config.data.dataset or None))
    return records


def _split(config: TrainConfig, records: list[Any]) -> tuple[list[Any], list[Any]]:
    from asna_metric.data.splits import leave_types_out, split_by_reference

    if config.data.exclude_types:
        records, _ = leave_types_out(records, config.data.exclude_types)
    train_records, val_records = split_by_reference(
        records, val_fraction=config.data.val_fraction, seed=config.seed
    )
    train_records, val_records = list(train_records), list(val_records)
    if config.data.val_pairs and len(val_records) > config.data.val_pairs:
        generator = torch.Generator().manual_seed(derive_seed(config.seed, "val-subset"))
        chosen = torch.randperm(len(val_records), generator=generator)[: config.data.val_pairs]
        keep = sorted(int(i) for i in chosen)
        val_records = [val_records[int(i)] for i in keep]
    return train_records, val_records


def _data_description(
    config: TrainConfig, train_records: Sequence[Any], val_records: Sequence[Any]
) -> dict[str, Any]:
    def refs(records: Sequence[Any]) -> int:
        return len({getattr(r, "ref_id", None) or os.fspath(r.ref) for r in records})

    return {
        "labels": [{"path": p, "sha256": sha256_file(p)} for p in config.data.labels],
        "root": config.data.root,
        "dataset": config.data.dataset,
        "train_pairs": len(train_records),
        "train_references": refs(train_records),
        "val_pairs": len(val_records),
        "val_references": refs(val_records),
        "split": f"split_by_reference(val_fraction={config.data.val_fraction}, seed={config.seed})",
    }


# ----------------------------------------------------------------- environment
@dataclass
class _Dist:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    owns_group: bool = False

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.enabled:
            torch.distributed.barrier()


def _setup_distributed(device_type: str) -> _Dist:
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return _Dist()
    import torch.distributed as tdist

    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    owns = False
    if not tdist.is_initialized():
        backend = "nccl" if device_type == "cuda" else "gloo"
        tdist.init_process_group(backend=backend, timeout=datetime.timedelta(minutes=60))
        owns = True
    return _Dist(tdist.get_rank(), tdist.get_world_size(), local_rank, owns)


def _training_device(name: str, local_rank: int) -> torch.device:
    """The device this process trains on: ``runtime.device``, on its own GPU under torchrun.

    Args:
        name: ``runtime.device`` (``"auto"``, ``"cpu"`` or ``"cuda"``).
        local_rank: This process's index on its machine (0 without torchrun).

    Returns:
        The CPU, or CUDA device ``local_rank`` (made the current device).

    Raises:
        InputError: CUDA was asked for and torch sees none.
    """
    device = resolve_device(name, option="runtime.device")
    if device.type != "cuda":
        return device
    torch.cuda.set_device(local_rank)
    return torch.device("cuda", local_rank)


@contextlib.contextmanager
def _torch_settings(config: TrainConfig, device: torch.device) -> Iterator[None]:
    """Apply determinism and thread settings for the run, restoring them after."""
    old_det = torch.are_deterministic_algorithms_enabled()
    old_warn = torch.is_deterministic_algorithms_warn_only_enabled()
    old_threads = torch.get_num_threads()
    old_benchmark = torch.backends.cudnn.benchmark
    try:
        if config.runtime.deterministic:
            if device.type == "cuda":
                os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
                torch.backends.cudnn.benchmark = False
            torch.use_deterministic_algorithms(True, warn_only=True)
        if config.runtime.threads:
            torch.set_num_threads(config.runtime.threads)
        yield
    finally:
        torch.use_deterministic_algorithms(old_det, warn_only=old_warn)
        torch.set_num_threads(old_threads)
        torch.backends.cudnn.benchmark = old_benchmark


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)
    with contextlib.suppress(ImportError):
        import numpy as np

        # The legacy global generator on purpose: it is what third-party code uses.
        np.random.seed(seed % 2**32)  # noqa: NPY002


def _rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state(), "python": random.getstate()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    with contextlib.suppress(ImportError):
        import numpy as np

        kind, keys, pos, has_gauss, cached = np.random.get_state()  # noqa: NPY002
        state["numpy"] = {
            "kind": str(kind),
            "keys": torch.from_numpy(np.asarray(keys).astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached": float(cached),
        }
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    python = state["python"]
    random.setstate((python[0], tuple(python[1]), python[2]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    if "numpy" in state:
        with contextlib.suppress(ImportError):
            import numpy as np

            n = state["numpy"]
            keys = n["keys"].numpy().astype(np.uint32)
            np.random.set_state(  # noqa: NPY002
                (n["kind"], keys, n["pos"], n["has_gauss"], n["cached"])
            )


def _git_commit() -> str:
    """The source tree's commit as weights metadata records it.

    ``"<40 hex>"``, ``"<40 hex>+dirty"`` (uncommitted changes to tracked
    files) or ``"unknown"`` (no git tree): the one-string form of
    :func:`asna_metric._provenance.git_state`, kept because the shipped
    weights files record it this way.
    """
    git = git_state()
    if git["commit"] is None:
        return "unknown"
    return str(git["commit"]) + ("+dirty" if git["dirty"] else "")


# ----------------------------------------------------------------- files
def _atomic_save(obj: Any, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as fh:
        torch.save(obj, fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


class _RunFiles:
    """Run-folder writer; silent on ranks other than 0."""

    def __init__(self, run_dir: Path, enabled: bool) -> None:
        self.run_dir = run_dir
        self.enabled = enabled

    def log(self, message: str) -> None:
        logger.info(message)
        if self.enabled:
            stamp = datetime.datetime.now().isoformat(timespec="seconds")
            with open(self.run_dir / "train.log", "a", encoding="utf-8") as fh:
                fh.write(f"{stamp} {message}\n")

    def metrics(self, history: list[dict[str, Any]], *, rewrite: bool = False) -> None:
        if not self.enabled:
            return
        path = self.run_dir / "metrics.jsonl"
        if rewrite:
            _atomic_write_text(path, "".join(json.dumps(h) + "\n" for h in history))
        elif history:
            with open(path, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(history[-1]) + "\n")


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a trainer checkpoint (``last.pt`` / ``best.pt``).

    Args:
        path: Checkpoint file.
        map_location: Where to put its tensors.

    Returns:
        The checkpoint dict: ``model``, ``optimizer``, ``scheduler``,
        ``rng``, ``epoch`` (completed), ``best_val_srcc``, ``config``, ...

    Raises:
        InputError: If the file is missing or not a trainer checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"checkpoint {str(path)!r} does not exist. Pass a run folder's last.pt.")
    checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != CHECKPOINT_FORMAT:
        raise InputError(
            f"{path} is not an asna_metric trainer checkpoint (format {CHECKPOINT_FORMAT}). "
            "Start a new run in another folder."
        )
    return checkpoint


def _export_weights(
    path: Path,
    net: nn.Module,
    *,
    config: TrainConfig,
    command: str,
    data: dict[str, Any],
    epoch: int,
    srcc: float,
    plcc: float,
    init: str,
    init_file: dict[str, Any] | None = None,
) -> None:
    from asna_metric.weights import save_ensemble

    description = (
        f"{net.arch} trained with asna_metric {__version__} ({config.name}, seed {config.seed}); "
        f"best epoch {epoch} of {config.epochs}, validation SRCC {srcc:.4f} on "
        f"{data['val_pairs']} held-out pairs of {data['val_references']} unseen references."
    )
    metadata = {
        "train_command": command,
        "seed": str(config.seed),
        "config": json.dumps(config.to_dict(), sort_keys=True),
        "data": json.dumps(data, sort_keys=True),
        "git_commit": _git_commit(),
        "torch_version": torch.__version__,
        "epoch": str(epoch),
        "val_srcc": f"{srcc:.6f}",
        "val_plcc": f"{plcc:.6f}",
        "init_weights": init,
    }
    if init_file is not None:
        metadata["init_file"] = json.dumps(init_file, sort_keys=True)
    save_ensemble(path, [net], name=config.name, description=description, extra_metadata=metadata)


# ----------------------------------------------------------------- loops
@torch.no_grad()
def _validate(
    net: nn.Module,
    dataset: Any,
    *,
    batch_size: int,
    device: torch.device,
    autocast: Any,
) -> tuple[float, float]:
    """Validation (rank 0): SRCC and PLCC of the network's scores on the fixed validation crops.

    Args:
        net: The network (put in eval mode; the next epoch sets train mode).
        dataset: The validation pairs (``len()`` and ``[int]``, e.g.
            :class:`~asna_metric.train.pairs.ValPairs`).
        batch_size: Pairs per forward pass.
        device: The training device.
        autocast: The run's autocast context factory.

    Returns:
        ``(srcc, plcc)`` from :func:`_correlations`; both ``nan`` when a
        score is not finite.
    """
    net.eval()
    preds, targets = [], []
    for start in range(0, len(dataset), batch_size):
        items = [dataset[i] for i in range(start, min(start + batch_size, len(dataset)))]
        dist = torch.stack([x[0] for x in items]).to(device)
        ref = torch.stack([x[1] for x in items]).to(device)
        with autocast():
            preds.append(net(dist, ref).float().cpu())
        targets.append(torch.stack([x[2] for x in items]))
    pred, target = torch.cat(preds), torch.cat(targets)
    if not torch.isfinite(pred).all():
        return math.nan, math.nan
    return _correlations(pred, target)


def _autocast_factory(config: TrainConfig, device: torch.device) -> Any:
    if device.type != "cuda" or config.runtime.amp == "none":
        return contextlib.nullcontext
    dtype = torch.bfloat16 if config.runtime.amp == "bf16" else torch.float16
    return functools.partial(torch.autocast, device_type="cuda", dtype=dtype)


def _build_loss(config: TrainConfig) -> nn.Module:
    from asna_metric.train.losses import ASNATrainingLoss

    loss = config.loss
    return ASNATrainingLoss(
        alpha=loss.alpha,
        beta=loss.beta,
        pearson=loss.pearson,
        rank=loss.rank,
        sorter=loss.sorter,
        temperature=loss.temperature or None,
    )


def _require_scipy() -> None:
    """Fail before training, not after the first epoch, when validation cannot run."""
    try:
        import scipy.stats  # noqa: F401
    except ImportError as exc:
        raise ImportError(
            "training validates with asna_metric.data.evaluation, which needs scipy: "
            "pip install 'asna-metric[train]'"
        ) from exc


def _prepare_run_dir(config: TrainConfig, run_dir: str | Path | None, resume: bool) -> Path:
    default = Path("runs") / f"{config.name}-seed{config.seed}"
    path = Path(run_dir) if run_dir is not None else default
    if (path / LAST).exists() and not resume:
        raise InputError(
            f"{path} already holds a training run (last.pt). Pass --resume to continue it, or "
            "--out NEW_DIR to start another."
        )
    return path


def train(
    config: TrainConfig,
    *,
    run_dir: str | Path | None = None,
    resume: bool = False,
    init: nn.Module | None = None,
    init_description: str = "",
    command: str | None = None,
    stop_after_epochs: int | None = None,
) -> TrainResult:
    """Train (or fine-tune) one network following the ASNA recipe.

    Under ``torchrun`` (``WORLD_SIZE > 1`` in the environment) the function
    joins the process group (gloo on CPU, NCCL on CUDA), wraps the network in
    ``DistributedDataParallel`` and splits each epoch's samples between the
    processes; only rank 0 validates and writes files.

    Args:
        config: The run config (see :mod:`asna_metric.train.config`).
        run_dir: Output folder; default ``runs/{config.name}-seed{seed}``.
        resume: Continue from ``RUN_DIR/last.pt`` when it exists (a fresh
            start otherwise). The config must equal the checkpoint's except
            for ``epochs`` and runtime options.
        init: A network to start from instead of a seeded initialisation
            (fine-tuning); its ``arch`` and ``config`` replace
            ``config.model`` (and ``model.init`` is cleared). Without it,
            ``config.model.init`` names an optional file of tensors loaded
            into the seeded network before training (recorded, with its
            sha256, in ``train.log``, the checkpoints and the weights
            metadata as ``init_file``; a resumed run keeps the checkpoint's
            weights and does not read the file again).
        init_description: Where ``init`` came from (written to the weights
            metadata).
        command: The command line recorded in the weights metadata; default
            this process's ``sys.argv``.
        stop_after_epochs: Return after this many epochs in this call (the
            run stays resumable), e.g. for time-sliced jobs.

    Returns:
        A :class:`TrainResult`.

    Raises:
        InputError: On invalid data, a run folder that already holds a run
            (without ``resume``), a resumed run whose config differs, or a
            CUDA device that is not there.
        ImportError: scipy (the validation statistics) is not installed.

    Example:
        >>> from asna_metric.train.config import load_config  # doctest: +SKIP
        >>> result = train(load_config("configs/asna_cpu.toml"))  # doctest: +SKIP
        >>> result.best_val_srcc, result.weights_path  # doctest: +SKIP
    """
    from asna_metric.nets import build_net

    if not isinstance(config, TrainConfig):
        raise InputError(
            f"config must be a TrainConfig; got {type(config).__name__}. Use "
            "asna_metric.train.config.load_config(path)."
        )
    if init is not None:
        start: Any = init
        # The given network supplies every weight: a model.init file would be overwritten.
        config = config.with_overrides(
            {
                "model.arch": start.arch,
                "model.net": dict(start.config),
                "model.init": "",
                "model.init_prefix": "",
            }
        )
    _require_scipy()
    command = command if command is not None else shlex.join(sys.argv)
    wants_cuda = config.runtime.device == "cuda" or (
        config.runtime.device == "auto" and torch.cuda.is_available()
    )
    ddp = _setup_distributed("cuda" if wants_cuda else "cpu")
    try:
        device = _training_device(config.runtime.device, ddp.local_rank)
        with _torch_settings(config, device):
            return _train(
                config,
                build_net=build_net,
                run_dir=_prepare_run_dir(config, run_dir, resume),
                resume=resume,
                init=init,
                init_description=init_description,
                command=command,
                stop_after_epochs=stop_after_epochs,
                ddp=ddp,
                device=device,
            )
    finally:
        if ddp.owns_group:
            torch.distributed.destroy_process_group()


# ----------------------------------------------------------------- the run, step by step
@dataclass
class _Data:
    """What the data step builds: the datasets, the epoch sampler and what to record."""

    train_set: torch.utils.data.Dataset[tuple[Tensor, Tensor, Tensor]]
    val_set: Any  # ValPairs, or FixedPairs for on-the-fly pairs: len() and [int]
    sampler: EpochSampler
    crop: int
    val_batch: int
    steps_per_epoch: int
    info: dict[str, Any]


@dataclass
class _Optimisation:
    """The optimiser, its schedule, mixed precision and the loss of a run."""

    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler
    autocast: Any
    loss_fn: nn.Module


@dataclass
class _Progress:
    """Where a run stands: what a checkpoint saves besides the weights and optimiser."""

    start_epoch: int = 0
    best_srcc: float = -math.inf
    best_plcc: float = math.nan
    best_epoch: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    init_text: str = ""
    init_file: dict[str, Any] | None = None


def _train(
    config: TrainConfig,
    *,
    build_net: Any,
    run_dir: Path,
    resume: bool,
    init: nn.Module | None,
    init_description: str,
    command: str,
    stop_after_epochs: int | None,
    ddp: _Dist,
    device: torch.device,
) -> TrainResult:
    """Run the steps of :func:`train` once the process group and device are set up.

    Steps: the checkpoint to resume from (:func:`_resume_checkpoint`), the
    seeded network (:func:`_build_model`), the data (:func:`_build_data`,
    :func:`_train_loader`), the optimiser (:func:`_build_optimisation`), the
    run's start or resumed state (:func:`_start_or_resume`), then per epoch
    training and validation (:func:`_run_epoch`) and the checkpoints and
    weights export (:func:`_save_epoch`).
    """
    checkpoint = _resume_checkpoint(config, run_dir, resume)
    if ddp.main:
        run_dir.mkdir(parents=True, exist_ok=True)
    ddp.barrier()
    files = _RunFiles(run_dir, ddp.main)

    net, init_file = _build_model(
        config, build_net=build_net, init=init, read_init_file=checkpoint is None, device=device
    )
    data = _build_data(config, size_multiple=int(getattr(net, "size_multiple", 1)), ddp=ddp)
    loader = _train_loader(config, data, device)
    optim = _build_optimisation(config, net, device)
    state = _start_or_resume(
        config,
        checkpoint,
        net=net,
        optim=optim,
        data=data,
        files=files,
        init_text=init_description or ("" if init is None else "fine-tuned from a given network"),
        init_file=init_file,
        command=command,
        ddp=ddp,
        device=device,
    )
    logger.info(
        "rank %d/%d: %d steps per epoch on %s",
        ddp.rank,
        ddp.world_size,
        data.steps_per_epoch,
        device,
    )

    model: nn.Module = net
    if ddp.enabled:
        model = nn.parallel.DistributedDataParallel(
            net, device_ids=[device.index] if device.type == "cuda" else None
        )
    epochs_this_call = 0
    for epoch in range(state.start_epoch, config.epochs):
        if stop_after_epochs is not None and epochs_this_call >= stop_after_epochs:
            break
        record, seconds = _run_epoch(
            config,
            epoch,
            model=model,
            net=net,
            loader=loader,
            data=data,
            optim=optim,
            last_srcc=state.history[-1]["val_srcc"] if state.history else math.nan,
            ddp=ddp,
            device=device,
        )
        epochs_this_call += 1
        state.history.append(record)
        srcc, plcc = record["val_srcc"], record["val_plcc"]
        improved = ddp.main and not math.isnan(srcc) and srcc > state.best_srcc
        if improved:
            state.best_srcc, state.best_plcc, state.best_epoch = srcc, plcc, epoch + 1
        if ddp.main:
            _save_epoch(
                config,
                epoch,
                run_dir=run_dir,
                files=files,
                net=net,
                optim=optim,
                state=state,
                improved=improved,
                seconds=seconds,
                command=command,
                data_info=data.info,
            )
        ddp.barrier()

    weights = run_dir / WEIGHTS
    return TrainResult(
        run_dir=run_dir,
        weights_path=weights if weights.exists() else None,
        best_epoch=state.best_epoch,
        best_val_srcc=state.best_srcc if state.best_epoch else math.nan,
        best_val_plcc=state.best_plcc,
        epochs_completed=len(state.history),
        history=state.history,
        rank=ddp.rank,
        world_size=ddp.world_size,
    )


def _resume_checkpoint(config: TrainConfig, run_dir: Path, resume: bool) -> dict[str, Any] | None:
    """Step 1: the checkpoint a resumed run continues from, checked against the config.

    Args:
        config: The run config.
        run_dir: The run folder.
        resume: Whether the caller asked to resume.

    Returns:
        ``RUN_DIR/last.pt`` read with :func:`load_checkpoint`, or ``None`` for
        a fresh start (no ``resume``, or no checkpoint yet).

    Raises:
        InputError: The config differs from the checkpoint's in a key other
            than :data:`~asna_metric.train.config.RESUMABLE_KEYS`.
    """
    if not (resume and (run_dir / LAST).exists()):
        return None
    checkpoint = load_checkpoint(run_dir / LAST)
    saved = TrainConfig.from_dict(checkpoint["config"])
    changed = [k for k in config.differences(saved) if k not in RESUMABLE_KEYS]
    if changed:
        raise InputError(
            f"cannot resume {run_dir}: the config differs from the checkpoint's in {changed}. "
            "Only epochs and runtime options may change; start a new run with --out NEW_DIR."
        )
    return checkpoint


def _build_model(
    config: TrainConfig,
    *,
    build_net: Any,
    init: nn.Module | None,
    read_init_file: bool,
    device: torch.device,
) -> tuple[nn.Module, dict[str, Any] | None]:
    """Step 2: the network, seeded from ``(seed, "init")``, on its device.

    Args:
        config: The run config (``model.arch``, ``model.net``, ``model.init``).
        build_net: :func:`asna_metric.nets.build_net`.
        init: A network whose weights replace the seeded ones (fine-tuning).
        read_init_file: Whether to load ``model.init`` (``False`` when
            resuming: the checkpoint's weights win).
        device: Where to put the network.

    Returns:
        ``(net, init_file)``: ``init_file`` describes the ``model.init`` file
        loaded (see :func:`asna_metric.train.init_weights.load_init_weights`),
        or is ``None``.
    """
    _seed_everything(derive_seed(config.seed, "init"))
    net = build_net(config.model.arch, dict(config.model.net))
    if init is not None:
        net.load_state_dict(init.state_dict(), strict=True)
    init_file: dict[str, Any] | None = None
    if config.model.init and read_init_file:
        from asna_metric.train.init_weights import load_init_weights

        init_file = load_init_weights(net, config.model.init, prefix=config.model.init_prefix)
    net.to(device)
    return net, init_file


def _build_data(config: TrainConfig, *, size_multiple: int, ddp: _Dist) -> _Data:
    """Step 3: the training and validation datasets and the epoch sampler, from the config.

    With ``data.source = "onthefly"`` see :func:`_build_onthefly_data`.
    Otherwise pairs come from the labels files (``data.labels``), split by reference
    (:func:`_split`); training samples are random aligned crops with
    augmentation (:class:`~asna_metric.train.pairs.TrainPairs`), validation
    samples fixed centre crops (:class:`~asna_metric.train.pairs.ValPairs`).
    A run's epoch draws ``data.samples_per_epoch`` of them in a seeded order
    (:class:`~asna_metric.train.pairs.EpochSampler`), split between the
    processes.

    Args:
        config: The run config (``data``, ``augment``, ``seed``,
            ``optim.batch_size``).
        size_multiple: The network's ``size_multiple`` (crops are rounded
            down to a multiple of it).
        ddp: This process's rank and the number of processes.

    Returns:
        The datasets, sampler, crop size, validation batch, steps per epoch
        and the data description recorded in the weights metadata.

    Raises:
        InputError: Missing labels or images, a crop below the network's
            size multiple, or fewer samples per process than one batch.
    """
    if config.data.source == "onthefly":
        return _build_onthefly_data(config, size_multiple=size_multiple, ddp=ddp)
    records = load_records(config)
    train_records, val_records = _split(config, records)
    check_paths_exist(train_records + val_records)
    info = _data_description(config, train_records, val_records)

    crop = _crop_size(config.data.crop_size, size_multiple, "data.crop_size")
    store = ImageStore(config.data.cache)
    augment = _pair_augment(config)
    train_set = TrainPairs(train_records, crop_size=crop, augment=augment, store=store)
    val_set = ValPairs(
        val_records, crop=config.data.val_crop, size_multiple=size_multiple, store=store
    )
    sampler = EpochSampler(
        len(train_set),
        samples_per_epoch=config.data.samples_per_epoch,
        seed=config.seed,
        rank=ddp.rank,
        world_size=ddp.world_size,
    )
    steps_per_epoch = _steps_per_epoch(len(sampler), config.optim.batch_size)
    if config.data.preload:
        store.preload(train_set.paths() + (val_set.paths() if ddp.main else []))
    return _Data(
        train_set=train_set,
        val_set=val_set,
        sampler=sampler,
        crop=crop,
        val_batch=config.data.val_batch_size if config.data.val_crop else 1,
        steps_per_epoch=steps_per_epoch,
        info=info,
    )


def _pair_augment(config: TrainConfig) -> PairAugment:
    a = config.augment
    return PairAugment(
        dihedral=a.dihedral,
        l_scale_prob=a.l_scale_prob,
        l_scale_min=a.l_scale_min,
        l_scale_max=a.l_scale_max,
    )


def _steps_per_epoch(samples: int, batch_size: int) -> int:
    """Full batches in ``samples`` (this process's samples per epoch); at least one."""
    steps = samples // batch_size
    if steps < 1:
        raise InputError(
            f"each process gets {samples} samples per epoch, fewer than one batch of "
            f"{batch_size}. Raise data.samples_per_epoch (or use fewer processes)."
        )
    return steps


def _crop_size(requested: int, size_multiple: int, key: str) -> int:
    crop = (requested // size_multiple) * size_multiple
    if crop < size_multiple:
        raise InputError(
            f"{key} {requested} is below the network's size multiple "
            f"{size_multiple}. Use a multiple of {size_multiple}."
        )
    return crop


def _build_onthefly_data(config: TrainConfig, *, size_multiple: int, ddp: _Dist) -> _Data:
    """Step 3, ``data.source = "onthefly"``: pairs drawn from the reference photographs.

    Training: random crops of the manifest's ``train`` photographs
    (:func:`~asna_metric.train.onthefly.build_onthefly`), each distorted
    with a random KADID (type, level) of ``data.types`` x ``data.levels``
    minus ``data.exclude_types``, drawn by a
    :class:`~asna_metric.train.onthefly.DistortionGroupSampler`
    (``data.crops_per_distortion`` crops per distorted photograph).
    Validation (made on rank 0 only, once): ``data.val_pairs`` fixed crops
    of side ``data.val_crop`` of the ``val`` photographs, seeded by
    ``(seed, "val")``, the same every epoch
    (:class:`~asna_metric.train.onthefly.FixedPairs`).

    Args:
        config: The run config.
        size_multiple: The network's ``size_multiple``.
        ddp: This process's rank and the number of processes.

    Returns:
        The data step's output; ``info`` records the split manifest (name
        and sha256), the photographs' folders, types, levels, identity rate
        and seed.

    Raises:
        InputError: Missing or changed photographs, a crop below the
            network's size multiple, or fewer samples per process than one
            batch.
    """
    from asna_metric.data.distortions import DISTORTIONS
    from asna_metric.train.onthefly import (
        DistortionGroupSampler,
        FixedPairs,
        build_onthefly,
        manifest_digest,
        select_types,
    )

    d = config.data
    crop = _crop_size(d.crop_size, size_multiple, "data.crop_size")
    val_crop = _crop_size(d.val_crop, size_multiple, "data.val_crop")
    types = select_types(d.types, d.exclude_types)
    levels = list(d.levels) or [1, 2, 3, 4, 5]
    augment = _pair_augment(config)
    common: dict[str, Any] = {
        "types": types,
        "levels": levels,
        "identity_rate": d.identity_rate,
        "manifest": d.split_manifest,
        "verify": d.verify_refs,
        "cache_bytes": d.photo_cache_mb * 2**20,
        "distortion_cache_bytes": d.distortion_cache_mb * 2**20,
    }
    train_set = build_onthefly(
        d.refs,
        "train",
        crop_size=crop,
        pairs_per_epoch=max(d.samples_per_epoch, 1),
        seed=config.seed,
        augment=augment,
        **common,
    )
    samples = d.samples_per_epoch or len(train_set.photos)  # 0: one crop per photograph
    train_set.pairs_per_epoch = samples
    val_seed = derive_seed(config.seed, "val")
    val_source = build_onthefly(
        d.refs, "val", crop_size=val_crop, pairs_per_epoch=1, seed=val_seed, **common
    )
    val_count = d.val_pairs or len(val_source.photos)
    val_source.pairs_per_epoch = val_count
    val_set: Any = (
        FixedPairs(val_source, val_count, num_workers=d.num_workers) if ddp.main else val_source
    )
    sampler = DistortionGroupSampler(
        len(train_set),
        samples_per_epoch=samples,
        seed=config.seed,
        rank=ddp.rank,
        world_size=ddp.world_size,
        crops_per_distortion=d.crops_per_distortion,
        batch_size=config.optim.batch_size,
        num_photos=len(train_set.photos),
    )
    steps_per_epoch = _steps_per_epoch(len(sampler), config.optim.batch_size)
    name, digest = manifest_digest(d.split_manifest)

    def folders(photos: Sequence[Path]) -> list[str]:
        return sorted({p.parent.name for p in photos})

    info = {
        "source": "onthefly",
        "refs": d.refs,
        "split_manifest": name,
        "split_manifest_sha256": digest,
        "train_split": "train",
        "train_folders": folders(train_set.photos),
        "train_references": len(train_set.photos),
        "train_pairs": samples,
        "val_split": "val",
        "val_folders": folders(val_source.photos),
        "val_references": len(val_source.photos),
        "val_pairs": val_count,
        "val_crop": val_crop,
        "val_seed": val_seed,
        "types": types,
        "type_names": [DISTORTIONS[t].name for t in types],
        "excluded_types": list(d.exclude_types),
        "levels": levels,
        "identity_rate": d.identity_rate,
        "crops_per_distortion": d.crops_per_distortion,
        "crop": crop,
        "seed": config.seed,
        "eval_only_in_training": False,  # build_onthefly refuses the manifest's eval-only photos
    }
    return _Data(
        train_set=train_set,
        val_set=val_set,
        sampler=sampler,
        crop=crop,
        val_batch=d.val_batch_size,
        steps_per_epoch=steps_per_epoch,
        info=info,
    )


def _train_loader(
    config: TrainConfig, data: _Data, device: torch.device
) -> torch.utils.data.DataLoader[tuple[Tensor, Tensor, Tensor]]:
    """Step 3b: the DataLoader of training batches (``optim.batch_size``, last partial dropped).

    Args:
        config: The run config (``optim.batch_size``, ``data.num_workers``).
        data: The data step's output.
        device: The training device (pinned memory on CUDA).

    Returns:
        The loader; iterate it once per epoch after ``data.sampler.set_epoch``.
    """
    return torch.utils.data.DataLoader(
        data.train_set,
        batch_size=config.optim.batch_size,
        sampler=data.sampler,
        drop_last=True,
        num_workers=config.data.num_workers,
        pin_memory=device.type == "cuda",
        persistent_workers=config.data.num_workers > 0,
    )


def _build_optimisation(config: TrainConfig, net: nn.Module, device: torch.device) -> _Optimisation:
    """Step 4: Adam, the StepLR schedule, the fp16 grad scaler, autocast and the loss.

    Args:
        config: The run config (``optim``, ``loss``, ``runtime.amp``).
        net: The network to optimise.
        device: The training device.

    Returns:
        The optimisation objects (the scaler is disabled unless fp16 on CUDA).
    """
    optimizer = torch.optim.Adam(
        net.parameters(), lr=config.optim.lr, weight_decay=config.optim.weight_decay
    )
    scheduler = torch.optim.lr_scheduler.StepLR(
        optimizer, step_size=config.optim.lr_step_epochs, gamma=config.optim.lr_gamma
    )
    scaler = torch.amp.GradScaler(
        "cuda", enabled=device.type == "cuda" and config.runtime.amp == "fp16"
    )
    return _Optimisation(
        optimizer=optimizer,
        scheduler=scheduler,
        scaler=scaler,
        autocast=_autocast_factory(config, device),
        loss_fn=_build_loss(config).to(device),
    )


def _start_or_resume(
    config: TrainConfig,
    checkpoint: dict[str, Any] | None,
    *,
    net: nn.Module,
    optim: _Optimisation,
    data: _Data,
    files: _RunFiles,
    init_text: str,
    init_file: dict[str, Any] | None,
    command: str,
    ddp: _Dist,
    device: torch.device,
) -> _Progress:
    """Step 5: restore a checkpoint (weights, optimiser, schedule, generators) or start the run.

    A fresh start writes ``config.json`` and the ``start:`` line of
    ``train.log`` (rank 0); a resumed run rewrites ``metrics.jsonl`` from the
    checkpoint's history and logs where it resumed.

    Args:
        config: The run config.
        checkpoint: From :func:`_resume_checkpoint`, or ``None``.
        net: The network (its weights are replaced from the checkpoint).
        optim: The optimisation objects (their states likewise).
        data: The data step's output (for the start line).
        files: The run-folder writer.
        init_text: Where the starting weights came from, if given.
        init_file: The ``model.init`` file loaded, if any.
        command: The command line of the run.
        ddp: This process's rank and the number of processes.
        device: The training device.

    Returns:
        The run's progress: the first epoch to run, the best so far, the
        history and the init provenance.
    """
    if init_file is not None and not init_text:
        init_text = (
            f"{Path(init_file['path']).name} (sha256 {init_file['sha256'][:12]}...) loaded into "
            f"{init_file['prefix'] or 'the network'!r}, {init_file['tensors']} tensors"
        )
    if checkpoint is None:
        if ddp.main:
            _atomic_write_text(
                files.run_dir / "config.json",
                json.dumps(config.to_dict(), indent=2, sort_keys=True) + "\n",
            )
            files.log(
                f"start: {net.arch} ({sum(p.numel() for p in net.parameters())} parameters), "
                f"{data.info['train_pairs']} training / {data.info['val_pairs']} validation "
                f"pairs, crop {data.crop}, {data.steps_per_epoch} steps of "
                f"{config.optim.batch_size} per epoch x {ddp.world_size} process(es), "
                f"device {device}; command: {command}"
            )
            if init_file is not None:
                files.log(f"init: {json.dumps(init_file, sort_keys=True)}")
        return _Progress(init_text=init_text, init_file=init_file)

    net.load_state_dict(checkpoint["model"])
    optim.optimizer.load_state_dict(checkpoint["optimizer"])
    optim.scheduler.load_state_dict(checkpoint["scheduler"])
    if "scaler" in checkpoint:
        optim.scaler.load_state_dict(checkpoint["scaler"])
    _set_rng_state(checkpoint["rng"])
    state = _Progress(
        start_epoch=int(checkpoint["epoch"]),
        best_srcc=float(checkpoint["best_val_srcc"]),
        best_plcc=float(checkpoint["best_val_plcc"]),
        best_epoch=int(checkpoint["best_epoch"]),
        history=list(checkpoint["history"]),
        init_text=str(checkpoint.get("init", init_text)),
        init_file=checkpoint.get("init_file"),
    )
    files.metrics(state.history, rewrite=True)
    files.log(
        f"resumed from {files.run_dir / LAST} after epoch {state.start_epoch}"
        + (" (model.init not re-applied: the checkpoint's weights win)" if state.init_file else "")
    )
    return state


def _run_epoch(
    config: TrainConfig,
    epoch: int,
    *,
    model: nn.Module,
    net: nn.Module,
    loader: torch.utils.data.DataLoader[tuple[Tensor, Tensor, Tensor]],
    data: _Data,
    optim: _Optimisation,
    last_srcc: float,
    ddp: _Dist,
    device: torch.device,
) -> tuple[dict[str, Any], float]:
    """Step 6: one epoch: re-seed, train on every batch, step the schedule, validate (rank 0).

    Args:
        config: The run config.
        epoch: 0-based epoch number.
        model: The network to train (wrapped in DDP under torchrun).
        net: The plain network (gradient clipping, validation).
        loader: From :func:`_train_loader`.
        data: The data step's output (sampler, validation set).
        optim: The optimisation objects.
        last_srcc: The previous epoch's validation SRCC (for the progress bar).
        ddp: This process's rank and the number of processes.
        device: The training device.

    Returns:
        ``(record, seconds)``: the epoch's ``metrics.jsonl`` record
        (``val_srcc`` and ``val_plcc`` are ``nan`` on ranks other than 0) and
        its wall time in seconds, unrounded.
    """
    _seed_everything(derive_seed(config.seed, "epoch", epoch))
    data.sampler.set_epoch(epoch)
    model.train()
    started = time.perf_counter()
    lr = optim.optimizer.param_groups[0]["lr"]
    show = {True: False, False: True, "auto": None}[config.runtime.progress]
    bar = progress(
        total=data.steps_per_epoch,
        desc=f"epoch {epoch + 1}/{config.epochs}",
        disable=True if not ddp.main else show,
    )
    with bar:
        train_loss, steps = _train_steps(
            config,
            epoch,
            model=model,
            net=net,
            loader=loader,
            optim=optim,
            bar=bar,
            last_srcc=last_srcc,
            device=device,
        )
        if ddp.enabled:
            reduced = torch.tensor([train_loss], dtype=torch.float64)
            torch.distributed.all_reduce(reduced)
            train_loss = float(reduced) / ddp.world_size
        optim.scheduler.step()
        train_seconds = time.perf_counter() - started
        srcc = plcc = math.nan
        if ddp.main:
            srcc, plcc = _validate(
                net, data.val_set, batch_size=data.val_batch, device=device, autocast=optim.autocast
            )
            bar.set_postfix_str(f"loss={train_loss:.4f} val_srcc={srcc:.3f}")
    seconds = time.perf_counter() - started
    record = {
        "epoch": epoch + 1,
        "train_loss": train_loss,
        "val_srcc": srcc,
        "val_plcc": plcc,
        "lr": lr,
        "steps": steps,
        "seconds": round(seconds, 3),
        "seconds_per_step": round(train_seconds / max(steps, 1), 4),
        "world_size": ddp.world_size,
    }
    return record, seconds


def _train_steps(
    config: TrainConfig,
    epoch: int,
    *,
    model: nn.Module,
    net: nn.Module,
    loader: torch.utils.data.DataLoader[tuple[Tensor, Tensor, Tensor]],
    optim: _Optimisation,
    bar: Any,
    last_srcc: float,
    device: torch.device,
) -> tuple[float, int]:
    """The optimisation steps of one epoch, one per batch of the loader.

    Args:
        config: The run config (``optim.grad_clip``).
        epoch: 0-based epoch number (for the error message).
        model: The network to train (wrapped in DDP under torchrun).
        net: The plain network (its parameters are clipped).
        loader: The epoch's batches of ``(dist, ref, quality)``.
        optim: The optimisation objects.
        bar: The epoch's progress bar.
        last_srcc: Shown on the bar.
        device: The training device.

    Returns:
        ``(mean loss of this process's steps, number of steps)``.

    Raises:
        FloatingPointError: The loss is not finite.
    """
    total_loss, steps = 0.0, 0
    for dist, ref, quality in loader:
        dist = dist.to(device, non_blocking=True)
        ref = ref.to(device, non_blocking=True)
        quality = quality.to(device, non_blocking=True)
        optim.optimizer.zero_grad(set_to_none=True)
        with optim.autocast():
            pred = model(dist, ref)
        loss = optim.loss_fn(pred.float(), quality)
        if not torch.isfinite(loss.detach()):
            raise FloatingPointError(
                f"training loss became {float(loss.detach())} at epoch {epoch + 1}, step "
                f"{steps + 1}. Lower optim.lr or enable optim.grad_clip."
            )
        optim.scaler.scale(loss).backward()
        if config.optim.grad_clip:
            optim.scaler.unscale_(optim.optimizer)
            nn.utils.clip_grad_norm_(net.parameters(), config.optim.grad_clip)
        optim.scaler.step(optim.optimizer)
        optim.scaler.update()
        total_loss += float(loss.detach())
        steps += 1
        bar.update(1)
        bar.set_postfix_str(
            f"loss={total_loss / steps:.4f} val_srcc={last_srcc:.3f}", refresh=False
        )
    return total_loss / max(steps, 1), steps


def _save_epoch(
    config: TrainConfig,
    epoch: int,
    *,
    run_dir: Path,
    files: _RunFiles,
    net: nn.Module,
    optim: _Optimisation,
    state: _Progress,
    improved: bool,
    seconds: float,
    command: str,
    data_info: dict[str, Any],
) -> None:
    """Step 7 (rank 0): checkpoints, the best weights export, the metrics line and the log line.

    ``best.pt`` and ``best.safetensors`` are written when the epoch improved
    the validation SRCC, ``last.pt`` after every epoch (atomically, so an
    interruption leaves the previous one).

    Args:
        config: The run config.
        epoch: 0-based epoch number just finished.
        run_dir: The run folder.
        files: The run-folder writer.
        net: The trained network.
        optim: The optimisation objects (their states are saved).
        state: The run's progress, with this epoch's record appended.
        improved: Whether this epoch is the best so far.
        seconds: The epoch's wall time (for the log line).
        command: The command line recorded in the weights metadata.
        data_info: The data description recorded in the weights metadata.
    """
    record = state.history[-1]
    checkpoint = {
        "format": CHECKPOINT_FORMAT,
        "epoch": epoch + 1,
        "model": net.state_dict(),
        "optimizer": optim.optimizer.state_dict(),
        "scheduler": optim.scheduler.state_dict(),
        "scaler": optim.scaler.state_dict(),
        "rng": _rng_state(),
        "best_val_srcc": state.best_srcc,
        "best_val_plcc": state.best_plcc,
        "best_epoch": state.best_epoch,
        "history": state.history,
        "config": config.to_dict(),
        "arch": net.arch,
        "net_config": net.config,
        "init": state.init_text,
        "init_file": state.init_file,
        "asna_metric_version": __version__,
    }
    if improved:
        _atomic_save(checkpoint, run_dir / BEST)
        _export_weights(
            run_dir / WEIGHTS,
            net,
            config=config,
            command=command,
            data=data_info,
            epoch=epoch + 1,
            srcc=record["val_srcc"],
            plcc=record["val_plcc"],
            init=state.init_text,
            init_file=state.init_file,
        )
    _atomic_save(checkpoint, run_dir / LAST)
    files.metrics(state.history)
    files.log(
        f"epoch {epoch + 1}/{config.epochs}: train loss {record['train_loss']:.5f}, val SRCC "
        f"{record['val_srcc']:.4f} PLCC {record['val_plcc']:.4f}, lr {record['lr']:.2e}, "
        f"{seconds:.1f} s ({record['seconds_per_step']:.3f} s/step)"
        f"{' *best*' if improved else ''}"
    )


def describe(result: TrainResult) -> str:
    """One-line summary of a run for the command line.

    Args:
        result: A finished (or stopped) run.

    Returns:
        The summary.
    """
    return (
        f"{result.epochs_completed} epoch(s) in {result.run_dir}; best epoch {result.best_epoch}: "
        f"val SRCC {result.best_val_srcc:.4f}, PLCC {result.best_val_plcc:.4f}; "
        f"weights: {result.weights_path}"
    )


def combine_runs(
    sources: Sequence[str | Path],
    out: str | Path,
    *,
    name: str,
    description: str = "",
    command: str | None = None,
) -> Path:
    """Combine the best networks of several runs into one ensemble weights file.

    Args:
        sources: Run folders (their ``best.safetensors`` is used) or weights
            files; every member of each file is kept, in order.
        out: Destination ``.safetensors`` file.
        name: Ensemble name stored in the metadata.
        description: One line stored in the metadata; a summary by default.
        command: The command recorded as ``train_command``; default
            ``sys.argv``.

    Returns:
        The path written.

    Raises:
        InputError: If no source is given or a run folder has no
            ``best.safetensors`` yet.
    """
    from asna_metric.weights import load_ensemble, save_ensemble

    if not sources:
        raise InputError("combine_runs needs at least one run folder or weights file; got none.")
    members: list[nn.Module] = []
    provenance: list[dict[str, Any]] = []
    for source in sources:
        path = Path(source)
        if path.is_dir():
            path = path / WEIGHTS
        if not path.is_file():
            raise InputError(
                f"{source} has no best weights ({WEIGHTS}): expected a run folder written by "
                "`asna-metric train` after at least one epoch, or a .safetensors file."
            )
        nets, metadata = load_ensemble(path)
        members.extend(nets)
        provenance.append(
            {
                "source": str(path.resolve()),
                "members": len(nets),
                "name": metadata.get("name", ""),
                **{
                    key: metadata[key]
                    for key in (
                        "train_command",
                        "seed",
                        "epoch",
                        "val_srcc",
                        "val_plcc",
                        "git_commit",
                        "init_weights",
                        "init_file",
                        "config",
                        "data",
                    )
                    if key in metadata
                },
            }
        )
    archs = sorted({str(getattr(m, "arch", "?")) for m in members})
    srccs = [p["val_srcc"] for p in provenance if "val_srcc" in p]
    if not description:
        description = (
            f"ensemble of {len(members)} network(s) ({', '.join(archs)}) combined with "
            f"asna_metric {__version__}; member validation SRCC {', '.join(srccs) or 'n/a'}"
        )
    datas = sorted({p.get("data", "") for p in provenance})
    extra = {
        "train_command": command if command is not None else shlex.join(sys.argv),
        "seed": json.dumps([p.get("seed") for p in provenance]),
        "data": datas[0] if len(datas) == 1 else json.dumps(datas),
        "members_provenance": json.dumps(provenance, sort_keys=True),
        "git_commit": _git_commit(),
    }
    return save_ensemble(out, members, name=name, description=description, extra_metadata=extra)
