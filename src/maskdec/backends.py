"""Where export work units run: in this process, a local process pool, or Ray.

Each backend takes the units and the job and yields the workers' per-sample
records as they arrive, in any order. Units go out largest first, so a long
video does not start last.
"""
from __future__ import annotations

import ctypes
import multiprocessing
import os
import queue
import signal
import sys
import threading
import time
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import replace
from typing import Iterator, Optional, Sequence

from .errors import MaskdecError, MissingExtraError
from .export_work import ExportJob, WorkUnit, run_unit

__all__ = ["BACKENDS", "run_units"]

BACKENDS = ("local", "ray")
_DONE = "done"


def run_units(units: Sequence[WorkUnit], job: ExportJob, *, backend: str = "local", workers: int = 1,
              ray_address: Optional[str] = None) -> Iterator[dict]:
    """Run every unit; yield the records of run_unit as they come."""
    units = sorted(units, key=len, reverse=True)
    if backend == "ray":
        return _run_ray(units, job, workers, ray_address)
    if backend != "local":
        raise MaskdecError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if workers <= 1 or len(units) <= 1:
        return (record for unit in units for record in run_unit(unit, job))
    return _run_pool(units, replace(job, threads=1), min(workers, len(units)))


# ------------------------------------------------------------------ local process pool

_results: Optional["multiprocessing.Queue"] = None


def _die_with_parent(parent: int) -> None:
    """Make a pool worker end when the export process dies (even by SIGKILL), so no
    orphan keeps writing into the output a re-run is cleaning."""
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent:
        os._exit(1)

    def watch() -> None:  # portable fallback
        while True:
            time.sleep(0.5)
            if os.getppid() != parent:
                os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


def _one_thread_each() -> None:
    """Workers share the cores between them: no helper threads in the kernel or OpenCV
    (FFmpeg decodes with one thread too, see ExportJob.threads)."""
    os.environ.setdefault("MASKDEC_KERNEL_THREADS", "1")
    import cv2

    cv2.setNumThreads(1)


def _init_worker(results: "multiprocessing.Queue", parent: int) -> None:
    global _results
    _results = results
    _die_with_parent(parent)
    _one_thread_each()


def _pool_task(unit_id: int, unit: WorkUnit, job: ExportJob) -> None:
    assert _results is not None
    try:
        for record in run_unit(unit, job):
            _results.put((unit_id, record))
    finally:
        _results.put((unit_id, _DONE))


def _run_pool(units: Sequence[WorkUnit], job: ExportJob, workers: int) -> Iterator[dict]:
    ctx = multiprocessing.get_context("spawn")  # no fork of a process that may hold threads
    results = ctx.Queue()
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_init_worker,
                             initargs=(results, os.getpid())) as pool:
        futures: dict[int, Future] = {i: pool.submit(_pool_task, i, unit, job) for i, unit in enumerate(units)}
        pending = set(futures)
        try:
            while pending:
                try:
                    unit_id, record = results.get(timeout=0.5)
                except queue.Empty:
                    for i in list(pending):
                        if futures[i].done() and futures[i].exception() is not None:
                            futures[i].result()  # a worker crashed: raise its error
                    continue
                if record == _DONE:
                    pending.discard(unit_id)
                    futures[unit_id].result()  # raises what went wrong in the worker, if anything
                else:
                    yield record
        finally:
            for future in futures.values():
                future.cancel()


# ------------------------------------------------------------------ Ray

def _run_ray(units: Sequence[WorkUnit], job: ExportJob, workers: int, address: Optional[str]) -> Iterator[dict]:
    try:
        import ray
    except ImportError:
        raise MissingExtraError("--backend ray needs Ray; install it with `pip install maskdec[ray]`") from None
    started = False
    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, log_to_driver=False)
        started = True
    try:
        task = ray.remote(_ray_unit).options(num_returns="streaming")
        limit = workers if workers > 0 else max(1, int(ray.cluster_resources().get("CPU", 1)))
        job_ref = ray.put(replace(job, threads=1))
        waiting = list(units)
        running: list = []
        while waiting or running:
            while waiting and len(running) < limit:
                running.append(task.remote(waiting.pop(0), job_ref))
            ready, _ = ray.wait(running, num_returns=1)
            stream = ready[0]
            try:
                ref = next(stream)
            except StopIteration:
                running.remove(stream)
                continue
            yield ray.get(ref)
    finally:
        if started:
            ray.shutdown()


def _ray_unit(unit: WorkUnit, job: ExportJob) -> Iterator[dict]:
    _one_thread_each()
    for record in run_unit(unit, job):
        yield record
