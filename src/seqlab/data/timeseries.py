"""Forecasting data modules: a CSV (ETT, Weather, ...) or a synthetic sine mix, cut into windows.

The protocol follows the Informer/Autoformer benchmark code (borders, train-only scaling,
features M/S/MS) so that test MSE/MAE on scaled data compare with the published tables.
"""

from __future__ import annotations

import lightning as L
import numpy as np
import pandas as pd
from torch.utils.data import DataLoader

from seqlab.data.resume import ResumesMidEpoch
from seqlab.data.tables import Table, check_choices, choose_columns, load_table
from seqlab.data.windows import SPLITS, Standardizer, WindowDataset, check_finite, split_borders
from seqlab.errors import ConfigError


class ForecastDataModule(ResumesMidEpoch, L.LightningDataModule):
    """Windows (x [lookback, n_inputs], y [horizon, n_outputs], x's first row) from one CSV file.

    features: M every numeric column in and out (`target` unused), S the target(s) in and out,
    MS every column in and the target(s) out, or a list of input columns. The targets are the
    last n_outputs inputs (`target_index`), the convention the nets and the baselines rely on.
    split: "ett_hourly" / "ett_15min" (the fixed ETT borders) or "ratio" (70/10/20).
    fill: null makes a missing value an error; ffill, interpolate or zero fill it.
    allow_duplicate_times: keep repeated timestamps (the Weather benchmark file has one).
    season: the seasonal-naive baseline's period in rows (24 hourly = a day), passed on to the
    model through `model_kwargs` when set.
    """

    def __init__(
        self,
        path: str | None = None,
        url: str | None = None,
        time_column: str | None = "date",
        target: str | list[str] = "OT",
        features: str | list[str] = "M",
        lookback: int = 96,
        horizon: int = 96,
        stride: int = 1,
        split: str = "ett_hourly",
        scale: bool = True,
        fill: str | None = None,
        allow_duplicate_times: bool = False,
        season: int | None = None,
        batch_size: int = 32,
        eval_batch_size: int = 256,
        num_workers: int = 0,
    ):
        super().__init__()
        check_choices(features, fill)
        if split not in SPLITS:
            raise ConfigError(f"data.split={split} is not one of {', '.join(SPLITS)}.")
        for key, value in (("lookback", lookback), ("horizon", horizon), ("stride", stride),
                           ("batch_size", batch_size), ("eval_batch_size", eval_batch_size)):
            if int(value) < 1:
                raise ConfigError(f"data.{key}={value} must be a positive integer.")
        if season is not None and not 1 <= season <= lookback:
            raise ConfigError(
                f"data.season={season} must be between 1 and data.lookback={lookback}: a window must hold a whole season."
            )
        self.save_hyperparameters(logger=False)
        self.path, self.url, self.time_column = path, url, time_column
        self.target = target if isinstance(target, str) else list(target)
        self.features = features if isinstance(features, str) else list(features)
        self.lookback, self.horizon, self.stride = int(lookback), int(horizon), int(stride)
        self.split, self.scale, self.fill = split, scale, fill
        self.allow_duplicate_times, self.season = allow_duplicate_times, season
        self.batch_size, self.eval_batch_size, self.num_workers = batch_size, eval_batch_size, num_workers
        self.table: Table | None = None
        self.datasets: dict[str, WindowDataset] = {}

    def load_table(self) -> Table:
        """The numeric table to window; subclasses generate one instead of reading a file."""
        return load_table(self.path, self.url, self.time_column, self.target, self.features, self.fill,
                          self.allow_duplicate_times)

    def prepare_data(self) -> None:
        # Downloads (once, into the datasets cache) and validates, on one process only.
        if self.table is None:
            self.table = self.load_table()

    def setup(self, stage: str | None = None) -> None:
        if self.datasets:
            return  # fit then test would otherwise rebuild everything
        if self.table is None:
            self.table = self.load_table()
        table = self.table
        self.input_names, self.target_names = table.input_names, table.target_names
        n_in, n_out = len(self.input_names), len(self.target_names)
        self.target_index = list(range(n_in - n_out, n_in))
        self.borders = split_borders(self.split, len(table.values), self.lookback, self.horizon, table.source)
        start, stop = self.borders["train"]
        with np.errstate(over="ignore", invalid="ignore"):  # overflows are refused by check_finite, with the fix
            self.scaler = Standardizer.fit(table.values[start:stop]) if self.scale else Standardizer.identity(n_in)
            scaled = self.scaler.transform(table.values)
        check_finite(scaled, table.values, self.scaler, self.input_names, table.source, self.scale)
        self.target_scaler = self.scaler.select(self.target_index)
        for name, (start, stop) in self.borders.items():
            self.datasets[name] = WindowDataset(
                scaled[start:stop], self.target_index, self.lookback, self.horizon, self.stride, first_row=start
            )

    def model_kwargs(self) -> dict:
        """What the model must know about the data, so the config never types it twice."""
        kwargs = {
            "n_inputs": len(self.input_names),
            "n_outputs": len(self.target_names),
            "lookback": self.lookback,
            "horizon": self.horizon,
        }
        if self.season is not None:
            kwargs["season"] = self.season  # for the baseline the model scores itself against
        return kwargs

    def inverse_transform(self, y):
        """Targets (numpy or tensor, last axis = target columns) back to the file's units."""
        return self.target_scaler.inverse_transform(y)

    def window_times(self, split: str, index: int) -> tuple[pd.Index, pd.Index]:
        """Timestamps of window `index` of `split`: (history [lookback], future [horizon])."""
        dataset = self.datasets[split]
        first = dataset.first_row + dataset.start(index)
        times = self.table.times
        return times[first : first + self.lookback], times[first + self.lookback : first + self.lookback + self.horizon]

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", self.batch_size)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", self.eval_batch_size)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", self.eval_batch_size)

    def _loader(self, split: str, batch_size: int) -> DataLoader:
        # drop_last stays False everywhere: the benchmark code's drop_last=True on test skipped
        # windows, and scores over a different set of windows do not compare.
        return self.map_loader(split, self.datasets[split], batch_size, num_workers=self.num_workers,
                               persistent_workers=self.num_workers > 0)


class SineDataModule(ForecastDataModule):
    """A seeded mix of sines plus noise, for tests and demos.

    Each series sums two sines whose periods fit in the default lookback, so a net that reads
    the window beats repeating the last value by a wide margin.
    """

    def __init__(
        self,
        seed: int = 0,
        length: int = 4000,
        n_series: int = 3,
        noise: float = 0.1,
        season: int | None = None,
        target: str | list[str] = "sine_0",
        features: str | list[str] = "M",
        lookback: int = 96,
        horizon: int = 96,
        stride: int = 1,
        scale: bool = True,
        batch_size: int = 32,
        eval_batch_size: int = 256,
        num_workers: int = 0,
    ):
        super().__init__(
            time_column="date", target=target, features=features, lookback=lookback, horizon=horizon,
            stride=stride, split="ratio", scale=scale, season=season, batch_size=batch_size,
            eval_batch_size=eval_batch_size, num_workers=num_workers,
        )
        if n_series < 1 or length < 1:
            raise ConfigError(f"data.n_series={n_series} and data.length={length} must be positive.")
        self.seed, self.length, self.n_series, self.noise = seed, length, n_series, noise

    def load_table(self) -> Table:
        frame = sine_frame(self.seed, self.length, self.n_series, self.noise)
        inputs, targets = choose_columns(frame, None, self.target, self.features, source="sine")
        return Table(frame[inputs].to_numpy(), frame.index, inputs, targets, source="sine")


def sine_frame(seed: int, length: int, n_series: int, noise: float) -> pd.DataFrame:
    """`n_series` columns `sine_i`, hourly timestamps from 2000-01-01; the same for the same seed."""
    rng = np.random.default_rng(seed)
    t = np.arange(length, dtype=np.float64)
    columns = {}
    for i in range(n_series):
        period = rng.uniform(12, 48)
        phase = rng.uniform(0, 2 * np.pi, size=2)
        wave = np.sin(2 * np.pi * t / period + phase[0]) + 0.5 * np.sin(2 * np.pi * t / (period / 2.7) + phase[1])
        columns[f"sine_{i}"] = wave + noise * rng.standard_normal(length)
    return pd.DataFrame(columns, index=pd.date_range("2000-01-01", periods=length, freq="h", name="date"))
