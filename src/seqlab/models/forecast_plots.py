"""Forecasts of chosen windows in the data's own units, and their figures in the run's loggers."""

from __future__ import annotations

from dataclasses import dataclass

import lightning as L
import numpy as np
import pandas as pd
import torch

from seqlab.errors import ConfigError
from seqlab.plots import forecast_figure, log_figures


@dataclass
class WindowForecast:
    """One window in the data's own units: arrays are [steps, targets]."""

    index: int
    history_times: pd.Index
    history: np.ndarray
    future_times: pd.Index
    truth: np.ndarray
    forecast: np.ndarray
    low: np.ndarray | None
    high: np.ndarray | None

    def figure(self, names, title: str = ""):
        return forecast_figure(
            self.history_times, self.history, self.future_times, self.truth, self.forecast, names,
            self.low, self.high, title,
        )


def spread_windows(count: int, available: int) -> list[int]:
    """`count` window indices spread evenly over a split, first and last included."""
    return sorted({int(i) for i in np.linspace(0, available - 1, num=min(count, available))})


@torch.no_grad()
def forecast_windows(model, datamodule, split: str, indices: list[int]) -> list[WindowForecast]:
    dataset = datamodule.datasets[split]
    bad = [i for i in indices if not -len(dataset) <= i < len(dataset)]
    if bad:
        raise ConfigError(f"windows {bad} do not exist: the {split} split has {len(dataset)} windows (0..{len(dataset) - 1})")
    indices = [i % len(dataset) for i in indices]
    x, y, start = (torch.stack(parts) for parts in zip(*(dataset[i] for i in indices)))
    model.eval()
    output = model(x.to(model.device), start.to(model.device))
    point = model.point(output).cpu()
    bounds = model.interval(output)
    unscale = datamodule.inverse_transform
    history = x[..., model.target_index]
    results = []
    for row, index in enumerate(indices):
        history_times, future_times = datamodule.window_times(split, index)
        results.append(
            WindowForecast(
                index=index,
                history_times=history_times,
                history=np.asarray(unscale(history[row].numpy())),
                future_times=future_times,
                truth=np.asarray(unscale(y[row].numpy())),
                forecast=np.asarray(unscale(point[row].numpy())),
                low=None if bounds is None else np.asarray(unscale(bounds[0][row].cpu().numpy())),
                high=None if bounds is None else np.asarray(unscale(bounds[1][row].cpu().numpy())),
            )
        )
    return results




class ForecastPlots(L.Callback):
    """After testing, a few test windows go to TensorBoard and W&B as images (the forecaster adds this itself)."""

    def __init__(self, num_windows: int = 3) -> None:
        self.num_windows = num_windows

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        datamodule = trainer.datamodule
        if not self.num_windows or not trainer.loggers or datamodule is None or not trainer.is_global_zero:
            return
        indices = spread_windows(self.num_windows, len(datamodule.datasets["test"]))
        figures = {
            f"test/forecast_window_{w.index}": w.figure(datamodule.target_names, title=f"test window {w.index}")
            for w in forecast_windows(pl_module, datamodule, "test", indices)
        }
        log_figures(trainer.loggers, figures, step=trainer.global_step)
