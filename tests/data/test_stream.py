import pytest
import torch

from seqlab.data.stream import IGNORE_INDEX, TokenStream


def gather(stream):
    inputs = torch.cat([x for x, _ in stream], dim=1)
    targets = torch.cat([y for _, y in stream], dim=1)
    return inputs, targets


def test_columns_are_contiguous_and_batches_continue_them():
    tokens = torch.arange(101)  # 100 (input, next) pairs
    stream = TokenStream(tokens, batch_size=4, bptt=7)
    batches = list(stream)
    assert len(batches) == len(stream) == 4  # 25 steps per column, in chunks of 7
    assert [x.shape for x, _ in batches] == [(4, 7), (4, 7), (4, 7), (4, 4)]
    inputs, targets = gather(batches)
    for column in range(4):
        assert inputs[column].tolist() == list(range(25 * column, 25 * column + 25))
    assert torch.equal(targets, inputs + 1)


@pytest.mark.parametrize("batch_size", [1, 3, 7, 10, 33])
def test_every_pair_is_scored_once_whatever_the_batch_size(batch_size):
    tokens = torch.randint(0, 50, (101,))
    inputs, targets = gather(TokenStream(tokens, batch_size, bptt=5))
    kept = targets != IGNORE_INDEX
    assert int(kept.sum()) == 100
    # Reading the columns in order gives back the stream: nothing dropped, nothing reordered.
    assert torch.equal(targets[kept], tokens[1:])
    assert torch.equal(inputs[kept], tokens[:-1])


def test_ranks_take_neighbouring_shares_of_one_layout():
    tokens = torch.arange(1001)
    single = gather(TokenStream(tokens, batch_size=6, bptt=9))[1]
    shares = [gather(TokenStream(tokens, batch_size=2, bptt=9, rank=r, world_size=3))[1] for r in range(3)]
    assert torch.equal(torch.cat(shares), single)
    assert len({len(TokenStream(tokens, 2, 9, r, 3)) for r in range(3)}) == 1  # same number of steps


def test_variable_lengths_cut_the_whole_stream_at_new_places_each_pass():
    from seqlab.data.stream import MIN_LENGTH, VariableTokenStream

    tokens = torch.randint(0, 50, (20001,))
    stream = VariableTokenStream(tokens, batch_size=4, bptt=35)
    with pytest.raises(TypeError):
        len(stream)  # unsized: the number of batches changes with each pass
    torch.manual_seed(0)
    first = list(stream)
    second = list(stream)
    lengths = [x.shape[1] for x, _ in first]
    assert lengths != [x.shape[1] for x, _ in second]
    assert min(lengths[:-1]) >= MIN_LENGTH and sum(lengths) == 5000
    # Mostly around bptt, sometimes around bptt / 2 (1 in 20): the mean of the mixture is 0.95 * 35 + 0.05 * 17.5.
    assert 32.0 < sum(lengths[:-1]) / len(lengths[:-1]) < 35.5
    assert sum(length < 26 for length in lengths) >= 1
    inputs, targets = gather(first)  # each pass still covers the stream once, in order
    assert torch.equal(inputs, gather(second)[0])
    kept = targets != IGNORE_INDEX
    assert torch.equal(targets[kept], tokens[1:]) and torch.equal(inputs[kept], tokens[:-1])


def test_a_pass_draws_its_lengths_up_front_from_the_global_generator():
    from seqlab.data.stream import VariableTokenStream

    stream = VariableTokenStream(torch.arange(4001), batch_size=2, bptt=20)
    torch.manual_seed(3)
    expected = [x.shape[1] for x, _ in stream]
    torch.manual_seed(3)
    lengths = []
    for x, _ in stream:  # other draws between batches (dropout) do not change the cuts
        lengths.append(x.shape[1])
        torch.rand(7)
    assert lengths == expected
