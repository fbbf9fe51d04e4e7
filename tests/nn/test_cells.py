import pytest
import torch

from seqlab.nn.cells import CELLS
from seqlab.nn.rnn_lm import RNNLanguageModel


@pytest.mark.parametrize("cell", sorted(CELLS))
def test_cells_run_under_cpu_bf16_autocast(cell):
    rnn = CELLS[cell](8, 16, num_layers=2, batch_first=True)
    x = torch.randn(3, 5, 8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        output, _ = rnn(x.bfloat16())
    assert output.dtype == torch.float32 and output.shape == (3, 5, 16)
    # Same numbers as a plain fp32 call on the bf16-rounded input: only the dtype handling changed.
    expected, _ = rnn(x.bfloat16().float())
    assert torch.allclose(output, expected)


def test_language_model_trains_under_cpu_bf16_autocast():
    model = RNNLanguageModel(vocab_size=11, embedding_dim=8, hidden_dim=8, num_layers=1, dropout=0.0)
    tokens = torch.randint(0, 11, (2, 6))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits, _ = model(tokens)
        loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1).float(), tokens.flatten())
    loss.backward()
    assert logits.dtype == torch.bfloat16  # the decoder ran in bf16
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


def _unstabilised_slstm(layer, x):
    """The sLSTM recurrence as the paper first writes it, exp() unguarded, in float64: what the stabiliser must match."""
    w_x, b_x = layer.input.weight.double(), layer.input.bias.double()
    w_h = layer.recurrent.weight.double()
    h = c = n = torch.zeros(x.shape[0], layer.hidden_size, dtype=torch.float64)
    outputs = []
    for t in range(x.shape[1]):
        i_pre, f_pre, z_pre, o_pre = (x[:, t].double() @ w_x.T + b_x + h @ w_h.T).chunk(4, dim=-1)
        c = torch.sigmoid(f_pre) * c + torch.exp(i_pre) * torch.tanh(z_pre)
        n = torch.sigmoid(f_pre) * n + torch.exp(i_pre)
        h = torch.sigmoid(o_pre) * c / n
        outputs.append(h)
    return torch.stack(outputs, dim=1)


def test_the_stabilised_slstm_computes_the_papers_recurrence():
    torch.manual_seed(0)
    rnn = CELLS["slstm"](3, 5, num_layers=1, batch_first=True)
    x = torch.randn(4, 7, 3)
    output, (h, c, n, m) = rnn(x)
    torch.testing.assert_close(output.double(), _unstabilised_slstm(rnn.layers[0], x), rtol=1e-5, atol=1e-6)
    assert torch.equal(h[0], output[:, -1]) and (n >= 1).all()


def test_the_slstm_stays_finite_where_its_exponential_gate_overflows():
    torch.manual_seed(0)
    rnn = CELLS["slstm"](3, 5, num_layers=2, batch_first=True)
    with torch.no_grad():
        for layer in rnn.layers:
            layer.input.bias[: layer.hidden_size] = 500.0  # exp(500) is inf in float32 and float64 alike
    x = torch.randn(2, 30, 3)
    output, _ = rnn(x)
    assert torch.isfinite(output).all() and output.abs().max() <= 1  # o * (a weighted average of tanh values)
    output.sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in rnn.parameters())


def test_the_slstm_carries_its_state_across_calls_like_nn_lstm():
    torch.manual_seed(0)
    rnn = CELLS["slstm"](3, 4, num_layers=2, batch_first=True)
    x = torch.randn(2, 6, 3)
    whole, _ = rnn(x)
    first, state = rnn(x[:, :4])
    rest, _ = rnn(x[:, 4:], state)
    torch.testing.assert_close(torch.cat([first, rest], dim=1), whole)
    assert [s.shape for s in state] == [(2, 2, 4)] * 4
