"""How a fuzzed input ended: a result, a SeqlabError (one `error:` line), or a traceback (a bug).

Every property test sends its input through `attempt`, which tallies the outcome per target for the summary
that tests/fuzz/conftest.py prints, and fails the example on anything but the first two, or a hang.
"""

from __future__ import annotations

import itertools
import signal
from collections import Counter, defaultdict
from contextlib import contextmanager
from pathlib import Path

from hypothesis import settings

from seqlab.errors import SeqlabError

TIMEOUT_S = 60  # per example; generous because the machine is shared, far below "hung"

TALLY: dict[str, Counter] = defaultdict(Counter)  # target -> {"result", "refused", "traceback"} -> n
PROFILE: list[str] = []  # the Hypothesis profile parallel workers fuzzed under (their controller has none loaded)
_folders = itertools.count()


class Hang(Exception):
    """An input that kept the code under test busy for longer than TIMEOUT_S."""


@contextmanager
def time_limit(seconds: float):
    """Interrupt the example after `seconds` (SIGALRM: main thread, which is where pytest runs tests)."""

    def interrupt(signum, frame):
        raise Hang(f"still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, interrupt)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def attempt(target: str, run, *args, **kwargs):
    """Run `run(*args, **kwargs)`; a one-line SeqlabError is a fine ending, anything else fails the example."""
    try:
        with time_limit(TIMEOUT_S):
            result = run(*args, **kwargs)
    except BaseException as err:
        if isinstance(err, SeqlabError) and "\n" not in str(err):
            TALLY[target]["refused"] += 1
            return err
        TALLY[target]["traceback"] += 1
        if isinstance(err, SeqlabError):
            raise AssertionError(f"a SeqlabError must be one line (the scripts print one error: line): {err!r}")
        raise
    TALLY[target]["result"] += 1
    return result


def share(of: int) -> settings:
    """One of a target's `of` property tests: its part of the profile's max_examples, so that every target
    (not every test) is tried about max_examples times. Read when the test module is imported, after the
    --hypothesis-profile option is applied."""
    return settings(max_examples=max(5, settings.default.max_examples // of))


def fresh_folder(base: Path) -> Path:
    """A new, empty folder per example: `datasets` caches local files by path and mtime, so reusing a
    path within the mtime's resolution could serve the previous example's content."""
    folder = base / f"x{next(_folders)}"
    folder.mkdir()
    return folder
