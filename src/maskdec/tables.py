"""Palette index tables: every 24-bit pixel (RGB, or YUV code values) to its nearest palette colour.

A table holds, for each of the 2**24 cells, 1 + the index k of the palette colour nearest to
the cell (Euclidean distance in RGB, squared distance <= `radius2`), or 0 when no colour is
that close. Ties between equidistant colours go to the smaller index, so a palette in
canonical (sorted) order gives the same table whatever order its colours were declared in.

The builders cut the cube into blocks and keep, per block, only the colours that can be
nearest to one of its cells (see src/_core/tables.pyx), so their cost follows the cells near
the colours, not cells x colours. The work is split over maskdec.threads.kernel_threads().
"""
from __future__ import annotations

import itertools
import math
from typing import Callable

import numpy as np

from ._core import tables as _tables
from .errors import LabelError, MaskdecError
from .threads import kernel_threads, run_bands

__all__ = ["rgb_index_table", "yuv_index_table"]

#: Kr, Kb of each YUV matrix (as kernels.build_yuv_lut and lut.py use them).
_KR_KB = {"bt601": (0.299, 0.114), "bt709": (0.2126, 0.0722), "bt2020": (0.2627, 0.0593)}

#: Largest squared distance between two RGB colours: a radius2 this large reaches every cell.
_MAX_RADIUS2 = 3 * 255 ** 2
#: Block levels, top first: the block size (U or R, V or G, Y or B) and how few colours
#: a block of that level may have left to visit its cells rather than split (the last always
#: visits). The top level cuts the first axis into 16 slabs, dealt round-robin over the kernel
#: threads. RGB splits until one colour is left (a block inside its radius is filled at once);
#: YUV must visit every cell near a colour anyway (for `dist`), so it stops at one colour whose
#: reach covers the block. Measured on the 2-core VM (bench_tables.py); any sizes are correct.
_RGB_LEVELS = (((16, 64, 64), 0), ((16, 32, 32), 0), ((16, 16, 16), 0), ((8, 8, 8), 0), ((4, 4, 4), 3),
               ((2, 2, 2), 0))
_YUV_LEVELS = (((16, 64, 64), 1), ((16, 32, 32), 1), ((16, 16, 16), 1), ((8, 8, 8), 1), ((4, 4, 4), 3),
               ((2, 2, 2), 0))
_SLACK = 1e-6  # added to every block bound: far above double rounding at these magnitudes


def rgb_index_table(colours: np.ndarray, radius2: int, dtype) -> np.ndarray:
    """The read-only 2**24 table indexed r << 16 | g << 8 | b: 1 + the index k of the colour
    nearest to (r, g, b) with squared distance <= radius2, 0 where none is that close;
    equidistant colours go to the smaller k.

    colours: (n, 3) uint8, in canonical order. dtype: uint8 (n <= 255) or uint16 (n <= 65535).
    """
    colours, radius2, dtype = _check(colours, radius2, dtype)
    table = np.zeros(1 << 24, dtype)
    n = len(colours)
    if n:
        radius2 = min(radius2, _MAX_RADIUS2)
        icolours = colours.astype(np.int32)
        fcolours = colours.astype(np.float64)
        sizes, bounds, few = _levels(_RGB_LEVELS, np.eye(3))
        reach = math.sqrt(radius2)

        def slab(r0: int, r1: int, kept: np.ndarray, d2: np.ndarray) -> None:
            _tables.rgb_slab(icolours, fcolours, radius2, reach, sizes, bounds, few, kept, d2, table, r0, r1)

        _run_slabs(slab, int(sizes[0, 0]), len(sizes), n)
    table.setflags(write=False)
    return table


def yuv_index_table(colours: np.ndarray, radius2: int, matrix: str, full_range: bool, dtype
                    ) -> tuple[np.ndarray, np.ndarray]:
    """(table, dist), read-only 2**24 arrays indexed U << 16 | V << 8 | Y (chroma-major).

    Each YUV triple is converted to RGB as kernels.build_yuv_lut does (`matrix`: bt601,
    bt709 or bt2020; full or limited range; floating point, clipped to 0..255, not rounded).
    table: as rgb_index_table for that RGB value (1 + nearest k within radius2, else 0; ties
    to the smaller k). dist (uint8): ceil(sqrt(squared distance to the nearest colour)),
    exact wherever it is <= cap = max(ceil(sqrt(radius2)), 16) + 1 (and at most 255), 255
    wherever the exact value is above cap. No colours: table all 0, dist all 255.
    """
    colours, radius2, dtype = _check(colours, radius2, dtype)
    if matrix not in _KR_KB:
        raise MaskdecError(f"unknown YUV matrix {matrix!r}: expected one of {', '.join(_KR_KB)}")
    kr, kb = _KR_KB[matrix]
    luma, chroma = _code_values(bool(full_range))
    cap = _distance_cap(radius2)
    radius2 = min(radius2, _MAX_RADIUS2)
    table = np.zeros(1 << 24, dtype)
    dist = np.empty(1 << 24, np.uint8)
    fcolours = colours.astype(np.float64).reshape(-1, 3)
    sizes, bounds, few = _levels(_YUV_LEVELS, _yuv_jacobian(kr, kb, luma, chroma))
    reach = float(min(cap, 442))  # 442 > sqrt(_MAX_RADIUS2): every colour

    def slab(u0: int, u1: int, kept: np.ndarray, d2: np.ndarray) -> None:
        _tables.yuv_slab(fcolours, float(radius2), cap, reach, luma, chroma, kr, kb, sizes, bounds, few,
                         kept, d2, table, dist, u0, u1)

    _run_slabs(slab, int(sizes[0, 0]), len(sizes), len(colours))
    table.setflags(write=False)
    dist.setflags(write=False)
    return table, dist


# ------------------------------------------------------------------ helpers


def _check(colours, radius2, dtype) -> tuple[np.ndarray, int, np.dtype]:
    colours = np.asarray(colours)
    if colours.size == 0:
        colours = colours.reshape(0, 3)
    if colours.ndim != 2 or colours.shape[1] != 3 or colours.dtype != np.uint8:
        raise MaskdecError(f"colours must be an (n, 3) uint8 array, got {colours.shape} {colours.dtype}")
    if isinstance(radius2, (bool, np.bool_)) or not isinstance(radius2, (int, np.integer)) or radius2 < 0:
        raise MaskdecError(f"radius2 must be an integer >= 0, got {radius2!r}")
    try:
        dtype = np.dtype(dtype)
    except TypeError:
        raise MaskdecError(f"dtype must be uint8 or uint16, got {dtype!r}") from None
    if dtype not in (np.uint8, np.uint16):
        raise MaskdecError(f"dtype must be uint8 or uint16, got {dtype}")
    if len(colours) > np.iinfo(dtype).max:
        raise LabelError(f"a palette of {len(colours)} colours does not fit a {dtype} index table "
                         f"(at most {np.iinfo(dtype).max})")
    return np.ascontiguousarray(colours), int(radius2), dtype


def _distance_cap(radius2: int) -> int:
    """The largest exact value of yuv_index_table's `dist`: max(ceil(sqrt(radius2)), 16) + 1."""
    return max(_ceil_sqrt(int(radius2)), 16) + 1


def _ceil_sqrt(x: int) -> int:
    root = math.isqrt(x)
    return root if root * root == x else root + 1


def _code_values(full_range: bool) -> tuple[np.ndarray, np.ndarray]:
    """Normalised Y' and Cb/Cr of each 8-bit code value (as lut.py gives them to build_yuv_lut)."""
    codes = np.arange(256, dtype=np.float64)
    if full_range:
        return codes / 255.0, (codes - 128.0) / 255.0
    return (codes - 16.0) / 219.0, (codes - 128.0) / 224.0


def _yuv_jacobian(kr: float, kb: float, luma: np.ndarray, chroma: np.ndarray) -> np.ndarray:
    """RGB change (rows R, G, B) per code step of U, V and Y (columns), before clipping."""
    kg = 1.0 - kr - kb
    ly, lc = 255.0 * (luma[1] - luma[0]), 255.0 * (chroma[1] - chroma[0])
    cb, cr = 2.0 * (1.0 - kb) * lc, 2.0 * (1.0 - kr) * lc
    return np.array([[0.0, cr, ly],
                     [-kb * cb / kg, -kr * cr / kg, ly],
                     [cb, 0.0, ly]])


def _levels(levels, jacobian: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Block sizes (levels, 3) int32, each level's bound: how far (RGB) a cell's value can be
    from its block centre's, and each level's `few`. The map is linear and clipping does not
    stretch distances, so the farthest corner of the block, mapped, bounds every cell."""
    sizes = np.array([size for size, _ in levels], np.int32)
    few = np.array([few for _, few in levels], np.int32)
    bounds = []
    for size in sizes:
        half = (size - 1) / 2.0
        bounds.append(max(float(np.linalg.norm(jacobian @ (half * np.array(signs))))
                          for signs in itertools.product((-1.0, 1.0), repeat=3)))
    bounds = np.array(bounds) * (1 + 1e-9) + _SLACK
    return sizes, bounds, few


def _run_slabs(slab: Callable[[int, int, np.ndarray, np.ndarray], None], step: int, levels: int, n: int) -> None:
    """slab(c0, c1, kept, d2) for every slab of `step` first-axis codes, dealt round-robin
    over the kernel threads (neighbouring slabs cost alike), each thread with its own scratch."""
    slabs = [(c, c + step) for c in range(0, 256, step)]
    threads = max(1, min(kernel_threads(), len(slabs)))

    def work(first: int, _stop: int, k: int) -> None:
        kept = np.empty((levels + 1, max(n, 1)), np.int32)
        d2 = np.empty(max(n, 1), np.float64)
        for c0, c1 in slabs[first::threads]:
            slab(c0, c1, kept, d2)

    run_bands(work, [(k, k + 1) for k in range(threads)])
