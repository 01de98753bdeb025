"""Output arrays that are reused once nothing refers to them any more.

A fresh 1080p label map costs 500 page faults (the kernel zeroes each page
on first touch), about as much as mapping its colours. An iterator that
draws its label maps from an ArrayPool recycles the memory of samples the
caller has dropped, so a steady loop allocates nothing, while arrays the
caller keeps (or views of them, or tensors made with torch.from_numpy) stay
untouched: a buffer is handed out again only when no array refers to it.
"""
from __future__ import annotations

import sys
import threading

import numpy as np

__all__ = ["ArrayPool", "thread_scratch"]

_SCRATCH = threading.local()


def thread_scratch(name: str, shape: tuple[int, ...], dtype) -> np.ndarray:
    """This thread's reusable array `name` of `shape` and `dtype` (made again when either
    differs), for work whose result is copied out before the thread's next call: frames are
    compacted in decode-ahead and pool threads, each with its own."""
    array = getattr(_SCRATCH, name, None)
    if array is None or array.shape != tuple(shape) or array.dtype != np.dtype(dtype):
        array = np.empty(shape, dtype)
        setattr(_SCRATCH, name, array)
    return array


class ArrayPool:
    """Hands out arrays, recycling the ones no array refers to any more.

    Not thread-safe: one pool per iterator. It tracks at most `size` buffers;
    beyond that it forgets the oldest (an array still in use lives on as usual).
    """

    def __init__(self, size: int = 8) -> None:
        # _owners[0] is never handed out: its reference count is what "unreferenced"
        # reads as, measured the same way as every other buffer's.
        self._owners: list[np.ndarray] = [np.empty(0, np.uint8)]
        self._size = size

    def empty(self, shape: tuple[int, ...], dtype: np.dtype, *, zeroed: bool = False) -> np.ndarray:
        """A C-contiguous array of `shape` and `dtype`: a dropped one of the same shape and
        dtype, holding what it last held, else a new one (zero-filled when `zeroed`)."""
        dtype, shape = np.dtype(dtype), tuple(shape)
        counts = [sys.getrefcount(owner) for owner in self._owners]
        for k in range(1, len(counts)):
            owner = self._owners[k]
            if counts[k] == counts[0] and owner.shape == shape and owner.dtype == dtype:
                return owner
        if len(self._owners) > self._size:
            del self._owners[1]
        owner = np.zeros(shape, dtype) if zeroed else np.empty(shape, dtype)
        self._owners.append(owner)
        return owner

    def __len__(self) -> int:
        """Buffers held, referenced or not."""
        return len(self._owners) - 1
