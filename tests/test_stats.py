"""Per-sample pixel statistics: exact / snapped / unknown, counted by the kernels in the mapping pass."""
import json

import cv2
import numpy as np
import pytest

import maskdec
from maskdec.export import export
from maskdec.lut import ColourTable, PixelStats, map_pixels, pixel_stats
from maskdec.media.planes import YuvPlanes
from maskdec.media.writer import rgb_to_yuv

COLOURS = ((10, 20, 30), (200, 0, 0), (0, 200, 0))


def reference(pixels, colours, tolerance, ignore_index=255):
    """numpy: exact = the pixel is a declared colour; unknown = no declared colour within tolerance."""
    p = pixels.reshape(-1, pixels.shape[-1]).astype(np.float64) if pixels.ndim == 3 else pixels.reshape(-1, 1)
    c = np.array(colours, np.float64)
    d = np.sqrt(((p[:, None, :] - c[None, :, :]) ** 2).sum(-1))
    exact = int((d.min(1) == 0).sum())
    unknown = int((d.min(1) > tolerance).sum())
    return PixelStats(exact, p.shape[0] - exact - unknown, unknown)


@pytest.mark.parametrize("tolerance", [0, 3, 25])
def test_rgb_counts_match_a_numpy_reference(tolerance):
    rng = np.random.default_rng(tolerance)
    table = ColourTable(COLOURS, (0, 1, 2), 255)
    pixels = np.array(COLOURS, np.uint8)[rng.integers(0, 3, (40, 50))]
    noise = rng.integers(-8, 9, pixels.shape)
    drift = rng.random((40, 50)) < 0.4
    pixels = np.where(drift[..., None], np.clip(pixels + noise, 0, 255), pixels).astype(np.uint8)
    pixels[rng.random((40, 50)) < 0.05] = (128, 128, 128)
    label_map = map_pixels(pixels, table, tolerance)
    stats = pixel_stats(pixels, table, label_map)
    assert stats == reference(pixels, COLOURS, tolerance)
    assert stats.total == pixels.shape[0] * pixels.shape[1]
    assert stats.unknown == int((label_map == 255).sum())


def test_strided_and_read_only_rgb_input():
    table = ColourTable(COLOURS, (0, 1, 2), 255)
    big = np.zeros((20, 30, 4), np.uint8)
    big[..., :3] = COLOURS[1]
    big[::2, ::3, :3] = (90, 90, 90)
    view = big[:, :, :3]  # strided: 4 bytes per pixel
    view.flags.writeable = False
    label_map = map_pixels(view, table, 0)
    assert pixel_stats(view, table, label_map) == PixelStats(600 - 100, 0, 100)
    rgba = big.copy()
    assert pixel_stats(rgba, table, map_pixels(rgba, table, 0)) == PixelStats(500, 0, 100)


def test_grey_counts():
    table = ColourTable(((50, 50, 50), (200, 200, 200)), (0, 1), 255)
    pixels = np.array([[50, 51, 200], [199, 120, 200]], np.uint8)
    # an 8-bit grey's distance counts all three channels: |51 - 50| * sqrt(3) < 2
    assert pixel_stats(pixels, table, map_pixels(pixels, table, 2)) == PixelStats(3, 2, 1)
    table16 = ColourTable(((50,), (4000,)), (0, 1), 255)
    pixels16 = np.array([[50, 51, 4000], [3999, 120, 200]], np.uint16)
    assert pixel_stats(pixels16, table16, map_pixels(pixels16, table16, 2)) == PixelStats(2, 2, 2)


def test_uint16_label_maps():
    table = ColourTable(COLOURS, (0, 300, 2), 65535, "uint16")
    pixels = np.array([[COLOURS[1], (1, 1, 1)]], np.uint8)
    label_map = map_pixels(pixels, table, 0)
    assert label_map.dtype == np.uint16
    assert pixel_stats(pixels, table, label_map) == PixelStats(1, 0, 1)


def test_stats_are_opt_in(example):
    assert next(iter(maskdec.iter_samples(example.frames_path, images=False))).stats is None


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
    planes = yuv_planes(rgb, "yuv444p")
    label_map = map_pixels(planes, table, 30)
    assert pixel_stats(planes, table, label_map) == PixelStats(256 - 16, 0, 16)
    # 4:2:0 with the class edge inside a chroma block: those pixels drift, are snapped or repaired
    rgb2 = np.zeros((8, 8, 3), np.uint8)
    rgb2[:, :3] = COLOURS[1]
    rgb2[:, 3:] = COLOURS[2]
    planes = yuv_planes(rgb2, "yuv420p")
    label_map = map_pixels(planes, table, 30)
    stats = pixel_stats(planes, table, label_map)
    assert stats.total == 64 and stats.unknown == 0
    assert stats.snapped == 16  # columns 2 and 3 share a chroma block with the other class
    assert np.array_equal(label_map, np.where(np.arange(8) < 3, 1, 2)[None].repeat(8, 0))


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


def test_lossy_example_stats_add_up(example):
    for sample in maskdec.iter_samples(example.frames_path, images=False, stats=True):
        assert sample.stats.total == sample.label_map.size
        assert sample.stats.unknown == int((sample.label_map == 255).sum())
        if sample.source_id == "front":  # the H.264 mask: most pixels drift a little
            assert sample.stats.snapped > 0


def test_wrong_label_map_is_rejected():
    table = ColourTable(COLOURS, (0, 1, 2), 255)
    pixels = np.zeros((4, 4, 3), np.uint8)
    with pytest.raises(maskdec.MaskdecError):
        pixel_stats(pixels, table, np.zeros((4, 5), np.uint8))
    with pytest.raises(maskdec.MaskdecError):
        pixel_stats(pixels, table, np.zeros((4, 4), np.uint16))
