"""Errors a user can fix: the entry scripts print their message alone and exit with status 2."""


class SeqlabError(Exception):
    """A problem with the user's input, stated with its fix; never a bug in seqlab."""


class ConfigError(SeqlabError):
    """A config value that cannot work (wrong choice, incompatible sizes, missing path)."""


class DataError(SeqlabError):
    """A data file or dataset that is missing, unreachable or malformed."""


class CheckpointError(SeqlabError):
    """A checkpoint that is missing, is not seqlab's, or does not fit the model or data."""


class OutOfMemory(SeqlabError):
    """The host or the GPU ran out of memory: the fix is a smaller batch, window or model, or lower precision."""
