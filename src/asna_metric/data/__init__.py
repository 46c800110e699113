"""Datasets, KADID-protocol synthesis, baselines and correlation evaluation.

Readers of the official layouts of PIPAL, TID2013, KADID-10k, LIVE and CSIQ
(and a generic label CSV) return an :class:`IQADataset` of
:class:`PairRecord`; :func:`split_by_reference` and :func:`leave_types_out`
make content- and type-disjoint splits; :func:`evaluate` computes SRCC, PLCC
after the four-parameter logistic fit, KRCC, RMSE, bootstrap intervals and
per-type figures; :mod:`~asna_metric.data.baselines` has PSNR, SSIM and
MS-SSIM. Names are imported on first use, so ``import asna_metric.data`` is
cheap and does not import torch or scipy.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from asna_metric.data.baselines import METRICS, MetricSpec, build_metric, ms_ssim, psnr, ssim
    from asna_metric.data.evaluation import (
        LogisticFit,
        bootstrap_ci,
        evaluate,
        fit_logistic,
        krcc,
        plcc,
        plcc_fitted,
        rmse_fitted,
        srcc,
    )
    from asna_metric.data.predict import PredictionCache, predict
    from asna_metric.data.readers import (
        CONVENTIONS,
        DATASETS,
        IQADataset,
        MissingFilesError,
        PairRecord,
        ScoreConvention,
        get_convention,
        load_dataset,
        read_csiq,
        read_kadid10k,
        read_labels_csv,
        read_live,
        read_pipal,
        read_tid2008,
        read_tid2013,
    )
    from asna_metric.data.report import evaluate_records, format_table, plot_results
    from asna_metric.data.splits import (
        DEFAULT_HELD_OUT_TYPES,
        k_fold_by_reference,
        leave_types_out,
        split_by_reference,
    )
    from asna_metric.data.synthesis import distort, synthesize

_LAZY: dict[str, str] = {
    **dict.fromkeys(
        (
            "CONVENTIONS",
            "DATASETS",
            "IQADataset",
            "MissingFilesError",
            "PairRecord",
            "ScoreConvention",
            "get_convention",
            "load_dataset",
            "read_csiq",
            "read_kadid10k",
            "read_labels_csv",
            "read_live",
            "read_pipal",
            "read_tid2008",
            "read_tid2013",
        ),
        "asna_metric.data.readers",
    ),
    **dict.fromkeys(
        ("DEFAULT_HELD_OUT_TYPES", "k_fold_by_reference", "leave_types_out", "split_by_reference"),
        "asna_metric.data.splits",
    ),
    **dict.fromkeys(
        (
            "LogisticFit",
            "bootstrap_ci",
            "evaluate",
            "fit_logistic",
            "krcc",
            "plcc",
            "plcc_fitted",
            "rmse_fitted",
            "srcc",
        ),
        "asna_metric.data.evaluation",
    ),
    **dict.fromkeys(
        ("METRICS", "MetricSpec", "build_metric", "ms_ssim", "psnr", "ssim"),
        "asna_metric.data.baselines",
    ),
    **dict.fromkeys(("distort", "synthesize"), "asna_metric.data.synthesis"),
    **dict.fromkeys(("PredictionCache", "predict"), "asna_metric.data.predict"),
    **dict.fromkeys(
        ("evaluate_records", "format_table", "plot_results"), "asna_metric.data.report"
    ),
}

__all__ = [
    "CONVENTIONS",
    "DATASETS",
    "DEFAULT_HELD_OUT_TYPES",
    "METRICS",
    "IQADataset",
    "LogisticFit",
    "MetricSpec",
    "MissingFilesError",
    "PairRecord",
    "PredictionCache",
    "ScoreConvention",
    "bootstrap_ci",
    "build_metric",
    "distort",
    "evaluate",
    "evaluate_records",
    "fit_logistic",
    "format_table",
    "get_convention",
    "k_fold_by_reference",
    "krcc",
    "leave_types_out",
    "load_dataset",
    "ms_ssim",
    "plcc",
    "plcc_fitted",
    "plot_results",
    "predict",
    "psnr",
    "read_csiq",
    "read_kadid10k",
    "read_labels_csv",
    "read_live",
    "read_pipal",
    "read_tid2008",
    "read_tid2013",
    "rmse_fitted",
    "split_by_reference",
    "srcc",
    "ssim",
    "synthesize",
]


def __getattr__(name: str) -> Any:
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module 'asna_metric.data' has no attribute {name!r}")
    module = importlib.import_module(module_name)
    value = getattr(module, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
