"""Per-ROI views against label maps alone, on a generated 10-ROI clip, one run.

Measures, on a 1280x720 libx264 yuv420p clip whose frames each carry 10 ROIs
(one colour each, all touching):
  - Samples per second: iter_samples(images=False), label maps only;
  - RoiSamples per second: iter_roi_samples(images=False), reading every
    ROI's box, area and mask;
and the cost ratio per mask frame (goal: per-ROI views at most 1.25x).

    python benchmarks/bench_rois.py [--frames 90] [--json benchmarks/results/rois.json]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import maskdec
from maskdec.media.writer import write_video

sys.path.insert(0, str(Path(__file__).parent))
from bench_yuv import classes, palette  # noqa: E402  (the same generated scene, 10 colours)

W, H, FPS, N_ROIS = 1280, 720, 30, 10


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=90)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json", type=Path, default=Path(__file__).parent / "results" / "rois.json")
    args = ap.parse_args()
    colours = np.array(palette()[:N_ROIS], np.uint8)
    with tempfile.TemporaryDirectory() as tmp:
        clip = Path(tmp) / "rois.mp4"
        write_video(clip, (colours[classes(i, H, W) % N_ROIS] for i in range(args.frames)), fps=FPS,
                    codec="libx264", pix_fmt="yuv420p", options={"crf": "23"})
        frames = []
        for i in range(args.frames):
            frame = maskdec.Frame.from_dict({"sources": [{"id": "cam", "uri": str(clip), "timestamp": int(i * 1000 / FPS),
                                                          "masks": [{"id": "seg", "uri": str(clip)}]}]})
            for k, colour in enumerate(colours):
                frame.add_annotation(mask_rgb=colour.tolist(), labels=[f"object-{k}"], id=str(k))
            frames.append(frame)

        def samples() -> int:
            return sum(1 for _ in maskdec.iter_samples(frames, images=False))

        def roi_samples() -> int:
            n = 0
            for r in maskdec.iter_roi_samples(frames, images=False):
                _ = (r.box, r.area, r.mask)
                n += 1
            return n

        samples(), roi_samples()  # build the colour tables once
        best = {"samples": float("inf"), "roi_samples": float("inf")}
        counts = {}
        for _ in range(args.repeat):
            for name, fn in (("samples", samples), ("roi_samples", roi_samples)):
                t0 = time.perf_counter()
                counts[name] = fn()
                best[name] = min(best[name], time.perf_counter() - t0)
    result = {
        "machine": f"{platform.node()} {platform.machine()}, {os.cpu_count()} cores",
        "clip": f"{W}x{H} libx264 yuv420p crf 23, {N_ROIS} ROIs per frame, {args.frames} frames",
        "samples_per_s": round(counts["samples"] / best["samples"], 1),
        "roi_samples_per_s": round(counts["roi_samples"] / best["roi_samples"], 1),
        "cost_ratio_per_mask_frame (<= 1.25)": round(best["roi_samples"] / best["samples"], 3),
    }
    for key, value in result.items():
        print(f"{key:<40} {value}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
