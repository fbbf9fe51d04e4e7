"""Shared fixtures. Every test runs offline, with its own caches, on data it writes itself."""

from __future__ import annotations

import atexit
import os
import random
import shutil
import tempfile
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"

# The suite sets what it depends on: whatever Hugging Face, W&B or seqlab settings the person running it has
# (HF_DATASETS_OFFLINE on a cluster, a WANDB_PROJECT, a SEQLAB_CACHE) are dropped before anything reads them.
for _name in [n for n in os.environ if n.startswith(("HF_", "HUGGINGFACE_", "WANDB_", "SEQLAB_"))]:
    del os.environ[_name]
os.environ["WANDB_MODE"] = "offline"
os.environ["WANDB_SILENT"] = "true"
# `datasets` reads its cache folder once, when first imported: set before any test module imports it, for this
# process and the scripts it runs, so the suite never writes into the user's ~/.cache/huggingface.
_HF_HOME = tempfile.mkdtemp(prefix="seqlab-tests-hf-")
atexit.register(shutil.rmtree, _HF_HOME, ignore_errors=True)
os.environ["HF_HOME"] = os.environ["HF_DATASETS_CACHE"] = _HF_HOME
torch.set_num_threads(1)  # the test models are tiny: one thread is faster, and CI has two cores


def write_corpus(folder: Path, lines_per_split=(300, 40, 50), seed: int = 0) -> Path:
    """A small word corpus in the WikiText layout: a few sentences repeated, with empty lines between."""
    rng = random.Random(seed)
    sentences = [
        "the cat sat on the mat",
        "a dog ran in the park",
        "the bird sang at dawn",
        "one two three four five",
    ]
    folder.mkdir(parents=True, exist_ok=True)
    for name, count in zip(("train", "valid", "test"), lines_per_split):
        lines = [" " + rng.choice(sentences) + " " if i % 5 else " " for i in range(count)]
        (folder / f"{name}.txt").write_text("\n".join(lines) + "\n")
    return folder


@pytest.fixture
def corpus_dir(tmp_path) -> Path:
    return write_corpus(tmp_path / "corpus")


# The fuzz targets' tally (tests/fuzz/outcomes.py), printed once at the end. Under pytest-xdist each worker
# fuzzes its own share: it hands its tally to the controlling process, which adds them up and prints.
def pytest_sessionfinish(session):
    if hasattr(session.config, "workeroutput"):
        from hypothesis import settings

        from tests.fuzz.outcomes import TALLY

        session.config.workeroutput["fuzz"] = {
            "profile": settings.get_current_profile_name(), "tally": {t: dict(n) for t, n in TALLY.items()}}


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error):
    from tests.fuzz.outcomes import PROFILE, TALLY

    fuzz = getattr(node, "workeroutput", {}).get("fuzz")
    if fuzz and fuzz["tally"]:
        PROFILE[:] = [fuzz["profile"]]
        for target, counts in fuzz["tally"].items():
            TALLY[target].update(counts)


def pytest_terminal_summary(terminalreporter):
    from hypothesis import settings

    from tests.fuzz.outcomes import PROFILE, TALLY

    if not TALLY:
        return
    write = terminalreporter.write_line
    write(f"fuzz ({PROFILE[0] if PROFILE else settings.get_current_profile_name()} profile): inputs tried per target")
    write(f"  {'target':<12}{'tried':>7}{'result':>8}{'refused':>9}{'traceback':>11}")
    for target, n in sorted(TALLY.items()):
        write(f"  {target:<12}{sum(n.values()):>7}{n['result']:>8}{n['refused']:>9}{n['traceback']:>11}")
    write("  (result: loaded or read; refused: one SeqlabError line, what the scripts print as error:)")
