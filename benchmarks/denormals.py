"""Why experiment=long_range sets `flush_denormal: true`: a training step's time with and without it, per cell.

    python benchmarks/denormals.py [--gap 400] [--rounds 5]

A plain RNN that has stopped carrying information back (recurrent weights that shrink the state, here scaled to a
spectral norm of 0.5, as a trained one at the adding baseline does) backpropagates a gradient that falls through the
denormal range (below 1.2e-38) on its way to step 0; the CPU does denormal arithmetic in microcode, many times
slower. Flushing them to zero changes nothing a float32 step could see. Each round times the same forward and
backward pass (adding task, batch 50) with flushing off and on, alternately, so a busy machine slows both alike.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from seqlab.nn.long_range_rnn import LongRangeRNN


def step_seconds(net: LongRangeRNN, x: torch.Tensor, y: torch.Tensor, flush: bool, repeats: int = 3) -> float:
    torch.set_flush_denormal(flush)
    started = time.perf_counter()
    for _ in range(repeats):
        net.zero_grad()
        (net(x) - y).square().mean().backward()
    return (time.perf_counter() - started) / repeats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gap", type=int, default=400, help="sequence length T")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    torch.manual_seed(0)
    x = torch.stack([torch.rand(50, args.gap), torch.zeros(50, args.gap)], dim=-1)
    x[:, :2, 1] = 1.0
    y = x[:, :2, 0].sum(-1, keepdim=True)
    print(f"T = {args.gap}, batch 50, hidden 128, {torch.get_num_threads()} thread(s); seconds per step, "
          f"median of {args.rounds} rounds")
    print(f"{'cell':<6} {'denormals kept':>15} {'flushed':>10} {'ratio':>7}")
    for cell in ("rnn", "gru", "lstm"):
        net = LongRangeRNN(n_inputs=2, n_outputs=1, hidden_dim=128, cell=cell)
        with torch.no_grad():
            for name, weight in net.cell.named_parameters():
                if name.startswith("weight_hh"):
                    weight.mul_(0.5 / torch.linalg.matrix_norm(weight, ord=2))
        kept, flushed = [], []
        for _ in range(args.rounds):
            kept.append(step_seconds(net, x, y, flush=False))
            flushed.append(step_seconds(net, x, y, flush=True))
        torch.set_flush_denormal(False)
        slow, fast = statistics.median(kept), statistics.median(flushed)
        print(f"{cell:<6} {slow:>15.4f} {fast:>10.4f} {slow / fast:>6.1f}x")


if __name__ == "__main__":
    main()
