"""The YUV path: label maps straight from yuv planes, honouring matrix and range tags."""
import itertools

import av
import numpy as np
import pytest

import maskdec
from maskdec.example import PALETTE, colour_mask, scene_classes
from maskdec.lut import ColourTable, map_pixels
from maskdec.media.planes import YuvPlanes, mask_data, yuv_planes
from maskdec.media.reader import mask_pixels
from maskdec.media.writer import write_video

H, W, N = 96, 128, 5
TAGS = list(itertools.product(("bt601", "bt709"), (False, True)))


def clip_frames(path, n=N):
    return [{"sources": [{"id": "cam", "uri": str(path), "timestamp": int(i * 1000 / 30),
                          "masks": [{"id": "seg", "uri": str(path)}]}],
             "rois": [{"label": [name], "mask": {"id": "seg", "value": list(c)}} for name, c in PALETTE.items()]}
            for i in range(n)]


def accuracies(path, **kw):
    it = maskdec.iter_samples(clip_frames(path), images=False, **kw)
    ids = np.array([it.labels.ids[name] for name in PALETTE])
    samples = list(it)
    return [float((s.label_map == ids[scene_classes(i, H, W)]).mean()) for i, s in enumerate(samples)], samples


@pytest.fixture(scope="module")
def tagged(tmp_path_factory):
    """(matrix, full_range, pix_fmt) -> clip path, encoded with that matrix and range and tagged so."""
    root = tmp_path_factory.mktemp("tagged")
    clips = {}
    for (matrix, full), (pix_fmt, codec, opts, ext) in itertools.product(
            TAGS, [("yuv444p", "ffv1", {}, "mkv"), ("yuv420p", "libx264", {"crf": "18"}, "mp4")]):
        path = root / f"{matrix}_{int(full)}_{pix_fmt}.{ext}"
        write_video(path, (colour_mask(scene_classes(i, H, W)) for i in range(N)), codec=codec, pix_fmt=pix_fmt,
                    options=opts, matrix=matrix, full_range=full)
        clips[(matrix, full, pix_fmt)] = path
    return clips


@pytest.mark.parametrize("matrix,full", TAGS)
def test_tags_are_read_from_the_stream(tagged, matrix, full):
    with av.open(str(tagged[(matrix, full, "yuv420p")])) as c:
        planes = yuv_planes(next(c.decode(video=0)))
    assert (planes.matrix, planes.full_range) == (matrix, full)


@pytest.mark.parametrize("matrix,full", TAGS)
def test_lossless_yuv444_maps_exactly_with_a_tight_tolerance(tagged, matrix, full):
    accs, _ = accuracies(tagged[(matrix, full, "yuv444p")], tolerance=3)
    assert min(accs) == 1.0


def test_wrong_tags_would_give_wrong_labels(tagged):
    """Control: reading a BT.709 full-range clip as BT.601 limited breaks the exact mapping."""
    path = tagged[("bt709", True, "yuv444p")]
    table = ColourTable(tuple(PALETTE.values()), tuple(range(len(PALETTE))), 255)
    with av.open(str(path)) as c:
        frame = next(c.decode(video=0))
    right = yuv_planes(frame)
    wrong = YuvPlanes(right.y, right.u, right.v, right.shift_x, right.shift_y, "bt601", False, frame)
    truth = scene_classes(0, H, W)
    assert (map_pixels(right, table, 3) == truth).mean() == 1.0
    assert (map_pixels(wrong, table, 3) == truth).mean() < 0.9


def test_same_label_maps_across_tags_on_lossy_clips(tagged):
    maps = {}
    for matrix, full in TAGS:
        accs, samples = accuracies(tagged[(matrix, full, "yuv420p")])
        assert min(accs) >= 0.99, (matrix, full, accs)
        maps[(matrix, full)] = [s.label_map for s in samples]
    first = maps[TAGS[0]]
    for tag in TAGS[1:]:
        for a, b in zip(first, maps[tag]):
            assert (a == b).mean() >= 0.99


@pytest.mark.parametrize("matrix,full", TAGS)
def test_yuv_path_at_least_as_accurate_as_rgb_path(tagged, matrix, full):
    path = tagged[(matrix, full, "yuv420p")]
    yuv, _ = accuracies(path)
    rgb, _ = accuracies(path, yuv=False)
    assert np.mean(yuv) >= np.mean(rgb) - 2e-4  # equal up to chroma siting on a few edge pixels


@pytest.mark.parametrize("pix_fmt", ["yuv420p", "yuv422p", "yuv444p", "nv12"])
def test_planar_layouts_agree_with_rgb_conversion(tmp_path, pix_fmt):
    """A lossless clip: each chroma layout maps to what its RGB conversion maps to."""
    path = tmp_path / "clip.mkv"
    write_video(path, (colour_mask(scene_classes(i, H + 1, W + 1)) for i in range(2)), codec="ffv1",
                pix_fmt="yuv444p", options={})
    table = ColourTable(tuple(PALETTE.values()), tuple(range(len(PALETTE))), 255)
    with av.open(str(path)) as c:
        frame = next(c.decode(video=0)).reformat(format=pix_fmt)
    data = mask_data(frame)
    assert isinstance(data, YuvPlanes) and data.shape == (H + 1, W + 1)
    yuv = map_pixels(data, table, 40)
    rgb = map_pixels(mask_pixels(frame), table, 40)
    agree = (yuv == rgb).mean()
    assert agree >= (1.0 if pix_fmt == "yuv444p" else 0.97), agree


def test_yuv_kernel_writes_into_a_strided_out(tagged):
    table = ColourTable(tuple(PALETTE.values()), tuple(range(len(PALETTE))), 255)
    with av.open(str(tagged[("bt601", False, "yuv420p")])) as c:
        planes = yuv_planes(next(c.decode(video=0)))
    big = np.zeros((H, 2 * W), np.uint8)
    out = big[:, ::2]
    result = map_pixels(planes, table, 60, out=out)
    assert result is out
    assert np.array_equal(out, map_pixels(planes, table, 60))


@pytest.fixture(scope="module")
def lossy_frames(tmp_path_factory):
    """Decoded frames of a lossy yuv420p clip of the example scene, with their truth."""
    path = tmp_path_factory.mktemp("lossy") / "clip.mp4"
    h, w = 240, 320
    write_video(path, (colour_mask(scene_classes(i, h, w)) for i in range(6)), codec="libx264", pix_fmt="yuv420p",
                options={"crf": "23"})
    with av.open(str(path)) as c:
        frames = list(c.decode(video=0))
    return frames, [scene_classes(i, h, w) for i in range(6)]


def test_edge_repair_beats_plain_yuv_and_rgb(lossy_frames):
    from maskdec.lut import _map_yuv

    frames, truth = lossy_frames
    table = ColourTable(tuple(PALETTE.values()), tuple(range(len(PALETTE))), 255)
    repaired = np.mean([(map_pixels(mask_data(f), table, 60) == t).mean() for f, t in zip(frames, truth)])
    plain = np.mean([(_map_yuv(yuv_planes(f), table.palette, table.remap, 60, None, edge_repair=False) == t).mean()
                     for f, t in zip(frames, truth)])
    rgb = np.mean([(map_pixels(mask_pixels(f), table, 60) == t).mean() for f, t in zip(frames, truth)])
    assert repaired > plain and repaired > rgb
    assert 1 - repaired < 0.75 * (1 - rgb)  # at least a quarter of the RGB path's errors gone


def test_edge_repair_only_changes_pixels_that_match_nothing_well(lossy_frames):
    from maskdec.lut import EDGE_REPAIR_DISTANCE, _map_yuv

    frames, _ = lossy_frames
    table = ColourTable(tuple(PALETTE.values()), tuple(range(len(PALETTE))), 255)
    dist = table.yuv_distance("bt601", False)
    planes = yuv_planes(frames[2])
    repaired = map_pixels(planes, table, 60)
    plain = _map_yuv(planes, table.palette, table.remap, 60, None, edge_repair=False)
    u = np.repeat(np.repeat(planes.u, 2, 0), 2, 1)[:planes.y.shape[0], :planes.y.shape[1]].astype(np.uint32)
    v = np.repeat(np.repeat(planes.v, 2, 0), 2, 1)[:planes.y.shape[0], :planes.y.shape[1]].astype(np.uint32)
    far = dist[(u << 16) | (v << 8) | planes.y] > EDGE_REPAIR_DISTANCE
    assert far.any() and (repaired != plain).any()
    assert np.array_equal(repaired[~far], plain[~far])


def test_edge_repair_same_for_uint16_tables(lossy_frames):
    frames, _ = lossy_frames
    ids = tuple(range(len(PALETTE)))
    small = ColourTable(tuple(PALETTE.values()), ids, 255)
    wide = ColourTable(tuple(PALETTE.values()), ids, 65535, "uint16")
    planes = yuv_planes(frames[3])
    a, b = map_pixels(planes, small, 60), map_pixels(planes, wide, 60)
    assert b.dtype == np.uint16
    assert np.array_equal(np.where(a == 255, 65535, a.astype(np.uint16)), b)
