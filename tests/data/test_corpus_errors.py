"""A corpus file that is empty or not in the expected encoding is one DataError naming it, never a traceback."""

from __future__ import annotations

import pytest

from seqlab.data.corpus import CorpusSource, build_corpus
from seqlab.data.text import TextDataModule
from seqlab.errors import ConfigError, DataError
from tests.conftest import write_corpus
from tests.test_scripts import run_script

LATIN1 = "café crème\nà la carte\n".encode("latin-1")


@pytest.mark.parametrize("name, split", [("train.txt", "train"), ("valid.txt", "validation"), ("test.txt", "test")])
def test_an_empty_split_file_is_named_with_its_split(tmp_path, name, split):
    write_corpus(tmp_path)
    (tmp_path / name).write_bytes(b"")
    with pytest.raises(DataError, match=rf"the {split} file .*{name} is empty"):
        build_corpus(CorpusSource(data_dir=str(tmp_path)))


def test_a_file_of_only_a_byte_order_mark_is_empty_too(tmp_path):
    (tmp_path / "train.txt").write_bytes(b"\xef\xbb\xbf")
    with pytest.raises(DataError, match="is empty"):
        build_corpus(CorpusSource(files={"train": str(tmp_path / "train.txt")}, encoding="utf-8-sig"))


def test_a_latin1_file_names_the_byte_and_reads_with_its_encoding(tmp_path):
    (tmp_path / "train.txt").write_bytes(LATIN1)
    source = {"files": {"train": str(tmp_path / "train.txt")}}
    with pytest.raises(DataError, match=r"train file .*train.txt is not utf-8 text: byte 0xe9 at offset 3 .*encoding="):
        build_corpus(CorpusSource(**source))
    corpus = build_corpus(CorpusSource(**source, encoding="latin-1"))
    assert {"café", "crème", "à"} <= set(corpus.vocabulary)


@pytest.mark.parametrize("before", [(1 << 20) - 1, 1 << 20, (1 << 20) + 1])
def test_the_offset_is_the_file_s_across_read_blocks(tmp_path, before):
    # A valid two-byte character straddling the 1 MiB read boundary, then a stray byte after it.
    path = tmp_path / "train.txt"
    path.write_bytes(b"a" * before + "é".encode() + b"\xff")
    with pytest.raises(DataError, match=rf"byte 0xff at offset {before + 2} "):
        build_corpus(CorpusSource(files={"train": str(path)}))


def test_a_file_cut_inside_a_character_names_where(tmp_path):
    path = tmp_path / "train.txt"
    path.write_bytes(b"abc " + "é".encode()[:1])
    with pytest.raises(DataError, match="byte 0xc3 at offset 4 "):
        build_corpus(CorpusSource(files={"train": str(path)}))


def test_encodings_do_not_share_a_cache_entry(tmp_path):
    (tmp_path / "train.txt").write_bytes(LATIN1)
    cache = tmp_path / "cache"
    files = {"train": str(tmp_path / "train.txt")}
    latin1 = build_corpus(CorpusSource(files=files, encoding="latin-1"), cache_dir=str(cache))
    cp1252 = build_corpus(CorpusSource(files=files, encoding="cp1252"), cache_dir=str(cache))
    assert latin1.vocabulary == cp1252.vocabulary  # same characters here, but not in general
    assert len(list(cache.glob("corpus-*.pt"))) == 2
    same = [CorpusSource(files=files, encoding=name).fingerprint() for name in ("latin-1", "latin1", "L1")]
    assert same[0] == same[1] == same[2]  # one codec, one entry, however it is spelled


@pytest.mark.parametrize("encoding", ["klingon", "base64", "rot13", ""])
def test_an_encoding_that_cannot_decode_text_is_a_config_error(tmp_path, encoding):
    with pytest.raises(ConfigError, match="data.encoding"):
        TextDataModule(files={"train": str(tmp_path / "train.txt")}, encoding=encoding)


@pytest.mark.parametrize("content, fix", [(b"", "is empty"), (LATIN1, "data.encoding")])
def test_train_script_prints_one_error_line_and_exits_2(tmp_path, content, fix):
    write_corpus(tmp_path / "corpus")
    (tmp_path / "corpus" / "train.txt").write_bytes(content)
    done = run_script("train.py", "data=text", "data.data_dir=corpus", "debug=fast", cwd=tmp_path, check=False)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: the train file") and fix in lines[0], done.stderr[-2000:]
