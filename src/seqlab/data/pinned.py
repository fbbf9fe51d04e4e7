"""Batches in page-locked memory when the model trains on a CUDA device.

A copy from ordinary (pageable) host memory to a GPU first waits for all the work queued on the GPU's stream
(CUDA's API synchronisation rules): the host could not queue the next step while the GPU runs this one. From
page-locked memory, Lightning's non-blocking copy returns at once.
"""

from __future__ import annotations


def pin_memory(trainer) -> bool:
    """Whether this trainer's loaders should page-lock their batches: on a CUDA device, yes."""
    return trainer is not None and trainer.strategy.root_device.type == "cuda"
