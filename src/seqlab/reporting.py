"""What a finished run reports where sweeps are compared: TensorBoard's HParams view and the W&B run summary.

`train.run` calls `report_run` once, after `metrics.json` is written: every run then carries its settings next
to its best validation value and its test metrics, so `tensorboard --logdir <sweep folder>` lists a sweep in the
HParams table and parallel-coordinates views, and a W&B sweep can optimise `best/<monitor>`.
"""

from __future__ import annotations

import functools
import logging
from typing import Any

from lightning.pytorch.loggers import TensorBoardLogger, WandbLogger
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger("seqlab")

# The parts of the config that are a run's settings; the rest (paths, callbacks, loggers, hydra, tags, the sweep's
# bookkeeping) says where a run writes and who watches it, not what was trained.
SETTING_SECTIONS = ("seed", "data", "model", "trainer")
# Keys that hold a location (files, folders, URLs): they differ between machines, not between runs worth comparing.
LOCATION_KEYS = {"path", "url", "files", "dirpath"}
LOCATION_SUFFIXES = ("_dir", "_path", "_file", "_url")


def report_run(trainer, cfg: DictConfig, summary: dict[str, Any]) -> None:
    """Give each logger the run's settings and results, then close the W&B run so the next run gets its own."""
    results = run_results(cfg.model.monitor, summary, best_value(trainer, cfg.model.monitor, summary))
    for logger in trainer.loggers:
        if isinstance(logger, TensorBoardLogger):
            _report_to_tensorboard(logger, run_settings(cfg), results, step=_test_step(trainer))
        elif isinstance(logger, WandbLogger):
            _report_to_wandb(logger, results)


def run_settings(cfg: DictConfig) -> dict[str, Any]:
    """The resolved config's setting leaves, flattened to the names a Hydra override uses (`model.hidden_dim`).

    When the command line set some (a sweep's trial, a multirun's job), those and the seed only: TensorBoard shows
    the first five hparams of a sweep by name, and they should be the ones that vary, not `data.allow_...`.
    """
    resolved = OmegaConf.to_container(cfg, resolve=True)
    settings = {key: resolved[key] for key in SETTING_SECTIONS if key in resolved}
    flat = {name: _hparam_value(value) for name, value in _flatten(settings)}
    named = {name for name in _overridden_keys() if name in flat} | ({"seed"} & flat.keys())
    return {name: value for name, value in flat.items() if name in named} if named - {"seed"} else flat


def _overridden_keys() -> set[str]:
    """The config keys this run's command line set (`model.hidden_dim=256`, `+model.optimizer.weight_decay=0.1`)."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return set()
    keys = (override.split("=", 1)[0].lstrip("+~") for override in HydraConfig.get().overrides.task if "=" in override)
    return set(keys)


def best_value(trainer, monitor: str, summary: dict[str, Any]) -> float | None:
    """The best value of the monitored metric: the checkpoint callback's record, else the run's last `val/` value."""
    checkpoint = trainer.checkpoint_callback
    if checkpoint is not None and checkpoint.monitor == monitor and checkpoint.best_model_score is not None:
        return float(checkpoint.best_model_score)
    value = summary.get(monitor)
    return float(value) if value is not None else None


def run_results(monitor: str, summary: dict[str, Any], best: float | None) -> dict[str, float]:
    """`best/<monitor>` and the test metrics. The best gets its own tag because the HParams table shows each tag's
    last value, and the `val/` curve ends on the best only when the best checkpoint was validated again (`test=true`).
    """
    results = {f"best/{monitor}": best} if best is not None else {}
    results.update({k: float(v) for k, v in summary.items() if k.startswith("test/") and _is_number(v)})
    return results


def wandb_mode() -> str | None:
    """`offline` where wandb would stop the run instead: no mode chosen, no API key, and no terminal to ask for one.

    wandb 0.31 prompts for a key only on a terminal; without one, `wandb.init` raises "No API key configured",
    after the data is loaded. None leaves the choice to wandb (WANDB_MODE, `wandb offline`, a stored key, a prompt).
    """
    return _wandb_mode_of_this_process()


@functools.cache  # the answer cannot change within a process, and the log line should appear once
def _wandb_mode_of_this_process() -> str | None:
    if _wandb_can_log_in():
        return None
    log.warning("W&B: no API key and no terminal to ask for one: logging offline in the run folder (`wandb sync` it)")
    return "offline"


def _wandb_can_log_in() -> bool:
    """True unless wandb would raise for want of credentials: the same checks, in the same order, as `wandb.init`."""
    try:
        from wandb.errors import term
        from wandb.sdk import wandb_setup
        from wandb.sdk.lib import wbauth

        settings = wandb_setup.singleton().settings  # WANDB_* variables and settings files, as wandb.init reads them
        if settings._offline or settings._noop or term.can_use_terminput():
            return True
        host = wbauth.HostUrl(settings.base_url, app_url=settings.app_url)
        found = wbauth.authenticate_session(host=host, source="seqlab", prompt=False, update_session=False)
    except Exception as exc:  # another wandb version's internals, or bad credentials: wandb.init will say
        log.debug("W&B credentials check skipped: %r", exc)
        return True
    return found is not None


def _report_to_tensorboard(logger: TensorBoardLogger, settings: dict, results: dict, step: int) -> None:
    """Write the HParams summaries; the HParams table shows each metric tag's last value in the run folder."""
    logger.log_hyperparams(settings, results, step=step)
    logger.finalize("success")  # Lightning closed the writer after test: flush the event file this reopened


def _report_to_wandb(logger: WandbLogger, results: dict) -> None:
    """The summary is what the W&B runs table and a sweep's `metric` read; finishing lets a multirun's next job start
    its own W&B run (WandbLogger would otherwise reuse the open one)."""
    logger.experiment.summary.update(results)
    logger.experiment.finish()


def _test_step(trainer) -> int:
    """The step Lightning logged the test metrics at (its default step), so logging them again adds no new point."""
    return getattr(trainer.fit_loop.epoch_loop, "_batches_that_stepped", trainer.global_step)


def _flatten(tree: dict, prefix: str = ""):
    for key, value in tree.items():
        if str(key).startswith("_") or _is_location(str(key)):  # _target_, _partial_: how to build, not what
            continue
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            yield from _flatten(value, f"{name}.")
        else:
            yield name, value


def _is_location(key: str) -> bool:
    return key in LOCATION_KEYS or key.endswith(LOCATION_SUFFIXES)


def _hparam_value(value: Any) -> Any:
    """A value the HParams plugin can show and filter, spelled as in the YAML (torch would log a bool as 1.0)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float, str)):
        return value
    return str(value)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
