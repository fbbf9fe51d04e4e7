"""AWD-LSTM's regularisers each do what they say, and the net trains inside LanguageModel with its state carried."""

from __future__ import annotations

import functools

import pytest
import torch
import torch.nn.functional as F

from seqlab.errors import ConfigError
from seqlab.models.language_model import LanguageModel
from seqlab.nn.awd_lstm import AWDLSTM, WeightDroppedLSTM, embedding_dropout, locked_dropout


def test_locked_dropout_uses_one_mask_for_every_time_step():
    torch.manual_seed(0)
    out = locked_dropout(torch.ones(4, 9, 6), 0.5, training=True)
    zeros = out == 0
    assert zeros.any() and not zeros.all()
    assert torch.equal(zeros, zeros[:, :1].expand_as(zeros))  # the same units dropped at every step
    assert not torch.equal(zeros[0], zeros[1]) or not torch.equal(zeros[1], zeros[2])  # masks differ by sequence
    assert torch.allclose(out[~zeros], torch.tensor(2.0))  # kept units scaled by 1 / (1 - p)
    assert torch.equal(locked_dropout(torch.ones(2, 3, 4), 0.5, training=False), torch.ones(2, 3, 4))


def test_embedding_dropout_drops_whole_words():
    torch.manual_seed(0)
    embedding = torch.nn.Embedding(20, 5)
    tokens = torch.arange(20).repeat(3, 1)  # every word three times
    out = embedding_dropout(embedding, tokens, 0.5, training=True)
    dropped = (out == 0).all(-1)  # a position whose whole vector is zero
    assert dropped.any() and not dropped.all()
    assert torch.equal(dropped[0], dropped[1]) and torch.equal(dropped[1], dropped[2])  # a word is gone everywhere
    kept = ~dropped[0]
    assert torch.allclose(out[0][kept], embedding.weight[kept] * 2)


def test_weight_drop_masks_the_recurrent_matrix_once_per_pass_and_trains_the_raw_one():
    torch.manual_seed(0)
    layer = WeightDroppedLSTM(3, 4, weight_dropout=0.5).train()
    x = torch.randn(2, 7, 3)
    out, _ = layer(x)
    dropped = layer.lstm.weight_hh_l0
    assert (dropped == 0).any() and not torch.equal(dropped, layer.weight_hh_raw)
    # The pass equals PyTorch's LSTM run with that one dropped matrix at every step.
    reference = torch.nn.LSTM(3, 4, batch_first=True)
    with torch.no_grad():
        for name in ("weight_ih_l0", "bias_ih_l0", "bias_hh_l0"):
            getattr(reference, name).copy_(getattr(layer.lstm, name))
        reference.weight_hh_l0.copy_(dropped)
    assert torch.allclose(out, reference(x)[0], atol=1e-6)
    out.sum().backward()
    assert layer.weight_hh_raw.grad is not None and (layer.weight_hh_raw.grad[dropped == 0] == 0).all()
    assert {name for name, _ in layer.named_parameters()} >= {"weight_hh_raw", "lstm.weight_ih_l0"}
    assert "lstm.weight_hh_l0" not in dict(layer.named_parameters())  # only the raw matrix is trained
    layer.eval()
    layer(x)
    assert torch.equal(layer.lstm.weight_hh_l0, layer.weight_hh_raw)  # no drop at evaluation
    assert "lstm.weight_hh_l0" not in dict(layer.named_parameters())  # and still not a second parameter
    layer.train()
    layer(x)  # back to dropping: the LSTM still takes a plain tensor as its matrix


def test_tied_weights_size_the_last_layer_to_the_embedding():
    net = AWDLSTM(50, embedding_dim=6, hidden_dim=10, num_layers=3)
    assert [layer.lstm.hidden_size for layer in net.layers] == [10, 10, 6]
    assert net.decoder.weight is net.embedding.weight
    logits, state = net(torch.randint(50, (2, 5)))
    assert logits.shape == (2, 5, 50) and len(state) == 3 and state[2][0].shape == (1, 2, 6)
    raw, dropped = net.last_outputs
    assert raw.shape == dropped.shape == (2, 5, 6)


def test_bad_settings_are_one_line():
    with pytest.raises(ConfigError, match=r"^model.net.weight_dropout=1.0 must be in \[0, 1\)$"):
        AWDLSTM(10, weight_dropout=1.0)


def test_it_trains_as_a_language_model_with_its_state_carried():
    torch.manual_seed(0)
    net = functools.partial(AWDLSTM, embedding_dim=8, hidden_dim=12, num_layers=2, dropout=0.1, dropout_hidden=0.1,
                            dropout_input=0.1, dropout_embedding=0.05, weight_dropout=0.2, activation_penalty=0,
                            temporal_penalty=0)
    model = LanguageModel(vocab_size=30, net=net)
    tokens = torch.randint(30, (4, 11))

    def evaluated() -> float:  # without dropout, from a zero state
        with torch.no_grad():
            logits = model.net.eval()(tokens[:, :-1])[0]
        model.net.train()
        return F.cross_entropy(logits.flatten(0, 1), tokens[:, 1:].flatten()).item()

    before = evaluated()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    for step in range(60):
        model.on_train_epoch_start()
        loss = model.training_step((tokens[:, :-1], tokens[:, 1:]), step)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert isinstance(model.state["train"], list) and not model.state["train"][0][0].requires_grad
    assert evaluated() < before - 0.5


def test_model_awd_lstm_trains_from_the_command_line_and_its_checkpoint_evaluates_the_same(tmp_path):
    import json

    from tests.conftest import write_corpus
    from tests.test_scripts import run_script

    write_corpus(tmp_path / "corpus")
    sizes = ["model.net.embedding_dim=8", "model.net.hidden_dim=12", "model.net.num_layers=2", "model.optimizer.lr=1",
             "data.batch_size=4", "data.bptt=8", "trainer.max_epochs=1"]
    run_script("train.py", "model=awd_lstm", "data=text", "data.data_dir=corpus", *sizes,
               f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path)
    trained = json.loads((tmp_path / "run" / "metrics.json").read_text())
    run_script("eval.py", f"ckpt_path={trained['best_checkpoint']}", f"hydra.run.dir={tmp_path / 'eval'}", cwd=tmp_path)
    evaluated = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert evaluated["test/ppl"] == pytest.approx(trained["test/ppl"], rel=1e-5)


def test_ar_and_tar_equal_an_independent_computation_and_train_the_net():
    torch.manual_seed(0)
    net = AWDLSTM(20, embedding_dim=4, hidden_dim=6, num_layers=2, activation_penalty=2.0, temporal_penalty=1.0)
    net(torch.randint(20, (3, 7)))
    raw, dropped = net.last_outputs
    ar = 2.0 * sum(float(v) ** 2 for v in dropped.flatten()) / dropped.numel()
    tar = sum(float(raw[b, t, k] - raw[b, t - 1, k]) ** 2 for b in range(3) for t in range(1, 7) for k in range(4))
    tar /= 3 * 6 * 4
    assert net.regularization().item() == pytest.approx(ar + tar, rel=1e-5)
    model = LanguageModel(vocab_size=20, net=functools.partial(AWDLSTM, embedding_dim=4, hidden_dim=6, num_layers=2))
    tokens = torch.randint(20, (3, 8))
    loss = model.training_step((tokens[:, :-1], tokens[:, 1:]), 0)
    nll = F.cross_entropy(model.net.decoder(model.net.last_outputs[1]).flatten(0, 1), tokens[:, 1:].flatten())
    assert loss.item() == pytest.approx(nll.item() + model.net.regularization().item(), rel=1e-5)
