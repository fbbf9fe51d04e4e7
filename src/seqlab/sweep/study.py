"""The Optuna study behind a sweep: where it is stored, how many trials it still needs, and which of its
trials were left running by a process that no longer exists.

A trial that was *interrupted* (its sweep process was killed, on this machine or another) is marked failed
and run again with the same values; a trial that *failed* on its own (bad config, divergence, its training
process died) is data, and counts towards `n_trials`.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import warnings
from datetime import datetime
from pathlib import Path

import optuna
from optuna.storages import RDBStorage
from optuna.trial import FrozenTrial, TrialState

from seqlab.errors import ConfigError
from seqlab.sweep import trial_process
from seqlab.sweep.trial_process import Outcome

log = logging.getLogger("seqlab")
# Heartbeats are "experimental" in optuna and meant for Study.optimize; this module drives them itself.
warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used with Study.optimize")

HEARTBEAT_SECONDS = 30  # a trial is stale, and retried, when its sweep process missed heartbeats for 4x this
MAX_RETRIES = 2  # an interrupted trial is run again at most this many times


def storage_url(storage: str | None, sweep_dir: Path) -> str:
    return storage or f"sqlite:///{(sweep_dir / 'study.db').resolve()}"


def open_storage(url: str, attempts: int = 3) -> RDBStorage:
    """An RDB storage with heartbeats; SQLite waits for its lock instead of failing when workers write at once.

    Workers started together on a new database race to create its tables, and the losers' CREATE fails:
    a second attempt finds the tables there.
    """
    engine = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {"pool_pre_ping": True}
    for attempt in range(attempts):
        try:
            return RDBStorage(
                url,
                engine_kwargs=engine,
                heartbeat_interval=HEARTBEAT_SECONDS,
                grace_period=4 * HEARTBEAT_SECONDS,
                heartbeat_stale_trial_callback=requeue,
            )
        except ImportError as exc:  # a database driver that is not installed (psycopg for PostgreSQL, say)
            hint = "install its driver: pip install -e '.[postgres]'"
            raise ConfigError(f"hparams_search.storage={url}: {exc}; {hint}") from exc
        except Exception as exc:  # sqlalchemy's errors: a wrong URL, a server that does not answer, a lost race
            if attempt + 1 == attempts:
                raise ConfigError(f"hparams_search.storage={url}: cannot open it ({type(exc).__name__}: {exc})") from exc
            time.sleep(1 + attempt)


def open_study(storage: RDBStorage, name: str, direction: str, metric: str, overrides: list[str]) -> optuna.Study:
    """Create the study, or load it if it exists; a relaunch must train the same way as the launches before it."""
    if direction not in ("minimize", "maximize"):
        raise ConfigError(f"hparams_search.direction={direction!r} is not one of ['minimize', 'maximize']")
    study = optuna.create_study(study_name=name, storage=storage, direction=direction, load_if_exists=True)
    if study.direction.name.lower() != direction:
        raise ConfigError(f"study {name} exists and is to {study.direction.name.lower()}; set hparams_search.study_name=NEW")
    if study.metric_names != [metric]:
        study.set_metric_names([metric])  # the dashboard's axis reads val/ppl, not "Objective 0"
    recorded = study.user_attrs.get("overrides")
    if recorded is None:
        study.set_user_attr("overrides", overrides)
    elif recorded != overrides:
        raise ConfigError(
            f"study {name} was launched with the overrides {recorded}, not {overrides}: "
            "relaunch with the same ones, or set hparams_search.study_name=NEW for a new study"
        )
    return study


def superseded(trials: list[FrozenTrial]) -> set[int]:
    """Numbers of the interrupted trials that a retry replaced: they do not count towards the budget."""
    return {n for t in trials for n in t.system_attrs.get("retry_history", [])}


def budget_trials(study: optuna.Study) -> list[FrozenTrial]:
    """Trials that use up the budget: finished (complete, pruned, failed), under way or queued; a retry
    takes the place of the interrupted trial it repeats, and a surplus trial (below) takes none."""
    trials = study.get_trials(deepcopy=False)
    replaced = superseded(trials)
    return [t for t in trials if t.number not in replaced and not t.system_attrs.get("surplus")]


def counted(study: optuna.Study) -> int:
    return len(budget_trials(study))


def has_room(study: optuna.Study, n_trials: int) -> bool:
    """Whether to ask for a trial: the budget is not full, or a queued retry waits for a worker."""
    trials = budget_trials(study)
    return len(trials) < n_trials or any(t.state == TrialState.WAITING for t in trials)


def is_surplus(study: optuna.Study, trial: optuna.Trial, n_trials: int) -> bool:
    """True for a trial asked for after the budget was full: sweeps on two machines can both see one trial
    left and ask at once. Trial numbers are handed out in order by the database, so the later one yields:
    it is failed at once, marked surplus, and not counted."""
    earlier = sum(1 for t in budget_trials(study) if t.number < trial.number)
    if earlier < n_trials:
        return False
    study._storage.set_trial_system_attr(trial._trial_id, "surplus", True)
    study.tell(trial, state=TrialState.FAIL)
    return True


def requeue(study: optuna.Study, trial: FrozenTrial) -> None:
    """Queue an interrupted trial again with the same values (at most MAX_RETRIES times)."""
    history = [*trial.system_attrs.get("retry_history", []), trial.number]
    if len(history) > MAX_RETRIES:
        return
    study.add_trial(
        optuna.create_trial(
            state=TrialState.WAITING,
            params=trial.params,
            distributions=trial.distributions,
            system_attrs={"retry_history": history},
            user_attrs={"retry_of": history[0]},
        )
    )


def claim(trial: optuna.Trial) -> None:
    """Mark the trial as this process's, so a later launch on this machine knows when it was left behind."""
    # The pid first: a sweep starting on this machine reads a trial with a host but no pid as left by a dead one.
    trial.set_user_attr("pid", os.getpid())
    trial.set_user_attr("host", socket.gethostname())
    trial.study._storage.record_heartbeat(trial._trial_id)


def settle_interrupted(study: optuna.Study, metric: str) -> tuple[int, list[tuple[FrozenTrial, Outcome]]]:
    """Settle the trials whose sweep process is gone: dead on this machine, or silent elsewhere.

    A local trial whose run finished before its sweep could record it (the run wrote its metrics.json) is
    recorded as it ended; the others are failed and queued again. Returns how many were queued, and the
    finished ones with their outcome.
    """
    optuna.storages.fail_stale_trials(study)  # other machines: heartbeats stopped; requeued by `requeue`
    host, requeued, finished = socket.gethostname(), 0, []
    storage = study._storage
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        pid = trial.user_attrs.get("pid")
        dead_here = trial.user_attrs.get("host") == host and not _alive(pid)
        if not (dead_here or _never_claimed(trial)):
            continue
        run_dir = trial.user_attrs.get("run_dir")
        ended = trial_process.recorded(Path(run_dir), metric) if run_dir else None
        if ended is None:
            requeued += fail_interrupted(study, trial, f"interrupted: its sweep process {pid} stopped")
            continue
        value = None if ended.value is None else [ended.value]
        try:
            storage.set_trial_state_values(trial._trial_id, ended.state, value)
        except optuna.exceptions.UpdateFinishedTrialError:
            continue  # another launch got there first
        finished.append((storage.get_trial(trial._trial_id), ended))
    return requeued, finished


def fail_interrupted(study: optuna.Study, trial: FrozenTrial, reason: str) -> bool:
    """Fail a trial its sweep could not finish, queue it again while retries are left, and say so in its folder.

    False when another launch settled it first."""
    retry = len(trial.system_attrs.get("retry_history", [])) < MAX_RETRIES
    error = f"{reason}; {'queued again' if retry else f'not queued again after {MAX_RETRIES} retries'}"
    try:
        study._storage.set_trial_user_attr(trial._trial_id, "error", error)
        study._storage.set_trial_state_values(trial._trial_id, state=TrialState.FAIL)
    except optuna.exceptions.UpdateFinishedTrialError:
        return False
    if retry:
        requeue(study, study._storage.get_trial(trial._trial_id))
    run_dir = trial.user_attrs.get("run_dir")
    if run_dir and Path(run_dir).is_dir():
        trial_process.record_failure(Path(run_dir), error)
    return True


def unclaimed(study: optuna.Study) -> list[FrozenTrial]:
    """Running trials that no sweep has claimed: just asked for by a live sweep, or left by one killed at once."""
    return [t for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)) if "host" not in t.user_attrs]


def _never_claimed(trial: FrozenTrial) -> bool:
    """A trial asked for by a sweep that died before `claim` (milliseconds later): no heartbeat will ever age it."""
    started = trial.datetime_start
    return "host" not in trial.user_attrs and started is not None and (datetime.now() - started).total_seconds() > 60


def _alive(pid) -> bool:
    if not isinstance(pid, int):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
