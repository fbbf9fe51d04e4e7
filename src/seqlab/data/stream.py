"""The token stream laid out for truncated backpropagation through time.

This is the one place that knows the layout (pytorch/examples' `batchify`, without dropping the tail):
the N - 1 (input, next token) pairs of a stream are cut into `batch_size * world_size` contiguous
columns of equal length; each process takes its own `batch_size` neighbouring columns, and batch k
holds time steps [k * bptt, (k + 1) * bptt) of every column, so the hidden state left by batch k is the
right start for batch k + 1. The last column is padded with `ignore_index` targets, so every pair is
scored exactly once whatever the batch size, and every process sees the same number of batches.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch.utils.data import IterableDataset

IGNORE_INDEX = -100


class TokenStream(IterableDataset):
    """Yields `(inputs, targets)` of shape [batch_size, <= bptt], in stream order.

    Iterable on purpose: Lightning leaves iterable datasets unsampled, so no distributed sampler can
    shuffle or re-deal the columns; this class does the sharding itself.
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
        columns = batch_size * world_size
        inputs, targets = tokens[:-1], tokens[1:]
        self.num_targets = targets.numel()
        length = math.ceil(self.num_targets / columns)
        pad = length * columns - self.num_targets
        inputs = F.pad(inputs, (0, pad), value=0).view(columns, length)
        targets = F.pad(targets, (0, pad), value=IGNORE_INDEX).view(columns, length)
        share = slice(rank * batch_size, (rank + 1) * batch_size)
        self.inputs, self.targets = inputs[share], targets[share]
        self.bptt = bptt

    def __len__(self) -> int:
        return math.ceil(self.inputs.shape[1] / self.bptt)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for start in range(0, self.inputs.shape[1], self.bptt):
            stop = start + self.bptt
            yield self.inputs[:, start:stop], self.targets[:, start:stop]
