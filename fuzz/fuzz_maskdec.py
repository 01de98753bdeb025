#!/usr/bin/env python3
"""Fuzz maskdec with atheris: the frame parser, frames files, opening media bytes, the
options of iter_samples (and the environment settings), and ids with odd characters.

Run as a script; the options are libFuzzer's, e.g. for a bounded run (what CI does):

    python fuzz/fuzz_maskdec.py -max_total_time=60

Each input's first byte picks a target and its second the file name extension; the rest
is the payload. Without a corpus folder on the command line the run starts from seeds it
writes itself (frames, a PNG, FFV1/Matroska and H.264/MP4 clips, option choices, ids). An
exception that is not a MaskdecError, a frame that fails to round-trip, an export name that
is not a safe file name or that two identities share, a crash or an input that runs longer
than -timeout (20 s unless given) stops the run and leaves a reproducer (crash-*, timeout-*).
"""
from __future__ import annotations

import json
import math
import os
import sys
import tempfile
import warnings
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
    try:  # the export's names (maskdec.export_names), where this version has them
        from maskdec.export_names import check_unique_keys, image_key, roi_suffix, sample_key
    except ImportError:
        sample_key = None

TARGETS = ("frame", "frames_file", "media", "options", "ids")
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


# Odd values for options and settings: every one must be taken or refused with a MaskdecError.
ODD_VALUES = (
    None, True, False, 0, 1, -1, 2, 255, 256, 65535, 65536, 2 ** 31, 2 ** 70, -(2 ** 70), 0.0, 0.5, -0.5, 30.0,
    math.nan, math.inf, -math.inf, 1j, "", "10", "-1", "ms", "index", "MS", "\0", "nan", "1e9", b"10", [], [1],
    ["car"], ("road",), {}, {"car": 1}, {"car": "1"}, {"car": -1}, {"car": 2 ** 40}, {"car": 1.5}, {1: 2},
    {"car": True}, {"road": 255}, {"_all_": []}, [{"value": [1, 2, 3], "labels": ["car"]}],
    [{"value": "x", "labels": 1}], object(), np.int64(3), np.uint8(7), np.float32(2.5), np.float64(math.nan),
    np.array([1, 2]), Path("/nonexistent/maskdec-fuzz.json"), str, ...,
)
OPTION_NAMES = ("labels", "tolerance", "images", "ignore_index", "mask_labels", "strict", "strict_sizes",
                "strict_keys", "timestamp_unit", "threads", "yuv", "instances", "stats", "label_maps",
                "max_open_readers", "max_buffered_bytes", "tolerence", "label", "strict_key")
ENV_NAMES = ("MASKDEC_MAX_PIXELS", "MASKDEC_KERNEL_THREADS", "MASKDEC_MAX_JSON_LINE_BYTES",
             "MASKDEC_MAX_JSON_FILE_BYTES", "MASKDEC_URI_SCHEMES", "MASKDEC_MEDIA_ROOTS")
ENV_VALUES = ("", "0", "1", "-3", "2", "64", "10M", "1G", "abc", "1.5", "\t", "file", "file,http", "ftp",
              "99999999999999999999999999", "/", str(WORK))


def _still_frames() -> list[dict]:
    """Two frames on the PNG seed written by write_seeds (a 16x12 mask of TABLE colours)."""
    png = str(WORK / "still.png")
    return [{"id": f"f{i}", "sources": [{"id": "cam", "uri": png, "masks": [{"id": "m", "uri": png}]}],
             "rois": [{"label": [f"c{k}"], "mask": {"id": "m", "value": list(c)}}
                      for k, c in enumerate(TABLE.colours)]} for i in range(2)]


def fuzz_options(payload: bytes) -> None:
    """iter_samples with options (and environment settings) chosen from odd values:
    samples, or a MaskdecError (an OptionError naming the option) and nothing else."""
    provider = atheris.FuzzedDataProvider(payload)
    options = {}
    for _ in range(provider.ConsumeIntInRange(0, 4)):
        name = OPTION_NAMES[provider.ConsumeIntInRange(0, len(OPTION_NAMES) - 1)]
        options[name] = ODD_VALUES[provider.ConsumeIntInRange(0, len(ODD_VALUES) - 1)]
    env = {}
    for _ in range(provider.ConsumeIntInRange(0, 2)):
        env[ENV_NAMES[provider.ConsumeIntInRange(0, len(ENV_NAMES) - 1)]] = \
            ENV_VALUES[provider.ConsumeIntInRange(0, len(ENV_VALUES) - 1)]
    saved = {name: os.environ.get(name) for name in env}
    os.environ.update(env)
    try:
        for sample in maskdec.iter_samples(_still_frames(), **options):
            if sample.label_map is not None and sample.label_map.shape != (12, 16):
                raise AssertionError(f"label map of shape {sample.label_map.shape} with {options!r}, {env!r}")
    except maskdec.MaskdecError:
        pass
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def fuzz_ids(payload: bytes) -> None:
    """A frame whose ids (frame, sources, masks, ROIs) are any text: it parses or raises a
    MaskdecError; where the export's names exist, each is a safe file name (no '/', no NUL,
    within 200 bytes) and different identities get different names."""
    text = payload.decode("utf-8", "surrogateescape")
    parts = (text.split("\x01") + ["", "", "", ""])[:4]
    frame_id, source_id, mask_id, roi_id = parts
    other = source_id + "_" if not source_id.endswith("_") else source_id[:-1]
    d = {"id": frame_id, "sources": [
        {"id": source_id, "uri": "a.png", "masks": [{"id": mask_id, "uri": "m.png"}, {"id": mask_id + "x", "uri": "m.png"}]},
        {"id": other, "uri": "b.png", "masks": [{"id": mask_id, "uri": "m.png"}]}],
        "rois": [{"id": roi_id, "label": [roi_id or "x"], "sources": [source_id], "mask": {"id": mask_id, "value": [1, 2, 3]}}]}
    try:
        frame = Frame.from_dict(d, strict_keys=True)
    except maskdec.MaskdecError:
        return
    if sample_key is None:
        return
    identities = [(i, s.id, m.id) for i in (0, 7) for s in frame.sources for m in s.masks]
    names = [sample_key(*identity) for identity in identities]
    names += [image_key(i, s.id) for i in (0, 7) for s in frame.sources]
    names += [sample_key(*identities[0]) + roi_suffix(k, roi_id) for k in (1, 12)]
    for name in names:
        if "/" in name or "\0" in name or name in (".", "..") or len(name.encode("utf-8", "surrogateescape")) > 200:
            raise AssertionError(f"unsafe export name {name!r} for ids {parts!r}")
    if len(set(names)) != len(names) or len({n.lower() for n in names}) != len(names):
        raise AssertionError(f"two identities share an export name: {names!r}")
    try:
        check_unique_keys(identities)
    except maskdec.MaskdecError as exc:
        raise AssertionError(f"distinct identities refused as colliding: {exc}") from None


def test_one_input(data: bytes) -> None:
    if len(data) < 2:
        return
    target, suffix, payload = TARGETS[data[0] % len(TARGETS)], SUFFIXES[data[1] % len(SUFFIXES)], data[2:]
    if target == "frame":
        fuzz_frame(payload)
    elif target == "frames_file":
        fuzz_frames_file(payload, suffix)
    elif target == "media":
        fuzz_media(payload, suffix)
    elif target == "options":
        fuzz_options(payload)
    else:
        fuzz_ids(payload)


def _input(target: str, suffix: str, payload: bytes) -> bytes:
    return bytes([TARGETS.index(target), SUFFIXES.index(suffix)]) + payload


def _clip() -> list[np.ndarray]:
    """Three 16x12 frames of TABLE's RGB colours."""
    rng = np.random.default_rng(0)
    colours = np.array([c for c in TABLE.colours if len(c) == 3], np.uint8)
    return [colours[rng.integers(len(colours), size=(12, 16))] for _ in range(3)]


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
    clip = _clip()
    ok, png = cv2.imencode(".png", clip[0][:, :, ::-1])
    seeds["png.bin"] = _input("media", ".png", png.tobytes())
    seeds["options.bin"] = _input("options", "", bytes(range(64)))
    seeds["ids.bin"] = _input("ids", "", "fr\x01a_b\x01c\x01r/../\x00".encode())
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
    cv2.imwrite(str(WORK / "still.png"), _clip()[0][:, :, ::-1])  # what fuzz_options decodes
    warnings.simplefilter("ignore", maskdec.MaskdecWarning)  # lenient mode's notes, by design
    atheris.Setup(args, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
