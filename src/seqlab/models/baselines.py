"""Forecasts that need no training: the floor any learned model must clear.

Both read the input window x [B, L, n_inputs] and return [B, H, n_outputs]; `target_index`
lists, for each output, its input column (None: every input is an output).
"""

from __future__ import annotations

import torch

from seqlab.errors import ConfigError


def repeat_last(x: torch.Tensor, horizon: int, target_index=None) -> torch.Tensor:
    """Tomorrow looks like today: the last observed value, held for the whole horizon."""
    x = _targets(x, target_index)
    return x[:, -1:].repeat(1, horizon, 1)  # a copy, not an expand(): metrics .view() forecasts


def seasonal_naive(x: torch.Tensor, horizon: int, season: int, target_index=None) -> torch.Tensor:
    """The last `season` values, repeated: next week looks like this week (season=168 hourly)."""
    lookback = x.shape[1]
    if not 1 <= season <= lookback:
        raise ConfigError(
            f"season={season} must be between 1 and the lookback {lookback}: the window must hold a whole season. "
            "Raise data.lookback or shorten the season."
        )
    x = _targets(x, target_index)
    # Step h of the forecast copies the value one (or more) seasons before it.
    source = lookback - season + torch.arange(horizon, device=x.device) % season
    return x[:, source]


def _targets(x, target_index):
    return x if target_index is None else x[..., list(target_index)]
