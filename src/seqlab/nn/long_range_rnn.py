"""One recurrent layer and a linear readout: the smallest net that can show whether a cell remembers.

The readout reads the last step (`readout="last"`: one answer per sequence, the adding problem) or every step
(`readout="every"`: one answer per step, the copy task). Integer inputs are token ids, fed one-hot.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from seqlab.errors import ConfigError
from seqlab.nn.cells import CELLS

READOUTS = ("last", "every")


def set_forget_bias(lstm: nn.LSTM, value: float) -> None:
    """Start every forget gate at sigmoid(value): with value 1, the cell keeps most of its memory from the first
    step (Gers et al. 2000; Jozefowicz et al. 2015; Keras's `unit_forget_bias`). PyTorch's gate order is
    input, forget, cell, output, and the two bias vectors add up, so b_ih carries the value and b_hh zero."""
    hidden = lstm.hidden_size
    with torch.no_grad():
        for name, bias in lstm.named_parameters():
            if name.startswith("bias_"):
                bias[hidden : 2 * hidden] = value if name.startswith("bias_ih") else 0.0


class LongRangeRNN(nn.Module):
    def __init__(self, n_inputs: int, n_outputs: int, hidden_dim: int = 128, cell: str = "lstm",
                 readout: str = "last", forget_bias: float | None = None) -> None:
        super().__init__()
        if cell not in CELLS:
            raise ConfigError(f"model.net.cell={cell} is not one of {', '.join(CELLS)}")
        if readout not in READOUTS:
            raise ConfigError(f"readout={readout} is not one of {', '.join(READOUTS)}")
        if hidden_dim < 1:
            raise ConfigError(f"model.net.hidden_dim={hidden_dim} must be a positive integer")
        self.n_inputs, self.readout, self.cell_name, self.hidden_dim = n_inputs, readout, cell, hidden_dim
        if forget_bias is not None and cell != "lstm":
            raise ConfigError(f"model.net.forget_bias applies to cell=lstm only, not {cell}: set it to null")
        self.cell = CELLS[cell](n_inputs, hidden_dim, batch_first=True)
        if forget_bias is not None:
            set_forget_bias(self.cell, forget_bias)
        self.out = nn.Linear(hidden_dim, n_outputs)

    def inputs(self, x: torch.Tensor) -> torch.Tensor:
        return x if x.is_floating_point() else F.one_hot(x, self.n_inputs).float()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[B, n_outputs] (last) or [B, L, n_outputs] (every) from x [B, L, n_inputs] or token ids [B, L]."""
        hidden, _ = self.cell(self.inputs(x))
        return self.out(hidden[:, -1] if self.readout == "last" else hidden)

    def forward_stepwise(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """The same outputs as `forward`, one step at a time, and each step's hidden state h_t [1, B, H].

        Each h_t is the very tensor the next step reads, so a gradient taken with respect to it counts every
        path from h_t to the loss, through later steps included (the fused cell's output sequence does not:
        the recurrence inside it never reads that tensor).
        """
        inputs = self.inputs(x)
        state, states = None, []
        for t in range(inputs.shape[1]):
            _, state = self.cell(inputs[:, t : t + 1], state)
            states.append(state[0] if isinstance(state, tuple) else state)  # an LSTM's state is (h, c)
        if self.readout == "last":
            return self.out(states[-1][0]), states
        return self.out(torch.cat(states).transpose(0, 1)), states
