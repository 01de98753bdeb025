"""Resource limits on untrusted input, each with a generous default and an environment
variable that raises (or lowers) it. Read on every use, so a change takes effect at once.

| variable | default | bounds |
|---|---|---|
| MASKDEC_MAX_PIXELS | 2**28 (268 million) | width x height of a decoded picture, and of a declared `width`/`height` |
| MASKDEC_MAX_JSON_LINE_BYTES | 64 MiB | one line of a JSONL frames file |
| MASKDEC_MAX_JSON_FILE_BYTES | 1 GiB | a .json frames file or a mask labels file, read whole |
| MASKDEC_MAX_REMOTE_BYTES | 4 GiB | one remote media file (checked against its size up front and while reading) |
| MASKDEC_REMOTE_TIMEOUT | 30 s | connecting to and each read from an http(s) server, unless fsspec's settings give one |
| MASKDEC_TABLE_CACHE_BYTES | 1 GiB | colour tables kept per process (a YUV palette takes about 19 MiB, an RGB one 16 MiB) |

Sizes accept a plain number of bytes or a suffix: `512M`, `8GiB`, `100k`.
"""
from __future__ import annotations

import os
import re

from .errors import OptionError

__all__ = ["max_pixels", "max_json_line_bytes", "max_json_file_bytes", "max_remote_bytes", "remote_timeout",
           "table_cache_bytes", "check_pixels", "format_bytes"]

DEFAULT_MAX_PIXELS = 1 << 28
DEFAULT_MAX_JSON_LINE_BYTES = 64 << 20
DEFAULT_MAX_JSON_FILE_BYTES = 1 << 30
DEFAULT_MAX_REMOTE_BYTES = 4 << 30
DEFAULT_REMOTE_TIMEOUT = 30.0
DEFAULT_TABLE_CACHE_BYTES = 1 << 30

_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def _env_size(name: str, default: int) -> int:
    """A positive byte count (or pixel count) from the environment; unset or empty: `default`."""
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    match = re.fullmatch(r"([0-9]+)\s*([kmgt]?)(?:i?b)?", text.lower())
    if match is None or int(match.group(1)) <= 0:
        raise OptionError(f"{name}={text!r}: expected a positive whole number, optionally with a unit "
                          f"(k, M, G, T), e.g. {name}={default}")
    return int(match.group(1)) * _UNITS[match.group(2)]


def max_pixels() -> int:
    """The most pixels (width x height) a decoded picture or a declared size may have."""
    return _env_size("MASKDEC_MAX_PIXELS", DEFAULT_MAX_PIXELS)


def max_json_line_bytes() -> int:
    """The longest line of a JSONL frames file, in bytes."""
    return _env_size("MASKDEC_MAX_JSON_LINE_BYTES", DEFAULT_MAX_JSON_LINE_BYTES)


def max_json_file_bytes() -> int:
    """The largest JSON document read whole (a .json frames file, a mask labels file), in bytes."""
    return _env_size("MASKDEC_MAX_JSON_FILE_BYTES", DEFAULT_MAX_JSON_FILE_BYTES)


def max_remote_bytes() -> int:
    """The largest remote media file maskdec reads, in bytes."""
    return _env_size("MASKDEC_MAX_REMOTE_BYTES", DEFAULT_MAX_REMOTE_BYTES)


def table_cache_bytes() -> int:
    """Bytes of colour tables a process keeps (least recently used dropped first)."""
    return _env_size("MASKDEC_TABLE_CACHE_BYTES", DEFAULT_TABLE_CACHE_BYTES)


def remote_timeout() -> float:
    """Seconds to wait for an http(s) server to accept a connection, and for each read."""
    text = os.environ.get("MASKDEC_REMOTE_TIMEOUT", "").strip()
    if not text:
        return DEFAULT_REMOTE_TIMEOUT
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value > 0 or value == float("inf"):
        raise OptionError(f"MASKDEC_REMOTE_TIMEOUT={text!r}: expected a positive number of seconds, "
                          f"e.g. MASKDEC_REMOTE_TIMEOUT={DEFAULT_REMOTE_TIMEOUT:g}")
    return value


def check_pixels(width: int, height: int) -> str:
    """Why a width x height picture is over the pixel limit, or "" when it is within it."""
    limit = max_pixels()
    if width * height <= limit:
        return ""
    return (f"{width}x{height} is {width * height} pixels, more than the limit of {limit} "
            f"(MASKDEC_MAX_PIXELS; raise it for genuinely larger pictures)")


def format_bytes(n: int) -> str:
    """1073741824 -> '1 GiB', 5000 -> '5000 bytes' (exact multiples only)."""
    for unit, size in (("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size and n % size == 0:
            return f"{n // size} {unit}"
    return f"{n} bytes"
