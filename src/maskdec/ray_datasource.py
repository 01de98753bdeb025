"""The Ray Data Datasource of maskdec.ray.read_samples (imports Ray: use maskdec.ray).

One read task per work unit (or whole units packed together); a task decodes
its samples in plan order with a SampleIterator and yields blocks of a few.
"""
from __future__ import annotations

import functools
from typing import Any, Iterator, Optional, Sequence

import numpy as np
from ray.data import Datasource, ReadTask
from ray.data.block import Block, BlockAccessor, BlockMetadata

from .errors import MaskdecError
from .export_pool import one_thread_each
from .labels import LabelTable
from .options import Options
from .samples import Sample, SampleIterator, SampleRequest

__all__ = ["MaskdecDatasource", "MAX_BLOCK_BYTES"]

#: A read task yields a block at `samples_per_block` samples or this many bytes of arrays.
MAX_BLOCK_BYTES = 64 << 20


class MaskdecDatasource(Datasource):
    """The samples of a plan; `units` are plan positions per work unit, `labels` the LabelTable."""

    def __init__(self, labels: LabelTable, requests: Sequence[SampleRequest], units: Sequence[Sequence[int]],
                 options: Options, *, on_failure: str, samples_per_block: int) -> None:
        super().__init__()
        self.labels = labels
        self.units = [list(u) for u in units]
        self.requests = list(requests)  # the plan, by position
        self._options = options
        self._on_failure = on_failure
        self._samples_per_block = samples_per_block

    def estimate_inmemory_data_size(self) -> Optional[int]:
        return None

    def get_read_tasks(self, parallelism: int, per_task_row_limit: Optional[int] = None,
                       data_context: Any = None) -> list[ReadTask]:
        """One task per unit, or units packed into `parallelism` tasks when it is smaller;
        a task's metadata lists the media files it reads (`input_files`)."""
        tasks = []
        for positions in _pack(self.units, max(1, parallelism)):
            requests = [self.requests[p] for p in positions]
            files = {r.mask_uri for r in requests}
            if self._options.images:
                files.update(r.image_uri for r in requests)
            read = functools.partial(_read_unit, self.labels, requests, self._options, self._on_failure,
                                     self._samples_per_block)
            rows = len(requests) if self._on_failure == "raise" else None
            metadata = BlockMetadata(num_rows=rows, size_bytes=None, exec_stats=None, input_files=sorted(files))
            limit = {} if per_task_row_limit is None else {"per_task_row_limit": per_task_row_limit}  # Ray >= 2.52
            tasks.append(ReadTask(read, metadata, **limit))
        return tasks


def _pack(units: Sequence[Sequence[int]], tasks: int) -> list[list[int]]:
    """Whole units in at most `tasks` lists of positions: one unit each when there are
    enough tasks, else largest first onto the lightest list (each list in plan order)."""
    if len(units) <= tasks:
        return [list(u) for u in units]
    bins: list[list[int]] = [[] for _ in range(tasks)]
    for unit in sorted(units, key=len, reverse=True):
        min(bins, key=len).extend(unit)
    return [sorted(b) for b in bins]


def _read_unit(labels: LabelTable, requests: list[SampleRequest], options: Options, on_failure: str,
               samples_per_block: int) -> Iterator[Block]:
    """A read task: decode the requests in order, yield blocks of a few samples."""
    one_thread_each()
    iterator = SampleIterator.of(labels, requests, options, raise_errors=on_failure == "raise")
    block: list[Sample] = []
    size = 0
    try:
        for sample in iterator:
            if not isinstance(sample, Sample):  # a SampleFailure, with on_failure="skip"
                continue
            block.append(sample)
            size += sum(a.nbytes for a in (sample.image, sample.label_map, sample.instance_map) if a is not None)
            if len(block) >= samples_per_block or size >= MAX_BLOCK_BYTES:
                yield _block(block, options)
                block, size = [], 0
        if block:
            yield _block(block, options)
    finally:
        iterator.close()


def _block(samples: list[Sample], options: Options) -> Block:
    batch: dict[str, Any] = {}
    if options.images:
        batch["image"] = _column([s.image for s in samples])
    if options.label_maps:
        batch["label_map"] = _column([s.label_map for s in samples])
    if options.instances:
        batch["instance_map"] = _column([_instance_map(s) for s in samples])
    if options.stats:
        for name in ("exact", "snapped", "unknown"):
            batch[f"stats_{name}"] = np.array([getattr(s.stats, name) for s in samples], np.int64)
    batch["frame_index"] = np.array([s.frame_index for s in samples], np.int64)
    batch["source_id"] = np.array([s.source_id for s in samples], dtype=object)
    batch["mask_id"] = np.array([s.mask_id for s in samples], dtype=object)
    batch["timestamp"] = np.array([s.timestamp for s in samples], np.int64)
    batch["mask_timestamp"] = np.array([s.mask_timestamp for s in samples], np.int64)
    return BlockAccessor.batch_to_block(batch)


def _column(arrays: list[np.ndarray]) -> Any:
    """One stacked array when every sample's has the same shape, else a list of copies
    (a variable-shaped tensor column); copies either way: the iterator recycles its arrays."""
    if len({a.shape for a in arrays}) == 1:
        return np.stack(arrays)
    return [np.array(a) for a in arrays]


def _instance_map(sample: Sample) -> np.ndarray:
    """The sample's instance map; all 0 (no ROI) for a mask no ROI of its frame declares."""
    if sample.instance_map is not None:
        return sample.instance_map
    sized = sample.label_map if sample.label_map is not None else sample.image
    if sized is None:
        raise MaskdecError(f"frame {sample.frame_index}, mask {sample.mask_id!r}: no ROI declares a colour of "
                           "it, so it has no instance map; ask for label_maps or images to get its size")
    return np.zeros(sized.shape[:2], np.int32)
