"""`compare(cfg)`: the runs of sweeps and run folders ranked side by side, as a table and plots. Reads only."""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure  # not pyplot: no global figure registry, no screen (see plots.py)
from matplotlib.ticker import MaxNLocator
from omegaconf import DictConfig, OmegaConf

from seqlab.errors import ConfigError
from seqlab.runs import reported_errors

# The table's order of statuses: runs with a result first, then those without one.
STATUS_ORDER = ("completed", "pruned", "failed", "unfinished")
DIRECTIONS = ("minimize", "maximize")
# Always shown after the chosen metrics: what a run cost.
COST_COLUMNS = ("wall_seconds", "epochs")
# Keys that name, place or number a run rather than set it up: at the top, and anywhere (logger.wandb.group).
BOOKKEEPING_ROOTS = {"paths", "hydra", "group", "task_name", "ckpt_path", "tags"}
BOOKKEEPING_LEAVES = {"tags", "group"}

Warn = Callable[[str], None]


def warn_on_stderr(message: str) -> None:
    print(message, file=sys.stderr)


class _Absent:
    """The value of a key a run's config lacks: it differs from every value, and shows as an empty cell."""

    def __repr__(self) -> str:
        return "ABSENT"


ABSENT = _Absent()


class Unreadable(Exception):
    """A run folder whose config or metrics cannot be read: named on stderr, the other runs still reported."""


@dataclass
class Run:
    folder: Path
    settings: dict[str, Any]  # the flattened config (dotted keys), bookkeeping left out
    monitor: str | None  # model.monitor: the metric the run itself optimised
    metrics: dict[str, Any]  # metrics.json, empty while the run has not finished
    status: str  # completed | pruned | failed | unfinished
    history: pd.DataFrame | None = None  # csv/metrics.csv, Lightning's CSVLogger output

    @property
    def error(self) -> str | None:
        return self.metrics.get("error")

    def value(self, name: str) -> float:
        """A metric as a float, NaN where the run has none (not finished, failed, not logged)."""
        value = self.metrics.get(name)
        return float(value) if _is_number(value) else math.nan


@dataclass
class Row:
    """One line of the table: the runs that share every differing setting but the seed, and a status."""

    settings: dict[str, Any]
    status: str
    runs: list[Run]

    def values(self, name: str) -> np.ndarray:
        values = np.array([run.value(name) for run in self.runs])
        return values[np.isfinite(values)]

    def mean(self, name: str) -> float:
        values = self.values(name)
        return float(values.mean()) if len(values) else math.nan

    def std(self, name: str) -> float:
        """Sample standard deviation (ddof=1) over the row's runs: the seed-to-seed spread; NaN for one run."""
        values = self.values(name)
        return float(values.std(ddof=1)) if len(values) > 1 else math.nan


# ---------------------------------------------------------------------------------------------- reading the runs


def find_run_folders(root: Path) -> list[Path]:
    """Folders holding config.yaml at or under `root`, in name order.

    Hidden folders (Hydra's `.hydra/` has a config.yaml of its own) and `wandb/` (so has each W&B run) are
    not searched; a folder with run folders below it is a sweep, not a run, even if it keeps a config.yaml.
    """
    found = []
    for folder, subfolders, files in os.walk(root):
        subfolders[:] = sorted(d for d in subfolders if not d.startswith(".") and d != "wandb")
        if "config.yaml" in files:
            found.append(Path(folder))
    sweeps = {parent for folder in found for parent in folder.parents}
    return [folder for folder in found if folder not in sweeps]


def read_run(folder: Path, warn: Warn = warn_on_stderr) -> Run:
    config = _read_config(folder / "config.yaml")
    metrics_file = folder / "metrics.json"
    metrics = _read_metrics(metrics_file) if metrics_file.is_file() else {}
    # metrics.json is written when a run ends; older runs wrote it only on success and without a status.
    status = str(metrics.get("status", "completed")) if metrics_file.is_file() else "unfinished"
    model = config.get("model")
    monitor = model.get("monitor") if isinstance(model, dict) else None
    history = _read_history(folder / "csv" / "metrics.csv", warn)
    return Run(folder, flatten_settings(config), monitor, metrics, status, history)


def _read_config(path: Path) -> dict:
    try:
        config = OmegaConf.to_container(OmegaConf.load(path), resolve=False)
    except Exception as exc:  # any YAML or OmegaConf complaint: the folder is skipped, not the report
        raise Unreadable(f"config.yaml: {_first_line(exc)}") from exc
    if not isinstance(config, dict):
        raise Unreadable("config.yaml is not a mapping of keys to values")
    return config


def _read_metrics(path: Path) -> dict:
    try:
        metrics = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise Unreadable(f"metrics.json: {_first_line(exc)}") from exc
    if not isinstance(metrics, dict):
        raise Unreadable("metrics.json is not an object of metric names to values")
    return metrics


def _read_history(path: Path, warn: Warn) -> pd.DataFrame | None:
    """The logged curves, or None; a broken file costs the run its curve only, so it is named and passed over."""
    if not path.is_file() or path.stat().st_size == 0:  # empty: a run that has not logged yet
        return None
    try:
        return pd.read_csv(path)
    except Exception as exc:  # pandas raises several kinds for a truncated or garbled CSV
        warn(f"skipped {path}: {_first_line(exc)}")
        return None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def collect_runs(paths: list[str], warn: Warn = warn_on_stderr) -> list[Run]:
    """Every readable run under `paths`; what cannot be read is named through `warn`, one line each."""
    runs, seen = [], set()
    for path in map(Path, paths):
        if not path.exists():
            warn(f"skipped {path}: no such folder")
            continue
        if not path.is_dir():
            warn(f"skipped {path}: not a folder (name a sweep folder or a run folder)")
            continue
        folders = find_run_folders(path)
        if not folders:
            warn(f"skipped {path}: no run folder (one holding config.yaml) in it")
        for folder in folders:
            if folder.resolve() in seen:  # overlapping PATHs (a sweep and one of its runs) count a run once
                continue
            seen.add(folder.resolve())
            try:
                runs.append(read_run(folder, warn))
            except Unreadable as exc:
                warn(f"skipped {folder}: {exc}")
    return runs


# ------------------------------------------------------------------------------------------- settings and metrics


def flatten_settings(config: dict, prefix: str = "") -> dict[str, Any]:
    """Dotted keys to leaf values, without bookkeeping; a list stays one setting, shown as text."""
    flat = {}
    for key, value in config.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(flatten_settings(value, dotted + "."))
        elif not is_bookkeeping(dotted, value):
            flat[dotted] = json.dumps(value, default=str) if isinstance(value, (list, dict)) else value
    return flat


def is_bookkeeping(key: str, value: Any) -> bool:
    """Keys that differ from run to run without changing what is trained: folders, names, trial numbers."""
    parts = key.split(".")
    if parts[0] in BOOKKEEPING_ROOTS or parts[0].startswith("trial") or parts[-1] in BOOKKEEPING_LEAVES:
        return True
    if parts[-1].endswith(("dir", "path")):  # also *_dir, dirpath, ckpt_path
        return True
    # Loggers and callbacks carry their run's folder under other names too (save_dir, dirpath, ...).
    return parts[0] in ("logger", "callbacks") and isinstance(value, str) and value.startswith(("/", "./", "../", "~"))


def differing_keys(runs: list[Run]) -> list[str]:
    """The settings not the same in every run, in config order; a key that some runs lack differs too."""
    keys = dict.fromkeys(key for run in runs for key in run.settings)
    return [key for key in keys if len({run.settings.get(key, ABSENT) for run in runs}) > 1]


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def ranking_metric(runs: list[Run], metric: str | None) -> str:
    """`metric=` if given, else the one metric the runs monitored (model.monitor)."""
    if metric:
        return metric
    monitors = sorted({run.monitor for run in runs if run.monitor})
    if len(monitors) == 1:
        return monitors[0]
    if not monitors:
        raise ConfigError("the runs' configs name no model.monitor: say which metric ranks them, e.g. metric=val/mse")
    raise ConfigError(
        f"the runs monitor different metrics ({', '.join(monitors)}): pick one to rank by, e.g. metric={monitors[0]}"
    )


def shown_metrics(runs: list[Run], metric: str, metrics: list[str] | None) -> list[str]:
    """The metric columns: those asked for (the ranking metric first if missing), or it and its test/ twin."""
    if metrics:
        return list(dict.fromkeys([metric, *metrics]))
    twin = re.sub(r"^val/", "test/", metric)
    return [metric, twin] if twin != metric and any(twin in run.metrics for run in runs) else [metric]


# ---------------------------------------------------------------------------------------------------- the table


def group_rows(runs: list[Run], keys: list[str]) -> list[Row]:
    """Runs that differ in nothing but the seed, and ended the same way, share a row.

    A failed seed gets a row of its own rather than being averaged in (or hidden) with the ones that completed.
    """
    rows: dict[tuple, Row] = {}
    for run in runs:
        settings = {key: run.settings.get(key, ABSENT) for key in keys if key != "seed"}
        identity = (tuple(settings.values()), run.status)
        rows.setdefault(identity, Row(settings, run.status, [])).runs.append(run)
    return list(rows.values())


def rank_rows(rows: list[Row], metric: str, direction: str) -> list[Row]:
    """Best first by the mean of `metric`; statuses in STATUS_ORDER, rows without a value last in theirs."""
    sign = 1 if direction == "minimize" else -1

    def order(row: Row) -> tuple:
        mean = row.mean(metric)
        status = STATUS_ORDER.index(row.status) if row.status in STATUS_ORDER else len(STATUS_ORDER)
        return (status, math.isnan(mean), 0.0 if math.isnan(mean) else sign * mean)

    return sorted(rows, key=order)


def numeric_table(rows: list[Row], metrics: list[str]) -> pd.DataFrame:
    """The table as numbers: each value's mean over the row's runs and, beside it, its sample std (`NAME std`)."""
    records = []
    for row in rows:
        record: dict[str, Any] = {key: setting_text(value) for key, value in row.settings.items()}
        record["runs"] = len(row.runs)
        for name in value_columns(metrics):
            record[name] = row.mean(name)
            record[f"{name} std"] = row.std(name)
        record["status"] = row.status
        record["folder"] = folder_label([run.folder for run in row.runs])
        records.append(record)
    return pd.DataFrame(records)


def value_columns(metrics: list[str]) -> list[str]:
    return list(dict.fromkeys([*metrics, *COST_COLUMNS]))


def text_table(table: pd.DataFrame, metrics: list[str]) -> pd.DataFrame:
    """The table as a reader sees it: `mean ± std` where a row has several runs, no scientific notation."""
    shown = table.copy()
    for name in value_columns(metrics):
        shown[name] = [_mean_and_spread(m, s) for m, s in zip(table[name], table[f"{name} std"])]
    return shown.drop(columns=[f"{name} std" for name in value_columns(metrics)])


def _mean_and_spread(mean: float, std: float) -> str:
    if math.isnan(mean):
        return ""
    return _number(mean) if math.isnan(std) else f"{_number(mean)} ± {_number(std)}"


def _number(x: float) -> str:
    """Four decimals for errors, fewer for perplexities, seconds and counts: no scientific notation in a report."""
    if float(x).is_integer():  # epochs, counts, a spread of exactly 0
        return f"{x:.0f}"
    return f"{x:.1f}" if abs(x) >= 100 else f"{x:.2f}" if abs(x) >= 10 else f"{x:.4f}"


def setting_text(value: Any) -> str:
    """A setting as it reads in YAML; a key the run lacks is an empty cell."""
    if value is ABSENT:
        return ""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:.4g}"  # a sampled 0.0005202683972874291 reads as 0.0005203; compare.csv keeps every digit
    return str(value)


def folder_label(folders: list[Path]) -> str:
    """One folder as it is; several as their common parent and `{their,names}`, which a shell expands back."""
    if len(folders) == 1:
        return str(folders[0])
    try:
        parent = Path(os.path.commonpath(folders))
    except ValueError:  # absolute and relative PATHs mixed: no common parent to name
        return ",".join(map(str, folders))
    return f"{parent}/{{{','.join(str(folder.relative_to(parent)) for folder in folders)}}}"


def markdown(table: pd.DataFrame) -> str:
    lines = [list(map(str, table.columns)), ["---"] * len(table.columns)]
    lines += [[str(v).replace("|", "\\|") for v in row] for row in table.itertuples(index=False)]
    return "\n".join("| " + " | ".join(cells) + " |" for cells in lines)


def failures(rows: list[Row]) -> list[str]:
    """Why each failed run failed: the table only says that it did."""
    failed = [run for row in rows if row.status == "failed" for run in row.runs]
    return [f"- {run.folder}: {run.error or 'no error recorded'}" for run in failed]


# ---------------------------------------------------------------------------------------------------- the plots


def validation_curve(run: Run, metric: str) -> pd.Series | None:
    """The metric through fit, indexed by epochs trained (1 after the first epoch), or None if not logged.

    After fit the best checkpoint is validated again, logged at epoch == metrics.json's `epochs`: not a
    point of the curve. Several validations in one epoch (`val_check_interval` < 1) are spread across it.
    """
    history = run.history
    if history is None or metric not in history or "epoch" not in history:
        return None
    points = history.loc[history[metric].notna() & history["epoch"].notna(), ["epoch", metric]]
    if _is_number(run.metrics.get("epochs")):
        points = points[points["epoch"] < run.metrics["epochs"]]
    if points.empty:
        return None
    by_epoch = points.groupby("epoch")["epoch"]
    x = points["epoch"] + (by_epoch.cumcount() + 1) / by_epoch.transform("size")
    return pd.Series(points[metric].to_numpy(dtype=float), index=x.to_numpy(dtype=float))


def curves_figure(rows: list[Row], metric: str, max_curves: int) -> Figure | None:
    """The best runs' validation curves, one colour per row (its seeds alike), at most `max_curves` curves.

    Failed runs are left out: an interrupted trial's stub would sit beside its own retry under the same label."""
    fig = Figure(figsize=(10, 5))
    ax = fig.add_subplot()
    names = short_names(list(rows[0].settings)) if rows else {}
    drawn = 0
    for index, row in enumerate(row for row in rows if row.status in ("completed", "pruned")):
        style = {"color": f"C{index % 10}", "linestyle": "-" if index < 10 else "--"}
        label = row_label(row, names)
        for run in row.runs:
            curve = validation_curve(run, metric) if drawn < max_curves else None
            if curve is None:  # not logged, or enough curves drawn already
                continue
            ax.plot(curve.index, curve.to_numpy(), marker=".", lw=1.2, label=label, **style)
            label, drawn = None, drawn + 1  # one legend entry per row
    if not drawn:
        return None
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel(metric)
    ax.set_title(f"{metric} during training, best {drawn} runs")
    if _spans_decades([y for line in ax.get_lines() for y in line.get_ydata()], 1):
        ax.set_yscale("log")  # perplexity falls by orders of magnitude in the first epochs
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize="small", frameon=False)
    return fig


def metric_vs_figure(runs: list[Run], key: str, metric: str) -> Figure | None:
    """The metric of each run against one setting: a scatter for numbers, a strip per value otherwise."""
    points = [(run.settings.get(key, ABSENT), run.value(metric)) for run in runs if run.status != "failed"]
    points = [(x, y) for x, y in points if math.isfinite(y)]
    if not points:
        return None
    fig = Figure(figsize=(6, 4))
    ax = fig.add_subplot()
    xs, ys = [x for x, _ in points], [y for _, y in points]
    if all(_is_number(x) for x in xs):
        ax.scatter(xs, ys, alpha=0.8)
        if _spans_decades(xs, 2):
            ax.set_xscale("log")
    else:
        categories = sorted({setting_text(x) or "(absent)" for x in xs}, key=_category_order)
        position = {category: i for i, category in enumerate(categories)}
        jitter = np.random.default_rng(0).uniform(-0.12, 0.12, len(xs))  # seeded: the same report twice is the same PNG
        ax.scatter([position[setting_text(x) or "(absent)"] + j for x, j in zip(xs, jitter)], ys, alpha=0.8)
        ax.set_xticks(range(len(categories)), categories, rotation=30 if max(map(len, categories)) > 8 else 0)
        ax.set_xlim(-0.5, len(categories) - 0.5)
    ax.set_xlabel(key)
    ax.set_ylabel(metric)
    ax.set_title(f"{metric} by {key}")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def _category_order(text: str) -> tuple:
    """Numbers by value, then words: 24, 168, null rather than 168, 24, null."""
    try:
        return (0, float(text), "")
    except ValueError:
        return (1, 0.0, text)


def _spans_decades(values: list, decades: int) -> bool:
    values = [v for v in values if _is_number(v) and math.isfinite(v)]
    return bool(values) and min(values) > 0 and max(values) / min(values) > 10**decades


def short_names(keys: list[str]) -> dict[str, str]:
    """`model.hidden_dim` -> `hidden_dim` for legends, unless two keys end alike."""
    last = [key.rsplit(".", 1)[-1] for key in keys]
    return {key: name if last.count(name) == 1 else key for key, name in zip(keys, last)}


def row_label(row: Row, names: dict[str, str]) -> str:
    settings = ", ".join(f"{names.get(key, key)}={setting_text(value)}" for key, value in row.settings.items())
    label = settings or folder_label([run.folder for run in row.runs])
    return f"{label} ({len(row.runs)} runs)" if len(row.runs) > 1 else label


def plot_file_name(key: str) -> str:
    return "metric_vs_" + re.sub(r"[^\w.-]", "_", key) + ".png"


# ----------------------------------------------------------------------------------------------- the entry point


def positional_runs(argv: list[str]) -> list[str]:
    """`A B metric=x` -> `runs=['A','B'] metric=x`: the leading arguments that are folders, not overrides.

    A leading argument is a folder if it has no `=` and no leading `-`, or is an existing folder (Hydra
    multirun folders are often named `seed=1`). Leading only: in `--cfg job`, `job` belongs to the flag.
    """
    count = 0
    while count < len(argv) and (_is_plain_word(argv[count]) or Path(argv[count]).is_dir()):
        count += 1
    if not count:
        return argv
    quoted = ",".join("'" + folder.replace("'", "\\'") + "'" for folder in argv[:count])
    return [f"runs=[{quoted}]", *argv[count:]]


def _is_plain_word(argument: str) -> bool:
    return "=" not in argument and not argument.startswith("-")


def _as_list(value: Any) -> list[str]:
    """`runs=a` and `runs=[a,b]` alike."""
    if value is None:
        return []
    return [str(value)] if isinstance(value, str) else [str(v) for v in value]


@contextmanager
def _removed_on_error(output_dir: Path, log_name: str) -> Iterator[None]:
    """A report that fails leaves no folder behind; never removes one that holds more than Hydra's records."""
    try:
        yield
    except BaseException:
        if output_dir.is_dir() and {p.name for p in output_dir.iterdir()} <= {".hydra", log_name}:
            shutil.rmtree(output_dir, ignore_errors=True)
        raise


def compare(cfg: DictConfig) -> pd.DataFrame:
    output_dir = Path(cfg.paths.output_dir)
    # Not reported_errors(output_dir): `out=` may name a folder of the user's, which must never be removed.
    with reported_errors(None), _removed_on_error(output_dir, f"{cfg.task_name}.log"):
        return _compare(cfg, output_dir)


def _compare(cfg: DictConfig, output_dir: Path) -> pd.DataFrame:
    if cfg.direction not in DIRECTIONS:
        raise ConfigError(f"direction={cfg.direction!r} is not one of {', '.join(DIRECTIONS)}")
    paths = _as_list(cfg.runs)
    if not paths:
        raise ConfigError("nothing to compare: name sweep or run folders, e.g. scripts/compare.py outputs/sweep/NAME")
    runs = collect_runs(paths)
    if not runs:
        raise ConfigError(f"no run could be read in {', '.join(paths)} (the lines above say why)")
    metric = ranking_metric(runs, cfg.metric)
    metrics = shown_metrics(runs, metric, _as_list(cfg.metrics))
    keys = differing_keys(runs)
    rows = rank_rows(group_rows(runs, keys), metric, cfg.direction)
    table = numeric_table(rows, metrics)

    heading = f"{len(runs)} runs in {len(rows)} rows, ranked by {metric} ({cfg.direction}), mean ± std over seeds"
    report = "\n".join([heading, "", markdown(text_table(table, metrics)), "", *failures(rows)]).rstrip() + "\n"
    print(report)
    written = write_report(output_dir, report, table, rows, runs, keys, metric, cfg.max_curves)
    print(f"wrote to {output_dir}: {', '.join(written)}")
    return table


def write_report(
    output_dir: Path, report: str, table: pd.DataFrame, rows: list[Row], runs: list[Run], keys: list[str],
    metric: str, max_curves: int,
) -> list[str]:
    """runs.md, compare.csv and the PNGs, into the report's own folder; returns the file names written."""
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / "runs.md").write_text(report)
    table.to_csv(output_dir / "compare.csv", index=False)
    figures = {"curves.png": curves_figure(rows, metric, max_curves)}
    figures.update({plot_file_name(key): metric_vs_figure(runs, key, metric) for key in keys if key != "seed"})
    written = ["runs.md", "compare.csv"]
    for name, figure in figures.items():
        if figure is not None:  # no curve logged, or no finished run to place
            figure.savefig(output_dir / name, dpi=100, bbox_inches="tight")
            written.append(name)
    return written
