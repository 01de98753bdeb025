"""Core benchmark: the colour kernel against numpy, and end-to-end against PyAV decode.

Generates a 1080p H.264 yuv420p mask clip (the example scene, 6 touching
colours), then prints in one run:
  - ms per frame of the Cython kernel, numpy's packed-LUT way and the np.unique way
    (outputs checked equal before timing);
  - label maps per second of maskdec.iter_samples (frames parsed and colour
    tables built before timing) beside PyAV decode-only and PyAV decode + rgb24
    frames per second.
Medians of interleaved runs, timed by maskdec.bench (the loops `maskdec bench` uses).
Ratios are what to read: this machine is shared and noisy.

    python benchmarks/bench_core.py [--frames 90] [--json benchmarks/results/core.json]
"""
from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import av
import numpy as np

import maskdec
from maskdec import bench
from maskdec.example import PALETTE, colour_mask, scene_classes
from maskdec.lut import DEFAULT_LOSSY_TOLERANCE, ColourTable, map_pixels
from maskdec.media.reader import MediaReader
from maskdec.media.writer import write_video

W, H = 1920, 1080


def ms_per_call(fn, repeat: int) -> float:
    """Median ms of `repeat` calls (maskdec.bench's timing loop)."""
    def once() -> int:
        fn()
        return 1
    return bench.measure({"fn": once}, repeat)["fn"].ms_per_item


def numpy_unique(rgb: np.ndarray, lut: np.ndarray) -> np.ndarray:
    colours, inverse = np.unique(bench.packed_colours(rgb), return_inverse=True)
    return lut[colours][inverse].reshape(rgb.shape[:2])


def make_clip(path: Path, frames: int) -> None:
    write_video(path, (colour_mask(scene_classes(i, H, W)) for i in range(frames)), fps=30,
                codec="libx264", pix_fmt="yuv420p", options={"crf": "23"})


def clip_work(path: Path) -> list[bench.FileWork]:
    """Every frame of the clip, as maskdec.bench's plain ways take them."""
    with MediaReader(str(path)) as reader:
        pts = reader.index.pts
    return [bench.FileWork(str(path), tuple(pts), tuple(range(len(pts))), tuple((k,) for k in range(len(pts))))]


def frames_json(path: Path, frames: int) -> list[dict]:
    out = []
    for i in range(frames):
        ts = int(i * 1000 / 30)
        out.append({"sources": [{"id": "cam", "uri": str(path), "timestamp": ts,
                                 "masks": [{"id": "seg", "uri": str(path), "timestamp": ts}]}],
                    "rois": [{"label": [n], "mask": {"id": "seg", "value": list(c)}} for n, c in PALETTE.items()]})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=90)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        clip = Path(tmp) / "mask_1080p.mp4"
        make_clip(clip, args.frames)
        with av.open(str(clip)) as c:
            rgb = next(c.decode(video=0)).to_ndarray(format="rgb24")
        table = ColourTable(tuple(PALETTE.values()), tuple(range(len(PALETTE))), 255)
        lut = table.rgb_lut(DEFAULT_LOSSY_TOLERANCE)
        out = np.empty(rgb.shape[:2], np.uint8)
        ref = bench.numpy_label_map(rgb, lut)
        assert np.array_equal(map_pixels(rgb, table, DEFAULT_LOSSY_TOLERANCE, out=out), ref)
        assert np.array_equal(numpy_unique(rgb, lut), ref)
        kernel_ms = ms_per_call(lambda: map_pixels(rgb, table, DEFAULT_LOSSY_TOLERANCE, out=out), 30)
        packed_ms = ms_per_call(lambda: bench.numpy_label_map(rgb, lut), 10)
        unique_ms = ms_per_call(lambda: numpy_unique(rgb, lut), 3)

        work = clip_work(clip)
        frames = [maskdec.Frame.from_dict(f) for f in frames_json(clip, args.frames)]
        sum(1 for _ in maskdec.iter_samples(frames, images=False))  # builds the colour tables once
        rates = bench.measure({  # frames/s, median of interleaved runs
            "decode": lambda: bench.decode(work),
            "rgb24": lambda: bench.decode(work, convert=bench.rgb24),
            "maskdec": lambda: sum(1 for _ in maskdec.iter_samples(frames, images=False)),
        }, 3)
        decode_fps, rgb_fps, e2e_fps = (rates[k].rate for k in ("decode", "rgb24", "maskdec"))

    results = {
        "machine": bench.machine_line(),
        "clip": f"{W}x{H} libx264 yuv420p crf 23, {len(PALETTE)} colours, {args.frames} frames",
        "kernel_ms_per_frame": round(kernel_ms, 2),
        "numpy_packed_lut_ms_per_frame": round(packed_ms, 2),
        "numpy_unique_ms_per_frame": round(unique_ms, 2),
        "kernel_speedup_vs_packed_lut": round(packed_ms / kernel_ms, 1),
        "kernel_speedup_vs_unique": round(unique_ms / kernel_ms, 1),
        "pyav_decode_only_fps": round(decode_fps, 1),
        "pyav_decode_rgb24_fps": round(rgb_fps, 1),
        "maskdec_label_maps_per_s": round(e2e_fps, 1),
        "maskdec_vs_decode_only": round(e2e_fps / decode_fps, 2),
        "maskdec_vs_decode_rgb24": round(e2e_fps / rgb_fps, 2),
    }
    width = max(len(k) for k in results)
    for key, value in results.items():
        print(f"{key:<{width}}  {value}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
