"""A mean weighted by counts (tokens, windows), summed across processes: exact over uneven batches and ranks.

torchmetrics' MeanMetric does the same arithmetic, but checks every update for NaNs, and that check makes the host
wait for the GPU at every step; its `nan_strategy="disable"`, which skips the check, also drops the weights. Here
a NaN is not dropped either: it makes the mean NaN, which is what a diverged run should report.
"""

from __future__ import annotations

import torch
from torchmetrics import Metric


class WeightedMean(Metric):
    full_state_update = False

    def __init__(self) -> None:
        super().__init__()
        self.add_state("total", torch.tensor(0.0), dist_reduce_fx="sum")
        self.add_state("weight", torch.tensor(0.0), dist_reduce_fx="sum")

    def update(self, value: torch.Tensor, weight: torch.Tensor | int) -> None:
        """`value`: a batch's mean (a 0-dim tensor); `weight`: how many items it is the mean of."""
        self.total += value * weight
        self.weight += weight

    def compute(self) -> torch.Tensor:
        return self.total / self.weight
