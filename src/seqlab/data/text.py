"""The datamodule of language modelling: a corpus (`corpus.py`) served as BPTT token streams (`stream.py`), or as
fixed-length windows each predicting its next token (`token_windows.py`, the classic Keras formulation)."""

from __future__ import annotations

import lightning as L
from torch.utils.data import DataLoader

from seqlab.data.corpus import Corpus, CorpusSource, build_corpus
from seqlab.data.pinned import pin_memory
from seqlab.data.resume import ResumesMidEpoch
from seqlab.data.stream import TokenStream, VariableTokenStream
from seqlab.data.token_windows import MODES, TokenWindows, batch_as_is
from seqlab.errors import ConfigError, DataError


class TextDataModule(ResumesMidEpoch, L.LightningDataModule):
    """Any text corpus, local or from the hub, word- or character-level.

    When only a training file is given, validation and test are carved off its end (contiguously, so
    the stream stays in order) by `val_fraction` and `test_fraction`. `encoding` is the local files'.
    `num_proc` processes tokenize (None: one per 32 MB of text, up to one per core); with a `cache_dir`
    the token ids are memory-mapped, so a corpus larger than memory trains, and DDP ranks share one copy.
    `mode` picks the batching: `stream` (`bptt`; `variable_bptt` cuts training batches at random lengths around
    it, AWD-LSTM's, see `stream.py`) or `windows` (`max_length`; the first `max_length` tokens of
    each split are context only, never targets: see `token_windows.py`).
    """

    def __init__(
        self,
        hub_name: str | None = None,
        hub_config: str | None = None,
        text_column: str = "text",
        data_dir: str | None = None,
        files: dict[str, str] | None = None,
        tokenizer: str = "word",
        batch_size: int = 20,
        eval_batch_size: int = 10,
        bptt: int = 35,
        val_fraction: float = 0.05,
        test_fraction: float = 0.05,
        cache_dir: str | None = None,
        vocabulary: list[str] | None = None,
        encoding: str = "utf-8",
        num_proc: int | None = None,
        mode: str = "stream",
        max_length: int = 35,
        variable_bptt: bool = False,
    ) -> None:
        super().__init__()
        if mode not in MODES:
            raise ConfigError(f"data.mode={mode!r} is not one of {list(MODES)}")
        sizes = (("batch_size", batch_size), ("eval_batch_size", eval_batch_size), ("bptt", bptt),
                 ("max_length", max_length))
        for name, value in sizes:
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"data.{name} must be a positive integer, got {value!r}")
        if not (0 <= val_fraction < 1 and 0 <= test_fraction < 1 and val_fraction + test_fraction < 1):
            raise ConfigError("data.val_fraction and data.test_fraction must be in [0, 1) and sum below 1")
        if variable_bptt and mode != "stream":
            raise ConfigError("data.variable_bptt cuts a BPTT stream: it needs data.mode=stream, or set it to false")
        files = dict(files) if files else None
        self.source = CorpusSource(hub_name, hub_config, text_column, data_dir, files, encoding)
        self.tokenizer = tokenizer
        self.batch_size, self.eval_batch_size, self.bptt = batch_size, eval_batch_size, bptt
        self.mode, self.max_length, self.variable_bptt = mode, max_length, variable_bptt
        self.val_fraction, self.test_fraction = val_fraction, test_fraction
        self.cache_dir, self.num_proc = cache_dir, num_proc
        self.fixed_vocabulary = vocabulary
        self.corpus: Corpus | None = None

    def prepare_data(self) -> None:
        # Runs on one process: downloads and fills the token cache that setup() then reads on every
        # process. Without a cache there is nothing to share, and setup() does the work once.
        if self.cache_dir:
            build_corpus(self.source, self.tokenizer, self.fixed_vocabulary, self.cache_dir, self.num_proc)

    def setup(self, stage: str | None = None) -> None:
        if self.corpus is None:
            corpus = build_corpus(self.source, self.tokenizer, self.fixed_vocabulary, self.cache_dir, self.num_proc)
            self.corpus = _carve_missing_splits(corpus, self.val_fraction, self.test_fraction)

    @property
    def vocabulary(self) -> list[str]:
        assert self.corpus is not None, "call setup() first"
        return self.corpus.vocabulary

    def model_kwargs(self) -> dict:
        """What the model must learn from the data rather than from a config."""
        return {"vocab_size": len(self.vocabulary), "vocabulary": self.vocabulary, "tokenizer": self.tokenizer}

    def _loader(self, split: str, batch_size: int) -> DataLoader:
        assert self.corpus is not None, "call setup() first"
        tokens = self.corpus.splits[split]
        rank, world_size = (self.trainer.global_rank, self.trainer.world_size) if self.trainer else (0, 1)
        if self.mode == "windows":
            return self._window_loader(split, tokens, batch_size)
        if tokens.numel() - 1 < batch_size * world_size:
            raise ConfigError(
                f"the {split} split has {tokens.numel()} tokens, too few for {batch_size * world_size} columns; "
                "lower data.batch_size / data.eval_batch_size"
            )
        variable = self.variable_bptt and split == "train"  # validation and test are always cut every bptt steps
        stream = (VariableTokenStream if variable else TokenStream)(tokens, batch_size, self.bptt, rank, world_size)
        pin = pin_memory(self.trainer)
        if split == "train":  # a killed run resumes mid-stream
            return self.resumable_loader(stream, batch_size=None, pin_memory=pin)
        return DataLoader(stream, batch_size=None, pin_memory=pin)  # each item is already a batch, in stream order

    def _window_loader(self, split: str, tokens, batch_size: int) -> DataLoader:
        """Training shuffles the windows (from the global, seeded generator; resumable mid-epoch), validation and
        test take them in order, each exactly once across processes."""
        if tokens.numel() <= self.max_length:
            raise ConfigError(
                f"data.max_length={self.max_length} leaves no window in the {split} split ({tokens.numel()} tokens); "
                f"set data.max_length below {tokens.numel()}"
            )
        return self.map_loader(split, TokenWindows(tokens, self.max_length), batch_size, collate_fn=batch_as_is)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", self.batch_size)

    def val_dataloader(self) -> DataLoader:
        return self._loader("validation", self.eval_batch_size)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", self.eval_batch_size)


def _carve_missing_splits(corpus: Corpus, val_fraction: float, test_fraction: float) -> Corpus:
    """Cut validation and test off the end of the training stream when the source has none."""
    splits = dict(corpus.splits)
    wanted = [(name, frac) for name, frac in (("validation", val_fraction), ("test", test_fraction)) if name not in splits]
    if not wanted:
        return corpus
    train = splits["train"]
    sizes = [int(len(train) * frac) for _, frac in wanted]
    if any(size < 2 for size in sizes):
        missing = " and ".join(name for name, _ in wanted)
        raise DataError(
            f"the corpus has no {missing} split and a {len(train)}-token training file is too short to carve one; "
            "give data.files.validation / data.files.test or raise data.val_fraction / data.test_fraction"
        )
    end = len(train)
    for (name, _), size in reversed(list(zip(wanted, sizes))):
        splits[name] = train[end - size : end]
        end -= size
    splits["train"] = train[:end]
    return Corpus(vocabulary=corpus.vocabulary, splits=splits)
