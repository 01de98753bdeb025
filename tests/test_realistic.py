"""Label maps on the realistic dataset (maskdec.realistic) against its ground truth.

Frames shaped like real annotation exports (issue 14): per-frame ROI lists in
random order for the visible objects only, an undeclared background colour, an
instance mask reusing colours for other classes, a two-camera FrameGroup whose
ROIs name both sources, interleaved clips and a long-GOP clip in shuffled order.
Lossless (FFV1) masks must give the truth exactly; lossy (H.264 yuv420p crf 18)
ones at least NON_EDGE_ACCURACY away from edges, whatever the order of ROIs, and the
same samples within any open-file and buffer limits.
"""
from __future__ import annotations

import copy
import math
from typing import NamedTuple

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

import maskdec
from maskdec.lut import DEFAULT_LOSSY_TOLERANCE
from maskdec.realistic import (BACKGROUND, CLASS_COLOURS, INSTANCE_COLOURS, RealisticDataset, make_realistic)

#: Pixels at least this far from a colour edge of the truth are "non-edge": a 4:2:0 chroma
#: sample covers 2x2 pixels and the YUV kernel's edge repair reads the neighbouring one.
EDGE = 3
#: Per mask file, on non-edge pixels. Measured on main at 8d769ee (2-core VM): 0.9973 (instances
#: seg, undeclared black pulled into the dark "truck" colour) to 1.0 on the masks that the
#: multi-source and per-frame subset rules do not touch; lossy at least as accurate as that.
NON_EDGE_ACCURACY = 0.995


@pytest.fixture(scope="module")
def lossless(tmp_path_factory) -> RealisticDataset:
    return make_realistic(tmp_path_factory.mktemp("realistic_ffv1"), scale="test", seed=0, lossless=True)


@pytest.fixture(scope="module")
def lossy(tmp_path_factory) -> RealisticDataset:
    return make_realistic(tmp_path_factory.mktemp("realistic_h264"), scale="test", seed=0, lossless=False)


class Run(NamedTuple):
    labels: maskdec.LabelTable
    samples: dict  # (line, source id, mask id) -> Sample

    def __repr__(self) -> str:  # hypothesis shows its arguments: keep them short
        return f"Run({len(self.samples)} samples)"


def run(dataset: RealisticDataset, frames=None, **options) -> Run:
    """The samples of iter_samples keyed (line, source id, mask id), and the label table."""
    it = maskdec.iter_samples(dataset.frames_path if frames is None else frames, images=False, **options)
    samples = {(s.frame_index, s.source_id, s.mask_id): s for s in it}
    return Run(it.labels, samples)


@pytest.fixture(scope="module")
def lossy_run(lossy):
    return run(lossy)


def non_edge(colour_index: np.ndarray, radius: int = EDGE) -> np.ndarray:
    """Pixels whose (2r+1)^2 neighbourhood shows a single colour."""
    index = (colour_index + 1).astype(np.uint8)
    kernel = np.ones((2 * radius + 1, 2 * radius + 1), np.uint8)
    lo = cv2.erode(index, kernel, borderType=cv2.BORDER_REPLICATE)
    hi = cv2.dilate(index, kernel, borderType=cv2.BORDER_REPLICATE)
    return lo == hi


def mismatches(dataset: RealisticDataset, labels, samples: dict) -> dict:
    """key -> fraction of pixels that differ from the truth, for the keys that differ."""
    out = {}
    for key in dataset.keys():
        expected = dataset.expected_label_map(*key, labels)
        got = samples[key].label_map
        assert got.shape == expected.shape and got.dtype == expected.dtype, key
        bad = float(np.mean(got != expected))
        if bad:
            out[key] = round(bad, 4)
    return out


# ------------------------------------------------------------------ the generator itself

def test_generator_is_deterministic_per_seed(lossless):
    again = RealisticDataset(lossless.root, scale="test", seed=0, lossless=True)
    assert again.frames == lossless.frames
    other = RealisticDataset(lossless.root, scale="test", seed=1, lossless=True)
    assert other.frames != lossless.frames
    key = lossless.keys()[5]
    assert np.array_equal(again.truth(*key).colour_index, lossless.truth(*key).colour_index)


def test_the_dataset_has_what_real_exports_have(lossless):
    """Each trait of issue 14's realistic dataset is really there (else the other tests prove little)."""
    ds = lossless
    frames = ds.frames
    subsets = orders = 0
    seen_orders: dict[tuple, set] = {}
    for line, frame in enumerate(frames):
        uris = {(src["id"], m["id"]): m["uri"] for src in frame["sources"] for m in src["masks"]}
        for key, decl in ds.declared(line).items():
            subsets += set(decl) < set(ds.palettes[uris[key]])
        listed = tuple(tuple(r["mask"]["value"]) for r in frame["rois"] if "mask" in r)
        seen_orders.setdefault((frame["context_id"], frozenset(listed)), set()).add(listed)
        orders += listed != tuple(sorted(listed))
    assert subsets > len(frames) // 2, "frames declare only the colours they show"
    assert orders > len(frames) // 2, "ROI lists are in random order"
    assert any(len(v) > 1 for v in seen_orders.values()), "the same declarations in different orders"
    # an undeclared background colour, and frame tags without masks
    truths = [ds.truth(*key) for key in ds.keys()]
    assert all(BACKGROUND not in t.declared for t in truths)
    assert sum(int(np.sum(t.colour_index == -1)) for t in truths) > 0.05 * sum(t.colour_index.size for t in truths)
    assert all(any("mask" not in r for r in f["rois"]) for f in frames)
    # instance colours reused for objects of other classes
    classes_of: dict[tuple, set] = {}
    for line, frame in enumerate(frames):
        for (sid, mid), decl in ds.declared(line).items():
            if mid == "inst":
                for colour, name in decl.items():
                    classes_of.setdefault(colour, set()).add(name)
    assert set(classes_of) <= set(INSTANCE_COLOURS)
    assert any(len(names) > 1 for names in classes_of.values())
    # the FrameGroup: ROIs naming both cameras, and one colour meaning two classes
    stereo = [line for line, f in enumerate(frames) if f["context_id"] == "stereo"]
    assert all(any(r.get("sources") == ["left", "right"] for r in frames[line]["rois"]) for line in stereo)
    light = CLASS_COLOURS["traffic light"]
    for line in stereo:
        decl = ds.declared(line)
        assert decl[("left", "seg")][light] == "traffic light" and decl[("right", "seg")][light] == "traffic sign"
    # mask files interleaved; the long clip referenced out of order
    mask_uris = [f["sources"][0]["masks"][0]["uri"] for f in frames]
    assert sum(a != b for a, b in zip(mask_uris, mask_uris[1:])) > len(frames) // 2
    long_ts = [f["timestamp"] for f in frames if f["context_id"] == "long"]
    assert long_ts != sorted(long_ts) and len(long_ts) == ds.scale.long_frames


# ------------------------------------------------------------------ label maps against the truth

def test_lossless_label_maps_equal_the_ground_truth(lossless):
    labels, samples = run(lossless)
    assert [samples[k].frame_index for k in lossless.keys()] == [k[0] for k in lossless.keys()]
    assert mismatches(lossless, labels, samples) == {}


def test_lossy_label_maps_are_accurate_away_from_edges(lossy, lossy_run):
    labels, samples = lossy_run
    hits: dict[str, list[int]] = {}
    for key in lossy.keys():
        truth = lossy.truth(*key)
        inside = non_edge(truth.colour_index)
        good = (samples[key].label_map == truth.label_map(labels.ids, labels.ignore_index, labels.dtype)) & inside
        tally = hits.setdefault(lossy.track(*key)[0].uri, [0, 0])
        tally[0] += int(good.sum())
        tally[1] += int(inside.sum())
    accuracy = {uri: round(good / total, 4) for uri, (good, total) in hits.items()}
    assert all(total > 1000 for _good, total in hits.values())
    assert {uri: a for uri, a in accuracy.items() if a < NON_EDGE_ACCURACY} == {}, accuracy


# Few examples, no shrinking: each is a full pass over the lossy dataset.
@settings(max_examples=3, deadline=None, phases=[Phase.explicit, Phase.reuse, Phase.generate],
          suppress_health_check=[HealthCheck.too_slow])
@given(rnd=st.randoms(use_true_random=False))
def test_label_maps_do_not_depend_on_the_order_of_rois_or_frames(lossy, lossy_run, rnd):
    """Each frame's ROI list (and each ROI's source list) permuted, the frames shuffled:
    the same label map for every (frame, source, mask)."""
    labels, reference = lossy_run
    order = list(range(len(lossy.frames)))
    rnd.shuffle(order)
    frames = []
    for line in order:
        frame = copy.deepcopy(lossy.frames[line])
        rnd.shuffle(frame["rois"])
        for roi in frame["rois"]:
            rnd.shuffle(roi.get("sources", []))
        frames.append(frame)
    got_labels, got = run(lossy, lossy.load(frames))
    assert got_labels == labels
    differ = [(order[i], s, m) for (i, s, m), sample in got.items()
              if not np.array_equal(sample.label_map, reference[(order[i], s, m)].label_map)]
    assert differ == []


# ------------------------------------------------------------------ FrameGroup and per-frame subsets

def test_multi_source_rois_map_in_every_listed_source(lossless):
    labels, samples = run(lossless)
    for line, frame in enumerate(lossless.frames):
        if frame["context_id"] != "stereo":
            continue
        both = {tuple(r["mask"]["value"]) for r in frame["rois"] if r.get("sources") == ["left", "right"]}
        for camera in ("left", "right"):
            truth = lossless.truth(line, camera, "seg")
            label_map = samples[(line, camera, "seg")].label_map
            spanned = np.isin(np.arange(len(truth.colours)), [truth.colours.index(c) for c in both])
            where = spanned[truth.colour_index] & (truth.colour_index >= 0)
            assert where.any()
            expected = truth.label_map(labels.ids, labels.ignore_index, labels.dtype)
            assert np.array_equal(label_map[where], expected[where]), (line, camera)
            assert not np.any(label_map[where] == labels.ignore_index), (line, camera)


def test_one_colour_means_another_class_in_each_camera(lossless):
    labels, samples = run(lossless)
    light = CLASS_COLOURS["traffic light"]
    shown = {"left": 0, "right": 0}
    for line, frame in enumerate(lossless.frames):
        if frame["context_id"] != "stereo":
            continue
        for camera, name in (("left", "traffic light"), ("right", "traffic sign")):
            truth = lossless.truth(line, camera, "seg")
            pixels = truth.colour_index == truth.colours.index(light)
            assert np.all(samples[(line, camera, "seg")].label_map[pixels] == labels.ids[name]), (line, camera)
            shown[camera] += int(pixels.sum())
    assert min(shown.values()) > 0


def nearer_undeclared(dataset: RealisticDataset, tolerance: float) -> list[tuple[tuple, np.ndarray]]:
    """(key, pixels) where a frame shows a colour of its mask file's palette that it does not
    declare, while it declares another palette colour within `tolerance` of it."""
    cases = []
    for key in dataset.keys():
        truth = dataset.truth(*key)
        for pos, colour in enumerate(truth.colours):
            if colour in truth.declared or colour not in truth.palette:
                continue
            pixels = truth.colour_index == pos
            near = [d for d in truth.declared if 0 < math.dist(d, colour) <= tolerance]
            if near and pixels.any():
                cases.append((key, pixels))
    return cases


def test_an_undeclared_palette_colour_is_ignored_even_next_to_a_declared_one(lossless):
    """FORMAT.md §3: nearest among the mask file's palette; a pixel whose nearest colour this
    frame does not declare is ignore_index, not the class of a farther declared colour. The
    lossless masks with the lossy tolerance (60): every pixel is exactly a palette colour."""
    cases = nearer_undeclared(lossless, DEFAULT_LOSSY_TOLERANCE)
    assert len(cases) >= 2, "the generator's unlabelled train beside a bus"
    labels, samples = run(lossless, tolerance=DEFAULT_LOSSY_TOLERANCE)
    for key, pixels in cases:
        assert np.all(samples[key].label_map[pixels] == labels.ignore_index), key
    assert mismatches(lossless, labels, samples) == {}


# ------------------------------------------------------------------ instances

def instance_truth(dataset: RealisticDataset, key) -> tuple[np.ndarray, np.ndarray]:
    """(ROI id per pixel or "", the truth's colour index) of an instance mask frame."""
    truth = dataset.truth(*key)
    ids = np.array(list(truth.roi_ids) + [""], object)
    return ids[truth.objects], truth.colour_index


def sample_roi_ids(sample) -> np.ndarray:
    ids = np.array([""] + [ref.roi.id for ref in sample.rois], object)
    return ids[sample.instance_map]


def test_instance_maps_follow_reused_colours(lossless):
    """instance_map names each pixel's ROI; a reused colour takes each frame's own class."""
    it = maskdec.iter_samples(lossless.frames_path, images=False, instances=True)
    checked = 0
    for key, sample in zip(lossless.keys(), it):
        if key[2] != "inst":
            continue
        expected, _ = instance_truth(lossless, key)
        assert np.array_equal(sample_roi_ids(sample), expected), key
        assert np.array_equal(sample.label_map, lossless.expected_label_map(*key, it.labels)), key
        checked += 1
    assert checked == lossless.scale.instance_frames


def test_lossy_instance_maps_away_from_edges(lossy):
    it = maskdec.iter_samples(lossy.frames_path, images=False, instances=True)
    good = total = 0
    for key, sample in zip(lossy.keys(), it):
        if key[2] != "inst":
            continue
        expected, colour_index = instance_truth(lossy, key)
        inside = non_edge(colour_index)
        good += int(((sample_roi_ids(sample) == expected) & inside).sum())
        total += int(inside.sum())
    assert good / total >= NON_EDGE_ACCURACY


def test_roi_samples_of_the_instance_mask(lossless):
    """Every ROI of the instance mask: its own pixels (the truth's), box and area."""
    seen = 0
    for rs in maskdec.iter_roi_samples(lossless.frames_path, images=False):
        if rs.mask_id != "inst":
            continue
        expected, _ = instance_truth(lossless, (rs.frame_index, rs.source_id, rs.mask_id))
        mine = expected == rs.roi.id
        assert np.array_equal(rs.mask, mine), (rs.frame_index, rs.roi.id)
        assert rs.area == int(mine.sum()) > 0
        ys, xs = np.nonzero(mine)
        assert rs.box == (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
        assert rs.labels[0] == next(r["label"][0] for r in lossless.frames[rs.frame_index]["rois"]
                                    if r.get("id") == rs.roi.id and r["mask"]["id"] == "inst")
        seen += 1
    assert seen == sum(1 for f in lossless.frames for r in f["rois"] if r.get("mask", {}).get("id") == "inst")


def test_roi_samples_in_every_listed_source(lossless):
    """A FrameGroup ROI naming both cameras gives a RoiSample in each, with that camera's pixels."""
    got = {(rs.frame_index, rs.source_id, rs.roi.id, tuple(rs.roi.mask.value)): rs.area
           for rs in maskdec.iter_roi_samples(lossless.frames_path, images=False)}
    for line, frame in enumerate(lossless.frames):
        if frame["context_id"] != "stereo":
            continue
        for roi in frame["rois"]:
            for camera in roi.get("sources", []) if "mask" in roi else []:
                key = (line, camera, roi["id"], tuple(roi["mask"]["value"]))
                assert key in got, key
                truth = lossless.truth(line, camera, "seg")
                assert got[key] == int(np.sum(truth.colour_index == truth.colours.index(key[3])))


# ------------------------------------------------------------------ interleaved and shuffled input, within limits

def images_and_maps(frames, **options) -> list[tuple[np.ndarray, np.ndarray]]:
    return [(s.image, s.label_map) for s in maskdec.iter_samples(frames, images=True, **options)]


def same_samples(got: list, reference: list) -> bool:
    return len(got) == len(reference) and all(
        np.array_equal(image, ref_image) and np.array_equal(label_map, ref_map)
        for (image, label_map), (ref_image, ref_map) in zip(got, reference))


def test_the_shuffled_long_clip_whatever_the_buffer_budget(lossy):
    """The long-GOP clip referenced in shuffled order, with images: any budget for frames decoded
    ahead of their turn gives the samples of an unlimited run (beyond it, frames are decoded again)."""
    frames = lossy.load([f for f in lossy.frames if f["context_id"] == "long"])
    reference = images_and_maps(frames, max_buffered_bytes=1 << 40)
    outcome = {}
    for budget in range(0, 400_001, 25_000):
        try:
            outcome[budget] = same_samples(images_and_maps(frames, max_buffered_bytes=budget), reference)
        except maskdec.MaskdecError as exc:
            outcome[budget] = str(exc)
    assert {budget: result for budget, result in outcome.items() if result is not True} == {}


def test_interleaved_files_within_the_open_file_limit(lossy):
    """The whole dataset (every clip's mask and image files interleaved) with 2 files open at a
    time and nothing buffered: the samples of an unlimited run."""
    reference = images_and_maps(lossy.frames_path)
    assert same_samples(images_and_maps(lossy.frames_path, max_open_readers=2, max_buffered_bytes=0), reference)
