"""The LanguageModel trains and scores a window net unchanged: one target per example, nothing carried."""

import functools
import math

import lightning as L
import pytest
import torch
import torch.nn.functional as F

from seqlab.data.stream import TokenStream
from seqlab.data.token_windows import TokenWindows, batch_as_is
from seqlab.errors import ConfigError
from seqlab.models.language_model import LanguageModel
from seqlab.nn.rnn_lm import RNNLanguageModel, detach_state
from seqlab.nn.window_lm import WindowLanguageModel

VOCAB = 13


def window_model() -> LanguageModel:
    torch.manual_seed(0)
    net = functools.partial(WindowLanguageModel, embedding_dim=8, hidden_dim=6)
    return LanguageModel(vocab_size=VOCAB, net=net).eval()


def test_perplexity_over_windows_is_exp_of_the_mean_nll_of_every_window(tmp_path):
    tokens = torch.randint(0, VOCAB, (211,), generator=torch.Generator().manual_seed(1))
    model = window_model()
    windows = TokenWindows(tokens, max_length=7)
    # Independently: every window on its own, through the net, no batching, no module.
    with torch.no_grad():
        nll = [F.cross_entropy(model.net(tokens[i : i + 7][None])[0][0], tokens[i + 7 : i + 8]).item()
               for i in range(211 - 7)]
        expected_acc = sum(int(model.net(tokens[i : i + 7][None])[0][0, 0].argmax() == tokens[i + 7])
                           for i in range(204)) / 204
    loader = torch.utils.data.DataLoader(windows, batch_size=16, collate_fn=batch_as_is)  # 13 batches, last 12
    trainer = L.Trainer(logger=False, enable_progress_bar=False, enable_model_summary=False,
                        default_root_dir=tmp_path)
    result = trainer.test(model, dataloaders=loader, verbose=False)[0]
    assert result["test/ppl"] == pytest.approx(math.exp(sum(nll) / len(nll)), rel=1e-5)
    assert result["test/acc"] == pytest.approx(expected_acc)
    assert model.state.get("test") is None  # nothing carried between windows


def test_a_training_step_on_windows_learns(tmp_path):
    tokens = torch.arange(120) % 5  # 0 1 2 3 4 0 1 ...: the next token follows from the window
    model, windows = window_model().train(), TokenWindows(tokens, max_length=3)
    loader = torch.utils.data.DataLoader(windows, batch_size=8, shuffle=True, collate_fn=batch_as_is)
    model.make_optimizer = functools.partial(torch.optim.Adam, lr=0.05)
    trainer = L.Trainer(max_epochs=15, logger=False, enable_progress_bar=False, enable_model_summary=False,
                        enable_checkpointing=False, default_root_dir=tmp_path)
    trainer.fit(model, train_dataloaders=loader)
    in_order = torch.utils.data.DataLoader(windows, batch_size=8, collate_fn=batch_as_is)
    assert trainer.test(model, dataloaders=in_order, verbose=False)[0]["test/acc"] == 1.0


def test_a_stateless_net_detaches_nothing():
    assert detach_state(None) is None


def test_a_net_that_does_not_fit_the_data_mode_is_one_clear_error():
    tokens = torch.randint(0, VOCAB, (100,))
    batch = next(iter(TokenStream(tokens, batch_size=2, bptt=8)))  # 8 targets per column
    with pytest.raises(ConfigError, match="a window net .model=keras_lstm. needs data.mode=windows"):
        window_model().test_step(batch, 0)
    stream_model = LanguageModel(vocab_size=VOCAB, net=functools.partial(RNNLanguageModel, embedding_dim=4,
                                                                           hidden_dim=4, num_layers=1))
    with pytest.raises(ConfigError, match="model.net gives 7 prediction.s. per example but the data has 1"):
        stream_model.test_step(TokenWindows(tokens, max_length=7).__getitems__([0, 1]), 0)


def test_generation_with_a_window_net_reads_the_whole_text_so_far():
    model = window_model()
    model.vocabulary = ["<eos>"] + [f"w{i}" for i in range(1, VOCAB)]
    text = model.generate("w3 w5", num_tokens=6, temperature=0)
    ids = [0, 3, 5]  # <eos>, then the prompt
    with torch.no_grad():
        for _ in range(6):
            ids.append(int(model.net(torch.tensor([ids]))[0][0, -1].argmax()))
    assert text.replace("\n", " ").split() == ["w3", "w5"] + [model.vocabulary[i] for i in ids[3:] if i]
