"""Label maps faster than RGB: the YUV path against PyAV and numpy, one run, one table.

Generates a 1080p libx264 yuv420p crf 23 mask clip with 20 colours that touch
(moving wedges and discs), then measures frames per second and pixel accuracy
(against the generator's ground truth) of:
  1. PyAV decode only                        (the ceiling)
  2. PyAV decode + to_ndarray("rgb24")
  3. PyAV rgb24 + numpy packed LUT            (the common way)
  4. maskdec RGB path   (iter_samples(..., yuv=False))
  5. maskdec YUV path   (iter_samples(...), the default)
and each one's ratio to decode-only: medians of interleaved runs, with their spread, timed
by maskdec.bench (the loops `maskdec bench` uses). Writes the table as JSON.

    python benchmarks/bench_yuv.py [--frames 120] [--json benchmarks/results/yuv.json]
"""
from __future__ import annotations

import argparse
import colorsys
import json
import tempfile
from pathlib import Path

import numpy as np

import maskdec
from maskdec import bench
from maskdec.lut import DEFAULT_LOSSY_TOLERANCE, ColourTable
from maskdec.media.reader import MediaReader
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
    ap.add_argument("--repeat", type=int, default=3, help="interleaved timed runs per pipeline (median reported)")
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
        with MediaReader(str(clip)) as reader:  # every frame of the clip, as maskdec.bench's plain ways take them
            pts = reader.index.pts
        work = [bench.FileWork(str(clip), tuple(pts), tuple(range(len(pts))), tuple((k,) for k in range(len(pts))))]

        def accuracy(maps) -> float:
            return float(np.mean([(m == t).mean() for m, t in zip(maps, truth)]))

        frames = [maskdec.Frame.from_dict(f) for f in frames]  # parsing is not what is measured

        def numpy_lut(keep: bool):
            maps = (bench.numpy_label_map(pixels, rgb_lut) for _, _, pixels in bench.pyav_pixels(work))
            return list(maps) if keep else sum(1 for _ in maps)

        def maskdec_path(yuv: bool):
            def go(keep: bool):
                maps = (s.label_map for s in maskdec.iter_samples(frames, images=False, yuv=yuv))
                return list(maps) if keep else sum(1 for _ in maps)
            return go

        pipelines = {
            "pyav_decode_only": (lambda keep: bench.decode(work), False),
            "pyav_decode_rgb24": (lambda keep: bench.decode(work, convert=bench.rgb24), False),
            "pyav_rgb24_numpy_packed_lut": (numpy_lut, True),
            "maskdec_rgb_path": (maskdec_path(False), True),
            "maskdec_yuv_path": (maskdec_path(True), True),
        }
        # Accuracy from one untimed run each (this also builds and caches the colour tables);
        # timed runs keep no outputs, for every pipeline alike. maskdec.bench.measure interleaves them.
        accuracies = {name: accuracy(go(True)) if has_maps else None for name, (go, has_maps) in pipelines.items()}
        timings = bench.measure({name: (lambda go: lambda: go(False))(go) for name, (go, _) in pipelines.items()},
                                args.repeat)
        rows = {name: {"fps": round(t.rate, 1), "fps_min": round(t.spread[0], 1), "fps_max": round(t.spread[1], 1),
                       "pixel_accuracy": None if accuracies[name] is None else round(accuracies[name], 5)}
                for name, t in timings.items()}
    base = rows["pyav_decode_only"]["fps"]
    for row in rows.values():
        row["ratio_to_decode_only"] = round(row["fps"] / base, 2)
    yuv = rows["maskdec_yuv_path"]["fps"]
    result = {
        "machine": bench.machine_line(),
        "clip": f"{W}x{H} libx264 yuv420p crf 23, {N_COLOURS} touching colours, {args.frames} frames",
        "timing": f"median of {args.repeat} interleaved runs (fps_min-fps_max: their spread)",
        "pipelines": rows,
        "goals": {
            "yuv_vs_decode_only (>= 0.6)": round(yuv / base, 2),
            "yuv_vs_decode_rgb24 (>= 1.2)": round(yuv / rows["pyav_decode_rgb24"]["fps"], 2),
            "yuv_vs_numpy_pipeline (>= 4)": round(yuv / rows["pyav_rgb24_numpy_packed_lut"]["fps"], 2),
            "yuv_accuracy_minus_rgb_accuracy (>= 0)": round(
                rows["maskdec_yuv_path"]["pixel_accuracy"] - rows["maskdec_rgb_path"]["pixel_accuracy"], 5),
        },
    }
    print(f"{'pipeline':<30} {'fps':>8} {'spread':>15} {'accuracy':>9} {'x decode':>9}")
    for name, row in rows.items():
        acc = "" if row["pixel_accuracy"] is None else f"{row['pixel_accuracy']:.4f}"
        spread = f"{row['fps_min']:.0f}-{row['fps_max']:.0f}"
        print(f"{name:<30} {row['fps']:>8.1f} {spread:>15} {acc:>9} {row['ratio_to_decode_only']:>9.2f}")
    for goal, value in result["goals"].items():
        print(f"{goal:<40} {value}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
