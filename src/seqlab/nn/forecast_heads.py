"""What a forecaster predicts for each future value: a point, a Gaussian, or a set of quantiles.

A head turns the `n_params` numbers the net emits per (step, channel) into its output, and
rescales it to the data's units with the (scale, shift) of instance normalisation: a location
moves by both, a spread by the scale only.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from seqlab.errors import ConfigError

HEADS = ("point", "gaussian", "quantile")


class PointHead(nn.Module):
    n_params = 1

    def location(self, raw: torch.Tensor) -> torch.Tensor:
        """The value fed back when decoding recurrently, in normalised units."""
        return raw[..., 0]

    def forward(self, raw, scale, shift) -> torch.Tensor:
        return raw[..., 0] * scale + shift


class GaussianHead(nn.Module):
    """Mean and std per value, for a Gaussian negative log-likelihood (as DeepAR)."""

    n_params = 2
    min_std = 1e-3  # keeps the likelihood finite when the net grows over-confident

    def location(self, raw):
        return raw[..., 0]

    def forward(self, raw, scale, shift) -> tuple[torch.Tensor, torch.Tensor]:
        std = (F.softplus(raw[..., 1]) + self.min_std) * torch.as_tensor(scale).abs()
        return raw[..., 0] * scale + shift, std


class QuantileHead(nn.Module):
    """Given quantile levels per value, for the pinball loss; built non-crossing by construction."""

    def __init__(self, quantiles):
        super().__init__()
        levels = [float(q) for q in quantiles]
        if not levels or any(not 0 < q < 1 for q in levels) or levels != sorted(set(levels)):
            raise ConfigError(f"model.quantiles={list(quantiles)} must be increasing levels strictly between 0 and 1.")
        self.register_buffer("quantiles", torch.tensor(levels), persistent=False)
        self.n_params = len(levels)
        self.median = min(range(len(levels)), key=lambda i: abs(levels[i] - 0.5))

    def _levels(self, raw):
        # The lowest quantile, then positive gaps: q_1 <= q_2 <= ... whatever the weights.
        gaps = F.softplus(raw[..., 1:])
        return torch.cat([raw[..., :1], raw[..., :1] + gaps.cumsum(-1)], dim=-1)

    def location(self, raw):
        return self._levels(raw)[..., self.median]

    def forward(self, raw, scale, shift) -> torch.Tensor:
        scale, shift = torch.as_tensor(scale), torch.as_tensor(shift)
        return self._levels(raw) * scale.unsqueeze(-1) + shift.unsqueeze(-1)


def make_head(kind: str, quantiles=(0.1, 0.5, 0.9)) -> nn.Module:
    if kind == "point":
        return PointHead()
    if kind == "gaussian":
        return GaussianHead()
    if kind == "quantile":
        return QuantileHead(quantiles)
    raise ConfigError(f"model.head={kind} is not one of {', '.join(HEADS)}.")
