"""Fuzzing the forecasting CSV path (tables.load_table through ForecastDataModule.setup): every file and
config ends in windows of finite numbers or in one SeqlabError line, never a traceback or a hang."""

from __future__ import annotations

import math
from datetime import datetime, timedelta

import numpy as np
import torch
from hypothesis import example, given
from hypothesis import strategies as st

from seqlab.data.timeseries import ForecastDataModule
from tests.fuzz.outcomes import attempt, fresh_folder, share

ODD_CELLS = [
    "", "nan", "NaN", "inf", "-Infinity", "1e999", "-1e999", "1e-400", "1e308", "n/a", "NULL", "1,5", " 3 ",
    "0x1F", "1_000", "\x00", "é", '"', "'", "-0", "+5", ".", "e5", "∞", "١٢", "9" * 400, "True", "1/2", "1e+",
]
ODD_TIMES = ["", "yesterday", "2020-13-01", "9999-99-99", "2020-02-30", "0", "1e9", "2300-01-01", "1500-01-01",
             "2020-01-01T00:00:00Z", "2020-01-01 00:00:00+05:00", "NaT", "now", "24:00"]
FORMATS = ["%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M", "%d/%m/%Y %H:%M", "%m/%d/%Y", "%Y%m%d", "%Y-%m-%d %H:%M:%S+01:00"]
SCALES = [1.0, 1e6, 1e30, 1e39, 1e200, 1e-300]


def cell_text(value: float) -> str:
    return repr(float(value))


DAMAGE = ["none"] * 4 + ["cells", "times", "ragged", "name", "encoding", "truncate", "no time"]


@st.composite
def csv_files(draw) -> bytes:
    """A CSV built like a real one (time column, numeric columns), then damaged in one drawn way, or not."""
    damage = draw(st.sampled_from(DAMAGE))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    n_rows = draw(st.integers(0, 3) | st.integers(20, 160))
    names = ["OT", *draw(st.lists(st.sampled_from(["a", "b", "HUFL"]), max_size=3, unique=True))]
    if damage == "name":  # a header name that is empty, odd or taken
        names[draw(st.integers(0, len(names) - 1))] = draw(st.sampled_from(["", " ", "a,b", 'q"', "é", "date", "a"]))
    scale = draw(st.sampled_from(SCALES))
    rows = [[cell_text(v) for v in rng.normal(size=len(names)) * scale] for _ in range(n_rows)]
    for _ in range(draw(st.integers(1, 3)) if n_rows and damage == "cells" else 0):
        row, col = draw(st.integers(0, n_rows - 1)), draw(st.integers(0, len(names) - 1))
        rows[row][col] = draw(st.sampled_from(ODD_CELLS) | st.text(max_size=5))
    header = list(names)
    if damage != "no time":
        header.insert(0, "date")
        times = draw(time_column(n_rows, damaged=damage == "times"))
        rows = [[t, *r] for t, r in zip(times, rows)]
    if rows and damage == "ragged":
        rows[draw(st.integers(0, len(rows) - 1))].append("extra")
    quote = draw(st.booleans())
    end = draw(st.sampled_from(["\n", "\r\n", "\r"]))

    def line(cells):
        return ",".join(f'"{c}"' if quote else c for c in cells)

    text = end.join(line(r) for r in [header, *rows]) + (end if draw(st.booleans()) else "")
    encoding = draw(st.sampled_from(["utf-8-sig", "latin-1", "utf-16", "cp1252"])) if damage == "encoding" else "utf-8"
    data = text.encode(encoding, errors="replace")
    return data[: draw(st.integers(0, len(data)))] if damage == "truncate" else data


@st.composite
def time_column(draw, n_rows: int, damaged: bool) -> list[str]:
    start = draw(st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2200, 1, 1)))
    step = draw(st.sampled_from([timedelta(hours=1), timedelta(minutes=15), timedelta(days=1), timedelta(seconds=1)]))
    fmt = draw(st.sampled_from(FORMATS))
    times = [(start + i * step).strftime(fmt) for i in range(n_rows)]
    for _ in range(draw(st.integers(1, 2)) if n_rows > 1 and damaged else 0):
        i, j = draw(st.integers(0, n_rows - 1)), draw(st.integers(0, n_rows - 1))
        kind = draw(st.sampled_from(["swap", "repeat", "odd"]))
        if kind == "swap":
            times[i], times[j] = times[j], times[i]
        elif kind == "repeat":
            times[i] = times[j]
        else:
            times[i] = draw(st.sampled_from(ODD_TIMES))
    return times


SMALL = {"lookback": 4, "horizon": 2, "stride": 1, "features": "M", "target": "OT", "time_column": "date",
         "fill": None, "scale": True, "split": "ratio", "allow_duplicate_times": False}
ODD_CONFIG = {
    "lookback": st.sampled_from([10**6, 10**9, 2**62]),
    "horizon": st.sampled_from([10**6, 10**9, 2**62]),
    "features": st.sampled_from([["a", "OT"], ["nope"], "MS"]),
    "target": st.sampled_from([["OT", "a"], "missing", "a"]),
    "time_column": st.sampled_from([None, "nope", "OT"]),
    "split": st.just("ett_hourly"),
    "allow_duplicate_times": st.just(True),
}


@st.composite
def configs(draw) -> dict:
    """A config that fits a small file (lookback and horizon up to 12), with one odd value now and then."""
    config = {
        **SMALL,
        "lookback": draw(st.integers(1, 12)),
        "horizon": draw(st.integers(1, 12)),
        "stride": draw(st.integers(1, 5)),
        "features": draw(st.sampled_from(["M", "S"])),
        "fill": draw(st.sampled_from([None, "ffill", "interpolate", "zero"])),
        "scale": draw(st.booleans()),
    }
    if draw(st.integers(0, 2)) == 0:
        key = draw(st.sampled_from(sorted(ODD_CONFIG)))
        config[key] = draw(ODD_CONFIG[key])
    return config


def hourly(values: list[str], column: str = "OT") -> bytes:
    lines = [f"date,{column}"] + [f"2020-01-01 {i // 60:02d}:{i % 60:02d}:00,{v}" for i, v in enumerate(values)]
    return ("\n".join(lines) + "\n").encode()


OPEN_QUOTE_IN_HEADER = b'"date","q""\n"2000-01-01 00:00:00","0.1"\n"2000-01-01 01:00:00","0.2"\n'


def setup_windows(folder, data: bytes, config: dict) -> ForecastDataModule:
    """Load, split, scale and window `data`; the windows that come out must hold only finite numbers."""
    path = folder / "data.csv"
    path.write_bytes(data)
    dm = ForecastDataModule(path=str(path), eval_batch_size=4, batch_size=4, **config)
    dm.setup("fit")
    for name, windows in dm.datasets.items():
        assert len(windows) >= 1, f"the {name} split has no window"
        assert torch.isfinite(windows.values).all(), f"non-finite numbers in the {name} windows"
        x, y, _ = windows[len(windows) - 1]
        assert x.shape[0] == dm.lookback and y.shape[0] == dm.horizon
    return dm


@share(2)
@given(data=csv_files(), config=configs())
@example(data=b"", config=SMALL)
@example(data=b"date,OT\n", config=SMALL)
@example(data=b"date,OT\r\n2020-01-01,1\r\n", config=SMALL)
@example(data=hourly([str(i) for i in range(40)]), config=SMALL)
@example(data=hourly([str(i) for i in range(40)]), config={**SMALL, "horizon": 10**9})  # once a 10**9-step loop
@example(data=hourly(["1e300", "-1e300"] * 20), config=SMALL)  # std overflows: once all-zero windows
@example(data=hourly(["1e39"] + ["1"] * 39), config={**SMALL, "scale": False})  # beyond float32: once inf windows
@example(data=hourly(["inf"] + ["1"] * 39), config=SMALL)  # once inf, then NaN windows
@example(data=hourly(["1e999"] + ["1"] * 39), config=SMALL)
@example(data=OPEN_QUOTE_IN_HEADER, config={**SMALL, "features": "S"})  # once a two-line error
def test_a_csv_ends_in_windows_or_one_error_line(work, data, config):
    attempt("csv", setup_windows, fresh_folder(work), data, config)


@share(2)
@given(data=st.binary(max_size=3000), config=st.sampled_from([SMALL, {**SMALL, "time_column": None}]))
@example(data=b"\xff\xfe\x00\x00", config=SMALL)
@example(data=b'date,OT\n"2020-01-01,1\n', config=SMALL)  # an unclosed quote
def test_arbitrary_bytes_end_in_windows_or_one_error_line(work, data, config):
    attempt("csv", setup_windows, fresh_folder(work), data, config)


def test_huge_sizes_are_refused_at_once(work):
    # The row count a split needs is computed, not searched for one row at a time.
    data = hourly([str(math.sin(i)) for i in range(40)])
    for size in (10**9, 2**62):
        err = attempt("csv", setup_windows, fresh_folder(work), data, {**SMALL, "horizon": size})
        assert "lookback + horizon" in str(err)
