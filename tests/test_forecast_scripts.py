"""The forecaster end to end, as a user runs it: train on the sine data, then forecast from the checkpoint."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from tests.test_scripts import run_script

SMALL = ["model=lstm_forecaster", "data=sine", "model.net.hidden_dim=48", "model.net.segment_length=12", "trainer.max_epochs=6"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("forecast")
    # With a learned cycle, so that each window's first row travels from the data to the net.
    run_script("train.py", *SMALL, "model.head=quantile", "model.net.cycle_length=24", f"hydra.run.dir={work / 'run'}",
               cwd=work)
    return work


def test_the_forecaster_beats_the_baselines_on_the_same_windows(trained):
    metrics = json.loads((trained / "run" / "metrics.json").read_text())
    assert metrics["test/mse"] < 0.5 * metrics["test/repeat_last_mse"]
    assert metrics["test/mae"] < metrics["test/repeat_last_mae"]
    assert "test/seasonal_naive_mse" in metrics and "test/unscaled_mse" in metrics
    # The 0.1-0.9 quantiles make an 80 % interval; on held-out windows it should roughly hold.
    assert metrics["test/nominal_coverage"] == pytest.approx(0.8)
    assert 0.5 < metrics["test/coverage"] <= 1.0


def test_the_cycle_is_learned(trained):
    state = torch.load(trained / "run" / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    assert state["net.cycle"].shape == (24, 3) and state["net.cycle"].abs().max() > 0


def test_training_logs_forecast_plots_to_tensorboard(trained):
    events = EventAccumulator(str(trained / "run" / "tensorboard"), size_guidance={"images": 0})
    events.Reload()
    assert len([t for t in events.Tags()["images"] if t.startswith("test/forecast_window_")]) == 3


def test_forecast_writes_a_csv_and_plots_for_chosen_windows(trained):
    ckpt = trained / "run" / "checkpoints" / "last.ckpt"
    run_script("forecast.py", f"ckpt_path={ckpt}", "windows=[0,5,-1]", f"hydra.run.dir={trained / 'fc'}", cwd=trained)
    table = pd.read_csv(trained / "fc" / "forecasts.csv")
    horizon, targets = 24, 3  # the sine data's defaults
    assert len(table) == 3 * horizon * targets
    assert table[["low", "high"]].notna().all().all()
    assert (table.low <= table.high).all()
    pngs = {p.name for p in (trained / "fc").glob("*.png")}
    assert {"forecast_test_0.png", "forecast_test_5.png"} < pngs and len(pngs) == 3  # -1: the last window


def test_a_csv_trained_forecaster_forecasts_another_file_through_data_path(tmp_path):
    from seqlab.data.timeseries import sine_frame

    sine_frame(seed=3, length=1500, n_series=2, noise=0.1).to_csv(tmp_path / "series.csv")
    sine_frame(seed=4, length=1200, n_series=2, noise=0.1).to_csv(tmp_path / "other.csv")
    csv = ["data=csv", "data.target=[sine_0,sine_1]", "data.lookback=48", "data.horizon=24", "data.season=24"]
    run_script(
        "train.py", *SMALL[:1], *SMALL[2:], *csv, "data.path=series.csv", "logger=none",
        f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path,
    )
    ckpt = tmp_path / "run" / "checkpoints" / "last.ckpt"
    run_script("forecast.py", f"ckpt_path={ckpt}", "data.path=other.csv", "num_windows=2", f"hydra.run.dir={tmp_path / 'fc'}", cwd=tmp_path)
    table = pd.read_csv(tmp_path / "fc" / "forecasts.csv", parse_dates=["time"])
    assert set(table.target) == {"sine_0", "sine_1"}
    # The last test window of other.csv ends on its last row: the forecasts are of that file.
    assert table.time.max() == pd.Timestamp("2000-01-01") + pd.Timedelta(hours=1199)
    assert table.low.isna().all()  # a point forecaster has no interval


def test_weight_averaging_validates_saves_and_tests_the_averaged_weights(tmp_path):
    run_script(
        "train.py", *SMALL[:-1], "trainer.max_epochs=3", "callbacks=ema", "callbacks.weight_averaging.decay=0.9",
        "logger=none", f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path,
    )
    (best,) = (tmp_path / "run" / "checkpoints").glob("epoch_*.ckpt")
    saved = torch.load(best, weights_only=False)
    averaged, current = saved["state_dict"], saved["current_model_state"]
    assert any(not torch.equal(averaged[k], current[k]) for k in averaged if k.startswith("net."))
    # eval.py loads the checkpoint's state_dict alone: the same test figures mean the training run
    # tested the averaged weights, not the last step's.
    run_script("eval.py", f"ckpt_path={best}", f"hydra.run.dir={tmp_path / 'eval'}", cwd=tmp_path)
    trained_metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    evaluated = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert evaluated["test/mse"] == pytest.approx(trained_metrics["test/mse"], rel=1e-5)


def test_a_run_resumed_with_weight_averaging_ends_where_the_uninterrupted_run_ends(tmp_path):
    # One batch per epoch and no dropout, so the shuffle cannot matter: resumed after its second
    # epoch, the run must end with the same raw weights and the same average as the run that went on.
    common = [
        *SMALL[:-1], "trainer.max_epochs=3", "callbacks=ema", "callbacks.weight_averaging.decay=0.9",
        "callbacks.model_checkpoint.save_top_k=-1", "data.batch_size=4096", "logger=none",
    ]
    run_script("train.py", *common, f"hydra.run.dir={tmp_path / 'full'}", cwd=tmp_path)
    halfway = tmp_path / "full" / "checkpoints" / "epoch_001.ckpt"
    run_script("train.py", *common, f"ckpt_path={halfway}", f"hydra.run.dir={tmp_path / 'resumed'}", cwd=tmp_path)
    full, resumed = (torch.load(tmp_path / run / "checkpoints" / "last.ckpt", weights_only=False)
                     for run in ("full", "resumed"))
    assert resumed["epoch"] == full["epoch"] == 2
    for weights in ("state_dict", "current_model_state"):  # the average, and the weights being trained
        for name, value in full[weights].items():
            torch.testing.assert_close(resumed[weights][name], value, rtol=1e-4, atol=1e-6)


def test_a_checkpoint_that_does_not_fit_the_data_is_refused(trained, tmp_path):
    ckpt = trained / "run" / "checkpoints" / "last.ckpt"
    done = run_script(
        "eval.py", f"ckpt_path={ckpt}", "data=sine", "data.horizon=12", f"hydra.run.dir={tmp_path / 'eval'}",
        cwd=tmp_path, check=False,
    )
    assert done.returncode == 2 and "trained with horizon=24 but this data gives horizon=12" in done.stderr
    assert not (tmp_path / "eval").exists()


def test_a_data_override_the_checkpoint_has_no_use_for_is_refused(trained, tmp_path):
    # The sine data has no file: pointing it at one must say so, not fail deep inside.
    ckpt = trained / "run" / "checkpoints" / "last.ckpt"
    done = run_script(
        "forecast.py", f"ckpt_path={ckpt}", f"data.path={tmp_path / 'x.csv'}", f"hydra.run.dir={tmp_path / 'fc'}",
        cwd=tmp_path, check=False,
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1].startswith("error: data.path= does not apply")
    assert not (tmp_path / "fc").exists()


def test_a_bad_csv_is_one_clear_line(tmp_path):
    (tmp_path / "bad.csv").write_text("date,a,b\n" + "".join(f"2020-01-01 {h:02d}:00,{h},x{h}\n" for h in range(24)))
    done = run_script(
        "train.py", "model=lstm_forecaster", "data=csv", f"data.path={tmp_path / 'bad.csv'}", "data.target=b",
        f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path, check=False,
    )
    assert done.returncode == 2
    assert "bad.csv" in done.stderr and "'b'" in done.stderr.replace('"', "'")
    assert not (tmp_path / "run").exists()
