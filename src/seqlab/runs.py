"""What every entry function shares: the run folder, config printing, building from config, user errors."""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import lightning as L
import rich
import rich.syntax
import rich.tree
import torch
from hydra.utils import instantiate
from lightning.fabric.utilities.exceptions import MisconfigurationException
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, ListConfig, OmegaConf

from seqlab.errors import ConfigError, OutOfMemory, SeqlabError

log = logging.getLogger("seqlab")


def print_config(cfg: DictConfig, output_dir: Path) -> None:
    """Print the resolved config as a tree, and keep it (tree and YAML) in the run folder. Rank 0's job only, in
    a run of several processes: the others share its folder."""
    if rank_zero_only.rank != 0:
        return
    tree = rich.tree.Tree("config", guide_style="dim")
    for key, value in cfg.items():
        text = OmegaConf.to_yaml(value, resolve=True) if isinstance(value, DictConfig) else str(value)
        tree.add(f"[bold]{key}").add(rich.syntax.Syntax(text.rstrip(), "yaml"))
    rich.print(tree)
    output_dir.mkdir(parents=True, exist_ok=True)
    with open(output_dir / "config_tree.log", "w") as f:
        rich.print(tree, file=f)
    OmegaConf.save(cfg, output_dir / "config.yaml", resolve=True)


def build(conf: DictConfig, **learned):
    """Instantiate `conf`, adding arguments learned at run time (a vocabulary, channel counts).

    Passed to the partial rather than to `instantiate`, which would turn a 33k-word vocabulary into
    config nodes: slow. `_convert_="all"`: lists and dicts arrive as plain Python, so the
    hyperparameters saved in checkpoints are plain data (loadable with weights_only=True).
    """
    return instantiate(conf, _partial_=True, _convert_="all")(**learned)


def build_all(section: DictConfig | None) -> list:
    """Instantiate every entry of a group made of named `_target_` blocks (callbacks, loggers)."""
    if not section:
        return []
    return [
        instantiate(conf, _convert_="all")
        for conf in section.values()
        if isinstance(conf, DictConfig) and "_target_" in conf
    ]


def write_json(path: Path, data: dict) -> None:
    """Write atomically: a reader never sees half a file."""
    partial = path.with_suffix(f".{os.getpid()}.tmp")
    partial.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    os.replace(partial, path)


def read_json(path: Path) -> dict:
    """A JSON record a run wrote (`metrics.json`), or {} when it is missing or unreadable."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


MEMORY_KNOBS = (
    "lower data.batch_size / data.eval_batch_size, data.bptt or data.lookback, or model.net.hidden_dim "
    "(a forecaster's model.hidden_dim); trainer.accumulate_grad_batches=N keeps the effective batch, and on a GPU "
    "trainer.precision=bf16-mixed halves the activations"
)


def user_error(exc: BaseException) -> SeqlabError | None:
    """The SeqlabError behind an exception, through Hydra's InstantiationException wrapping; running out of
    memory counts as one, since its fix is a setting too."""
    while exc is not None:
        if isinstance(exc, SeqlabError):
            return exc
        if isinstance(exc, MisconfigurationException):  # Lightning's own refusal of a trainer setting says the fix
            return ConfigError(f"Lightning refused the settings: {_first_line(exc)}")
        if isinstance(exc, torch.OutOfMemoryError):
            return OutOfMemory(f"out of GPU memory ({_first_line(exc)}): {MEMORY_KNOBS}")
        if isinstance(exc, MemoryError) or (isinstance(exc, RuntimeError) and "can't allocate memory" in str(exc)):
            return OutOfMemory(f"out of host memory ({_first_line(exc)}): {MEMORY_KNOBS}")
        exc = exc.__cause__ or exc.__context__
    return None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else exc.__class__.__name__


@contextmanager
def reported_errors(output_dir: Path | None, keep: bool = False) -> Iterator[None]:
    """Turn a user's mistake into one line on stderr and exit status 2, leaving no half-made run folder.

    The run folder is removed unless a checkpoint was already written into it (work to keep) or `keep` is
    set (a sweep trial, whose folder records why it failed). `output_dir=None`: no run folder of its own.
    """
    try:
        yield
    except Exception as exc:
        error = user_error(exc)
        if error is None:
            raise
        if output_dir is not None and not keep and output_dir.is_dir() and not any(output_dir.rglob("*.ckpt")):
            logging.shutdown()
            shutil.rmtree(output_dir, ignore_errors=True)
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(2) from None


ONE_PROCESS_A_TRIAL = "set trainer.devices=1 and run trials side by side with hparams_search.workers=N"


def processes(trainer: DictConfig) -> int:
    """How many processes a `trainer` config starts: devices times nodes. A device count left to Lightning on a GPU
    (`auto`, -1) counts as 2, that is several; on a CPU, `auto` is one device."""
    devices = trainer.get("devices", 1)
    if isinstance(devices, str) and "," in devices:  # "0,1": those GPUs
        devices = [d for d in devices.split(",") if d.strip()]
    if isinstance(devices, (list, tuple, ListConfig)):
        count = len(devices)
    elif str(devices).strip() in ("auto", "-1"):
        count = 1 if str(devices).strip() == "auto" and trainer.get("accelerator") == "cpu" else 2
    else:
        count = int(devices)
    return count * int(trainer.get("num_nodes") or 1)


def check_processes(cfg: DictConfig) -> None:
    """Refuse, in one line and before any process starts, what a run of several processes cannot do here."""
    count = processes(cfg.trainer)
    if count == 1:
        return
    devices, nodes = cfg.trainer.get("devices"), cfg.trainer.get("num_nodes")
    what = f"trainer.devices={devices} trainer.num_nodes={nodes} start {count} processes"
    if cfg.get("trial"):
        raise ConfigError(f"{what}; a sweep trial runs in one process: " + ONE_PROCESS_A_TRIAL)
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized():
        return
    hydra = HydraConfig.get()
    if hydra.mode == RunMode.MULTIRUN:
        raise ConfigError(
            f"{what}, which a Hydra multirun (-m) cannot (Lightning starts each process with the whole command line): "
            "launch each run as a command of its own, or sweep with scripts/sweep.py and one process a trial"
        )
    launched = (os.environ.get("TORCHELASTIC_RUN_ID") is not None and int(os.environ.get("WORLD_SIZE", 1)) > 1) or (
        int(os.environ.get("SLURM_NTASKS", 1)) > 1 and os.environ.get("SLURM_JOB_NAME") not in ("bash", "interactive")
    )
    if launched and not any(o.split("=", 1)[0].lstrip("+~") == "hydra.run.dir" for o in hydra.overrides.hydra):
        raise ConfigError(
            "under torchrun or srun each process names its run folder by its own clock: give them one, "
            "hydra.run.dir=outputs/train/runs/NAME (docs/distributed.md)"
        )


def seed(cfg: DictConfig) -> None:
    if cfg.get("seed") is not None:
        L.seed_everything(cfg.seed, workers=True, verbose=False)


def sweep_name() -> str | None:
    """The folder name of the Hydra multirun (`-m`) this job belongs to, else None: the runs of a sweep share it."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized() or HydraConfig.get().mode != RunMode.MULTIRUN:
        return None  # a single run, or a config composed outside @hydra.main (a sweep driver's trial)
    return Path(HydraConfig.get().sweep.dir).name


# Resolvers the configs use (`${sweep_name:}`, `${wandb_mode:}`): registered here because every entry imports this
# module before Hydra composes its config.
from seqlab.reporting import wandb_mode  # noqa: E402  (reporting imports nothing from here)

OmegaConf.register_new_resolver("sweep_name", sweep_name, replace=True)
OmegaConf.register_new_resolver("wandb_mode", wandb_mode, replace=True)
