"""`runs.csv`: one row per finished run of a sweep (an Optuna search or a Hydra multirun), added as each ends.

Rows are whatever the runs report, so a later row may bring a column the earlier ones lack: the file is
rewritten whole, atomically and under a lock, since several processes (sweep workers, a multirun's jobs)
may finish at once.
"""

from __future__ import annotations

import csv
import fcntl
import os
import time
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig

from seqlab.runs import read_json

NAME = "runs.csv"
FIRST = ["run", "number", "status", "value", "wall_seconds", "overrides", "error"]


def add_row(sweep_dir: Path, row: dict) -> None:
    """Append `row` to the sweep's runs.csv, widening the header if it brings new columns."""
    path = sweep_dir / NAME
    with open(sweep_dir / f".{NAME}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        rows = []
        if path.exists():
            with open(path, newline="") as f:
                rows = list(csv.DictReader(f))
        rows.append({k: v for k, v in row.items() if v is not None})
        columns = [c for c in FIRST if any(c in r for r in rows)]
        columns += sorted({c for r in rows for c in r} - set(columns))
        partial = path.with_suffix(f".{os.getpid()}.tmp")
        with open(partial, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=columns)
            writer.writeheader()
            writer.writerows(rows)
        os.replace(partial, path)


def metric_columns(metrics: dict) -> dict:
    """The numbers of a run's metrics.json worth a column (not the checkpoint path or the status)."""
    return {k: v for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


class RunsTable(Callback):
    """Hydra callback: each job of a multirun (`train.py -m ...`) adds its row to the sweep folder's runs.csv.

    It runs in the job's process, so it works the same under the basic launcher and under submitit.
    """

    def on_job_start(self, config: DictConfig, **kwargs) -> None:
        self._started = time.time()

    def on_job_end(self, config: DictConfig, job_return, **kwargs) -> None:
        hydra = HydraConfig.get()
        if hydra.mode != RunMode.MULTIRUN:
            return
        run_dir = Path(hydra.runtime.output_dir)
        sweep_dir = Path(hydra.sweep.dir)
        metrics = read_json(run_dir / "metrics.json")
        failed = job_return.status.name != "COMPLETED"
        error = None
        if failed:
            exc = job_return._return_value
            error = str(exc).strip().splitlines()[-1] if exc is not None and str(exc).strip() else type(exc).__name__
        add_row(sweep_dir, {
            **metric_columns(metrics),
            "run": os.path.relpath(run_dir, sweep_dir),
            "number": hydra.job.num,
            "status": "failed" if failed else metrics.get("status", "completed"),
            "value": job_return._return_value if not failed else None,
            "wall_seconds": round(time.time() - getattr(self, "_started", time.time()), 3),
            "overrides": " ".join(hydra.overrides.task),
            "error": error,
        })
