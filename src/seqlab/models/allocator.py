"""Host memory for large tensors that is reused from step to step (Linux, glibc).

By default glibc serves a large block (over its mmap threshold, which adapts up to 32 MiB) with a fresh mmap
and unmaps it when freed, and gives memory freed at the top of the heap back to the kernel. Every step of a
language model then gets its [batch x bptt x vocabulary] logits and their gradients (51 MiB each at batch 20,
bptt 35, 18,328 words) as new pages, which the kernel faults in and zeroes 4 KiB at a time: almost a third of the
small LSTM's training step on the 2-core CPU (docs/benchmarks/speed.md). With both thresholds at their largest,
the pages of one step are reused by the next; the process keeps its peak resident memory instead of handing it
back between steps. Nothing computed changes: the same kernels on the same 64-byte-aligned data.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # <malloc.h>
LARGEST = 2**31 - 1  # mallopt takes an int


@functools.cache
def reuse_host_memory() -> bool:
    """Set glibc's mmap and trim thresholds to their largest; False where there is no glibc malloc to tune."""
    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, LARGEST)) and bool(mallopt(M_TRIM_THRESHOLD, LARGEST))
