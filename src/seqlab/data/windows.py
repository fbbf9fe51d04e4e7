"""From a clean table to model-ready windows: split borders, train-only scaling, sliding windows."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from seqlab.errors import ConfigError, DataError

SPLITS = ("ett_hourly", "ett_15min", "ratio")

# The Informer/Autoformer ETT protocol: 12 months train, 4 validation, 4 test, in 30-day months.
_ETT_HOURLY_ENDS = (12 * 30 * 24, 16 * 30 * 24, 20 * 30 * 24)  # 8640, 11520, 14400


def split_borders(split: str, n_rows: int, lookback: int, horizon: int, source: str) -> dict[str, tuple[int, int]]:
    """Row ranges [start, stop) of train/val/test, as the published benchmark tables cut them.

    Validation and test start `lookback` rows early so their first forecast begins exactly
    where the previous split ends: every future value belongs to one split only.
    """
    if split == "ratio":
        borders = _ratio_borders(n_rows, lookback)
    elif split in ("ett_hourly", "ett_15min"):
        per_hour = 1 if split == "ett_hourly" else 4
        train_end, val_end, test_end = (end * per_hour for end in _ETT_HOURLY_ENDS)
        if n_rows < test_end:
            raise DataError(
                f"{source} has {n_rows} rows but data.split={split} uses the fixed ETT borders and needs {test_end}. "
                "Use data.split=ratio for files that are not ETT."
            )
        borders = {
            "train": (0, train_end),
            "val": (train_end - lookback, val_end),
            "test": (val_end - lookback, test_end),
        }
    else:
        raise ConfigError(f"data.split={split} is not one of {', '.join(SPLITS)}.")
    for name, (start, stop) in borders.items():
        if stop - start < lookback + horizon:
            need = _ratio_rows_needed(lookback, horizon) if split == "ratio" else None
            fix = f"the file needs at least {need} rows (it has {n_rows})" if need else "the ETT borders cannot fit it"
            raise DataError(
                f"{source}: the {name} split has {stop - start} rows, fewer than lookback + horizon = "
                f"{lookback + horizon}; {fix}. Use a longer file or a smaller data.lookback / data.horizon."
            )
    return borders


def _ratio_borders(n_rows: int, lookback: int) -> dict[str, tuple[int, int]]:
    # Autoformer's "custom" protocol, integer rounding included, so numbers compare with its tables.
    num_train = int(n_rows * 0.7)
    num_test = int(n_rows * 0.2)
    num_val = n_rows - num_train - num_test
    return {
        "train": (0, num_train),
        "val": (num_train - lookback, num_train + num_val),
        "test": (n_rows - num_test - lookback, n_rows),
    }


def _ratio_rows_needed(lookback: int, horizon: int) -> int:
    # Start where the three splits (about 0.7n, 0.1n + 2 and 0.2n rows) could first fit, not at lookback +
    # horizon: stepping one row at a time from there took minutes for a horizon of 10**9.
    n = max(lookback + horizon, -(-10 * (lookback + horizon) // 7) - 2, 10 * (horizon - 2), 5 * horizon - 2)
    while any(stop - start < lookback + horizon for start, stop in _ratio_borders(n, lookback).values()):
        n += 1
    return n


class Standardizer:
    """Per-column mean and std, fitted on training rows only so no statistic has seen the future.

    Population std (ddof=0), as sklearn's StandardScaler in the benchmark code; a constant
    column gets std 1 rather than a division by zero. Works on numpy arrays and tensors whose
    last axis is the columns.
    """

    def __init__(self, mean: np.ndarray, std: np.ndarray):
        self.mean = np.asarray(mean, dtype=np.float64)
        self.std = np.asarray(std, dtype=np.float64)

    @classmethod
    def fit(cls, values: np.ndarray) -> Standardizer:
        std = values.std(axis=0)
        return cls(values.mean(axis=0), np.where(std > 0, std, 1.0))

    @classmethod
    def identity(cls, n_columns: int) -> Standardizer:
        return cls(np.zeros(n_columns), np.ones(n_columns))

    def select(self, index) -> Standardizer:
        """The scaler of a subset of the columns (e.g. the targets)."""
        return Standardizer(self.mean[index], self.std[index])

    def transform(self, values):
        mean, std = self._like(values)
        return (values - mean) / std

    def inverse_transform(self, values):
        mean, std = self._like(values)
        return values * std + mean

    def _like(self, values):
        if isinstance(values, torch.Tensor):
            return (torch.as_tensor(self.mean, dtype=values.dtype, device=values.device),
                    torch.as_tensor(self.std, dtype=values.dtype, device=values.device))
        return self.mean, self.std


def check_finite(scaled: np.ndarray, original: np.ndarray, scaler: Standardizer, names: list[str], source: str,
                 scale: bool) -> None:
    """The nets compute in float32: a column whose mean or std overflows float64 (values near 1e154 and up)
    would be scaled to zeros or NaN, one beyond 3.4e38 left unscaled would be inf, and either would train
    without a word. Refuse it here, with the fix."""
    overflowed = ~(np.isfinite(scaler.mean) & np.isfinite(scaler.std))
    with np.errstate(over="ignore"):
        beyond = ~np.isfinite(scaled.astype(np.float32))
    if overflowed.any():
        column = int(np.flatnonzero(overflowed)[0])
        what = f"values up to {np.abs(original[:, column]).max():.3g} overflow its mean or standard deviation"
        fix = "divide the column by a power of ten"
    elif beyond.any():
        row, column = np.argwhere(beyond)[0]
        what = f"a value {original[row, column]:.3g} (line {row + 2}) beyond float32's range"
        fix = "divide the column by a power of ten" + ("" if scale else ", or set data.scale=true")
    else:
        return
    raise DataError(f"{source}: column '{names[column]}' cannot be used as it is: {what}; {fix}.")


class WindowDataset(Dataset):
    """Sliding windows over one split: x = `lookback` rows of inputs, y = the next `horizon` target rows,
    and the row of the whole file where x starts (`first_row` is the split's), which places the window
    in the daily or weekly cycle."""

    def __init__(
        self, values: np.ndarray, target_index: list[int], lookback: int, horizon: int, stride: int = 1,
        first_row: int = 0,
    ):
        self.values = torch.as_tensor(values, dtype=torch.float32)
        self.target_index = list(target_index)
        self.lookback, self.horizon, self.stride, self.first_row = lookback, horizon, stride, first_row

    def __len__(self) -> int:
        return max(0, (len(self.values) - self.lookback - self.horizon) // self.stride + 1)

    def start(self, index: int) -> int:
        """First row (within the split) of window `index`."""
        if not 0 <= index < len(self):
            raise IndexError(f"window {index} out of range [0, {len(self)})")
        return index * self.stride

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        s = self.start(index)
        x = self.values[s : s + self.lookback]
        y = self.values[s + self.lookback : s + self.lookback + self.horizon, self.target_index]
        return x, y, torch.tensor(self.first_row + s)
