"""Forecast with a checkpoint: `python scripts/forecast.py ckpt_path=PATH [data.path=FILE]` (see --help)."""

import hydra

from seqlab.cli import start
from seqlab.forecast import forecast


@hydra.main(version_base="1.3", config_path="../conf", config_name="forecast")
def main(cfg):
    forecast(cfg)


if __name__ == "__main__":
    start(main)
