"""Per-ROI views of a mask: each ROI's own boolean mask, box and area, and instance maps.

A mask is mapped once, to a colour-index map (index k + 1 for the k-th colour
of the mask's ROIs, then the dataset-level colours, 0 for unknown); the label
map, the instance map and every ROI's mask are derived from it, so all ROIs
of a mask frame cost one decode and one kernel run.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Iterator, Optional, Sequence

import numpy as np

from ._core import kernels
from .frames import Frame, Roi
from .labels import ColourDecl, LabelTable, normalise_colour, _resolve_roi
from .lut import ColourTable

__all__ = ["RoiRef", "RoiSample", "MaskIndex", "roi_index_plan", "index_boxes", "iter_roi_samples"]


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
    colours: list[tuple] = []
    roi_of: list[int] = [0]
    for ref in rois:
        if ref.colour not in colours:
            colours.append(ref.colour)
            roi_of.append(ref.k + 1)
    for colour in by_colour:
        if colour not in colours:
            colours.append(colour)
            roi_of.append(0)
    n = len(colours)
    dtype = np.uint8 if n < 255 else np.uint16
    table = ColourTable(tuple(colours), tuple(range(1, n + 1)), 0, np.dtype(dtype).name)
    classes = np.array([labels.ignore_index] + [labels.id_of(by_colour[c].name) for c in colours], labels.dtype)
    return MaskIndex(rois, table, classes, np.array(roi_of, np.int32))


def index_boxes(index_map: np.ndarray, n: int) -> np.ndarray:
    """(n, 5) int64 rows (area, x0, y0, x1, y1) for indices 0..n-1 of `index_map`, one pass."""
    h, w = index_map.shape
    boxes = np.zeros((n, 5), np.int64)
    boxes[:, 1], boxes[:, 2] = w, h
    kernels.index_boxes(index_map, boxes)
    return boxes


@dataclass(eq=False)
class RoiSample:
    """One ROI's own (image, mask): `mask` is the (H, W) bool mask of its colour's pixels
    (after the tolerance rule); `box` is (x0, y0, x1, y1) with exclusive ends, None when empty."""

    image: Optional[np.ndarray]
    roi: Roi
    ref: RoiRef
    frame_index: int
    source_id: str
    mask_id: str
    timestamp: int
    box: Optional[tuple[int, int, int, int]]
    area: int
    _instance_map: np.ndarray = field(repr=False)

    @property
    def label_id(self) -> int:
        return self.ref.label_id

    @property
    def labels(self) -> list[str]:
        return list(self.roi.labels)

    @cached_property
    def mask(self) -> np.ndarray:
        out = np.zeros(self._instance_map.shape, bool)
        if self.box is not None:
            x0, y0, x1, y1 = self.box
            out[y0:y1, x0:x1] = self._instance_map[y0:y1, x0:x1] == self.ref.k + 1
        return out

    def __iter__(self) -> Iterator[Optional[np.ndarray]]:
        yield self.image
        yield self.mask

    def __repr__(self) -> str:
        return (f"RoiSample(frame_index={self.frame_index}, source_id={self.source_id!r}, mask_id={self.mask_id!r}, "
                f"labels={self.roi.labels}, box={self.box}, area={self.area})")


def roi_samples_of(sample) -> list[RoiSample]:
    """The RoiSamples of one Sample made with instances=True."""
    inst = sample.instance_map
    boxes = index_boxes(inst, len(sample.rois) + 1)
    out = []
    for ref in sample.rois:
        first = int(np.argmax([r.colour == ref.colour for r in sample.rois]))  # ROIs sharing a colour share pixels
        area, x0, y0, x1, y1 = (int(v) for v in boxes[first + 1])
        out.append(RoiSample(image=sample.image, roi=ref.roi, ref=RoiRef(first, ref.roi_index, ref.roi, ref.colour,
                                                                          ref.name, ref.label_id),
                             frame_index=sample.frame_index, source_id=sample.source_id, mask_id=sample.mask_id,
                             timestamp=sample.timestamp, box=(x0, y0, x1, y1) if area else None, area=area,
                             _instance_map=inst))
    return out


def iter_roi_samples(frames, **options) -> Iterator[RoiSample]:
    """Yield a RoiSample for every ROI with a mask, in frame and ROI order; options as
    for iter_samples. Each mask frame is decoded and mapped once for all its ROIs."""
    from .samples import iter_samples

    for sample in iter_samples(frames, instances=True, **options):
        yield from roi_samples_of(sample)
