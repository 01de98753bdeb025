"""A media file opened with PyAV: still images and videos, frames chosen by timestamp.

Videos follow FORMAT.md §2: position 0 is the first presented frame; a
timestamp selects the frame whose real presentation time is nearest (ties to
the earlier frame); beyond the last frame by more than its duration is an error.
"""
from __future__ import annotations

from collections import deque
from fractions import Fraction
from typing import Iterator, Literal, Optional, Sequence, Union

import av
import numpy as np

from ..errors import MediaDecodeError, TimestampRangeError
from .uri import open_uri

TimestampUnit = Literal["ms", "index"]

#: Codecs whose pixels come back exactly as encoded.
LOSSLESS_CODECS = frozenset({
    "png", "apng", "ffv1", "rawvideo", "huffyuv", "ffvhuff", "utvideo", "qtrle", "bmp", "tiff",
    "gif", "pam", "ppm", "pgm", "pgmyuv", "targa", "magicyuv", "sgi", "qoi",
})
_STILL_FORMATS = frozenset({"image2", "image2pipe"})


class MediaReader:
    """One media file: its first video stream, decoded forward by PyAV.

    Use as a context manager; `frames_at(timestamps)` yields, for each requested
    timestamp in ascending order, the chosen frame (or the range error for it).
    """

    def __init__(self, uri: str, *, threads: Optional[int] = None) -> None:
        self.uri = uri
        self._file = None
        try:
            target = open_uri(uri)
            if not isinstance(target, str):
                self._file = target
            self.container = av.open(target, "r")
        except (av.FFmpegError, OSError, ValueError, EOFError) as exc:
            if isinstance(exc, FileNotFoundError) and not isinstance(exc, av.FFmpegError):
                raise
            self._close_file()
            raise MediaDecodeError(f"{uri}: cannot open as media: {exc}") from None
        if not self.container.streams.video:
            self.close()
            raise MediaDecodeError(f"{uri}: holds no video or image stream")
        self.stream = self.container.streams.video[0]
        ctx = self.stream.codec_context
        if threads is None:
            ctx.thread_type = "AUTO"
        else:
            ctx.thread_count = threads
            ctx.thread_type = "AUTO" if threads != 1 else "SLICE"
        fmt = self.container.format.name
        self.is_still = fmt in _STILL_FORMATS or fmt.endswith("_pipe")
        self.codec = ctx.name
        pix_fmt = ctx.pix_fmt or ""
        # Exact colours only when the codec is lossless and stores them without a YUV round trip.
        self.lossless = self.codec in LOSSLESS_CODECS and not pix_fmt.startswith(("yuv", "nv"))

    # ------------------------------------------------------------ lifecycle
    def _close_file(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def close(self) -> None:
        container = getattr(self, "container", None)
        if container is not None:
            container.close()
            self.container = None
        self._close_file()

    def __enter__(self) -> "MediaReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------ decoding
    def _decode(self) -> Iterator[av.VideoFrame]:
        try:
            for frame in self.container.decode(self.stream):
                yield frame
        except av.FFmpegError as exc:
            raise MediaDecodeError(f"{self.uri}: decoding failed: {exc}") from None

    def frames_at(self, timestamps: Sequence[int], unit: TimestampUnit = "ms"
                  ) -> Iterator[tuple[int, Union[av.VideoFrame, TimestampRangeError]]]:
        """Yield (timestamp, frame) for each distinct timestamp, ascending, from one
        forward pass; a timestamp out of range yields its TimestampRangeError."""
        wanted = deque(sorted(set(int(t) for t in timestamps)))
        if not wanted:
            return
        if self.is_still:
            frame = next(self._decode(), None)
            if frame is None:
                raise MediaDecodeError(f"{self.uri}: holds no decodable image")
            for ts in wanted:
                yield ts, frame
            return
        while wanted and wanted[0] < 0:  # FORMAT.md §2: negative is an error, not the first frame
            ts = wanted.popleft()
            what = "frame index" if unit == "index" else "timestamp"
            yield ts, TimestampRangeError(f"{self.uri}: {what} {ts} is out of range: it is negative, and "
                                          f"positions start at 0 (the first presented frame)")
        if not wanted:
            return
        if unit == "index":
            yield from self._frames_by_index(wanted)
        else:
            yield from self._frames_by_time(wanted)

    def _frames_by_time(self, wanted: deque) -> Iterator[tuple[int, object]]:
        prev = None
        prev_ms = Fraction(0)
        step_ms: Optional[Fraction] = None
        pts0 = None
        for frame in self._decode():
            if frame.pts is None or frame.time_base is None:
                raise MediaDecodeError(f"{self.uri}: frames carry no presentation time")
            if pts0 is None:
                pts0 = frame.pts
            now_ms = (frame.pts - pts0) * frame.time_base * 1000
            while wanted and wanted[0] <= now_ms:
                ts = wanted.popleft()
                nearer_prev = prev is not None and ts - prev_ms <= now_ms - ts
                yield ts, (prev if nearer_prev else frame)
            if prev is not None and now_ms > prev_ms:
                step_ms = now_ms - prev_ms
            if frame.duration:
                step_ms = frame.duration * frame.time_base * 1000
            prev, prev_ms = frame, now_ms
            if not wanted:
                return
        if prev is None:
            raise MediaDecodeError(f"{self.uri}: holds no decodable frames")
        last_step = step_ms if step_ms is not None else Fraction(0)
        for ts in wanted:
            if ts - prev_ms <= last_step:
                yield ts, prev
            else:
                yield ts, TimestampRangeError(
                    f"{self.uri}: timestamp {ts} ms is out of range: its frames span 0 to "
                    f"{float(prev_ms):.1f} ms (last frame lasts {float(last_step):.1f} ms)")

    def _frames_by_index(self, wanted: deque) -> Iterator[tuple[int, object]]:
        count = 0
        for index, frame in enumerate(self._decode()):
            count = index + 1
            if wanted[0] == index:
                yield wanted.popleft(), frame
                if not wanted:
                    return
        for ts in wanted:
            yield ts, TimestampRangeError(
                f"{self.uri}: frame index {ts} is out of range: it holds {count} frames (0 to {count - 1})")


_GRAY8 = frozenset({"gray", "gray8", "ya8", "monob", "monow"})
_GRAY16 = frozenset({"gray16le", "gray16be", "ya16le", "ya16be", "gray10le", "gray12le", "gray14le",
                     "gray10be", "gray12be", "gray14be"})


def mask_pixels(frame: av.VideoFrame) -> np.ndarray:
    """A mask frame as pixels to map: (H, W) uint8 or uint16 for grey masks,
    (H, W, 3) uint8 RGB otherwise (palettes expanded, alpha dropped)."""
    name = frame.format.name
    if name in ("gray", "gray8"):
        return frame.to_ndarray()
    if name in _GRAY8:
        return frame.to_ndarray(format="gray")
    if name in _GRAY16:
        return frame.to_ndarray(format="gray16le")
    return image_rgb(frame)


def image_rgb(frame: av.VideoFrame) -> np.ndarray:
    """A frame as (H, W, 3) uint8 RGB."""
    return frame.to_ndarray(format="rgb24")
