"""A token stream cut into fixed-length windows: the classic Keras formulation of language modelling.

Example i predicts token `max_length + i` of the split from the `max_length` tokens before it; no state
passes between examples, so they may be shuffled. The first `max_length` tokens of a split have no full
window and are never targets (no left padding: the vocabulary has no padding token, and a padded window
would be a context the model never sees in training); every other token is the target of exactly one
window, so perplexity = exp(mean NLL over the split's tokens from position `max_length` on).

Nothing is copied up front: the windows are views into the 1-D token tensor (memory-mapped for a cached
corpus), gathered a batch at a time.
"""

from __future__ import annotations

import torch
from torch.utils.data import Dataset

# How TextDataModule batches a split (`data.mode`); here, not in text.py, so that checking a config does not
# import Lightning. stream: BPTT columns, the state carried from batch to batch (model=lstm, `stream.py`);
# windows: every token predicted from the `data.max_length` tokens before it, no state (model=keras_lstm).
MODES = ("stream", "windows")


class TokenWindows(Dataset):
    """Item i: (inputs [max_length], target [1]) = (tokens[i : i + max_length], tokens[i + max_length])."""

    def __init__(self, tokens: torch.Tensor, max_length: int) -> None:
        if tokens.dim() != 1 or not 1 <= max_length < tokens.numel():
            raise ValueError(f"windows of {max_length} tokens need a 1-D tensor longer than that")
        self.tokens, self.max_length = tokens, max_length

    def __len__(self) -> int:
        return self.tokens.numel() - self.max_length

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        inputs, targets = self.__getitems__([index])
        return inputs[0], targets[0]

    def __getitems__(self, indices: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """A whole batch in one gather (the DataLoader calls this instead of one item at a time)."""
        starts = torch.as_tensor(indices, dtype=torch.long)
        if starts.numel() and (starts.min() < 0 or starts.max() >= len(self)):
            raise IndexError(f"window index out of range [0, {len(self)})")
        positions = starts[:, None] + torch.arange(self.max_length + 1)
        window = self.tokens[positions].long()
        return window[:, :-1], window[:, -1:]


def batch_as_is(batch: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """The collate function for `TokenWindows.__getitems__`, which already returns a batch."""
    return batch
