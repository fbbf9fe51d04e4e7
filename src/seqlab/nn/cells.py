"""The recurrent cells a config can name (`model.net.cell`, a forecaster's `model.cell`), shared by every net.

PyTorch's own LSTM, GRU and Elman RNN, and xLSTM's sLSTM (seqlab/nn/slstm.py), with one change: under CPU autocast (`precision=bf16-mixed`
on a CPU) the recurrence runs in fp32, because oneDNN has no bf16 LSTM kernel for most CPUs and
fails outright. Everything around it (embeddings, projections) still runs in bf16; on GPUs cuDNN
runs the cell in bf16 as usual.
"""

from __future__ import annotations

import torch
from torch import nn

from seqlab.nn import slstm


class _FP32OnCPUAutocast:
    def forward(self, input, hx=None):
        if input.device.type == "cpu" and torch.is_autocast_enabled("cpu"):
            with torch.autocast("cpu", enabled=False):
                return super().forward(input.float(), hx)
        return super().forward(input, hx)


class LSTM(_FP32OnCPUAutocast, nn.LSTM):
    pass


class GRU(_FP32OnCPUAutocast, nn.GRU):
    pass


class RNN(_FP32OnCPUAutocast, nn.RNN):
    pass


class SLSTM(_FP32OnCPUAutocast, slstm.SLSTM):
    pass


CELLS = {"lstm": LSTM, "gru": GRU, "rnn": RNN, "slstm": SLSTM}
