"""The classic Keras net: one prediction per window, from the last step, and no state in or out."""

import pytest
import torch

from seqlab.errors import ConfigError
from seqlab.nn.window_lm import WindowLanguageModel


def test_one_next_token_prediction_per_window_from_the_last_step():
    torch.manual_seed(0)
    net = WindowLanguageModel(vocab_size=23, embedding_dim=6, hidden_dim=5).eval()
    tokens = torch.randint(0, 23, (4, 9))
    logits, state = net(tokens)
    assert logits.shape == (4, 1, 23) and state is None
    # The last step's output only: changing the first token changes it, the net reads the whole window.
    output, _ = net.rnn(net.embedding(tokens))
    assert torch.allclose(logits[:, 0], net.decoder(output[:, -1]))
    changed = tokens.clone()
    changed[:, 0] = (changed[:, 0] + 1) % 23
    assert not torch.allclose(net(changed)[0], logits)


def test_an_incoming_state_is_ignored_every_window_starts_from_zeros():
    torch.manual_seed(0)
    net = WindowLanguageModel(vocab_size=11, embedding_dim=4, hidden_dim=3).eval()
    tokens = torch.randint(0, 11, (2, 5))
    carried = (torch.randn(1, 2, 3), torch.randn(1, 2, 3))
    assert torch.equal(net(tokens, carried)[0], net(tokens)[0])


@pytest.mark.parametrize("cell", ["gru", "rnn"])
def test_other_cells(cell):
    logits, state = WindowLanguageModel(vocab_size=7, embedding_dim=4, hidden_dim=3, cell=cell)(torch.zeros(3, 4).long())
    assert logits.shape == (3, 1, 7) and state is None


@pytest.mark.parametrize("settings, message", [({"cell": "transformer"}, "model.net.cell='transformer'"),
                                               ({"dropout": 1.0}, "model.net.dropout must be in")])
def test_bad_settings(settings, message):
    with pytest.raises(ConfigError, match=message):
        WindowLanguageModel(vocab_size=7, **settings)
