"""`forecast(cfg)`: forecasts of a trained forecaster for chosen windows, as a CSV and as plots."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from omegaconf import DictConfig, OmegaConf

from seqlab.checkpoints import load_with_data
from seqlab.config_schema import check_settings
from seqlab.data.timeseries import ForecastDataModule
from seqlab.errors import CheckpointError, ConfigError
from seqlab.models.forecast_plots import WindowForecast, forecast_windows, spread_windows
from seqlab.runs import log, print_config, reported_errors, seed, write_json


def forecasts_table(windows: list[WindowForecast], names: list[str]) -> pd.DataFrame:
    """Long format: one row per (window, step, target), ready for any plotting or spreadsheet tool."""
    rows = []
    for w in windows:
        for step, time in enumerate(w.future_times):
            for column, name in enumerate(names):
                rows.append(
                    {
                        "window": w.index, "step": step + 1, "time": time, "target": name,
                        "truth": w.truth[step, column], "forecast": w.forecast[step, column],
                        "low": None if w.low is None else w.low[step, column],
                        "high": None if w.high is None else w.high[step, column],
                    }
                )
    return pd.DataFrame(rows)


def forecast(cfg: DictConfig) -> Path:
    output_dir = Path(cfg.paths.output_dir)
    with reported_errors(output_dir):
        print_config(cfg, output_dir)
        seed(cfg)
        # The checkpoint's data config, with whatever keys this command sets (data.path=..., say).
        changes = {k: v for k, v in OmegaConf.to_container(cfg.data).items() if v is not None}
        check_settings(changes, ForecastDataModule, "data")
        model, datamodule = load_with_data(cfg.get("ckpt_path"), changes=changes, cache_dir=cfg.paths.cache_dir)
        if not hasattr(model, "point"):
            raise CheckpointError(f"{cfg.ckpt_path} is not a forecaster: it cannot forecast windows")
        split = cfg.split
        if split not in datamodule.datasets:
            raise ConfigError(f"split={split!r} is not one of {list(datamodule.datasets)}")
        indices = list(cfg.windows) if cfg.windows else spread_windows(cfg.num_windows, len(datamodule.datasets[split]))
        windows = forecast_windows(model, datamodule, split, indices)

        table = forecasts_table(windows, list(datamodule.target_names))
        table.to_csv(output_dir / "forecasts.csv", index=False)
        for w in windows:
            figure = w.figure(datamodule.target_names, title=f"{split} window {w.index}")
            figure.savefig(output_dir / f"forecast_{split}_{w.index}.png", dpi=100)
        errors = table.assign(error=table.forecast - table.truth)
        summary = {"windows": [w.index for w in windows], "split": split, "checkpoint": str(cfg.ckpt_path),
                   "mse_unscaled": float((errors.error**2).mean()), "mae_unscaled": float(errors.error.abs().mean())}
        write_json(output_dir / "forecast.json", summary)
        log.info("forecasts: %s", output_dir / "forecasts.csv")
        return output_dir
