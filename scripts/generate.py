"""Sample text from a checkpoint: `python scripts/generate.py ckpt_path=PATH prompt="..."` (see --help)."""

import hydra

from seqlab.cli import start
from seqlab.generate import generate


@hydra.main(version_base="1.3", config_path="../conf", config_name="generate")
def main(cfg):
    generate(cfg)


if __name__ == "__main__":
    start(main)
