"""Reversible instance normalisation (RevIN, Kim et al., ICLR 2022).

Each window is standardised by its own mean and std before the net sees it, and the forecast
gets them back afterwards: the net learns shapes, not levels, which is what survives the
distribution shift between the train years and the test months of benchmarks like ETT.
"""

from __future__ import annotations

import torch
from torch import nn

Stats = tuple[torch.Tensor, torch.Tensor]  # (mean, std), each [B, 1, C]


class RevIN(nn.Module):
    def __init__(self, n_channels: int, affine: bool = False, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.affine = affine
        if affine:
            self.weight = nn.Parameter(torch.ones(n_channels))
            self.bias = nn.Parameter(torch.zeros(n_channels))

    def normalize(self, x: torch.Tensor) -> tuple[torch.Tensor, Stats]:
        """x [B, L, C] -> (normalised x, the statistics `denormalize` needs)."""
        # Detached as in the paper: the statistics are data, not something to learn through.
        mean = x.mean(dim=1, keepdim=True).detach()
        std = torch.sqrt(x.var(dim=1, keepdim=True, unbiased=False) + self.eps).detach()
        x = (x - mean) / std
        if self.affine:
            x = x * self.weight + self.bias
        return x, (mean, std)

    def denormalize(self, y: torch.Tensor, stats: Stats, channels: slice = slice(None)) -> torch.Tensor:
        """y [B, H, c] in normalised units -> original units; `channels` picks y's channels among C."""
        scale, shift = self.inverse_affine(stats, channels)
        return y * scale + shift

    def inverse_affine(self, stats: Stats, channels: slice = slice(None)) -> Stats:
        """(scale, shift) with original = normalised * scale + shift, each [B, 1, c].

        Exposed so that distribution heads can move a location by both and a spread by scale only.
        """
        mean, std = stats[0][..., channels], stats[1][..., channels]
        if not self.affine:
            return std, mean
        scale = std / (self.weight[channels] + self.eps * self.eps)
        return scale, mean - self.bias[channels] * scale
