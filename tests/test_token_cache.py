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
    cached = list((tmp_path / "cache").iterdir())
    assert len(cached) == 1 and torch.load(cached[0], weights_only=True)["vocabulary"] == reference.vocabulary


def test_a_half_written_cache_entry_is_rebuilt_not_read(tmp_path):
    corpus = write_corpus(tmp_path / "corpus")
    first = build_corpus(CorpusSource(data_dir=str(corpus)), cache_dir=str(tmp_path / "cache"))
    (entry,) = (tmp_path / "cache").glob("corpus-*.pt")
    entry.write_bytes(entry.read_bytes()[: entry.stat().st_size // 2])  # a copy cut short, a full disk
    again = build_corpus(CorpusSource(data_dir=str(corpus)), cache_dir=str(tmp_path / "cache"))
    assert again.vocabulary == first.vocabulary and torch.equal(again.splits["train"], first.splits["train"])
    assert torch.load(entry, weights_only=True)["vocabulary"] == first.vocabulary
