"""Samples per second through a torch DataLoader, 0 and 2 workers, against plain iter_samples.

Generates a dataset (the example scene: `--clips` H.264 source and mask videos plus a PNG
pair each), checks that every loader yields exactly the samples of iter_samples with equal
label maps, then times, interleaved and best of `--repeat`, one epoch (worker start
included) of:
  - iter_samples (the baseline: one process, one forward decode per file);
  - maskdec.torch.MaskDataset, in order and shuffled, batch 8, 0 and 2 workers (fork);
  - maskdec.torch.MaskIterableDataset, batch 8, 0 and 2 workers (fork).
Ratios to the baseline are what to read (the machine is shared and noisy).

    python benchmarks/bench_torch.py [--clips 4] [--frames 48] [--json benchmarks/results/torch.json]
"""
from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

import maskdec
import maskdec.torch as mt
from maskdec.example import make_example
from maskdec.frames import load_frames

BATCH = 8


def loader(ds, workers: int, shuffle: bool = False) -> DataLoader:
    return DataLoader(ds, batch_size=BATCH, num_workers=workers, shuffle=shuffle, collate_fn=ds.collate,
                      multiprocessing_context="fork" if workers else None,
                      generator=torch.Generator().manual_seed(0) if shuffle else None)


def epoch(make) -> tuple[int, float]:
    t0 = time.perf_counter()
    n = 0
    for batch in make():
        n += len(batch["frame_index"])
    return n, time.perf_counter() - t0


def check(runs: dict, frames, reference: dict) -> None:
    """Every loader yields each sample of iter_samples once, with the same label map."""
    for name, make in runs.items():
        if name == "iter_samples":
            continue
        seen = []
        for b in make():
            for k, (h, w) in enumerate(b["size"].tolist()):
                ident = (int(b["frame_index"][k]), b["source_id"][k], b["mask_id"][k])
                seen.append(ident)
                np.testing.assert_array_equal(b["label_map"][k, :h, :w].numpy(), reference[ident], err_msg=name)
        assert sorted(seen) == sorted(reference), name


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=4)
    parser.add_argument("--frames", type=int, default=48, help="video frames per clip")
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=360)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        frames = []
        for c in range(args.clips):
            ex = make_example(Path(tmp) / f"clip{c}", width=args.width, height=args.height, n_frames=args.frames)
            frames += load_frames(ex.frames_path)
        reference = {(s.frame_index, s.source_id, s.mask_id): s.label_map for s in maskdec.iter_samples(frames)}
        mapped = mt.MaskDataset(frames)
        streamed = mt.MaskIterableDataset(frames)
        runs = {
            "iter_samples": lambda: ({"frame_index": [s.frame_index]} for s in maskdec.iter_samples(frames)),
            "map_0_workers": lambda: loader(mapped, 0),
            "map_2_workers": lambda: loader(mapped, 2),
            "map_shuffled_0_workers": lambda: loader(mapped, 0, shuffle=True),
            "map_shuffled_2_workers": lambda: loader(mapped, 2, shuffle=True),
            "iterable_0_workers": lambda: loader(streamed, 0),
            "iterable_2_workers": lambda: loader(streamed, 2),
        }
        check(runs, frames, reference)
        mapped.close()
        best = {name: 0.0 for name in runs}
        for _ in range(args.repeat):
            for name, make in runs.items():
                n, seconds = epoch(make)
                assert n == len(reference), (name, n)
                best[name] = max(best[name], n / seconds)
                mapped.close()  # each epoch starts with no open reader in this process

    base = best["iter_samples"]
    result = {
        "machine": platform.machine(), "torch": torch.__version__, "samples": len(reference),
        "files": 4 * args.clips, "size": f"{args.width}x{args.height}", "batch": BATCH,
        "samples_per_s": {k: round(v, 1) for k, v in best.items()},
        "ratio_to_iter_samples": {k: round(v / base, 2) for k, v in best.items()},
    }
    print(f"{len(reference)} samples, {args.clips} clips of {args.frames} frames at {args.width}x{args.height} "
          f"+ a PNG pair each; one epoch, best of {args.repeat}, batch {BATCH}, workers forked")
    for name, rate in best.items():
        print(f"{name:>24}: {rate:8.1f} samples/s  ({rate / base:.2f}x iter_samples)")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
