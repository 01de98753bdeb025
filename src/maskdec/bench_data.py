"""`maskdec bench` on a dataset: every stage of bench.py on the same samples, in one run.

The first `samples` samples (input order) are what every stage reads. Remote media are
copied once into a temporary folder (timed apart), so the stages compare decoding, not
the network. Each file is opened once before timing to learn its facts (codec, GOP) and
build its frame index. Baselines are checked equal to maskdec's label maps on the first
samples (and the first of every mask file) before any timing. Then, interleaved:
demux, decode, decode + RGB, maskdec's label maps (YUV and RGB paths), the baselines,
source images and whole samples; then random access and, with `workers`, scaling.
"""
from __future__ import annotations

import copy
import importlib
import inspect
import os
import random
import shutil
import tempfile
import time
from bisect import bisect_left, bisect_right
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, Mapping, Optional, Sequence

import cv2
import numpy as np

from . import bench
from .bench import BaselineTables, FileWork
from .bench_report import BenchReport, FileFacts, Row, short_names
from .dataset import MaskDataset
from .errors import MaskdecError, OptionError
from .frames import Frame
from .lut import DEFAULT_LOSSY_TOLERANCE
from .media.reader import MediaReader
from .media.uri import is_remote, open_uri, resolve_uri
from .options import Options
from .samples import FramesArg, SampleRequest, _as_frames, iter_samples, plan_samples

__all__ = ["BenchSettings", "run_bench", "gop_sampler_class", "TARGET_GOP"]

#: The keyframe interval advice suggests (frames): half a second at 30 fps.
TARGET_GOP = 15
#: Re-encoding is advised when it would make random access at least this much faster.
PAYS_OFF = 1.5
_COPY_CHUNK = 4 << 20


@dataclass(frozen=True)
class BenchSettings:
    """What to measure. samples: the first N samples are read by every stage; random: N
    random samples for random access (0: skip); batch: batch size of __getitems__, the
    samplers and the DataLoader; workers: also measure the export pool and a DataLoader
    with N workers; threads: decoder threads per file (None: FFmpeg's choice, maskdec's
    default); repeat: interleaved runs per stage; check: first samples the baselines must
    equal maskdec on; min_seconds: each stage runs once untimed first, then as often per
    timed run as it takes to last this long; max_seconds: a stage whose first run takes this
    long is timed by it alone, and a way of random access stops after it; labels,
    mask_labels, tolerance: as for iter_samples."""

    samples: int = 120
    random: int = 32
    batch: int = 8
    workers: Optional[int] = None
    threads: Optional[int] = None
    repeat: int = 3
    check: int = 4
    seed: int = 0
    min_seconds: float = 0.2
    max_seconds: float = 10.0
    labels: Optional[Mapping[str, int]] = None
    mask_labels: Any = None
    tolerance: Optional[float] = None

    def __post_init__(self) -> None:
        for name, low in (("samples", 1), ("random", 0), ("batch", 1), ("repeat", 1), ("check", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise OptionError(f"bench setting {name!r} must be an integer >= {low}, got {value!r}")
        if self.workers is not None and (not isinstance(self.workers, int) or self.workers < 1):
            raise OptionError(f"bench setting 'workers' must be None or an integer >= 1, got {self.workers!r}")
        for name in ("min_seconds", "max_seconds"):
            if not getattr(self, name) >= 0:
                raise OptionError(f"bench setting {name!r} must be >= 0, got {getattr(self, name)!r}")
        Options.of(self.options())  # threads, tolerance, labels as every sample source checks them

    def options(self) -> dict:
        """The iter_samples / MaskDataset options every maskdec stage uses."""
        return {"labels": self.labels, "mask_labels": self.mask_labels, "tolerance": self.tolerance,
                "threads": self.threads}

    def to_dict(self) -> dict:
        return {"samples": self.samples, "random": self.random, "batch": self.batch, "workers": self.workers,
                "threads": self.threads, "repeat": self.repeat, "check": self.check, "seed": self.seed,
                "min_seconds": self.min_seconds, "max_seconds": self.max_seconds, "tolerance": self.tolerance}


Progress = Callable[[str], None]


def run_bench(frames: FramesArg, settings: BenchSettings = BenchSettings(), *, name: Optional[str] = None,
              start: Optional[Callable[[int], None]] = None, progress: Optional[Progress] = None) -> BenchReport:
    """Measure every stage on the first `settings.samples` samples of `frames`.

    start(total) is called once the number of steps is known, progress(step) after each.
    Raises MaskdecError when the data cannot be read (a frames file, a media file, a
    sample's colours); a baseline that disagrees with maskdec is reported, not raised.
    """
    tick = progress or (lambda step: None)
    all_frames = _as_frames(frames)
    selected, total = _select(all_frames, settings)
    with tempfile.TemporaryDirectory(prefix="maskdec-bench-") as tmp:
        remote = _remote_uris(selected)
        frames_local = selected
        steps = _step_count(selected, remote, settings)
        if start is not None:
            start(steps)
        fetch = None
        if remote:
            local, fetch = _fetch(remote, tmp, tick)
            frames_local = _localised(selected, local)
        _, requests = plan_samples(frames_local, labels=settings.labels, mask_labels=settings.mask_labels)
        originals = _original_uris(selected, frames_local)
        report = BenchReport(frames=name or _describe(frames), settings=settings.to_dict(), machine=bench.machine(),
                             versions=bench.versions(), samples=len(requests), total_samples=total, fetch=fetch)
        plan = _Plan.of(requests, settings, originals, tick)
        report.files = plan.facts
        report.checks, checked = _checks(plan, frames_local, settings, tick)
        report.stages = _stages(plan, frames_local, settings, checked, tick)
        if settings.random:
            report.random, report.random_samples = _random_access(frames_local, len(requests), settings, tick)
        if settings.workers:
            report.scaling = _scaling(frames_local, settings, tmp, tick, report.notes)
        report.advice = advice(report)
    return report


def _describe(frames: FramesArg) -> str:
    return os.fspath(frames) if isinstance(frames, (str, os.PathLike)) else f"{type(frames).__name__} of frames"


# ------------------------------------------------------------------ choosing the samples

def _select(frames: list[Frame], settings: BenchSettings) -> tuple[list[Frame], int]:
    """The first frames that hold at least `settings.samples` samples, and the samples in all."""
    _, requests = plan_samples(frames, labels=settings.labels, mask_labels=settings.mask_labels)
    if not requests:
        raise MaskdecError("the frames hold no samples (no source with a mask)")
    cut = requests[min(settings.samples, len(requests)) - 1].frame_index + 1
    for r in requests:
        if r.frame_index < cut and r.error is not None:
            raise r.error
    return frames[:cut], len(requests)


def _step_count(frames: Sequence[Frame], remote: Sequence[str], s: BenchSettings) -> int:
    uris = {resolve_uri(u, f.base_dir) for f in frames for src in f.sources if src.masks
            for u in [src.uri] + [m.uri for m in src.masks]}
    runs = s.repeat + 1  # a warm-up run first
    stages = 9 * runs
    randoms = 3 * runs if s.random else 0
    scaling = 4 * runs if s.workers else 0
    return len(remote) + len(uris) + 1 + stages + randoms + scaling


# ------------------------------------------------------------------ remote files

def _remote_uris(frames: Sequence[Frame]) -> list[str]:
    seen: dict[str, None] = {}
    for f in frames:
        for src in f.sources:
            for uri in [src.uri] + [m.uri for m in src.masks] if src.masks else []:
                resolved = resolve_uri(uri, f.base_dir)
                if is_remote(resolved):
                    seen.setdefault(resolved)
    return list(seen)


def _fetch(uris: Sequence[str], folder: str, tick: Progress) -> tuple[dict[str, str], dict]:
    """Copy each remote file once into `folder` (through maskdec's URI rules and size limit)."""
    local: dict[str, str] = {}
    size = 0
    t0 = time.perf_counter()
    for k, uri in enumerate(uris):
        path = os.path.join(folder, f"{k:05d}-{os.path.basename(uri.rstrip('/')) or 'media'}")
        remote = open_uri(uri, cache=False)
        try:
            with open(path, "wb") as out:
                shutil.copyfileobj(remote, out, _COPY_CHUNK)
        finally:
            remote.close()
        size += os.path.getsize(path)
        local[uri] = path
        tick("fetch")
    seconds = time.perf_counter() - t0
    return local, {"files": len(uris), "bytes": size, "seconds": round(seconds, 3),
                   "mib_per_s": round(size / 2 ** 20 / max(seconds, 1e-9), 2)}


def _localised(frames: Sequence[Frame], local: Mapping[str, str]) -> list[Frame]:
    """Copies of the frames whose remote media URIs point at the local copies."""
    out = []
    for frame in frames:
        frame = copy.deepcopy(frame)
        for src in frame.sources:
            src.uri = local.get(resolve_uri(src.uri, frame.base_dir), src.uri)
            for m in src.masks:
                m.uri = local.get(resolve_uri(m.uri, frame.base_dir), m.uri)
        out.append(frame)
    return out


def _original_uris(selected: Sequence[Frame], local: Sequence[Frame]) -> dict[str, str]:
    """Resolved local URI -> the URI the frames name (they differ for fetched remote files)."""
    out: dict[str, str] = {}
    for a, b in zip(selected, local):
        for sa, sb in zip(a.sources, b.sources):
            out[resolve_uri(sb.uri, b.base_dir)] = resolve_uri(sa.uri, a.base_dir)
            for ma, mb in zip(sa.masks, sb.masks):
                out[resolve_uri(mb.uri, b.base_dir)] = resolve_uri(ma.uri, a.base_dir)
    return out


# ------------------------------------------------------------------ the files and what the samples need

@dataclass
class _Plan:
    requests: list[SampleRequest]
    facts: list[FileFacts]
    mask_work: list[FileWork]
    image_work: list[FileWork]
    tables: BaselineTables

    @classmethod
    def of(cls, requests: list[SampleRequest], settings: BenchSettings, originals: Mapping[str, str],
           tick: Progress) -> "_Plan":
        """Open every file once (facts, frame index), and locate each sample's frames."""
        roles: dict[str, list[str]] = {}
        for r in requests:
            roles.setdefault(r.mask_uri, [])
            roles.setdefault(r.image_uri, [])
            if "mask" not in roles[r.mask_uri]:
                roles[r.mask_uri].append("mask")
            if "image" not in roles[r.image_uri]:
                roles[r.image_uri].append("image")
        names = short_names([originals.get(u, u) for u in roles])
        facts: dict[str, FileFacts] = {}
        where: dict[tuple[str, int], tuple[Optional[int], int]] = {}  # (uri, ts) -> (pts, position)
        for uri, file_roles in roles.items():
            stamps = [r.mask_ts for r in requests if r.mask_uri == uri] + \
                     [r.image_ts for r in requests if r.image_uri == uri]
            facts[uri] = _facts(uri, file_roles, stamps, settings.threads, where)
            original = originals.get(uri, uri)
            facts[uri].uri, facts[uri].name = original, names[original]
            tick("open")
        tolerances = {k: settings.tolerance if settings.tolerance is not None
                      else 0.0 if facts[r.mask_uri].lossless else DEFAULT_LOSSY_TOLERANCE
                      for k, r in enumerate(requests)}
        tables = BaselineTables({k: r.palette for k, r in enumerate(requests)},
                                {k: r.remap for k, r in enumerate(requests)}, tolerances)
        mask_work = _work([(r.mask_uri, r.mask_ts) for r in requests], where)
        image_work = _work([(r.image_uri, r.image_ts) for r in requests], where)
        return cls(requests, list(facts.values()), mask_work, image_work, tables)


def _facts(uri: str, roles: list[str], stamps: Sequence[int], threads: Optional[int],
           where: dict[tuple[str, int], tuple[Optional[int], int]]) -> FileFacts:
    """Open the file once: what it is, its frame index (timed), where each timestamp's frame
    lies (into `where`), and how deep into its GOP the samples' frames lie on average."""
    t0 = time.perf_counter()
    with MediaReader(uri, threads=threads) as reader:
        ctx = reader.stream.codec_context
        if reader.is_still:
            index_ms = 0.0
            for ts in stamps:
                where[(uri, ts)] = (None, 0)
            frames, keys, gaps, depth = 1, 1, [1], 1.0
        else:
            index = reader.index
            index_ms = (time.perf_counter() - t0) * 1000
            starts = sorted({bisect_left(index.pts, k) for k in index.key_pts} | {0})
            depths = []
            for ts in stamps:
                position = index.locate(ts, "ms")  # TimestampRangeError: the data cannot be read
                where[(uri, ts)] = (index.pts[position], position)
                depths.append(position - starts[bisect_right(starts, position) - 1] + 1)
            frames, keys = len(index), len(index.key_pts)
            gaps = [b - a for a, b in zip(starts, starts[1:] + [frames])]
            depth = sum(depths) / len(depths)
        return FileFacts(uri=uri, roles=roles, codec=reader.codec, width=ctx.width, height=ctx.height,
                         pix_fmt=ctx.pix_fmt or "?", frames=frames, keyframes=keys, mean_gop=frames / max(keys, 1),
                         max_gop=max(gaps), mean_depth=depth, b_frames=bool(ctx.has_b_frames),
                         lossless=reader.lossless, still=reader.is_still,
                         bytes=os.path.getsize(uri) if os.path.isfile(uri) else 0, index_ms=index_ms)


def _work(needs: Sequence[tuple[str, int]], where: Mapping[tuple[str, int], tuple[Optional[int], int]]
          ) -> list[FileWork]:
    """Per file (in order of first use): the distinct frames the samples need, ascending, and
    which samples (plan positions) need each."""
    by_file: dict[str, dict[int, tuple[Optional[int], list[int]]]] = {}
    for k, (uri, ts) in enumerate(needs):
        pts, position = where[(uri, ts)]
        by_file.setdefault(uri, {}).setdefault(position, (pts, []))[1].append(k)
    out = []
    for uri, frames in by_file.items():
        order = sorted(frames)
        out.append(FileWork(uri, tuple(frames[p][0] for p in order), tuple(order),
                            tuple(tuple(frames[p][1]) for p in order)))
    return out


def _subset(work: Sequence[FileWork], samples: set[int]) -> list[FileWork]:
    """The work restricted to some samples."""
    out = []
    for w in work:
        keep = [k for k in range(len(w)) if samples.intersection(w.samples[k])]
        if keep:
            out.append(FileWork(w.uri, tuple(w.pts[k] for k in keep), tuple(w.positions[k] for k in keep),
                                tuple(tuple(s for s in w.samples[k] if s in samples) for k in keep)))
    return out


# ------------------------------------------------------------------ checks

#: Baselines: name -> (title, pixels source).
BASELINES: dict[str, tuple[str, Callable]] = {
    "baseline_numpy": ("baseline: PyAV RGB + numpy packed LUT", bench.pyav_pixels),
    "baseline_torchcodec": ("baseline: torchcodec + numpy packed LUT", bench.torchcodec_pixels),
}


def _checks(plan: _Plan, frames: Sequence[Frame], settings: BenchSettings, tick: Progress
            ) -> tuple[list[dict], dict[str, dict]]:
    """Each baseline's label maps against maskdec's (RGB path) on the first samples and the
    first of each mask file; also how far the YUV path agrees with the RGB path there.
    Builds every table the timed runs use. Returns the check records and, per baseline,
    its outcome ({"equal", "check"} or {"error"})."""
    chosen = set(range(min(settings.check, len(plan.requests))))
    chosen |= {w.samples[0][0] for w in plan.mask_work}
    positions = sorted(chosen)
    options = settings.options()
    with MaskDataset(list(frames), images=False, yuv=False, **options) as ds:
        rgb = dict(zip(positions, (s.label_map for s in ds.__getitems__(positions))))
    with MaskDataset(list(frames), images=False, yuv=True, **options) as ds:
        yuv = dict(zip(positions, (s.label_map for s in ds.__getitems__(positions))))
    records, outcome = [], {}
    work = _subset(plan.mask_work, chosen)
    for name, (title, pixels) in BASELINES.items():
        problem = bench.torchcodec_problem() if name == "baseline_torchcodec" else None
        if problem:
            outcome[name] = {"error": problem}
            continue
        try:
            maps = bench.baseline_label_maps(pixels(work, settings.threads), plan.tables, keep=True)
        except Exception as exc:  # noqa: BLE001 - a baseline that cannot run is reported, not fatal
            if name == "baseline_numpy":
                raise
            outcome[name] = {"error": f"failed: {type(exc).__name__}: {exc}"}
            continue
        equal, verdict, detail = _compare(maps, rgb, plan)
        outcome[name] = {"equal": equal, "check": verdict}
        records.append({"baseline": name, "against": "label maps, RGB path (maskdec)", "samples": len(positions),
                        "equal": equal, "detail": f"{title}: {'' if equal else 'MISMATCH: '}{detail}"})
    same = sum(int(np.count_nonzero(yuv[p] == rgb[p])) for p in positions)
    pixels_n = sum(rgb[p].size for p in positions)
    records.append({"baseline": None, "against": "label maps, RGB path (maskdec)", "samples": len(positions),
                    "equal": same == pixels_n,
                    "detail": f"maskdec's YUV path agrees with its RGB path on {100 * same / max(pixels_n, 1):.2f}% "
                              f"of the pixels of {len(positions)} samples (it reads colours before the RGB "
                              f"conversion blurs their edges)"})
    tick("check")
    return records, outcome


def _compare(maps: Mapping[int, np.ndarray], reference: Mapping[int, np.ndarray], plan: _Plan
             ) -> tuple[bool, str, str]:
    """(equal, a short verdict, the verdict naming the first sample that differs)."""
    bad: list[tuple[int, int, int]] = []
    for k, want in reference.items():
        got = maps.get(k)
        if got is None:
            bad.append((k, want.size, want.size))
            continue
        if got.shape != want.shape:  # maskdec fits a mask to its image's size
            got = cv2.resize(got, (want.shape[1], want.shape[0]), interpolation=cv2.INTER_NEAREST_EXACT)
        differ = int(np.count_nonzero(got != want))
        if differ:
            bad.append((k, differ, want.size))
    if not bad:
        verdict = f"equal on {len(reference)} samples"
        return True, verdict, verdict
    k, differ, size = bad[0]
    r = plan.requests[k]
    verdict = f"{len(bad)} of {len(reference)} samples differ"
    return False, verdict, (f"{verdict}; first: sample {k} (frames[{r.frame_index}], mask "
                            f"{os.path.basename(r.mask_uri)} at {r.mask_ts} ms), {differ} of {size} pixels "
                            f"({100 * differ / size:.2f}%)")


# ------------------------------------------------------------------ the timed stages

def _measure(runs: Mapping[str, Callable[[], int]], settings: BenchSettings, tick: Progress) -> dict:
    return bench.measure(runs, settings.repeat, warmup=True, min_seconds=settings.min_seconds,
                         max_seconds=settings.max_seconds, progress=tick)


def _count(samples: Iterable) -> int:
    return sum(1 for _ in samples)


def _stages(plan: _Plan, frames: Sequence[Frame], settings: BenchSettings, checked: Mapping[str, dict],
            tick: Progress) -> list[Row]:
    threads, options, frames = settings.threads, settings.options(), list(frames)
    masks, images = plan.mask_work, plan.image_work
    rows = [
        Row("demux", "demux only (PyAV)", "frames"),
        Row("decode", "decode only (PyAV)", "frames"),
        Row("decode_rgb", "decode + RGB (PyAV rgb24)", "frames"),
        Row("label_maps_yuv", "label maps, YUV path (maskdec)", "samples"),
        Row("label_maps_rgb", "label maps, RGB path (maskdec)", "samples"),
    ]
    runs: dict[str, Callable[[], int]] = {
        "demux": lambda: bench.demux(masks),
        "decode": lambda: bench.decode(masks, threads),
        "decode_rgb": lambda: bench.decode(masks, threads, bench.rgb24),
        "label_maps_yuv": lambda: _count(iter_samples(frames, images=False, yuv=True, **options)),
        "label_maps_rgb": lambda: _count(iter_samples(frames, images=False, yuv=False, **options)),
    }
    for name, (title, pixels) in BASELINES.items():
        outcome = checked.get(name, {})
        row = Row(name, title, "samples", check=outcome.get("check"), equal=outcome.get("equal"),
                  note=outcome.get("error"))
        rows.append(row)
        if "error" not in outcome:
            runs[name] = (lambda p: lambda: bench.baseline_label_maps(p(masks, threads), plan.tables))(pixels)
    rows += [Row("images", "source images, decode + RGB (PyAV)", "frames"),
             Row("samples", "whole samples: image + label map (maskdec)", "samples")]
    runs["images"] = lambda: bench.decode(images, threads, bench.rgb24)
    runs["samples"] = lambda: _count(iter_samples(frames, images=True, **options))
    timings = _measure(runs, settings, tick)
    for row in rows:
        row.timing = timings.get(row.name)
    for _ in range((settings.repeat + 1) * (9 - len(runs))):  # stages that did not run still count as steps
        tick("skip")
    return rows


# ------------------------------------------------------------------ random access

def gop_sampler_class() -> Optional[type]:
    """maskdec.sampling.GopBatchSampler when this maskdec has it (None otherwise)."""
    try:
        module = importlib.import_module(f"{__package__}.sampling")
    except ImportError:  # also MissingExtraError: it may need torch
        return None
    return getattr(module, "GopBatchSampler", None)


def _gop_batches(cls: type, ds: MaskDataset, batch: int, seed: int) -> Iterator[list[int]]:
    """The sampler's batches; it gets the keywords it takes among batch_size, seed and shuffle."""
    accepted = inspect.signature(cls).parameters
    wanted = {"batch_size": batch, "seed": seed, "shuffle": True}
    kwargs = {k: v for k, v in wanted.items() if k in accepted}
    for indices in cls(ds, **kwargs):
        yield [int(i) for i in indices]


def _random_access(frames: Sequence[Frame], n: int, settings: BenchSettings, tick: Progress
                   ) -> tuple[list[Row], int]:
    """settings.random random samples (with images) one by one, in batches, and with the
    GOP-aware sampler when this maskdec has it; each run on a new MaskDataset, stopping
    after settings.max_seconds."""
    rng = random.Random(settings.seed)
    count = settings.random
    picks = rng.sample(range(n), count) if count <= n else [rng.randrange(n) for _ in range(count)]
    options, frames, batch = settings.options(), list(frames), settings.batch

    def in_time(started: float) -> bool:
        return time.perf_counter() - started < settings.max_seconds

    def one_by_one() -> int:
        done, started = 0, time.perf_counter()
        with MaskDataset(frames, **options) as ds:
            for i in picks:
                ds[i]
                done += 1
                if not in_time(started):
                    break
        return done

    def batches() -> int:
        done, started = 0, time.perf_counter()
        with MaskDataset(frames, **options) as ds:
            for start in range(0, len(picks), batch):
                done += len(ds.__getitems__(picks[start:start + batch]))
                if not in_time(started):
                    break
        return done

    rows = [Row("random_one_by_one", "one by one: MaskDataset[i]", "samples"),
            Row("random_batches", f"batches of {batch}: MaskDataset.__getitems__", "samples"),
            Row("random_gop_sampler", f"GOP-aware sampler, batches of {batch}", "samples")]
    runs: dict[str, Callable[[], int]] = {"random_one_by_one": one_by_one, "random_batches": batches}
    sampler = gop_sampler_class()
    if sampler is None:
        rows[2].note = "not in this maskdec (maskdec.sampling.GopBatchSampler)"
    else:
        def gop() -> int:
            done, started = 0, time.perf_counter()
            with MaskDataset(frames, **options) as ds:
                for indices in _gop_batches(sampler, ds, batch, settings.seed):
                    indices = indices[:count - done]
                    ds.__getitems__(indices)
                    done += len(indices)
                    if done >= count or not in_time(started):
                        break
            return done

        try:  # a sampler that cannot be driven so is reported, not fatal
            with MaskDataset(frames, **options) as probe:
                next(_gop_batches(sampler, probe, batch, settings.seed))
            runs["random_gop_sampler"] = gop
        except Exception as exc:  # noqa: BLE001
            rows[2].note = f"could not run GopBatchSampler: {type(exc).__name__}: {exc}"
    timings = _measure(runs, settings, tick)
    for row in rows:
        row.timing = timings.get(row.name)
    for _ in range((settings.repeat + 1) * (3 - len(runs))):
        tick("skip")
    return rows, count


# ------------------------------------------------------------------ scaling

def _scaling(frames: Sequence[Frame], settings: BenchSettings, tmp: str, tick: Progress,
             notes: list[str]) -> list[Row]:
    """The same samples through the export worker pool (label maps, png) with 1 and N workers,
    and through a torch DataLoader (whole samples, in order) with 0 and N workers."""
    from .export import export

    workers, frames = settings.workers, list(frames)
    serial = iter(range(10 ** 9))
    failed: list[int] = []

    def export_run(n: int) -> Callable[[], int]:
        def run() -> int:
            out = os.path.join(tmp, f"export-{next(serial)}")
            summary = export(frames, out, images=False, workers=n, labels=settings.labels,
                             mask_labels=settings.mask_labels, tolerance=settings.tolerance)
            if summary.failed:
                failed.append(summary.failed)
            return summary.samples
        return run

    rows = [Row("export:1", "export (label maps, png), 1 worker", "samples"),
            Row(f"export:{workers}", f"export (label maps, png), {workers} workers", "samples"),
            Row("dataloader:0", f"DataLoader, batch {settings.batch}, 0 workers", "samples"),
            Row(f"dataloader:{workers}", f"DataLoader, batch {settings.batch}, {workers} workers", "samples")]
    runs: dict[str, Callable[[], int]] = {"export:1": export_run(1), f"export:{workers}": export_run(workers)}
    try:
        import torch  # noqa: F401
        from torch.utils.data import DataLoader

        from . import torch as maskdec_torch
    except ImportError:
        rows[2].note = rows[3].note = "torch is not installed"
    else:
        def loader_run(n: int) -> Callable[[], int]:
            def run() -> int:
                ds = maskdec_torch.MaskDataset(frames, **settings.options())
                loader = DataLoader(ds, batch_size=settings.batch, num_workers=n, collate_fn=ds.collate)
                try:
                    return sum(len(b["frame_index"]) for b in loader)
                finally:
                    ds.close()
            return run

        runs["dataloader:0"] = loader_run(0)
        runs[f"dataloader:{workers}"] = loader_run(workers)
    if workers == 1:  # one row of each kind is enough
        rows = [rows[0], rows[2]]
    timings = _measure(runs, settings, tick)
    for row in rows:
        row.timing = timings.get(row.name)
    for _ in range((settings.repeat + 1) * (4 - len(runs))):
        tick("skip")
    if failed:
        notes.append(f"the export failed {max(failed)} samples in a run (see maskdec export)")
    for one, many in zip(rows[::2], rows[1::2]) if workers > 1 else ():
        if one.timing is not None and many.timing is not None and many.timing.rate < one.timing.rate:
            notes.append(f"{many.title}: slower than {one.title.rsplit(', ', 1)[-1]} on {one.timing.items} samples, "
                         f"where starting the worker processes outweighs the work; --samples N with more "
                         f"samples shows the steady rate")
    return rows


# ------------------------------------------------------------------ advice

def _reencode_commands(f: FileFacts) -> list[str]:
    stem = os.path.splitext(os.path.basename(f.uri))[0]
    keep = "-map 0:v:0 -fps_mode passthrough"  # the video stream alone, every frame at its own time
    if "mask" in f.roles and f.lossless:
        return [f"ffmpeg -i {f.name} {keep} -c:v ffv1 -level 3 -slicecrc 1 -g 1 {stem}_intra.mkv "
                f"(lossless, every frame a keyframe)"]
    gop = f"-g {TARGET_GOP} -keyint_min {TARGET_GOP} -sc_threshold 0 -bf 0"
    commands = [f"ffmpeg -i {f.name} {keep} -c:v libx264 -crf 18 {gop} -pix_fmt yuv420p {stem}_g{TARGET_GOP}.mp4"]
    if "mask" in f.roles:
        commands.append(f"ffmpeg -i {f.name} {keep} -c:v ffv1 -level 3 -slicecrc 1 -g 1 {stem}_intra.mkv "
                        f"(no further loss, every frame a keyframe, larger)")
    return commands


def _gain(random_s: float, in_order_s: float, extra_now: float, extra_after: float) -> float:
    """How much faster random access gets when each sample decodes `extra_after` frames beyond
    the ones it needs instead of `extra_now`: all of random access's extra time over reading in
    order is put on those frames (an upper bound: seeks and per-sample work stay)."""
    per_frame = max(random_s - in_order_s, 0.0) / max(extra_now, 1e-9)
    return max(1.0, random_s / (in_order_s + max(extra_after, 0.0) * per_frame))


def advice(report: BenchReport) -> list[str]:
    """What to change: whether re-encoding with a shorter GOP would pay off for random access
    (files with keyframes more than 2 * TARGET_GOP frames apart, and a predicted gain of at
    least PAYS_OFF), with the commands to do it."""
    videos = [f for f in report.files if not f.still]
    deep = [f for f in videos if f.max_gop > 2 * TARGET_GOP and f.mean_depth > (TARGET_GOP + 1) / 2]
    in_order = report.in_order_rate
    single = report.rate_of(report.random, "random_one_by_one")
    sampler = report.rate_of(report.random, "random_gop_sampler")
    out = []
    if not videos:
        return ["every medium is a still image: random access costs what reading in order costs"]
    if in_order is None or single is None:
        if deep:
            out.append(f"a random sample decodes about {sum(f.mean_depth for f in deep):.0f} frames from keyframes "
                       f"(keyframes up to {max(f.max_gop for f in deep)} frames apart); run with --random N to "
                       f"see what that costs")
        return out
    slowdown = in_order / single
    now = sum(f.mean_depth for f in deep)
    after = sum((TARGET_GOP + 1) / 2 for f in deep)
    gain = _gain(1 / single, 1 / in_order, now - len(deep), after - len(deep)) if deep else 1.0
    if gain >= PAYS_OFF:
        names = ", ".join(f"{f.name} {f.mean_depth:.0f} of a GOP of {f.max_gop}" for f in deep[:4])
        more = f", and {len(deep) - 4} more files" if len(deep) > 4 else ""
        out.append(f"random access is {slowdown:.1f}x slower than reading in order: to reach a random sample's "
                   f"frame, decoding starts at its keyframe, {now:.0f} frames a sample on average here "
                   f"({names}{more}). Re-encoding with a keyframe every {TARGET_GOP} frames would make random "
                   f"access up to about {gain:.1f}x faster (files get larger); point the frames at the new files "
                   f"(timestamps stay):")
        shown: dict[tuple, FileFacts] = {}
        for f in deep:
            shown.setdefault(("mask" in f.roles, f.lossless), f)
        for f in shown.values():
            out += [f"  {c}" for c in _reencode_commands(f)]
        out.append("  or, from label maps (maskdec export --no-images): maskdec encode LABEL_MAPS --labels "
                   "labels.json --codec ffv1 --out DIR (lossless FFV1, short GOPs)")
    elif not deep:
        out.append(f"keyframes are at most {max(f.max_gop for f in videos)} frames apart (or the samples lie near "
                   f"them): a shorter GOP would gain little for random access ({slowdown:.1f}x slower than reading "
                   f"in order here)")
    else:
        out.append(f"random access is {slowdown:.1f}x slower than reading in order, but re-encoding with a keyframe "
                   f"every {TARGET_GOP} frames would gain at most {gain:.1f}x here ({now:.0f} frames decoded from "
                   f"keyframes a sample): not worth it")
    if sampler is not None and in_order and sampler >= 0.8 * in_order:
        out.append(f"the GOP-aware sampler reads {sampler / in_order:.2f}x in-order speed: use it for shuffled "
                   f"training before re-encoding anything")
    timings = {r.name: r.timing for r in report.stages if r.timing is not None}
    yuv, rgb = timings.get("label_maps_yuv"), timings.get("label_maps_rgb")
    if yuv and rgb and rgb.spread[0] > yuv.spread[1]:  # faster in every run, not by noise
        out.append(f"the RGB path was faster than the YUV path in every run ({rgb.rate / yuv.rate:.2f}x): "
                   f"yuv=False trades the YUV path's accuracy at colour edges for that speed")
    return out
