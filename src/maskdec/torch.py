"""PyTorch datasets over maskdec (the `[torch]` extra): map-style and streaming, safe under
fork, spawn and forkserver, and a collate that pads variable sizes.

    ds = maskdec.torch.MaskDataset("frames.jsonl")
    loader = DataLoader(ds, batch_size=8, shuffle=True, num_workers=2, collate_fn=ds.collate)
    # shuffled at streaming speed: each GOP decoded once per epoch (maskdec.sampling)
    sampler = maskdec.torch.GopBatchSampler(ds, 32, window=4, num_workers=2)
    loader = DataLoader(ds, batch_sampler=sampler, num_workers=2, collate_fn=ds.collate)

An item is a dict: `image` (C, H, W) uint8 tensor (None with images=False), `label_map`
(H, W) int64 tensor (uint8 on request), `frame_index`, `source_id`, `mask_id`, `timestamp`.
Nothing opens in `__init__` but the frames file: media readers open lazily in the process
that reads, so datasets pickle to workers. Inside a DataLoader worker decoders default to
one thread and the YUV mapping kernel runs on one (MASKDEC_KERNEL_THREADS=1): the workers
are the parallelism.

Fork safety: FFmpeg objects (decoders, scalers) made in a parent wait on threads that a
forked child does not have, so freeing them in the child can hang it. A forked child
therefore never frees what it inherited: every fork hands the child its objects frozen
(maskdec.forksafe), and reader caches keep, unused, the readers a parent had open.

`import maskdec` never imports this module (nor torch).
"""
from __future__ import annotations

import functools
import os
import warnings
from typing import Any, Callable, Iterator, Mapping, Optional, Sequence, Union

import numpy as np

from . import forksafe  # noqa: F401  (forked children never free inherited FFmpeg objects)
from .buffers import ArrayPool
from .dataset import MaskDataset as CoreDataset
from .errors import MaskdecError, MissingExtraError
from .labels import LabelTable
from .samples import FramesArg, Sample, SampleIterator, SampleRequest
from .disjoint import DisjointSets
from .sampling import GopBatchSampler, ShuffleBuffer, check_count, check_share, interleave

try:
    import torch
    import torch.distributed
    from torch.utils.data import Dataset, IterableDataset, default_collate, get_worker_info
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise MissingExtraError("maskdec.torch needs PyTorch: pip install 'maskdec[torch]' "
                            "(or install torch your way first)") from exc

__all__ = ["MaskDataset", "MaskIterableDataset", "GopBatchSampler", "collate", "Transform"]

#: transform(image, label_map) -> (image, label_map), on tensors; image is None with images=False.
Transform = Callable[[Optional[torch.Tensor], torch.Tensor], tuple[Optional[torch.Tensor], torch.Tensor]]

_LABEL_DTYPES = {torch.int64: np.int64, torch.uint8: np.uint8}


# ------------------------------------------------------------------ processes

def _worker_setup() -> None:
    """In a DataLoader worker the mapping kernel runs on one thread (decoders already default to one)."""
    if get_worker_info() is not None:
        os.environ["MASKDEC_KERNEL_THREADS"] = "1"


# ------------------------------------------------------------------ items


def _check_label_dtype(label_dtype: torch.dtype, labels: LabelTable) -> torch.dtype:
    if label_dtype not in _LABEL_DTYPES:
        raise MaskdecError(f"label_dtype must be torch.int64 or torch.uint8, got {label_dtype}")
    if label_dtype == torch.uint8 and labels.dtype != np.uint8:
        raise MaskdecError(f"label_dtype torch.uint8 cannot hold these label ids (ignore_index "
                           f"{labels.ignore_index}, largest id {max(labels.ids.values(), default=0)})")
    return label_dtype


def _tensor(array: np.ndarray) -> torch.Tensor:
    if not array.flags.writeable:  # torch warns on read-only memory
        array = array.copy()
    return torch.from_numpy(array)


#: Items' arrays a streaming dataset recycles (two per item: enough for batches of 128).
_STREAM_BUFFERS = 258


def _copy(array: np.ndarray, pool: Optional[ArrayPool], dtype: Optional[np.dtype] = None) -> np.ndarray:
    """A C-contiguous copy of `array` (as `dtype`), in a recycled buffer of `pool` when given:
    a 1080p batch of 32 items is 730 MB of new memory otherwise, and the page faults of
    touching it cost about what collating it does."""
    dtype = array.dtype if dtype is None else np.dtype(dtype)
    if pool is None:
        return np.ascontiguousarray(array, dtype=dtype)
    out = pool.empty(array.shape, dtype)
    np.copyto(out, array)
    return out


def _item(sample: Sample, label_dtype: torch.dtype, transform: Optional[Transform],
          pool: Optional[ArrayPool] = None) -> dict[str, Any]:
    image = None if sample.image is None else _tensor(_copy(sample.image.transpose(2, 0, 1), pool))
    labels = sample.label_map
    dtype = _LABEL_DTYPES[label_dtype]
    label_map = _tensor(labels if labels.dtype == dtype else _copy(labels, pool, dtype))
    if transform is not None:
        image, label_map = transform(image, label_map)
    return {"image": image, "label_map": label_map, "frame_index": sample.frame_index,
            "source_id": sample.source_id, "mask_id": sample.mask_id, "timestamp": sample.timestamp}


def _core(frames: Union[FramesArg, CoreDataset], options: Mapping[str, Any]) -> CoreDataset:
    if isinstance(frames, CoreDataset):
        if options:
            raise MaskdecError(f"options {sorted(options)} belong to the maskdec.MaskDataset passed in")
        return frames
    return CoreDataset(frames, **options)


# ------------------------------------------------------------------ map-style

class _LabelsOf:
    """The label table and the matching collate of a dataset wrapping a core MaskDataset."""

    dataset: CoreDataset

    @property
    def labels(self) -> LabelTable:
        return self.dataset.labels

    @property
    def collate(self) -> Callable[[Sequence[Mapping[str, Any]]], dict[str, Any]]:
        """`collate` padding label maps with this dataset's ignore index (picklable)."""
        return functools.partial(collate, ignore_index=self.labels.ignore_index)


class MaskDataset(_LabelsOf, Dataset):
    """Map-style dataset: item i is sample i of `maskdec.MaskDataset(frames, **options)` (the
    order of `iter_samples`) as tensors. `frames` may also be a `maskdec.MaskDataset`.

    A DataLoader batch is decoded as one planned batch (`__getitems__`): grouped by file,
    each GOP at most once. transform: applied to (image, label_map) tensors of each item.
    label_dtype: torch.int64 (default) or torch.uint8 (when the label ids fit).
    """

    def __init__(self, frames: Union[FramesArg, CoreDataset], *, transform: Optional[Transform] = None,
                 label_dtype: torch.dtype = torch.int64, **options: Any) -> None:
        self.dataset = _core(frames, options)
        self.transform = transform
        self.label_dtype = _check_label_dtype(label_dtype, self.dataset.labels)
        self._pool: Optional[ArrayPool] = None  # items' arrays, recycled once collated and dropped
        self._pool_size = 0

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return self.__getitems__([i])[0]

    def __getitems__(self, indices: Sequence[int]) -> list[dict[str, Any]]:
        _worker_setup()
        samples = self.dataset.__getitems__(list(indices))
        if self._pool is None or self._pool_size < 2 * len(samples) + 2:  # a batch's items, and one more
            self._pool_size = 2 * len(samples) + 2
            self._pool = ArrayPool(self._pool_size)
        return [_item(s, self.label_dtype, self.transform, self._pool) for s in samples]

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_pool"], state["_pool_size"] = None, 0  # recycled arrays stay in the process that made them
        return state

    def close(self) -> None:
        """Close this process's open readers (they reopen on demand)."""
        self.dataset.close()

    def __repr__(self) -> str:
        return f"maskdec.torch.MaskDataset({len(self)} samples, label_dtype={self.label_dtype})"


# ------------------------------------------------------------------ streaming

def file_units(requests: Sequence[SampleRequest]) -> list[list[int]]:
    """Request positions grouped so that no media file is read by two groups (requests that
    share an image or mask file, directly or through others, are together); groups in the
    order of their first request, positions ascending."""
    files: DisjointSets[str] = DisjointSets()
    for r in requests:
        files.join(files.find(r.mask_uri), files.find(r.image_uri))
    groups: dict[str, list[int]] = {}
    for k, r in enumerate(requests):
        groups.setdefault(files.find(r.mask_uri), []).append(k)
    return list(groups.values())


def balance(sizes: Sequence[int], parts: int) -> list[list[int]]:
    """Positions of `sizes` dealt into `parts` lists, largest first to the least loaded (ties:
    the earlier), so the sums come out close; each list ascending. Deterministic."""
    loads = [0] * parts
    out: list[list[int]] = [[] for _ in range(parts)]
    for k in sorted(range(len(sizes)), key=lambda k: (-sizes[k], k)):
        p = min(range(parts), key=lambda p: (loads[p], p))
        out[p].append(k)
        loads[p] += sizes[k]
    return [sorted(o) for o in out]


def _distributed() -> Optional[tuple[int, int]]:
    dist = torch.distributed
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return None


def sample_bytes(sample: Sample) -> int:
    """The memory a decoded sample holds (image, label map, colour index)."""
    return sum(int(a.nbytes) for a in (sample.image, sample.label_map, sample.colour_index) if a is not None)


class MaskIterableDataset(_LabelsOf, IterableDataset):
    """Streams samples, one forward decode per file (as `iter_samples`), sharded so that each
    sample comes out exactly once: whole files (see `file_units`) are dealt to ranks, then
    each rank's files to its DataLoader workers, balanced by sample count. By default each
    shard yields its samples in input order.

    Shuffled streaming (the WebDataset way), for any of:
    interleave: k groups of files streamed at once per worker (their decoders run side by
        side), each next sample drawn at random among them; each group's samples stay in
        order, groups come in random order.
    shuffle_buffer: N decoded samples held, each next one drawn at random from them;
        memory is bounded by N samples: `peak_buffered_bytes` is the most they held in this
        process (0 workers: after the epoch; in workers, each worker's own).
    seed: None (default) draws each pass's order from torch's random state (seeded per
        worker and epoch by the DataLoader); an int makes the order a function of (seed,
        epoch, rank, worker): call set_epoch(n) each epoch, as for DistributedSampler
        (each pass in one process also advances the epoch by one).

    rank, world_size: this process's share; default: torch.distributed's when initialised
    (looked up when iterating, or when pickled to spawned workers), else 0 of 1.
    `len(ds)` is this rank's sample count; ranks may get different counts.
    Other options as for `MaskDataset`; `frames` may also be a `maskdec.MaskDataset`.
    """

    def __init__(self, frames: Union[FramesArg, CoreDataset], *, rank: Optional[int] = None,
                 world_size: Optional[int] = None, shuffle_buffer: int = 0, interleave: int = 1,
                 seed: Optional[int] = None, transform: Optional[Transform] = None,
                 label_dtype: torch.dtype = torch.int64, **options: Any) -> None:
        self._share = check_share(rank, world_size)
        self.shuffle_buffer = check_count("shuffle_buffer", shuffle_buffer, 0)
        self.interleave = check_count("interleave", interleave, 1)
        self.seed = None if seed is None else check_count("seed", seed, 0)
        self.dataset = _core(frames, options)
        self.transform = transform
        self.label_dtype = _check_label_dtype(label_dtype, self.dataset.labels)
        self.units = file_units(self.dataset.requests)
        self.epoch = 0
        self.peak_buffered_bytes = 0
        files = 2 if self.dataset.images else 1
        if self.interleave * files > self.dataset.max_open_readers:
            warnings.warn(f"MaskIterableDataset: interleave {self.interleave} x {files} files exceeds "
                          f"max_open_readers={self.dataset.max_open_readers}: files will be closed and reopened",
                          stacklevel=2)

    @property
    def shuffled(self) -> bool:
        return self.shuffle_buffer > 0 or self.interleave > 1

    def rank_and_world(self) -> tuple[int, int]:
        return self._share or _distributed() or (0, 1)

    def set_epoch(self, epoch: int) -> None:
        """The epoch of the next pass, with an int seed (each pass then advances it by one)."""
        self.epoch = check_count("epoch", epoch, 0)

    def shard_units(self, worker: int = 0, workers: int = 1) -> list[list[int]]:
        """The file groups (request positions, ascending) that `worker` of `workers` of this rank streams."""
        rank, world = self.rank_and_world()
        sizes = [len(u) for u in self.units]
        mine = balance(sizes, world)[rank]
        picked = balance([sizes[u] for u in mine], workers)[worker]
        return [self.units[mine[j]] for j in picked]

    def shard(self, worker: int = 0, workers: int = 1) -> list[int]:
        """Positions (ascending) of the requests that `worker` of `workers` of this rank streams."""
        return sorted(k for unit in self.shard_units(worker, workers) for k in unit)

    def __len__(self) -> int:
        return len(self.shard())

    def order(self, worker: int = 0, workers: int = 1, rng: Optional[np.random.Generator] = None) -> list[int]:
        """The request positions `worker` decodes, in decoding order (before the shuffle buffer)."""
        units = self.shard_units(worker, workers)
        if rng is None or not self.shuffled:
            return sorted(k for unit in units for k in unit)
        units = [units[k] for k in rng.permutation(len(units))]
        return [int(k) for k in interleave(units, self.interleave, rng)]

    def _rng(self, worker: int) -> np.random.Generator:
        if self.seed is None:  # torch's state: the DataLoader seeds each worker anew every epoch
            return np.random.default_rng(int(torch.randint(0, 2 ** 62, ()).item()))
        rank, world = self.rank_and_world()
        rng = np.random.default_rng([self.seed, self.epoch, rank, world, worker])
        self.epoch += 1
        return rng

    def __iter__(self) -> Iterator[dict[str, Any]]:
        _worker_setup()
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        rng = self._rng(worker) if self.shuffled else None
        ds = self.dataset
        it = SampleIterator.of(ds.labels, [ds.requests[k] for k in self.order(worker, workers, rng)], ds.options)
        samples: Iterator[Sample] = it
        buffer = None
        if self.shuffle_buffer:
            buffer = ShuffleBuffer(self.shuffle_buffer, rng, sample_bytes)
            samples = buffer(it)
        pool = ArrayPool(_STREAM_BUFFERS)
        try:
            for sample in samples:
                if buffer is not None:
                    self.peak_buffered_bytes = max(self.peak_buffered_bytes, buffer.peak_bytes)
                yield _item(sample, self.label_dtype, self.transform, pool)
        finally:
            it.close()

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_share"] = self.rank_and_world()  # spawned workers do not see the parent's process group
        return state

    def __repr__(self) -> str:
        rank, world = self.rank_and_world()
        shuffle = f", interleave={self.interleave}, shuffle_buffer={self.shuffle_buffer}" if self.shuffled else ""
        return (f"maskdec.torch.MaskIterableDataset({len(self.dataset)} samples in {len(self.units)} file groups, "
                f"rank {rank} of {world}{shuffle})")


# ------------------------------------------------------------------ collate

_PADDED = ("image", "label_map")


def _pad(tensors: Sequence[torch.Tensor], height: int, width: int, fill: int, what: str) -> torch.Tensor:
    first = tensors[0]
    for t in tensors:
        if t.dtype != first.dtype or t.shape[:-2] != first.shape[:-2]:
            raise MaskdecError(f"collate: {what} of shape {tuple(t.shape)} {t.dtype} does not batch with "
                               f"{tuple(first.shape)} {first.dtype}")
    if all(t.shape[-2:] == (height, width) for t in tensors):  # nothing to pad: torch's stack, which in a
        return default_collate(list(tensors))  # worker writes straight to shared memory (no copy to the loader)
    out = torch.full((len(tensors), *first.shape[:-2], height, width), fill, dtype=first.dtype)
    for k, t in enumerate(tensors):
        out[k, ..., :t.shape[-2], :t.shape[-1]] = t
    return out


def collate(batch: Sequence[Mapping[str, Any]], *, ignore_index: int = 255) -> dict[str, Any]:
    """Items as one batch dict: `image` (B, C, H, W) padded with 0 and `label_map` (B, H, W)
    padded with `ignore_index`, at the bottom and right, to the batch's largest H and W;
    `size` (B, 2) each label map's (H, W) before padding; integer fields as int64 (B,)
    tensors; strings and anything else as lists. Images that are None stay None."""
    if not batch:
        raise MaskdecError("collate: empty batch")
    labels = [item["label_map"] for item in batch]
    images = [item.get("image") for item in batch]
    if any(i is None for i in images) and not all(i is None for i in images):
        raise MaskdecError("collate: some items have an image and some do not")
    shapes = [t.shape[-2:] for t in labels] + [t.shape[-2:] for t in images if t is not None]
    height, width = max(s[0] for s in shapes), max(s[1] for s in shapes)
    if labels[0].dtype == torch.uint8 and not 0 <= ignore_index <= 255:
        raise MaskdecError(f"collate: ignore_index {ignore_index} does not fit uint8 label maps")
    out: dict[str, Any] = {
        "image": None if images[0] is None else _pad(images, height, width, 0, "image"),
        "label_map": _pad(labels, height, width, ignore_index, "label map"),
        "size": torch.tensor([list(t.shape[-2:]) for t in labels], dtype=torch.int64),
    }
    for key in batch[0]:
        if key in _PADDED:
            continue
        values = [item[key] for item in batch]
        ints = all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in values)
        out[key] = torch.tensor(values, dtype=torch.int64) if ints else values
    return out
