"""Mask frames waiting for their turn, kept small: palette-index maps, run-length coded.

A mask frame decoded before its turn (an input that jumps around a clip) is
mapped to palette indices at once, which depend only on the file, not on the
frame that will use it; its runs take a few kilobytes where the decoded
picture takes megabytes. At its turn, one pass writes the sample's labels
straight from the runs.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from ._core import kernels
from .buffers import thread_scratch
from .lut import Palette, map_palette, map_yuv_runs

__all__ = ["IndexRuns"]

#: Runs per row the one-pass encoder has room for (a mask row holds a few; beyond, runs are counted first).
RUNS_PER_ROW = 64


@dataclass(frozen=True, eq=False)
class IndexRuns:
    """A (H, W) palette-index map as runs: row i's runs are row_start[i] <= r < row_start[i + 1],
    run r holding values[r] up to column ends[r] (exclusive)."""

    shape: tuple[int, int]
    values: np.ndarray
    ends: np.ndarray
    row_start: np.ndarray

    @classmethod
    def encode(cls, index: np.ndarray) -> "IndexRuns":
        """The runs of a (H, W) palette-index map: one pass into this thread's scratch (room for
        RUNS_PER_ROW runs a row), else counted first."""
        index = np.ascontiguousarray(index)
        row_start = np.empty(index.shape[0] + 1, np.int64)
        room = max(1, index.shape[0] * RUNS_PER_ROW)
        values = thread_scratch("run_values", (room,), index.dtype)
        ends = thread_scratch("run_ends", (room,), np.uint32)
        n = kernels.encode_runs(index, values, ends, row_start)
        if n >= 0:
            values, ends = values[:n].copy(), ends[:n].copy()
        else:  # busier than masks usually are
            n = kernels.count_runs(index)
            values, ends = np.empty(n, index.dtype), np.empty(n, np.uint32)
            kernels.encode_runs(index, values, ends, row_start)
        return cls((int(index.shape[0]), int(index.shape[1])), values, ends, row_start)

    @classmethod
    def of_pixels(cls, pixels, palette: Palette, tolerance: float) -> "IndexRuns":
        """The runs of a mask frame's palette indices (one thread): YUV planes are mapped straight
        to runs; other pixels (and YUV frames busier than RUNS_PER_ROW) are mapped whole first."""
        shape = tuple(pixels.shape[:2])
        if hasattr(pixels, "matrix") and shape[0] > 0:  # YuvPlanes
            row_start = np.empty(shape[0] + 1, np.int64)
            room = max(1, shape[0] * RUNS_PER_ROW)
            values = thread_scratch("run_values", (room,), palette.dtype)
            ends = thread_scratch("run_ends", (room,), np.uint32)
            n = map_yuv_runs(pixels, palette, palette.identity(), tolerance, values, ends, row_start)
            if n >= 0:
                return cls((int(shape[0]), int(shape[1])), values[:n].copy(), ends[:n].copy(), row_start)
        index = thread_scratch("compact_index", shape, palette.dtype)  # rewritten each frame
        return cls.encode(map_palette(pixels, palette, palette.identity(), tolerance, index, threads=1))

    @property
    def nbytes(self) -> int:
        return int(self.values.nbytes + self.ends.nbytes + self.row_start.nbytes)

    def decode(self, remap: np.ndarray, out: Optional[np.ndarray] = None) -> np.ndarray:
        """out (H, W, remap's dtype; made when None) = remap of each pixel's palette index."""
        if out is None:
            out = np.empty(self.shape, remap.dtype)
        kernels.decode_runs(self.values, self.ends, self.row_start, remap, out)
        return out
