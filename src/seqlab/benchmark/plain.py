"""The loops a user would write by hand, run in a process of their own: no Lightning, no seqlab training code.

The language model loop is pytorch/examples' word_language_model: forward, cross-entropy, backward, clip
the gradient norm, optimiser step, the hidden state carried into the next batch and detached. The
forecaster loop is the same without a state. Both use the project's nets and get the very batches the
project trains on. The process answers the benchmark over a pipe: warm up, run a round of N steps (it
replies with the seconds taken), then report its peak memory and measure the machine's matmul peak.
"""

from __future__ import annotations

import contextlib
import resource
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from seqlab.benchmark.flops import matmul_peak
from seqlab.models.allocator import reuse_host_memory
from seqlab.nn.lstm_forecaster import LSTMForecaster
from seqlab.nn.rnn_lm import RNNLanguageModel

LOSSES = {"mse": F.mse_loss, "mae": F.l1_loss}


def serve(conn, spec: dict) -> None:
    """The plain process: build the loop of `spec`, then obey the benchmark's messages until `finish`."""
    if spec["threads"]:
        torch.set_num_threads(spec["threads"])
    if spec["reuse_host_memory"]:  # as the project's modules do: then only the training loops differ
        reuse_host_memory()
    torch.manual_seed(spec["seed"])
    device = torch.device(spec["device"])
    step = lm_loop(spec, device) if spec["task"] == "lm" else forecaster_loop(spec, device)
    while True:
        message, steps = conn.recv()
        if message == "finish":
            conn.send(peak_memory(device))
            dtypes = spec["peak_dtypes"]
            conn.send({dtype: matmul_peak(device, getattr(torch, dtype), spec["peak_size"]) for dtype in dtypes})
            return
        sync(device)
        start = time.perf_counter()
        for _ in range(steps):
            step()
        sync(device)
        conn.send(time.perf_counter() - start)


def lm_loop(spec: dict, device: torch.device):
    """One training step of the language model per call, through the stream's batches in order, epoch after epoch."""
    net = RNNLanguageModel(spec["vocab_size"], spec["embedding_dim"], spec["hidden_dim"], spec["num_layers"],
                           spec["dropout"]).to(device)
    optimizer = spec["optimizer"](net.parameters())
    inputs, targets = spec["inputs"].to(device), spec["targets"].to(device)
    bptt, clip = spec["bptt"], spec["gradient_clip_val"]
    position, state = 0, None

    def step() -> None:
        nonlocal position, state
        if position >= inputs.shape[1]:  # a new epoch starts from a zero state
            position, state = 0, None
        x, y = inputs[:, position : position + bptt], targets[:, position : position + bptt]
        position += bptt
        with autocast(spec, device):
            logits, state = net(x, state)
            loss = F.cross_entropy(logits.flatten(0, 1).float(), y.flatten())  # ignore_index=-100: the padding
        state = tuple(s.detach() for s in state)
        update(net, optimizer, loss, clip)

    return step


def forecaster_loop(spec: dict, device: torch.device):
    """One training step of the forecaster per call, cycling through the benchmark's windows."""
    net = LSTMForecaster(**spec["net"]).to(device)
    optimizer = spec["optimizer"](net.parameters())
    batches = [tuple(t.to(device) for t in batch) for batch in spec["batches"]]
    loss_fn, clip = LOSSES[spec["loss"]], spec["gradient_clip_val"]
    count = 0

    def step() -> None:
        nonlocal count
        x, y, start = batches[count % len(batches)]
        count += 1
        with autocast(spec, device):
            loss = loss_fn(net(x, start), y)
        update(net, optimizer, loss, clip)

    return step


def update(net: torch.nn.Module, optimizer: torch.optim.Optimizer, loss: torch.Tensor, clip: float | None) -> None:
    """Backward, clip the gradient norm, step: the end of every hand-written training step."""
    optimizer.zero_grad()
    loss.backward()
    if clip:
        torch.nn.utils.clip_grad_norm_(net.parameters(), clip)
    optimizer.step()


def autocast(spec: dict, device: torch.device):
    if spec["precision"] == "bf16-mixed":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def peak_memory(device: torch.device) -> float:
    """MiB: the peak resident set of this process (CPU) or the peak allocated by tensors on the GPU.

    On Linux, VmHWM: getrusage's ru_maxrss would do, but a spawned process inherits its parent's in it.
    """
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux, bytes on macOS


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
