"""COCO outputs: instance segmentation (`coco`) and panoptic segmentation (`coco-panoptic`).

Both see a sample's ROIs by colour (rois.roi_samples_of): the pixels of one colour
make one segment. A colour that one ROI of the sample declares is an instance
(iscrowd 0); a colour that several ROIs declare cannot be split between them, so it
is one crowd segment (iscrowd 1, as COCO marks a group of objects) that lists them
all. Colours without pixels, and ROIs whose class is not in the label table (its id
is ignore_index), make no segment.

coco: `images/<image key>.png` per source image (shared by the masks of one source)
and, in the manifest entry, a `coco` list with one annotation per segment (COCO RLE
from pycocotools). The finish step writes `annotations.json`: one image per (frame,
source), categories from the label table, annotations in plan order.

coco-panoptic: `panoptic/<sample key>.png` per sample, an RGB PNG of segment ids
(id = R + 256 G + 256^2 B, 0 = void), and the entry's `segments_info`. Ids 1..N are
ROI positions k + 1 (so on ROI pixels the PNG equals Sample.instance_map); the pixels
of a class that no ROI colour covers (e.g. colours of --mask-labels) are one segment
per class, numbered from N + 1 in class id order. The finish step writes
`panoptic.json`: one image and one annotation per sample; a category is a thing when
some finished sample has a segment of it made by ROIs, else stuff, and in
panoptic.json the class-only segments of thing categories become crowd segments.

Both finish steps read only the manifest entries (by plan position), so a resumed
export writes exactly the bytes of an uninterrupted one.
"""
from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from typing import Iterator, Optional, Sequence

import cv2
import numpy as np

from .errors import MaskdecError, MissingExtraError
from .export_formats import Finished, FormatSpec, dataset_meta, encode_png, roi_views
from .export_names import image_key, sample_key
from .export_store import OutputStore
from .labels import LabelTable
from .rois import RoiRef, RoiSample
from .samples import Sample, SampleRequest

__all__ = ["COCO", "COCO_PANOPTIC", "ColourSegment", "colour_segments", "CocoExportError", "PanopticIdError",
           "MAX_SEGMENT_ID", "id_to_rgb", "rgb_to_id", "coco_rle"]

#: The largest id a panoptic PNG holds (three 8-bit channels; 0 is void).
MAX_SEGMENT_ID = 2 ** 24 - 1


class CocoExportError(MaskdecError, ValueError):
    """Samples that a COCO file cannot represent (the message names them)."""


class PanopticIdError(CocoExportError):
    """A sample has more segments than a panoptic PNG has ids."""


@dataclass(frozen=True)
class ColourSegment:
    """The pixels of one ROI colour of a sample: `view` of its first ROI (mask, box, area)
    and every ROI of the sample that declared the colour, in ROI order."""

    view: RoiSample
    refs: tuple[RoiRef, ...]

    @property
    def crowd(self) -> bool:
        return len(self.refs) > 1


def colour_segments(sample: Sample) -> list[ColourSegment]:
    """The segments of a sample made with instances=True: one per ROI colour that has pixels
    and a class in the label table, in the order of each colour's first ROI."""
    ignore = sample.request.table.ignore_index if sample.request is not None and sample.request.table else None
    first: dict[tuple, RoiSample] = {}
    refs: dict[tuple, list[RoiRef]] = {}
    for view in roi_views(sample):
        first.setdefault(view.ref.colour, view)
        refs.setdefault(view.ref.colour, []).append(view.ref)
    return [ColourSegment(view, tuple(refs[colour])) for colour, view in first.items()
            if view.area > 0 and view.ref.label_id != ignore]


def _xywh(box: Sequence[int]) -> list[int]:
    x0, y0, x1, y1 = box
    return [int(x0), int(y0), int(x1 - x0), int(y1 - y0)]


def _segment_record(segment: ColourSegment) -> dict:
    """What COCO and panoptic records share: class, area, box [x, y, w, h], iscrowd, and which
    ROI made it (its first ROI; a crowd lists every ROI with its colour)."""
    ref, view = segment.refs[0], segment.view
    record = {"category_id": int(ref.label_id), "area": int(view.area), "bbox": _xywh(view.box),
              "iscrowd": int(segment.crowd), "roi_id": ref.roi.id, "roi_k": ref.k, "labels": list(ref.roi.labels)}
    if ref.roi.confidence is not None:
        record["confidence"] = ref.roi.confidence
    if segment.crowd:
        record["crowd"] = [{"k": r.k, "roi_id": r.roi.id} for r in segment.refs]
    return record


def _pycocotools_mask():
    try:
        from pycocotools import mask as mask_utils
    except ImportError:
        raise MissingExtraError("--format coco needs pycocotools; install it with `pip install 'maskdec[coco]'`"
                                ) from None
    return mask_utils


def coco_rle(mask: np.ndarray) -> dict:
    """The COCO compressed RLE of an (H, W) bool mask: {"size": [H, W], "counts": str}."""
    # the Fortran-ordered (H, W) array pycocotools asks for: OpenCV's blocked transpose, seen transposed
    fortran = cv2.transpose(np.ascontiguousarray(mask.view(np.uint8))).T
    rle = _pycocotools_mask().encode(fortran)
    return {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")}


def id_to_rgb(ids: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 RGB of segment ids (R + 256 G + 256^2 B), as panopticapi's id2rgb."""
    ids = ids.astype(np.uint32, copy=False)
    return np.stack([ids & 255, (ids >> 8) & 255, (ids >> 16) & 255], axis=-1).astype(np.uint8)


def rgb_to_id(rgb: np.ndarray) -> np.ndarray:
    """(H, W) uint32 segment ids of an RGB panoptic image, as panopticapi's rgb2id."""
    rgb = rgb.astype(np.uint32)
    return rgb[..., 0] + 256 * rgb[..., 1] + 256 * 256 * rgb[..., 2]


def _describe(sample: Sample) -> str:
    return f"frame {sample.frame_index}, source {sample.source_id!r}, mask {sample.mask_id!r}"


class _CocoWriter:
    """coco and coco-panoptic: per sample, its source image (once per source) and its segments."""

    per_sample = True  # a sample whose files cannot be written fails alone

    def __init__(self, store: OutputStore, per_roi: bool = False, *, panoptic: bool = False) -> None:
        if not panoptic:
            _pycocotools_mask()  # a missing extra stops the export before any sample
        self.store = store
        self.panoptic = panoptic
        self._images_written: set[str] = set()

    @contextlib.contextmanager
    def group(self, name: Optional[str]) -> Iterator["_CocoWriter"]:
        yield self

    def add(self, sample: Sample) -> dict:
        height, width = sample.label_map.shape[:2]
        segments = colour_segments(sample)
        files: dict = {"image": self._image(sample), "height": int(height), "width": int(width)}
        if self.panoptic:
            files.update(self._panoptic(sample, segments))
        else:
            files["coco"] = [{"segmentation": coco_rle(s.view.mask), **_segment_record(s), "mask_id": sample.mask_id}
                             for s in segments]
        return files

    def _image(self, sample: Sample) -> Optional[str]:
        if sample.image is None:
            return None
        rel = f"images/{image_key(sample.frame_index, sample.source_id)}.png"
        if rel not in self._images_written:  # masks of one source share its image
            self.store.write_bytes(rel, encode_png(sample.image, rgb=True))
            self._images_written.add(rel)
        return rel

    def _panoptic(self, sample: Sample, segments: list[ColourSegment]) -> dict:
        index, colour_index = sample.index, sample.colour_index
        if index is None or colour_index is None:
            raise CocoExportError(f"{_describe(sample)}: no colour index (the sample must be made with "
                                  f"instances=True)")
        ignore = sample.request.table.ignore_index
        lut = np.zeros(len(index.classes), np.uint32)  # palette index -> segment id (0: void)
        position = index.palette.position
        info = []
        for segment in segments:
            ref = segment.refs[0]
            lut[position[ref.colour]] = ref.k + 1
            info.append({"id": ref.k + 1, **_segment_record(segment)})
        counts = np.bincount(colour_index.ravel(), minlength=len(lut))
        classes = np.asarray(index.classes)
        free = (index.roi_of_index == 0) & (classes != ignore) & (counts > 0)  # class pixels of no ROI colour
        class_ids = sorted({int(c) for c in classes[free]})
        base = len(sample.rois)
        if base + len(class_ids) > MAX_SEGMENT_ID:
            raise PanopticIdError(f"{_describe(sample)}: {len(sample.rois)} ROIs and {len(class_ids)} classes "
                                  f"need segment ids up to {base + len(class_ids)}; a panoptic PNG holds at most "
                                  f"{MAX_SEGMENT_ID}")
        for j, class_id in enumerate(class_ids):
            lut[free & (classes == class_id)] = base + 1 + j
        ids = lut[colour_index] if class_ids else None
        for j, class_id in enumerate(class_ids):
            mask = ids == base + 1 + j
            rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
            box = (cols[0], rows[0], cols[-1] + 1, rows[-1] + 1)
            info.append({"id": base + 1 + j, "category_id": class_id, "area": int(np.count_nonzero(mask)),
                         "bbox": _xywh(box), "iscrowd": 0})
        rel = f"panoptic/{sample_key(sample.frame_index, sample.source_id, sample.mask_id)}.png"
        bgr = np.ascontiguousarray(id_to_rgb(lut)[:, ::-1])  # palette index -> the id's colour, as OpenCV writes
        self.store.write_bytes(rel, encode_png(bgr[colour_index]))  # one pass over the pixels
        return {"panoptic": rel, "segments_info": info}


# ------------------------------------------------------------------ finish steps

def _json_bytes(obj: object) -> bytes:
    return (json.dumps(obj, separators=(",", ":")) + "\n").encode("ascii")


def _image_record(image_id: int, entry: dict, request: SampleRequest) -> dict:
    """A COCO image: the name `images/` holds (or would hold, without images) and the identity."""
    return {"id": image_id, "file_name": f"{image_key(entry['frame_index'], entry['source_id'])}.png",
            "width": entry["width"], "height": entry["height"], "frame_index": entry["frame_index"],
            "source_id": entry["source_id"], "timestamp": entry["timestamp"], "source_uri": request.image_uri}


def _info(kind: str) -> dict:
    return {"description": f"maskdec export, COCO {kind}"}


def coco_document(finished: Finished) -> dict:
    """annotations.json: images (one per frame and source, ids by first appearance in the plan),
    categories (the label table) and annotations (ids 1, 2, ... in plan order)."""
    image_ids: dict[tuple, int] = {}
    for r in finished.requests:
        image_ids.setdefault((r.frame_index, r.source.id), len(image_ids) + 1)
    images: dict[tuple, dict] = {}
    annotations = []
    for position in sorted(finished.done):
        entry = finished.done[position]
        key = (entry["frame_index"], entry["source_id"])
        image = images.get(key)
        if image is None:
            image = images[key] = {**_image_record(image_ids[key], entry, finished.requests[position]),
                                   "mask_ids": []}
        elif (image["height"], image["width"]) != (entry["height"], entry["width"]):
            raise CocoExportError(
                f"frame {key[0]}, source {key[1]!r}: mask {entry['mask_id']!r} is {entry['width']}x"
                f"{entry['height']} but mask {image['mask_ids'][0]!r} is {image['width']}x{image['height']}; "
                f"one COCO image has one size (declare the source's width and height, or export images)")
        image["mask_ids"].append(entry["mask_id"])
        for record in entry.get("coco", ()):
            annotations.append({"id": len(annotations) + 1, "image_id": image["id"], **record})
    categories = [{"id": i, "name": name} for i, name in sorted(finished.table.names().items())]
    return {"info": _info("instance segmentation"), "licenses": [],
            "images": sorted(images.values(), key=lambda im: im["id"]), "annotations": annotations,
            "categories": categories}


def _categories(table: LabelTable, requests: Sequence[SampleRequest], things: set[int]) -> list[dict]:
    colours = dataset_meta(table, requests)["segmentation_colors"]
    return [{"id": i, "name": name, "isthing": int(i in things), "color": colours[i]}
            for i, name in sorted(table.names().items())]


def panoptic_document(finished: Finished) -> dict:
    """panoptic.json: one image (id: plan position + 1) and one annotation per sample, categories
    with isthing (a category some sample has an ROI segment of); class-only segments of thing
    categories are crowd segments here."""
    entries = [(p, finished.done[p]) for p in sorted(finished.done)]
    things = {s["category_id"] for _, e in entries for s in e.get("segments_info", ()) if "roi_k" in s}
    images, annotations = [], []
    for position, entry in entries:
        image = _image_record(position + 1, entry, finished.requests[position])
        images.append({**image, "mask_id": entry["mask_id"]})
        segments = [{**s, "iscrowd": 1} if "roi_k" not in s and s["category_id"] in things else s
                    for s in entry.get("segments_info", ())]
        annotations.append({"image_id": position + 1, "file_name": entry["panoptic"].rsplit("/", 1)[-1],
                            "segments_info": segments})
    return {"info": _info("panoptic segmentation"), "licenses": [], "images": images,
            "annotations": annotations, "categories": _categories(finished.table, finished.requests, things)}


def _finish_coco(finished: Finished) -> None:
    finished.store.write_bytes("annotations.json", _json_bytes(coco_document(finished)))


def _finish_panoptic(finished: Finished) -> None:
    finished.store.write_bytes("panoptic.json", _json_bytes(panoptic_document(finished)))


def _coco_writer(store: OutputStore, per_roi: bool) -> _CocoWriter:
    return _CocoWriter(store, per_roi)


def _panoptic_writer(store: OutputStore, per_roi: bool) -> _CocoWriter:
    return _CocoWriter(store, per_roi, panoptic=True)


COCO = FormatSpec("coco", _coco_writer, instances=True, finish=_finish_coco)
COCO_PANOPTIC = FormatSpec("coco-panoptic", _panoptic_writer, instances=True, finish=_finish_panoptic)
