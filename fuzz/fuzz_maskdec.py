#!/usr/bin/env python3
"""Fuzz maskdec with atheris: the frame parser, frames files, and opening media bytes.

Run as a script; the options are libFuzzer's, e.g. for a bounded run (what CI does):

    python fuzz/fuzz_maskdec.py -max_total_time=60

Each input's first byte picks a target and its second the file name extension; the rest
is the payload. Without a corpus folder on the command line the run starts from seeds it
writes itself (frames, a PNG, FFV1/Matroska and H.264/MP4 clips). An exception that is not
a MaskdecError, a frame that fails to round-trip, a crash or an input that runs longer than
-timeout (20 s unless given) stops the run and leaves a reproducer (crash-*, timeout-*).
"""
from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

import atheris

# The heavy dependencies load before instrumentation: only maskdec's own code is instrumented.
import av  # noqa: F401
import cv2
import numpy as np

with atheris.instrument_imports(include=["maskdec"]):
    import maskdec
    from maskdec.frames import Frame, load_frames
    from maskdec.lut import ColourTable, map_pixels
    from maskdec.media.planes import mask_data
    from maskdec.media.reader import MediaReader, image_rgb
    from maskdec.media.writer import write_video

TARGETS = ("frame", "frames_file", "media")
SUFFIXES = (".png", ".mp4", ".mkv", ".jpg", ".mov", ".jsonl", ".json", "")
WORK = Path(tempfile.mkdtemp(prefix="maskdec-fuzz-"))
TABLE = ColourTable(((0, 0, 142), (128, 64, 128), (70, 70, 70), (7, 7, 7), (300,)), (0, 1, 2, 3, 4), 255)


def fuzz_frame(payload: bytes) -> None:
    """Any JSON value: a Frame that round-trips, or a MaskdecError."""
    try:
        value = json.loads(payload.decode("utf-8", "replace"))
    except (ValueError, RecursionError):
        return  # not JSON: the parser never sees it (load_frames turns this into a FrameFormatError)
    try:
        frame = Frame.from_dict(value)
    except maskdec.MaskdecError:
        return
    again = Frame.from_dict(frame.to_dict())
    if again != frame or again.to_dict() != frame.to_dict():
        raise AssertionError(f"round trip changed the frame: {frame!r} -> {again!r}")


def fuzz_frames_file(payload: bytes, suffix: str) -> None:
    path = WORK / f"frames{suffix or '.json'}"
    path.write_bytes(payload)
    try:
        load_frames(path)
    except maskdec.MaskdecError:
        pass
    try:
        frames, errors = load_frames(path, errors="collect")
    except maskdec.MaskdecError:
        return
    if not all(isinstance(e, maskdec.MaskdecError) for e in errors):
        raise AssertionError(f"collected a non-MaskdecError: {errors!r}")


def fuzz_media(payload: bytes, suffix: str) -> None:
    """Media bytes behind any name: opened, decoded at a few timestamps, mapped; or a MaskdecError."""
    path = WORK / f"media{suffix}"
    path.write_bytes(payload)
    try:
        with MediaReader(str(path), threads=1) as reader:
            for _, frame in reader.frames_at([0, 40, 1000]):
                if isinstance(frame, maskdec.MaskdecError):
                    continue
                image_rgb(frame)
                map_pixels(mask_data(frame), TABLE, 30.0)
    except maskdec.MaskdecError:
        pass
    frame = {"sources": [{"id": "cam", "uri": str(path), "timestamp": 33, "masks": [{"id": "m", "uri": str(path)}]}],
             "rois": [{"label": [f"c{i}"], "mask": {"id": "m", "value": list(c)}} for i, c in enumerate(TABLE.colours)]}
    try:
        for _ in maskdec.iter_samples([frame], stats=True, threads=1):
            pass
    except maskdec.MaskdecError:
        pass


def test_one_input(data: bytes) -> None:
    if len(data) < 2:
        return
    target, suffix, payload = TARGETS[data[0] % len(TARGETS)], SUFFIXES[data[1] % len(SUFFIXES)], data[2:]
    if target == "frame":
        fuzz_frame(payload)
    elif target == "frames_file":
        fuzz_frames_file(payload, suffix)
    else:
        fuzz_media(payload, suffix)


def _input(target: str, suffix: str, payload: bytes) -> bytes:
    return bytes([TARGETS.index(target), SUFFIXES.index(suffix)]) + payload


def write_seeds(folder: Path) -> None:
    """Valid inputs of every kind, for the fuzzer to mutate."""
    folder.mkdir(parents=True, exist_ok=True)
    frame = {"id": "f", "timestamp": 33, "sources": [
        {"id": "cam", "uri": "a.mp4", "content_type": "video/mp4", "width": 8, "height": 6,
         "masks": [{"id": "seg", "uri": "m.png", "timestamp": "66"}, {"id": 2, "uri": "n.png"}]}],
        "rois": [{"label": ["car"], "sources": ["cam"], "mask": {"id": "seg", "value": [0, 0, 142]}},
                 {"labels": ["seg"], "mask": {"id": "road", "value": [300]}, "confidence": 0.5}]}
    seeds = {"frame.bin": _input("frame", "", json.dumps(frame).encode()),
             "frames.bin": _input("frames_file", ".jsonl", (json.dumps(frame) + "\n{\"sources\": [}\n").encode())}
    rng = np.random.default_rng(0)
    colours = np.array([c for c in TABLE.colours if len(c) == 3], np.uint8)
    clip = [colours[rng.integers(len(colours), size=(12, 16))] for _ in range(3)]
    ok, png = cv2.imencode(".png", clip[0][:, :, ::-1])
    seeds["png.bin"] = _input("media", ".png", png.tobytes())
    ok, grey = cv2.imencode(".png", clip[0][:, :, 0])
    seeds["grey.bin"] = _input("media", ".png", grey.tobytes())
    for name, suffix, codec, pix_fmt in (("ffv1", ".mkv", "ffv1", "bgr0"), ("h264", ".mp4", "libx264", "yuv420p")):
        video = WORK / f"seed{suffix}"
        write_video(video, clip, fps=30, codec=codec, pix_fmt=pix_fmt)
        seeds[f"{name}.bin"] = _input("media", suffix, video.read_bytes())
    for name, data in seeds.items():
        (folder / name).write_bytes(data)


def main() -> None:
    args = list(sys.argv)
    if not any(a.startswith("-timeout=") for a in args[1:]):
        args.append("-timeout=20")
    if not any(a.startswith("-rss_limit_mb=") for a in args[1:]):
        args.append("-rss_limit_mb=4096")  # colour tables hold 2**24 entries
    if not [a for a in args[1:] if not a.startswith("-")]:  # no corpus folder: start from our seeds
        corpus = WORK / "corpus"
        write_seeds(corpus)
        args.append(str(corpus))
    os.environ.setdefault("MASKDEC_KERNEL_THREADS", "1")
    atheris.Setup(args, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
