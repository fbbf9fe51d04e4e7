"""Model FLOPs of one training step, counted by hand, and the machine's dense matmul peak, measured.

Conventions (model FLOPs, as in MFU): a multiply-add is 2 FLOPs; the backward pass of a matmul costs
twice its forward, so training is 3x the forward matmuls. Counted: the LSTM's input and recurrent
matmuls (2 * 4 * h * (in + h) per layer per step), linear layers, and the softmax / cross-entropy over
the vocabulary (5 V forward: max, subtract, exp, sum, log; 3 V backward). Not counted: the embedding
(a gather, 0 FLOPs), the gates' elementwise products, dropout, biases, normalisation.
"""

from __future__ import annotations

import math
import time

import torch


def lstm_flops(in_dim: int, hidden_dim: int, num_layers: int) -> int:
    """Forward FLOPs of one time step of a stacked LSTM, for one sequence."""
    inputs = [in_dim] + [hidden_dim] * (num_layers - 1)
    return sum(2 * 4 * hidden_dim * (width + hidden_dim) for width in inputs)


def lm_flops_per_token(vocab_size: int, embedding_dim: int, hidden_dim: int, num_layers: int) -> int:
    """Training FLOPs per token of embedding -> LSTM -> linear to the vocabulary -> softmax cross-entropy."""
    matmuls = lstm_flops(embedding_dim, hidden_dim, num_layers) + 2 * hidden_dim * vocab_size
    return 3 * matmuls + (5 + 3) * vocab_size


def forecaster_flops_per_window(
    n_channels: int, lookback: int, horizon: int, hidden_dim: int, num_layers: int,
    segment_length: int | None, channel_independent: bool,
) -> int:
    """Training FLOPs per window of `nn.lstm_forecaster.LSTMForecaster` with the direct decoder and a point head."""
    streams, width = (n_channels, 1) if channel_independent else (1, n_channels)  # sequences per window, values per row
    step = segment_length or 1
    if segment_length:  # SegRNN: each segment embedded by a linear layer; every output segment is one LSTM step
        out_steps = math.ceil(horizon / step)
        encoder = lookback // step * (2 * step * width * hidden_dim + lstm_flops(hidden_dim, hidden_dim, num_layers))
        decoder = out_steps * (lstm_flops(hidden_dim, hidden_dim, num_layers) + 2 * hidden_dim * step * width)
    else:  # one LSTM step per row, then one linear map from the last state to every output step
        encoder = lookback * lstm_flops(width, hidden_dim, num_layers)
        decoder = 2 * hidden_dim * horizon * width
    return 3 * streams * (encoder + decoder)


def matmul_peak(device: torch.device, dtype: torch.dtype, size: int = 4096, repeats: int = 5) -> float:
    """FLOP/s of the best of `repeats` [size x size] @ [size x size] products: the peak MFU is measured against."""
    a = torch.randn(size, size, device=device).to(dtype)
    b = torch.randn(size, size, device=device).to(dtype)
    best = math.inf
    for i in range(repeats + 1):  # the first one warms up
        _sync(device)
        start = time.perf_counter()
        a @ b
        _sync(device)
        if i:
            best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
