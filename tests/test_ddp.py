"""Many processes, same numbers: `trainer=ddp_cpu` (2 CPU processes, gloo) through the real scripts, against what one
process gives for the same weights. The language model runs under Lightning's own launcher, the forecaster under
torchrun (the launch of a multi-node job); both on data small enough for a few seconds a run."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import lightning as L
import pytest

from seqlab.checkpoints import load_with_data
from tests.conftest import REPO, write_corpus

PROCESSES = 2
LM = ["data=text", "data.data_dir=corpus", "model.optimizer.lr=0.02", "model.net.embedding_dim=16", "model.net.hidden_dim=16",
      "model.net.num_layers=1", "data.batch_size=4", "data.bptt=8", "data.eval_batch_size=3", "trainer.max_epochs=1"]
# 33 validation and 73 test windows: odd, so a sampler that pads with repeated windows would change the scores.
FORECASTER = ["model=lstm_forecaster", "data=sine", "data.length=400", "data.lookback=24", "data.horizon=8",
              "data.season=null", "model.net.hidden_dim=16", "data.eval_batch_size=16", "trainer.max_epochs=2"]


def run(command: list[str], cwd: Path, **env) -> subprocess.CompletedProcess:
    """A command as a user types it, without this environment's launcher settings: OMP_NUM_THREADS is left unset, so
    the thread count each process gets is the launcher's doing."""
    launcher = ("OMP_NUM_THREADS", "RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT", "TORCHELASTIC_RUN_ID")
    environment = {k: v for k, v in os.environ.items() if k not in launcher and not k.startswith("SLURM_")}
    environment.update({"WANDB_MODE": "offline", "SEQLAB_CACHE": str(cwd / "cache"), "HYDRA_FULL_ERROR": "1", **env})
    return subprocess.run(command, cwd=cwd, env=environment, capture_output=True, text=True, timeout=240)


def script(name: str) -> list[str]:
    return [sys.executable, str(REPO / "scripts" / name)]


def completed(done: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert done.returncode == 0, f"exit {done.returncode}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


def one_process(checkpoint: str, cache: Path, **changes) -> dict:
    """Validation and test metrics of a checkpoint in this one process, as `scripts/eval.py` loads it."""
    model, datamodule = load_with_data(checkpoint, changes=changes, cache_dir=str(cache))
    trainer = L.Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
                        enable_model_summary=False)
    return {**trainer.validate(model, datamodule=datamodule, verbose=False)[0],
            **trainer.test(model, datamodule=datamodule, verbose=False)[0]}


def same_scores(metrics: dict, reference: dict) -> None:
    scores = sorted(k for k in reference if k.startswith(("val/", "test/")))
    assert scores and set(scores) <= set(metrics)
    for key in scores:
        assert metrics[key] == pytest.approx(reference[key], rel=1e-6), key


def threads_line(threads: int) -> str:
    """What a run of several processes logs about them."""
    return f"{PROCESSES} processes (gloo), threads per process: {[threads] * PROCESSES}"


@pytest.fixture(scope="module")
def lm(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    """A language model trained by 2 processes that Lightning starts, into Hydra's default run folder."""
    work = tmp_path_factory.mktemp("ddp-lm")
    write_corpus(work / "corpus")
    return work, completed(run([*script("train.py"), "trainer=ddp_cpu", *LM], cwd=work))


def test_two_processes_train_to_the_end_and_only_rank_0_writes_the_run_folder(lm):
    work, done = lm
    runs = list((work / "outputs").rglob("metrics.json"))
    assert len(runs) == 1, runs  # one run folder: the second process used the first one's, and wrote nothing in it
    folder = runs[0].parent
    assert json.loads(runs[0].read_text())["status"] == "completed"
    assert {p.name for p in folder.iterdir()} == {
        ".hydra", "checkpoints", "config.yaml", "config_tree.log", "csv", "metrics.json", "tensorboard", "train.log"}
    assert {p.name for p in (folder / ".hydra").iterdir()} == {"config.yaml", "hydra.yaml", "overrides.yaml"}
    assert {p.name for p in (folder / "checkpoints").iterdir()} == {"epoch_000.ckpt", "last.ckpt"}
    assert {p.name for p in (folder / "csv").iterdir()} == {"hparams.yaml", "metrics.csv"}
    writers = {p.name.split(".")[-2] for p in (folder / "tensorboard").glob("events.out.tfevents.*")}
    assert len(writers) == 1  # the event files carry the writing process's id
    log = (folder / "train.log").read_text()
    assert log.count("metrics.json: ") == 1 and log.count("threads per process") == 1
    assert done.stdout.splitlines().count("config") == 1  # the config tree, printed (and written) once
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    assert threads_line(max(1, cores // PROCESSES)) in done.stdout  # each process got its share of the cores


def test_perplexity_of_two_processes_is_one_process_figure(lm):
    work, _ = lm
    metrics = json.loads(next((work / "outputs").rglob("metrics.json")).read_text())
    # The two processes' evaluation streams had 3 columns each: one process with 6 lays the stream out the same.
    reference = one_process(metrics["best_checkpoint"], work / "cache", data_dir=str(work / "corpus"),
                            eval_batch_size=3 * PROCESSES)
    same_scores(metrics, reference)
    assert {"val/ppl", "test/ppl"} <= set(reference)


def counted(metrics: dict, unit: str) -> float:
    """What metrics.json says was trained: its rate times its training time."""
    return metrics[f"train_{unit}_per_second"] * metrics["train_seconds"]


def rounding(metrics: dict, unit: str) -> float:
    """How far `counted` can be off from rounding alone: the rate to 0.1, the seconds to 0.001."""
    return 0.05 * metrics["train_seconds"] + 0.0005 * metrics[f"train_{unit}_per_second"] + 1e-6


def test_tokens_per_second_is_the_sum_over_processes(lm):
    work, _ = lm
    metrics = json.loads(next((work / "outputs").rglob("metrics.json")).read_text())
    _, datamodule = load_with_data(metrics["best_checkpoint"], changes={"data_dir": str(work / "corpus")},
                                   cache_dir=str(work / "cache"))
    trained = datamodule.corpus.splits["train"].numel() - 1  # every (input, next token) pair once, across processes
    assert counted(metrics, "tokens") == pytest.approx(trained, abs=rounding(metrics, "tokens"))


def test_a_forecaster_under_torchrun_scores_every_window_once(tmp_path):
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={PROCESSES}",
               *script("train.py")[1:], "trainer=ddp_cpu", *FORECASTER, f"hydra.run.dir={tmp_path / 'run'}"]
    done = completed(run(command, cwd=tmp_path))
    assert [p.name for p in tmp_path.iterdir() if p.name != "cache"] == ["run"]
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["status"] == "completed" and metrics["epochs"] == 2
    reference = one_process(metrics["best_checkpoint"], tmp_path / "cache")
    same_scores(metrics, reference)
    assert {"val/mse", "test/mse", "test/repeat_last_mse"} <= set(reference)
    # Training windows are dealt by Lightning's sampler, which evens the processes out: 249 windows make 2 x 125.
    trained = 2 * PROCESSES * math.ceil(249 / PROCESSES)
    assert counted(metrics, "windows") == pytest.approx(trained, abs=rounding(metrics, "windows"))
    assert threads_line(1) in done.stdout  # torchrun gives each process one thread itself


@pytest.mark.parametrize("case", ["sweep", "multirun", "torchrun without a run folder"])
def test_what_several_processes_cannot_do_is_refused_in_one_line(tmp_path, case):
    write_corpus(tmp_path / "corpus")
    env = {}
    if case == "sweep":
        command = [*script("sweep.py"), "hparams_search=lm_optuna", "trainer=ddp_cpu", *LM,
                   f"hydra.run.dir={tmp_path / 'sweep'}"]
        expected = "a sweep runs each trial in one process"
    elif case == "multirun":
        command = [*script("train.py"), "-m", "trainer=ddp_cpu", *LM, "seed=1,2"]
        expected = "which a Hydra multirun (-m) cannot"
    else:  # what torchrun sets; refused before any process group is joined
        command = [*script("train.py"), "trainer=ddp_cpu", *LM]
        env = {"TORCHELASTIC_RUN_ID": "test", "WORLD_SIZE": "2", "RANK": "0", "LOCAL_RANK": "0",
               "LOCAL_WORLD_SIZE": "2", "GROUP_RANK": "0", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29599"}
        expected = "give them one, hydra.run.dir="
    done = run(command, cwd=tmp_path, **env)
    errors = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert done.returncode == 2 and len(errors) == 1 and expected in errors[0], done.stderr[-3000:]
    assert not list(tmp_path.rglob("metrics.json")) and not list(tmp_path.rglob("trials"))
    if case != "sweep":  # no half-made run folder is left (a sweep keeps its own folder, which holds the study)
        assert not list(tmp_path.rglob("config_tree.log")) and not list(tmp_path.rglob(".hydra"))
