"""The entry scripts as a user runs them: subprocesses with Hydra overrides, on a corpus the test writes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from tests.conftest import REPO

TINY = ["model.optimizer.lr=0.02", "model.net.embedding_dim=16", "model.net.hidden_dim=16", "model.net.num_layers=1", "data.batch_size=4", "data.bptt=8"]


def run_script(script: str, *overrides: str, cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "WANDB_MODE": "offline",
        "SEQLAB_CACHE": str(cwd / "cache"),
        "OMP_NUM_THREADS": "1",
        "HYDRA_FULL_ERROR": "1",
    }
    done = subprocess.run(
        [sys.executable, str(REPO / "scripts" / script), *overrides],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=300,
    )
    if check and done.returncode != 0:
        raise AssertionError(f"{script} exited {done.returncode}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return done


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """One real training run of 2 epochs, shared by the tests that use its outputs."""
    from tests.conftest import write_corpus

    work = tmp_path_factory.mktemp("train")
    write_corpus(work / "corpus")
    run_script(
        "train.py", "data=text", "data.data_dir=corpus", "trainer.max_epochs=2", f"hydra.run.dir={work / 'run'}",
        *TINY, cwd=work,
    )
    return work


def test_train_writes_a_complete_run_folder(trained):
    run = trained / "run"
    metrics = json.loads((run / "metrics.json").read_text())
    assert {"val/ppl", "val/loss", "val/acc", "test/ppl", "test/acc", "parameters"} <= metrics.keys()
    assert metrics["train_tokens_per_second"] > 0
    assert metrics["epochs"] == 2
    assert 1 < metrics["test/ppl"] < 8  # a uniform guess over the fixture's 20 tokens scores 20
    assert (run / "config.yaml").is_file() and (run / "config_tree.log").is_file()
    assert {p.name for p in (run / "checkpoints").glob("*.ckpt")} >= {"last.ckpt"}
    assert Path(metrics["best_checkpoint"]).is_file()
    # The TensorBoard log, read back: one validation perplexity per epoch; the best is the one reported (the
    # best checkpoint is not validated again after fit: it carries the metrics of the validation that chose it).
    events = EventAccumulator(str(run / "tensorboard"))
    events.Reload()
    val_ppl = [e.value for e in events.Scalars("val/ppl")]
    assert len(val_ppl) == 2 and metrics["val/ppl"] == pytest.approx(min(val_ppl))
    assert 0 < metrics["train_seconds"] < metrics["fit_seconds"]  # throughput counts training time only
    assert "train/loss" in events.Tags()["scalars"]


def test_checkpoint_carries_the_vocabulary_and_the_run_config(trained):
    checkpoint = torch.load(trained / "run" / "checkpoints" / "last.ckpt", weights_only=True)  # plain data only
    assert "the" in checkpoint["vocabulary"]
    assert checkpoint["seqlab_config"]["model"]["net"]["hidden_dim"] == 16
    assert "net" not in checkpoint["hyper_parameters"]  # rebuilt from the config: no callable is stored


def test_a_run_without_a_test_reports_its_best_validation_not_its_last(tmp_path):
    """What a sweep trial (test=false) reports is its best checkpoint's validation, as a tested run does."""
    from tests.conftest import write_corpus

    write_corpus(tmp_path / "corpus")
    worse_later = "model.scheduler={_target_:torch.optim.lr_scheduler.StepLR,_partial_:true,step_size:1,gamma:1000}"
    run_script("train.py", "data=text", "data.data_dir=corpus", *TINY, "trainer.max_epochs=2", worse_later,
               "test=false", "logger=csv", f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path)
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    rows = (tmp_path / "run" / "csv" / "metrics.csv").read_text().splitlines()
    column = rows[0].split(",").index("val/ppl")
    validated = [float(row.split(",")[column]) for row in rows[1:] if row.split(",")[column]]
    assert len(validated) == 2 and validated[1] > 2 * validated[0]  # the second epoch, at lr x 1000, is worse
    assert metrics["val/ppl"] == pytest.approx(validated[0]) and "test/ppl" not in metrics
    assert metrics["best_checkpoint"].endswith("epoch_000.ckpt")


def test_resume_continues_from_the_checkpoint(trained):
    last = trained / "run" / "checkpoints" / "last.ckpt"
    run_script(
        "train.py", "data=text", "data.data_dir=corpus", "trainer.max_epochs=3", f"ckpt_path={last}",
        f"hydra.run.dir={trained / 'resumed'}", *TINY, cwd=trained,
    )
    metrics = json.loads((trained / "resumed" / "metrics.json").read_text())
    assert metrics["epochs"] == 3
    events = EventAccumulator(str(trained / "resumed" / "tensorboard"))
    events.Reload()
    assert len(events.Scalars("val/ppl")) == 1  # only the third epoch was trained (and validated) here


def test_init_from_starts_a_new_run_from_the_trained_weights(trained):
    metrics = json.loads((trained / "run" / "metrics.json").read_text())
    # At lr 1e-20 the weights never move (below float32 resolution): the run tests as the checkpoint it started from.
    run_script(
        "train.py", "data=text", "data.data_dir=corpus", "trainer.max_epochs=1", "model.optimizer.lr=1e-20",
        f"init_from={metrics['best_checkpoint']}", f"hydra.run.dir={trained / 'init'}", *TINY[1:], cwd=trained,
    )
    started = json.loads((trained / "init" / "metrics.json").read_text())
    assert started["test/ppl"] == pytest.approx(metrics["test/ppl"], rel=1e-5) and started["epochs"] == 1
    # A net of another size does not fit: one line, naming the checkpoint.
    done = run_script(
        "train.py", "data=text", "data.data_dir=corpus", f"init_from={metrics['best_checkpoint']}",
        f"hydra.run.dir={trained / 'init-wide'}", *TINY, "model.net.hidden_dim=24", cwd=trained, check=False,
    )
    assert done.returncode == 2 and "does not fit this run's model.net" in done.stderr.strip().splitlines()[-1]


def test_early_stopping_watches_validations_and_a_fit_cut_short_before_one_still_completes(trained):
    # A first validation, then none better by 1000: stopped after the second epoch of 5.
    run_script(
        "train.py", "data=text", "data.data_dir=corpus", "trainer.max_epochs=5", "callbacks.early_stopping.patience=0",
        "+callbacks.early_stopping.min_delta=1000", "logger=none", f"hydra.run.dir={trained / 'stopped'}", *TINY,
        cwd=trained,
    )
    assert json.loads((trained / "stopped" / "metrics.json").read_text())["epochs"] == 2
    # One step, no validation at all: nothing for early stopping to check, and the run still tests and reports.
    run_script(
        "train.py", "data=text", "data.data_dir=corpus", "trainer.max_steps=1", "logger=none",
        f"hydra.run.dir={trained / 'one-step'}", *TINY, cwd=trained,
    )
    metrics = json.loads((trained / "one-step" / "metrics.json").read_text())
    assert metrics["status"] == "completed" and "test/ppl" in metrics


def test_the_reported_validation_is_what_validating_the_best_checkpoint_again_gives(trained, monkeypatch):
    import lightning as L

    from seqlab.checkpoints import load_with_data

    monkeypatch.chdir(trained)  # where the run's relative data.data_dir points from
    metrics = json.loads((trained / "run" / "metrics.json").read_text())
    model, datamodule = load_with_data(metrics["best_checkpoint"], cache_dir=str(trained / "cache"))
    again = L.Trainer(logger=False, enable_progress_bar=False).validate(model, datamodule=datamodule, verbose=False)[0]
    assert {k: v for k, v in metrics.items() if k.startswith("val/")} == again


def test_eval_reproduces_the_test_metrics_of_the_best_checkpoint(trained):
    metrics = json.loads((trained / "run" / "metrics.json").read_text())
    run_script("eval.py", f"ckpt_path={metrics['best_checkpoint']}", f"hydra.run.dir={trained / 'eval'}", cwd=trained)
    evaluated = json.loads((trained / "eval" / "metrics.json").read_text())
    assert evaluated["test/ppl"] == pytest.approx(metrics["test/ppl"], rel=1e-5)
    # On other data, through the checkpoint's vocabulary: a test split of one repeated sentence.
    (trained / "other").mkdir()
    (trained / "other" / "train.txt").write_text(" the cat sat on the mat \n" * 50)
    (trained / "other" / "test.txt").write_text(" the cat sat on the mat \n" * 50)
    run_script(
        "eval.py", f"ckpt_path={metrics['best_checkpoint']}", "data=text", "data.data_dir=other",
        f"hydra.run.dir={trained / 'eval-other'}", cwd=trained,
    )
    other = json.loads((trained / "eval-other" / "metrics.json").read_text())
    assert other["test/ppl"] != pytest.approx(evaluated["test/ppl"], rel=1e-3)


def test_generate_continues_a_prompt(trained):
    done = run_script(
        "generate.py", f"ckpt_path={trained / 'run' / 'checkpoints' / 'last.ckpt'}", "prompt=the cat",
        "num_tokens=20", "temperature=0", f"hydra.run.dir={trained / 'gen'}", cwd=trained,
    )
    text = (trained / "gen" / "generated.txt").read_text()
    assert text.startswith("the cat") and len(text.split()) >= 10
    assert text.strip() in done.stdout


def test_wandb_offline_leaves_a_run_folder(trained):
    run_script(
        "train.py", "data=text", "data.data_dir=corpus", "logger=wandb", "trainer.max_epochs=1",
        "callbacks.early_stopping=null", f"hydra.run.dir={trained / 'wandb-run'}", *TINY, cwd=trained,
    )
    runs = list((trained / "wandb-run" / "wandb").glob("offline-run-*"))
    assert len(runs) == 1 and list(runs[0].glob("*.wandb"))


@pytest.mark.parametrize(
    "override, message",
    [
        ("model.net.cell=transformer", "model.net.cell=transformer must be one of lstm, gru, rnn"),
        ("data.data_dir=missing", "data.data_dir is not a folder: missing"),
        ("data.batch_size=0", "data.batch_size=0 must be a positive integer"),
        # Values are checked before the data is looked for: the missing folder is never reached.
        ("data.data_dir=missing data.bptt=0", "data.bptt=0 must be a positive integer"),
        ("trainer.precision=fp8", "trainer.precision=fp8 must be one of 64, 32, 16"),
        ("+data.foo=1", "data.foo=1 is not an argument of seqlab.data.text.TextDataModule: allowed: hub_name"),
        ("init_from=nowhere.ckpt", "checkpoint not found: nowhere.ckpt"),
        ("init_from=a.ckpt ckpt_path=b.ckpt", "give ckpt_path= (resume a run) or init_from= (a new run from its weights)"),
        ("callbacks=nt_asgd callbacks.weight_averaging.finetune=true", "fine-tuning (callbacks.weight_averaging.finetune"),
        ("data.mode=windows data.variable_bptt=true", "data.variable_bptt cuts a BPTT stream: it needs data.mode=stream"),
        ("data.variable_bptt=true trainer.val_check_interval=0.5", "Lightning refused the settings: When using an Iter"),
    ],
)
def test_bad_input_is_one_clear_line_and_no_run_folder(tmp_path, override, message):
    from tests.conftest import write_corpus

    write_corpus(tmp_path / "corpus")
    done = run_script(
        "train.py", "data=text", "data.data_dir=corpus", *override.split(), f"hydra.run.dir={tmp_path / 'run'}",
        cwd=tmp_path, check=False,
    )
    assert done.returncode == 2
    last_line = done.stderr.strip().splitlines()[-1]
    assert last_line.startswith("error: ") and message in last_line
    assert [line for line in done.stderr.splitlines() if line.startswith("error:")] == [last_line]
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "script, argument, message",
    [
        ("train.py", "model.net.hiden_dim=64",
         "model.net.hiden_dim: no such key in the config (did you mean model.net.hidden_dim?); check its spelling, "
         "or add it as a new key with +model.net.hiden_dim=64"),
        ("train.py", "model=lstmm", "model=lstmm: no such option (did you mean model=lstm?); model is one of awd_lstm, "),
        ("sweep.py", "hparams_search=etth1_l69", "hparams_search=etth1_l69: no such option (did you mean hparams_search=etth1_l96?)"),
        ("eval.py", "x=[", "an override Hydra cannot parse: "),
        ("compare.py", "metrc=val/mse", "metrc: no such key in the config (did you mean metric?)"),
    ],
)
def test_a_command_line_hydra_cannot_compose_is_one_line_with_its_fix(tmp_path, script, argument, message):
    done = run_script(script, argument, f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path, check=False)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [done.stderr.strip()] and done.stderr.startswith(f"error: {message}")
    assert not (tmp_path / "run").exists()


def test_eval_of_a_missing_checkpoint_says_so(tmp_path):
    done = run_script("eval.py", "ckpt_path=nowhere.ckpt", f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path, check=False)
    assert done.returncode == 2 and "checkpoint not found: nowhere.ckpt" in done.stderr


def test_help_and_cfg_work_as_hydra_users_expect(tmp_path):
    assert "seqlab" in run_script("train.py", "--help", cwd=tmp_path).stdout
    job = run_script("train.py", "--cfg", "job", "model=lstm", "model.net.hidden_dim=64", cwd=tmp_path).stdout
    assert "hidden_dim: 64" in job and "_target_: seqlab.models.language_model.LanguageModel" in job
    # A single file per split can be named without a '+' (the README's Tiny Shakespeare command).
    job = run_script("train.py", "--cfg", "job", "data=text", "data.files.train=input.txt", "data.tokenizer=char", cwd=tmp_path).stdout
    assert "train: input.txt" in job and "tokenizer: char" in job
