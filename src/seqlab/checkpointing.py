"""Checkpoints a killed run can resume from: `last.ckpt` always holds the latest state, and is never half-written."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

from lightning.pytorch.callbacks import ModelCheckpoint as LightningModelCheckpoint
from lightning.pytorch.plugins.io import TorchCheckpointIO
from lightning.pytorch.trainer.states import TrainerFn

log = logging.getLogger("seqlab")


class ModelCheckpoint(LightningModelCheckpoint):
    """Lightning's ModelCheckpoint (the best checkpoints by the monitored metric, ranked at validation), with
    `last.ckpt` rewritten at every validation and, mid-epoch, every `every_n_train_steps` optimiser steps or
    `every_n_minutes` minutes.

    Lightning's own `save_last` copies whichever checkpoint was saved last, so it lags behind after epochs that
    did not improve, and its step and time intervals rank the top-k against the previous validation's score and
    wait for a first validation when a metric is monitored. Here the intervals refresh `last.ckpt` alone, from
    the first step on: the file to resume from (`ckpt_path=.../last.ckpt`).
    """

    def __init__(self, *args, every_n_train_steps: int | None = None, every_n_minutes: float | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.refresh_steps = every_n_train_steps or 0
        self.refresh_seconds = 60.0 * every_n_minutes if every_n_minutes else None
        self._refreshed_at = time.monotonic()
        self._last_saves = 0  # how many times last.ckpt was written, to know whether a validation wrote it

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if not self._may_refresh(trainer) or trainer.fit_loop.epoch_loop.batch_progress.is_last_batch:
            return  # after an epoch's last batch, the epoch's end writes last.ckpt with its validation in it
        due = bool(self.refresh_steps) and trainer.global_step % self.refresh_steps == 0
        if self.refresh_seconds is not None:  # every process must take the same decision
            due = trainer.strategy.broadcast(due or time.monotonic() - self._refreshed_at >= self.refresh_seconds)
        if due:
            self._refresh_last(trainer)

    # Where Lightning saves (at the end of the epoch, or of a validation in mid-epoch), last.ckpt gets the latest
    # state even when it was not the best.
    def on_train_epoch_end(self, trainer, pl_module) -> None:
        saves = self._last_saves
        super().on_train_epoch_end(trainer, pl_module)
        if self._may_refresh(trainer) and self._last_saves == saves:
            self._refresh_last(trainer)

    def on_validation_end(self, trainer, pl_module) -> None:
        saves = self._last_saves
        super().on_validation_end(trainer, pl_module)
        at_epoch_end = trainer.fit_loop.epoch_loop.batch_progress.is_last_batch
        if self._may_refresh(trainer) and self._last_saves == saves and not at_epoch_end:
            self._refresh_last(trainer)

    def load_state_dict(self, state_dict: dict) -> None:
        """A run resumed into a new folder keeps the killed run's ranking of its best checkpoints. Lightning forgets
        the ranking when the folder changes, and the resumed run would then test the best of its own epochs, not the
        run's best. The killed run's files are only read: Lightning removes checkpoints in this run's folder alone."""
        if state_dict.get("dirpath", self.dirpath) != self.dirpath:
            ranked = state_dict.get("best_k_models", {})
            kept = {path: score for path, score in ranked.items() if Path(path).is_file()}
            if ranked and not kept:
                log.warning("the checkpoints ranked in %s are gone: this run ranks its own epochs only",
                            state_dict["dirpath"])
            # Best first: the lowest score, or the highest where higher is better.
            order = sorted(kept, key=lambda path: float(kept[path]), reverse=self.mode == "max")
            state_dict = {
                **state_dict, "dirpath": self.dirpath, "best_k_models": kept, "last_model_path": self.last_model_path,
                "best_model_path": order[0] if order else "",
                "best_model_score": kept[order[0]] if order else None,
                "kth_best_model_path": order[-1] if order else "",
                "kth_value": kept[order[-1]] if order else self.kth_value,
            }
        super().load_state_dict(state_dict)

    def _may_refresh(self, trainer) -> bool:
        return (
            bool(self.save_last) and not trainer.fast_dev_run and not trainer.sanity_checking
            and trainer.state.fn == TrainerFn.FITTING
        )

    def _refresh_last(self, trainer) -> None:
        saved_step = self._last_global_step_saved
        self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))
        # A validation at this same step must still rank its result and save the best checkpoint.
        self._last_global_step_saved = saved_step
        self._refreshed_at = time.monotonic()

    def _save_last_checkpoint(self, trainer, monitor_candidates) -> None:
        super()._save_last_checkpoint(trainer, monitor_candidates)
        self._last_saves += 1


class AtomicCheckpointIO(TorchCheckpointIO):
    """Write a local checkpoint beside its destination, flush it to disk, then rename it into place: a run killed
    while saving leaves the previous checkpoint whole. (Lightning's writer stages the file in the system's
    temporary folder, often another file system, so the final move is a copy that a kill can cut short.)"""

    def save_checkpoint(self, checkpoint: dict, path, storage_options=None) -> None:
        if "://" in str(path):  # object stores write whole objects: Lightning's way is atomic there
            return super().save_checkpoint(checkpoint, path, storage_options)
        import torch

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.partial")
        with open(partial, "wb") as f:
            torch.save(checkpoint, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(partial, path)
