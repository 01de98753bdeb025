"""Writing videos with PyAV (used by the example generator, tests and benchmarks)."""
from __future__ import annotations

import os
from fractions import Fraction
from typing import Iterable, Mapping, Optional, Sequence, Union

import av
import numpy as np

#: Options every FFV1 stream written here gets unless the caller overrides them: FFV1
#: version 3 with a CRC on every slice, which the reader verifies (media/ffv1.py).
FFV1_OPTIONS = {"level": "3", "slicecrc": "1"}


def write_video(
    path: Union[str, os.PathLike],
    frames: Iterable[np.ndarray],
    *,
    fps: Union[int, Fraction] = 30,
    codec: str = "libx264",
    pix_fmt: str = "yuv420p",
    options: Optional[Mapping[str, str]] = None,
    pts: Optional[Sequence[int]] = None,
    time_base: Optional[Fraction] = None,
    container_options: Optional[Mapping[str, str]] = None,
    matrix: Optional[str] = None,
    full_range: bool = False,
) -> None:
    """Encode RGB (H, W, 3) or grey (H, W) uint8 frames into a video file.

    `pts` (in `time_base` units) gives each frame its own presentation time,
    for variable frame rates; otherwise frames are 1/fps apart. FFV1 gets FFV1_OPTIONS
    (slice CRCs) under `options`. With `matrix`
    ("bt601", "bt709") RGB frames are converted to yuv420p/yuv444p here with
    that matrix and range, and the stream is tagged with both.
    """
    rate = Fraction(fps)
    with av.open(os.fspath(path), "w", options=dict(container_options or {})) as container:
        stream = container.add_stream(codec, rate=rate)
        stream.pix_fmt = pix_fmt
        stream.options = {**(FFV1_OPTIONS if codec == "ffv1" else {}), **(options or {})}
        if time_base is not None:
            stream.codec_context.time_base = time_base
            stream.time_base = time_base
        if matrix is not None:
            stream.codec_context.colorspace = _AVCOL_SPC[matrix]
            stream.codec_context.color_range = 2 if full_range else 1
        started = False
        for i, array in enumerate(frames):
            array = np.ascontiguousarray(array)
            if not started:
                stream.height, stream.width = array.shape[:2]
                started = True
            if matrix is not None:
                frame = av.VideoFrame.from_ndarray(rgb_to_yuv(array, matrix, full_range, pix_fmt), format=pix_fmt)
                frame.colorspace = _AVCOL_SPC[matrix]
                frame.color_range = 2 if full_range else 1
            else:
                fmt = "rgb24" if array.ndim == 3 else ("gray16le" if array.dtype == np.uint16 else "gray")
                frame = av.VideoFrame.from_ndarray(array, format=fmt)
            if pts is not None:
                frame.pts = int(pts[i])
                frame.time_base = time_base
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


_AVCOL_SPC = {"bt709": 1, "bt601": 6}
_KR_KB = {"bt601": (0.299, 0.114), "bt709": (0.2126, 0.0722)}


def rgb_to_yuv(rgb: np.ndarray, matrix: str, full_range: bool, pix_fmt: str = "yuv420p") -> np.ndarray:
    """RGB (H, W, 3) uint8 -> the planes of a yuv420p or yuv444p frame stacked as PyAV
    takes them ((H * 3 // 2, W) or (3, H, W)); 4:2:0 chroma is the 2x2 mean."""
    kr, kb = _KR_KB[matrix]
    f = rgb.astype(np.float64) / 255.0
    y = kr * f[..., 0] + (1 - kr - kb) * f[..., 1] + kb * f[..., 2]
    cb = (f[..., 2] - y) / (2 * (1 - kb))
    cr = (f[..., 0] - y) / (2 * (1 - kr))
    if full_range:
        y, cb, cr = y * 255, cb * 255 + 128, cr * 255 + 128
    else:
        y, cb, cr = 16 + y * 219, 128 + cb * 224, 128 + cr * 224
    if pix_fmt == "yuv444p":
        return np.clip(np.rint(np.stack([y, cb, cr])), 0, 255).astype(np.uint8)
    if pix_fmt != "yuv420p":
        raise ValueError(f"rgb_to_yuv makes yuv420p or yuv444p, not {pix_fmt}")
    h, w = y.shape
    if h % 2 or w % 2:
        raise ValueError("yuv420p needs even sizes")
    sub = [c.reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3)) for c in (cb, cr)]
    planes = [np.clip(np.rint(p), 0, 255).astype(np.uint8) for p in (y, *sub)]
    return np.concatenate([planes[0], planes[1].reshape(h // 4, w), planes[2].reshape(h // 4, w)])
