"""Per-ROI views of a mask: each ROI's own boolean mask, box and area, and instance maps.

A mask is mapped once, to a colour-index map (index k + 1 for the k-th colour
of the mask's ROIs, then the dataset-level colours, 0 for unknown); the label
map, the instance map and every ROI's mask are derived from it, so all ROIs
of a mask frame cost one decode and one kernel run.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Iterator, Optional, Sequence

import numpy as np

from ._core import kernels
from .buffers import ArrayPool
from .frames import Frame, Roi
from .labels import ColourDecl, LabelTable, normalise_colour, _resolve_roi
from .lut import ColourTable
from .threads import row_bands, run_bands

__all__ = ["RoiRef", "RoiSample", "MaskIndex", "FrameRoiPlan", "roi_index_plan", "roi_samples_of", "iter_roi_samples"]


@dataclass(frozen=True)
class RoiRef:
    """An ROI that declared a colour of one mask: its position `k` in the mask's
    `.rois` (instance id k + 1), the ROI itself, its class and that class's id."""

    k: int
    roi_index: int
    roi: Roi
    colour: tuple
    name: str
    label_id: int


@dataclass(frozen=True, eq=False)
class MaskIndex:
    """How to map one mask to a colour-index map and what each index means."""

    rois: tuple[RoiRef, ...]
    table: ColourTable  # colours -> index (1-based), unknown -> 0
    classes: np.ndarray  # index -> label id (index 0 -> ignore_index)
    roi_of_index: np.ndarray  # index -> 1-based position in `rois` of the first ROI with that colour, else 0

    def label_map(self, colour_index: np.ndarray) -> np.ndarray:
        """Label ids of a colour-index map (a kernel pass through `classes`)."""
        lut = np.full(256 if colour_index.dtype == np.uint8 else 65536, self.classes[0], self.classes.dtype)
        lut[: len(self.classes)] = self.classes
        out = np.empty(colour_index.shape, self.classes.dtype)
        kernels.map_gray(colour_index, lut, out)
        return out


class FrameRoiPlan:
    """The MaskIndex of each (source id, mask id) of one frame, built on first use:
    samples that never look at their ROIs do not pay for them."""

    def __init__(self, frame: Frame, decls: dict, labels: LabelTable) -> None:
        self._frame, self._decls, self._labels = frame, decls, labels

    @cached_property
    def indices(self) -> dict[tuple, MaskIndex]:
        return roi_index_plan(self._frame, self._decls, self._labels)

    def get(self, source_id: str, mask_id: str) -> Optional[MaskIndex]:
        return self.indices.get((source_id, mask_id))


def roi_index_plan(frame: Frame, decls: dict, labels: LabelTable) -> dict[tuple, MaskIndex]:
    """A MaskIndex per (source id, mask id) of `frame`, from its declarations."""
    refs: dict[tuple, list[RoiRef]] = {key: [] for key in decls}
    enumeration = labels.ids if labels.explicit else None
    for i, roi in enumerate(frame.rois):
        if roi.mask is None:
            continue
        found = _resolve_roi(frame, roi, enumeration)
        if found is None or (found[0].id, found[1]) not in refs:
            continue  # ambiguous ROIs were reported (or skipped) by mask_declarations
        source, mask_id, name = found
        key = (source.id, mask_id)
        refs[key].append(RoiRef(len(refs[key]), i, roi, normalise_colour(roi.mask.value), name, labels.id_of(name)))
    plan = {}
    for key, mask_decls in decls.items():
        plan[key] = _mask_index(tuple(refs[key]), mask_decls, labels)
    return plan


def _mask_index(rois: tuple[RoiRef, ...], decls: Sequence[ColourDecl], labels: LabelTable) -> MaskIndex:
    by_colour = {d.colour: d for d in decls}  # the class each colour has (ROI over dataset level)
    first_roi: dict[tuple, int] = {}  # colour -> its first ROI's k + 1 (a dict: ROIs may number 65535)
    for ref in rois:
        first_roi.setdefault(ref.colour, ref.k + 1)
    for colour in by_colour:
        first_roi.setdefault(colour, 0)
    colours = list(first_roi)
    roi_of = [0] + list(first_roi.values())
    n = len(colours)
    dtype = np.uint8 if n < 255 else np.uint16
    table = ColourTable(tuple(colours), tuple(range(1, n + 1)), 0, np.dtype(dtype).name)
    classes = np.array([labels.ignore_index] + [labels.id_of(by_colour[c].name) for c in colours], labels.dtype)
    return MaskIndex(rois, table, classes, np.array(roi_of, np.int32))


@dataclass(eq=False)
class RoiSample:
    """One ROI's own (image, mask): `mask` is the (H, W) bool mask of its colour's pixels
    (after the tolerance rule); `box` is (x0, y0, x1, y1) with exclusive ends, None when empty."""

    image: Optional[np.ndarray]
    mask: np.ndarray
    roi: Roi
    ref: RoiRef
    frame_index: int
    source_id: str
    mask_id: str
    timestamp: int
    box: Optional[tuple[int, int, int, int]]
    area: int

    @property
    def label_id(self) -> int:
        return self.ref.label_id

    @property
    def labels(self) -> list[str]:
        return list(self.roi.labels)

    def __iter__(self) -> Iterator[Optional[np.ndarray]]:
        yield self.image
        yield self.mask

    def __repr__(self) -> str:
        return (f"RoiSample(frame_index={self.frame_index}, source_id={self.source_id!r}, mask_id={self.mask_id!r}, "
                f"labels={self.roi.labels}, box={self.box}, area={self.area})")


def _planes(n: int, h: int, w: int, pool: Optional[ArrayPool]) -> tuple[np.ndarray, np.ndarray]:
    """n (h, w) mask planes and the (n, h, 2) int32 column spans of their ones (see
    kernels.split_instances), in one buffer so that a reused buffer brings its spans along."""
    size = -(-n * h * w // 8) * 8  # the spans start 8-byte aligned
    shape = (size + n * h * 2 * 4,)
    buffer = np.zeros(shape, np.uint8) if pool is None else pool.empty(shape, np.uint8, zeroed=True)
    return buffer[: n * h * w].reshape(n, h, w), buffer[size:].view(np.int32).reshape(n, h, 2)


def roi_samples_of(sample, pool: Optional[ArrayPool] = None, threads: Optional[int] = None) -> list[RoiSample]:
    """The RoiSamples of one Sample made with instances=True: one pass over its colour
    indices splits every ROI's mask, box and area (ROIs sharing a colour share pixels).
    With `pool`, the masks reuse the memory of RoiSamples the caller has dropped;
    `threads` split the pass (default lut.kernel_threads())."""
    rois = sample.rois
    index = sample.colour_index
    n, (h, w) = max(len(rois), 1), index.shape
    planes, spans = _planes(n, h, w, pool)
    bands = row_bands(h, threads=threads)
    parts = np.zeros((len(bands), n, 5), np.int64)  # (area, x0, y0, x1, y1) per band and ROI
    parts[:, :, 1], parts[:, :, 2] = w, h
    run_bands(lambda r0, r1, k: kernels.split_instances(index, sample.index.roi_of_index, planes, parts[k],
                                                        spans, r0, r1), bands)
    boxes = np.concatenate([parts[:, :, :1].sum(axis=0), parts[:, :, 1:3].min(axis=0),
                            parts[:, :, 3:].max(axis=0)], axis=1).tolist()
    masks = planes.view(bool)
    first_of: dict[tuple, int] = {}  # colour -> the first ROI with it (the one the planes hold)
    for ref in rois:
        first_of.setdefault(ref.colour, ref.k)
    out = []
    for ref in rois:
        first = first_of[ref.colour]
        area, x0, y0, x1, y1 = boxes[first]
        out.append(RoiSample(image=sample.image, mask=masks[first], roi=ref.roi, ref=ref,
                             frame_index=sample.frame_index, source_id=sample.source_id, mask_id=sample.mask_id,
                             timestamp=sample.timestamp, box=(x0, y0, x1, y1) if area else None, area=area))
    return out


def iter_roi_samples(frames, **options) -> Iterator[RoiSample]:
    """Yield a RoiSample for every ROI with a mask, in frame and ROI order; options as
    for iter_samples. Each mask frame is decoded and mapped once for all its ROIs."""
    from .samples import iter_samples

    pool = ArrayPool()
    for sample in iter_samples(frames, instances=True, label_maps=False, **options):
        yield from roi_samples_of(sample, pool, threads=1)  # as iter_samples: decoding runs alongside
