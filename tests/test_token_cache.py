"""Runs and sweep workers started together on one corpus share its token cache without ever reading half of it."""

from __future__ import annotations

import multiprocessing

import torch

from seqlab.data.corpus import CorpusSource, build_corpus
from tests.conftest import write_corpus


def build(corpus: str, cache: str, start) -> list[int]:
    start.wait()  # every process tokenizes and writes at the same moment
    built = build_corpus(CorpusSource(data_dir=corpus), cache_dir=cache)
    return [len(built.vocabulary), *(int(built.splits[s].sum()) for s in ("train", "validation", "test"))]


def test_processes_building_one_cache_at_once_all_get_the_same_tokens(tmp_path):
    corpus = write_corpus(tmp_path / "corpus", lines_per_split=(3000, 400, 500))
    context = multiprocessing.get_context("spawn")
    processes = 4
    with context.Manager() as manager, context.Pool(processes) as pool:
        start = manager.Barrier(processes)
        results = pool.starmap(build, [(str(corpus), str(tmp_path / "cache"), start)] * processes)
    reference = build_corpus(CorpusSource(data_dir=str(corpus)))
    expected = [len(reference.vocabulary), *(int(reference.splits[s].sum()) for s in ("train", "validation", "test"))]
    assert results == [expected] * processes
    cache = tmp_path / "cache"
    (entry,) = cache.glob("corpus-*.pt")  # one entry, its ids beside it, no build folder left behind
    assert sorted(p.name for p in cache.glob("corpus-*")) == [entry.with_suffix(".npy").name, entry.name]
    assert not list(cache.glob(".build-*"))
    again = build_corpus(CorpusSource(data_dir=str(corpus)), cache_dir=str(cache))
    assert again.vocabulary == reference.vocabulary


def test_a_half_written_cache_entry_is_rebuilt_not_read(tmp_path):
    corpus = write_corpus(tmp_path / "corpus")
    first = build_corpus(CorpusSource(data_dir=str(corpus)), cache_dir=str(tmp_path / "cache"))
    (entry,) = (tmp_path / "cache").glob("corpus-*.pt")
    entry.write_bytes(entry.read_bytes()[: entry.stat().st_size // 2])  # a copy cut short, a full disk
    again = build_corpus(CorpusSource(data_dir=str(corpus)), cache_dir=str(tmp_path / "cache"))
    assert again.vocabulary == first.vocabulary and torch.equal(again.splits["train"], first.splits["train"])
    replaced = build_corpus(CorpusSource(data_dir=str(corpus)), cache_dir=str(tmp_path / "cache"))
    assert replaced.vocabulary == first.vocabulary  # from the rebuilt entry


def test_a_cut_ids_file_is_rebuilt_not_read(tmp_path):
    corpus = write_corpus(tmp_path / "corpus")
    first = build_corpus(CorpusSource(data_dir=str(corpus)), cache_dir=str(tmp_path / "cache"))
    (ids,) = (tmp_path / "cache").glob("corpus-*.npy")
    whole = ids.stat().st_size
    ids.write_bytes(ids.read_bytes()[: whole - 8])  # one id short: a partial copy, a full disk
    again = build_corpus(CorpusSource(data_dir=str(corpus)), cache_dir=str(tmp_path / "cache"))
    assert all(torch.equal(again.splits[s], first.splits[s]) for s in first.splits)
    assert ids.stat().st_size == whole  # replaced by a whole one
