"""How the entry scripts start: a mistake on the command line ends in one line and status 2, like every other.

Hydra prints its own composition errors over several lines and exits with 1, and for a misspelt key it suggests
adding the key with `+`. `start` has Hydra raise them instead, and says what is wrong with the fix.
"""

from __future__ import annotations

import difflib
import os
import sys
from collections.abc import Callable

from hydra.errors import ConfigCompositionException, MissingConfigException, OverrideParseException


def start(main: Callable[[], object]) -> None:
    """Run a `@hydra.main` function; a command line Hydra cannot compose exits 2 with one `error:` line."""
    os.environ.setdefault("HYDRA_FULL_ERROR", "1")  # Hydra raises what it would print
    try:
        main()
    except (ConfigCompositionException, MissingConfigException, OverrideParseException) as exc:
        print(f"error: {composition_error(exc, sys.argv[1:])}", file=sys.stderr)
        raise SystemExit(2) from None


def composition_error(exc: Exception, args: list[str]) -> str:
    """The line that says which argument Hydra could not use, and how to fix it."""
    if isinstance(exc, MissingConfigException) and exc.options is not None and exc.missing_cfg_file:
        group, _, name = exc.missing_cfg_file.rpartition("/")
        return f"{group}={name}: no such option{_did_you_mean(name, exc.options, group + '=')}; " \
               f"{group} is one of {', '.join(exc.options)}"
    cause = exc.__cause__
    full_key, parent = getattr(cause, "full_key", None), getattr(cause, "parent_node", None)
    if full_key and parent is not None and hasattr(parent, "keys"):  # a key that is not in the config
        arg = next((a for a in args if a.partition("=")[0].lstrip("+~") == full_key), full_key)
        prefix = full_key.rpartition(".")[0]
        near = [f"{prefix}.{k}" if prefix else str(k) for k in parent.keys()]
        return f"{full_key}: no such key in the config{_did_you_mean(full_key, near)}; " \
               f"check its spelling, or add it as a new key with +{arg.lstrip('+~')}"
    text = " ".join(str(exc).split())
    return f"an override Hydra cannot parse: {text}" if isinstance(exc, OverrideParseException) else text


def _did_you_mean(word: str, choices, lead: str = "") -> str:
    close = difflib.get_close_matches(word, [str(c) for c in choices], n=1)
    return f" (did you mean {lead}{close[0]}?)" if close else ""
