"""An LSTM forecaster: read the lookback window, predict the next `horizon` steps.

Its strong setting is SegRNN (Lin et al. 2023, arXiv:2308.11200): channel independence,
segment-wise steps, RevIN, and parallel multi-step decoding, where every output segment is
decoded in ONE batched RNN step from the final state plus a learned position (and channel)
embedding. The other options are there to measure what each of those ideas buys.

Two ideas of the strongest recurrent forecasters are options: `segment_stride` below `segment_length` makes the
segments overlap (PatchTST's patches, Nie et al. 2023), and `linear_base` adds xLSTM-Mixer's first stage (Kraus
et al. 2024): a linear forecast from the window, shared by every channel, which the LSTM then corrects. The cell
can be xLSTM's sLSTM (`cell: slstm`).

`cycle_length` adds CycleNet's residual cycle forecasting (Lin et al., NeurIPS 2024): a learned
periodic profile (one value per phase and channel, e.g. 24 for the daily cycle of hourly data) is
taken out of the window before the net sees it and put back into the forecast at the phases it
covers. The net then forecasts only what the cycle does not explain. Each window's phase comes from
its first row in the file, which the data modules pass with every window.

Shapes: B batch, L lookback, H horizon, C channels, d hidden size, W steps per RNN step
(the segment length, 1 without segments), S streams: the sequences the RNN runs over, one per
window (B), or one per variable of each window when channel-independent (B*C).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from seqlab.errors import ConfigError
from seqlab.nn.cells import CELLS
from seqlab.nn.forecast_heads import make_head
from seqlab.nn.instance_norm import make_instance_norm

DECODERS = ("direct", "recurrent")


class LSTMForecaster(nn.Module):
    """x [B, L, n_inputs] -> point [B, H, n_outputs] | (mean, std) | quantiles [B, H, n_outputs, Q].

    The outputs are the LAST n_outputs input channels (the data modules put targets last).
    decoder="direct": with segments, SegRNN's parallel decoding; without, a linear map from the
    final state to all H steps. decoder="recurrent": a seq2seq decoder that feeds back its own
    previous step (or segment), for comparison.
    """

    def __init__(
        self,
        n_inputs: int,
        n_outputs: int,
        lookback: int,
        horizon: int,
        hidden_dim: int = 512,
        num_layers: int = 1,
        dropout: float = 0.0,
        instance_norm: str | None = "revin",
        channel_independent: bool = False,
        segment_length: int | None = None,
        decoder: str = "direct",
        head: str = "point",
        quantiles=(0.1, 0.5, 0.9),
        cell: str = "lstm",
        cycle_length: int | None = None,
        segment_stride: int | None = None,
        linear_base: bool = False,
    ):
        super().__init__()
        _check(n_inputs, n_outputs, lookback, horizon, channel_independent, segment_length, decoder, cell)
        if segment_stride is not None and (segment_length is None or not 1 <= segment_stride <= segment_length):
            raise ConfigError(f"model.net.segment_stride={segment_stride} needs segments, and at most their length "
                              f"({segment_length}): segments that overlap, or null for side by side.")
        if cycle_length is not None and (not isinstance(cycle_length, int) or cycle_length < 1):
            raise ConfigError(f"model.net.cycle_length={cycle_length} must be a positive number of rows (24 for a daily "
                              "cycle of hourly data) or null.")
        self.n_inputs, self.n_outputs, self.lookback, self.horizon = n_inputs, n_outputs, lookback, horizon
        self.channel_independent, self.decoder = channel_independent, decoder
        self.stream_in = 1 if channel_independent else n_inputs
        self.stream_out = 1 if channel_independent else n_outputs
        self.segmented = segment_length is not None
        self.step = segment_length or 1
        self.stride = segment_stride or self.step
        self.out_steps = math.ceil(horizon / self.step)  # the last segment is cut to fit H
        self.head = make_head(head, quantiles)
        out_per_step = self.step * self.stream_out * self.head.n_params

        self.norm = make_instance_norm(instance_norm, n_inputs)
        # Starts at zero: without training the cycle changes nothing.
        self.cycle = nn.Parameter(torch.zeros(cycle_length, n_inputs)) if cycle_length else None
        self.base = nn.Linear(lookback, horizon) if linear_base else None
        rnn = CELLS[cell]
        rnn_dropout = dropout if num_layers > 1 else 0.0
        # Segments are embedded into one RNN step each (SegRNN); single steps go in raw.
        self.embed = _segment_embedding(self.step * self.stream_in, hidden_dim) if segment_length else nn.Identity()
        rnn_input = hidden_dim if segment_length else self.stream_in
        self.rnn = rnn(rnn_input, hidden_dim, num_layers, batch_first=True, dropout=rnn_dropout)
        self.dropout = nn.Dropout(dropout)

        if decoder == "recurrent":
            # Its own weights: it reads predictions of the outputs, the encoder read the inputs.
            width = self.step * self.stream_out
            self.feedback = _segment_embedding(width, hidden_dim) if segment_length else nn.Identity()
            feedback_size = hidden_dim if segment_length else self.stream_out
            self.decoder_rnn = rnn(feedback_size, hidden_dim, num_layers, batch_first=True, dropout=rnn_dropout)
            self.project = nn.Linear(hidden_dim, out_per_step)
        elif segment_length:
            # SegRNN's queries: half position, half channel when streams are channels.
            position_dim = hidden_dim // 2 if channel_independent else hidden_dim
            self.position = nn.Parameter(torch.randn(self.out_steps, position_dim))
            if channel_independent:
                self.channel = nn.Parameter(torch.randn(n_inputs, hidden_dim - position_dim))
            self.project = nn.Linear(hidden_dim, out_per_step)
        else:
            self.project = nn.Linear(hidden_dim, self.out_steps * out_per_step)

    def forward(self, x: torch.Tensor, start: torch.Tensor | None = None):
        """`start` [B]: each window's first row in its file; needed only with a cycle."""
        batch = x.shape[0]
        if self.cycle is not None:
            if start is None:
                raise ValueError("a forecaster with a cycle needs each window's first row (start)")
            x = x - self._cycle_at(start, 0, self.lookback)
        stats = None
        if self.norm is not None:
            x, stats = self.norm.normalize(x)
        streams = self._to_streams(x)  # [S, L, stream_in]
        steps = self._segments(streams)  # [S, ceil(L / W), W * stream_in]
        _, state = self.rnn(self.embed(steps))

        if self.decoder == "recurrent":
            raw = self._decode_recurrent(streams, state)
        elif self.segmented:
            raw = self._decode_parallel(state, batch)
        else:
            raw = self.project(self.dropout(_last_layer(state)))
        # raw [S, out_steps, ...] -> [S, H, stream_out, n_params] -> [B, H, n_outputs, n_params]
        raw = raw.reshape(raw.shape[0], self.out_steps * self.step, self.stream_out, self.head.n_params)
        raw = self._from_streams(raw[:, : self.horizon], batch)
        if self.base is not None:  # the linear forecast of each target, in normalised units, moves the location
            base = self.base(x[..., self.n_inputs - self.n_outputs :].transpose(1, 2)).transpose(1, 2)
            raw = torch.cat([raw[..., :1] + base.unsqueeze(-1), raw[..., 1:]], dim=-1)

        scale, shift = 1.0, 0.0
        if stats is not None:
            scale, shift = self.norm.inverse_affine(stats, slice(self.n_inputs - self.n_outputs, None))
        if self.cycle is not None:
            shift = shift + self._cycle_at(start, self.lookback, self.horizon)[..., self.n_inputs - self.n_outputs :]
        return self.head(raw, scale, shift)

    def _segments(self, streams: torch.Tensor) -> torch.Tensor:
        """Segments of W rows every `stride` rows, the last ending at the newest row; a lookback they do not tile
        (512 in 24s) is padded at the front with copies of its oldest row."""
        short = -(self.lookback - self.step) % self.stride
        if short:
            streams = torch.cat([streams[:, :1].expand(-1, short, -1), streams], dim=1)
        if self.stride == self.step:
            return streams.reshape(streams.shape[0], -1, self.step * self.stream_in)
        patches = streams.unfold(1, self.step, self.stride)  # [S, steps, stream_in, W]
        return patches.transpose(2, 3).reshape(streams.shape[0], patches.shape[1], self.step * self.stream_in)

    def _cycle_at(self, start: torch.Tensor, offset: int, length: int) -> torch.Tensor:
        """The cycle over rows start+offset ... start+offset+length-1 of each window: [B, length, C]."""
        rows = start.reshape(-1, 1) + offset + torch.arange(length, device=start.device)
        return self.cycle[rows % self.cycle.shape[0]]

    def _to_streams(self, x):
        if not self.channel_independent:
            return x
        # Every variable becomes its own univariate series through the one shared RNN.
        return x.permute(0, 2, 1).reshape(-1, self.lookback, 1)

    def _from_streams(self, raw, batch):
        if not self.channel_independent:
            return raw
        _, horizon, _, n_params = raw.shape
        # Contiguous, so callers (torchmetrics among them) can .view() the forecast.
        return raw.reshape(batch, self.n_inputs, horizon, n_params).permute(0, 2, 1, 3).contiguous()

    def _decode_parallel(self, state, batch):
        """All output segments at once: each is one RNN step from the final state, told which
        segment (and channel) it is by its query, so no error compounds from step to step."""
        if self.channel_independent:
            channels = self.n_inputs
            query = torch.cat(
                [self.position.unsqueeze(0).expand(channels, -1, -1),
                 self.channel.unsqueeze(1).expand(-1, self.out_steps, -1)],
                dim=-1,
            )  # [C, out_steps, d]; streams are ordered (b, c), so repeat over the batch
            query = query.repeat(batch, 1, 1)
        else:
            query = self.position.unsqueeze(0).expand(batch, -1, -1)
        streams = query.shape[0]
        query = query.reshape(streams * self.out_steps, 1, -1)
        state = _map_state(state, lambda s: s.repeat_interleave(self.out_steps, dim=1))
        out, _ = self.rnn(query, state)  # the encoder's weights, as in SegRNN
        return self.project(self.dropout(out[:, 0])).reshape(streams, self.out_steps, -1)

    def _decode_recurrent(self, streams, state):
        """Step by step from the last observed values, each step reading the previous prediction."""
        n = streams.shape[0]
        width = self.step * self.stream_out
        previous = streams[:, -self.step :, -self.stream_out :].reshape(n, 1, width)
        outputs = []
        for _ in range(self.out_steps):
            out, state = self.decoder_rnn(self.feedback(previous), state)
            raw = self.project(self.dropout(out))  # [S, 1, width * n_params]
            outputs.append(raw)
            previous = self.head.location(raw.reshape(n, 1, width, self.head.n_params))
        return torch.cat(outputs, dim=1)


def _segment_embedding(width: int, hidden_dim: int) -> nn.Module:
    return nn.Sequential(nn.Linear(width, hidden_dim), nn.ReLU())


def _last_layer(state):
    h = state[0] if isinstance(state, tuple) else state  # LSTM: (h, c); GRU/RNN: h
    return h[-1]


def _map_state(state, fn):
    return tuple(fn(s) for s in state) if isinstance(state, tuple) else fn(state)


def _check(n_inputs, n_outputs, lookback, horizon, channel_independent, segment_length, decoder, cell):
    if cell not in CELLS:
        raise ConfigError(f"model.net.cell={cell} is not one of {', '.join(CELLS)}.")
    if decoder not in DECODERS:
        raise ConfigError(f"model.net.decoder={decoder} is not one of {', '.join(DECODERS)}.")
    if min(n_inputs, n_outputs, lookback, horizon) < 1:
        raise ConfigError(
            f"sizes must be positive: n_inputs={n_inputs}, n_outputs={n_outputs}, lookback={lookback}, horizon={horizon}."
        )
    if n_outputs > n_inputs:
        raise ConfigError(f"n_outputs={n_outputs} > n_inputs={n_inputs}: the targets must be among the inputs.")
    if channel_independent and n_inputs != n_outputs:
        raise ConfigError(
            f"model.net.channel_independent=true forecasts every input, but there are {n_inputs} inputs and "
            f"{n_outputs} outputs. Use data.features=M or S, or model.net.channel_independent=false."
        )
    if segment_length is not None and not 1 <= segment_length <= lookback:
        raise ConfigError(
            f"model.net.segment_length={segment_length} must be between 1 and the lookback {lookback} "
            "(e.g. 24 for 96), or null."
        )
