import functools
import inspect
import math

import lightning as L
import pytest
import torch
import torch.nn.functional as F

from seqlab.data.stream import TokenStream
from seqlab.errors import ConfigError
from seqlab.models.language_model import LanguageModel
from seqlab.nn.rnn_lm import RNNLanguageModel

VOCAB = 17


def make_model(**overrides) -> LanguageModel:
    """A small LanguageModel; a net setting (hidden_dim, cell...) or a module one (loss_scale...) in `overrides`."""
    torch.manual_seed(0)
    net = {"embedding_dim": 8, "hidden_dim": 12, "num_layers": 2, "dropout": 0.0}
    net.update({k: overrides.pop(k) for k in list(overrides) if k in inspect.signature(RNNLanguageModel).parameters})
    return LanguageModel(**{"vocab_size": VOCAB, **overrides}, net=functools.partial(RNNLanguageModel, **net)).eval()


def stream_ppl(model: LanguageModel, tokens, batch_size: int, bptt: int, carry: bool = True) -> float:
    """The module's own evaluation pass: its test hooks, in the order Lightning calls them."""
    model.on_test_epoch_start()
    with torch.no_grad():
        for batch_idx, batch in enumerate(TokenStream(tokens, batch_size, bptt)):
            if not carry:
                model.on_test_epoch_start()
            model.test_step(batch, batch_idx)
    ppl = model.test_nll.compute().exp().item()
    model.test_nll.reset()
    model.test_acc.reset()
    return ppl


def reference_ppl(model: LanguageModel, tokens) -> float:
    """Independently: one pass over the whole stream, one column, no chunking, mean NLL of every next token."""
    with torch.no_grad():
        logits, _ = model.net(tokens[None, :-1])
        return math.exp(F.cross_entropy(logits[0], tokens[1:]).item())


def test_perplexity_is_exp_of_the_mean_nll_of_the_whole_stream_tail_included():
    tokens = torch.randint(0, VOCAB, (503,), generator=torch.Generator().manual_seed(1))
    model = make_model()
    expected = reference_ppl(model, tokens)
    # One column, any chunking: the carried state makes it the same computation.
    assert stream_ppl(model, tokens, batch_size=1, bptt=7) == pytest.approx(expected, rel=1e-5)
    assert stream_ppl(model, tokens, batch_size=1, bptt=1000) == pytest.approx(expected, rel=1e-5)


def test_several_columns_score_every_token_once():
    tokens = torch.randint(0, VOCAB, (503,), generator=torch.Generator().manual_seed(2))
    model = make_model()
    # 502 pairs in 3 columns of 168 (2 padded): each column is its own independent stream.
    columns = [tokens[i * 168 : i * 168 + 169] for i in range(3)]
    total_nll = 0.0
    with torch.no_grad():
        for column in columns:
            logits, _ = model.net(column[None, :-1])
            total_nll += F.cross_entropy(logits[0], column[1:], reduction="sum").item()
    expected = math.exp(total_nll / 502)
    assert stream_ppl(model, tokens, batch_size=3, bptt=10) == pytest.approx(expected, rel=1e-5)


def test_state_really_carries_from_batch_to_batch():
    # A period of 12 tokens over 3 symbols: the next token depends on where in the period we are, which
    # the last 2 tokens do not tell. With batches of 2 steps, only a model that keeps its state across
    # batches can know it.
    period = torch.tensor([0, 0, 1, 2, 0, 1, 1, 2, 2, 0, 2, 1])
    tokens = period.repeat(100)
    model = make_model(num_layers=1, hidden_dim=32, embedding_dim=16)
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.02)
    for _ in range(4):
        model.on_train_epoch_start()
        for batch in TokenStream(tokens, batch_size=4, bptt=2):
            logits, state = model.net(batch[0], model.state.get("train"))
            model.state["train"] = tuple(s.detach() for s in state)
            loss = F.cross_entropy(logits.flatten(0, 1), batch[1].flatten())
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    model.eval()
    carried = stream_ppl(model, tokens, batch_size=4, bptt=2)
    reset_every_batch = stream_ppl(model, tokens, batch_size=4, bptt=2, carry=False)
    assert carried < 1.5  # it learned the period
    assert reset_every_batch > 2 * carried  # and it needed the state from the previous batch


def test_sequence_loss_scale_multiplies_by_the_bptt_steps():
    tokens = torch.randint(0, VOCAB, (61,), generator=torch.Generator().manual_seed(3))
    batch = next(iter(TokenStream(tokens, batch_size=2, bptt=6)))
    token_model, sequence_model = make_model(), make_model(loss_scale="sequence")
    token_model.log = sequence_model.log = lambda *a, **k: None
    token_loss = token_model.training_step(batch, 0)
    assert sequence_model.training_step(batch, 0).item() == pytest.approx(6 * token_loss.item(), rel=1e-6)


def test_bad_options_are_config_errors():
    with pytest.raises(ConfigError, match="cell"):
        make_model(cell="transformer")
    with pytest.raises(ConfigError, match="tie_weights"):
        make_model(tie_weights=True)
    with pytest.raises(ConfigError, match="loss_scale"):
        make_model(loss_scale="batch")
    with pytest.raises(ConfigError, match="lr_length"):
        make_model(lr_length=0)


def test_greedy_generation_is_deterministic_and_uses_the_vocabulary():
    vocabulary = ["<eos>", "<unk>"] + [f"w{i}" for i in range(VOCAB - 2)]
    model = make_model(vocabulary=vocabulary)
    first = model.generate("w1 w2", num_tokens=10, temperature=0)
    assert first == model.generate("w1 w2", num_tokens=10, temperature=0)
    assert first.replace("\n", " ").split()[:2] == ["w1", "w2"]
    L.seed_everything(0)
    sampled = model.generate("", num_tokens=30, temperature=1.0)
    assert set(sampled.split()) <= set(vocabulary)


def test_lr_length_scales_each_step_to_its_batch_length_and_puts_the_rate_back():
    from torch.utils.data import DataLoader

    tokens = torch.randint(0, VOCAB, (11,), generator=torch.Generator().manual_seed(4))
    batch = next(iter(TokenStream(tokens, batch_size=2, bptt=5)))  # one batch of 5 steps
    model = make_model(optimizer=functools.partial(torch.optim.SGD, lr=1.0), lr_length=10).train()
    reference = make_model().train()
    inputs, targets = batch
    logits, _ = reference.net(inputs)
    F.cross_entropy(logits.flatten(0, 1), targets.flatten()).backward()
    expected = {name: p.detach() - 0.5 * p.grad for name, p in reference.net.named_parameters()}  # lr * 5 / 10

    trainer = L.Trainer(max_steps=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, limit_val_batches=0)
    trainer.fit(model, DataLoader(TokenStream(tokens, batch_size=2, bptt=5), batch_size=None))
    for name, p in model.net.named_parameters():
        assert torch.allclose(p, expected[name], atol=1e-6), name
    assert trainer.optimizers[0].param_groups[0]["lr"] == 1.0
