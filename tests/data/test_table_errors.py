"""CSV inputs that the fuzz tests (tests/fuzz/test_fuzz_tables.py) once turned into tracebacks or silently
wrong windows: each is now one DataError naming the file and the fix, or loads as it should."""

from __future__ import annotations

import time

import datasets
import pytest
import torch

from seqlab.data.timeseries import ForecastDataModule
from seqlab.errors import DataError


@pytest.fixture(autouse=True)
def private_datasets_cache(tmp_path_factory, monkeypatch):
    cache = tmp_path_factory.mktemp("hf_cache")
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(cache))


def csv(tmp_path, text: str | bytes) -> str:
    path = tmp_path / "series.csv"
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return str(path)


def hourly(values, stamp="2020-01-{d:02d} {h:02d}:00:00") -> str:
    return "date,OT\n" + "".join(f"{stamp.format(h=i % 24, d=1 + i // 24)},{v}\n" for i, v in enumerate(values))


def setup(path, **kwargs) -> ForecastDataModule:
    dm = ForecastDataModule(path=path, split="ratio", lookback=4, horizon=2, **kwargs)
    dm.setup()
    return dm


def test_utc_offsets_that_change_are_compared_in_utc(tmp_path):
    # The clock going back an hour at the end of summer time: in order once in UTC (was a TypeError traceback).
    summer = [f"2020-10-25 {h:02d}:00:00+02:00" for h in range(3)]
    stamps = summer + [f"2020-10-25 {h:02d}:00:00+01:00" for h in range(2, 22)]  # 02:00+02:00, then 02:00+01:00
    dm = setup(csv(tmp_path, "date,OT\n" + "".join(f"{s},{i}\n" for i, s in enumerate(stamps))), scale=False)
    assert dm.table.times.is_monotonic_increasing and str(dm.table.times.tz) == "UTC"
    one_offset = "".join(f"2020-01-01 {h:02d}:00:00+05:00,{h}\n" for h in range(20))
    assert setup(csv(tmp_path, "date,OT\n" + one_offset)).table.times[0].hour == 0  # kept as written


def test_offsets_out_of_order_in_utc_are_named(tmp_path):
    rows = "2020-01-01 02:00:00+00:00,1\n2020-01-01 03:00:00+05:00,2\n" + "".join(
        f"2020-01-02 {h:02d}:00:00+00:00,{h}\n" for h in range(20))
    with pytest.raises(DataError, match="line 3 .* goes back before line 2"):
        setup(csv(tmp_path, "date,OT\n" + rows))


@pytest.mark.parametrize("cell", ["inf", "-Infinity", "1e999"])
def test_an_infinite_cell_is_named(tmp_path, cell):
    path = csv(tmp_path, hourly(["1"] * 5 + [cell] + ["1"] * 20))
    with pytest.raises(DataError, match=rf"column 'OT' has an infinite value '{cell}' at line 7"):
        setup(path)


@pytest.mark.parametrize("values, scale, detail", [
    (["1e300", "-1e300"] * 13, True, "overflow its mean or standard deviation"),  # was all-zero windows
    (["1e308"] * 26, True, "overflow its mean or standard deviation"),  # was NaN windows
    (["1e39"] + ["1"] * 25, False, "a value 1e+39 (line 2) beyond float32's range"),  # was inf windows
])
def test_values_too_large_for_float32_are_named(tmp_path, values, scale, detail):
    with pytest.raises(DataError, match=r"column 'OT' cannot be used as it is: .*power of ten") as err:
        setup(csv(tmp_path, hourly(values)), scale=scale)
    assert detail in str(err.value)


def test_windows_hold_finite_numbers_when_values_are_large_but_fine(tmp_path):
    dm = setup(csv(tmp_path, hourly([f"{i}e30" for i in range(26)])))
    assert all(torch.isfinite(w.values).all() for w in dm.datasets.values())


@pytest.mark.parametrize("text, detail", [
    (b"", "is empty"),
    (b"date,OT\n", "has a header but no rows of data"),  # was 'Instruction "train" corresponds to no data!'
    (b"date,OT\n\n\n", "has a header but no rows of data"),
    (b"date,,OT\n2020-01-01,1,2\n", "column 2 of the header has no name"),  # was a KeyError from datasets
    (b"date,OT\n2020-01-01 00:00:00,1,\n2020-01-01 01:00:00,2,\n",
     "line 2 has 3 fields but the header names 2 columns"),  # was read with columns shifted, silently
    ("date,OT\n2020-01-01,café\n".encode("latin-1"), "is not UTF-8 text: byte 0xe9 at offset 22 "),
    ("date,OT\n2020-01-01,1\n".encode("utf-16"), "is not UTF-8 text: byte 0xff at offset 0 "),
    (b'date,OT\n"2020-01-01,1\n', "could not be read as CSV (ParserError: Error tokenizing data"),
    (b'date,"OT\n2020-01-01,1\n2020-01-02,2\n', "column 2 of the header ('OT\\n2020"),  # was a 2-line error
])
def test_malformed_files_are_named_with_the_fix(tmp_path, text, detail):
    path = csv(tmp_path, text)
    with pytest.raises(DataError) as err:
        setup(path)
    assert path in str(err.value) and detail in str(err.value)


@pytest.mark.parametrize("size", [10**9, 2**62])
def test_a_huge_horizon_is_refused_at_once(tmp_path, size):
    # The rows needed were searched for one at a time: minutes for a horizon of 10**9.
    path = csv(tmp_path, hourly(range(40)))
    started = time.perf_counter()
    with pytest.raises(DataError, match=r"needs at least \d+ rows"):
        ForecastDataModule(path=path, split="ratio", lookback=4, horizon=size).setup()
    assert time.perf_counter() - started < 30  # was hours; generous for a loaded machine
