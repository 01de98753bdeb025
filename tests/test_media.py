"""MediaReader and iter_samples on real files: codecs, image modes, timestamps (docs/format.md, "Timestamps"), broken files."""
from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from fractions import Fraction

import av
import cv2
import numpy as np
import pytest

import maskdec
from maskdec.example import CLASS_NAMES, PALETTE, colour_mask, scene_classes, scene_image
from maskdec.media.reader import MediaReader, image_rgb, mask_pixels
from maskdec.media.writer import write_video

from conftest import (frame_dict, index_colour, index_of, index_rois, palette_rois, solid_frames,
                      write_png_av)

H, W = 72, 96


def writer_ts(i: int, fps) -> int:
    """What dataset writers store for frame i: the truncated millisecond."""
    return int(i * 1000 / Fraction(fps))


def truth_ids(classes: np.ndarray, labels) -> np.ndarray:
    """PALETTE positions -> label ids of the iterator's table."""
    return np.array([labels.ids[name] for name in CLASS_NAMES])[classes]


def numbers(text: str) -> list[float]:
    return [float(x) for x in re.findall(r"\d+(?:\.\d+)?", text)]


# ----------------------------------------------------------------- lossless / lossy mask videos

LOSSLESS = {
    "ffv1-mkv": ("mask.mkv", "ffv1", "bgr0", {}),
    "libx264rgb-qp0-mp4": ("mask.mp4", "libx264rgb", "rgb24", {"qp": "0"}),
}


@pytest.fixture(params=sorted(LOSSLESS))
def lossless_clip(request, tmp_path):
    name, codec, pix_fmt, options = LOSSLESS[request.param]
    n = 30
    classes = [scene_classes(i, H, W) for i in range(n)]
    path = tmp_path / name
    write_video(path, (colour_mask(c) for c in classes), fps=30, codec=codec, pix_fmt=pix_fmt, options=options)
    return path, classes


def test_lossless_video_reader_returns_exact_pixels(lossless_clip):
    path, classes = lossless_clip
    stamps = [writer_ts(i, 30) for i in range(len(classes))]
    with MediaReader(str(path)) as reader:
        got = list(reader.frames_at(stamps))
    assert [ts for ts, _ in got] == stamps
    for i, (_, frame) in enumerate(got):
        assert not isinstance(frame, Exception), frame
        pixels = mask_pixels(frame)
        assert pixels.shape == (H, W, 3) and pixels.dtype == np.uint8
        np.testing.assert_array_equal(pixels, colour_mask(classes[i]), err_msg=f"frame {i}")


def test_lossless_video_label_maps_are_exact(lossless_clip):
    path, classes = lossless_clip
    frames = [frame_dict(path, path, palette_rois(), timestamp=writer_ts(i, 30)) for i in range(len(classes))]
    it = maskdec.iter_samples(frames, images=False)
    assert set(it.labels.ids) == set(CLASS_NAMES)
    samples = list(it)
    assert len(samples) == len(classes)
    for i, sample in enumerate(samples):
        assert sample.label_map.shape == (H, W)
        np.testing.assert_array_equal(sample.label_map, truth_ids(classes[i], it.labels), err_msg=f"frame {i}")


def test_lossy_h264_masks_are_at_least_99_percent_right(example):
    it = maskdec.iter_samples(example.frames_path)
    labels = it.labels
    seen = 0
    for sample in it:
        if sample.source_id == "front":
            truth = truth_ids(example.truth(example.timestamps.index(sample.timestamp)), labels)
            assert sample.image.shape == (example.height, example.width, 3)
        else:  # the PNG still pair is lossless
            truth = truth_ids(example.still_truth(), labels)
        accuracy = (sample.label_map == truth).mean()
        floor = 0.99 if sample.source_id == "front" else 1.0
        assert accuracy >= floor, f"frame {sample.frame_index}: {accuracy:.4f}"
        seen += 1
    assert seen == example.n_frames + 1


def test_lossy_mask_really_is_lossy(example):
    """Guard for the test above: the default tolerance is what makes it pass."""
    with MediaReader(str(example.root / "mask.mp4")) as reader:
        assert not reader.lossless
        _, frame = next(reader.frames_at([0]))
    pixels = mask_pixels(frame)
    exact = (pixels == colour_mask(example.truth(0))).all(axis=2).mean()
    assert exact < 0.99


# ----------------------------------------------------------------- still images

def _scene(still_index: int = 7):
    classes = scene_classes(still_index, H, W, still=True)
    return classes, scene_image(still_index, classes)


def test_png_rgb_mask_and_png_image(tmp_path):
    classes, image = _scene()
    cv2.imwrite(str(tmp_path / "img.png"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    cv2.imwrite(str(tmp_path / "mask.png"), cv2.cvtColor(colour_mask(classes), cv2.COLOR_RGB2BGR))
    it = maskdec.iter_samples([frame_dict(tmp_path / "img.png", tmp_path / "mask.png", palette_rois(), timestamp=500)])
    (sample,) = list(it)
    np.testing.assert_array_equal(sample.image, image)  # RGB order, exact
    np.testing.assert_array_equal(sample.label_map, truth_ids(classes, it.labels))


@pytest.mark.parametrize("form", ["rgb", "single"])
def test_png_grey_mask(tmp_path, form):
    classes, image = _scene()
    greys = [0, 37, 38, 128, 200, 255]  # 37 and 38 are neighbours: exact matching must tell them apart
    cv2.imwrite(str(tmp_path / "img.png"), image)
    cv2.imwrite(str(tmp_path / "mask.png"), np.array(greys, np.uint8)[classes])
    with MediaReader(str(tmp_path / "mask.png")) as reader:
        _, frame = next(reader.frames_at([0]))
        pixels = mask_pixels(frame)
    assert pixels.shape == (H, W) and pixels.dtype == np.uint8
    rois = palette_rois({name: ([v, v, v] if form == "rgb" else [v]) for name, v in zip(CLASS_NAMES, greys)})
    it = maskdec.iter_samples([frame_dict(tmp_path / "img.png", tmp_path / "mask.png", rois)])
    (sample,) = list(it)
    np.testing.assert_array_equal(sample.label_map, truth_ids(classes, it.labels))


def test_png_palette_mask(tmp_path):
    classes, image = _scene()
    palette = np.zeros((256, 4), np.uint8)
    palette[:, 0] = 255
    # palette entries in a shuffled order, so the index is not the class
    order = [3, 0, 5, 1, 4, 2]
    for slot, cls in enumerate(order):
        palette[10 + slot, 1:] = PALETTE[CLASS_NAMES[cls]]
    index_of_class = np.zeros(len(CLASS_NAMES), np.uint8)
    for slot, cls in enumerate(order):
        index_of_class[cls] = 10 + slot
    write_png_av(tmp_path / "mask.png", av.VideoFrame.from_ndarray((index_of_class[classes], palette), format="pal8"))
    with av.open(str(tmp_path / "mask.png")) as c:
        assert c.streams.video[0].codec_context.pix_fmt == "pal8"
    # an independent reader agrees on the colours the file holds
    expanded = cv2.cvtColor(cv2.imread(str(tmp_path / "mask.png"), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    np.testing.assert_array_equal(expanded, colour_mask(classes))
    cv2.imwrite(str(tmp_path / "img.png"), image)
    it = maskdec.iter_samples([frame_dict(tmp_path / "img.png", tmp_path / "mask.png", palette_rois())])
    (sample,) = list(it)
    np.testing.assert_array_equal(sample.label_map, truth_ids(classes, it.labels))


def test_png_rgba_mask_drops_alpha(tmp_path):
    classes, image = _scene()
    rgba = np.dstack([colour_mask(classes), np.where(classes == 0, 0, 255).astype(np.uint8)])
    cv2.imwrite(str(tmp_path / "mask.png"), cv2.cvtColor(rgba, cv2.COLOR_RGBA2BGRA))
    cv2.imwrite(str(tmp_path / "img.png"), image)
    it = maskdec.iter_samples([frame_dict(tmp_path / "img.png", tmp_path / "mask.png", palette_rois())])
    (sample,) = list(it)
    np.testing.assert_array_equal(sample.label_map, truth_ids(classes, it.labels))


def test_png_16bit_grey_mask(tmp_path):
    classes, image = _scene()
    values = [7, 256, 300, 1000, 40000, 65535]  # 7 <= 255 may be declared [7]; the rest need 16 bits
    cv2.imwrite(str(tmp_path / "mask.png"), np.array(values, np.uint16)[classes])
    cv2.imwrite(str(tmp_path / "img.png"), image)
    with MediaReader(str(tmp_path / "mask.png")) as reader:
        _, frame = next(reader.frames_at([0]))
        pixels = mask_pixels(frame)
    assert pixels.dtype == np.uint16
    np.testing.assert_array_equal(pixels, np.array(values, np.uint16)[classes])
    rois = palette_rois({name: [v] for name, v in zip(CLASS_NAMES, values)})
    it = maskdec.iter_samples([frame_dict(tmp_path / "img.png", tmp_path / "mask.png", rois)])
    (sample,) = list(it)
    np.testing.assert_array_equal(sample.label_map, truth_ids(classes, it.labels))


def test_png_16bit_grey_mask_255_declared_as_rgb(tmp_path):
    classes, image = _scene()
    values = [0, 1, 255, 256, 512, 65534]
    cv2.imwrite(str(tmp_path / "mask.png"), np.array(values, np.uint16)[classes])
    cv2.imwrite(str(tmp_path / "img.png"), image)
    rois = palette_rois({name: ([v, v, v] if v <= 255 else [v]) for name, v in zip(CLASS_NAMES, values)})
    it = maskdec.iter_samples([frame_dict(tmp_path / "img.png", tmp_path / "mask.png", rois)])
    (sample,) = list(it)
    np.testing.assert_array_equal(sample.label_map, truth_ids(classes, it.labels))


def test_jpeg_source_image_decodes_as_rgb(tmp_path):
    classes, image = _scene()
    cv2.imwrite(str(tmp_path / "img.jpg"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 95])
    cv2.imwrite(str(tmp_path / "mask.png"), cv2.cvtColor(colour_mask(classes), cv2.COLOR_RGB2BGR))
    frames = [frame_dict(tmp_path / "img.jpg", tmp_path / "mask.png", palette_rois(), width=W, height=H)]
    (sample,) = list(maskdec.iter_samples(frames))
    assert sample.image.shape == (H, W, 3) and sample.image.dtype == np.uint8
    reference = cv2.cvtColor(cv2.imread(str(tmp_path / "img.jpg")), cv2.COLOR_BGR2RGB).astype(int)
    assert np.abs(sample.image.astype(int) - reference).mean() < 3
    assert np.abs(sample.image.astype(int) - image.astype(int)).mean() < 6
    # the check tells RGB from BGR
    assert np.abs(sample.image[:, :, ::-1].astype(int) - reference).mean() > 20


# ----------------------------------------------------------------- timestamps (docs/format.md, "Timestamps")

#: (container, codec, pix_fmt, options) of index-coded clips: lossless ones, and H.264 with B-frames.
CLIPS = {
    "mkv-ffv1": ("mkv", "ffv1", "bgr0", {}),
    "mp4-ffv1": ("mp4", "ffv1", "bgr0", {}),
    "mov-qtrle": ("mov", "qtrle", "rgb24", {}),
    "mp4-h264": ("mp4", "libx264", "yuv420p", {"crf": "23", "bf": "3"}),
    "mkv-h264": ("mkv", "libx264", "yuv420p", {"crf": "23", "bf": "3"}),
}


def index_clip(path, n: int, fps=30, kind: str = "mkv-ffv1", **kwargs):
    """A clip whose frame i is solid index_colour(i)."""
    ext, codec, pix_fmt, options = CLIPS[kind]
    path = path.with_suffix("." + ext)
    write_video(path, solid_frames(n), fps=fps, codec=codec, pix_fmt=pix_fmt, options=options, **kwargs)
    return path


def read_indices(path, stamps, unit="ms"):
    """{ts: frame index (nearest index colour) or the error} from MediaReader on an index clip."""
    colours = np.array([index_colour(i) for i in range(64)], np.int64)
    out = {}
    with MediaReader(str(path)) as reader:
        for ts, frame in reader.frames_at(stamps, unit):
            if isinstance(frame, Exception):
                out[ts] = frame
            else:
                pixels = mask_pixels(frame).reshape(-1, 3)
                index = int(np.argmin(((colours - pixels.mean(axis=0)) ** 2).sum(axis=1)))
                if reader.lossless:
                    assert (pixels == colours[index]).all(), f"{path} at {ts}: not an exact index colour"
                out[ts] = index
    return out


@pytest.mark.parametrize("kind", sorted(CLIPS))
def test_writer_truncated_ms_select_their_frame(tmp_path, kind):
    n = 40
    path = index_clip(tmp_path / "clip", n, kind=kind)
    stamps = [writer_ts(i, 30) for i in range(n)]
    # the naive floor(ts * fps / 1000) gets these wrong; nearest must not
    assert any(int(ts * 30 / 1000) != i for i, ts in enumerate(stamps))
    assert read_indices(path, stamps) == {ts: i for i, ts in enumerate(stamps)}
    frames = [frame_dict(path, path, index_rois(n), timestamp=ts) for ts in stamps]
    it = maskdec.iter_samples(frames, images=False)
    assert [index_of(s.label_map, it.labels) for s in it] == list(range(n))


@pytest.mark.parametrize("kind", ["mkv-ffv1", "mp4-ffv1", "mp4-h264"])
def test_nearest_frame_ties_go_to_the_earlier(tmp_path, kind):
    path = index_clip(tmp_path / "clip25", 10, fps=25, kind=kind)  # frames at 0, 40, 80 ... 360 ms
    expected = {0: 0, 19: 0, 20: 0, 21: 1, 40: 1, 59: 1, 60: 1, 61: 2, 99: 2, 100: 2, 101: 3, 340: 8, 341: 9}
    assert read_indices(path, list(expected)) == expected
    frames = [frame_dict(path, path, index_rois(10), timestamp=ts) for ts in expected]
    it = maskdec.iter_samples(frames, images=False)
    assert [index_of(s.label_map, it.labels) for s in it] == list(expected.values())


def test_variable_frame_rate_uses_real_presentation_times(tmp_path):
    pts = [0, 10, 50, 200, 210, 400]
    path = tmp_path / "vfr.mkv"
    write_video(path, solid_frames(len(pts)), fps=30, codec="ffv1", pix_fmt="bgr0", pts=pts,
                time_base=Fraction(1, 1000))
    with av.open(str(path)) as c:  # the file really is VFR
        assert [f.pts for f in c.decode(video=0)] == pts
    expected = {0: 0, 5: 0, 6: 1, 30: 1, 31: 2, 125: 2, 126: 3, 205: 3, 206: 4, 305: 4, 306: 5, 420: 5}
    got = read_indices(path, list(expected) + [1000])
    assert isinstance(got.pop(1000), maskdec.TimestampRangeError)
    assert got == expected


def test_first_presented_frame_is_position_zero(tmp_path):
    """A stream that starts late (first pts 1000 ms) still has its first frame at 0."""
    path = tmp_path / "late.mkv"
    pts = [1000 + 40 * i for i in range(5)]
    write_video(path, solid_frames(5), fps=25, codec="ffv1", pix_fmt="bgr0", pts=pts, time_base=Fraction(1, 1000))
    with av.open(str(path)) as c:
        assert next(c.decode(video=0)).pts == 1000
    assert read_indices(path, [0, 40, 81, 160]) == {0: 0, 40: 1, 81: 2, 160: 4}


@pytest.mark.parametrize("kind", ["mkv-ffv1", "mp4-ffv1", "mp4-h264"])
def test_out_of_range_timestamps(tmp_path, kind):
    n = 10
    path = index_clip(tmp_path / "short", n, kind=kind)  # last frame at ~300 ms, lasting ~33 ms
    got = read_indices(path, [300, 320, 333, 340, 400, 10_000])
    assert got[300] == got[320] == got[333] == n - 1  # within the last frame's duration
    for ts in (340, 400, 10_000):
        err = got[ts]
        assert isinstance(err, maskdec.TimestampRangeError), (ts, err)
        assert str(path) in str(err) and str(ts) in str(err)
        assert any(abs(x - 300) <= 1 for x in numbers(str(err))), str(err)  # the file's range
    frames = [frame_dict(path, path, index_rois(n), timestamp=ts) for ts in (0, 400)]
    it = maskdec.iter_samples(frames, images=False)
    assert index_of(next(it).label_map, it.labels) == 0
    with pytest.raises(maskdec.TimestampRangeError, match=re.escape(str(path))):
        next(it)


def test_negative_timestamp_is_a_range_error(tmp_path):
    path = index_clip(tmp_path / "clip", 5)
    got = read_indices(path, [-1, 0, 66])
    assert got[0] == 0 and got[66] == 2
    assert isinstance(got[-1], maskdec.TimestampRangeError) and str(path) in str(got[-1])
    got = read_indices(path, [-1, 4], unit="index")
    assert got[4] == 4
    assert isinstance(got[-1], maskdec.TimestampRangeError) and str(path) in str(got[-1])


def test_docs_example_1_timestamps_are_out_of_range(tmp_path):
    """the ClearML docs' Example 1: the docs' Example 1 with its real timestamps, media made local."""
    source = tmp_path / "front.mp4"
    seg = tmp_path / "front_seg.mp4"
    inst = tmp_path / "front_instance_seg.mp4"
    write_video(source, (scene_image(i, scene_classes(i, H, W)) for i in range(10)), fps=30)
    write_video(seg, (colour_mask(scene_classes(i, H, W)) for i in range(10)), fps=30)
    write_video(inst, (colour_mask(scene_classes(i, H, W)) for i in range(10)), fps=30)
    classes = {"car": [10, 10, 10], "person": [20, 20, 20], "road": [30, 30, 30], "street": [40, 40, 40],
               "building": [50, 50, 50]}
    frame = {
        "timestamp": 1234567889,
        "context_id": "car_1",
        "meta": {"velocity": "60"},
        "sources": [{
            "id": "front", "content_type": "video/mp4", "width": W, "height": H, "uri": str(source),
            "timestamp": 1234567889, "meta": {"angle": 45, "fov": 129},
            "masks": [
                {"id": "seg", "content_type": "video/mp4", "uri": str(seg), "timestamp": 123456789},
                {"id": "seg_instance", "content_type": "video/mp4", "uri": str(inst), "timestamp": 123456789},
            ],
        }],
        "rois": [{"sources": ["front"], "label": ["seg"], "mask": {"id": name, "value": value}}
                 for name, value in classes.items()],
    }
    it = maskdec.iter_samples([frame])
    assert set(it.labels.ids) == set(classes)  # rule 2: the mask ids are the classes
    with pytest.raises(maskdec.TimestampRangeError) as info:
        next(it)
    message = str(info.value)
    assert str(source) in message and "1234567889" in message
    assert any(abs(x - 300) <= 1 for x in numbers(message)), message
    with pytest.raises(maskdec.TimestampRangeError) as info:
        next(iter(maskdec.iter_samples([frame], images=False)))
    assert str(seg) in str(info.value) and "123456789" in str(info.value)


def test_timestamp_unit_index(tmp_path):
    n = 12
    path = index_clip(tmp_path / "clip", n, kind="mp4-ffv1")
    order = [5, 0, 11, 3, 3, 7]
    frames = [frame_dict(path, path, index_rois(n), timestamp=i) for i in order]
    it = maskdec.iter_samples(frames, images=False, timestamp_unit="index")
    assert [index_of(s.label_map, it.labels) for s in it] == order
    got = read_indices(path, [0, 11, 12], unit="index")
    assert got[0] == 0 and got[11] == 11
    assert isinstance(got[12], maskdec.TimestampRangeError) and str(path) in str(got[12])
    with pytest.raises(maskdec.TimestampRangeError, match=re.escape(str(path))):
        list(maskdec.iter_samples([frame_dict(path, path, index_rois(n), timestamp=12)], images=False,
                                  timestamp_unit="index"))
    with pytest.raises(maskdec.MaskdecError):
        maskdec.iter_samples(frames, timestamp_unit="frames")


def test_still_images_ignore_timestamps(tmp_path):
    cv2.imwrite(str(tmp_path / "m.png"), np.full((H, W, 3), index_colour(3)[::-1], np.uint8))
    frames = [frame_dict(tmp_path / "m.png", tmp_path / "m.png", index_rois(5), timestamp=ts)
              for ts in (0, 123456789)]
    it = maskdec.iter_samples(frames)
    assert [index_of(s.label_map, it.labels) for s in it] == [3, 3]


# ----------------------------------------------------------------- broken files

_BROKEN_SCRIPT = textwrap.dedent("""
    import json, sys
    import maskdec
    from maskdec.media.reader import MediaReader
    cases = json.loads(sys.argv[1])
    out = {}
    for name, (uri, ts) in cases.items():
        frame = {"sources": [{"id": "cam", "uri": uri, "masks": [{"id": "m", "uri": uri}], "timestamp": ts}],
                 "rois": [{"label": ["a"], "mask": {"id": "m", "value": [1, 2, 3]}}]}
        result = {}
        for how in ("iter_samples", "reader"):
            try:
                if how == "iter_samples":
                    list(maskdec.iter_samples([frame]))
                else:
                    with MediaReader(uri) as reader:
                        for _, f in reader.frames_at([ts]):
                            if isinstance(f, Exception):
                                raise f
                result[how] = ["no error", "", []]
            except Exception as exc:
                result[how] = [type(exc).__name__, str(exc), [c.__name__ for c in type(exc).__mro__]]
        out[name] = result
    print(json.dumps(out))
""")


@pytest.fixture(scope="module")
def broken_results(tmp_path_factory):
    root = tmp_path_factory.mktemp("broken")
    good_mp4 = root / "good.mp4"
    write_video(good_mp4, (colour_mask(scene_classes(i, H, W)) for i in range(30)), fps=30)
    good_mkv = index_clip(root / "good", 30)
    cases = {}
    data = good_mp4.read_bytes()
    (root / "truncated.mp4").write_bytes(data[: len(data) // 2])
    cases["truncated-mp4"] = (str(root / "truncated.mp4"), 0)
    data = good_mkv.read_bytes()
    (root / "truncated.mkv").write_bytes(data[: len(data) // 2])
    cases["truncated-mkv"] = (str(root / "truncated.mkv"), 900)  # a frame in the lost half
    png = root / "good.png"
    cv2.imwrite(str(png), (np.random.default_rng(0).random((H, W, 3)) * 255).astype(np.uint8))
    data = png.read_bytes()
    (root / "truncated.png").write_bytes(data[: len(data) // 2])
    cases["truncated-png"] = (str(root / "truncated.png"), 0)
    (root / "empty.mp4").write_bytes(b"")
    cases["zero-byte"] = (str(root / "empty.mp4"), 0)
    (root / "notes.mp4").write_text("this is not a video\n" * 20)
    cases["text-as-mp4"] = (str(root / "notes.mp4"), 0)
    (root / "notes.png").write_text("this is not an image either\n" * 20)
    cases["text-as-png"] = (str(root / "notes.png"), 0)
    cases["missing"] = (str(root / "nowhere" / "missing.mp4"), 0)
    proc = subprocess.run([sys.executable, "-c", _BROKEN_SCRIPT, json.dumps(cases)], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, f"interpreter died ({proc.returncode}): {proc.stderr[-2000:]}"
    return cases, json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("case", ["truncated-mp4", "truncated-mkv", "truncated-png", "zero-byte", "text-as-mp4",
                                  "text-as-png", "missing"])
@pytest.mark.parametrize("how", ["iter_samples", "reader"])
def test_broken_media_raise_maskdec_errors_naming_the_file(broken_results, case, how):
    cases, results = broken_results
    uri = cases[case][0]
    name, message, mro = results[case][how]
    assert "MaskdecError" in mro, (name, message)
    assert uri in message, message
    if case == "missing":
        assert name == "MediaNotFoundError" and "FileNotFoundError" in mro
    elif case != "truncated-mkv":
        assert name == "MediaDecodeError", (name, message)


def test_truncated_mkv_keeps_its_intact_frames(tmp_path):
    path = index_clip(tmp_path / "good", 30)
    data = path.read_bytes()
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(data[: len(data) // 2])
    got = read_indices(cut, [0, 33, 900])
    assert got[0] == 0 and got[33] == 1
    assert isinstance(got[900], maskdec.MaskdecError) and str(cut) in str(got[900])


def test_image_rgb_and_mask_pixels_shapes(tmp_path):
    """Odd widths come back row-padded from PyAV; the helpers must still give (H, W[, 3])."""
    path = tmp_path / "odd.mkv"
    frames = [colour_mask(scene_classes(i, 37, 51)) for i in range(3)]
    write_video(path, frames, fps=30, codec="ffv1", pix_fmt="bgr0")
    with MediaReader(str(path)) as reader:
        for (ts, frame), want in zip(reader.frames_at([0, 33, 67]), frames):
            np.testing.assert_array_equal(image_rgb(frame), want)
            np.testing.assert_array_equal(mask_pixels(frame), want)


# ----------------------------------------------------------------- FFV1 slice checksums

def ffv1_slice_check(path) -> "SliceCheck | None":
    from maskdec.media.ffv1 import SliceCheck
    with av.open(str(path)) as container:
        return SliceCheck.from_extradata(container.streams.video[0].codec_context.extradata)


def test_crc32_ieee_is_ffmpegs_av_crc():
    from maskdec.media.ffv1 import crc32_ieee
    assert crc32_ieee(b"123456789", 0xFFFFFFFF) == 0x0376E6E7  # CRC-32/MPEG-2's check value
    data = bytes(range(200))
    assert crc32_ieee(data + crc32_ieee(data).to_bytes(4, "big")) == 0  # what FFV1 slices check to


@pytest.mark.parametrize("pix_fmt", ["bgr0", "gray", "gray16le", "yuv420p"])
def test_ffv1_written_by_maskdec_carries_slice_crcs(tmp_path, pix_fmt):
    path = tmp_path / "mask.mkv"
    if pix_fmt.startswith("gray"):
        frames = [np.full((H, W), 40 * i, np.uint16 if "16" in pix_fmt else np.uint8) for i in range(3)]
    else:
        frames = [colour_mask(scene_classes(i, H, W)) for i in range(3)]
    write_video(path, frames, fps=30, codec="ffv1", pix_fmt=pix_fmt)
    check = ffv1_slice_check(path)
    assert check is not None and check.version >= 3 and check.ec >= 1
    with av.open(str(path)) as container:
        assert [check.damage(bytes(p)) for p in container.demux(video=0) if p.size] == [None] * 3
    # and `maskdec encode`'s FFV1 too
    np.save(tmp_path / "maps.npy", np.stack([scene_classes(i, H, W) for i in range(3)]).astype(np.uint8))
    from maskdec.encode import encode_masks
    result = encode_masks(tmp_path / "maps.npy", tmp_path / "enc", labels={name: i for i, name in enumerate(CLASS_NAMES)})
    assert ffv1_slice_check(result.mask_path) is not None
    # FFV1 without slice CRCs cannot be verified (README, Limits)
    write_video(tmp_path / "no_crc.mkv", frames, fps=30, codec="ffv1", pix_fmt=pix_fmt, options={"slicecrc": "0"})
    assert ffv1_slice_check(tmp_path / "no_crc.mkv") is None


def test_a_flipped_bit_in_any_ffv1_slice_raises_naming_file_and_frame(tmp_path):
    n, k = 12, 5  # damage packet k of a clip whose frames all differ
    path = tmp_path / "mask.mkv"
    frames = [colour_mask(scene_classes(i, H, W)) for i in range(n)]
    write_video(path, frames, fps=30, codec="ffv1", pix_fmt="bgr0", options={"g": "1"})  # every frame a keyframe
    data = path.read_bytes()
    with av.open(str(path)) as container:
        packets = [(data.index(bytes(p), p.pos), p.size, p.pts) for p in container.demux(video=0) if p.size]
    pos, size, pts = packets[k]
    ends, end = [], pos + size  # the packet's slices, found from its end as the decoder does
    while end > pos:
        ends.append(end)
        end -= int.from_bytes(data[end - 8:end - 5], "big") + 8
    assert end == pos and len(ends) > 1
    stamps = [writer_ts(i, 30) for i in range(n)]
    for s, slice_end in enumerate(ends):
        bad = bytearray(data)
        bad[slice_end - 20] ^= 0x10  # one bit, inside slice s (counted from the end)
        damaged = tmp_path / f"bit_in_slice{s}.mkv"
        damaged.write_bytes(bytes(bad))
        with MediaReader(str(damaged)) as reader:
            for i, ts in enumerate(stamps):
                if i == k:
                    with pytest.raises(maskdec.MediaDecodeError) as info:
                        next(reader.frames_at([ts]))
                    message = str(info.value)
                    assert str(damaged) in message and f"frame pts {pts}" in message and "CRC" in message, message
                else:  # keyframes everywhere: every other frame decodes, exact
                    (_, frame), = reader.frames_at([ts])
                    np.testing.assert_array_equal(mask_pixels(frame), frames[i], err_msg=f"slice {s}, frame {i}")


@pytest.mark.parametrize("name", ["clip.ts", "clip.mp4", "clip.mkv"])
def test_b_frame_clips_give_every_frame_in_any_order_in_every_container(tmp_path, name):
    """MPEG-TS seeks land on the first keyframe after the packet whose decoding time is the target,
    past the keyframe asked for when B-frames delay presentation: frames still come out exact,
    from the first one, in order, in random batches and one by one."""
    import random

    rng = np.random.default_rng(4)
    pictures = [rng.integers(0, 256, (H, W, 3), dtype=np.uint8) for _ in range(60)]
    write_video(tmp_path / name, pictures, fps=30, codec="libx264", pix_fmt="yuv420p",
                options={"bf": "3", "g": "16", "crf": "20"})
    with av.open(str(tmp_path / name)) as container:
        reference = {f.pts: f.to_ndarray(format="rgb24") for f in container.decode(video=0)}
    stamps = [round(k * 1000 / 30) for k in range(60)]
    pick = random.Random(9)
    with MediaReader(str(tmp_path / name)) as first_to_last:
        requests = [stamps] + [sorted(pick.sample(stamps, 12)) for _ in range(4)] + [[t] for t in pick.sample(stamps, 15)]
        for wanted in requests:
            got = list(first_to_last.frames_at(wanted))
            assert [t for t, _ in got] == wanted
            for t, frame in got:
                assert frame.pts == first_to_last.index.pts[first_to_last.index.locate(t)]
                assert np.array_equal(frame.to_ndarray(format="rgb24"), reference[frame.pts]), (name, t)
