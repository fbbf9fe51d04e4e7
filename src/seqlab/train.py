"""`run(cfg)`: one training run, from a composed config to checkpoints, logs and `metrics.json`."""

from __future__ import annotations

import time
from pathlib import Path

import lightning as L
import torch
from hydra.utils import instantiate
from lightning.pytorch.callbacks import LearningRateMonitor, WeightAveraging
from omegaconf import DictConfig, OmegaConf

from seqlab.checkpointing import AtomicCheckpointIO
from seqlab.checkpoints import load_trained, start_from
from seqlab.config_schema import check_config
from seqlab.errors import ConfigError, SeqlabError
from seqlab.reporting import report_run
from seqlab.runs import build, build_all, check_processes, log, print_config, reported_errors, seed, write_json
from seqlab.sweep.trial import is_pruned, pruning_callbacks


class SaveRunConfig(L.Callback):
    """Put the run's resolved config in every checkpoint, so eval and generate need nothing else, and, in one
    saved right after a validation, that validation's metrics: the run reports them for its best checkpoint
    instead of validating the same weights again after fit."""

    def __init__(self, config: dict) -> None:
        self.config = config
        self.validated: tuple[int, dict] | None = None  # (step, val metrics) of the last validation in fit

    def on_validation_end(self, trainer, pl_module) -> None:
        if not trainer.sanity_checking and trainer.state.fn == "fit":
            metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val/")}
            self.validated = (trainer.global_step, metrics)

    def on_save_checkpoint(self, trainer, pl_module, checkpoint: dict) -> None:
        checkpoint["seqlab_config"] = self.config
        if self.validated and self.validated[0] == trainer.global_step:
            checkpoint["val_metrics"] = self.validated[1]


class FitClock(L.Callback):
    """How long fit took (from `start()`, just before `trainer.fit`), and how much of it was training: from the
    training loop's start (after the processes, the data and the sanity check are set up) to its end, less its
    validation passes. Throughput counts the training time only. A resumed run's fit time counts the runs before it
    too, kept in its checkpoints (as W&B's run time does): a benchmark's time per run stays whole across a kill; its
    training time and throughput are its own."""

    def __init__(self) -> None:
        self.train_seconds = 0.0
        self.earlier_fit_seconds = 0.0  # those of the runs this one resumes, up to the checkpoint it resumes from
        self._fit_started = self._started = self._validation_started = 0.0
        self._validating = 0.0

    def start(self) -> None:
        self._fit_started = time.perf_counter()

    def fit_seconds(self) -> float:
        return self.earlier_fit_seconds + time.perf_counter() - self._fit_started

    def state_dict(self) -> dict:
        return {"fit_seconds": self.fit_seconds()}

    def load_state_dict(self, state_dict: dict) -> None:
        self.earlier_fit_seconds = float(state_dict["fit_seconds"])

    def on_train_start(self, trainer, pl_module) -> None:
        self._started, self._validating = time.perf_counter(), 0.0

    def on_validation_start(self, trainer, pl_module) -> None:
        self._validation_started = time.perf_counter()

    def on_validation_end(self, trainer, pl_module) -> None:
        self._validating += time.perf_counter() - self._validation_started

    def on_train_end(self, trainer, pl_module) -> None:
        self.train_seconds = time.perf_counter() - self._started - self._validating


class LogProcesses(L.Callback):
    """In a run of several processes, say how many and how many threads each uses: Lightning's launchers give each
    process its share of the cores (cores // processes, unless OMP_NUM_THREADS is set), and processes that each use
    every core run several times slower than one alone."""

    def setup(self, trainer, pl_module, stage: str) -> None:
        if stage == "fit" and trainer.world_size > 1:
            threads = trainer.strategy.all_gather(torch.tensor(torch.get_num_threads())).tolist()
            if trainer.is_global_zero:
                backend = getattr(trainer.strategy, "process_group_backend", None)
                log.info("%d processes (%s), threads per process: %s", trainer.world_size, backend, threads)


class DivergenceError(SeqlabError):
    """The training loss stopped being a number: nothing after this step can be trusted."""


class StopOnDivergence(L.Callback):
    """Stop at the first non-finite training loss, instead of training on NaNs until the epoch ends, and never let
    non-finite weights into a checkpoint: the last one written stays the last good one.

    A step's loss is read at the end of the next step (or before a checkpoint), from a copy to the host started
    without waiting: reading it at once would make the host wait for the GPU at every step."""

    def __init__(self) -> None:
        self.good_step: int | None = None  # the step of the last checkpoint written
        self.pending: tuple[torch.Tensor, int, torch.cuda.Event | None] | None = None  # loss on the host, step, copied

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self._check_loss(trainer)
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        if loss is not None:
            on_host = loss.detach().to("cpu", non_blocking=True)
            copied = torch.cuda.Event() if loss.is_cuda else None
            if copied is not None:
                copied.record()
            self.pending = (on_host, trainer.global_step, copied)

    def on_train_end(self, trainer, pl_module) -> None:
        self._check_loss(trainer)

    def on_save_checkpoint(self, trainer, pl_module, checkpoint: dict) -> None:
        # Called before the file is written: raising here keeps the previous checkpoint in place.
        self._check_loss(trainer)
        bad = next((name for name, p in pl_module.named_parameters() if not bool(p.detach().isfinite().all())), None)
        if bad is not None:
            raise self._diverged(trainer, f"weight {bad} is not finite after step {trainer.global_step}")
        self.good_step = trainer.global_step

    def _check_loss(self, trainer) -> None:
        if self.pending is None:
            return
        loss, step, copied = self.pending
        self.pending = None
        if copied is not None:
            copied.synchronize()
        if not bool(loss.isfinite()):
            raise self._diverged(trainer, f"train/loss is {float(loss)} at step {step}")

    def _diverged(self, trainer, what: str) -> DivergenceError:
        callback = trainer.checkpoint_callback
        path = (callback.last_model_path or callback.best_model_path) if callback else ""
        kept = f"the last good checkpoint (step {self.good_step}) is {path}" if path and self.good_step is not None \
            else "no checkpoint was written"
        return DivergenceError(f"{what}: lower model.optimizer.lr or clip gradients (trainer.gradient_clip_val); {kept}")


def check_start(cfg: DictConfig) -> None:
    """Where the weights start: a resumed run, a trained model's weights, or fresh ones."""
    if cfg.get("init_from") and cfg.get("ckpt_path"):
        raise ConfigError("give ckpt_path= (resume a run) or init_from= (a new run from its weights), not both")
    if OmegaConf.select(cfg, "callbacks.weight_averaging.finetune", default=False) and not cfg.get("init_from"):
        raise ConfigError("fine-tuning (callbacks.weight_averaging.finetune=true) needs a trained model: add "
                          "init_from=CHECKPOINT, the best checkpoint of the run to fine-tune")


def run(cfg: DictConfig) -> float | None:
    """Train, test the best checkpoint, and return the metric a sweeper minimises (`model.monitor`)."""
    output_dir = Path(cfg.paths.output_dir)
    with reported_errors(output_dir, keep=bool(cfg.get("trial"))):  # a sweep keeps a failed trial's folder
        return _run(cfg, output_dir)


def _run(cfg: DictConfig, output_dir: Path) -> float | None:
    started = time.perf_counter()
    print_config(cfg, output_dir)
    check_config(cfg)  # a bad value stops here, before any data is read
    check_processes(cfg)  # and what several processes cannot do
    check_start(cfg)
    seed(cfg)
    torch.set_flush_denormal(bool(cfg.get("flush_denormal", False)))

    # init_from: a new run that starts from a trained model's weights (AWD-LSTM's fine-tuning stage, say); its data
    # must use the same token ids.
    trained = load_trained(cfg.init_from)[0] if cfg.get("init_from") else None
    datamodule = build(cfg.data, **(trained.datamodule_kwargs() if trained else {}))
    datamodule.prepare_data()
    datamodule.setup("fit")
    model = build(cfg.model, **datamodule.model_kwargs())
    if trained is not None:
        start_from(model, trained, cfg.init_from)

    resolved = OmegaConf.to_container(cfg, resolve=True)
    pruning = pruning_callbacks(cfg.get("trial"))
    clock = FitClock()
    callbacks = build_all(cfg.get("callbacks")) + [SaveRunConfig(resolved), StopOnDivergence(), clock, *pruning]
    callbacks.append(LogProcesses())
    loggers = build_all(cfg.get("logger"))
    if not loggers:  # nothing to report learning rates to, and Lightning refuses the monitor then
        callbacks = [c for c in callbacks if not isinstance(c, LearningRateMonitor)]
    for logger in loggers:
        logger.log_hyperparams(resolved)
    # Checkpoints are written beside their destination and renamed into place: a kill mid-write loses nothing.
    trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False, plugins=[AtomicCheckpointIO()])

    clock.start()
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
            "fit_seconds": round(clock.fit_seconds(), 3),
            "wall_seconds": round(time.perf_counter() - started, 3),
        })
        log.info("pruned after %d epoch(s): %s", epochs, exc)
        report_run(trainer, cfg, {})  # its settings and best validation still belong in the HParams view
        return None
    fit_seconds = clock.fit_seconds()
    train_seconds = clock.train_seconds
    # With weight averaging (callbacks=ema) the checkpoints' state_dict holds the averaged weights, the
    # ones validated during fit. Left in place, the callback would load the raw weights back
    # (current_model_state) for the validation and test below: its job ends with fit. So does pruning's.
    trainer.callbacks = [c for c in trainer.callbacks if not isinstance(c, WeightAveraging) and c not in pruning]

    # Val and test both describe the best checkpoint when there is one (not in fast_dev_run, say).
    best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
    ckpt = "best" if best else None
    # The best checkpoint holds the metrics of the validation that chose it: the same weights, data and code. With
    # or without a test, they are the run's val/* (and a sweep trial's value), not the last validation's.
    validated = None
    if best and trainer.is_global_zero:
        validated = torch.load(best, map_location="cpu", weights_only=True).get("val_metrics")
    validated = trainer.strategy.broadcast(validated)  # every process validates again, or none does
    metrics = dict(validated or trainer.validate(model, datamodule=datamodule, ckpt_path=ckpt, verbose=False)[0])
    if cfg.get("test", True):
        metrics.update(trainer.test(model, datamodule=datamodule, ckpt_path=ckpt)[0])

    summary = {
        **{k: float(v) for k, v in metrics.items()},
        "status": "completed",
        "best_checkpoint": best or None,
        "epochs": trainer.current_epoch,
        "parameters": sum(p.numel() for p in model.parameters()),
        "fit_seconds": round(fit_seconds, 3),
        "train_seconds": round(train_seconds, 3),  # the training loop without its validation passes
        "wall_seconds": round(time.perf_counter() - started, 3),
    }
    for unit in ("tokens", "windows"):
        counted = getattr(model, f"train_{unit}", None)
        if counted is not None:  # each process counted its own share: the run's throughput is their sum
            counted = trainer.strategy.reduce(counted.detach().clone(), reduce_op="sum")
        if counted is not None and train_seconds > 0:
            summary[f"train_{unit}_per_second"] = round(int(counted) / train_seconds, 1)
    if trainer.is_global_zero:
        write_json(output_dir / "metrics.json", summary)
        report_run(trainer, cfg, summary)  # HParams view, W&B summary; closes the W&B run
        log.info("metrics.json: %s", output_dir / "metrics.json")
    monitored = metrics.get(cfg.model.get("monitor"))
    return float(monitored) if monitored is not None else None
