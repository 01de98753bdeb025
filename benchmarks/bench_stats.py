"""Cost of the per-sample statistics (exact / snapped / unknown), counted in the mapping pass.

Decodes a few frames of a 1080p H.264 yuv420p mask clip (the example scene,
6 touching colours), then times, interleaved, on the same frames:
  - map_pixels alone and map_pixels(counts=...), from YUV planes and from RGB;
  - the numpy way of the same counts (packed colours, isin, compare), as a baseline;
  - label maps per second of iter_samples(images=False) with stats off and on.
Counts are checked equal to numpy's before timing. Ratios are what to read.

    python benchmarks/bench_stats.py [--frames 60] [--json benchmarks/results/stats.json]
"""
from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import av
import numpy as np

import maskdec
from maskdec.example import PALETTE, colour_mask, scene_classes
from maskdec.lut import DEFAULT_LOSSY_TOLERANCE, ColourTable, PixelStats, map_pixels
from maskdec.media.planes import yuv_planes
from maskdec.media.writer import write_video

W, H = 1920, 1080


def numpy_stats(rgb: np.ndarray, table: ColourTable, label_map: np.ndarray) -> PixelStats:
    packed = (rgb[..., 0].astype(np.uint32) << 16) | (rgb[..., 1].astype(np.uint32) << 8) | rgb[..., 2]
    keys = np.array([(r << 16) | (g << 8) | b for r, g, b in table.colours], np.uint32)
    exact = np.isin(packed, keys)
    unknown = ~exact & (label_map == table.ignore_index)
    e, u = int(exact.sum()), int(unknown.sum())
    return PixelStats(e, packed.size - e - u, u)


def with_stats(pixels, table: ColourTable, tol: float) -> PixelStats:
    counts = np.zeros(3, np.int64)
    map_pixels(pixels, table, tol, counts=counts)
    return PixelStats.from_counts(counts)


def timed(fn, frames) -> float:
    t0 = time.perf_counter()
    for f in frames:
        fn(f)
    return (time.perf_counter() - t0) / len(frames) * 1000


def end_to_end(clip: Path, frames: int, repeat: int) -> dict[str, float]:
    """Label maps per second of iter_samples over the clip, stats off and on, interleaved, best of."""
    rois = [{"label": [n], "mask": {"id": "seg", "value": list(c)}} for n, c in PALETTE.items()]
    frame_dicts = [{"sources": [{"id": "cam", "uri": str(clip), "timestamp": int(i * 1000 / 30),
                                 "masks": [{"id": "seg", "uri": str(clip)}]}], "rois": rois} for i in range(frames)]
    best = {"iter_samples": 0.0, "iter_samples_stats": 0.0}
    for _ in range(repeat):
        for key, stats in (("iter_samples", False), ("iter_samples_stats", True)):
            t0 = time.perf_counter()
            n = sum(1 for _ in maskdec.iter_samples(frame_dicts, images=False, stats=stats))
            best[key] = max(best[key], n / (time.perf_counter() - t0))
    return {k: round(v, 1) for k, v in best.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    table = ColourTable(tuple(PALETTE.values()), tuple(range(len(PALETTE))), 255)
    tol = DEFAULT_LOSSY_TOLERANCE
    with tempfile.TemporaryDirectory() as tmp:
        clip = Path(tmp) / "mask.mp4"
        write_video(clip, (colour_mask(scene_classes(i, H, W)) for i in range(args.frames)), fps=30,
                    codec="libx264", pix_fmt="yuv420p", options={"crf": "23"})
        with av.open(str(clip)) as c:
            decoded = list(c.decode(video=0))
        rates = end_to_end(clip, args.frames, args.repeat)
    planes = [yuv_planes(f) for f in decoded]
    rgbs = [f.to_ndarray(format="rgb24") for f in decoded]

    # correctness first: the kernel's counts equal numpy's on RGB frames
    for rgb in rgbs:
        lm = map_pixels(rgb, table, tol)
        assert with_stats(rgb, table, tol) == numpy_stats(rgb, table, lm)
    for p in planes:  # warm the tables
        with_stats(p, table, tol)

    runs: dict[str, list[float]] = {k: [] for k in ("yuv_map", "yuv_map_stats", "rgb_map", "rgb_map_stats",
                                                    "rgb_map_numpy_stats")}
    for _ in range(args.repeat):  # interleaved, best of
        runs["yuv_map"].append(timed(lambda p: map_pixels(p, table, tol), planes))
        runs["yuv_map_stats"].append(timed(lambda p: with_stats(p, table, tol), planes))
        runs["rgb_map"].append(timed(lambda r: map_pixels(r, table, tol), rgbs))
        runs["rgb_map_stats"].append(timed(lambda r: with_stats(r, table, tol), rgbs))
        runs["rgb_map_numpy_stats"].append(timed(lambda r: numpy_stats(r, table, map_pixels(r, table, tol)), rgbs))
    best = {k: round(min(v), 3) for k, v in runs.items()}
    result = {
        "machine": platform.machine(), "frames": args.frames, "size": f"{W}x{H}", "ms_per_frame": best,
        "stats_overhead_yuv": round(best["yuv_map_stats"] / best["yuv_map"], 3),
        "stats_overhead_rgb": round(best["rgb_map_stats"] / best["rgb_map"], 3),
        "label_maps_per_s": rates,
        "end_to_end_stats_ratio": round(rates["iter_samples_stats"] / rates["iter_samples"], 3),
        "kernel_vs_numpy_stats": round((best["rgb_map_numpy_stats"] - best["rgb_map"])
                                       / max(best["rgb_map_stats"] - best["rgb_map"], 1e-6), 1),
    }
    for k, v in best.items():
        print(f"{k:>22}: {v:8.3f} ms/frame")
    print(f"map + stats / map alone: YUV {result['stats_overhead_yuv']}x, RGB {result['stats_overhead_rgb']}x; "
          f"counting in the kernel is {result['kernel_vs_numpy_stats']}x faster than numpy's")
    print(f"iter_samples label maps/s: {rates['iter_samples']} without stats, {rates['iter_samples_stats']} with "
          f"({result['end_to_end_stats_ratio']}x)")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
