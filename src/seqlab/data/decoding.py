"""Decode a data file once, up front, so a wrong encoding is named with the byte and its offset in the file
(`datasets` and pandas report a position inside whatever chunk they were reading, wrapped in a traceback)."""

from __future__ import annotations

import codecs
import itertools
from dataclasses import dataclass
from pathlib import Path

BLOCK = 1 << 20


@dataclass
class Decoded:
    chars: int  # characters decoded before the end or the first bad byte
    bad_offset: int | None = None  # offset in the file of the first byte that does not decode
    bad_byte: bytes = b""
    reason: str = ""  # the codec's words: "invalid start byte", "unexpected end of data"...

    def problem(self) -> str:
        """'byte 0xe9 at offset 3 (invalid continuation byte)', for a message."""
        return f"byte 0x{self.bad_byte.hex()} at offset {self.bad_offset} ({self.reason})"


def decode_file(path: Path | str, encoding: str) -> Decoded:
    """Count the characters of `path` in `encoding`, stopping at the first byte that does not decode.

    Raises OSError when the file cannot be read, LookupError for an unknown encoding.
    """
    decoder = codecs.getincrementaldecoder(encoding)()
    chars = 0
    offset = 0  # of the start of `block` in the file
    with open(path, "rb") as f:
        for block in itertools.chain(iter(lambda: f.read(BLOCK), b""), [b""]):  # b"": the end, flush the decoder
            pending = decoder.getstate()[0] + block  # with the bytes kept back from the last block, mid-character
            start = offset - (len(pending) - len(block))
            try:
                chars += len(decoder.decode(block, final=not block))
            except UnicodeDecodeError as err:  # err.start counts from the kept-back bytes
                return Decoded(chars, start + err.start, err.object[err.start : err.start + 1], err.reason)
            except UnicodeError as err:  # no position given (UTF-16 or -32 without a byte order mark, say)
                return Decoded(chars, start, pending[:1], str(err))
            offset += len(block)
    return Decoded(chars)
