"""Shuffled training at streaming speed: samples/s through a torch DataLoader on long-GOP 1080p clips.

Generates (once; cached in the temp folder) `--clips` pairs of 1080p H.264 videos, a source
video and its mask video (the example scene, libx264 veryfast yuv420p, a keyframe every 250
frames, B-frames), `--frames` frames each, and a frames list with one sample per frame.
Then times, each in a fresh process (so peak memory is its own), one epoch (worker start
included; images decoded, batch 32 unless named) of:
  - iter_samples: the plain streaming iterator, no torch (the reference; it also records
    checksums of every sample, which every other run spot-checks, 1 sample in 16);
  - in_order: maskdec.torch.MaskDataset with torch's SequentialSampler;
  - random: MaskDataset with torch's RandomSampler (shuffle=True), batch 32; and the
    figure before this work ("today": README's 55 samples/s was shuffled batch 8 at
    640x360): RandomSampler with batch 1 and batch 8, 0 workers, decoding every frame
    (MASKDEC_SKIP_FRAMES=0, as before frames nobody wants were skipped); random_b1 is
    batch 1 with today's decoder (what batching alone gains);
  - gop: MaskDataset with maskdec.torch.GopBatchSampler (window 4, num_workers as the loader's);
  - stream: MaskIterableDataset (files in order), and stream_shuffled: with --interleave
    files at once and a --shuffle-buffer of decoded samples;
each with 0 and 2 workers (fork). Random orders decode up to a GOP per sample, so those runs
stop after --random-samples samples (the rate of a random order is the same all epoch).
Also: frames decoded and frames skipped per sample (0 workers, map-style), peak RSS (the process and its
workers, summed, sampled every 50 ms) and, for every order, maskdec.sampling.randomness
against a uniform shuffle. Ratios are what to read: the machine is shared and noisy.

    python benchmarks/bench_torch.py [--clips 4] [--frames 300] [--json benchmarks/results/torch.json]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from pathlib import Path
from typing import Any

import numpy as np

W, H, FPS, KEYINT, BATCH = 1920, 1080, 30, 250, 32
SPOT = 16  # every 16th sample is checked against iter_samples' checksums
MEDIA_VERSION = 2


# ------------------------------------------------------------------ media

SHADES = np.array([(135, 190, 235), (120, 110, 100), (40, 120, 40), (90, 90, 95), (200, 30, 30), (240, 200, 160)],
                  np.uint8)


def render(clip: int, n_frames: int):
    """(image, mask) RGB frames of the example scene, quickly (classes drawn at 1/4 size and
    scaled up). The image adds a fine texture the camera pans over (about 4 Mbit/s at crf 23,
    like a plain 1080p camera stream; flat frames would make decoding unrealistically cheap)."""
    import cv2
    from maskdec.example import colour_mask, scene_classes
    noise = np.random.default_rng(clip).integers(0, 256, (H + 64, W + 256, 3), dtype=np.uint8)
    texture = (cv2.GaussianBlur(noise, (0, 0), 0.7).astype(np.int16) - 128) * 0.45
    lighter, darker = (np.clip(t, 0, 255).astype(np.uint8) for t in (texture, -texture))
    for i in range(n_frames):
        classes = cv2.resize(scene_classes(i + 37 * clip, H // 4, W // 4), (W, H), interpolation=cv2.INTER_NEAREST)
        dx, dy = (3 * i) % 256, i % 64
        image = cv2.subtract(cv2.add(SHADES[classes], lighter[dy:dy + H, dx:dx + W]), darker[dy:dy + H, dx:dx + W])
        yield image, colour_mask(classes)


def make_media(folder: Path, clips: int, n_frames: int) -> list[dict]:
    """The frames list (one sample per video frame), writing the clips first if not cached."""
    from maskdec.example import PALETTE
    from maskdec.media.writer import write_video
    listing = folder / "frames.json"
    if listing.exists():
        return json.loads(listing.read_text())
    folder.mkdir(parents=True, exist_ok=True)
    x264 = {"crf": "23", "preset": "veryfast", "bf": "3",
            "x264-params": f"keyint={KEYINT}:min-keyint={KEYINT}:scenecut=0"}
    rois = [{"label": [name], "mask": {"id": "seg", "value": list(colour)}} for name, colour in PALETTE.items()]
    frames = []
    for c in range(clips):
        source, mask = folder / f"source{c}.mp4", folder / f"mask{c}.mp4"
        print(f"writing {source.name} and {mask.name} ({n_frames} frames at {W}x{H}) ...", flush=True)
        pairs = list(render(c, n_frames))
        write_video(source, (p[0] for p in pairs), fps=FPS, options=x264)
        write_video(mask, (p[1] for p in pairs), fps=FPS, options={**x264, "crf": "18"})
        del pairs
        for i in range(n_frames):
            ts = int(i * 1000 / FPS)
            frames.append({"id": f"c{c}-{i:04d}", "timestamp": ts, "rois": rois, "sources": [
                {"id": "front", "uri": str(source), "timestamp": ts,
                 "masks": [{"id": "seg", "uri": str(mask), "timestamp": ts}]}]})
    tmp = listing.with_suffix(".tmp")
    tmp.write_text(json.dumps(frames))
    os.replace(tmp, listing)
    return frames


# ------------------------------------------------------------------ one run (a child process)

class PeakRss:
    """Peak of the summed RSS of this process and its descendants, sampled in a thread."""

    def __init__(self, every: float = 0.05) -> None:
        self.peak = 0
        self._page = os.sysconf("SC_PAGE_SIZE")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(every,), daemon=True)
        self._thread.start()

    def _pids(self) -> list[int]:
        out, todo = [], [os.getpid()]
        while todo:
            pid = todo.pop()
            out.append(pid)
            try:
                for task in os.listdir(f"/proc/{pid}/task"):
                    with open(f"/proc/{pid}/task/{task}/children") as f:
                        todo += [int(c) for c in f.read().split()]
            except OSError:
                pass
        return out

    def _rss(self) -> int:
        total = 0
        for pid in self._pids():
            try:
                with open(f"/proc/{pid}/statm") as f:
                    total += int(f.read().split()[1]) * self._page
            except OSError:
                pass
        return total

    def _run(self, every: float) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._rss())
            time.sleep(every)

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._rss())
        return self.peak / 2 ** 20


def crc(array: np.ndarray) -> int:
    return zlib.crc32(np.ascontiguousarray(array).tobytes())


def cpu_seconds() -> float:
    """CPU time of this process and of its children that have ended (DataLoader workers, once joined)."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def child(cfg: dict) -> dict:
    frames = json.loads(Path(cfg["frames"]).read_text())
    checks = {int(k): v for k, v in json.loads(Path(cfg["checks"]).read_text()).items()} if cfg["checks"] else {}
    limit = cfg.get("limit") or len(frames)
    rss = PeakRss()
    out: dict[str, Any] = {}
    order: list[int] = []
    if cfg["kind"] == "iter_samples":
        import maskdec
        t0, c0 = time.perf_counter(), cpu_seconds()
        sums = {}
        for s in maskdec.iter_samples(frames, cache_dir=cfg["cache_dir"]):
            order.append(s.frame_index)
            if s.frame_index % SPOT == 0:
                sums[s.frame_index] = [crc(s.image), crc(s.label_map.astype(np.uint8))]
        seconds = time.perf_counter() - t0
        Path(cfg["write_checks"]).write_text(json.dumps(sums))
    else:
        import torch
        from torch.utils.data import DataLoader
        import maskdec.torch as mt
        workers = cfg["workers"]
        common = dict(num_workers=workers, multiprocessing_context="fork" if workers else None)
        if cfg["kind"] == "iterable":
            ds = mt.MaskIterableDataset(frames, cache_dir=cfg["cache_dir"], shuffle_buffer=cfg.get("shuffle_buffer", 0),
                                        interleave=cfg.get("interleave", 1), seed=0 if cfg.get("interleave") else None)
            loader = DataLoader(ds, batch_size=cfg["batch"], collate_fn=ds.collate, **common)
        else:
            ds = mt.MaskDataset(frames, cache_dir=cfg["cache_dir"])
            if cfg["sampler"] == "gop":
                sampler = mt.GopBatchSampler(ds, cfg["batch"], window=cfg["window"], num_workers=workers)
                loader = DataLoader(ds, batch_sampler=sampler, collate_fn=ds.collate, **common)
            else:
                shuffle = cfg["sampler"] == "random"
                loader = DataLoader(ds, batch_size=cfg["batch"], shuffle=shuffle, collate_fn=ds.collate,
                                    generator=torch.Generator().manual_seed(0) if shuffle else None, **common)
        t0, c0 = time.perf_counter(), cpu_seconds()
        it = iter(loader)
        for batch in it:
            for k, (h, w) in enumerate(batch["size"].tolist()):
                i = int(batch["frame_index"][k])
                order.append(i)
                if i % SPOT == 0 and i in checks:
                    got = [crc(batch["image"][k, :, :h, :w].permute(1, 2, 0).numpy()),
                           crc(batch["label_map"][k, :h, :w].numpy().astype(np.uint8))]
                    assert got == checks[i], f"{cfg['name']}: sample {i} differs from iter_samples"
            if len(order) >= limit:
                break
        seconds = time.perf_counter() - t0
        del it  # workers stop and are joined: their CPU time counts
        if not workers and cfg["kind"] == "map":
            out["decoded_per_sample"] = round(sum(ds.dataset.readers.decoded().values()) / len(order), 2)
            out["skipped_per_sample"] = round(sum(ds.dataset.readers.skipped().values()) / len(order), 2)
        if cfg["kind"] == "iterable" and not workers and cfg.get("shuffle_buffer"):
            out["peak_buffered_mib"] = round(ds.peak_buffered_bytes / 2 ** 20, 1)
    out.update(samples=len(order), seconds=round(seconds, 2), samples_per_s=round(len(order) / seconds, 2),
               cpu_ms_per_sample=round((cpu_seconds() - c0) * 1000 / len(order), 1),
               peak_rss_mib=round(rss.stop(), 1), order=order)
    if cfg.get("limit") is None:
        assert sorted(order) == list(range(len(frames))), f"{cfg['name']}: not every sample exactly once"
    else:
        assert len(set(order)) == len(order), f"{cfg['name']}: a sample came twice"
    return out


# ------------------------------------------------------------------ the parent

def run(cfg: dict, timeout: float) -> dict:
    env = {**os.environ, **cfg.get("env", {})}
    proc = subprocess.run([sys.executable, __file__, "--child", json.dumps(cfg)], capture_output=True, text=True,
                          timeout=timeout, env=env)
    if proc.returncode:
        raise SystemExit(f"{cfg['name']} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def configs(args) -> list[dict]:
    out = [{"name": "iter_samples", "kind": "iter_samples", "workers": 0, "batch": 1}]
    before = {"MASKDEC_SKIP_FRAMES": "0"}  # the decoder before this work decoded every frame
    out.append({"name": "today_random_b1_0w", "kind": "map", "sampler": "random", "batch": 1, "workers": 0,
                "limit": args.today_samples, "env": before})
    out.append({"name": "today_random_b8_0w", "kind": "map", "sampler": "random", "batch": 8, "workers": 0,
                "limit": args.today_samples * 2, "env": before})
    out.append({"name": "random_b1_0w", "kind": "map", "sampler": "random", "batch": 1, "workers": 0,
                "limit": args.today_samples})
    for workers in (0, 2):
        out += [
            {"name": f"in_order_{workers}w", "kind": "map", "sampler": "sequential"},
            {"name": f"random_{workers}w", "kind": "map", "sampler": "random", "limit": args.random_samples},
            {"name": f"gop_{workers}w", "kind": "map", "sampler": "gop", "window": args.window},
            {"name": f"stream_{workers}w", "kind": "iterable"},
            {"name": f"stream_shuffled_{workers}w", "kind": "iterable", "shuffle_buffer": args.shuffle_buffer,
             "interleave": args.interleave},
        ]
        for cfg in out[-5:]:
            cfg.update(workers=workers, batch=BATCH)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=4, help="source + mask video pairs")
    parser.add_argument("--frames", type=int, default=300, help="frames per video")
    parser.add_argument("--window", type=int, default=4, help="GopBatchSampler window")
    parser.add_argument("--shuffle-buffer", type=int, default=64, help="samples held by the shuffled stream")
    parser.add_argument("--interleave", type=int, default=4, help="files streamed at once by the shuffled stream")
    parser.add_argument("--random-samples", type=int, default=192, help="samples timed for RandomSampler batch 32")
    parser.add_argument("--today-samples", type=int, default=24, help="samples timed for RandomSampler batch 1 (x2 for batch 8)")
    parser.add_argument("--repeat", type=int, default=2,
                        help="rounds of every run but iter_samples (best kept)")
    parser.add_argument("--media", type=Path, default=None, help="where generated clips are kept (default: temp folder)")
    parser.add_argument("--only", default=None, help="comma-separated run names (default: all)")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return

    import torch
    from maskdec.sampling import randomness
    started = time.perf_counter()
    folder = args.media or Path(tempfile.gettempdir()) / f"maskdec-bench-torch-v{MEDIA_VERSION}-{args.clips}x{args.frames}"
    frames = make_media(folder, args.clips, args.frames)
    files = [f["sources"][0]["masks"][0]["uri"] for f in frames]
    checks = folder / "checks.json"
    common = {"frames": str(folder / "frames.json"), "cache_dir": str(folder / "index"), "checks": None}
    results: dict[str, dict] = {}
    wanted = None if args.only is None else set(args.only.split(",")) | {"iter_samples"}
    plan = [cfg for cfg in configs(args) if wanted is None or cfg["name"] in wanted]
    rounds = [plan] + [[cfg for cfg in plan if cfg["kind"] != "iter_samples"]] * (args.repeat - 1)
    for r, runs in enumerate(rounds):
        for cfg in runs:
            cfg = {**common, **cfg, "checks": str(checks) if cfg["kind"] != "iter_samples" else None,
                   "write_checks": str(checks)}
            got = run(cfg, timeout=1200)
            got["randomness"] = randomness(got.pop("order"), files, cfg["batch"]).as_dict()
            best = results.get(cfg["name"])
            rates = (best["samples_per_s_runs"] if best else []) + [got["samples_per_s"]]
            if best is None or got["samples_per_s"] > best["samples_per_s"]:
                best = got
            best["samples_per_s_runs"] = rates
            results[cfg["name"]] = best
            extra = "".join(f", {k} {got[k]}" for k in ("decoded_per_sample", "skipped_per_sample", "peak_buffered_mib")
                            if k in got)
            print(f"{cfg['name']:>22}: {got['samples_per_s']:7.2f} samples/s ({got['samples']} in {got['seconds']} s, "
                  f"CPU {got['cpu_ms_per_sample']} ms/sample), peak RSS {got['peak_rss_mib']:.0f} MiB{extra}; "
                  f"one-file batches {got['randomness']['one_file_batches']:.2f}, spearman "
                  f"{got['randomness']['spearman']:.2f}, within files {got['randomness']['file_spearman']:.2f}"
                  + (f"  [round {r + 1}]" if r else ""), flush=True)

    rate = {k: v["samples_per_s"] for k, v in results.items()}
    cpu = {k: v["cpu_ms_per_sample"] for k, v in results.items()}
    ratios, cpu_ratios = {}, {}
    for w in (0, 2):
        pairs = {f"gop_vs_in_order_{w}w": (f"gop_{w}w", f"in_order_{w}w"),
                 f"stream_shuffled_vs_stream_{w}w": (f"stream_shuffled_{w}w", f"stream_{w}w"),
                 f"random_b32_vs_today_b1_{w}w": (f"random_{w}w", "today_random_b1_0w"),
                 f"random_b32_vs_today_b8_{w}w": (f"random_{w}w", "today_random_b8_0w"),
                 f"random_b32_vs_b1_{w}w": (f"random_{w}w", "random_b1_0w"),
                 f"gop_vs_random_b32_{w}w": (f"gop_{w}w", f"random_{w}w")}
        ratios.update({k: round(rate[a] / rate[b], 2) for k, (a, b) in pairs.items() if a in rate and b in rate})
        cpu_ratios.update({k: round(cpu[b] / cpu[a], 2) for k, (a, b) in pairs.items() if a in cpu and b in cpu})
    goals = {"gop_vs_in_order >= 0.8": [ratios.get(f"gop_vs_in_order_{w}w") for w in (0, 2)],
             "stream_shuffled_vs_stream >= 0.9": [ratios.get(f"stream_shuffled_vs_stream_{w}w") for w in (0, 2)],
             "random_b32_vs_today_b1 >= 3": [ratios.get(f"random_b32_vs_today_b1_{w}w") for w in (0, 2)]}
    print("ratios (samples/s):", json.dumps(ratios))
    print("ratios (CPU time per sample, the other way round):", json.dumps(cpu_ratios))
    print("goals ([0 workers, 2 workers]):", json.dumps(goals))
    result = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores", "torch": torch.__version__,
        "media": f"{args.clips} x (source + mask) {W}x{H} libx264 veryfast yuv420p (mask crf 18, source crf 23), "
                 f"{args.frames} frames at {FPS} fps, keyint {KEYINT}, B-frames",
        "samples": len(frames), "batch": BATCH, "window": args.window, "shuffle_buffer": args.shuffle_buffer,
        "interleave": args.interleave, "workers_start": "fork", "seconds_total": round(time.perf_counter() - started),
        "runs": results, "ratios": ratios, "cpu_ratios": cpu_ratios, "goals": goals,
    }
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
