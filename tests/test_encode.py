"""`maskdec encode`: label maps -> mask video + frames.jsonl, and back through iter_samples."""
import json
import subprocess
import sys

import av
import cv2
import numpy as np
import pytest

import maskdec
from maskdec.encode import default_colours, encode_masks

LABELS = {"road": 0, "car": 1, "person": 2, "sky": 3}
COLOURS = {"road": [128, 64, 128], "car": [0, 0, 142], "person": [220, 20, 60], "sky": [70, 130, 180]}


def label_maps(n=6, h=48, w=64, ignore=255):
    """Shapes moving over a road/sky split, with a patch of ignored pixels; frame 0 has no person."""
    y, x = np.mgrid[0:h, 0:w]
    out = np.zeros((n, h, w), np.uint8)
    for i in range(n):
        m = np.where(y < h // 3, LABELS["sky"], LABELS["road"]).astype(np.uint8)
        m[(abs(x - (8 + 6 * i)) < 7) & (abs(y - 30) < 5)] = LABELS["car"]
        if i > 0:
            m[(x - 50) ** 2 + (y - 25 + i) ** 2 < 30] = LABELS["person"]
        m[:3, :5] = ignore
        out[i] = m
    return out


def round_trip(result, labels=LABELS):
    return [s.label_map for s in maskdec.iter_samples(result.frames_path, labels=labels, images=False)]


@pytest.mark.parametrize("codec", ["ffv1", "libx264rgb"])
def test_lossless_codecs_round_trip_exactly(tmp_path, codec):
    maps = label_maps()
    np.save(tmp_path / "maps.npy", maps)
    result = encode_masks(tmp_path / "maps.npy", tmp_path / "out", labels=LABELS, colours=COLOURS, codec=codec)
    assert result.lossless and result.n_frames == len(maps)
    with av.open(str(result.mask_path)) as c:
        assert c.streams.video[0].codec_context.name == {"ffv1": "ffv1", "libx264rgb": "h264"}[codec]
    back = round_trip(result, json.loads(result.labels_path.read_text()))
    assert len(back) == len(maps)
    for original, decoded in zip(maps, back):
        assert np.array_equal(original, decoded)


def test_frames_declare_the_colours_of_the_classes_each_map_shows(tmp_path):
    maps = label_maps()
    np.save(tmp_path / "maps.npy", maps)
    result = encode_masks(tmp_path / "maps.npy", tmp_path / "out", labels=LABELS, colours=COLOURS)
    frames = maskdec.load_frames(result.frames_path)
    names = {v: k for k, v in LABELS.items()}
    assert len(frames) == len(maps)
    for frame, m in zip(frames, maps):
        declared = {roi.labels[0]: list(roi.mask.value) for roi in frame.rois}
        present = {names[i] for i in np.unique(m) if i in names}
        assert set(declared) == present
        assert all(declared[n] == COLOURS[n] for n in present)
        assert frame.sources[0].masks[0].id == "seg"
    assert "person" not in {roi.labels[0] for roi in frames[0].rois}
    assert json.loads((tmp_path / "out" / "colours.json").read_text()) == COLOURS


def test_png_folder_of_16_bit_ids_round_trips(tmp_path):
    labels = {"a": 0, "b": 300, "c": 1000}
    folder = tmp_path / "maps"
    folder.mkdir()
    rng = np.random.default_rng(3)
    maps = rng.choice(np.array([0, 300, 1000, 65535], np.uint16), size=(3, 20, 30))
    for i, m in enumerate(maps):
        assert cv2.imwrite(str(folder / f"m{i:02d}.png"), m)
    result = encode_masks(folder, tmp_path / "out", labels=labels, ignore_index=65535)
    assert set(result.colours) == set(labels) and len(set(result.colours.values())) == 3
    back = [s.label_map for s in maskdec.iter_samples(result.frames_path, labels=labels, images=False)]
    assert [f.id for f in maskdec.load_frames(result.frames_path)] == ["m00", "m01", "m02"]
    for original, decoded in zip(maps, back):
        assert decoded.dtype == np.uint16
        assert np.array_equal(original, decoded)


def test_lossy_h264_is_yuv420p_and_close(tmp_path):
    maps = label_maps(h=64, w=96)
    np.save(tmp_path / "maps.npy", maps)
    result = encode_masks(tmp_path / "maps.npy", tmp_path / "out", labels=LABELS, colours=COLOURS, codec="h264")
    assert not result.lossless and result.mask_path.suffix == ".mp4"
    with av.open(str(result.mask_path)) as c:
        ctx = c.streams.video[0].codec_context
        assert (ctx.name, ctx.pix_fmt) == ("h264", "yuv420p")
    for original, decoded in zip(maps, round_trip(result)):
        assert (original == decoded).mean() > 0.97


def test_source_folder_pairs_images_with_label_maps(tmp_path):
    maps = label_maps(n=3)
    np.save(tmp_path / "maps.npy", maps)
    images = tmp_path / "images"
    images.mkdir()
    rng = np.random.default_rng(0)
    pictures = rng.integers(0, 256, (3, 48, 64, 3), dtype=np.uint8)
    for i, p in enumerate(pictures):
        cv2.imwrite(str(images / f"{i}.png"), cv2.cvtColor(p, cv2.COLOR_RGB2BGR))
    result = encode_masks(tmp_path / "maps.npy", tmp_path / "out", labels=LABELS, colours=COLOURS, source=images)
    samples = list(maskdec.iter_samples(result.frames_path, labels=LABELS))
    for picture, m, sample in zip(pictures, maps, samples):
        assert np.array_equal(sample.image, picture)
        assert np.array_equal(sample.label_map, m)


def test_default_colours_are_distinct_and_not_the_unlabelled_black():
    colours = default_colours([f"c{i}" for i in range(24)])
    values = np.array(list(colours.values()), np.float64)
    d = np.sqrt(((values[:, None] - values[None]) ** 2).sum(-1))
    d[np.diag_indices_from(d)] = np.inf
    assert d.min() > 20
    assert (0, 0, 0) not in colours.values()


def test_errors_name_the_culprit(tmp_path):
    maps = label_maps(n=2)
    maps[1, 5, 5] = 9
    np.save(tmp_path / "bad.npy", maps)
    with pytest.raises(maskdec.LabelError, match=r"frame_000001.*\[9\]"):
        encode_masks(tmp_path / "bad.npy", tmp_path / "o1", labels=LABELS, colours=COLOURS)
    np.save(tmp_path / "ok.npy", label_maps(n=2))
    with pytest.raises(maskdec.LabelError, match="'sky' has no colour"):
        encode_masks(tmp_path / "ok.npy", tmp_path / "o2", labels=LABELS, colours={k: v for k, v in COLOURS.items()
                                                                                   if k != "sky"})
    with pytest.raises(maskdec.LabelError, match="share the colour"):
        encode_masks(tmp_path / "ok.npy", tmp_path / "o3", labels=LABELS, colours={**COLOURS, "sky": COLOURS["car"]})
    with pytest.raises(maskdec.LabelError, match="unlabelled"):
        encode_masks(tmp_path / "ok.npy", tmp_path / "o4", labels=LABELS, colours={**COLOURS, "sky": [0, 0, 0]})
    folder = tmp_path / "rgb"
    folder.mkdir()
    cv2.imwrite(str(folder / "a.png"), np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(maskdec.FrameFormatError, match="a.png.*one channel"):
        encode_masks(folder, tmp_path / "o5", labels=LABELS, colours=COLOURS)
    cv2.imwrite(str(folder / "a.png"), np.zeros((4, 4), np.uint8))
    cv2.imwrite(str(folder / "b.png"), np.zeros((4, 6), np.uint8))
    with pytest.raises(maskdec.FrameFormatError, match="b: label map is 6x4"):
        encode_masks(folder, tmp_path / "o6", labels=LABELS, colours=COLOURS)
    with pytest.raises(maskdec.MediaNotFoundError):
        encode_masks(tmp_path / "missing.npy", tmp_path / "o7", labels=LABELS)
    odd = np.zeros((1, 5, 7), np.uint8)
    np.save(tmp_path / "odd.npy", odd)
    with pytest.raises(maskdec.MaskdecError, match="even sizes"):
        encode_masks(tmp_path / "odd.npy", tmp_path / "o8", labels=LABELS, codec="h264")


def test_encode_command_round_trips(tmp_path):
    maps = label_maps(n=3)
    np.save(tmp_path / "maps.npy", maps)
    (tmp_path / "labels.json").write_text(json.dumps(LABELS))
    (tmp_path / "colours.json").write_text(json.dumps(COLOURS))
    out = tmp_path / "out"
    result = subprocess.run([sys.executable, "-m", "maskdec.cli", "encode", str(tmp_path / "maps.npy"), "--labels",
                             str(tmp_path / "labels.json"), "--colours", str(tmp_path / "colours.json"), "--out",
                             str(out), "--codec", "libx264rgb"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(out / "frames.jsonl")
    back = [s.label_map for s in maskdec.iter_samples(out / "frames.jsonl", labels=LABELS, images=False)]
    assert all(np.array_equal(a, b) for a, b in zip(maps, back)) and len(back) == 3
    bad = subprocess.run([sys.executable, "-m", "maskdec.cli", "encode", str(tmp_path / "maps.npy"), "--labels",
                          str(tmp_path / "labels.json"), "--out", str(out), "--codec", "ffv1", "--crf", "20"],
                         capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and "crf" in bad.stderr
