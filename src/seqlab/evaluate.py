"""`evaluate(cfg)`: test metrics of a trained checkpoint, on its own data or on any compatible data."""

from __future__ import annotations

from pathlib import Path

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from seqlab.checkpoints import check_fits, load_trained
from seqlab.runs import build, log, print_config, reported_errors, seed, write_json


def evaluate(cfg: DictConfig) -> dict:
    output_dir = Path(cfg.paths.output_dir)
    with reported_errors(output_dir):
        print_config(cfg, output_dir)
        seed(cfg)
        model, trained_config = load_trained(cfg.get("ckpt_path"))
        # Without data=..., the checkpoint's own data config: the test split it was trained beside.
        data_cfg = cfg.data if cfg.get("data") is not None else OmegaConf.create(trained_config["data"])
        datamodule = build(data_cfg, **model.datamodule_kwargs())
        datamodule.prepare_data()
        datamodule.setup("test")
        check_fits(model, datamodule.model_kwargs(), cfg.ckpt_path)
        trainer = instantiate(cfg.trainer, logger=False, callbacks=[], enable_checkpointing=False)
        metrics = {k: float(v) for k, v in trainer.test(model, datamodule=datamodule)[0].items()}
        write_json(output_dir / "metrics.json", {**metrics, "checkpoint": str(cfg.ckpt_path)})
        log.info("metrics.json: %s", output_dir / "metrics.json")
        return metrics
