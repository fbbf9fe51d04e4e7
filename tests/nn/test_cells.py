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
