"""Time the project's training step against a plain PyTorch loop: `python scripts/benchmark.py` (see --help)."""

import hydra

from seqlab.cli import start  # light: Hydra's errors and the standard library


@hydra.main(version_base="1.3", config_path="../conf", config_name="benchmark")
def main(cfg):
    # Imported here, not above: the plain loop's process re-imports this file, and must not load Lightning.
    from seqlab.benchmark.run import benchmark

    benchmark(cfg)


if __name__ == "__main__":
    start(main)
