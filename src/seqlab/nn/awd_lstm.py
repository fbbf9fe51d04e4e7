"""AWD-LSTM (Merity, Keskar & Socher, 2018): an LSTM language model regularised where an LSTM overfits.

- Weight drop: DropConnect on each layer's hidden-to-hidden matrix, one mask per forward pass (every time step
  of the pass sees the same dropped matrix). The dropped matrix is handed to PyTorch's own LSTM as its weight,
  so the fused kernel (oneDNN on a CPU, cuDNN on a GPU) still runs the recurrence.
- Locked (variational) dropout: one mask per sequence, shared by all its time steps, on the embedding's output,
  between layers and on the last layer's output.
- Embedding dropout: whole words dropped from the vocabulary for a pass (rows of the embedding matrix), the rest
  scaled up, so a dropped word is missing at every position it appears in.
- Tied weights, the last layer sized to the embedding so the decoder can share the embedding matrix.

- Activation regularisation (AR) and temporal activation regularisation (TAR) of the last layer's outputs, which
  `regularization()` returns from the latest pass and the training logic adds to the loss.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from seqlab.errors import ConfigError

State = list[tuple[torch.Tensor, torch.Tensor]]


def locked_dropout(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """x [batch, time, features] with one dropout mask per sequence, the same at every time step."""
    if not training or p == 0:
        return x
    mask = x.new_empty(x.shape[0], 1, x.shape[2]).bernoulli_(1 - p) / (1 - p)
    return x * mask


def embedding_dropout(embedding: nn.Embedding, tokens: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """Look `tokens` up with whole rows of the embedding dropped (one mask per word of the vocabulary)."""
    weight = embedding.weight
    if training and p > 0:
        mask = weight.new_empty(weight.shape[0], 1).bernoulli_(1 - p) / (1 - p)
        weight = weight * mask
    return F.embedding(tokens, weight)


class WeightDroppedLSTM(nn.Module):
    """One LSTM layer whose hidden-to-hidden matrix is dropped (DropConnect) once per forward pass."""

    def __init__(self, input_size: int, hidden_size: int, weight_dropout: float) -> None:
        super().__init__()
        self.lstm = nn.LSTM(input_size, hidden_size, batch_first=True)
        self.weight_dropout = weight_dropout
        # The trained matrix lives here; the LSTM's own `weight_hh_l0` is set to its dropped copy at each pass.
        self.weight_hh_raw = nn.Parameter(self.lstm.weight_hh_l0.detach().clone())
        del self.lstm.weight_hh_l0
        self.lstm.weight_hh_l0 = self.weight_hh_raw.detach().clone()

    def forward(self, x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor] | None = None):
        # RNNBase.__setattr__ puts the new tensor among the weights the fused kernel reads. A view, never the
        # Parameter itself (what dropout returns when it drops nothing), which would register it with the LSTM.
        raw = self.weight_hh_raw.view_as(self.weight_hh_raw)
        self.lstm.weight_hh_l0 = F.dropout(raw, self.weight_dropout, self.training)
        return self.lstm(x, state)


class AWDLSTM(nn.Module):
    def __init__(
        self,
        vocab_size: int,
        embedding_dim: int = 400,
        hidden_dim: int = 1150,
        num_layers: int = 3,
        dropout: float = 0.4,  # locked dropout on the last layer's output (the paper's dropout)
        dropout_hidden: float = 0.25,  # locked dropout between layers (dropouth)
        dropout_input: float = 0.4,  # locked dropout on the embedding's output (dropouti)
        dropout_embedding: float = 0.1,  # whole words (dropoute)
        weight_dropout: float = 0.5,  # DropConnect on the hidden-to-hidden matrices (wdrop)
        tie_weights: bool = True,
        activation_penalty: float = 2.0,  # AR: alpha
        temporal_penalty: float = 1.0,  # TAR: beta
    ) -> None:
        super().__init__()
        for name, p in (("dropout", dropout), ("dropout_hidden", dropout_hidden), ("dropout_input", dropout_input),
                        ("dropout_embedding", dropout_embedding), ("weight_dropout", weight_dropout)):
            if not 0 <= p < 1:
                raise ConfigError(f"model.net.{name}={p} must be in [0, 1)")
        if num_layers < 1:
            raise ConfigError(f"model.net.num_layers={num_layers} must be at least 1")
        for name, weight in (("activation_penalty", activation_penalty), ("temporal_penalty", temporal_penalty)):
            if weight < 0:
                raise ConfigError(f"model.net.{name}={weight} must be >= 0 (0: none)")
        self.activation_penalty, self.temporal_penalty = activation_penalty, temporal_penalty
        self.dropout, self.dropout_hidden, self.dropout_input = dropout, dropout_hidden, dropout_input
        self.dropout_embedding = dropout_embedding
        self.embedding = nn.Embedding(vocab_size, embedding_dim)
        # With tied weights the last layer's output is the embedding's size, so the decoder can be its transpose.
        sizes = [embedding_dim] + [hidden_dim] * (num_layers - 1) + [embedding_dim if tie_weights else hidden_dim]
        self.layers = nn.ModuleList(
            WeightDroppedLSTM(sizes[i], sizes[i + 1], weight_dropout) for i in range(num_layers)
        )
        self.decoder = nn.Linear(sizes[-1], vocab_size)
        nn.init.uniform_(self.embedding.weight, -0.1, 0.1)
        nn.init.zeros_(self.decoder.bias)
        if tie_weights:
            self.decoder.weight = self.embedding.weight
        else:
            nn.init.uniform_(self.decoder.weight, -0.1, 0.1)
        self.last_outputs: tuple[torch.Tensor, torch.Tensor] | None = None  # (raw, dropped) of the last layer

    def forward(self, tokens: torch.Tensor, state: State | None = None) -> tuple[torch.Tensor, State]:
        """tokens [batch, time] -> logits [batch, time, vocab], and each layer's (h, c) to carry on."""
        x = embedding_dropout(self.embedding, tokens, self.dropout_embedding, self.training)
        x = locked_dropout(x, self.dropout_input, self.training)
        new_state = []
        for i, layer in enumerate(self.layers):
            x, layer_state = layer(x, state[i] if state is not None else None)
            new_state.append(layer_state)
            if i < len(self.layers) - 1:
                x = locked_dropout(x, self.dropout_hidden, self.training)
        dropped = locked_dropout(x, self.dropout, self.training)
        self.last_outputs = (x, dropped)
        return self.decoder(dropped), new_state

    def regularization(self) -> torch.Tensor:
        """AR and TAR of the latest pass, added to the training loss: the last layer's dropped outputs kept small
        (activation_penalty * mean h^2) and its raw outputs kept smooth in time (temporal_penalty * mean of
        (h_t - h_{t-1})^2)."""
        raw, dropped = self.last_outputs
        return (self.activation_penalty * dropped.pow(2).mean()
                + self.temporal_penalty * (raw[:, 1:] - raw[:, :-1]).pow(2).mean())
