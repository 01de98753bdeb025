"""PyTorch datasets over maskdec (the `[torch]` extra): map-style and streaming, safe under
fork, spawn and forkserver, and a collate that pads variable sizes.

    ds = maskdec.torch.MaskDataset("frames.jsonl")
    loader = DataLoader(ds, batch_size=8, shuffle=True, num_workers=2, collate_fn=ds.collate)

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
from typing import Any, Callable, Iterator, Mapping, Optional, Sequence, Union

import numpy as np

from . import forksafe  # noqa: F401  (forked children never free inherited FFmpeg objects)
from .dataset import MaskDataset as CoreDataset
from .errors import MaskdecError, MissingExtraError
from .labels import LabelTable
from .samples import FramesArg, Sample, SampleIterator, SampleRequest

try:
    import torch
    import torch.distributed
    from torch.utils.data import Dataset, IterableDataset, get_worker_info
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise MissingExtraError("maskdec.torch needs PyTorch: pip install 'maskdec[torch]' "
                            "(or install torch your way first)") from exc

__all__ = ["MaskDataset", "MaskIterableDataset", "collate", "Transform"]

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


def _item(sample: Sample, label_dtype: torch.dtype, transform: Optional[Transform]) -> dict[str, Any]:
    image = None if sample.image is None else _tensor(np.ascontiguousarray(sample.image.transpose(2, 0, 1)))
    label_map = _tensor(sample.label_map.astype(_LABEL_DTYPES[label_dtype], copy=False))
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

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return self.__getitems__([i])[0]

    def __getitems__(self, indices: Sequence[int]) -> list[dict[str, Any]]:
        _worker_setup()
        return [_item(s, self.label_dtype, self.transform) for s in self.dataset.__getitems__(list(indices))]

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
    parent: dict[str, str] = {}

    def root(uri: str) -> str:
        while parent.setdefault(uri, uri) != uri:
            parent[uri] = parent[parent[uri]]
            uri = parent[uri]
        return uri

    for r in requests:
        a, b = root(r.mask_uri), root(r.image_uri)
        if a != b:
            parent[b] = a
    groups: dict[str, list[int]] = {}
    for k, r in enumerate(requests):
        groups.setdefault(root(r.mask_uri), []).append(k)
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


class MaskIterableDataset(_LabelsOf, IterableDataset):
    """Streams samples in input order, one forward decode per file (as `iter_samples`),
    sharded so that each sample comes out exactly once: whole files (see `file_units`)
    are dealt to ranks, then each rank's files to its DataLoader workers, balanced by
    sample count. Each shard yields its samples in input order.

    rank, world_size: this process's share; default: torch.distributed's when initialised
    (looked up when iterating, or when pickled to spawned workers), else 0 of 1.
    `len(ds)` is this rank's sample count; ranks may get different counts.
    Other options as for `MaskDataset`; `frames` may also be a `maskdec.MaskDataset`.
    """

    def __init__(self, frames: Union[FramesArg, CoreDataset], *, rank: Optional[int] = None,
                 world_size: Optional[int] = None, transform: Optional[Transform] = None,
                 label_dtype: torch.dtype = torch.int64, **options: Any) -> None:
        if (rank is None) != (world_size is None):
            raise MaskdecError("give both rank and world_size, or neither")
        if world_size is not None and not 0 <= rank < world_size:  # type: ignore[operator]
            raise MaskdecError(f"rank {rank} is not in 0..{world_size - 1} (world_size {world_size})")
        self.dataset = _core(frames, options)
        self.transform = transform
        self.label_dtype = _check_label_dtype(label_dtype, self.dataset.labels)
        self._share = None if rank is None else (rank, world_size)
        self.units = file_units(self.dataset.requests)

    def rank_and_world(self) -> tuple[int, int]:
        return self._share or _distributed() or (0, 1)

    def shard(self, worker: int = 0, workers: int = 1) -> list[int]:
        """Positions (ascending) of the requests that `worker` of `workers` of this rank streams."""
        rank, world = self.rank_and_world()
        sizes = [len(u) for u in self.units]
        mine = balance(sizes, world)[rank]
        picked = balance([sizes[u] for u in mine], workers)[worker]
        return sorted(k for j in picked for k in self.units[mine[j]])

    def __len__(self) -> int:
        return len(self.shard())

    def __iter__(self) -> Iterator[dict[str, Any]]:
        _worker_setup()
        info = get_worker_info()
        positions = self.shard(info.id, info.num_workers) if info is not None else self.shard()
        ds = self.dataset
        it = SampleIterator.of(ds.labels, [ds.requests[k] for k in positions], ds.options)
        try:
            for sample in it:
                yield _item(sample, self.label_dtype, self.transform)
        finally:
            it.close()

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_share"] = self.rank_and_world()  # spawned workers do not see the parent's process group
        return state

    def __repr__(self) -> str:
        rank, world = self.rank_and_world()
        return (f"maskdec.torch.MaskIterableDataset({len(self.dataset)} samples in {len(self.units)} file groups, "
                f"rank {rank} of {world})")


# ------------------------------------------------------------------ collate

_PADDED = ("image", "label_map")


def _pad(tensors: Sequence[torch.Tensor], height: int, width: int, fill: int, what: str) -> torch.Tensor:
    first = tensors[0]
    for t in tensors:
        if t.dtype != first.dtype or t.shape[:-2] != first.shape[:-2]:
            raise MaskdecError(f"collate: {what} of shape {tuple(t.shape)} {t.dtype} does not batch with "
                               f"{tuple(first.shape)} {first.dtype}")
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
