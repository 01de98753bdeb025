"""Per-ROI views: each ROI's own mask, boxes, areas, instance maps, one decode per file."""
import av
import numpy as np
import pytest

import maskdec
import maskdec.media.reader as reader_module
from maskdec.example import PALETTE, colour_mask, make_example, scene_classes
from maskdec.media.writer import write_video

H, W, N = 96, 128, 6
OBJECTS = [  # instance mask: (colour, label, rectangle y0, y1, x0, x1 at frame 0; moves right 3 px a frame)
    ((200, 30, 30), "car", 10, 40, 5, 45),
    ((30, 200, 30), "car", 50, 80, 20, 60),
    ((30, 30, 200), "person", 20, 70, 70, 85),
    ((200, 200, 30), "sign", 5, 20, 95, 120),
    ((200, 30, 200), "person", 75, 95, 90, 110),
]


def instance_truth(i):
    """(H, W) int: k + 1 for the k-th object, 0 for background."""
    out = np.zeros((H, W), np.int32)
    for k, (_, _, y0, y1, x0, x1) in enumerate(OBJECTS):
        out[y0:y1, min(x0 + 3 * i, W - 1):min(x1 + 3 * i, W)] = k + 1
    return out


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """One source with a semantic mask (the example scene, 6 classes) and an instance mask
    (5 objects, one colour each), both lossless FFV1."""
    root = tmp_path_factory.mktemp("rois")
    write_video(root / "seg.mkv", (colour_mask(scene_classes(i, H, W)) for i in range(N)), codec="ffv1",
                pix_fmt="bgr0", options={})
    palette = np.array([(0, 0, 0)] + [o[0] for o in OBJECTS], np.uint8)
    write_video(root / "inst.mkv", (palette[instance_truth(i)] for i in range(N)), codec="ffv1", pix_fmt="bgr0",
                options={})
    write_video(root / "image.mp4", (np.full((H, W, 3), 90, np.uint8) for _ in range(N)), codec="libx264",
                pix_fmt="yuv420p", options={"crf": "30"})
    frames = []
    for i in range(N):
        ts = int(i * 1000 / 30)
        frame = maskdec.Frame.from_dict({"sources": [{"id": "cam", "uri": "image.mp4", "timestamp": ts, "masks": [
            {"id": "seg", "uri": "seg.mkv"}, {"id": "inst", "uri": "inst.mkv"}]}]}, base_dir=root)
        for name, colour in PALETTE.items():
            frame.add_annotation(mask_rgb=colour, labels=[name], mask_id="seg")
        for k, (colour, label, *_rest) in enumerate(OBJECTS):
            frame.add_annotation(mask_rgb=colour, labels=[label, f"object-{k}"], mask_id="inst", id=f"obj{k}")
        frames.append(frame)
    return frames


def test_semantic_roi_masks_equal_label_map_of_their_id(dataset):
    samples = [s for s in maskdec.iter_samples(dataset, instances=True) if s.mask_id == "seg"]
    assert len(samples) == N
    for s in samples:
        assert len(s.rois) == 6
        union = np.zeros(s.label_map.shape, int)
        for ref in s.rois:
            mask = s.roi_mask(ref)
            assert np.array_equal(mask, s.label_map == ref.label_id)
            assert np.array_equal(mask, s.instance_map == ref.k + 1)
            union += mask
        assert union.max() == 1  # never overlap
        assert np.array_equal(union == 1, s.label_map != 255)


def test_instance_map_and_roi_samples_match_the_truth(dataset):
    inst = [s for s in maskdec.iter_samples(dataset, instances=True) if s.mask_id == "inst"]
    for i, s in enumerate(inst):
        assert s.instance_map.dtype == np.int32
        assert np.array_equal(s.instance_map, instance_truth(i))
        ids = s.packed_map()
        for k, (colour, *_rest) in enumerate(OBJECTS):
            r, g, b = colour
            assert np.all(ids[instance_truth(i) == k + 1] == (r << 16 | g << 8 | b))
        assert np.all(ids[instance_truth(i) == 0] == 0xFFFFFFFF)
    roi_samples = [r for r in maskdec.iter_roi_samples(dataset) if r.mask_id == "inst"]
    assert len(roi_samples) == N * len(OBJECTS)
    for r in roi_samples:
        k = int(r.roi.id[3:])
        truth = instance_truth(r.frame_index) == k + 1
        image, mask = r
        assert image.shape == (H, W, 3) and mask.dtype == bool
        assert np.array_equal(mask, truth)
        ys, xs = np.nonzero(truth)
        assert r.box == (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
        assert r.area == truth.sum()
        assert r.labels == [OBJECTS[k][1], f"object-{k}"] and r.roi.id == f"obj{k}"


def test_a_source_yields_both_its_semantic_and_instance_masks(dataset):
    kinds = [(r.frame_index, r.mask_id) for r in maskdec.iter_roi_samples(dataset, images=False)]
    for i in range(N):
        assert kinds.count((i, "seg")) == 6 and kinds.count((i, "inst")) == len(OBJECTS)


def test_empty_roi_has_no_box(dataset):
    frame = maskdec.Frame.from_dict(dataset[0].to_dict(), base_dir=dataset[0].base_dir)
    frame.add_annotation(mask_rgb=[1, 2, 3], labels=["ghost"], mask_id="inst")
    ghost = [r for r in maskdec.iter_roi_samples([frame], images=False) if r.labels == ["ghost"]]
    assert len(ghost) == 1 and ghost[0].box is None and ghost[0].area == 0 and not ghost[0].mask.any()


def test_one_decode_per_media_file(dataset, monkeypatch):
    opened = []
    real_open = av.open

    def counting_open(target, *args, **kwargs):
        opened.append(str(target))
        return real_open(target, *args, **kwargs)

    monkeypatch.setattr(reader_module.av, "open", counting_open)
    n = sum(1 for _ in maskdec.iter_roi_samples(dataset))
    assert n == N * (6 + len(OBJECTS))
    assert sorted(p.rsplit("/", 1)[1] for p in opened) == ["image.mp4", "inst.mkv", "seg.mkv"]


def test_roi_mask_without_instances_uses_the_class(tmp_path):
    ex = make_example(tmp_path, n_frames=2, width=64, height=48)
    s = next(iter(maskdec.iter_samples(ex.frames_path)))
    assert s.instance_map is None and len(s.rois) == len(PALETTE)
    road = next(r for r in s.rois if r.name == "road")
    assert np.array_equal(s.roi_mask(road.roi), s.label_map == road.label_id)
    with pytest.raises(maskdec.MaskdecError):
        s.packed_map()


def test_masks_stay_exact_when_their_memory_is_reused_for_moving_objects(dataset):
    """Each RoiSample is checked and dropped at once, so later frames reuse its planes; the
    kernel clears only what the previous frame's ROIs covered, and nothing of it may remain."""
    seen = set()
    for r in maskdec.iter_roi_samples(dataset, images=False):
        if r.mask_id != "inst":
            continue
        k = int(r.roi.id[3:])
        np.testing.assert_array_equal(r.mask, instance_truth(r.frame_index) == k + 1,
                                      err_msg=f"frame {r.frame_index} ROI {k}")
        seen.add(r.mask.__array_interface__["data"][0] - k * r.mask.nbytes)
        del r
    assert len(seen) < N, "the planes were never reused, so the clearing went untested"


def test_the_split_gives_the_same_masks_boxes_and_areas_over_two_threads(dataset):
    from maskdec.rois import roi_samples_of

    for sample in maskdec.iter_samples(dataset, images=False, instances=True):
        one, two = roi_samples_of(sample, threads=1), roi_samples_of(sample, threads=2)
        assert [(r.box, r.area) for r in one] == [(r.box, r.area) for r in two]
        for a, b in zip(one, two):
            np.testing.assert_array_equal(a.mask, b.mask)
