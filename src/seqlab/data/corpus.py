"""Text corpora as token-id tensors: splits loaded through `datasets`, tokenized as the benchmarks do, cached.

Word-level tokenization follows pytorch/examples' `data.Corpus` (the way WikiText-2 and PTB figures are
published): split each line on whitespace and append one `<eos>`, empty lines included. The vocabulary is
every token of every split in order of first appearance. Character-level keeps every character, newlines
included, and adds no `<eos>`.
"""

from __future__ import annotations

import codecs
import hashlib
import json
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import torch

from seqlab.data.decoding import decode_file
from seqlab.errors import ConfigError, DataError

SPLITS = ("train", "validation", "test")
EOS = "<eos>"
UNK = "<unk>"
TOKENIZERS = ("word", "char")
CACHE_FORMAT = 1  # bump when the cached layout or tokenization changes

# File names tried, in order, for each split when only `data_dir` is given.
LOCAL_FILE_NAMES = {
    "train": ("wiki.train.tokens", "train.txt", "ptb.train.txt"),
    "validation": ("wiki.valid.tokens", "valid.txt", "ptb.valid.txt", "validation.txt"),
    "test": ("wiki.test.tokens", "test.txt", "ptb.test.txt"),
}


def tokenize(line: str, tokenizer: str) -> list[str]:
    if tokenizer == "word":
        return line.split() + [EOS]
    return list(line)


@dataclass
class Corpus:
    """Token ids of each split, and the vocabulary that maps them back to strings."""

    vocabulary: list[str]
    splits: dict[str, torch.Tensor]  # split name -> 1-D int64 ids, in stream order


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

    def fingerprint(self) -> dict:
        """What identifies the text: file contents for local files, name and config for the hub."""
        files = self.local_files()
        if files is None:
            return {"hub": self.hub_name, "config": self.hub_config, "column": self.text_column}
        return {"encoding": codecs.lookup(self.encoding).name} | {
            split: _sha256(path) for split, path in sorted(files.items())
        }

    def load_lines(self) -> dict[str, list[str]]:
        """Each split as a list of lines, read through `datasets`."""
        import datasets

        files = self.local_files()
        if files is not None:
            for split, path in files.items():
                check_text_file(path, split, self.encoding)
            try:
                loaded = datasets.load_dataset(
                    "text", data_files={s: str(p) for s, p in files.items()}, keep_linebreaks=True,
                    encoding=self.encoding,
                )
            except datasets.exceptions.DatasetGenerationError as err:  # after the checks above, a surprise
                cause = err.__cause__ or err
                raise DataError(
                    f"datasets could not read {', '.join(str(p) for p in files.values())} "
                    f"({cause.__class__.__name__}: {str(cause).splitlines()[0] if str(cause) else ''}); "
                    "check that they are plain text files"
                ) from None
            return {split: loaded[split]["text"] for split in files}
        _check_hub_reachable(self)
        loaded = datasets.load_dataset(self.hub_name, self.hub_config)
        aliases = {"validation": ("validation", "valid", "dev")}
        lines = {}
        for split in SPLITS:
            name = next((a for a in aliases.get(split, (split,)) if a in loaded), None)
            if name is None:
                continue
            if self.text_column not in loaded[name].column_names:
                raise DataError(
                    f"hub dataset {self.hub_name} has no column '{self.text_column}' "
                    f"(columns: {loaded[name].column_names}); set data.text_column"
                )
            lines[split] = loaded[name][self.text_column]
        return lines


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


def build_corpus(
    source: CorpusSource,
    tokenizer: str = "word",
    vocabulary: list[str] | None = None,
    cache_dir: str | None = None,
) -> Corpus:
    """Token ids for every split, from the on-disk cache when the same text was tokenized the same way before.

    `vocabulary` fixes the token ids (a checkpoint's, say); tokens outside it become `<unk>` when the
    vocabulary has one, else the corpus is rejected.
    """
    if tokenizer not in TOKENIZERS:
        raise ConfigError(f"data.tokenizer={tokenizer!r} is not one of {list(TOKENIZERS)}")
    key = {"source": source.fingerprint(), "tokenizer": tokenizer, "format": CACHE_FORMAT}
    if vocabulary is not None:
        key["vocabulary"] = hashlib.sha256("\n".join(vocabulary).encode()).hexdigest()
    cache_file = None
    if cache_dir:
        digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
        cache_file = Path(cache_dir) / f"corpus-{digest}.pt"
        if cache_file.is_file():
            try:
                cached = torch.load(cache_file, weights_only=True)
                return Corpus(vocabulary=cached["vocabulary"], splits=cached["splits"])
            except Exception:  # cut short outside seqlab (a full disk, a partial copy): tokenize again, replace it
                pass

    corpus = _tokenize(source.load_lines(), tokenizer, vocabulary)
    if cache_file is not None:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        partial = cache_file.with_suffix(f".{os.getpid()}.tmp")
        torch.save({"vocabulary": corpus.vocabulary, "splits": corpus.splits}, partial)
        os.replace(partial, cache_file)  # atomic: a killed run never leaves a half-written cache
    return corpus


def _tokenize(lines: dict[str, list[str]], tokenizer: str, vocabulary: list[str] | None) -> Corpus:
    tokens = {split: [t for line in split_lines for t in tokenize(line, tokenizer)] for split, split_lines in lines.items()}
    if vocabulary is None:
        vocabulary = list(dict.fromkeys(t for split in SPLITS if split in tokens for t in tokens[split]))
    index = {token: i for i, token in enumerate(vocabulary)}
    unk = index.get(UNK)
    splits = {}
    for split, split_tokens in tokens.items():
        ids = [index.get(t, unk) for t in split_tokens]
        if unk is None and None in ids:
            unknown = sorted({t for t in split_tokens if t not in index})
            raise DataError(
                f"{len(unknown)} token(s) of the {split} split are not in the vocabulary and it has no {UNK} "
                f"(first: {unknown[:5]}); evaluate on text tokenized like the training corpus"
            )
        splits[split] = torch.tensor(ids, dtype=torch.long)
    return Corpus(vocabulary=list(vocabulary), splits=splits)
