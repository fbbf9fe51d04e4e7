"""NT-ASGD: plain SGD until validation stops improving, then the average of every iterate since."""

from __future__ import annotations

import lightning as L
import torch
from torch.utils.data import DataLoader, TensorDataset

from seqlab.averaging import NonMonotonicAveraging


class Regression(L.LightningModule):
    """A linear model whose validation metric is scripted, so the switch happens at a known epoch."""

    def __init__(self, scripted: list[float]) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(3, 1)
        self.scripted = scripted
        self.iterates: list[torch.Tensor] = []  # the weights after every optimiser step

    def training_step(self, batch, batch_idx):
        x, y = batch
        return torch.nn.functional.mse_loss(self.layer(x), y)

    def on_train_batch_end(self, outputs, batch, batch_idx) -> None:
        self.iterates.append(self.layer.weight.detach().clone())

    def validation_step(self, batch, batch_idx):
        self.validated_with = self.layer.weight.detach().clone()

    def on_validation_epoch_end(self) -> None:
        if not self.trainer.sanity_checking:
            self.log("val/ppl", self.scripted[self.current_epoch])

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.05)


def fit(scripted, nonmono=2, finetune=False):
    torch.manual_seed(0)
    data = TensorDataset(torch.randn(40, 3), torch.randn(40, 1))
    model = Regression(scripted)
    callback = NonMonotonicAveraging(nonmono=nonmono, finetune=finetune)
    trainer = L.Trainer(max_epochs=len(scripted), callbacks=[callback], logger=False, enable_checkpointing=False,
                        enable_progress_bar=False,
                        enable_model_summary=False, num_sanity_val_steps=0)
    trainer.fit(model, DataLoader(data, batch_size=10), DataLoader(data, batch_size=40))
    return model, callback


def test_no_averaging_while_validation_improves():
    model, callback = fit([5.0, 4.0, 3.0, 2.0])
    assert callback.triggered_at is None and not callback.averaging
    assert torch.equal(model.layer.weight, model.iterates[-1])  # the last iterate, not an average
    assert torch.equal(model.validated_with, model.iterates[-1])  # and validation saw the current weights


def test_after_the_switch_the_model_is_the_mean_of_the_iterates_since():
    # Epoch 3 (index 3) is worse than the best of those more than 2 validations before it: switch after its 16 steps.
    model, callback = fit([5.0, 4.0, 4.5, 4.6, 4.7, 4.8])
    assert callback.triggered_at == 16 and callback.averaging
    expected = torch.stack(model.iterates[16:]).mean(0)
    assert torch.allclose(model.layer.weight, expected, atol=1e-6)
    assert torch.allclose(model.validated_with, expected, atol=1e-6)  # the last validation saw the average too


def test_fine_tuning_averages_from_the_first_step_and_stops_when_the_average_stops_improving():
    # Epoch 3 is worse than the best of those more than 2 before it: fine-tuning ends there, 4 epochs of 6.
    model, callback = fit([5.0, 4.0, 4.5, 4.6, 4.7, 4.8], finetune=True)
    assert callback.triggered_at == 0 and len(model.iterates) == 16
    expected = torch.stack(model.iterates).mean(0)
    assert torch.allclose(model.layer.weight, expected, atol=1e-6)
    assert torch.allclose(model.validated_with, expected, atol=1e-6)


def test_fine_tuning_runs_on_while_the_average_improves():
    model, callback = fit([5.0, 4.0, 3.0, 2.0], finetune=True)
    assert len(model.iterates) == 16 and callback.averaging
