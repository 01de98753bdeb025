"""`maskdec inspect`: what a dataset's media and masks really hold.

Per media file its container facts (duration, fps, size, codec, pixel
format); the label table; and per mask file how its pixels met the
declarations. The exact / snapped / unknown counts are `Sample.stats`, summed:
the samples are made exactly as `maskdec export` makes them (same plan, same
YUV path, same tolerance), so inspect, export manifests, preview and
`iter_samples(..., stats=True)` agree pixel for pixel. On top of the counts,
each mask frame is also decoded to RGB to say *which* colours the unknown
pixels have (clustered: a lossy codec smears one wrong colour into many near
ones) and how far labelled pixels drifted from their declared colour.
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from typing import Iterator, Mapping, Optional, Sequence, Union

import cv2
import numpy as np

from .errors import MaskdecError
from .exported import exported_samples
from .options import Options
from .labels import LabelTable
from .lut import DEFAULT_LOSSY_TOLERANCE
from .media.reader import MediaReader, mask_pixels
from .media.uri import resolve_uri
from .samples import FramesArg, Sample, SampleFailure, SampleRequest, _as_frames, plan_samples

__all__ = ["MediaInfo", "ColourCluster", "MaskReport", "InspectReport", "inspect_frames", "media_info"]

#: At most this many clusters of unknown pixels' colours are listed per mask file; the rest are summed as "other".
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
    """Colours of unknown pixels around `colour` (the most frequent of them), within the cluster radius."""

    colour: list[int]
    pixels: int
    share: float  # of the mask file's inspected pixels
    colours: int  # distinct colours in the cluster
    nearest: Optional[list[int]]  # the nearest colour declared for this mask file (by any frame)
    nearest_name: Optional[str]
    distance: Optional[float]
    frames: list[int]  # frame indices where it occurs (at most 20)


@dataclass
class MaskReport:
    """One mask file over its inspected samples. exact + snapped + unknown == pixels,
    each the sum of the samples' `Sample.stats`."""

    uri: str
    tolerance: float
    samples: int = 0
    pixels: int = 0
    exact: int = 0
    snapped: int = 0
    unknown: int = 0
    declared: list[dict] = field(default_factory=list)  # {colour, name, pixels, share}
    never_seen: list[dict] = field(default_factory=list)  # {colour, name}
    clusters: list[ColourCluster] = field(default_factory=list)
    other_unknown: int = 0  # unknown pixels whose colours fall beyond the listed clusters
    min_declared_distance: Optional[float] = None
    closest_pair: Optional[list[str]] = None
    drift_mean: Optional[float] = None
    drift_p99: Optional[float] = None
    drift_max: Optional[float] = None
    warnings: list[str] = field(default_factory=list)

    @property
    def unknown_share(self) -> float:
        return self.unknown / self.pixels if self.pixels else 0.0

    @property
    def stats(self) -> dict[str, int]:
        """The counts in the shape of an export manifest's `stats`."""
        return {"exact": self.exact, "snapped": self.snapped, "unknown": self.unknown}


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
            d["unknown_share"] = report.unknown_share
            d["stats"] = report.stats
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

def _packed(pixels: np.ndarray) -> np.ndarray:
    """One int64 key per pixel: r << 16 | g << 8 | b, or the grey value."""
    if pixels.ndim == 3:
        p = pixels[:, :, :3].astype(np.int64)
        return (p[..., 0] << 16) | (p[..., 1] << 8) | p[..., 2]
    return pixels.astype(np.int64)


def _unpacked(keys: np.ndarray, pixels: np.ndarray) -> np.ndarray:
    """(K, 3) RGB colours of packed keys; 8-bit greys as (v, v, v), 16-bit greys as (K, 1)."""
    if pixels.ndim == 3:
        return np.stack([keys >> 16, (keys >> 8) & 255, keys & 255], axis=1)
    return np.repeat(keys[:, None], 3, axis=1) if pixels.dtype == np.uint8 else keys[:, None]


def _in_units(colour: Sequence[int], channels: int) -> Optional[tuple[int, ...]]:
    """A declared colour in the pixels' units: an RGB triple, or a single grey for 16-bit masks
    (None when it cannot occur in such a mask)."""
    if channels == 3:
        return tuple(colour) if len(colour) == 3 else None
    return (colour[0],) if len(colour) == 1 or colour[0] == colour[1] == colour[2] else None


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
    """Collects one mask file's samples: their stats, and the colours behind their label maps."""

    def __init__(self, uri: str, tolerance: float, names: Mapping[int, str], ignore_index: int) -> None:
        self.report = MaskReport(uri=uri, tolerance=tolerance)
        self.names = names
        self.ignore_index = ignore_index
        self.hits: dict[tuple, int] = {}  # (declared colour in pixel units, class name) -> labelled pixels
        self.unknown: dict[tuple, int] = {}  # colour of unknown pixels -> pixels
        self.unknown_frames: dict[tuple, list[int]] = {}
        self.drift: dict[float, int] = {}  # RGB distance of a labelled pixel to its class's colour -> pixels

    def add(self, sample: Sample, pixels: np.ndarray, request: SampleRequest) -> None:
        r = self.report
        stats = sample.stats
        r.samples += 1
        r.pixels += stats.total
        r.exact += stats.exact
        r.snapped += stats.snapped
        r.unknown += stats.unknown
        channels = 3 if pixels.ndim == 3 or pixels.dtype == np.uint8 else 1
        declared: list[tuple[tuple, int]] = []  # (colour in pixel units, label id) of this frame
        table = request.table
        for colour, label in ([] if table is None else zip(table.colours, table.ids)):
            unit = _in_units(colour, channels)
            if unit is not None:
                declared.append((unit, int(label)))
                self.hits.setdefault((unit, self.names.get(int(label), f"id {label}")), 0)
        label_map = sample.label_map
        if label_map.shape != pixels.shape[:2]:  # resized to its image: back to the mask's own pixels
            label_map = cv2.resize(label_map, (pixels.shape[1], pixels.shape[0]),
                                   interpolation=cv2.INTER_NEAREST_EXACT)
        # every distinct (colour, label) pair of the frame, with its pixel count
        keys, counts = np.unique(_packed(pixels) << 16 | label_map.astype(np.int64), return_counts=True)
        labels = keys & 0xFFFF
        colours = _unpacked(keys >> 16, pixels)
        unknown = labels == self.ignore_index
        for k in np.flatnonzero(unknown):
            colour = tuple(int(c) for c in colours[k])
            self.unknown[colour] = self.unknown.get(colour, 0) + int(counts[k])
            seen = self.unknown_frames.setdefault(colour, [])
            if len(seen) < 20 and sample.frame_index not in seen:
                seen.append(sample.frame_index)
        known = np.flatnonzero(~unknown)
        if not known.size or not declared:
            return
        d = _distances(colours[known], np.array([c for c, _ in declared], np.int64))
        own = labels[known][:, None] == np.array([label for _, label in declared])[None, :]
        d[~own] = np.inf  # a labelled pixel drifted from a colour of its own class
        nearest = d.argmin(axis=1)
        dist = d[np.arange(known.size), nearest]
        for k, j, dd in zip(known, nearest, dist):
            if not np.isfinite(dd):
                continue
            colour, label = declared[j]
            self.hits[(colour, self.names.get(label, f"id {label}"))] += int(counts[k])
            if dd <= r.tolerance:  # not pixels labelled beyond it (YUV edge repair)
                rounded = round(float(dd), 2)
                self.drift[rounded] = self.drift.get(rounded, 0) + int(counts[k])

    def finish(self, cluster_radius: float) -> MaskReport:
        r = self.report
        total = max(r.pixels, 1)
        for (colour, name), pixels in self.hits.items():
            r.declared.append({"colour": list(colour), "name": name, "pixels": pixels, "share": pixels / total})
            if pixels == 0:
                r.never_seen.append({"colour": list(colour), "name": name})
        colour_names: dict[tuple, str] = {}
        for colour, name in self.hits:
            colour_names.setdefault(colour, name)
        declared = list(colour_names)
        if len(declared) >= 2:
            arr = np.array(declared, np.int64)
            d = _distances(arr, arr)
            d[np.diag_indices_from(d)] = np.inf
            i, j = np.unravel_index(np.argmin(d), d.shape)
            r.min_declared_distance = round(float(d[i, j]), 2)
            r.closest_pair = [colour_names[declared[i]], colour_names[declared[j]]]
        if self.drift:
            values = np.array(list(self.drift), np.float64)
            weights = np.array(list(self.drift.values()), np.float64)
            r.drift_mean = round(float((values * weights).sum() / weights.sum()), 2)
            r.drift_p99 = round(_weighted_quantile(values, weights, 0.99), 2)
            r.drift_max = round(float(values.max()), 2)
        if self.unknown:
            colours = np.array(list(self.unknown), np.int64)
            counts = np.array(list(self.unknown.values()), np.int64)
            clusters, r.other_unknown = _cluster(colours, counts, cluster_radius, MAX_CLUSTERS)
            for centre, members in clusters:
                pixels = int(counts[members].sum())
                frames = sorted({f for m in members for f in self.unknown_frames[tuple(colours[m])]})[:20]
                nearest = nearest_name = distance = None
                if declared:
                    dd = _distances(colours[centre][None], np.array(declared, np.int64))[0]
                    k = int(dd.argmin())
                    nearest, nearest_name = list(declared[k]), colour_names[declared[k]]
                    distance = round(float(dd[k]), 2)
                r.clusters.append(ColourCluster(colour=[int(c) for c in colours[centre]], pixels=pixels,
                                                share=pixels / total, colours=int(members.size), nearest=nearest,
                                                nearest_name=nearest_name, distance=distance, frames=frames))
        self._warn()
        return r

    def _warn(self) -> None:
        r = self.report
        for c in r.clusters:
            if c.share >= 0.001:
                r.warnings.append(f"{r.uri}: {100 * c.share:.2f}% of the pixels are unknown, colour {c.colour} "
                                  f"(frames {c.frames[:5]}); an ROI is missing or wrong")
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

    Samples are planned and mapped as `export` does (same options, same defaults), so
    each mask report's exact / snapped / unknown counts are the sum of its samples'
    `Sample.stats`. tolerance: RGB distance within which a colour snaps (default: 0 for
    lossless masks, DEFAULT_LOSSY_TOLERANCE for lossy ones). cluster_radius: how close
    colours of unknown pixels join one cluster (default: the tolerance). max_samples:
    inspect at most this many samples per mask file (evenly spread; default all).
    """
    frame_list = _as_frames(frames)
    table, requests = plan_samples(frame_list, labels=labels, mask_labels=mask_labels, ignore_index=ignore_index)
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
    failures += [m.error for m in media if m.error]

    by_mask: dict[str, list[SampleRequest]] = {}
    for r in requests:
        if r.error is None and by_uri[r.mask_uri].error is None:
            by_mask.setdefault(r.mask_uri, []).append(r)
    chosen: set[int] = set()
    for reqs in by_mask.values():
        if max_samples is not None and len(reqs) > max_samples:
            reqs = [reqs[i] for i in sorted(set(np.linspace(0, len(reqs) - 1, max_samples).round().astype(int)))]
        chosen.update(id(r) for r in reqs)
    selected = [r for r in requests if id(r) in chosen]  # input order, as export serves them

    accumulators = {}
    for uri in by_mask:
        tol = tolerance if tolerance is not None else (0.0 if by_uri[uri].lossless else DEFAULT_LOSSY_TOLERANCE)
        accumulators[uri] = _MaskAccumulator(uri, tol, names, table.ignore_index)
    _collect(table, selected, tolerance, accumulators, failures)
    reports = [acc.finish(acc.report.tolerance if cluster_radius is None else cluster_radius)
               for acc in accumulators.values()]

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


def _collect(table: LabelTable, selected: list[SampleRequest], tolerance: Optional[float],
             accumulators: dict[str, _MaskAccumulator], failures: list[str]) -> None:
    """Per mask file: make its samples as export does (stats on, YUV path, failures yielded),
    in timestamp order, and beside them decode the same frames once more as RGB pixels."""
    by_uri: dict[str, list[SampleRequest]] = {}
    for r in selected:
        by_uri.setdefault(r.mask_uri, []).append(r)
    for uri, reqs in by_uri.items():
        reqs = sorted(reqs, key=lambda r: r.mask_ts)  # the order frames_at yields them in
        samples = exported_samples(table, reqs, Options.of({"tolerance": tolerance, "images": False}))
        try:
            for request, result, pixels in zip(reqs, samples, _rgb_frames(uri, reqs)):
                if isinstance(result, SampleFailure):
                    failures.append(f"{request.where}: {result.error}")
                elif isinstance(pixels, MaskdecError):
                    failures.append(f"{request.where}: {pixels}")
                else:
                    accumulators[uri].add(result, pixels, request)
        finally:
            samples.close()


def _rgb_frames(uri: str, reqs: list[SampleRequest]) -> Iterator[Union[np.ndarray, MaskdecError]]:
    """The RGB (or grey) pixels of each request's mask frame, requests sorted by timestamp;
    a MaskdecError in place of a frame that cannot be had."""
    error: Optional[MaskdecError] = None
    try:
        with MediaReader(uri) as reader:
            frames = reader.frames_at([r.mask_ts for r in reqs])  # ascending
            ts, pixels = None, None
            for r in reqs:
                while ts != r.mask_ts:
                    ts, frame = next(frames)
                    pixels = frame if isinstance(frame, MaskdecError) else mask_pixels(frame)
                yield pixels
            return
    except MaskdecError as exc:
        error = exc
    while True:  # the rest, once the file failed
        yield error


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
        lines += ["", f"mask {r.uri}: {r.samples} samples, {r.pixels} pixels, tolerance {r.tolerance:g}",
                  f"  pixels: {pct(r.exact):.2f}% exact, {pct(r.snapped):.2f}% snapped, "
                  f"{pct(r.unknown):.2f}% unknown"]
        for d in r.declared:
            lines.append(f"  declared {d['colour']} {d['name']}: {100 * d['share']:.2f}%")
        for c in r.clusters:
            near = f", nearest declared {c.nearest} {c.nearest_name} at {c.distance}" if c.nearest else ""
            lines.append(f"  UNKNOWN {c.colour}: {100 * c.share:.2f}% ({c.colours} colours{near}; "
                         f"frames {c.frames[:5]})")
        if r.other_unknown:
            lines.append(f"  UNKNOWN other colours: {pct(r.other_unknown):.2f}%")
        for n in r.never_seen:
            lines.append(f"  never seen: {n['colour']} {n['name']}")
        if r.min_declared_distance is not None:
            lines.append(f"  closest declared colours: {r.closest_pair} at {r.min_declared_distance}")
        if r.drift_p99 is not None:
            lines.append(f"  drift of labelled pixels from their declared colour: mean {r.drift_mean}, "
                         f"p99 {r.drift_p99}, max {r.drift_max}")
    if rep.failures:
        lines += ["", "failures:"] + [f"  {f}" for f in rep.failures]
    if rep.warnings:
        lines += ["", "warnings:"] + [f"  {w}" for w in rep.warnings]
    return "\n".join(lines) + "\n"
