"""Fuzzing the text path (corpus.build_corpus through TextDataModule.setup and its loaders): every set of
files ends in token streams or in one SeqlabError line, never a traceback or a hang; a character-level
corpus reads back as the files' text."""

from __future__ import annotations

from hypothesis import example, given
from hypothesis import strategies as st

from seqlab.data.text import TextDataModule
from tests.fuzz.outcomes import attempt, fresh_folder, share

PIECES = ["the cat sat", " on the mat ", "\n", "\r\n", "\r", "\x00", "\t", " ", "é", "\u2028", "\x85", "\x0c",
          "\ufeff", "<eos>", "<unk>", "日本語", "\U0001f600", "\ud7ff", "="]
ENCODINGS = ["utf-8", "latin-1", "utf-16", "utf-8-sig", "ascii", "cp1252"]
SPLITS = ("train", "validation", "test")


@st.composite
def text_files(draw) -> bytes:
    """One corpus file: text like a corpus, arbitrary bytes, nothing, only whitespace, a huge line, or text
    written in another encoding."""
    kind = draw(st.sampled_from(["text"] * 4 + ["bytes", "empty", "whitespace", "huge line", "other encoding"]))
    lines = st.lists(st.sampled_from(PIECES) | st.text(max_size=8), min_size=1, max_size=30).map("".join)
    if kind == "bytes":
        return draw(st.binary(max_size=2000))
    if kind == "empty":
        return b""
    if kind == "whitespace":
        return draw(st.text(st.sampled_from(" \t\n\r\x0b\x0c\x1c\x85\u2028\u3000"), min_size=1, max_size=50)).encode()
    if kind == "huge line":
        line = draw(st.sampled_from(["ab ", "x", "word\x00"])).encode()
        return line * draw(st.sampled_from([10**4, 10**5, 3 * 10**5]))
    text = draw(lines) * draw(st.integers(1, 40))  # repeated, so that splits can be carved off most files
    if kind == "other encoding":
        return text.encode(draw(st.sampled_from(ENCODINGS)), errors="replace")
    return text.encode("utf-8", errors="surrogatepass")  # lone surrogates: bytes that are not UTF-8


def corpora():
    return st.fixed_dictionaries(
        {"train": text_files()}, optional={"validation": text_files(), "test": text_files()}
    )


CONFIGS = st.fixed_dictionaries(
    {
        "tokenizer": st.sampled_from(["word", "char"]),
        "encoding": st.sampled_from(["utf-8"] * 5 + ENCODINGS),
        "batch_size": st.integers(1, 25),
        "eval_batch_size": st.integers(1, 12),
        "bptt": st.integers(1, 40),
        "val_fraction": st.sampled_from([0.05, 0.1, 0.0, 0.5]),
        "test_fraction": st.sampled_from([0.05, 0.1, 0.0, 0.45]),
        "cached": st.booleans(),
    }
)
WORD = {"tokenizer": "word", "encoding": "utf-8", "batch_size": 2, "eval_batch_size": 2, "bptt": 4,
        "val_fraction": 0.1, "test_fraction": 0.1, "cached": False}
CHAR = {**WORD, "tokenizer": "char"}
CACHED = {**CHAR, "cached": True}
LINES = b"the cat sat on the mat\n" * 30


def read_back(folder, files: dict[str, bytes], config: dict) -> TextDataModule:
    """Tokenize the files and take a batch from each loader; characters must read back as the text."""
    config = dict(config)
    cache_dir = str(folder / "cache") if config.pop("cached") else None
    paths = {}
    for split, content in files.items():
        paths[split] = folder / f"{split}.txt"
        paths[split].write_bytes(content)
    dm = TextDataModule(files={s: str(p) for s, p in paths.items()}, cache_dir=cache_dir, **config)
    dm.prepare_data()
    dm.setup("fit")
    for loader in (dm.train_dataloader, dm.val_dataloader, dm.test_dataloader):
        inputs, targets = next(iter(loader()))
        assert inputs.shape == targets.shape and inputs.numel() > 0
    if dm.tokenizer == "char":
        decoded = {s: "".join(dm.vocabulary[i] for i in ids) for s, ids in dm.corpus.splits.items()}
        text = {s: open(p, encoding=dm.source.encoding).read() for s, p in paths.items()}  # universal newlines too
        carved = [s for s in SPLITS if s not in paths]  # cut off the end of the training file, in this order
        assert decoded["train"] + "".join(decoded[s] for s in carved) == text["train"]
        assert all(decoded[s] == text[s] for s in paths if s != "train")
    return dm


@share(2)
@given(files=corpora(), config=CONFIGS)
@example(files={"train": b"", "validation": b"", "test": b""}, config=WORD)  # once a DatasetGenerationError
@example(files={"train": "café crème\n".encode("latin-1") * 30}, config=WORD)  # once a DatasetGenerationError
@example(files={"train": "café crème\n".encode("latin-1") * 30}, config={**CHAR, "encoding": "latin-1"})
@example(files={"train": LINES, "validation": b""}, config=WORD)  # an empty split: named, not a traceback
@example(files={"train": b"\xef\xbb\xbf"}, config={**WORD, "encoding": "utf-8-sig"})  # no text once decoded
@example(files={"train": b" \n\t\n" * 40}, config=WORD)
@example(files={"train": b"a\rb\r\nc\n\x00d\r" * 40}, config=CHAR)
@example(files={"train": b"ab " * 300_000}, config=CHAR)
def test_text_files_end_in_token_streams_or_one_error_line(work, files, config):
    attempt("text", read_back, fresh_folder(work), files, config)


@share(2)
@given(files=st.fixed_dictionaries({"train": st.binary(max_size=3000)}), config=st.sampled_from([WORD, CHAR, CACHED]))
@example(files={"train": b"\xff" * 100}, config=WORD)
def test_arbitrary_bytes_end_in_token_streams_or_one_error_line(work, files, config):
    attempt("text", read_back, fresh_folder(work), files, config)
