"""WeightedMean: the count-weighted mean the perplexity and the forecaster's val/loss are made of."""

from __future__ import annotations

import math

import torch
from torchmetrics import MeanMetric

from seqlab.models.weighted_mean import WeightedMean


def test_batches_count_by_their_weight_as_in_torchmetrics_mean():
    torch.manual_seed(0)
    ours, theirs = WeightedMean(), MeanMetric()
    for count in (350, 350, 218, 3):  # an uneven last batch, and a tiny one
        value = torch.rand(()) * 7
        ours.update(value, torch.tensor(count))
        theirs.update(value, weight=torch.tensor(count))
    assert ours.compute().item() == theirs.compute().item()  # the same arithmetic, to the bit
    unweighted = WeightedMean()
    unweighted.update(torch.tensor(1.0), 1)
    unweighted.update(torch.tensor(4.0), 3)
    assert unweighted.compute().item() == 13 / 4  # not (1 + 4) / 2


def test_a_nan_makes_the_mean_nan_instead_of_being_dropped():
    mean = WeightedMean()
    mean.update(torch.tensor(2.0), 10)
    mean.update(torch.tensor(float("nan")), 10)
    assert math.isnan(mean.compute().item())
