"""Decode ahead: run an iterator in a background thread, a few items in advance.

FFmpeg's frame threads decode only while someone feeds them packets. When the
thread that decodes also maps colours, the decoder idles during every kernel
run; with the decoding loop in its own thread, the next frames are decoded
while the kernel (which releases the GIL) maps the current one.
"""
from __future__ import annotations

import threading
from collections import deque
from typing import Callable, Generic, Iterator, Optional, TypeVar

__all__ = ["Prefetch"]

T = TypeVar("T")
_ITEM, _END, _RAISED = 0, 1, 2


class Prefetch(Generic[T]):
    """Iterates `source` in a daemon thread, at most `depth` items ahead of the caller and,
    with `max_bytes`, at most that many bytes ahead (`size(item)` of the items waiting; one
    item always fits).

    Exceptions raised by `source` are raised to the caller in order; close()
    stops the thread and closes `source` (a generator) in it."""

    def __init__(self, source: Iterator[T], depth: int = 3, name: str = "maskdec-decode", *,
                 max_bytes: Optional[int] = None, size: Optional[Callable[[T], int]] = None) -> None:
        self._waiting: deque = deque()  # (kind, value, bytes)
        self._bytes = 0
        self._depth = max(1, depth)
        self._max_bytes = max_bytes
        self._size = size
        self._ready = threading.Condition()
        self._stop = threading.Event()
        self._done = False
        self._thread = threading.Thread(target=self._run, args=(source,), name=name, daemon=True)
        self._thread.start()

    def _run(self, source: Iterator[T]) -> None:
        try:
            for item in source:
                if not self._put(_ITEM, item):
                    return
            self._put(_END, None)
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, who raises it
            self._put(_RAISED, exc)
        finally:
            close = getattr(source, "close", None)
            if close is not None:
                close()

    def _full(self, nbytes: int) -> bool:
        if not self._waiting:
            return False
        return len(self._waiting) >= self._depth or (
            self._max_bytes is not None and self._bytes + nbytes > self._max_bytes)

    def _put(self, kind: int, value) -> bool:
        nbytes = self._size(value) if kind == _ITEM and self._size is not None else 0
        with self._ready:
            while self._full(nbytes) and not self._stop.is_set():
                self._ready.wait(0.05)
            if self._stop.is_set():
                return False
            self._waiting.append((kind, value, nbytes))
            self._bytes += nbytes
            self._ready.notify_all()
            return True

    def __iter__(self) -> "Prefetch[T]":
        return self

    def __next__(self) -> T:
        if self._done:
            raise StopIteration
        with self._ready:
            while not self._waiting:
                self._ready.wait()
            kind, value, nbytes = self._waiting.popleft()
            self._bytes -= nbytes
            self._ready.notify_all()
        if kind == _ITEM:
            return value
        self._done = True
        self._thread.join()
        if kind == _END:
            raise StopIteration
        raise value

    def close(self) -> None:
        """Stop decoding ahead and wait for the thread (which closes the source)."""
        self._done = True
        self._stop.set()
        with self._ready:
            self._waiting.clear()  # what was decoded ahead is dropped
            self._bytes = 0
            self._ready.notify_all()
        self._thread.join()
