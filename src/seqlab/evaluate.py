"""`evaluate(cfg)`: test metrics of a trained checkpoint, on its own data or on any compatible data."""

from __future__ import annotations

from pathlib import Path

from hydra.utils import instantiate
from omegaconf import DictConfig

from seqlab.checkpoints import load_with_data
from seqlab.config_schema import check_config
from seqlab.runs import log, print_config, reported_errors, seed, write_json


def evaluate(cfg: DictConfig) -> dict:
    output_dir = Path(cfg.paths.output_dir)
    with reported_errors(output_dir):
        print_config(cfg, output_dir)
        check_config(cfg)  # data=... and trainer.*, before the checkpoint is read
        seed(cfg)
        # Without data=..., the checkpoint's own data config: the test split it was trained beside.
        model, datamodule = load_with_data(cfg.get("ckpt_path"), cfg.get("data"), cache_dir=cfg.paths.cache_dir)
        trainer = instantiate(cfg.trainer, logger=False, callbacks=[], enable_checkpointing=False)
        metrics = {k: float(v) for k, v in trainer.test(model, datamodule=datamodule)[0].items()}
        write_json(output_dir / "metrics.json", {**metrics, "checkpoint": str(cfg.ckpt_path)})
        log.info("metrics.json: %s", output_dir / "metrics.json")
        return metrics
