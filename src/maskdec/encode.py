"""`maskdec encode`: label maps + a label table + colours -> a mask video and frames.jsonl.

The mirror of decoding: each label map becomes one frame of a colour mask
video, and one frame of frames.jsonl whose ROIs (made with
`Frame.add_annotation`) declare the colour of every class it shows. With a
lossless codec, `iter_samples(frames, labels=...)` gives the label maps back
exactly.

Layout of DIR:
  mask.mkv (or mask.mp4)  the colour mask video
  frames.jsonl            one frame per label map
  labels.json             {name: id}
  colours.json            {name: [r, g, b]}
"""
from __future__ import annotations

import colorsys
import json
import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Literal, Mapping, Optional, Sequence, Union

import cv2
import numpy as np

from .errors import FrameFormatError, LabelError, MaskdecError, MediaDecodeError, MediaNotFoundError
from .frames import Frame, Mask, Source, _colour
from .media.writer import write_video

__all__ = ["Codec", "CODECS", "EncodeResult", "encode_masks", "load_label_maps", "default_colours"]

Codec = Literal["ffv1", "libx264rgb", "h264"]

#: codec -> (PyAV encoder, pixel format, options, file name, lossless)
CODECS: dict[str, tuple[str, str, dict, str, bool]] = {
    "ffv1": ("ffv1", "bgr0", {}, "mask.mkv", True),
    "libx264rgb": ("libx264rgb", "rgb24", {"qp": "0", "preset": "veryfast"}, "mask.mkv", True),
    "h264": ("libx264", "yuv420p", {"crf": "18"}, "mask.mp4", False),
}
_IMAGE_SUFFIXES = (".png", ".tif", ".tiff", ".bmp")


@dataclass
class EncodeResult:
    """What `encode_masks` wrote."""

    frames_path: Path
    mask_path: Path
    labels_path: Path
    colours: dict[str, tuple[int, int, int]]
    n_frames: int
    lossless: bool


def default_colours(names: Sequence[str]) -> dict[str, tuple[int, int, int]]:
    """Distinct, well separated colours (golden-ratio hues), one per name, never black."""
    out = {}
    for i, name in enumerate(names):
        r, g, b = colorsys.hsv_to_rgb((i * 0.618033988749895) % 1.0, 0.85 if i % 2 else 0.65, 0.95 - 0.3 * (i % 3 == 2))
        out[name] = (int(round(r * 255)), int(round(g * 255)), int(round(b * 255)))
    return out


def load_label_maps(path: Union[str, os.PathLike]) -> tuple[list[str], Sequence[np.ndarray]]:
    """(names, label maps) from a folder of single-channel images (sorted by name) or an
    (N, H, W) .npy stack (names frame_000000 ...)."""
    path = Path(path)
    if not path.exists():
        raise MediaNotFoundError(f"label maps not found: {path}")
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in _IMAGE_SUFFIXES)
        if not files:
            raise MediaNotFoundError(f"{path}: holds no label map images ({', '.join(_IMAGE_SUFFIXES)})")
        maps = []
        for f in files:
            array = cv2.imread(str(f), cv2.IMREAD_UNCHANGED)
            if array is None:
                raise MediaDecodeError(f"{f}: cannot read as an image")
            if array.ndim != 2:
                raise FrameFormatError(f"a label map must have one channel, got shape {array.shape}", str(f))
            maps.append(array)
        return [f.stem for f in files], maps
    if path.suffix.lower() != ".npy":
        raise FrameFormatError("expected a folder of label map images or an .npy stack", str(path))
    try:
        stack = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise MediaDecodeError(f"{path}: cannot read as .npy: {exc}") from None
    if stack.ndim == 2:
        stack = stack[None]
    if stack.ndim != 3 or not np.issubdtype(stack.dtype, np.integer):
        raise FrameFormatError(f"expected an (N, H, W) integer stack, got {stack.shape} {stack.dtype}", str(path))
    return [f"frame_{i:06d}" for i in range(len(stack))], stack


def _check_table(labels: Mapping[str, int], colours: Mapping[str, Sequence[int]], ignore_index: int,
                 unlabelled: Sequence[int]) -> tuple[np.ndarray, dict[str, tuple[int, int, int]]]:
    """The id -> RGB palette (unlabelled colour for ids without a class) and the colours checked."""
    checked: dict[str, tuple[int, int, int]] = {}
    seen: dict[tuple, str] = {}
    for name in labels:
        if name not in colours:
            raise LabelError(f"class {name!r} has no colour")
        value = _colour(list(colours[name]), f"colours.{name}")
        if len(value) != 3:
            raise LabelError(f"class {name!r}: a colour is [r, g, b], got {list(value)}")
        if value in seen:
            raise LabelError(f"classes {seen[value]!r} and {name!r} share the colour {list(value)}")
        if value == tuple(unlabelled):
            raise LabelError(f"class {name!r} has the colour {list(value)} of unlabelled pixels; "
                             "choose another unlabelled colour")
        seen[value] = name
        checked[name] = value
    ids = list(labels.values())
    if len(set(ids)) != len(ids):
        raise LabelError("two classes share an id in the label table")
    if ignore_index in ids:
        raise LabelError(f"a class has the id {ignore_index}, which is the ignore_index")
    palette = np.empty((max(ids + [ignore_index, 255]) + 1, 3), np.uint8)
    palette[:] = unlabelled
    for name, i in labels.items():
        palette[i] = checked[name]
    return palette, checked


def encode_masks(
    label_maps: Union[str, os.PathLike],
    out_dir: Union[str, os.PathLike],
    *,
    labels: Mapping[str, int],
    colours: Optional[Mapping[str, Sequence[int]]] = None,
    codec: Codec = "ffv1",
    fps: Union[int, Fraction] = 30,
    source: Optional[str] = None,
    mask_id: str = "seg",
    ignore_index: int = 255,
    unlabelled: Sequence[int] = (0, 0, 0),
    crf: Optional[int] = None,
) -> EncodeResult:
    """Encode label maps into a colour mask video and a frames.jsonl that declares its colours.

    labels: {name: id}; colours: {name: [r, g, b]} (default: `default_colours`).
    Pixels with `ignore_index` get the `unlabelled` colour, which no ROI declares.
    source: the image video (frame i pairs with label map i) or a folder of images
    (sorted); without it the frames' source is the mask video itself.
    codec: "ffv1" or "libx264rgb" (lossless), "h264" (lossy yuv420p, `crf`).
    """
    if codec not in CODECS:
        raise MaskdecError(f"unknown codec {codec!r}: choose one of {', '.join(CODECS)}")
    encoder, pix_fmt, options, file_name, lossless = CODECS[codec]
    options = dict(options)
    if crf is not None:
        if lossless:
            raise MaskdecError(f"--crf applies to the lossy codec h264, not {codec}")
        options["crf"] = str(int(crf))
    if not labels:
        raise LabelError("the label table is empty")
    colours = dict(default_colours(sorted(labels, key=labels.get)) if colours is None else colours)
    palette, checked = _check_table(labels, colours, ignore_index, unlabelled)
    names, maps = load_label_maps(label_maps)
    shape = maps[0].shape
    known = np.zeros(palette.shape[0], bool)
    known[list(labels.values())] = True
    known[ignore_index] = True
    id_to_name = {i: n for n, i in labels.items()}
    present: list[list[str]] = []
    for name, array in zip(names, maps):
        if array.shape != shape:
            raise FrameFormatError(f"label map is {array.shape[1]}x{array.shape[0]}, the first one "
                                   f"{shape[1]}x{shape[0]}", name)
        ids = np.unique(np.asarray(array))
        bad = [int(i) for i in ids if i < 0 or i >= known.size or not known[i]]
        if bad:
            raise LabelError(f"{name}: label ids {bad[:5]} are neither in the label table nor the ignore_index")
        present.append([id_to_name[int(i)] for i in ids if int(i) in id_to_name])
    if not lossless and (shape[0] % 2 or shape[1] % 2):
        raise MaskdecError(f"{label_maps}: h264 (yuv420p) needs even sizes, the label maps are {shape[1]}x{shape[0]}")

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    mask_path = out / file_name
    fps = Fraction(fps)
    tmp_mask = mask_path.with_name(f".{mask_path.stem}.tmp{os.getpid()}{mask_path.suffix}")
    try:
        write_video(tmp_mask, (palette[np.asarray(a)] for a in maps), fps=fps, codec=encoder, pix_fmt=pix_fmt,
                    options=options)
        os.replace(tmp_mask, mask_path)
    finally:
        if tmp_mask.exists():
            tmp_mask.unlink()

    source_uris = _source_uris(source, len(maps), out, mask_path)
    frames = []
    for i, (name, classes) in enumerate(zip(names, present)):
        ts = int(i * 1000 / fps)  # writers truncate
        mask = Mask(id=mask_id, uri=file_name, timestamp=ts)
        src = Source(id="image", uri=source_uris[i], width=shape[1], height=shape[0], masks=[mask])
        frame = Frame(sources=[src], id=name, timestamp=ts, context_id=Path(label_maps).stem)
        for cls in classes:
            frame.add_annotation(mask_rgb=checked[cls], labels=[cls], mask_id=mask_id)
        frames.append(frame)
    frames_path = out / "frames.jsonl"
    labels_path = out / "labels.json"
    _write_text(frames_path, "".join(json.dumps(f.to_dict()) + "\n" for f in frames))
    _write_text(labels_path, json.dumps(dict(labels), indent=2) + "\n")
    _write_text(out / "colours.json", json.dumps({n: list(c) for n, c in checked.items()}, indent=2) + "\n")
    return EncodeResult(frames_path=frames_path, mask_path=mask_path, labels_path=labels_path, colours=checked,
                        n_frames=len(maps), lossless=lossless)


def _source_uris(source: Optional[str], n: int, out: Path, mask_path: Path) -> list[str]:
    """Each frame's source URI, relative to `out` (sources take the frame's timestamp)."""
    if source is None:
        return [mask_path.name] * n
    path = Path(source)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in _IMAGE_SUFFIXES + (".jpg", ".jpeg"))
        if len(files) != n:
            raise FrameFormatError(f"holds {len(files)} images for {n} label maps", str(path))
        return [os.path.relpath(f.resolve(), out.resolve()) for f in files]
    if not path.exists():
        raise MediaNotFoundError(f"source not found: {path}")
    return [os.path.relpath(path.resolve(), out.resolve())] * n


def _write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.replace(tmp, path)
