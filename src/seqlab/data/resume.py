"""Where training stands within its epoch, so that a run killed mid-epoch resumes on the very same batches.

Lightning restores the weights, the optimiser and its own counters, then starts the interrupted epoch's data
over from the first batch, with whatever random state the process has. Bit-exact resumption also needs the
same shuffle (drawn from the global RNG when the epoch's iterator is made), the batches already trained on
skipped, and every generator where it was. The datamodules save `training_position` in each checkpoint
(their `state_dict`) and hand it back to the next `ResumableLoader` they make.
"""

from __future__ import annotations

import numpy as np
import torch
from lightning.fabric.utilities.seed import _collect_rng_states, _set_rng_states
from lightning.pytorch.overrides.distributed import UnrepeatedDistributedSampler
from lightning.pytorch.trainer.states import TrainerFn
from torch.utils.data import DataLoader

from seqlab.data.pinned import pin_memory


def rng_states() -> dict:
    """Lightning's snapshot of every global generator, with numpy's keys as a tensor: a checkpoint holds no numpy
    arrays, so it still loads with `torch.load(weights_only=True)`."""
    states = _collect_rng_states()
    kind, keys, pos, has_gauss, gauss = states["numpy"]
    states["numpy"] = (kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, gauss)
    return states


def set_rng_states(states: dict) -> None:
    kind, keys, pos, has_gauss, gauss = states["numpy"]
    states = {**states, "numpy": (kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss)}
    if not torch.cuda.is_available():
        states.pop("torch.cuda", None)  # resumed on a CPU: there is no CUDA generator to set
    _set_rng_states(states)


class ResumableLoader(DataLoader):
    """A training DataLoader that notes the random state each epoch's iterator starts from, and can start
    the next iterator from a saved position: same random state, first `batches` skipped, then the
    generators set to where the interrupted run was after them."""

    def __init__(self, *args, resume: dict | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.resume = resume or None
        self.epoch_rng: dict | None = None

    def __iter__(self):
        resume, self.resume = self.resume, None
        if resume:
            set_rng_states(resume["epoch_rng"])
        self.epoch_rng = rng_states()
        iterator = super().__iter__()
        if resume and resume["batches"]:
            for _ in range(resume["batches"]):
                next(iterator)  # the shuffle is drawn on the first one, from the epoch's own random state
            set_rng_states(resume["rng"])
        return iterator


def training_position(trainer) -> dict:
    """What a checkpoint needs to resume this epoch: the batches done, the random state the epoch's data
    started from, and the random state now. At an epoch's end, the next epoch starts from the state now."""
    fitting = trainer is not None and trainer.state.fn == TrainerFn.FITTING and not trainer.sanity_checking
    loader = trainer.train_dataloader if fitting else None  # the loader in use (Lightning may have rebuilt ours)
    if not isinstance(loader, ResumableLoader) or loader.epoch_rng is None:
        return {}
    now = rng_states()
    progress = trainer.fit_loop.epoch_loop.batch_progress
    done = progress.current.processed
    # An unsized stream (data.variable_bptt) counts as infinitely long: its last batch says the epoch is over.
    if 0 < done < trainer.num_training_batches and not progress.is_last_batch:
        return {"batches": done, "epoch_rng": loader.epoch_rng, "rng": now}
    return {"batches": 0, "epoch_rng": now, "rng": now}


class ResumesMidEpoch:
    """Mixed into a LightningDataModule (before it): Lightning saves its `state_dict` in every checkpoint and
    hands it back on resume, before the training loader is made; `resumable_loader` makes that loader."""

    _resume: dict | None = None

    def state_dict(self) -> dict:
        return training_position(self.trainer)

    def load_state_dict(self, state: dict) -> None:
        self._resume = state or None

    def resumable_loader(self, *args, **kwargs) -> ResumableLoader:
        resume, self._resume = self._resume, None
        return ResumableLoader(*args, resume=resume, **kwargs)

    def map_loader(self, split: str, dataset, batch_size: int, **kwargs) -> DataLoader:
        """A loader over a map-style dataset (windows): for training shuffled and resumable mid-epoch (Lightning
        adds its distributed sampler); for validation and test in order, each item scored once across processes,
        where Lightning's sampler would pad the last round by repeating items and change the scores."""
        pin = pin_memory(self.trainer)
        if split == "train":
            return self.resumable_loader(dataset, batch_size=batch_size, shuffle=True, pin_memory=pin, **kwargs)
        world_size = self.trainer.world_size if self.trainer else 1
        sampler = None
        if world_size > 1:  # rank r scores items r, r + world_size, ...
            sampler = UnrepeatedDistributedSampler(dataset, num_replicas=world_size, rank=self.trainer.global_rank,
                                                   shuffle=False)
        return DataLoader(dataset, batch_size=batch_size, sampler=sampler, pin_memory=pin, **kwargs)
