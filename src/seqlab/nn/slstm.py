"""sLSTM (Beck et al. 2024, "xLSTM", arXiv:2405.04517): an LSTM whose input gate is exponential, so a new input
can outweigh everything the cell holds, with a normaliser n that keeps the cell's output a weighted average, and a
stabiliser m (a running log-max) that keeps every exp() finite:

    m_t = max(log f_t + m_{t-1}, i~_t)       i_t = exp(i~_t - m_t)      f_t = exp(log f_t + m_{t-1} - m_t)
    c_t = f_t c_{t-1} + i_t z_t              n_t = f_t n_{t-1} + i_t    h_t = o_t c_t / n_t

with a sigmoid forget gate (log f_t = log sigmoid(f~_t)), z_t = tanh(z~_t) and o_t = sigmoid(o~_t). One head
(the paper's block-diagonal heads are left out). nn.LSTM's interface: (input, hx) -> (output, (h, c, n, m)), each
state [num_layers, batch, hidden], so any net of this project takes it as `cell: slstm`. The recurrence is a
Python loop over time steps: fine for a forecaster's few segment steps, slow over a language model's hundreds.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class SLSTMLayer(nn.Module):
    def __init__(self, input_size: int, hidden_size: int):
        super().__init__()
        self.hidden_size = hidden_size
        self.input = nn.Linear(input_size, 4 * hidden_size)  # i~, f~, z~, o~ from x_t
        self.recurrent = nn.Linear(hidden_size, 4 * hidden_size, bias=False)  # ... and from h_{t-1}
        bound = hidden_size**-0.5  # nn.LSTM's initialisation
        for weight in (self.input.weight, self.input.bias, self.recurrent.weight):
            nn.init.uniform_(weight, -bound, bound)

    def forward(self, x: torch.Tensor, state: tuple[torch.Tensor, ...]):
        """x [B, T, input] and (h, c, n, m) each [B, hidden] -> outputs [B, T, hidden] and the last state."""
        h, c, n, m = state
        inputs = self.input(x)  # all steps' input projections at once
        outputs = []
        for t in range(x.shape[1]):
            i_pre, f_pre, z_pre, o_pre = (inputs[:, t] + self.recurrent(h)).chunk(4, dim=-1)
            log_f = F.logsigmoid(f_pre)
            m_next = torch.maximum(log_f + m, i_pre)
            i, f = torch.exp(i_pre - m_next), torch.exp(log_f + m - m_next)
            c = f * c + i * torch.tanh(z_pre)
            n = f * n + i  # >= 1: m_t never exceeds the log of the unstabilised normaliser
            h = torch.sigmoid(o_pre) * c / n
            m = m_next
            outputs.append(h)
        return torch.stack(outputs, dim=1), (h, c, n, m)


class SLSTM(nn.Module):
    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, batch_first: bool = False,
                 dropout: float = 0.0):
        super().__init__()
        self.hidden_size, self.num_layers, self.batch_first = hidden_size, num_layers, batch_first
        self.layers = nn.ModuleList(
            SLSTMLayer(input_size if k == 0 else hidden_size, hidden_size) for k in range(num_layers)
        )
        self.dropout = nn.Dropout(dropout)  # between layers, as nn.LSTM

    def initial_state(self, batch: int, like: torch.Tensor) -> tuple[torch.Tensor, ...]:
        zeros = like.new_zeros(self.num_layers, batch, self.hidden_size)
        # m_0 = -inf: the first step's input gate is exactly 1 and its forget gate 0, so n_1 = 1.
        return zeros, zeros, zeros, torch.full_like(zeros, -torch.inf)

    def forward(self, input: torch.Tensor, hx: tuple[torch.Tensor, ...] | None = None):
        x = input if self.batch_first else input.transpose(0, 1)
        hx = self.initial_state(x.shape[0], x) if hx is None else hx
        last = []
        for k, layer in enumerate(self.layers):
            if k:
                x = self.dropout(x)
            x, state = layer(x, tuple(s[k] for s in hx))
            last.append(state)
        output = x if self.batch_first else x.transpose(0, 1)
        return output, tuple(torch.stack(parts) for parts in zip(*last))
