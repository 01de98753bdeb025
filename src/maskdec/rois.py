"""Per-ROI views of a mask: each ROI's own boolean mask, box and area, and instance maps.

A mask is mapped once, to a colour-index map (the palette index of each pixel's
colour, 0 for unknown; see lut.Palette); the label map, the instance map and
every ROI's mask are derived from it, so all ROIs of a mask frame cost one
decode and one kernel run.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Iterator, Mapping, Optional

import numpy as np

from ._core import kernels
from .buffers import ArrayPool
from .frames import Frame, Roi
from .labels import LabelTable, normalise_colour, resolve_roi
from .lut import ColourTable, Palette, remap_of
from .threads import row_bands, run_bands

__all__ = ["RoiRef", "RoiSample", "MaskIndex", "FrameRoiPlan", "roi_index_plan", "roi_samples_of"]


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
    """What each palette index of one mask means in one frame."""

    rois: tuple[RoiRef, ...]
    palette: Palette  # the mask file's colours: palette index k + 1 is palette.colours[k]
    classes: np.ndarray  # palette index -> label id (this frame's declarations; others ignore_index)
    roi_of_index: np.ndarray  # palette index -> 1-based position in `rois` of the first ROI with that colour, else 0

    def label_map(self, colour_index: np.ndarray, out: Optional[np.ndarray] = None) -> np.ndarray:
        """Label ids of a colour-index map (one kernel pass through `classes`)."""
        if out is None:
            out = np.empty(colour_index.shape, self.classes.dtype)
        kernels.remap(colour_index, self.classes, out)
        return out


class FrameRoiPlan:
    """The MaskIndex of each (source id, mask id) of one frame, built on first use:
    samples that never look at their ROIs do not pay for them."""

    def __init__(self, frame: Frame, decls: dict, labels: LabelTable, palettes: Mapping[tuple, Palette],
                 tables: Mapping[tuple, ColourTable]) -> None:
        self._frame, self._decls, self._labels = frame, decls, labels
        self._palettes, self._tables = palettes, tables

    @cached_property
    def indices(self) -> dict[tuple, MaskIndex]:
        return roi_index_plan(self._frame, self._decls, self._labels, self._palettes, self._tables)

    def get(self, source_id: str, mask_id: str) -> Optional[MaskIndex]:
        return self.indices.get((source_id, mask_id))


def roi_index_plan(frame: Frame, decls: dict, labels: LabelTable, palettes: Mapping[tuple, Palette],
                   tables: Mapping[tuple, ColourTable]) -> dict[tuple, MaskIndex]:
    """A MaskIndex per (source id, mask id) of `frame`, from its declarations, the palette of
    each mask's file and each mask's colour table (this frame's colours -> label ids)."""
    refs: dict[tuple, list[RoiRef]] = {key: [] for key in decls}
    enumeration = labels.ids if labels.explicit else None
    for i, roi in enumerate(frame.rois):
        if roi.mask is None:
            continue
        for source, target in resolve_roi(frame, roi, enumeration):
            if target is None or (source.id, target[0]) not in refs:
                continue  # ambiguous ROIs were reported (or skipped) by mask_declarations
            mask_id, name = target
            key = (source.id, mask_id)
            refs[key].append(RoiRef(len(refs[key]), i, roi, normalise_colour(roi.mask.value), name,
                                    labels.id_of(name)))
    plan = {}
    for key in decls:
        palette = palettes[key]
        roi_of = np.zeros(len(palette) + 1, np.int32)
        position = palette.position
        for ref in reversed(refs[key]):  # the first ROI with a colour wins
            roi_of[position[ref.colour]] = ref.k + 1
        plan[key] = MaskIndex(tuple(refs[key]), palette, remap_of(palette, tables[key]), roi_of)
    return plan


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
    `threads` split the pass (default threads.kernel_threads())."""
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
