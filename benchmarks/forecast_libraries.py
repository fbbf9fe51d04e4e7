"""The LSTM forecasters of Darts, neuralforecast and pytorch-forecasting on ETTh1, under seqlab's exact protocol.

    python benchmarks/forecast_libraries.py --data ../shared/data/ett/ETTh1.csv --library darts-rnn \
        [--max-epochs N] [--out results.json] [--smoke]
    python benchmarks/forecast_libraries.py --table results/*.json    # their markdown table, best MSE first

seqlab's README puts its ETTh1 forecaster beside published tables; this script gives the other yardstick, what
an off-the-shelf LSTM from a popular library scores and costs on the same windows. It runs in a separate virtual
environment (benchmarks/requirements-forecast-libraries.txt), never in seqlab's: none of these libraries is a
dependency of the project.

The protocol, the one `experiment=etth1_h96` is scored under (`seqlab.data.timeseries.ForecastDataModule` with
conf/data/etth1.yaml):

- ETTh1.csv, features M: all 7 columns (HUFL, HULL, MUFL, MULL, LUFL, LULL, OT) in and out.
- Split by rows (Informer/Autoformer, 12/4/4 months of 30 days): train [0, 8640), validation [8544, 11520),
  test [11424, 14400). Validation and test start `lookback` rows early, so their first window's inputs are the
  previous split's last rows and every target row belongs to one split only.
- A per-column StandardScaler (population std) fitted on the training rows only, applied to every row. The
  libraries are given the scaled values; whatever normalisation a library adds inside its model is its own.
- Windows with stride 1: 96 input rows, then the next 96 rows as the target, wholly inside the split:
  8,449 train, 2,785 validation, 2,785 test windows.
- Early stopping on the validation split, patience 3 (seqlab's recipe), then the weights that validated best are
  tested, as seqlab tests its best checkpoint (`--weights last` keeps the last ones instead).
- Test MSE and MAE on the scaled values, averaged over every test window, step and channel. Every library must
  forecast all 2,785 test windows; the script refuses to score anything else.
- Seed 1, CPU only, `torch.set_num_threads(OMP_NUM_THREADS)` when that is set.
- At most `--max-epochs` epochs, 100 unless given (Darts' default `n_epochs`): a cap that early stopping should
  undercut. seqlab's recipe caps at 15; `--max-epochs 15` gives the libraries the same budget.

Checked against seqlab's own data module (run in seqlab's environment, where the libraries are absent):

    python benchmarks/forecast_libraries.py --data ../shared/data/ett/ETTh1.csv --check-against-seqlab

found 8,449 / 2,785 / 2,785 windows in both, and the same scaled values in the first and last window of each split.

Each library keeps its documented defaults except where the protocol fixes a value (see each `run_*`):

- darts-rnn: `RNNModel(model="LSTM")`, hidden 25, 1 layer, no dropout, Adam lr 1e-3, batch 32, MSE loss; trained
  teacher-forced one step ahead on sequences of `training_length`, forecasts autoregressively. The default
  `training_length=24` is below the lookback, which Darts' docstring says it must exceed, so it is set to
  lookback + horizon (192), the length the network runs over when it forecasts.
- darts-blockrnn: `BlockRNNModel(model="LSTM")`, hidden 25, 1 layer, no hidden fully connected layers, no dropout,
  Adam lr 1e-3, batch 32, MSE loss; all 96 steps at once. In Darts 0.48 one linear layer maps the LSTM's output
  at input step i to forecast step i, so forecast step i has seen only the first i input rows: the library's
  design, kept as it is.
- neuralforecast: `LSTM` (direct: `recurrent=False`, the default), encoder 2 layers of 128, MLP decoder 2 layers
  of 128, Adam lr 1e-3, MAE loss, windows batch 128, per-window robust scaler. neuralforecast models are
  univariate, so the 7 columns are 7 series of one global model (channel-independent, as its own long-horizon
  benchmarks treat ETT). It counts steps, not epochs: one "epoch" here is ceil(7 x 8,449 / 128) = 463 steps,
  validation runs once per epoch and early stopping waits 3 validations. Each step samples 128 windows; besides
  the protocol's 8,449 per column it samples the 95 whose targets run past row 8640, padding the missing target
  rows and masking them out of the loss (its own sampling: nothing beyond the train split is seen).
- pytorch-forecasting: `RecurrentNetwork(cell_type="LSTM")`, hidden 10, 2 layers, dropout 0.1, Adam lr 1e-3,
  MAE loss per target, batch 64 (`to_dataloader`'s default), the 7 columns as 7 targets of one series, each
  window normalised by its encoder's mean and std (the dataset's "auto" target normaliser). Teacher-forced in
  training, autoregressive in validation and test.

Fit seconds are the wall time of the library's fit call (its data preparation included), predict seconds that of
the call that forecasts the test windows. With `--max-epochs 1` or `--smoke` the accuracy means nothing; the
per-epoch times (`epoch_seconds`, and `estimated_full_epoch_seconds` from the batches a smoke run timed) serve to
size the full run.
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import math
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

LIBRARIES = ("darts-rnn", "darts-blockrnn", "neuralforecast", "pytorch-forecasting")
COLUMNS = ["HUFL", "HULL", "MUFL", "MULL", "LUFL", "LULL", "OT"]
LOOKBACK, HORIZON, PATIENCE, SEED = 96, 96, 3, 1
TRAIN_END, VAL_END, TEST_END = 12 * 30 * 24, 16 * 30 * 24, 20 * 30 * 24  # 8640, 11520, 14400
SPLITS = {
    "train": (0, TRAIN_END),
    "val": (TRAIN_END - LOOKBACK, VAL_END),
    "test": (VAL_END - LOOKBACK, TEST_END),
}
SMOKE_BATCHES = 5  # --smoke: training batches (neuralforecast: steps) per epoch, validation batches per check


# ---------------------------------------------------------------- data: the protocol, independent of any library


def load_scaled(path: str) -> np.ndarray:
    """The file's 7 columns, standardised with the training rows' mean and population std (float64)."""
    frame = pd.read_csv(path)
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        sys.exit(f"error: {path} lacks the columns {missing}; it is not ETTh1.csv")
    if len(frame) < TEST_END:
        sys.exit(f"error: {path} has {len(frame)} rows; the ETT borders need {TEST_END}")
    values = frame[COLUMNS].to_numpy(dtype=np.float64)
    start, stop = SPLITS["train"]
    mean, std = values[start:stop].mean(axis=0), values[start:stop].std(axis=0)
    return (values - mean) / np.where(std > 0, std, 1.0)


def window_count(split: str) -> int:
    start, stop = SPLITS[split]
    return stop - start - LOOKBACK - HORIZON + 1


def target_starts(split: str) -> np.ndarray:
    """The row of the first target step of each window of `split`, in order."""
    start = SPLITS[split][0]
    return np.arange(window_count(split)) + start + LOOKBACK


def windows(scaled: np.ndarray, split: str) -> tuple[np.ndarray, np.ndarray]:
    """(inputs [n, lookback, 7], targets [n, horizon, 7]) of every window of `split`."""
    starts = target_starts(split)
    inputs = np.stack([scaled[s - LOOKBACK : s] for s in starts])
    targets = np.stack([scaled[s : s + HORIZON] for s in starts])
    return inputs, targets


def score(scaled: np.ndarray, forecasts: np.ndarray, starts: np.ndarray) -> dict:
    """MSE and MAE over every test window, step and channel; `forecasts[i]` starts at row `starts[i]`."""
    expected = target_starts("test")
    order = np.argsort(starts)
    starts, forecasts = np.asarray(starts)[order], forecasts[order]
    if not np.array_equal(starts, expected):
        extra, lacking = sorted(set(starts) - set(expected)), sorted(set(expected) - set(starts))
        raise SystemExit(
            f"error: the library forecast {len(starts)} test windows, not the protocol's {len(expected)} "
            f"(first rows not in the protocol: {extra[:5]}, protocol rows missing: {lacking[:5]})"
        )
    if forecasts.shape[1:] != (HORIZON, len(COLUMNS)):
        raise SystemExit(f"error: forecasts of shape {forecasts.shape[1:]}, not ({HORIZON}, {len(COLUMNS)})")
    _, targets = windows(scaled, "test")
    errors = forecasts.astype(np.float64) - targets
    return {"test_mse": float(np.mean(errors**2)), "test_mae": float(np.mean(np.abs(errors))),
            "test_windows": int(len(starts))}


def check_against_seqlab(path: str) -> dict:
    """Window counts and the first and last window of each split, against seqlab's ForecastDataModule.

    Runs in seqlab's environment (it imports seqlab, not the libraries)."""
    from seqlab.data.timeseries import ForecastDataModule

    module = ForecastDataModule(path=path, split="ett_hourly", features="M", lookback=LOOKBACK, horizon=HORIZON,
                                scale=True)
    module.setup()
    if module.input_names != COLUMNS or module.target_names != COLUMNS:
        raise SystemExit(f"error: seqlab reads the columns {module.input_names}, this script {COLUMNS}")
    scaled = load_scaled(path)
    report = {}
    for split in SPLITS:
        ours_x, ours_y = windows(scaled, split)
        theirs = module.datasets[split]
        if len(theirs) != len(ours_x):
            raise SystemExit(f"error: {split}: seqlab has {len(theirs)} windows, this script {len(ours_x)}")
        for index in (0, len(theirs) - 1):
            x, y, first_row = theirs[index]
            if int(first_row) != target_starts(split)[index] - LOOKBACK:
                raise SystemExit(f"error: {split} window {index} starts at row {int(first_row)} in seqlab")
            gap = max(np.abs(x.numpy() - ours_x[index]).max(), np.abs(y.numpy() - ours_y[index]).max())
            if gap > 1e-5:  # seqlab holds float32
                raise SystemExit(f"error: {split} window {index} differs from seqlab's by up to {gap:.3g}")
        report[split] = len(theirs)
    print(f"windows match seqlab's ForecastDataModule (counts, first and last window of each split): {report}")
    return report


# ---------------------------------------------------------------- Lightning callbacks, built on each library's package


def make_recorder(callback_base: type, monitor: str, keep_best: bool):
    """A callback (subclass of the library's own Lightning `Callback`) that times training and validation, counts
    validations (= epochs here) and, when `keep_best`, restores the weights of the best validation at fit end."""

    class Recorder(callback_base):
        def __init__(self):
            self.train_seconds = self.val_seconds = 0.0
            self.train_batches = self.val_batches = 0
            self.validations: list[float] = []
            self.epoch_ends: list[float] = []
            self.full_train_batches = self.full_val_batches = None
            self.best_state = None

        def on_train_start(self, trainer, pl_module):
            self.started = time.perf_counter()
            self.full_train_batches = _length(trainer.train_dataloader)
            self.full_val_batches = _length(trainer.val_dataloaders)

        def on_train_epoch_start(self, trainer, pl_module):
            self.mark = time.perf_counter()

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            # from the previous batch's end: the loading of this batch counts too
            now = time.perf_counter()
            self.train_seconds += now - self.mark
            self.mark = now
            self.train_batches += 1

        def on_validation_epoch_start(self, trainer, pl_module):
            self.val_started = time.perf_counter()

        def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0):
            if not trainer.sanity_checking:
                self.val_batches += 1

        def on_validation_epoch_end(self, trainer, pl_module):
            if not trainer.sanity_checking:
                self.val_seconds += time.perf_counter() - self.val_started

        def on_validation_end(self, trainer, pl_module):
            if trainer.sanity_checking or monitor not in trainer.callback_metrics:
                return
            value = float(trainer.callback_metrics[monitor])
            if keep_best and (not self.validations or value < min(self.validations)):
                self.best_state = copy.deepcopy(pl_module.state_dict())
            self.validations.append(value)
            self.epoch_ends.append(time.perf_counter())

        def on_fit_end(self, trainer, pl_module):
            if keep_best and self.best_state is not None:
                pl_module.load_state_dict(self.best_state)

        def summary(self, train_batches_per_epoch: int | None = None, val_batches_per_check: int | None = None):
            """Epochs, per-epoch wall times and, from the batches timed, the time of one full epoch."""
            times = np.diff([self.started, *self.epoch_ends]).round(2).tolist()
            full_train = train_batches_per_epoch or self.full_train_batches
            full_val = val_batches_per_check or self.full_val_batches
            estimate = None
            if self.train_batches and self.val_batches and full_train and full_val:
                estimate = round(self.train_seconds / self.train_batches * full_train
                                 + self.val_seconds / self.val_batches * full_val, 1)
            best = int(np.argmin(self.validations)) + 1 if self.validations else None
            return {"epochs": len(self.validations), "best_epoch": best,
                    "val_losses": [round(v, 5) for v in self.validations], "epoch_seconds": times,
                    "train_batches_per_epoch": full_train, "val_batches_per_check": full_val,
                    "estimated_full_epoch_seconds": estimate}

    return Recorder()


def _length(loader) -> int | None:
    try:
        return len(loader[0] if isinstance(loader, list | tuple) else loader)
    except TypeError:
        return None


def quiet_trainer(smoke: bool = False) -> dict:
    """Lightning Trainer settings every library gets: CPU, no logger or progress bar, the smoke limits."""
    kwargs = {"accelerator": "cpu", "devices": 1, "logger": False, "enable_progress_bar": False,
              "enable_model_summary": False}
    if smoke:
        kwargs.update(limit_train_batches=SMOKE_BATCHES, limit_val_batches=SMOKE_BATCHES)
    return kwargs


def count_parameters(module) -> int:
    return int(sum(p.numel() for p in module.parameters()))


# ---------------------------------------------------------------- the libraries


def run_darts(scaled: np.ndarray, args, block: bool) -> dict:
    """Darts RNNModel / BlockRNNModel on one 7-column series; every test window by historical_forecasts."""
    import pytorch_lightning as pl
    from darts import TimeSeries
    from darts.models import BlockRNNModel, RNNModel

    def series(split: str) -> TimeSeries:
        start, stop = SPLITS[split]  # an integer index: the file's row numbers
        return TimeSeries.from_times_and_values(pd.RangeIndex(start, stop), scaled[start:stop].astype(np.float32),
                                                columns=COLUMNS)

    recorder = make_recorder(pl.Callback, "val_loss", keep_best=args.weights == "best")
    stopper = pl.callbacks.EarlyStopping(monitor="val_loss", patience=PATIENCE, mode="min")
    trainer = {**quiet_trainer(args.smoke), "callbacks": [stopper, recorder]}
    common = dict(model="LSTM", input_chunk_length=LOOKBACK, n_epochs=args.max_epochs, random_state=SEED,
                  work_dir=args.work_dir, pl_trainer_kwargs=trainer)
    if block:
        # Defaults: hidden_dim 25, n_rnn_layers 1, hidden_fc_sizes None, dropout 0, Adam lr 1e-3, batch 32, MSE.
        model = BlockRNNModel(output_chunk_length=HORIZON, **common)
        name = "BlockRNNModel(model='LSTM')"
    else:
        # Defaults: hidden_dim 25, n_rnn_layers 1, dropout 0, Adam lr 1e-3, batch 32, MSE; training_length set
        # to lookback + horizon, the default 24 being shorter than the lookback (see the module docstring).
        model = RNNModel(training_length=LOOKBACK + HORIZON, **common)
        name = f"RNNModel(model='LSTM', training_length={LOOKBACK + HORIZON})"

    started = time.perf_counter()
    model.fit(series=series("train"), val_series=series("val"), verbose=False)
    fit_seconds = time.perf_counter() - started

    started = time.perf_counter()
    forecasts = model.historical_forecasts(
        series("test"), start=LOOKBACK, start_format="position", forecast_horizon=HORIZON, stride=1,
        retrain=False, last_points_only=False, overlap_end=False, verbose=False,
    )
    predict_seconds = time.perf_counter() - started
    values = np.stack([f.values(copy=False) for f in forecasts])
    starts = np.array([int(f.start_time()) for f in forecasts])
    # the first forecast must be the one made from the test split's first 96 rows alone
    first = model.predict(n=HORIZON, series=series("test")[:LOOKBACK], verbose=False).values(copy=False)
    if np.abs(first - values[0]).max() > 1e-4:
        raise SystemExit("error: Darts' historical forecasts are not aligned with the file's rows")
    return {"model": name, "forecasts": values, "starts": starts, "fit_seconds": fit_seconds,
            "predict_seconds": predict_seconds, "parameters": count_parameters(model.model),
            "stopped_early": stopper.stopped_epoch > 0, **recorder.summary()}


def long_frame(scaled: np.ndarray, stop: int) -> pd.DataFrame:
    """Rows [0, stop) as neuralforecast's long format: one series per column, `ds` the row number."""
    return pd.concat(
        [pd.DataFrame({"unique_id": name, "ds": np.arange(stop), "y": scaled[:stop, j].astype(np.float32)})
         for j, name in enumerate(COLUMNS)],
        ignore_index=True,
    )


def run_neuralforecast(scaled: np.ndarray, args) -> dict:
    """neuralforecast LSTM over the 7 columns as 7 series; every test window by cross_validation on the fitted
    model (`use_fitted=True`: no refit)."""
    import pytorch_lightning as pl
    from neuralforecast import NeuralForecast
    from neuralforecast.models import LSTM

    windows_batch_size = 128  # the library's default, named because the epoch length depends on it
    steps_per_epoch = math.ceil(len(COLUMNS) * window_count("train") / windows_batch_size)
    if args.smoke:
        steps_per_epoch = SMOKE_BATCHES
    recorder = make_recorder(pl.Callback, "ptl/val_loss", keep_best=args.weights == "best")
    trainer = quiet_trainer(args.smoke)
    trainer.pop("limit_train_batches", None)  # each Lightning "epoch" is one step here; max_steps limits it
    # Defaults kept: encoder 2 x 128, decoder MLP 2 x 128, recurrent=False, MAE, lr 1e-3, no lr decay,
    # batch_size 32 series, windows_batch_size 128, scaler_type "robust". input_size set to the lookback
    # (default 3 x horizon); validation once per epoch and patience 3 epochs, as the protocol has them.
    model = LSTM(h=HORIZON, input_size=LOOKBACK, windows_batch_size=windows_batch_size,
                 max_steps=args.max_epochs * steps_per_epoch, val_check_steps=steps_per_epoch,
                 early_stop_patience_steps=PATIENCE, random_seed=SEED, callbacks=[recorder], **trainer)
    forecaster = NeuralForecast(models=[model], freq=1)
    val_rows = SPLITS["val"][1] - TRAIN_END

    started = time.perf_counter()
    forecaster.fit(df=long_frame(scaled, VAL_END), val_size=val_rows)
    fit_seconds = time.perf_counter() - started

    started = time.perf_counter()
    test_rows = TEST_END - VAL_END
    frame = forecaster.cross_validation(df=long_frame(scaled, TEST_END), n_windows=None, test_size=test_rows,
                                        step_size=1, refit=False, use_fitted=True)
    predict_seconds = time.perf_counter() - started

    cutoffs = np.sort(frame["cutoff"].unique())
    values = np.full((len(cutoffs), HORIZON, len(COLUMNS)), np.nan)
    window = np.searchsorted(cutoffs, frame["cutoff"].to_numpy())
    step = frame["ds"].to_numpy() - frame["cutoff"].to_numpy() - 1
    channel = frame["unique_id"].map({name: j for j, name in enumerate(COLUMNS)}).to_numpy()
    values[window, step, channel] = frame["LSTM"].to_numpy()
    # the actual values neuralforecast put beside each forecast must be the protocol's targets at those rows
    if np.abs(frame["y"].to_numpy() - scaled[frame["ds"].to_numpy(), channel]).max() > 1e-5:
        raise SystemExit("error: neuralforecast's test windows are not aligned with the file's rows")
    if np.isnan(values).any():
        raise SystemExit("error: neuralforecast left some window, step or channel without a forecast")
    fitted = forecaster.models[0]  # NeuralForecast fits deep copies of the models, callbacks included
    recorder = next(c for c in fitted.trainer_kwargs["callbacks"] if type(c) is type(recorder))
    stopped = len(recorder.validations) < args.max_epochs
    return {"model": f"LSTM(h={HORIZON}, input_size={LOOKBACK})", "forecasts": values,
            "starts": cutoffs.astype(int) + 1, "fit_seconds": fit_seconds, "predict_seconds": predict_seconds,
            "parameters": count_parameters(fitted), "stopped_early": stopped,
            "steps_per_epoch": steps_per_epoch,
            **recorder.summary(train_batches_per_epoch=math.ceil(len(COLUMNS) * window_count("train")
                                                                 / windows_batch_size))}


def run_pytorch_forecasting(scaled: np.ndarray, args) -> dict:
    """pytorch-forecasting RecurrentNetwork, the 7 columns as 7 targets of one series; every test window from a
    TimeSeriesDataSet of the test rows with predict=False."""
    import lightning.pytorch as pl
    from pytorch_forecasting import RecurrentNetwork, TimeSeriesDataSet

    frame = pd.DataFrame(scaled.astype(np.float32), columns=COLUMNS)
    frame["time_idx"], frame["series"] = np.arange(len(frame)), "ETTh1"

    def rows(split: str) -> pd.DataFrame:
        start, stop = SPLITS[split]
        return frame.iloc[start:stop]

    # Dataset defaults kept: target_normalizer "auto" (an EncoderNormalizer per target), StandardScaler for the
    # reals, no target scales or relative time index. Encoder and prediction lengths are fixed at 96.
    train = TimeSeriesDataSet(rows("train"), time_idx="time_idx", target=COLUMNS, group_ids=["series"],
                              max_encoder_length=LOOKBACK, max_prediction_length=HORIZON,
                              time_varying_unknown_reals=COLUMNS)
    val = TimeSeriesDataSet.from_dataset(train, rows("val"), predict=False, stop_randomization=True)
    test = TimeSeriesDataSet.from_dataset(train, rows("test"), predict=False, stop_randomization=True)
    batch_size = 64  # to_dataloader's and predict's default
    pl.seed_everything(SEED, verbose=False)
    # Model defaults kept: hidden_size 10, rnn_layers 2, dropout 0.1, MAE per target, Adam lr 1e-3,
    # reduce-on-plateau patience 1000 (in effect none).
    model = RecurrentNetwork.from_dataset(train, cell_type="LSTM")
    recorder = make_recorder(pl.Callback, "val_loss", keep_best=args.weights == "best")
    stopper = pl.callbacks.EarlyStopping(monitor="val_loss", patience=PATIENCE, mode="min")
    trainer = pl.Trainer(max_epochs=args.max_epochs, callbacks=[stopper, recorder], enable_checkpointing=False,
                         default_root_dir=args.work_dir, **quiet_trainer(args.smoke))

    started = time.perf_counter()
    trainer.fit(model, train_dataloaders=train.to_dataloader(train=True, batch_size=batch_size, num_workers=0),
                val_dataloaders=val.to_dataloader(train=False, batch_size=batch_size, num_workers=0))
    fit_seconds = time.perf_counter() - started

    started = time.perf_counter()
    predicted = model.predict(test.to_dataloader(train=False, batch_size=batch_size, num_workers=0),
                              return_index=True, return_x=True, trainer_kwargs=quiet_trainer())
    predict_seconds = time.perf_counter() - started
    values = np.stack([p.cpu().numpy() for p in predicted.output], axis=-1)  # 7 x [n, 96] -> [n, 96, 7]
    starts = predicted.index["time_idx"].to_numpy()
    # each forecast's encoder must have held the 96 rows before its first step
    encoder = np.stack([t.cpu().numpy() for t in predicted.x["encoder_target"]], axis=-1)
    if np.abs(encoder - np.stack([scaled[s - LOOKBACK : s] for s in starts])).max() > 1e-5:
        raise SystemExit("error: pytorch-forecasting's test windows are not aligned with the file's rows")
    return {"model": "RecurrentNetwork(cell_type='LSTM')", "forecasts": values, "starts": starts,
            "fit_seconds": fit_seconds, "predict_seconds": predict_seconds, "parameters": count_parameters(model),
            "stopped_early": stopper.stopped_epoch > 0, **recorder.summary()}


# ---------------------------------------------------------------- entry


def versions(library: str) -> dict:
    from importlib.metadata import version

    names = {"darts-rnn": "darts", "darts-blockrnn": "darts", "neuralforecast": "neuralforecast",
             "pytorch-forecasting": "pytorch-forecasting"}
    return {name: version(name) for name in (names[library], "torch", "lightning", "pytorch-lightning")}


def run(args) -> dict:
    import torch

    for package in ("lightning.pytorch", "pytorch_lightning", "lightning.fabric", "lightning_fabric"):
        # no "GPU available" or tips at each Trainer; set on the child, which the packages' imports leave alone
        logging.getLogger(f"{package}.utilities.rank_zero").setLevel(logging.WARNING)
    threads = os.environ.get("OMP_NUM_THREADS")
    if threads:
        torch.set_num_threads(int(threads))
    torch.manual_seed(SEED)
    np.random.seed(SEED)
    scaled = load_scaled(args.data)
    runner = {"darts-rnn": lambda: run_darts(scaled, args, block=False),
              "darts-blockrnn": lambda: run_darts(scaled, args, block=True),
              "neuralforecast": lambda: run_neuralforecast(scaled, args),
              "pytorch-forecasting": lambda: run_pytorch_forecasting(scaled, args)}[args.library]
    started = time.perf_counter()
    outcome = runner()
    wall_seconds = time.perf_counter() - started
    metrics = score(scaled, outcome.pop("forecasts"), outcome.pop("starts"))
    return {"library": args.library, "model": outcome.pop("model"), **metrics,
            "expected_test_windows": window_count("test"),
            "fit_seconds": round(outcome.pop("fit_seconds"), 2),
            "predict_seconds": round(outcome.pop("predict_seconds"), 2), "wall_seconds": round(wall_seconds, 2),
            **outcome, "max_epochs": args.max_epochs, "weights": args.weights, "smoke": args.smoke,
            "threads": torch.get_num_threads(), "seed": SEED, "versions": versions(args.library)}


def table(paths: list[str]) -> str:
    """The results of several runs as one markdown table, best test MSE first."""
    results = sorted((json.loads(Path(path).read_text()) for path in paths), key=lambda result: result["test_mse"])
    lines = ["| library | model | test MSE / MAE | parameters | epochs (best) | fit s | predict s |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for r in results:
        library = f"{r['library']} {next(iter(r['versions'].values()))}"  # its package's version comes first
        smoke = " (smoke: no accuracy)" if r["smoke"] else ""
        lines.append(f"| {library}{smoke} | `{r['model']}` | {r['test_mse']:.4f} / {r['test_mae']:.4f} | "
                     f"{r['parameters']:,} | {r['epochs']} ({r['best_epoch']}) | {r['fit_seconds']:.0f} | "
                     f"{r['predict_seconds']:.1f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", help="ETTh1.csv")
    parser.add_argument("--library", choices=LIBRARIES)
    parser.add_argument("--max-epochs", type=int, default=100,
                        help="cap on epochs; early stopping (patience 3) normally ends the fit first (default 100)")
    parser.add_argument("--weights", choices=("best", "last"), default="best",
                        help="test the weights of the best validation (seqlab's way) or the last ones")
    parser.add_argument("--out", help="also write the result as JSON here")
    parser.add_argument("--smoke", action="store_true",
                        help=f"{SMOKE_BATCHES} training batches (neuralforecast: steps) and at most {SMOKE_BATCHES} "
                             "validation batches per epoch; still forecasts every test window")
    parser.add_argument("--table", nargs="+", metavar="JSON", help="print the results written by --out as a table")
    parser.add_argument("--check-against-seqlab", action="store_true",
                        help="compare the windows with seqlab's ForecastDataModule (in seqlab's environment)")
    args = parser.parse_args()
    if args.table:
        print(table(args.table))
        return
    if args.data is None:
        parser.error("--data is required (ETTh1.csv)")
    if args.max_epochs < 1:
        parser.error("--max-epochs must be at least 1")
    if args.check_against_seqlab:
        check_against_seqlab(args.data)
        if args.library is None:
            return
    if args.library is None:
        parser.error("--library is required (or --check-against-seqlab alone)")
    warnings.filterwarnings("ignore", category=UserWarning)
    warnings.filterwarnings("ignore", message=".*LeafSpec.*")  # Lightning about torch's pytree, each Trainer
    with tempfile.TemporaryDirectory(prefix="forecast_libraries_") as work_dir:
        args.work_dir = work_dir  # whatever a library writes (logs, checkpoints) goes here and is removed
        result = run(args)
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
