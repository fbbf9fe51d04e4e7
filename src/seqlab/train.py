"""`run(cfg)`: one training run, from a composed config to checkpoints, logs and `metrics.json`."""

from __future__ import annotations

import time
from pathlib import Path

import lightning as L
from hydra.utils import instantiate
from lightning.pytorch.callbacks import LearningRateMonitor, WeightAveraging
from omegaconf import DictConfig, OmegaConf

from seqlab.checkpointing import AtomicCheckpointIO
from seqlab.config_schema import check_config
from seqlab.errors import SeqlabError
from seqlab.reporting import report_run
from seqlab.runs import build, build_all, log, print_config, reported_errors, seed, write_json
from seqlab.sweep.trial import is_pruned, pruning_callbacks


class SaveRunConfig(L.Callback):
    """Put the run's resolved config in every checkpoint, so eval and generate need nothing else."""

    def __init__(self, config: dict) -> None:
        self.config = config

    def on_save_checkpoint(self, trainer, pl_module, checkpoint: dict) -> None:
        checkpoint["seqlab_config"] = self.config


class DivergenceError(SeqlabError):
    """The training loss stopped being a number: nothing after this step can be trusted."""


class StopOnDivergence(L.Callback):
    """Stop at the first non-finite training loss, instead of training on NaNs until the epoch ends, and never let
    non-finite weights into a checkpoint: the last one written stays the last good one."""

    def __init__(self) -> None:
        self.good_step: int | None = None  # the step of the last checkpoint written

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        if loss is not None and not bool(loss.detach().isfinite()):
            raise self._diverged(trainer, f"train/loss is {float(loss)} at step {trainer.global_step}")

    def on_save_checkpoint(self, trainer, pl_module, checkpoint: dict) -> None:
        # Called before the file is written: raising here keeps the previous checkpoint in place.
        bad = next((name for name, p in pl_module.named_parameters() if not bool(p.detach().isfinite().all())), None)
        if bad is not None:
            raise self._diverged(trainer, f"weight {bad} is not finite after step {trainer.global_step}")
        self.good_step = trainer.global_step

    def _diverged(self, trainer, what: str) -> DivergenceError:
        callback = trainer.checkpoint_callback
        path = (callback.last_model_path or callback.best_model_path) if callback else ""
        kept = f"the last good checkpoint (step {self.good_step}) is {path}" if path and self.good_step is not None \
            else "no checkpoint was written"
        return DivergenceError(f"{what}: lower model.optimizer.lr or clip gradients (trainer.gradient_clip_val); {kept}")


def run(cfg: DictConfig) -> float | None:
    """Train, test the best checkpoint, and return the metric a sweeper minimises (`model.monitor`)."""
    output_dir = Path(cfg.paths.output_dir)
    with reported_errors(output_dir, keep=bool(cfg.get("trial"))):  # a sweep keeps a failed trial's folder
        return _run(cfg, output_dir)


def _run(cfg: DictConfig, output_dir: Path) -> float | None:
    started = time.perf_counter()
    print_config(cfg, output_dir)
    check_config(cfg)  # a bad value stops here, before any data is read
    seed(cfg)

    datamodule = build(cfg.data)
    datamodule.prepare_data()
    datamodule.setup("fit")
    model = build(cfg.model, **datamodule.model_kwargs())

    resolved = OmegaConf.to_container(cfg, resolve=True)
    pruning = pruning_callbacks(cfg.get("trial"))
    callbacks = build_all(cfg.get("callbacks")) + [SaveRunConfig(resolved), StopOnDivergence(), *pruning]
    loggers = build_all(cfg.get("logger"))
    if not loggers:  # nothing to report learning rates to, and Lightning refuses the monitor then
        callbacks = [c for c in callbacks if not isinstance(c, LearningRateMonitor)]
    for logger in loggers:
        logger.log_hyperparams(resolved)
    # Checkpoints are written beside their destination and renamed into place: a kill mid-write loses nothing.
    trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False, plugins=[AtomicCheckpointIO()])

    fit_started = time.perf_counter()
    try:
        trainer.fit(model, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"))
    except Exception as exc:
        if not (cfg.get("trial") and is_pruned(exc)):
            raise
        # The study's pruner stopped this trial in a validation pass: record after how many epochs, and skip
        # the test of a run nobody will pick.
        epochs = trainer.current_epoch + 1
        write_json(output_dir / "metrics.json", {
            **{k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val/")},
            "status": "pruned", "epochs": epochs,
            "fit_seconds": round(time.perf_counter() - fit_started, 3),
            "wall_seconds": round(time.perf_counter() - started, 3),
        })
        log.info("pruned after %d epoch(s): %s", epochs, exc)
        report_run(trainer, cfg, {})  # its settings and best validation still belong in the HParams view
        return None
    fit_seconds = time.perf_counter() - fit_started
    # With weight averaging (callbacks=ema) the checkpoints' state_dict holds the averaged weights, the
    # ones validated during fit. Left in place, the callback would load the raw weights back
    # (current_model_state) for the validation and test below: its job ends with fit. So does pruning's.
    trainer.callbacks = [c for c in trainer.callbacks if not isinstance(c, WeightAveraging) and c not in pruning]

    # Val and test both describe the best checkpoint when there is one (not in fast_dev_run, say).
    best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
    ckpt = "best" if best else None
    metrics = {}
    if cfg.get("test", True):
        metrics.update(trainer.validate(model, datamodule=datamodule, ckpt_path=ckpt, verbose=False)[0])
        metrics.update(trainer.test(model, datamodule=datamodule, ckpt_path=ckpt)[0])
    else:
        metrics.update({k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val/")})

    summary = {
        **{k: float(v) for k, v in metrics.items()},
        "status": "completed",
        "best_checkpoint": best or None,
        "epochs": trainer.current_epoch,
        "parameters": sum(p.numel() for p in model.parameters()),
        "fit_seconds": round(fit_seconds, 3),
        "wall_seconds": round(time.perf_counter() - started, 3),
    }
    for unit in ("tokens", "windows"):
        counted = getattr(model, f"train_{unit}", None)
        if counted is not None and fit_seconds > 0:
            summary[f"train_{unit}_per_second"] = round(int(counted) / fit_seconds, 1)
    if trainer.is_global_zero:
        write_json(output_dir / "metrics.json", summary)
        report_run(trainer, cfg, summary)  # HParams view, W&B summary; closes the W&B run
        log.info("metrics.json: %s", output_dir / "metrics.json")
    monitored = metrics.get(cfg.model.get("monitor"))
    return float(monitored) if monitored is not None else None
