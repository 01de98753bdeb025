"""The facade: dataset frames in, aligned (image, label map) samples out.

Every media file is opened once and decoded forward once; samples come out in
input order. Frames decoded ahead of their turn wait in memory until served.
"""
from __future__ import annotations

import functools
import gc
import os
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Iterator, Mapping, Optional, Sequence, Union

import cv2
import numpy as np

from .errors import FrameFormatError, LabelError, MaskdecError, SizeMismatchError
from .frames import Frame, Mask, Roi, Source, load_frames
from .labels import LabelTable, load_mask_labels, mask_declarations
from .lut import DEFAULT_LOSSY_TOLERANCE, ColourTable, Palette, PixelStats, map_palette, remap_of, table_for
from .buffers import ArrayPool
from .media.planes import mask_data
from .media.reader import TimestampUnit, image_rgb, mask_pixels
from .media.uri import resolve_uri
from .options import Options
from .runs import IndexRuns
from .rois import FrameRoiPlan, MaskIndex, RoiRef, RoiSample, roi_samples_of
from .serve import DEFAULT_MAX_BUFFERED_BYTES, DEFAULT_MAX_OPEN_READERS, FrameServer

__all__ = ["Sample", "SampleFailure", "SampleIterator", "iter_samples", "iter_roi_samples", "plan_samples",
           "plan_of", "SampleRequest", "build_sample"]

FramesArg = Union[str, os.PathLike, Frame, Sequence[Union[Frame, Mapping]]]


@dataclass(frozen=True, eq=False)
class Sample:
    """One source image and one of its masks as a label map; unpacks as (image, label_map)."""

    image: Optional[np.ndarray]
    label_map: np.ndarray
    frame_index: int
    source_id: str
    mask_id: str
    timestamp: int
    mask_timestamp: int
    stats: Optional[PixelStats] = None  # exact / snapped / unknown pixels of the mask, before any resize
    colour_index: Optional[np.ndarray] = field(default=None, repr=False)  # with instances=True: see rois.py
    request: Optional["SampleRequest"] = field(default=None, repr=False)

    @cached_property
    def rois(self) -> tuple[RoiRef, ...]:
        """The ROIs that declared colours of this mask, with their label ids."""
        index = None if self.request is None else self.request.index
        return () if index is None else index.rois

    @property
    def index(self) -> Optional[MaskIndex]:
        """The colour-index table of `colour_index` (instances=True, else None)."""
        return None if self.colour_index is None or self.request is None else self.request.index

    @cached_property
    def instance_map(self) -> Optional[np.ndarray]:
        """(H, W) int32: k + 1 where the k-th ROI of .rois is, 0 elsewhere (instances=True, else None)."""
        if self.colour_index is None or self.index is None:
            return None
        return self.index.roi_of_index[self.colour_index]

    def __iter__(self) -> Iterator[Optional[np.ndarray]]:
        yield self.image
        yield self.label_map

    def roi_mask(self, roi: Union[RoiRef, Roi, int]) -> np.ndarray:
        """(H, W) bool pixels of an ROI (a RoiRef, an Roi of .rois, or its position k):
        its own colour's pixels when made with instances=True, else its class's pixels."""
        ref = self._ref(roi)
        if self.instance_map is not None:
            first = next(r for r in self.rois if r.colour == ref.colour)  # ROIs sharing a colour share pixels
            return self.instance_map == first.k + 1
        return self.label_map == ref.label_id

    def packed_map(self) -> np.ndarray:
        """(H, W) uint32 raw instance ids: the packed colour r << 16 | g << 8 | b of the ROI
        each pixel belongs to (docs/format.md), 0xFFFFFFFF where none; needs instances=True."""
        if self.instance_map is None:
            raise MaskdecError("packed_map needs a sample made with instances=True")
        packed = np.full(len(self.rois) + 1, 0xFFFFFFFF, np.uint32)
        for ref in self.rois:
            if len(ref.colour) == 3:
                r, g, b = ref.colour
                packed[ref.k + 1] = (r << 16) | (g << 8) | b
            else:
                packed[ref.k + 1] = ref.colour[0]
        return packed[self.instance_map]

    def _ref(self, roi: Union[RoiRef, Roi, int]) -> RoiRef:
        if isinstance(roi, RoiRef):
            return roi
        if isinstance(roi, int):
            return self.rois[roi]
        for ref in self.rois:
            if ref.roi is roi:
                return ref
        raise MaskdecError(f"ROI {roi!r} declared no colour of mask {self.mask_id!r} of frame {self.frame_index}")

    def __repr__(self) -> str:
        image = None if self.image is None else tuple(self.image.shape)
        return (f"Sample(frame_index={self.frame_index}, source_id={self.source_id!r}, mask_id={self.mask_id!r}, "
                f"timestamp={self.timestamp}, image={image}, label_map={tuple(self.label_map.shape)} "
                f"{self.label_map.dtype})")


@dataclass(frozen=True)
class SampleRequest:
    """What one sample needs: which files at which timestamps, and its colour table."""

    frame_index: int
    where: str
    source: Source
    mask: Mask
    image_uri: str
    image_ts: int
    mask_uri: str
    mask_ts: int
    table: Optional[ColourTable]  # this frame's colours of the mask -> label ids
    error: Optional[MaskdecError] = None
    rois_plan: Optional[FrameRoiPlan] = field(default=None, repr=False)  # shared by the frame's requests
    palette: Optional[Palette] = field(default=None, repr=False)  # every colour of the mask file in the plan

    @property
    def remap(self) -> np.ndarray:
        """Palette index -> label id for this sample (colours this frame does not declare: ignore_index)."""
        return remap_of(self.palette, self.table)

    @property
    def index(self) -> Optional[MaskIndex]:
        """The colour-index table for per-ROI views (None when the frame's colours failed)."""
        return None if self.rois_plan is None else self.rois_plan.get(self.source.id, self.mask.id)


@dataclass(frozen=True)
class SampleFailure:
    """A sample that could not be made, with the error that says why."""

    request: SampleRequest
    error: MaskdecError

    @property
    def frame_index(self) -> int:
        return self.request.frame_index

    def to_dict(self) -> dict:
        r = self.request
        return {"frame_index": r.frame_index, "source_id": r.source.id, "mask_id": r.mask.id,
                "timestamp": r.image_ts, "uri": r.mask_uri, "error_type": type(self.error).__name__,
                "error": str(self.error)}


# ------------------------------------------------------------------ planning

def _as_frames(frames: FramesArg, *, strict_keys: bool = False) -> list[Frame]:
    if isinstance(frames, (str, os.PathLike)):
        return load_frames(frames, strict_keys=strict_keys)
    if isinstance(frames, Frame):
        return [frames]
    if isinstance(frames, (Mapping, str, bytes)) or not isinstance(frames, Sequence):
        raise FrameFormatError(f"expected a frames file path, a Frame or a list of frames, got "
                               f"{type(frames).__name__}", "frames")
    return [f if isinstance(f, Frame) else Frame.from_dict(f, path=f"$[{i}]", strict_keys=strict_keys)
            for i, f in enumerate(frames)]


def _ts(*candidates: Optional[int]) -> int:
    for value in candidates:
        if value is not None:
            return value
    return 0


def plan_samples(
    frames: Sequence[Frame],
    *,
    labels: Optional[Mapping[str, int]] = None,
    mask_labels: Union[str, os.PathLike, Mapping, Sequence, None] = None,
    ignore_index: int = 255,
    strict: bool = True,
) -> tuple[LabelTable, list[SampleRequest]]:
    """The label table and one request per (frame, source, mask), in input order.

    A frame whose colours cannot be resolved gives requests that carry the error.
    """
    dataset_decls = load_mask_labels(mask_labels)
    per_frame: list[Union[dict, MaskdecError]] = []
    for index, frame in enumerate(frames):
        try:
            per_frame.append(mask_declarations(frame, mask_labels=dataset_decls, enumeration=labels,
                                               strict=strict, where=f"frames[{index}]"))
        except MaskdecError as exc:
            per_frame.append(exc)
    if labels is not None:
        table = LabelTable.from_enumeration(labels, ignore_index=ignore_index)
    else:
        names = [d.name for decls in per_frame if isinstance(decls, dict) for ds in decls.values() for d in ds]
        names += [d.name for d in dataset_decls]
        table = LabelTable.derive(names, ignore_index=ignore_index)
    resolved: dict[tuple, str] = {}  # (uri, base_dir) -> path: frames name the same few files again and again

    def resolve(uri: str, base_dir: Optional[str]) -> str:
        found = resolved.get((uri, base_dir))
        if found is None:
            found = resolved[(uri, base_dir)] = resolve_uri(uri, base_dir)
        return found

    mask_uris = [{(source.id, mask.id): resolve(mask.uri, frame.base_dir)
                  for source in frame.sources for mask in source.masks} for frame in frames]
    palettes = _palettes(per_frame, mask_uris)
    dtype_name = table.dtype.name
    requests = []
    for index, (frame, decls) in enumerate(zip(frames, per_frame)):
        tables: dict[tuple, ColourTable] = {}
        frame_palettes: dict[tuple, Palette] = {}
        if isinstance(decls, dict):
            for key, ds in decls.items():
                tables[key] = table_for(ds, [table.id_of(d.name) for d in ds], table.ignore_index, dtype_name)
                palette = palettes[mask_uris[index][key]]
                if isinstance(palette, Palette):
                    frame_palettes[key] = palette
        rois_plan = (FrameRoiPlan(frame, decls, table, frame_palettes, tables)
                     if isinstance(decls, dict) and len(frame_palettes) == len(decls) else None)
        for s_pos, source in enumerate(frame.sources):
            for m_pos, mask in enumerate(source.masks):
                key = (source.id, mask.id)
                mask_uri = mask_uris[index][key]
                error = decls if isinstance(decls, MaskdecError) else None
                palette = palettes.get(mask_uri)
                if error is None and isinstance(palette, MaskdecError):
                    error = palette
                requests.append(SampleRequest(
                    frame_index=index,
                    where=f"frames[{index}].sources[{s_pos}].masks[{m_pos}]",
                    source=source,
                    mask=mask,
                    image_uri=resolve(source.uri, frame.base_dir),
                    image_ts=_ts(source.timestamp, frame.timestamp),
                    mask_uri=mask_uri,
                    mask_ts=_ts(mask.timestamp, source.timestamp, frame.timestamp),
                    table=tables.get(key),
                    error=error,
                    rois_plan=rois_plan,
                    palette=palette if error is None else None,
                ))
    return table, requests


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Cyclic garbage collection off for a while (restored as it was): parsing and planning make
    many small objects that all live on, and the collections they trigger would only re-scan them."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def plan_of(frames: FramesArg, options: Options) -> tuple[LabelTable, list[SampleRequest]]:
    """The label table and requests of `frames` (a path, Frame or list) under `options`."""
    with _gc_paused():
        return plan_samples(_as_frames(frames, strict_keys=options.strict_keys), labels=options.labels,
                            mask_labels=options.mask_labels, ignore_index=options.ignore_index,
                            strict=options.strict)


def _palettes(per_frame: Sequence[Union[dict, MaskdecError]], mask_uris: Sequence[dict[tuple, str]]
              ) -> dict[str, Union[Palette, MaskdecError]]:
    """The palette of each mask file: every colour any frame of the plan declares for it
    (ROIs and dataset-level mask labels), or the LabelError of a file with too many colours."""
    colours: dict[str, set] = {}
    for decls, uris in zip(per_frame, mask_uris):
        if isinstance(decls, dict):
            for key, ds in decls.items():
                colours.setdefault(uris[key], set()).update(d.colour for d in ds)
    palettes: dict[str, Union[Palette, MaskdecError]] = {}
    for uri, found in colours.items():
        try:
            palettes[uri] = Palette(found)
        except LabelError as exc:
            palettes[uri] = LabelError(f"mask file {uri}: {exc}")
    return palettes


# ------------------------------------------------------------------ decoding

def _check_size(array: np.ndarray, declared: Union[Source, Mask], where: str, uri: str) -> None:
    h, w = array.shape[:2]
    if declared.width is not None and declared.width != w or declared.height is not None and declared.height != h:
        raise SizeMismatchError(f"{where}: declares {declared.width}x{declared.height} but {uri} decodes "
                                f"to {w}x{h}")


def _fit(label_map: np.ndarray, size: tuple[int, int], strict_sizes: bool, request: SampleRequest) -> np.ndarray:
    """Resize the label map to the image's (h, w) with nearest neighbour."""
    if label_map.shape[:2] == size:
        return label_map
    if strict_sizes:
        raise SizeMismatchError(f"{request.where}: mask {request.mask_uri} is {label_map.shape[1]}x"
                                f"{label_map.shape[0]} but its image is {size[1]}x{size[0]}")
    return cv2.resize(label_map, (size[1], size[0]), interpolation=cv2.INTER_NEAREST_EXACT)


class SampleIterator:
    """Iterates the samples of a plan; `.labels` is the label table in use, `.frames` the
    FrameServer that decodes (its counters tell the files reopened and the bytes buffered)."""

    def __init__(self, labels: LabelTable, requests: list[SampleRequest], *, tolerance: Optional[float],
                 images: bool, strict_sizes: bool, timestamp_unit: TimestampUnit, threads: Optional[int],
                 raise_errors: bool = True, yuv: bool = True, instances: bool = False,
                 stats: bool = False, label_maps: bool = True,
                 max_open_readers: int = DEFAULT_MAX_OPEN_READERS,
                 max_buffered_bytes: int = DEFAULT_MAX_BUFFERED_BYTES) -> None:
        self.labels = labels
        self._instances = instances
        self._label_maps = label_maps  # False (per-ROI views only): Sample.label_map is None
        self._pool = ArrayPool()  # label maps the caller has dropped are recycled
        # Streaming, files decode ahead in threads of their own while a frame is mapped: splitting
        # the mapping over more threads only adds hand-offs (random access, MaskDataset, does split).
        self._stats = stats
        self.requests = requests
        self._tolerance = tolerance
        self._images = images
        self._strict_sizes = strict_sizes
        self._raise = raise_errors
        needs = []
        for position, r in enumerate(requests):
            if r.error is not None:
                continue
            needs.append((("mask", r.mask_uri), r.mask_uri, r.mask_ts, position))
            if images:
                needs.append((("image", r.image_uri), r.image_uri, r.image_ts, position))
        converters = {"image": image_rgb, "mask": mask_data if yuv else mask_pixels}
        # not a bound method: decode-ahead threads reach the server, and must not keep this iterator alive
        compact = functools.partial(_compact, {r.mask_uri: r.palette for r in requests if r.error is None},
                                    tolerance)
        self.frames = FrameServer(needs, converters, unit=timestamp_unit, threads=threads,
                                  max_open_readers=max_open_readers, max_buffered_bytes=max_buffered_bytes,
                                  compact=None if stats else {"mask": compact})
        self._it = self._run()

    @classmethod
    def of(cls, labels: LabelTable, requests: list[SampleRequest], options: Options, *,
           raise_errors: bool = True) -> "SampleIterator":
        """The iterator of a plan with `options`."""
        o = options
        return cls(labels, requests, tolerance=o.tolerance, images=o.images, strict_sizes=o.strict_sizes,
                   timestamp_unit=o.timestamp_unit, threads=o.threads, raise_errors=raise_errors, yuv=o.yuv,
                   instances=o.instances, stats=o.stats, label_maps=o.label_maps,
                   max_open_readers=o.max_open_readers, max_buffered_bytes=o.max_buffered_bytes)

    def __len__(self) -> int:
        return len(self.requests)

    def __iter__(self) -> "SampleIterator":
        return self

    def __next__(self) -> Union[Sample, SampleFailure]:
        return next(self._it)

    def close(self) -> None:
        self.frames.close()

    def _run(self) -> Iterator[Union[Sample, SampleFailure]]:
        try:
            for position, request in enumerate(self.requests):
                try:
                    yield self._make(request, position)
                except MaskdecError as exc:
                    if self._raise:
                        raise
                    yield SampleFailure(request, exc)
        finally:
            self.close()

    def _make(self, r: SampleRequest, position: int) -> Sample:
        # A request that failed in planning registered no frames with the server: take none.
        if r.error is not None:
            raise r.error
        # Take from both files first, so a failure in one still consumes the other's frame.
        image = pixels = None
        errors = []
        if self._images:
            try:
                image = self.frames.take(("image", r.image_uri), r.image_ts, position)
            except MaskdecError as exc:
                errors.append(exc)
        try:
            pixels = self.frames.take(("mask", r.mask_uri), r.mask_ts, position)
        except MaskdecError as exc:
            errors.append(exc)
        if errors:
            raise errors[0]
        return build_sample(r, image, pixels, lossless=self.frames.lossless(("mask", r.mask_uri)),
                            tolerance=self._tolerance, strict_sizes=self._strict_sizes, instances=self._instances,
                            stats=self._stats, label_maps=self._label_maps, pool=self._pool, kernel_threads=1)


def _compact(palettes: Mapping[str, Palette], tolerance: Optional[float], key: tuple, value: Any,
             lossless: bool) -> Any:
    """A mask frame as run-length palette indices (they do not depend on the frame that uses
    them), made in its file's decode-ahead thread; image frames stay as they are."""
    if key[0] != "mask" or isinstance(value, IndexRuns):
        return value
    return IndexRuns.of_pixels(value, palettes[key[1]], _tolerance(tolerance, lossless))


def _tolerance(tolerance: Optional[float], lossless: bool) -> float:
    """The tolerance in use: the caller's, else exact for lossless masks and the lossy default."""
    if tolerance is not None:
        return tolerance
    return 0.0 if lossless else DEFAULT_LOSSY_TOLERANCE


def _empty(pool: Optional[ArrayPool], shape: tuple, dtype: np.dtype) -> Optional[np.ndarray]:
    """An output array from the pool (None without one: the kernel allocates)."""
    return None if pool is None else pool.empty(shape, dtype)


def build_sample(r: SampleRequest, image: Optional[np.ndarray], pixels: Any, *, lossless: bool,
                 tolerance: Optional[float], strict_sizes: bool, instances: bool = False, stats: bool = False,
                 label_maps: bool = True, pool: Optional[ArrayPool] = None,
                 kernel_threads: Optional[int] = None) -> Sample:
    """The Sample of request `r` from its decoded image (or None) and mask pixels: sizes checked,
    colours mapped (`tolerance` None: exact when `lossless`, else the lossy default), label map fitted.
    `pool` supplies the kernel's output arrays (reused once the caller drops them);
    `kernel_threads`: threads per frame's mapping (default: threads.kernel_threads())."""
    if image is not None:
        _check_size(image, r.source, f"{r.where.rsplit('.masks', 1)[0]}", r.image_uri)
    _check_size(pixels, r.mask, r.where, r.mask_uri)
    tolerance = _tolerance(tolerance, lossless)
    colour_index = None
    counts = np.zeros(3, np.int64) if stats else None  # exact / snapped / unknown, from the kernel
    palette, label_map = r.palette, None
    shape = pixels.shape[:2]
    if isinstance(pixels, IndexRuns):  # decoded before its turn, kept as palette indices (no stats)
        if instances and r.index is not None:
            colour_index = pixels.decode(palette.identity(), _empty(pool, shape, palette.dtype))
        if label_maps:
            label_map = pixels.decode(r.remap, _empty(pool, shape, r.remap.dtype))
    elif instances and r.index is not None:  # one kernel run: palette indices, then classes and ROIs
        colour_index = map_palette(pixels, palette, palette.identity(), tolerance, _empty(pool, shape, palette.dtype),
                                   threads=kernel_threads)
        if label_maps and not stats:
            label_map = r.index.label_map(colour_index, _empty(pool, shape, r.remap.dtype))
    if label_map is None and not isinstance(pixels, IndexRuns) and (label_maps or stats):
        label_map = map_palette(pixels, palette, r.remap, tolerance, _empty(pool, shape, r.remap.dtype),
                                counts=counts, threads=kernel_threads)
        if not label_maps:
            label_map = None
    if image is not None:
        size = image.shape[:2]
    elif r.source.width is not None and r.source.height is not None:
        size = (r.source.height, r.source.width)
    else:
        size = pixels.shape[:2]
    if label_map is not None:
        label_map = _fit(label_map, size, strict_sizes, r)
    if colour_index is not None:
        colour_index = _fit(colour_index, size, strict_sizes, r)
    return Sample(image=image, label_map=label_map, frame_index=r.frame_index, source_id=r.source.id,
                  mask_id=r.mask.id, timestamp=r.image_ts, mask_timestamp=r.mask_ts,
                  stats=None if counts is None else PixelStats.from_counts(counts),
                  colour_index=colour_index, request=r)


def iter_samples(frames: FramesArg, **options: Any) -> SampleIterator:
    """Yield one `Sample` per (frame, source, mask), in input order.

    frames: a frames file path, a Frame, or a list of Frames / frame dicts.
    options: see `maskdec.Options` (labels, tolerance, images, ignore_index, mask_labels,
    strict, strict_sizes, strict_keys, timestamp_unit, threads, yuv, instances, stats,
    label_maps, max_open_readers, max_buffered_bytes); a misspelt or mistyped one raises
    OptionError. The iterator's `.labels` is the LabelTable used.
    """
    opts = Options.of(options)
    table, requests = plan_of(frames, opts)
    return SampleIterator.of(table, requests, opts)


def iter_roi_samples(frames: FramesArg, **options: Any) -> Iterator[RoiSample]:
    """Yield a RoiSample for every ROI with a mask, in frame and ROI order; options as
    for iter_samples. Each mask frame is decoded and mapped once for all its ROIs."""
    pool = ArrayPool()
    for sample in iter_samples(frames, **{**options, "instances": True, "label_maps": False}):
        yield from roi_samples_of(sample, pool, threads=1)  # as iter_samples: decoding runs alongside
