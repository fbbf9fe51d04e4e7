"""benchmarks/forecast_libraries.py, in seqlab's environment (the libraries themselves are not installed here): its
windows are seqlab's, its scorer counts every test window or refuses, its table reads what --out wrote."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch

from seqlab.data.timeseries import ForecastDataModule
from seqlab.models.baselines import repeat_last
from tests.conftest import REPO

SCRIPT = REPO / "benchmarks" / "forecast_libraries.py"
_spec = importlib.util.spec_from_file_location("forecast_libraries", SCRIPT)
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)


@pytest.fixture(scope="module")
def etth1_like(tmp_path_factory):
    """ETTh1's shape (hourly, 14,400 rows, its 7 columns) with random values."""
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(bench.TEST_END, len(bench.COLUMNS))).cumsum(axis=0), columns=bench.COLUMNS)
    frame.insert(0, "date", pd.date_range("2016-07-01", periods=bench.TEST_END, freq="h").astype(str))
    path = tmp_path_factory.mktemp("etth1") / "ETTh1.csv"
    frame.to_csv(path, index=False)
    return path


def test_the_windows_are_seqlabs(etth1_like):
    done = subprocess.run([sys.executable, str(SCRIPT), "--data", str(etth1_like), "--check-against-seqlab"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "{'train': 8449, 'val': 2785, 'test': 2785}" in done.stdout


def test_the_scorer_counts_every_test_window_or_refuses(etth1_like):
    scaled = bench.load_scaled(str(etth1_like))
    _, targets = bench.windows(scaled, "test")
    starts = bench.target_starts("test")
    shuffled = np.random.default_rng(1).permutation(len(starts))  # a library may return them in any order
    assert bench.score(scaled, targets[shuffled], starts[shuffled])["test_mse"] == 0.0
    # Repeating the last input row scores what seqlab's own baseline scores on its test windows.
    module = ForecastDataModule(path=str(etth1_like), split="ett_hourly", features="M", lookback=96, horizon=96)
    module.setup()
    x, y = (torch.stack(column) for column in list(zip(*module.datasets["test"]))[:2])
    theirs = torch.mean((repeat_last(x, 96) - y) ** 2).item()
    repeated = np.repeat(scaled[starts - 1][:, None, :], bench.HORIZON, axis=1)
    assert bench.score(scaled, repeated, starts)["test_mse"] == pytest.approx(theirs, rel=1e-5)
    with pytest.raises(SystemExit, match="forecast 2784 test windows, not the protocol's 2785"):
        bench.score(scaled, targets[1:], starts[1:])


def test_the_table_ranks_the_results_by_test_mse(tmp_path):
    paths = []
    for library, mse in [("darts-rnn", 0.9), ("neuralforecast", 0.4)]:
        result = {"library": library, "model": "LSTM", "test_mse": mse, "test_mae": mse / 2, "parameters": 1234,
                  "epochs": 5, "best_epoch": 2, "fit_seconds": 61.4, "predict_seconds": 1.25, "smoke": False,
                  "versions": {library.split("-")[0]: "1.0", "torch": "2.13.0"}}
        paths.append(tmp_path / f"{library}.json")
        paths[-1].write_text(json.dumps(result))
    rows = bench.table([str(p) for p in paths]).splitlines()[2:]
    assert rows[0] == "| neuralforecast 1.0 | `LSTM` | 0.4000 / 0.2000 | 1,234 | 5 (2) | 61 | 1.2 |"
    assert rows[1].startswith("| darts-rnn 1.0 |")
