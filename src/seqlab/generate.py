"""`generate(cfg)`: sample text from a trained language model; the checkpoint carries the vocabulary."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from seqlab.checkpoints import load_trained
from seqlab.errors import CheckpointError, ConfigError
from seqlab.runs import reported_errors, seed


def generate(cfg: DictConfig) -> str:
    output_dir = Path(cfg.paths.output_dir)
    with reported_errors(output_dir):
        if cfg.num_tokens < 1:
            raise ConfigError(f"num_tokens must be at least 1, got {cfg.num_tokens}")
        if cfg.temperature < 0:
            raise ConfigError(f"temperature must be >= 0 (0 is greedy), got {cfg.temperature}")
        seed(cfg)
        model, _ = load_trained(cfg.get("ckpt_path"))
        if not hasattr(model, "generate"):
            raise CheckpointError(f"{cfg.ckpt_path} is not a language model: it cannot generate text")
        text = model.generate(cfg.prompt, cfg.num_tokens, cfg.temperature)
        output_dir.mkdir(parents=True, exist_ok=True)
        (output_dir / "generated.txt").write_text(text)
        print(text)
        return text
