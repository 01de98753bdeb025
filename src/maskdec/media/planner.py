"""The decode planner: any list of frame requests, decoded with as little work as the files allow.

Requests are grouped by file and sorted. Within a file the decoder only moves
forward: it seeks when the next needed frame's keyframe lies ahead of it (or the
frame lies behind it), else it keeps decoding. So each GOP is decoded at most
once per batch, and a late frame never means decoding from the start.
A decoder keeps its place between batches, so sequential access does not seek.
Frames between the wanted ones that no frame refers to are skipped where the
reader allows it (media/skip.py): a wanted frame is never skipped.
"""
from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator, Optional, Protocol, Sequence, Union

import av

from ..errors import MaskdecError, MediaDecodeError
from .index import FrameIndex, TimestampUnit
from .skip import SkipPlan


class Seekable(Protocol):
    """What the decoder needs of an open media file (media.reader.MediaReader is one)."""

    uri: str

    def seek(self, pts: int) -> None: ...

    def decode(self, skip: Optional[SkipPlan] = None) -> Iterator[av.VideoFrame]: ...


class FrameSource(Protocol):
    """An open media file that yields the frames at timestamps (media.reader.MediaReader is one)."""

    def frames_at(self, timestamps: Sequence[int], unit: TimestampUnit = "ms"
                  ) -> Iterator[tuple[int, Union[av.VideoFrame, MaskdecError]]]: ...

__all__ = ["Step", "plan_file", "Decoder", "group_requests", "fetch"]


@dataclass(frozen=True)
class Step:
    """Seek to keyframe `seek` (an index into FrameIndex.key_pts; None: keep decoding forward),
    then pick up `positions` (ascending) as they come."""

    seek: Optional[int]
    positions: tuple[int, ...]


def plan_file(index: FrameIndex, positions: Iterable[int], at: Optional[int] = None) -> list[Step]:
    """Steps that present every requested position of one file in ascending order.

    `at` is the position the decoder presents next (None: unknown, seek first;
    len(index) after the end). Seeks happen only when the frame lies behind the
    decoder or its keyframe lies ahead of the decoder.
    """
    runs: list[tuple[Optional[int], list[int]]] = []
    n = len(index)
    for p in sorted(set(positions)):
        if at is None or at > p or (at < n and index.gop_of(p) > index.gop_of(at)):
            runs.append((index.gop_of(p), [p]))
        elif runs:
            runs[-1][1].append(p)
        else:
            runs.append((None, [p]))
        at = p + 1
    return [Step(seek, tuple(picked)) for seek, picked in runs]


class Decoder:
    """Decodes one open reader's frames at index positions, following `plan_file`.

    `decoded` counts the frames the decoder presented (decoded in full), `skipped` the index
    positions it passed without presenting (left undecoded under `skip`), `seeks` the seeks
    made. With `skip` (a SkipPlan), frames nobody asked for that no frame refers to are
    skipped; should a wanted frame still not come, the decoder stops skipping and retries.
    """

    def __init__(self, reader: Seekable, index: FrameIndex, *, fresh: bool, skip: Optional[SkipPlan] = None) -> None:
        # A proxy: no reference cycle, so a closed or dropped reader frees its frames at once
        # (frames freed later by the garbage collector can hang a forked child inside FFmpeg).
        self.reader = weakref.proxy(reader)
        self.index = index
        self._frames: Optional[Iterator[av.VideoFrame]] = None
        self._at: Optional[int] = 0 if fresh else None  # the position presented next
        self._last: Optional[tuple[int, av.VideoFrame]] = None  # the last frame presented, kept for repeats
        self._shown: Optional[int] = None  # the position presented last since decoding (re)started
        self.skip = skip
        self.decoded = 0
        self.skipped = 0
        self.seeks = 0

    def frames(self, positions: Iterable[int]) -> Iterator[tuple[int, av.VideoFrame]]:
        """Yield (position, frame) for each distinct position, ascending."""
        wanted = sorted(set(positions))
        held = self._last
        to_decode = [p for p in wanted if held is None or p != held[0]]
        if self.skip is not None:
            self._want(to_decode)
        seek_at = {step.positions[0]: step.seek for step in plan_file(self.index, to_decode, self._at)
                   if step.seek is not None}
        for p in wanted:
            if held is not None and p == held[0]:
                yield held
                continue
            if p in seek_at:
                self._seek(seek_at[p])
            yield p, self._forward_to(p)

    def _want(self, positions: list[int]) -> None:
        """Tell the skip plan what this request wants. Frames an earlier request had sent to be
        skipped, ahead of where the decoder stands (a request left unfinished), may never come:
        if this request wants one, it seeks."""
        pts = [self.index.pts[p] for p in positions]
        if self._at is not None and self.skip.sent:
            passed = self.index.pts[min(self._at, len(self.index)) - 1] if self._at else None
            ahead = {t for t in self.skip.sent if passed is None or t > passed}
            self.skip.sent[:] = sorted(ahead)  # those behind the decoder are settled
            if any(t in ahead for t in pts):
                self._at = None
        self.skip.want(pts)

    def release(self) -> None:
        """Drop the decoding state and the frame kept for repeats."""
        self._frames = None
        self._last = None
        self._at = None
        self._shown = None

    def _seek(self, gop: int) -> None:
        # the first GOP: a target before every packet. Some demuxers (MPEG-TS) land on the first
        # keyframe after the packet whose decoding time is the target, which for the presentation
        # time of the first keyframe of a stream with B-frames is the second one.
        self.reader.seek(self.index.key_pts[gop] if gop > 0 else min(0, self.index.key_pts[0]) - 1)
        self.seeks += 1
        self._start()
        self._at = self.index.first_of_gop(gop)
        self._shown = self._at - 1
        self._last = None

    def _start(self) -> None:
        if self.skip is not None:
            self.skip.restart()
        self._frames = self.reader.decode(self.skip)

    def _forward_to(self, p: int) -> av.VideoFrame:
        """Decode forward to position p; if the decoder passes it by (a seek that landed
        late, a frame it would not present), retry from earlier keyframes."""
        gop = self.index.gop_of(p)
        retries = [g for g in dict.fromkeys((gop, gop - 1, 0)) if g >= 0]
        while True:
            frame = self._pull_until(p)
            if frame is not None:
                return frame
            if not retries:
                raise MediaDecodeError(
                    f"{self.reader.uri}: frame {p} (pts {self.index.pts[p]}, {float(self.index.ms(p)):.1f} ms) "
                    f"is in the index but the decoder did not present it")
            if self.skip is not None and self.skip.sent:  # did skipping cost a wanted frame? decode all from now on
                self.skip = None
            self._seek(retries.pop(0))

    def _pull_until(self, p: int) -> Optional[av.VideoFrame]:
        if self._frames is None:
            self._start()
            if self._at is None:
                self._at = 0
            self._shown = self._at - 1
        target = self.index.pts[p]
        for frame in self._frames:
            if frame.pts is None:
                raise MediaDecodeError(f"{self.reader.uri}: frames carry no presentation time")
            self.decoded += 1
            q = self.index.position_of_pts(frame.pts)
            if q is not None:
                if self._shown is not None and q > self._shown + 1:
                    self.skipped += q - self._shown - 1
                self._shown = q
                self._at = q + 1
            if frame.pts == target:
                self._last = (p, frame)
                return frame
            if frame.pts > target:
                return None
        self._at = len(self.index)
        self._frames = None
        return None


def group_requests(requests: Iterable[tuple[str, int]]) -> dict[str, list[int]]:
    """{file: its distinct timestamps, ascending}, files in order of first request."""
    grouped: dict[str, set[int]] = {}
    for uri, ts in requests:
        grouped.setdefault(uri, set()).add(int(ts))
    return {uri: sorted(stamps) for uri, stamps in grouped.items()}


def fetch(requests: Iterable[tuple[str, int]], open_reader: Callable[[str], FrameSource], *,
          unit: TimestampUnit = "ms") -> Iterator[tuple[str, int, Union[av.VideoFrame, MaskdecError]]]:
    """Decode a batch of (file, timestamp) requests: one file after another, each through its
    reader's planner. Yields (file, timestamp, frame or the MaskdecError for it)."""
    for uri, stamps in group_requests(requests).items():
        done: set[int] = set()
        try:
            reader = open_reader(uri)
            for ts, frame in reader.frames_at(stamps, unit):
                done.add(ts)
                yield uri, ts, frame
        except MaskdecError as exc:
            for ts in stamps:
                if ts not in done:
                    yield uri, ts, exc
