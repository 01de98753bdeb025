"""The iter_samples facade: Sample shape, order, one pass per file, sizes, labels, failures."""
from __future__ import annotations

import os
import random
from collections import Counter

import cv2
import numpy as np
import pytest

import maskdec
import maskdec.media.reader as reader_module
from maskdec.example import CLASS_NAMES, colour_mask, scene_classes, scene_image
from maskdec.media.writer import write_video
from maskdec.samples import SampleIterator, plan_samples

from conftest import frame_dict, index_colour, index_of, index_rois, palette_rois, solid_frames

N = 20


def writer_ts(i: int) -> int:
    return int(i * 1000 / 30)


@pytest.fixture
def index_pair(tmp_path):
    """A source clip and a mask clip (both lossless, 30 fps) whose frame i is solid index_colour(i)."""
    source, mask = tmp_path / "source.mkv", tmp_path / "mask.mp4"
    write_video(source, solid_frames(N), fps=30, codec="ffv1", pix_fmt="bgr0")
    write_video(mask, solid_frames(N), fps=30, codec="ffv1", pix_fmt="bgr0")
    return source, mask


def image_index(image: np.ndarray) -> int:
    colours = {index_colour(i): i for i in range(N)}
    values = np.unique(image.reshape(-1, 3), axis=0)
    assert len(values) == 1, values
    return colours[tuple(int(c) for c in values[0])]


@pytest.fixture
def spy_open(monkeypatch):
    """Counts av.open calls per target while calling the real one."""
    calls: Counter = Counter()
    real_open = reader_module.av.open

    def counting_open(target, *args, **kwargs):
        calls[os.fspath(target) if isinstance(target, (str, os.PathLike)) else repr(target)] += 1
        return real_open(target, *args, **kwargs)

    monkeypatch.setattr(reader_module.av, "open", counting_open)
    return calls


# ----------------------------------------------------------------- Sample

def test_sample_fields_and_unpacking(example):
    it = maskdec.iter_samples(example.frames_path)
    assert len(it) == example.n_frames + 1
    samples = list(it)
    first, still = samples[0], samples[-1]
    assert (first.frame_index, first.source_id, first.mask_id) == (0, "front", "seg")
    assert (first.timestamp, first.mask_timestamp) == (0, 0)
    assert first.image.shape == (example.height, example.width, 3) and first.image.dtype == np.uint8
    assert first.label_map.shape == (example.height, example.width) and first.label_map.dtype == it.labels.dtype
    image, label_map = first
    assert image is first.image and label_map is first.label_map
    assert (still.frame_index, still.source_id, still.mask_id) == (example.n_frames, "cam", "seg")
    for i, sample in enumerate(samples[:-1]):
        assert sample.frame_index == i
        assert sample.timestamp == sample.mask_timestamp == example.timestamps[i]
    text = repr(first)
    assert f"({example.height}, {example.width}, 3)" in text and "front" in text


def test_timestamp_fallbacks_and_separate_mask_timestamp(index_pair):
    source, mask = index_pair
    rois = index_rois(N)
    with_both = frame_dict(source, mask, rois, timestamp=100, mask_timestamp=200)
    source_only = frame_dict(source, mask, rois, timestamp=writer_ts(7))
    frame_only = frame_dict(source, mask, rois)
    frame_only["timestamp"] = writer_ts(11)
    nothing = frame_dict(source, mask, rois)
    it = maskdec.iter_samples([with_both, source_only, frame_only, nothing])
    got = [(s.timestamp, s.mask_timestamp, image_index(s.image), index_of(s.label_map, it.labels)) for s in it]
    assert got == [(100, 200, 3, 6), (writer_ts(7), writer_ts(7), 7, 7), (writer_ts(11), writer_ts(11), 11, 11),
                   (0, 0, 0, 0)]


def test_images_false_gives_no_image_and_the_same_label_maps(example):
    with_images = list(maskdec.iter_samples(example.frames_path))
    without = list(maskdec.iter_samples(example.frames_path, images=False))
    assert len(with_images) == len(without)
    for a, b in zip(with_images, without):
        assert b.image is None
        image, label_map = b
        assert image is None
        np.testing.assert_array_equal(a.label_map, label_map)


def test_input_order_kept_when_frames_are_shuffled(index_pair):
    source, mask = index_pair
    order = list(range(N)) + [4, 4, 17]
    random.Random(1).shuffle(order)
    assert order != sorted(order)
    frames = [frame_dict(source, mask, index_rois(N), timestamp=writer_ts(i)) for i in order]
    it = maskdec.iter_samples(frames)
    samples = list(it)
    assert [s.frame_index for s in samples] == list(range(len(order)))
    assert [image_index(s.image) for s in samples] == order
    assert [index_of(s.label_map, it.labels) for s in samples] == order


def test_each_media_file_is_opened_once(example, index_pair, spy_open):
    from maskdec import load_frames
    frames = load_frames(example.frames_path)
    random.Random(2).shuffle(frames)
    source, mask = index_pair
    extra = [frame_dict(source, mask, index_rois(N), timestamp=writer_ts(i)) for i in (9, 2, 15, 2, 0)]
    frames = [maskdec.Frame.from_dict(f) for f in extra] + frames
    samples = list(maskdec.iter_samples(frames))
    assert len(samples) == len(frames)
    expected = {str(example.root / name) for name in ("source.mp4", "mask.mp4", "still.png", "still_mask.png")}
    expected |= {str(source), str(mask)}
    assert set(spy_open) == expected
    assert all(count == 1 for count in spy_open.values()), dict(spy_open)
    # ... and the one pass served the right frames, whatever the order
    assert [image_index(s.image) for s in samples[:5]] == [9, 2, 15, 2, 0]


# ----------------------------------------------------------------- sizes

def _write_pair(tmp_path, classes_small, image_size):
    h, w = image_size
    cv2.imwrite(str(tmp_path / "img.png"), scene_image(0, scene_classes(0, h, w)))
    cv2.imwrite(str(tmp_path / "mask.png"), cv2.cvtColor(colour_mask(classes_small), cv2.COLOR_RGB2BGR))
    return tmp_path / "img.png", tmp_path / "mask.png"


def test_smaller_mask_is_resized_with_nearest_neighbour(tmp_path):
    small = scene_classes(3, 24, 32)
    image, mask = _write_pair(tmp_path, small, (48, 64))
    it = maskdec.iter_samples([frame_dict(image, mask, palette_rois())])
    (sample,) = list(it)
    assert sample.label_map.shape == (48, 64)
    ids = np.array([it.labels.ids[name] for name in CLASS_NAMES])[small]
    np.testing.assert_array_equal(sample.label_map, np.repeat(np.repeat(ids, 2, axis=0), 2, axis=1))


@pytest.mark.parametrize("mask_size", [(30, 40), (61, 83)])
def test_resize_at_odd_ratios_only_makes_existing_ids(tmp_path, mask_size):
    small = scene_classes(5, *mask_size)
    image, mask = _write_pair(tmp_path, small, (48, 64))
    # ids far apart, so any interpolation would show up as an id in between
    labels = {name: 40 * k for k, name in enumerate(CLASS_NAMES)}
    it = maskdec.iter_samples([frame_dict(image, mask, palette_rois())], labels=labels)
    (sample,) = list(it)
    assert sample.label_map.shape == (48, 64)
    present = set(np.unique(sample.label_map).tolist())
    assert present <= {labels[CLASS_NAMES[c]] for c in np.unique(small)}
    assert len(present) >= 4


def test_strict_sizes_rejects_a_mask_of_another_size(tmp_path):
    image, mask = _write_pair(tmp_path, scene_classes(3, 24, 32), (48, 64))
    with pytest.raises(maskdec.SizeMismatchError) as info:
        list(maskdec.iter_samples([frame_dict(image, mask, palette_rois())], strict_sizes=True))
    assert str(mask) in str(info.value) and "32x24" in str(info.value) and "64x48" in str(info.value)


def test_images_false_resizes_to_the_declared_source_size(tmp_path):
    small = scene_classes(3, 24, 32)
    image, mask = _write_pair(tmp_path, small, (48, 64))
    it = maskdec.iter_samples([frame_dict(image, mask, palette_rois(), width=64, height=48)], images=False)
    (sample,) = list(it)
    assert sample.image is None and sample.label_map.shape == (48, 64)


@pytest.mark.parametrize("where", ["source", "mask"])
def test_declared_size_mismatch_names_the_json_path(tmp_path, where):
    classes = scene_classes(3, 48, 64)
    image, mask = _write_pair(tmp_path, classes, (48, 64))
    good = frame_dict(image, mask, palette_rois(), width=64, height=48, mask_width=64, mask_height=48)
    bad = frame_dict(image, mask, palette_rois(), **({"width": 64, "height": 47} if where == "source"
                                                     else {"mask_width": 65, "mask_height": 48}))
    it = maskdec.iter_samples([good, bad])
    next(it)
    with pytest.raises(maskdec.SizeMismatchError) as info:
        next(it)
    path = "frames[1].sources[0]" + (".masks[0]" if where == "mask" else "")
    message = str(info.value)
    assert message.startswith(path + ":"), message
    assert ("64x47" if where == "source" else "65x48") in message and "64x48" in message


# ----------------------------------------------------------------- labels

def test_explicit_label_enumeration(tmp_path):
    classes = scene_classes(3, 48, 64)
    image, mask = _write_pair(tmp_path, classes, (48, 64))
    labels = {"road": 7, "car": 1, "sky": 30, "unused": 4}
    it = maskdec.iter_samples([frame_dict(image, mask, palette_rois())], labels=labels, ignore_index=99)
    assert it.labels.to_dict() == labels and it.labels.ignore_index == 99
    (sample,) = list(it)
    want = np.array([labels.get(name, 99) for name in CLASS_NAMES])[classes]
    np.testing.assert_array_equal(sample.label_map, want)
    assert 4 not in sample.label_map


def test_derived_labels_are_sorted_names(tmp_path):
    classes = scene_classes(3, 48, 64)
    image, mask = _write_pair(tmp_path, classes, (48, 64))
    it = maskdec.iter_samples([frame_dict(image, mask, palette_rois())])
    assert it.labels.to_dict() == {name: i for i, name in enumerate(sorted(CLASS_NAMES))}


# ----------------------------------------------------------------- one bad frame among good ones

BAD_KINDS = ["out-of-range", "missing-mask", "colour-conflict", "declared-size"]
BAD_ERRORS = {"out-of-range": maskdec.TimestampRangeError, "missing-mask": maskdec.MediaNotFoundError,
              "colour-conflict": maskdec.LabelError, "declared-size": maskdec.SizeMismatchError}


def _frames_with_one_bad(index_pair, kind, tmp_path):
    source, mask = index_pair
    order = [3, 8, 1, 12, 5]
    frames = [frame_dict(source, mask, index_rois(N), timestamp=writer_ts(i)) for i in order]
    bad = frame_dict(source, mask, index_rois(N), timestamp=writer_ts(6))
    if kind == "out-of-range":
        bad["sources"][0]["masks"][0]["timestamp"] = 5000
    elif kind == "missing-mask":
        bad["sources"][0]["masks"][0]["uri"] = str(tmp_path / "missing.mp4")
    elif kind == "colour-conflict":
        bad["rois"].append({"label": ["intruder"], "mask": {"id": "m", "value": list(index_colour(2))}})
    elif kind == "declared-size":
        bad["sources"][0]["width"] = 65
    frames.insert(2, bad)
    expected = order[:2] + [None] + order[2:]
    return frames, expected


@pytest.mark.parametrize("kind", BAD_KINDS)
def test_iter_samples_raises_at_the_bad_frame(index_pair, tmp_path, kind):
    frames, expected = _frames_with_one_bad(index_pair, kind, tmp_path)
    it = maskdec.iter_samples(frames)
    got = []
    with pytest.raises(BAD_ERRORS[kind]):
        for sample in it:
            got.append(index_of(sample.label_map, it.labels))
    assert got == expected[:2]


@pytest.mark.parametrize("kind", BAD_KINDS)
def test_lenient_iterator_yields_one_failure(index_pair, tmp_path, kind):
    frames, expected = _frames_with_one_bad(index_pair, kind, tmp_path)
    frame_objs = [maskdec.Frame.from_dict(f) for f in frames]
    labels, requests = plan_samples(frame_objs)
    it = SampleIterator(labels, requests, tolerance=None, images=True, strict_sizes=False, timestamp_unit="ms",
                        threads=None, raise_errors=False)
    results = list(it)
    assert len(results) == len(expected)
    for position, (result, want) in enumerate(zip(results, expected)):
        assert result.frame_index == position
        if want is None:
            assert isinstance(result, maskdec.SampleFailure), result
            assert isinstance(result.error, BAD_ERRORS[kind])
            report = result.to_dict()
            assert report["frame_index"] == position and report["error_type"] == BAD_ERRORS[kind].__name__
        else:
            assert isinstance(result, maskdec.Sample), result
            assert image_index(result.image) == want
            assert index_of(result.label_map, labels) == want


# ----------------------------------------------------------------- URIs

def test_relative_and_file_uris_resolve_against_the_frames_file(tmp_path, monkeypatch):
    import json
    data = tmp_path / "data"
    (data / "media").mkdir(parents=True)
    classes = scene_classes(2, 48, 64)
    cv2.imwrite(str(data / "media" / "img.png"), scene_image(2, classes))
    cv2.imwrite(str(data / "media" / "mask.png"), cv2.cvtColor(colour_mask(classes), cv2.COLOR_RGB2BGR))
    uris = [("media/img.png", "media/mask.png"),
            ("file://" + str(data / "media" / "img.png"), "file://media/mask.png")]
    (data / "frames.json").write_text(json.dumps([frame_dict(a, b, palette_rois()) for a, b in uris]))
    monkeypatch.chdir(tmp_path)  # not the frames file's folder
    it = maskdec.iter_samples(data / "frames.json")
    samples = list(it)
    want = np.array([it.labels.ids[name] for name in CLASS_NAMES])[classes]
    assert len(samples) == 2
    for sample in samples:
        assert sample.image.shape == (48, 64, 3)
        np.testing.assert_array_equal(sample.label_map, want)


def test_remote_uri_without_fsspec_names_the_extra():
    import importlib.util
    if importlib.util.find_spec("fsspec") is not None:
        pytest.skip("fsspec is installed")
    frames = [frame_dict("s3://bucket/img.png", "s3://bucket/mask.png", palette_rois())]
    with pytest.raises(maskdec.MissingExtraError, match=r"maskdec\[remote\]") as info:
        list(maskdec.iter_samples(frames))
    assert "s3://bucket/" in str(info.value) and isinstance(info.value, ImportError)


@pytest.mark.parametrize("enabled", [True, False])
def test_planning_leaves_garbage_collection_as_it_found_it(example, enabled):
    """Planning pauses the cyclic collector (its objects all live on) and restores it, even on errors."""
    import gc

    from maskdec.options import Options
    from maskdec.samples import plan_of

    was = gc.isenabled()
    try:
        (gc.enable if enabled else gc.disable)()
        table, requests = plan_of(example.frames_path, Options.of({}))
        assert gc.isenabled() is enabled
        want_table, want = plan_samples(maskdec.load_frames(example.frames_path))
        assert table.to_dict() == want_table.to_dict()
        assert [(r.frame_index, r.mask_uri, r.mask_ts) for r in requests] == [
            (r.frame_index, r.mask_uri, r.mask_ts) for r in want]
        with pytest.raises(maskdec.MaskdecError):
            plan_of([{"sources": "not a list"}], Options.of({}))
        assert gc.isenabled() is enabled
    finally:
        (gc.enable if was else gc.disable)()
