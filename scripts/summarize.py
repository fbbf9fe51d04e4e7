"""Tabulate finished runs: `python scripts/summarize.py runs=[FOLDER,...] group_by=data.horizon` (see --help)."""

import hydra

from seqlab.summarize import summarize


@hydra.main(version_base="1.3", config_path="../conf", config_name="summarize")
def main(cfg):
    summarize(cfg)


if __name__ == "__main__":
    main()
