"""Reading a checkpoint written by `seqlab.train`, with a clear error when it is not one or does not fit."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import torch
from hydra.utils import get_class
from omegaconf import DictConfig, OmegaConf

from seqlab.errors import CheckpointError, ConfigError
from seqlab.runs import build


def load_trained(ckpt_path: str | None) -> tuple[L.LightningModule, dict]:
    """The trained module and the resolved config of the run that wrote the checkpoint."""
    if not ckpt_path:
        raise CheckpointError("no checkpoint given: add ckpt_path=PATH (a run's checkpoints/last.ckpt, say)")
    path = Path(ckpt_path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise CheckpointError(f"{path} is not a readable PyTorch checkpoint ({err.__class__.__name__})") from None
    config = checkpoint.get("seqlab_config") if isinstance(checkpoint, dict) else None
    if config is None:
        raise CheckpointError(f"{path} was not written by scripts/train.py (it holds no seqlab_config)")
    module_class = get_class(config["model"]["_target_"])
    try:
        model = module_class.load_from_checkpoint(path, map_location="cpu", weights_only=True)
    except (KeyError, RuntimeError) as err:
        raise CheckpointError(f"{path} does not fit {module_class.__name__}: {err}") from None
    model.eval()
    return model, config


def check_fits(model: L.LightningModule, data_kwargs: dict, ckpt_path: str) -> None:
    """The data must give the model the sizes it was trained with (vocabulary, channels, horizon...)."""
    for key, value in data_kwargs.items():
        trained = model.hparams.get(key)
        if trained is not None and isinstance(value, (int, str)) and trained != value:
            raise CheckpointError(
                f"{ckpt_path} was trained with {key}={trained} but this data gives {key}={value}; "
                "evaluate on data shaped like the training data"
            )


def load_with_data(
    ckpt_path: str | None, data: DictConfig | None = None, changes: dict | None = None
) -> tuple[L.LightningModule, L.LightningDataModule]:
    """A trained module and a datamodule ready to test it: `data` if given, else the checkpoint's own
    data config with `changes` applied (a new `path`, say); refused if its shapes do not fit."""
    model, trained_config = load_trained(ckpt_path)
    if data is None:
        unknown = sorted(set(changes or {}) - set(trained_config["data"]))
        if unknown:
            raise ConfigError(
                f"data.{unknown[0]}= does not apply to {ckpt_path}: its data ({trained_config['data'].get('_target_')}) "
                f"has no '{unknown[0]}' setting. Drop the override."
            )
        data = OmegaConf.merge(trained_config["data"], changes or {})
    datamodule = build(data, **model.datamodule_kwargs())
    datamodule.prepare_data()
    datamodule.setup("test")
    check_fits(model, datamodule.model_kwargs(), ckpt_path)
    return model, datamodule
