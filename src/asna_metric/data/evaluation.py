"""Correlation between a metric's predictions and human scores.

The statistics of the IQA literature, computed the standard way:

* SRCC (Spearman) and KRCC (Kendall tau-b): rank agreement, blind to any
  monotone rescaling of the predictions;
* PLCC after the VQEG four-parameter logistic fit
  ``y = (b1 - b2) / (1 + exp(-(x - b3) / |b4|)) + b2`` of the predictions
  ``x`` onto the human scores ``y`` (the number papers report as PLCC), and
  ``plcc_raw`` without the fit;
* RMSE of the fitted predictions, in the units of the human scores;
* percentile bootstrap confidence intervals (pairs resampled with
  replacement; the logistic fitted once, or refitted per resample);
* the same statistics per distortion type.

Signs: SRCC, KRCC and ``plcc_raw`` are signed (a lower-is-better metric such
as a distance has negative correlations with quality); the fitted PLCC is
non-negative when the logistic can bend either way, which it can because
``b1 < b2`` is allowed.

scipy is imported inside the functions (``pip install 'asna-metric[eval]'``).

Example:
    >>> from asna_metric.data.evaluation import evaluate
    >>> result = evaluate([0.1, 0.4, 0.35, 0.8, 0.9], [1.0, 2.0, 2.5, 4.0, 4.5], bootstrap=0)
    >>> round(result["srcc"], 3)
    0.9

References:
    VQEG, "Final report from the Video Quality Experts Group on the
    validation of objective models of video quality assessment, phase II",
    2003 (the logistic fit). Sheikh, Sabir, Bovik, "A statistical evaluation
    of recent full reference image quality assessment algorithms", IEEE TIP
    2006.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from asna_metric.errors import InputError

__all__ = [
    "LogisticFit",
    "bootstrap_ci",
    "evaluate",
    "fit_logistic",
    "krcc",
    "logistic4",
    "plcc",
    "plcc_fitted",
    "rmse_fitted",
    "srcc",
]

logger = logging.getLogger(__name__)

_MIN_N = 3
_MIN_FIT_N = 5
_STATISTICS = ("srcc", "plcc", "plcc_raw", "krcc", "rmse")


def _scipy() -> Any:
    try:
        import scipy.optimize
        import scipy.special
        import scipy.stats
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "correlation statistics need scipy: pip install 'asna-metric[eval]'"
        ) from exc
    return scipy


def _as_vector(values: Any, name: str) -> np.ndarray:
    if hasattr(values, "detach"):  # a torch tensor, without importing torch
        values = values.detach().cpu().double().numpy()
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError(
            f"{name} must be a sequence of numbers, got {type(values).__name__}. Pass a list, "
            "numpy array or tensor of floats."
        ) from None
    if array.ndim == 2 and 1 in array.shape:
        array = array.reshape(-1)
    if array.ndim != 1:
        raise InputError(
            f"{name} must be one-dimensional (N,) or (N, 1), got shape {array.shape}. "
            "Flatten it first."
        )
    bad = np.flatnonzero(~np.isfinite(array))
    if bad.size:
        raise InputError(
            f"{name} must be finite; {bad.size} of {array.size} values are NaN or infinite "
            f"(first at indices {bad[:10].tolist()}). Drop or fix those pairs first."
        )
    return array


def _pair(pred: Any, target: Any, minimum: int = _MIN_N) -> tuple[np.ndarray, np.ndarray]:
    x, y = _as_vector(pred, "pred"), _as_vector(target, "target")
    if x.shape != y.shape:
        raise InputError(
            f"pred and target must have the same length, got {x.size} and {y.size}. Pass one "
            "prediction per human score."
        )
    if x.size < minimum:
        raise InputError(
            f"a correlation needs at least {minimum} pairs, got {x.size}. Evaluate on more pairs."
        )
    return x, y


def _safe(value: float) -> float:
    return float(value) if math.isfinite(value) else float("nan")


def _pearson(x: np.ndarray, y: np.ndarray) -> float:
    xc, yc = x - x.mean(), y - y.mean()
    denominator = math.sqrt(float(xc @ xc) * float(yc @ yc))
    return float(xc @ yc) / denominator if denominator > 0 else float("nan")


def srcc(pred: Any, target: Any) -> float:
    """Spearman rank-order correlation.

    Args:
        pred: Predictions, shape ``(N,)``.
        target: Human scores, shape ``(N,)``.

    Returns:
        SRCC in ``[-1, 1]`` (``nan`` when either side is constant).

    Raises:
        InputError: Mismatched lengths, fewer than 3 pairs, non-finite values.
    """
    x, y = _pair(pred, target)
    stats = _scipy().stats
    return _pearson(stats.rankdata(x), stats.rankdata(y))


def krcc(pred: Any, target: Any) -> float:
    """Kendall rank correlation (tau-b, which accounts for ties).

    Args:
        pred: Predictions, shape ``(N,)``.
        target: Human scores, shape ``(N,)``.

    Returns:
        KRCC in ``[-1, 1]`` (``nan`` when either side is constant).

    Raises:
        InputError: Mismatched lengths, fewer than 3 pairs, non-finite values.
    """
    x, y = _pair(pred, target)
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan")
    return _safe(_scipy().stats.kendalltau(x, y).statistic)


def plcc(pred: Any, target: Any) -> float:
    """Pearson linear correlation of the raw predictions (no fit).

    Args:
        pred: Predictions, shape ``(N,)``.
        target: Human scores, shape ``(N,)``.

    Returns:
        PLCC in ``[-1, 1]`` (``nan`` when either side is constant).

    Raises:
        InputError: Mismatched lengths, fewer than 3 pairs, non-finite values.
    """
    x, y = _pair(pred, target)
    return _pearson(x, y)


def logistic4(x: Any, b1: float, b2: float, b3: float, b4: float) -> np.ndarray:
    """The VQEG four-parameter logistic ``(b1 - b2) / (1 + exp(-(x - b3) / |b4|)) + b2``.

    Evaluated without overflow (``scipy.special.expit``); ``|b4|`` is floored
    at ``1e-12``.

    Args:
        x: Predictions.
        b1: Upper asymptote (reached as ``x`` grows; below ``b2`` for a
            decreasing fit).
        b2: Lower asymptote.
        b3: Centre.
        b4: Scale (its sign is ignored).

    Returns:
        The mapped values, same shape as ``x``.
    """
    expit = _scipy().special.expit
    z = (np.asarray(x, dtype=np.float64) - b3) / max(abs(b4), 1e-12)
    return np.asarray((b1 - b2) * expit(z) + b2)


@dataclass(frozen=True)
class LogisticFit:
    """A fitted monotone map from predictions to human scores.

    Attributes:
        params: ``(b1, b2, b3, b4)`` of :func:`logistic4`, or ``(slope,
            intercept, nan, nan)`` for the linear fallback.
        kind: ``"logistic"`` or ``"linear"`` (the fallback used when the
            logistic fit fails to converge or fits worse than a line).
    """

    params: tuple[float, float, float, float]
    kind: str

    def __call__(self, x: Any) -> np.ndarray:
        """Map predictions onto the human-score scale.

        Args:
            x: Predictions.

        Returns:
            Fitted human scores, same shape.
        """
        x = np.asarray(x, dtype=np.float64)
        if self.kind == "linear":
            return self.params[0] * x + self.params[1]
        return logistic4(x, *self.params)


def _linear_fit(x: np.ndarray, y: np.ndarray) -> LogisticFit:
    if np.ptp(x) == 0:
        return LogisticFit((0.0, float(y.mean()), math.nan, math.nan), "linear")
    slope, intercept = np.polyfit(x, y, 1)
    return LogisticFit((float(slope), float(intercept), math.nan, math.nan), "linear")


def _fit(x: np.ndarray, y: np.ndarray, p0: Sequence[float] | None = None) -> LogisticFit:
    scipy = _scipy()
    linear = _linear_fit(x, y)
    if x.size < _MIN_FIT_N or np.ptp(x) == 0 or np.ptp(y) == 0:
        return linear
    if p0 is None:
        increasing = _pearson(scipy.stats.rankdata(x), scipy.stats.rankdata(y)) >= 0
        top, bottom = float(y.max()), float(y.min())
        spread = float(np.std(x)) or 1.0
        p0 = (
            (top, bottom, float(np.median(x)), spread)
            if increasing
            else (
                bottom,
                top,
                float(np.median(x)),
                spread,
            )
        )
    expit = scipy.special.expit

    def model(v: np.ndarray, b1: float, b2: float, b3: float, b4: float) -> np.ndarray:
        return np.asarray((b1 - b2) * expit((v - b3) / max(abs(b4), 1e-12)) + b2)

    def jacobian(v: np.ndarray, b1: float, b2: float, b3: float, b4: float) -> np.ndarray:
        # Analytic derivatives: finite differences stall when a parameter starts near 0.
        scale = max(abs(b4), 1e-12)
        z = (v - b3) / scale
        sig = expit(z)
        slope = (b1 - b2) * sig * (1.0 - sig)
        return np.stack(
            [sig, 1.0 - sig, -slope / scale, -slope * z / scale * (1.0 if b4 >= 0 else -1.0)],
            axis=1,
        )

    try:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")  # OptimizeWarning when the covariance is undefined
            params, _ = scipy.optimize.curve_fit(
                model, x, y, p0=list(p0), jac=jacobian, maxfev=10000
            )
    except (RuntimeError, ValueError, TypeError, FloatingPointError) as exc:
        logger.debug("logistic fit failed (%s); using a linear fit", exc)
        return linear
    fit = LogisticFit(tuple(float(p) for p in params), "logistic")  # type: ignore[arg-type]
    fitted = fit(x)
    if not np.all(np.isfinite(fitted)):
        return linear
    if float(np.mean((fitted - y) ** 2)) > float(np.mean((linear(x) - y) ** 2)) + 1e-12:
        logger.debug("logistic fit worse than a line; using the line")
        return linear
    return fit


def fit_logistic(pred: Any, target: Any) -> LogisticFit:
    """Fit the VQEG four-parameter logistic from predictions to human scores.

    Initialisation: asymptotes at the extremes of the human scores (swapped
    when the predictions rank the other way), centre at the median
    prediction, scale at the predictions' standard deviation. ``curve_fit``
    runs with up to 10,000 evaluations; when it fails, returns non-finite
    values or fits worse than a straight line (or with fewer than 5 pairs),
    the least-squares line is used instead and ``kind`` says so.

    Args:
        pred: Predictions, shape ``(N,)``.
        target: Human scores, shape ``(N,)``.

    Returns:
        The fit; call it on predictions to map them.

    Raises:
        InputError: Mismatched lengths, fewer than 3 pairs, non-finite values.
    """
    x, y = _pair(pred, target)
    return _fit(x, y)


def plcc_fitted(pred: Any, target: Any) -> float:
    """PLCC after the four-parameter logistic fit (the PLCC reported in IQA papers).

    Args:
        pred: Predictions, shape ``(N,)``.
        target: Human scores, shape ``(N,)``.

    Returns:
        PLCC in ``[-1, 1]``.

    Raises:
        InputError: Mismatched lengths, fewer than 3 pairs, non-finite values.
    """
    x, y = _pair(pred, target)
    return _pearson(_fit(x, y)(x), y)


def rmse_fitted(pred: Any, target: Any) -> float:
    """Root-mean-square error after the logistic fit, in human-score units.

    Args:
        pred: Predictions, shape ``(N,)``.
        target: Human scores, shape ``(N,)``.

    Returns:
        The RMSE.

    Raises:
        InputError: Mismatched lengths, fewer than 3 pairs, non-finite values.
    """
    x, y = _pair(pred, target)
    return float(np.sqrt(np.mean((_fit(x, y)(x) - y) ** 2)))


def _statistics(
    x: np.ndarray,
    y: np.ndarray,
    p0: Sequence[float] | None = None,
    fixed: LogisticFit | None = None,
) -> tuple[dict[str, float], LogisticFit]:
    stats = _scipy().stats
    fit = fixed if fixed is not None else _fit(x, y, p0)
    fitted = fit(x)
    rank_x, rank_y = stats.rankdata(x), stats.rankdata(y)
    constant = np.ptp(x) == 0 or np.ptp(y) == 0
    values = {
        "srcc": _pearson(rank_x, rank_y),
        "plcc": _pearson(fitted, y),
        "plcc_raw": _pearson(x, y),
        "krcc": float("nan") if constant else _safe(stats.kendalltau(x, y).statistic),
        "rmse": float(np.sqrt(np.mean((fitted - y) ** 2))),
    }
    return values, fit


def bootstrap_ci(
    pred: Any,
    target: Any,
    *,
    resamples: int = 1000,
    level: float = 0.95,
    seed: int = 0,
    refit: bool = False,
) -> dict[str, tuple[float, float]]:
    """Percentile bootstrap confidence intervals of every statistic.

    Pairs are resampled with replacement ``resamples`` times (numpy's PCG64
    seeded by ``seed``, so the intervals are reproducible). By default the
    logistic fitted on all pairs maps every resample (the intervals then
    leave out the fit's own uncertainty, small next to the sampling
    uncertainty once there are hundreds of pairs, and cost a few
    milliseconds per resample on 10,000 pairs); ``refit=True`` refits the
    logistic on each resample, starting from the full-data fit, about 20
    times slower. Resamples where a statistic is undefined (a constant side)
    are ignored for it.

    Args:
        pred: Predictions, shape ``(N,)``.
        target: Human scores, shape ``(N,)``.
        resamples: Number of bootstrap resamples (at least 10).
        level: Coverage of the interval, in ``(0, 1)``.
        seed: Seed of the resampling.
        refit: Refit the logistic on every resample.

    Returns:
        ``{statistic: (low, high)}`` for ``srcc, plcc, plcc_raw, krcc, rmse``.

    Raises:
        InputError: Bad inputs, ``resamples < 10`` or ``level`` outside ``(0, 1)``.
    """
    x, y = _pair(pred, target)
    if resamples < 10:
        raise InputError(
            f"resamples must be at least 10, got {resamples}. Use 1000 for reported intervals."
        )
    if not 0.0 < level < 1.0:
        raise InputError(f"level must be in (0, 1), got {level}. Use 0.95 for 95% intervals.")
    _, full_fit = _statistics(x, y)
    p0 = full_fit.params if full_fit.kind == "logistic" else None
    rng = np.random.default_rng(seed)
    draws = {name: np.empty(resamples) for name in _STATISTICS}
    for i in range(resamples):
        index = rng.integers(0, x.size, size=x.size)
        values, _ = _statistics(x[index], y[index], p0, None if refit else full_fit)
        for name in _STATISTICS:
            draws[name][i] = values[name]
    tail = (1.0 - level) / 2.0 * 100.0
    intervals = {}
    for name, samples in draws.items():
        finite = samples[np.isfinite(samples)]
        if finite.size == 0:
            intervals[name] = (float("nan"), float("nan"))
        else:
            low, high = np.percentile(finite, [tail, 100.0 - tail])
            intervals[name] = (float(low), float(high))
    return intervals


def evaluate(
    pred: Any,
    target: Any,
    *,
    types: Iterable[str] | None = None,
    bootstrap: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    refit: bool = False,
) -> dict[str, Any]:
    """Every statistic of a metric against human scores, with intervals and per-type figures.

    Args:
        pred: Predictions, shape ``(N,)`` (any monotone scale, either
            direction).
        target: Human scores or qualities, shape ``(N,)``, higher is better
            for the signs to read naturally.
        types: Distortion type of each pair, for the per-type breakdown.
        bootstrap: Number of bootstrap resamples for the intervals; 0 skips
            them.
        seed: Seed of the bootstrap.
        level: Coverage of the intervals.
        refit: Refit the logistic on every bootstrap resample (see
            :func:`bootstrap_ci`).

    Returns:
        A JSON-serialisable dict: ``n``, ``srcc``, ``plcc`` (after the
        logistic fit), ``plcc_raw``, ``krcc``, ``rmse`` (after the fit, in
        target units), ``fit`` (``{"kind", "params"}``), ``ci``
        (``{statistic: [low, high]}``, empty without bootstrap), ``ci_level``,
        ``bootstrap`` and ``per_type`` (``{type: {n, srcc, krcc, plcc,
        plcc_raw}}``; per-type PLCC applies the global fit, as a calibrated
        metric would be used; types with fewer than 3 pairs get ``n`` only).
        Undefined statistics are ``nan``.

    Raises:
        InputError: Mismatched lengths, fewer than 3 pairs, non-finite
            values, or ``types`` of the wrong length.
    """
    x, y = _pair(pred, target)
    if bootstrap and bootstrap < 10:
        raise InputError(
            f"bootstrap must be 0 (off) or at least 10 resamples, got {bootstrap}. "
            "Use 1000 for reported intervals."
        )
    values, fit = _statistics(x, y)
    result: dict[str, Any] = {"n": int(x.size), **values}
    result["fit"] = {"kind": fit.kind, "params": list(fit.params)}
    result["ci"] = (
        {
            name: list(bounds)
            for name, bounds in bootstrap_ci(
                x, y, resamples=bootstrap, level=level, seed=seed, refit=refit
            ).items()
        }
        if bootstrap
        else {}
    )
    result["ci_level"] = level
    result["bootstrap"] = int(bootstrap)
    per_type: dict[str, dict[str, Any]] = {}
    if types is not None:
        labels = [str(t) for t in types]
        if len(labels) != x.size:
            raise InputError(
                f"types must give one type per pair: got {len(labels)} for {x.size} pairs. "
                "Pass the dis_type of each record."
            )
        label_array = np.asarray(labels, dtype=object)
        fitted = fit(x)
        for name in dict.fromkeys(labels):
            mask = label_array == name
            xs, ys = x[mask], y[mask]
            entry: dict[str, Any] = {"n": int(mask.sum())}
            if xs.size >= _MIN_N:
                stats = _scipy().stats
                constant = np.ptp(xs) == 0 or np.ptp(ys) == 0
                entry.update(
                    srcc=_pearson(stats.rankdata(xs), stats.rankdata(ys)),
                    krcc=float("nan") if constant else _safe(stats.kendalltau(xs, ys).statistic),
                    plcc=_pearson(fitted[mask], ys),
                    plcc_raw=_pearson(xs, ys),
                )
            per_type[name] = entry
    result["per_type"] = per_type
    return result
