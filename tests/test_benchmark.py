"""scripts/benchmark.py: the FLOP counts against a hand count, the presets, and the script run at a tiny size.

Speed itself is never asserted: only that both loops ran and their figures are positive and finite.
"""

from __future__ import annotations

import json
import math

import pytest
from omegaconf import OmegaConf

from seqlab.benchmark.flops import forecaster_flops_per_window, lm_flops_per_token, lstm_flops
from seqlab.errors import ConfigError
from tests.conftest import REPO, write_corpus
from tests.test_scripts import run_script


def test_lm_flops_by_hand():
    # vocabulary 10, embedding 3, hidden 4, 2 layers. Forward matmuls per token: layer 1 2*4*4*(3+4) = 224,
    # layer 2 2*4*4*(4+4) = 256, output 2*4*10 = 80; training 3x that; softmax cross-entropy 5*10 + 3*10.
    assert lstm_flops(3, 4, 2) == 224 + 256
    assert lm_flops_per_token(10, 3, 4, 2) == 3 * (224 + 256 + 80) + 80


def test_forecaster_flops_by_hand():
    # 2 channels each its own stream; lookback 4 in segments of 2 (2 encoder steps), horizon 3 (2 decoder steps);
    # hidden 2. LSTM step 2*4*2*(2+2) = 64; segment embedding 2*2*2 = 8; projection 2*2*2 = 8.
    per_stream = 2 * (8 + 64) + 2 * (64 + 8)
    assert forecaster_flops_per_window(2, 4, 3, 2, 1, 2, True) == 3 * 2 * per_stream
    # Without segments or channel independence: 4 LSTM steps on 2 inputs, then one linear map to 3 x 2 values.
    assert forecaster_flops_per_window(2, 4, 3, 2, 1, None, False) == 3 * (4 * 2 * 4 * 2 * (2 + 2) + 2 * 2 * 3 * 2)


def test_presets_and_overrides():
    from seqlab.benchmark.run import settings

    cfg = OmegaConf.load(REPO / "conf" / "benchmark.yaml")
    small = settings(cfg)
    assert (small["hidden_dim"], small["num_layers"], small["batch_size"], small["bptt"]) == (200, 2, 20, 35)
    cfg.benchmark.size, cfg.benchmark.hidden_dim = "medium", 1150
    assert (settings(cfg)["embedding_dim"], settings(cfg)["hidden_dim"]) == (650, 1150)
    cfg.benchmark.size = "huge"
    with pytest.raises(ConfigError, match="benchmark.size=huge"):
        settings(cfg)


def _rows(stdout: str) -> dict[str, list[float]]:
    """The table's rows by their first cell, as numbers (the min-max range of rounds left out)."""
    rows = {}
    for line in stdout.splitlines():
        if line.startswith(("| seqlab", "| plain")):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            rows[cells[0]] = [float(c.replace(",", "").rstrip("%")) for c in cells[1:] if c and "-" not in c]
    return rows


@pytest.mark.parametrize("task", ["lm", "forecaster"])
def test_benchmark_script_prints_both_loops_and_their_ratio(tmp_path, task):
    if task == "lm":  # the real datamodule on a corpus the test writes (WT2-small's files: trains on valid.txt)
        write_corpus(tmp_path / "corpus")
        sizes = ["benchmark.data_dir=corpus", "benchmark.embedding_dim=8", "benchmark.bptt=5"]
    else:  # random windows
        sizes = ["benchmark.task=forecaster", "benchmark.lookback=48", "benchmark.horizon=24"]
    done = run_script(
        "benchmark.py", *sizes, "benchmark.hidden_dim=8", "benchmark.num_layers=1", "benchmark.batch_size=4",
        "benchmark.warmup=1", "benchmark.steps=2", "benchmark.rounds=2", "benchmark.peak_size=64",
        f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path,
    )
    rows = _rows(done.stdout)
    assert set(rows) == {"seqlab (LightningModule + Trainer)", "plain PyTorch loop", "seqlab / plain"}, done.stdout
    for values in rows.values():
        assert len(values) >= 4 and all(math.isfinite(v) and v > 0 for v in values), done.stdout
    results = json.loads((tmp_path / "run" / "benchmark.json").read_text())
    assert len(results["project"]["seconds"]) == len(results["plain"]["seconds"]) == 2
    assert results["ratio"] > 0 and results["peaks"]["float32"] > 0
    assert ("corpus" if task == "lm" else "random windows") in done.stdout
