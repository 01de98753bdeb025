"""Core benchmark: the colour kernel against numpy, and end-to-end against PyAV decode.

Generates a 1080p H.264 yuv420p mask clip (the example scene, 6 touching
colours), then prints in one run:
  - ms per frame of the Cython kernel, numpy's packed-LUT way and the np.unique way
    (outputs checked equal before timing);
  - label maps per second of maskdec.iter_samples (frames parsed and colour
    tables built before timing) beside PyAV decode-only and PyAV decode + rgb24
    frames per second.
Ratios are what to read: this machine is shared and noisy.

    python benchmarks/bench_core.py [--frames 90] [--json benchmarks/results/core.json]
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
from maskdec.lut import DEFAULT_LOSSY_TOLERANCE, ColourTable, map_pixels
from maskdec.media.writer import write_video

W, H = 1920, 1080


def best_of(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def numpy_packed_lut(rgb: np.ndarray, lut: np.ndarray) -> np.ndarray:
    packed = (rgb[..., 0].astype(np.uint32) << 16) | (rgb[..., 1].astype(np.uint32) << 8) | rgb[..., 2]
    return lut[packed]


def numpy_unique(rgb: np.ndarray, lut: np.ndarray) -> np.ndarray:
    packed = (rgb[..., 0].astype(np.uint32) << 16) | (rgb[..., 1].astype(np.uint32) << 8) | rgb[..., 2]
    colours, inverse = np.unique(packed, return_inverse=True)
    return lut[colours][inverse].reshape(packed.shape)


def make_clip(path: Path, frames: int) -> None:
    write_video(path, (colour_mask(scene_classes(i, H, W)) for i in range(frames)), fps=30,
                codec="libx264", pix_fmt="yuv420p", options={"crf": "23"})


def decode_rate(path: Path, convert) -> float:
    t0 = time.perf_counter()
    n = 0
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        s.codec_context.thread_type = "AUTO"
        for frame in c.decode(s):
            convert(frame)
            n += 1
    return n / (time.perf_counter() - t0)


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
        ref = numpy_packed_lut(rgb, lut)
        assert np.array_equal(map_pixels(rgb, table, DEFAULT_LOSSY_TOLERANCE, out=out), ref)
        assert np.array_equal(numpy_unique(rgb, lut), ref)
        kernel_ms = best_of(lambda: map_pixels(rgb, table, DEFAULT_LOSSY_TOLERANCE, out=out), 30) * 1e3
        packed_ms = best_of(lambda: numpy_packed_lut(rgb, lut), 10) * 1e3
        unique_ms = best_of(lambda: numpy_unique(rgb, lut), 3) * 1e3

        decode_fps = max(decode_rate(clip, lambda f: None) for _ in range(2))
        rgb_fps = max(decode_rate(clip, lambda f: f.to_ndarray(format="rgb24")) for _ in range(2))
        frames = [maskdec.Frame.from_dict(f) for f in frames_json(clip, args.frames)]
        sum(1 for _ in maskdec.iter_samples(frames, images=False))  # builds the colour tables once
        e2e_fps = 0.0
        for _ in range(2):
            t0 = time.perf_counter()
            n = sum(1 for _ in maskdec.iter_samples(frames, images=False))
            e2e_fps = max(e2e_fps, n / (time.perf_counter() - t0))

    results = {
        "machine": f"{platform.node()} {platform.machine()} {platform.processor() or ''}".strip(),
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
