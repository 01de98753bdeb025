"""The report of `maskdec bench`: what was measured, as a plain-text table or as JSON."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

from .bench import Timing, machine_line, round_sig

__all__ = ["FileFacts", "Row", "BenchReport", "REPORT_VERSION"]

#: Bumped when a field of the JSON changes meaning or goes away.
REPORT_VERSION = 1


@dataclass
class FileFacts:
    """One media file of the benchmarked samples: what it is and how far apart its keyframes are."""

    uri: str  # as the frames name it (resolved: an absolute path or a remote URI)
    roles: list[str]  # "mask", "image"
    codec: str
    width: int
    height: int
    pix_fmt: str
    frames: int
    keyframes: int
    mean_gop: float  # frames per keyframe
    max_gop: int  # the most frames from one keyframe to the next (or to the end)
    mean_depth: float  # frames decoded from the keyframe to a benchmarked sample's frame, on average
    b_frames: bool
    lossless: bool
    still: bool
    bytes: int
    index_ms: float  # building its frame index (once per file, before timing)
    name: str = ""  # short name for tables

    def to_dict(self) -> dict:
        return {"uri": self.uri, "roles": self.roles, "codec": self.codec, "width": self.width,
                "height": self.height, "pix_fmt": self.pix_fmt, "frames": self.frames, "keyframes": self.keyframes,
                "mean_gop": round(self.mean_gop, 2), "max_gop": self.max_gop,
                "mean_depth": round(self.mean_depth, 2), "b_frames": self.b_frames,
                "lossless": self.lossless, "still": self.still, "bytes": self.bytes,
                "index_ms": round(self.index_ms, 2)}


@dataclass
class Row:
    """One measured line: a stage, a baseline, a way of random access or of scaling."""

    name: str
    title: str
    unit: str  # "frames" or "samples"
    timing: Optional[Timing] = None
    check: Optional[str] = None  # what the equality check found (baselines)
    equal: Optional[bool] = None
    note: Optional[str] = None  # why there is no timing (not installed, not available)

    def to_dict(self, base: Optional[float], base_name: str = "ratio") -> dict:
        out: dict[str, Any] = {"name": self.name, "title": self.title, "unit": self.unit,
                               "available": self.timing is not None}
        keys = ("items", "rate", "ms_per_item", "rate_min", "rate_max", "runs", "seconds")
        if self.timing is not None:
            d = self.timing.to_dict()
            out.update({k: d[k] for k in keys})
            out[base_name] = round_sig(self.timing.rate / base) if base else None
        else:
            out.update(dict.fromkeys(keys))
            out[base_name] = None
        out.update({"check": self.check, "equal": self.equal, "note": self.note})
        return out


@dataclass
class BenchReport:
    """Everything one `maskdec bench` run measured."""

    frames: str
    settings: dict
    machine: dict
    versions: dict
    samples: int  # samples every stage read
    total_samples: int  # samples in the frames
    files: list[FileFacts] = field(default_factory=list)
    fetch: Optional[dict] = None  # remote files copied once before timing
    stages: list[Row] = field(default_factory=list)
    checks: list[dict] = field(default_factory=list)
    random: list[Row] = field(default_factory=list)
    random_samples: int = 0
    scaling: list[Row] = field(default_factory=list)
    advice: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    # ------------------------------------------------------------ reference rates
    def rate_of(self, rows: Sequence[Row], name: str) -> Optional[float]:
        for row in rows:
            if row.name == name and row.timing is not None:
                return row.timing.rate
        return None

    @property
    def decode_rate(self) -> Optional[float]:
        return self.rate_of(self.stages, "decode")

    @property
    def in_order_rate(self) -> Optional[float]:
        """Whole samples in input order (the reference of random access)."""
        return self.rate_of(self.stages, "samples")

    def _scaling_base(self, row: Row) -> Optional[float]:
        """Each scaling row compares with the first row of its kind (one worker / no workers)."""
        kind = row.name.split(":")[0]
        for other in self.scaling:
            if other.name.split(":")[0] == kind and other.timing is not None:
                return other.timing.rate
        return None

    # ------------------------------------------------------------ JSON
    def to_dict(self) -> dict:
        decode = self.decode_rate
        return {
            "report_version": REPORT_VERSION,
            "frames": self.frames,
            "samples": self.samples,
            "total_samples": self.total_samples,
            "settings": self.settings,
            "machine": self.machine,
            "versions": self.versions,
            "files": [f.to_dict() for f in self.files],
            "fetch": self.fetch,
            "stages": [r.to_dict(decode, "ratio_to_decode_only") for r in self.stages],
            "checks": self.checks,
            "random_access": None if not self.random else {
                "samples": self.random_samples, "batch": self.settings.get("batch"),
                "in_order_rate": None if self.in_order_rate is None else round_sig(self.in_order_rate),
                "rows": [r.to_dict(self.in_order_rate, "ratio_to_in_order") for r in self.random]},
            "scaling": None if not self.scaling else {
                "workers": self.settings.get("workers"),
                "rows": [r.to_dict(self._scaling_base(r), "ratio_to_one") for r in self.scaling]},
            "advice": self.advice,
            "notes": self.notes,
        }

    # ------------------------------------------------------------ text
    def format_text(self) -> str:
        s = self.settings
        threads = "auto (FFmpeg's choice)" if s.get("threads") is None else str(s["threads"])
        v = self.versions
        installed = [f"{name} {v[name]}" for name in ("torch", "torchcodec") if v.get(name)]
        lines = [
            f"maskdec bench: {self.frames}",
            f"  {self.samples} samples (the first of {self.total_samples}), median of {s['repeat']} interleaved runs "
            f"per stage (1 when its first run took {s.get('max_seconds')} s), spread = slowest-fastest run; "
            f"decoder threads {threads}",
            f"  machine: {machine_line(self.machine)}",
            "  versions: " + ", ".join([f"Python {v['python']}", f"maskdec {v['maskdec']}",
                                        f"PyAV {v['pyav']} (FFmpeg {v.get('ffmpeg') or v.get('libavcodec')})",
                                        f"numpy {v['numpy']}", f"OpenCV {v['opencv']}"] + installed),
        ]
        if self.fetch:
            f = self.fetch
            lines.append(f"  remote: {f['files']} files ({f['bytes'] / 2 ** 20:.1f} MiB) fetched once in "
                         f"{f['seconds']:.2f} s ({f['mib_per_s']:.1f} MiB/s); every stage reads the local copies")
        lines += ["", "files (frame index built once per file, before timing; depth: frames decoded from the "
                      "keyframe to a sample's frame, on average):"]
        lines += _table(["file", "role", "codec", "size", "pix_fmt", "frames", "GOP mean", "GOP max", "depth",
                         "B-frames", "index ms"], [_file_cells(f) for f in self.files], text=5)
        lines += [""]
        decode = self.decode_rate
        lines += _table(["stage", "frames/s", "ms/frame", "x decode", "spread, frames/s", "check"],
                        [_cells(r, decode) for r in self.stages], text=1)
        for c in self.checks:
            if c["baseline"] is None or not c["equal"]:  # equal baselines say so in their row
                lines.append(f"  check: {c['detail']}")
        if self.random:
            lines += ["", f"random access ({self.random_samples} random samples with images, or as many as "
                          f"{s.get('max_seconds')} s allow, MaskDataset; x in order: against whole samples in order):"]
            lines += _table(["way", "samples/s", "ms/sample", "x in order", "spread, samples/s", ""],
                            [_cells(r, self.in_order_rate) for r in self.random], text=1)
        if self.scaling:
            lines += ["", f"scaling (--workers {s.get('workers')}; x one: against 1 worker / 0 workers):"]
            lines += _table(["way", "samples/s", "ms/sample", "x one", "spread, samples/s", ""],
                            [_cells(r, self._scaling_base(r)) for r in self.scaling], text=1)
        if self.advice:  # lines that start with spaces (commands) belong to the item above
            lines += ["", "advice:"] + [f"      {a.strip()}" if a.startswith(" ") else f"  - {a}"
                                        for a in self.advice]
        if self.notes:
            lines += ["", "notes:"] + [f"  - {n}" for n in self.notes]
        return "\n".join(lines) + "\n"


def _file_cells(f: FileFacts) -> list[str]:
    video = [f"{f.mean_gop:.1f}", str(f.max_gop), f"{f.mean_depth:.1f}"] if not f.still else ["-", "-", "-"]
    return [f.name, "+".join(f.roles), f.codec, f"{f.width}x{f.height}", f.pix_fmt, str(f.frames), *video,
            "yes" if f.b_frames else "no", "-" if f.still else f"{f.index_ms:.1f}"]


def _num(value: float) -> str:
    if value >= 100:
        return f"{value:.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def _cells(row: Row, base: Optional[float]) -> list[str]:
    if row.timing is None:
        return [row.title, "-", "-", "-", "-", row.note or ""]
    t = row.timing
    low, high = t.spread
    spread = f"{_num(low)}-{_num(high)}" if len(t.runs) > 1 else "1 run"
    ratio = f"{t.rate / base:.2f}" if base else "-"
    check = row.check or ""
    if row.equal is False:
        check = f"MISMATCH: {check}"
    return [row.title, _num(t.rate), _num(t.ms_per_item), ratio, spread, check]


def _table(header: list[str], rows: list[list[str]], text: int) -> list[str]:
    """Columns padded to their widest cell: the first `text` columns and the last one
    left-aligned (names, notes), the others right-aligned (numbers)."""
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    out = []
    for cells in [header] + rows:
        parts = []
        for i, (cell, width) in enumerate(zip(cells, widths)):
            aligned_left = i < text or (i == len(cells) - 1 and header[-1] in ("check", ""))
            parts.append(str(cell).ljust(width) if aligned_left else str(cell).rjust(width))
        out.append("  ".join(parts).rstrip())
    return out


def short_names(uris: Sequence[str]) -> dict[str, str]:
    """Names for tables: local paths relative to their common folder, remote URIs whole."""
    local = {u for u in uris if os.path.isabs(u)}
    base = os.path.commonpath([os.path.dirname(u) for u in local]) if local else ""
    return {u: os.path.relpath(u, base) if u in local and base else u for u in uris}
