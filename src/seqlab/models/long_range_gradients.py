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

    Works inside a test or validation pass too: gradients are switched back on, the weights left untouched. A run
    that flushes denormal floats to zero (`flush_denormal`, for speed) keeps them here: the tail of a vanishing
    gradient is below 1e-38, and it is what this measures.
    """
    flushed = denormals_flushed()
    torch.set_flush_denormal(False)
    try:
        with torch.inference_mode(False), torch.enable_grad():
            x, y = x.clone(), y.clone()  # tensors made under inference mode cannot enter a graph
            output, states = net.forward_stepwise(x)
            total = sequence_losses(output, y).sum()
            grads = torch.autograd.grad(total, states)
        norms = torch.stack([g[0].double().norm(dim=-1).mean() for g in grads])  # g: [1, B, H]
    finally:
        torch.set_flush_denormal(flushed)
    return norms.detach().cpu().numpy()


def denormals_flushed() -> bool:
    """Whether the CPU now flushes denormal floats to zero (torch.set_flush_denormal has no getter)."""
    return float(torch.tensor(1e-39) * 2.0) == 0.0
