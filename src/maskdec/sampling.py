"""Shuffling that decodes each GOP once: GOP blocks, a GOP-aware batch sampler, a shuffle
buffer for streams, and how random an epoch's order is. No torch needed here.

A shuffled sample costs up to a GOP of decoding (for its mask video and again for its
source video): a uniform shuffle decodes most GOPs many times per epoch. Here samples are
grouped into GOP blocks (the samples that need the same GOPs; `gop_blocks`), blocks are
shuffled, and each batch is drawn from a pool of a few open blocks (`interleave`), taking
each block's samples in decode order, so a worker's decoders only move forward through a
GOP, across batches (maskdec.MaskDataset decodes a batch's GOPs of a file in the order the
batch first asks for them, from where the file's decoder stands).

    sampler = GopBatchSampler(ds, 32, window=4, num_workers=2)
    loader = DataLoader(ds, batch_sampler=sampler, num_workers=2, collate_fn=ds.collate)
"""
from __future__ import annotations

import math
import sys
import warnings
from collections import deque
from dataclasses import dataclass, field
from typing import (AbstractSet, Any, Callable, Generic, Hashable, Iterable, Iterator, Optional, Sequence, TypeVar,
                    Union)

import numpy as np

from .disjoint import DisjointSets
from .errors import MaskdecError, OptionError, TimestampRangeError
from .media.index import FrameIndex, cached_index
from .media.reader import MediaReader

__all__ = ["Spot", "Block", "sample_gops", "gop_blocks", "split_image_gops", "interleave", "GopBatchSampler",
           "ShuffleBuffer", "Randomness", "randomness"]

T = TypeVar("T")

#: Media types decoded once per reader and kept (no GOPs to plan for); GIF may be animated.
_STILL_TYPES = ("image/png", "image/jpeg", "image/bmp", "image/tiff", "image/webp")


# ------------------------------------------------------------------ where samples are

@dataclass(frozen=True)
class Spot:
    """Where one frame of a sample is: its file, the GOP (keyframe index) decoding must start
    from, and its position (None for stills and for frames that cannot be located: those
    samples fail when loaded, with the error that says why)."""

    uri: str
    gop: Optional[int]
    position: Optional[int]


def _core_of(dataset: Any) -> Any:
    """The maskdec.MaskDataset of `dataset` (itself, or the one a torch dataset wraps)."""
    if hasattr(dataset, "requests") and hasattr(dataset, "timestamp_unit"):
        return dataset
    inner = getattr(dataset, "dataset", None)
    if inner is not None and hasattr(inner, "requests"):
        return inner
    raise MaskdecError(f"expected a maskdec.MaskDataset or maskdec.torch.MaskDataset, got {type(dataset).__name__}")


class _Indexes:
    """Frame indexes by file: from the process cache or `cache_dir` when there, else built by
    opening the file once (no decoding); None for stills and files that cannot be indexed."""

    def __init__(self, cache_dir: Optional[str]) -> None:
        self.cache_dir = cache_dir
        self._known: dict[str, Optional[FrameIndex]] = {}

    def __call__(self, uri: str, media_type: Optional[str]) -> Optional[FrameIndex]:
        if uri not in self._known:
            self._known[uri] = None if media_type in _STILL_TYPES else self._build(uri)
        return self._known[uri]

    def _build(self, uri: str) -> Optional[FrameIndex]:
        index = cached_index(uri, self.cache_dir)
        if index is not None:
            return index
        try:
            with MediaReader(uri, threads=1, cache_dir=self.cache_dir) as reader:
                return None if reader.is_still else reader.index
        except MaskdecError:  # loading the sample raises it, with its context
            return None


def _spot(indexes: _Indexes, uri: str, ts: int, media_type: Optional[str], unit: str) -> Spot:
    index = indexes(uri, media_type)
    if index is None:
        return Spot(uri, None, None)
    try:
        position = index.locate(ts, unit)  # type: ignore[arg-type]
    except TimestampRangeError:
        return Spot(uri, None, None)
    return Spot(uri, index.gop_of(position), position)


def sample_gops(dataset: Any) -> list[tuple[Spot, Optional[Spot]]]:
    """(mask spot, image spot or None with images=False) of every sample of a maskdec.MaskDataset
    (or a torch dataset wrapping one), from the frame indexes: each file is indexed once (kept
    in the process cache, and in `cache_dir` when the dataset has one), nothing is decoded."""
    core = _core_of(dataset)
    indexes = _Indexes(core.cache_dir)
    unit = core.timestamp_unit
    out = []
    for r in core.requests:
        if r.error is not None:
            out.append((Spot(r.mask_uri, None, None), Spot(r.image_uri, None, None) if core.images else None))
            continue
        mask = _spot(indexes, r.mask_uri, r.mask_ts, r.mask.media_type, unit)
        image = _spot(indexes, r.image_uri, r.image_ts, r.source.media_type, unit) if core.images else None
        out.append((mask, image))
    return out


# ------------------------------------------------------------------ GOP blocks

@dataclass(frozen=True)
class Block:
    """Samples that share GOPs, in decode order (ascending positions), and the files they read."""

    samples: tuple[int, ...]
    files: frozenset

    def __len__(self) -> int:
        return len(self.samples)


def gop_blocks(spots: Sequence[tuple[Spot, Optional[Spot]]], *, max_size: Optional[int] = None) -> list[Block]:
    """Samples grouped into blocks: one per mask (file, GOP), merged with the blocks whose
    image frames share a GOP of a source video (so no image GOP is split between blocks)
    while a block stays within `max_size` samples (default: twice the largest mask GOP's
    samples; source and mask GOPs that do not line up would otherwise chain a whole file
    into one block). Stills are decoded once per open file, so they join nothing.
    Blocks come in the order of their first sample."""
    gops: DisjointSets[Hashable] = DisjointSets()
    size: dict[Hashable, int] = {}

    masks = [(m.uri, m.gop) for m, _ in spots]
    for node in masks:
        size[node] = size.get(node, 0) + 1
    limit = max_size if max_size is not None else 2 * max(size.values(), default=1)
    for node, (_, image) in zip(masks, spots):
        if image is None or image.gop is None:
            continue
        a, b = gops.find(node), gops.find((image.uri, image.gop))
        if a != b and size.get(a, 0) + size.get(b, 0) <= limit:
            gops.join(a, b)
            size[a] = size.get(a, 0) + size.pop(b, 0)
    groups: dict[Hashable, list[int]] = {}
    for i, node in enumerate(masks):
        groups.setdefault(gops.find(node), []).append(i)
    blocks = []
    for members in groups.values():
        def order(i: int) -> tuple[int, int, int]:
            mask, image = spots[i]
            return (-1 if mask.position is None else mask.position,
                    -1 if image is None or image.position is None else image.position, i)
        files = {spots[i][0].uri for i in members} | {spots[i][1].uri for i in members if spots[i][1] is not None}
        blocks.append(Block(tuple(sorted(members, key=order)), frozenset(files)))
    return blocks


def split_image_gops(spots: Sequence[tuple[Spot, Optional[Spot]]], blocks: Sequence[Block]) -> int:
    """Source-video GOPs whose samples landed in more than one block (each may be decoded
    once per block that needs it)."""
    block_of = {i: k for k, b in enumerate(blocks) for i in b.samples}
    owners: dict[tuple, set] = {}
    for i, (_, image) in enumerate(spots):
        if image is not None and image.gop is not None:
            owners.setdefault((image.uri, image.gop), set()).add(block_of[i])
    return sum(len(o) > 1 for o in owners.values())


# ------------------------------------------------------------------ drawing from a pool

def interleave(pieces: Sequence[Sequence[int]], window: int, rng: np.random.Generator, *,
               files: Optional[Sequence[AbstractSet]] = None, lookahead: Optional[int] = None) -> np.ndarray:
    """One order of all items of `pieces`: each piece's items keep their order, and at any
    time the next item is drawn at random from at most `window` open pieces, each as likely
    as its remaining items (a uniform random merge of the open pieces). When a piece runs
    out, the next piece in line opens. With `files` (per piece), no two open pieces share a
    file: the first piece within `lookahead` (default 4 * window) of the line's head whose
    files are all free opens instead, so one reader per file only moves forward."""
    if window < 1:
        raise OptionError(f"window must be at least 1, got {window}")
    arrays = [np.asarray(p, dtype=np.int64) for p in pieces]
    queue = deque(k for k, a in enumerate(arrays) if len(a))
    ahead = lookahead if lookahead is not None else 4 * window
    active: list[int] = []
    offset: dict[int, int] = {}
    out: list[np.ndarray] = []
    while queue or active:
        taken: set = set().union(*(files[k] for k in active)) if files is not None else set()
        i = 0
        while len(active) < window and i < min(len(queue), ahead):
            k = queue[i]
            if files is None or files[k].isdisjoint(taken):
                del queue[i]
                active.append(k)
                offset[k] = 0
                if files is not None:
                    taken |= files[k]
            else:
                i += 1
        remaining = [len(arrays[k]) - offset[k] for k in active]
        labels = np.repeat(np.arange(len(active)), remaining)
        rng.shuffle(labels)
        if queue:  # draw until the first open piece runs out, then let the next one in
            _, first_from_end = np.unique(labels[::-1], return_index=True)
            labels = labels[:len(labels) - int(first_from_end.max())]  # through the earliest "last item of a piece"
        chunk = np.empty(len(labels), np.int64)
        for j, k in enumerate(active):
            where = np.flatnonzero(labels == j)
            chunk[where] = arrays[k][offset[k]:offset[k] + len(where)]
            offset[k] += len(where)
        out.append(chunk)
        active = [k for k in active if offset[k] < len(arrays[k])]
    return np.concatenate(out) if out else np.empty(0, np.int64)


# ------------------------------------------------------------------ the sampler

def _distributed_share() -> Optional[tuple[int, int]]:
    """torch.distributed's (rank, world size) when torch is loaded and a group is initialised."""
    dist = sys.modules.get("torch.distributed")
    if dist is not None and dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return None


def check_count(name: str, value: Any, low: int) -> int:
    """`value` as an int when it is a whole number >= `low`, else an OptionError naming it."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise OptionError(f"{name} must be an integer >= {low}, got {value!r}")
    return int(value)


def check_share(rank: Optional[int], world_size: Optional[int]) -> Optional[tuple[int, int]]:
    """(rank, world_size) checked, or None when neither is given."""
    if (rank is None) != (world_size is None):
        raise OptionError("give both rank and world_size, or neither")
    if world_size is None:
        return None
    world = check_count("world_size", world_size, 1)
    if isinstance(rank, bool) or not isinstance(rank, (int, np.integer)) or not 0 <= rank < world:
        raise OptionError(f"rank {rank!r} is not in 0..{world - 1} (world_size {world})")
    return int(rank), world


class GopBatchSampler:
    """Batches of sample indices that decode each GOP at most once per epoch per worker.

    Samples are grouped into GOP blocks (`gop_blocks`, from the frame indexes: each file is
    indexed once when the sampler is made, nothing decoded); each epoch the blocks are
    shuffled and every batch is drawn from a pool of `window` open blocks (no two reading
    the same file), each block's samples taken in decode order. Consecutive batches mix
    `window` files and positions; within a block, a worker's decoders continue forward from
    one batch to the next. Use as `DataLoader(ds, batch_sampler=sampler, num_workers=W)`:
    each batch goes to one worker whole, where `__getitems__` decodes it as one plan.

    num_workers: the DataLoader's. Its workers take batches in turn (batch i to worker
        i % W, with the DataLoader's default in_order=True), so the sampler gives each
        worker its own run of blocks and pool: a GOP is decoded by one worker (a block cut
        between two workers' runs, at most W - 1 per epoch, by both). A wrong value costs
        decoding, never samples.
    window: blocks open at once per worker; each holds its files open (mask and source
        video), so keep window * files per block within the dataset's max_open_readers.
    rank, world_size: this process's share (default: torch.distributed's when initialised,
        looked up when iterating, else 0 of 1). Ranks take equal contiguous runs of the
        epoch's shuffled blocks; as torch's DistributedSampler, the epoch is padded with
        repeated samples to a multiple of world_size, or with drop_last cut to one.
    drop_last: also drops this rank's last batch when smaller than batch_size.
    seed, set_epoch(n): the order is a function of (seed, epoch, rank, world_size,
        num_workers); each pass advances the epoch by one, set_epoch(n) sets the next one.
    Also works without torch: `for batch in sampler: ds.__getitems__(batch)`.
    """

    def __init__(self, dataset: Any, batch_size: int, *, window: int = 4, seed: int = 0, drop_last: bool = False,
                 num_workers: int = 0, rank: Optional[int] = None, world_size: Optional[int] = None) -> None:
        self.batch_size = check_count("batch_size", batch_size, 1)
        self.window = check_count("window", window, 1)
        self.seed = check_count("seed", seed, 0)
        self.num_workers = check_count("num_workers", num_workers, 0)
        if not isinstance(drop_last, bool):
            raise OptionError(f"drop_last must be True or False, got {drop_last!r}")
        self.drop_last = drop_last
        self._share = check_share(rank, world_size)
        core = _core_of(dataset)
        self.size = len(core)
        self.spots = sample_gops(core)
        self.blocks = gop_blocks(self.spots)
        self.epoch = 0
        widest = max((len(b.files) for b in self.blocks), default=0)
        if self.window * widest > core.max_open_readers:
            warnings.warn(f"GopBatchSampler: window {self.window} x {widest} files per block exceeds "
                          f"max_open_readers={core.max_open_readers}: readers will be closed and GOPs decoded "
                          f"again; raise max_open_readers or lower window", stacklevel=2)

    # ------------------------------------------------------------ sizes
    def rank_and_world(self) -> tuple[int, int]:
        return self._share or _distributed_share() or (0, 1)

    def rank_size(self) -> int:
        """Samples this rank gets per epoch (equal for every rank)."""
        _, world = self.rank_and_world()
        if self.drop_last and self.size % world:
            return self.size // world
        return math.ceil(self.size / world)

    def __len__(self) -> int:
        n = self.rank_size()
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def set_epoch(self, epoch: int) -> None:
        """The epoch of the next pass (each pass then advances it by one)."""
        self.epoch = check_count("epoch", epoch, 0)

    # ------------------------------------------------------------ orders
    def __iter__(self) -> Iterator[list[int]]:
        # A generator: the epoch advances when the first batch is taken, not when iter() is
        # called (a DataLoader with workers calls it twice and drops the first iterator).
        epoch, self.epoch = self.epoch, self.epoch + 1
        yield from self.batches(epoch)

    def batches(self, epoch: int) -> list[list[int]]:
        """This rank's batches of `epoch`, in the order the DataLoader hands them out."""
        rank, world = self.rank_and_world()
        rng = np.random.default_rng([self.seed, epoch])
        samples, block_ids = self._layout(rng.permutation(len(self.blocks)))
        per = self.rank_size()
        if per * world > len(samples):  # pad by repeating the epoch's start, as DistributedSampler does
            samples, block_ids = np.resize(samples, per * world), np.resize(block_ids, per * world)
        mine = slice(rank * per, (rank + 1) * per)
        samples, block_ids = samples[mine], block_ids[mine]
        sizes = [self.batch_size] * (per // self.batch_size)
        if per % self.batch_size and not self.drop_last:
            sizes.append(per % self.batch_size)
        workers = max(self.num_workers, 1)
        runs: list[list[list[int]]] = []
        start = 0
        for w in range(workers):
            own = sizes[w::workers]  # the batches worker w will be handed
            stop = start + sum(own)
            order = self._draw(samples[start:stop], block_ids[start:stop],
                               np.random.default_rng([self.seed, epoch, rank, world, w]))
            runs.append(self._cut(order, own))
            start = stop
        return [runs[i % workers][i // workers] for i in range(len(sizes))]

    def _layout(self, block_order: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Samples of the blocks in `block_order`, each block's in decode order, and their block ids."""
        if not len(block_order):
            return np.empty(0, np.int64), np.empty(0, np.int64)
        samples = np.concatenate([np.asarray(self.blocks[k].samples, np.int64) for k in block_order])
        ids = np.repeat(block_order, [len(self.blocks[k]) for k in block_order])
        return samples, ids

    def _draw(self, samples: np.ndarray, block_ids: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """A worker's run of samples drawn through its pool of `window` blocks."""
        if not len(samples):
            return samples
        starts = np.flatnonzero(np.r_[True, block_ids[1:] != block_ids[:-1]])
        pieces = np.split(samples, starts[1:])
        files = [self.blocks[block_ids[s]].files for s in starts]
        return interleave(pieces, self.window, rng, files=files)

    @staticmethod
    def _cut(order: np.ndarray, sizes: Sequence[int]) -> list[list[int]]:
        """`order` cut into batches of `sizes`. A batch keeps the drawn order: the dataset decodes
        a file's GOPs in the order the batch first asks for them (a block that runs out before
        the next block of its file opens is decoded first, and the decoder stays in the new one)."""
        bounds = np.cumsum(sizes)[:-1] if len(sizes) else []
        return [[int(i) for i in batch] for batch in np.split(order, bounds)] if len(sizes) else []

    def __repr__(self) -> str:
        rank, world = self.rank_and_world()
        return (f"GopBatchSampler({self.size} samples in {len(self.blocks)} GOP blocks, batch_size={self.batch_size}, "
                f"window={self.window}, num_workers={self.num_workers}, rank {rank} of {world})")


# ------------------------------------------------------------------ shuffle buffer

class ShuffleBuffer(Generic[T]):
    """A stream shuffled through a buffer of `size` items (the WebDataset way): once the
    buffer is full, each new item takes the place of one drawn at random, which is yielded;
    at the end the rest come out in random order. At most `size` items are held (plus the
    one being handed over); `bytes` and `peak_bytes` count them with `nbytes`."""

    def __init__(self, size: int, rng: np.random.Generator, nbytes: Callable[[T], int] = lambda item: 0) -> None:
        self.size = check_count("shuffle_buffer", size, 1)
        self.rng = rng
        self.nbytes = nbytes
        self.bytes = 0
        self.peak_bytes = 0

    def __call__(self, items: Iterable[T]) -> Iterator[T]:
        held: list[tuple[T, int]] = []
        for item in items:
            entry = (item, self.nbytes(item))
            self._count(entry[1])
            if len(held) < self.size:
                held.append(entry)
                continue
            k = int(self.rng.integers(len(held)))
            out, held[k] = held[k], entry
            self._count(-out[1])
            yield out[0]
        for k in self.rng.permutation(len(held)):
            out = held[k]
            held[k] = None  # type: ignore[call-overload]  # dropped as soon as handed over
            self._count(-out[1])
            yield out[0]

    def _count(self, delta: int) -> None:
        self.bytes += delta
        self.peak_bytes = max(self.peak_bytes, self.bytes)


# ------------------------------------------------------------------ how random

@dataclass(frozen=True)
class Randomness:
    """How random an epoch's order is (see `randomness`); `uniform` holds the same measures
    for a uniform shuffle of the same samples and batch size."""

    batches: int
    one_file_batches: float  # share of batches whose samples all come from one file (batches of 2 or more)
    files_per_batch: float  # distinct files per batch, mean (batches of 2 or more)
    spearman: float  # rank correlation: position in the epoch vs index in the dataset
    file_spearman: float  # the same within each file (position in the file), mean weighted by samples
    uniform: Optional["Randomness"] = field(default=None, repr=False)

    def as_dict(self) -> dict:
        out = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in self.__dict__.items() if k != "uniform"}
        if self.uniform is not None:
            out["uniform"] = self.uniform.as_dict()
        return out


def _ranks(x: np.ndarray) -> np.ndarray:
    """Ranks with ties averaged."""
    _, inverse, counts = np.unique(x, return_inverse=True, return_counts=True)
    starts = np.cumsum(counts) - counts
    return (starts + (counts - 1) / 2.0)[inverse]


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    if len(a) < 2:
        return 0.0
    ra, rb = _ranks(a), _ranks(b)
    ra, rb = ra - ra.mean(), rb - rb.mean()
    den = math.sqrt(float((ra * ra).sum() * (rb * rb).sum()))
    return float((ra * rb).sum() / den) if den else 0.0


def _measure(batches: Sequence[np.ndarray], files: np.ndarray) -> Randomness:
    flat = np.concatenate(batches) if batches else np.empty(0, np.int64)
    per_batch = [len(set(files[b].tolist())) for b in batches if len(b) > 1]  # a lone sample says nothing
    where = np.arange(len(flat))
    by_file = np.argsort(files[flat], kind="stable")  # epoch positions grouped by file, ascending
    bounds = np.flatnonzero(np.diff(files[flat][by_file])) + 1
    within, weight = 0.0, 0
    for group in np.split(by_file, bounds) if len(flat) else []:
        if len(group) > 1:
            within += _spearman(where[group], flat[group]) * len(group)
            weight += len(group)
    return Randomness(batches=len(batches),
                      one_file_batches=float(np.mean([n == 1 for n in per_batch])) if per_batch else 0.0,
                      files_per_batch=float(np.mean(per_batch)) if per_batch else 0.0,
                      spearman=_spearman(where, flat), file_spearman=within / weight if weight else 0.0)


def randomness(order: Union[Sequence[int], Sequence[Sequence[int]]], dataset_or_files: Any,
               batch_size: Optional[int] = None, *, seed: int = 0) -> Randomness:
    """Measures of an epoch's order: the share of batches whose samples all come from one
    file, distinct files per batch, and Spearman's rank correlation between a sample's
    position in the epoch and its index in the dataset (0 for a uniform shuffle, 1 in
    order), overall and within each file; `.uniform` holds the same for a uniform shuffle.

    order: sample indices, cut into batches of `batch_size`, or a list of batches.
    dataset_or_files: a maskdec.MaskDataset (or torch dataset wrapping one; a sample's file
        is its mask file) or each sample's file (any hashable), by index.
    """
    if isinstance(dataset_or_files, (list, tuple, np.ndarray)):
        files = list(dataset_or_files)
    else:
        files = [r.mask_uri for r in _core_of(dataset_or_files).requests]
    keys = {f: k for k, f in enumerate(dict.fromkeys(files))}
    codes = np.array([keys[f] for f in files], np.int64)
    items = list(order)
    if items and not isinstance(items[0], (int, np.integer)):
        batches = [np.asarray(b, np.int64) for b in items]
        sizes = [len(b) for b in batches]
    else:
        if batch_size is None:
            raise OptionError("randomness: give batch_size with a flat order")
        flat = np.asarray(items, np.int64)
        sizes = [min(batch_size, len(flat) - s) for s in range(0, len(flat), batch_size)]
        batches = np.split(flat, np.cumsum(sizes)[:-1]) if len(flat) else []
    measured = _measure(batches, codes)
    flat = np.concatenate(batches) if batches else np.empty(0, np.int64)
    shuffled = np.random.default_rng(seed).permutation(flat)
    uniform = _measure(np.split(shuffled, np.cumsum(sizes)[:-1]) if len(flat) else [], codes)
    return Randomness(**{k: v for k, v in measured.__dict__.items() if k != "uniform"}, uniform=uniform)
