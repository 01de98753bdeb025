"""Export benchmark: samples per second with 1 and 2 workers, and the scaling ratio.

Generates a dataset of several example clips (each an H.264 source video and
an H.264 mask video, so each clip is one work unit), then times
`maskdec export` (png, with images: the default) as a user runs it: a fresh
process each time, wall clock from start to exit (so each worker's start-up,
imports and colour tables count). `--workers 1` works in its own process,
`--workers 2` on a pool of 2 processes; runs interleaved, best of `--repeat`.
The two exports are checked to write identical files before any time is
reported. iter_samples alone (decode and map, nothing written, also a fresh
process) is the baseline.

    python benchmarks/bench_export.py [--clips 8 --frames 90] [--json benchmarks/results/export.json]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from maskdec.example import make_example


def make_dataset(root: Path, clips: int, frames: int, width: int, height: int) -> Path:
    lines = []
    for c in range(clips):
        make_example(root / f"clip{c}", n_frames=frames, width=width, height=height)
        for line in (root / f"clip{c}" / "frames.jsonl").read_text().splitlines():
            frame = json.loads(line)
            if frame.get("id") == "still":
                continue
            for source in frame["sources"]:
                source["uri"] = f"clip{c}/{source['uri']}"
                for mask in source["masks"]:
                    mask["uri"] = f"clip{c}/{mask['uri']}"
            lines.append(json.dumps(frame) + "\n")
    path = root / "frames.jsonl"
    path.write_text("".join(lines))
    return path


def timed(args: list[str]) -> float:
    """Wall-clock seconds of `python args...` in a fresh process (which must succeed)."""
    t0 = time.perf_counter()
    subprocess.run([sys.executable, *args], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t0


def tree(out: Path) -> dict[str, bytes]:
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clips", type=int, default=8)
    parser.add_argument("--frames", type=int, default=90, help="frames per clip")
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=360)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--format", default="png", choices=["png", "npz", "webdataset"])
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="maskdec-bench-export-") as tmp:
        root = Path(tmp)
        frames = make_dataset(root / "data", args.clips, args.frames, args.width, args.height)
        n = args.clips * args.frames
        print(f"dataset: {args.clips} clips x {args.frames} frames, {args.width}x{args.height} H.264, "
              f"{n} samples; format {args.format}, with images")

        load_before = os.getloadavg()[0]
        outs = {w: root / f"out{w}" for w in (1, 2)}
        times: dict[str, list[float]] = {"iter_samples": [], "1": [], "2": []}
        baseline = f"import maskdec; assert sum(1 for _ in maskdec.iter_samples({str(frames)!r})) == {n}"
        for r in range(args.repeat):
            times["iter_samples"].append(timed(["-c", baseline]))
            for w in (1, 2):
                shutil.rmtree(outs[w], ignore_errors=True)
                times[str(w)].append(timed(["-m", "maskdec.cli", "export", str(frames), "--out", str(outs[w]),
                                            "--workers", str(w), "--format", args.format]))
                manifest = (outs[w] / "manifest.jsonl").read_text().count("\n")
                assert manifest == n, f"{w} workers exported {manifest} of {n} samples"
            if r == 0:  # the two exports must agree before their times mean anything
                assert tree(outs[1]) == tree(outs[2]), "1 and 2 workers wrote different files"
        rate = {k: n / min(v) for k, v in times.items()}
        ratio = rate["2"] / rate["1"]
        print(f"iter_samples (decode + map, nothing written): {rate['iter_samples']:.1f} samples/s")
        print(f"maskdec export --workers 1: {rate['1']:.1f} samples/s")
        print(f"maskdec export --workers 2: {rate['2']:.1f} samples/s")
        load = (load_before, os.getloadavg()[0])
        print(f"scaling 2 / 1 workers: {ratio:.2f}x  (cores: {os.cpu_count()}; 1-minute load average "
              f"{load[0]:.1f} before, {load[1]:.1f} after: other work on the machine takes cores too)")
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps({
                "machine": platform.machine(), "cores": os.cpu_count(), "python": platform.python_version(),
                "clips": args.clips, "frames_per_clip": args.frames, "size": [args.width, args.height],
                "format": args.format, "samples": n, "repeat": args.repeat,
                "samples_per_s": {"iter_samples": rate["iter_samples"], "workers_1": rate["1"],
                                  "workers_2": rate["2"]},
                "scaling_2_over_1": ratio, "load_average_before_after": load,
            }, indent=2) + "\n")


if __name__ == "__main__":
    main()
