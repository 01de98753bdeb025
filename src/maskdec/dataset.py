"""Random access to samples: `MaskDataset(frames)[i]`, for training loops that shuffle.

Sample i is the i-th sample of `iter_samples` over the same frames, with the
same label table. Frames come from the decode planner (media/planner.py) through
a bounded per-process cache of open readers (least recently used closed first);
readers open lazily, so a dataset pickles to worker processes, where decoders
default to one thread each.
"""
from __future__ import annotations

import operator
import os
from collections import OrderedDict
from typing import Any, Iterable, Iterator, Optional, Union

from .errors import MaskdecError, TimestampRangeError
from .labels import LabelTable
from .media.index import check_cache_dir
from .media.planes import mask_data
from .media.planner import fetch
from .media.reader import MediaReader, image_rgb, mask_pixels
from .options import Options
from .samples import FramesArg, Sample, SampleRequest, build_sample, plan_of

__all__ = ["MaskDataset", "ReaderCache", "SampleIndexError"]


#: Readers a forked process inherited: kept, never closed, since freeing the parent's
#: FFmpeg objects in a child can wait forever on threads that only exist in the parent.
_INHERITED: list[MediaReader] = []


class SampleIndexError(MaskdecError, IndexError):
    """A sample index outside the dataset."""


class ReaderCache:
    """Open MediaReaders by URI, at most `max_open` at once: opening one more first
    closes the least recently used. After a fork the child drops what it inherited."""

    def __init__(self, max_open: int, *, threads: Optional[int] = None,
                 cache_dir: Union[str, os.PathLike, None] = None) -> None:
        if max_open < 1:
            raise MaskdecError(f"max_open_readers must be at least 1, got {max_open}")
        self.max_open = max_open
        self.threads = threads
        self.cache_dir = cache_dir
        self.opened = 0  # readers opened so far
        self._readers: OrderedDict[str, MediaReader] = OrderedDict()
        self._closed_decoded: dict[str, int] = {}  # frames decoded by readers closed since
        self._closed_skipped: dict[str, int] = {}  # frames skipped by readers closed since
        self._pid = os.getpid()

    def __len__(self) -> int:
        return len(self._readers)

    def get(self, uri: str) -> MediaReader:
        """The open reader of `uri`, opening it (and closing the least recently used) if needed."""
        if self._pid != os.getpid():  # forked: the parent's readers share its file offsets
            _INHERITED.extend(self._readers.values())  # never used nor freed here (see _INHERITED)
            self._readers = OrderedDict()
            self._closed_decoded = {}
            self._closed_skipped = {}
            self._pid = os.getpid()
        reader = self._readers.get(uri)
        if reader is not None:
            self._readers.move_to_end(uri)
            return reader
        while len(self._readers) >= self.max_open:
            self._close(*self._readers.popitem(last=False))
        reader = MediaReader(uri, threads=self.threads, cache_dir=self.cache_dir)
        self._readers[uri] = reader
        self.opened += 1
        return reader

    def discard(self, uri: str) -> None:
        reader = self._readers.pop(uri, None)
        if reader is not None:
            self._close(uri, reader)

    def close(self) -> None:
        while self._readers:
            self._close(*self._readers.popitem())

    def decoded(self) -> dict[str, int]:
        """Frames decoded per file by this process's readers (the planner's `Decoder.decoded`),
        closed readers included: decoding a GOP twice shows as more frames."""
        out = dict(self._closed_decoded)
        for uri, reader in self._readers.items():
            out[uri] = out.get(uri, 0) + _count(reader, "decoded")
        return out

    def skipped(self) -> dict[str, int]:
        """Frames per file the decoders passed without decoding them (`Decoder.skipped`: frames
        nobody asked for that no frame refers to), closed readers included."""
        out = dict(self._closed_skipped)
        for uri, reader in self._readers.items():
            out[uri] = out.get(uri, 0) + _count(reader, "skipped")
        return out

    def _close(self, uri: str, reader: MediaReader) -> None:
        self._closed_decoded[uri] = self._closed_decoded.get(uri, 0) + _count(reader, "decoded")
        self._closed_skipped[uri] = self._closed_skipped.get(uri, 0) + _count(reader, "skipped")
        reader.close()


def _count(reader: MediaReader, what: str) -> int:
    decoder = getattr(reader, "_decoder", None)  # None: a still, or nothing decoded yet
    return 0 if decoder is None else getattr(decoder, what)


class MaskDataset:
    """Map-style dataset of samples: `len(ds)`, `ds[i]` -> Sample i, in the order and with
    the label table (`.labels`) of `iter_samples(frames, ...)`.

    `ds.__getitems__(indices)` (what torch's DataLoader calls for a batch) decodes a
    whole batch through the planner: grouped by file, sorted, each GOP at most once.
    Options (`maskdec.Options`) as for `iter_samples`; here `max_open_readers` is how many
    files stay open per process (least recently used closed first) and `cache_dir` a folder
    where frame indexes are kept across runs.
    """

    def __init__(self, frames: FramesArg, **options: Any) -> None:
        self.options = Options.of(options)
        o = self.options
        self.labels: LabelTable
        self.requests: list[SampleRequest]
        self.labels, self.requests = plan_of(frames, o)
        self.tolerance = o.tolerance
        self.images = o.images
        self.strict_sizes = o.strict_sizes
        self.timestamp_unit = o.timestamp_unit
        self.threads = o.threads
        self.max_open_readers = o.max_open_readers
        self.cache_dir = None if o.cache_dir is None else check_cache_dir(o.cache_dir)  # fails now, not at sample 0
        self.yuv = o.yuv
        self.instances = o.instances
        self.stats = o.stats
        self._readers: Optional[ReaderCache] = None

    # ------------------------------------------------------------ the sequence
    def __len__(self) -> int:
        return len(self.requests)

    def __getitem__(self, i: int) -> Sample:
        return self.__getitems__([i])[0]

    def __iter__(self) -> Iterator[Sample]:
        for i in range(len(self)):
            yield self[i]

    def __getitems__(self, indices: Iterable[int]) -> list[Sample]:
        """Samples at `indices` (in that order), decoded as one planned batch."""
        requests = [self.requests[self._position(i)] for i in indices]
        return _Batch(self, requests).run()

    def _position(self, i: Any) -> int:
        try:
            k = operator.index(i)
        except TypeError:
            raise SampleIndexError(f"sample indices are integers, got {i!r}") from None
        n = len(self.requests)
        if not -n <= k < n:
            raise SampleIndexError(f"sample index {k} is out of range: the dataset holds {n} samples")
        return k % n

    # ------------------------------------------------------------ readers
    @property
    def readers(self) -> ReaderCache:
        """This process's cache of open readers (made on first use)."""
        if self._readers is None:
            self._readers = ReaderCache(self.max_open_readers, threads=self.threads, cache_dir=self.cache_dir)
        return self._readers

    @property
    def open_readers(self) -> int:
        """How many media files this dataset holds open in this process."""
        return 0 if self._readers is None else len(self._readers)

    def close(self) -> None:
        """Close every open reader (the dataset stays usable: they reopen on demand)."""
        if self._readers is not None:
            self._readers.close()

    def __enter__(self) -> "MaskDataset":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_readers"] = None  # open files stay in the process that opened them
        return state

    def __repr__(self) -> str:
        return f"MaskDataset({len(self)} samples, {len(self.labels.ids)} labels, open readers {self.open_readers})"


class _Batch:
    """One batch: every needed frame fetched through the planner, samples built as soon as
    both their image and mask frame are there (so decoded mask frames do not pile up)."""

    def __init__(self, ds: MaskDataset, requests: list[SampleRequest]) -> None:
        self.ds = ds
        self.requests = requests
        self.results: list[Union[Sample, MaskdecError, None]] = [None] * len(requests)
        self.lossless: dict[str, bool] = {}
        self.images: dict[tuple[str, int], Any] = {}
        self.pending: dict[int, Any] = {}  # request position -> mask pixels waiting for the image
        self.by_image: dict[tuple[str, int], list[int]] = {}
        self.by_mask: dict[tuple[str, int], list[int]] = {}
        for k, r in enumerate(requests):
            if r.error is not None:
                self.results[k] = r.error
                continue
            if ds.images:
                self.by_image.setdefault((r.image_uri, r.image_ts), []).append(k)
            self.by_mask.setdefault((r.mask_uri, r.mask_ts), []).append(k)

    def _open(self, uri: str) -> MediaReader:
        reader = self.ds.readers.get(uri)
        self.lossless[uri] = reader.lossless
        return reader

    def run(self) -> list[Sample]:
        convert = mask_data if self.ds.yuv else mask_pixels
        for uri, ts, frame in self._fetch(list(self.by_image) + list(self.by_mask)):
            key = (uri, ts)
            failed = isinstance(frame, MaskdecError)
            if failed and not isinstance(frame, TimestampRangeError):  # a file that failed: reopen it next time
                self.ds.readers.discard(uri)
            if key in self.by_image:
                self.images[key] = frame if failed else image_rgb(frame)
                for k in self.by_image[key]:
                    if k in self.pending:
                        self._build(k, self.pending.pop(k))
            if key in self.by_mask:
                pixels = frame if failed else convert(frame)
                for k in self.by_mask[key]:
                    r = self.requests[k]
                    if self.ds.images and (r.image_uri, r.image_ts) not in self.images:
                        self.pending[k] = pixels
                    else:
                        self._build(k, pixels)
        for k, pixels in list(self.pending.items()):  # an image the fetch never yielded
            self._build(k, pixels)
        out = []
        for result in self.results:
            if isinstance(result, MaskdecError):
                raise result
            out.append(result)
        return out

    def _fetch(self, wanted: list[tuple[str, int]]) -> Iterator[tuple[str, int, Any]]:
        """The frames of (file, timestamp) requests: file after file, in order of first request,
        each file in runs (see `_runs`) through the planner."""
        by_file: dict[str, list[int]] = {}
        for uri, ts in wanted:
            by_file.setdefault(uri, []).append(ts)
        for uri, stamps in by_file.items():
            for run in self._runs(uri, stamps):
                yield from fetch([(uri, ts) for ts in run], self._open, unit=self.ds.timestamp_unit)

    def _runs(self, uri: str, stamps: list[int]) -> list[list[int]]:
        """A file's timestamps in the order to decode them: first those from where its decoder
        stands on, in the GOP it is in (earlier batches left it there: it moves on without
        seeking), then GOP after GOP in the order the batch first asks for them, so the
        caller's order decides where the decoder stops (GopBatchSampler's next batch goes on
        from there). Each GOP's frames ascending, as the planner decodes them."""
        unit = self.ds.timestamp_unit
        try:
            reader = self._open(uri)
            if reader.is_still:
                return [stamps]
            index = reader.index
            at = getattr(reader.decoder, "_at", None)  # the position it presents next (None: unknown)
        except MaskdecError:
            return [stamps]  # the planner reports it, for each timestamp
        here = index.gop_of(min(at - 1, len(index) - 1)) if at else None  # 0: a fresh decoder is nowhere yet
        runs: dict[Any, list[int]] = {}
        for ts in dict.fromkeys(stamps):
            try:
                p = index.locate(ts, unit)  # type: ignore[arg-type]
            except MaskdecError:
                runs.setdefault("here", []).append(ts)  # out of range: the planner yields its error
                continue
            gop = index.gop_of(p)
            runs.setdefault("here" if gop == here and p >= at - 1 else gop, []).append(ts)  # at - 1: the frame it holds
        first = runs.pop("here", None)
        return ([first] if first else []) + list(runs.values())

    def _build(self, k: int, pixels: Any) -> None:
        r = self.requests[k]
        image = self.images.get((r.image_uri, r.image_ts)) if self.ds.images else None
        for part in (image, pixels):
            if isinstance(part, MaskdecError):
                self.results[k] = part
                return
        try:
            self.results[k] = build_sample(r, image, pixels, lossless=self.lossless.get(r.mask_uri, False),
                                           tolerance=self.ds.tolerance, strict_sizes=self.ds.strict_sizes,
                                           instances=self.ds.instances, stats=self.ds.stats)
        except MaskdecError as exc:
            self.results[k] = exc
