"""One trial as a process of its own: `scripts/train.py` with the trial's overrides, in its run folder.

A process per trial keeps every trial's run folder exactly what a training run writes, and lets the sweep
outlive a trial that crashes, diverges or is killed: its exit, not the sweep's, tells how it ended.
"""

from __future__ import annotations

import ctypes
import math
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from optuna.trial import TrialState

from seqlab.runs import read_json, write_json

TRAIN_SCRIPT = Path(__file__).resolve().parents[3] / "scripts" / "train.py"
CONSOLE = "console.log"  # the trial's stdout and stderr, in its run folder
EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Exit)\b")  # "ValueError: ...", "TypeError('...')"


@dataclass
class Outcome:
    state: TrialState
    value: float | None = None
    error: str | None = None
    metrics: dict = field(default_factory=dict)


def _die_with_the_sweep() -> None:
    """In the child, before exec: a trial whose sweep process is killed is killed too, not left running alone."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def start(overrides: list[str], run_dir: Path, env: dict) -> subprocess.Popen:
    run_dir.mkdir(parents=True, exist_ok=True)
    with open(run_dir / CONSOLE, "wb") as console:
        return subprocess.Popen(
            [sys.executable, str(TRAIN_SCRIPT), *overrides, f"hydra.run.dir={run_dir}"],
            stdout=console, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
            preexec_fn=_die_with_the_sweep,
        )


def outcome(process: subprocess.Popen, run_dir: Path, metric: str, started: float) -> Outcome:
    """How the finished trial ended, from its exit status and the `metrics.json` it wrote.

    A trial that failed without saying so in `metrics.json` (killed, crashed before writing it) gets one
    written here, so every trial folder ends with its status.
    """
    ended = recorded(run_dir, metric)
    if process.returncode == 0 and ended is not None:
        return ended
    metrics = read_json(run_dir / "metrics.json")
    if process.returncode == 0 and metrics.get("status") == "completed":
        error = f"{metric} is {metrics.get(metric)} in metrics.json: not a finite number"
    else:
        error = metrics.get("error") or _reason(process.returncode, run_dir / CONSOLE)
    metrics = record_failure(run_dir, error, wall_seconds=round(time.time() - started, 3))
    return Outcome(TrialState.FAIL, error=error, metrics=metrics)


def record_failure(run_dir: Path, error: str, **extra) -> dict:
    """Mark the trial's `metrics.json` failed, keeping what the run wrote: every trial folder ends with its status."""
    metrics = {**read_json(run_dir / "metrics.json"), "status": "failed", "error": error, **extra}
    write_json(run_dir / "metrics.json", metrics)
    return metrics


def recorded(run_dir: Path, metric: str) -> Outcome | None:
    """The ending a run wrote in its `metrics.json` (completed with a finite `metric`, or pruned), else None."""
    metrics = read_json(run_dir / "metrics.json")
    value = metrics.get(metric)
    if metrics.get("status") == "pruned":
        return Outcome(TrialState.PRUNED, metrics=metrics)
    if metrics.get("status") == "completed" and isinstance(value, (int, float)) and math.isfinite(value):
        return Outcome(TrialState.COMPLETE, float(value), metrics=metrics)
    return None


def _reason(returncode: int, console: Path) -> str:
    """One line for why a trial failed: its `error:` line, the signal that killed it, or its last words."""
    if returncode < 0:
        return f"killed by {signal.Signals(-returncode).name}"
    try:
        with open(console, "rb") as f:
            f.seek(0, 2)
            f.seek(max(0, f.tell() - 65536))
            lines = [line.strip() for line in f.read().decode(errors="replace").splitlines()]
        lines = [line for line in lines if line and not line.startswith("Set the environment variable HYDRA_FULL_ERROR")]
    except OSError:
        lines = []
    errors = [line for line in lines if line.startswith("error: ")]
    if errors:
        return errors[-1].removeprefix("error: ")
    raised = [line for line in lines if EXCEPTION_LINE.match(line)]
    return f"exit status {returncode}: {(raised or lines or ['no output'])[-1]}"
