"""Forecaster nets, instance normalisation and the naive baselines."""

import itertools

import numpy as np
import pytest
import torch

from seqlab.data.timeseries import SineDataModule
from seqlab.errors import ConfigError
from seqlab.models.baselines import repeat_last, seasonal_naive
from seqlab.nn.instance_norm import LastValue, RevIN
from seqlab.nn.lstm_forecaster import LSTMForecaster

B, L, H = 3, 24, 10  # H not a multiple of the segment length on purpose: the last segment is cut


@pytest.fixture(autouse=True)
def one_thread():
    # Nets this small gain nothing from threads, and on a busy machine OpenMP spinning costs a lot.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def net(n_inputs=4, n_outputs=4, **kwargs):
    torch.manual_seed(0)
    return LSTMForecaster(n_inputs, n_outputs, L, H, hidden_dim=16, **kwargs)


@pytest.mark.parametrize("decoder,head,channel_independent,segment_length",
                         itertools.product(["direct", "recurrent"], ["point", "gaussian", "quantile"],
                                           [False, True], [None, 1, 6]))
def test_output_shapes(decoder, head, channel_independent, segment_length):
    n_out = 4 if channel_independent else 2
    model = net(4, n_out, decoder=decoder, head=head, channel_independent=channel_independent,
                segment_length=segment_length, num_layers=2, dropout=0.1)
    out = model(torch.randn(B, L, 4))
    for tensor in out if isinstance(out, tuple) else (out,):
        assert tensor.is_contiguous()  # metrics .view() it
    if head == "point":
        assert out.shape == (B, H, n_out)
    elif head == "gaussian":
        mean, std = out
        assert mean.shape == std.shape == (B, H, n_out) and (std > 0).all()
    else:
        assert out.shape == (B, H, n_out, 3)
        assert (out.diff(dim=-1) >= 0).all()  # quantiles never cross
    (out[0] if isinstance(out, tuple) else out).sum().backward()


@pytest.mark.parametrize("cell", ["gru", "rnn", "slstm"])
@pytest.mark.parametrize("instance_norm", ["revin", "last", None])
def test_other_cells_and_no_instance_norm(cell, instance_norm):
    model = net(cell=cell, instance_norm=instance_norm, segment_length=6, channel_independent=True)
    assert model(torch.randn(B, L, 4)).shape == (B, H, 4)


@pytest.mark.parametrize("decoder", ["direct", "recurrent"])
def test_channel_independent_channels_do_not_mix(decoder):
    model = net(decoder=decoder, segment_length=6, channel_independent=True).eval()
    x = torch.randn(B, L, 4)
    changed = x.clone()
    changed[..., 0] = torch.randn(B, L) * 5
    y, y_changed = model(x), model(changed)
    torch.testing.assert_close(y[..., 1:], y_changed[..., 1:])
    assert not torch.allclose(y[..., 0], y_changed[..., 0])


@pytest.mark.parametrize("decoder,instance_norm", itertools.product(["direct", "recurrent"], ["revin", "last"]))
def test_instance_norm_follows_the_target_level(decoder, instance_norm):
    # Outputs are the last input channels: a level shift there moves the forecast by the same
    # amount; a shift in another channel is normalised away.
    model = net(4, 1, decoder=decoder, segment_length=6, instance_norm=instance_norm).eval()
    x = torch.randn(B, L, 4)
    shifted_target, shifted_other = x.clone(), x.clone()
    shifted_target[..., 3] += 100
    shifted_other[..., 0] += 100
    y = model(x)
    torch.testing.assert_close(model(shifted_target), y + 100, atol=1e-3, rtol=0)
    torch.testing.assert_close(model(shifted_other), y, atol=1e-4, rtol=0)


def test_a_cycle_starts_at_zero_and_changes_nothing():
    x, start = torch.randn(B, L, 4), torch.tensor([0, 5, 1000])
    torch.testing.assert_close(net(cycle_length=24).eval()(x, start), net().eval()(x))


@pytest.mark.parametrize("instance_norm", ["revin", "last", None])
def test_the_cycle_comes_out_of_the_window_and_back_into_the_forecast(instance_norm):
    # With a cycle C, forecasting x equals forecasting x minus C at the window's phases with no
    # cycle, plus C at the forecast's phases: nothing else is learned from the phase.
    model = net(4, 2, cycle_length=24, instance_norm=instance_norm).eval()
    bare = net(4, 2, instance_norm=instance_norm).eval()
    with torch.no_grad():
        model.cycle.copy_(torch.randn(24, 4))
    x, start = torch.randn(B, L, 4), torch.tensor([0, 7, 1000])
    phase_in = (start[:, None] + torch.arange(L)) % 24
    phase_out = (start[:, None] + L + torch.arange(H)) % 24
    expected = bare(x - model.cycle[phase_in]) + model.cycle[phase_out][..., 2:]
    torch.testing.assert_close(model(x, start), expected)
    torch.testing.assert_close(model(x, start + 24), model(x, start))  # one whole period later
    assert not torch.allclose(model(x, start + 1), model(x, start))


def test_a_cycle_needs_the_windows_rows():
    with pytest.raises(ValueError, match="first row"):
        net(cycle_length=24)(torch.randn(B, L, 4))
    with pytest.raises(ConfigError, match="model.net.cycle_length=0"):
        net(cycle_length=0)


def test_unknown_instance_norm_is_a_config_error():
    with pytest.raises(ConfigError, match="model.net.instance_norm=mean"):
        net(instance_norm="mean")


def test_last_value_norm_anchors_each_window_at_its_last_value():
    norm = LastValue()
    x = torch.randn(5, 40, 3) * 7 + 3
    z, stats = norm.normalize(x)
    torch.testing.assert_close(z[:, -1], torch.zeros(5, 3))
    torch.testing.assert_close(z, x - x[:, -1:])
    torch.testing.assert_close(norm.denormalize(z[..., 1:], stats, slice(1, None)), x[..., 1:])


@pytest.mark.parametrize("affine", [False, True])
def test_revin_round_trip(affine):
    revin = RevIN(3, affine=affine)
    if affine:
        with torch.no_grad():
            revin.weight.copy_(torch.tensor([0.5, 2.0, -1.5]))
            revin.bias.copy_(torch.tensor([1.0, -2.0, 0.3]))
    x = torch.randn(5, 40, 3) * 7 + 3
    z, stats = revin.normalize(x)
    torch.testing.assert_close(revin.denormalize(z, stats), x, atol=1e-4, rtol=1e-5)
    torch.testing.assert_close(revin.denormalize(z[..., 1:], stats, slice(1, None)), x[..., 1:], atol=1e-4, rtol=1e-5)
    if not affine:
        torch.testing.assert_close(z.mean(1), torch.zeros(5, 3), atol=1e-5, rtol=0)
        torch.testing.assert_close(z.std(1, unbiased=False), torch.ones(5, 3), atol=1e-3, rtol=0)


@pytest.mark.parametrize("decoder", ["direct", "recurrent"])
def test_a_lookback_the_segment_does_not_divide_is_padded_with_its_oldest_row(decoder):
    """Lookback 20 in segments of 8: the net reads the window as the same net reads it with 4 copies of its first
    row in front, at lookback 24."""
    torch.manual_seed(0)
    kwargs = {"n_inputs": 3, "n_outputs": 3, "horizon": 5, "segment_length": 8, "decoder": decoder,
              "instance_norm": None, "channel_independent": True}
    short, padded = LSTMForecaster(lookback=20, **kwargs).eval(), LSTMForecaster(lookback=24, **kwargs).eval()
    padded.load_state_dict(short.state_dict())
    x = torch.randn(2, 20, 3)
    front = x[:, :1].expand(-1, 4, -1)
    torch.testing.assert_close(short(x), padded(torch.cat([front, x], dim=1)), rtol=0, atol=0)
    assert not torch.equal(short(x), padded(torch.cat([torch.zeros_like(front), x], dim=1)))


def test_overlapping_segments_end_at_the_newest_row_and_pad_the_oldest():
    rows = torch.arange(11.0).reshape(1, 11, 1)
    net = LSTMForecaster(n_inputs=1, n_outputs=1, lookback=11, horizon=3, segment_length=4, segment_stride=2,
                         channel_independent=True)
    expected = [[0, 0, 1, 2], [1, 2, 3, 4], [3, 4, 5, 6], [5, 6, 7, 8], [7, 8, 9, 10]]  # row 0 copied once in front
    assert net._segments(rows)[0].tolist() == expected
    assert net(torch.randn(2, 11, 1)).shape == (2, 3, 1)


def test_the_linear_base_is_the_forecast_when_the_lstm_adds_nothing():
    torch.manual_seed(0)
    net = LSTMForecaster(n_inputs=3, n_outputs=3, lookback=L, horizon=H, segment_length=4, channel_independent=True,
                         instance_norm="last", linear_base=True).eval()
    with torch.no_grad():
        net.project.weight.zero_()
        net.project.bias.zero_()
    x = torch.randn(2, L, 3)
    last = x[:, -1:]
    expected = torch.stack([net.base(x[:, :, k] - last[:, :, k]) for k in range(3)], dim=-1) + last
    torch.testing.assert_close(net(x), expected)


@pytest.mark.parametrize("kwargs,match", [
    ({"n_outputs": 1, "channel_independent": True}, "channel_independent"),
    ({"segment_length": L + 1}, "segment_length"),
    ({"segment_length": 4, "segment_stride": 5}, "segment_stride"),
    ({"segment_length": None, "segment_stride": 2}, "segment_stride"),
    ({"segment_length": 0}, "segment_length"),
    ({"decoder": "beam"}, "decoder"),
    ({"head": "laplace"}, "head"),
    ({"cell": "transformer"}, "cell"),
    ({"head": "quantile", "quantiles": (0.9, 0.1)}, "quantiles"),
    ({"head": "quantile", "quantiles": (0.5, 1.0)}, "quantiles"),
    ({"n_outputs": 5}, "n_outputs"),
])
def test_bad_combinations_are_config_errors(kwargs, match):
    sizes = {"n_inputs": 4, "n_outputs": 4, "lookback": L, "horizon": H}
    with pytest.raises(ConfigError, match=match):
        LSTMForecaster(**{**sizes, **kwargs})


# --- baselines --------------------------------------------------------------------------------

# One window, lookback 6, two inputs; the target is column 1 (10, 20, ..., 60).
X = torch.tensor([[[1.0, 10.0], [2.0, 20.0], [3.0, 30.0], [4.0, 40.0], [5.0, 50.0], [6.0, 60.0]]])
Y = np.array([[[70.0], [80.0], [50.0], [60.0]]])  # what really came next


def test_repeat_last_by_hand():
    pred = repeat_last(X, horizon=4, target_index=[1])
    assert pred.tolist() == [[[60.0], [60.0], [60.0], [60.0]]]
    # errors 10, 20, -10, 0 -> MSE (100 + 400 + 100 + 0) / 4
    assert np.mean((pred.numpy() - Y) ** 2) == pytest.approx(150.0)
    assert repeat_last(X, horizon=2).tolist() == [[[6.0, 60.0], [6.0, 60.0]]]
    assert pred.is_contiguous()


def test_seasonal_naive_by_hand():
    pred = seasonal_naive(X, horizon=4, season=2, target_index=[1])
    assert pred.tolist() == [[[50.0], [60.0], [50.0], [60.0]]]
    # errors -20, -20, 0, 0 -> MSE (400 + 400) / 4
    assert np.mean((pred.numpy() - Y) ** 2) == pytest.approx(200.0)
    assert seasonal_naive(X, horizon=4, season=3, target_index=[0]).flatten().tolist() == [4.0, 5.0, 6.0, 4.0]
    assert seasonal_naive(X, horizon=3, season=6).shape == (1, 3, 2) and pred.is_contiguous()
    with pytest.raises(ConfigError, match="season"):
        seasonal_naive(X, horizon=4, season=7)


# --- the synthetic task is learnable ----------------------------------------------------------

def test_lstm_beats_repeat_last_on_sines():
    torch.manual_seed(0)
    dm = SineDataModule(seed=0, length=1500, n_series=2, lookback=48, horizon=24, batch_size=64, eval_batch_size=512)
    dm.setup()
    model = LSTMForecaster(**dm.model_kwargs(), hidden_dim=32, segment_length=12, channel_independent=True)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _, (x, y, _) in zip(range(150), itertools.cycle(dm.train_dataloader())):
        loss = torch.nn.functional.mse_loss(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    x, y, _ = next(iter(dm.test_dataloader()))
    with torch.no_grad():
        learned = torch.nn.functional.mse_loss(model(x), y).item()
    naive = torch.nn.functional.mse_loss(repeat_last(x, 24, dm.target_index), y).item()
    assert learned < 0.5 * naive, (learned, naive)
