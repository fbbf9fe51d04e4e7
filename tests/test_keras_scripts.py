"""experiment=keras_classic as a user runs it: train to the end, evaluate its checkpoint, refuse bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from tests.test_scripts import run_script

# The experiment on the fixture corpus, at test sizes.
KERAS_TINY = ["experiment=keras_classic", "data=text", "data.data_dir=corpus", "data.max_length=6", "data.batch_size=16",
              "data.eval_batch_size=32", "model.net.embedding_dim=16", "model.net.hidden_dim=16",
              "model.optimizer.lr=0.02"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    from tests.conftest import write_corpus

    work = tmp_path_factory.mktemp("keras")
    write_corpus(work / "corpus")
    run_script("train.py", *KERAS_TINY, "trainer.max_epochs=2", f"hydra.run.dir={work / 'run'}", cwd=work)
    return work


def test_the_keras_experiment_trains_to_the_end(trained):
    metrics = json.loads((trained / "run" / "metrics.json").read_text())
    assert metrics["status"] == "completed" and metrics["epochs"] == 2
    assert 1 < metrics["test/ppl"] < 8  # a uniform guess over the fixture's 20 tokens scores 20
    assert 0 < metrics["val/acc"] <= 1
    checkpoint = torch.load(metrics["best_checkpoint"], weights_only=True)
    config = checkpoint["seqlab_config"]
    assert config["data"]["mode"] == "windows" and config["data"]["max_length"] == 6
    assert config["model"]["net"]["_target_"] == "seqlab.nn.window_lm.WindowLanguageModel"
    assert config["trainer"]["gradient_clip_val"] is None
    assert checkpoint["train_state"] is None  # nothing carried


def test_eval_of_its_checkpoint_reproduces_the_test_perplexity(trained):
    metrics = json.loads((trained / "run" / "metrics.json").read_text())
    run_script("eval.py", f"ckpt_path={metrics['best_checkpoint']}", f"hydra.run.dir={trained / 'eval'}", cwd=trained)
    evaluated = json.loads((trained / "eval" / "metrics.json").read_text())
    assert evaluated["test/ppl"] == pytest.approx(metrics["test/ppl"], rel=1e-5)
    assert evaluated["test/acc"] == pytest.approx(metrics["test/acc"])


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["data.mode=sentences"], "data.mode=sentences must be one of stream, windows"),  # checked before any data
        (["data.max_length=100000"], "data.max_length=100000 leaves no window in the"),
        (["data.mode=stream"], "a window net (model=keras_lstm) needs data.mode=windows"),
    ],
)
def test_bad_input_is_one_clear_line(tmp_path, overrides, message):
    from tests.conftest import write_corpus

    write_corpus(tmp_path / "corpus")
    done = run_script("train.py", *KERAS_TINY, *overrides, f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path,
                      check=False)
    assert done.returncode == 2
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and message in errors[0], done.stderr[-2000:]
    assert "Traceback" not in done.stderr
