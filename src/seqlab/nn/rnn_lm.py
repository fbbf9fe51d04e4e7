"""A recurrent language model: embedding -> LSTM (or GRU, or Elman RNN) -> linear to the vocabulary.

The shape of the classic Keras text-generation example and of pytorch/examples' `RNNModel`, with the
same initialisation, so published small-LSTM recipes carry over.
"""

from __future__ import annotations

import torch
from torch import nn

from seqlab.errors import ConfigError
from seqlab.nn.cells import CELLS

State = torch.Tensor | tuple[torch.Tensor, torch.Tensor]


class RNNLanguageModel(nn.Module):
    def __init__(
        self,
        vocab_size: int,
        embedding_dim: int = 200,
        hidden_dim: int = 200,
        num_layers: int = 2,
        dropout: float = 0.2,
        tie_weights: bool = False,
        cell: str = "lstm",
    ) -> None:
        super().__init__()
        if cell not in CELLS:
            raise ConfigError(f"model.net.cell={cell!r} is not one of {list(CELLS)}")
        if tie_weights and hidden_dim != embedding_dim:
            raise ConfigError(
                f"model.net.tie_weights needs hidden_dim == embedding_dim (got {hidden_dim} and {embedding_dim})"
            )
        if not 0 <= dropout < 1:
            raise ConfigError(f"model.net.dropout must be in [0, 1), got {dropout}")
        self.dropout = nn.Dropout(dropout)
        self.embedding = nn.Embedding(vocab_size, embedding_dim)
        # Between-layer dropout only exists for stacks; PyTorch warns if it is set on one layer.
        self.rnn = CELLS[cell](
            embedding_dim, hidden_dim, num_layers, dropout=dropout if num_layers > 1 else 0.0, batch_first=True
        )
        self.decoder = nn.Linear(hidden_dim, vocab_size)
        if tie_weights:
            # Press & Wolf (2017): one matrix for input and output embeddings; fewer parameters, lower perplexity.
            self.decoder.weight = self.embedding.weight
        nn.init.uniform_(self.embedding.weight, -0.1, 0.1)
        nn.init.zeros_(self.decoder.bias)
        if not tie_weights:
            nn.init.uniform_(self.decoder.weight, -0.1, 0.1)

    def forward(self, tokens: torch.Tensor, state: State | None = None) -> tuple[torch.Tensor, State]:
        """tokens [batch, time] -> logits [batch, time, vocab], and the state to carry into the next batch."""
        embedded = self.dropout(self.embedding(tokens))
        output, state = self.rnn(embedded, state)
        return self.decoder(self.dropout(output)), state


def detach_state(state):
    """Cut the graph between batches: gradients stop at the batch boundary (truncated BPTT). Any nesting of
    tuples and lists of tensors (an LSTM's (h, c), an AWD-LSTM's per-layer list of them); a stateless net
    (seqlab.nn.window_lm) returns None, and there is nothing to carry."""
    if state is None:
        return None
    if isinstance(state, (tuple, list)):
        return type(state)(detach_state(s) for s in state)
    return state.detach()
