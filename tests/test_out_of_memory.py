"""Running out of memory is one line that says so and names the settings that use less."""

from __future__ import annotations

import pytest
import torch

from seqlab.runs import reported_errors
from tests.conftest import write_corpus
from tests.test_scripts import TINY, run_script


def test_a_model_too_big_for_the_host_is_reported_with_the_knobs(tmp_path):
    write_corpus(tmp_path / "corpus")
    done = run_script("train.py", "data=text", "data.data_dir=corpus", *TINY, "model.net.hidden_dim=3000000",
                      f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path, check=False)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    error = done.stderr.strip().splitlines()[-1]
    assert error.startswith("error: out of host memory") and "data.batch_size" in error and "model.net.hidden_dim" in error
    assert not (tmp_path / "run").exists()


def test_gpu_out_of_memory_is_reported_as_such(tmp_path, capsys):
    with pytest.raises(SystemExit) as stop, reported_errors(tmp_path / "run"):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB\nmore details")
    assert stop.value.code == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("error: out of GPU memory (CUDA out of memory. Tried to allocate 20.00 GiB)")
    assert "trainer.precision=bf16-mixed" in error and "\n" not in error
