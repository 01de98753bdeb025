"""Colour lookup tables and the calls into the Cython kernels.

Every mask file has a palette: the colours declared for it anywhere, in
canonical (sorted) order. A palette table maps every possible pixel value
(2**24 RGB colours, 256 or 65536 greys, or 2**24 YUV triples) to 1 + the
position of the nearest palette colour within `tolerance` (Euclidean distance
in the pixel's own units; ties to the smaller colour), or to 0. A sample then
takes labels through its own small remap (palette index -> label id), so the
tables depend only on the set of colours, never on which frame declares
which, nor in what order. Tables are built once per palette and cached.
"""
from __future__ import annotations

import itertools
import math
import random
import threading
from dataclasses import dataclass
from collections import OrderedDict
from functools import cached_property, lru_cache
from typing import Iterable, Mapping, NamedTuple, Optional, Sequence, Union

import numpy as np

from . import limits, tables
from ._core import kernels
from ._core import tables as core_tables
from .errors import LabelError, MaskdecError
from .buffers import thread_scratch
from .threads import row_bands, run_bands

__all__ = ["ColourTable", "Palette", "map_pixels", "map_palette", "remap_of", "DEFAULT_LOSSY_TOLERANCE", "PixelStats",
           "MAX_PALETTE_COLOURS"]

#: Tolerance used for lossy masks when the caller gives none (RGB distance).
DEFAULT_LOSSY_TOLERANCE = 60.0
#: YUV pixels farther than this from every palette colour (RGB distance) straddle a
#: class edge inside their chroma block; the YUV kernel then tries the neighbouring chroma.
EDGE_REPAIR_DISTANCE = 16
#: Distinct colours one mask file may have: palette indices are 16-bit, with 0 for "none".
MAX_PALETTE_COLOURS = 65535

Colour = tuple  # (r, g, b), or (v,) for a 16-bit grey above 255


class Palette:
    """The distinct colours of one mask file in canonical order (sorted as tuples):
    palette index k + 1 is `colours[k]`, 0 is "no colour within the tolerance"."""

    __slots__ = ("colours", "_hash", "__dict__")

    def __init__(self, colours: Iterable[Colour]) -> None:
        self.colours: tuple[Colour, ...] = tuple(sorted({tuple(int(v) for v in c) for c in colours}))
        if len(self.colours) > MAX_PALETTE_COLOURS:
            raise LabelError(f"{len(self.colours)} distinct colours; a mask file may have at most "
                             f"{MAX_PALETTE_COLOURS}")
        self._hash = hash(self.colours)

    def __len__(self) -> int:
        return len(self.colours)

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Palette) and (self is other or (self._hash == other._hash
                                                                and self.colours == other.colours))

    def __repr__(self) -> str:
        return f"Palette({len(self.colours)} colours)"

    @property
    def dtype(self) -> np.dtype:
        """The dtype of palette indices: room for n + 1 values (none and the colours)."""
        return np.dtype(np.uint8 if len(self.colours) < 256 else np.uint16)

    @cached_property
    def position(self) -> dict[Colour, int]:
        """Colour -> its palette index (1-based)."""
        return {c: k + 1 for k, c in enumerate(self.colours)}

    def remap(self, labels: Mapping[Colour, int], ignore_index: int, dtype: np.dtype) -> np.ndarray:
        """The label of each palette index (read-only): 0 and colours missing from `labels` get ignore_index."""
        out = np.full(len(self.colours) + 1, ignore_index, np.dtype(dtype))
        position = self.position
        for colour, label in labels.items():
            out[position[colour]] = label
        out.setflags(write=False)
        return out

    def identity(self) -> np.ndarray:
        """The remap that keeps palette indices (for colour-index maps)."""
        return _identity(len(self.colours), self.dtype.name)


@lru_cache(maxsize=64)
def _identity(n: int, dtype: str) -> np.ndarray:
    out = np.arange(n + 1, dtype=dtype)
    out.setflags(write=False)
    return out


@dataclass(frozen=True)
class ColourTable:
    """Declared colours of one mask and the label id each maps to.

    `colours` holds (r, g, b) triples, or (v,) for 16-bit greys above 255. When
    one colour is declared twice, its first declaration counts.
    """

    colours: tuple[tuple[int, ...], ...]
    ids: tuple[int, ...]
    ignore_index: int
    dtype: str = "uint8"

    def __post_init__(self) -> None:
        if len(self.colours) != len(self.ids):
            raise ValueError("colours and ids differ in length")

    @cached_property
    def palette(self) -> Palette:
        return Palette(self.colours)

    @cached_property
    def remap(self) -> np.ndarray:
        """Palette index -> label id over this table's own palette (see Palette.remap)."""
        return remap_of(self.palette, self)

    def rgb_lut(self, tolerance: float) -> np.ndarray:
        """The 2**24-entry label table indexed by r << 16 | g << 8 | b."""
        return self.remap[_rgb_index(self.palette, _radius2(tolerance))]

    def yuv_lut(self, tolerance: float, matrix: str, full_range: bool) -> np.ndarray:
        """The 2**24-entry label table indexed by U << 16 | V << 8 | Y: each YUV triple's
        exact RGB value (by `matrix` and range) goes to its nearest declared colour."""
        return self.remap[_yuv_tables(self.palette, _radius2(tolerance), matrix, full_range).index]

    def yuv_distance(self, matrix: str, full_range: bool) -> np.ndarray:
        """Per YUV triple (same indexing), its RGB distance to the nearest declared colour, rounded up
        (exact up to EDGE_REPAIR_DISTANCE + 1 and within the tolerance; beyond, at least that).
        Built anew at each call (about 20 ms for a few colours): the mapping keeps only what it reads."""
        return _yuv_build(self.palette, 0, matrix, full_range)[1]

    def gray_lut(self, tolerance: float, bits: int) -> np.ndarray:
        """The 2**bits-entry label table for grayscale masks."""
        return self.remap[_gray_index(self.palette, _radius2(tolerance), bits)]


@lru_cache(maxsize=4096)
def remap_of(palette: Palette, table: ColourTable) -> np.ndarray:
    """Palette index -> label id: the table's colours (its first declaration of each) get their
    ids, the palette's other colours the table's ignore_index. The palette holds the table's colours."""
    labels: dict[Colour, int] = {}
    for colour, label in zip(table.colours, table.ids):
        labels.setdefault(tuple(colour), label)
    return palette.remap(labels, table.ignore_index, np.dtype(table.dtype))


def _radius2(tolerance: float) -> int:
    if isinstance(tolerance, bool) or not isinstance(tolerance, (int, float, np.integer, np.floating)) \
            or not tolerance >= 0:
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


def _rgb_colours(palette: Palette) -> tuple[np.ndarray, np.ndarray]:
    """The (r, g, b) colours of a palette as an (n, 3) uint8 array, and their palette indices."""
    picked = [(c, k + 1) for k, c in enumerate(palette.colours) if len(c) == 3]
    colours = np.array([c for c, _ in picked], dtype=np.uint8).reshape(-1, 3)
    return colours, np.array([k for _, k in picked], dtype=palette.dtype)


class _TableCache:
    """Tables by their arguments, within MASKDEC_TABLE_CACHE_BYTES (default 1 GiB: 54 YUV or 64
    RGB palettes of 2**24 cells), so that interleaved mask files with palettes of their own do not
    rebuild tables at every turn. Beyond it, a table among the less recently used half is dropped,
    at random: files taking turns over more palettes than fit would make a least-recently-used
    cache drop each table just before its next use, and rebuild every one every time."""

    def __init__(self, build) -> None:
        self._build = build
        self._tables: OrderedDict = OrderedDict()
        self._victims = random.Random(0)  # the same choices in every run
        self.nbytes = 0
        self.__wrapped__ = build
        # decode-ahead threads map frames too: one build per table, and a consistent order
        self._lock = threading.RLock()

    def __call__(self, *key):
        with self._lock:
            return self._get(key)

    def _get(self, key: tuple):
        found = self._tables.get(key)
        if found is not None:
            self._tables.move_to_end(key)
            return found
        value = self._build(*key)
        size = sum(a.nbytes for a in (value if isinstance(value, tuple) else (value,)))
        budget = limits.table_cache_bytes()
        while self._tables and self.nbytes + size > budget:
            older = list(itertools.islice(self._tables, (len(self._tables) + 1) // 2))
            dropped = self._tables.pop(self._victims.choice(older))
            self.nbytes -= sum(a.nbytes for a in (dropped if isinstance(dropped, tuple) else (dropped,)))
        self._tables[key] = value
        self.nbytes += size
        return value

    def cache_clear(self) -> None:
        with self._lock:
            self._tables.clear()
            self._victims.seed(0)
            self.nbytes = 0


def _cached_tables(build):
    return _TableCache(build)


@_cached_tables
def _rgb_index(palette: Palette, radius2: int) -> np.ndarray:
    """The palette table of RGB pixels (read-only, 2**24 entries)."""
    colours, index = _rgb_colours(palette)
    return _in_palette(tables.rgb_index_table(colours, radius2, palette.dtype), index, palette)


class YuvTables(NamedTuple):
    """A palette's YUV tables, as the kernel reads them (see _yuv_tables)."""

    index: np.ndarray  # 2**24 palette indices, chroma-major (U << 16 | V << 8 | Y)
    coarse: np.ndarray  # 64**3 distances to the nearest colour, at each cell's centre
    coarse_index: np.ndarray  # 64**3 palette indices, at each cell's centre
    far_bits: np.ndarray  # 2**24 bits: farther than EDGE_REPAIR_DISTANCE from every colour


def _yuv_build(palette: Palette, radius2: int, matrix: str, full_range: bool) -> tuple[np.ndarray, np.ndarray]:
    """The palette table of YUV triples (chroma-major) and each triple's distance to the nearest
    colour (exact up to max(tolerance, EDGE_REPAIR_DISTANCE) + 1, see tables.yuv_index_table), built anew."""
    colours, index = _rgb_colours(palette)
    lut, dist = tables.yuv_index_table(colours, radius2, matrix, full_range, palette.dtype)
    return _in_palette(lut, index, palette), dist


@_cached_tables
def _yuv_tables(palette: Palette, radius2: int, matrix: str, full_range: bool) -> YuvTables:
    """The palette table of YUV triples and edge repair's tables made from its distances: the
    64**3 coarse distances and palette indices, and the far bits (2 MiB; all small enough to stay
    in cache). The 16 MiB distance table itself is not kept, so a palette costs the cache about
    19 MiB."""
    index, dist = _yuv_build(palette, radius2, matrix, full_range)
    coarse, coarse_index = (np.ascontiguousarray(a.reshape(256, 256, 256)[2::4, 2::4, 2::4]).reshape(-1)
                            for a in (dist, index))
    far_bits = np.empty(dist.size // 8, np.uint8)  # packed in one pass: no 16 MiB mask in between
    core_tables.pack_above(dist, EDGE_REPAIR_DISTANCE, far_bits)
    for array in (coarse, coarse_index, far_bits):
        array.setflags(write=False)
    return YuvTables(index, coarse, coarse_index, far_bits)


def _in_palette(lut: np.ndarray, index: np.ndarray, palette: Palette) -> np.ndarray:
    """A table over the palette's (r, g, b) colours, renumbered to palette indices when the
    palette also holds 16-bit greys (which no RGB or YUV pixel can be)."""
    if len(index) == len(palette):
        return lut
    renumbered = np.concatenate([np.zeros(1, palette.dtype), index])[lut]
    renumbered.setflags(write=False)
    return renumbered


@lru_cache(maxsize=32)
def _gray_index(palette: Palette, radius2: int, bits: int) -> np.ndarray:
    size = 1 << bits
    values = np.arange(size, dtype=np.int64)
    lut = np.zeros(size, palette.dtype)
    best = np.full(size, np.iinfo(np.int64).max, dtype=np.int64)
    for k, colour in enumerate(palette.colours):
        if bits == 8:
            if len(colour) != 3:
                continue  # a 16-bit grey never occurs in an 8-bit mask
            d2 = sum((values - c) ** 2 for c in colour)
        else:
            if len(colour) == 3 and not colour[0] == colour[1] == colour[2]:
                continue  # a colour never occurs in a grey mask
            d2 = (values - colour[0]) ** 2
        hit = (d2 <= radius2) & (d2 < best)  # strict: on a tie the smaller colour keeps the cell
        best[hit] = d2[hit]
        lut[hit] = k + 1
    lut.setflags(write=False)
    return lut


def map_pixels(pixels: np.ndarray, table: ColourTable, tolerance: float = 0.0,
               out: Optional[np.ndarray] = None, counts: Optional[np.ndarray] = None,
               threads: Optional[int] = None) -> np.ndarray:
    """Map a mask image to label ids: (H, W, 3) uint8 RGB, (H, W) uint8 or uint16 grey,
    or YUV planes (media.planes.YuvPlanes).

    Writes into `out` ((H, W), the table's dtype) when given and returns it.
    counts: an int64 array of 3 to which the pass adds the exact, snapped and
    unknown pixels (see PixelStats); the exact ones are counted by the kernel.
    threads: how many threads map a YUV frame (default kernel_threads()).
    """
    return map_palette(pixels, table.palette, table.remap, tolerance, out, counts=counts, threads=threads)


def map_palette(pixels, palette: Palette, remap: np.ndarray, tolerance: float, out: Optional[np.ndarray] = None,
                *, counts: Optional[np.ndarray] = None, threads: Optional[int] = None,
                edge_repair: bool = True) -> np.ndarray:
    """Map pixels through `palette`'s table and then `remap` (palette index -> label, as
    Palette.remap makes it; Palette.identity() keeps the palette indices). See map_pixels."""
    ignore = int(remap[0])
    total = _check_counts(counts)
    counts = None if total is None else np.zeros(3, np.int64)  # this pass's own tally
    if hasattr(pixels, "matrix"):  # YuvPlanes: map straight from the planes
        out = _map_yuv(pixels, palette, remap, tolerance, out, edge_repair=edge_repair, counts=counts,
                       threads=threads)
        return _add_counts(total, counts, out)
    pixels = np.asarray(pixels)
    if pixels.ndim == 3 and pixels.shape[2] == 4:
        pixels = pixels[:, :, :3]  # alpha is dropped
    if pixels.ndim == 3 and pixels.shape[2] == 1:
        pixels = pixels[:, :, 0]
    shape = pixels.shape[:2]
    radius2 = _radius2(tolerance)
    if pixels.ndim == 3 and pixels.shape[2] == 3 and pixels.dtype == np.uint8:
        lut, kind = _rgb_index(palette, radius2), "rgb"
    elif pixels.ndim == 2 and pixels.dtype in (np.uint8, np.uint16):
        lut, kind = _gray_index(palette, radius2, 8 * pixels.dtype.itemsize), "gray"
    else:
        raise MaskdecError(f"cannot map pixels of shape {pixels.shape} and dtype {pixels.dtype}: "
                           "expected (H, W, 3) uint8 or (H, W) uint8/uint16")
    out = _output(out, shape, remap.dtype)
    exact = None
    if counts is not None:
        exact = _rgb_exact(palette) if kind == "rgb" else _gray_exact(palette, 8 * pixels.dtype.itemsize)
    if kind == "rgb":
        kernels.map_rgb(pixels, lut, remap, out, exact, counts, ignore)
    else:
        kernels.map_gray(pixels, lut, remap, out, exact, counts, ignore)
    return _add_counts(total, counts, out)


def _output(out: Optional[np.ndarray], shape: tuple, dtype: np.dtype) -> np.ndarray:
    if out is None:
        return np.empty(shape, dtype=dtype)
    if not isinstance(out, np.ndarray) or out.shape != tuple(shape) or out.dtype != np.dtype(dtype):
        got = (getattr(out, "shape", None), getattr(out, "dtype", type(out).__name__))
        raise MaskdecError(f"out must be {tuple(shape)} {np.dtype(dtype).name}, got {got[0]} {got[1]}")
    if not out.flags.writeable:
        raise MaskdecError("out is read-only")
    return out


def _kernel_tables(planes, palette: Palette, tolerance: float, edge_repair: bool) -> tuple:
    """The kernel's tables for `planes`: (lut, far_bits, coarse_index, coarse); the last three
    are None without edge repair (asked for, and 2:1 horizontal chroma)."""
    found = _yuv_tables(palette, _radius2(tolerance), planes.matrix, planes.full_range)
    if not (edge_repair and planes.shift_x == 1):
        return found.index, None, None, None
    return found.index, found.far_bits, found.coarse_index, found.coarse


def _repair_scratch_shape(width: int) -> tuple[int, int]:
    """The kernel's edge repair scratch of one band: each pixel row's candidate positions (rows
    4-byte aligned)."""
    return 8, -(-(width + 8) // 4) * 4


def _map_yuv(planes, palette: Palette, remap: np.ndarray, tolerance: float, out: Optional[np.ndarray],
             edge_repair: bool = True, counts: Optional[np.ndarray] = None,
             threads: Optional[int] = None) -> np.ndarray:
    out = _output(out, planes.y.shape, remap.dtype)
    ignore = int(remap[0])
    lut, far_bits, coarse_index, coarse = _kernel_tables(planes, palette, tolerance, edge_repair)
    repair = far_bits is not None
    exact = None if counts is None else _yuv_exact(palette, _radius2(tolerance), planes.matrix, planes.full_range)
    rows = out if out.strides[1] == out.itemsize else np.empty(out.shape, out.dtype)  # the kernel writes rows
    bands = row_bands(rows.shape[0], align=2, threads=threads)  # even, so chroma rows are not split
    scratch = np.empty((len(bands), *_repair_scratch_shape(out.shape[1])), np.uint8) if repair \
        else [None] * len(bands)
    parts = None if counts is None else np.zeros((len(bands), 3), np.int64)  # a row of counts per band
    run_bands(lambda r0, r1, k: kernels.map_yuv(
        planes.y, planes.u, planes.v, planes.shift_x, planes.shift_y, lut, remap, rows, far_bits, coarse_index, coarse,
        repair, scratch[k], r0, r1, exact, None if parts is None else parts[k],
        ignore), bands)
    if counts is not None:
        counts += parts.sum(axis=0)
    if rows is not out:
        out[...] = rows
    return out


def map_yuv_runs(planes, palette: Palette, remap: np.ndarray, tolerance: float, values: np.ndarray,
                 ends: np.ndarray, row_start: np.ndarray, edge_repair: bool = True) -> int:
    """Map YUV planes (one thread) straight to run-length coded labels, as
    kernels.encode_runs codes them (row_start: height + 1 entries): the label map is never
    written out whole. Returns the number of runs, or -1 when `values` and `ends` hold fewer."""
    lut, far_bits, coarse_index, coarse = _kernel_tables(planes, palette, tolerance, edge_repair)
    repair = far_bits is not None
    width = planes.y.shape[1]
    rows = thread_scratch("yuv_run_rows", (2, width), remap.dtype)
    scratch = thread_scratch("yuv_run_repair", _repair_scratch_shape(width), np.uint8) if repair else None
    return kernels.map_yuv(planes.y, planes.u, planes.v, planes.shift_x, planes.shift_y, lut, remap, rows, far_bits,
                           coarse_index, coarse, repair, scratch, run_values=values, run_ends=ends,
                           run_rows=row_start)


def table_for(decls: Sequence, ids: Sequence[int], ignore_index: int, dtype: Union[np.dtype, str]) -> ColourTable:
    """A ColourTable from declarations (each with `.colour`) and their ids."""
    return ColourTable(tuple(tuple(d.colour) for d in decls), tuple(int(i) for i in ids),
                       int(ignore_index), dtype if isinstance(dtype, str) else np.dtype(dtype).name)


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


def _add_counts(total: Optional[np.ndarray], tally: Optional[np.ndarray], out: np.ndarray) -> np.ndarray:
    """The kernel put this pass's exact and ignored pixels in tally[:2]; add exact, snapped and unknown to `total`."""
    if total is not None:
        exact, unknown = int(tally[0]), int(tally[1])
        total += (exact, out.size - exact - unknown, unknown)
    return out


@lru_cache(maxsize=8)
def _rgb_exact(palette: Palette) -> np.ndarray:
    """1 at r << 16 | g << 8 | b of each palette colour (a byte per key); the kernel counts
    a pixel there as exact when its label is not the ignore index."""
    exact = np.zeros(1 << 24, np.uint8)  # calloc: untouched pages cost nothing
    for c in palette.colours:
        if len(c) == 3:
            exact[(c[0] << 16) | (c[1] << 8) | c[2]] = 1
    exact.setflags(write=False)
    return exact


@lru_cache(maxsize=32)
def _gray_exact(palette: Palette, bits: int) -> np.ndarray:
    exact = np.zeros(1 << bits, np.uint8)
    for c in palette.colours:
        if (len(c) == 1 or c[0] == c[1] == c[2]) and c[0] < exact.size:
            exact[c[0]] = 1
    exact.setflags(write=False)
    return exact


@lru_cache(maxsize=8)
def _yuv_exact(palette: Palette, radius2: int, matrix: str, full_range: bool) -> np.ndarray:
    """1 at each YUV triple within YUV_EXACT_DISTANCE of a palette colour."""
    clean, dist = _yuv_build(palette, radius2, matrix, full_range)
    exact = ((dist <= YUV_EXACT_DISTANCE) & (clean != 0)).view(np.uint8)
    exact.setflags(write=False)
    return exact
