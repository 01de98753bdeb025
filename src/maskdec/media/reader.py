"""A media file opened with PyAV: still images and videos, frames chosen by timestamp.

Videos follow docs/format.md, "Timestamps": position 0 is the first presented frame; a
timestamp selects the frame whose real presentation time is nearest (ties to
the earlier frame); beyond the last frame by more than its duration is an error.
Timestamps resolve on the file's frame index (media/index.py) and frames are
decoded by the planner (media/planner.py): forward, seeking over unneeded GOPs.

Pictures are bounded by MASKDEC_MAX_PIXELS (maskdec.limits): FFmpeg gets the limit as its
`max_pixels` both while probing the file and when decoding, so an oversized picture (a PNG
decompression bomb, a video declaring a huge frame) is refused before its pixels are
allocated, and the size is checked as soon as the header tells it.
"""
from __future__ import annotations

import multiprocessing
import os
import struct
from typing import IO, Iterator, Optional, Sequence, Union

import av
import numpy as np

from .. import forksafe  # noqa: F401  (forked children never free inherited FFmpeg objects)
from ..errors import MediaDecodeError, TimestampRangeError
from ..limits import check_pixels, max_pixels
from .ffv1 import SliceCheck
from .index import FrameIndex, TimestampUnit, build_index, cached_index, check_cache_dir, store_index
from .planner import Decoder
from .skip import SkipPlan, can_skip, skip_frames_enabled
from .uri import open_uri


#: Codecs whose pixels come back exactly as encoded.
LOSSLESS_CODECS = frozenset({
    "png", "apng", "ffv1", "rawvideo", "huffyuv", "ffvhuff", "utvideo", "qtrle", "bmp", "tiff",
    "gif", "pam", "ppm", "pgm", "pgmyuv", "targa", "magicyuv", "sgi", "qoi",
})
_STILL_FORMATS = frozenset({"image2", "image2pipe"})
#: FFmpeg's err_detect for every decoder: verify checksums, and fail on detected damage
#: ("explode") rather than hand out error-concealed pixels.
ERROR_DETECTION = "crccheck+bitstream+buffer+explode"


def resolve_threads(threads: Optional[int] = None) -> Optional[int]:
    """Decoder threads to use: `threads` if given; else None (FFmpeg's automatic count)
    in a main process, 1 inside a worker process, where many decoders run side by side."""
    if threads is not None:
        return threads
    return 1 if multiprocessing.parent_process() is not None else None


class MediaReader:
    """One media file: its first video stream, decoded by PyAV.

    Use as a context manager; `frames_at(timestamps)` yields, for each requested
    timestamp in ascending order, the chosen frame (or the range error for it).
    The reader keeps its decoder's place between calls, so later calls asking for
    later frames continue forward. `threads`: decoder threads (see resolve_threads);
    `cache_dir`: a folder for frame indexes kept on disk; `skip_frames`: let the decoder skip
    frames nobody asked for that no frame refers to (media/skip.py; default
    MASKDEC_SKIP_FRAMES, on). `skips` tells whether it does for this file.
    """

    def __init__(self, uri: str, *, threads: Optional[int] = None,
                 cache_dir: Union[str, os.PathLike, None] = None, skip_frames: Optional[bool] = None) -> None:
        self.uri = uri
        self.cache_dir = None if cache_dir is None else check_cache_dir(cache_dir)
        self._file = None
        self._index: Optional[FrameIndex] = None
        self._decoder: Optional[Decoder] = None
        self._still: Optional[av.VideoFrame] = None
        limit = max_pixels()
        # FFmpeg's max_pixels is an int option: beyond INT_MAX it would refuse every file
        ffmpeg_limit = {"max_pixels": str(min(limit, 2 ** 31 - 1))}
        target = open_uri(uri)  # MaskdecErrors of its own: not found, not allowed, not a regular file ...
        if not isinstance(target, str):
            self._file = target
        try:
            problem = _png_problem(target)
            if problem:
                raise MediaDecodeError(f"{uri}: {problem}")
            self.container = av.open(target, "r", options=ffmpeg_limit)
        except (av.FFmpegError, OSError, ValueError, EOFError) as exc:
            self._close_file()
            if isinstance(exc, MediaDecodeError):
                raise
            raise MediaDecodeError(f"{uri}: cannot open as media: {exc}") from None
        if not self.container.streams.video:
            self.close()
            raise MediaDecodeError(f"{uri}: holds no video or image stream")
        self.stream = self.container.streams.video[0]
        ctx = self.stream.codec_context
        if ctx is None:  # FFmpeg has no decoder for it
            self.close()
            raise MediaDecodeError(f"{uri}: no decoder for its video stream")
        if not ctx.width or not ctx.height:  # probing had to decode, and could not within the limit
            self.close()
            raise MediaDecodeError(f"{uri}: FFmpeg cannot tell its picture size: the picture is larger than "
                                   f"the limit of {limit} pixels (MASKDEC_MAX_PIXELS), or the file is damaged")
        problem = check_pixels(ctx.width, ctx.height)
        if problem:
            self.close()
            raise MediaDecodeError(f"{uri}: {problem}")
        # Damaged data is an error, not a concealed picture: decoders verify checksums and
        # stop at the first error they detect (see decode() for frames they flag instead).
        # Pictures past the pixel limit are refused before FFmpeg allocates them.
        ctx.options = {**ctx.options, "err_detect": ERROR_DETECTION, **ffmpeg_limit}
        # FFmpeg's FFV1 decoder conceals a slice whose CRC fails without telling: check them here.
        self._slice_check = SliceCheck.from_extradata(ctx.extradata) if ctx.name == "ffv1" else None
        threads = resolve_threads(threads)
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
        if skip_frames is None:
            skip_frames = skip_frames_enabled()
        self.skips = bool(skip_frames) and not self.is_still and can_skip(self.codec, fmt, ctx.extradata)

    # ------------------------------------------------------------ lifecycle
    def _close_file(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def close(self) -> None:
        if getattr(self, "_decoder", None) is not None:
            self._decoder.release()
            self._decoder = None
        self._still = None
        container = getattr(self, "container", None)
        if container is not None:
            container.close()
            self.container = None
        self._close_file()

    def __enter__(self) -> "MediaReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------ index and decoding
    @property
    def index(self) -> FrameIndex:
        """The frame index of this video (built on first use, cached per file)."""
        if self._index is None:
            self._decoder_for()
        return self._index

    def _decoder_for(self) -> Decoder:
        if self._decoder is None:
            index = cached_index(self.uri, self.cache_dir)
            fresh = index is not None  # nothing demuxed yet: decoding starts at position 0
            if index is None:
                index = build_index(self)
                store_index(index, self.cache_dir)
            self._index = index
            self._decoder = Decoder(self, index, fresh=fresh, skip=SkipPlan() if self.skips else None)
        return self._decoder

    @property
    def decoder(self) -> Decoder:
        """The planner's decoder for this file (its `decoded` and `seeks` count the work done)."""
        return self._decoder_for()

    def seek(self, pts: int) -> None:
        """Move the demuxer to the keyframe at or before `pts` (stream time base); flushes the decoder."""
        try:
            self.container.seek(pts, stream=self.stream, backward=True)
        except av.FFmpegError as exc:
            raise MediaDecodeError(f"{self.uri}: cannot seek to pts {pts}: {exc}") from None

    def decode(self, skip: Optional[SkipPlan] = None) -> Iterator[av.VideoFrame]:
        """Frames from wherever the demuxer is, in presentation order; with `skip`, frames it
        calls discardable are left undecoded where no other frame refers to them."""
        return _decode(self.container, self.stream, self.uri, self._slice_check, skip)  # no reference to the reader

    def frames_at(self, timestamps: Sequence[int], unit: TimestampUnit = "ms"
                  ) -> Iterator[tuple[int, Union[av.VideoFrame, TimestampRangeError]]]:
        """Yield (timestamp, frame) for each distinct timestamp, ascending; a timestamp out of
        range yields its TimestampRangeError. Frames come from the planner: forward decoding
        that seeks over GOPs holding no requested frame."""
        wanted = sorted(set(int(t) for t in timestamps))
        if not wanted:
            return
        if self.is_still:
            if self._still is None:
                self._still = next(self.decode(), None)
                if self._still is None:
                    raise MediaDecodeError(f"{self.uri}: holds no decodable image")
            for ts in wanted:
                yield ts, self._still
            return
        decoder = self._decoder_for()
        located: list[tuple[int, Union[int, TimestampRangeError]]] = []
        for ts in wanted:
            try:
                located.append((ts, self._index.locate(ts, unit)))
            except TimestampRangeError as exc:
                located.append((ts, exc))
        frames = decoder.frames(p for _, p in located if isinstance(p, int))
        position, frame = -1, None
        for ts, where in located:
            if isinstance(where, TimestampRangeError):
                yield ts, where
                continue
            while position != where:
                position, frame = next(frames)
            yield ts, frame


def _decode(container, stream, uri: str, check: Optional[SliceCheck] = None,
            skip: Optional[SkipPlan] = None) -> Iterator[av.VideoFrame]:
    """Decode from the demuxer's place; a frame the decoder flags as corrupt, or (with
    `check`) one whose packet fails its FFV1 slice CRCs, raises MediaDecodeError. With `skip`,
    each packet goes to the decoder with skip_frame NONREF when `skip` calls it discardable
    (FFmpeg then skips it if no frame refers to it), else DEFAULT."""
    damaged: dict[Optional[int], str] = {}  # pts of packets that fail `check` -> what failed
    ctx = stream.codec_context
    skipping = ctx.skip_frame != "DEFAULT"
    if skipping:  # left so by an earlier pass
        ctx.skip_frame = "DEFAULT"
        skipping = False
    try:
        for packet in container.demux(stream):
            if skip is not None:
                drop = packet.size > 0 and skip.discardable(packet.pts)
                if drop != skipping:
                    ctx.skip_frame = "NONREF" if drop else "DEFAULT"  # frame threads copy it per packet
                    skipping = drop
                if drop:
                    skip.sent.append(packet.pts)
            if check is not None and packet.size:
                problem = check.damage(bytes(packet))
                if problem is not None:
                    damaged[packet.pts] = problem
            for frame in packet.decode():
                if frame.is_corrupt:
                    raise MediaDecodeError(f"{uri}: damaged data{_at(frame)}: the decoder flagged the frame as corrupt")
                if damaged and frame.pts in damaged:
                    raise MediaDecodeError(f"{uri}: damaged data{_at(frame)}: FFV1 {damaged[frame.pts]} "
                                           f"(FFmpeg would hand out the previous frame's pixels there)")
                yield frame
    except av.FFmpegError as exc:
        raise MediaDecodeError(f"{uri}: decoding failed: {exc}") from None


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _png_problem(target: Union[str, IO[bytes]]) -> str:
    """Why a PNG's header (IHDR) declares a picture over the pixel limit; "" when it does not,
    or is no PNG. Read before FFmpeg probes the file, which decodes a PNG whole to learn its size."""
    if isinstance(target, str):
        with open(target, "rb") as f:
            head = f.read(24)
    elif hasattr(target, "seek") and hasattr(target, "tell"):
        start = target.tell()
        head = target.read(24)
        target.seek(start)
    else:
        return ""
    if len(head) < 24 or not head.startswith(_PNG_SIGNATURE) or head[12:16] != b"IHDR":
        return ""
    width, height = struct.unpack(">II", head[16:24])
    return check_pixels(width, height)


def _at(frame: av.VideoFrame) -> str:
    """Where a frame is, for messages: its time and pts."""
    return "" if frame.time is None else f" at {frame.time:.3f} s (frame pts {frame.pts})"


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
