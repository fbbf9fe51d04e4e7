"""Rank runs side by side: `python scripts/compare.py SWEEP_OR_RUN_FOLDER [...] [metric=val/mse]` (see --help)."""

import sys

import hydra

from seqlab.cli import start
from seqlab.compare import compare, positional_runs


@hydra.main(version_base="1.3", config_path="../conf", config_name="compare")
def main(cfg):
    compare(cfg)


if __name__ == "__main__":
    sys.argv[1:] = positional_runs(sys.argv[1:])  # folders first, as a shell user types them
    start(main)
