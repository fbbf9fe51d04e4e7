"""Hypothesis profiles for the fuzz tests and an isolated `datasets` cache (the per-target summary is printed by
tests/conftest.py, which also gathers it from parallel workers).

Default (`python -m pytest`): "ci", a small fixed budget, derandomized so every run tries the same inputs.
Campaign: `nice python -m pytest tests/fuzz -p no:cacheprovider --hypothesis-profile=campaign`.
"""

from __future__ import annotations

import datasets
import pytest
from hypothesis import HealthCheck, settings

_common = dict(
    deadline=None,  # hangs are caught by outcomes.TIMEOUT_S; a shared machine makes deadlines flaky
    database=None,  # failing inputs become explicit @example regressions, not a hidden .hypothesis/ folder
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
# max_examples is per target (csv, text, checkpoint), split among its property tests by outcomes.share.
settings.register_profile("ci", max_examples=100, derandomize=True, print_blob=True, **_common)
settings.register_profile("campaign", max_examples=3000, derandomize=False, print_blob=True, **_common)
settings.load_profile("ci")  # --hypothesis-profile=campaign replaces it (this conftest loads first then)


@pytest.fixture(scope="session", autouse=True)
def _own_datasets_cache(tmp_path_factory):
    """`datasets` read its cache folder when first imported; thousands of fuzzed files go to a temporary one."""
    previous = datasets.config.HF_DATASETS_CACHE
    datasets.config.HF_DATASETS_CACHE = str(tmp_path_factory.mktemp("hf-datasets"))
    datasets.disable_progress_bars()
    yield
    datasets.config.HF_DATASETS_CACHE = previous


@pytest.fixture(scope="session")
def work(tmp_path_factory):
    """Where examples write their files (one fresh folder each, see outcomes.fresh_folder)."""
    return tmp_path_factory.mktemp("fuzz")
