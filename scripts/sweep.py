"""Search hyperparameters with Optuna: `python scripts/sweep.py hparams_search=lm_optuna data=...` (see --help)."""

import hydra

from seqlab.cli import start
from seqlab.sweep.driver import run


@hydra.main(version_base="1.3", config_path="../conf", config_name="sweep")
def main(cfg):
    return run(cfg)


if __name__ == "__main__":
    start(main)
