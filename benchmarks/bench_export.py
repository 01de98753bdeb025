"""Export benchmark: samples per second for every export format with 1 and 2 workers, and Ray Data.

Generates a dataset of several example clips (each an H.264 source video and
an H.264 mask video, so each clip is one work unit), then times
`maskdec export --format F` for every F in maskdec.export_registry.FORMAT_NAMES
(formats added to the registry show up here by themselves) as a user runs it:
a fresh process each time, wall clock from start to exit (so each worker's
start-up, imports and colour tables count). `--workers 1` works in its own
process, `--workers 2` on a pool of 2 processes; runs interleaved, best of
`--repeat`. Each format's two exports are checked to list every sample in
their manifest and to write identical files. iter_samples alone (decode and
map, nothing written, also a fresh process) is the baseline.

Ray Data: `maskdec.ray.read_samples(frames)` iterated to the end (iter_batches)
on a local 2-CPU Ray instance started once in its own process (its start-up is
reported apart, not in the rate); every sample checked to arrive once, with the
label maps of iter_samples. All rates are also given as ratios to png with 1 worker
of the same dataset.

Two datasets in one run (`--datasets generated,realistic`, default both), each
with its own table:
  - generated: the tidy clips above (JSON: the top-level keys);
  - realistic: `maskdec.realistic.make_realistic(folder, scale="test", seed=0)`,
    data shaped like real annotation exports: H.264 (lossy) masks, per-frame ROI
    subsets in random order, undeclared backgrounds, reused instance colours, a
    two-camera FrameGroup, interleaved files, a shuffled long-GOP clip (JSON: the
    "realistic" section). Its "test" scale is small (72 samples, 160x120), so each
    export takes about a second and the fixed process start-up (printed, and in
    every time) weighs heavily; best of `--realistic-repeat` (3) rather than
    `--repeat`, as these short runs are noisier and cheap. Same checks as above.
The default run takes about four minutes on a 2-core VM.

    python benchmarks/bench_export.py [--datasets generated,realistic] [--clips 8 --frames 60]
        [--formats png,npz] [--realistic-scale test] [--json benchmarks/results/export.json]
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
from typing import Optional

from maskdec.example import make_example
from maskdec.export_registry import FORMAT_NAMES
from maskdec.realistic import SCALES, make_realistic


LABELS = {"iter_samples": "iter_samples (nothing written)", "ray_data": "Ray Data read_samples, 2 CPUs"}


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
    done = subprocess.run([sys.executable, *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if done.returncode:
        raise RuntimeError(done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"exit {done.returncode}")
    return time.perf_counter() - t0


def tree(out: Path) -> dict[str, bytes]:
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


def label_sums(frames: Path) -> dict[tuple, int]:
    """(frame_index, source_id, mask_id) -> sum of the label map, from iter_samples."""
    import maskdec

    return {(s.frame_index, s.source_id, s.mask_id): int(s.label_map.sum(dtype="int64"))
            for s in maskdec.iter_samples(frames, images=False)}


def ray_child(frames: Path, n: int, repeat: int) -> None:
    """Run in its own process: a local Ray instance, then `repeat` timed passes of
    read_samples (with images) iterated to the end; prints one JSON line."""
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    import ray
    import ray.data

    import maskdec.ray

    expected = label_sums(frames)
    t0 = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    startup = time.perf_counter() - t0
    ray.data.DataContext.get_current().enable_progress_bars = False
    seconds = []
    try:
        for r in range(repeat):
            t0 = time.perf_counter()
            seen: dict[tuple, int] = {}
            for batch in maskdec.ray.read_samples(frames).iter_batches(batch_size=None):
                for i, key in enumerate(zip(batch["frame_index"], batch["source_id"], batch["mask_id"])):
                    key = (int(key[0]), str(key[1]), str(key[2]))
                    assert key not in seen, f"{key} came twice"
                    seen[key] = int(batch["label_map"][i].sum(dtype="int64"))
            seconds.append(time.perf_counter() - t0)
            assert len(seen) == n and seen == expected, "Ray Data samples differ from iter_samples"
    finally:
        ray.shutdown()
    print(json.dumps({"startup_s": startup, "seconds": seconds}))


def measure(root: Path, frames: Path, n: int, formats: list[str], repeat: int, ray: bool) -> dict:
    """Time iter_samples, every format's export with 1 and 2 workers, and Ray Data on one dataset."""
    root.mkdir(parents=True, exist_ok=True)
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    times: dict[str, list[float]] = {"iter_samples": []}
    startup: list[float] = []
    errors: dict[str, str] = {}
    same_files: dict[str, bool] = {}
    baseline = f"import maskdec; assert sum(1 for _ in maskdec.iter_samples({str(frames)!r})) == {n}"
    for r in range(repeat):
        startup.append(timed(["-c", "import maskdec.cli"]))
        times["iter_samples"].append(timed(["-c", baseline]))
        for fmt in formats:
            if fmt in errors:
                continue
            outs = {w: root / f"{fmt}-{w}" for w in (1, 2)}
            try:
                for w in (1, 2):
                    shutil.rmtree(outs[w], ignore_errors=True)
                    times.setdefault(f"{fmt} {w}", []).append(timed(
                        ["-m", "maskdec.cli", "export", str(frames), "--out", str(outs[w]), "--workers", str(w),
                         "--format", fmt]))
                    listed = (outs[w] / "manifest.jsonl").read_text().count("\n")
                    if listed != n:
                        raise RuntimeError(f"{w} workers exported {listed} of {n} samples")
            except (RuntimeError, OSError) as exc:
                errors[fmt] = str(exc)
                print(f"{fmt}: failed: {exc}", flush=True)
                continue
            if r == 0:  # the two exports must agree before their times mean anything
                same_files[fmt] = tree(outs[1]) == tree(outs[2])
                if not same_files[fmt]:
                    print(f"{fmt}: 1 and 2 workers wrote different files", flush=True)
            for w in (1, 2):
                shutil.rmtree(outs[w], ignore_errors=True)
        print(f"repeat {r + 1}/{repeat} done after {time.perf_counter() - started:.0f} s", flush=True)

    ray_result: Optional[dict] = None
    if ray:
        done = subprocess.run([sys.executable, __file__, "--ray-child", str(frames), str(n), str(repeat)],
                              capture_output=True, text=True)
        if done.returncode:
            errors["ray_data"] = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "failed"
            print(f"Ray Data: failed: {errors['ray_data']}")
        else:
            ray_result = json.loads(done.stdout.strip().splitlines()[-1])
            times["ray_data"] = ray_result["seconds"]
    rate = {k: n / min(v) for k, v in times.items() if v}
    reference = rate.get("png 1")
    return {
        "samples_per_s": rate,
        "ratio_to_png_1_worker": {k: v / reference for k, v in rate.items()} if reference else {},
        "scaling_2_over_1": {fmt: rate[f"{fmt} 2"] / rate[f"{fmt} 1"] for fmt in formats
                             if f"{fmt} 1" in rate and f"{fmt} 2" in rate},
        "same_files_1_and_2_workers": same_files, "errors": errors,
        "ray_startup_s": None if ray_result is None else ray_result["startup_s"],
        "process_startup_s": min(startup),
        "load_average_before_after": (load_before, os.getloadavg()[0]),
        "seconds": time.perf_counter() - started,
    }


def report(title: str, result: dict) -> None:
    """Print one dataset's table."""
    rate, ratio = result["samples_per_s"], result["ratio_to_png_1_worker"]
    print(f"\n{title}\n{'':34}{'samples/s':>10}{'vs png 1 worker':>17}")
    for k, v in rate.items():
        label = LABELS.get(k) or "export {}, {} worker(s)".format(*k.split())
        print(f"{label:34}{v:10.1f}{ratio.get(k, float('nan')):16.2f}x")
    for fmt, x in result["scaling_2_over_1"].items():
        print(f"scaling 2 / 1 workers, {fmt}: {x:.2f}x")
    print(f"process start-up (python -c 'import maskdec.cli', in every time above): "
          f"{result['process_startup_s']:.2f} s")
    if result["ray_startup_s"] is not None:
        print(f"Ray start-up (ray.init, not in the rate): {result['ray_startup_s']:.1f} s")
    load = result["load_average_before_after"]
    print(f"cores: {os.cpu_count()}; 1-minute load average {load[0]:.1f} before, {load[1]:.1f} after "
          f"(other work on the machine takes cores too); {result['seconds']:.0f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--datasets", default="generated,realistic",
                        help="comma-separated, of generated, realistic (default: both)")
    parser.add_argument("--clips", type=int, default=8)
    parser.add_argument("--frames", type=int, default=60, help="frames per clip")
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=360)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--realistic-scale", choices=sorted(SCALES), default="test",
                        help="maskdec.realistic scale (default: test)")
    parser.add_argument("--realistic-repeat", type=int, default=3,
                        help="repeats on the realistic dataset (default: 3; its runs are short)")
    parser.add_argument("--formats", default=",".join(FORMAT_NAMES),
                        help=f"comma-separated, of {', '.join(FORMAT_NAMES)} (default: all)")
    parser.add_argument("--no-ray", action="store_true", help="skip the Ray Data run")
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    parser.add_argument("--ray-child", nargs=3, metavar=("FRAMES", "SAMPLES", "REPEAT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.ray_child:
        ray_child(Path(args.ray_child[0]), int(args.ray_child[1]), int(args.ray_child[2]))
        return
    formats = [f for f in args.formats.split(",") if f]
    unknown = sorted(set(formats) - set(FORMAT_NAMES))
    if unknown or "png" not in formats:
        parser.error(f"--formats: {', '.join(unknown) or 'png is needed (the reference)'}; "
                     f"known: {', '.join(FORMAT_NAMES)}")
    datasets = [d for d in args.datasets.split(",") if d]
    if not datasets or set(datasets) - {"generated", "realistic"}:
        parser.error(f"--datasets: {args.datasets!r}; choose from generated, realistic")

    started = time.perf_counter()
    out: dict = {"machine": platform.machine(), "cores": os.cpu_count(), "python": platform.python_version(),
                 "datasets": datasets}
    tables: list[tuple[str, dict]] = []
    with tempfile.TemporaryDirectory(prefix="maskdec-bench-export-") as tmp:
        root = Path(tmp)
        if "generated" in datasets:
            frames = make_dataset(root / "data", args.clips, args.frames, args.width, args.height)
            n = args.clips * args.frames
            print(f"generated dataset: {args.clips} clips x {args.frames} frames, {args.width}x{args.height} H.264, "
                  f"{n} samples, with images; formats: {', '.join(formats)}", flush=True)
            result = measure(root / "generated", frames, n, formats, args.repeat, not args.no_ray)
            tables.append((f"generated: {args.clips} clips x {args.frames} frames, {n} samples", result))
            out.update({"clips": args.clips, "frames_per_clip": args.frames, "size": [args.width, args.height],
                        "formats": formats, "samples": n, "repeat": args.repeat, "with_images": True, **result})
        if "realistic" in datasets:
            ds = make_realistic(root / "realistic", scale=args.realistic_scale, seed=0)
            n = len(ds.keys())
            size = [ds.scale.width, ds.scale.height]
            print(f"realistic dataset (maskdec.realistic, scale {args.realistic_scale}, seed 0): {len(ds.frames)} "
                  f"lines, {n} samples, {size[0]}x{size[1]} H.264 lossy masks, with images", flush=True)
            result = measure(root / "realistic-out", ds.frames_path, n, formats, args.realistic_repeat,
                             not args.no_ray)
            tables.append((f"realistic (scale {args.realistic_scale}): {len(ds.frames)} lines, {n} samples, "
                           f"{size[0]}x{size[1]}", result))
            out["realistic"] = {"scale": args.realistic_scale, "seed": 0, "lossless": False, "size": size,
                                "lines": len(ds.frames), "samples": n, "formats": formats,
                                "repeat": args.realistic_repeat, "with_images": True, **result}

    for title, result in tables:
        report(title, result)
    print(f"{time.perf_counter() - started:.0f} s in all")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
