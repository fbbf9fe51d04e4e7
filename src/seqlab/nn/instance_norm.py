"""Instance normalisation: each window is normalised by its own statistics before the net sees
it, and the forecast gets them back afterwards. The net learns shapes, not levels, which is what
survives the distribution shift between the train years and the test months of benchmarks like ETT.

Two kinds: RevIN (Kim et al., ICLR 2022) standardises by the window's mean and std; `last` only
subtracts the window's last value (SegRNN's and NLinear's choice), which anchors the forecast
where the series left off.
"""

from __future__ import annotations

import torch
from torch import nn

from seqlab.errors import ConfigError

Stats = tuple[torch.Tensor, torch.Tensor]  # (location, scale), each [B, 1, C]
INSTANCE_NORMS = ("revin", "last")


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


class LastValue(nn.Module):
    """Subtract each channel's last observed value; add it back to the forecast."""

    def normalize(self, x: torch.Tensor) -> tuple[torch.Tensor, Stats]:
        last = x[:, -1:, :].detach()
        return x - last, (last, torch.ones_like(last))

    def denormalize(self, y: torch.Tensor, stats: Stats, channels: slice = slice(None)) -> torch.Tensor:
        return y + stats[0][..., channels]

    def inverse_affine(self, stats: Stats, channels: slice = slice(None)) -> Stats:
        return stats[1][..., channels], stats[0][..., channels]


def make_instance_norm(kind: str | None, n_channels: int) -> nn.Module | None:
    """`kind` from model.net.instance_norm: revin | last | null (none)."""
    if kind in (None, False, "none"):
        return None
    if kind in ("revin", True):
        return RevIN(n_channels)
    if kind == "last":
        return LastValue()
    raise ConfigError(f"model.net.instance_norm={kind} is not one of {', '.join(INSTANCE_NORMS)} or null.")
