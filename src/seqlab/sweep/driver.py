"""`run(cfg)`: an Optuna search whose trials are training runs, `workers` at a time, until the study holds
`n_trials`. The study lives in a database, so the same command launched again (or on other machines
against one database URL) continues it.
"""

from __future__ import annotations

import copy
import functools
import logging
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import optuna
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from optuna.trial import TrialState

from seqlab.config_schema import check_config
from seqlab.errors import ConfigError, SeqlabError
from seqlab.runs import ONE_PROCESS_A_TRIAL, processes, reported_errors
from seqlab.sweep import study as studies
from seqlab.sweep import trial_process
from seqlab.sweep.runs_table import add_row, metric_columns
from seqlab.sweep.space import check_space, has_key, override_value, overrides_for, sample

log = logging.getLogger("seqlab")
POLL_SECONDS = 1.0
NO_PRUNER = {"_target_": "optuna.pruners.NopPruner"}  # trials still report their curves, for the dashboard


class NoTrialCompleted(SeqlabError):
    """Every trial of the study failed or was pruned: there is nothing to pick."""


@dataclass
class Running:
    trial: optuna.Trial
    process: subprocess.Popen
    run_dir: Path
    overrides: list[str]
    started: float
    beat: float  # when its heartbeat was last recorded


def run(cfg: DictConfig) -> float:
    """Run the search and return the best value of its metric."""
    sweep_dir = Path(cfg.paths.output_dir)
    with reported_errors(None):  # the sweep folder holds the study: never removed
        return _run(cfg, sweep_dir)


def _run(cfg: DictConfig, sweep_dir: Path) -> float:
    check_config(cfg)  # the trials' shared config: one line now rather than a failure in every trial
    if processes(cfg.trainer) > 1:  # a trial is one process; its share of the cores is set below
        raise ConfigError(
            f"trainer.devices={cfg.trainer.devices} trainer.num_nodes={cfg.trainer.num_nodes}: a sweep runs each "
            f"trial in one process; {ONE_PROCESS_A_TRIAL}"
        )
    search = cfg.hparams_search
    space = check_space(search.params, cfg)
    if not space:
        raise ConfigError("hparams_search.params is empty: name at least one config key to search")
    workers = int(search.workers)
    if workers < 1:
        raise ConfigError(f"hparams_search.workers={workers} must be at least 1")
    fixed = fixed_overrides(space) + trial_overrides(search.get("overrides") or [], space, cfg)
    sweep_dir.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(search, sweep_dir / "search.yaml", resolve=True)

    url = studies.storage_url(search.storage, sweep_dir)
    storage = studies.open_storage(url)
    study = studies.open_study(storage, search.study_name, search.direction, search.metric, fixed)
    _settle(study, search.metric, sweep_dir)
    # A seeded sampler would draw the first launch's values again after a relaunch: offset its seed.
    sampler = search.sampler or OmegaConf.create({"_target_": "optuna.samplers.TPESampler", "seed": cfg.get("seed")})
    study.sampler = instantiate(sampler, **_reseeded(sampler, len(study.trials)))
    log.info("study %s in %s: %d of %d trials done or under way", search.study_name, url, studies.counted(study),
             search.n_trials)

    pruner = OmegaConf.to_container(search.pruner, resolve=True) if search.pruner else NO_PRUNER
    trial_node = {"storage": url, "study_name": search.study_name, "metric": search.metric, "pruner": pruner}
    if "group" in cfg:  # W&B groups the runs of one study together
        fixed = [*fixed, f"group={override_value(search.study_name)}"]
    launch = functools.partial(_launch, study, space=space, fixed=fixed, trial_node=trial_node, sweep_dir=sweep_dir,
                               env=_worker_env(workers))
    _drive(study, launch, search.n_trials, workers, search.metric, sweep_dir)
    return _best(study, search.metric, sweep_dir, url)


def _drive(study: optuna.Study, launch, n_trials: int, workers: int, metric: str, sweep_dir: Path) -> None:
    """Keep `workers` trials running until the study holds `n_trials`; beat each one's heartbeat meanwhile."""
    running: list[Running] = []
    exhausted = False
    signal.signal(signal.SIGTERM, _raise_interrupt)  # a scheduler's stop is an interruption, like Ctrl-C
    try:
        while True:
            while not exhausted and len(running) < workers and studies.has_room(study, n_trials):
                trial = study.ask()
                studies.claim(trial)  # at once: until then a relaunch cannot tell this trial from an abandoned one
                if not studies.is_surplus(study, trial, n_trials):
                    running.append(launch(trial))
            if not running:
                if not studies.unclaimed(study):
                    return
                # A sweep killed between asking for a trial and claiming it left the trial running, and no
                # heartbeat will age it: wait until it is old enough to be settled, then run it again.
                time.sleep(POLL_SECONDS)
                _settle(study, metric, sweep_dir)
                continue
            time.sleep(POLL_SECONDS)
            for job in list(running):
                if job.process.poll() is None:
                    if time.time() - job.beat >= studies.HEARTBEAT_SECONDS / 2:
                        study._storage.record_heartbeat(job.trial._trial_id)
                        job.beat = time.time()
                else:
                    running.remove(job)
                    exhausted |= _finish(study, job, metric, sweep_dir)
    except KeyboardInterrupt:
        _interrupt(study, running)
        raise SystemExit(130) from None


def _settle(study: optuna.Study, metric: str, sweep_dir: Path) -> None:
    """Settle the trials a stopped sweep left running: queue the interrupted ones again, record the finished."""
    requeued, finished = studies.settle_interrupted(study, metric)
    if requeued:
        log.info("%d trial(s) left running by a stopped sweep: marked failed, queued again", requeued)
    for trial, ended in finished:  # they ended after their sweep did: record them as the sweep would have
        _report(study, trial.number, Path(trial.user_attrs["run_dir"]), trial.user_attrs.get("overrides", []), ended,
                metric, sweep_dir, ended.metrics.get("wall_seconds"))


def fixed_overrides(space: dict) -> list[str]:
    """The command's own choices, which every trial repeats: each config group's pick and each value set.

    Group picks come from Hydra's record of what was composed, so a choice made inside a config (an
    hparams_search file that picks an experiment, say) reaches the trials too.
    """
    hydra = HydraConfig.get()
    choices = {g: c for g, c in hydra.runtime.choices.items() if not g.startswith(("hydra", "hparams_search")) and c}
    picks = [f"{group}={choice}" for group, choice in choices.items()]
    values = []
    for override in OverridesParser.create().parse_overrides(list(hydra.overrides.task)):
        key = override.key_or_group
        if key in choices or key.startswith(("hydra", "hparams_search")):
            continue
        if key in space or f"+{key}" in space:
            raise ConfigError(f"{key} is both searched (hparams_search.params) and set on the command line; drop one")
        values.append(override.input_line)
    return picks + values


def trial_overrides(overrides: list[str], space: dict, cfg: DictConfig) -> list[str]:
    """`hparams_search.overrides`: what every trial adds to the recipe (a shorter budget, no test), checked
    here on a copy of the config, so a typo fails the sweep once rather than every trial."""
    trial_cfg = copy.deepcopy(cfg)  # the sweep's own config stays as composed
    for override in OverridesParser.create().parse_overrides(list(overrides)):
        key = override.key_or_group
        if key in space or f"+{key}" in space:
            raise ConfigError(f"hparams_search.overrides sets {key}, which is also searched; drop one")
        if not has_key(trial_cfg, key):
            raise ConfigError(f"hparams_search.overrides: the training config has no key {key}; check its spelling")
        OmegaConf.update(trial_cfg, key.lstrip("+"), override.value(), force_add=True)
    check_config(trial_cfg)
    return list(overrides)


def _launch(study, trial, *, space, fixed, trial_node, sweep_dir, env) -> Running:
    sampled = overrides_for(sample(trial, space))
    trial.set_user_attr("overrides", sampled)
    run_dir = sweep_dir / "trials" / f"{trial.number:03d}"
    trial.set_user_attr("run_dir", str(run_dir))
    overrides = [*fixed, *sampled, f"trial={override_value({**trial_node, 'number': trial.number})}"]
    log.info("trial %d started: %s", trial.number, " ".join(sampled))
    now = time.time()
    return Running(trial, trial_process.start(overrides, run_dir, env), run_dir, sampled, started=now, beat=now)


def _finish(study: optuna.Study, job: Running, metric: str, sweep_dir: Path) -> bool:
    """Record how the trial ended; True when the sampler has nothing left to try."""
    ended = trial_process.outcome(job.process, job.run_dir, metric, job.started)
    if ended.error:
        job.trial.set_user_attr("error", ended.error)
    exhausted = False
    try:
        study.tell(job.trial, ended.value, state=ended.state)
    except RuntimeError as exc:  # a grid or brute-force sampler that has tried everything asks to stop
        if "Study.stop" not in str(exc):
            raise
        exhausted = True
    _report(study, job.trial.number, job.run_dir, job.overrides, ended, metric, sweep_dir,
            round(time.time() - job.started, 1))
    return exhausted


def _report(study, number: int, run_dir: Path, overrides: list[str], ended, metric: str, sweep_dir: Path,
            seconds: float | None) -> None:
    """A finished trial's row in runs.csv and its line in the log."""
    add_row(sweep_dir, {
        **metric_columns(ended.metrics),
        "run": os.path.relpath(run_dir, sweep_dir), "number": number,
        "status": {TrialState.COMPLETE: "completed", TrialState.FAIL: "failed"}.get(ended.state, "pruned"),
        "value": ended.value, "wall_seconds": seconds, "overrides": " ".join(overrides), "error": ended.error,
    })
    log.info("trial %d %s", number, _trial_line(study, ended, metric, seconds))


def _trial_line(study, ended, metric, seconds) -> str:
    if ended.state == TrialState.COMPLETE:
        text = f"complete: {metric} {ended.value:.4g}"
    elif ended.state == TrialState.PRUNED:
        text = f"pruned after {ended.metrics.get('epochs', '?')} epoch(s)"
    else:
        text = f"failed: {ended.error}"
    try:
        best = study.best_trial
        text += f"; best so far {best.value:.4g} (trial {best.number})"
    except ValueError:
        text += "; no trial complete yet"
    return f"{text}; {seconds:.0f} s" if seconds is not None else text


def _best(study: optuna.Study, metric: str, sweep_dir: Path, url: str) -> float:
    states = [t.state for t in study.get_trials(deepcopy=False)]
    counts = ", ".join(f"{states.count(s)} {s.name.lower()}" for s in TrialState if states.count(s))
    log.info("study %s: %s", study.study_name, counts)
    try:
        best = study.best_trial
    except ValueError:
        raise NoTrialCompleted(
            f"no trial of study {study.study_name} completed; the reasons are in {sweep_dir / 'runs.csv'}"
        ) from None
    log.info("best: trial %d, %s %.6g, %s (%s)", best.number, metric, best.value,
             " ".join(best.user_attrs.get("overrides", [])), best.user_attrs.get("run_dir", ""))
    log.info("compare: python scripts/compare.py %s | dashboard: optuna-dashboard %s", sweep_dir, url)
    return best.value


def _interrupt(study: optuna.Study, running: list[Running]) -> None:
    """Stop the trials under way and queue them again: a later launch runs them from the start."""
    for job in running:
        job.process.kill()
        job.process.wait()
        try:
            studies.fail_interrupted(study, study._storage.get_trial(job.trial._trial_id), "interrupted: the sweep was stopped")
        except Exception:  # noqa: BLE001 (the database may be what failed; a later launch settles the trial then)
            continue
    log.info("interrupted: %d trial(s) stopped and queued again for the next launch", len(running))


def _raise_interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def _worker_env(workers: int) -> dict:
    """Each trial gets its share of the cores, unless the user set the thread count themselves: processes
    that each use every core slow each other down several times over."""
    env = dict(os.environ)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    env.setdefault("OMP_NUM_THREADS", str(max(1, cores // workers)))
    return env


def _reseeded(sampler: DictConfig, done: int) -> dict:
    seed = sampler.get("seed")
    return {"seed": seed + done} if isinstance(seed, int) else {}
