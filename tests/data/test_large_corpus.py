"""Corpora larger than memory: tokenized by `datasets.map` over processes into the same vocabulary and ids as the
plain sequential rule, cached as a memory-mapped file, served by a token stream that copies nothing up front."""

from __future__ import annotations

import math
import os
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import seqlab.data.corpus as corpus_module
from seqlab.data.corpus import LOCAL_FILE_NAMES, SPLITS, UNK, CorpusSource, build_corpus, file_digest, tokenize
from seqlab.data.stream import IGNORE_INDEX, TokenStream
from seqlab.errors import ConfigError, DataError
from tests.conftest import REPO, SHARED_DATA

# Words of every kind the rule must treat as str.split() does: Unicode, a literal <eos>, NUL, and characters
# str.split() splits on that Arrow's ASCII splitter does not (no-break space, U+2028, \x1c, ideographic space).
WORDS = ["the", "cat", "sat", "=", "@-@", "<eos>", "<unk>", "café", "日本語", "\x00", "a\xa0b", "x\x1cy",
         "p\u3000q", "end\u2028line", "\U0001f600", "tab\tbed", "crème", "\x85", "\x0b\x0c"]


def write_mixed_corpus(folder: Path, lines=(400, 60, 70), seed: int = 0) -> Path:
    """Lines of random words (most from a pool of 2,000 so that new ones keep coming), empty lines, lines of
    spaces, leading and trailing whitespace, \\r\\n and \\r line ends."""
    rng = random.Random(seed)
    pool = WORDS + [f"w{i}" for i in range(2000)]
    folder.mkdir(parents=True, exist_ok=True)
    for name, count in zip(("train.txt", "valid.txt", "test.txt"), lines):
        out = []
        for i in range(count):
            kind = rng.random()
            if kind < 0.15:
                out.append(" " * rng.randrange(3))
            else:
                words = [rng.choice(pool[: 50 + i * 5]) for _ in range(rng.randrange(1, 30))]
                out.append(rng.choice(["", " ", "\t"]) + " ".join(words) + rng.choice(["", " ", "  "]))
        ends = [rng.choice(["\n", "\n", "\n", "\r\n", "\r"]) for _ in out]
        (folder / name).write_bytes("".join(line + end for line, end in zip(out, ends)).encode())
    return folder


def sequential(files: dict[str, Path], tokenizer: str) -> tuple[list[str], dict[str, torch.Tensor]]:
    """The reference: pytorch/examples' loop, one line at a time, one token at a time."""
    tokens = {}
    for split in SPLITS:
        if split in files:
            with open(files[split], encoding="utf-8") as f:  # universal newlines, then lines split on \n only
                tokens[split] = [t for line in f for t in tokenize(line, tokenizer)]
    vocabulary = list(dict.fromkeys(t for split in tokens.values() for t in split))
    index = {t: i for i, t in enumerate(vocabulary)}
    return vocabulary, {s: torch.tensor([index[t] for t in ts], dtype=torch.long) for s, ts in tokens.items()}


def local_files(folder: Path) -> dict[str, Path]:
    return {s: folder / n for s, names in LOCAL_FILE_NAMES.items() for n in names if (folder / n).is_file()}


@pytest.mark.parametrize("tokenizer", ["word", "char"])
def test_two_processes_over_many_shards_give_the_sequential_vocabulary_and_ids(tmp_path, monkeypatch, tokenizer):
    folder = write_mixed_corpus(tmp_path / "corpus")
    monkeypatch.setattr(corpus_module, "MAX_BATCH_LINES", 37)  # many batches per shard, cut across splits
    vocabulary, ids = sequential(local_files(folder), tokenizer)
    for num_proc, cache in ((2, None), (3, str(tmp_path / "cache"))):
        built = build_corpus(CorpusSource(data_dir=str(folder)), tokenizer, cache_dir=cache, num_proc=num_proc)
        assert built.vocabulary == vocabulary
        assert set(built.splits) == set(ids)
        for split in ids:
            assert built.splits[split].dtype == torch.long and torch.equal(built.splits[split], ids[split]), split


def test_a_fixed_vocabulary_maps_or_refuses_unknown_tokens_from_every_shard(tmp_path, monkeypatch):
    folder = write_mixed_corpus(tmp_path / "corpus")
    monkeypatch.setattr(corpus_module, "MAX_BATCH_LINES", 50)
    vocabulary, ids = sequential(local_files(folder), "word")
    known = [UNK, *(t for t in vocabulary[: len(vocabulary) // 2] if t != UNK)]  # the text has <unk>s too
    built = build_corpus(CorpusSource(data_dir=str(folder)), vocabulary=known, num_proc=2)
    for split, reference in ids.items():
        words = [vocabulary[i] for i in reference.tolist()]
        assert [known[i] for i in built.splits[split].tolist()] == [w if w in known else UNK for w in words]
    without_unk = known[1:]
    unknown = sorted({vocabulary[i] for i in ids["train"].tolist()} - set(without_unk))
    with pytest.raises(DataError, match=rf"^{len(unknown)} token\(s\) of the train split are not in the vocabulary"):
        build_corpus(CorpusSource(data_dir=str(folder)), vocabulary=without_unk, num_proc=2)


@pytest.mark.parametrize("num_proc", [0, -1, 1.5, True])
def test_num_proc_must_be_a_positive_integer(corpus_dir, num_proc):
    with pytest.raises(ConfigError, match="data.num_proc"):
        build_corpus(CorpusSource(data_dir=str(corpus_dir)), num_proc=num_proc)


def mapped_file(tensor: torch.Tensor) -> str | None:
    """The file whose mapping holds the tensor's memory, from /proc/self/maps (None: the heap, anonymous memory)."""
    address = tensor.data_ptr()
    with open("/proc/self/maps") as maps:
        for line in maps:
            fields = line.split(maxsplit=5)
            low, high = (int(x, 16) for x in fields[0].split("-"))
            if low <= address < high:
                name = fields[5].strip() if len(fields) == 6 else ""
                return name if name.startswith("/") else None
    return None


def test_a_hub_dataset_is_tokenized_from_its_text_column_and_split_names(tmp_path, monkeypatch):
    import datasets

    lines = {"train": [" a b a ", "", " c a "], "valid": [" d b ", " e "], "test": [" a f "]}
    hub = datasets.DatasetDict({s: datasets.Dataset.from_dict({"sentence": v}) for s, v in lines.items()})
    monkeypatch.setattr(corpus_module, "_check_hub_reachable", lambda source: None)
    monkeypatch.setattr(datasets, "load_dataset", lambda name, config: hub)
    built = build_corpus(CorpusSource(hub_name="ptb_text_only", hub_config="penn_treebank", text_column="sentence"),
                         cache_dir=str(tmp_path / "cache"), num_proc=2)
    assert built.vocabulary == ["a", "b", "<eos>", "c", "d", "e", "f"]
    words = {s: [built.vocabulary[i] for i in ids.tolist()] for s, ids in built.splits.items()}
    assert words == {"train": "a b a <eos> <eos> c a <eos>".split(), "validation": "d b <eos> e <eos>".split(),
                     "test": "a f <eos>".split()}


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="needs Linux's /proc")
def test_a_cached_corpus_is_memory_mapped_from_the_cache_not_read(corpus_dir, tmp_path):
    cache = tmp_path / "cache"
    first = build_corpus(CorpusSource(data_dir=str(corpus_dir)), cache_dir=str(cache))
    second = build_corpus(CorpusSource(data_dir=str(corpus_dir)), cache_dir=str(cache))
    (ids_file,) = cache.glob("corpus-*.npy")
    for corpus in (first, second):
        for split, tensor in corpus.splits.items():
            assert mapped_file(tensor) == str(ids_file), split
    assert torch.equal(first.splits["train"], second.splits["train"])
    second.splits["train"][0] = 12345  # copy-on-write: the process's own page, never the file
    third = build_corpus(CorpusSource(data_dir=str(corpus_dir)), cache_dir=str(cache))
    assert torch.equal(third.splits["train"], first.splits["train"]) and int(third.splits["train"][0]) != 12345
    uncached = build_corpus(CorpusSource(data_dir=str(corpus_dir)))
    assert mapped_file(uncached.splits["train"]) is None  # no cache: read into memory, nothing left on disk


def test_the_hash_of_a_settled_file_is_remembered_until_the_file_changes(tmp_path, monkeypatch):
    path = tmp_path / "train.txt"
    path.write_text("the cat sat on the mat\n")
    memo = tmp_path / "sources"
    fresh = file_digest(path, memo)
    assert not memo.exists()  # just written: an edit within the same clock tick could go unseen

    monkeypatch.setattr(corpus_module, "SETTLED_NS", -(10**18))  # as if it had been written long ago
    assert file_digest(path, memo) == fresh and len(list(memo.iterdir())) == 1
    hashed = []
    real_sha256 = corpus_module._sha256
    monkeypatch.setattr(corpus_module, "_sha256", lambda p: hashed.append(p) or real_sha256(p))
    assert file_digest(path, memo) == fresh and hashed == []  # remembered: not read again

    before = path.stat()
    path.write_text("the dog sat on the mat\n")  # same size, and the old modification time put back
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert path.stat().st_size == before.st_size and path.stat().st_mtime_ns == before.st_mtime_ns
    changed = file_digest(path, memo)
    assert hashed == [path] and changed != fresh  # the change time gave it away
    assert file_digest(tmp_path / "train.txt") == changed  # without a memo: always hashed


def test_a_build_folder_left_by_a_killed_process_is_removed(corpus_dir, tmp_path):
    cache = tmp_path / "cache"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    import socket

    left = cache / f".build-{dead.pid}-{socket.gethostname()}-abc123"
    (left / "datasets").mkdir(parents=True)
    mine = cache / f".build-{os.getpid()}-{socket.gethostname()}-def456"  # a live process's: kept
    mine.mkdir()
    build_corpus(CorpusSource(data_dir=str(corpus_dir)), cache_dir=str(cache))
    assert not left.exists() and mine.exists()


def padded_layout(tokens: torch.Tensor, batch_size: int, rank: int, world_size: int):
    """The layout as it was built before streams stopped copying: F.pad, then a view per rank."""
    columns = batch_size * world_size
    inputs, targets = tokens[:-1], tokens[1:]
    length = math.ceil(targets.numel() / columns)
    pad = length * columns - targets.numel()
    inputs = F.pad(inputs, (0, pad), value=0).view(columns, length)
    targets = F.pad(targets, (0, pad), value=IGNORE_INDEX).view(columns, length)
    share = slice(rank * batch_size, (rank + 1) * batch_size)
    return inputs[share], targets[share]


@pytest.mark.parametrize("size", [2, 3, 50, 101, 1000, 1001])
@pytest.mark.parametrize("batch_size, world_size", [(1, 1), (3, 1), (7, 1), (33, 1), (2, 3), (4, 2)])
def test_the_stream_serves_the_padded_layout_window_by_window(size, batch_size, world_size):
    tokens = torch.randint(0, 1000, (size,))
    for rank in range(world_size):
        inputs, targets = padded_layout(tokens, batch_size, rank, world_size)
        for bptt in (1, 5, 35):
            stream = TokenStream(tokens, batch_size, bptt, rank, world_size)
            batches = list(stream)
            assert len(batches) == len(stream) == math.ceil(inputs.shape[1] / bptt)
            for k, (x, y) in enumerate(batches):
                window = slice(k * bptt, (k + 1) * bptt)
                assert x.dtype == y.dtype == torch.long
                assert torch.equal(x, inputs[:, window]) and torch.equal(y, targets[:, window])
            assert torch.equal(stream.inputs, inputs) and torch.equal(stream.targets, targets)


def test_windows_inside_the_stream_are_views_of_the_token_ids(tmp_path):
    path = tmp_path / "ids.npy"
    np.save(path, np.arange(100_001, dtype=np.int64))
    tokens = torch.from_numpy(np.load(path, mmap_mode="c")[1:])  # memory-mapped, not at the storage's start
    stream = TokenStream(tokens, batch_size=4, bptt=35)
    storage = tokens.untyped_storage()
    low, high = storage.data_ptr(), storage.data_ptr() + storage.nbytes()
    views = 0
    for x, y in stream:
        if low <= x.data_ptr() < high:  # not copied
            views += 1
            assert torch.equal(y, x + 1)
    assert views == len(stream) - 1  # all but the padded tail


@pytest.mark.skipif(not (SHARED_DATA / "wikitext-2").is_dir() or not (SHARED_DATA / "ptb").is_dir(),
                    reason="real WikiText-2 / PTB not present")
@pytest.mark.parametrize("name, tokenizer", [("wikitext-2", "word"), ("ptb", "word"), ("wikitext-2", "char")])
def test_real_corpora_give_the_sequential_ids_bit_for_bit(name, tokenizer):
    folder = SHARED_DATA / name
    vocabulary, ids = sequential(local_files(folder), tokenizer)
    built = build_corpus(CorpusSource(data_dir=str(folder)), tokenizer, num_proc=2)
    assert built.vocabulary == vocabulary
    assert all(torch.equal(built.splits[s], ids[s]) for s in ids) and set(built.splits) == set(ids)


def test_a_synthetic_wikitext103_slice_gives_the_sequential_ids(tmp_path):
    # benchmarks/make_synthetic_corpus.py at 2% of WikiText-103's size: 2 million tokens, 37,000 types.
    subprocess.run([sys.executable, str(REPO / "benchmarks" / "make_synthetic_corpus.py"), "--out", str(tmp_path),
                    "--scale", "0.02"], check=True, capture_output=True)
    vocabulary, ids = sequential(local_files(tmp_path), "word")
    built = build_corpus(CorpusSource(data_dir=str(tmp_path)), cache_dir=str(tmp_path / "cache"), num_proc=2)
    assert built.vocabulary == vocabulary
    assert all(torch.equal(built.splits[s], ids[s]) for s in ids)
