"""The long-range model: it learns, it scores itself against the memoryless baseline, and it measures the gradient
each time step receives."""

from __future__ import annotations

import functools
import json

import lightning as L
import numpy as np
import pytest
import torch

from seqlab.data.long_range import COPY_LENGTH, LongRangeDataModule, copy_baseline_loss
from seqlab.errors import ConfigError
from seqlab.models.long_range import GRADIENT_FILE, LongRangeModel
from seqlab.models.long_range_gradients import hidden_gradient_norms
from seqlab.nn.long_range_rnn import LongRangeRNN


def setup(task: str, cell: str = "lstm", gap: int = 8, **data) -> tuple[LongRangeDataModule, LongRangeModel]:
    dm = LongRangeDataModule(task=task, gap=gap, **{"n_train": 256, "n_val": 64, "n_test": 48, "batch_size": 32,
                                                    "eval_batch_size": 20, **data})
    dm.setup()
    torch.manual_seed(0)
    return dm, LongRangeModel(**dm.model_kwargs(), net=functools.partial(LongRangeRNN, cell=cell, hidden_dim=16))


def trainer(tmp_path, **kwargs) -> L.Trainer:
    return L.Trainer(accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
                     enable_model_summary=False, default_root_dir=tmp_path, **kwargs)


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
@pytest.mark.parametrize("task", ["adding", "copy"])
def test_the_step_by_step_pass_gives_the_fused_cells_outputs(task, cell):
    dm, model = setup(task, cell)
    x, _ = dm.datasets["val"][:5]
    stepwise, states = model.net.forward_stepwise(x)
    assert torch.allclose(model.net(x), stepwise, atol=1e-6)
    assert len(states) == x.shape[1] and states[0].shape == (1, 5, 16)


@pytest.mark.parametrize("task", ["adding", "copy"])
def test_a_few_training_steps_lower_the_loss(task):
    dm, model = setup(task)
    x, y = dm.datasets["train"][:128]
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    losses = []
    for _ in range(30):
        loss = model.sequence_losses(model(x), y).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0]


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
@pytest.mark.parametrize("task", ["adding", "copy"])
def test_gradient_norms_have_one_finite_positive_value_per_step(task, cell):
    dm, model = setup(task, cell, gap=12)
    x, y = dm.datasets["test"][:8]
    with torch.inference_mode():  # as in a test pass
        norms = hidden_gradient_norms(model.net, model.sequence_losses, x, y)
    steps = x.shape[1]
    assert norms.shape == (steps,) and np.isfinite(norms).all() and (norms > 0).all()
    assert all(p.grad is None for p in model.parameters())  # measured, not accumulated into the weights


def test_gradient_norms_match_a_hand_computed_last_step():
    # At the last step, d loss_b / d h_T is the readout's weight times 2 (prediction - target): check the number.
    dm, model = setup("adding")
    x, y = dm.datasets["test"][:6]
    norms = hidden_gradient_norms(model.net, model.sequence_losses, x, y)
    with torch.no_grad():
        error = model(x) - y  # [B, 1]
        expected = (2 * error * model.net.out.weight).norm(dim=-1).mean()  # weight [1, H]
    assert norms[-1] == pytest.approx(float(expected), rel=1e-5)


@pytest.mark.parametrize("task", ["adding", "copy"])
def test_the_test_pass_reports_scores_baselines_and_saves_gradient_norms(task, tmp_path):
    dm, model = setup(task, gap=6)
    reported = trainer(tmp_path).test(model, datamodule=dm, verbose=False)[0]
    x, y = dm.datasets["test"][:]
    with torch.no_grad():
        output = model(x)
    if task == "adding":
        assert reported["test/mse"] == pytest.approx(float((output - y).square().mean()), rel=1e-5)
        assert reported["test/loss"] == pytest.approx(reported["test/mse"])
        assert reported["test/baseline_mse"] == pytest.approx(float((y - 1).square().mean()), rel=1e-5)
    else:
        accuracy = (output[:, -COPY_LENGTH:].argmax(-1) == y[:, -COPY_LENGTH:]).float().mean()
        assert reported["test/acc"] == pytest.approx(float(accuracy), rel=1e-5)
        assert reported["test/baseline_loss"] == pytest.approx(copy_baseline_loss(y.shape[1]), rel=1e-6)
        loss = torch.nn.functional.cross_entropy(output.transpose(1, 2), y)
        assert reported["test/loss"] == pytest.approx(float(loss), rel=1e-5)
    saved = json.loads((tmp_path / GRADIENT_FILE).read_text())
    assert saved["steps"] == x.shape[1] == len(saved["norms"]) and saved["cell"] == "lstm"
    expected = hidden_gradient_norms(model.net, model.sequence_losses, x[:20], y[:20])  # the first test batch
    assert saved["norms"] == pytest.approx(expected.tolist(), rel=1e-5)
    assert reported["test/gradient_first_over_last"] == pytest.approx(expected[0] / expected[-1], rel=1e-4)


def test_fit_logs_the_monitored_validation_loss(tmp_path):
    dm, model = setup("adding")
    fit = trainer(tmp_path, max_epochs=1, limit_train_batches=2, num_sanity_val_steps=0)
    fit.fit(model, datamodule=dm)
    assert {"val/loss", "val/mse", "val/baseline_mse", "train/loss"} <= fit.callback_metrics.keys()


def test_a_task_the_data_does_not_have_is_refused_in_one_line():
    with pytest.raises(ConfigError, match=r"^task=sort is not one of adding, copy: it comes from data.task$"):
        LongRangeModel(task="sort", n_inputs=2, n_outputs=1)
    with pytest.raises(ConfigError, match=r"^model.net.cell=lst is not one of lstm, gru, rnn, slstm$"):
        LongRangeModel(task="adding", n_inputs=2, n_outputs=1, net=functools.partial(LongRangeRNN, cell="lst"))


def test_forget_bias_starts_every_forget_gate_at_the_value_and_nothing_else():
    torch.manual_seed(0)
    plain = LongRangeRNN(n_inputs=2, n_outputs=1, hidden_dim=6)
    torch.manual_seed(0)
    biased = LongRangeRNN(n_inputs=2, n_outputs=1, hidden_dim=6, forget_bias=1.0)
    total = biased.cell.bias_ih_l0 + biased.cell.bias_hh_l0  # the gate sees the sum: input, forget, cell, output
    assert torch.equal(total[6:12], torch.ones(6))
    for name in ("bias_ih_l0", "bias_hh_l0"):
        kept = torch.cat([getattr(plain.cell, name)[:6], getattr(plain.cell, name)[12:]])
        assert torch.equal(torch.cat([getattr(biased.cell, name)[:6], getattr(biased.cell, name)[12:]]), kept)
    with pytest.raises(ConfigError, match="forget_bias applies to cell=lstm only"):
        LongRangeRNN(n_inputs=2, n_outputs=1, cell="gru", forget_bias=1.0)


def test_gradient_norms_keep_the_denormal_tail_of_a_run_that_flushes_it():
    from seqlab.models.long_range_gradients import denormals_flushed

    dm, model = setup("adding", "rnn", gap=40)
    with torch.no_grad():  # each step back multiplies the gradient by about 0.05: far below 1e-38 after 30 steps
        model.net.cell.weight_hh_l0.copy_(0.05 * torch.eye(model.net.hidden_dim))
    x, y = dm.datasets["test"][:4]
    torch.set_flush_denormal(True)
    try:
        norms = hidden_gradient_norms(model.net, model.sequence_losses, x, y)
        assert denormals_flushed()  # the run's setting is back in place
    finally:
        torch.set_flush_denormal(False)
    assert 0 < norms[10] < 1e-38  # denormal, kept (flushed, it would be 0; further back float32 itself ends)
