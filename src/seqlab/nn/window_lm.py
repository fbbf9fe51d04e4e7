"""The classic Keras language model: Embedding(vocab, embedding_dim, input_length=max_length) -> LSTM(hidden_dim)
-> Dense(vocab, softmax), one next word predicted from each window of `data.mode=windows`.

Kept beside the stream net (`rnn_lm.py`) so that what carrying the state buys can be measured: this net starts
every window from a zero state and forgets it afterwards. The softmax is left to the cross-entropy, which
computes what Keras' softmax + categorical_crossentropy does, in one stable step. Keras' initialisation of the
embedding (uniform +-0.05) and of the Dense layer (Glorot uniform, zero bias); the LSTM keeps PyTorch's.
"""

from __future__ import annotations

import torch
from torch import nn

from seqlab.errors import ConfigError
from seqlab.nn.cells import CELLS
from seqlab.nn.rnn_lm import State


class WindowLanguageModel(nn.Module):
    def __init__(
        self,
        vocab_size: int,
        embedding_dim: int = 100,
        hidden_dim: int = 100,
        cell: str = "lstm",
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if cell not in CELLS:
            raise ConfigError(f"model.net.cell={cell!r} is not one of {list(CELLS)}")
        if not 0 <= dropout < 1:
            raise ConfigError(f"model.net.dropout must be in [0, 1), got {dropout}")
        self.embedding = nn.Embedding(vocab_size, embedding_dim)
        self.rnn = CELLS[cell](embedding_dim, hidden_dim, 1, batch_first=True)
        self.dropout = nn.Dropout(dropout)
        self.decoder = nn.Linear(hidden_dim, vocab_size)
        nn.init.uniform_(self.embedding.weight, -0.05, 0.05)
        nn.init.xavier_uniform_(self.decoder.weight)
        nn.init.zeros_(self.decoder.bias)

    def forward(self, tokens: torch.Tensor, state: State | None = None) -> tuple[torch.Tensor, None]:
        """tokens [batch, max_length] -> logits [batch, 1, vocab] for the token after each window, and no state:
        `state` (what the module carries for a stream net) is ignored, every window starts from zeros."""
        output, _ = self.rnn(self.embedding(tokens))
        return self.decoder(self.dropout(output[:, -1:])), None
