"""Optuna sweeps as a user runs them: `scripts/sweep.py` in subprocesses, on a corpus and a search space the
tests write, against a real SQLite (and, where the server is installed, PostgreSQL) study."""

from __future__ import annotations

import csv
import json
import math
import os
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

import optuna
import pytest
from omegaconf import OmegaConf

from seqlab.sweep import study as studies
from seqlab.sweep.space import override_value
from tests.conftest import REPO, write_corpus
from tests.servers import free_port, get_json, http_server, postgres
from tests.test_scripts import run_script

LR = "    model.optimizer.lr: {type: float, low: 0.005, high: 0.05, log: true}\n"
SMALL = ["data=text", "data.data_dir=corpus", "model.net.embedding_dim=16", "model.net.hidden_dim=16", "model.net.num_layers=1",
         "data.batch_size=4", "data.bptt=8", "trainer.max_epochs=2", "logger=csv"]


def write_space(work: Path, n_trials: int, params: str, extra: str = "") -> list[str]:
    """A search space of the test's own, found through Hydra's search path as hparams_search=tiny."""
    (work / "conf" / "hparams_search").mkdir(parents=True, exist_ok=True)
    (work / "conf" / "hparams_search" / "tiny.yaml").write_text(
        f"# @package _global_\nhparams_search:\n  n_trials: {n_trials}\n{extra}  params:\n{params}"
    )
    return [f"hydra.searchpath=[file://{work / 'conf'}]", "hparams_search=tiny"]


def load(sweep_dir: Path, name: str = "tiny-text") -> optuna.Study:
    return optuna.load_study(study_name=name, storage=f"sqlite:///{sweep_dir / 'study.db'}")


def rows(sweep_dir: Path) -> list[dict]:
    with open(sweep_dir / "runs.csv", newline="") as f:
        return list(csv.DictReader(f))


def retried(study: optuna.Study) -> set[int]:
    return {n for t in study.trials for n in t.system_attrs.get("retry_history", [])}


def sweep_command(*overrides: str) -> list[str]:
    return [sys.executable, str(REPO / "scripts" / "sweep.py"), *overrides]


def environment(work: Path) -> dict:
    return {**os.environ, "WANDB_MODE": "offline", "SEQLAB_CACHE": str(work / "cache"), "OMP_NUM_THREADS": "1"}


@pytest.fixture
def work(tmp_path) -> Path:
    write_corpus(tmp_path / "corpus")
    return tmp_path


def test_a_sweep_killed_mid_trial_and_launched_again_ends_with_exactly_n_trials(work):
    space_keys = ("model.optimizer.lr", "model.net.dropout")
    space = write_space(work, 4, "    model.optimizer.lr: {type: float, low: 0.005, high: 0.05, log: true}\n"
                                 "    model.net.dropout: {type: float, low: 0.0, high: 0.3}\n",
                        "  workers: 2\n  pruner: {_target_: optuna.pruners.NopPruner}\n")
    command = sweep_command(*space, *SMALL, f"hydra.run.dir={work / 'sweep'}")
    sweep = subprocess.Popen(command, cwd=work, env=environment(work), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:  # kill it once one trial has finished and two more are under way
        deadline = time.time() + 120
        while not ((work / "sweep" / "runs.csv").exists() and len(list((work / "sweep" / "trials").glob("*"))) >= 3):
            assert time.time() < deadline and sweep.poll() is None, "the sweep never got two trials under way"
            time.sleep(0.2)
        sweep.send_signal(signal.SIGKILL)
        sweep.wait()
    finally:
        sweep.kill()
    time.sleep(1)
    orphans = subprocess.run(["pgrep", "-f", str(work / "sweep" / "trials")], capture_output=True, text=True).stdout
    assert not orphans.split(), "a trial outlived the sweep that started it"
    interrupted = {t.number for t in load(work / "sweep").trials if t.state == optuna.trial.TrialState.RUNNING}
    assert interrupted

    done = run_script("sweep.py", *space, *SMALL, f"hydra.run.dir={work / 'sweep'}", cwd=work)
    study = load(work / "sweep")
    replaced = retried(study)
    assert replaced <= interrupted  # each interrupted trial was run again, unless its run had finished by then
    budget = [t for t in study.trials if t.number not in replaced]
    assert len(budget) == 4 and all(t.state == optuna.trial.TrialState.COMPLETE for t in budget)
    for t in study.trials:  # ...with the values it had, and nothing finished was repeated
        if t.number in replaced:
            retry = next(r for r in budget if t.number in r.system_attrs.get("retry_history", []))
            # A trial killed between its ask and its last draw has fewer values: the retry draws the rest.
            assert t.params.items() <= retry.params.items() and set(retry.params) == set(space_keys)
    assert sorted(int(r["number"]) for r in rows(work / "sweep")) == sorted(t.number for t in budget)
    assert all((work / "sweep" / "trials" / f"{t.number:03d}" / "metrics.json").is_file() for t in budget)
    for number in interrupted:  # each interrupted trial's folder says how it ended
        folder = work / "sweep" / "trials" / f"{number:03d}"
        if not folder.exists():  # killed between its claim and its run's start: nothing ran, so it is run again
            assert number in replaced
            continue
        ended = json.loads((folder / "metrics.json").read_text())
        if number in replaced:
            assert ended["status"] == "failed" and ended["error"].startswith("interrupted")
            assert "marked failed, queued again" in done.stdout + done.stderr
        else:  # finished between its sweep's last look and the kill: recorded as it ended, not run twice
            assert ended["status"] == "completed"

    again = run_script("sweep.py", *space, *SMALL, f"hydra.run.dir={work / 'sweep'}", cwd=work)  # the budget is spent
    assert len(load(work / "sweep").trials) == len(study.trials) and "4 of 4 trials" in again.stdout + again.stderr


@pytest.fixture(scope="module")
def mixed_sweep(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    """Six trials, every pair of values once: one completes, one is pruned, one diverges, three fail on their data
    (a value only the data can refuse: the sweep checks the searched values against the config schema first)."""
    work = tmp_path_factory.mktemp("mixed")
    write_corpus(work / "corpus")
    space = write_space(
        work, 6,
        "    data.eval_batch_size: {type: categorical, choices: [10, 100000]}\n"
        "    model.optimizer.lr: {type: categorical, choices: [0.02, 1.0e-7, .inf]}\n",
        "  sampler: {_target_: optuna.samplers.BruteForceSampler, seed: 0}\n"
        "  pruner: {_target_: optuna.pruners.ThresholdPruner, upper: 8.0}\n",
    )
    return work / "sweep", run_script("sweep.py", *space, *SMALL, f"hydra.run.dir={work / 'sweep'}", cwd=work)


def test_failed_and_pruned_trials_are_recorded_and_the_sweep_goes_on(mixed_sweep):
    sweep_dir, done = mixed_sweep
    study = load(sweep_dir)
    by_values = {(t.params["data.eval_batch_size"], str(t.params["model.optimizer.lr"])): t for t in study.trials}
    assert len(by_values) == 6
    state = optuna.trial.TrialState
    assert by_values[10, "0.02"].state == state.COMPLETE
    assert by_values[10, "1e-07"].state == state.PRUNED  # a near-uniform guess, perplexity ~20 > 8
    assert by_values[10, "inf"].state == state.FAIL
    assert "train/loss is nan" in by_values[10, "inf"].user_attrs["error"]
    for lr in ("0.02", "1e-07", "inf"):
        assert by_values[100000, lr].state == state.FAIL
        assert "too few for 100000 columns" in by_values[100000, lr].user_attrs["error"]
    # Every trial keeps its folder, whose metrics.json says how it ended; runs.csv has the same.
    table = {int(r["number"]): r for r in rows(sweep_dir)}
    for t in study.trials:
        metrics = json.loads((sweep_dir / "trials" / f"{t.number:03d}" / "metrics.json").read_text())
        status = {state.COMPLETE: "completed", state.PRUNED: "pruned", state.FAIL: "failed"}[t.state]
        assert metrics["status"] == table[t.number]["status"] == status
        assert metrics.get("error") == t.user_attrs.get("error") == (table[t.number]["error"] or None)
    assert float(table[by_values[10, "0.02"].number]["value"]) == pytest.approx(by_values[10, "0.02"].value)
    assert "best so far" in done.stdout + done.stderr


def test_optuna_dashboard_serves_the_study_with_every_trial(mixed_sweep):
    sweep_dir, _ = mixed_sweep
    study = load(sweep_dir)
    port = free_port()
    command = ["optuna-dashboard", f"sqlite:///{sweep_dir / 'study.db'}", "--host", "127.0.0.1", "--port", str(port)]
    with http_server(command, "/api/studies", port) as url:
        [listed] = [s for s in get_json(f"{url}/api/studies")["study_summaries"] if s["study_name"] == "tiny-text"]
        detail = get_json(f"{url}/api/studies/{listed['study_id']}")
    served = {t["number"]: t for t in detail["trials"]}
    assert {n: t["state"] for n, t in served.items()} == {t.number: t.state.name.capitalize() for t in study.trials}
    best = study.best_trial
    assert served[best.number]["values"] == [pytest.approx(best.value)]
    errors = {n: {a["key"]: a["value"] for a in t["user_attrs"]}.get("error") for n, t in served.items()}
    assert all(errors[t.number] for t in study.trials if t.state == optuna.trial.TrialState.FAIL)


def test_two_sweep_processes_fill_one_postgresql_study_without_a_duplicate(work):
    space = write_space(work, 4, LR, "  pruner: {_target_: optuna.pruners.NopPruner}\n")
    with postgres() as url:
        shared = [*space, *SMALL, f"hparams_search.storage={url}"]
        workers = [  # as if on two machines: each its own sweep folder, one study in the database
            subprocess.Popen(sweep_command(*shared, f"hydra.run.dir={work / name}"), cwd=work, env=environment(work),
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            for name in ("machine-a", "machine-b")
        ]
        for worker in workers:
            assert worker.wait(timeout=600) == 0, worker.stderr.read()[-3000:]
        trials = optuna.load_study(study_name="tiny-text", storage=url).get_trials()
    assert sorted(t.number for t in trials) == [0, 1, 2, 3]
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    assert len({t.user_attrs["pid"] for t in trials}) == 2  # both processes ran trials
    ran = [int(r["number"]) for name in ("machine-a", "machine-b") for r in rows(work / name)]
    assert sorted(ran) == [0, 1, 2, 3]  # each trial ran once, in one of the two


def test_a_sweep_starting_while_another_claims_a_trial_leaves_that_trial_alone(tmp_path):
    """Two sweeps on one machine: the second one's start (which settles trials left by dead sweeps) may read the
    first one's new trial between the writes that claim it; the trial must stay the first sweep's."""
    url = f"sqlite:///{tmp_path / 'study.db'}"
    study = studies.open_study(studies.open_storage(url), "race", "minimize", "val/mse", [])
    trial = study.ask()
    settled, write = [], trial.set_user_attr

    def write_then_another_sweep_starts(key, value):
        write(key, value)
        other = studies.open_study(studies.open_storage(url), "race", "minimize", "val/mse", [])
        settled.append(studies.settle_interrupted(other, "val/mse"))

    trial.set_user_attr = write_then_another_sweep_starts
    studies.claim(trial)
    assert settled == [(0, []), (0, [])]
    assert study.get_trials()[0].state == optuna.trial.TrialState.RUNNING


def test_a_trial_asked_for_by_a_sweep_killed_before_claiming_it_is_run_again_not_left_running(work):
    """A sweep killed between its ask and its claim leaves a running trial with no owner; a relaunch cannot tell
    it from one another sweep is claiming that instant, so it waits until the trial is old enough (a minute),
    then runs it again. Here it is 40 s old: the relaunch must wait out the rest, not end with it running."""
    space = write_space(work, 1, LR)
    sweep_dir = work / "sweep"
    sweep_dir.mkdir()
    orphan = optuna.create_study(study_name="tiny-text", storage=studies.storage_url(None, sweep_dir)).ask()
    with sqlite3.connect(sweep_dir / "study.db") as db:
        db.execute("UPDATE trials SET datetime_start = ? WHERE trial_id = ?",
                   (datetime.now() - timedelta(seconds=40), orphan._trial_id))

    run_script("sweep.py", *space, *SMALL, f"hydra.run.dir={sweep_dir}", cwd=work)
    study = load(sweep_dir)
    trials = study.trials
    assert trials[orphan.number].state == optuna.trial.TrialState.FAIL
    assert [t.state for t in trials if t.number not in retried(study)] == [optuna.trial.TrialState.COMPLETE]
    assert trials[-1].system_attrs["retry_history"] == [orphan.number]


def test_a_sweep_in_which_no_trial_completes_exits_non_zero(work):
    # Batches wider than the corpus: a valid config that fails once the data is read, so the trial fails.
    space = write_space(work, 1, "    data.eval_batch_size: {type: categorical, choices: [100000]}\n")
    done = run_script("sweep.py", *space, *SMALL, f"hydra.run.dir={work / 'sweep'}", cwd=work, check=False)
    assert done.returncode != 0
    assert done.stderr.strip().splitlines()[-1].startswith("error: no trial of study tiny-text completed")
    assert (work / "sweep" / "trials" / "000" / "metrics.json").is_file()  # the failed trial's folder is kept





@pytest.mark.parametrize(
    "params, override, message",
    [
        ("    model.optimizer.lr: {type: float, low: 0.05, high: 0.005}\n", "seed=1", "needs low < high"),
        ("    model.hiden_dim: {type: int, low: 8, high: 16}\n", "seed=1", "the training config has no key model.hiden_dim"),
        (LR, "hparams_search.direction=down", "hparams_search.direction='down' is not one of"),
        (LR, "model.optimizer.lr=0.1", "model.optimizer.lr is both searched"),
        ("    model.net.dropout: {type: float, low: 0.0, high: 1.5}\n", "seed=1",
         "hparams_search.params.model.net.dropout: model.net.dropout=1.5 must be a number in [0, 1)"),
        (LR, "data.bptt=0", "data.bptt=0 must be a positive integer"),
        (LR, 'hparams_search.overrides=["trainer.max_epoch=1"]', "the training config has no key trainer.max_epoch"),
        (LR, 'hparams_search.overrides=["model.optimizer.lr=0.1"]', "sets model.optimizer.lr, which is also searched"),
        (LR, 'hparams_search.overrides=["data.bptt=0"]', "data.bptt=0 must be a positive integer"),
    ],
)
def test_a_bad_search_is_one_clear_line_before_any_trial(work, params, override, message):
    space = write_space(work, 2, params)
    done = run_script("sweep.py", *space, *SMALL, override, f"hydra.run.dir={work / 'sweep'}", cwd=work, check=False)
    assert done.returncode == 2 and message in done.stderr.strip().splitlines()[-1]
    assert not (work / "sweep" / "trials").exists()


def test_every_trial_runs_with_the_searchs_own_overrides(work):
    space = write_space(work, 1, LR, '  overrides: ["trainer.max_epochs=1", "test=false"]\n')
    run_script("sweep.py", *space, *SMALL, f"hydra.run.dir={work / 'sweep'}", cwd=work)
    trial = work / "sweep" / "trials" / "000"
    assert OmegaConf.load(trial / "config.yaml").trainer.max_epochs == 1  # SMALL says 2
    metrics = json.loads((trial / "metrics.json").read_text())
    assert metrics["epochs"] == 1 and "val/ppl" in metrics and not any(k.startswith("test/") for k in metrics)


def test_a_relaunch_with_other_overrides_is_refused_instead_of_mixing_two_setups(work):
    space = write_space(work, 1, LR)
    run_script("sweep.py", *space, *SMALL, f"hydra.run.dir={work / 'sweep'}", cwd=work)
    done = run_script("sweep.py", *space, *SMALL, "model.net.hidden_dim=8", f"hydra.run.dir={work / 'sweep'}", cwd=work, check=False)
    assert done.returncode == 2 and "relaunch with the same ones, or set hparams_search.study_name=NEW" in done.stderr


def test_override_values_survive_hydras_grammar():
    assert override_value("it's a/b") == "'it\\'s a/b'"
    assert override_value({"storage": "sqlite:////x.db", "n": 3, "p": {"upper": 8.0}}) == "{storage:'sqlite:////x.db',n:3,p:{upper:8.0}}"
    assert override_value(None) == "null" and override_value(True) == "true" and override_value(math.nan) == "nan"
    assert override_value([1e-07, "a"]) == "[1e-07,'a']"


@pytest.mark.parametrize("launcher", ["basic", "submitit_local"])
def test_a_hydra_grid_writes_runs_csv_as_its_jobs_end(work, launcher):
    fixed = [o for o in SMALL if not o.startswith("model.net.hidden_dim")]
    extra = ["hydra/launcher=submitit_local", "hydra.launcher.timeout_min=10"] if launcher != "basic" else []
    run_script("train.py", "-m", *fixed, *extra, "model.net.hidden_dim=8,16", "seed=1,2", f"hydra.sweep.dir={work / 'grid'}",
               cwd=work)
    table = rows(work / "grid")
    settings = {(r["overrides"].split("model.net.hidden_dim=")[1].split()[0], r["overrides"].split("seed=")[1].split()[0])
                for r in table}
    assert settings == {("8", "1"), ("8", "2"), ("16", "1"), ("16", "2")}
    for r in table:
        metrics = json.loads((work / "grid" / r["run"] / "metrics.json").read_text())
        assert r["status"] == "completed" and float(r["val/ppl"]) == pytest.approx(metrics["val/ppl"])
        assert float(r["value"]) == pytest.approx(metrics["val/ppl"]) and float(r["wall_seconds"]) > 0
