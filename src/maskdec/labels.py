"""Which colour means which class in which mask, and the label ids (docs/format.md)."""
from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Optional, Sequence, Union

import numpy as np

from .errors import FrameFormatError, LabelError, MaskdecWarning
from .frames import Frame, Roi, Source, _colour
from .jsonfile import read_json

__all__ = ["ColourDecl", "LabelTable", "mask_declarations", "load_mask_labels", "MaskLabels", "resolve_roi"]

Colour = tuple  # (r, g, b) or (v,) for a 16-bit grey above 255
MaskKey = tuple  # (source_id, mask_id)
MaskLabels = Sequence["ColourDecl"]


def normalise_colour(value: Sequence[int]) -> Colour:
    """[v] with v <= 255 is the grey (v, v, v); [v] above 255 stays a 16-bit grey."""
    if type(value) is tuple and len(value) == 3 and type(value[0]) is type(value[1]) is type(value[2]) is int:
        return value  # the usual case: an (r, g, b) of Python ints, as parsed
    if len(value) == 1 and value[0] <= 255:
        return (value[0],) * 3
    return tuple(int(c) for c in value)


@dataclass(frozen=True)
class ColourDecl:
    """One declaration: pixels of `colour` in a mask are class `name`.

    `roi_index` is the declaring ROI's position in its frame (None for
    dataset-level mask labels); `labels` are all the labels it carried.
    """

    colour: Colour
    name: str
    labels: tuple[str, ...]
    roi_index: Optional[int] = None

    @property
    def origin(self) -> str:
        return "mask_labels" if self.roi_index is None else f"rois[{self.roi_index}]"


def load_mask_labels(spec: Union[str, os.PathLike, Mapping, Sequence, None]) -> list[ColourDecl]:
    """Dataset-level mask labels: `{"_all_": [{"value", "labels"}, ...]}`, a plain
    list of `{"value", "labels"}`, or a JSON file holding either."""
    if spec is None:
        return []
    root = "mask_labels"
    if isinstance(spec, (str, os.PathLike)):  # errors name the file: bounded read, typed errors (jsonfile)
        root = f"{os.path.basename(os.fspath(spec))}: mask_labels"
        spec = read_json(spec, "mask labels file")
    if isinstance(spec, Mapping):
        if "_all_" not in spec:
            keys = ", ".join(repr(str(k)) for k in list(spec)[:5])
            raise FrameFormatError('expected {"_all_": [{"value", "labels"}, ...]} or a list of {"value", '
                                   f'"labels"}}, got an object with keys {keys or "(none)"}', root)
        spec, root = spec["_all_"], f"{root}._all_"
    if not isinstance(spec, (list, tuple)):
        raise FrameFormatError(f'expected a list of {{"value", "labels"}}, got {type(spec).__name__}', root)
    out = []
    seen: dict[Colour, int] = {}
    for i, entry in enumerate(spec):
        where = f"{root}[{i}]"
        if not isinstance(entry, Mapping):
            raise FrameFormatError("expected an object with 'value' and 'labels'", where)
        labels = entry.get("labels", entry.get("label"))
        if isinstance(labels, str):
            labels = [labels]
        if not isinstance(labels, list) or not labels or not all(isinstance(x, str) for x in labels):
            raise FrameFormatError("'labels' must be a non-empty list of strings", f"{where}.labels")
        colour = normalise_colour(_colour(entry.get("value"), f"{where}.value"))
        j = seen.setdefault(colour, i)
        if j != i and out[j].name != labels[0]:  # docs/format.md: one colour, two classes
            raise LabelError(f"colour {list(colour)} is declared as {out[j].name!r} by {root}[{j}] "
                             f"and as {labels[0]!r} by {where}")
        out.append(ColourDecl(colour=colour, name=labels[0], labels=tuple(labels)))
    return out


def _class_of(labels: Sequence[str], enumeration: Optional[Mapping[str, int]]) -> str:
    if enumeration is not None:
        for name in labels:
            if name in enumeration:
                return name
    return labels[0]


def resolve_roi(frame: Frame, roi: Roi, enumeration: Optional[Mapping[str, int]]
                ) -> list[tuple[Source, Optional[tuple[str, str]]]]:
    """Where an ROI's colour goes in each of its sources (rules 1-3 applied per source):
    (source, (mask id, class)) per listed source, or (source, None) where that source is ambiguous."""
    assert roi.mask is not None
    found: list[tuple[Source, Optional[tuple[str, str]]]] = []
    for source in frame.roi_sources(roi):
        ids = {m.id for m in source.masks}
        if roi.mask.id in ids:  # rule 1: the mask named by roi.mask.id
            found.append((source, (roi.mask.id, _class_of(roi.labels, enumeration))))
            continue
        named = next((label for label in roi.labels if label in ids), None)
        if named is not None:  # rule 2: a mask named like a label; the class is roi.mask.id
            found.append((source, (named, roi.mask.id)))
        elif len(source.masks) == 1:  # rule 3: the source's only mask
            found.append((source, (source.masks[0].id, _class_of(roi.labels, enumeration))))
        else:
            found.append((source, None))
    return found


def mask_declarations(
    frame: Frame,
    *,
    mask_labels: Sequence[ColourDecl] = (),
    enumeration: Optional[Mapping[str, int]] = None,
    strict: bool = True,
    where: str = "$",
) -> dict[MaskKey, list[ColourDecl]]:
    """The colour declarations of every mask of `frame`, keyed (source id, mask id).

    Dataset-level `mask_labels` apply to every mask; an ROI's colour overrides
    them for its mask. Two classes on one colour of one mask raise LabelError.
    """
    by_mask: dict[MaskKey, dict[Colour, ColourDecl]] = {}
    for i, roi in enumerate(frame.rois):
        if roi.mask is None:
            continue
        for source, target in resolve_roi(frame, roi, enumeration):
            if target is None:
                message = (f"cannot tell which mask of source {source.id!r} ROI colour {list(roi.mask.value)} "
                           f"belongs to: mask id {roi.mask.id!r} and labels {roi.labels} name none of its "
                           f"{len(source.masks)} masks")
                if strict:
                    raise FrameFormatError(message, f"{where}.rois[{i}]")
                warnings.warn(f"{where}.rois[{i}]: {message}; ROI skipped for that source", MaskdecWarning,
                              stacklevel=3)
                continue
            mask_id, name = target
            decl = ColourDecl(normalise_colour(roi.mask.value), name, tuple(roi.labels), i)
            table = by_mask.setdefault((source.id, mask_id), {})
            other = table.get(decl.colour)
            if other is not None and other.name != decl.name:
                raise LabelError(
                    f"{where}: colour {list(decl.colour)} of mask {mask_id!r} (source {source.id!r}) is declared "
                    f"as {other.name!r} by {where}.{other.origin} and as {decl.name!r} by {where}.{decl.origin}")
            table.setdefault(decl.colour, decl)
    result: dict[MaskKey, list[ColourDecl]] = {}
    for source in frame.sources:
        for mask in source.masks:
            own = by_mask.get((source.id, mask.id), {})
            merged = {d.colour: ColourDecl(d.colour, _class_of(d.labels, enumeration), d.labels)
                      for d in mask_labels if d.colour not in own}  # same class rule as ROIs
            merged.update(own)
            result[(source.id, mask.id)] = list(merged.values())
    return result


class LabelTable:
    """Class names <-> label ids, the ignore index and the label map dtype.

    Build it with `LabelTable.derive(names)` (sorted names numbered 0..N-1) or
    `LabelTable.from_enumeration({name: id})`.
    """

    def __init__(self, ids: Mapping[str, int], *, ignore_index: int = 255, explicit: bool = False) -> None:
        ids = dict(ids)
        for name, value in ids.items():
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
                raise LabelError(f"label {name!r}: id must be a non-negative integer, got {value!r}")
            if value > 65535:
                raise LabelError(f"label {name!r}: id {value} does not fit in 16 bits (at most 65535)")
        needs_16_bits = any(v >= 255 for v in ids.values())
        if needs_16_bits and ignore_index == 255:
            ignore_index = 65535
        if not 0 <= ignore_index <= 65535:
            raise LabelError(f"ignore_index {ignore_index} does not fit in 16 bits")
        clash = [name for name, v in ids.items() if v == ignore_index]
        if clash:
            raise LabelError(f"label {clash[0]!r} has the id {ignore_index}, which is the ignore_index")
        self.ids: dict[str, int] = {name: int(v) for name, v in ids.items()}
        self.ignore_index = int(ignore_index)
        self.explicit = explicit
        self.dtype = np.dtype(np.uint16 if needs_16_bits or ignore_index > 255 else np.uint8)

    @classmethod
    def derive(cls, names: Iterable[str], *, ignore_index: int = 255) -> "LabelTable":
        ordered = sorted(set(names))
        if len(ordered) > 65535:
            raise LabelError(f"{len(ordered)} classes do not fit in 16-bit label ids")
        return cls({name: i for i, name in enumerate(ordered)}, ignore_index=ignore_index)

    @classmethod
    def from_enumeration(cls, enumeration: Mapping[str, int], *, ignore_index: int = 255) -> "LabelTable":
        return cls(enumeration, ignore_index=ignore_index, explicit=True)

    def id_of(self, name: str) -> int:
        """The id of a class; ignore_index for a name missing from an explicit enumeration."""
        return self.ids.get(name, self.ignore_index)

    def names(self) -> dict[int, str]:
        return {v: k for k, v in self.ids.items()}

    def to_dict(self) -> dict[str, int]:
        return dict(self.ids)

    def __repr__(self) -> str:
        return f"LabelTable({self.ids}, ignore_index={self.ignore_index}, dtype={self.dtype.name})"

    def __eq__(self, other: Any) -> bool:
        return isinstance(other, LabelTable) and (self.ids, self.ignore_index) == (other.ids, other.ignore_index)
