"""Text corpora as token ids: splits loaded through `datasets`, tokenized as the benchmarks do, cached on disk.

Word-level tokenization follows pytorch/examples' `data.Corpus` (the way WikiText-2 and PTB figures are
published): split each line on whitespace and append one `<eos>`, empty lines included. The vocabulary is
every token of every split in order of first appearance (train, then validation, then test). Character-level
keeps every character, newlines included, and adds no `<eos>`.

Built for corpora larger than memory (WikiText-103: 103 million tokens, 267,735 words). The text goes through
`datasets` (an Arrow table, memory-mapped) and is tokenized by one batched `Dataset.map` over `num_proc`
processes, each taking a contiguous shard of the lines of all splits. A shard numbers the tokens of each split
it holds in order of first appearance and appends those local ids to a file of its own; for each batch it
reports the new tokens, in order, and where its ids went. Then the main process merges the shards' lists in
shard order, which gives the vocabulary a single pass would have (a token's first appearance is in the first
shard that has it, where it comes in the order that shard met it), and maps each shard's local ids through
its own table to vocabulary ids, written at their places in one preallocated `.npy` file. Nothing held in
memory grows with the corpus; that file is then memory-mapped, so a process reads only the pages it touches,
and the processes of one machine (DDP ranks, sweep trials) share them.

The cache (`cache_dir`) holds, per corpus, `corpus-<key>.npy` (the ids of all splits, end to end, int64) and
`corpus-<key>.pt` (the vocabulary and each split's slice of the ids). The key is the source's fingerprint, the
tokenizer, a fixed vocabulary's hash and `CACHE_FORMAT`. An entry is built in a private `.build-*` folder
beside it and renamed into place, ids first and `.pt` last, so a reader sees a whole entry or none;
processes building one entry at once each publish identical files, and a reader holding the old ids file
keeps reading it. An entry that does not load (a cut `.pt`, an ids file shorter than it says) is rebuilt.
"""

from __future__ import annotations

import codecs
import functools
import hashlib
import itertools
import json
import os
import re
import shutil
import socket
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import torch

from seqlab.data.decoding import decode_file
from seqlab.errors import ConfigError, DataError

SPLITS = ("train", "validation", "test")
EOS = "<eos>"
UNK = "<unk>"
TOKENIZERS = ("word", "char")
CACHE_FORMAT = 2  # bump when the cached layout or tokenization changes (2: memory-mapped .npy ids beside a .pt)

# File names tried, in order, for each split when only `data_dir` is given.
LOCAL_FILE_NAMES = {
    "train": ("wiki.train.tokens", "train.txt", "ptb.train.txt"),
    "validation": ("wiki.valid.tokens", "valid.txt", "ptb.valid.txt", "validation.txt"),
    "test": ("wiki.test.tokens", "test.txt", "ptb.test.txt"),
}
BATCH_BYTES = 16 << 20  # text per batch of the map: each batch rehashes its segment's tokens so far, so not small
MAX_BATCH_LINES = 50_000
BYTES_PER_PROCESS = 32 << 20  # num_proc=None: one process per this much text, up to one per core
SETTLED_NS = 2_000_000_000  # a file unchanged this long before it is hashed may have its hash remembered


def tokenize(line: str, tokenizer: str) -> list[str]:
    if tokenizer == "word":
        return line.split() + [EOS]
    return list(line)


@dataclass
class Corpus:
    """Token ids of each split, and the vocabulary that maps them back to strings."""

    vocabulary: list[str]
    splits: dict[str, torch.Tensor]  # split name -> 1-D int64 ids, in stream order (memory-mapped when cached)


@dataclass(frozen=True)
class CorpusSource:
    """Where the text comes from: local files (`data_dir`/`files`) or a hub dataset (`hub_name`)."""

    hub_name: str | None = None
    hub_config: str | None = None
    text_column: str = "text"
    data_dir: str | None = None
    files: dict[str, str] | None = None
    encoding: str = "utf-8"  # of the local files; the hub's text is already decoded

    def __post_init__(self) -> None:
        check_encoding(self.encoding)

    def local_files(self) -> dict[str, Path] | None:
        """The local file of each split given, or None when the corpus comes from the hub."""
        given = {split: path for split, path in (self.files or {}).items() if path}
        if given:
            unknown = set(given) - set(SPLITS)
            if unknown:
                raise ConfigError(f"data.files has unknown split(s) {sorted(unknown)}; use {list(SPLITS)}")
            base = Path(self.data_dir) if self.data_dir else Path(".")
            found = {split: base / path for split, path in given.items()}
            for split, path in found.items():
                if not path.is_file():
                    raise DataError(f"data file for split '{split}' not found: {path}; fix data.files.{split}")
            if "train" not in found:
                raise ConfigError("data.files needs at least a 'train' file")
            return found
        if self.data_dir:
            base = Path(self.data_dir)
            if not base.is_dir():
                raise DataError(f"data.data_dir is not a folder: {base}")
            found = {}
            for split, names in LOCAL_FILE_NAMES.items():
                hit = next((base / n for n in names if (base / n).is_file()), None)
                if hit is not None:
                    found[split] = hit
            if "train" not in found:
                raise DataError(
                    f"no training file in {base}: looked for {', '.join(LOCAL_FILE_NAMES['train'])}; "
                    "or name the files with data.files.train=... data.files.validation=... data.files.test=..."
                )
            return found
        if not self.hub_name:
            raise ConfigError("no text source: set data.data_dir, data.files.train or data.hub_name")
        return None

    def fingerprint(self, memo_dir: Path | None = None) -> dict:
        """What identifies the text: file contents for local files (`file_digest`), name and config for the hub."""
        files = self.local_files()
        if files is None:
            return {"hub": self.hub_name, "config": self.hub_config, "column": self.text_column}
        return {"encoding": codecs.lookup(self.encoding).name} | {
            split: file_digest(path, memo_dir) for split, path in sorted(files.items())
        }

    def load_text(self, work_dir: Path):
        """The lines of every split, read through `datasets`, as one Dataset (column `text`, the splits end to
        end in SPLITS order), and each split's number of lines, in the order the source names them. Local files
        are converted to Arrow under `work_dir`; hub datasets stay in the Hugging Face cache."""
        import datasets

        files = self.local_files()
        if files is not None:
            for split, path in files.items():
                check_text_file(path, split, self.encoding)
            try:
                loaded = datasets.load_dataset(
                    "text", data_files={s: str(p) for s, p in files.items()}, keep_linebreaks=True,
                    encoding=self.encoding, cache_dir=str(work_dir / "datasets"),
                )
            except datasets.exceptions.DatasetGenerationError as err:  # after the checks above, a surprise
                cause = err.__cause__ or err
                raise DataError(
                    f"datasets could not read {', '.join(str(p) for p in files.values())} "
                    f"({cause.__class__.__name__}: {str(cause).splitlines()[0] if str(cause) else ''}); "
                    "check that they are plain text files"
                ) from None
            parts = {split: loaded[split] for split in files}
        else:
            _check_hub_reachable(self)
            loaded = datasets.load_dataset(self.hub_name, self.hub_config)
            aliases = {"validation": ("validation", "valid", "dev")}
            parts = {}
            for split in SPLITS:
                name = next((a for a in aliases.get(split, (split,)) if a in loaded), None)
                if name is None:
                    continue
                if self.text_column not in loaded[name].column_names:
                    raise DataError(
                        f"hub dataset {self.hub_name} has no column '{self.text_column}' "
                        f"(columns: {loaded[name].column_names}); set data.text_column"
                    )
                part = loaded[name].select_columns([self.text_column])
                parts[split] = part if self.text_column == "text" else part.rename_column(self.text_column, "text")
        ordered = [parts[split] for split in SPLITS if split in parts]
        text = ordered[0] if len(ordered) == 1 else datasets.concatenate_datasets(ordered)
        return text, {split: len(part) for split, part in parts.items()}


def check_encoding(encoding: str) -> None:
    """Refuse an encoding Python cannot decode text with, before any file is read."""
    try:
        text_codec = codecs.lookup(encoding)._is_text_encoding
    except (LookupError, TypeError):
        text_codec = False
    if not text_codec:
        raise ConfigError(f"data.encoding={encoding!r} is not a text encoding Python knows; use utf-8, latin-1...")


def check_text_file(path: Path, split: str, encoding: str) -> None:
    """Refuse an empty or undecodable file with its split named (and the byte at fault), rather than the
    `datasets` generation traceback either ends in."""
    try:
        decoded = decode_file(path, encoding)
    except OSError as err:
        raise DataError(f"cannot read the {split} file {path} ({err.strerror or err}); make it readable") from None
    if decoded.bad_offset is not None:
        raise DataError(
            f"the {split} file {path} is not {encoding} text: {decoded.problem()}; convert it to {encoding}, "
            "or give its encoding with data.encoding=... (latin-1, cp1252...)"
        )
    if decoded.chars == 0:
        fix = "put text in it" if split == "train" else (
            f"put text in it, or remove it (or data.files.{split}) so the {split} split is carved off the training file"
        )
        raise DataError(f"the {split} file {path} is empty: a split with no tokens cannot be used; {fix}")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    except OSError as err:
        raise DataError(f"cannot read {path} ({err.strerror or err}); check that it is a readable file") from None
    return digest.hexdigest()


def _check_hub_reachable(source: CorpusSource, timeout: float = 5.0) -> None:
    """Fail in seconds, not after minutes of retries, when the hub cannot be reached."""
    offline = any(os.environ.get(v, "").lower() in ("1", "true", "yes") for v in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"))

    def unavailable(why: str) -> DataError:
        return DataError(
            f"cannot download '{source.hub_name}' ({source.hub_config}) from the Hugging Face Hub: {why}. "
            "Point at local files instead: data.data_dir=DIR with wiki.{train,valid,test}.tokens or "
            "{train,valid,test}.txt (for example data.data_dir=../shared/data/wikitext-2)"
        )

    if offline:
        raise unavailable("offline mode is set (HF_HUB_OFFLINE / HF_DATASETS_OFFLINE)")
    from huggingface_hub import constants

    url = urlparse(constants.ENDPOINT)
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        socket.create_connection((url.hostname, port), timeout=timeout).close()
    except OSError as err:
        raise unavailable(f"{url.hostname} is unreachable ({err.__class__.__name__})") from None


def file_digest(path: Path, memo_dir: Path | None = None) -> str:
    """SHA-256 of a file's bytes, remembered in `memo_dir` (the cache's `sources/`) so that it is read once.

    Hashing reads the whole corpus: 0.5 s for WikiText-103's 0.54 GB on this project's machines with the file
    in the page cache, seconds from a cold disk, linear in the corpus, on every run, before anything can
    start. So the content hash stays the key (a moved or copied file still hits, an edited one misses), and
    is remembered next to the file's device, inode, size, modification and change times (nanoseconds), to be
    used only while all five are the same. An edit changes the times (`ctime` even when a tool puts `mtime`
    back, as `cp -p`, `rsync -t` or `tar` do); a replaced file has a new inode. The one edit these could
    miss lands within the same clock tick as the change before it, so a hash is remembered only for a file
    left untouched for `SETTLED_NS` (2 s) before its hashing began, as git does with racily clean files.
    Trusting (path, size, mtime) alone would miss a same-size edit with its mtime put back.
    Without `memo_dir` the file is always hashed.
    """
    try:
        before = os.stat(path)
    except OSError as err:
        raise DataError(f"cannot read {path} ({err.strerror or err}); check that it is a readable file") from None
    settled = time.time_ns() - max(before.st_mtime_ns, before.st_ctime_ns) > SETTLED_NS
    memo = where = None
    if memo_dir is not None:
        where = str(Path(path).resolve())
        memo = Path(memo_dir) / f"{hashlib.sha256(where.encode()).hexdigest()[:32]}.json"
        try:
            saved = json.loads(memo.read_text())
            if saved["path"] == where and saved["stat"] == _identity(before):
                return saved["sha256"]
        except (OSError, ValueError, KeyError, TypeError):
            pass
    digest = _sha256(path)
    if memo is not None and settled and _identity(os.stat(path)) == _identity(before):
        try:
            memo.parent.mkdir(parents=True, exist_ok=True)
            partial = memo.with_name(f"{memo.name}.{os.getpid()}.tmp")
            partial.write_text(json.dumps({"path": where, "stat": _identity(before), "sha256": digest}))
            os.replace(partial, memo)
        except OSError:  # a read-only cache: hash again next time
            pass
    return digest


def _identity(st: os.stat_result) -> list[int]:
    return [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]


def build_corpus(
    source: CorpusSource,
    tokenizer: str = "word",
    vocabulary: list[str] | None = None,
    cache_dir: str | None = None,
    num_proc: int | None = None,
) -> Corpus:
    """Token ids for every split, from the on-disk cache when the same text was tokenized the same way before.

    `vocabulary` fixes the token ids (a checkpoint's, say); tokens outside it become `<unk>` when the
    vocabulary has one, else the corpus is rejected. With `cache_dir` the ids are memory-mapped from the
    cache; without, they are read into memory. `num_proc` processes tokenize (None: one per 32 MB of text,
    up to one per core).
    """
    if tokenizer not in TOKENIZERS:
        raise ConfigError(f"data.tokenizer={tokenizer!r} is not one of {list(TOKENIZERS)}")
    if num_proc is not None and (isinstance(num_proc, bool) or not isinstance(num_proc, int) or num_proc < 1):
        raise ConfigError(f"data.num_proc must be a positive integer or null (one per core), got {num_proc!r}")
    if not cache_dir:
        with tempfile.TemporaryDirectory(prefix="seqlab-corpus-") as work:
            built = _build(source, tokenizer, vocabulary, Path(work), num_proc)
            return built.open(Path(work), in_memory=True)

    cache = Path(cache_dir)
    key = {"source": source.fingerprint(cache / "sources"), "tokenizer": tokenizer, "format": CACHE_FORMAT}
    if vocabulary is not None:
        key["vocabulary"] = hashlib.sha256("\n".join(vocabulary).encode()).hexdigest()
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    index_file = cache / f"corpus-{digest}.pt"
    if index_file.is_file():
        try:
            return _Entry.load(index_file).open(cache)
        except Exception:  # cut short outside seqlab (a full disk, a partial copy): tokenize again, replace it
            pass

    cache.mkdir(parents=True, exist_ok=True)
    _remove_abandoned_builds(cache)
    work = Path(tempfile.mkdtemp(prefix=f".build-{os.getpid()}-{socket.gethostname()}-", dir=cache))
    try:
        built = _build(source, tokenizer, vocabulary, work, num_proc, ids_name=f"corpus-{digest}.npy")
        corpus = built.open(work)  # mapped before the rename: the mapping follows the file
        _durable(work / built.ids)
        os.replace(work / built.ids, cache / built.ids)
        built.save(work / index_file.name)
        os.replace(work / index_file.name, index_file)  # last: the entry exists once its ids are in place
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return corpus


@dataclass
class _Entry:
    """A cache entry's index (`corpus-<key>.pt`): the vocabulary, and where each split lies in the ids file."""

    vocabulary: list[str]
    ids: str  # the ids file's name, in the same folder
    length: int  # ids in that file
    splits: dict[str, tuple[int, int]]  # split -> [start, stop) in the ids

    @classmethod
    def load(cls, path: Path) -> _Entry:
        saved = torch.load(path, weights_only=True)
        if saved.get("format") != CACHE_FORMAT:
            raise ValueError(f"{path} is not a format {CACHE_FORMAT} entry")
        vocabulary = json.loads(saved["vocabulary"])
        return cls(vocabulary, saved["ids"], saved["length"], {s: tuple(r) for s, r in saved["splits"].items()})

    def save(self, path: Path) -> None:
        # The vocabulary as one JSON string: torch.load(weights_only=True) takes 0.5 s over a list of
        # WikiText-103's 267,735 strings, and 0.02 s over that string.
        saved = {"format": CACHE_FORMAT, "vocabulary": json.dumps(self.vocabulary), "ids": self.ids,
                 "length": self.length, "splits": {s: list(r) for s, r in self.splits.items()}}
        with open(path, "wb") as f:
            torch.save(saved, f)
            f.flush()
            os.fsync(f.fileno())

    def open(self, folder: Path, in_memory: bool = False) -> Corpus:
        """The corpus, its ids memory-mapped from `folder` (copy-on-write: a tensor written to in place never
        changes the file), or read into memory."""
        ids = np.load(folder / self.ids, mmap_mode=None if in_memory else "c")
        if ids.dtype != np.int64 or ids.shape != (self.length,):
            raise ValueError(f"{folder / self.ids} holds {ids.dtype} {ids.shape}, not int64 ({self.length},)")
        return Corpus(list(self.vocabulary), {s: torch.from_numpy(ids[a:b]) for s, (a, b) in self.splits.items()})


def _durable(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _remove_abandoned_builds(cache: Path) -> None:
    """Delete the build folders of this machine's processes that died mid-build (a killed run)."""
    host = socket.gethostname()
    for folder in cache.glob(".build-*"):
        match = re.fullmatch(r"\.build-(\d+)-(.*)-[^-]+", folder.name)
        if match is None or match.group(2) != host:
            continue
        try:
            os.kill(int(match.group(1)), 0)
        except ProcessLookupError:
            shutil.rmtree(folder, ignore_errors=True)
        except (PermissionError, OverflowError):  # alive, someone else's / not a pid
            pass


def _build(
    source: CorpusSource,
    tokenizer: str,
    vocabulary: list[str] | None,
    work: Path,
    num_proc: int | None,
    ids_name: str = "ids.npy",
) -> _Entry:
    """Tokenize the source into `work / ids_name` (see the module's docstring)."""
    text, line_counts = source.load_text(work)
    import pyarrow

    pyarrow.default_memory_pool().release_unused()  # what reading the text left: the workers are forked from here
    present = [s for s in SPLITS if s in line_counts]
    split_starts = list(itertools.accumulate((line_counts[s] for s in present[:-1]), initial=0))
    if num_proc is None:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        num_proc = max(1, min(cores, text.data.nbytes // BYTES_PER_PROCESS))
    batch_size = int(min(MAX_BATCH_LINES, max(1, BATCH_BYTES * len(text) // max(1, text.data.nbytes))))

    # The pass: each shard writes its pieces' ids, numbered in the order its (shard, split) segment first
    # met each token, to a file of its own; one row per piece says where, and which tokens were new.
    rows = {"start": [], "count": [], "file": [], "position": [], "new": []}
    if len(text):
        pieces = text.map(
            _SegmentIds(tokenizer, split_starts, str(work)), batched=True, batch_size=batch_size, with_indices=True,
            num_proc=num_proc if num_proc > 1 else None, remove_columns=text.column_names, keep_in_memory=True,
            load_from_cache_file=False, new_fingerprint=uuid.uuid4().hex, desc="Tokenizing",
        )
        rows = {name: pieces.data.column(name).to_pylist() for name in rows}
    order = sorted(range(len(rows["start"])), key=rows["start"].__getitem__)  # shards come back in order already
    rows = {name: [column[i] for i in order] for name, column in rows.items()}
    starts = np.array(rows["start"], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(np.array(rows["count"], dtype=np.int64))]).astype(np.int64)
    edges = np.searchsorted(starts, [*split_starts, len(text)], side="left")  # each split's first row
    bounds = {split: (int(offsets[edges[i]]), int(offsets[edges[i + 1]])) for i, split in enumerate(present)}
    row_split = np.searchsorted(edges, np.arange(len(starts)), side="right") - 1
    segments: dict[tuple[str, int], list[str]] = {}  # (file, split) -> its tokens in the order of their local ids
    for file, split, new in zip(rows["file"], row_split.tolist(), rows["new"]):
        segments.setdefault((file, split), []).extend(new)

    # The vocabulary: a token's first appearance is in the first segment that has it, where it comes in the
    # order that segment met it; so the segments' lists, end to end and deduplicated, are the single pass's.
    if vocabulary is None:
        vocabulary = list(dict.fromkeys(itertools.chain.from_iterable(rows["new"])))
    elif UNK not in vocabulary:
        known = set(vocabulary)
        for split in line_counts:  # in the source's order
            i = present.index(split)
            unknown = sorted({t for (_, s), types in segments.items() if s == i for t in types if t not in known})
            if unknown:
                raise DataError(
                    f"{len(unknown)} token(s) of the {split} split are not in the vocabulary and it has no {UNK} "
                    f"(first: {unknown[:5]}); evaluate on text tokenized like the training corpus"
                )
    vocabulary = list(vocabulary)
    index = {token: i for i, token in enumerate(vocabulary)}
    unk = index.get(UNK)
    remaps = {key: np.array([index.get(t, unk) for t in types], dtype=np.int64) for key, types in segments.items()}

    # The ids file: each piece's local ids through its segment's map to vocabulary ids, at its place.
    total = int(offsets[-1])
    path = work / ids_name
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": "<i8", "fortran_order": False, "shape": (total,)})
        header = f.tell()
        f.truncate(header + 8 * total)
    fd = os.open(path, os.O_WRONLY)

    def place(row: int) -> None:
        local = np.fromfile(work / rows["file"][row], dtype=np.int32, count=rows["count"][row],
                            offset=4 * rows["position"][row])
        _write_all(fd, remaps[rows["file"][row], int(row_split[row])][local], header + 8 * int(offsets[row]))

    try:
        with ThreadPoolExecutor(max(1, num_proc)) as pool:  # numpy and the writes let go of the GIL
            list(pool.map(place, range(len(starts))))
    finally:
        os.close(fd)
    for file in set(rows["file"]):
        (work / file).unlink()
    return _Entry(vocabulary, ids_name, total, bounds)


def _write_all(fd: int, array: np.ndarray, place: int) -> None:
    data = memoryview(np.ascontiguousarray(array)).cast("B")
    while data:
        written = os.pwrite(fd, data, place)
        data, place = data[written:], place + written


@functools.cache
def _python_only_spaces() -> tuple[re.Pattern, str]:
    """The characters `str.split()` splits on and Arrow's `ascii_split_whitespace` does not (\\x1c-\\x1f, \\x85,
    no-break and other Unicode spaces), asked of this Python's own `str.isspace`; and the ASCII ones among them."""
    arrow_spaces = set(" \t\n\x0b\x0c\r")
    others = [c for c in map(chr, range(0x110000)) if c.isspace() and c not in arrow_spaces]
    return re.compile("[" + "".join(map(re.escape, others)) + "]"), "".join(c for c in others if c.isascii())


def _split_words(text: str):
    """`text.split()` as an Arrow array, split by Arrow: the characters only `str.split()` takes for spaces are
    made spaces first (a scan of the text when it is not ASCII), and the empty token Arrow makes of leading
    whitespace is dropped (`text` ends with a word)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    others, ascii_others = _python_only_spaces()
    if not text.isascii() or any(c in text for c in ascii_others):
        text = others.sub(" ", text)
    tokens = pc.ascii_split_whitespace(pa.array([text], pa.large_string())).flatten()
    return tokens.slice(1) if tokens[0].as_py() == "" else tokens


class _SegmentIds:
    """The map function: a batch's lines, cut where a split starts, to token ids local to this shard's current
    split (0, 1, 2... in order of first appearance), appended to this shard's file.

    `datasets` pickles the function for each shard's job (with one process it calls it on the one shard), so
    an instance sees one shard's batches, in order, and nothing else. Words are split by Arrow, which splits
    on ASCII whitespace like `str.split()` (runs of it are one separator); the other characters `str.split()`
    splits on are turned into spaces first, so the tokens are `tokenize`'s exactly.
    """

    def __init__(self, tokenizer: str, split_starts: list[int], folder: str) -> None:
        self.tokenizer, self.split_starts, self.folder = tokenizer, split_starts, folder
        self.file = None
        self.name = ""
        self.written = 0
        self.split = -1
        self.types = None  # word: the segment's tokens as an Arrow array; char: code point -> local id

    def __getstate__(self) -> dict:
        return {**self.__dict__, "file": None}

    def __call__(self, batch: dict, indices: list[int]) -> dict:
        if self.file is None:
            self.name = f"shard-{uuid.uuid4().hex}.ids"
            self.file = open(Path(self.folder) / self.name, "wb")
        rows = {"start": [], "count": [], "file": [], "position": [], "new": []}
        for first, lines in _pieces(batch["text"], indices, self.split_starts):
            split = sum(first >= b for b in self.split_starts)
            if split != self.split:
                self.split, self.types = split, None
            ids, new = self._word_ids(lines) if self.tokenizer == "word" else self._char_ids(lines)
            ids.tofile(self.file)
            for name, value in zip(rows, (first, len(ids), self.name, self.written, new)):
                rows[name].append(value)
            self.written += len(ids)
        self.file.flush()  # the main process reads it once the map is done
        return rows

    def _word_ids(self, lines: list[str]) -> tuple[np.ndarray, list[str]]:
        import pyarrow as pa
        import pyarrow.compute as pc

        # `tokenize` over each line, at once: joined by ` <eos> `, whose spaces keep neighbouring lines' words apart
        tokens = _split_words(f" {EOS} ".join(lines) + f" {EOS}")
        encoded = pc.dictionary_encode(tokens)  # the distinct tokens in order of appearance, and indices into them
        if self.types is None:
            self.types = pa.array([], pa.large_string())
        local = pc.fill_null(pc.index_in(encoded.dictionary, value_set=self.types), -1).to_numpy().astype(np.int32)
        fresh = np.flatnonzero(local < 0)
        new = []
        if fresh.size:
            local[fresh] = np.arange(len(self.types), len(self.types) + fresh.size, dtype=np.int32)
            added = encoded.dictionary.take(pa.array(fresh))
            self.types = pa.concat_arrays([self.types, added])
            new = added.to_pylist()
        return local[encoded.indices.to_numpy()], new

    def _char_ids(self, lines: list[str]) -> tuple[np.ndarray, list[str]]:
        points = np.frombuffer("".join(lines).encode("utf-32-le", "surrogatepass"), dtype="<u4")
        if self.types is None:
            self.types = np.full(0x110000, -1, dtype=np.int32)
        ids = self.types[points]
        new = []
        if (ids < 0).any():
            unseen, first = np.unique(points[ids < 0], return_index=True)
            unseen = unseen[np.argsort(first)]
            known = int(self.types.max()) + 1
            self.types[unseen] = np.arange(known, known + len(unseen), dtype=np.int32)
            new = [chr(point) for point in unseen.tolist()]
            ids = self.types[points]
        return ids, new


def _pieces(lines: list[str], indices: list[int], split_starts: list[int]):
    """(first line's index, lines) of a batch, cut where a split starts."""
    first, stop = indices[0], indices[0] + len(lines)
    cuts = [first, *(b for b in split_starts if first < b < stop), stop]
    for a, b in zip(cuts[:-1], cuts[1:]):
        yield a, lines[a - first : b - first]
