"""Training: losses usable by any model, the learned sorter, the trainer.

The losses are pure PyTorch and work with any model that outputs one score
per item (``(N,)`` or ``(N, 1)``); see ``docs/losses.md``.

Example:
    >>> import torch
    >>> from asna_metric.train import ASNATrainingLoss
    >>> loss = ASNATrainingLoss()  # 0.5 MSE + 0.5 (1 - PLCC) + 0.1 rank (learned sorter)
    >>> pred = torch.rand(16, requires_grad=True)
    >>> loss(pred, torch.rand(16)).backward()
"""

from __future__ import annotations

from asna_metric.train.losses import (
    ASNATrainingLoss,
    ListwiseKLLoss,
    MSELoss,
    PearsonLoss,
    RankLoss,
    SoftRankLoss,
    asna_training_loss,
    listwise_kl_loss,
    mse_loss,
    pearson_loss,
    rank_loss,
    soft_rank,
    soft_rank_loss,
)
from asna_metric.train.sorter import PairwiseSorter, PaperSorter, load_sorter

__all__ = [
    "ASNATrainingLoss",
    "ListwiseKLLoss",
    "MSELoss",
    "PairwiseSorter",
    "PaperSorter",
    "PearsonLoss",
    "RankLoss",
    "SoftRankLoss",
    "asna_training_loss",
    "listwise_kl_loss",
    "load_sorter",
    "mse_loss",
    "pearson_loss",
    "rank_loss",
    "soft_rank",
    "soft_rank_loss",
]
