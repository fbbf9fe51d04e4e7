"""NT-ASGD (Merity, Keskar & Socher, 2018): SGD until validation stops improving, then the average of the iterates.

Plain SGD runs until the monitored metric of a validation is worse than the best of those more than `nonmono`
validations before it. From the next step on, every iterate is averaged with equal weights (torch's
`AveragedModel`: the average ASGD keeps, its step being SGD's when its decay is off), and validation, the
checkpoints and the test use that average, as Lightning's `WeightAveraging` does for EMA. Before the switch nothing
is averaged and nothing is swapped: validation and checkpoints hold the current weights.

`finetune=True` is the paper's fine-tuning stage (its `finetune.py`), for a run that starts from a trained
model's weights (`init_from=`): averaging from the first step, and training stops when the average's validation
meets the same non-monotonic condition.
"""

from __future__ import annotations

from typing import Any

from lightning.pytorch.callbacks import WeightAveraging


class NonMonotonicAveraging(WeightAveraging):
    def __init__(self, monitor: str = "val/ppl", nonmono: int = 5, mode: str = "min", finetune: bool = False,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.monitor, self.nonmono, self.sign = monitor, nonmono, 1.0 if mode == "min" else -1.0
        self.finetune = finetune
        self.history: list[float] = []  # the monitored value of each validation, sign-adjusted: lower is better
        # The global step after which averaging began: from the start when fine-tuning.
        self.triggered_at: int | None = 0 if finetune else None

    @property
    def averaging(self) -> bool:
        return self._average_model is not None and int(self._average_model.n_averaged) > 0

    def should_update(self, step_idx: int | None = None, epoch_idx: int | None = None) -> bool:
        return step_idx is not None and self.triggered_at is not None

    def on_validation_end(self, trainer, pl_module) -> None:
        value = trainer.callback_metrics.get(self.monitor)
        if trainer.sanity_checking or value is None or (self.triggered_at is not None and not self.finetune):
            return
        self.history.append(self.sign * float(value))
        if len(self.history) > self.nonmono and self.history[-1] > min(self.history[: -self.nonmono]):
            if self.finetune:
                trainer.should_stop = True  # the average stopped improving: fine-tuning is done
            else:
                self.triggered_at = trainer.global_step

    # Before the switch there is no average: validate, save and finish with the current weights.
    def on_validation_epoch_start(self, trainer, pl_module) -> None:
        if self.averaging:
            super().on_validation_epoch_start(trainer, pl_module)

    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        if self.averaging:
            super().on_validation_epoch_end(trainer, pl_module)

    def on_save_checkpoint(self, trainer, pl_module, checkpoint: dict[str, Any]) -> None:
        if self.averaging:
            super().on_save_checkpoint(trainer, pl_module, checkpoint)

    def on_train_end(self, trainer, pl_module) -> None:
        if self.averaging:
            super().on_train_end(trainer, pl_module)

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "history": self.history, "triggered_at": self.triggered_at}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict(state_dict)
        self.history, self.triggered_at = list(state_dict["history"]), state_dict["triggered_at"]
