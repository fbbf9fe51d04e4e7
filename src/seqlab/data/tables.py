"""Read a forecasting CSV into a clean numeric table, or say exactly what is wrong with it.

Everything is read as text first: pandas' type guessing would turn one stray "n/a" into a
column of strings (or an Arrow cast error between chunks), and we want to name that cell.
Lines in messages are file lines (the header is line 1), so a user can jump straight to them.
"""

from __future__ import annotations

import csv
import logging
import socket
import threading
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import datasets
import numpy as np
import pandas as pd

from seqlab.data.decoding import decode_file
from seqlab.errors import ConfigError, DataError

log = logging.getLogger(__name__)

FEATURE_MODES = ("M", "S", "MS")
FILLS = (None, "ffill", "interpolate", "zero")
PROBE_TIMEOUT_S = 5.0


@dataclass
class Table:
    """The columns a forecaster uses, in order: inputs with the targets last."""

    values: np.ndarray  # [rows, len(input_names)] float64
    times: pd.Index  # DatetimeIndex, or a RangeIndex of row numbers when there is no time column
    input_names: list[str]
    target_names: list[str]
    source: str  # the path or URL as the user gave it, for messages


def load_table(path, url, time_column, target, features, fill, allow_duplicate_times=False) -> Table:
    """Load `path` (or download `url`), pick the input and target columns, check every cell."""
    source = path or url
    if source is None:
        raise ConfigError("no data file: set data.path=FILE (a local CSV) or data.url=URL.")
    local = _local_file(path) if path else _download(url)
    raw = _read_csv_as_text(local, source)
    times = parse_times(raw, time_column, source, allow_duplicate_times)
    inputs, targets = choose_columns(raw, time_column, target, features, source)
    values = parse_numbers(raw[inputs], source, fill)
    return Table(values, times, inputs, targets, source)


def _local_file(path) -> str:
    if not Path(path).is_file():
        where = "" if Path(path).is_absolute() else f" (looked in {Path.cwd()})"
        raise DataError(f"data file not found: {path}{where}. Check data.path.")
    return str(path)


def _download(url) -> str:
    """Download through `datasets` (which caches it), but only once we know the host answers:
    offline, the hub client retries for minutes before giving up."""
    if datasets.config.HF_DATASETS_OFFLINE:
        raise DataError(f"cannot fetch {url}: HF_DATASETS_OFFLINE is set. Download the file and pass data.path=FILE.")
    _probe(url)
    try:
        return datasets.DownloadManager().download(url)
    except Exception as e:  # the HTTP stack raises many types; all mean the same thing to the user
        raise DataError(f"could not download {url} ({e}). Download the file and pass data.path=FILE.") from e


def _probe(url) -> None:
    """Fail in seconds when the host (or the configured proxy) cannot be reached."""
    parts = urllib.parse.urlsplit(url)
    proxy = urllib.request.getproxies().get(parts.scheme)
    target = urllib.parse.urlsplit(proxy) if proxy else parts
    host = target.hostname
    port = target.port or (443 if target.scheme == "https" else 80)
    if not host:
        raise DataError(f"not a URL: {url}. Set data.url to an http(s) address, or use data.path=FILE.")
    failure = []

    def connect():
        try:
            socket.create_connection((host, port), timeout=PROBE_TIMEOUT_S).close()
        except OSError as e:
            failure.append(e)

    # A thread, because name resolution ignores socket timeouts and can hang on a dead resolver.
    thread = threading.Thread(target=connect, daemon=True)
    thread.start()
    thread.join(PROBE_TIMEOUT_S + 1)
    if thread.is_alive() or failure:
        why = failure[0] if failure else "timed out"
        raise DataError(f"cannot reach {host} to fetch {url} ({why}). Download the file and pass data.path=FILE.")


def _read_csv_as_text(local, source) -> pd.DataFrame:
    header = _check_layout(local, source)
    # Every column as a string, so the checks below see the cells exactly as written.
    as_text = datasets.Features({name: datasets.Value("string") for name in header})
    try:
        ds = datasets.load_dataset("csv", data_files=local, split="train", features=as_text)
    except Exception as e:  # pandas' parser errors (ragged lines, bad quoting) come through here
        raise DataError(f"{source} could not be read as CSV ({_root_cause(e)}). Fix the file's format.") from e
    return ds.to_pandas()


def _check_layout(local, source) -> list[str]:
    """The header, once the file is known to be UTF-8 with named columns and at least one row that fits them.

    pandas would otherwise guess: a first row with one field too many (a trailing comma) silently becomes
    the index and shifts every column; an empty header name becomes 'Unnamed: 0'.
    """
    decoded = decode_file(local, "utf-8")
    if decoded.bad_offset is not None:
        raise DataError(
            f"{source} is not UTF-8 text: {decoded.problem()}. "
            "Save the file as UTF-8 (iconv -f latin1 -t utf-8 IN > OUT, say)."
        )
    try:
        with open(local, newline="", encoding="utf-8-sig") as f:
            rows = csv.reader(f)
            header = next(rows, None)
            first = next((row for row in rows if row), None)
            first_line = rows.line_num
    except csv.Error as e:  # a NUL byte, a field over the csv module's size limit...
        raise DataError(f"{source} could not be read as CSV ({e}). Fix the file's format.") from None
    if not header:
        raise DataError(f"{source} is empty: a CSV with a header line is expected.")
    if "" in header:
        raise DataError(f"{source}: column {header.index('') + 1} of the header has no name. Name it or remove it.")
    if len(set(header)) != len(header):
        dup = next(name for name in header if header.count(name) > 1)
        raise DataError(f"{source}: column '{dup}' appears twice in the header. Rename one of them.")
    broken = next((i for i, name in enumerate(header) if "\n" in name or "\r" in name), None)
    if broken is not None:  # every message that names it would span lines
        raise DataError(
            f"{source}: column {broken + 1} of the header ({header[broken][:40]!r}...) spans lines, a quote left "
            "open? Close it, or take the line break out of the name."
        )
    if first is None:
        raise DataError(f"{source} has a header but no rows of data. Point data.path at the file with the data.")
    if len(first) > len(header):
        raise DataError(
            f"{source}: line {first_line} has {len(first)} fields but the header names {len(header)} columns. "
            "Remove the extra field (a trailing comma?) or name its column in the header."
        )
    return header


def _root_cause(error: BaseException) -> str:
    """The innermost error's first line: what pandas said, not `datasets`' 'An error occurred'."""
    while error.__cause__ is not None or error.__context__ is not None:
        error = error.__cause__ or error.__context__
    message = str(error).strip().splitlines()
    return f"{error.__class__.__name__}: {message[0]}" if message else error.__class__.__name__


def _line(row: int) -> int:
    return row + 2  # header is line 1, row 0 is line 2


def _one_line(cell) -> str:
    """A cell as written, its line breaks escaped: an error is one line on the terminal."""
    return str(cell).replace("\r", "\\r").replace("\n", "\\n")


def parse_times(raw: pd.DataFrame, time_column, source, allow_duplicates=False) -> pd.Index:
    """Timestamps must parse and strictly increase, or windows would straddle gaps and repeats.

    `allow_duplicates` exists for benchmark files that have them: Weather repeats one row, and
    the published borders count it.
    """
    if time_column is None:
        return pd.RangeIndex(len(raw))
    if time_column not in raw.columns:
        raise DataError(
            f"{source}: time column '{time_column}' not found; columns are {', '.join(raw.columns)}. "
            "Set data.time_column to one of them, or data.time_column=null."
        )
    text = raw[time_column]
    try:
        times = pd.to_datetime(text, errors="coerce")
    except ValueError:  # UTC offsets that differ (summer and winter time, say): compare the times in UTC
        times = pd.to_datetime(text, errors="coerce", utc=True)
    bad = np.flatnonzero(times.isna().to_numpy())
    if len(bad):
        row = bad[0]
        raise DataError(
            f"{source}: column '{time_column}' has an unreadable timestamp {text.iloc[row]!r} at line {_line(row)}. "
            "Fix that cell or remove the row."
        )
    utc = times.dt.tz_convert(None) if times.dt.tz is not None else times  # offsets: in order once in UTC
    steps = np.diff(utc.to_numpy())
    zero = np.timedelta64(0)
    wrong = np.flatnonzero((steps < zero) | ((steps == zero) & (not allow_duplicates)))
    if len(wrong):
        row = wrong[0] + 1
        if steps[wrong[0]] == zero:
            what, fix = "repeats", "Drop duplicate rows, or set data.allow_duplicate_times=true to keep them."
        else:
            what, fix = "goes back before", "Sort the file by time."
        raise DataError(
            f"{source}: column '{time_column}' is not strictly increasing: line {_line(row)} "
            f"({_one_line(text.iloc[row])}) {what} line {_line(row - 1)} ({_one_line(text.iloc[row - 1])}). {fix}"
        )
    return pd.DatetimeIndex(times)


def choose_columns(raw: pd.DataFrame, time_column, target, features, source) -> tuple[list[str], list[str]]:
    """Inputs and targets by the Informer convention: M all->all, S target->target, MS all->target.

    `features` may also be a list of input columns. Targets always come last among the inputs,
    so a net can find them as its last n_outputs channels.
    """
    targets = [target] if isinstance(target, str) else list(target)
    available = [c for c in raw.columns if c != time_column]
    for name in targets if features != "M" else []:
        if name not in available:
            raise DataError(
                f"{source}: target column '{name}' not found; columns are {', '.join(available)}. "
                "Set data.target to one of them."
            )
    if features == "S":
        return targets, targets
    if features in ("M", "MS"):
        # Whole-text columns (a station name, an id) are labels, not series: leave them out.
        numeric = [c for c in available if c in targets or not _all_text(raw[c])]
        for c in set(available) - set(numeric):
            log.warning("%s: ignoring column '%s', which holds no numbers", source, c)
        if features == "M":
            return numeric, numeric
        others = [c for c in numeric if c not in targets]
        return others + targets, targets
    for name in features:
        if name not in available:
            raise DataError(
                f"{source}: feature column '{name}' not found; columns are {', '.join(available)}. "
                "Fix data.features."
            )
    others = [c for c in features if c not in targets]
    return others + targets, targets


def _all_text(column: pd.Series) -> bool:
    present = column.dropna()
    return len(present) > 0 and pd.to_numeric(present, errors="coerce").isna().all()


def parse_numbers(text: pd.DataFrame, source, fill) -> np.ndarray:
    """Every cell a number; missing cells only with a fill policy, which is then applied."""
    numbers = text.apply(pd.to_numeric, errors="coerce").astype("float64")
    for name in text.columns:
        unreadable = np.flatnonzero((numbers[name].isna() & text[name].notna()).to_numpy())
        if len(unreadable):
            row = unreadable[0]
            raise DataError(
                f"{source}: column '{name}' has a non-numeric value {text[name].iloc[row]!r} at line {_line(row)}. "
                "Fix that cell or remove the row."
            )
        infinite = np.flatnonzero(np.isinf(numbers[name].to_numpy()))  # "inf", or 1e999 read as inf
        if len(infinite):
            row = infinite[0]
            raise DataError(
                f"{source}: column '{name}' has an infinite value {text[name].iloc[row]!r} at line {_line(row)}. "
                "Replace it with a number, or leave the cell empty and set data.fill."
            )
    if fill is None:
        for name in text.columns:
            missing = np.flatnonzero(numbers[name].isna().to_numpy())
            if len(missing):
                raise DataError(
                    f"{source}: column '{name}' has missing values, the first at line {_line(missing[0])}. "
                    "Set data.fill to ffill, interpolate or zero, or clean the file."
                )
        return numbers.to_numpy()
    if fill == "ffill":
        # Leading gaps have nothing before them: they take the first value seen.
        numbers = numbers.ffill().bfill()
    elif fill == "interpolate":
        # Linear in row number; this looks one value ahead across a gap, a leak we accept for gaps.
        numbers = numbers.interpolate(method="linear", limit_direction="both")
    elif fill == "zero":
        numbers = numbers.fillna(0.0)
    empty = [c for c in numbers.columns if numbers[c].isna().any()]
    if empty:
        raise DataError(
            f"{source}: column '{empty[0]}' has no values at all, so data.fill={fill} cannot fill it. Drop the column."
        )
    return numbers.to_numpy()


def check_choices(features, fill) -> None:
    """Reject bad config values before any file is read."""
    if isinstance(features, str) and features not in FEATURE_MODES:
        raise ConfigError(f"data.features={features} is not one of M, S, MS (or a list of column names).")
    if fill not in FILLS:
        raise ConfigError(f"data.fill={fill} is not one of null, ffill, interpolate, zero.")
