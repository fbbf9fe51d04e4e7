"""The GPU path, where there is one (`python -m pytest -m gpu` on a CUDA machine; skipped elsewhere, CI included).

The CPU and the GPU must agree: a checkpoint trained on the CPU scores the same on the GPU in fp32, and within
bf16's rounding in bf16-mixed; training on the GPU in bf16-mixed runs to the end for both tasks.
"""

from __future__ import annotations

import json
import math

import pytest
import torch

from tests.conftest import write_corpus
from tests.test_scripts import TINY, run_script

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


@pytest.fixture(scope="module")
def cpu_checkpoint(tmp_path_factory):
    work = tmp_path_factory.mktemp("cpu")
    write_corpus(work / "corpus")
    run_script("train.py", "data=text", "data.data_dir=corpus", "trainer.max_epochs=2",
               f"hydra.run.dir={work / 'run'}", *TINY, cwd=work)
    return work, json.loads((work / "run" / "metrics.json").read_text())


@pytest.mark.parametrize(("precision", "tolerance"), [("32-true", 1e-4), ("bf16-mixed", 2e-2)])
def test_the_gpu_scores_a_cpu_checkpoint_as_the_cpu_does(cpu_checkpoint, precision, tolerance):
    work, cpu = cpu_checkpoint
    run_dir = work / f"eval-{precision}"
    run_script("eval.py", f"ckpt_path={cpu['best_checkpoint']}", "trainer=gpu", f"trainer.precision={precision}",
               f"hydra.run.dir={run_dir}", cwd=work)
    gpu = json.loads((run_dir / "metrics.json").read_text())
    assert gpu["test/ppl"] == pytest.approx(cpu["test/ppl"], rel=tolerance)


def test_the_language_model_trains_in_bf16_on_the_gpu(tmp_path):
    write_corpus(tmp_path / "corpus")
    run_script("train.py", "data=text", "data.data_dir=corpus", "trainer=gpu", "trainer.precision=bf16-mixed",
               "trainer.max_epochs=2", f"hydra.run.dir={tmp_path / 'run'}", *TINY, cwd=tmp_path)
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    vocabulary = len(torch.load(metrics["best_checkpoint"], weights_only=True)["vocabulary"])
    assert math.isfinite(metrics["test/ppl"]) and metrics["test/ppl"] < vocabulary / 2  # learnt: below a uniform guess


def test_the_forecaster_trains_in_bf16_on_the_gpu(tmp_path):
    run_script("train.py", "model=lstm_forecaster", "data=sine", "model.net.hidden_dim=48", "trainer=gpu",
               "trainer.precision=bf16-mixed", "trainer.max_epochs=3", f"hydra.run.dir={tmp_path / 'run'}",
               cwd=tmp_path)
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["test/mae"] < metrics["test/repeat_last_mae"], metrics  # beats repeating the last value


def test_batches_reach_the_gpu_from_page_locked_memory(tmp_path):
    import lightning as L

    from seqlab.data.text import TextDataModule

    write_corpus(tmp_path / "corpus")
    datamodule = TextDataModule(data_dir=str(tmp_path / "corpus"), cache_dir=str(tmp_path / "cache"), batch_size=4,
                                eval_batch_size=2, bptt=8)
    datamodule.trainer = L.Trainer(accelerator="gpu", devices=1, logger=False)
    datamodule.trainer.strategy.setup_environment()
    datamodule.prepare_data()
    datamodule.setup("fit")
    for loader in (datamodule.train_dataloader(), datamodule.val_dataloader()):
        inputs, _ = next(iter(loader))
        assert loader.pin_memory and inputs.is_pinned()
