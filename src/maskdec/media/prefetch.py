"""Decode ahead: run an iterator in a background thread, a few items in advance.

FFmpeg's frame threads decode only while someone feeds them packets. When the
thread that decodes also maps colours, the decoder idles during every kernel
run; with the decoding loop in its own thread, the next frames are decoded
while the kernel (which releases the GIL) maps the current one.
"""
from __future__ import annotations

import queue
import threading
from typing import Generic, Iterator, TypeVar

__all__ = ["Prefetch"]

T = TypeVar("T")
_ITEM, _END, _RAISED = 0, 1, 2


class Prefetch(Generic[T]):
    """Iterates `source` in a daemon thread, at most `depth` items ahead of the caller.

    Exceptions raised by `source` are raised to the caller in order; close()
    stops the thread and closes `source` (a generator) in it."""

    def __init__(self, source: Iterator[T], depth: int = 3, name: str = "maskdec-decode") -> None:
        self._queue: queue.Queue = queue.Queue(depth)
        self._stop = threading.Event()
        self._done = False
        self._thread = threading.Thread(target=self._run, args=(source,), name=name, daemon=True)
        self._thread.start()

    def _run(self, source: Iterator[T]) -> None:
        try:
            for item in source:
                if not self._put((_ITEM, item)):
                    return
            self._put((_END, None))
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, who raises it
            self._put((_RAISED, exc))
        finally:
            close = getattr(source, "close", None)
            if close is not None:
                close()

    def _put(self, message: tuple) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(message, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def __iter__(self) -> "Prefetch[T]":
        return self

    def __next__(self) -> T:
        if self._done:
            raise StopIteration
        kind, value = self._queue.get()
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
        while self._thread.is_alive():
            try:
                self._queue.get_nowait()  # unblock a put in progress
            except queue.Empty:
                pass
            self._thread.join(timeout=0.005)
        self._thread.join()
