"""Writing videos with PyAV (used by the example generator, tests and benchmarks)."""
from __future__ import annotations

import os
from fractions import Fraction
from typing import Iterable, Mapping, Optional, Sequence, Union

import av
import numpy as np


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
) -> None:
    """Encode RGB (H, W, 3) or grey (H, W) uint8 frames into a video file.

    `pts` (in `time_base` units) gives each frame its own presentation time,
    for variable frame rates; otherwise frames are 1/fps apart.
    """
    rate = Fraction(fps)
    with av.open(os.fspath(path), "w", options=dict(container_options or {})) as container:
        stream = container.add_stream(codec, rate=rate)
        stream.pix_fmt = pix_fmt
        stream.options = dict(options or {})
        if time_base is not None:
            stream.codec_context.time_base = time_base
            stream.time_base = time_base
        started = False
        for i, array in enumerate(frames):
            array = np.ascontiguousarray(array)
            if not started:
                stream.height, stream.width = array.shape[:2]
                started = True
            fmt = "rgb24" if array.ndim == 3 else ("gray16le" if array.dtype == np.uint16 else "gray")
            frame = av.VideoFrame.from_ndarray(array, format=fmt)
            if pts is not None:
                frame.pts = int(pts[i])
                frame.time_base = time_base
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
