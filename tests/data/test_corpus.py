import time

import pytest
import torch

from seqlab.data.corpus import EOS, CorpusSource, build_corpus
from seqlab.data.text import TextDataModule
from seqlab.errors import ConfigError, DataError
from tests.conftest import SHARED_DATA


def test_word_tokens_follow_the_benchmark_rule(tmp_path):
    # Three lines, one empty: whitespace split, one <eos> per line, empty lines too.
    (tmp_path / "train.txt").write_text(" = Title = \n\n a b  a \n")
    corpus = build_corpus(CorpusSource(files={"train": str(tmp_path / "train.txt")}))
    words = [corpus.vocabulary[i] for i in corpus.splits["train"]]
    assert words == ["=", "Title", "=", EOS, EOS, "a", "b", "a", EOS]
    assert corpus.vocabulary == ["=", "Title", EOS, "a", "b"]  # order of first appearance


def test_char_tokens_keep_newlines(tmp_path):
    (tmp_path / "input.txt").write_text("ab\nba\n")
    corpus = build_corpus(CorpusSource(files={"train": str(tmp_path / "input.txt")}), tokenizer="char")
    assert "".join(corpus.vocabulary[i] for i in corpus.splits["train"]) == "ab\nba\n"
    assert EOS not in corpus.vocabulary


def test_vocabulary_spans_all_splits_and_counts_match(corpus_dir):
    corpus = build_corpus(CorpusSource(data_dir=str(corpus_dir)))
    for split, name in (("train", "train"), ("validation", "valid"), ("test", "test")):
        lines = (corpus_dir / f"{name}.txt").read_text().splitlines()
        assert len(corpus.splits[split]) == sum(len(line.split()) + 1 for line in lines)


def test_second_build_reads_the_cache(corpus_dir, tmp_path, monkeypatch):
    source = CorpusSource(data_dir=str(corpus_dir))
    first = build_corpus(source, cache_dir=str(tmp_path / "cache"))
    assert len(list((tmp_path / "cache").glob("corpus-*.pt"))) == 1

    def no_loading(self, work_dir):
        raise AssertionError("tokenized again despite the cache")

    monkeypatch.setattr(CorpusSource, "load_text", no_loading)
    second = build_corpus(source, cache_dir=str(tmp_path / "cache"))
    assert second.vocabulary == first.vocabulary
    assert all(torch.equal(second.splits[s], first.splits[s]) for s in first.splits)


def test_cache_key_follows_the_content_and_the_tokenizer(corpus_dir, tmp_path):
    cache = str(tmp_path / "cache")
    build_corpus(CorpusSource(data_dir=str(corpus_dir)), cache_dir=cache)
    build_corpus(CorpusSource(data_dir=str(corpus_dir)), tokenizer="char", cache_dir=cache)
    with open(corpus_dir / "test.txt", "a") as f:
        f.write(" brand new words \n")
    changed = build_corpus(CorpusSource(data_dir=str(corpus_dir)), cache_dir=cache)
    assert "brand" in changed.vocabulary
    assert len(list((tmp_path / "cache").glob("corpus-*.pt"))) == 3


def test_fixed_vocabulary_maps_unknown_words_to_unk_or_refuses(tmp_path):
    (tmp_path / "train.txt").write_text("a b zebra\n")
    source = CorpusSource(files={"train": str(tmp_path / "train.txt")})
    corpus = build_corpus(source, vocabulary=["<unk>", "a", "b", EOS])
    assert corpus.splits["train"].tolist() == [1, 2, 0, 3]
    with pytest.raises(DataError, match="zebra"):
        build_corpus(source, vocabulary=["a", "b", EOS])


def test_missing_files_and_folders_are_named(tmp_path):
    with pytest.raises(DataError, match="not a folder"):
        build_corpus(CorpusSource(data_dir=str(tmp_path / "nowhere")))
    with pytest.raises(DataError, match="no training file"):
        build_corpus(CorpusSource(data_dir=str(tmp_path)))
    with pytest.raises(DataError, match="files.validation"):
        (tmp_path / "t.txt").write_text("a\n")
        build_corpus(CorpusSource(files={"train": str(tmp_path / "t.txt"), "validation": "missing.txt"}))
    with pytest.raises(ConfigError, match="tokenizer"):
        build_corpus(CorpusSource(files={"train": str(tmp_path / "t.txt")}), tokenizer="bpe")


def test_offline_hub_fails_fast_with_the_fix(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    started = time.perf_counter()
    with pytest.raises(DataError, match="data.data_dir"):
        build_corpus(CorpusSource(hub_name="wikitext", hub_config="wikitext-2-v1"))
    assert time.perf_counter() - started < 10


def test_unreachable_hub_fails_fast_with_the_fix(monkeypatch):
    import huggingface_hub.constants

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", "http://127.0.0.1:9")  # closed port
    started = time.perf_counter()
    with pytest.raises(DataError, match="unreachable.*data.data_dir"):
        build_corpus(CorpusSource(hub_name="wikitext", hub_config="wikitext-2-v1"))
    assert time.perf_counter() - started < 10


def test_a_single_file_is_carved_into_three_contiguous_splits(tmp_path):
    (tmp_path / "input.txt").write_text("abcdefghij" * 100)
    dm = TextDataModule(files={"train": str(tmp_path / "input.txt")}, tokenizer="char", val_fraction=0.1, test_fraction=0.2)
    dm.setup()
    sizes = {s: len(t) for s, t in dm.corpus.splits.items()}
    assert sizes == {"train": 700, "validation": 100, "test": 200}
    stream = torch.cat([dm.corpus.splits[s] for s in ("train", "validation", "test")])
    assert "".join(dm.vocabulary[i] for i in stream) == "abcdefghij" * 100


@pytest.mark.skipif(not (SHARED_DATA / "wikitext-2").is_dir(), reason="real WikiText-2 not present")
def test_real_wikitext2_gives_the_published_counts():
    corpus = build_corpus(CorpusSource(data_dir=str(SHARED_DATA / "wikitext-2")))
    sizes = {s: len(t) for s, t in corpus.splits.items()}
    assert sizes == {"train": 2_088_628, "validation": 217_646, "test": 245_569}
    assert len(corpus.vocabulary) == 33_278
