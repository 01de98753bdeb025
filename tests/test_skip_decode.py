"""Skipping frames nobody asked for that no frame refers to (media/skip.py): the frames a
reader hands out with skipping are pixel-equal to a plain sequential decode of the whole
file, for random target sets, requests in any order, frame threads or one thread, B-frames
on and off, variable frame rate, H.264 and HEVC; the decoder's counters show fewer frames
decoded; streams where skipping is not safe are decoded in full."""
from __future__ import annotations

import random
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

import maskdec
from maskdec.errors import OptionError
from maskdec.media.index import clear_memory_cache
from maskdec.media.reader import MediaReader
from maskdec.media.skip import SkipPlan
from maskdec.media.writer import write_video

from conftest import frame_dict, palette_rois

W, H = 160, 96
N = 90


def textured(n: int, seed: int = 0) -> list[np.ndarray]:
    """A noise texture panning by a few pixels a frame: every P- and B-frame predicts from others."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (H + 96, W + 192, 3), dtype=np.uint8)
    return [np.ascontiguousarray(base[i % 96:i % 96 + H, (2 * i) % 192:(2 * i) % 192 + W]) for i in range(n)]


def vfr_pts(n: int) -> list[int]:
    rng = random.Random(3)
    pts = [0]
    for _ in range(n - 1):
        pts.append(pts[-1] + rng.choice([8, 17, 33, 34, 50, 100]))
    return pts


def x264(keyint: int, bf: int, extra: str = "") -> dict:
    return {"x264-params": f"keyint={keyint}:min-keyint={keyint}:scenecut=0{extra}", "bf": str(bf), "crf": "20"}


#: name -> (file name, write_video keyword arguments, frames that must be skippable)
SPECS = {
    "h264-bframes-pyramid-mp4": ("c.mp4", dict(options=x264(30, 3, ":b-pyramid=normal")), True),
    "h264-bframes-mkv": ("c.mkv", dict(options=x264(25, 2, ":b-pyramid=none")), True),
    "h264-no-bframes-mp4": ("c.mp4", dict(options=x264(30, 0)), False),
    "h264-vfr-bframes-mp4": ("c.mp4", dict(options=x264(20, 3), pts=vfr_pts(N), time_base=Fraction(1, 1000)), True),
    "hevc-bframes-mp4": ("c.mp4", dict(codec="libx265", options={"x265-params": "keyint=30:min-keyint=30:"
                                                                 "scenecut=0:log-level=none"}), True),
}


def _encoder_available(name: str) -> bool:
    spec = SPECS[name][1]
    return spec.get("codec", "libx264") in av.codecs_available


@pytest.fixture(scope="module", params=[n for n in SPECS])
def clip(request, tmp_path_factory):
    """(path, {pts: the frame's planes as plain PyAV decodes the whole file}, skippable)."""
    name = request.param
    if not _encoder_available(name):
        pytest.skip(f"this FFmpeg build has no {SPECS[name][1].get('codec')} encoder")
    file_name, kwargs, skippable = SPECS[name]
    path = tmp_path_factory.mktemp(name) / file_name
    write_video(path, textured(N), fps=30, **kwargs)
    reference = {}
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            reference[frame.pts] = frame.to_ndarray()
    assert len(reference) == N
    return path, reference, skippable


def requests(seed: int, n: int) -> list[list[int]]:
    """Random sets of positions (1 to 12 each), in random order: some behind the decoder, some ahead."""
    rng = random.Random(seed)
    return [rng.sample(range(n), rng.randint(1, 12)) for _ in range(8)]


def run(path: Path, skip: bool, threads, batches: list[list[int]], reference: dict) -> tuple[int, int, int]:
    """Serve `batches` through one reader; every frame must equal the reference. -> (decoded, skipped, seeks)"""
    clear_memory_cache()  # each run builds the index, so both start from the same place
    with MediaReader(str(path), threads=threads, skip_frames=skip) as reader:
        index = reader.index
        for batch in batches:
            got = list(reader.decoder.frames(batch))
            assert [p for p, _ in got] == sorted(set(batch))
            for p, frame in got:
                assert frame.pts == index.pts[p]
                assert np.array_equal(frame.to_ndarray(), reference[index.pts[p]]), f"{path.name}: frame {p} differs"
        d = reader.decoder
        assert reader.skips == skip
        return d.decoded, d.skipped, d.seeks


@pytest.mark.parametrize("threads", [1, None], ids=["one-thread", "frame-threads"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_frames_with_skipping_equal_a_plain_sequential_decode(clip, threads, seed):
    path, reference, skippable = clip
    batches = requests(seed, N)
    full = run(path, False, threads, batches, reference)
    skipped = run(path, True, threads, batches, reference)
    assert full[1] == 0
    assert skipped[0] + skipped[1] == full[0]  # the same frames passed, each either decoded or skipped
    assert skipped[2] == full[2]  # no extra seeks
    if skippable:
        assert skipped[0] < 0.85 * full[0], (skipped, full)  # the counter shows fewer frames decoded
    else:  # every frame is a reference frame: nothing to skip
        assert skipped[0] == full[0]


def test_a_request_left_unfinished_does_not_cost_the_next_one_its_frames(clip):
    """Frames sent to be skipped but not yet presented when a request is dropped may be wanted
    by the next request: the decoder seeks for them instead of waiting for frames that never come."""
    path, reference, skippable = clip
    for threads in (1, None):
        with MediaReader(str(path), threads=threads, skip_frames=True) as reader:
            index = reader.index
            frames = reader.decoder.frames([2, 28])
            next(frames)
            frames.close()  # dropped after frame 2 (as FrameServer drops a pass it replans)
            for p, frame in reader.decoder.frames(range(3, 28)):
                assert np.array_equal(frame.to_ndarray(), reference[index.pts[p]]), f"frame {p} differs"
            assert reader.decoder.skip is not None or not reader.skips  # no fallback was needed


def test_a_skip_plan_that_loses_a_wanted_frame_falls_back_to_decoding_every_frame(clip, monkeypatch):
    """The safety net: should skipping ever lose a wanted frame, the decoder retries without it."""
    path, reference, skippable = clip
    if not skippable:
        pytest.skip("nothing to skip in this clip")
    monkeypatch.setattr(SkipPlan, "discardable", lambda self, pts: pts is not None)  # skips wanted frames too
    with MediaReader(str(path), skip_frames=True) as reader:
        index = reader.index
        got = list(reader.decoder.frames(range(0, 30)))
        assert [p for p, _ in got] == list(range(30))
        for p, frame in got:
            assert np.array_equal(frame.to_ndarray(), reference[index.pts[p]])
        assert reader.decoder.skip is None  # it fell back


def test_streams_where_skipping_is_unsafe_decode_every_frame(tmp_path):
    frames = textured(40)
    cases = {"c.ts": dict(options=x264(20, 3)),  # MPEG-TS: packets need not be whole frames with their times
             "c.mkv": dict(codec="ffv1", pix_fmt="bgr0")}  # intra-only lossless: no frame is skippable anyway
    if "libx265" in av.codecs_available:  # temporal sub-layers: FFmpeg would skip frames higher layers refer to
        cases["layers.mp4"] = dict(codec="libx265",
                                   options={"x265-params": "keyint=20:temporal-layers=3:log-level=none"})
    for name, kwargs in cases.items():
        write_video(tmp_path / name, frames, fps=30, **kwargs)
        with MediaReader(str(tmp_path / name), skip_frames=True) as reader:
            assert not reader.skips, name
            list(reader.decoder.frames([5, 17, 33]))
            assert reader.decoder.skipped == 0, name


def test_maskdec_skip_frames_turns_it_off_and_a_bad_value_is_named(clip, monkeypatch):
    path, _, _ = clip
    monkeypatch.setenv("MASKDEC_SKIP_FRAMES", "0")
    with MediaReader(str(path)) as reader:
        assert not reader.skips
    monkeypatch.setenv("MASKDEC_SKIP_FRAMES", "1")
    with MediaReader(str(path)) as reader:
        assert reader.skips == (path.suffix in (".mp4", ".mkv"))
    monkeypatch.setenv("MASKDEC_SKIP_FRAMES", "yes")
    with pytest.raises(OptionError, match="MASKDEC_SKIP_FRAMES"):
        MediaReader(str(path))


def test_shuffled_dataset_batches_equal_iter_samples_and_decode_fewer_frames(tmp_path, monkeypatch):
    """MaskDataset batches in random order (what torch's RandomSampler asks for): samples equal
    iter_samples', and the readers decode fewer frames than without skipping."""
    from maskdec.example import colour_mask, scene_classes, scene_image
    frames = []
    for c in range(2):
        classes = [scene_classes(i + 13 * c, H, W) for i in range(N)]
        source, mask = tmp_path / f"source{c}.mp4", tmp_path / f"mask{c}.mp4"
        write_video(source, [scene_image(i, k) for i, k in enumerate(classes)], options=x264(45, 3))
        write_video(mask, [colour_mask(k) for k in classes], options={**x264(45, 3), "crf": "18"})
        frames += [frame_dict(source, mask, palette_rois(), timestamp=int(i * 1000 / 30)) for i in range(N)]
    reference = list(maskdec.iter_samples(frames))
    order = np.random.default_rng(4).permutation(len(frames)).tolist()
    totals = {}
    for skip in ("0", "1"):
        monkeypatch.setenv("MASKDEC_SKIP_FRAMES", skip)
        ds = maskdec.MaskDataset(frames)
        for start in range(0, len(order), 8):
            batch = order[start:start + 8]
            for i, sample in zip(batch, ds.__getitems__(batch)):
                assert np.array_equal(sample.image, reference[i].image), f"sample {i}: image differs"
                assert np.array_equal(sample.label_map, reference[i].label_map), f"sample {i}: labels differ"
        totals[skip] = sum(ds.readers.decoded().values())
        ds.close()
    assert totals["1"] < 0.85 * totals["0"], totals
