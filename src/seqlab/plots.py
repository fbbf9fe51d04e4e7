"""Figures of forecasts, and sending them to whichever loggers a run has."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure  # not pyplot: no global figure registry to leak, no screen needed

MAX_PANELS = 4  # a figure stays readable; the last (the target, by convention) columns are shown


def forecast_figure(
    history_times: Sequence,
    history: np.ndarray,
    future_times: Sequence,
    truth: np.ndarray,
    forecast: np.ndarray,
    names: Sequence[str],
    low: np.ndarray | None = None,
    high: np.ndarray | None = None,
    title: str = "",
) -> Figure:
    """History, truth, forecast and interval of one window, one panel per target column.

    Arrays are [steps, targets] in the data's own units.
    """
    shown = list(range(len(names)))[-MAX_PANELS:]
    fig = Figure(figsize=(10, 2.4 * len(shown)))
    axes = fig.subplots(len(shown), 1, sharex=True, squeeze=False)
    for ax, column in zip(axes[:, 0], shown):
        ax.plot(history_times, history[:, column], color="0.4", lw=1, label="history")
        ax.plot(future_times, truth[:, column], color="black", lw=1, label="truth")
        ax.plot(future_times, forecast[:, column], color="tab:blue", lw=1.5, label="forecast")
        if low is not None and high is not None:
            ax.fill_between(future_times, low[:, column], high[:, column], color="tab:blue", alpha=0.2, label="interval")
        ax.set_ylabel(names[column])
    axes[0, 0].legend(loc="upper left", fontsize="small", ncol=4)
    if title:
        axes[0, 0].set_title(title)
    fig.autofmt_xdate()
    fig.tight_layout()
    return fig


def log_figures(loggers: Sequence, figures: dict[str, Figure], step: int = 0) -> None:
    """TensorBoard images and W&B images, for the loggers the run has; others are skipped."""
    from lightning.pytorch.loggers import TensorBoardLogger, WandbLogger

    for logger in loggers:
        if isinstance(logger, TensorBoardLogger):
            for tag, fig in figures.items():
                logger.experiment.add_figure(tag, fig, global_step=step, close=False)
        elif isinstance(logger, WandbLogger):
            logger.log_image(key="forecasts", images=list(figures.values()), caption=list(figures), step=step)
