"""Kernel threads: how many, and a per-process pool that runs row bands of a frame side by side."""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Optional, Sequence

from .errors import OptionError

__all__ = ["kernel_threads", "row_bands", "run_bands", "frame_pool"]

_POOL_THREADS = 0
_POOL: Optional[tuple[int, ThreadPoolExecutor]] = None
_FRAME_POOL: Optional[tuple[int, int, ThreadPoolExecutor]] = None


def kernel_threads() -> int:
    """Threads a frame's YUV mapping is split over: MASKDEC_KERNEL_THREADS, else the cores
    this process may use. Worker processes (export, DataLoader) set it to 1."""
    value = os.environ.get("MASKDEC_KERNEL_THREADS", "").strip()
    if value:
        if not value.isdigit() or not 1 <= int(value) <= 1024:
            raise OptionError(f"MASKDEC_KERNEL_THREADS={value[:40]!r}: expected a whole number from 1 to 1024")
        return int(value)
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def _kernel_pool() -> Optional[ThreadPoolExecutor]:
    """A per-process pool of helper threads for the kernel (None when single-threaded)."""
    global _POOL, _POOL_THREADS
    threads = kernel_threads()
    if threads <= 1:
        return None
    if _POOL is None or _POOL[0] != os.getpid() or _POOL_THREADS != threads:  # new after a fork
        _POOL_THREADS = threads
        _POOL = (os.getpid(), ThreadPoolExecutor(threads - 1, thread_name_prefix="maskdec-kernel"))
    return _POOL[1]


def frame_pool() -> ThreadPoolExecutor:
    """A per-process pool of kernel_threads() threads that map whole frames, one each, for
    every file's decode-ahead thread (so frames of one file map while its next ones decode,
    and those of interleaved files side by side)."""
    global _FRAME_POOL
    threads = kernel_threads()
    if _FRAME_POOL is None or _FRAME_POOL[0] != os.getpid() or _FRAME_POOL[1] != threads:  # new after a fork
        _FRAME_POOL = (os.getpid(), threads, ThreadPoolExecutor(threads, thread_name_prefix="maskdec-frames"))
    return _FRAME_POOL[2]


def row_bands(height: int, align: int = 1, threads: Optional[int] = None) -> list[tuple[int, int]]:
    """The bands of rows a frame is split into, one per kernel thread (`threads`, default
    kernel_threads(); one band when single-threaded or small); band starts are multiples of `align`."""
    threads = kernel_threads() if threads is None else threads
    if threads <= 1 or height < 64:
        return [(0, height)]
    step = -(-height // (align * threads)) * align
    return [(r, min(r + step, height)) for r in range(0, height, step)]


def run_bands(work: Callable[[int, int, int], object], bands: Sequence[tuple[int, int]]) -> None:
    """work(row0, row1, k) for every band k of `bands`, side by side on the kernel pool
    (the kernels release the GIL); the calling thread takes the first band."""
    pool = _kernel_pool() if len(bands) > 1 else None
    if pool is None:
        for k, (r0, r1) in enumerate(bands):
            work(r0, r1, k)
        return
    futures = [pool.submit(work, r0, r1, k) for k, (r0, r1) in enumerate(bands) if k]
    work(*bands[0], 0)
    for future in futures:
        future.result()
