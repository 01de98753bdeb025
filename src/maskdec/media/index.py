"""Per-file frame index: the presentation time of every presented frame and the keyframes to seek to.

Built once per file, from the container's own index where it is complete
(`stream.index_entries` of MP4/MOV streams without frame reordering), else from
one packet scan (demuxing, not decoding). Either way position 0 is the first
frame that decoding presents (docs/format.md, "Timestamps"): packets an edit list discards are
left out, and the first frame's time is taken from the decoder itself.

Indexes are cached per process and, with `cache_dir`, on disk under a name made
from the file's identity (path, size, mtime_ns; remote files: size and ETag). Each entry
on disk holds that identity and a SHA-256 of its content, and is checked for sense
(ascending times, whole numbers) when read: an entry that is corrupt, edited, or made for
another version of the file is rebuilt, never trusted. `cache_dir` is created when missing;
one that cannot be a folder raises OptionError.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from bisect import bisect_left, bisect_right
from collections import OrderedDict
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Literal, Optional, Protocol, Union

import av

from ..errors import MediaDecodeError, OptionError, TimestampRangeError
from .uri import is_remote, remote_fs

#: How timestamps count: milliseconds (default) or frame numbers.
TimestampUnit = Literal["ms", "index"]


class OpenVideo(Protocol):
    """What indexing needs of an open media file (media.reader.MediaReader is one)."""

    uri: str
    container: Any  # av.container.InputContainer
    stream: Any  # its av.video.stream.VideoStream


__all__ = ["FrameIndex", "TimestampUnit", "OpenVideo", "build_index", "cached_index", "store_index", "file_identity", "clear_memory_cache",
           "check_cache_dir"]

INDEX_VERSION = 2  # 2: entries carry a checksum
_MOV_FORMATS = frozenset({"mov", "mp4"})
_MEMORY: "OrderedDict[tuple, FrameIndex]" = OrderedDict()
_MEMORY_MAX = 4096


@dataclass(frozen=True, eq=False)
class FrameIndex:
    """Presentation times (`pts`, ascending, in `time_base`) of the frames a file presents,
    and the pts of its keyframe packets (`key_pts`, where decoding can start)."""

    uri: str
    time_base: Fraction
    pts: tuple[int, ...]
    key_pts: tuple[int, ...]
    last_duration: int  # of the last frame, in time_base; 0 = unknown (the last gap is used)
    method: str  # "index_entries" or "packets"
    _mid: list = field(init=False, repr=False, compare=False)
    _where: dict = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.pts:
            raise MediaDecodeError(f"{self.uri}: holds no decodable frames")
        num = self.time_base.numerator * 1000
        first = self.pts[0]
        scaled = [(p - first) * num for p in self.pts]  # ms * time_base.denominator, exact integers
        object.__setattr__(self, "_mid", [a + b for a, b in zip(scaled, scaled[1:])])
        object.__setattr__(self, "_where", {p: i for i, p in enumerate(self.pts)})

    def __len__(self) -> int:
        return len(self.pts)

    # ------------------------------------------------------------ time
    def ms(self, position: int) -> Fraction:
        """Presentation time of a position in ms, relative to the first presented frame."""
        return (self.pts[position] - self.pts[0]) * self.time_base * 1000

    def last_step_ms(self) -> Fraction:
        """How long the last frame lasts: its own duration, else the last gap, else 0."""
        if self.last_duration > 0:
            return self.last_duration * self.time_base * 1000
        if len(self.pts) > 1:
            return (self.pts[-1] - self.pts[-2]) * self.time_base * 1000
        return Fraction(0)

    def locate(self, ts: int, unit: TimestampUnit = "ms") -> int:
        """The position a timestamp selects: the nearest presentation time, ties to the earlier
        frame (unit "ms"), or the frame index itself (unit "index"); else TimestampRangeError."""
        n = len(self.pts)
        if unit == "index":
            if 0 <= ts < n:
                return ts
            reason = "it is negative, and positions start at 0 (the first presented frame)" if ts < 0 else \
                f"it holds {n} frames (0 to {n - 1})"
            raise TimestampRangeError(f"{self.uri}: frame index {ts} is out of range: {reason}")
        if ts < 0:
            raise TimestampRangeError(f"{self.uri}: timestamp {ts} is out of range: it is negative, and "
                                      f"positions start at 0 (the first presented frame)")
        if ts > self.ms(n - 1) + self.last_step_ms():
            raise TimestampRangeError(
                f"{self.uri}: timestamp {ts} ms is out of range: its frames span 0 to {float(self.ms(n - 1)):.1f} "
                f"ms (last frame lasts {float(self.last_step_ms()):.1f} ms)")
        # midpoints strictly below ts (both doubled, in ms * denominator) = frames passed
        return bisect_left(self._mid, 2 * ts * self.time_base.denominator)

    # ------------------------------------------------------------ decoding
    def position_of_pts(self, pts: int) -> Optional[int]:
        """The position of the frame presented at `pts`, or None if the index has none there."""
        return self._where.get(pts)

    def gop_of(self, position: int) -> int:
        """Which keyframe (index into key_pts) decoding must start from to present `position`."""
        return max(bisect_right(self.key_pts, self.pts[position]) - 1, 0)

    def first_of_gop(self, gop: int) -> int:
        """The first position presented once decoding starts at keyframe `gop`."""
        return bisect_left(self.pts, self.key_pts[gop]) if gop > 0 else 0

    # ------------------------------------------------------------ storage
    def to_dict(self) -> dict:
        return {"version": INDEX_VERSION, "uri": self.uri, "time_base": [self.time_base.numerator,
                self.time_base.denominator], "pts": list(self.pts), "key_pts": list(self.key_pts),
                "last_duration": self.last_duration, "method": self.method}

    @classmethod
    def from_dict(cls, d: dict) -> "FrameIndex":
        """The index of `to_dict`; ValueError when the dict makes no sense as one."""
        if d.get("version") != INDEX_VERSION or d.get("method") not in ("index_entries", "packets"):
            raise ValueError("not an index of this version")
        num, den = d["time_base"]
        pts, key_pts, last = d["pts"], d["key_pts"], d["last_duration"]
        numbers = [num, den, last, *pts, *key_pts]
        if not all(type(v) is int for v in numbers) or num <= 0 or den <= 0 or last < 0:
            raise ValueError("times must be whole numbers")
        if not pts or not key_pts or any(a >= b for a, b in zip(pts, pts[1:])) \
                or any(a >= b for a, b in zip(key_pts, key_pts[1:])):
            raise ValueError("times must ascend")
        return cls(uri=d["uri"], time_base=Fraction(num, den), pts=tuple(pts), key_pts=tuple(key_pts),
                   last_duration=last, method=d["method"])


# ------------------------------------------------------------------ building

def build_index(reader: OpenVideo) -> FrameIndex:
    """Index the open reader's video stream. Leaves its demuxer at an unknown place:
    whoever decodes next must seek first."""
    try:
        index = _from_index_entries(reader)
        if index is None:
            index = _from_packets(reader)
    except av.FFmpegError as exc:
        raise MediaDecodeError(f"{reader.uri}: indexing failed: {exc}") from None
    return index


def _first_presented(reader: OpenVideo) -> int:
    """The pts of the first frame a fresh decoder presents."""
    for frame in reader.container.decode(reader.stream):
        if frame.pts is None:
            raise MediaDecodeError(f"{reader.uri}: frames carry no presentation time")
        return frame.pts
    raise MediaDecodeError(f"{reader.uri}: holds no decodable frames")


def _from_index_entries(reader: OpenVideo) -> Optional[FrameIndex]:
    """The MP4/MOV sample table, when it lists every frame in presentation order
    (no B-frames: its timestamps are decode times)."""
    stream = reader.stream
    if not _MOV_FORMATS & set(reader.container.format.name.split(",")) or stream.codec_context.has_b_frames:
        return None
    entries = stream.index_entries
    n = len(entries)
    if n == 0 or (stream.frames and stream.frames != n):
        return None
    stamps, keys, shown = [], [], []
    for entry in entries:
        ts = entry.timestamp
        if stamps and ts <= stamps[-1]:
            return None
        stamps.append(ts)
        if entry.is_keyframe:
            keys.append(ts)
        if not entry.is_discard:
            shown.append(ts)
    if not keys or not shown:
        return None
    first = _first_presented(reader)
    if first != shown[0]:  # the table and the decoder disagree: trust one packet scan instead
        reader.container.seek(stamps[0], stream=stream)
        return _from_packets(reader)
    last = 0
    if stream.duration and stream.start_time is not None:
        last = max(stream.start_time + stream.duration - shown[-1], 0)
    return FrameIndex(reader.uri, stream.time_base, tuple(shown), tuple(keys), last, "index_entries")


def _from_packets(reader: OpenVideo) -> FrameIndex:
    """One pass over the stream's packets; the first packets are also decoded, until the
    decoder presents its first frame (position 0)."""
    stream = reader.stream
    shown: dict[int, int] = {}  # pts -> duration, packets not discarded
    keys: list[int] = []
    first: Optional[int] = None

    def feed(packet) -> Optional[int]:
        for frame in packet.decode():
            if frame.pts is None:
                raise MediaDecodeError(f"{reader.uri}: frames carry no presentation time")
            return frame.pts
        return None

    try:
        for packet in reader.container.demux(stream):
            if packet.size:
                if packet.pts is None:
                    raise MediaDecodeError(f"{reader.uri}: frames carry no presentation time")
                if packet.is_keyframe:
                    keys.append(packet.pts)
                if not packet.is_discard:
                    shown[packet.pts] = packet.duration or 0
            if first is None:
                first = feed(packet)
    except av.FFmpegError:
        pass  # a damaged tail: index what came before it, as decoding would
    if first is None:
        raise MediaDecodeError(f"{reader.uri}: holds no decodable frames")
    if first not in shown:
        raise MediaDecodeError(f"{reader.uri}: the first decoded frame (pts {first}) matches no packet")
    pts = tuple(sorted(p for p in shown if p >= first))
    keys = sorted(set(keys)) or [pts[0]]
    return FrameIndex(reader.uri, stream.time_base, pts, tuple(keys), shown[pts[-1]], "packets")


# ------------------------------------------------------------------ caching

def file_identity(uri: str) -> Optional[tuple]:
    """What names this version of the file: (uri, size, mtime_ns) for local files,
    (uri, size, ETag or checksum or mtime) for remote ones; None when unknown."""
    if not is_remote(uri):
        try:
            st = os.stat(uri)
        except OSError:
            return None
        return (uri, st.st_size, st.st_mtime_ns)
    try:
        fs, path = remote_fs(uri)
        info = fs.info(path)
    except Exception:  # no fsspec, no network: no identity, so no caching
        return None
    tag = next((info[k] for k in ("ETag", "etag", "md5Hash", "md5", "crc32c", "LastModified", "mtime", "updated")
                if info.get(k) is not None), None)
    if tag is None:
        return None
    return (uri, info.get("size"), str(tag))


def _cache_path(cache_dir: Union[str, os.PathLike], key: tuple) -> str:
    digest = hashlib.sha256(repr((INDEX_VERSION, av.__version__, key)).encode()).hexdigest()[:32]
    return os.path.join(os.fspath(cache_dir), f"{digest}.json")


def check_cache_dir(cache_dir: Union[str, os.PathLike]) -> str:
    """`cache_dir` as a str, the folder created when missing; OptionError when it cannot be one."""
    try:
        folder = os.fspath(cache_dir)
        os.makedirs(folder, exist_ok=True)
    except (OSError, TypeError, ValueError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise OptionError(f"cache_dir={cache_dir!r} cannot be used as a folder for frame indexes: {reason}") from None
    return folder


def _checksum(key: list, index: dict) -> str:
    body = json.dumps({"key": key, "index": index}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(body.encode()).hexdigest()


def cached_index(uri: str, cache_dir: Union[str, os.PathLike, None] = None) -> Optional[FrameIndex]:
    """The index of this version of the file from the process cache or `cache_dir`, if there
    and sound (its identity matches the file's and its checksum its content)."""
    key = file_identity(uri)
    if key is None:
        return None
    index = _MEMORY.get(key)
    if index is not None:
        _MEMORY.move_to_end(key)
        return index
    if cache_dir is None:
        return None
    try:
        with open(_cache_path(cache_dir, key), encoding="utf-8") as f:
            data = json.load(f)
        want = json.loads(json.dumps(list(key)))
        if data.get("key") != want or data.get("sha256") != _checksum(want, data["index"]):
            return None
        if data["index"].get("uri") != uri:
            return None
        index = FrameIndex.from_dict(data["index"])
    except (OSError, ValueError, KeyError, TypeError, AttributeError, MediaDecodeError, RecursionError):
        return None
    _remember(key, index)
    return index


def store_index(index: FrameIndex, cache_dir: Union[str, os.PathLike, None] = None) -> None:
    """Keep the index in the process cache and, with `cache_dir`, on disk (written atomically,
    with the file's identity and a checksum)."""
    key = file_identity(index.uri)
    if key is None:
        return
    _remember(key, index)
    if cache_dir is None:
        return
    folder = check_cache_dir(cache_dir)
    path = _cache_path(folder, key)
    entry = {"key": json.loads(json.dumps(list(key))), "index": index.to_dict()}
    entry["sha256"] = _checksum(entry["key"], entry["index"])
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=os.path.basename(path) + ".", suffix=".tmp", dir=folder)
        with open(fd, "w", encoding="utf-8") as f:
            json.dump(entry, f)
        os.replace(tmp, path)
    except OSError as exc:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)
        raise OptionError(f"cache_dir={folder!r}: cannot write a frame index there: {exc.strerror or exc}") from None


def _remember(key: tuple, index: FrameIndex) -> None:
    _MEMORY[key] = index
    _MEMORY.move_to_end(key)
    while len(_MEMORY) > _MEMORY_MAX:
        _MEMORY.popitem(last=False)


def clear_memory_cache() -> None:
    """Forget every index cached in this process."""
    _MEMORY.clear()
