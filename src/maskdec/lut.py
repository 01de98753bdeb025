"""Colour lookup tables and the calls into the Cython kernels.

A table maps every possible pixel value (2**24 RGB colours, 256 or 65536
greys) to the id of the nearest declared colour within `tolerance` (Euclidean
distance in the pixel's own units), or to `ignore_index`. Ties go to the
colour declared first. Tables are built once and cached.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Optional, Sequence

import numpy as np

from ._core import kernels
from .errors import MaskdecError
from .threads import kernel_threads, row_bands, run_bands  # noqa: F401  (re-exported)

__all__ = ["ColourTable", "map_pixels", "DEFAULT_LOSSY_TOLERANCE", "PixelStats"]

#: Tolerance used for lossy masks when the caller gives none (RGB distance).
DEFAULT_LOSSY_TOLERANCE = 60.0
#: YUV pixels farther than this from every declared colour (RGB distance) straddle a
#: class edge inside their chroma block; the YUV kernel then tries the neighbouring chroma.
EDGE_REPAIR_DISTANCE = 16


@dataclass(frozen=True)
class ColourTable:
    """Declared colours of one mask and the label id each maps to.

    `colours` holds (r, g, b) triples, or (v,) for 16-bit greys above 255.
    """

    colours: tuple[tuple[int, ...], ...]
    ids: tuple[int, ...]
    ignore_index: int
    dtype: str = "uint8"

    def __post_init__(self) -> None:
        if len(self.colours) != len(self.ids):
            raise ValueError("colours and ids differ in length")

    def rgb_lut(self, tolerance: float) -> np.ndarray:
        """The 2**24-entry table indexed by r << 16 | g << 8 | b."""
        return _rgb_lut(self, _radius2(tolerance))

    def yuv_lut(self, tolerance: float, matrix: str, full_range: bool) -> np.ndarray:
        """The 2**24-entry table indexed by U << 16 | V << 8 | Y: each YUV triple's
        exact RGB value (by `matrix` and range) goes to its nearest declared colour."""
        return _yuv_lut(self, _radius2(tolerance), matrix, full_range)[0]

    def yuv_distance(self, matrix: str, full_range: bool) -> np.ndarray:
        """Per YUV triple (same indexing), its RGB distance to the nearest declared colour, rounded up."""
        return _yuv_lut(self, 0, matrix, full_range)[1]

    def gray_lut(self, tolerance: float, bits: int) -> np.ndarray:
        """The 2**bits-entry table for grayscale masks."""
        return _gray_lut(self, _radius2(tolerance), bits)


def _radius2(tolerance: float) -> int:
    if tolerance is None or not tolerance >= 0:
        raise MaskdecError(f"tolerance must be a number >= 0, got {tolerance!r}")
    if tolerance * tolerance >= 3 * 65535 ** 2:
        return 3 * 65535 ** 2  # farther than any two pixel values: as good as inf
    # the largest integer r2 with sqrt(r2) <= tolerance (tolerance**2 alone is off by rounding)
    r2 = math.floor(tolerance * tolerance)
    while math.sqrt(r2 + 1) <= tolerance:
        r2 += 1
    while r2 > 0 and math.sqrt(r2) > tolerance:
        r2 -= 1
    return r2


def _empty(table: ColourTable, size: int) -> np.ndarray:
    return np.full(size, table.ignore_index, dtype=table.dtype)


@lru_cache(maxsize=8)
def _rgb_lut(table: ColourTable, radius2: int) -> np.ndarray:
    lut = _empty(table, 1 << 24)
    rgb = [(c, i) for c, i in zip(table.colours, table.ids) if len(c) == 3]
    if rgb:
        colours = np.array([c for c, _ in rgb], dtype=np.uint8).reshape(-1, 3)
        ids = np.array([i for _, i in rgb], dtype=table.dtype)
        best = np.full(1 << 24, 0xFFFFFFFF, dtype=np.uint32)
        kernels.build_rgb_lut(colours, ids, min(radius2, 3 * 255 ** 2), lut, best)
    lut.setflags(write=False)
    return lut


_KR_KB = {"bt601": (0.299, 0.114), "bt709": (0.2126, 0.0722), "bt2020": (0.2627, 0.0593)}


@lru_cache(maxsize=8)
def _yuv_lut(table: ColourTable, radius2: int, matrix: str, full_range: bool) -> tuple[np.ndarray, np.ndarray]:
    kr, kb = _KR_KB[matrix]
    codes = np.arange(256, dtype=np.float64)
    if full_range:
        luma, chroma = codes / 255.0, (codes - 128.0) / 255.0
    else:
        luma, chroma = (codes - 16.0) / 219.0, (codes - 128.0) / 224.0
    lut = _empty(table, 1 << 24)
    dist = np.full(1 << 24, 255, np.uint8)
    rgb = [(c, i) for c, i in zip(table.colours, table.ids) if len(c) == 3]
    if rgb:
        colours = np.array([c for c, _ in rgb], dtype=np.float64).reshape(-1, 3)
        ids = np.array([i for _, i in rgb], dtype=table.dtype)
        kernels.build_yuv_lut(colours, ids, float(min(radius2, 3 * 255 ** 2)), luma, chroma, kr, kb, lut, dist)
    lut.setflags(write=False)
    dist.setflags(write=False)
    return lut, dist


_NO_COARSE = np.zeros(1, np.uint8)


@lru_cache(maxsize=8)
def _yuv_repair_lut(table: ColourTable, radius2: int, matrix: str, full_range: bool
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """For edge repair: the YUV table with cells farther than EDGE_REPAIR_DISTANCE from every
    declared colour marked by a sentinel that no label uses; the 64**3 coarse tables of the
    distance and the label at each cell's centre; the sentinel (-1 with the plain table if none is free)."""
    clean, dist = _yuv_lut(table, radius2, matrix, full_range)
    used = set(table.ids) | {table.ignore_index}
    free = next((v for v in range(np.iinfo(table.dtype).max + 1) if v not in used), None)
    if free is None:
        return clean, _NO_COARSE, clean, -1
    marked = clean.copy()
    marked[dist > EDGE_REPAIR_DISTANCE] = free
    coarse, coarse_label = (np.ascontiguousarray(a.reshape(256, 256, 256)[2::4, 2::4, 2::4]).reshape(-1)
                            for a in (dist, clean))
    for array in (marked, coarse, coarse_label):
        array.setflags(write=False)
    return marked, coarse, coarse_label, free


@lru_cache(maxsize=32)
def _gray_lut(table: ColourTable, radius2: int, bits: int) -> np.ndarray:
    size = 1 << bits
    values = np.arange(size, dtype=np.int64)
    lut = _empty(table, size)
    best = np.full(size, np.iinfo(np.int64).max, dtype=np.int64)
    for colour, label in zip(table.colours, table.ids):
        if bits == 8:
            if len(colour) != 3:
                continue  # a 16-bit grey never occurs in an 8-bit mask
            d2 = sum((values - c) ** 2 for c in colour)
        else:
            if len(colour) == 3 and not colour[0] == colour[1] == colour[2]:
                continue  # a colour never occurs in a grey mask
            d2 = (values - colour[0]) ** 2
        hit = (d2 <= radius2) & (d2 < best)
        best[hit] = d2[hit]
        lut[hit] = label
    lut.setflags(write=False)
    return lut


def map_pixels(pixels: np.ndarray, table: ColourTable, tolerance: float = 0.0,
               out: Optional[np.ndarray] = None, counts: Optional[np.ndarray] = None,
               threads: Optional[int] = None) -> np.ndarray:
    """Map a mask image to label ids: (H, W, 3) uint8 RGB, (H, W) uint8 or uint16 grey.

    Writes into `out` ((H, W), the table's dtype) when given and returns it.
    counts: an int64 array of 3 to which the pass adds the exact, snapped and
    unknown pixels (see PixelStats); the exact ones are counted by the kernel.
    threads: how many threads map a YUV frame (default kernel_threads()).
    """
    total = _check_counts(counts)
    counts = None if total is None else np.zeros(3, np.int64)  # this pass's own tally
    if hasattr(pixels, "matrix"):  # YuvPlanes: map straight from the planes
        out = _map_yuv(pixels, table, tolerance, out, counts=counts, threads=threads)
        return _add_counts(total, counts, out, table)
    pixels = np.asarray(pixels)
    if pixels.ndim == 3 and pixels.shape[2] == 4:
        pixels = pixels[:, :, :3]  # alpha is dropped
    if pixels.ndim == 3 and pixels.shape[2] == 1:
        pixels = pixels[:, :, 0]
    shape = pixels.shape[:2]
    if pixels.ndim == 3 and pixels.shape[2] == 3 and pixels.dtype == np.uint8:
        lut, kind = table.rgb_lut(tolerance), "rgb"
    elif pixels.ndim == 2 and pixels.dtype in (np.uint8, np.uint16):
        lut, kind = table.gray_lut(tolerance, 8 * pixels.dtype.itemsize), "gray"
    else:
        raise MaskdecError(f"cannot map pixels of shape {pixels.shape} and dtype {pixels.dtype}: "
                           "expected (H, W, 3) uint8 or (H, W) uint8/uint16")
    out = _output(out, shape, table)
    exact = None
    if counts is not None:
        exact = _rgb_exact(table) if kind == "rgb" else _gray_exact(table, 8 * pixels.dtype.itemsize)
    if kind == "rgb":
        kernels.map_rgb(pixels, lut, out, exact, counts, table.ignore_index)
    else:
        kernels.map_gray(pixels, lut, out, exact, counts, table.ignore_index)
    return _add_counts(total, counts, out, table)


def _output(out: Optional[np.ndarray], shape: tuple, table: ColourTable) -> np.ndarray:
    if out is None:
        return np.empty(shape, dtype=table.dtype)
    if out.shape != tuple(shape) or out.dtype != np.dtype(table.dtype):
        raise MaskdecError(f"out must be {tuple(shape)} {table.dtype}, got {out.shape} {out.dtype}")
    if not out.flags.writeable:
        raise MaskdecError("out is read-only")
    return out


def _map_yuv(planes, table: ColourTable, tolerance: float, out: Optional[np.ndarray],
             edge_repair: bool = True, counts: Optional[np.ndarray] = None,
             threads: Optional[int] = None) -> np.ndarray:
    out = _output(out, planes.y.shape, table)
    radius2 = _radius2(tolerance)
    if edge_repair and (planes.shift_x or planes.shift_y):
        lut, coarse, coarse_label, sentinel = _yuv_repair_lut(table, radius2, planes.matrix, planes.full_range)
    else:
        lut = _yuv_lut(table, radius2, planes.matrix, planes.full_range)[0]
        coarse, coarse_label, sentinel = _NO_COARSE, lut, -1
    exact = None if counts is None else _yuv_exact(table, radius2, planes.matrix, planes.full_range)
    rows = out if out.strides[1] == out.itemsize else np.empty(out.shape, out.dtype)  # the kernel writes rows
    args = (planes.y, planes.u, planes.v, planes.shift_x, planes.shift_y, lut, coarse_label, coarse, sentinel, rows)
    bands = row_bands(rows.shape[0], align=2, threads=threads)  # even, so chroma rows are not split
    parts = None if counts is None else np.zeros((len(bands), 3), np.int64)  # a row of counts per band
    run_bands(lambda r0, r1, k: kernels.map_yuv(*args, r0, r1, exact, None if parts is None else parts[k],
                                                table.ignore_index), bands)
    if counts is not None:
        counts += parts.sum(axis=0)
    if rows is not out:
        out[...] = rows
    return out


def table_for(decls: Sequence, ids: Sequence[int], ignore_index: int, dtype: np.dtype) -> ColourTable:
    """A ColourTable from declarations (each with `.colour`) and their ids."""
    return ColourTable(tuple(tuple(d.colour) for d in decls), tuple(int(i) for i in ids),
                       int(ignore_index), np.dtype(dtype).name)


# ------------------------------------------------------------------ per-sample statistics

#: A YUV pixel counts as exact when its RGB value lies this close to a declared colour
#: (the rounding of a colour to 8-bit YUV code values moves it by up to 2).
YUV_EXACT_DISTANCE = 2


@dataclass(frozen=True)
class PixelStats:
    """How a mask's pixels met its colour table, a partition of the pixels:
    `unknown` got the ignore_index; `exact` got a label and are a declared colour
    (YUV: within YUV_EXACT_DISTANCE of it); `snapped` got a label by the tolerance
    or by YUV edge repair."""

    exact: int
    snapped: int
    unknown: int

    @property
    def total(self) -> int:
        return self.exact + self.snapped + self.unknown

    def to_dict(self) -> dict[str, int]:
        return {"exact": self.exact, "snapped": self.snapped, "unknown": self.unknown}

    @classmethod
    def from_counts(cls, counts: np.ndarray) -> "PixelStats":
        """From the `counts` array that map_pixels filled."""
        return cls(*(int(c) for c in counts))


def _check_counts(counts: Optional[np.ndarray]) -> Optional[np.ndarray]:
    if counts is None:
        return None
    if not isinstance(counts, np.ndarray) or counts.shape != (3,) or counts.dtype != np.int64 \
            or not counts.flags.writeable or not counts.flags.c_contiguous:
        raise MaskdecError("counts must be a writable int64 array of shape (3,)")
    return counts


def _add_counts(total: Optional[np.ndarray], tally: Optional[np.ndarray], out: np.ndarray,
                table: ColourTable) -> np.ndarray:
    """The kernel put this pass's exact and ignored pixels in tally[:2]; add exact, snapped and unknown to `total`."""
    if total is not None:
        exact, unknown = int(tally[0]), int(tally[1])
        total += (exact, out.size - exact - unknown, unknown)
    return out


def _labelled(table: ColourTable, colour: tuple) -> bool:
    return table.ids[table.colours.index(colour)] != table.ignore_index


@lru_cache(maxsize=8)
def _rgb_exact(table: ColourTable) -> np.ndarray:
    """1 at r << 16 | g << 8 | b of each declared colour that has a label (a byte per key)."""
    exact = np.zeros(1 << 24, np.uint8)  # calloc: untouched pages cost nothing
    for c in table.colours:
        if len(c) == 3 and _labelled(table, c):
            exact[(c[0] << 16) | (c[1] << 8) | c[2]] = 1
    exact.setflags(write=False)
    return exact


@lru_cache(maxsize=32)
def _gray_exact(table: ColourTable, bits: int) -> np.ndarray:
    exact = np.zeros(1 << bits, np.uint8)
    for c in table.colours:
        if (len(c) == 1 or c[0] == c[1] == c[2]) and c[0] < exact.size and _labelled(table, c):
            exact[c[0]] = 1
    exact.setflags(write=False)
    return exact


@lru_cache(maxsize=8)
def _yuv_exact(table: ColourTable, radius2: int, matrix: str, full_range: bool) -> np.ndarray:
    """1 at each YUV triple within YUV_EXACT_DISTANCE of a declared colour and labelled by the table."""
    clean, dist = _yuv_lut(table, radius2, matrix, full_range)
    exact = ((dist <= YUV_EXACT_DISTANCE) & (clean != table.ignore_index)).view(np.uint8)
    exact.setflags(write=False)
    return exact
