"""No lost work: a run killed at any step resumes to the very same weights, checkpoints are never half-written,
and a diverging run stops with its last good checkpoint kept."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from seqlab.checkpointing import ModelCheckpoint
from tests.conftest import REPO, write_corpus
from tests.test_scripts import TINY, run_script

LM = ["data=text", "data.data_dir=corpus", *TINY, "trainer.max_epochs=2"]
# Dropout, input noise and a shuffled window order: every random generator in play must resume where it was.
FORECASTER = [
    "model=lstm_forecaster", "data=sine", "data.length=1500", "model.net.hidden_dim=16", "model.net.num_layers=2",
    "model.net.segment_length=12", "model.net.dropout=0.3", "model.input_noise=0.1", "trainer.max_epochs=2",
]
EMA = ["callbacks=ema", "callbacks.weight_averaging.decay=0.9"]
EVERY_STEP = ["callbacks.model_checkpoint.every_n_train_steps=1"]
EVERY_INSTANT = ["callbacks.model_checkpoint.every_n_minutes=1e-9"]  # the time interval, due at every step
VARIABLE_BPTT = ["data.variable_bptt=true", "model.lr_length=8"]  # an unsized stream, cut anew each epoch


def kill_at_step(command: list[str], last: Path, step: int, cwd: Path) -> None:
    """Start a training run and SIGKILL it as soon as its last.ckpt reaches `step` (it may have gone a little further)."""
    env = {**os.environ, "SEQLAB_CACHE": str(cwd / "cache"), "OMP_NUM_THREADS": "1"}
    child = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and child.poll() is None:
            if last.is_file() and torch.load(last, weights_only=True)["global_step"] >= step:
                break
            time.sleep(0.02)
        assert child.poll() is None, "the run ended before it could be killed"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()


@pytest.mark.parametrize(
    "task, extra",
    [("lm", EVERY_STEP), ("lm", EMA + EVERY_INSTANT), ("lm", VARIABLE_BPTT + EVERY_STEP), ("forecaster", EVERY_STEP),
     ("forecaster", EMA + EVERY_INSTANT)],
    ids=["lm", "lm-ema", "lm-variable-bptt", "forecaster", "forecaster-ema"],
)
def test_a_run_killed_at_a_random_step_resumes_to_the_same_weights_bit_for_bit(tmp_path, task, extra):
    write_corpus(tmp_path / "corpus")
    args = [*(LM if task == "lm" else FORECASTER), *extra, "logger=none"]
    run_script("train.py", *args, f"hydra.run.dir={tmp_path / 'whole'}", cwd=tmp_path)
    whole = torch.load(tmp_path / "whole" / "checkpoints" / "last.ckpt", weights_only=True)

    step = random.randrange(1, whole["global_step"])
    last = tmp_path / "killed" / "checkpoints" / "last.ckpt"
    kill_at_step([sys.executable, str(REPO / "scripts" / "train.py"), *args, f"hydra.run.dir={tmp_path / 'killed'}"],
                 last, step, tmp_path)
    killed = torch.load(last, weights_only=True)
    killed_at = killed["global_step"]
    run_script("train.py", *args, f"ckpt_path={last}", f"hydra.run.dir={tmp_path / 'resumed'}", cwd=tmp_path)
    final = tmp_path / "resumed" / "checkpoints" / "last.ckpt"
    # On a busy machine the kill can land after the last step: the resumed run then has nothing left to write.
    nothing_left = killed_at == whole["global_step"] and not final.is_file()
    resumed = killed if nothing_left else torch.load(final, weights_only=True)

    assert resumed["global_step"] == whole["global_step"]
    weights = ["state_dict", "current_model_state"] if "callbacks=ema" in extra else ["state_dict"]
    for kind in weights:  # with EMA: the average, and the weights being trained
        differ = [name for name, value in whole[kind].items() if not torch.equal(resumed[kind][name], value)]
        assert not differ, f"killed after step {killed_at} (aimed at {step}): {kind} differs in {differ}"


def test_a_kill_while_a_checkpoint_is_written_leaves_the_previous_one_whole(tmp_path):
    path = tmp_path / "last.ckpt"
    child = textwrap.dedent(f"""
        import os, signal, torch
        from seqlab.checkpointing import AtomicCheckpointIO

        io = AtomicCheckpointIO()
        io.save_checkpoint({{"step": 1, "weights": torch.ones(1000)}}, {str(path)!r})

        def dies_halfway(obj, f):
            f.write(b"half a checkpoint" * 1000)
            f.flush()
            os.kill(os.getpid(), signal.SIGKILL)

        torch.save = dies_halfway
        io.save_checkpoint({{"step": 2, "weights": torch.zeros(1000)}}, {str(path)!r})
    """)
    done = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, timeout=120)
    assert done.returncode == -signal.SIGKILL, done.stderr
    kept = torch.load(path, weights_only=True)
    assert kept["step"] == 1 and torch.equal(kept["weights"], torch.ones(1000))


def test_a_diverging_run_stops_at_once_naming_the_step_and_keeping_the_last_good_checkpoint(tmp_path):
    write_corpus(tmp_path / "corpus")
    explode = "model.scheduler={_target_:torch.optim.lr_scheduler.StepLR,_partial_:true,step_size:1,gamma:inf}"
    done = run_script("train.py", *LM, *EVERY_STEP, explode, "logger=none", f"hydra.run.dir={tmp_path / 'run'}",
                      cwd=tmp_path, check=False)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    error = done.stderr.strip().splitlines()[-1]
    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    kept = torch.load(last, weights_only=True)
    # The learning rate turns infinite with the second epoch: its first step is the first bad one.
    assert error.startswith("error: weight net.") and f"not finite after step {kept['global_step'] + 1}" in error
    assert f"the last good checkpoint (step {kept['global_step']}) is {last}" in error
    assert all(bool(value.isfinite().all()) for value in kept["state_dict"].values())
    assert not (tmp_path / "run" / "metrics.json").exists()


def test_a_run_resumed_into_a_new_folder_tests_the_best_checkpoint_of_the_whole_run(tmp_path):
    # Ranked by the highest validation loss, the best checkpoint is the first epoch's: one the killed run wrote.
    args = [*[a for a in FORECASTER if not a.startswith("trainer.max_epochs")], "trainer.max_epochs=3",
            "callbacks.model_checkpoint.mode=max", "logger=none"]
    run_script("train.py", *args, f"hydra.run.dir={tmp_path / 'whole'}", cwd=tmp_path)
    whole = json.loads((tmp_path / "whole" / "metrics.json").read_text())
    assert Path(whole["best_checkpoint"]).name == "epoch_000.ckpt"
    steps_per_epoch = torch.load(tmp_path / "whole" / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] // 3

    killed = tmp_path / "killed" / "checkpoints"
    kill_at_step([sys.executable, str(REPO / "scripts" / "train.py"), *args, f"hydra.run.dir={tmp_path / 'killed'}"],
                 killed / "last.ckpt", steps_per_epoch, tmp_path)
    run_script("train.py", *args, f"ckpt_path={killed / 'last.ckpt'}", f"hydra.run.dir={tmp_path / 'resumed'}",
               cwd=tmp_path)
    resumed = json.loads((tmp_path / "resumed" / "metrics.json").read_text())

    assert resumed["best_checkpoint"] == str(killed / "epoch_000.ckpt") and (killed / "epoch_000.ckpt").is_file()
    measured = [key for key in whole if key.startswith(("val/", "test/"))]
    assert measured and {key: resumed[key] for key in measured} == {key: whole[key] for key in measured}


def test_a_run_resumed_after_its_old_checkpoints_were_deleted_ranks_its_own_epochs(tmp_path):
    old = str(tmp_path / "old" / "epoch_000.ckpt")  # never written
    callback = ModelCheckpoint(dirpath=tmp_path / "new", monitor="val/loss")
    callback.load_state_dict({"dirpath": str(tmp_path / "old"), "best_k_models": {old: torch.tensor(1.0)},
                              "best_model_path": old, "best_model_score": torch.tensor(1.0), "kth_best_model_path": old,
                              "kth_value": torch.tensor(1.0), "last_model_path": str(tmp_path / "old" / "last.ckpt")})
    assert (callback.best_k_models, callback.best_model_path, callback.best_model_score) == ({}, "", None)
    assert callback.last_model_path == ""


def test_a_resumed_run_counts_the_fit_time_of_the_run_it_resumes(tmp_path):
    args = [*[a for a in FORECASTER if not a.startswith("trainer.max_epochs")], "logger=none"]
    run_script("train.py", *args, "trainer.max_epochs=1", f"hydra.run.dir={tmp_path / 'first'}", cwd=tmp_path)
    first = json.loads((tmp_path / "first" / "metrics.json").read_text())
    checkpoint = torch.load(tmp_path / "first" / "checkpoints" / "last.ckpt", weights_only=True)
    assert 0 < checkpoint["callbacks"]["FitClock"]["fit_seconds"] <= first["fit_seconds"]

    checkpoint["callbacks"]["FitClock"]["fit_seconds"] = 1000.0  # as if the first run had taken that long
    torch.save(checkpoint, tmp_path / "first.ckpt")
    run_script("train.py", *args, "trainer.max_epochs=2", f"ckpt_path={tmp_path / 'first.ckpt'}",
               f"hydra.run.dir={tmp_path / 'resumed'}", cwd=tmp_path)
    resumed = json.loads((tmp_path / "resumed" / "metrics.json").read_text())

    assert resumed["epochs"] == 2 and 0 < resumed["train_seconds"] < resumed["wall_seconds"]  # its own
    assert 1000 + resumed["train_seconds"] < resumed["fit_seconds"] < 1000 + resumed["wall_seconds"]
