"""Large undeclared regions (issue 14): label maps/s through the YUV path against the RGB path.

A 1080p H.264 yuv420p mask clip (crf 23, 60 frames) whose background, most of the
picture, has a colour no ROI declares (it must become ignore_index), with moving
shapes in six declared colours. Printed in one run (medians of interleaved runs,
timed by maskdec.bench): label maps/s of iter_samples(images=False) with yuv=True
and yuv=False, and with the background declared; the goal is YUV >= RGB with the
background undeclared. Outputs are checked to agree (>= 99% of pixels) first.

    python benchmarks/bench_undeclared.py [--frames 60] [--json benchmarks/results/undeclared.json]
"""
from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np

import maskdec
from maskdec import bench
from maskdec.media.writer import write_video

COLOURS = [(128, 64, 128), (220, 20, 60), (0, 0, 142), (107, 142, 35), (70, 130, 180), (250, 170, 30)]
BACKGROUND = (30, 30, 30)
H, W = 1080, 1920


def make(folder: Path, n: int) -> tuple[Path, Path]:
    frames = []
    for t in range(n):
        f = np.full((H, W, 3), BACKGROUND, np.uint8)
        for k, c in enumerate(COLOURS):
            x, y = (200 + 250 * k + 7 * t) % (W - 300), 100 + 140 * k
            f[y:y + 200, x:x + 300] = c
        frames.append(f)
    write_video(folder / "mask.mp4", frames, fps=30, options={"crf": "23"})
    paths = []
    for name, declared in (("undeclared", COLOURS), ("declared", COLOURS + [BACKGROUND])):
        rois = [{"label": [f"c{k}"], "mask": {"id": "m", "value": list(c)}} for k, c in enumerate(declared)]
        path = folder / f"{name}.jsonl"
        with open(path, "w") as fh:
            for t in range(n):
                ts = round(t * 1000 / 30)
                fh.write(json.dumps({"sources": [{"id": "s", "uri": "mask.mp4", "timestamp": ts,
                                                  "masks": [{"id": "m", "uri": "mask.mp4"}]}], "rois": rois}) + "\n")
        paths.append(path)
    return paths[0], paths[1]


def run(path: Path, yuv: bool):
    def stage() -> int:
        return sum(1 for _ in maskdec.iter_samples(path, images=False, yuv=yuv))
    return stage


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--json", type=Path, default=Path(__file__).parent / "results" / "undeclared.json")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        undeclared, declared = make(Path(tmp), args.frames)
        a = [s.label_map.copy() for s in maskdec.iter_samples(undeclared, images=False, yuv=True)]
        b = [s.label_map.copy() for s in maskdec.iter_samples(undeclared, images=False, yuv=False)]
        agree = float(np.mean([(x == y).mean() for x, y in zip(a, b)]))
        assert agree >= 0.99, f"YUV and RGB paths agree on only {agree:.4f} of pixels"
        timings = bench.measure({"yuv, background undeclared": run(undeclared, True),
                                 "rgb, background undeclared": run(undeclared, False),
                                 "yuv, background declared": run(declared, True),
                                 "rgb, background declared": run(declared, False)},
                                repeat=args.repeat, warmup=True)
    base = timings["rgb, background undeclared"].rate
    print(bench.machine_line())
    for name, t in timings.items():
        low, high = t.spread
        print(f"{name:28s} {t.rate:7.1f} label maps/s ({low:.1f}-{high:.1f})  {t.rate / base:.2f}x rgb undeclared")
    ratio = timings["yuv, background undeclared"].rate / base
    print(f"goal: yuv >= rgb with the background undeclared: {ratio:.2f}x ({'met' if ratio >= 1 else 'missed'}); "
          f"paths agree on {agree:.4f} of pixels")
    result = {"machine": bench.machine(), "frames": args.frames, "agreement": round(agree, 5),
              "stages": {name: t.to_dict(base) for name, t in timings.items()},
              "yuv_vs_rgb_undeclared": round(ratio, 3), "goal": 1.0}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
