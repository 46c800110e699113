"""Training configuration: typed sections read from a TOML file.

A run is described by one TOML file whose tables mirror the dataclasses
below (``[model]``, ``[data]``, ``[optim]``, ``[loss]``, ``[augment]``,
``[runtime]``) plus the top-level keys ``seed`` and ``epochs``. Every key has
a default equal to the paper's recipe where the paper states one; unknown
keys are rejected so that a typo cannot silently fall back to a default.

Relative paths inside a file (``data.labels``, ``data.root``,
``data.refs``, a ``data.split_manifest`` ending in ``.json``,
``model.init``) are resolved against the folder holding that file, so a
config keeps working whatever the current directory is.

Example:
    >>> from asna_metric.train.config import TrainConfig
    >>> cfg = TrainConfig.from_dict({"epochs": 3, "data": {"crop_size": 64}})
    >>> cfg.optim.lr, cfg.optim.batch_size, cfg.data.crop_size
    (0.0001, 16, 64)
    >>> cfg.with_overrides({"seed": 7}).seed
    7
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

from asna_metric.errors import InputError

__all__ = [
    "AugmentConfig",
    "DataConfig",
    "LossConfig",
    "ModelConfig",
    "OptimConfig",
    "RuntimeConfig",
    "TrainConfig",
    "load_config",
    "parse_override",
]

CacheMode = Literal["memory", "none"]
DataSource = Literal["labels", "onthefly"]
DeviceName = Literal["auto", "cpu", "cuda"]
AmpMode = Literal["none", "bf16", "fp16"]
PearsonForm = Literal["linear", "squared"]
RankSurrogate = Literal["learned", "paper", "soft", "listwise_kl", "none"]

# Keys whose change is allowed when a run is resumed: they do not change the
# arithmetic of training on a given device (epochs only extends the run).
RESUMABLE_KEYS = frozenset(
    {
        "epochs",
        "runtime.device",
        "runtime.threads",
        "runtime.progress",
        "data.num_workers",
        "data.cache",
        "data.preload",
        "data.photo_cache_mb",
        "data.distortion_cache_mb",
        "data.verify_refs",
    }
)


def _fail(section: str, key: str, expected: str, got: object, fix: str = "") -> InputError:
    where = f"{section}.{key}" if section else key
    return InputError(
        f"config key {where!r} must be {expected}; got {got!r}."
        + (f" {fix}" if fix else " Fix the value in the TOML file or the override.")
    )


def _check_int(section: str, key: str, value: object, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise _fail(section, key, f"an integer >= {minimum}", value)


def _check_float(
    section: str, key: str, value: object, minimum: float, *, strict: bool = False
) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _fail(section, key, "a number", value)
    if value < minimum or (strict and value == minimum):
        raise _fail(section, key, f"a number {'>' if strict else '>='} {minimum}", value)


def _check_choice(section: str, key: str, value: object, literal: Any) -> None:
    choices = get_args(literal)
    if value not in choices:
        raise _fail(section, key, f"one of {list(choices)}", value)


@dataclass(frozen=True)
class ModelConfig:
    """Which network to train.

    Attributes:
        arch: Registry name for :func:`asna_metric.nets.build_net`
            (``"asna"``, ``"siamese_diff"``, ``"siamese_diff_convlstm"``,
            ``"efficientnet_lite0"``).
        net: Keyword configuration handed to ``build_net(arch, net)``
            (widths and the like; empty means the architecture's defaults).
        init: Optional ``.safetensors`` file of tensors loaded into the
            freshly built network before training (e.g. converted ImageNet
            weights for an encoder); relative to the config file's folder.
            Every tensor in the file must exist in the network (under
            ``init_prefix``) with the same shape. Empty: none. A resumed run
            takes its weights from the checkpoint, not from this file.
        init_prefix: Prefix added to the file's keys to name the network's
            parameters (``"encoder."`` loads an encoder's tensors into
            ``net.encoder``); empty means the keys are the network's own.
    """

    arch: str = "asna"
    net: dict[str, Any] = field(default_factory=dict)
    init: str = ""
    init_prefix: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.arch, str) or not self.arch:
            raise _fail("model", "arch", "a non-empty architecture name", self.arch)
        if not isinstance(self.net, dict):
            raise _fail("model", "net", "a table of network options", self.net)
        if isinstance(self.init, Path):
            object.__setattr__(self, "init", str(self.init))
        if not isinstance(self.init, str):
            raise _fail("model", "init", "a path to a .safetensors file (or empty)", self.init)
        if self.init and not self.init.endswith(".safetensors"):
            raise _fail(
                "model",
                "init",
                "a path to a .safetensors file (or empty)",
                self.init,
                "Convert the weights first, e.g. with scripts/convert_efficientnet_lite0.py.",
            )
        if not isinstance(self.init_prefix, str):
            raise _fail("model", "init_prefix", 'a key prefix such as "encoder."', self.init_prefix)


@dataclass(frozen=True)
class DataConfig:
    """Where the pairs come from and how they are cut and cached.

    Attributes:
        labels: One or more labels CSV files (as written by ``asna-metric
            synth`` or shipped with a dataset); their records are
            concatenated.
        root: Folder the image paths in the CSV are relative to; empty means
            the folder of each CSV.
        dataset: Name of the dataset reader convention (``""`` for the
            package's own labels format, or e.g. ``"kadid10k"``,
            ``"tid2013"``, ``"pipal"``), passed to the reader.
        val_fraction: Fraction of *reference images* held out for validation
            (content-disjoint split, seeded by the run's seed).
        crop_size: Side of the square training crops (same location in dist
            and ref); rounded down to the network's size multiple.
        samples_per_epoch: Pairs drawn (without replacement within an epoch)
            per epoch; 0 means every training pair once (``"onthefly"``:
            one crop per training photograph).
        val_pairs: Size of the fixed validation subset; 0 means all
            (``"onthefly"``: one crop per validation photograph).
        val_crop: Side of the fixed centre crop used for validation; 0
            validates on full images (one at a time: slower; ``"labels"``
            only). On-the-fly validation crops are random, fixed by the seed.
        val_batch_size: Batch size of the validation forward passes.
        cache: ``"memory"`` keeps decoded images as uint8 tensors after
            their first use (about 0.46 MB per 481x321 image); ``"none"``
            decodes on every access.
        preload: Decode every image before the first epoch (with
            ``cache="memory"``; lets DataLoader workers share the cache).
        num_workers: DataLoader worker processes (0 decodes in the main
            process: best on a small CPU with the memory cache).
        exclude_types: Distortion types left out of training *and*
            validation (matched ignoring case and punctuation, as
            :func:`asna_metric.data.splits.leave_types_out` does); the
            leave-types-out benchmark tests a model trained this way on the
            excluded types. With ``source = "onthefly"`` they are removed
            from ``types``.
        source: ``"labels"``: the pairs of the labels files. ``"onthefly"``:
            pairs drawn on the fly from the reference photographs of a split
            manifest (:mod:`asna_metric.train.onthefly`): random crops of the
            ``train`` split distorted with a random KADID (type, level) and
            labelled with the KADID cell mean; validation is a fixed set of
            ``val_pairs`` crops of side ``val_crop`` from the ``val`` split.
            ``labels``, ``root``, ``dataset``, ``val_fraction``, ``cache``
            and ``preload`` are for ``"labels"`` only.
        refs: Folder of the reference photographs (``"onthefly"``; the
            project's ``../shared/data/refs``).
        split_manifest: Reference split: a shipped name (``"refs-v1"``) or a
            ``.json`` manifest path.
        identity_rate: Probability of an undistorted pair, label 1
            (``"onthefly"``).
        types: KADID type ids or names drawn (``"onthefly"``); empty: all 25.
        levels: Levels 1..5 drawn (``"onthefly"``); empty: all five.
        crops_per_distortion: Training crops cut from each distorted
            photograph (``"onthefly"``): the items of the same slot of that
            many consecutive batches share a photograph, KADID cell and noise
            (:class:`asna_metric.train.onthefly.DistortionGroupSampler`),
            which divides the distortion cost by up to that factor. 1: every
            item its own distortion.
        photo_cache_mb: Per-worker cache of decoded photographs, MiB
            (``"onthefly"``).
        distortion_cache_mb: Per-worker cache of distorted photographs, MiB
            (``"onthefly"``); it must hold a batch's worth (about 0.5 MB per
            481x321 photograph) for ``crops_per_distortion`` to save time.
        verify_refs: Check the photographs' sha256 against the manifest at
            the start (``"onthefly"``).
    """

    labels: tuple[str, ...] = ()
    root: str = ""
    dataset: str = ""
    val_fraction: float = 0.2
    crop_size: int = 288
    samples_per_epoch: int = 0
    val_pairs: int = 0
    val_crop: int = 288
    val_batch_size: int = 16
    cache: CacheMode = "memory"
    preload: bool = False
    num_workers: int = 0
    exclude_types: tuple[str, ...] = ()
    source: DataSource = "labels"
    refs: str = ""
    split_manifest: str = "refs-v1"
    identity_rate: float = 0.05
    types: tuple[int | str, ...] = ()
    levels: tuple[int, ...] = ()
    crops_per_distortion: int = 1
    photo_cache_mb: int = 512
    distortion_cache_mb: int = 64
    verify_refs: bool = True

    def __post_init__(self) -> None:
        excluded = self.exclude_types
        if isinstance(excluded, str):
            excluded = (excluded,)
        if not isinstance(excluded, (list, tuple)) or not all(isinstance(x, str) for x in excluded):
            raise _fail("data", "exclude_types", "a list of distortion type names", excluded)
        object.__setattr__(self, "exclude_types", tuple(excluded))
        labels = self.labels
        if isinstance(labels, (str, Path)):
            labels = (str(labels),)
        if not isinstance(labels, (list, tuple)) or not all(
            isinstance(x, (str, Path)) for x in labels
        ):
            raise _fail("data", "labels", "a path or a list of paths to labels CSV files", labels)
        object.__setattr__(self, "labels", tuple(str(x) for x in labels))
        if not isinstance(self.root, (str, Path)):
            raise _fail("data", "root", "a folder path (or empty)", self.root)
        object.__setattr__(self, "root", str(self.root))
        if not isinstance(self.dataset, str):
            raise _fail("data", "dataset", "a dataset name (or empty)", self.dataset)
        _check_float("data", "val_fraction", self.val_fraction, 0.0, strict=True)
        if self.val_fraction >= 1:
            raise _fail("data", "val_fraction", "a number in (0, 1)", self.val_fraction)
        _check_int("data", "crop_size", self.crop_size, 32)
        _check_int("data", "samples_per_epoch", self.samples_per_epoch, 0)
        _check_int("data", "val_pairs", self.val_pairs, 0)
        _check_int("data", "val_crop", self.val_crop, 0)
        if 0 < self.val_crop < 32:
            raise _fail("data", "val_crop", "0 (full images) or an integer >= 32", self.val_crop)
        _check_int("data", "val_batch_size", self.val_batch_size, 1)
        _check_choice("data", "cache", self.cache, CacheMode)
        if not isinstance(self.preload, bool):
            raise _fail("data", "preload", "true or false", self.preload)
        _check_int("data", "num_workers", self.num_workers, 0)
        self._check_onthefly()

    def _check_onthefly(self) -> None:
        _check_choice("data", "source", self.source, DataSource)
        if not isinstance(self.refs, (str, Path)):
            raise _fail("data", "refs", "a folder path (or empty)", self.refs)
        object.__setattr__(self, "refs", str(self.refs))
        if not isinstance(self.split_manifest, (str, Path)) or not str(self.split_manifest):
            raise _fail(
                "data",
                "split_manifest",
                'a split name such as "refs-v1" or a .json path',
                self.split_manifest,
            )
        object.__setattr__(self, "split_manifest", str(self.split_manifest))
        _check_float("data", "identity_rate", self.identity_rate, 0.0)
        if self.identity_rate > 1:
            raise _fail("data", "identity_rate", "a probability in [0, 1]", self.identity_rate)
        types = (self.types,) if isinstance(self.types, (str, int)) else self.types
        if not isinstance(types, (list, tuple)) or not all(
            isinstance(t, (str, int)) and not isinstance(t, bool) for t in types
        ):
            raise _fail("data", "types", "a list of KADID type ids or names", self.types)
        object.__setattr__(self, "types", tuple(types))
        levels = (self.levels,) if isinstance(self.levels, int) else self.levels
        if not isinstance(levels, (list, tuple)) or not all(
            isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 5 for v in levels
        ):
            raise _fail("data", "levels", "a list of levels 1..5", self.levels)
        object.__setattr__(self, "levels", tuple(levels))
        _check_int("data", "crops_per_distortion", self.crops_per_distortion, 1)
        _check_int("data", "photo_cache_mb", self.photo_cache_mb, 0)
        _check_int("data", "distortion_cache_mb", self.distortion_cache_mb, 0)
        if not isinstance(self.verify_refs, bool):
            raise _fail("data", "verify_refs", "true or false", self.verify_refs)
        if self.source == "onthefly":
            if self.labels:
                raise _fail(
                    "data",
                    "labels",
                    'empty with source = "onthefly"',
                    list(self.labels),
                    'Remove data.labels, or set data.source = "labels".',
                )
            if not self.refs:
                raise _fail(
                    "data",
                    "refs",
                    'a folder of reference photographs with source = "onthefly"',
                    self.refs,
                    "Set data.refs (e.g. the project's ../shared/data/refs).",
                )
            if self.val_crop == 0:
                raise _fail(
                    "data",
                    "val_crop",
                    'an integer >= 32 with source = "onthefly"',
                    self.val_crop,
                    "On-the-fly validation pairs are crops.",
                )


@dataclass(frozen=True)
class OptimConfig:
    """Optimiser and schedule (paper: Adam 1e-4, batch 16, step decay).

    Attributes:
        lr: Adam learning rate.
        batch_size: Pairs per step *per process* (the learned sorter of the
            rank loss ranks exactly 16 values).
        lr_step_epochs: Epochs between learning-rate decays (StepLR).
        lr_gamma: Multiplier applied at each decay (0.5 halves it).
        weight_decay: Adam L2 weight decay.
        grad_clip: Maximum gradient norm; 0 disables clipping.
    """

    lr: float = 1e-4
    batch_size: int = 16
    lr_step_epochs: int = 10
    lr_gamma: float = 0.5
    weight_decay: float = 0.0
    grad_clip: float = 0.0

    def __post_init__(self) -> None:
        _check_float("optim", "lr", self.lr, 0.0, strict=True)
        _check_int("optim", "batch_size", self.batch_size, 2)
        _check_int("optim", "lr_step_epochs", self.lr_step_epochs, 1)
        _check_float("optim", "lr_gamma", self.lr_gamma, 0.0, strict=True)
        _check_float("optim", "weight_decay", self.weight_decay, 0.0)
        _check_float("optim", "grad_clip", self.grad_clip, 0.0)


@dataclass(frozen=True)
class LossConfig:
    """The combined training loss, :class:`asna_metric.train.losses.ASNATrainingLoss`.

    ``alpha * MSE + (1 - alpha) * (1 - PLCC) + beta * rank``; the paper's
    weights are ``alpha = 0.5``, ``beta = 0.1``.

    Attributes:
        alpha: MSE weight; the Pearson term gets ``1 - alpha``.
        beta: Weight of the rank surrogate (0 disables it).
        pearson: ``"linear"`` (``1 - PLCC``) or ``"squared"`` (the paper's
            sign-blind ``1 - PLCC^2``).
        rank: ``"learned"``, ``"paper"`` (the paper's sorter, batch 16 only),
            ``"soft"``, ``"listwise_kl"`` or ``"none"``.
        sorter: Sorter of ``rank = "learned"`` (``"pairwise"``: any batch size).
        temperature: For ``"soft"`` and ``"listwise_kl"``; 0 takes the
            loss's default.
    """

    alpha: float = 0.5
    beta: float = 0.1
    pearson: PearsonForm = "linear"
    rank: RankSurrogate = "learned"
    sorter: str = "pairwise"
    temperature: float = 0.0

    def __post_init__(self) -> None:
        _check_float("loss", "alpha", self.alpha, 0.0)
        if self.alpha > 1:
            raise _fail("loss", "alpha", "a weight in [0, 1]", self.alpha)
        _check_float("loss", "beta", self.beta, 0.0)
        _check_choice("loss", "pearson", self.pearson, PearsonForm)
        _check_choice("loss", "rank", self.rank, RankSurrogate)
        if not isinstance(self.sorter, str) or not self.sorter:
            raise _fail("loss", "sorter", "a sorter name or .safetensors path", self.sorter)
        _check_float("loss", "temperature", self.temperature, 0.0)


@dataclass(frozen=True)
class AugmentConfig:
    """Training augmentation, applied identically to both images of a pair.

    Attributes:
        dihedral: Random rotation by a multiple of 90 degrees and flip (the
            8 symmetries of the square).
        l_scale_prob: Probability of scaling the Lab lightness.
        l_scale_min: Smallest lightness factor.
        l_scale_max: Largest lightness factor (values are clipped, not
            wrapped, to [0, 1] after scaling).
    """

    dihedral: bool = True
    l_scale_prob: float = 0.5
    l_scale_min: float = 0.3
    l_scale_max: float = 1.5

    def __post_init__(self) -> None:
        if not isinstance(self.dihedral, bool):
            raise _fail("augment", "dihedral", "true or false", self.dihedral)
        _check_float("augment", "l_scale_prob", self.l_scale_prob, 0.0)
        if self.l_scale_prob > 1:
            raise _fail("augment", "l_scale_prob", "a probability in [0, 1]", self.l_scale_prob)
        _check_float("augment", "l_scale_min", self.l_scale_min, 0.0, strict=True)
        _check_float("augment", "l_scale_max", self.l_scale_max, 0.0, strict=True)
        if self.l_scale_min > self.l_scale_max:
            raise _fail(
                "augment",
                "l_scale_min",
                f"<= l_scale_max ({self.l_scale_max})",
                self.l_scale_min,
            )


@dataclass(frozen=True)
class RuntimeConfig:
    """Where and how the arithmetic runs (does not change the recipe).

    Attributes:
        device: ``"cpu"``, ``"cuda"`` or ``"auto"`` (CUDA when available).
            Under ``torchrun`` each process uses ``cuda:LOCAL_RANK``.
        amp: Mixed precision on CUDA: ``"none"``, ``"bf16"`` or ``"fp16"``
            (with a gradient scaler); ignored on CPU.
        threads: ``torch.set_num_threads`` for the run; 0 keeps torch's
            default. Use 1 per run when several runs share a small CPU.
        deterministic: Ask torch for deterministic algorithms (exact
            reruns and resumes on CPU; on CUDA this also disables cuDNN
            benchmarking and needs ``CUBLAS_WORKSPACE_CONFIG``).
        progress: Show a progress bar: ``True``, ``False`` or ``"auto"``
            (when stderr is a terminal).
    """

    device: DeviceName = "cpu"
    amp: AmpMode = "none"
    threads: int = 0
    deterministic: bool = True
    progress: bool | str = "auto"

    def __post_init__(self) -> None:
        _check_choice("runtime", "device", self.device, DeviceName)
        _check_choice("runtime", "amp", self.amp, AmpMode)
        _check_int("runtime", "threads", self.threads, 0)
        if not isinstance(self.deterministic, bool):
            raise _fail("runtime", "deterministic", "true or false", self.deterministic)
        if self.progress not in (True, False, "auto"):
            raise _fail("runtime", "progress", 'true, false or "auto"', self.progress)


_SECTIONS: dict[str, type] = {
    "model": ModelConfig,
    "data": DataConfig,
    "optim": OptimConfig,
    "loss": LossConfig,
    "augment": AugmentConfig,
    "runtime": RuntimeConfig,
}


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a training run.

    Attributes:
        seed: Seeds the network initialisation, the reference split and
            every per-epoch random draw (sampling, crops, augmentation).
        epochs: Number of epochs.
        model: Network choice, see :class:`ModelConfig`.
        data: Data, see :class:`DataConfig`.
        optim: Optimiser, see :class:`OptimConfig`.
        loss: Loss weights, see :class:`LossConfig`.
        augment: Augmentation, see :class:`AugmentConfig`.
        runtime: Device and performance options, see :class:`RuntimeConfig`.
        name: Free-form run name (defaults to the config file's stem).
    """

    seed: int = 0
    epochs: int = 30
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
    name: str = "asna"

    def __post_init__(self) -> None:
        _check_int("", "seed", self.seed, 0)
        _check_int("", "epochs", self.epochs, 1)
        if not isinstance(self.name, str):
            raise _fail("", "name", "a string", self.name)

    @classmethod
    def from_dict(
        cls, data: Mapping[str, Any], *, base_dir: str | Path | None = None
    ) -> TrainConfig:
        """Build a config from nested mappings (the parsed TOML).

        Args:
            data: Top-level keys and one mapping per section.
            base_dir: Folder relative ``data.labels``, ``data.root`` and
                ``model.init`` paths are resolved against; ``None`` leaves
                them as given.

        Returns:
            The validated config.

        Raises:
            InputError: On an unknown section or key, or an invalid value.
        """
        if not isinstance(data, Mapping):
            raise InputError(f"a training config must be a table; got {type(data).__name__}.")
        top = {f.name for f in dataclasses.fields(cls)}
        kwargs: dict[str, Any] = {}
        for key, value in data.items():
            if key not in top:
                raise InputError(
                    f"unknown config key {key!r}; expected one of {sorted(top)}. "
                    "Check the spelling (sections are [model], [data], [optim], [loss], "
                    "[augment], [runtime])."
                )
            if key in _SECTIONS:
                section_cls = _SECTIONS[key]
                if not isinstance(value, Mapping):
                    raise _fail("", key, "a table", value)
                names = {f.name for f in dataclasses.fields(section_cls)}
                unknown = sorted(set(value) - names)
                if unknown:
                    raise InputError(
                        f"unknown key(s) {unknown} in [{key}]; expected some of {sorted(names)}. "
                        "Check the spelling."
                    )
                section_kwargs = dict(value)
                if base_dir is not None:
                    section_kwargs = _resolve_paths(section_kwargs, Path(base_dir), key)
                kwargs[key] = section_cls(**section_kwargs)
            else:
                kwargs[key] = value
        return cls(**kwargs)

    def to_dict(self) -> dict[str, Any]:
        """Return the config as plain JSON/TOML-serialisable nested dicts.

        Returns:
            A dict that :meth:`from_dict` turns back into an equal config.
        """
        out = dataclasses.asdict(self)
        for key in ("labels", "types", "levels"):
            out["data"][key] = list(getattr(self.data, key))
        return out

    def with_overrides(self, overrides: Mapping[str, Any]) -> TrainConfig:
        """Return a copy with dotted keys replaced (``{"data.crop_size": 64}``).

        Args:
            overrides: Dotted key -> new value (top-level keys have no dot).

        Returns:
            A new validated config.

        Raises:
            InputError: On an unknown key or an invalid value.
        """
        data = self.to_dict()
        for dotted, value in overrides.items():
            parts = dotted.split(".")
            if len(parts) == 1:
                data[parts[0]] = value
            elif len(parts) == 2 and isinstance(data.get(parts[0]), dict):
                data[parts[0]][parts[1]] = value
            elif len(parts) >= 3 and parts[:2] == ["model", "net"]:
                node = data["model"]["net"]
                for part in parts[2:-1]:
                    node = node.setdefault(part, {})
                node[parts[-1]] = value
            else:
                raise InputError(
                    f"cannot override {dotted!r}: expected 'KEY' or 'SECTION.KEY' with SECTION in "
                    f"{sorted(_SECTIONS)} (or 'model.net.OPTION')."
                )
        return TrainConfig.from_dict(data)

    def differences(self, other: TrainConfig) -> list[str]:
        """List the dotted keys whose values differ between two configs.

        Args:
            other: The config to compare with.

        Returns:
            Sorted dotted keys (``"data.crop_size"``; ``"model.net"`` as a whole).
        """
        a, b = self.to_dict(), other.to_dict()
        keys = []
        for key in sorted(set(a) | set(b)):
            va, vb = a.get(key), b.get(key)
            if isinstance(va, dict) and isinstance(vb, dict) and key != "model":
                keys += [f"{key}.{k}" for k in sorted(set(va) | set(vb)) if va.get(k) != vb.get(k)]
            elif isinstance(va, dict) and isinstance(vb, dict):
                keys += [f"model.{k}" for k in sorted(set(va) | set(vb)) if va.get(k) != vb.get(k)]
            elif va != vb:
                keys.append(key)
        return keys


# Per section: keys holding a list of paths, keys holding one path.
_PATH_KEYS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "data": (("labels",), ("root", "refs")),
    "model": ((), ("init",)),
}


def _resolve_paths(section: dict[str, Any], base: Path, key: str) -> dict[str, Any]:
    list_keys, path_keys = _PATH_KEYS.get(key, ((), ()))
    for name in list_keys:
        values = section.get(name, ())
        if isinstance(values, (str, Path)):
            values = [values]
        if isinstance(values, (list, tuple)):
            section[name] = [
                str((base / x).resolve()) if isinstance(x, (str, Path)) and x else x for x in values
            ]
    for name in path_keys:
        value = section.get(name)
        if isinstance(value, (str, Path)) and str(value):
            section[name] = str((base / value).resolve())
    manifest = section.get("split_manifest") if key == "data" else None
    if isinstance(manifest, (str, Path)) and str(manifest).endswith(".json"):
        section["split_manifest"] = str((base / manifest).resolve())
    return section


def _read_toml(path: Path) -> dict[str, Any]:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        try:
            import tomli as tomllib
        except ImportError as exc:
            raise ImportError(
                "reading TOML configs on Python 3.10 needs tomli: pip install tomli"
            ) from exc
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{path} is not valid TOML: {exc}. Fix the syntax.") from exc


def load_config(path: str | Path, overrides: Mapping[str, Any] | None = None) -> TrainConfig:
    """Read a training config from a TOML file.

    Args:
        path: The ``.toml`` file.
        overrides: Dotted keys to replace after reading
            (``{"epochs": 2, "data.crop_size": 64}``).

    Returns:
        The validated config, with relative data paths resolved against the
        file's folder and ``name`` defaulting to the file's stem.

    Raises:
        InputError: If the file is missing, not TOML, or holds an invalid
            config.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(
            f"training config {str(path)!r} does not exist. Pass a TOML file such as "
            "configs/asna_cpu.toml."
        )
    raw = _read_toml(path)
    raw.setdefault("name", path.stem)
    config = TrainConfig.from_dict(raw, base_dir=path.resolve().parent)
    if overrides:
        config = config.with_overrides(overrides)
    return config


def parse_override(text: str) -> tuple[str, Any]:
    """Parse one ``KEY=VALUE`` override; the value is read as TOML.

    Unquoted words that are not TOML values (``device=cuda``) are taken as
    strings.

    Args:
        text: For example ``"data.crop_size=64"`` or ``"runtime.device=cuda"``.

    Returns:
        ``(dotted_key, value)``.

    Raises:
        InputError: If there is no ``=``.
    """
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise InputError(
            f"an override must look like SECTION.KEY=VALUE (e.g. data.crop_size=64); got {text!r}."
        )
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        import tomli as tomllib
    try:
        parsed = tomllib.loads(f"v = {value.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        parsed = value.strip()
    return key.strip(), parsed
