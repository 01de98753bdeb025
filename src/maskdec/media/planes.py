"""Mask frames as YUV planes, to map without converting to RGB (zero-copy views)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Union

import av
import numpy as np

from .reader import mask_pixels

#: pixel format -> (chroma shift x, chroma shift y, full range by format)
_PLANAR = {
    "yuv420p": (1, 1, False), "yuvj420p": (1, 1, True),
    "yuv422p": (1, 0, False), "yuvj422p": (1, 0, True),
    "yuv444p": (0, 0, False), "yuvj444p": (0, 0, True),
    "nv12": (1, 1, False),
}
# AVColorSpace values: 1 BT.709, 5 BT.470BG, 6 SMPTE 170M, 9/10 BT.2020; 2 unspecified.
_MATRICES = {1: "bt709", 5: "bt601", 6: "bt601", 9: "bt2020", 10: "bt2020"}
_AVCOL_RANGE_JPEG = 2


@dataclass(frozen=True, eq=False)
class YuvPlanes:
    """The Y, U and V planes of an 8-bit YUV frame, with how to read their colours."""

    y: np.ndarray
    u: np.ndarray
    v: np.ndarray
    shift_x: int
    shift_y: int
    matrix: str  # "bt601", "bt709" or "bt2020"
    full_range: bool
    frame: Any = None  # keeps the decoded buffers alive

    @property
    def shape(self) -> tuple[int, int]:
        return self.y.shape


def _plane(frame: av.VideoFrame, index: int, width: int, height: int) -> np.ndarray:
    plane = frame.planes[index]
    flat = np.frombuffer(plane, np.uint8)
    return flat[: plane.line_size * height].reshape(height, plane.line_size)[:, :width]


def yuv_planes(frame: av.VideoFrame) -> YuvPlanes:
    """Views of a yuv420p/422p/444p (and yuvj*) or nv12 frame's planes."""
    name = frame.format.name
    shift_x, shift_y, full_by_format = _PLANAR[name]
    w, h = frame.width, frame.height
    cw, ch = -(-w >> shift_x) if shift_x else w, -(-h >> shift_y) if shift_y else h
    y = _plane(frame, 0, w, h)
    if name == "nv12":
        uv = _plane(frame, 1, 2 * cw, ch)
        u, v = uv[:, 0::2], uv[:, 1::2]
    else:
        u, v = _plane(frame, 1, cw, ch), _plane(frame, 2, cw, ch)
    matrix = _MATRICES.get(int(frame.colorspace), "bt601")  # untagged: FFmpeg's default, BT.601
    full = full_by_format or int(frame.color_range) == _AVCOL_RANGE_JPEG
    return YuvPlanes(y, u, v, shift_x, shift_y, matrix, full, frame)


def mask_data(frame: av.VideoFrame) -> Union[YuvPlanes, np.ndarray]:
    """YUV planes when the frame's format allows mapping them directly, else pixels."""
    if frame.format.name in _PLANAR:
        return yuv_planes(frame)
    return mask_pixels(frame)
