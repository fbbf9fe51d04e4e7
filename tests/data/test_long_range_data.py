"""The long-range tasks as the papers define them: shapes, markers, targets, baselines, and seeds that reproduce."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from seqlab.data.long_range import (
    ALPHABET,
    BLANK,
    COPY_LENGTH,
    DELIMITER,
    LongRangeDataModule,
    adding_problem,
    copy_baseline_loss,
    copy_memory,
)
from seqlab.errors import ConfigError


def data(**kwargs) -> LongRangeDataModule:
    dm = LongRangeDataModule(**{"n_train": 64, "n_val": 16, "n_test": 32, **kwargs})
    dm.setup()
    return dm


@pytest.mark.parametrize("gap", [2, 3, 17, 100])
def test_adding_has_two_markers_one_in_each_half_and_sums_their_values(gap):
    x, y = adding_problem(500, gap, np.random.default_rng(0))
    assert x.shape == (500, gap, 2) and y.shape == (500, 1) and x.dtype == y.dtype == torch.float32
    values, markers = x[..., 0], x[..., 1]
    assert ((values >= 0) & (values < 1)).all()
    assert set(markers.unique().tolist()) <= {0.0, 1.0}
    assert (markers.sum(1) == 2).all()
    half = gap // 2
    assert (markers[:, :half].sum(1) == 1).all() and (markers[:, half:].sum(1) == 1).all()
    assert torch.allclose(y[:, 0], (values * markers).sum(1), atol=1e-6)


def test_adding_baseline_is_the_variance_of_the_sum():
    # Always answering 1.0, the mean of the sum of two U(0, 1), scores Var = 2 / 12 = 1/6.
    _, y = adding_problem(20000, 50, np.random.default_rng(1))
    assert float((y - 1).square().mean()) == pytest.approx(1 / 6, abs=0.005)


@pytest.mark.parametrize("gap", [2, 30])
def test_copy_recalls_the_first_symbols_after_the_delimiter(gap):
    x, y = copy_memory(200, gap, np.random.default_rng(0))
    length = gap + 2 * COPY_LENGTH
    assert x.shape == y.shape == (200, length) and x.dtype == y.dtype == torch.int64
    symbols = x[:, :COPY_LENGTH]
    assert ((symbols >= 1) & (symbols <= ALPHABET)).all()
    assert len(symbols.unique()) == ALPHABET  # every symbol of the alphabet drawn
    delimiter = COPY_LENGTH + gap - 1
    assert (x[:, delimiter] == DELIMITER).all() and (x == DELIMITER).sum() == 200
    rest = torch.cat([x[:, COPY_LENGTH:delimiter], x[:, delimiter + 1 :]], dim=1)
    assert (rest == BLANK).all() and rest.shape[1] == gap - 1 + COPY_LENGTH
    assert (y[:, :-COPY_LENGTH] == BLANK).all()
    assert torch.equal(y[:, -COPY_LENGTH:], symbols)


def test_copy_baseline_is_the_memoryless_cross_entropy():
    # Blanks predicted with certainty (loss 0), the 10 recalled symbols uniform over 8: 10 log 8 per sequence.
    length = 100 + 2 * COPY_LENGTH
    logits = torch.full((1, length, ALPHABET + 1), -1e9)
    logits[0, :-COPY_LENGTH, BLANK] = 0
    logits[0, -COPY_LENGTH:, 1:] = 0
    _, y = copy_memory(1, 100, np.random.default_rng(0))
    memoryless = torch.nn.functional.cross_entropy(logits.transpose(1, 2), y)
    assert copy_baseline_loss(length) == pytest.approx(float(memoryless)) == pytest.approx(10 * math.log(8) / 120)


@pytest.mark.parametrize("task", ["adding", "copy"])
def test_the_same_seeds_give_identical_tensors_and_splits_differ(task):
    first, again = data(task=task, gap=12), data(task=task, gap=12)
    for split in ("train", "val", "test"):
        for a, b in zip(first.datasets[split].tensors, again.datasets[split].tensors):
            assert torch.equal(a, b)
    x = {split: first.datasets[split].tensors[0] for split in ("train", "val", "test")}
    assert not torch.equal(x["train"][:16], x["val"]) and not torch.equal(x["train"][:32], x["test"])
    other = data(task=task, gap=12, seed=5)
    assert not torch.equal(other.datasets["train"].tensors[0], x["train"])
    assert torch.equal(other.datasets["test"].tensors[0], x["test"])  # the test set follows test_seed alone


def test_sizes_batches_and_what_the_model_is_told():
    dm = data(task="copy", gap=5, batch_size=8, eval_batch_size=10)
    assert [len(dm.datasets[s]) for s in ("train", "val", "test")] == [64, 16, 32]
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == y.shape == (8, 25)
    assert [len(b[0]) for b in dm.test_dataloader()] == [10, 10, 10, 2]
    assert dm.model_kwargs() == {"task": "copy", "n_inputs": DELIMITER + 1, "n_outputs": ALPHABET + 1}
    assert data(task="adding", gap=5).model_kwargs() == {"task": "adding", "n_inputs": 2, "n_outputs": 1}


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"task": "sort"}, "data.task=sort is not one of adding, copy."),
        ({"gap": 1}, "data.gap=1 must be an integer >= 2"),
        ({"n_train": 0}, "data.n_train=0 must be a positive integer."),
        ({"eval_batch_size": -1}, "data.eval_batch_size=-1 must be a positive integer."),
        ({"num_workers": -1}, "data.num_workers=-1 must be an integer >= 0"),
    ],
)
def test_a_bad_value_is_one_line_naming_the_key(kwargs, message):
    with pytest.raises(ConfigError) as refused:
        LongRangeDataModule(**kwargs)
    assert str(refused.value).startswith(message) and "\n" not in str(refused.value)


@pytest.mark.parametrize(
    "override, message",
    [
        ("data.gap=1", "data.gap=1 must be an integer >= 2"),
        ("data.task=sort", "data.task=sort must be one of adding, copy"),
        ("model.net.cell=transformer", "model.net.cell=transformer must be one of lstm, gru, rnn"),
        ("+model.task=copy", "model.task=copy is not a config key here: it comes from the data"),
    ],
)
def test_the_experiment_config_refuses_a_bad_value_before_anything_is_built(override, message):
    from seqlab.config_schema import check_config
    from tests.test_config_schema import composed

    check_config(composed(overrides=["experiment=long_range"]))
    with pytest.raises(ConfigError) as refused:
        check_config(composed(overrides=["experiment=long_range", override]))
    assert str(refused.value).startswith(message) and "\n" not in str(refused.value)
