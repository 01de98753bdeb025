"""Reading JSON files that may be hostile: bounded in size, every failure a MaskdecError naming the file.

`read_json(path)` reads one document (at most MASKDEC_MAX_JSON_FILE_BYTES, failing at the
first NUL byte or invalid UTF-8 rather than at the end); `json_lines(path)` yields the
documents of a JSONL file one line at a time (each at most MASKDEC_MAX_JSON_LINE_BYTES).
An integer too long for Python's int() (more than 4300 digits) is reported with its JSON
path, not as a bare ValueError.
"""
from __future__ import annotations

import codecs
import json
import os
from typing import IO, Any, Iterator, Optional, Union

from .errors import FrameFormatError, MediaAccessError, MediaNotFoundError, OptionError
from .limits import format_bytes, max_json_file_bytes, max_json_line_bytes

__all__ = ["read_json", "json_lines", "loads", "BigNumber"]

_CHUNK = 1 << 20
_BOM = codecs.BOM_UTF8


class BigNumber:
    """Stands for a JSON integer with more digits than int() accepts, so the frame
    validators can name where it is."""

    __slots__ = ("digits",)

    def __init__(self, text: str) -> None:
        self.digits = len(text.lstrip("-"))

    def __repr__(self) -> str:
        return f"<a {self.digits}-digit number>"


def _parse_int(text: str) -> Union[int, BigNumber]:
    try:
        return int(text)
    except ValueError:
        return BigNumber(text)


def loads(text: str, where: str) -> Any:
    """json.loads with typed errors: FrameFormatError naming `where` (and the JSON path
    of an over-long integer)."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        at = f"column {exc.colno}" if "\n" not in text.strip() else f"line {exc.lineno}, column {exc.colno}"
        raise FrameFormatError(f"invalid JSON: {exc.msg} ({at})", where) from None
    except RecursionError:
        raise FrameFormatError("invalid JSON: nested too deeply", where) from None
    except ValueError:  # an integer past int()'s digit limit: parse again, marking it
        pass
    data = json.loads(text, parse_int=_parse_int)
    found = find_big_number(data, "$")
    if found is not None:
        path, number = found
        raise FrameFormatError(f"a {number.digits}-digit number is too long to be a value", f"{where}: {path}")
    return data


def find_big_number(value: Any, path: str) -> Optional[tuple[str, BigNumber]]:
    """The JSON path and value of the first BigNumber inside `value`, if any."""
    stack = [(value, path)]
    while stack:
        item, where = stack.pop()
        if isinstance(item, BigNumber):
            return where, item
        if isinstance(item, dict):
            stack.extend((v, f"{where}.{k}") for k, v in reversed(list(item.items())))
        elif isinstance(item, list):
            stack.extend((v, f"{where}[{i}]") for i, v in reversed(list(enumerate(item))))
    return None


def _open(path: Union[str, os.PathLike], what: str) -> IO[bytes]:
    if not isinstance(path, (str, os.PathLike)):
        raise OptionError(f"{what}: expected a file path, got {type(path).__name__} {path!r}")
    try:
        return open(path, "rb")
    except FileNotFoundError:
        raise MediaNotFoundError(f"{what} not found: {os.fspath(path)}") from None
    except IsADirectoryError:
        raise FrameFormatError(f"cannot read {what}: it is a folder", os.fspath(path)) from None
    except PermissionError:
        raise MediaAccessError(f"cannot read {what} {os.fspath(path)}: permission denied") from None
    except ValueError:  # a NUL character
        raise MediaNotFoundError(f"{what} not found: {os.fspath(path)!r} (a path cannot hold a NUL character)") \
            from None
    except OSError as exc:
        raise FrameFormatError(f"cannot read {what}: {exc.strerror or exc}", os.fspath(path)) from None


def _read_error(exc: OSError, what: str, path: str) -> FrameFormatError:
    if isinstance(exc, IsADirectoryError):
        return FrameFormatError(f"cannot read {what}: it is a folder", path)
    return FrameFormatError(f"cannot read {what}: {exc.strerror or exc}", path)


def read_json(path: Union[str, os.PathLike], what: str = "JSON file") -> Any:
    """The JSON document in a file (UTF-8, a leading BOM allowed), read in chunks and at most
    MASKDEC_MAX_JSON_FILE_BYTES long; `what` names the file in errors ("frames file" ...)."""
    name = os.fspath(path) if isinstance(path, (str, os.PathLike)) else repr(path)
    limit = max_json_file_bytes()
    decoder = codecs.getincrementaldecoder("utf-8-sig")()
    parts: list[str] = []
    size = 0
    with _open(path, what) as f:
        while True:
            try:
                chunk = f.read(_CHUNK)
            except OSError as exc:
                raise _read_error(exc, what, name) from None
            if not chunk:
                break
            size += len(chunk)
            if size > limit:
                raise FrameFormatError(f"{what} is larger than {format_bytes(limit)} (MASKDEC_MAX_JSON_FILE_BYTES; "
                                       f"raise it, or write the frames as JSON lines)", name)
            if b"\0" in chunk:
                raise FrameFormatError(f"{what} holds NUL bytes: it is not UTF-8 JSON text "
                                       f"(byte {size - len(chunk) + chunk.index(0)})", name)
            try:
                parts.append(decoder.decode(chunk))
            except UnicodeDecodeError as exc:
                raise FrameFormatError(f"{what} is not UTF-8 text: {exc.reason} at byte "
                                       f"{size - len(chunk) + exc.start}", name) from None
    try:
        parts.append(decoder.decode(b"", final=True))
    except UnicodeDecodeError as exc:
        raise FrameFormatError(f"{what} is not UTF-8 text: {exc.reason} at its end", name) from None
    return loads("".join(parts), os.path.basename(name) or name)


def json_lines(path: Union[str, os.PathLike], what: str = "frames file"
               ) -> Iterator[tuple[int, Union[Any, FrameFormatError]]]:
    """(line number, parsed document) for each non-blank line of a JSONL file, or (line number,
    FrameFormatError) for a line that is not UTF-8 JSON. Raises for a line longer than
    MASKDEC_MAX_JSON_LINE_BYTES (the rest of such a file cannot be read in bounded memory)."""
    name = os.fspath(path)
    base = os.path.basename(name) or name
    limit = max_json_line_bytes()
    with _open(path, what) as f:
        lineno = 0
        while True:
            try:
                raw = f.readline(limit + 1)
            except OSError as exc:
                raise _read_error(exc, what, name) from None
            if not raw:
                return
            lineno += 1
            if len(raw) > limit and not (len(raw) == limit + 1 and raw.endswith(b"\n")):
                raise FrameFormatError(f"line longer than {format_bytes(limit)} (MASKDEC_MAX_JSON_LINE_BYTES; "
                                       f"raise it for genuinely longer frames)", f"{base} line {lineno}")
            if lineno == 1 and raw.startswith(_BOM):
                raw = raw[len(_BOM):]
            where = f"{base} line {lineno}"
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                yield lineno, FrameFormatError(f"not UTF-8 text: {exc.reason} at column {exc.start + 1}", where)
                continue
            if not line.strip():
                continue
            try:
                yield lineno, loads(line, where)
            except FrameFormatError as exc:
                yield lineno, exc
