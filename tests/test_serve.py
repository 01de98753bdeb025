"""Streaming within limits: interleaved files and shuffled timestamps (maskdec.serve),
and the options every sample source checks (maskdec.Options)."""
from __future__ import annotations

import random
import threading

import numpy as np
import pytest

import maskdec
from maskdec import MaskdecError, OptionError, iter_samples
from maskdec.export import export
from maskdec.media.writer import write_video

from conftest import frame_dict, index_of, index_rois, solid_frames

N_FILES = 12
N_FRAMES = 6


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """N_FILES small lossless clips; frame i of every clip is index_colour(i)."""
    root = tmp_path_factory.mktemp("clips")
    paths = []
    for k in range(N_FILES):
        path = root / f"clip{k:02d}.mkv"
        write_video(path, solid_frames(N_FRAMES, 16, 24), codec="ffv1", fps=10)
        paths.append(path)
    return paths


def _round_robin(clips) -> list[dict]:
    """Frame t of every clip, then frame t + 1 of every clip ...: the order of a merged frames file."""
    return [frame_dict(path, path, index_rois(N_FRAMES), timestamp=100 * t)
            for t in range(N_FRAMES) for path in clips]


def _served(frames, **options):
    it = iter_samples(frames, images=False, **options)
    shown = [index_of(s.label_map, it.labels) for s in it]
    return shown, it.frames


def test_interleaved_files_stay_within_the_open_file_limit(clips):
    frames = _round_robin(clips)
    shown, server = _served(frames, max_open_readers=3)
    assert shown == [t for t in range(N_FRAMES) for _ in clips]  # right frames, input order
    assert server.peak_open <= 3
    assert server.reopened > 0  # the limit really closed files that were needed again


def test_interleaved_files_without_a_limit_open_them_all(clips):
    _, server = _served(_round_robin(clips), max_open_readers=1000)
    assert server.peak_open == N_FILES


def test_threads_stay_bounded_with_many_interleaved_files(clips):
    peak = []
    it = iter_samples(_round_robin(clips), images=False, max_open_readers=2, threads=1)
    for _ in it:
        peak.append(threading.active_count())
    baseline = threading.active_count()
    assert max(peak) <= baseline + 2 + 2  # a decode-ahead thread per open file, kernel pool aside


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory):
    path = tmp_path_factory.mktemp("long") / "long.mkv"
    write_video(path, solid_frames(40, 64, 96), codec="ffv1", fps=10)
    return path


FRAME_BYTES = 64 * 96 * 3 // 2  # a yuv420p frame of long_clip


@pytest.mark.parametrize("seed", [7, 8, 9])
@pytest.mark.parametrize("budget", [0, FRAME_BYTES, 3 * FRAME_BYTES, 10 * FRAME_BYTES, 1 << 30])
def test_shuffled_timestamps_keep_input_order_within_the_buffer_budget(long_clip, budget, seed):
    order = list(range(40)) * 2
    random.Random(seed).shuffle(order)
    frames = [frame_dict(long_clip, long_clip, index_rois(40), timestamp=100 * i) for i in order]
    shown, server = _served(frames, max_buffered_bytes=budget)
    assert shown == order
    assert server.peak_buffered_bytes <= budget
    if budget >= 1 << 30:
        assert server.peak_buffered_bytes > 0  # with room, frames decoded ahead wait for their turn


def test_mask_frames_wait_as_runs_so_a_shuffled_clip_decodes_in_one_pass(long_clip):
    order = list(range(40))
    random.Random(3).shuffle(order)
    frames = [frame_dict(long_clip, long_clip, index_rois(40), timestamp=100 * i) for i in order]
    shown, server = _served(frames, max_buffered_bytes=5 * FRAME_BYTES)
    assert shown == order
    assert server.passes == 1  # 39 frames waited, as runs, in the room of five decoded frames
    assert server.peak_buffered_bytes <= 5 * FRAME_BYTES
    it = iter_samples(frames, images=False, stats=True, max_buffered_bytes=5 * FRAME_BYTES)
    assert [index_of(s.label_map, it.labels) for s in it] == order
    assert it.frames.passes > 5  # with stats, decoded frames wait as they are: five fit, the rest are decoded again


def test_index_runs_round_trip():
    from maskdec.runs import IndexRuns
    rng = np.random.default_rng(5)
    for dtype, remap_dtype in ((np.uint8, np.uint8), (np.uint8, np.uint16), (np.uint16, np.uint8)):
        index = rng.integers(0, 4, (9, 13)).astype(dtype)
        index[3] = 2  # a row of one run
        index = np.repeat(index, 3, axis=1)  # runs longer than one
        runs = IndexRuns.encode(index)
        remap = rng.integers(0, 200, 65536 if dtype == np.uint16 else 256).astype(remap_dtype)
        np.testing.assert_array_equal(runs.decode(remap), remap[index])
        assert runs.nbytes < index.nbytes * 8 and runs.shape == index.shape
    empty = IndexRuns.encode(np.zeros((0, 5), np.uint8))
    assert empty.decode(np.zeros(1, np.uint8)).shape == (0, 5)


def test_index_runs_are_the_runs_numpy_finds():
    """Runs found 32 and 8 bytes at a time: every width around those sizes, changes anywhere in a row."""
    from maskdec.runs import IndexRuns
    rng = np.random.default_rng(11)
    for dtype in (np.uint8, np.uint16):
        for w in (1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 32, 33, 41, 70, 129):
            index = np.zeros((6, w), dtype)
            for i in range(1, 6):  # row 0 one run; others change at random columns (last one included)
                for c in sorted(set(rng.integers(0, w, 3).tolist()) | ({w - 1} if i == 5 else set())):
                    index[i, c:] = rng.integers(0, 300 if dtype == np.uint16 else 200)
            runs = IndexRuns.encode(index)
            starts = [np.flatnonzero(np.r_[True, row[1:] != row[:-1]]) for row in index]
            assert runs.row_start.tolist() == np.cumsum([0] + [len(x) for x in starts]).tolist()
            assert runs.values.tolist() == [int(row[c]) for row, x in zip(index, starts) for c in x]
            assert runs.ends.tolist() == [e for x in starts for e in (x[1:].tolist() + [w])]
            identity = np.arange(65536 if dtype == np.uint16 else 256).astype(dtype)
            np.testing.assert_array_equal(runs.decode(identity), index)


def test_frames_shared_by_two_samples_are_decoded_once_when_they_fit(long_clip):
    frames = [frame_dict(long_clip, long_clip, index_rois(40), timestamp=100 * i) for i in (5, 9, 5, 9)]
    shown, server = _served(frames)
    assert shown == [5, 9, 5, 9]
    assert server.reopened == 0


# ------------------------------------------------------------------ options

@pytest.mark.parametrize("options, word", [
    ({"tolerance": "10"}, "tolerance"),
    ({"tolerance": -1}, "tolerance"),
    ({"labels": ["a", "b"]}, "labels"),
    ({"labels": {"a": "1"}}, "labels"),
    ({"ignore_index": 70000}, "ignore_index"),
    ({"timestamp_unit": "s"}, "timestamp_unit"),
    ({"threads": 0}, "threads"),
    ({"images": "yes"}, "images"),
    ({"max_open_readers": 0}, "max_open_readers"),
    ({"max_buffered_bytes": -1}, "max_buffered_bytes"),
    ({"tolerence": 3}, "did you mean 'tolerance'"),
])
def test_bad_options_name_the_option(clips, options, word):
    frames = [frame_dict(clips[0], clips[0], index_rois(1))]
    with pytest.raises(OptionError, match=word):
        iter_samples(frames, **options)
    with pytest.raises(MaskdecError, match=word):
        maskdec.MaskDataset(frames, **options)
    with pytest.raises(MaskdecError, match=word):
        list(maskdec.iter_roi_samples(frames, **options))


def test_numpy_numbers_are_accepted_as_options(clips):
    frames = [frame_dict(clips[0], clips[0], index_rois(1))]
    it = iter_samples(frames, images=False, tolerance=np.float32(2.0), ignore_index=np.int64(254))
    (sample,) = list(it)
    assert it.labels.ignore_index == 254 and sample.label_map.dtype == np.uint8
    assert index_of(sample.label_map, it.labels) == 0


def test_export_takes_the_same_options(clips, tmp_path):
    frames = [frame_dict(clips[0], clips[0], index_rois(1))]
    with pytest.raises(OptionError, match="did you mean 'tolerance'"):
        export(frames, tmp_path / "a", tolerence=3)
    with pytest.raises(OptionError, match="stats"):
        export(frames, tmp_path / "b", stats=False)
    summary = export(frames, tmp_path / "c", images=False, ignore_index=254, workers=1)
    assert summary.failures == [] and summary.samples == 1
    assert not (tmp_path / "c" / "images").exists() or not any((tmp_path / "c" / "images").iterdir())


@pytest.mark.parametrize("value", ["zero", "-2", "0", "1e9", "99999"])
def test_a_bad_kernel_threads_setting_is_an_option_error(clips, monkeypatch, value):
    monkeypatch.setenv("MASKDEC_KERNEL_THREADS", value)
    frames = [frame_dict(clips[0], clips[0], index_rois(1))]
    with pytest.raises(OptionError, match="MASKDEC_KERNEL_THREADS"):
        maskdec.MaskDataset(frames, images=False)[0]


def test_a_cache_dir_that_cannot_be_a_folder_fails_at_construction(clips, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    frames = [frame_dict(clips[0], clips[0], index_rois(1))]
    with pytest.raises(OptionError, match="cache_dir"):
        maskdec.MaskDataset(frames, cache_dir=blocker)
    ds = maskdec.MaskDataset(frames, images=False, cache_dir=tmp_path / "new" / "cache")  # made when missing
    assert (tmp_path / "new" / "cache").is_dir() and index_of(ds[0].label_map, ds.labels) == 0
