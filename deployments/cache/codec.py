"""Serialised cache entries: orjson, zstd-compressed above a size threshold.

One leading byte says which: a reader never guesses, and anything else is corrupt.
"""

from __future__ import annotations

from typing import Any

import orjson
import zstandard

_PLAIN = b"j"
_ZSTD = b"z"
_compressor = zstandard.ZstdCompressor(level=3)
_decompressor = zstandard.ZstdDecompressor()


class CorruptEntry(ValueError):
    """A stored value that does not decode: treated as a miss and replaced."""


def encode(value: dict[str, Any], compression_threshold: int) -> bytes:
    raw = orjson.dumps(value)
    if len(raw) >= compression_threshold:
        return _ZSTD + _compressor.compress(raw)
    return _PLAIN + raw


def decode(blob: bytes) -> dict[str, Any]:
    try:
        if blob[:1] == _ZSTD:
            raw = _decompressor.decompress(blob[1:])
        elif blob[:1] == _PLAIN:
            raw = blob[1:]
        else:
            raise CorruptEntry(f"unknown entry header {blob[:1]!r}")
        value = orjson.loads(raw)
    except (zstandard.ZstdError, orjson.JSONDecodeError) as exc:
        raise CorruptEntry(str(exc)) from exc
    if not isinstance(value, dict):
        raise CorruptEntry("entry is not an object")
    return value
