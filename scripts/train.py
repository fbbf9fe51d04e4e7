"""Train a model: `python scripts/train.py model=lstm data=wikitext2` (see --help)."""

import hydra

from seqlab.cli import start
from seqlab.train import run


@hydra.main(version_base="1.3", config_path="../conf", config_name="train")
def main(cfg):
    return run(cfg)


if __name__ == "__main__":
    start(main)
