"""A deterministic synthetic dataset, made on demand: the embedded example.

A street scene with moving shapes: a source video, its mask video (H.264 by
default), a PNG image/mask pair and frames.jsonl. Tests and benchmarks use
the same generator, and `scene_classes` is the ground truth of every frame.
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Mapping, Optional, Union

import cv2
import numpy as np

from .frames import Frame, Mask, Source
from .media.writer import write_video

__all__ = ["PALETTE", "Example", "make_example", "scene_classes", "scene_image", "colour_mask"]

#: Class name -> mask colour; all of them touch in every frame.
PALETTE: dict[str, tuple[int, int, int]] = {
    "sky": (70, 130, 180),
    "building": (70, 70, 70),
    "tree": (107, 142, 35),
    "road": (128, 64, 128),
    "car": (0, 0, 142),
    "person": (220, 20, 60),
}
CLASS_NAMES = list(PALETTE)


def scene_classes(index: int, height: int, width: int, *, still: bool = False) -> np.ndarray:
    """(H, W) uint8 class indices (positions in PALETTE) of scene frame `index`."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    y /= height
    x /= width
    phase = index / 30.0 + (0.37 if still else 0.0)
    out = np.zeros((height, width), np.uint8)  # sky
    horizon = 0.35 + 0.03 * math.sin(phase * 2.0)
    out[y >= horizon] = 1  # building band
    tree = (x - (0.75 - 0.1 * math.sin(phase))) ** 2 / 0.012 + (y - 0.33) ** 2 / 0.02 <= 1.0
    out[tree] = 2
    out[y >= 0.55] = 3  # road
    cx = (0.1 + 0.35 * phase) % 1.1 - 0.05
    car = (np.abs(x - cx) <= 0.14) & (y >= 0.6) & (y <= 0.78)
    out[car] = 4
    px, py = 0.3 + 0.2 * math.cos(phase * 1.5), 0.62 + 0.05 * math.sin(phase * 3.0)
    person = ((x - px) / 0.035) ** 2 + ((y - py) / 0.15) ** 2 <= 1.0
    out[person] = 5
    return out


def colour_mask(classes: np.ndarray) -> np.ndarray:
    """Class indices -> (H, W, 3) RGB mask in PALETTE colours."""
    return np.array(list(PALETTE.values()), np.uint8)[classes]


def scene_image(index: int, classes: np.ndarray) -> np.ndarray:
    """A textured RGB rendering of a scene (not the mask colours)."""
    h, w = classes.shape
    rng = np.random.default_rng(index + 1)
    shades = np.array([(135, 190, 235), (120, 110, 100), (40, 120, 40), (90, 90, 95), (200, 30, 30),
                       (240, 200, 160)], np.float32)
    img = shades[classes]
    grad = np.linspace(0.8, 1.2, w, dtype=np.float32)[None, :, None]
    img = img * grad + rng.normal(0, 6, (h, w, 1)).astype(np.float32)
    return np.clip(img, 0, 255).astype(np.uint8)


@dataclass
class Example:
    """What `make_example` wrote, with the ground truth to check against."""

    root: Path
    frames_path: Path
    width: int
    height: int
    fps: Fraction
    n_frames: int
    timestamps: list[int] = field(default_factory=list)
    still_index: int = 1000

    def truth(self, video_frame: int) -> np.ndarray:
        """Class indices of a video frame."""
        return scene_classes(video_frame, self.height, self.width)

    def still_truth(self) -> np.ndarray:
        return scene_classes(self.still_index, self.height, self.width, still=True)

    def label_ids(self, labels: Mapping[str, int]) -> np.ndarray:
        """PALETTE position -> label id under `labels`."""
        return np.array([labels[name] for name in CLASS_NAMES], np.int64)


def _annotated_frame(frame: Frame, source_id: str) -> Frame:
    for name, colour in PALETTE.items():
        frame.add_annotation(mask_rgb=list(colour), labels=[name], source_id=source_id)
    return frame


def make_example(
    root: Union[str, os.PathLike],
    *,
    width: int = 320,
    height: int = 240,
    n_frames: int = 30,
    fps: Union[int, Fraction] = 30,
    mask_codec: str = "libx264",
    mask_pix_fmt: str = "yuv420p",
    mask_options: Optional[Mapping[str, str]] = None,
    image_codec: str = "libx264",
) -> Example:
    """Write the example dataset into `root` and return its description."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    fps = Fraction(fps)
    classes = [scene_classes(i, height, width) for i in range(n_frames)]
    if mask_options is None:
        mask_options = {"crf": "18"} if mask_codec == "libx264" else {}
    write_video(root / "source.mp4", (scene_image(i, c) for i, c in enumerate(classes)), fps=fps,
                codec=image_codec, pix_fmt="yuv420p", options={"crf": "23"})
    write_video(root / "mask.mp4", (colour_mask(c) for c in classes), fps=fps, codec=mask_codec,
                pix_fmt=mask_pix_fmt, options=mask_options)
    example = Example(root=root, frames_path=root / "frames.jsonl", width=width, height=height, fps=fps,
                      n_frames=n_frames)
    still = example.still_truth()
    cv2.imwrite(str(root / "still.png"), cv2.cvtColor(scene_image(example.still_index, still), cv2.COLOR_RGB2BGR))
    cv2.imwrite(str(root / "still_mask.png"), cv2.cvtColor(colour_mask(still), cv2.COLOR_RGB2BGR))

    frames = []
    for i in range(n_frames):
        ts = int(i * 1000 / fps)  # writers truncate
        example.timestamps.append(ts)
        source = Source(id="front", uri="source.mp4", content_type="video/mp4", width=width, height=height,
                        timestamp=ts, masks=[Mask(id="seg", uri="mask.mp4", content_type="video/mp4", timestamp=ts)])
        frames.append(_annotated_frame(Frame(sources=[source], id=f"clip-{i:04d}", context_id="clip",
                                             timestamp=ts), "front"))
    source = Source(id="cam", uri="still.png", content_type="image/png", width=width, height=height,
                    masks=[Mask(id="seg", uri="still_mask.png", content_type="image/png")])
    frames.append(_annotated_frame(Frame(sources=[source], id="still"), "cam"))
    tmp = example.frames_path.with_suffix(".jsonl.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        for frame in frames:
            fh.write(json.dumps(frame.to_dict()) + "\n")
    os.replace(tmp, example.frames_path)
    return example
