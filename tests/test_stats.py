"""Per-sample pixel statistics: exact / snapped / unknown, counted by the map kernels in the same pass."""
import json

import cv2
import numpy as np
import pytest

import maskdec
from maskdec.export import export
from maskdec.lut import ColourTable, PixelStats, map_pixels
from maskdec.media.planes import YuvPlanes
from maskdec.media.writer import rgb_to_yuv

COLOURS = ((10, 20, 30), (200, 0, 0), (0, 200, 0))


def mapped(pixels, table, tolerance=0.0):
    """The label map and the stats of one map_pixels pass."""
    counts = np.zeros(3, np.int64)
    label_map = map_pixels(pixels, table, tolerance, counts=counts)
    return label_map, PixelStats.from_counts(counts)


def reference(pixels, colours, tolerance):
    """numpy: exact = the pixel is a declared colour; unknown = no declared colour within tolerance."""
    p = pixels.reshape(-1, 3).astype(np.float64)
    d = np.sqrt(((p[:, None, :] - np.array(colours, np.float64)[None]) ** 2).sum(-1)).min(1)
    exact, unknown = int((d == 0).sum()), int((d > tolerance).sum())
    return PixelStats(exact, p.shape[0] - exact - unknown, unknown)


@pytest.mark.parametrize("tolerance", [0, 3, 25])
def test_rgb_counts_match_a_numpy_reference(tolerance):
    rng = np.random.default_rng(tolerance)
    table = ColourTable(COLOURS, (0, 1, 2), 255)
    pixels = np.array(COLOURS, np.uint8)[rng.integers(0, 3, (40, 50))]
    drift = rng.random((40, 50)) < 0.4
    noisy = np.clip(pixels + rng.integers(-8, 9, pixels.shape), 0, 255)
    pixels = np.where(drift[..., None], noisy, pixels).astype(np.uint8)
    pixels[rng.random((40, 50)) < 0.05] = (128, 128, 128)
    label_map, stats = mapped(pixels, table, tolerance)
    assert stats == reference(pixels, COLOURS, tolerance)
    assert stats.unknown == int((label_map == 255).sum())
    assert np.array_equal(label_map, map_pixels(pixels, table, tolerance))  # counting changes no label


def test_counts_accumulate_over_passes():
    table = ColourTable(COLOURS, (0, 1, 2), 255)
    a = np.full((4, 5, 3), COLOURS[0], np.uint8)
    b = np.full((2, 3, 3), (90, 90, 90), np.uint8)
    counts = np.zeros(3, np.int64)
    map_pixels(a, table, 0, counts=counts)
    map_pixels(b, table, 0, counts=counts)
    assert PixelStats.from_counts(counts) == PixelStats(20, 0, 6)
    with pytest.raises(maskdec.MaskdecError):
        map_pixels(a, table, 0, counts=np.zeros(3, np.int32))
    with pytest.raises(maskdec.MaskdecError):
        map_pixels(a, table, 0, counts=np.zeros(4, np.int64))


def test_strided_read_only_and_rgba_input():
    table = ColourTable(COLOURS, (0, 1, 2), 255)
    big = np.zeros((20, 30, 4), np.uint8)
    big[..., :3] = COLOURS[1]
    big[::2, ::3, :3] = (90, 90, 90)
    view = big[:, :, :3]  # strided: 4 bytes per pixel
    view.flags.writeable = False
    assert mapped(view, table)[1] == PixelStats(500, 0, 100)
    assert mapped(big.copy(), table)[1] == PixelStats(500, 0, 100)


def test_grey_counts():
    table = ColourTable(((50, 50, 50), (200, 200, 200)), (0, 1), 255)
    pixels = np.array([[50, 51, 200], [199, 120, 200]], np.uint8)
    # an 8-bit grey's distance counts all three channels: |51 - 50| * sqrt(3) < 2
    assert mapped(pixels, table, 2)[1] == PixelStats(3, 2, 1)
    table16 = ColourTable(((50,), (4000,)), (0, 1), 255)
    pixels16 = np.array([[50, 51, 4000], [3999, 120, 200]], np.uint16)
    assert mapped(pixels16, table16, 2)[1] == PixelStats(2, 2, 2)


def test_uint16_label_maps_and_a_declared_colour_without_an_id():
    table = ColourTable(COLOURS, (0, 300, 65535), 65535, "uint16")  # the third class has no id
    pixels = np.array([[COLOURS[1], (1, 1, 1), COLOURS[2]]], np.uint8)
    label_map, stats = mapped(pixels, table)
    assert label_map.dtype == np.uint16 and label_map.tolist() == [[300, 65535, 65535]]
    assert stats == PixelStats(1, 0, 2)  # the stats partition the pixels by the label map


def yuv_planes(rgb, pix_fmt):
    stacked = rgb_to_yuv(rgb, "bt709", False, pix_fmt)
    h, w = rgb.shape[:2]
    if pix_fmt == "yuv444p":
        return YuvPlanes(stacked[0], stacked[1], stacked[2], 0, 0, "bt709", False)
    u = stacked[h:h + h // 4].reshape(h // 2, w // 2)
    v = stacked[h + h // 4:].reshape(h // 2, w // 2)
    return YuvPlanes(stacked[:h], u, v, 1, 1, "bt709", False)


def test_yuv_counts_rounded_colours_as_exact_and_far_ones_as_unknown():
    table = ColourTable(COLOURS, (0, 1, 2), 255)
    rgb = np.zeros((16, 16, 3), np.uint8)
    rgb[:, :8] = COLOURS[1]
    rgb[:, 8:] = COLOURS[2]
    rgb[:4, :4] = (255, 255, 255)  # far from every declared colour
    assert mapped(yuv_planes(rgb, "yuv444p"), table, 30)[1] == PixelStats(256 - 16, 0, 16)
    # 4:2:0 with the class edge inside a chroma block: those pixels drift and are snapped or repaired
    rgb2 = np.zeros((8, 8, 3), np.uint8)
    rgb2[:, :3] = COLOURS[1]
    rgb2[:, 3:] = COLOURS[2]
    label_map, stats = mapped(yuv_planes(rgb2, "yuv420p"), table, 30)
    assert stats == PixelStats(48, 16, 0)  # columns 2 and 3 share a chroma block with the other class
    assert np.array_equal(label_map, np.where(np.arange(8) < 3, 1, 2)[None].repeat(8, 0))


def test_yuv_counts_are_the_same_split_over_threads(monkeypatch):
    table = ColourTable(COLOURS, (0, 1, 2), 255)
    rng = np.random.default_rng(5)
    rgb = np.array(COLOURS + ((255, 255, 255),), np.uint8)[rng.integers(0, 4, (16, 24))]
    rgb = np.repeat(np.repeat(rgb, 8, 0), 8, 1)  # 128 x 192, blocks of 8
    planes = yuv_planes(rgb, "yuv420p")
    results = []
    for threads in ("1", "2"):
        monkeypatch.setenv("MASKDEC_KERNEL_THREADS", threads)
        results.append(mapped(planes, table, 30))
    assert np.array_equal(results[0][0], results[1][0]) and results[0][1] == results[1][1]
    assert results[0][1].unknown == int((results[0][0] == 255).sum()) > 0


def test_sample_stats_count_injected_unknown_pixels(tmp_path):
    mask = np.zeros((30, 40, 3), np.uint8)
    mask[:] = COLOURS[0]
    mask[10:20, 10:30] = (255, 255, 0)  # 200 undeclared pixels
    cv2.imwrite(str(tmp_path / "m.png"), cv2.cvtColor(mask, cv2.COLOR_RGB2BGR))
    cv2.imwrite(str(tmp_path / "i.png"), np.zeros((60, 80, 3), np.uint8))  # the mask is resized
    frame = {"sources": [{"id": "s", "uri": "i.png", "masks": [{"id": "m", "uri": "m.png"}]}],
             "rois": [{"label": ["a"], "mask": {"id": "m", "value": list(COLOURS[0])}}]}
    (tmp_path / "frames.json").write_text(json.dumps(frame))
    sample = next(iter(maskdec.iter_samples(tmp_path / "frames.json", stats=True)))
    assert sample.stats == PixelStats(exact=1000, snapped=0, unknown=200)
    assert sample.label_map.shape == (60, 80)  # the stats describe the mask before the resize
    summary = export(tmp_path / "frames.json", tmp_path / "out")
    assert summary.samples == 1
    line = json.loads((tmp_path / "out" / "manifest.jsonl").read_text())
    assert line["stats"] == {"exact": 1000, "snapped": 0, "unknown": 200}


def test_stats_are_opt_in(example):
    assert next(iter(maskdec.iter_samples(example.frames_path, images=False))).stats is None


def test_lossy_example_stats_add_up(example):
    for sample in maskdec.iter_samples(example.frames_path, images=False, stats=True):
        assert sample.stats.total == sample.label_map.size
        assert sample.stats.unknown == int((sample.label_map == 255).sum())
        if sample.source_id == "front":  # the H.264 mask: pixels drift
            assert sample.stats.snapped > 0
        else:  # the PNG mask
            assert sample.stats == PixelStats(sample.label_map.size, 0, 0)
