"""The forecasting data layer: benchmark borders, train-only scaling, windows, and every bad-file message."""

import functools
import http.server
import threading
import time

import datasets
import numpy as np
import pandas as pd
import pytest
import torch

from seqlab.data.timeseries import ForecastDataModule, SineDataModule
from seqlab.data.windows import split_borders
from seqlab.errors import ConfigError, DataError
from tests.conftest import SHARED_DATA

ETTH1 = SHARED_DATA / "ett" / "ETTh1.csv"
WEATHER = SHARED_DATA / "weather" / "weather.csv"
ETT_COLUMNS = ["HUFL", "HULL", "MUFL", "MULL", "LUFL", "LULL", "OT"]


@pytest.fixture(autouse=True)
def private_datasets_cache(tmp_path_factory, monkeypatch):
    # Fixture CSVs would otherwise pile up in the user's ~/.cache/huggingface.
    cache = tmp_path_factory.mktemp("hf_cache")
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(cache))
    monkeypatch.setattr(datasets.config, "DOWNLOADED_DATASETS_PATH", str(cache / "downloads"))


def ett_like(rows: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(rng.normal(size=(rows, len(ETT_COLUMNS))).round(4), columns=ETT_COLUMNS)
    frame.insert(0, "date", pd.date_range("2016-07-01", periods=rows, freq="h").strftime("%Y-%m-%d %H:%M:%S"))
    return frame


def write(tmp_path, frame: pd.DataFrame, name: str = "series.csv") -> str:
    path = tmp_path / name
    frame.to_csv(path, index=False)
    return str(path)


def windows(rows, lookback, horizon, stride=1):
    return (rows - lookback - horizon) // stride + 1


def module(path, **kwargs) -> ForecastDataModule:
    dm = ForecastDataModule(path=path, **kwargs)
    dm.setup()
    return dm


# --- the benchmark protocol -------------------------------------------------------------------

def test_ett_hourly_borders_and_window_counts_on_a_synthetic_etth1(tmp_path):
    frame = ett_like(17_420)
    dm = module(write(tmp_path, frame), split="ett_hourly", lookback=96, horizon=96)
    assert dm.borders == {"train": (0, 8640), "val": (8544, 11520), "test": (11424, 14400)}
    counts = {name: len(ds) for name, ds in dm.datasets.items()}
    assert counts == {"train": 8640 - 96 - 96 + 1, "val": 2880 + 96 - 96 - 96 + 1, "test": 2880 + 96 - 96 - 96 + 1}
    # The first validation forecast starts on the first row after train, the first test one after val.
    _, future = dm.window_times("val", 0)
    assert future[0] == pd.Timestamp(frame["date"][8640])
    _, future = dm.window_times("test", 0)
    assert future[0] == pd.Timestamp(frame["date"][11520])
    # ... and the last test target is row 14399: rows beyond the ETT borders are never used.
    history, future = dm.window_times("test", counts["test"] - 1)
    assert future[-1] == pd.Timestamp(frame["date"][14399]) and len(history) == 96


def test_ett_15min_and_ratio_borders():
    assert split_borders("ett_15min", 69_680, 96, 96, "f") == {
        "train": (0, 34_560), "val": (34_464, 46_080), "test": (45_984, 57_600)}
    # Autoformer's custom split of 1000 rows: 700 train, 200 test, 100 validation.
    assert split_borders("ratio", 1000, 24, 12, "f") == {"train": (0, 700), "val": (676, 800), "test": (776, 1000)}


@pytest.mark.skipif(not ETTH1.exists(), reason="shared ETTh1 not present")
def test_real_etth1_matches_the_published_protocol():
    dm = module(str(ETTH1), split="ett_hourly", lookback=96, horizon=96)
    assert dm.model_kwargs() == {"n_inputs": 7, "n_outputs": 7, "lookback": 96, "horizon": 96}
    assert dm.input_names == ETT_COLUMNS
    assert [len(dm.datasets[s]) for s in ("train", "val", "test")] == [8449, 2785, 2785]
    raw = pd.read_csv(ETTH1)[ETT_COLUMNS].to_numpy()
    np.testing.assert_allclose(dm.scaler.mean, raw[:8640].mean(axis=0))
    np.testing.assert_allclose(dm.scaler.std, raw[:8640].std(axis=0))


def test_scaler_sees_train_rows_only(tmp_path):
    frame = ett_like(17_420)
    leaked = frame.copy()
    leaked.loc[8640:, ETT_COLUMNS] = leaked.loc[8640:, ETT_COLUMNS] * 10 + 1000  # val and test rows only
    clean = module(write(tmp_path, frame, "clean.csv"))
    dirty = module(write(tmp_path, leaked, "dirty.csv"))
    np.testing.assert_array_equal(clean.scaler.mean, dirty.scaler.mean)
    np.testing.assert_array_equal(clean.scaler.std, dirty.scaler.std)
    np.testing.assert_allclose(clean.scaler.mean, frame.loc[:8639, ETT_COLUMNS].mean().to_numpy())
    # The check can fail: a change in a train row does move the scaler.
    moved = frame.copy()
    moved.loc[0, "OT"] += 100
    assert module(write(tmp_path, moved, "moved.csv")).scaler.mean[-1] != clean.scaler.mean[-1]


@pytest.mark.parametrize("lookback,horizon,stride", [(24, 12, 1), (24, 12, 5), (10, 1, 3), (50, 30, 7)])
def test_window_count_and_contents(tmp_path, lookback, horizon, stride):
    frame = ett_like(400)
    dm = module(write(tmp_path, frame), split="ratio", lookback=lookback, horizon=horizon, stride=stride, scale=False)
    for name, (start, stop) in dm.borders.items():
        ds = dm.datasets[name]
        assert len(ds) == windows(stop - start, lookback, horizon, stride)
        x, y, first_row = ds[len(ds) - 1]
        first = start + (len(ds) - 1) * stride
        assert first_row.item() == first  # the row of the whole file, which places it in the cycle
        assert x.shape == (lookback, 7) and y.shape == (horizon, 7) and x.dtype == y.dtype == torch.float32
        np.testing.assert_allclose(x.numpy(), frame[ETT_COLUMNS].to_numpy()[first : first + lookback], rtol=1e-6)
        assert first + lookback + horizon <= stop


def test_eval_loaders_never_drop_a_window(tmp_path):
    dm = module(write(tmp_path, ett_like(1000)), split="ratio", lookback=30, horizon=20, eval_batch_size=7)
    for split, loader in (("val", dm.val_dataloader()), ("test", dm.test_dataloader())):
        seen = sum(x.shape[0] for x, _, _ in loader)
        start, stop = dm.borders[split]
        assert seen == windows(stop - start, 30, 20) and seen % 7 != 0


def test_inverse_transform_recovers_the_file(tmp_path):
    frame = ett_like(500)
    dm = module(write(tmp_path, frame), split="ratio", lookback=20, horizon=10, features="S")
    _, y, _ = dm.datasets["test"][3]
    start = dm.borders["test"][0] + 3 + 20
    expected = frame["OT"].to_numpy()[start : start + 10, None]
    np.testing.assert_allclose(dm.inverse_transform(y).numpy(), expected, atol=1e-4)
    np.testing.assert_allclose(dm.inverse_transform(y.numpy().astype(np.float64)), expected, atol=1e-4)


# --- features -------------------------------------------------------------------------------

@pytest.mark.parametrize("features,n_in,n_out", [("M", 7, 7), ("S", 1, 1), ("MS", 7, 1), (["HUFL", "OT"], 2, 1)])
def test_feature_modes(tmp_path, features, n_in, n_out):
    dm = module(write(tmp_path, ett_like(300)), split="ratio", lookback=16, horizon=8, features=features)
    x, y, _ = dm.datasets["train"][0]
    assert x.shape == (16, n_in) and y.shape == (8, n_out)
    assert dm.model_kwargs() == {"n_inputs": n_in, "n_outputs": n_out, "lookback": 16, "horizon": 8}
    # Targets are the last inputs, and y is their continuation.
    assert dm.input_names[-n_out:] == dm.target_names
    assert dm.target_index == list(range(n_in - n_out, n_in))
    x_next, _, _ = dm.datasets["train"][8]
    torch.testing.assert_close(y, x_next[-8:, dm.target_index])


def test_ms_moves_the_target_last_and_m_skips_text_columns(tmp_path):
    frame = ett_like(200)[["date", "OT", "HUFL", "HULL"]]
    frame["station"] = "north"
    dm = module(write(tmp_path, frame), split="ratio", lookback=8, horizon=4, features="MS")
    assert dm.input_names == ["HUFL", "HULL", "OT"] and dm.target_names == ["OT"]
    dm = module(write(tmp_path, frame, "m.csv"), split="ratio", lookback=8, horizon=4, features="M")
    assert dm.input_names == ["OT", "HUFL", "HULL"]


def test_crlf_file_with_replacement_characters_in_the_header(tmp_path):
    path = tmp_path / "weather_like.csv"
    rows = [f"2020-01-01 00:{m:02d}:00,{m}.5,{2 * m}" for m in range(60)]
    path.write_text("\r\n".join(["date,PAR (\ufffdmol/m\ufffd/s),OT", *rows]) + "\r\n", encoding="utf-8")
    dm = module(str(path), split="ratio", lookback=8, horizon=4, scale=False)
    assert dm.input_names == ["PAR (\ufffdmol/m\ufffd/s)", "OT"]
    assert dm.table.values[-1].tolist() == [59.5, 118.0]


# --- missing values -------------------------------------------------------------------------

@pytest.mark.parametrize("fill,expected", [("ffill", [1.0, 1.0, 1.0, 4.0]), ("interpolate", [1.0, 2.0, 3.0, 4.0]),
                                           ("zero", [1.0, 0.0, 0.0, 4.0])])
def test_fill_policies(tmp_path, fill, expected):
    frame = ett_like(100)
    frame.loc[10:13, "OT"] = [1.0, np.nan, np.nan, 4.0]
    frame.loc[0, "HUFL"] = np.nan  # a leading gap: only interpolate/ffill look forward to fill it
    dm = module(write(tmp_path, frame), split="ratio", lookback=8, horizon=4, fill=fill, scale=False)
    assert dm.table.values[10:14, -1].tolist() == expected
    assert not np.isnan(dm.table.values).any()


# --- bad files: one DataError naming the file and the column ----------------------------------

def _unsorted(f):
    f.loc[5, "date"], f.loc[6, "date"] = f.loc[6, "date"], f.loc[5, "date"]


def _duplicated(f):
    f.loc[6, "date"] = f.loc[5, "date"]


def _non_numeric(f):
    f["OT"] = f["OT"].astype(object)
    f.loc[5, "OT"] = "12,5kV"


def _nan(f):
    f.loc[5, "LULL"] = np.nan


def _bad_time(f):
    f.loc[5, "date"] = "yesterday"


@pytest.mark.parametrize("damage,kwargs,column,detail", [
    (_non_numeric, {}, "OT", ["'12,5kV'", "line 7"]),
    (_nan, {}, "LULL", ["line 7", "data.fill"]),
    (_unsorted, {}, "date", ["line 8", "goes back"]),
    (_duplicated, {}, "date", ["line 8", "repeats"]),
    (_bad_time, {}, "date", ["'yesterday'", "line 7"]),
    (None, {"features": "S", "target": "load"}, "load", ["HUFL"]),  # lists the columns there are
    (None, {"features": ["HUFL", "temp"]}, "temp", ["HUFL"]),
    (None, {"time_column": "timestamp"}, "timestamp", ["data.time_column"]),
])
def test_bad_data_is_named(tmp_path, damage, kwargs, column, detail):
    frame = ett_like(200)
    if damage:
        damage(frame)
    path = write(tmp_path, frame, "bad.csv")
    with pytest.raises(DataError) as err:
        module(path, split="ratio", lookback=8, horizon=4, **kwargs)
    message = str(err.value)
    assert path in message and f"'{column}'" in message
    for text in detail:
        assert text in message


def test_too_short_says_how_many_rows_are_needed(tmp_path):
    path = write(tmp_path, ett_like(150))
    with pytest.raises(DataError, match=r"needs at least \d+ rows") as err:
        module(path, split="ratio", lookback=96, horizon=96)
    assert path in str(err.value)
    need = int(str(err.value).split("at least ")[1].split()[0])
    module(write(tmp_path, ett_like(need), "long_enough.csv"), split="ratio", lookback=96, horizon=96)
    with pytest.raises(DataError, match="14400"):
        module(path, split="ett_hourly")


def test_missing_file_and_unreachable_url_fail_fast(tmp_path):
    missing = str(tmp_path / "nowhere.csv")
    with pytest.raises(DataError, match="nowhere.csv"):
        module(missing)
    started = time.monotonic()
    for url in ("http://127.0.0.1:9/ETTh2.csv", "https://no-such-host.invalid/ETTh2.csv"):
        with pytest.raises(DataError, match="data.path=FILE"):
            module(None, url=url)
    assert time.monotonic() - started < 15


def test_url_is_downloaded_and_loaded(tmp_path):
    served = tmp_path / "served"
    served.mkdir()
    frame = ett_like(300)
    write(served, frame, "ETTh2.csv")
    handler = functools.partial(QuietHandler, directory=str(served))
    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        dm = ForecastDataModule(url=f"http://127.0.0.1:{server.server_port}/ETTh2.csv", split="ratio",
                                lookback=16, horizon=8, scale=False)
        dm.prepare_data()
        dm.setup()
        server.shutdown()
    np.testing.assert_allclose(dm.table.values, frame[ETT_COLUMNS].to_numpy())


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def test_bad_choices_are_config_errors_before_reading():
    for kwargs in ({"split": "thirds"}, {"features": "X"}, {"fill": "mean"}, {"lookback": 0}, {"season": 200}):
        with pytest.raises(ConfigError):
            ForecastDataModule(path="never-read.csv", **kwargs)
    with pytest.raises(ConfigError, match="data.path"):
        module(None)


@pytest.mark.skipif(not WEATHER.exists(), reason="shared weather.csv not present")
def test_real_weather_repeats_one_timestamp():
    with pytest.raises(DataError, match="line 19046"):
        module(str(WEATHER), split="ratio")
    dm = module(str(WEATHER), split="ratio", allow_duplicate_times=True)
    assert dm.model_kwargs()["n_inputs"] == 21 and len(dm.datasets["test"]) == 10_444


# --- synthetic data ---------------------------------------------------------------------------

def test_sine_module_is_deterministic_for_a_seed():
    def first_batch(seed):
        dm = SineDataModule(seed=seed, length=600, lookback=24, horizon=12)
        dm.setup()
        return dm.datasets["val"][0]

    a, b, c = first_batch(1), first_batch(1), first_batch(2)
    torch.testing.assert_close(a, b)
    assert not torch.equal(a[0], c[0])
    dm = SineDataModule(n_series=2, length=600, lookback=24, horizon=12, features="S", target="sine_1")
    dm.setup()
    assert dm.model_kwargs() == {"n_inputs": 1, "n_outputs": 1, "lookback": 24, "horizon": 12}
    dm = SineDataModule(length=600, lookback=24, horizon=12, season=12)
    dm.setup()
    assert dm.model_kwargs()["season"] == 12  # only when set: the nets themselves take no season
    assert dm.window_times("test", 0)[1][0] > dm.window_times("train", 0)[1][0]
