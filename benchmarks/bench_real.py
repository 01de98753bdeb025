"""Realistic data benchmark (issue 14): label maps/s on frames shaped like real exports, and resources.

Media come from maskdec.realistic at the "bench" scale (1920x1080 H.264 yuv420p crf 18
masks: three street clips, an instance clip, a two-camera FrameGroup, a 300-frame
long-GOP clip referenced in shuffled order; 510 samples) and are cached under --cache,
so re-runs skip making them. Every measurement runs in a fresh process, timed from the
iter_samples call (frames parsed, tables built) to the last sample; a run stops early
after --budget seconds (the rate is then over the samples made so far). Printed, in one run:
  - label maps/s (iter_samples(images=False)) on the realistic frames against the same
    frames rewritten with one complete, sorted ROI list per mask file (goal >= 0.9x) and
    against PyAV decode-only of the same mask files, forward (goal >= 0.65x); the same with
    images; and the same without the long clip ("without_long": its 300 shuffled 1080p
    frames, beyond the frames buffered ahead, cost seeks that a forward decode never pays);
    "cold" is a fresh process's first pass (for label maps, the median of three fresh processes'
    first passes, real and sorted taking turns), "warm" the fastest of the next five (with images:
    the next one) in that process, and decode-only the fastest of its passes in fresh processes run
    before and after the label maps and, after their passes, in the label maps' own processes
    (a fresh process decodes about a tenth slower); "paired median": after its passes, the
    label maps' process alternates five decode-only and label map passes, and the median of
    the five ratios is the figure least moved by a shared machine's changing load;
  - colour table build times for 20 and 255 colours (bench_tables.table_build_times());
  - label maps/s of 60 small mask files interleaved, each with colours of its own, against the
    same files sharing one set of colours (more palettes than the default table cache holds);
  - peak RSS (VmHWM), threads and open files, sampled after every sample (in these runs only,
    not the timed ones), of (a) a frames
    file that round-robins over 400 small videos against the same frames grouped by file
    (and whether the round-robin runs under ulimit -n 256), (b) the 1080p 300-frame
    long-GOP clip referenced in shuffled timestamp order against in order (goal: peak RSS
    shuffled <= 1.5x in order; threads and open files bounded).
Ratios are what to read: this machine is shared and noisy.

    python benchmarks/bench_real.py [--budget 40] [--cache DIR] [--json benchmarks/results/real.json]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional

#: Extra fresh processes per frames file for the cold label map passes (one pass each).
COLD_REPEATS = 2
ROUND_ROBIN_VIDEOS = 400
ROUND_ROBIN_FRAMES = 4  # per video, 64x48


# ------------------------------------------------------------------ child processes

def _resources() -> tuple[int, int]:
    """(threads, open file descriptors) of this process now."""
    with open("/proc/self/status") as fh:
        threads = next(int(line.split()[1]) for line in fh if line.startswith("Threads:"))
    return threads, len(os.listdir("/proc/self/fd"))


def _status_mib(key: str) -> float:
    with open("/proc/self/status") as fh:
        kib = next(int(line.split()[1]) for line in fh if line.startswith(key + ":"))
    return round(kib / 1024, 1)


def child(spec: dict) -> dict:
    """Run iter_samples over spec["frames"] `passes` times; times, peaks, or the error."""
    if spec.get("nofile"):
        import resource
        _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (spec["nofile"], hard))
    import maskdec

    out: dict = {"rss_after_import_mib": _status_mib("VmRSS"), "passes": []}
    max_threads = max_fds = 0
    # resource runs only: reading /proc costs about 30 us a sample, which the timed runs (and the
    # decode-only loop they are compared with) do not pay; under a low file limit the sampling
    # itself must not fail first
    sample = spec.get("resources", False) and not spec.get("nofile")
    try:
        for _ in range(spec.get("passes", 1)):
            t0 = time.perf_counter()
            it = maskdec.iter_samples(spec["frames"], images=spec["images"])
            n = 0
            try:
                for _sample in it:
                    n += 1
                    if sample:
                        threads, fds = _resources()
                        max_threads, max_fds = max(max_threads, threads), max(max_fds, fds)
                    if time.perf_counter() - t0 > spec["budget"]:
                        break
            finally:
                it.close()
            elapsed = time.perf_counter() - t0
            out["passes"].append({"samples": n, "of": len(it), "s": round(elapsed, 3), "per_s": round(n / elapsed, 2)})
    except Exception as exc:  # reported, not raised: e.g. "Too many open files" under a low ulimit
        out["error"] = f"{type(exc).__name__}: {exc}"[:300]
    out["peak_rss_mib"] = _status_mib("VmHWM")
    if sample:
        out.update(max_threads=max_threads, max_open_files=max_fds)
    if spec.get("decode_files"):  # decode-only in the state the passes left the process in (see main),
        # alternating with label map passes: each pair ran in the same moment of a shared machine's load
        pairs = []
        for _ in range(spec.get("pairs", 5)):
            decode_s = decode_pass(spec["decode_files"])[0]
            t0 = time.perf_counter()
            for _sample in maskdec.iter_samples(spec["frames"], images=spec["images"]):
                pass
            pairs.append((round(decode_s, 3), round(time.perf_counter() - t0, 3)))
        out["decode_only_s"] = min(d for d, _ in pairs)
        out["pairs_decode_then_label_maps_s"] = pairs
    return out


def decode_pass(files: list) -> tuple[float, int]:
    """One PyAV decode-only pass (thread_type AUTO) over the files, forward: (seconds, frames)."""
    import av

    t0 = time.perf_counter()
    frames = 0
    for path in files:
        with av.open(path) as container:
            stream = container.streams.video[0]
            stream.codec_context.thread_type = "AUTO"
            for _frame in container.decode(stream):
                frames += 1
    return time.perf_counter() - t0, frames


def decode_child(spec: dict) -> dict:
    """PyAV decode-only of the files `passes` times: the fastest pass's seconds (as the label
    maps' "warm" figure is the fastest pass after the first), frames."""
    times, frames = [], 0
    for _ in range(spec.get("passes", 1)):
        seconds, frames = decode_pass(spec["files"])
        times.append(seconds)
    return {"s": round(min(times), 3), "all_s": [round(t, 3) for t in times], "frames": frames}


def run_child(spec: dict) -> dict:
    result = subprocess.run([sys.executable, __file__, "--child", json.dumps(spec)], capture_output=True, text=True)
    if result.returncode != 0:
        return {"error": (result.stderr.strip().splitlines() or ["exit %d" % result.returncode])[-1][:300]}
    return json.loads(result.stdout.strip().splitlines()[-1])


# ------------------------------------------------------------------ media (cached)

def realistic(cache: Path):
    """The bench-scale dataset, and its frames files: "all" lines and "without_long" (the long
    clip left out), each as generated ("real") and with complete sorted ROI lists ("sorted");
    the long clip alone (sorted lists) in its shuffled order and in timestamp order."""
    from maskdec.realistic import make_realistic, write_jsonl

    t0 = time.perf_counter()
    ds = make_realistic(cache / "realistic_bench", scale="bench", seed=0, reuse=True)
    made_s = time.perf_counter() - t0
    complete = ds.complete_frames()
    sets = {}
    for name, keep in (("all", lambda f: True), ("without_long", lambda f: f["context_id"] != "long")):
        sets[name] = {}
        for kind, frames in (("real", ds.frames), ("sorted", complete)):
            path = ds.root / f"frames_{name}_{kind}.jsonl"
            write_jsonl(path, [f for f in frames if keep(f)])
            sets[name][kind] = path
    long_lines = [f for f in complete if f["context_id"] == "long"]  # the dataset's shuffled order
    write_jsonl(ds.root / "long_shuffled.jsonl", long_lines)
    write_jsonl(ds.root / "long_in_order.jsonl", sorted(long_lines, key=lambda f: f["timestamp"]))
    return ds, sets, made_s


PALETTE_FILES = 60  # more palettes than the default table cache holds (54)


def palettes(cache: Path) -> Path:
    """PALETTE_FILES small H.264 mask videos (128x96, 10 frames, 8 colours) interleaved frame by
    frame, twice: each file with colours of its own ("distinct.jsonl"), and all sharing one set
    ("shared.jsonl"), as instance masks of many clips and class masks of one scheme would."""
    import numpy as np

    from maskdec.media.writer import write_video
    from maskdec.realistic import write_jsonl

    root = cache / f"palettes_{PALETTE_FILES}"
    stamp = root / "done.json"
    spec = {"files": PALETTE_FILES, "frames": 10, "size": [128, 96], "v": 1}
    if stamp.exists() and json.loads(stamp.read_text()) == spec:
        return root
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    shared = [tuple(int(x) for x in rng.integers(0, 256, 3)) for _ in range(8)]
    lines: dict = {"distinct": [], "shared": []}
    for v in range(PALETTE_FILES):
        own = [tuple(int(x) for x in rng.integers(0, 256, 3)) for _ in range(8)]
        for kind, colours in (("distinct", own), ("shared", shared)):
            uri = f"{kind}{v:03d}.mp4"
            pictures = []
            for t in range(10):
                picture = np.empty((96, 128, 3), np.uint8)
                picture[:] = colours[0]
                for k in range(1, 8):
                    y, x = (k * 11 + t) % 86, (k * 15 + 2 * t) % 114
                    picture[y:y + 10, x:x + 14] = colours[k]
                pictures.append(picture)
            write_video(root / uri, pictures, fps=30, codec="libx264", pix_fmt="yuv420p", options={"crf": "18"})
            rois = [{"label": [f"c{k}"], "mask": {"id": "seg", "value": list(c)}} for k, c in enumerate(colours)]
            lines[kind] += [(t, v, {"id": f"{uri}-{t}", "rois": rois,
                                    "sources": [{"id": "cam", "uri": uri, "timestamp": int(t * 1000 / 30),
                                                 "masks": [{"id": "seg", "uri": uri}]}]}) for t in range(10)]
    for kind, found in lines.items():
        write_jsonl(root / f"{kind}.jsonl", [line for _, _, line in sorted(found, key=lambda x: x[:2])])
    stamp.write_text(json.dumps(spec))
    return root


def round_robin(cache: Path) -> Path:
    """400 small H.264 mask videos (the example scene, 6 colours) and two frames files over them:
    round-robin (frame 0 of every video, then frame 1 ...) and grouped by video."""
    from maskdec.example import PALETTE, colour_mask, scene_classes
    from maskdec.media.writer import write_video
    from maskdec.realistic import write_jsonl

    root = cache / f"round_robin_{ROUND_ROBIN_VIDEOS}"
    stamp = root / "done.json"
    spec = {"videos": ROUND_ROBIN_VIDEOS, "frames": ROUND_ROBIN_FRAMES, "size": [64, 48], "v": 1}
    if stamp.exists() and json.loads(stamp.read_text()) == spec:
        return root
    root.mkdir(parents=True, exist_ok=True)
    rois = [{"label": [name], "mask": {"id": "seg", "value": list(colour)}}
            for name, colour in sorted(PALETTE.items(), key=lambda kv: kv[1])]
    lines: dict[tuple[int, int], dict] = {}
    for v in range(ROUND_ROBIN_VIDEOS):
        uri = f"v{v:03d}.mp4"
        write_video(root / uri, (colour_mask(scene_classes(3 * v + i, 48, 64)) for i in range(ROUND_ROBIN_FRAMES)),
                    fps=30, codec="libx264", pix_fmt="yuv420p", options={"crf": "18"})
        for i in range(ROUND_ROBIN_FRAMES):
            ts = int(i * 1000 / 30)
            lines[(v, i)] = {"id": f"v{v:03d}-{i}", "sources": [{"id": "cam", "uri": uri, "timestamp": ts,
                                                                "masks": [{"id": "seg", "uri": uri}]}], "rois": rois}
    write_jsonl(root / "round_robin.jsonl", [lines[(v, i)] for i in range(ROUND_ROBIN_FRAMES)
                                             for v in range(ROUND_ROBIN_VIDEOS)])
    write_jsonl(root / "grouped.jsonl", [lines[(v, i)] for v in range(ROUND_ROBIN_VIDEOS)
                                         for i in range(ROUND_ROBIN_FRAMES)])
    stamp.write_text(json.dumps(spec))
    return root


# ------------------------------------------------------------------ main

def rate(result: dict, index: int) -> Optional[float]:
    """Pass 0's rate ("cold"; the median with the first passes of the extra fresh processes,
    when there are some), or with index 1 the fastest later pass's ("warm")."""
    passes = result.get("passes") or []
    if index == 0:
        firsts = ([passes[0]["per_s"]] if passes else []) + [r for r in result.get("cold_repeats", []) if r]
        return statistics.median(firsts) if firsts else None
    later = [p["per_s"] for p in passes[1:]]
    return max(later) if later else None


def ratio(a: Optional[float], b: Optional[float]) -> Optional[float]:
    return None if not a or not b else round(a / b, 3)


def paired_ratio(result: dict) -> Optional[float]:
    """The median, over the alternating passes of one process, of label maps/s over decode-only/s
    (decode seconds over label map seconds: both passes cover the same samples)."""
    pairs = result.get("pairs_decode_then_label_maps_s") or []
    return round(statistics.median(d / m for d, m in pairs), 3) if pairs else None


def code_label() -> str:
    """maskdec's folder, and its git commit (with "+changes" for a dirty tree, results aside) when it has one."""
    import maskdec

    folder = Path(maskdec.__file__).parent
    try:
        head = subprocess.run(["git", "-C", str(folder), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(folder), "status", "--porcelain", "--untracked-files=no", "--",
                                ":(top)", ":(top,exclude)benchmarks/results"],  # earlier results are not code
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return str(folder)
    return f"{folder} at {head}{' +changes' if dirty else ''}"


def table_times() -> dict:
    sys.path.insert(0, str(Path(__file__).parent))
    try:
        from bench_tables import table_build_times
    except ImportError as exc:
        message = f"bench_tables.table_build_times unavailable ({exc})"
        print(message)
        return {"unavailable": message}
    return table_build_times()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--budget", type=float, default=40.0, help="seconds at most per timed pass")
    ap.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "maskdec_bench_real")
    ap.add_argument("--json", type=Path, default=Path(__file__).parent / "results" / "real.json")
    ap.add_argument("--label", default=None, help="what code this measures, recorded in the results")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        spec = json.loads(args.child)
        print(json.dumps(decode_child(spec) if "files" in spec else child(spec)))
        return

    t_start = time.perf_counter()
    ds, sets, made_s = realistic(args.cache)
    rr_root = round_robin(args.cache)
    print(f"media ready in {time.perf_counter() - t_start:.1f} s (realistic dataset {made_s:.1f} s) under {args.cache}")
    root = ds.root

    runs, decode, compared = {}, {}, {}
    for set_name, paths in sets.items():
        lines = [json.loads(line) for line in paths["real"].read_text().splitlines()]
        mask_files = sorted({str(root / m["uri"]) for f in lines for s in f["sources"] for m in s["masks"]})
        image_files = sorted({str(root / s["uri"]) for f in lines for s in f["sources"]})
        n_samples = sum(len(s["masks"]) for f in lines for s in f["sources"])
        with_images = (False, True) if set_name == "all" else (False,)
        # decode-only before and after the label map runs, and inside each label map process after
        # its passes; the fastest pass of all is the baseline. A shared machine's load drifts, and
        # a fresh process decodes about a tenth slower than one whose allocator earlier work has
        # grown (glibc maps and unmaps each decoder's frame buffers): the baseline should not be
        # caught in a slow moment or state
        decoded: dict = {"masks": [], "both": []}

        def decode_only() -> None:
            decoded["masks"].append(run_child({"files": mask_files, "passes": 3})["s"])
            if any(with_images):
                decoded["both"].append(run_child({"files": mask_files + image_files, "passes": 3})["s"])

        decode_only()
        for images in with_images:
            for kind in ("real", "sorted"):
                key = f"{set_name}/{kind}_{'images' if images else 'label_maps'}"
                runs[key] = run_child({"frames": str(paths[kind]), "images": images, "passes": 2 if images else 6,
                                       "budget": args.budget, "decode_files": [] if images else mask_files})
                print(key, json.dumps(runs[key]))
                if runs[key].get("decode_only_s"):
                    decoded["masks"].append(runs[key]["decode_only_s"])
        for _ in range(COLD_REPEATS):  # more cold passes, each in a fresh process, real and sorted taking turns
            for kind in ("real", "sorted"):
                extra = run_child({"frames": str(paths[kind]), "images": False, "passes": 1, "budget": args.budget})
                runs[f"{set_name}/{kind}_label_maps"].setdefault("cold_repeats", []).append(rate(extra, 0))
        decode_only()
        decode[set_name] = {"samples": n_samples, "mask_files": len(mask_files), "image_files": len(image_files),
                            "label_maps_per_s": round(n_samples / min(decoded["masks"]), 1),  # a mask frame per sample
                            "with_images_per_s": round(n_samples / min(decoded["both"]), 1) if decoded["both"] else None}
        print(set_name, "decode_only", json.dumps(decode[set_name]))
        compared[set_name] = {}
        for images in with_images:
            what = "images" if images else "label_maps"
            real, sorted_ = runs[f"{set_name}/real_{what}"], runs[f"{set_name}/sorted_{what}"]
            base = decode[set_name]["with_images_per_s" if images else "label_maps_per_s"]
            compared[set_name][what] = {
                "real_vs_sorted_cold": ratio(rate(real, 0), rate(sorted_, 0)),
                "real_vs_sorted_warm": ratio(rate(real, 1), rate(sorted_, 1)),
                "real_vs_decode_only_cold": ratio(rate(real, 0), base),
                "real_vs_decode_only_warm": ratio(rate(real, 1), base),
                "real_vs_decode_only_paired_median": None if images else paired_ratio(real)}

    tables = table_times()

    palette_root = palettes(args.cache)
    by_palette = {}
    for kind in ("shared", "distinct"):
        by_palette[kind] = run_child({"frames": str(palette_root / f"{kind}.jsonl"), "images": False, "passes": 4,
                                      "budget": args.budget})
        print(f"palettes_{kind}", json.dumps(by_palette[kind]))

    resources = {}
    for key, frames, extra in (
            ("round_robin_400", rr_root / "round_robin.jsonl", {}),
            ("grouped_400", rr_root / "grouped.jsonl", {}),
            ("round_robin_400_ulimit_n_256", rr_root / "round_robin.jsonl", {"nofile": 256}),
            ("long_gop_shuffled", root / "long_shuffled.jsonl", {}),
            ("long_gop_in_order", root / "long_in_order.jsonl", {})):
        res = run_child({"frames": str(frames), "images": False, "passes": 1, "budget": 10 * args.budget,
                         "resources": True, **extra})
        resources[key] = res
        print(key, json.dumps(res))

    s = ds.scale
    results = {
        "machine": f"{platform.node()} {platform.machine()}, {os.cpu_count()} cores",
        "code": args.label or code_label(),
        "dataset": (f"maskdec.realistic scale 'bench': {s.width}x{s.height} libx264 yuv420p crf {s.crf} masks, "
                    f"{len(ds.frames)} frames, {decode['all']['samples']} samples, {decode['all']['mask_files']} "
                    f"mask files interleaved, long-GOP clip {s.long_frames} frames shuffled; 'without_long': "
                    f"the same without the long clip ({decode['without_long']['samples']} samples)"),
        "budget_s_per_pass": args.budget,
        "per_s": {k: {"cold": rate(v, 0), "warm": rate(v, 1),
                      "samples_cold": (v.get("passes") or [{}])[0].get("samples"), "error": v.get("error")}
                  for k, v in runs.items()},
        "pyav_decode_only": decode,
        "ratios": compared,
        "goals": {"real_vs_sorted": 0.9, "real_vs_decode_only": 0.65, "long_gop_peak_rss_shuffled_vs_in_order": 1.5},
        "table_build_s": tables,
        "resources": resources,
        "long_gop_peak_rss_shuffled_vs_in_order": ratio(resources["long_gop_shuffled"].get("peak_rss_mib"),
                                                        resources["long_gop_in_order"].get("peak_rss_mib")),
        "round_robin_peak_rss_vs_grouped": ratio(resources["round_robin_400"].get("peak_rss_mib"),
                                                 resources["grouped_400"].get("peak_rss_mib")),
        "palettes": {"files": PALETTE_FILES,
                     "per_s": {k: {"cold": rate(v, 0), "warm": rate(v, 1), "error": v.get("error")}
                               for k, v in by_palette.items()},
                     "distinct_vs_shared_cold": ratio(rate(by_palette["distinct"], 0), rate(by_palette["shared"], 0)),
                     "distinct_vs_shared_warm": ratio(rate(by_palette["distinct"], 1), rate(by_palette["shared"], 1))},
        "wall_s": round(time.perf_counter() - t_start, 1),
    }
    print(json.dumps(results, indent=2))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
