"""Label maps faster than RGB: the YUV path against PyAV and numpy, one run, one table.

Generates a 1080p libx264 yuv420p crf 23 mask clip with 20 colours that touch
(moving wedges and discs), then measures frames per second and pixel accuracy
(against the generator's ground truth) of:
  1. PyAV decode only                        (the ceiling)
  2. PyAV decode + to_ndarray("rgb24")
  3. PyAV rgb24 + numpy packed LUT            (the common way)
  4. maskdec RGB path   (iter_samples(..., yuv=False))
  5. maskdec YUV path   (iter_samples(...), the default)
and each one's ratio to decode-only. Writes the table as JSON.

    python benchmarks/bench_yuv.py [--frames 120] [--json benchmarks/results/yuv.json]
"""
from __future__ import annotations

import argparse
import colorsys
import json
import platform
import tempfile
import time
from pathlib import Path

import av
import numpy as np

import maskdec
from maskdec.lut import DEFAULT_LOSSY_TOLERANCE, ColourTable
from maskdec.media.writer import write_video

W, H, FPS, N_COLOURS = 1920, 1080, 30, 20


def palette() -> list[tuple[int, int, int]]:
    colours = []
    for i in range(N_COLOURS):
        r, g, b = colorsys.hsv_to_rgb((i * 0.618034) % 1.0, 0.55 + 0.4 * (i % 3) / 2, 0.45 + 0.5 * (i % 4) / 3)
        colours.append((int(r * 255), int(g * 255), int(b * 255)))
    return colours


def classes(index: int, h: int = H, w: int = W) -> np.ndarray:
    """20 regions that touch: 14 rotating wedges around the centre, 6 moving discs."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    angle = (np.arctan2(y - h / 2, x - w / 2) + index * 0.02) % (2 * np.pi)
    out = (angle / (2 * np.pi) * 14).astype(np.uint8)
    for k in range(6):
        cx = w * (0.15 + 0.14 * k) + 80 * np.sin(index * 0.05 + k)
        cy = h * (0.3 + 0.4 * (k % 2)) + 60 * np.cos(index * 0.04 + k)
        out[(x - cx) ** 2 + (y - cy) ** 2 <= (90 + 10 * k) ** 2] = 14 + k
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=120)
    ap.add_argument("--repeat", type=int, default=3, help="best of N runs per pipeline")
    ap.add_argument("--json", type=Path, default=Path(__file__).parent / "results" / "yuv.json")
    args = ap.parse_args()
    colours = palette()
    lut_np = np.array(colours, np.uint8)
    with tempfile.TemporaryDirectory() as tmp:
        clip = Path(tmp) / "mask20.mp4"
        truth = [classes(i) for i in range(args.frames)]
        write_video(clip, (lut_np[c] for c in truth), fps=FPS, codec="libx264", pix_fmt="yuv420p",
                    options={"crf": "23"})
        frames = [{"sources": [{"id": "cam", "uri": str(clip), "timestamp": int(i * 1000 / FPS),
                                "masks": [{"id": "seg", "uri": str(clip)}]}],
                   "rois": [{"label": [f"c{k:02d}"], "mask": {"id": "seg", "value": list(c)}}
                            for k, c in enumerate(colours)]} for i in range(args.frames)]
        table = ColourTable(tuple(colours), tuple(range(N_COLOURS)), 255)
        rgb_lut = table.rgb_lut(DEFAULT_LOSSY_TOLERANCE)

        def accuracy(maps) -> float:
            return float(np.mean([(m == t).mean() for m, t in zip(maps, truth)]))

        frames = [maskdec.Frame.from_dict(f) for f in frames]  # parsing is not what is measured

        def pyav(convert):
            def go(keep: bool):
                out = []
                with av.open(str(clip)) as c:
                    s = c.streams.video[0]
                    s.codec_context.thread_type = "AUTO"
                    for frame in c.decode(s):
                        result = convert(frame)
                        if keep:
                            out.append(result)
                return out
            return go

        def numpy_lut(frame):
            rgb = frame.to_ndarray(format="rgb24")
            packed = (rgb[..., 0].astype(np.uint32) << 16) | (rgb[..., 1].astype(np.uint32) << 8) | rgb[..., 2]
            return rgb_lut[packed]

        def maskdec_path(yuv: bool):
            def go(keep: bool):
                out = []
                for sample in maskdec.iter_samples(frames, images=False, yuv=yuv):
                    if keep:
                        out.append(sample.label_map)
                return out
            return go

        pipelines = {
            "pyav_decode_only": (pyav(lambda f: None), False),
            "pyav_decode_rgb24": (pyav(lambda f: f.to_ndarray(format="rgb24") is None), False),
            "pyav_rgb24_numpy_packed_lut": (pyav(numpy_lut), True),
            "maskdec_rgb_path": (maskdec_path(False), True),
            "maskdec_yuv_path": (maskdec_path(True), True),
        }
        # Accuracy from one untimed run each (this also builds and caches the colour tables);
        # timed runs keep no outputs, for every pipeline alike.
        accuracies = {name: accuracy(go(True)) if has_maps else None for name, (go, has_maps) in pipelines.items()}
        best = dict.fromkeys(pipelines, 0.0)
        for _ in range(args.repeat):  # interleaved, so load changes hit every pipeline alike
            for name, (go, _) in pipelines.items():
                t0 = time.perf_counter()
                go(False)
                best[name] = max(best[name], args.frames / (time.perf_counter() - t0))
        rows = {name: {"fps": round(best[name], 1),
                       "pixel_accuracy": None if accuracies[name] is None else round(accuracies[name], 5)}
                for name in pipelines}
    base = rows["pyav_decode_only"]["fps"]
    for row in rows.values():
        row["ratio_to_decode_only"] = round(row["fps"] / base, 2)
    yuv = rows["maskdec_yuv_path"]["fps"]
    result = {
        "machine": f"{platform.node()} {platform.machine()}, {__import__('os').cpu_count()} cores",
        "clip": f"{W}x{H} libx264 yuv420p crf 23, {N_COLOURS} touching colours, {args.frames} frames",
        "pipelines": rows,
        "goals": {
            "yuv_vs_decode_only (>= 0.6)": round(yuv / base, 2),
            "yuv_vs_decode_rgb24 (>= 1.2)": round(yuv / rows["pyav_decode_rgb24"]["fps"], 2),
            "yuv_vs_numpy_pipeline (>= 4)": round(yuv / rows["pyav_rgb24_numpy_packed_lut"]["fps"], 2),
            "yuv_accuracy_minus_rgb_accuracy (>= 0)": round(
                rows["maskdec_yuv_path"]["pixel_accuracy"] - rows["maskdec_rgb_path"]["pixel_accuracy"], 5),
        },
    }
    print(f"{'pipeline':<30} {'fps':>8} {'accuracy':>9} {'x decode':>9}")
    for name, row in rows.items():
        acc = "" if row["pixel_accuracy"] is None else f"{row['pixel_accuracy']:.4f}"
        print(f"{name:<30} {row['fps']:>8.1f} {acc:>9} {row['ratio_to_decode_only']:>9.2f}")
    for goal, value in result["goals"].items():
        print(f"{goal:<40} {value}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
