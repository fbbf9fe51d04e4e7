"""The vanishing gradient, measured: how much each time step's hidden state can still change the loss.

For a batch, ||d loss_b / d h_t|| for every step t, averaged over the sequences b of the batch (each sequence's
own loss, so the figure does not shrink with the batch size). A plain RNN's curve falls geometrically going back
from the steps the loss reads; a gated cell's can stay flat. The figure is what a step far back gets to learn from.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from seqlab.nn.long_range_rnn import LongRangeRNN


def hidden_gradient_norms(
    net: LongRangeRNN,
    sequence_losses: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    y: torch.Tensor,
) -> np.ndarray:
    """[L] mean over the batch of ||d loss_b / d h_t||; `sequence_losses(output, y)` gives each sequence's loss [B].

    Works inside a test or validation pass too: gradients are switched back on, the weights left untouched.
    """
    with torch.inference_mode(False), torch.enable_grad():
        x, y = x.clone(), y.clone()  # tensors made under inference mode cannot enter a graph
        output, states = net.forward_stepwise(x)
        total = sequence_losses(output, y).sum()
        grads = torch.autograd.grad(total, states)
    norms = torch.stack([g[0].float().norm(dim=-1).mean() for g in grads])  # g: [1, B, H]
    return norms.detach().cpu().numpy()
