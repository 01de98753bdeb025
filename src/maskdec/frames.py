"""Dataset frames (ClearML Hyper-Datasets shape): parse, validate, author, write back.

Every rule is in docs/format.md; each validation error names the
JSON path of its culprit, prefixed with the file and line when it came from one.
"""
from __future__ import annotations

import difflib
import numbers
import os
import re
import warnings
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator, Literal, NamedTuple, Optional, Sequence, Union, overload

from .errors import FrameFormatError, MaskdecWarning, OptionError
from .jsonfile import json_lines, read_json
from .limits import check_pixels, max_pixels

__all__ = ["Frame", "Source", "Mask", "Roi", "RoiMask", "load_frames", "LoadedFrames", "normalise_content_type",
           "unknown_keys"]

# Keys maskdec models; any other key is kept in `extra` and written back unchanged.
_SOURCE_KEYS = {"id", "uri", "content_type", "width", "height", "timestamp", "masks", "preview", "meta"}
_MASK_KEYS = {"id", "uri", "content_type", "timestamp", "width", "height"}
_ROI_KEYS = {"label", "labels", "sources", "mask", "id", "meta", "confidence"}
_FRAME_KEYS = {"sources", "rois", "id", "timestamp", "context_id", "meta"}

# Keys of ClearML's frame schema (its frames service: Frame, Source, Mask, Roi, RoiMask), used
# or only carried; any other key is probably a typo and is reported (`strict_keys`: refused).
_KNOWN_KEYS = {
    "frame": frozenset(_FRAME_KEYS | {
        "meta_blob", "augmentation", "blob", "dataset", "saved", "saved_in_version", "updated",
        "updated_in_version", "labels_size", "rule_name", "video_gop", "is_key_frame", "key_frame", "new_ver",
        "label_rule_counts"}),
    "source": frozenset(_SOURCE_KEYS),
    "mask": frozenset(_MASK_KEYS),
    "ROI": frozenset(_ROI_KEYS | {"poly", "area", "label_num"}),
    "ROI mask": frozenset({"id", "value"}),
}

_CONTENT_TYPE_ALIASES = {"image/jpg": "image/jpeg", "video/mpeg4": "video/mp4"}
_EXTENSION_TYPES = {
    ".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".bmp": "image/bmp",
    ".tif": "image/tiff", ".tiff": "image/tiff", ".webp": "image/webp", ".gif": "image/gif",
    ".mp4": "video/mp4", ".m4v": "video/mp4", ".mkv": "video/x-matroska", ".webm": "video/webm",
    ".mov": "video/quicktime", ".avi": "video/x-msvideo", ".nut": "video/x-nut",
}


def normalise_content_type(content_type: Optional[str], uri: str = "") -> Optional[str]:
    """`image / PNG` -> `image/png`, `image/jpg` -> `image/jpeg`, `png` -> `image/png`;
    missing: inferred from the URI's extension (None when unknown)."""
    if content_type:
        ct = "".join(content_type.split()).lower()
        if "/" not in ct:
            ct = _EXTENSION_TYPES.get("." + ct, ct)
        return _CONTENT_TYPE_ALIASES.get(ct, ct)
    suffix = os.path.splitext(uri.split("?", 1)[0])[1].lower()
    return _EXTENSION_TYPES.get(suffix)


# ----------------------------------------------------------------- value checks

#: Timestamps longer than this many digits are refused at parse time (no clip is that long,
#: and Python cannot even print a number past 4300 digits).
_MAX_TIMESTAMP_DIGITS = 300
#: Distinct unknown keys reported one by one; the rest are counted in one last warning.
_MAX_KEY_WARNINGS = 20


def _show(value: Any, limit: int = 80) -> str:
    """repr(value) for messages, shortened to `limit` characters; safe for any value (Python
    refuses to print an int past 4300 digits)."""
    try:
        text = repr(value)
    except ValueError:
        return "<a number too long to print>"
    return text if len(text) <= limit else f"{text[:limit - 5]}...{text[-2:]}"


def _require_object(value: Any, path: str) -> dict:
    if not isinstance(value, dict):
        raise FrameFormatError(f"expected a JSON object, got {type(value).__name__}", path)
    return value


def _require_str(d: dict, key: str, path: str, *, coerce_int: bool = False) -> str:
    if key not in d or d[key] is None:
        raise FrameFormatError(f"missing required key {key!r}", path)
    value = d[key]
    if coerce_int and isinstance(value, int) and not isinstance(value, bool):
        return _text(value, f"{path}.{key}")
    if not isinstance(value, str) or not value:
        raise FrameFormatError(f"{key!r} must be a non-empty string, got {_show(value)}", f"{path}.{key}")
    return value


def _text(value: Any, where: str) -> str:
    """str(value) of an id given as another type (a number); FrameFormatError when even that fails."""
    try:
        return str(value)
    except ValueError:  # an int past 4300 digits
        raise FrameFormatError(f"an id must be a string, got {_show(value)}", where) from None


def _optional_str(d: dict, key: str, path: str) -> Optional[str]:
    value = d.get(key)
    if value is not None and not isinstance(value, str):
        raise FrameFormatError(f"{key!r} must be a string, got {_show(value)}", f"{path}.{key}")
    return value


def _timestamp(d: dict, path: str) -> Optional[int]:
    """A timestamp in ms: int, or a numeric string converted; never negative."""
    if "timestamp" not in d or d["timestamp"] is None:
        return None
    value = d["timestamp"]
    where = f"{path}.timestamp"
    if isinstance(value, bool):
        raise FrameFormatError(f"timestamp must be an integer, got {_show(value)}", where)
    if isinstance(value, str):
        text = value.strip()
        if not re.fullmatch(r"-?[0-9]+", text) or len(text) > _MAX_TIMESTAMP_DIGITS:
            raise FrameFormatError(f"timestamp must be an integer, got {_show(value)}", where)
        value = int(text)
    elif isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, int):
        raise FrameFormatError(f"timestamp must be an integer, got {_show(value)}", where)
    if value < 0:
        raise FrameFormatError(f"timestamp must not be negative, got {_show(value)}", where)
    if value >= 10 ** _MAX_TIMESTAMP_DIGITS:
        raise FrameFormatError(f"timestamp has more than {_MAX_TIMESTAMP_DIGITS} digits", where)
    return value


def _size(d: dict, key: str, path: str, limit: int) -> Optional[int]:
    value = d.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise FrameFormatError(f"{key!r} must be a positive integer, got {_show(value)}", f"{path}.{key}")
    if value > limit:
        raise FrameFormatError(f"{key!r} {_show(value)} is more than the pixel limit of {limit} (MASKDEC_MAX_PIXELS)",
                               f"{path}.{key}")
    return value


def _declared_size(d: dict, path: str) -> tuple[Optional[int], Optional[int]]:
    """A declared (width, height), each a positive integer, together within MASKDEC_MAX_PIXELS
    (label maps may be allocated at the declared size: it must never exceed what a decoder allows)."""
    if d.get("width") is None and d.get("height") is None:
        return None, None
    limit = max_pixels()  # read once: the environment is slow to read for every key
    width, height = _size(d, "width", path, limit), _size(d, "height", path, limit)
    if width is not None and height is not None and width * height > limit:
        raise FrameFormatError(f"declared size {check_pixels(width, height)}", f"{path}.width")
    return width, height


def _colour(value: Any, path: str) -> tuple[int, ...]:
    """[r, g, b] with channels 0..255, or [v] with v 0..65535 (grayscale)."""
    if type(value) is list and len(value) == 3:  # the usual case, checked without generators
        r, g, b = value
        if type(r) is int and type(g) is int and type(b) is int and 0 <= r <= 255 and 0 <= g <= 255 and 0 <= b <= 255:
            return (r, g, b)
    ok = isinstance(value, (list, tuple)) and len(value) in (1, 3) and all(
        isinstance(c, int) and not isinstance(c, bool) for c in value)
    if ok:
        limit = 65535 if len(value) == 1 else 255
        ok = all(0 <= c <= limit for c in value)
    if not ok:
        raise FrameFormatError(
            f"colour value must be [r, g, b] with channels 0..255 or [v] with v 0..65535, got {_show(value)}", path)
    return tuple(value)


def _present(obj: Any, out: dict, keys: Iterable[str]) -> dict:
    """Add to `out` the attributes of `obj` named in `keys` that are not None."""
    for key in keys:
        value = getattr(obj, key)
        if value is not None:
            out[key] = value
    return out


def _extra(d: dict, known: set) -> dict:
    if d.keys() <= known:  # the usual case, checked at C speed
        return {}
    return {k: v for k, v in d.items() if k not in known}


# ----------------------------------------------------------------- the model

@dataclass
class Mask:
    """An entry of `source.masks`: one mask image or video."""

    id: str
    uri: str
    content_type: Optional[str] = None
    timestamp: Optional[int] = None
    width: Optional[int] = None
    height: Optional[int] = None
    extra: dict = field(default_factory=dict)

    @property
    def media_type(self) -> Optional[str]:
        return normalise_content_type(self.content_type, self.uri)

    @classmethod
    def from_dict(cls, d: Any, path: str = "$mask") -> "Mask":
        d = _require_object(d, path)
        width, height = _declared_size(d, path)
        return cls(
            id=_require_str(d, "id", path, coerce_int=True),
            uri=_require_str(d, "uri", path),
            content_type=_optional_str(d, "content_type", path),
            timestamp=_timestamp(d, path),
            width=width,
            height=height,
            extra=_extra(d, _MASK_KEYS),
        )

    def to_dict(self) -> dict:
        out = _present(self, {"id": self.id, "uri": self.uri}, ("content_type", "timestamp", "width", "height"))
        out.update(self.extra)
        return out


@dataclass
class Source:
    """An image or video of a frame, with its masks."""

    id: str
    uri: str
    content_type: Optional[str] = None
    timestamp: Optional[int] = None
    width: Optional[int] = None
    height: Optional[int] = None
    masks: list[Mask] = field(default_factory=list)
    preview: Optional[dict] = None
    meta: Optional[dict] = None
    extra: dict = field(default_factory=dict)

    @property
    def media_type(self) -> Optional[str]:
        return normalise_content_type(self.content_type, self.uri)

    def mask(self, mask_id: str) -> Mask:
        for m in self.masks:
            if m.id == mask_id:
                return m
        raise KeyError(mask_id)

    @classmethod
    def from_dict(cls, d: Any, path: str = "$source") -> "Source":
        d = _require_object(d, path)
        raw_masks = d.get("masks") or []
        if not isinstance(raw_masks, list):
            raise FrameFormatError("'masks' must be a list", f"{path}.masks")
        masks = [Mask.from_dict(m, f"{path}.masks[{i}]") for i, m in enumerate(raw_masks)]
        seen: dict[str, int] = {}
        for i, m in enumerate(masks):
            if m.id in seen:
                raise FrameFormatError(
                    f"duplicate mask id {_show(m.id)} (also at masks[{seen[m.id]}])", f"{path}.masks[{i}].id")
            seen[m.id] = i
        for key in ("preview", "meta"):
            if d.get(key) is not None and not isinstance(d[key], dict):
                raise FrameFormatError(f"{key!r} must be an object", f"{path}.{key}")
        width, height = _declared_size(d, path)
        return cls(
            id=_require_str(d, "id", path, coerce_int=True),
            uri=_require_str(d, "uri", path),
            content_type=_optional_str(d, "content_type", path),
            timestamp=_timestamp(d, path),
            width=width,
            height=height,
            masks=masks,
            preview=d.get("preview"),
            meta=d.get("meta"),
            extra=_extra(d, _SOURCE_KEYS),
        )

    def to_dict(self) -> dict:
        out = _present(self, {"id": self.id, "uri": self.uri}, ("content_type", "timestamp", "width", "height"))
        if self.masks:
            out["masks"] = [m.to_dict() for m in self.masks]
        _present(self, out, ("preview", "meta"))
        out.update(self.extra)
        return out


@dataclass
class RoiMask:
    """The `mask` of an ROI: which mask (by id) and which colour its pixels have."""

    id: str
    value: tuple[int, ...]


@dataclass
class Roi:
    """A region of interest; with `mask` it declares a colour of a mask."""

    labels: list[str]
    sources: list[str] = field(default_factory=list)
    mask: Optional[RoiMask] = None
    id: Optional[str] = None
    confidence: Optional[float] = None
    meta: Optional[dict] = None
    extra: dict = field(default_factory=dict)

    @classmethod
    def from_dict(cls, d: Any, path: str = "$roi") -> "Roi":
        d = _require_object(d, path)
        key = "label" if "label" in d else "labels"
        labels = d.get(key)
        if isinstance(labels, str):
            labels = [labels]
        if not isinstance(labels, list) or not labels or not all(isinstance(x, str) for x in labels):
            raise FrameFormatError("'label' must be a non-empty list of strings", f"{path}.{key}")
        sources = d.get("sources") or []
        if not isinstance(sources, list) or not all(isinstance(s, (str, int)) for s in sources):
            raise FrameFormatError("'sources' must be a list of source ids", f"{path}.sources")
        mask = None
        if d.get("mask") is not None:
            m = _require_object(d["mask"], f"{path}.mask")
            mask = RoiMask(id=_require_str(m, "id", f"{path}.mask", coerce_int=True),
                           value=_colour(m.get("value"), f"{path}.mask.value"))
        confidence = d.get("confidence")
        if confidence is not None and (isinstance(confidence, bool) or not isinstance(confidence, (int, float))):
            raise FrameFormatError(f"'confidence' must be a number, got {_show(confidence)}", f"{path}.confidence")
        roi_id = d.get("id")
        return cls(
            labels=list(labels),
            sources=[s if type(s) is str else _text(s, f"{path}.sources[{i}]") for i, s in enumerate(sources)],
            mask=mask,
            id=None if roi_id is None else _text(roi_id, f"{path}.id"),
            confidence=confidence,
            meta=d.get("meta"),
            extra=_extra(d, _ROI_KEYS),
        )

    def to_dict(self) -> dict:
        out: dict = {"label": list(self.labels)}
        if self.sources:
            out["sources"] = list(self.sources)
        if self.mask is not None:
            out["mask"] = {"id": self.mask.id, "value": list(self.mask.value)}
        _present(self, out, ("id", "confidence", "meta"))
        out.update(self.extra)
        return out


@dataclass
class Frame:
    """One dataset frame: sources (with masks) and ROIs.

    `base_dir` (not serialised) is the folder relative URIs resolve against.
    """

    sources: list[Source]
    rois: list[Roi] = field(default_factory=list)
    id: Optional[str] = None
    timestamp: Optional[int] = None
    context_id: Optional[str] = None
    meta: Optional[dict] = None
    extra: dict = field(default_factory=dict)
    base_dir: Optional[str] = field(default=None, compare=False, repr=False)

    @classmethod
    def from_dict(cls, d: Any, *, path: str = "$", base_dir: Union[str, os.PathLike, None] = None,
                  strict_keys: bool = False) -> "Frame":
        """Parse and validate one frame object (docs/format.md, "What is rejected"); errors name the JSON path.

        A key outside ClearML's frame schema (a typo such as `timestmp`) gives a MaskdecWarning
        naming it, its path and the nearest known key; `strict_keys=True` makes it a FrameFormatError.
        """
        found = unknown_keys(d, path)
        if found:
            if strict_keys:
                raise found[0].error()
            for key in found[:_MAX_KEY_WARNINGS]:
                warnings.warn(key.message(), MaskdecWarning, stacklevel=2)
            if len(found) > _MAX_KEY_WARNINGS:
                warnings.warn(f"{path}: and {len(found) - _MAX_KEY_WARNINGS} more unknown keys", MaskdecWarning,
                              stacklevel=2)
        return cls._parse(d, path, base_dir)

    @classmethod
    def _parse(cls, d: Any, path: str, base_dir: Union[str, os.PathLike, None]) -> "Frame":
        d = _require_object(d, path)
        raw_sources = d.get("sources")
        if not isinstance(raw_sources, list) or not raw_sources:
            raise FrameFormatError("'sources' must be a non-empty list", f"{path}.sources")
        sources = [Source.from_dict(s, f"{path}.sources[{i}]") for i, s in enumerate(raw_sources)]
        seen: dict[str, int] = {}
        for i, s in enumerate(sources):
            if s.id in seen:
                raise FrameFormatError(
                    f"duplicate source id {_show(s.id)} (also at sources[{seen[s.id]}])", f"{path}.sources[{i}].id")
            seen[s.id] = i
        raw_rois = d.get("rois") or []
        if not isinstance(raw_rois, list):
            raise FrameFormatError("'rois' must be a list", f"{path}.rois")
        rois = [Roi.from_dict(r, f"{path}.rois[{i}]") for i, r in enumerate(raw_rois)]
        for i, roi in enumerate(rois):
            for j, sid in enumerate(roi.sources):
                if sid not in seen:
                    raise FrameFormatError(f"ROI points at unknown source {_show(sid)}", f"{path}.rois[{i}].sources[{j}]")
        if d.get("meta") is not None and not isinstance(d["meta"], dict):
            raise FrameFormatError("'meta' must be an object", f"{path}.meta")
        frame_id = d.get("id")
        context_id = d.get("context_id")
        return cls(
            sources=sources,
            rois=rois,
            id=None if frame_id is None else _text(frame_id, f"{path}.id"),
            timestamp=_timestamp(d, path),
            context_id=None if context_id is None else _text(context_id, f"{path}.context_id"),
            meta=d.get("meta"),
            extra=_extra(d, _FRAME_KEYS),
            base_dir=None if base_dir is None else os.fspath(base_dir),
        )

    def to_dict(self) -> dict:
        """The frame as a JSON-ready dict; `Frame.from_dict(f.to_dict()) == f`."""
        out: dict = {}
        _present(self, out, ("id", "timestamp", "context_id", "meta"))
        out["sources"] = [s.to_dict() for s in self.sources]
        if self.rois:
            out["rois"] = [r.to_dict() for r in self.rois]
        out.update(self.extra)
        return out

    def source(self, source_id: str) -> Source:
        for s in self.sources:
            if s.id == source_id:
                return s
        raise KeyError(source_id)

    def roi_sources(self, roi: Roi) -> list[Source]:
        """The sources an ROI refers to: its own list, or the frame's first source."""
        return [self.source(sid) for sid in roi.sources] if roi.sources else [self.sources[0]]

    def add_annotation(
        self,
        *,
        mask_rgb: Sequence[int],
        labels: Sequence[str],
        mask_id: Optional[str] = None,
        source_id: Optional[str] = None,
        id: Optional[str] = None,
        confidence: Optional[float] = None,
        meta: Optional[dict] = None,
    ) -> Roi:
        """Declare that pixels of colour `mask_rgb` in mask `mask_id` of source
        `source_id` are `labels` (defaults: the first source, its only mask)."""
        path = f"$.rois[{len(self.rois)}]"
        source = self.sources[0] if source_id is None else self._known_source(source_id, path)
        if mask_id is None:
            if len(source.masks) != 1:
                raise FrameFormatError(
                    f"source {source.id!r} has {len(source.masks)} masks: name one with mask_id", path)
            mask_id = source.masks[0].id
        elif all(m.id != mask_id for m in source.masks):
            raise FrameFormatError(f"source {source.id!r} has no mask {mask_id!r}", f"{path}.mask.id")
        if isinstance(labels, str):
            labels = [labels]
        if not labels or not all(isinstance(x, str) for x in labels):
            raise FrameFormatError("labels must be a non-empty list of strings", f"{path}.label")
        # plain ints from numpy integers too (a colour picked from a decoded mask image)
        value = [int(c) if isinstance(c, numbers.Integral) and not isinstance(c, bool) else c for c in mask_rgb]
        roi = Roi(labels=list(labels), sources=[source.id],
                  mask=RoiMask(id=str(mask_id), value=_colour(value, f"{path}.mask.value")),
                  id=id, confidence=confidence, meta=meta)
        self.rois.append(roi)
        return roi

    def _known_source(self, source_id: str, path: str) -> Source:
        try:
            return self.source(source_id)
        except KeyError:
            raise FrameFormatError(f"unknown source {source_id!r}", f"{path}.sources[0]") from None


# ----------------------------------------------------------------- unknown keys

class UnknownKey(NamedTuple):
    """A key that ClearML's frame schema does not have, where it is, and the nearest known key."""

    path: str  # JSON path of the object holding it
    key: str
    kind: str  # "frame", "source", "mask", "ROI" or "ROI mask"
    nearest: Optional[str]

    def message(self) -> str:
        hint = f"did you mean {self.nearest!r}?" if self.nearest else "not in ClearML's frame schema"
        return f"{self.path}: unknown {self.kind} key {_show(self.key)} ({hint}); it is carried but not used"

    def error(self) -> FrameFormatError:
        hint = f"did you mean {self.nearest!r}?" if self.nearest else "not a key of ClearML's frame schema"
        return FrameFormatError(f"unknown {self.kind} key {_show(self.key)} ({hint}; strict_keys refuses it)",
                                f"{self.path}.{self.key if len(self.key) <= 40 else self.key[:37] + '...'}")


def _objects(d: Any) -> Iterator[tuple[str, tuple, dict]]:
    """(kind, JSON path steps (keys and list indices), object) of a frame and the sources, masks,
    ROIs and ROI masks in it (steps, not path strings: most objects never need their path)."""
    if not isinstance(d, dict):
        return
    yield "frame", (), d
    for i, source in enumerate(d.get("sources") if isinstance(d.get("sources"), list) else []):
        if isinstance(source, dict):
            yield "source", ("sources", i), source
            masks = source.get("masks")
            for j, mask in enumerate(masks if isinstance(masks, list) else []):
                if isinstance(mask, dict):
                    yield "mask", ("sources", i, "masks", j), mask
    for i, roi in enumerate(d.get("rois") if isinstance(d.get("rois"), list) else []):
        if isinstance(roi, dict):
            yield "ROI", ("rois", i), roi
            if isinstance(roi.get("mask"), dict):
                yield "ROI mask", ("rois", i, "mask"), roi["mask"]


def _json_path(path: str, steps: tuple) -> str:
    """path.key[index]... for the steps of _objects."""
    return path + "".join(f"[{s}]" if isinstance(s, int) else f".{s}" for s in steps)


def unknown_keys(d: Any, path: str = "$") -> list[UnknownKey]:
    """Every key of a frame dict outside ClearML's frame schema, with the nearest known key
    (the contents of `meta`, `preview` and other free objects are not checked)."""
    found = []
    for kind, steps, obj in _objects(d):
        known = _KNOWN_KEYS[kind]
        if obj.keys() <= known:  # the usual case, checked at C speed
            continue
        for key in obj:
            if key not in known:
                text = str(key)
                nearest = difflib.get_close_matches(text, known, n=1, cutoff=0.6)
                found.append(UnknownKey(_json_path(path, steps), text, kind, nearest[0] if nearest else None))
    return found


class _KeyReport:
    """Unknown keys of a whole file, warned once per (kind, key) with a count, not once per frame."""

    def __init__(self) -> None:
        self.seen: dict[tuple[str, str], tuple[UnknownKey, int]] = {}

    def add(self, found: list[UnknownKey]) -> None:
        for key in found:
            first, count = self.seen.get((key.kind, key.key), (key, 0))
            self.seen[(key.kind, key.key)] = (first, count + 1)

    def warn(self, stacklevel: int) -> None:
        reported = list(self.seen.values())
        for first, count in reported[:_MAX_KEY_WARNINGS]:
            more = f" (and {count - 1} more {first.kind}s)" if count > 1 else ""
            warnings.warn(first.message() + more, MaskdecWarning, stacklevel=stacklevel + 1)
        if len(reported) > _MAX_KEY_WARNINGS:
            warnings.warn(f"and {len(reported) - _MAX_KEY_WARNINGS} more distinct unknown keys", MaskdecWarning,
                          stacklevel=stacklevel + 1)


# ----------------------------------------------------------------- files

class LoadedFrames(NamedTuple):
    """What `load_frames(path, errors="collect")` returns: the frames that parsed, in file
    order, and one FrameFormatError per line (JSONL) or list element (JSON) that did not."""

    frames: list[Frame]
    errors: list[FrameFormatError]


def _items(path: Union[str, os.PathLike]) -> Iterator[tuple[str, Any]]:
    """(where, parsed object or the FrameFormatError of a bad JSONL line) for each frame of a file."""
    name = os.path.basename(os.fspath(path))
    if os.path.splitext(name)[1].lower() in (".jsonl", ".ndjson"):
        for lineno, obj in json_lines(path, "frames file"):
            yield f"{name} line {lineno}: $", obj
        return
    data = read_json(path, "frames file")
    if isinstance(data, list):
        for i, obj in enumerate(data):
            yield f"{name}: $[{i}]", obj
    else:
        yield f"{name}: $", data


@overload
def load_frames(path: Union[str, os.PathLike], *, errors: Literal["raise"] = "raise",
                strict_keys: bool = False) -> list[Frame]: ...
@overload
def load_frames(path: Union[str, os.PathLike], *, errors: Literal["collect"],
                strict_keys: bool = False) -> LoadedFrames: ...


def load_frames(path: Union[str, os.PathLike], *, errors: Literal["raise", "collect"] = "raise",
                strict_keys: bool = False) -> Union[list[Frame], LoadedFrames]:
    """Read frames from .json (one object or a list) or .jsonl (one object a line).

    Relative media URIs resolve against the folder of `path`. errors="raise" (default):
    the first bad frame raises its FrameFormatError. errors="collect": bad frames (a JSONL
    line that is not JSON or not a valid frame, a bad element of a JSON list) are skipped
    and returned as `LoadedFrames(frames, errors)`, each error naming the file and line or
    list index; a file that cannot be read or is not JSON as a whole still raises.
    Unknown keys (typos) give one MaskdecWarning per distinct key; `strict_keys=True` makes
    each a FrameFormatError of its frame. Lines are read up to MASKDEC_MAX_JSON_LINE_BYTES,
    .json files up to MASKDEC_MAX_JSON_FILE_BYTES (maskdec.limits).
    """
    if errors not in ("raise", "collect"):
        raise OptionError(f"load_frames: errors must be 'raise' or 'collect', got {errors!r}")
    if not isinstance(strict_keys, bool):
        raise OptionError(f"load_frames: strict_keys must be True or False, got {strict_keys!r}")
    collect = errors == "collect"
    if not isinstance(path, (str, os.PathLike)):
        raise OptionError(f"load_frames: expected a file path, got {type(path).__name__} {path!r}")
    try:
        base_dir = os.path.dirname(os.path.realpath(path))
    except ValueError:  # a NUL character: reported by the reader
        base_dir = None
    frames: list[Frame] = []
    bad: list[FrameFormatError] = []
    report = _KeyReport()
    for where, obj in _items(path):
        try:
            if isinstance(obj, FrameFormatError):  # a JSONL line that is not JSON
                raise obj
            found = unknown_keys(obj, where)
            if found and strict_keys:
                raise found[0].error()
            frames.append(Frame._parse(obj, where, base_dir))
            report.add(found)
        except FrameFormatError as exc:
            if not collect:
                raise
            bad.append(exc)
    report.warn(stacklevel=2)
    return LoadedFrames(frames, bad) if collect else frames
