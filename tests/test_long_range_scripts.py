"""The long-range experiment as a user runs it: a tiny Hydra multirun of experiment=long_range, the report over its
runs, and eval.py on one of its checkpoints."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import REPO
from tests.test_scripts import run_script

TINY = ["experiment=long_range", "data.gap=6", "data.n_train=64", "data.n_val=16", "data.n_test=24",
        "data.batch_size=16", "data.eval_batch_size=10", "model.net.hidden_dim=8", "trainer.max_epochs=2",
        "logger=csv", "callbacks.progress_bar=null"]


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> Path:
    """Two cells, two seeds: four runs of the adding problem at T=6."""
    work = tmp_path_factory.mktemp("long_range")
    run_script("train.py", "-m", *TINY, "model.net.cell=rnn,lstm", "seed=1,2", f"hydra.sweep.dir={work / 'sweep'}",
               cwd=work)
    return work


def runs_of(sweep: Path) -> list[dict]:
    with open(sweep / "sweep" / "runs.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_each_run_reports_its_score_the_baseline_and_gradient_norms(sweep):
    rows = runs_of(sweep)
    assert len(rows) == 4 and {r["status"] for r in rows} == {"completed"}
    for row in rows:
        folder = sweep / "sweep" / row["run"]
        metrics = json.loads((folder / "metrics.json").read_text())
        assert {"val/loss", "val/mse", "val/baseline_mse", "test/mse", "test/baseline_mse"} <= metrics.keys()
        assert 0.05 < metrics["test/baseline_mse"] < 0.35  # 1/6 in expectation, over 24 test sequences
        assert float(row["value"]) == pytest.approx(metrics["val/loss"])  # the monitor a sweeper minimises
        saved = json.loads((folder / "gradient_norms.json").read_text())
        assert saved["steps"] == 6 and all(np.isfinite(saved["norms"])) and min(saved["norms"]) > 0


def test_the_report_tables_mean_and_std_over_seeds_and_draws_both_figures(sweep):
    out = sweep / "report"
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "long_range_report.py"), str(sweep / "sweep"),
                           "--out", str(out)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    scores = {"rnn": [], "lstm": []}
    for row in runs_of(sweep):
        metrics = json.loads((sweep / "sweep" / row["run"] / "metrics.json").read_text())
        cell = "lstm" if "model.net.cell=lstm" in row["overrides"] else "rnn"
        scores[cell].append(metrics["test/mse"])
    lines = (out / "long_range_adding.md").read_text().splitlines()
    assert lines[2] == "| T | rnn | lstm | baseline |"  # only the cells that ran, in rnn, gru, lstm order
    cells = [c.strip() for c in lines[4].strip("|").split("|")]
    assert cells[0] == "6"
    for column, cell in ((1, "rnn"), (2, "lstm")):
        mean, std = np.mean(scores[cell]), np.std(scores[cell], ddof=1)
        assert cells[column] == f"{mean:.4f} ± {std:.4f} (2)"
    for name in ("long_range_adding.png", "long_range_adding_gradients_T6.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list((sweep / "sweep").rglob("long_range_adding.md"))  # nothing written where it reads


def test_eval_of_a_checkpoint_gives_the_runs_own_test_scores(sweep):
    folder = sweep / "sweep" / runs_of(sweep)[0]["run"]
    trained = json.loads((folder / "metrics.json").read_text())
    run_script("eval.py", f"ckpt_path={trained['best_checkpoint']}", f"hydra.run.dir={sweep / 'eval'}", cwd=sweep)
    evaluated = json.loads((sweep / "eval" / "metrics.json").read_text())
    assert evaluated["test/mse"] == pytest.approx(trained["test/mse"], rel=1e-5)
    assert (sweep / "eval" / "gradient_norms.json").is_file()
