"""Export formats: how one sample's label map (and image) become files.

- png: `label_maps/<key>.png` (single channel, uint8 or uint16) and
  `images/<image key>.png` (RGB), keys from export_names (one per identity);
- npz: `samples/<key>.npz` holding `label_map` (and `image`), compressed;
- webdataset: tar shards `shards/<n>.tar` holding `<key>.label.png`,
  `<key>.image.png` and `<key>.json` per sample, each shard written whole.

With per_roi, every ROI of `sample.rois` also gets its mask (0 background,
255 its pixels; all 0 for an empty ROI, so every listed mask exists): png
`roi_masks/<key>_roi<k>[_<id>].png`, npz a `roi_masks` (N, H, W) bool array,
webdataset `<key>.roi<k>.png` members; the entry's `rois` lists them with
box, area and labels (see roi_entry).

Every file's bytes depend only on its content (no timestamps inside zip or
tar members), so a resumed export writes exactly what an uninterrupted one does.
"""
from __future__ import annotations

import contextlib
import io
import json
import re
import tarfile
import zipfile
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Mapping, Optional, Sequence

import cv2
import numpy as np

from .errors import MaskdecError
from .export_names import image_key, roi_suffix, sample_key
from .export_store import OutputStore
from .labels import LabelTable
from .rois import RoiSample, roi_samples_of
from .samples import Sample, SampleRequest

__all__ = ["FormatSpec", "Finished", "PNG", "NPZ", "WEBDATASET", "sample_key", "image_key", "dataset_meta",
           "dataset_meta_json", "entry_files", "encode_png", "npz_bytes", "roi_views", "roi_entry"]

_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


@dataclass(frozen=True)
class Finished:
    """What a format's `finish` step sees once every unit is done: the plan and the
    manifest entries of every finished sample, by plan position."""

    store: OutputStore
    table: LabelTable
    requests: Sequence[SampleRequest]
    done: Mapping[int, dict]


@dataclass(frozen=True)
class FormatSpec:
    """One export format: how a worker writes samples, and what the export does around it.

    writer(store, per_roi): an object with `per_sample` (a sample whose files cannot be
        written fails alone) and `group(name)`, a context manager yielding something with
        `add(sample) -> dict` (the entry's file fields); a group's files land when its block ends.
    shard: the name pattern of a group of `shard_size` samples (`shard.format(n)`), or None
        for one group per sample.
    instances: the writer needs per-ROI views (samples made with instances=True).
    finish: writes the files made from every finished entry (e.g. one annotations file),
        each whole, after the units; runs again on every resume, so it depends on the entries only.
    """

    name: str
    writer: Callable[[OutputStore, bool], Any]
    shard: Optional[str] = None
    instances: bool = False
    finish: Optional[Callable[[Finished], None]] = None


def roi_views(sample: Sample) -> list[RoiSample]:
    """Every ROI of `sample.rois` with its mask, box and area, from one pass over the
    colour indices (the sample must be made with instances=True)."""
    return roi_samples_of(sample) if sample.rois else []


def roi_name(view: RoiSample, *, with_id: bool) -> str:
    """`roi<k>` (k: the ROI's position in sample.rois), with `_<id>` (readable) on request."""
    return roi_suffix(view.ref.k, view.roi.id if with_id else None)


def roi_png(view: RoiSample) -> bytes:
    """The ROI's mask as a single-channel 8-bit PNG: 255 its pixels, 0 the rest."""
    return encode_png(view.mask.view(np.uint8) * np.uint8(255))


def roi_entry(view: RoiSample, mask: str) -> dict:
    """The manifest record of one ROI: where its mask is, which ROI it is, its box
    [x0, y0, x1, y1] (exclusive ends; null when empty) and area in pixels."""
    roi = view.roi
    entry = {"k": view.ref.k, "mask": mask, "roi_id": roi.id, "labels": list(roi.labels), "label": view.ref.name,
             "label_id": view.ref.label_id, "box": None if view.box is None else list(view.box), "area": view.area}
    if roi.confidence is not None:
        entry["confidence"] = roi.confidence
    return entry


def encode_png(array: np.ndarray, *, rgb: bool = False) -> bytes:
    """PNG bytes of a (H, W) uint8/uint16 label map, or of an (H, W, 3) RGB image."""
    if rgb:
        array = cv2.cvtColor(array, cv2.COLOR_RGB2BGR)
    ok, buf = cv2.imencode(".png", array)
    if not ok:
        raise MaskdecError(f"cannot encode a {array.shape} {array.dtype} array as PNG")
    return buf.tobytes()


def npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    """A compressed .npz (what np.load reads) with fixed member dates, so equal arrays give equal bytes."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, array in arrays.items():
            info = zipfile.ZipInfo(f"{name}.npy", date_time=_ZIP_EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            with zf.open(info, "w", force_zip64=True) as fh:
                np.lib.format.write_array(fh, np.ascontiguousarray(array), allow_pickle=False)
    return buf.getvalue()


def _tar_add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    info.mtime = 0
    tar.addfile(info, io.BytesIO(data))


def _meta(sample: Sample) -> dict:
    return {"frame_index": sample.frame_index, "source_id": sample.source_id, "mask_id": sample.mask_id,
            "timestamp": sample.timestamp, "mask_timestamp": sample.mask_timestamp}


class _FileWriter:
    """png and npz: one file per sample (png: plus one per source image), written at once."""

    per_sample = True  # a sample whose files cannot be written fails alone

    def __init__(self, store: OutputStore, fmt: str, per_roi: bool = False) -> None:
        self.store = store
        self.fmt = fmt
        self.per_roi = per_roi
        self._images_written: set[str] = set()

    @contextlib.contextmanager
    def group(self, name: Optional[str]) -> Iterator["_FileWriter"]:
        yield self

    def add(self, sample: Sample) -> dict:
        key = sample_key(sample.frame_index, sample.source_id, sample.mask_id)
        views = roi_views(sample) if self.per_roi else None
        if self.fmt == "npz":
            rel = f"samples/{key}.npz"
            arrays = {"label_map": sample.label_map}
            if sample.image is not None:
                arrays["image"] = sample.image
            if views is not None:
                arrays["roi_masks"] = np.array([v.mask for v in views], bool).reshape((-1,) + sample.label_map.shape)
            self.store.write_bytes(rel, npz_bytes(arrays))
            files = {"label_map": rel, "image": rel if sample.image is not None else None}
            if views is not None:
                files["rois"] = [roi_entry(v, rel) for v in views]
            return files
        label_rel = f"label_maps/{key}.png"
        self.store.write_bytes(label_rel, encode_png(sample.label_map))
        rois = None
        if views is not None:
            rois = [roi_entry(v, f"roi_masks/{key}_{roi_name(v, with_id=True)}.png") for v in views]
            for view, record in zip(views, rois):
                self.store.write_bytes(record["mask"], roi_png(view))
        image_rel = None
        if sample.image is not None:
            image_rel = f"images/{image_key(sample.frame_index, sample.source_id)}.png"
            if image_rel not in self._images_written:  # masks of one source share its image
                self.store.write_bytes(image_rel, encode_png(sample.image, rgb=True))
                self._images_written.add(image_rel)
        files = {"label_map": label_rel, "image": image_rel}
        if rois is not None:
            files["rois"] = rois
        return files


class _Shard:
    """One open WebDataset shard: members are added as samples come, the shard lands whole on exit."""

    def __init__(self, store: OutputStore, rel: str, stack: contextlib.ExitStack, per_roi: bool = False) -> None:
        self.store, self.rel, self._stack, self.per_roi = store, rel, stack, per_roi
        self._tar: Optional[tarfile.TarFile] = None

    def add(self, sample: Sample) -> dict:
        if self._tar is None:  # a shard whose samples all failed is not written at all
            fh = self._stack.enter_context(self.store.open_write(self.rel))
            self._tar = self._stack.enter_context(tarfile.open(fileobj=fh, mode="w", format=tarfile.PAX_FORMAT))
        key = sample_key(sample.frame_index, sample.source_id, sample.mask_id)
        _tar_add(self._tar, f"{key}.label.png", encode_png(sample.label_map))
        image = None
        if sample.image is not None:
            image = f"{key}.image.png"
            _tar_add(self._tar, image, encode_png(sample.image, rgb=True))
        meta = _meta(sample)
        files = {"shard": self.rel, "label_map": f"{key}.label.png", "image": image}
        if self.per_roi:
            views = roi_views(sample)
            files["rois"] = meta["rois"] = [roi_entry(v, f"{key}.{roi_name(v, with_id=False)}.png") for v in views]
            for view, record in zip(views, files["rois"]):
                _tar_add(self._tar, record["mask"], roi_png(view))
        _tar_add(self._tar, f"{key}.json", (json.dumps(meta, sort_keys=True) + "\n").encode("utf-8"))
        return files


class _ShardWriter:
    per_sample = False  # a shard lands whole or not at all

    def __init__(self, store: OutputStore, per_roi: bool = False) -> None:
        self.store = store
        self.per_roi = per_roi

    @contextlib.contextmanager
    def group(self, name: Optional[str]) -> Iterator[_Shard]:
        if name is None:
            raise MaskdecError("a webdataset group needs a shard name")
        with contextlib.ExitStack() as stack:
            yield _Shard(self.store, name, stack, self.per_roi)


PNG = FormatSpec("png", lambda store, per_roi: _FileWriter(store, "png", per_roi))
NPZ = FormatSpec("npz", lambda store, per_roi: _FileWriter(store, "npz", per_roi))
WEBDATASET = FormatSpec("webdataset", _ShardWriter, shard="shards/{:06d}.tar")

#: The per-sample file fields a manifest entry may hold (paths relative to the output).
ENTRY_FILE_FIELDS = ("label_map", "image", "panoptic")


def entry_files(entry: dict) -> list[str]:
    """The output files a manifest entry relies on (paths relative to the output)."""
    if "shard" in entry:
        return [entry["shard"]]
    rois = [r["mask"] for r in entry.get("rois", ())]
    return sorted({p for p in (*(entry.get(f) for f in ENTRY_FILE_FIELDS), *rois) if p})


def dataset_meta(table: LabelTable, requests: Sequence[SampleRequest]) -> dict:
    """Datumaro's dataset_meta.json: `label_map` {id: name} and `segmentation_colors`
    (indexed by id: each label's first declared colour; [0, 0, 0] where none)."""
    colours: dict[int, list[int]] = {}
    for request in requests:
        if request.table is None:
            continue
        for colour, label_id in zip(request.table.colours, request.table.ids):
            if label_id == table.ignore_index or label_id in colours:
                continue
            if len(colour) == 3:
                colours[label_id] = [int(c) for c in colour]
            elif len(colour) == 1 and colour[0] <= 255:
                colours[label_id] = [int(colour[0])] * 3
    ids = sorted(table.ids.values())
    size = ids[-1] + 1 if ids else 0
    return {
        "label_map": {str(i): name for i, name in sorted(table.names().items())},
        "segmentation_colors": [colours.get(i, [0, 0, 0]) for i in range(size)],
    }


def dataset_meta_json(table: LabelTable, requests: Sequence[SampleRequest]) -> str:
    """dataset_meta.json's text: indented, one colour per line."""
    text = json.dumps(dataset_meta(table, requests), indent=2)
    return re.sub(r"\[\s+(\d+),\s+(\d+),\s+(\d+)\s+\]", r"[\1, \2, \3]", text) + "\n"
