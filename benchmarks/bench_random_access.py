"""Random access: the decode planner against seeking per request, on a long-GOP 1080p clip.

Generates a 1080p libx264 yuv420p crf 23 mask clip (the example scene, 6 touching
colours) with one keyframe every 250 frames and B-frames, picks 64 random frames,
checks that every way below returns the same frames, then prints in one run:
  - naive: PyAV, for each request seek to it and decode forward (frames/s);
  - planner: the same 64 requests as one batch through MediaReader.frames_at (frames/s),
    and its ratio to naive (goal: >= 5x);
  - MaskDataset.__getitems__ on the 64 (label maps/s), MaskDataset[i] one by one in
    shuffled order (label maps/s), MaskDataset[i] in order (label maps/s);
  - the one-time frame index build, and peak RSS of the process;
  - a long run: one MaskDataset serving --segments equal segments of random accesses
    (batches through __getitems__ and single ds[i], the label maps dropped as a training
    loop drops them), the current RSS (/proc/self/statm) sampled after every access. A first
    warm-up segment fills caches and pools; then the peak RSS of the first measured segment
    is compared with the last one's: "flat" when the growth is within FLAT_MIB or FLAT_SHARE
    of the first, whichever is larger, else "growing".
Ratios are what to read: this machine is shared and noisy.

    python benchmarks/bench_random_access.py [--frames 300] [--segments 6] [--per-segment 256]
                                             [--json benchmarks/results/random_access.json]
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import random
import resource
import tempfile
import time
from pathlib import Path

import av
import numpy as np

import maskdec
from maskdec.example import PALETTE, colour_mask, scene_classes
from maskdec.media.index import clear_memory_cache
from maskdec.media.reader import MediaReader
from maskdec.media.writer import write_video

W, H, FPS, KEYINT, BATCH = 1920, 1080, 30, 250, 64
#: The long run is "flat" when the last segment's peak RSS exceeds the first measured
#: segment's by at most FLAT_MIB MiB or FLAT_SHARE of it, whichever is larger.
FLAT_MIB, FLAT_SHARE = 10.0, 0.05


def best_of(fn, repeat: int):
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


_PAGE_MIB = os.sysconf("SC_PAGE_SIZE") / 2 ** 20


def rss_mib() -> float:
    """The process's resident set size now (not its peak so far), from /proc/self/statm."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * _PAGE_MIB


def long_run(frames: list[dict], n_frames: int, segments: int, per_segment: int, seed: int) -> dict:
    """One dataset, `segments` + 1 equal segments (the first a warm-up) of random accesses:
    7/8 of each in __getitems__ batches of 32, 1/8 one by one; the peak of the current RSS,
    sampled after every access, per segment."""
    rng = random.Random(seed)
    singles = per_segment // 8
    batches = (per_segment - singles) // 32
    peaks, ends, samples = [], [], 0
    t0 = time.perf_counter()
    with maskdec.MaskDataset(frames, images=False) as ds:
        for _ in range(segments + 1):
            peak = rss_mib()
            for _ in range(batches):
                batch = ds.__getitems__(rng.choices(range(n_frames), k=32))
                samples += len(batch)
                peak = max(peak, rss_mib())
                del batch
            for _ in range(singles):
                sample = ds[rng.randrange(n_frames)]
                samples += 1
                peak = max(peak, rss_mib())
                del sample
            peaks.append(peak)
            ends.append(rss_mib())
    seconds = time.perf_counter() - t0
    first, last = peaks[1], peaks[-1]
    growth = last - first
    bound = max(FLAT_MIB, FLAT_SHARE * first)
    return {
        "segments": segments, "accesses_per_segment": batches * 32 + singles,
        "warm_up_segment_peak_rss_mib": round(peaks[0], 1),
        "segment_peak_rss_mib": [round(p, 1) for p in peaks[1:]],
        "segment_end_rss_mib": [round(e, 1) for e in ends[1:]],
        "first_segment_peak_rss_mib": round(first, 1), "last_segment_peak_rss_mib": round(last, 1),
        "growth_mib": round(growth, 1), "growth_percent": round(100 * growth / first, 2),
        "flat_bound_mib": round(bound, 1),
        "verdict": "flat" if growth <= bound else "growing",
        "samples": samples, "seconds": round(seconds, 1),
    }


def digest(frame: av.VideoFrame) -> tuple[int, str]:
    """A frame's pts and a hash of its pixels, to compare frames without keeping them."""
    return frame.pts, hashlib.sha1(frame.to_ndarray(format="gray").tobytes()).hexdigest()


def naive(clip: Path, targets: list[int], keep: bool = False) -> list:
    """The common way: per request, seek to the keyframe before it and decode forward to it."""
    out = []
    with av.open(str(clip)) as container:
        stream = container.streams.video[0]
        stream.codec_context.thread_type = "AUTO"
        for target in targets:
            container.seek(target, stream=stream, backward=True)
            for frame in container.decode(stream):
                if frame.pts >= target:
                    out.append(digest(frame) if keep else frame.pts)
                    break
    return out


def planner(clip: Path, stamps: list[int], keep: bool = False) -> dict:
    """The same requests as one batch: the reader's planner sorts them and decodes each GOP once."""
    with MediaReader(str(clip)) as reader:
        return {ts: digest(frame) if keep else frame.pts for ts, frame in reader.frames_at(stamps)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=300)
    ap.add_argument("--repeat", type=int, default=2, help="best of N runs per measure")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--segments", type=int, default=6, help="measured segments of the long run (after a warm-up)")
    ap.add_argument("--per-segment", type=int, default=256, help="random accesses per segment of the long run")
    ap.add_argument("--json", type=Path, default=Path(__file__).parent / "results" / "random_access.json")
    args = ap.parse_args()
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        clip = Path(tmp) / "mask.mp4"
        t0 = time.perf_counter()
        write_video(clip, (colour_mask(scene_classes(i, H, W)) for i in range(args.frames)), fps=FPS,
                    options={"crf": "23", "bf": "3", "preset": "veryfast",
                             "x264-params": f"keyint={KEYINT}:min-keyint={KEYINT}:scenecut=0"})
        made_s = time.perf_counter() - t0
        with av.open(str(clip)) as c:  # every frame's pts, and the keyframes, the plain way
            keys = sum(p.is_keyframe for p in c.demux(video=0) if p.size)
        with av.open(str(clip)) as c:
            all_pts = [f.pts for f in c.decode(video=0)]
            time_base = c.streams.video[0].time_base
        assert len(all_pts) == args.frames and keys == -(-args.frames // KEYINT), (len(all_pts), keys)
        positions = rng.sample(range(args.frames), BATCH)
        targets = [all_pts[p] for p in positions]
        stamps = [int((t - all_pts[0]) * time_base * 1000) for t in targets]  # as writers store them

        clear_memory_cache()
        t0 = time.perf_counter()
        with MediaReader(str(clip)) as reader:
            reader.index
        index_ms = (time.perf_counter() - t0) * 1000

        # the same frames, every way
        by_naive = naive(clip, targets, keep=True)
        by_planner = planner(clip, stamps, keep=True)
        for got, target, ts in zip(by_naive, targets, stamps):
            assert got[0] == target and got == by_planner[ts], (got, target, by_planner[ts])
        frames = [{"sources": [{"id": "cam", "uri": str(clip), "timestamp": int((t - all_pts[0]) * time_base * 1000),
                                "masks": [{"id": "seg", "uri": str(clip)}]}],
                   "rois": [{"label": [name], "mask": {"id": "seg", "value": list(colour)}}
                            for name, colour in PALETTE.items()]} for t in all_pts]
        ds = maskdec.MaskDataset(frames, images=False)
        ids = np.array([ds.labels.ids[name] for name in PALETTE])
        checked = ds.__getitems__(positions[:8])
        for p, sample in zip(positions[:8], checked):
            accuracy = (sample.label_map == ids[scene_classes(p, H, W)]).mean()
            assert accuracy > 0.99, (p, accuracy)
        ds.close()
        del checked, sample
        rss_before = peak_rss_mib()

        naive_s, _ = best_of(lambda: naive(clip, targets), args.repeat)
        planner_s, _ = best_of(lambda: planner(clip, stamps), args.repeat)

        def dataset_batch():  # the caller keeps the batch's 64 label maps
            with maskdec.MaskDataset(frames, images=False) as d:
                return len(d.__getitems__(positions))

        def dataset_shuffled():  # a training loop: one sample at a time, then dropped
            with maskdec.MaskDataset(frames, images=False) as d:
                return sum(d[p].label_map.shape[0] for p in positions)

        def dataset_sequential():
            with maskdec.MaskDataset(frames, images=False) as d:
                return sum(d[p].label_map.shape[0] for p in range(len(d)))

        batch_s, _ = best_of(dataset_batch, args.repeat)
        shuffled_s, _ = best_of(dataset_shuffled, args.repeat)
        sequential_s, _ = best_of(dataset_sequential, 1)
        rss = long_run(frames, args.frames, args.segments, args.per_segment, args.seed)

    rows = {
        "naive seek + decode per request (PyAV), frames/s": BATCH / naive_s,
        "planner, one batch of 64, frames/s": BATCH / planner_s,
        "MaskDataset.__getitems__(64), label maps/s": BATCH / batch_s,
        "MaskDataset[i], 64 shuffled, label maps/s": BATCH / shuffled_s,
        f"MaskDataset[i], all {args.frames} in order, label maps/s": args.frames / sequential_s,
    }
    ratio = naive_s / planner_s
    result = {
        "machine": f"{platform.machine()} {os.cpu_count()} cores, {platform.system()} {platform.release()}",
        "clip": f"{W}x{H} libx264 yuv420p crf 23 veryfast, {args.frames} frames at {FPS} fps, keyint {KEYINT}, "
                f"bf 3, 6 colours ({made_s:.0f} s to make)",
        "requests": BATCH,
        "samples_per_s": {k: round(v, 1) for k, v in rows.items()},
        "planner_over_naive": round(ratio, 1),
        "dataset_batch_over_naive": round(naive_s / batch_s, 1),
        "index_build_ms": round(index_ms, 1),
        "peak_rss_mib": round(peak_rss_mib(), 1),
        "peak_rss_mib_before_timing": round(rss_before, 1),
        "long_run_rss": rss,
    }
    for k, v in rows.items():
        print(f"{k:60s} {v:9.1f}")
    print(f"{'planner / naive (goal >= 5x)':60s} {ratio:9.1f}x")
    print(f"{'MaskDataset batch / naive':60s} {naive_s / batch_s:9.1f}x")
    print(f"{'frame index build (once per file)':60s} {index_ms:9.1f} ms")
    print(f"{'peak RSS (before the timed runs)':60s} {peak_rss_mib():9.1f} MiB ({rss_before:.1f})")
    print(f"long run: {rss['samples']} random samples from one MaskDataset in {rss['segments']} segments of "
          f"{rss['accesses_per_segment']} accesses after a warm-up one ({rss['seconds']:.0f} s)")
    print(f"{'  peak RSS per segment, MiB':60s} {' '.join(f'{p:.0f}' for p in rss['segment_peak_rss_mib'])}"
          f" (warm-up {rss['warm_up_segment_peak_rss_mib']:.0f})")
    print(f"{'  RSS at the end of each segment, MiB':60s} {' '.join(f'{e:.0f}' for e in rss['segment_end_rss_mib'])}")
    print(f"{'  last segment over first':60s} {rss['growth_mib']:+9.1f} MiB ({rss['growth_percent']:+.1f}%)")
    print(f"{'  verdict (flat: growth <= ' + str(rss['flat_bound_mib']) + ' MiB)':60s} {rss['verdict']:>9s}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
