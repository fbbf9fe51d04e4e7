"""Test a checkpoint: `python scripts/eval.py ckpt_path=PATH` (see --help)."""

import hydra

from seqlab.cli import start
from seqlab.evaluate import evaluate


@hydra.main(version_base="1.3", config_path="../conf", config_name="eval")
def main(cfg):
    evaluate(cfg)


if __name__ == "__main__":
    start(main)
