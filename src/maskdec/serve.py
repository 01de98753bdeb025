"""Decoded frames for an iterator that yields samples in input order, within limits.

Each media file is opened and decoded forward by its own reader, in a decode-ahead thread,
and serves the frames the plan needs from it. Input order may interleave many
files or jump around one of them, so two limits keep the work bounded:

- at most `max_open_readers` files are open at once (each holds a decoder, its
  threads and a decode-ahead thread); opening one more closes the open file
  whose next use lies furthest ahead, and that file reopens (seeking through the
  planner) when its turn comes;
- frames decoded before their turn wait in a buffer of at most
  `max_buffered_bytes` (the caller may store them compacted: mask frames wait as
  run-length palette indices, see runs.py); when it is full, the frame needed
  furthest ahead is dropped, and decoded again (through the planner's seeks)
  when its turn comes.

Frames of a compacted role that the plan does not read straight through (files
interleaved, or a clip visited out of order) are compacted in their file's
decode-ahead thread as they come: such files then decode and map side by side,
and the caller only expands runs. Being small, they are decoded further ahead,
within an equal share per open file of `max_buffered_bytes`.

Both choices use the whole plan's future (Belady's rule), which is known here.
"""
from __future__ import annotations

import heapq
import threading
from collections import deque
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any, Callable, Hashable, Iterator, Optional, Sequence

from .errors import MaskdecError
from .media.prefetch import Prefetch
from .media.reader import MediaReader, TimestampUnit
from .threads import frame_pool

__all__ = ["FrameServer", "DEFAULT_MAX_OPEN_READERS", "DEFAULT_MAX_BUFFERED_BYTES"]

#: Files a streaming iterator keeps open at once.
DEFAULT_MAX_OPEN_READERS = 16
#: Bytes of frames decoded ahead of their turn that a streaming iterator keeps.
DEFAULT_MAX_BUFFERED_BYTES = 64 << 20

FileKey = Hashable  # (role, uri)
_NEVER = float("inf")
#: Frames a file's decode-ahead thread holds ready: decoded frames (megabytes each), or compacted
#: ones (those also within an equal share, per open file, of the bytes buffered ahead).
DECODE_AHEAD = 3
COMPACT_AHEAD = 128
#: Frames of one file being compacted at once (each holds its decoded picture until done).
MAPPING_AHEAD = 2


def frame_bytes(value: Any) -> int:
    """The memory a decoded (and converted, or compacted) frame holds."""
    frame = getattr(value, "frame", None)
    if frame is not None and hasattr(frame, "planes"):  # YuvPlanes: views into the decoder's buffers
        return sum(int(p.buffer_size) for p in frame.planes)
    return int(getattr(value, "nbytes", 0))


class _File:
    """One media file: the positions (in the plan) that need each of its timestamps, and,
    while open, its reader and the decode-ahead thread of its pending timestamps."""

    def __init__(self, uri: str, convert: Callable) -> None:
        self.uri = uri
        self.convert = convert
        self.uses: dict[int, deque] = {}  # timestamp -> plan positions that need it, ascending
        self.positions: deque = deque()  # every position that needs this file, ascending
        self.reader: Optional[MediaReader] = None
        self.frames: Optional[Prefetch] = None
        self.at: Optional[int] = None  # the last timestamp the decode-ahead thread yielded
        self.planned: frozenset = frozenset()  # the timestamps it was started to yield
        self.error: Optional[MaskdecError] = None
        self.lossless = False
        self.straight = False  # its uses are consecutive plan positions, in timestamp order
        self.stopping = threading.Event()  # set to stop the decode-ahead thread

    def next_use(self) -> float:
        return self.positions[0] if self.positions else _NEVER

    def stop(self) -> None:
        if self.frames is not None:
            self.stopping.set()  # its thread stops waiting for frames being mapped
            self.frames.close()  # first stop decoding ahead, then close the file under it
            self.frames = None
        self.at = None
        self.planned = frozenset()

    def close(self) -> None:
        self.stop()
        if self.reader is not None:
            self.reader.close()
            self.reader = None


class _Stopped(Exception):
    """The decode-ahead thread was asked to stop while a frame of it was being mapped."""


def _queued_bytes(item: tuple) -> int:
    """The memory of a (timestamp, frame or error) the decode-ahead thread holds ready."""
    return frame_bytes(item[1])


def _result(job: Future, stopping: threading.Event) -> Any:
    """The job's result, waiting (the pool may be busy with other files' frames) until `stopping`."""
    while True:
        try:
            return job.result(timeout=0.005)
        except FutureTimeout:
            if stopping.is_set():
                job.cancel()
                raise _Stopped from None


def _compacted(compact: Callable, key: FileKey, value: Any, lossless: bool) -> Any:
    """compact(key, value, lossless), or value itself when it cannot be (its sample meets the error)."""
    try:
        return compact(key, value, lossless)
    except MaskdecError:
        return value


def _read_straight(f: _File) -> bool:
    """Whether the plan reads `f` straight through: consecutive positions, timestamps ascending."""
    order = sorted((p, ts) for ts, positions in f.uses.items() for p in positions)
    return all(b[0] == a[0] + 1 and b[1] >= a[1] for a, b in zip(order, order[1:]))


class FrameServer:
    """Serves the frames of a plan: `take(key, ts, position)` for each plan position in
    ascending order, where `needs` listed (key, uri, ts, position) up front."""

    def __init__(self, needs: Sequence[tuple[FileKey, str, int, int]], converters: dict[Any, Callable], *,
                 unit: TimestampUnit, threads: Optional[int], max_open_readers: int = DEFAULT_MAX_OPEN_READERS,
                 max_buffered_bytes: int = DEFAULT_MAX_BUFFERED_BYTES,
                 compact: Optional[dict[Any, Callable[[FileKey, Any, bool], Any]]] = None) -> None:
        # role -> (key, frame, file is lossless) -> the smaller thing the buffer keeps instead; files of
        # these roles are decoded in whole passes, frames before the one asked for waiting compacted
        self._compact = compact or {}
        self._unit = unit
        self._threads = threads
        self._max_open = max_open_readers
        self._max_bytes = max_buffered_bytes
        self._files: dict[FileKey, _File] = {}
        for key, uri, ts, position in sorted(needs, key=lambda n: n[3]):
            f = self._files.get(key)
            if f is None:
                f = self._files[key] = _File(uri, converters[key[0]])
            f.uses.setdefault(ts, deque()).append(position)
            f.positions.append(position)
        for f in self._files.values():
            f.straight = _read_straight(f)
        self._open: dict[FileKey, _File] = {}
        self._opened: set = set()  # files opened so far
        self._buffer: dict[tuple, tuple[Any, int]] = {}  # (key, ts) -> (frame, bytes)
        self._heap: list[tuple[float, int, tuple]] = []  # (-next use, tie, (key, ts)), stale entries skipped
        self._tie = 0
        self.buffered_bytes = 0
        self.peak_buffered_bytes = 0
        self.peak_open = 0
        self.reopened = 0  # files opened again after the open-file limit closed them
        self.passes = 0  # decode passes started (a pass decodes forward; a new one seeks)

    # ------------------------------------------------------------ public
    def lossless(self, key: FileKey) -> bool:
        return self._files[key].lossless

    def take(self, key: FileKey, ts: int, position: int) -> Any:
        """The converted frame of file `key` at `ts` for plan position `position`; raises the
        MaskdecError of that frame or file."""
        f = self._files[key]
        uses = f.uses[ts]
        if not uses or uses[0] != position or f.positions[0] != position:
            raise MaskdecError(f"internal: {f.uri} at {ts} taken out of plan order")
        try:
            found = self._buffer.pop((key, ts), None)
            if found is not None:
                self.buffered_bytes -= found[1]
                value = found[0]
            else:
                value = self._decode(key, f, ts)
        finally:
            uses.popleft()
            f.positions.popleft()
            if not f.positions:
                self._close(key)
        if isinstance(value, MaskdecError):
            raise value
        if uses:  # another sample needs this frame later
            self._offer(key, ts, value)
        return value

    def close(self) -> None:
        for key in list(self._open):
            self._close(key)
        self._buffer.clear()
        self._heap.clear()
        self.buffered_bytes = 0

    # ------------------------------------------------------------ decoding
    def _decode(self, key: FileKey, f: _File, ts: int) -> Any:
        if f.error is not None:
            raise f.error
        try:
            if f.frames is None or ts not in f.planned or (f.at is not None and f.at >= ts):
                self._start(key, f, ts)  # not running, or it will not yield ts (passed, or left out as buffered)
            while True:
                got, value = next(f.frames)
                f.at = got
                if got == ts:
                    return value
                if got > ts:  # cannot happen: the thread yields every pending timestamp in order
                    raise MaskdecError(f"internal: {f.uri} passed {ts} (at {got})")
                if f.uses.get(got):
                    self._offer(key, got, value)
        except StopIteration:
            raise MaskdecError(f"internal: {f.uri} ended before {ts}") from None
        except MaskdecError as exc:
            f.error = exc
            self._close(key)
            raise

    def _start(self, key: FileKey, f: _File, ts: int) -> None:
        """(Re)start the decode-ahead thread at `ts`, over the pending timestamps from there on."""
        f.stop()
        if key not in self._open:
            self._make_room()
            if key in self._opened:
                self.reopened += 1
            self._opened.add(key)
            self._open[key] = f  # opened by its decode-ahead thread (probing a file takes milliseconds)
            self.peak_open = max(self.peak_open, len(self._open))
        pending = [s for s, uses in f.uses.items() if uses and (key, s) not in self._buffer]
        if key[0] not in self._compact:  # frames before ts would not fit: leave them to later passes
            pending = [s for s in pending if s >= ts]
        f.planned = frozenset(pending)
        self.passes += 1
        # a file read straight through hands its frames over as they are (the caller maps them while
        # the next ones decode); otherwise its frames wait their turn, so they are compacted as they
        # come, on the frame pool, and being small they decode further ahead: files interleaved in
        # the plan then decode and map side by side
        compact = None if f.straight else self._compact.get(key[0])
        f.stopping = threading.Event()
        if compact is None:
            f.frames = Prefetch(self._converted(key, f, pending, compact, f.stopping), depth=DECODE_AHEAD)
        else:  # small frames: further ahead, so files queued behind a slow one keep the cores busy
            f.frames = Prefetch(self._converted(key, f, pending, compact, f.stopping), depth=COMPACT_AHEAD,
                                max_bytes=max(1, self._max_bytes // self._max_open), size=_queued_bytes)

    def _decoder_threads(self, key: FileKey, f: _File) -> Optional[int]:
        """The caller's decoder threads; by default one for a file whose frames map on the frame
        pool (the pool and the other files' decoders keep the cores busy: frame threads would only
        add hand-offs), FFmpeg's automatic count otherwise."""
        if self._threads is None and not f.straight and key[0] in self._compact:
            return 1
        return self._threads

    def _converted(self, key: FileKey, f: _File, stamps: list[int], compact: Optional[Callable],
                   stopping: threading.Event) -> Iterator[tuple[int, Any]]:
        """(timestamp, converted frame or its MaskdecError), run in the decode-ahead thread, which
        first opens the file if it is not open (the caller reads f.reader and f.lossless only after
        this thread has handed over a frame, or has been stopped). Frames of a compacted role are
        compacted on the frame pool, at most MAPPING_AHEAD of them at a time, while this thread
        decodes the next ones; they come out in order."""
        if f.reader is None:
            f.reader = MediaReader(f.uri, threads=self._decoder_threads(key, f))
            f.lossless = f.reader.lossless
        reader = f.reader
        jobs: deque = deque()  # (timestamp, future of its compacted frame), oldest first
        try:
            for got, frame in reader.frames_at(stamps, self._unit):
                if isinstance(frame, MaskdecError):
                    while jobs:
                        done, job = jobs.popleft()
                        yield done, _result(job, stopping)
                    yield got, frame
                    continue
                value = f.convert(frame)
                if compact is None:
                    yield got, value
                    continue
                jobs.append((got, frame_pool().submit(_compacted, compact, key, value, reader.lossless)))
                while jobs and (len(jobs) > MAPPING_AHEAD or jobs[0][1].done()):
                    done, job = jobs.popleft()
                    yield done, _result(job, stopping)
            while jobs:
                done, job = jobs.popleft()
                yield done, _result(job, stopping)
        finally:
            for _, job in jobs:  # stopped early: what is still queued need not run
                job.cancel()

    def _make_room(self) -> None:
        """Close open files until one more fits: the one needed furthest ahead first."""
        while len(self._open) >= self._max_open:
            victim = max(self._open, key=lambda k: self._open[k].next_use())
            self._close(victim)

    def _close(self, key: FileKey) -> None:
        f = self._open.pop(key, None) or self._files[key]
        f.close()

    # ------------------------------------------------------------ the buffer
    def _offer(self, key: FileKey, ts: int, value: Any) -> None:
        """Keep a frame for its next use if the budget allows, dropping frames needed later."""
        compact = self._compact.get(key[0])
        if compact is not None and not isinstance(value, MaskdecError):
            try:
                value = compact(key, value, self._files[key].lossless)
            except MaskdecError:
                pass  # kept as it is: its sample meets the error at its turn
        size = frame_bytes(value)
        next_use = self._files[key].uses[ts][0]
        while self.buffered_bytes + size > self._max_bytes and self._heap:
            neg, _, victim = self._heap[0]
            entry = self._buffer.get(victim)
            if entry is None or self._next_use(victim) != -neg:  # stale: taken (and maybe offered again) since
                heapq.heappop(self._heap)
                continue
            if -neg <= next_use:
                return  # everything kept is needed sooner: drop this frame instead
            heapq.heappop(self._heap)
            del self._buffer[victim]
            self.buffered_bytes -= entry[1]
        if self.buffered_bytes + size > self._max_bytes:
            return
        self._buffer[(key, ts)] = (value, size)
        self.buffered_bytes += size
        self.peak_buffered_bytes = max(self.peak_buffered_bytes, self.buffered_bytes)
        self._push((key, ts))

    def _next_use(self, item: tuple) -> float:
        uses = self._files[item[0]].uses.get(item[1])
        return uses[0] if uses else _NEVER

    def _push(self, item: tuple) -> None:
        self._tie += 1
        heapq.heappush(self._heap, (-self._next_use(item), self._tie, item))
