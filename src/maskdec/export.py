"""`maskdec export`: write label maps (and images) of every sample to a folder.

Layout of DIR:
  labels.json       {name: id}
  manifest.jsonl    one object per exported sample
  failures.jsonl    one object per sample that failed
  label_maps/*.png  single-channel PNG (uint8, or uint16 when ids need it)
  images/*.png      RGB source images (unless images=False)
Every file is written to a temporary name and renamed, so it appears whole.
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping, Optional, Sequence, Union

import cv2
import numpy as np

from .errors import MaskdecError
from .samples import FramesArg, Sample, SampleFailure, SampleIterator, _as_frames, plan_samples

__all__ = ["ExportSummary", "export"]


@dataclass
class ExportSummary:
    """What an export did: counts, the label table and the failures."""

    out_dir: Path
    samples: int = 0
    failed: int = 0
    labels: dict = field(default_factory=dict)
    failures: list = field(default_factory=list)


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name) or "_"


def _write_atomic(path: Path, write: Callable[[str], None]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}{path.suffix}")
    try:
        write(str(tmp))
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def _write_png(path: Path, array: np.ndarray) -> None:
    def write(tmp: str) -> None:
        if not cv2.imwrite(tmp, array):
            raise MaskdecError(f"cannot write {path}")
    _write_atomic(path, write)


def _write_text(path: Path, text: str) -> None:
    def write(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
    _write_atomic(path, write)


def export(
    frames: FramesArg,
    out_dir: Union[str, os.PathLike],
    *,
    labels: Optional[Mapping[str, int]] = None,
    mask_labels: Union[str, os.PathLike, Mapping, Sequence, None] = None,
    tolerance: Optional[float] = None,
    images: bool = True,
    ignore_index: int = 255,
    progress: Optional[Callable[[int], None]] = None,
) -> ExportSummary:
    """Export every sample of `frames` into `out_dir`; failures are recorded, not raised."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    table, requests = plan_samples(_as_frames(frames), labels=labels, mask_labels=mask_labels,
                                   ignore_index=ignore_index)
    summary = ExportSummary(out_dir=out, labels=table.to_dict())
    _write_text(out / "labels.json", json.dumps(table.to_dict(), indent=2, sort_keys=True) + "\n")
    samples = SampleIterator(table, requests, tolerance=tolerance, images=images, strict_sizes=False,
                             timestamp_unit="ms", threads=None, raise_errors=False, stats=True)
    manifest_lines, failure_lines = [], []
    written_images: set[str] = set()
    for result in samples:
        if isinstance(result, SampleFailure):
            summary.failed += 1
            summary.failures.append(result)
            failure_lines.append(json.dumps(result.to_dict()))
        else:
            manifest_lines.append(json.dumps(_write_sample(out, result, written_images)))
            summary.samples += 1
        if progress is not None:
            progress(1)
    _write_text(out / "manifest.jsonl", "".join(line + "\n" for line in manifest_lines))
    _write_text(out / "failures.jsonl", "".join(line + "\n" for line in failure_lines))
    return summary


def _write_sample(out: Path, sample: Sample, written_images: set) -> dict:
    stem = f"{sample.frame_index:06d}_{_safe(sample.source_id)}"
    label_rel = f"label_maps/{stem}_{_safe(sample.mask_id)}.png"
    _write_png(out / label_rel, sample.label_map)
    image_rel = None
    if sample.image is not None:
        image_rel = f"images/{stem}.png"
        if image_rel not in written_images:
            _write_png(out / image_rel, cv2.cvtColor(sample.image, cv2.COLOR_RGB2BGR))
            written_images.add(image_rel)
    return {"frame_index": sample.frame_index, "source_id": sample.source_id, "mask_id": sample.mask_id,
            "timestamp": sample.timestamp, "mask_timestamp": sample.mask_timestamp,
            "label_map": label_rel, "image": image_rel,
            "stats": None if sample.stats is None else sample.stats.to_dict()}
