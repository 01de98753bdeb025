"""`maskdec inspect`: what a dataset's media and masks really hold.

Per media file its container facts (duration, fps, size, codec, pixel
format); the label table; and per mask file the colours actually present
against those declared. A colour within the tolerance of a declared one is
*snapped* (a lossy codec's drift, measured); anything farther is
*undeclared*, and undeclared colours are clustered (a lossy codec smears one
wrong colour into many near ones) and reported with their pixel share.
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from typing import Mapping, Optional, Sequence, Union

import numpy as np

from .errors import MaskdecError
from .lut import DEFAULT_LOSSY_TOLERANCE
from .media.reader import MediaReader, mask_pixels
from .media.uri import resolve_uri
from .samples import FramesArg, SampleRequest, _as_frames, plan_samples

__all__ = ["MediaInfo", "ColourCluster", "MaskReport", "InspectReport", "inspect_frames", "media_info"]

#: At most this many undeclared clusters are listed per mask file; the rest are summed as "other".
MAX_CLUSTERS = 20


@dataclass
class MediaInfo:
    """Container facts of one media file (None where the container does not say)."""

    uri: str
    role: str  # "source", "mask" or "source+mask"
    kind: Optional[str] = None  # "video" or "image"
    codec: Optional[str] = None
    pix_fmt: Optional[str] = None
    width: Optional[int] = None
    height: Optional[int] = None
    fps: Optional[float] = None
    duration: Optional[float] = None  # seconds
    frames: Optional[int] = None
    lossless: Optional[bool] = None
    error: Optional[str] = None


@dataclass
class ColourCluster:
    """Undeclared colours around `colour` (the most frequent of them), within the cluster radius."""

    colour: list[int]
    pixels: int
    share: float  # of the mask file's inspected pixels
    colours: int  # distinct colours in the cluster
    nearest: Optional[list[int]]  # the nearest declared colour
    nearest_name: Optional[str]
    distance: Optional[float]
    frames: list[int]  # frame indices where it occurs (at most 20)


@dataclass
class MaskReport:
    """The colours of one mask file against its declarations, over the inspected samples."""

    uri: str
    tolerance: float
    samples: int = 0
    pixels: int = 0
    exact: int = 0
    snapped: int = 0
    undeclared: int = 0
    declared: list[dict] = field(default_factory=list)  # {colour, name, pixels, share}
    never_seen: list[dict] = field(default_factory=list)  # {colour, name}
    clusters: list[ColourCluster] = field(default_factory=list)
    other_undeclared: int = 0  # pixels of undeclared colours beyond the listed clusters
    min_declared_distance: Optional[float] = None
    closest_pair: Optional[list[str]] = None
    drift_mean: Optional[float] = None
    drift_p99: Optional[float] = None
    drift_max: Optional[float] = None
    warnings: list[str] = field(default_factory=list)

    @property
    def undeclared_share(self) -> float:
        return self.undeclared / self.pixels if self.pixels else 0.0


@dataclass
class InspectReport:
    """Everything `inspect_frames` found; `to_dict()` is the `--json` output."""

    frames: int
    sources: int
    masks: int
    labels: dict[str, int]
    ignore_index: int
    media: list[MediaInfo]
    mask_reports: list[MaskReport]
    failures: list[str]
    warnings: list[str]

    def to_dict(self) -> dict:
        out = asdict(self)
        for report, d in zip(self.mask_reports, out["mask_reports"]):
            d["undeclared_share"] = report.undeclared_share
        return out

    def format_text(self) -> str:
        return _format_text(self)


# ------------------------------------------------------------------ media

def media_info(uri: str, role: str) -> MediaInfo:
    """Open a media file and read its container facts; an unreadable file gives `.error`."""
    info = MediaInfo(uri=uri, role=role)
    try:
        with MediaReader(uri) as reader:
            stream = reader.stream
            ctx = stream.codec_context
            info.kind = "image" if reader.is_still else "video"
            info.codec = reader.codec
            info.pix_fmt = ctx.pix_fmt
            info.width, info.height = ctx.width, ctx.height
            info.lossless = reader.lossless
            if not reader.is_still:
                rate = stream.average_rate or stream.guessed_rate
                info.fps = round(float(rate), 3) if rate else None
                if stream.duration is not None and stream.time_base is not None:
                    info.duration = round(float(stream.duration * stream.time_base), 3)
                elif reader.container.duration is not None:
                    info.duration = round(reader.container.duration / 1e6, 3)
                info.frames = int(stream.frames) or None
    except (MaskdecError, OSError) as exc:
        info.error = str(exc)
    return info


# ------------------------------------------------------------------ colours

def _pixel_colours(pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct colours of a mask ((K, 3) RGB, or (K, 1) for 16-bit greys) and their pixel counts."""
    if pixels.ndim == 3:
        p = pixels[:, :, :3].astype(np.uint32)
        keys, counts = np.unique((p[..., 0] << 16) | (p[..., 1] << 8) | p[..., 2], return_counts=True)
        colours = np.stack([keys >> 16, (keys >> 8) & 255, keys & 255], axis=1)
    else:
        values, counts = np.unique(pixels, return_counts=True)
        values = values.astype(np.int64)[:, None]
        colours = np.repeat(values, 3, axis=1) if pixels.dtype == np.uint8 else values
    return colours.astype(np.int64), counts.astype(np.int64)


def _declared_for(colours: Sequence[tuple[int, ...]], channels: int) -> list[tuple[int, ...]]:
    """Declared colours in the pixels' units: RGB triples, or single greys for 16-bit masks."""
    if channels == 3:
        return [tuple(c) for c in colours if len(c) == 3]
    return [(c[0],) for c in colours if len(c) == 1 or c[0] == c[1] == c[2]]


def _distances(colours: np.ndarray, declared: np.ndarray) -> np.ndarray:
    """(K, N) Euclidean distances."""
    diff = colours[:, None, :].astype(np.float64) - declared[None, :, :].astype(np.float64)
    return np.sqrt((diff * diff).sum(axis=2))


def _cluster(colours: np.ndarray, counts: np.ndarray, radius: float, max_clusters: int
             ) -> tuple[list[tuple[int, np.ndarray]], int]:
    """Greedy clusters: the most frequent remaining colour takes every remaining colour within
    `radius`. Returns [(centre index, member indices)] and the pixels left beyond `max_clusters`."""
    remaining = np.argsort(-counts, kind="stable")
    clusters = []
    while remaining.size and len(clusters) < max_clusters:
        centre = remaining[0]
        d = np.sqrt(((colours[remaining] - colours[centre]) ** 2).sum(axis=1))
        inside = d <= radius
        clusters.append((int(centre), remaining[inside]))
        remaining = remaining[~inside]
    return clusters, int(counts[remaining].sum())


def _weighted_quantile(values: np.ndarray, weights: np.ndarray, q: float) -> float:
    order = np.argsort(values)
    cum = np.cumsum(weights[order])
    return float(values[order][np.searchsorted(cum, q * cum[-1])])


class _MaskAccumulator:
    """Collects one mask file's colours over its samples."""

    def __init__(self, uri: str, tolerance: float) -> None:
        self.report = MaskReport(uri=uri, tolerance=tolerance)
        self.names: dict[tuple, str] = {}  # declared colour (pixel units) -> class name
        self.hits: dict[tuple, int] = {}  # declared colour -> exact + snapped pixels
        self.undeclared: dict[tuple, int] = {}
        self.undeclared_frames: dict[tuple, list[int]] = {}
        self.drift: dict[float, int] = {}

    def add(self, pixels: np.ndarray, request: SampleRequest, names: Mapping[int, str]) -> None:
        r = self.report
        colours, counts = _pixel_colours(pixels)
        channels = colours.shape[1]
        table = request.table
        declared_all = [] if table is None else list(zip(table.colours, table.ids))
        declared = []
        for colour, label in declared_all:
            unit = _declared_for([colour], channels)
            if unit:
                declared.append(unit[0])
                self.names.setdefault(unit[0], names.get(label, f"id {label}"))
                self.hits.setdefault(unit[0], 0)
        r.samples += 1
        r.pixels += int(counts.sum())
        if declared:
            d = _distances(colours, np.array(declared, np.int64))
            nearest = d.argmin(axis=1)
            dist = d[np.arange(len(colours)), nearest]
        else:
            nearest = np.zeros(len(colours), np.int64)
            dist = np.full(len(colours), np.inf)
        matched = dist <= self.report.tolerance
        r.exact += int(counts[dist == 0].sum())
        r.snapped += int(counts[matched & (dist > 0)].sum())
        r.undeclared += int(counts[~matched].sum())
        for k in np.flatnonzero(matched):
            self.hits[declared[nearest[k]]] += int(counts[k])
            key = round(float(dist[k]), 2)
            self.drift[key] = self.drift.get(key, 0) + int(counts[k])
        for k in np.flatnonzero(~matched):
            colour = tuple(int(c) for c in colours[k])
            self.undeclared[colour] = self.undeclared.get(colour, 0) + int(counts[k])
            seen = self.undeclared_frames.setdefault(colour, [])
            if len(seen) < 20 and request.frame_index not in seen:
                seen.append(request.frame_index)

    def finish(self, cluster_radius: float) -> MaskReport:
        r = self.report
        total = max(r.pixels, 1)
        declared = list(self.names)
        for colour in declared:
            entry = {"colour": list(colour), "name": self.names[colour], "pixels": self.hits[colour],
                     "share": self.hits[colour] / total}
            r.declared.append(entry)
            if self.hits[colour] == 0:
                r.never_seen.append({"colour": list(colour), "name": self.names[colour]})
        if len(declared) >= 2:
            arr = np.array(declared, np.int64)
            d = _distances(arr, arr)
            d[np.diag_indices_from(d)] = np.inf
            i, j = np.unravel_index(np.argmin(d), d.shape)
            r.min_declared_distance = round(float(d[i, j]), 2)
            r.closest_pair = [self.names[declared[i]], self.names[declared[j]]]
        if self.drift:
            values = np.array(list(self.drift), np.float64)
            weights = np.array(list(self.drift.values()), np.float64)
            r.drift_mean = round(float((values * weights).sum() / weights.sum()), 2)
            r.drift_p99 = round(_weighted_quantile(values, weights, 0.99), 2)
            r.drift_max = round(float(values.max()), 2)
        if self.undeclared:
            colours = np.array(list(self.undeclared), np.int64)
            counts = np.array(list(self.undeclared.values()), np.int64)
            clusters, r.other_undeclared = _cluster(colours, counts, cluster_radius, MAX_CLUSTERS)
            for centre, members in clusters:
                pixels = int(counts[members].sum())
                frames = sorted({f for m in members for f in self.undeclared_frames[tuple(colours[m])]})[:20]
                nearest = nearest_name = distance = None
                if declared:
                    dd = _distances(colours[centre][None], np.array(declared, np.int64))[0]
                    k = int(dd.argmin())
                    nearest, nearest_name, distance = list(declared[k]), self.names[declared[k]], round(float(dd[k]), 2)
                r.clusters.append(ColourCluster(colour=[int(c) for c in colours[centre]], pixels=pixels,
                                                share=pixels / total, colours=int(members.size), nearest=nearest,
                                                nearest_name=nearest_name, distance=distance, frames=frames))
        self._warn()
        return r

    def _warn(self) -> None:
        r = self.report
        for c in r.clusters:
            if c.share >= 0.001:
                r.warnings.append(f"{r.uri}: undeclared colour {c.colour} covers {100 * c.share:.2f}% of the "
                                  f"pixels (frames {c.frames[:5]}); an ROI is missing or wrong")
        for n in r.never_seen:
            r.warnings.append(f"{r.uri}: declared colour {n['colour']} ({n['name']}) never occurs")
        if r.min_declared_distance is not None and r.drift_p99 is not None \
                and 2 * r.drift_p99 >= r.min_declared_distance:
            r.warnings.append(f"{r.uri}: declared colours of {r.closest_pair} are {r.min_declared_distance} apart "
                              f"and the codec drifts {r.drift_p99} (p99): pixels may snap to the wrong class")


# ------------------------------------------------------------------ the report

def inspect_frames(
    frames: FramesArg,
    *,
    labels: Optional[Mapping[str, int]] = None,
    mask_labels: Union[str, os.PathLike, Mapping, Sequence, None] = None,
    tolerance: Optional[float] = None,
    cluster_radius: Optional[float] = None,
    max_samples: Optional[int] = None,
    ignore_index: int = 255,
) -> InspectReport:
    """Inspect the media and mask colours of `frames`.

    tolerance: RGB distance that counts as a declared colour's drift (default: 0 for
    lossless masks, DEFAULT_LOSSY_TOLERANCE for lossy ones). cluster_radius: how close
    undeclared colours join one cluster (default: the tolerance). max_samples: inspect
    at most this many samples per mask file (evenly spread; default all).
    """
    frame_list = _as_frames(frames)
    table, requests = plan_samples(frame_list, labels=labels, mask_labels=mask_labels, ignore_index=ignore_index,
                                   strict=False)
    names = table.names()
    failures: list[str] = []
    roles: dict[str, set] = {}  # every media file, sources without masks too
    for f in frame_list:
        for s in f.sources:
            roles.setdefault(resolve_uri(s.uri, f.base_dir), set()).add("source")
            for m in s.masks:
                roles.setdefault(resolve_uri(m.uri, f.base_dir), set()).add("mask")
    for r in requests:
        if r.error is not None:
            failures.append(f"{r.where}: {r.error}")
    media = [media_info(uri, "+".join(sorted(rs, reverse=True))) for uri, rs in roles.items()]
    by_uri = {m.uri: m for m in media}
    for m in media:
        if m.error:
            failures.append(m.error)

    by_mask: dict[str, list[SampleRequest]] = {}
    for r in requests:
        if r.error is None and by_uri[r.mask_uri].error is None:
            by_mask.setdefault(r.mask_uri, []).append(r)
    reports = []
    for uri, reqs in by_mask.items():
        if max_samples is not None and len(reqs) > max_samples:
            picks = np.linspace(0, len(reqs) - 1, max_samples).round().astype(int)
            reqs = [reqs[i] for i in sorted(set(picks))]
        info = by_uri[uri]
        tol = tolerance if tolerance is not None else (0.0 if info.lossless else DEFAULT_LOSSY_TOLERANCE)
        acc = _MaskAccumulator(uri, tol)
        _decode_masks(uri, reqs, acc, names, failures)
        reports.append(acc.finish(tol if cluster_radius is None else cluster_radius))

    warnings = [w for rep in reports for w in rep.warnings]
    for r in requests:
        img, msk = by_uri[r.image_uri], by_uri[r.mask_uri]
        if None not in (img.width, msk.width) and (img.width, img.height) != (msk.width, msk.height):
            warning = (f"mask {r.mask_uri} is {msk.width}x{msk.height} but its image {r.image_uri} is "
                       f"{img.width}x{img.height}: label maps are resized")
            if warning not in warnings:
                warnings.append(warning)
    n_sources = sum(len(f.sources) for f in frame_list)
    n_masks = sum(len(s.masks) for f in frame_list for s in f.sources)
    return InspectReport(frames=len(frame_list), sources=n_sources, masks=n_masks, labels=table.to_dict(),
                         ignore_index=table.ignore_index, media=media, mask_reports=reports, failures=failures,
                         warnings=warnings)


def _decode_masks(uri: str, reqs: list[SampleRequest], acc: _MaskAccumulator, names: Mapping[int, str],
                  failures: list[str]) -> None:
    """Decode the needed frames of one mask file in one forward pass and feed them to `acc`."""
    wanted: dict[int, list[SampleRequest]] = {}
    for r in reqs:
        wanted.setdefault(r.mask_ts, []).append(r)
    try:
        with MediaReader(uri) as reader:
            for ts, frame in reader.frames_at(list(wanted)):
                if isinstance(frame, MaskdecError):
                    failures.extend(f"{r.where}: {frame}" for r in wanted[ts])
                    continue
                pixels = mask_pixels(frame)
                for r in wanted[ts]:
                    acc.add(pixels, r, names)
    except MaskdecError as exc:
        failures.append(str(exc))


def _format_text(rep: InspectReport) -> str:
    lines = [f"{rep.frames} frames, {rep.sources} sources, {rep.masks} masks", "", "media:"]
    for m in rep.media:
        if m.error:
            lines.append(f"  {m.uri} [{m.role}]: ERROR {m.error}")
            continue
        timing = ""
        if m.kind == "video":
            timing = f", {m.duration}s at {m.fps} fps" + (f", {m.frames} frames" if m.frames else "")
        lines.append(f"  {m.uri} [{m.role}]: {m.kind} {m.width}x{m.height}, {m.codec} {m.pix_fmt}"
                     f"{' (lossless)' if m.lossless else ''}{timing}")
    lines += ["", f"labels (ignore_index {rep.ignore_index}):"]
    lines += [f"  {i:>5}  {name}" for name, i in sorted(rep.labels.items(), key=lambda kv: kv[1])]
    for r in rep.mask_reports:
        pct = (lambda n: 100.0 * n / r.pixels if r.pixels else 0.0)
        lines += ["", f"mask {r.uri}: {r.samples} samples, tolerance {r.tolerance:g}",
                  f"  pixels: {pct(r.exact):.2f}% exact, {pct(r.snapped):.2f}% snapped, "
                  f"{pct(r.undeclared):.2f}% undeclared"]
        for d in r.declared:
            lines.append(f"  declared {d['colour']} {d['name']}: {100 * d['share']:.2f}%")
        for c in r.clusters:
            near = f", nearest declared {c.nearest} {c.nearest_name} at {c.distance}" if c.nearest else ""
            lines.append(f"  UNDECLARED {c.colour}: {100 * c.share:.2f}% ({c.colours} colours{near}; "
                         f"frames {c.frames[:5]})")
        if r.other_undeclared:
            lines.append(f"  UNDECLARED other: {pct(r.other_undeclared):.2f}%")
        for n in r.never_seen:
            lines.append(f"  never seen: {n['colour']} {n['name']}")
        if r.min_declared_distance is not None:
            lines.append(f"  closest declared colours: {r.closest_pair} at {r.min_declared_distance}")
        if r.drift_p99 is not None:
            lines.append(f"  measured drift: mean {r.drift_mean}, p99 {r.drift_p99}, max {r.drift_max}")
    if rep.failures:
        lines += ["", "failures:"] + [f"  {f}" for f in rep.failures]
    if rep.warnings:
        lines += ["", "warnings:"] + [f"  {w}" for w in rep.warnings]
    return "\n".join(lines) + "\n"
