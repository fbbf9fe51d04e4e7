"""Synthetic long-range memory tasks, where the answer depends on inputs `gap` steps back.

- adding (Hochreiter & Schmidhuber 1997, in the form of Le et al. 2015): x [gap, 2], a value in [0, 1) and a
  marker channel holding exactly two 1s, one in each half; the target is the sum of the two marked values.
  Always answering 1.0 (the target's mean) scores MSE 1/6: a net must beat that to have remembered anything.
- copy (Arjovsky et al. 2016): 10 symbols from an alphabet of 8, gap - 1 blanks, a delimiter, 10 blanks
  (gap + 20 steps, as in the paper); the target is blank except for the last 10 steps, which repeat the 10
  symbols. A memoryless net scores 10 log 8 / (gap + 20) per step (blanks certain, the symbols guessed).

Train and validation sets come from `seed`, the test set from `test_seed`, each from its own stream: the same
seeds give identical tensors, so every cell and every training seed of a sweep is tested on the same sequences.
"""

from __future__ import annotations

import math

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset

from seqlab.data.resume import ResumesMidEpoch
from seqlab.errors import ConfigError

TASKS = ("adding", "copy")
COPY_LENGTH = 10  # symbols to remember
ALPHABET = 8  # symbols are 1..8
BLANK, DELIMITER = 0, ALPHABET + 1  # copy inputs are token ids 0..9; targets are 0..8 (never the delimiter)
SPLIT_STREAMS = {"train": 0, "val": 1, "test": 2}  # spawn keys: the splits never share numbers, whatever the seeds


def adding_problem(n: int, gap: int, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """x [n, gap, 2] float (values, markers), y [n, 1]: the sum of the two marked values."""
    values = rng.random((n, gap))
    half = gap // 2
    first = rng.integers(0, half, size=n)
    second = rng.integers(half, gap, size=n)
    markers = np.zeros((n, gap))
    rows = np.arange(n)
    markers[rows, first] = markers[rows, second] = 1.0
    x = np.stack([values, markers], axis=-1)
    y = values[rows, first] + values[rows, second]
    return torch.from_numpy(x).float(), torch.from_numpy(y).float().unsqueeze(-1)


def copy_memory(n: int, gap: int, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """x [n, gap + 20] token ids, y [n, gap + 20] class ids: blank, then the first 10 symbols again at the end."""
    length = gap + 2 * COPY_LENGTH
    symbols = rng.integers(1, ALPHABET + 1, size=(n, COPY_LENGTH))
    x = np.full((n, length), BLANK, dtype=np.int64)
    x[:, :COPY_LENGTH] = symbols
    x[:, COPY_LENGTH + gap - 1] = DELIMITER  # gap - 1 blanks after the symbols, then the signal to recall
    y = np.full((n, length), BLANK, dtype=np.int64)
    y[:, -COPY_LENGTH:] = symbols
    return torch.from_numpy(x), torch.from_numpy(y)


def copy_baseline_loss(length: int) -> float:
    """Cross-entropy per step of the memoryless strategy: blanks with certainty, then a uniform guess."""
    return COPY_LENGTH * math.log(ALPHABET) / length


GENERATORS = {"adding": adding_problem, "copy": copy_memory}


class LongRangeDataModule(ResumesMidEpoch, L.LightningDataModule):
    """Fixed train/val/test sets of one task at one gap length, batches (x, y).

    gap: the distance T to remember over (adding: the sequence length; copy: blanks + delimiter).
    seed: the training and validation sets; test_seed: the test set, kept apart so that changing the training
    data never changes what the runs are scored on.
    """

    def __init__(
        self,
        task: str = "adding",
        gap: int = 100,
        n_train: int = 10000,
        n_val: int = 1000,
        n_test: int = 1000,
        seed: int = 0,
        test_seed: int = 1000,
        batch_size: int = 50,
        eval_batch_size: int = 500,
        num_workers: int = 0,
    ):
        super().__init__()
        if task not in TASKS:
            raise ConfigError(f"data.task={task} is not one of {', '.join(TASKS)}.")
        if int(gap) < 2:
            raise ConfigError(f"data.gap={gap} must be an integer >= 2: the adding task puts a marker in each half.")
        for key, value in (("n_train", n_train), ("n_val", n_val), ("n_test", n_test),
                           ("batch_size", batch_size), ("eval_batch_size", eval_batch_size)):
            if int(value) < 1:
                raise ConfigError(f"data.{key}={value} must be a positive integer.")
        if int(num_workers) < 0:
            raise ConfigError(f"data.num_workers={num_workers} must be an integer >= 0 (0: load in the main process).")
        self.save_hyperparameters(logger=False)
        self.task, self.gap = task, int(gap)
        self.sizes = {"train": int(n_train), "val": int(n_val), "test": int(n_test)}
        self.seeds = {"train": seed, "val": seed, "test": test_seed}
        self.batch_size, self.eval_batch_size, self.num_workers = batch_size, eval_batch_size, num_workers
        self.datasets: dict[str, TensorDataset] = {}

    def generate(self, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        """The whole split, (x, y): a function of its seed, its size and the gap only."""
        stream = np.random.SeedSequence(self.seeds[split], spawn_key=(SPLIT_STREAMS[split],))
        return GENERATORS[self.task](self.sizes[split], self.gap, np.random.default_rng(stream))

    def setup(self, stage: str | None = None) -> None:
        if not self.datasets:  # fit then test would otherwise generate everything again
            self.datasets = {split: TensorDataset(*self.generate(split)) for split in SPLIT_STREAMS}

    def model_kwargs(self) -> dict:
        """What the model must know about the data, so the config never types it twice."""
        return {"task": self.task, "n_inputs": 2 if self.task == "adding" else DELIMITER + 1,
                "n_outputs": 1 if self.task == "adding" else ALPHABET + 1}

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", self.batch_size)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", self.eval_batch_size)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", self.eval_batch_size)

    def _loader(self, split: str, batch_size: int) -> DataLoader:
        return self.map_loader(split, self.datasets[split], batch_size, num_workers=self.num_workers,
                               persistent_workers=self.num_workers > 0)
