"""The decoding options, defined and checked in one place.

`iter_samples`, `MaskDataset`, `iter_roi_samples`, the torch datasets and
`export` all take these keywords; each checks them through `Options.of`, so a
misspelt or mistyped option is a MaskdecError that names it.
"""
from __future__ import annotations

import difflib
import numbers
import os
from dataclasses import dataclass, fields
from typing import Any, Mapping, Optional, Sequence, Union

from .errors import MaskdecError, OptionError  # noqa: F401  (OptionError: one class for options and settings)
from .serve import DEFAULT_MAX_BUFFERED_BYTES, DEFAULT_MAX_OPEN_READERS

__all__ = ["Options", "OptionError"]


MaskLabelsArg = Union[str, os.PathLike, Mapping, Sequence, None]


@dataclass(frozen=True)
class Options:
    """What every sample source accepts (see README, "Options").

    labels: explicit {name: id}; without it ids are the sorted class names.
    tolerance: RGB distance within which a colour snaps to the nearest palette colour;
        None = exact for lossless masks, DEFAULT_LOSSY_TOLERANCE otherwise.
    images: decode source images (False: `.image` is None).
    ignore_index: the label of pixels that match no declared colour.
    mask_labels: dataset-level colour declarations (docs/format.md), a file or an object.
    strict: an ROI whose mask is ambiguous is an error (else a warning, and it is skipped).
    strict_sizes: a mask whose size differs from its image is an error (else resized).
    strict_keys: an unknown key in a frame is an error (else a warning).
    timestamp_unit: "ms" (default) or "index" (timestamps are frame numbers).
    threads: decoder threads per file (None: FFmpeg's choice; 1 in worker processes).
    yuv: map YUV mask videos straight from their planes (False: through RGB).
    instances: also make `.instance_map` and per-ROI views from the same kernel run.
    stats: count exact / snapped / unknown pixels into `.stats`.
    label_maps: False skips them (`.label_map` is None), for per-ROI views alone.
    max_open_readers: media files open at once per iterator or process.
    max_buffered_bytes: bytes of frames decoded ahead of their turn that a streaming
        iterator keeps; beyond it, frames are decoded again when their turn comes.
    cache_dir: a folder where frame indexes are kept across runs.
    """

    labels: Optional[Mapping[str, int]] = None
    tolerance: Optional[float] = None
    images: bool = True
    ignore_index: int = 255
    mask_labels: MaskLabelsArg = None
    strict: bool = True
    strict_sizes: bool = False
    strict_keys: bool = False
    timestamp_unit: str = "ms"
    threads: Optional[int] = None
    yuv: bool = True
    instances: bool = False
    stats: bool = False
    label_maps: bool = True
    max_open_readers: int = DEFAULT_MAX_OPEN_READERS
    max_buffered_bytes: int = DEFAULT_MAX_BUFFERED_BYTES
    cache_dir: Union[str, os.PathLike, None] = None

    @classmethod
    def of(cls, options: Mapping[str, Any]) -> "Options":
        """Options from keywords; an unknown name is an OptionError naming the nearest known one."""
        known = {f.name for f in fields(cls)}
        for name in options:
            if name not in known:
                near = difflib.get_close_matches(name, sorted(known), n=1)
                hint = f" (did you mean {near[0]!r}?)" if near else ""
                raise OptionError(f"unknown option {name!r}{hint}")
        return cls(**options)

    def replace(self, **changes: Any) -> "Options":
        return Options.of({**self.as_dict(), **changes})

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def __post_init__(self) -> None:
        for name in ("images", "strict", "strict_sizes", "strict_keys", "yuv", "instances", "stats", "label_maps"):
            if not isinstance(getattr(self, name), bool):
                raise OptionError(f"option {name!r} must be True or False, got {getattr(self, name)!r}")
        _check_labels(self.labels)
        if self.tolerance is not None:
            if isinstance(self.tolerance, bool) or not isinstance(self.tolerance, numbers.Real) \
                    or not self.tolerance >= 0:
                raise OptionError(f"option 'tolerance' must be a number >= 0 or None, got {self.tolerance!r}")
        _check_int("ignore_index", self.ignore_index, 0, 65535)
        if not isinstance(self.timestamp_unit, str) or self.timestamp_unit not in ("ms", "index"):
            raise OptionError(f"option 'timestamp_unit' must be 'ms' or 'index', got {self.timestamp_unit!r}")
        if self.threads is not None:
            _check_int("threads", self.threads, 1, 1024)
        _check_int("max_open_readers", self.max_open_readers, 1, 1 << 20)
        _check_int("max_buffered_bytes", self.max_buffered_bytes, 0, 1 << 62)
        if self.mask_labels is not None and not isinstance(self.mask_labels, (str, os.PathLike, Mapping, list,
                                                                              tuple)):
            raise OptionError("option 'mask_labels' must be a path, a mapping or a list, "
                              f"got {type(self.mask_labels).__name__}")
        if self.cache_dir is not None and not isinstance(self.cache_dir, (str, os.PathLike)):
            raise OptionError(f"option 'cache_dir' must be a path, got {type(self.cache_dir).__name__}")


def _check_int(name: str, value: Any, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or not low <= value <= high:
        raise OptionError(f"option {name!r} must be an integer from {low} to {high}, got {value!r}")


def _check_labels(labels: Any) -> None:
    if labels is None:
        return
    if not isinstance(labels, Mapping):
        raise OptionError("option 'labels' must be a mapping {name: id}, got "
                          f"{type(labels).__name__}")
    for name, value in labels.items():
        if not isinstance(name, str):
            raise OptionError(f"option 'labels': names must be strings, got {name!r}")
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise OptionError(f"option 'labels': the id of {name!r} must be an integer, got {value!r}")
