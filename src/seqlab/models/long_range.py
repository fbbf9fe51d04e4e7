"""Training and scoring a recurrent cell on a long-range memory task (data=long_range), against the score of
remembering nothing, and the gradient each time step receives.

Logged per split (val/, test/): `loss`, the monitored figure for both tasks (adding: the MSE, copy: the
cross-entropy per step); adding also `mse` and `baseline_mse` (always answering 1.0), copy `acc` (the 10
recalled symbols; chance 1/8) and `baseline_loss` (the memoryless 10 log 8 / (gap + 20)). At test time the
first test batch's gradient norms per step go to `gradient_norms.json` in the run folder (the trainer's
`default_root_dir`), and their first-to-last ratio to `test/gradient_first_over_last`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F

from seqlab.data.long_range import COPY_LENGTH, TASKS, copy_baseline_loss
from seqlab.errors import ConfigError
from seqlab.models.long_range_gradients import hidden_gradient_norms
from seqlab.models.optimizers import optimizers_for
from seqlab.models.weighted_mean import WeightedMean
from seqlab.nn.long_range_rnn import LongRangeRNN
from seqlab.runs import write_json

GRADIENT_FILE = "gradient_norms.json"


class LongRangeModel(L.LightningModule):
    def __init__(
        self,
        task: str,
        n_inputs: int,
        n_outputs: int,
        net: Callable[..., torch.nn.Module] = LongRangeRNN,
        optimizer: Callable[..., torch.optim.Optimizer] | None = None,
        scheduler: Callable[..., object] | None = None,
        monitor: str = "val/loss",
    ) -> None:
        super().__init__()
        if task not in TASKS:
            raise ConfigError(f"task={task} is not one of {', '.join(TASKS)}: it comes from data.task")
        # Plain data only, so checkpoints load with torch.load(weights_only=True): the net, optimiser and schedule
        # are rebuilt from the run's config (model.net, .optimizer, .scheduler).
        self.save_hyperparameters(ignore=["net", "optimizer", "scheduler"], logger=False)
        self.make_optimizer, self.make_scheduler = optimizer, scheduler
        # `net` is `model.net`, completed with the data's sizes and the readout the task needs.
        self.net = net(n_inputs=n_inputs, n_outputs=n_outputs, readout="last" if task == "adding" else "every")
        names = ("loss", "mse", "baseline_mse") if task == "adding" else ("loss", "acc", "baseline_loss")
        # Weighted by sequences (recalled symbols for acc): exact over uneven batches and processes.
        self.scores = torch.nn.ModuleDict(
            {split: torch.nn.ModuleDict({name: WeightedMean() for name in names}) for split in ("val", "test")}
        )
        self.gradient_norms: np.ndarray | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def sequence_losses(self, output: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Each sequence's own loss [B]: squared error of the sum (adding), mean cross-entropy per step (copy)."""
        if self.hparams.task == "adding":
            return (output.float() - y).square().sum(-1)
        return F.cross_entropy(output.float().transpose(1, 2), y, reduction="none").mean(-1)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = self.sequence_losses(self.net(x), y).mean()
        self.log("train/loss", loss, on_step=False, on_epoch=True, prog_bar=True, batch_size=x.shape[0], sync_dist=True)
        return loss

    def _score(self, batch, split: str) -> None:
        x, y = batch
        output = self.net(x)
        scores, count = self.scores[split], x.shape[0]
        loss = self.sequence_losses(output, y).mean()
        scores["loss"].update(loss, weight=count)
        if self.hparams.task == "adding":
            scores["mse"].update(loss, weight=count)
            scores["baseline_mse"].update((y - 1.0).square().mean(), weight=count)
        else:
            recalled = output[:, -COPY_LENGTH:].max(-1).indices == y[:, -COPY_LENGTH:]
            scores["acc"].update(recalled.float().mean(), weight=recalled.numel())
            scores["baseline_loss"].update(torch.tensor(copy_baseline_loss(y.shape[1]), device=y.device), weight=count)

    def _log_scores(self, split: str) -> dict[str, torch.Tensor]:
        values = {f"{split}/{name}": metric.compute() for name, metric in self.scores[split].items()}
        for metric in self.scores[split].values():
            metric.reset()
        return values

    def validation_step(self, batch, batch_idx):
        self._score(batch, "val")

    def on_validation_epoch_end(self) -> None:
        self.log_dict(self._log_scores("val"), prog_bar=True)

    def on_test_epoch_start(self) -> None:
        self.gradient_norms = None

    def test_step(self, batch, batch_idx):
        self._score(batch, "test")
        if batch_idx == 0:  # the test set is fixed: every cell and seed is measured on the same sequences
            self.gradient_norms = hidden_gradient_norms(self.net, self.sequence_losses, *batch)

    def on_test_epoch_end(self) -> None:
        scores = self._log_scores("test")
        norms = self.gradient_norms
        if norms is not None:
            scores["test/gradient_first_over_last"] = torch.tensor(float(norms[0] / norms[-1]))
            if self.trainer.is_global_zero:
                self._save_gradient_norms(Path(self.trainer.default_root_dir) / GRADIENT_FILE, norms)
        self.log_dict(scores)

    def _save_gradient_norms(self, path: Path, norms: np.ndarray) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json(path, {
            "task": self.hparams.task, "cell": self.net.cell_name, "hidden_dim": self.net.hidden_dim,
            "steps": len(norms), "norms": [float(n) for n in norms],
            "what": "mean over the first test batch of ||d loss_b / d h_t||, t = 0 .. steps - 1",
        })

    def configure_optimizers(self):
        return optimizers_for(self, self.make_optimizer, self.make_scheduler, self.hparams.monitor)

    def datamodule_kwargs(self) -> dict:
        """The data needs nothing from a checkpoint: it is generated from its own config."""
        return {}
