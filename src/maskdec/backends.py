"""Where export work units run: in this process, a local process pool, or Ray.

Each backend takes the units and the job and yields the workers' per-sample
records as they arrive, in any order. Units go out largest first, so a long
video does not start last. The local process pool lives in export_pool.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Iterator, Optional, Sequence

from .errors import MaskdecError, MissingExtraError
from .export_pool import one_thread_each, run_pool
from .export_work import ExportJob, WorkUnit, run_unit

__all__ = ["BACKENDS", "run_units"]

BACKENDS = ("local", "ray")


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
    return run_pool(units, replace(job, options=job.options.replace(threads=1)), min(workers, len(units)))


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
        job_ref = ray.put(replace(job, options=job.options.replace(threads=1)))
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
    one_thread_each()
    for record in run_unit(unit, job):
        yield record
