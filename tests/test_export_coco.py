"""maskdec export --format coco / coco-panoptic, read back with pycocotools and the COCO panoptic id encoding.

The realistic dataset (maskdec.realistic, lossless masks) brings what real exports
have: per-frame ROI lists in random order, an undeclared background (declared here
as a class through --mask-labels, so it makes "stuff"), class colours that several
ROIs share (crowd segments), instance colours reused across frames, a two-camera
FrameGroup and a source with two masks. Every annotation is compared with
iter_roi_samples / iter_samples of the same frames; a small hand-made still pins
the exact records; a SIGKILLed export resumes to byte-identical files.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO

from conftest import kill_export_mid_run
import maskdec
from maskdec import export_coco
from maskdec.export import export
from maskdec.export_coco import CocoExportError, PanopticIdError
from maskdec.export_names import image_key, sample_key
from maskdec.realistic import BACKGROUND, CLASS_COLOURS, Scale, make_realistic

#: pycocotools' decode under numpy 2 (not ours)
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

#: Dataset-level colours: the undeclared background becomes a class no ROI ever has (stuff), and
#: the car colour is a class where no ROI of the frame declares it (an annotator skipped the car).
MASK_LABELS = [{"value": list(BACKGROUND), "labels": ["hood"]}, {"value": list(CLASS_COLOURS["car"]), "labels": ["car"]}]


def rgb2id(rgb: np.ndarray) -> np.ndarray:
    """panopticapi.utils.rgb2id: id = R + 256 G + 256^2 B."""
    rgb = rgb.astype(np.int64)
    return rgb[..., 0] + 256 * rgb[..., 1] + 256 * 256 * rgb[..., 2]


def read_rgb(path: Path) -> np.ndarray:
    bgr = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert bgr is not None and bgr.dtype == np.uint8 and bgr.ndim == 3, path
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def numpy_xywh(mask: np.ndarray) -> list[int]:
    ys, xs = np.nonzero(mask)
    return [int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1)]


def tree(out: Path) -> dict[str, bytes]:
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


def read_manifest(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]


def run_cli(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "maskdec.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=300)


def colour_groups(sample: maskdec.Sample, views: list) -> list[tuple[list, object]]:
    """The sample's ROIs by colour, in order of each colour's first ROI: (refs, first ROI's view),
    only colours with pixels and a class in the table: what must become one annotation each."""
    ignore = sample.request.table.ignore_index
    groups: dict[tuple, list] = {}
    for ref in sample.rois:
        groups.setdefault(ref.colour, []).append(ref)
    out = []
    for refs in groups.values():
        view = views[refs[0].k]
        assert all(np.array_equal(views[r.k].mask, view.mask) for r in refs)  # a shared colour: shared pixels
        if view.area > 0 and refs[0].label_id != ignore:
            out.append((refs, view))
    return out


# ------------------------------------------------------------------ the realistic dataset

@pytest.fixture(scope="module")
def realistic(tmp_path_factory):
    return make_realistic(tmp_path_factory.mktemp("realistic"), scale="test", seed=0, lossless=True)


@pytest.fixture(scope="module")
def reference(realistic):
    """Per sample, in plan order: (Sample with instances, [RoiSample per ROI]) from maskdec's own iterators."""
    samples = list(maskdec.iter_samples(realistic.frames_path, mask_labels=MASK_LABELS, instances=True))
    views = list(maskdec.iter_roi_samples(realistic.frames_path, mask_labels=MASK_LABELS, images=False))
    out, start = [], 0
    for sample in samples:
        own = views[start:start + len(sample.rois)]
        start += len(sample.rois)
        assert [(v.frame_index, v.source_id, v.mask_id, v.ref.k) for v in own] == [
            (sample.frame_index, sample.source_id, sample.mask_id, k) for k in range(len(sample.rois))]
        out.append((sample, own))
    assert start == len(views)
    return out


def _exported(realistic, tmp_path_factory, format: str):
    out = tmp_path_factory.mktemp(format) / "out"
    summary = export(realistic.frames_path, out, format=format, mask_labels=MASK_LABELS, workers=2)
    assert (summary.samples, summary.failed) == (len(realistic.keys()), 0)
    return out


@pytest.fixture(scope="module")
def coco_out(realistic, tmp_path_factory):
    return _exported(realistic, tmp_path_factory, "coco")


@pytest.fixture(scope="module")
def panoptic_out(realistic, tmp_path_factory):
    return _exported(realistic, tmp_path_factory, "coco-panoptic")


def test_coco_annotations_equal_iter_roi_samples(coco_out, reference):
    coco = COCO(str(coco_out / "annotations.json"))  # pycocotools loads it and builds its index
    labels = json.loads((coco_out / "labels.json").read_text())
    assert {c["id"]: c["name"] for c in coco.loadCats(coco.getCatIds())} == {v: k for k, v in labels.items()}
    # one image per (frame, source), ids in plan order; its masks' annotations all go to it
    sources = list(dict.fromkeys((s.frame_index, s.source_id) for s, _ in reference))
    assert sorted(coco.getImgIds()) == list(range(1, len(sources) + 1))
    assert sorted(coco.getAnnIds()) == list(range(1, len(coco.getAnnIds()) + 1))
    crowds = instances = 0
    last_id = 0
    for sample, views in reference:
        image_id = sources.index((sample.frame_index, sample.source_id)) + 1
        image = coco.loadImgs(image_id)[0]
        h, w = sample.label_map.shape
        assert (image["height"], image["width"], image["frame_index"], image["source_id"], image["timestamp"]) == (
            h, w, sample.frame_index, sample.source_id, sample.timestamp)
        assert image["file_name"] == f"{image_key(sample.frame_index, sample.source_id)}.png"
        assert sample.mask_id in image["mask_ids"]
        stored = read_rgb(coco_out / "images" / image["file_name"])
        assert np.array_equal(stored, sample.image)
        anns = [a for a in coco.loadAnns(coco.getAnnIds(imgIds=image_id)) if a["mask_id"] == sample.mask_id]
        expected = colour_groups(sample, views)
        assert len(anns) == len(expected), (sample.frame_index, sample.source_id, sample.mask_id)
        for ann, (refs, view) in zip(sorted(anns, key=lambda a: a["id"]), expected):
            assert ann["id"] > last_id  # ids follow the plan: sample by sample, ROI by ROI
            last_id = ann["id"]
            decoded = coco.annToMask(ann).astype(bool)
            assert decoded.shape == (h, w) and np.array_equal(decoded, view.mask)
            assert np.array_equal(decoded, sample.roi_mask(refs[0]))
            rle = coco.annToRLE(ann)
            assert ann["area"] == view.area == int(mask_utils.area(rle)) == int(decoded.sum())
            assert ann["bbox"] == numpy_xywh(decoded) == [int(v) for v in mask_utils.toBbox(rle)]
            x0, y0, x1, y1 = view.box
            assert ann["bbox"] == [x0, y0, x1 - x0, y1 - y0]
            assert ann["category_id"] == view.label_id and ann["roi_id"] == refs[0].roi.id
            assert ann["roi_k"] == refs[0].k and ann["labels"] == list(refs[0].roi.labels)
            assert ann["iscrowd"] == int(len(refs) > 1)
            if len(refs) > 1:
                assert ann["crowd"] == [{"k": r.k, "roi_id": r.roi.id} for r in refs]
                crowds += 1
            else:
                assert "crowd" not in ann
                instances += 1
    assert crowds > 10 and instances > 100  # the data has both: shared class colours and own colours
    assert instances + crowds == len(coco.getAnnIds())
    mask_ids = {a["mask_id"] for a in coco.anns.values()}
    assert mask_ids == {"seg", "inst"}


def test_coco_manifest_lists_images_and_the_annotations_records(coco_out, reference):
    manifest = read_manifest(coco_out)
    document = json.loads((coco_out / "annotations.json").read_text())
    records = [{k: v for k, v in a.items() if k not in ("id", "image_id")} for a in document["annotations"]]
    assert records == [record for entry in manifest for record in entry["coco"]]
    for entry, (sample, _views) in zip(manifest, reference):
        assert entry["image"] == f"images/{image_key(sample.frame_index, sample.source_id)}.png"
        assert (entry["height"], entry["width"]) == sample.label_map.shape
    assert sorted(p.name for p in (coco_out / "images").iterdir()) == sorted(
        {e["image"].split("/")[1] for e in manifest})


def test_panoptic_png_decodes_to_the_instance_map_and_segments_info(panoptic_out, reference):
    document = json.loads((panoptic_out / "panoptic.json").read_text())
    manifest = read_manifest(panoptic_out)
    categories = {c["id"]: c for c in document["categories"]}
    labels = json.loads((panoptic_out / "labels.json").read_text())
    assert {i: c["name"] for i, c in categories.items()} == {v: k for k, v in labels.items()}
    assert [im["id"] for im in document["images"]] == [a["image_id"] for a in document["annotations"]] == list(
        range(1, len(reference) + 1))  # one image and one annotation per sample
    roi_categories: set[int] = set()
    kinds = {"instance": 0, "crowd": 0, "stuff": 0, "thing pixels of no ROI": 0, "void": 0}
    for (sample, views), entry, ann, image in zip(reference, manifest, document["annotations"], document["images"]):
        key = sample_key(sample.frame_index, sample.source_id, sample.mask_id)
        assert entry["panoptic"] == f"panoptic/{key}.png" and ann["file_name"] == f"{key}.png"
        assert (image["frame_index"], image["source_id"], image["mask_id"]) == (
            sample.frame_index, sample.source_id, sample.mask_id)
        assert image["file_name"] == f"{image_key(sample.frame_index, sample.source_id)}.png"
        ids = rgb2id(read_rgb(panoptic_out / "panoptic" / ann["file_name"]))
        ignore = sample.request.table.ignore_index
        groups = colour_groups(sample, views)
        # the ids the PNG must hold: ROI colours keep the instance map's value, class pixels
        # outside ROI colours one id per class after the ROIs, the rest void
        expected = np.zeros(ids.shape, np.int64)
        for refs, _view in groups:
            expected[sample.instance_map == refs[0].k + 1] = refs[0].k + 1
        free = (sample.instance_map == 0) & (sample.label_map != ignore)
        class_ids = sorted(int(c) for c in np.unique(sample.label_map[free]))
        for j, class_id in enumerate(class_ids):
            expected[free & (sample.label_map == class_id)] = len(sample.rois) + 1 + j
        assert np.array_equal(ids, expected)
        on_rois = ids <= len(sample.rois)
        assert np.array_equal(ids[on_rois & (ids > 0)], sample.instance_map[on_rois & (ids > 0)])
        assert np.all(sample.label_map[ids == 0] == ignore)  # void: no class (an ROI's colour or not)
        kinds["void"] += int(np.any(ids == 0))
        info = {s["id"]: s for s in entry["segments_info"]}
        assert set(info) == set(np.unique(ids).tolist()) - {0}  # every segment has pixels, every id is listed
        for refs, view in groups:
            segment = info[refs[0].k + 1]
            assert np.array_equal(ids == segment["id"], view.mask)
            assert (segment["category_id"], segment["roi_id"], segment["iscrowd"]) == (
                refs[0].label_id, refs[0].roi.id, int(len(refs) > 1))
            kinds["crowd" if len(refs) > 1 else "instance"] += 1
            roi_categories.add(segment["category_id"])
        for segment in info.values():
            mask = ids == segment["id"]
            assert segment["area"] == int(mask.sum()) and segment["bbox"] == numpy_xywh(mask)
            assert np.unique(sample.label_map[mask]).tolist() == [segment["category_id"]]
        assert len(info) == len(groups) + len(class_ids)
        # panoptic.json: the entry's segments, class pixels of a thing category as a crowd
        for written, segment in zip(ann["segments_info"], entry["segments_info"]):
            if "roi_k" in segment:
                assert written == segment
            elif categories[segment["category_id"]]["isthing"]:
                assert written == {**segment, "iscrowd": 1} and segment["iscrowd"] == 0
                kinds["thing pixels of no ROI"] += 1
            else:
                assert written == segment and segment["iscrowd"] == 0
                kinds["stuff"] += 1
    assert {i for i, c in categories.items() if c["isthing"]} == roi_categories
    assert not categories[labels["hood"]]["isthing"] and categories[labels["car"]]["isthing"]
    assert all(kinds.values()), kinds  # the data exercises every kind of segment
    colours = json.loads((panoptic_out / "dataset_meta.json").read_text())["segmentation_colors"]
    assert all(c["color"] == colours[i] for i, c in categories.items())


@pytest.mark.parametrize("fmt", ["coco", "coco-panoptic"])
def test_without_images_the_annotations_are_the_same(realistic, coco_out, panoptic_out, tmp_path, fmt):
    """--no-images writes no image, and the same annotation files: file names are still the
    names images/ gets when images are exported."""
    out = tmp_path / "out"
    summary = export(realistic.frames_path, out, format=fmt, mask_labels=MASK_LABELS, images=False, workers=2)
    assert summary.failed == 0
    assert not (out / "images").exists()
    with_images = coco_out if fmt == "coco" else panoptic_out
    name = "annotations.json" if fmt == "coco" else "panoptic.json"
    assert (out / name).read_bytes() == (with_images / name).read_bytes()
    if fmt == "coco":
        COCO(str(out / name))
    else:
        assert tree(out / "panoptic") == tree(with_images / "panoptic")


# ------------------------------------------------------------------ a hand-made still: the exact records

H, W = 40, 60
PAINT = [  # (colour, rows, columns)
    ((200, 0, 0), slice(2, 10), slice(3, 20)),  # ROI a: car, own colour
    ((0, 200, 0), slice(12, 30), slice(5, 9)),  # ROI b: person, own colour
    ((0, 0, 200), slice(20, 25), slice(30, 50)),  # ROIs c1 and c2: car, one colour
    ((0, 0, 200), slice(32, 38), slice(2, 6)),
    ((100, 100, 100), slice(0, 5), slice(40, 60)),  # --mask-labels road: no ROI
    ((250, 250, 0), slice(35, 40), slice(40, 60)),  # --mask-labels car: no ROI
    ((0, 250, 250), slice(8, 14), slice(50, 58)),  # ROI t: "tree", not in --labels
]
LABELS = {"car": 1, "person": 2, "road": 3}
STILL_MASK_LABELS = [{"value": [100, 100, 100], "labels": ["road"]}, {"value": [250, 250, 0], "labels": ["car"]}]


def write_png(path: Path, rgb: np.ndarray) -> str:
    assert cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    return str(path)


@pytest.fixture()
def still(tmp_path) -> Path:
    """One frame, source "cam" with two masks: "m" (PAINT, black undeclared) and "n" (one ROI)."""
    mask = np.zeros((H, W, 3), np.uint8)
    for colour, rows, cols in PAINT:
        mask[rows, cols] = colour
    other = np.zeros((H, W, 3), np.uint8)
    other[10:20, 10:30] = (9, 99, 199)
    rois = [{"id": "a", "label": ["car", "front"], "confidence": 0.9, "mask": {"id": "m", "value": [200, 0, 0]}},
            {"id": "b", "label": ["person"], "mask": {"id": "m", "value": [0, 200, 0]}},
            {"id": "c1", "label": ["car"], "mask": {"id": "m", "value": [0, 0, 200]}},
            {"id": "t", "label": ["tree"], "mask": {"id": "m", "value": [0, 250, 250]}},
            {"id": "c2", "label": ["car", "parked"], "mask": {"id": "m", "value": [0, 0, 200]}},
            {"id": "ghost", "label": ["person"], "mask": {"id": "m", "value": [1, 2, 3]}},  # never painted
            {"id": "p", "label": ["person"], "mask": {"id": "n", "value": [9, 99, 199]}}]
    frame = {"sources": [{"id": "cam", "uri": write_png(tmp_path / "image.png", np.full((H, W, 3), 77, np.uint8)),
                          "masks": [{"id": "m", "uri": write_png(tmp_path / "m.png", mask)},
                                    {"id": "n", "uri": write_png(tmp_path / "n.png", other)}]}],
             "rois": rois}
    path = tmp_path / "frames.jsonl"
    path.write_text(json.dumps(frame) + "\n")
    return path


def box(rows: slice, cols: slice) -> list[int]:
    return [cols.start, rows.start, cols.stop - cols.start, rows.stop - rows.start]


def test_still_coco_records(still, tmp_path):
    out = tmp_path / "out"
    summary = export(still, out, format="coco", labels=LABELS, mask_labels=STILL_MASK_LABELS, workers=1)
    assert (summary.samples, summary.failed) == (2, 0)
    document = json.loads((out / "annotations.json").read_text())
    assert document["categories"] == [{"id": 1, "name": "car"}, {"id": 2, "name": "person"}, {"id": 3, "name": "road"}]
    [image] = document["images"]  # the two masks of one source: one image
    assert {k: image[k] for k in ("id", "width", "height", "frame_index", "source_id", "mask_ids")} == {
        "id": 1, "width": W, "height": H, "frame_index": 0, "source_id": "cam", "mask_ids": ["m", "n"]}
    anns = [{k: v for k, v in a.items() if k != "segmentation"} for a in document["annotations"]]
    assert anns == [
        {"id": 1, "image_id": 1, "category_id": 1, "area": 8 * 17, "bbox": box(*PAINT[0][1:]), "iscrowd": 0,
         "roi_id": "a", "roi_k": 0, "labels": ["car", "front"], "confidence": 0.9, "mask_id": "m"},
        {"id": 2, "image_id": 1, "category_id": 2, "area": 18 * 4, "bbox": box(*PAINT[1][1:]), "iscrowd": 0,
         "roi_id": "b", "roi_k": 1, "labels": ["person"], "mask_id": "m"},
        {"id": 3, "image_id": 1, "category_id": 1, "area": 5 * 20 + 6 * 4, "iscrowd": 1,
         "bbox": [2, 20, 48, 18],  # both painted parts
         "roi_id": "c1", "roi_k": 2, "labels": ["car"], "crowd": [{"k": 2, "roi_id": "c1"}, {"k": 4, "roi_id": "c2"}],
         "mask_id": "m"},
        {"id": 4, "image_id": 1, "category_id": 2, "area": 10 * 20, "bbox": [10, 10, 20, 10], "iscrowd": 0,
         "roi_id": "p", "roi_k": 0, "labels": ["person"], "mask_id": "n"},
    ]
    coco = COCO(str(out / "annotations.json"))
    crowd = np.zeros((H, W), bool)
    crowd[PAINT[2][1:]] = crowd[PAINT[3][1:]] = True
    assert np.array_equal(coco.annToMask(coco.anns[3]).astype(bool), crowd)
    # the COCO evaluation runs on it: the ground truth as predictions scores 1
    results = [{"image_id": 1, "category_id": a["category_id"], "segmentation": a["segmentation"], "score": 1.0}
               for a in document["annotations"] if not a["iscrowd"]]
    from pycocotools.cocoeval import COCOeval
    evaluation = COCOeval(coco, coco.loadRes(results), "segm")
    evaluation.evaluate()
    evaluation.accumulate()
    evaluation.summarize()
    assert evaluation.stats[0] == pytest.approx(1.0)


def test_still_panoptic_records(still, tmp_path):
    out = tmp_path / "out"
    summary = export(still, out, format="coco-panoptic", labels=LABELS, mask_labels=STILL_MASK_LABELS, workers=1)
    assert (summary.samples, summary.failed) == (2, 0)
    document = json.loads((out / "panoptic.json").read_text())
    assert [(c["id"], c["name"], c["isthing"]) for c in document["categories"]] == [
        (1, "car", 1), (2, "person", 1), (3, "road", 0)]
    assert [(im["id"], im["mask_id"]) for im in document["images"]] == [(1, "m"), (2, "n")]
    first = document["annotations"][0]
    ids = rgb2id(read_rgb(out / "panoptic" / first["file_name"]))
    # ROIs a, b and the c1/c2 colour keep their instance ids (k + 1); 6 ROIs, then one id per
    # class of pixels outside ROI colours (car 7, road 8); tree (no class) and black are void
    expected = np.zeros((H, W), np.int64)
    for (colour, rows, cols), value in zip(PAINT, (1, 2, 3, 3, 8, 7, 0)):
        expected[rows, cols] = value
    assert np.array_equal(ids, expected)
    segments = {s["id"]: (s["category_id"], s["area"], s["bbox"], s["iscrowd"]) for s in first["segments_info"]}
    assert segments == {1: (1, 8 * 17, box(*PAINT[0][1:]), 0), 2: (2, 18 * 4, box(*PAINT[1][1:]), 0),
                        3: (1, 5 * 20 + 6 * 4, [2, 20, 48, 18], 1),
                        7: (1, 5 * 20, box(*PAINT[5][1:]), 1),  # car pixels of no ROI: a crowd (car is a thing)
                        8: (3, 5 * 20, box(*PAINT[4][1:]), 0)}  # road: stuff
    manifest = read_manifest(out)
    assert [s["iscrowd"] for s in manifest[0]["segments_info"] if s["id"] == 7] == [0]  # the sample alone says 0
    second = document["annotations"][1]
    assert [(s["id"], s["category_id"], s["iscrowd"]) for s in second["segments_info"]] == [(1, 2, 0)]


def test_too_many_segments_fail_that_sample_naming_it(still, tmp_path, monkeypatch):
    monkeypatch.setattr(export_coco, "MAX_SEGMENT_ID", 7)  # mask m needs 8 ids, mask n one
    out = tmp_path / "out"
    summary = export(still, out, format="coco-panoptic", labels=LABELS, mask_labels=STILL_MASK_LABELS, workers=1)
    assert (summary.samples, summary.failed) == (1, 1)
    [failure] = summary.failures
    assert failure["error_type"] == "PanopticIdError" and failure["mask_id"] == "m"
    assert "frame 0, source 'cam', mask 'm'" in failure["error"] and "at most 7" in failure["error"]
    assert issubclass(PanopticIdError, maskdec.MaskdecError) and issubclass(PanopticIdError, ValueError)
    assert [a["image_id"] for a in json.loads((out / "panoptic.json").read_text())["annotations"]] == [2]


def test_masks_of_one_source_with_two_sizes_and_no_images_are_refused(tmp_path):
    frame = {"sources": [{"id": "cam", "uri": write_png(tmp_path / "image.png", np.zeros((8, 8, 3), np.uint8)),
                          "masks": [{"id": "big", "uri": write_png(tmp_path / "big.png", np.zeros((8, 8, 3), np.uint8))},
                                    {"id": "small", "uri": write_png(tmp_path / "small.png",
                                                                     np.zeros((4, 4, 3), np.uint8))}]}],
             "rois": [{"label": ["x"], "mask": {"id": "big", "value": [0, 0, 0]}},
                      {"label": ["x"], "mask": {"id": "small", "value": [0, 0, 0]}}]}
    path = tmp_path / "frames.jsonl"
    path.write_text(json.dumps(frame) + "\n")
    with pytest.raises(CocoExportError, match=r"frame 0, source 'cam': mask 'small' is 4x4 but mask 'big' is 8x8"):
        export(path, tmp_path / "out", format="coco", images=False, workers=1)
    summary = export(path, tmp_path / "with_images", format="coco", workers=1)  # sized to the image: fine
    assert [a["segmentation"]["size"] for a in json.loads(
        (tmp_path / "with_images" / "annotations.json").read_text())["annotations"]] == [[8, 8], [8, 8]]
    assert summary.failed == 0


def test_coco_without_pycocotools_names_the_extra_and_panoptic_needs_none(still, tmp_path):
    script = (
        "import sys; sys.modules['pycocotools'] = None\n"
        "from maskdec.export import export\n"
        "from maskdec.errors import MissingExtraError\n"
        f"s = export({str(still)!r}, {str(tmp_path / 'p')!r}, format='coco-panoptic', workers=1)\n"
        "assert s.failed == 0, s.failures\n"
        "try:\n"
        f"    export({str(still)!r}, {str(tmp_path / 'c')!r}, format='coco', workers=1)\n"
        "except MissingExtraError as exc:\n"
        "    print(exc)\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "pip install 'maskdec[coco]'" in result.stdout


def test_cli_lists_the_coco_formats():
    result = run_cli("export", "--help")
    assert result.returncode == 0 and "coco-panoptic" in result.stdout and "coco:" in result.stdout


# ------------------------------------------------------------------ SIGKILL, then resume

@pytest.fixture(scope="module")
def bigger(tmp_path_factory):
    scale = Scale(width=320, height=240, street_clips=2, street_frames=40, instance_frames=40, stereo_frames=30,
                  long_frames=40)
    return make_realistic(tmp_path_factory.mktemp("realistic_bigger"), scale=scale, seed=1, lossless=True)


@pytest.mark.parametrize("fmt", ["coco", "coco-panoptic"])
def test_sigkill_then_rerun_equals_an_uninterrupted_run(bigger, tmp_path, fmt):
    total = len(bigger.keys())
    args = ["--format", fmt, "--workers", "2"]
    reference = run_cli("export", bigger.frames_path, "--out", tmp_path / "ref", *args)
    assert reference.returncode == 0, reference.stderr
    out = tmp_path / "out"
    finished = kill_export_mid_run(bigger.frames_path, out, args, after=3)
    assert 3 <= finished < total
    assert not (out / ("annotations.json" if fmt == "coco" else "panoptic.json")).exists()
    folder = out / ("images" if fmt == "coco" else "panoptic")
    folder.mkdir(exist_ok=True)
    (folder / ".000000_cam_seg.png.999-deadbeef.tmp").write_bytes(b"half a file")  # as a kill mid-write leaves
    rerun = run_cli("export", bigger.frames_path, "--out", out, *args)
    assert rerun.returncode == 0, rerun.stderr
    assert "done before" in rerun.stderr
    assert not [p for p in out.rglob("*") if ".tmp" in p.name]
    assert tree(out) == tree(tmp_path / "ref")
