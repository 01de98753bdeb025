"""Frame-accurate time (docs/format.md, "Timestamps") in any request order: clips at 24, 25, 29.97, 30 and 60 fps,
variable frame rate, B-frames, a late start and an edit list; every frame carries its number as a
grid of black and white blocks. Also: range errors, the bounded reader cache, the planner's work,
the frame index and its caches, pickling to worker processes, decoder threads."""
from __future__ import annotations

import gc
import math
import multiprocessing
import weakref
import os
import pickle
import random
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

import maskdec
from maskdec.media import index as index_module
from maskdec.media.index import cached_index, clear_memory_cache
from maskdec.media.planner import Step, plan_file
from maskdec.media.reader import MediaReader, resolve_threads
from maskdec.media.writer import write_video

from conftest import frame_dict

SIZE = 64
ROIS = [{"label": ["on"], "mask": {"id": "m", "value": [255, 255, 255]}},
        {"label": ["off"], "mask": {"id": "m", "value": [0, 0, 0]}}]


# ----------------------------------------------------------------- the frame-number code

def code_frame(i: int, size: int = SIZE) -> np.ndarray:
    """Frame i as a 4x4 grid of black/white blocks: bits 0-7 are i, bits 8-15 its complement."""
    bits = (i & 0xFF) | ((~i & 0xFF) << 8)
    grid = np.array([(bits >> k) & 1 for k in range(16)], np.uint8).reshape(4, 4) * 255
    block = size // 4
    return np.repeat(np.repeat(grid, block, axis=0), block, axis=1)[..., None].repeat(3, axis=2)


def _code(on: np.ndarray) -> int:
    bits = sum(1 << k for k, b in enumerate(on.ravel()) if b)
    low, high = bits & 0xFF, bits >> 8
    assert high == (~low & 0xFF), f"unreadable frame code {bits:#06x}"
    return low


def _blocks(plane: np.ndarray) -> np.ndarray:
    h, w = plane.shape
    return plane.reshape(4, h // 4, 4, w // 4).mean(axis=(1, 3))


def code_of_image(image: np.ndarray) -> int:
    return _code(_blocks(image.astype(np.float64).mean(axis=2)) > 128)


def code_of_labels(label_map: np.ndarray, labels) -> int:
    return _code(_blocks((label_map == labels.ids["on"]).astype(np.float64)) > 0.5)


# ----------------------------------------------------------------- clips

def x264(keyint: int, bf: int, extra: str = "") -> dict:
    return {"x264-params": f"keyint={keyint}:min-keyint={keyint}:scenecut=0{extra}", "bf": str(bf), "crf": "23"}


def vfr_pts(n: int, start: int = 0) -> list[int]:
    rng = random.Random(7)
    pts = [start]
    for _ in range(n - 1):
        pts.append(pts[-1] + rng.choice([5, 8, 13, 21, 33, 40, 67, 100, 160]))
    return pts


#: name -> (file name, frames, write_video keyword arguments)
SPECS = {
    "24fps-mp4": ("c.mp4", 48, dict(fps=24, options=x264(12, 2))),
    "25fps-mkv": ("c.mkv", 50, dict(fps=25, options=x264(10, 0))),
    "29.97fps-mp4": ("c.mp4", 60, dict(fps=Fraction(30000, 1001), options=x264(15, 0))),
    "30fps-mp4-ffv1": ("c.mp4", 45, dict(fps=30, codec="ffv1", pix_fmt="bgr0")),
    "60fps-mkv": ("c.mkv", 120, dict(fps=60, options=x264(30, 3))),
    "vfr-mkv": ("c.mkv", 40, dict(fps=30, options=x264(8, 0), pts=vfr_pts(40), time_base=Fraction(1, 1000))),
    "vfr-mp4-bframes": ("c.mp4", 40, dict(fps=30, options=x264(8, 2), pts=vfr_pts(40),
                                          time_base=Fraction(1, 1000))),
    "bframes-mp4": ("c.mp4", 60, dict(fps=30, options=x264(20, 3, ":b-adapt=0:b-pyramid=normal"))),
    "start-1000ms-mp4": ("c.mp4", 30, dict(fps=25, options=x264(10, 0), pts=[1000 + 40 * i for i in range(30)],
                                           time_base=Fraction(1, 1000))),
    "start-1234ms-mkv-bframes": ("c.mkv", 40, dict(fps=30, options=x264(10, 2),
                                                   pts=[111060 + 3000 * i for i in range(40)],
                                                   time_base=Fraction(1, 90000))),
    "editlist-mp4": ("c.mp4", 40, dict(fps=30, options=x264(10, 2, ":b-adapt=0"))),
}
EDIT_SHIFT = 3  # the edit list of "editlist-mp4" discards its first 3 frames


@dataclass
class Clip:
    path: Path
    codes: list[int]  # the code of each presented frame, as plain PyAV decodes the file
    ms: list[Fraction]  # presentation times relative to the first presented frame
    end_ms: Fraction  # the last frame's time plus its duration
    expected_first: int

    @property
    def stamps(self) -> list[int]:
        """What dataset writers store: the floor of each frame's time in ms."""
        return [math.floor(t) for t in self.ms]


def shift_remux(src: Path, dst: Path, frames: int) -> None:
    """Copy an MP4, moving every timestamp `frames` frames earlier: the muxer writes an edit
    list that starts at the old frame `frames`, and readers must discard the frames before it."""
    with av.open(str(src)) as ic, av.open(str(dst), "w") as oc:
        stream = ic.streams.video[0]
        out = oc.add_stream_from_template(stream)
        for packet in ic.demux(stream):
            if packet.dts is None and packet.pts is None:
                continue
            shift = frames * packet.duration
            packet.pts -= shift
            packet.dts -= shift
            packet.stream = out
            oc.mux(packet)


def oracle(path: Path) -> tuple[list[int], list[Fraction], Fraction]:
    """Codes and times of every frame, by decoding the whole file forward with plain PyAV."""
    codes, pts, durations = [], [], []
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            codes.append(code_of_image(frame.to_ndarray(format="rgb24")))
            pts.append(frame.pts * frame.time_base)
            durations.append(frame.duration * frame.time_base if frame.duration else None)
    ms = [(p - pts[0]) * 1000 for p in pts]
    last = durations[-1] * 1000 if durations[-1] is not None else ms[-1] - ms[-2]
    return codes, ms, ms[-1] + last


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, Clip]:
    root = tmp_path_factory.mktemp("clips")
    out = {}
    for name, (file_name, n, kwargs) in SPECS.items():
        path = root / name / file_name
        path.parent.mkdir()
        write_video(path, (code_frame(i) for i in range(n)), **kwargs)
        first = 0
        if name == "editlist-mp4":
            edited = path.with_name("edited.mp4")
            shift_remux(path, edited, EDIT_SHIFT)
            path, first = edited, EDIT_SHIFT
        codes, ms, end_ms = oracle(path)
        out[name] = Clip(path, codes, ms, end_ms, first)
    return out


NAMES = sorted(SPECS)


def _packets(path: Path) -> list:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return [(p.pts, p.is_discard) for p in container.demux(stream) if p.size]


@pytest.mark.parametrize("name", NAMES)
def test_clip_is_what_it_claims(clips, name):
    """Guards for the tests below: the oracle reads every code back, and each clip has its feature."""
    clip = clips[name]
    n = SPECS[name][1]
    assert clip.codes == list(range(clip.expected_first, n))
    with av.open(str(clip.path)) as container:
        stream = container.streams.video[0]
        first_pts = next(container.decode(video=0)).pts * stream.time_base
        rate = stream.average_rate
    packets = _packets(clip.path)
    decode_order = [p for p, _ in packets]
    reordered = any(b < a for a, b in zip(decode_order, decode_order[1:]))
    gaps = {b - a for a, b in zip(clip.ms, clip.ms[1:])}
    if "bframes" in name or name in ("24fps-mp4", "60fps-mkv", "editlist-mp4"):
        assert reordered, "expected B-frames"
    if name.startswith("vfr"):
        assert len(gaps) >= 5, gaps
    else:
        assert max(gaps) - min(gaps) <= Fraction(1), gaps  # constant rate (mkv rounds to ms)
    if name.startswith("start"):
        assert first_pts >= 1
    if name == "29.97fps-mp4":
        assert rate == Fraction(30000, 1001)
        assert any(int(i * 1000 * 1001 / 30000) != int(i * 1000 / 30) for i in range(n))
    if name == "editlist-mp4":
        assert sum(discard for _, discard in packets) == EDIT_SHIFT


# ----------------------------------------------------------------- every frame, any order

def _frames(clip: Clip, stamps=None) -> list[dict]:
    return [frame_dict(clip.path, clip.path, ROIS, timestamp=ts) for ts in (clip.stamps if stamps is None else stamps)]


def _wrong(samples, expected_codes, labels) -> list:
    wrong = []
    for sample, want in zip(samples, expected_codes):
        got = (code_of_image(sample.image), code_of_labels(sample.label_map, labels))
        if got != (want, want):
            wrong.append((sample.frame_index, sample.timestamp, want, got))
    return wrong


@pytest.mark.parametrize("name", NAMES)
def test_every_frame_sequential_shuffled_and_batched(clips, name):
    clip = clips[name]
    ds = maskdec.MaskDataset(_frames(clip), max_open_readers=2)
    assert len(ds) == len(clip.codes)
    order = list(range(len(ds)))
    shuffled = order[:]
    random.Random(name).shuffle(shuffled)
    wrong = _wrong([ds[i] for i in order], clip.codes, ds.labels)
    wrong += _wrong([ds[i] for i in shuffled], [clip.codes[i] for i in shuffled], ds.labels)
    for start in range(0, len(shuffled), 16):
        batch = shuffled[start:start + 16]
        samples = ds.__getitems__(batch)
        assert [s.frame_index for s in samples] == batch
        wrong += _wrong(samples, [clip.codes[i] for i in batch], ds.labels)
    assert wrong == []
    ds.close()


@pytest.mark.parametrize("name", NAMES)
def test_iter_samples_in_shuffled_order(clips, name):
    clip = clips[name]
    order = list(range(len(clip.codes)))
    random.Random(name + "!").shuffle(order)
    it = maskdec.iter_samples(_frames(clip, [clip.stamps[i] for i in order]))
    assert _wrong(list(it), [clip.codes[i] for i in order], it.labels) == []


def test_all_clips_shuffled_together(clips):
    """One dataset over every clip, shuffled across files, with fewer open readers than files."""
    frames, codes = [], []
    for name in NAMES:
        frames += _frames(clips[name])
        codes += clips[name].codes
    ds = maskdec.MaskDataset(frames, max_open_readers=3)
    table = maskdec.iter_samples(frames).labels
    assert ds.labels.to_dict() == table.to_dict()
    order = list(range(len(ds)))
    random.Random(3).shuffle(order)
    assert _wrong([ds[i] for i in order], [codes[i] for i in order], ds.labels) == []
    assert ds.open_readers <= 3
    shuffled_frames = [frames[i] for i in order]
    it = maskdec.iter_samples(shuffled_frames, images=False)
    got = [code_of_labels(s.label_map, it.labels) for s in it]
    assert got == [codes[i] for i in order]


# ----------------------------------------------------------------- range errors

@pytest.mark.parametrize("name", NAMES)
def test_out_of_range_and_negative_timestamps(clips, name):
    clip = clips[name]
    inside = math.floor(clip.end_ms)  # within the last frame's duration
    stamps = [inside, inside + 1, 10 ** 9, -1]
    frames = [maskdec.Frame.from_dict(f) for f in _frames(clip, [0] * len(stamps))]
    for frame, ts in zip(frames, stamps):  # frames built in code: a file would fail validation at -1
        frame.sources[0].timestamp = ts
    ds = maskdec.MaskDataset(frames)
    assert code_of_image(ds[0].image) == clip.codes[-1]
    for i in (1, 2, 3):
        with pytest.raises(maskdec.TimestampRangeError) as info:
            ds[i]
        message = str(info.value)
        assert str(clip.path) in message and str(stamps[i]) in message, message
        assert isinstance(info.value, ValueError)
    assert code_of_image(ds[0].image) == clip.codes[-1]  # the reader still serves after errors
    it = maskdec.iter_samples(frames, images=False)
    assert code_of_labels(next(it).label_map, it.labels) == clip.codes[-1]
    with pytest.raises(maskdec.TimestampRangeError, match=str(inside + 1)):
        next(it)
    with MediaReader(str(clip.path)) as reader:
        got = dict(reader.frames_at(stamps))
    assert not isinstance(got[inside], Exception)
    assert all(isinstance(got[ts], maskdec.TimestampRangeError) for ts in stamps[1:])


def test_negative_timestamp_in_a_frames_file_is_rejected_with_its_json_path(clips):
    with pytest.raises(maskdec.FrameFormatError, match=r"\$\[0\]\.sources\[0\]\.timestamp"):
        maskdec.MaskDataset(_frames(clips["25fps-mkv"], [-1]))


def test_sample_index_out_of_range(clips):
    ds = maskdec.MaskDataset(_frames(clips["25fps-mkv"]))
    assert code_of_image(ds[-1].image) == clips["25fps-mkv"].codes[-1]
    with pytest.raises(maskdec.MaskdecError) as info:
        ds[len(ds)]
    assert isinstance(info.value, IndexError) and str(len(ds)) in str(info.value)


# ----------------------------------------------------------------- bounded readers

def _open_fds_under(folder: Path) -> int:
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{fd}").startswith(str(folder)):
                count += 1
        except OSError:
            pass
    return count


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counts open files through /proc")
def test_ten_thousand_random_accesses_over_20_files_stay_within_the_reader_limit(tmp_path):
    limit, n_files, n_frames = 4, 20, 12
    frames, codes = [], []
    for f in range(n_files):
        path = tmp_path / f"clip{f:02d}.mkv" if f % 2 else tmp_path / f"clip{f:02d}.mp4"
        write_video(path, (code_frame(f * n_frames + i, 32) for i in range(n_frames)), fps=30,
                    options=x264(6, f % 3))
        frames += [frame_dict(path, path, ROIS, timestamp=int(i * 1000 / 30)) for i in range(n_frames)]
        codes += [f * n_frames + i for i in range(n_frames)]
    ds = maskdec.MaskDataset(frames, images=False, max_open_readers=limit, threads=1)
    rng = random.Random(11)
    wrong, most_fds, most_readers = 0, 0, 0
    for _ in range(10_000):
        i = rng.randrange(len(ds))
        wrong += code_of_labels(ds[i].label_map, ds.labels) != codes[i]
        most_fds = max(most_fds, _open_fds_under(tmp_path))
        most_readers = max(most_readers, ds.open_readers)
    assert wrong == 0
    assert most_fds <= limit and most_readers <= limit
    assert most_fds == limit  # the files really were open, up to the limit ...
    assert ds.readers.opened > 1000  # ... and really were closed and reopened
    ds.close()
    assert _open_fds_under(tmp_path) == 0


# ----------------------------------------------------------------- the planner's work

@pytest.fixture(scope="module")
def long_gop(tmp_path_factory):
    """120 frames at 30 fps, keyframes every 30 frames, B-frames."""
    path = tmp_path_factory.mktemp("gop") / "long.mp4"
    write_video(path, (code_frame(i) for i in range(120)), fps=30, options=x264(30, 2))
    return path


def test_plan_seeks_only_forward_and_visits_each_gop_once(long_gop):
    with MediaReader(str(long_gop)) as reader:
        index = reader.index
    assert index.method == "packets" and len(index) == 120 and len(index.key_pts) == 4
    rng = random.Random(5)
    for _ in range(20):
        positions = rng.sample(range(120), rng.randint(1, 40))
        steps = plan_file(index, positions)
        assert [p for s in steps for p in s.positions] == sorted(positions)
        seeks = [s.seek for s in steps]
        assert seeks == sorted(set(seeks)) and None not in seeks  # strictly forward, each GOP once
        for step, following in zip(steps, steps[1:]):  # a seek only when the keyframe lies ahead
            decoder_at = step.positions[-1] + 1
            assert following.seek > index.gop_of(decoder_at) and following.seek == index.gop_of(following.positions[0])
        for step in steps:  # no seek: the next frame's keyframe is not ahead of the decoder
            assert step.seek == index.gop_of(step.positions[0])
            for p, q in zip(step.positions, step.positions[1:]):
                assert index.gop_of(q) == index.gop_of(p + 1)
    # a decoder already inside a GOP keeps going; one ahead of a frame goes back
    assert plan_file(index, [40, 45], at=35) == [plan_file(index, [40, 45], at=35)[0]]
    assert plan_file(index, [40, 45], at=35)[0].seek is None
    assert plan_file(index, [40], at=41)[0].seek == 1
    assert plan_file(index, [70], at=41)[0].seek == 2
    assert plan_file(index, [29, 31]) == [Step(0, (29, 31))]  # after 29 the decoder is at GOP 1's keyframe


def test_batch_decodes_each_needed_gop_once_and_no_further_than_needed(long_gop):
    positions = [3, 17, 28, 35, 58, 95, 96, 119]
    clear_memory_cache()
    for fresh in (False, True):  # the index built by this reader (it seeks first), or cached (it starts at 0)
        with MediaReader(str(long_gop)) as reader:
            index = reader.index
            got = {p: code_of_image(f.to_ndarray(format="rgb24")) for p, f in reader.decoder.frames(positions)}
            assert got == {p: p for p in positions}
            gops: dict[int, int] = {}
            for p in positions:
                gops[index.gop_of(p)] = max(gops.get(index.gop_of(p), 0), p)
            assert sorted(gops) == [0, 1, 3]
            assert reader.decoder.seeks == (2 if fresh else 3)
            passed = reader.decoder.decoded + reader.decoder.skipped  # B-frames nobody wants are skipped
            assert passed == sum(last - index.first_of_gop(g) + 1 for g, last in gops.items())


def test_a_late_frame_never_means_decoding_from_the_start(long_gop):
    with MediaReader(str(long_gop)) as reader:
        reader.index
    with MediaReader(str(long_gop)) as reader:  # index cached: a fresh decoder at position 0
        (_, frame), = reader.frames_at([3966])  # frame 119
        assert code_of_image(frame.to_ndarray(format="rgb24")) == 119
        assert reader.decoder.decoded <= 30 and reader.decoder.seeks == 1
        before = reader.decoder.decoded + reader.decoder.skipped
        (_, frame), = reader.frames_at([166])  # frame 5: behind the decoder, back to its keyframe
        assert code_of_image(frame.to_ndarray(format="rgb24")) == 5
        assert reader.decoder.decoded + reader.decoder.skipped - before == 6 and reader.decoder.seeks == 2


def test_sequential_access_decodes_forward_without_seeking(long_gop):
    frames = [frame_dict(long_gop, long_gop, ROIS, timestamp=int(i * 1000 / 30)) for i in range(120)]
    ds = maskdec.MaskDataset(frames, images=False)
    assert [code_of_labels(ds[i].label_map, ds.labels) for i in range(120)] == list(range(120))
    decoder = ds.readers.get(str(long_gop)).decoder
    assert decoder.seeks <= 1 and decoder.decoded == 120


# ----------------------------------------------------------------- the frame index

@pytest.mark.parametrize("name", ["29.97fps-mp4", "30fps-mp4-ffv1", "start-1000ms-mp4"])
def test_mp4_sample_table_agrees_with_a_packet_scan(clips, name):
    path = str(clips[name].path)
    clear_memory_cache()
    with MediaReader(path) as reader:
        from_table = reader.index
    with MediaReader(path) as reader:
        from_packets = index_module._from_packets(reader)
    assert from_table.method == "index_entries" and from_packets.method == "packets"
    assert from_table.pts == from_packets.pts and from_table.key_pts == from_packets.key_pts
    assert from_table.last_duration == from_packets.last_duration
    assert len(from_table) == len(clips[name].codes)


def test_edit_list_frames_are_not_in_the_index(clips):
    clip = clips["editlist-mp4"]
    with MediaReader(str(clip.path)) as reader:
        assert len(reader.index) == len(clip.codes) == SPECS["editlist-mp4"][1] - EDIT_SHIFT
        assert reader.index.key_pts[0] < reader.index.pts[0]  # decoding starts at a discarded keyframe


def test_index_cached_on_disk_by_file_identity(tmp_path):
    path = tmp_path / "clip.mkv"
    write_video(path, (code_frame(i) for i in range(20)), fps=25, options=x264(5, 2))
    cache = tmp_path / "cache"
    clear_memory_cache()
    with MediaReader(str(path), cache_dir=cache) as reader:
        built = reader.index
    assert len(list(cache.glob("*.json"))) == 1
    clear_memory_cache()
    loaded = cached_index(str(path), cache)
    assert loaded is not None and loaded.pts == built.pts and loaded.key_pts == built.key_pts
    clear_memory_cache()
    frames = [frame_dict(path, path, ROIS, timestamp=40 * i) for i in range(20)]
    ds = maskdec.MaskDataset(frames, cache_dir=cache)
    order = list(range(20))
    random.Random(2).shuffle(order)
    assert [code_of_image(ds[i].image) for i in order] == order
    ds.close()
    # a rewritten file is another file: its old index is not used
    write_video(path, (code_frame(i) for i in range(10)), fps=25, options=x264(5, 0))
    clear_memory_cache()
    assert cached_index(str(path), cache) is None
    with MediaReader(str(path), cache_dir=cache) as reader:
        assert len(reader.index) == 10


# ----------------------------------------------------------------- workers and threads

def _serve(ds: maskdec.MaskDataset, indices: list[int]) -> tuple[list[int], list[int], int]:
    codes = [code_of_image(ds[i].image) for i in indices]
    threads = [ds.readers.get(r.image_uri).stream.codec_context.thread_count for r in ds.requests[:1]]
    return codes, threads, os.getpid()


def test_dataset_pickles_and_serves_in_worker_processes(clips):
    clip = clips["60fps-mkv"]
    ds = maskdec.MaskDataset(_frames(clip))
    assert code_of_image(ds[7].image) == clip.codes[7]
    assert ds.open_readers == 1
    copy = pickle.loads(pickle.dumps(ds))
    assert copy.open_readers == 0 and len(copy) == len(ds)
    assert code_of_image(copy[9].image) == clip.codes[9]
    copy.close()
    order = list(range(len(ds)))
    random.Random(4).shuffle(order)
    chunks = [order[k::3] for k in range(3)]
    context = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn")
    gc.collect()  # garbage of earlier tests must not be freed in a forked child (FFmpeg's threads stay here)
    with context.Pool(2) as pool:  # the parent's open reader goes along with fork; the child must not use it
        results = pool.starmap(_serve, [(ds, chunk) for chunk in chunks])
    for chunk, (codes, threads, pid) in zip(chunks, results):
        assert pid != os.getpid()
        assert codes == [clip.codes[i] for i in chunk]
        assert threads == [1]  # one decoder thread per worker by default
    assert code_of_image(ds[8].image) == clip.codes[8]  # the parent's reader still works
    ds.close()


def test_readers_free_their_frames_without_the_garbage_collector(clips):
    """No reference cycles: a dropped reader (and the frame it keeps for repeats) goes at once,
    not at some later collection, which in a forked worker could free the parent's FFmpeg state."""
    clip = clips["bframes-mp4"]
    gc.disable()
    try:
        reader = MediaReader(str(clip.path))
        list(reader.frames_at(clip.stamps[:5]))
        assert reader.decoder.decoded >= 5
        alive = weakref.ref(reader)
        del reader
        assert alive() is None
        ds = maskdec.MaskDataset(_frames(clip), max_open_readers=1)
        ds[3]
        alive = weakref.ref(ds.readers.get(str(clip.path)))
        ds.close()
        assert alive() is None
    finally:
        gc.enable()


def test_decoder_threads_parameter(clips):
    clip = clips["25fps-mkv"]
    assert resolve_threads(None) is None and resolve_threads(3) == 3
    for threads, want_count, want_type in ((None, None, "AUTO"), (2, 2, "AUTO"), (1, 1, "SLICE")):
        ds = maskdec.MaskDataset(_frames(clip), threads=threads)
        assert code_of_image(ds[4].image) == clip.codes[4]
        ctx = ds.readers.get(str(clip.path)).stream.codec_context
        assert ctx.thread_type.name == want_type
        if want_count is None:  # FFmpeg's automatic count, filled in when the decoder opened
            assert ctx.thread_count >= 1
        else:
            assert ctx.thread_count == want_count
        ds.close()
