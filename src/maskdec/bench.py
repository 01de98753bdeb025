"""Timing loops and the plain ways to decode masks: one place for `maskdec bench` and benchmarks/.

Timing: `measure(stages, repeat)` runs every stage once per round, the rounds one after
another (interleaved, so a load change on a shared machine hits every stage alike), and
keeps each run; a `Timing` gives the median rate and the min-max spread of its runs.

Stages: what a user would write with PyAV and numpy, over a list of `FileWork` (which
frames of which files a set of samples uses): demux only, decode only, decode + RGB, and
label maps by a packed-colour numpy lookup table, from PyAV's RGB frames or (when
installed) torchcodec's. Decoders get the thread setting maskdec's readers use.
"""
from __future__ import annotations

import math
import os
import platform
import statistics
import sys
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator, Mapping, Optional, Sequence, Union

import av
import numpy as np

from .lut import ColourTable, Palette
from .media.reader import mask_pixels

__all__ = ["Timing", "measure", "round_sig", "FileWork", "set_threads", "wanted_frames", "demux", "decode", "rgb24",
           "packed_colours", "packed_lut", "numpy_label_map", "BaselineTables", "baseline_label_maps",
           "pyav_pixels", "torchcodec_pixels", "torchcodec_version", "torchcodec_problem", "machine", "versions",
           "machine_line"]


# ------------------------------------------------------------------ timing

#: At most this many repeats of a stage inside one timed run.
MAX_LOOPS = 1000


@dataclass
class Timing:
    """The runs of one stage: (items handled, seconds) each. Rates are items per second."""

    name: str
    runs: list[tuple[int, float]] = field(default_factory=list)

    @property
    def items(self) -> int:
        """Items one timed run handled (the first run's count)."""
        return self.runs[0][0] if self.runs else 0

    @property
    def rates(self) -> list[float]:
        return [n / max(s, 1e-9) for n, s in self.runs]

    @property
    def rate(self) -> float:
        """The median rate of the runs."""
        return statistics.median(self.rates) if self.runs else 0.0

    @property
    def ms_per_item(self) -> float:
        return 1000.0 / self.rate if self.rate else float("inf")

    @property
    def spread(self) -> tuple[float, float]:
        """The slowest and the fastest run's rate."""
        rates = self.rates
        return (min(rates), max(rates)) if rates else (0.0, 0.0)

    def to_dict(self, base: Optional[float] = None) -> dict:
        """rate, ms_per_item, spread (and `ratio` to a `base` rate), 4 significant digits."""
        low, high = self.spread
        out = {"items": self.items, "rate": round_sig(self.rate), "ms_per_item": round_sig(self.ms_per_item),
               "rate_min": round_sig(low), "rate_max": round_sig(high), "runs": len(self.runs),
               "seconds": [round(s, 4) for _, s in self.runs]}
        if base is not None:
            out["ratio"] = round_sig(self.rate / base) if base else None
        return out


def round_sig(value: float) -> float:
    """4 significant digits (reports carry no false precision)."""
    if value == 0 or not math.isfinite(value):
        return value
    return float(f"{value:.4g}")


def measure(stages: Mapping[str, Callable[[], int]], repeat: int = 3, *, warmup: bool = False,
            min_seconds: float = 0.0, max_seconds: Optional[float] = None,
            progress: Optional[Callable[[str], None]] = None) -> dict[str, Timing]:
    """Time every stage `repeat` times, interleaved: round after round, each stage once per
    round, in order. A stage returns how many items (frames, samples) it handled.

    warmup: first run each stage once untimed (files in the page cache, tables built); its
    time then sets how often one timed run repeats the stage, so that a run lasts at least
    `min_seconds` (short stages are otherwise all timer noise). A stage whose warm-up run took
    `max_seconds` or more is timed by that run alone (one slow run says enough).
    `progress(name)` is called once per planned run, warm-up and skipped ones included."""
    loops = dict.fromkeys(stages, 1)
    timings = {name: Timing(name) for name in stages}
    done: set[str] = set()
    if warmup:
        for name, run in stages.items():
            t0 = time.perf_counter()
            items = run()
            elapsed = time.perf_counter() - t0
            if max_seconds is not None and elapsed >= max_seconds:
                timings[name].runs.append((int(items), elapsed))
                done.add(name)
            elif min_seconds > 0:
                loops[name] = max(1, min(MAX_LOOPS, math.ceil(min_seconds / max(elapsed, 1e-6))))
            if progress is not None:
                progress(name)
    for _ in range(repeat):
        for name, run in stages.items():
            if name not in done:
                items = 0
                t0 = time.perf_counter()
                for _ in range(loops[name]):
                    items += run()
                timings[name].runs.append((int(items), time.perf_counter() - t0))
            if progress is not None:
                progress(name)
    return timings


# ------------------------------------------------------------------ the plain ways (PyAV, numpy)

@dataclass(frozen=True)
class FileWork:
    """The frames of one media file a set of samples uses: presentation times `pts` (ascending,
    in the stream's time base; None for a still image), their frame index `positions`, and for
    each, the samples (positions in the plan) that use it."""

    uri: str
    pts: tuple[Optional[int], ...]
    positions: tuple[int, ...]
    samples: tuple[tuple[int, ...], ...]

    @property
    def still(self) -> bool:
        return self.pts == (None,)

    def __len__(self) -> int:
        return len(self.pts)


def set_threads(ctx, threads: Optional[int]) -> None:
    """Decoder threads as maskdec's readers set them: None lets FFmpeg choose (frame and slice threads)."""
    if threads is None:
        ctx.thread_type = "AUTO"
    else:
        ctx.thread_count = threads
        ctx.thread_type = "AUTO" if threads != 1 else "SLICE"


def wanted_frames(work: FileWork, threads: Optional[int] = None) -> Iterator[tuple[int, av.VideoFrame]]:
    """Decode `work.uri` forward from its start; yield (k, frame) for each wanted frame k of
    `work.pts`, stopping after the last one."""
    with av.open(work.uri) as container:
        stream = container.streams.video[0]
        set_threads(stream.codec_context, threads)
        k, n = 0, len(work.pts)
        for frame in container.decode(stream):
            if work.still:
                yield 0, frame
                return
            while k < n and frame.pts > work.pts[k]:  # never presented: skipped, as maskdec would fail it
                k += 1
            if k < n and frame.pts == work.pts[k]:
                yield k, frame
                k += 1
            if k >= n:
                return


def demux(work: Sequence[FileWork]) -> int:
    """Read the packets of each file from its start until every wanted frame's packet has come
    (nothing decoded); returns the wanted frames covered."""
    n = 0
    for w in work:
        with av.open(w.uri) as container:
            stream = container.streams.video[0]
            todo = set(w.pts)
            for packet in container.demux(stream):
                if w.still:
                    break
                todo.discard(packet.pts)
                if not todo:
                    break
        n += len(w)
    return n


def rgb24(frame: av.VideoFrame) -> np.ndarray:
    """PyAV's RGB conversion (what maskdec uses for images)."""
    return frame.to_ndarray(format="rgb24")


def decode(work: Sequence[FileWork], threads: Optional[int] = None,
           convert: Optional[Callable[[av.VideoFrame], object]] = None) -> int:
    """Decode each file forward to its last wanted frame, converting the wanted ones with
    `convert` (none: decode only); returns the wanted frames."""
    n = 0
    for w in work:
        for _, frame in wanted_frames(w, threads):
            if convert is not None:
                convert(frame)
            n += 1
    return n


def packed_colours(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 -> (H, W) uint32 r << 16 | g << 8 | b: the numpy way to key a table."""
    return (rgb[..., 0].astype(np.uint32) << 16) | (rgb[..., 1].astype(np.uint32) << 8) | rgb[..., 2]


def packed_lut(palette: Palette, tolerance: float, bits: int = 24) -> np.ndarray:
    """The numpy baseline's table: each packed colour (bits 24) or grey value (8, 16) -> 1 + the
    position of the nearest palette colour within `tolerance`, or 0 (maskdec's palette rules;
    building it is not timed)."""
    table = ColourTable(palette.colours, tuple(range(1, len(palette) + 1)), 0, palette.dtype.name)
    return table.rgb_lut(tolerance) if bits == 24 else table.gray_lut(tolerance, bits)


def numpy_label_map(pixels: np.ndarray, lut: np.ndarray, remap: Optional[np.ndarray] = None) -> np.ndarray:
    """Label map of RGB (H, W, 3) or grey (H, W) pixels by a packed-colour table, then `remap`
    (palette index -> label id) when given."""
    index = lut[packed_colours(pixels)] if pixels.ndim == 3 else lut[pixels]
    return index if remap is None else remap[index]


class BaselineTables:
    """The tables of the numpy baseline: one packed_lut per (palette, tolerance, pixel kind),
    each sample's remap (palette index -> label id) applied after it."""

    def __init__(self, palettes: Mapping[int, Palette], remaps: Mapping[int, np.ndarray],
                 tolerances: Mapping[int, float]) -> None:
        self.palettes, self.remaps, self.tolerances = palettes, remaps, tolerances
        self._luts: dict[tuple, np.ndarray] = {}

    def label_map(self, sample: int, pixels: np.ndarray) -> np.ndarray:
        bits = 24 if pixels.ndim == 3 else 8 * pixels.dtype.itemsize
        key = (self.palettes[sample], self.tolerances[sample], bits)
        lut = self._luts.get(key)
        if lut is None:
            lut = self._luts[key] = packed_lut(key[0], key[1], bits)
        return numpy_label_map(pixels, lut, self.remaps[sample])


def pyav_pixels(work: Sequence[FileWork], threads: Optional[int] = None
                ) -> Iterator[tuple[FileWork, int, np.ndarray]]:
    """(file, k, pixels) of each wanted mask frame: PyAV's rgb24 (grey masks: grey values)."""
    for w in work:
        for k, frame in wanted_frames(w, threads):
            yield w, k, mask_pixels(frame)


#: Frames torchcodec hands over per call (its batches hold every frame at once).
TORCHCODEC_CHUNK = 16


def torchcodec_version() -> Optional[str]:
    """torchcodec's version when it is installed and loads, else None (see torchcodec_problem)."""
    return None if torchcodec_problem() else getattr(sys.modules["torchcodec"], "__version__", "unknown")


def torchcodec_problem() -> Optional[str]:
    """Why the torchcodec baseline cannot run ("not installed", or the error loading it), or None."""
    if not _importable("torchcodec"):
        return "torchcodec not installed"
    try:
        import torchcodec  # noqa: F401
        from torchcodec.decoders import VideoDecoder  # noqa: F401  (loads its native libraries)
    except Exception as exc:  # noqa: BLE001 - installed, but its libraries (FFmpeg, CUDA) do not load
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return f"torchcodec does not load: {first}"
    return None


def torchcodec_pixels(work: Sequence[FileWork], threads: Optional[int] = None
                      ) -> Iterator[tuple[FileWork, int, np.ndarray]]:
    """(file, k, RGB pixels) of each wanted frame, decoded by torchcodec (by frame index)."""
    from torchcodec.decoders import VideoDecoder

    for w in work:
        decoder = VideoDecoder(w.uri, dimension_order="NHWC", num_ffmpeg_threads=threads or 0)
        for start in range(0, len(w), TORCHCODEC_CHUNK):
            chunk = list(w.positions[start:start + TORCHCODEC_CHUNK])
            batch = decoder.get_frames_at(indices=chunk).data.numpy()
            for j in range(len(chunk)):
                yield w, start + j, batch[j]


def baseline_label_maps(pixels: Iterable[tuple[FileWork, int, np.ndarray]], tables: BaselineTables,
                        keep: bool = False) -> Union[int, dict[int, np.ndarray]]:
    """Label maps of every sample the pixels serve: their count, or with `keep` {sample: label map}."""
    kept: dict[int, np.ndarray] = {}
    n = 0
    for w, k, frame_pixels in pixels:
        for sample in w.samples[k]:
            label_map = tables.label_map(sample, frame_pixels)
            n += 1
            if keep:
                kept[sample] = label_map
    return kept if keep else n


# ------------------------------------------------------------------ the machine

def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_gib() -> Optional[float]:
    try:
        return round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2 ** 30, 1)
    except (ValueError, OSError, AttributeError):
        return None


def machine() -> dict:
    """What a report needs to say about the machine, so two reports compare."""
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"host": platform.node(), "cpu": _cpu_model(), "cores": os.cpu_count(), "usable_cores": usable,
            "memory_gib": _memory_gib(), "system": f"{platform.system()} {platform.release()}",
            "arch": platform.machine()}


def versions() -> dict:
    """Python, maskdec, PyAV and its FFmpeg, numpy, OpenCV; torch and torchcodec when installed."""
    import cv2

    from . import __version__

    libavcodec = av.library_versions.get("libavcodec")
    out = {"python": platform.python_version(), "maskdec": __version__, "pyav": av.__version__,
           "ffmpeg": getattr(av, "ffmpeg_version_info", None),
           "libavcodec": ".".join(map(str, libavcodec)) if libavcodec else None,
           "numpy": np.__version__, "opencv": cv2.__version__, "torch": None, "torchcodec": None}
    if "torch" in sys.modules or _importable("torch"):
        try:
            import torch

            out["torch"] = torch.__version__
        except Exception:  # noqa: BLE001 - a broken install is no torch
            pass
    out["torchcodec"] = torchcodec_version() if _importable("torchcodec") else None
    return out


def _importable(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None


def machine_line(m: Optional[dict] = None) -> str:
    """One line: cores, CPU, memory, system."""
    m = machine() if m is None else m
    memory = f", {m['memory_gib']} GiB" if m.get("memory_gib") else ""
    return f"{m['usable_cores']} of {m['cores']} cores ({m['cpu']}){memory}, {m['system']} {m['arch']}"
