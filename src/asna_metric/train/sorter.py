"""Learned differentiable sorters for the SoDeep-style rank loss.

A *sorter* maps a batch of score vectors ``(B, n)`` to their estimated
normalised ranks ``(B, n)`` in ``[0, 1]`` (``0`` for the smallest value,
``1`` for the largest; the exact normalised rank of an element is
``rank / (n - 1)`` with ranks counted from 0). It is differentiable, so a loss
on its output sends gradients back to the scores.

Two architectures are provided:

* :class:`PairwiseSorter` (the default, shipped as ``"pairwise"``): a
  permutation-equivariant network that works for **any** length ``n >= 2``.
  Each element's rank is the sum over the other elements of a learned,
  antisymmetric soft comparison of their difference, conditioned on learned
  local-density features of both elements. Differences are measured on
  per-vector standardised values multiplied by ``n - 1`` (so roughly in
  "rank positions"), which makes one set of weights serve every length.
* :class:`PaperSorter` (shipped as ``"paper16"``): the ASNA paper's
  fixed-length 1-D conv net (Conv1D 8-16-32-64-96-128-256 with kernels
  2,3,5,7,10,7,7, PReLU, BatchNorm, flatten, dense ``n``). It only accepts the
  length it was built for (16 in the paper: the batch size).

Both standardise each input vector themselves (zero mean, unit standard
deviation, see :func:`standardize`), so they are invariant to a shift and a
positive rescaling of the scores. They were trained on standardised vectors
drawn by :func:`sample_vectors` (the paper's normal and uniform vectors plus
skewed quality-score-like distributions); ``scripts/train_sorter.py``
reproduces the shipped weights and records its command, seed and log next to
them in ``asna_metric/train/_weights/``.

References:
    Engilberge et al., "SoDeep: a Sorting Deep net to learn ranking loss
    surrogates", CVPR 2019. Ayyoubzadeh and Royat, "(ASNA) An
    Attention-based Siamese-Difference Neural Network with Surrogate Ranking
    Loss function for Perceptual Image Quality Assessment", CVPR Workshops
    (NTIRE) 2021.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor, nn

from asna_metric.errors import InputError, WeightsIntegrityError, WeightsNotFoundError

__all__ = [
    "SORTERS",
    "PairwiseSorter",
    "PaperSorter",
    "SorterName",
    "exact_ranks",
    "fit_sorter",
    "load_sorter",
    "sample_vectors",
    "save_sorter",
    "smooth_ranks",
    "standardize",
]

logger = logging.getLogger(__name__)

SorterName = Literal["pairwise", "paper16"]

#: Shipped sorter weights: name -> file in ``asna_metric/train/_weights``.
SORTERS: dict[str, str] = {
    "pairwise": "sorter_pairwise.safetensors",
    "paper16": "sorter_paper16.safetensors",
}

_FORMAT = "asna_metric_sorter/1"

#: Smallest variance used when standardising a vector (keeps constant vectors finite).
STD_EPS = 1e-8

# Density of a standard normal at its mode: with this factor a standardised
# difference times (n - 1) is close to a difference in rank positions.
_POSITION_SCALE = 1.0 / math.sqrt(2.0 * math.pi)


def standardize(x: Tensor, eps: float = STD_EPS) -> Tensor:
    """Standardise each vector along the last dimension (zero mean, unit std).

    ``(x - mean) / sqrt(var + eps)`` with the population variance. The
    epsilon keeps a constant vector finite (it maps to zeros) and its
    gradient finite.

    Args:
        x: Tensor ``(..., n)``.
        eps: Added to the variance.

    Returns:
        Tensor of the same shape.
    """
    centred = x - x.mean(dim=-1, keepdim=True)
    return centred * torch.rsqrt(centred.pow(2).mean(dim=-1, keepdim=True) + eps)


def exact_ranks(x: Tensor) -> Tensor:
    """Exact normalised ranks along the last dimension (not differentiable).

    Ties are broken by position (the first occurrence ranks lower).

    Args:
        x: Tensor ``(..., n)`` with ``n >= 2``.

    Returns:
        Float tensor of the same shape with values ``rank / (n - 1)`` in ``[0, 1]``.
    """
    n = x.shape[-1]
    order = torch.argsort(x.detach(), dim=-1, stable=True)
    ranks = torch.argsort(order, dim=-1, stable=True)
    dtype = x.dtype if x.is_floating_point() else torch.get_default_dtype()
    return ranks.to(dtype) / (n - 1)


def smooth_ranks(x: Tensor, width: float = 0.5, *, spread: int = 2) -> Tensor:
    """Expected normalised ranks under a small, density-adaptive perturbation.

    Each value is perturbed by independent Gaussian noise whose standard
    deviation is ``width`` times the local spacing of the values (the mean gap
    to the ``spread`` neighbours on each side in sorted order), and the
    expected rank is computed in closed form,
    ``rank_i = sum_j Phi((x_i - x_j) / (width * h_ij * sqrt(2))) - 1/2`` with
    ``h_ij`` the mean of both elements' spacings. This is the training target
    of the shipped :class:`PairwiseSorter`: it differs from exact ranks by a
    fraction of a position, yet is a smooth function of the values (exact ranks
    are a step function whose gradient is zero almost everywhere).

    Args:
        x: Tensor ``(..., n)`` with ``n >= 2``.
        width: Perturbation in local positions (``0`` gives exact ranks).
        spread: Neighbours on each side used to measure the local spacing.

    Returns:
        Tensor of the same shape, values in ``[0, 1]``, mean ``1/2`` per vector.
    """
    n = x.shape[-1]
    if width <= 0:
        return exact_ranks(x)
    x = x.detach()
    sorted_x, order = torch.sort(x, dim=-1)
    idx = torch.arange(n, device=x.device)
    hi = (idx + spread).clamp(max=n - 1)
    lo = (idx - spread).clamp(min=0)
    gaps = (sorted_x[..., hi] - sorted_x[..., lo]) / (hi - lo).to(x.dtype)
    spacing = torch.empty_like(x).scatter_(-1, order, gaps)
    floor = 1e-6 * (x.std(dim=-1, keepdim=True) + 1e-12)
    spacing = spacing.clamp_min(floor)
    h = 0.5 * (spacing.unsqueeze(-1) + spacing.unsqueeze(-2))
    diff = x.unsqueeze(-1) - x.unsqueeze(-2)
    p = torch.special.ndtr(diff / (width * h * math.sqrt(2.0)))
    return (p.sum(dim=-1) - 0.5) / (n - 1)


class PairwiseSorter(nn.Module):
    """Length-independent, permutation-equivariant learned sorter.

    For a vector ``x`` of length ``n`` with standardised values ``z``:

    1. differences in approximate rank positions,
       ``q_ij = (z_i - z_j) * (n - 1) / sqrt(2 pi)``;
    2. local context of each element, ``c_i = log(1 + sum_j psi(q_ij))`` where
       ``psi`` is a bank of learned Gaussian windows over ``q`` (how many
       neighbours lie in learned windows on either side: a learned local
       density, in position units, hence comparable across lengths);
    3. a learned comparison, antisymmetric by construction,
       ``p_ij = sigmoid(g(q_ij, c_i, c_j, log n) - g(-q_ij, c_j, c_i, log n))``
       (``p_ij + p_ji = 1``, ``p_ii = 1/2``);
    4. ``rank_i = (sum_j p_ij - 1/2) / (n - 1)``.

    The output is equivariant to permutations of the input and its mean is
    exactly ``1/2`` for every vector (as for exact ranks). Memory grows as
    ``B * n^2 * hidden``.

    Args:
        hidden: Width of the comparison MLP.
        context: Number of learned density windows.

    Shape:
        - Input: ``(B, n)`` or ``(n,)``, ``n >= 2``.
        - Output: same shape, normalised ranks in ``[0, 1]``.
    """

    def __init__(self, hidden: int = 32, context: int = 8) -> None:
        super().__init__()
        self.config = {"hidden": int(hidden), "context": int(context)}
        # Gaussian bumps exp(-(q - centre)^2 / (2 width^2)) over position differences.
        self.centres = nn.Parameter(torch.linspace(-4.0, 4.0, context))
        self.log_widths = nn.Parameter(torch.zeros(context))
        in_features = 1 + 2 * context + 1
        self.compare = nn.Sequential(
            nn.Linear(in_features, hidden),
            nn.SiLU(),
            nn.Linear(hidden, hidden),
            nn.SiLU(),
            nn.Linear(hidden, 1),
        )

    def _context(self, q: Tensor) -> Tensor:
        width = self.log_widths.exp()
        bumps = torch.exp(-0.5 * ((q.unsqueeze(-1) - self.centres) / width).pow(2))
        counts = bumps.sum(dim=-2)  # (B, n, K): sum over j
        return torch.log1p(counts)

    def forward(self, x: Tensor) -> Tensor:
        """Estimate normalised ranks.

        Args:
            x: Scores ``(B, n)`` or ``(n,)``.

        Returns:
            Normalised ranks, same shape as ``x``.
        """
        squeeze = x.dim() == 1
        if squeeze:
            x = x.unsqueeze(0)
        n = x.shape[-1]
        z = standardize(x)
        q = (z.unsqueeze(-1) - z.unsqueeze(-2)) * ((n - 1) * _POSITION_SCALE)  # (B, n, n)
        ctx = self._context(q)  # (B, n, K)
        b, _, k = ctx.shape
        ci = ctx.unsqueeze(2).expand(b, n, n, k)
        cj = ctx.unsqueeze(1).expand(b, n, n, k)
        log_n = torch.full_like(q, math.log(n) / 4.0).unsqueeze(-1)
        forward = self.compare(torch.cat([q.unsqueeze(-1), ci, cj, log_n], dim=-1))
        backward = self.compare(torch.cat([-q.unsqueeze(-1), cj, ci, log_n], dim=-1))
        p = torch.sigmoid((forward - backward).squeeze(-1))
        ranks = (p.sum(dim=-1) - 0.5) / (n - 1)
        return ranks.squeeze(0) if squeeze else ranks


class PaperSorter(nn.Module):
    """The ASNA paper's fixed-length 1-D convolutional sorter.

    Conv1D layers with 8, 16, 32, 64, 96, 128, 256 channels and kernels 2, 3,
    5, 7, 10, 7, 7 ("same" padding), each followed by PReLU and BatchNorm,
    then flatten and a dense layer to ``length`` outputs. Inputs are
    standardised first; outputs are normalised ranks (the paper regresses
    ranks ``1..16``; ours are ``rank / (n - 1)``, the same up to an affine map).

    Args:
        length: The only vector length it accepts (the paper: 16).

    Shape:
        - Input: ``(B, length)`` or ``(length,)``.
        - Output: same shape.

    Raises:
        InputError: If ``length < 2``, or at call time if the input length differs.
    """

    CHANNELS = (8, 16, 32, 64, 96, 128, 256)
    KERNELS = (2, 3, 5, 7, 10, 7, 7)

    def __init__(self, length: int = 16) -> None:
        super().__init__()
        if int(length) < 2:
            raise InputError(f"PaperSorter length must be >= 2; got {length}. Pass length=16.")
        self.length = int(length)
        self.config = {"length": self.length}
        layers: list[nn.Module] = []
        in_ch = 1
        for ch, k in zip(self.CHANNELS, self.KERNELS, strict=True):
            # "same" padding written out (left (k-1)//2, right k//2, as Keras does).
            layers += [
                nn.ConstantPad1d(((k - 1) // 2, k // 2), 0.0),
                nn.Conv1d(in_ch, ch, k),
                nn.PReLU(ch),
                nn.BatchNorm1d(ch),
            ]
            in_ch = ch
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(in_ch * self.length, self.length)

    def forward(self, x: Tensor) -> Tensor:
        """Estimate normalised ranks.

        Args:
            x: Scores ``(B, length)`` or ``(length,)``.

        Returns:
            Normalised ranks, same shape as ``x``.

        Raises:
            InputError: If the last dimension is not ``length``.
        """
        if x.shape[-1] != self.length:
            raise InputError(
                f"PaperSorter was built for vectors of length {self.length} (the training batch "
                f"size); got length {x.shape[-1]}. Use the length-independent 'pairwise' sorter, "
                f"or train with batch size {self.length}."
            )
        squeeze = x.dim() == 1
        if squeeze:
            x = x.unsqueeze(0)
        h = self.features(standardize(x).unsqueeze(1))
        out = self.head(h.flatten(1))
        return out.squeeze(0) if squeeze else out


_ARCHITECTURES: dict[str, type[nn.Module]] = {
    "PairwiseSorter": PairwiseSorter,
    "PaperSorter": PaperSorter,
}


# --------------------------------------------------------------------------- data


def sample_vectors(
    batch: int,
    n: int,
    *,
    generator: torch.Generator | None = None,
    kind: Literal["mixed", "normal", "uniform", "skewed"] = "mixed",
) -> Tensor:
    """Draw random score vectors to train or test a sorter.

    ``"normal"`` is N(0, 2) and ``"uniform"`` U(-10, 10) (the paper's training
    data); ``"skewed"`` imitates quality scores: per vector, a beta
    distribution with random shape, a lognormal with random sigma, or a
    mixture of two normals, plus a little noise (no exact ties). ``"mixed"``
    draws each vector from one of the three kinds with equal probability.

    Args:
        batch: Number of vectors.
        n: Length of each vector.
        generator: Random generator (reproducibility).
        kind: Distribution family.

    Returns:
        Float32 tensor ``(batch, n)`` (not standardised).

    Raises:
        InputError: If ``batch < 1``, ``n < 2`` or ``kind`` is unknown.
    """
    if batch < 1 or n < 2:
        raise InputError(f"need batch >= 1 and n >= 2; got batch={batch}, n={n}.")
    g = generator

    def rand(*shape: int) -> Tensor:
        return torch.rand(*shape, generator=g)

    def randn(*shape: int) -> Tensor:
        return torch.randn(*shape, generator=g)

    if kind == "normal":
        return randn(batch, n) * 2.0
    if kind == "uniform":
        return rand(batch, n) * 20.0 - 10.0
    if kind == "skewed":
        which = torch.randint(0, 3, (batch, 1), generator=g)
        # torch's Beta sampler takes no generator: the Kumaraswamy distribution (same
        # family of shapes on [0, 1], closed-form inverse CDF) is a seedable stand-in.
        a = 0.5 + 4.5 * rand(batch, 1)
        b = 0.5 + 4.5 * rand(batch, 1)
        u = rand(batch, n).clamp(1e-6, 1 - 1e-6)
        kumaraswamy = (1.0 - (1.0 - u).pow(1.0 / b)).pow(1.0 / a)
        lognormal = torch.exp(randn(batch, n) * (0.2 + 1.0 * rand(batch, 1)))
        shift = 1.0 + 3.0 * rand(batch, 1)
        mixture = randn(batch, n) + shift * (rand(batch, n) < rand(batch, 1)).float()
        x = torch.where(which == 0, kumaraswamy, torch.where(which == 1, lognormal, mixture))
        scale = x.std(dim=-1, keepdim=True).clamp_min(1e-6)
        return x + 1e-3 * scale * randn(batch, n)
    if kind == "mixed":
        which = torch.randint(0, 3, (batch, 1), generator=g)
        parts = [
            sample_vectors(batch, n, generator=g, kind=k) for k in ("normal", "uniform", "skewed")
        ]
        return torch.where(which == 0, parts[0], torch.where(which == 1, parts[1], parts[2]))
    raise InputError(f"kind must be 'mixed', 'normal', 'uniform' or 'skewed'; got {kind!r}.")


# --------------------------------------------------------------------------- training


def fit_sorter(
    sorter: nn.Module,
    *,
    steps: int,
    lengths: tuple[int, ...],
    pairs_per_step: int = 65536,
    lr: float = 1e-3,
    target_width: float = 0.0,
    seed: int = 0,
    log_every: int = 100,
    callback: Callable[[dict[str, float]], None] | None = None,
) -> list[dict[str, float]]:
    """Train a sorter with Adam on the L1 distance to (smoothed) normalised ranks.

    Each step draws one length ``n`` from ``lengths`` (uniformly) and
    ``batch = pairs_per_step // n**2`` vectors (at least 1: the pairwise
    sorter's cost grows as ``batch * n^2``) from
    :func:`sample_vectors` (``kind="mixed"``). The learning rate follows a
    cosine decay to 5 % of ``lr``.

    Args:
        sorter: The network to train (modified in place, left in eval mode).
        steps: Number of optimiser steps.
        lengths: Vector lengths to train on.
        pairs_per_step: Pairs per step (``batch * n^2``).
        lr: Adam learning rate.
        target_width: ``0`` trains on exact ranks (the paper); a positive value
            trains on :func:`smooth_ranks` with that width (in positions).
        seed: Seed of the data generator (and of the length choice).
        log_every: Steps between log records.
        callback: Called with each log record (e.g. to print it).

    Returns:
        The log: a list of ``{"step", "n", "l1_positions", "seconds"}`` records,
        where ``l1_positions`` is the mean absolute rank error in positions over
        the last ``log_every`` steps.

    Raises:
        InputError: If ``steps < 1`` or ``lengths`` is empty or holds a length below 2.
    """
    if steps < 1 or not lengths or min(lengths) < 2:
        raise InputError(f"need steps >= 1 and lengths >= 2; got steps={steps}, lengths={lengths}.")
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(sorter.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: 0.05 + 0.95 * 0.5 * (1.0 + math.cos(math.pi * min(s / steps, 1.0)))
    )
    sorter.train()
    log: list[dict[str, float]] = []
    running, count, start = 0.0, 0, time.monotonic()
    for step in range(1, steps + 1):
        n = lengths[int(torch.randint(0, len(lengths), (1,), generator=g))]
        batch = max(1, pairs_per_step // (n * n))
        x = sample_vectors(batch, n, generator=g)
        target = smooth_ranks(x, target_width) if target_width > 0 else exact_ranks(x)
        loss = (sorter(x) - target).abs().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        running += float(loss.detach()) * (n - 1)
        count += 1
        if step % log_every == 0 or step == steps:
            record = {
                "step": float(step),
                "n": float(n),
                "l1_positions": running / count,
                "seconds": time.monotonic() - start,
            }
            log.append(record)
            logger.info("sorter step %d: L1 %.4f positions", step, record["l1_positions"])
            if callback is not None:
                callback(record)
            running, count = 0.0, 0
    sorter.eval()
    return log


# --------------------------------------------------------------------------- files


def save_sorter(
    path: str | Path, sorter: nn.Module, *, metadata: dict[str, str] | None = None
) -> None:
    """Save a sorter to a ``.safetensors`` file with its architecture and config.

    Args:
        path: Destination file.
        sorter: A :class:`PairwiseSorter` or :class:`PaperSorter`.
        metadata: Extra string metadata (provenance: command, seed, metrics).

    Raises:
        InputError: If the sorter is not one of the known architectures.
    """
    from safetensors.torch import save_file

    arch = type(sorter).__name__
    if arch not in _ARCHITECTURES:
        raise InputError(
            f"sorter must be one of {sorted(_ARCHITECTURES)}; got {arch}. Save other networks "
            "with torch.save."
        )
    meta = {"format": _FORMAT, "arch": arch, "config": json.dumps(sorter.config)}
    meta.update({str(k): str(v) for k, v in (metadata or {}).items()})
    tensors = {k: v.detach().cpu().contiguous() for k, v in sorter.state_dict().items()}
    save_file(tensors, str(path), metadata=meta)


def _load_file(path: Path) -> nn.Module:
    from asna_metric.weights import load_state_file

    try:
        tensors, meta = load_state_file(path)
    except WeightsIntegrityError as exc:
        raise WeightsIntegrityError(
            f"could not read sorter weights {path}: {exc} Re-install asna-metric or rerun "
            "scripts/train_sorter.py."
        ) from exc
    if meta.get("format") != _FORMAT or meta.get("arch") not in _ARCHITECTURES:
        raise WeightsIntegrityError(
            f"{path} is not an asna_metric sorter file (format={meta.get('format')!r}, "
            f"arch={meta.get('arch')!r}); expected format {_FORMAT!r}. Save it with save_sorter."
        )
    net = _ARCHITECTURES[meta["arch"]](**json.loads(meta["config"]))
    try:
        net.load_state_dict(tensors, strict=True)
    except RuntimeError as exc:
        raise WeightsIntegrityError(
            f"sorter weights {path} do not match {meta['arch']}({meta['config']}): {exc}"
        ) from exc
    return net


@functools.lru_cache(maxsize=16)
def _cached(name_or_path: str, device: str, dtype: torch.dtype) -> nn.Module:
    if name_or_path in SORTERS:
        from importlib.resources import as_file, files

        resource = files("asna_metric.train").joinpath("_weights", SORTERS[name_or_path])
        if not resource.is_file():
            raise WeightsNotFoundError(
                f"the shipped sorter weights {SORTERS[name_or_path]} are missing from the "
                "installed package; reinstall asna-metric or run scripts/train_sorter.py."
            )
        with as_file(resource) as path:
            net = _load_file(Path(path))
    else:
        path = Path(name_or_path)
        if not path.is_file():
            raise WeightsNotFoundError(
                f"sorter weights not found: {path}. Pass one of {sorted(SORTERS)} or the path "
                "of a file written by save_sorter."
            )
        net = _load_file(path)
    net.requires_grad_(False)
    return net.eval().to(device=device, dtype=dtype)


def load_sorter(
    name: str | Path = "pairwise",
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> nn.Module:
    """Load a shipped (or saved) sorter, frozen and in eval mode.

    Shipped sorters load from the installed package (no network). Results are
    cached per (name, device, dtype): do not modify the returned module.

    Args:
        name: ``"pairwise"`` (any length), ``"paper16"`` (length 16 only) or a
            path to a ``.safetensors`` file written by :func:`save_sorter`.
        device: Device to place it on (default CPU).
        dtype: Floating dtype (use ``torch.float64`` for gradcheck).

    Returns:
        The sorter, with ``requires_grad=False`` on every parameter.

    Raises:
        UnknownWeightsError: If ``name`` is neither a shipped name nor an existing path.
        WeightsNotFoundError: If a path (or the shipped file) does not exist.
        WeightsIntegrityError: If the file is not a valid sorter file.
    """
    from asna_metric.errors import UnknownWeightsError

    key = str(name)
    if key not in SORTERS and not key.endswith(".safetensors"):
        raise UnknownWeightsError(
            f"unknown sorter {key!r}; expected one of {sorted(SORTERS)} or a path to a "
            "'.safetensors' file written by save_sorter."
        )
    if not dtype.is_floating_point:
        raise InputError(f"dtype must be a floating dtype; got {dtype}. Use torch.float32.")
    dev = torch.device(device) if device is not None else torch.device("cpu")
    return _cached(key, str(dev), dtype)


def sorter_metadata(name: str = "pairwise") -> dict[str, Any]:
    """Return the provenance metadata stored in a shipped sorter file.

    Args:
        name: A shipped sorter name.

    Returns:
        The file's string metadata (architecture, config, command, seed, metrics).

    Raises:
        InputError: If ``name`` is not shipped.
    """
    from importlib.resources import as_file, files

    from asna_metric.weights import load_state_file

    if name not in SORTERS:
        raise InputError(f"unknown sorter {name!r}; expected one of {sorted(SORTERS)}.")
    resource = files("asna_metric.train").joinpath("_weights", SORTERS[name])
    with as_file(resource) as path:
        return load_state_file(path)[1]
