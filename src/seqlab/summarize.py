"""`summarize(cfg)`: a table of finished runs, grouped by a config key, mean and spread over the rest (seeds)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
from omegaconf import DictConfig, OmegaConf

from seqlab.errors import ConfigError
from seqlab.runs import reported_errors


def collect_runs(folders: list[str]) -> list[tuple[dict, dict]]:
    """(resolved config, metrics) of every run folder under `folders` that finished (has metrics.json)."""
    runs = []
    for folder in folders:
        if not Path(folder).is_dir():
            raise ConfigError(f"runs: {folder} is not a folder")
        for metrics_file in sorted(Path(folder).rglob("metrics.json")):
            config_file = metrics_file.parent / "config.yaml"
            if config_file.is_file():
                config = OmegaConf.to_container(OmegaConf.load(config_file))
                runs.append((config, json.loads(metrics_file.read_text())))
    return runs


def summary_table(runs: list[tuple[dict, dict]], group_by: str, metrics: list[str]) -> pd.DataFrame:
    rows = []
    for config, values in runs:
        group = OmegaConf.select(OmegaConf.create(config), group_by)
        rows.append({group_by: group, **{m: values.get(m) for m in metrics}})
    frame = pd.DataFrame(rows)
    grouped = frame.groupby(group_by)
    table = grouped.size().rename("runs").to_frame()
    for metric in metrics:
        table[metric] = [
            f"{_number(m)} ± {_number(s)}" if pd.notna(s) else _number(m)
            for m, s in zip(grouped[metric].mean(), grouped[metric].std())
        ]
    return table.reset_index()


def _number(x: float) -> str:
    """Four decimals for errors, fewer for seconds and counts: no scientific notation in a report."""
    return f"{x:.0f}" if abs(x) >= 100 else f"{x:.2f}" if abs(x) >= 10 else f"{x:.4f}"


def markdown(table: pd.DataFrame) -> str:
    lines = [list(map(str, table.columns)), ["---"] * len(table.columns)]
    lines += [[str(v) for v in row] for row in table.itertuples(index=False)]
    return "\n".join("| " + " | ".join(cells) + " |" for cells in lines)


def summarize(cfg: DictConfig) -> pd.DataFrame:
    with reported_errors(None):  # a report: it has no run folder to clean up
        runs = collect_runs(list(cfg.runs))
        if not runs:
            raise ConfigError(f"no finished runs (metrics.json beside config.yaml) under {list(cfg.runs)}")
        table = summary_table(runs, cfg.group_by, list(cfg.metrics))
        print(markdown(table) if cfg.markdown else table.to_string(index=False))
        return table
