"""The local process pool of an export: one pipe per worker, dead workers noticed.

Each worker is a spawned process that takes units over its own pipe and
sends back run_unit's records. No lock or queue is shared between workers, so
a worker that dies (SIGKILL, the OOM killer, a crash in native code) takes
nothing down with it: its pipe ends, it is replaced, and its unit runs once
more on a fresh worker without the groups it had finished (the temporary
files it was writing are removed). When the unit's worker dies again, the unit's remaining samples become failures
(WorkerDiedError naming the signal). Workers ignore SIGINT: Ctrl-C is the
export process's to handle, and the pool stops its workers on the way out.
"""
from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from typing import Iterator, Optional, Sequence

from .errors import MaskdecError
from .export_work import ExportJob, WorkUnit, failure_record, run_unit
from .samples import SampleFailure

__all__ = ["WorkerDiedError", "run_pool", "one_thread_each", "ATTEMPTS"]

#: Runs of a unit whose worker died before its samples are reported as failures.
ATTEMPTS = 2


class WorkerDiedError(MaskdecError, ChildProcessError):
    """The worker process exporting a sample died (killed, out of memory, crashed)."""


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


def one_thread_each() -> None:
    """Workers share the cores between them: no helper threads in the kernel or OpenCV
    (FFmpeg decodes with one thread too: the job's options say threads=1)."""
    os.environ.setdefault("MASKDEC_KERNEL_THREADS", "1")
    import cv2

    cv2.setNumThreads(1)


def _worker_main(conn: Connection, job: ExportJob, parent: int) -> None:
    """A worker: run each unit that comes over `conn`, send its records, then ("done", None)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _die_with_parent(parent)
    one_thread_each()
    while True:
        try:
            unit = conn.recv()
        except (EOFError, OSError):
            return
        if unit is None:
            return
        try:
            for record in run_unit(unit, job):
                conn.send(("record", record))
        except Exception as exc:  # noqa: BLE001 - sent to the export process, which raises it
            try:
                conn.send(("error", exc))
            except Exception:  # noqa: BLE001 - an error that does not pickle
                conn.send(("error", MaskdecError(f"{type(exc).__name__}: {exc}")))
            continue
        conn.send(("done", None))


def _start_ignoring_sigint(process: multiprocessing.process.BaseProcess) -> None:
    """Start a worker that ignores SIGINT from its first instruction (the disposition
    passes through exec, and Python keeps an ignored SIGINT ignored), so a Ctrl-C in
    the terminal reaches the export process alone."""
    previous = signal.getsignal(signal.SIGINT)
    if previous is None or threading.current_thread() is not threading.main_thread():
        process.start()
        return
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        process.start()
    finally:
        signal.signal(signal.SIGINT, previous)


@dataclass
class _Worker:
    process: multiprocessing.process.BaseProcess
    conn: Connection
    unit: Optional[int] = None  # the unit in flight


@dataclass
class _Unit:
    unit: WorkUnit
    attempts: int = 0
    reported: set = field(default_factory=set)


def _signal_text(exitcode: Optional[int]) -> str:
    if exitcode is not None and exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        hint = ": out of memory?" if -exitcode == signal.SIGKILL else ""
        return f"killed by {name}{hint}"
    return f"exit status {exitcode}"


def run_pool(units: Sequence[WorkUnit], job: ExportJob, workers: int) -> Iterator[dict]:
    """Run every unit on up to `workers` processes; yield run_unit's records as they
    come, failure records for the samples of a unit whose worker died twice, and
    `{"note": text}` records saying what happened to dead workers."""
    ctx = multiprocessing.get_context("spawn")  # no fork of a process that may hold threads
    state = [_Unit(u) for u in units]
    todo = deque(range(len(units)))
    pool: list[_Worker] = []
    idle_deaths = 0

    def start() -> None:
        mine, theirs = ctx.Pipe(duplex=True)
        process = ctx.Process(target=_worker_main, args=(theirs, job, os.getpid()), daemon=True)
        _start_ignoring_sigint(process)
        theirs.close()
        pool.append(_Worker(process, mine))

    def dispatch(worker: _Worker, uid: int) -> bool:
        entry = state[uid]
        unit = entry.unit.without(entry.reported)
        if unit is None:
            return True
        entry.attempts += 1
        worker.unit = uid
        try:
            worker.conn.send(unit)
        except (OSError, ValueError):  # died before taking it: noticed by its sentinel
            pass
        return False

    try:
        while todo or any(w.unit is not None for w in pool):
            while len(pool) < min(workers, len(todo) + sum(w.unit is not None for w in pool)):
                start()
            for worker in pool:
                while worker.unit is None and todo and dispatch(worker, todo.popleft()):
                    pass
            ready = set(wait([w.conn for w in pool] + [w.process.sentinel for w in pool]))
            for worker in list(pool):
                if worker.conn in ready:
                    try:
                        while True:
                            kind, payload = worker.conn.recv()
                            if kind == "record":
                                entry = state[worker.unit]
                                if payload["position"] not in entry.reported:
                                    entry.reported.add(payload["position"])
                                    yield payload
                            elif kind == "done":
                                worker.unit = None
                            else:
                                raise payload
                            if not worker.conn.poll():
                                break
                    except (EOFError, OSError):
                        pass  # the pipe ended: the worker is gone (its sentinel says so too)
                    else:
                        continue
                if worker.process.sentinel in ready or not worker.process.is_alive():
                    worker.process.join()
                    pool.remove(worker)
                    worker.conn.close()
                    job.store.clean_temp(worker.process.pid)  # what it was writing when it died
                    if worker.unit is None:
                        idle_deaths += 1
                        if idle_deaths > 2 * workers + 2:
                            raise MaskdecError(f"export worker processes keep dying before they take work "
                                               f"(last: {_signal_text(worker.process.exitcode)})")
                        continue
                    for record in _unit_died(state[worker.unit], worker.process.exitcode):
                        yield record
                    if state[worker.unit].attempts < ATTEMPTS:
                        todo.appendleft(worker.unit)
    finally:
        for worker in pool:
            if worker.unit is None and worker.process.is_alive():
                try:
                    worker.conn.send(None)
                except (OSError, ValueError):
                    pass
        for worker in pool:
            killed = worker.unit is not None
            if killed:  # stopped early (an error, Ctrl-C): no need to finish
                worker.process.kill()
            worker.process.join(5)
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join()
                killed = True
            worker.conn.close()
            if killed:
                try:
                    job.store.clean_temp(worker.process.pid)
                except MaskdecError:
                    pass  # a re-run removes them


def _unit_died(entry: _Unit, exitcode: Optional[int]) -> list[dict]:
    """What the export is told when the worker running `entry` died: a note, and after
    the last attempt a failure for each sample not reported."""
    how = _signal_text(exitcode)
    unit = entry.unit.without(entry.reported)
    if unit is None:
        return []
    first = unit.requests[0]
    where = first.mask_uri if first.mask_uri == unit.requests[-1].mask_uri else f"{first.mask_uri} and others"
    if entry.attempts < ATTEMPTS:
        return [{"note": f"a worker process died ({how}) while exporting {len(unit)} samples of {where}; "
                         f"running them again"}]
    error = WorkerDiedError(f"the worker process exporting this sample died ({how}), {entry.attempts} times")
    records = [{"note": f"a worker process died ({how}) again on {len(unit)} samples of {where}; they are "
                        f"recorded as failures"}]
    for position, request in zip(unit.positions(), unit.requests):
        entry.reported.add(position)
        records.append(failure_record(position, SampleFailure(request, error)))
    return records
