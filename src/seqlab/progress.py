"""Progress for runs nobody watches: one log line per epoch and every few minutes, where a rich bar prints nothing.

Sweep workers, SLURM jobs and `nohup` runs write to files. There Lightning's rich bar is silent, so a long run
showed nothing between its config and its final metrics. `progress_bar()` keeps the rich bar on a terminal and
otherwise returns `LineProgress`, which logs through the `seqlab` logger: Hydra sends that to stdout and to the
run's `train.log`, so the lines land wherever the job's output goes.
"""

from __future__ import annotations

import logging
import math
import sys
import time

import lightning as L
from lightning.pytorch.callbacks import ProgressBar, RichProgressBar
from lightning.pytorch.trainer.states import TrainerFn

from seqlab.errors import ConfigError

log = logging.getLogger("seqlab")

STYLES = ("auto", "rich", "lines")


def progress_bar(
    style: str = "auto", every_seconds: float = 180.0, monitor: str | None = None, mode: str = "min"
) -> ProgressBar:
    """The rich bar on a terminal, log lines elsewhere; `style=rich|lines` forces one (Lightning allows one bar)."""
    if style not in STYLES:
        raise ConfigError(f"callbacks.progress_bar.style={style!r}: choose one of {', '.join(STYLES)}")
    if style == "rich" or (style == "auto" and sys.stdout.isatty()):
        return RichProgressBar()
    return LineProgress(every_seconds=every_seconds, monitor=monitor, mode=mode)


class LineProgress(ProgressBar):
    """Log a line at the end of each training epoch, and within it every `every_seconds` (0: every batch).

    A line holds the epoch (counted from 1), the step (global, and the batch within the epoch), the mean training
    loss of the epoch so far, the monitored validation metric (last value and best), the learning rate, tokens or
    windows per second (from the module's `train_tokens` / `train_windows` counters) and the time left in the
    epoch and the run. A validate or test pass outside fit logs its metrics in one line, so the log file holds them.
    The loss is the one `training_step` returns (what the optimiser minimises: per token, times bptt under
    `loss_scale=sequence`), summed on the device and read only when a line is written; the logged `train/loss`
    would be stale mid-epoch for a module that logs it per epoch.
    """

    def __init__(self, every_seconds: float = 180.0, monitor: str | None = None, mode: str = "min") -> None:
        super().__init__()
        if mode not in ("min", "max"):
            raise ConfigError(f"callbacks.progress_bar.mode={mode!r}: choose min or max")
        self.every_seconds = every_seconds
        self.monitor = monitor
        self.mode = mode
        self._enabled = True
        self.last: float | None = None  # the monitored metric: last value seen in fit, and the best
        self.best: float | None = None
        self._last_epoch_seconds: float | None = None  # train + validation time of the last full epoch

    def enable(self) -> None:
        self._enabled = True

    def disable(self) -> None:
        self._enabled = False

    # --- hooks ------------------------------------------------------------------------------------------------
    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.monitor = self.monitor or pl_module.hparams.get("monitor")
        # A resumed run: the checkpoint callback restored the best score of the epochs before.
        checkpoint = trainer.checkpoint_callback
        score = getattr(checkpoint, "best_model_score", None)
        if score is not None and getattr(checkpoint, "monitor", None) == self.monitor:
            self.best = float(score)
        self._start_counting(pl_module)  # a run resumed mid-epoch gets no on_train_epoch_start for that epoch

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._start_counting(pl_module)

    def _start_counting(self, pl_module: L.LightningModule) -> None:
        self._epoch_started = self._last_batch_at = self._last_line_at = time.monotonic()
        self._loss_sum, self._loss_batches, self._batch = 0.0, 0, 0
        self._units_at_start = self._units(pl_module)[1]

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        self._last_batch_at, self._batch = time.monotonic(), batch_idx + 1
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        if loss is not None:
            # Lightning divides the returned loss by accumulate_grad_batches; undo it. No .item(): no GPU sync.
            self._loss_sum = self._loss_sum + loss.detach() * trainer.accumulate_grad_batches
            self._loss_batches += 1
        if self._enabled and self._last_batch_at - self._last_line_at >= self.every_seconds:
            self._last_line_at = self._last_batch_at
            self._log_line(trainer, pl_module, done=False)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        if trainer.state.fn == TrainerFn.FITTING:
            value = trainer.callback_metrics.get(self.monitor) if self.monitor else None
            if value is not None:
                self.last = float(value)
                better = min if self.mode == "min" else max
                self.best = self.last if self.best is None else better(self.best, self.last)
        elif self._enabled:  # trainer.validate(): one line, so the log file holds the result
            self._log_results(trainer, "val")

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._enabled:
            self._log_results(trainer, "test")

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # Validation has run by now (it is part of the epoch), so the line shows this epoch's metric.
        self._last_epoch_seconds = time.monotonic() - self._epoch_started
        if self._enabled:
            self._log_line(trainer, pl_module, done=True)

    # --- the line ---------------------------------------------------------------------------------------------
    def _log_line(self, trainer: L.Trainer, pl_module: L.LightningModule, done: bool) -> None:
        epoch, max_epochs, batch = trainer.current_epoch + 1, trainer.max_epochs, self._batch
        if not (max_epochs and max_epochs > 0):  # -1: no limit
            max_epochs = None
        batches = self.total_train_batches
        known = math.isfinite(batches) and batches > 0
        parts = [f"epoch {epoch}" + (f"/{max_epochs}" if max_epochs else "") + (" done" if done else "")]
        parts.append(f"step {trainer.global_step} (batch {batch}/{batches if known else '?'})")
        if self._loss_batches:
            parts.append(f"loss {float(self._loss_sum) / self._loss_batches:.4f}")
        if self.monitor:
            shown = "-" if self.last is None else f"{self.last:.5g}"
            parts.append(f"{self.monitor} {shown}" + (f" (best {self.best:.5g})" if self.best is not None else ""))
        if trainer.optimizers:
            parts.append(f"lr {trainer.optimizers[0].param_groups[0]['lr']:.3g}")
        train_seconds = self._last_batch_at - self._epoch_started
        unit, count = self._units(pl_module)
        if unit and train_seconds > 0:
            parts.append(f"{(count - self._units_at_start) / train_seconds:,.0f} {unit}/s")

        # Time left: the rest of this epoch at its pace so far; each later epoch as long as the last full one.
        elapsed, left = time.monotonic() - self._epoch_started, []
        if done:
            parts.append(f"took {duration(elapsed)}")
            epoch_left = 0.0
        elif known and batch:
            epoch_left = train_seconds / batch * (batches - batch)
            left.append(f"epoch {duration(epoch_left)}")
        else:
            epoch_left = None
        per_epoch = self._last_epoch_seconds or (None if epoch_left is None else elapsed + epoch_left)
        if max_epochs and per_epoch is not None and not (done and epoch >= max_epochs):
            left.append(f"run <= {duration(epoch_left + (max_epochs - epoch) * per_epoch)}")  # early stopping: sooner
        if left:
            parts.append("left " + ", ".join(left))
        log.info("  ".join(parts))

    def _log_results(self, trainer: L.Trainer, split: str) -> None:
        metrics = {k: float(v) for k, v in sorted(trainer.callback_metrics.items()) if k.startswith(f"{split}/")}
        if metrics:
            log.info("%s: %s", split, "  ".join(f"{k} {v:.5g}" for k, v in metrics.items()))

    @staticmethod
    def _units(pl_module: L.LightningModule) -> tuple[str | None, int]:
        """What the module counts as it trains (seqlab's modules keep a `train_tokens` or `train_windows` buffer)."""
        for unit in ("tokens", "windows"):
            counted = getattr(pl_module, f"train_{unit}", None)
            if counted is not None:
                return unit, int(counted)
        return None, 0


def duration(seconds: float) -> str:
    """45s, 7m32s, 4h54m: short enough for a log line, exact enough for an estimate."""
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
