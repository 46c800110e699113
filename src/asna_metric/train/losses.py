"""Differentiable correlation and ranking losses for training any quality model.

Every loss takes ``pred`` (the model's scores) then ``target`` (the labels),
each of shape ``(N,)`` or ``(N, 1)`` with the same shape, ``N >= 2``, finite,
floating point; anything else raises :class:`~asna_metric.errors.InputError`.
Lower is better. Each loss exists as a function (``pearson_loss``) and a
module (``PearsonLoss``) with the same options.

Scale invariance: the correlation and ranking losses standardise each vector
(zero mean, unit standard deviation, variance epsilon ``1e-8``) before use,
so they are unchanged when the model's outputs are shifted or rescaled by a
positive factor; only :func:`mse_loss` sees the raw scale.

Reduction: losses that decompose over the items of the batch
(:func:`mse_loss`, :func:`rank_loss`, :func:`soft_rank_loss`) accept
``reduction`` in ``{"mean", "sum", "none"}`` (``"none"`` returns the ``(N,)``
per-item terms whose mean is the ``"mean"`` value). :func:`pearson_loss`,
:func:`listwise_kl_loss` and the combined loss are properties of the whole
batch and return a scalar.

Rank normalisation: rank surrogates output normalised ranks ``rank/(n-1)``
in ``[0, 1]`` and the rank losses are scaled by ``6 (n-1) / (n+1)``, so that
with exact ranks ``rank_loss = 1 - SRCC`` exactly: the scale is ``[0, 2]``
at every batch size.

References:
    Ayyoubzadeh and Royat, "(ASNA) An Attention-based Siamese-Difference
    Neural Network with Surrogate Ranking Loss function for Perceptual Image
    Quality Assessment", CVPR Workshops (NTIRE) 2021. Engilberge et al.,
    "SoDeep: a Sorting Deep net to learn ranking loss surrogates", CVPR 2019.
    Cao et al., "Learning to rank: from pairwise approach to listwise
    approach" (ListNet), ICML 2007; used as a listwise KL term by GSN
    (NTIRE 2022 FR-IQA).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Literal, cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from asna_metric.errors import InputError
from asna_metric.train.sorter import load_sorter, standardize

__all__ = [
    "ASNATrainingLoss",
    "ListwiseKLLoss",
    "MSELoss",
    "PearsonLoss",
    "RankLoss",
    "SoftRankLoss",
    "asna_training_loss",
    "listwise_kl_loss",
    "mse_loss",
    "pearson_loss",
    "rank_loss",
    "soft_rank",
    "soft_rank_loss",
]

Reduction = Literal["mean", "sum", "none"]
PearsonForm = Literal["linear", "squared"]
RankSurrogate = Literal["learned", "paper", "soft", "listwise_kl", "none"]

#: Variance epsilon used when standardising or correlating (constant vectors stay finite).
EPS = 1e-8

# Density of a standard normal at its mode: standardised differences times
# (n - 1) * this are close to differences in rank positions.
_POSITION_SCALE = 1.0 / math.sqrt(2.0 * math.pi)


# --------------------------------------------------------------------------- validation


def _check_scores(pred: object, target: object, *, name: str) -> tuple[Tensor, Tensor]:
    """Validate a (pred, target) pair and return both flattened to ``(N,)``."""
    for label, value in (("pred", pred), ("target", target)):
        if not isinstance(value, Tensor):
            raise InputError(
                f"{name}: {label} must be a torch.Tensor of shape (N,) or (N, 1); got "
                f"{type(value).__name__}. Convert it with torch.as_tensor(...)."
            )
        if not value.is_floating_point():
            raise InputError(
                f"{name}: {label} must be a floating-point tensor; got dtype {value.dtype}. "
                "Call .float() on it."
            )
        if not (value.dim() == 1 or (value.dim() == 2 and value.shape[1] == 1)):
            raise InputError(
                f"{name}: {label} must have shape (N,) or (N, 1); got {tuple(value.shape)}. "
                "Flatten the model output to one score per item."
            )
    pred, target = cast(Tensor, pred), cast(Tensor, target)
    if pred.shape != target.shape:
        raise InputError(
            f"{name}: pred and target must have the same shape; got {tuple(pred.shape)} and "
            f"{tuple(target.shape)}. Use the same layout for both, e.g. .view(-1)."
        )
    n = pred.shape[0]
    if n < 2:
        raise InputError(
            f"{name}: needs a batch of at least 2 items (a correlation or ranking needs two "
            f"points); got N={n}. Use a batch size of 2 or more."
        )
    for label, value in (("pred", pred), ("target", target)):
        if not bool(torch.isfinite(value.detach()).all()):
            raise InputError(
                f"{name}: {label} must be finite; got NaN or Inf values. Check the model "
                "output (exploding training?) and the labels."
            )
    if pred.device != target.device:
        raise InputError(
            f"{name}: pred and target must be on the same device; got {pred.device} and "
            f"{target.device}. Move the labels with .to(pred.device)."
        )
    return pred.reshape(-1), target.reshape(-1).to(pred.dtype)


def _reduce(terms: Tensor, reduction: str, *, name: str) -> Tensor:
    if reduction == "mean":
        return terms.mean()
    if reduction == "sum":
        return terms.sum()
    if reduction == "none":
        return terms
    raise InputError(f"{name}: reduction must be 'mean', 'sum' or 'none'; got {reduction!r}.")


def _check_reduction(reduction: str, *, name: str) -> None:
    if reduction not in ("mean", "sum", "none"):
        raise InputError(f"{name}: reduction must be 'mean', 'sum' or 'none'; got {reduction!r}.")


def _check_positive(value: float, *, label: str, name: str) -> None:
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
        raise InputError(f"{name}: {label} must be a positive finite number; got {value!r}.")


def _rank_scale(n: int) -> float:
    """Factor making ``mean((r1 - r2)^2)`` of normalised exact ranks equal ``1 - SRCC``."""
    return 6.0 * (n - 1) / (n + 1)


# --------------------------------------------------------------------------- MSE


def mse_loss(pred: Tensor, target: Tensor, *, reduction: Reduction = "mean") -> Tensor:
    """Mean squared error with the package's input rules.

    Args:
        pred: Predicted scores ``(N,)`` or ``(N, 1)``.
        target: Labels, same shape as ``pred``.
        reduction: ``"mean"``, ``"sum"`` or ``"none"`` (per-item ``(N,)``).

    Returns:
        Scalar, or ``(N,)`` with ``reduction="none"``.

    Raises:
        InputError: On a bad shape, ``N < 2``, non-finite values or a bad reduction.

    Example:
        >>> mse_loss(torch.tensor([0.0, 1.0]), torch.tensor([0.0, 0.0]))
        tensor(0.5000)
    """
    _check_reduction(reduction, name="mse_loss")
    p, t = _check_scores(pred, target, name="mse_loss")
    return F.mse_loss(p, t, reduction=reduction)


class MSELoss(nn.Module):
    """Module form of :func:`mse_loss`.

    Args:
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.
    """

    def __init__(self, *, reduction: Reduction = "mean") -> None:
        super().__init__()
        _check_reduction(reduction, name="MSELoss")
        self.reduction = reduction

    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        """Compute the loss (see :func:`mse_loss`)."""
        return mse_loss(pred, target, reduction=self.reduction)


# --------------------------------------------------------------------------- Pearson


def pearson_loss(
    pred: Tensor, target: Tensor, *, squared: bool = False, eps: float = EPS
) -> Tensor:
    """Pearson correlation loss: ``1 - PLCC`` (default) or the paper's ``1 - PLCC^2``.

    ``PLCC = <p, t> / (sqrt(|p|^2 + n eps) sqrt(|t|^2 + n eps))`` on the centred
    vectors ``p`` and ``t``: the epsilon keeps the value and its gradient finite
    when the predictions are constant (the gradient then points towards the
    centred target).

    The default ``1 - PLCC`` (range ``[0, 2]``) is zero only for a perfectly
    *positively* correlated model. The paper's squared form ``1 - PLCC^2``
    (range ``[0, 1]``) is sign-blind: a perfectly anti-correlated model also
    scores zero and its gradient vanishes near ``PLCC = 0``, so a model can
    drift to the wrong sign; keep it for reproducing the paper.

    Args:
        pred: Predicted scores ``(N,)`` or ``(N, 1)``.
        target: Labels, same shape.
        squared: ``True`` for the paper's ``1 - PLCC^2``.
        eps: Variance epsilon (per item).

    Returns:
        Scalar tensor (the loss is a property of the whole batch: no reduction).

    Raises:
        InputError: On a bad shape, ``N < 2`` or non-finite values.

    Example:
        >>> t = torch.tensor([0.1, 0.5, 0.3, 0.9])
        >>> float(pearson_loss(2 * t + 1, t)) < 1e-6
        True
    """
    p, t = _check_scores(pred, target, name="pearson_loss")
    n = p.shape[0]
    pc = p - p.mean()
    tc = t - t.mean()
    num = (pc * tc).sum()
    den = torch.sqrt(pc.pow(2).sum() + n * eps) * torch.sqrt(tc.pow(2).sum() + n * eps)
    r = num / den
    return 1.0 - r.pow(2) if squared else 1.0 - r


class PearsonLoss(nn.Module):
    """Module form of :func:`pearson_loss`.

    Args:
        squared: ``True`` for the paper's sign-blind ``1 - PLCC^2``.
        eps: Variance epsilon.
    """

    def __init__(self, *, squared: bool = False, eps: float = EPS) -> None:
        super().__init__()
        _check_positive(eps, label="eps", name="PearsonLoss")
        self.squared = bool(squared)
        self.eps = float(eps)

    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        """Compute the loss (see :func:`pearson_loss`)."""
        return pearson_loss(pred, target, squared=self.squared, eps=self.eps)

    def extra_repr(self) -> str:
        """Options shown by ``repr``."""
        return f"squared={self.squared}"


# --------------------------------------------------------------------------- learned rank loss


def _resolve_sorter(sorter: str | Path | nn.Module, like: Tensor) -> nn.Module:
    if isinstance(sorter, nn.Module):
        return sorter
    return load_sorter(sorter, device=like.device, dtype=like.dtype)


def _apply_sorter(sorter: nn.Module, x: Tensor) -> Tensor:
    """Run ``sorter`` on ``x (1, n)`` with its parameters detached (frozen), in eval mode."""
    params = {k: v.detach() for k, v in sorter.named_parameters()}
    buffers = dict(sorter.named_buffers())
    was_training = sorter.training
    sorter.eval()
    try:
        out = torch.func.functional_call(sorter, {**params, **buffers}, (x,))
    finally:
        sorter.train(was_training)
    return out


def rank_loss(
    pred: Tensor,
    target: Tensor,
    *,
    sorter: str | Path | nn.Module = "pairwise",
    reduction: Reduction = "mean",
) -> Tensor:
    """Learned surrogate ranking loss (SoDeep, as in ASNA).

    ``L = 6 (n-1)/(n+1) * mean((R(target) - R(pred))^2)`` where ``R`` is a frozen
    learned sorter returning normalised ranks in ``[0, 1]``. With exact ranks
    this equals ``1 - SRCC``; the sorter makes it differentiable. Both vectors
    are standardised inside the sorter (shift and scale invariance). The
    sorter's weights never receive gradients (they are detached), only
    ``pred`` does.

    Args:
        pred: Predicted scores ``(N,)`` or ``(N, 1)``.
        target: Labels, same shape.
        sorter: ``"pairwise"`` (shipped, any ``N``), ``"paper16"`` (the paper's
            conv sorter, ``N = 16`` only), a path to a file written by
            :func:`~asna_metric.train.sorter.save_sorter`, or a module mapping
            ``(B, N)`` to normalised ranks (called with detached parameters).
        reduction: ``"mean"``, ``"sum"`` or ``"none"`` (per-item ``(N,)``).

    Returns:
        Scalar, or ``(N,)`` with ``reduction="none"``.

    Raises:
        InputError: On a bad shape, ``N < 2``, non-finite values, a bad reduction,
            or ``N != 16`` with ``sorter="paper16"``.
        UnknownWeightsError: If ``sorter`` names no shipped sorter or file.

    Example:
        >>> t = torch.tensor([0.1, 0.5, 0.3, 0.9, 0.7, 0.2])
        >>> float(rank_loss(t * 3, t)) < 0.05
        True
    """
    _check_reduction(reduction, name="rank_loss")
    p, t = _check_scores(pred, target, name="rank_loss")
    net = _resolve_sorter(sorter, p)
    both = torch.stack([p, t])  # (2, n): one call, the same sorter for both
    ranks = _apply_sorter(net, both)
    terms = (ranks[0] - ranks[1]).pow(2) * _rank_scale(p.shape[0])
    return _reduce(terms, reduction, name="rank_loss")


class RankLoss(nn.Module):
    """Module form of :func:`rank_loss`.

    A named sorter is loaded at construction (from the package, no network)
    and kept frozen outside the module (nothing is added to ``parameters()``
    or ``state_dict()``); copies for other devices and dtypes are made on
    first use. A sorter module passed in is frozen (``requires_grad_(False)``,
    eval mode) and registered as a submodule, so ``.to(device)`` moves it.

    Args:
        sorter: See :func:`rank_loss`.
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.
    """

    def __init__(
        self, *, sorter: str | Path | nn.Module = "pairwise", reduction: Reduction = "mean"
    ) -> None:
        super().__init__()
        _check_reduction(reduction, name="RankLoss")
        if isinstance(sorter, nn.Module):
            sorter.requires_grad_(False).eval()
            self.sorter: nn.Module | None = sorter
            self._name: str | Path | None = None
        else:
            load_sorter(sorter)  # fail early on an unknown name or a missing file
            self.sorter = None
            self._name = sorter
        self.reduction = reduction

    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        """Compute the loss (see :func:`rank_loss`)."""
        sorter = self.sorter if self.sorter is not None else self._name
        assert sorter is not None  # set in __init__; narrows the type
        return rank_loss(pred, target, sorter=sorter, reduction=self.reduction)

    def extra_repr(self) -> str:
        """Options shown by ``repr``."""
        if self.sorter is not None:
            return f"reduction={self.reduction!r}"
        return f"sorter={str(self._name)!r}, reduction={self.reduction!r}"


# --------------------------------------------------------------------------- closed-form soft rank


def soft_rank(x: Tensor, *, temperature: float = 0.5) -> Tensor:
    """Closed-form differentiable ranks: a pairwise sigmoid on standardised values.

    ``r_i = (sum_j sigmoid(q_ij / temperature) - 1/2) / (n - 1)`` with
    ``q_ij = (z_i - z_j) (n - 1) / sqrt(2 pi)`` and ``z`` the standardised
    vector: ``q`` is roughly a difference in rank positions (exact near the
    centre of a normal sample), so ``temperature`` is the width of the soft
    step in positions and one value works at every batch size. Smaller is
    closer to exact ranks with sparser gradients.

    Args:
        x: Scores ``(..., n)``, ``n >= 2``.
        temperature: Width of the soft comparison, in positions.

    Returns:
        Normalised ranks ``(..., n)`` in ``[0, 1]`` with mean ``1/2`` per vector.

    Raises:
        InputError: If ``x`` is not a floating tensor with last dimension ``>= 2``
            or ``temperature`` is not positive.

    Example:
        >>> soft_rank(torch.tensor([3.0, 1.0, 2.0]), temperature=0.05)
        tensor([1.0000, 0.0000, 0.5000])
    """
    if not isinstance(x, Tensor) or not x.is_floating_point() or x.dim() < 1 or x.shape[-1] < 2:
        shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise InputError(
            f"soft_rank: x must be a floating tensor (..., n) with n >= 2; got {shape}."
        )
    _check_positive(temperature, label="temperature", name="soft_rank")
    n = x.shape[-1]
    z = standardize(x, EPS)
    q = (z.unsqueeze(-1) - z.unsqueeze(-2)) * ((n - 1) * _POSITION_SCALE / temperature)
    return (torch.sigmoid(q).sum(dim=-1) - 0.5) / (n - 1)


def soft_rank_loss(
    pred: Tensor,
    target: Tensor,
    *,
    temperature: float = 0.5,
    reduction: Reduction = "mean",
) -> Tensor:
    """Ranking loss on closed-form soft ranks (an alternative to the learned sorter).

    ``L = 6 (n-1)/(n+1) * mean((soft_rank(target) - soft_rank(pred))^2)``, on the
    same ``1 - SRCC`` scale as :func:`rank_loss`.

    Args:
        pred: Predicted scores ``(N,)`` or ``(N, 1)``.
        target: Labels, same shape.
        temperature: Soft-step width in rank positions (see :func:`soft_rank`).
        reduction: ``"mean"``, ``"sum"`` or ``"none"`` (per-item ``(N,)``).

    Returns:
        Scalar, or ``(N,)`` with ``reduction="none"``.

    Raises:
        InputError: On a bad shape, ``N < 2``, non-finite values, a bad reduction
            or a non-positive temperature.

    Example:
        >>> t = torch.tensor([0.1, 0.5, 0.3, 0.9])
        >>> bool(soft_rank_loss(t, t) == 0)
        True
    """
    _check_reduction(reduction, name="soft_rank_loss")
    _check_positive(temperature, label="temperature", name="soft_rank_loss")
    p, t = _check_scores(pred, target, name="soft_rank_loss")
    ranks = soft_rank(torch.stack([p, t]), temperature=temperature)
    terms = (ranks[0] - ranks[1]).pow(2) * _rank_scale(p.shape[0])
    return _reduce(terms, reduction, name="soft_rank_loss")


class SoftRankLoss(nn.Module):
    """Module form of :func:`soft_rank_loss`.

    Args:
        temperature: Soft-step width in rank positions.
        reduction: ``"mean"``, ``"sum"`` or ``"none"``.
    """

    def __init__(self, *, temperature: float = 0.5, reduction: Reduction = "mean") -> None:
        super().__init__()
        _check_reduction(reduction, name="SoftRankLoss")
        _check_positive(temperature, label="temperature", name="SoftRankLoss")
        self.temperature = float(temperature)
        self.reduction = reduction

    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        """Compute the loss (see :func:`soft_rank_loss`)."""
        return soft_rank_loss(pred, target, temperature=self.temperature, reduction=self.reduction)

    def extra_repr(self) -> str:
        """Options shown by ``repr``."""
        return f"temperature={self.temperature}, reduction={self.reduction!r}"


# --------------------------------------------------------------------------- listwise KL


def listwise_kl_loss(
    pred: Tensor,
    target: Tensor,
    *,
    temperature: float = 1.0,
    standardize_inputs: bool = True,
) -> Tensor:
    """Listwise KL loss (ListNet top-one probabilities, as used by GSN).

    ``KL(softmax(t / T) || softmax(p / T))`` over the batch, with ``p`` and ``t``
    standardised first (by default) so that ``temperature`` has the same
    meaning for any output scale. Zero when the standardised vectors are equal.

    Args:
        pred: Predicted scores ``(N,)`` or ``(N, 1)``.
        target: Labels, same shape.
        temperature: Softmax temperature (smaller focuses on the best items).
        standardize_inputs: Standardise both vectors first (``False``: raw scores).

    Returns:
        Scalar tensor (a property of the whole batch: no reduction).

    Raises:
        InputError: On a bad shape, ``N < 2``, non-finite values or a
            non-positive temperature.

    Example:
        >>> t = torch.tensor([0.1, 0.5, 0.3, 0.9])
        >>> float(listwise_kl_loss(5 * t, t)) < 1e-6
        True
    """
    _check_positive(temperature, label="temperature", name="listwise_kl_loss")
    p, t = _check_scores(pred, target, name="listwise_kl_loss")
    if standardize_inputs:
        p, t = standardize(p, EPS), standardize(t, EPS)
    log_q = torch.log_softmax(p / temperature, dim=0)
    log_p = torch.log_softmax(t / temperature, dim=0)
    return (log_p.exp() * (log_p - log_q)).sum()


class ListwiseKLLoss(nn.Module):
    """Module form of :func:`listwise_kl_loss`.

    Args:
        temperature: Softmax temperature.
        standardize_inputs: Standardise both vectors first.
    """

    def __init__(self, *, temperature: float = 1.0, standardize_inputs: bool = True) -> None:
        super().__init__()
        _check_positive(temperature, label="temperature", name="ListwiseKLLoss")
        self.temperature = float(temperature)
        self.standardize_inputs = bool(standardize_inputs)

    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        """Compute the loss (see :func:`listwise_kl_loss`)."""
        return listwise_kl_loss(
            pred,
            target,
            temperature=self.temperature,
            standardize_inputs=self.standardize_inputs,
        )

    def extra_repr(self) -> str:
        """Options shown by ``repr``."""
        return f"temperature={self.temperature}"


# --------------------------------------------------------------------------- combined


def _check_options(alpha: float, beta: float, pearson: str, rank: str) -> None:
    name = "asna_training_loss"
    if not (isinstance(alpha, (int, float)) and 0.0 <= alpha <= 1.0):
        raise InputError(f"{name}: alpha must be in [0, 1]; got {alpha!r}. The paper uses 0.5.")
    if not (isinstance(beta, (int, float)) and math.isfinite(beta) and beta >= 0.0):
        raise InputError(f"{name}: beta must be >= 0; got {beta!r}. The paper uses 0.1.")
    if pearson not in ("linear", "squared"):
        raise InputError(f"{name}: pearson must be 'linear' or 'squared'; got {pearson!r}.")
    if rank not in ("learned", "paper", "soft", "listwise_kl", "none"):
        raise InputError(
            f"{name}: rank must be 'learned', 'paper', 'soft', 'listwise_kl' or 'none'; "
            f"got {rank!r}."
        )


def _combined_parts(
    pred: Tensor,
    target: Tensor,
    *,
    alpha: float,
    beta: float,
    pearson: PearsonForm,
    rank: RankSurrogate,
    sorter: str | Path | nn.Module,
    temperature: float,
) -> dict[str, Tensor]:
    name = "asna_training_loss"
    _check_options(alpha, beta, pearson, rank)
    p, t = _check_scores(pred, target, name=name)
    parts = {
        "mse": mse_loss(p, t),
        "pearson": pearson_loss(p, t, squared=pearson == "squared"),
    }
    if rank == "learned":
        parts["rank"] = rank_loss(p, t, sorter=sorter)
    elif rank == "paper":
        parts["rank"] = rank_loss(p, t, sorter="paper16")
    elif rank == "soft":
        parts["rank"] = soft_rank_loss(p, t, temperature=temperature)
    elif rank == "listwise_kl":
        parts["rank"] = listwise_kl_loss(p, t, temperature=temperature)
    else:
        parts["rank"] = p.new_zeros(())
    parts["total"] = alpha * parts["mse"] + (1.0 - alpha) * parts["pearson"] + beta * parts["rank"]
    return parts


def asna_training_loss(
    pred: Tensor,
    target: Tensor,
    *,
    alpha: float = 0.5,
    beta: float = 0.1,
    pearson: PearsonForm = "linear",
    rank: RankSurrogate = "learned",
    sorter: str | Path | nn.Module = "pairwise",
    temperature: float | None = None,
) -> Tensor:
    """The paper's combined loss ``alpha*MSE + (1-alpha)*Pearson + beta*Rank``.

    Defaults follow the paper's weights (``alpha = 0.5``, ``beta = 0.1``) with
    two documented differences: the Pearson term is ``1 - PLCC`` (the paper's
    sign-blind ``1 - PLCC^2`` is ``pearson="squared"``), and the rank term is
    on the ``1 - SRCC`` scale (normalised ranks; the paper's unnormalised ranks
    ``1..16`` make its rank term ``(n^2 - 1)/6 = 42.5`` times larger at
    ``n = 16``, so ``beta = 4.25`` reproduces the paper's balance there).
    MSE sees raw scores, so put ``pred`` and ``target`` on the same scale
    (e.g. the quality scale ``[0, 1]``).

    Args:
        pred: Predicted scores ``(N,)`` or ``(N, 1)``.
        target: Labels, same shape.
        alpha: MSE weight; the Pearson term gets ``1 - alpha``.
        beta: Rank term weight (``0`` disables it).
        pearson: ``"linear"`` (``1 - PLCC``) or ``"squared"`` (``1 - PLCC^2``).
        rank: ``"learned"`` (:func:`rank_loss` with ``sorter``), ``"paper"`` (the
            paper's conv sorter, ``N = 16`` only), ``"soft"``
            (:func:`soft_rank_loss`), ``"listwise_kl"`` (:func:`listwise_kl_loss`)
            or ``"none"``.
        sorter: Sorter for ``rank="learned"`` (see :func:`rank_loss`).
        temperature: For ``"soft"`` (default 0.5) and ``"listwise_kl"`` (default 1.0).

    Returns:
        Scalar tensor.

    Raises:
        InputError: On bad inputs or options.

    Example:
        >>> t = torch.tensor([0.1, 0.5, 0.3, 0.9])
        >>> float(asna_training_loss(t, t)) < 1e-3
        True
    """
    return _combined_parts(
        pred,
        target,
        alpha=alpha,
        beta=beta,
        pearson=pearson,
        rank=rank,
        sorter=sorter,
        temperature=_default_temperature(rank, temperature),
    )["total"]


def _default_temperature(rank: str, temperature: float | None) -> float:
    if temperature is None:
        return 1.0 if rank == "listwise_kl" else 0.5
    _check_positive(temperature, label="temperature", name="asna_training_loss")
    return float(temperature)


class ASNATrainingLoss(nn.Module):
    """Module form of :func:`asna_training_loss`, with a per-term breakdown.

    Args:
        alpha: MSE weight; the Pearson term gets ``1 - alpha``.
        beta: Rank term weight.
        pearson: ``"linear"`` or ``"squared"``.
        rank: ``"learned"``, ``"paper"``, ``"soft"``, ``"listwise_kl"`` or ``"none"``.
        sorter: Sorter for ``rank="learned"``.
        temperature: For ``"soft"`` and ``"listwise_kl"``.

    Example:
        >>> loss = ASNATrainingLoss()
        >>> sorted(loss.components(torch.rand(8), torch.rand(8)))
        ['mse', 'pearson', 'rank', 'total']
    """

    def __init__(
        self,
        *,
        alpha: float = 0.5,
        beta: float = 0.1,
        pearson: PearsonForm = "linear",
        rank: RankSurrogate = "learned",
        sorter: str | Path | nn.Module = "pairwise",
        temperature: float | None = None,
    ) -> None:
        super().__init__()
        self.alpha = alpha
        self.beta = beta
        self.pearson = pearson
        self.rank = rank
        self.temperature = _default_temperature(rank, temperature)
        _check_options(alpha, beta, pearson, rank)  # now rather than at the first batch
        if isinstance(sorter, nn.Module):
            sorter.requires_grad_(False).eval()
            self.sorter = sorter  # registered: .to(device) moves it
        else:
            object.__setattr__(self, "_sorter_arg", sorter)  # a name: not a submodule
            if rank == "learned":
                load_sorter(sorter)  # fail early on an unknown name or a missing file
        if rank == "paper":
            load_sorter("paper16")

    def components(self, pred: Tensor, target: Tensor) -> dict[str, Tensor]:
        """Return every term: ``{"mse", "pearson", "rank", "total"}`` (for logging)."""
        return _combined_parts(
            pred,
            target,
            alpha=self.alpha,
            beta=self.beta,
            pearson=self.pearson,
            rank=self.rank,
            sorter=self._sorter,
            temperature=self.temperature,
        )

    @property
    def _sorter(self) -> str | Path | nn.Module:
        sorter = self._modules.get("sorter")
        return sorter if sorter is not None else self.__dict__["_sorter_arg"]

    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        """Compute the combined loss (see :func:`asna_training_loss`)."""
        return self.components(pred, target)["total"]

    def extra_repr(self) -> str:
        """Options shown by ``repr``."""
        return f"alpha={self.alpha}, beta={self.beta}, pearson={self.pearson!r}, rank={self.rank!r}"
