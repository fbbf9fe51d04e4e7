"""The token stream laid out for truncated backpropagation through time.

This is the one place that knows the layout (pytorch/examples' `batchify`, without dropping the tail):
the N - 1 (input, next token) pairs of a stream are cut into `batch_size * world_size` contiguous
columns of equal length; each process takes its own `batch_size` neighbouring columns, and batch k
holds time steps [k * bptt, (k + 1) * bptt) of every column, so the hidden state left by batch k is the
right start for batch k + 1. The tail (of the last column, or of the last few in a short stream) is
padded with `ignore_index` targets, so every pair is scored exactly once whatever the batch size, and every
process sees the same number of batches.

With `variable_bptt` the training stream is cut at random lengths instead (AWD-LSTM, Merity et al. 2018): each
batch is `bptt` long with probability 0.95 and `bptt / 2` otherwise, plus normal noise of standard deviation 5,
at least 5 steps. Every epoch cuts the stream at new places, so no token is always the first of its window.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch
from torch.utils.data import IterableDataset

IGNORE_INDEX = -100
FULL_LENGTH_PROBABILITY, LENGTH_STD, MIN_LENGTH = 0.95, 5.0, 5  # AWD-LSTM's variable BPTT


def variable_lengths(total: int, bptt: int) -> list[int]:
    """Batch lengths that cover `total` steps, drawn from torch's global generator (seeded by the run, and saved
    and restored by a resumed run, so a resumed epoch is cut at the same places): the last one is what is left."""
    lengths, covered = [], 0
    while covered < total:
        mean = bptt if float(torch.rand(())) < FULL_LENGTH_PROBABILITY else bptt / 2
        length = max(MIN_LENGTH, int(torch.normal(mean, LENGTH_STD, ())))
        lengths.append(min(length, total - covered))
        covered += lengths[-1]
    return lengths


class TokenStream(IterableDataset):
    """Yields `(inputs, targets)` of shape [batch_size, <= bptt], in stream order.

    Iterable on purpose: Lightning leaves iterable datasets unsampled, so no distributed sampler can
    shuffle or re-deal the columns; this class does the sharding itself.

    Nothing is copied up front: `tokens` may be memory-mapped (a cached corpus, 103 million tokens for
    WikiText-103) and each process reads only its own columns, a window at a time. A window inside the
    stream is a view of `tokens` (strided: one row per column); only windows that reach past the last pair
    are gathered and padded.
    """

    def __init__(
        self,
        tokens: torch.Tensor,
        batch_size: int,
        bptt: int,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        if tokens.dim() != 1 or tokens.numel() < 2:
            raise ValueError("a token stream needs a 1-D tensor of at least 2 tokens")
        self.tokens = tokens if tokens.is_contiguous() else tokens.contiguous()
        self.num_targets = tokens.numel() - 1  # (input, next token) pairs
        self.length = math.ceil(self.num_targets / (batch_size * world_size))  # steps per column
        self.first = rank * batch_size * self.length  # stream position of this rank's first column
        self.batch_size, self.bptt = batch_size, bptt

    def __len__(self) -> int:
        return math.ceil(self.length / self.bptt)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        start = 0
        for length in self.lengths():
            yield self._window(start, start + length)
            start += length

    def lengths(self) -> list[int]:
        """The length of each batch of one pass."""
        return [min(self.bptt, self.length - start) for start in range(0, self.length, self.bptt)]

    @property
    def inputs(self) -> torch.Tensor:
        """This rank's columns as one [batch_size, steps] tensor, the tail padded with 0 (a copy)."""
        return self._window(0, self.length)[0].clone()

    @property
    def targets(self) -> torch.Tensor:
        """The next tokens of `inputs`, the tail padded with IGNORE_INDEX (a copy)."""
        return self._window(0, self.length)[1].clone()

    def _window(self, start: int, stop: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Steps [start, stop) of this rank's columns: inputs and targets, [batch_size, stop - start]."""
        last_column = self.first + (self.batch_size - 1) * self.length
        if last_column + stop <= self.num_targets:  # every pair is in the stream: views, no copy
            shape, strides = (self.batch_size, stop - start), (self.length, 1)
            at = self.tokens.storage_offset() + self.first + start
            return self.tokens.as_strided(shape, strides, at), self.tokens.as_strided(shape, strides, at + 1)
        columns = self.first + torch.arange(self.batch_size) * self.length
        positions = columns[:, None] + torch.arange(start, stop)
        real = positions < self.num_targets
        at = positions.clamp(max=self.num_targets - 1)
        return torch.where(real, self.tokens[at], 0), torch.where(real, self.tokens[at + 1], IGNORE_INDEX)


class VariableTokenStream(TokenStream):
    """A TokenStream cut at new random lengths each pass (`variable_lengths`), for training.

    It has no length: the number of batches changes with each pass, and Lightning counts the batches of an
    unsized stream as they come (validation then runs at the end of each epoch).
    """

    __len__ = None  # type: ignore[assignment]

    def lengths(self) -> list[int]:
        # All of a pass's lengths are drawn before its first batch, so they do not depend on what else (dropout)
        # draws from the same generator between batches: a resumed epoch is cut at the same places.
        return variable_lengths(self.length, self.bptt)
