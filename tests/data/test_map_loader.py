"""ResumesMidEpoch.map_loader: the loader every windowed datamodule uses (forecaster, long-range, text windows)."""

from __future__ import annotations

from types import SimpleNamespace

import torch

from seqlab.data.resume import ResumableLoader, ResumesMidEpoch


def loaders(split: str, world_size: int):
    items = list(range(23))  # not a multiple of the world size: the last round is short
    for rank in range(world_size):
        module = ResumesMidEpoch()
        module.trainer = SimpleNamespace(world_size=world_size, global_rank=rank,
                                         strategy=SimpleNamespace(root_device=torch.device("cpu")))
        yield module.map_loader(split, items, batch_size=4)


def test_validation_on_several_processes_scores_every_item_exactly_once():
    seen = [int(x) for loader in loaders("val", 3) for batch in loader for x in batch]
    assert sorted(seen) == list(range(23))  # none repeated to pad the last round, none dropped


def test_training_is_shuffled_and_resumable():
    (loader,) = loaders("train", 1)
    assert isinstance(loader, ResumableLoader)
    torch.manual_seed(0)
    order = [int(x) for batch in loader for x in batch]
    assert sorted(order) == list(range(23)) and order != list(range(23))
