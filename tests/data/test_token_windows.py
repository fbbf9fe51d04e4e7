"""data.mode=windows: each token after the first max_length is the target of one window of the tokens before it."""

import pytest
import torch

from seqlab.data.text import TextDataModule
from seqlab.data.token_windows import TokenWindows
from seqlab.errors import ConfigError


def windows_data(corpus_dir, **overrides) -> TextDataModule:
    settings = {"data_dir": str(corpus_dir), "mode": "windows", "max_length": 5, "batch_size": 7,
                "eval_batch_size": 9, **overrides}
    data = TextDataModule(**settings)
    data.setup("fit")
    return data


def every_window(loader) -> tuple[torch.Tensor, torch.Tensor]:
    batches = list(loader)
    return torch.cat([inputs for inputs, _ in batches]), torch.cat([targets for _, targets in batches])


def test_a_window_is_the_max_length_tokens_before_its_target():
    tokens = torch.tensor([10, 11, 12, 13, 14, 15])
    windows = TokenWindows(tokens, max_length=4)
    assert len(windows) == 2
    inputs, target = windows[1]
    assert inputs.tolist() == [11, 12, 13, 14] and target.tolist() == [15]
    inputs, targets = windows.__getitems__([1, 0])
    assert inputs.tolist() == [[11, 12, 13, 14], [10, 11, 12, 13]] and targets.tolist() == [[15], [14]]
    with pytest.raises(IndexError):
        windows[2]


def test_windows_share_the_token_tensor_rather_than_copy_the_corpus():
    tokens = torch.arange(100_000)
    windows = TokenWindows(tokens, max_length=50)
    assert windows.tokens is tokens
    assert [v for v in vars(windows).values() if isinstance(v, torch.Tensor)] == [tokens]


@pytest.mark.parametrize("split, loader", [("validation", "val_dataloader"), ("test", "test_dataloader")])
def test_evaluation_scores_every_token_after_the_first_max_length_once_in_order(corpus_dir, split, loader):
    data = windows_data(corpus_dir)
    tokens = data.corpus.splits[split]
    inputs, targets = every_window(getattr(data, loader)())
    assert targets.shape == (tokens.numel() - 5, 1) and inputs.shape == (tokens.numel() - 5, 5)
    assert torch.equal(targets[:, 0], tokens[5:])  # in stream order, each once
    assert torch.equal(inputs, tokens.unfold(0, 5, 1)[:-1])  # the 5 tokens before each target
    first_inputs, first_targets = next(iter(getattr(data, loader)()))
    assert first_inputs.shape == (9, 5) and first_targets.shape == (9, 1)  # eval_batch_size


def test_training_shuffles_every_window_once_and_the_seed_fixes_the_order(corpus_dir):
    data = windows_data(corpus_dir)
    tokens = data.corpus.splits["train"]
    torch.manual_seed(0)
    inputs, targets = every_window(data.train_dataloader())
    assert targets.shape == (tokens.numel() - 5, 1)
    expected = tokens.unfold(0, 6, 1)  # each row: the window and its target
    shuffled = torch.cat([inputs, targets], dim=1)
    assert not torch.equal(shuffled, expected)
    assert sorted(map(tuple, shuffled.tolist())) == sorted(map(tuple, expected.tolist()))
    torch.manual_seed(0)
    assert torch.equal(every_window(data.train_dataloader())[1], targets)
    torch.manual_seed(1)
    assert not torch.equal(every_window(data.train_dataloader())[1], targets)


def test_a_killed_epoch_resumes_on_the_same_windows(corpus_dir):
    from seqlab.data.resume import rng_states

    data = windows_data(corpus_dir)
    torch.manual_seed(3)
    epoch_rng = rng_states()
    whole = [targets for _, targets in data.train_dataloader()]
    torch.manual_seed(99)  # the resumed process starts from another random state
    data.load_state_dict({"batches": 4, "epoch_rng": epoch_rng, "rng": epoch_rng})
    rest = [targets for _, targets in data.train_dataloader()]
    assert len(rest) == len(whole) - 4 and all(torch.equal(a, b) for a, b in zip(rest, whole[4:]))


def test_stream_mode_is_unchanged_by_default(corpus_dir):
    data = TextDataModule(data_dir=str(corpus_dir), batch_size=4, bptt=8)
    data.setup("fit")
    inputs, targets = next(iter(data.train_dataloader()))
    assert inputs.shape == targets.shape == (4, 8)


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"mode": "sentences"}, "data.mode='sentences' is not one of ['stream', 'windows']"),
        ({"max_length": 0}, "data.max_length must be a positive integer, got 0"),
    ],
)
def test_bad_settings_are_refused_when_made(corpus_dir, overrides, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        TextDataModule(data_dir=str(corpus_dir), **overrides)


def test_windows_longer_than_a_split_say_how_long_they_may_be(corpus_dir):
    data = windows_data(corpus_dir, max_length=100_000)
    size = data.corpus.splits["validation"].numel()
    with pytest.raises(ConfigError, match=f"data.max_length=100000 leaves no window in the validation split "
                                          f"\\({size} tokens\\); set data.max_length below {size}"):
        data.val_dataloader()
