"""The forecaster's test pass: its reported errors against an independent computation on the same windows."""

import functools

import lightning as L
import numpy as np
import pytest
import torch

from seqlab.data.timeseries import SineDataModule
from seqlab.errors import ConfigError
from seqlab.models.forecaster import Forecaster
from seqlab.nn.lstm_forecaster import LSTMForecaster


@pytest.mark.parametrize("head", ["point", "quantile"])
def test_reported_errors_match_an_independent_computation(head):
    # 7 test windows per batch: the last batch is partial, and every window must still count once.
    dm = SineDataModule(length=700, n_series=2, lookback=24, horizon=12, season=12, eval_batch_size=7)
    dm.setup()
    torch.manual_seed(0)
    model = Forecaster(**dm.model_kwargs(), net=functools.partial(LSTMForecaster, hidden_dim=8, segment_length=6), head=head, plot_windows=0).eval()
    trainer = L.Trainer(accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False)
    reported = trainer.test(model, datamodule=dm, verbose=False)[0]

    windows = [dm.datasets["test"][i] for i in range(len(dm.datasets["test"]))]
    x, y, start = (torch.stack(parts) for parts in zip(*windows))
    with torch.no_grad():
        forecast = model.point(model.net(x, start)).numpy()
    y = y.numpy()
    last = np.repeat(x.numpy()[:, -1:], 12, axis=1)
    unscale = lambda a: a * dm.scaler.std + dm.scaler.mean  # noqa: E731 - every column is a target (M)
    assert reported["test/mse"] == pytest.approx(((forecast - y) ** 2).mean(), rel=1e-4)
    assert reported["test/mae"] == pytest.approx(np.abs(forecast - y).mean(), rel=1e-4)
    assert reported["test/unscaled_mse"] == pytest.approx(((unscale(forecast) - unscale(y)) ** 2).mean(), rel=1e-4)
    assert reported["test/repeat_last_mse"] == pytest.approx(((last - y) ** 2).mean(), rel=1e-4)
    assert reported["test/unscaled_mse"] != pytest.approx(reported["test/mse"], rel=1e-2)  # the scales differ


@pytest.mark.parametrize("loss", ["mse", "mae", "huber"])
def test_point_losses_match_their_definitions(loss):
    model = Forecaster(n_inputs=1, n_outputs=1, lookback=8, horizon=4, net=functools.partial(LSTMForecaster, hidden_dim=4), loss=loss, huber_delta=0.5)
    output, y = torch.tensor([[0.0, 0.2, -1.0, 3.0]]), torch.tensor([[0.1, 0.0, 0.0, 0.0]])
    error = (output - y).abs()
    expected = {
        "mse": error.square().mean(),
        "mae": error.mean(),
        "huber": torch.where(error < 0.5, 0.5 * error.square(), 0.5 * (error - 0.25)).mean(),
    }[loss]
    assert model.loss(output, y).item() == pytest.approx(expected.item())


def test_a_loss_outside_the_list_is_a_config_error():
    with pytest.raises(ConfigError, match="model.loss='rmse'"):
        Forecaster(n_inputs=1, n_outputs=1, lookback=8, horizon=4, loss="rmse")
    with pytest.raises(ConfigError, match="huber_delta"):
        Forecaster(n_inputs=1, n_outputs=1, lookback=8, horizon=4, loss="huber", huber_delta=0.0)



def test_host_memory_is_tuned_when_a_trainer_runs_the_model_not_when_it_is_built(monkeypatch):
    calls = []
    monkeypatch.setattr("seqlab.models.forecaster.reuse_host_memory", lambda: calls.append("tuned"))
    dm = SineDataModule(length=300, n_series=1, lookback=24, horizon=12, season=12)
    dm.setup()
    model = Forecaster(**dm.model_kwargs(), net=functools.partial(LSTMForecaster, hidden_dim=4, segment_length=6),
                       plot_windows=0)
    assert calls == []  # building one for inference leaves the process's allocator alone
    L.Trainer(accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
              enable_model_summary=False, fast_dev_run=1).fit(model, datamodule=dm)
    assert calls == ["tuned"]

def what_the_net_sees(model: Forecaster, x: torch.Tensor, y: torch.Tensor):
    """The inputs and targets that one training step and one validation step hand on: (x, y) of each."""
    seen = []

    def record(inputs, start=None):
        seen.append(inputs.clone())
        return torch.zeros(*y.shape)

    def record_target(output, target):
        seen.append(target.clone())
        return output.sum()

    model.net.forward, model.loss = record, record_target
    start = torch.zeros(x.shape[0], dtype=torch.long)
    model.training_step((x, y, start), 0)
    model.validation_step((x, y, start), 0)
    return seen[:2], seen[2:]


def test_input_noise_jitters_the_training_inputs_and_nothing_else():
    torch.manual_seed(0)
    model = Forecaster(n_inputs=1, n_outputs=1, lookback=8, horizon=4, net=functools.partial(LSTMForecaster, hidden_dim=4), input_noise=0.5, plot_windows=0)
    x, y = torch.zeros(256, 8, 1), torch.zeros(256, 4, 1)
    (x_trained, y_trained), (x_validated, _) = what_the_net_sees(model, x, y)
    assert x_trained.std().item() == pytest.approx(0.5, rel=0.1)
    assert torch.equal(y_trained, y) and torch.equal(x_validated, x)
    with pytest.raises(ConfigError, match="model.input_noise=-0.1"):
        Forecaster(n_inputs=1, n_outputs=1, lookback=8, horizon=4, input_noise=-0.1)


def test_scale_noise_stretches_each_window_and_its_target_alike_and_only_in_training():
    torch.manual_seed(0)
    model = Forecaster(n_inputs=2, n_outputs=1, lookback=8, horizon=4, net=functools.partial(LSTMForecaster, hidden_dim=4), scale_noise=0.5, plot_windows=0)
    x, y = torch.randn(256, 8, 2), torch.randn(256, 4, 1)
    (x_trained, y_trained), (x_validated, y_validated) = what_the_net_sees(model, x, y)
    anchor = x[:, -1:, :]
    factor = (x_trained - anchor)[:, :1] / (x - anchor)[:, :1]  # from the first step, per window and variable
    # One factor per window and variable, the same over the window and over its target (the last input).
    torch.testing.assert_close(x_trained, anchor + factor * (x - anchor))
    torch.testing.assert_close(y_trained, anchor[..., 1:] + factor[..., 1:] * (y - anchor[..., 1:]))
    assert (factor - 1).std().item() == pytest.approx(0.5, rel=0.15)
    assert torch.equal(x_validated, x) and torch.equal(y_validated, y)
    with pytest.raises(ConfigError, match="model.scale_noise=-0.1"):
        Forecaster(n_inputs=1, n_outputs=1, lookback=8, horizon=4, scale_noise=-0.1)
