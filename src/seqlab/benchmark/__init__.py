"""`scripts/benchmark.py`: the project's training step against a plain PyTorch loop doing the same work.

`run.py` is the entry (the project's side, in this process); `plain.py` the hand-written loops, run in a
process of their own; `flops.py` the model FLOP counts and the machine's measured matmul peak.
Nothing here imports Lightning at package level, so the plain process never loads it.
"""
