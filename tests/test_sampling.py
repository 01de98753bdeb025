"""maskdec.sampling: GOP blocks, the GOP-aware batch sampler (single process, simulated and
real DataLoader workers with fork and spawn, ranks explicit and through torch.distributed),
decode counters showing that no GOP is decoded twice per epoch and worker, the shuffled
stream (interleave + shuffle buffer) of maskdec.torch.MaskIterableDataset, and the
randomness measures. Media: small H.264 clips with a keyframe every few frames."""
from __future__ import annotations

import json
import multiprocessing
import os
import pickle
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest

import maskdec
from maskdec.example import colour_mask, scene_classes, scene_image
from maskdec.media.index import cached_index
from maskdec.media.writer import write_video
from maskdec.sampling import (GopBatchSampler, ShuffleBuffer, Spot, gop_blocks, interleave, randomness, sample_gops,
                              split_image_gops)

from conftest import frame_dict, palette_rois

try:
    import torch
    import maskdec.torch as mt
    from torch.utils.data import DataLoader, get_worker_info
except ImportError:  # the sampler needs no torch; the DataLoader tests skip
    torch = None
torch_only = pytest.mark.skipif(torch is None, reason="torch is not installed (README: the CPU build for the torch tests)")

CLIPS, FRAMES, GOP = 4, 24, 8  # 3 GOPs per video
W, H = 64, 48
METHODS = [m for m in ("fork", "spawn") if m in multiprocessing.get_all_start_methods()]


@dataclass
class Data:
    frames: list[dict]
    reference: dict[int, maskdec.Sample]  # iter_samples' samples by frame index (one sample per frame)
    videos: list[str]  # every video file

    @property
    def n(self) -> int:
        return len(self.frames)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Data:
    root = tmp_path_factory.mktemp("sampling")
    frames, videos = [], []
    for c in range(CLIPS):
        classes = [scene_classes(i + 11 * c, H, W) for i in range(FRAMES)]
        source, mask = root / f"source{c}.mp4", root / f"mask{c}.mp4"
        write_video(source, [scene_image(i, k) for i, k in enumerate(classes)], options={"g": str(GOP), "crf": "23"})
        write_video(mask, [colour_mask(k) for k in classes], options={"g": str(GOP), "crf": "18"})
        videos += [str(source), str(mask)]
        frames += [frame_dict(source, mask, palette_rois(), timestamp=int(i * 1000 / 30)) for i in range(FRAMES)]
    still = scene_classes(500, H, W, still=True)
    cv2.imwrite(str(root / "still.png"), cv2.cvtColor(scene_image(500, still), cv2.COLOR_RGB2BGR))
    cv2.imwrite(str(root / "still_mask.png"), cv2.cvtColor(colour_mask(still), cv2.COLOR_RGB2BGR))
    frames.append(frame_dict(root / "still.png", root / "still_mask.png", palette_rois()))
    reference = {s.frame_index: s for s in maskdec.iter_samples(frames)}
    assert len(reference) == len(frames) == CLIPS * FRAMES + 1
    for uri in videos:  # the media really has the GOPs the tests are about
        with maskdec.media.reader.MediaReader(uri) as reader:
            assert len(reader.index) == FRAMES and len(reader.index.key_pts) == FRAMES // GOP
    return Data(frames, reference, videos)


def flat(batches) -> list[int]:
    return [i for b in batches for i in b]


def decoded(ds: maskdec.MaskDataset) -> dict[str, int]:
    """Frames the dataset's readers decoded per video (stills decode nothing through the planner)."""
    return {uri: n for uri, n in ds.readers.decoded().items() if n}


def minimal_decode(spots, samples) -> dict[str, int]:
    """Frames a decoder must present to serve `samples` when it decodes no GOP twice: for each
    GOP touched, from its keyframe to the last frame needed."""
    last: dict[tuple, int] = {}
    for i in samples:
        for spot in spots[i]:
            if spot is not None and spot.gop is not None:
                last[(spot.uri, spot.gop)] = max(last.get((spot.uri, spot.gop), -1), spot.position)
    out: dict[str, int] = {}
    for (uri, gop), p in last.items():
        out[uri] = out.get(uri, 0) + p - cached_index(uri).first_of_gop(gop) + 1
    return out


# ----------------------------------------------------------------- GOP blocks

def test_samples_are_located_on_the_frame_index_without_decoding(data):
    ds = maskdec.MaskDataset(data.frames)
    spots = sample_gops(ds)
    assert ds.open_readers == 0  # indexed by the sampler's own readers, closed again
    for i in range(CLIPS * FRAMES):
        mask, image = spots[i]
        assert mask.uri.endswith(f"mask{i // FRAMES}.mp4") and image.uri.endswith(f"source{i // FRAMES}.mp4")
        assert mask.position == image.position == i % FRAMES
        assert mask.gop == image.gop == (i % FRAMES) // GOP
    assert spots[-1][0].gop is None and spots[-1][1].gop is None  # the still pair has no GOPs
    assert sample_gops(maskdec.MaskDataset(data.frames, images=False))[0][1] is None


def test_blocks_are_mask_gops_in_decode_order(data):
    spots = sample_gops(maskdec.MaskDataset(data.frames))
    blocks = gop_blocks(spots)
    assert sorted(i for b in blocks for i in b.samples) == list(range(data.n))  # a partition
    assert len(blocks) == CLIPS * FRAMES // GOP + 1
    for block in blocks:
        assert len({(spots[i][0].uri, spots[i][0].gop) for i in block.samples}) == 1
        assert [spots[i][0].position for i in block.samples] == sorted(spots[i][0].position for i in block.samples)
        assert block.files == {spots[i][0].uri for i in block.samples} | {spots[i][1].uri for i in block.samples}


def _spots(mask_keyint: int, image_keyint: int, n: int = 60) -> list[tuple[Spot, Spot]]:
    return [(Spot("mask", p // mask_keyint, p), Spot("image", p // image_keyint, p)) for p in range(n)]


def test_source_gops_shared_by_two_mask_gops_join_their_blocks_within_a_size_limit():
    aligned = gop_blocks(_spots(10, 10))
    assert [len(b) for b in aligned] == [10] * 6 and split_image_gops(_spots(10, 10), aligned) == 0
    spots = _spots(10, 12)  # image GOPs [0, 12), [12, 24) ... straddle mask GOPs: 0+1, 1+2 ...
    chained = gop_blocks(spots, max_size=100)
    assert len(chained) == 1 and split_image_gops(spots, chained) == 0  # unlimited, the chain takes the file
    bounded = gop_blocks(spots)  # default limit: twice the largest mask GOP
    assert max(len(b) for b in bounded) <= 20 and len(bounded) > 1
    assert split_image_gops(spots, bounded) >= 1  # the price: a source GOP decoded by two blocks
    for block in bounded:  # still whole mask GOPs, each in decode order
        gops = {spots[i][0].gop for i in block.samples}
        assert sum(len(b) for b in bounded if {spots[i][0].gop for i in b.samples} & gops) == len(block)
        assert list(block.samples) == sorted(block.samples)


def test_interleave_keeps_each_piece_in_order_with_at_most_window_open():
    rng = np.random.default_rng(1)
    pieces = [list(range(k * 100, k * 100 + n)) for k, n in enumerate([5, 30, 1, 12, 12, 40, 7, 3])]
    files = [frozenset({f"f{k % 3}"}) for k in range(len(pieces))]  # pieces 0, 3, 6 share a file ...
    for window, with_files in ((1, False), (3, False), (3, True), (8, True)):
        order = interleave(pieces, window, rng, files=files if with_files else None).tolist()
        assert sorted(order) == sorted(i for p in pieces for i in p)
        for p in pieces:
            assert [i for i in order if i in set(p)] == p  # each piece keeps its order
        span = {k: (order.index(p[0]), order.index(p[-1])) for k, p in enumerate(pieces)}
        for t in range(len(order)):
            open_now = [k for k, (a, b) in span.items() if a <= t <= b]
            assert len(open_now) <= window
            if with_files:
                assert len({files[k] for k in open_now}) == len(open_now)  # no file read by two open pieces
    mixed = interleave(pieces, 3, np.random.default_rng(2)).tolist()
    assert mixed != sorted(mixed)


# ----------------------------------------------------------------- the sampler, one process

@pytest.mark.parametrize("batch_size,window,workers", [(1, 1, 0), (4, 2, 0), (5, 3, 2), (7, 4, 3), (32, 4, 2)])
def test_each_sample_once_per_epoch_in_full_batches(data, batch_size, window, workers):
    ds = maskdec.MaskDataset(data.frames)
    sampler = GopBatchSampler(ds, batch_size, window=window, num_workers=workers)
    for epoch in range(3):
        batches = list(sampler)
        assert len(batches) == len(sampler) == -(-data.n // batch_size)
        assert sorted(flat(batches)) == list(range(data.n))
        assert all(len(b) == batch_size for b in batches[:-1])
    dropping = GopBatchSampler(ds, 5, drop_last=True)
    batches = list(dropping)
    assert len(batches) == len(dropping) == data.n // 5 and {len(b) for b in batches} == {5}
    assert len(set(flat(batches))) == 5 * (data.n // 5)


def test_the_order_is_a_function_of_seed_and_epoch(data):
    ds = maskdec.MaskDataset(data.frames)
    a, b = GopBatchSampler(ds, 4, seed=7), GopBatchSampler(ds, 4, seed=7)
    assert list(a) == list(b)  # epoch 0
    assert list(a) == b.batches(1) != b.batches(0)  # each pass advances the epoch
    a.set_epoch(5)
    assert list(a) == b.batches(5) and a.epoch == 6
    assert GopBatchSampler(ds, 4, seed=8).batches(0) != b.batches(0)
    mixed = flat(b.batches(0))
    assert mixed != sorted(mixed)
    windows = [len({data.frames[i]["sources"][0]["masks"][0]["uri"] for i in batch}) for batch in b.batches(0)]
    assert max(windows) >= 2  # batches mix files


@pytest.mark.parametrize("world", [2, 3])
@pytest.mark.parametrize("drop_last", [False, True])
def test_ranks_split_an_epoch_as_distributed_sampler_does(data, world, drop_last):
    ds = maskdec.MaskDataset(data.frames)
    shares = [GopBatchSampler(ds, 4, rank=r, world_size=world, drop_last=drop_last, seed=3) for r in range(world)]
    got = [flat(s.batches(2)) for s in shares]
    per = data.n // world if drop_last else -(-data.n // world)
    for s, mine in zip(shares, got):
        assert s.rank_size() == per and len(s) == (per // 4 if drop_last else -(-per // 4))
        if not drop_last:
            assert len(mine) == per
    everything = Counter(i for mine in got for i in mine)
    if drop_last:
        assert set(everything.values()) == {1}  # none twice; only whole batches
        assert len(everything) == world * (per // 4) * 4
    else:
        assert set(everything) == set(range(data.n))  # every sample, padded with repeats
        assert sum(everything.values()) - data.n == per * world - data.n
    with pytest.raises(maskdec.OptionError, match="both"):
        GopBatchSampler(ds, 4, rank=0)
    with pytest.raises(maskdec.OptionError, match="rank"):
        GopBatchSampler(ds, 4, rank=2, world_size=2)


def test_options_are_checked_and_a_window_past_the_open_file_limit_warns(data):
    ds = maskdec.MaskDataset(data.frames, max_open_readers=3)
    for bad in ({"batch_size": 0}, {"window": 0}, {"seed": -1}, {"num_workers": 1.5}, {"drop_last": 1}):
        with pytest.raises(maskdec.OptionError):
            GopBatchSampler(ds, **{"batch_size": 4, **bad})
    with pytest.warns(UserWarning, match="max_open_readers"):
        GopBatchSampler(ds, 4, window=2)  # 2 blocks x (mask + source) > 3 open files
    with pytest.raises(maskdec.MaskdecError, match="MaskDataset"):
        GopBatchSampler([1, 2, 3], 4)


def test_samples_of_unreadable_files_are_sampled_and_fail_when_loaded(data, tmp_path):
    frames = data.frames[:3] + [frame_dict(tmp_path / "gone.mp4", tmp_path / "gone_mask.mp4", palette_rois(),
                                           timestamp=0)]
    ds = maskdec.MaskDataset(frames)
    sampler = GopBatchSampler(ds, 2)
    assert sampler.spots[3][0] == Spot(str(tmp_path / "gone_mask.mp4"), None, None)
    batches = list(sampler)
    assert sorted(flat(batches)) == [0, 1, 2, 3]
    with pytest.raises(maskdec.MediaNotFoundError, match="gone"):
        ds.__getitems__(next(b for b in batches if 3 in b))


# ----------------------------------------------------------------- decoding each GOP once

@pytest.mark.parametrize("batch_size,window", [(1, 2), (3, 1), (4, 2), (7, 4), (32, 4)])
def test_no_gop_is_decoded_twice_in_an_epoch(data, batch_size, window):
    """Every frame is a sample, so an epoch that decodes no GOP twice decodes each frame once."""
    sampler = GopBatchSampler(maskdec.MaskDataset(data.frames), batch_size, window=window)
    for epoch in range(3):
        ds = maskdec.MaskDataset(data.frames)
        for batch in sampler.batches(epoch):
            ds.__getitems__(batch)
        assert decoded(ds) == {uri: FRAMES for uri in data.videos}


def test_the_counter_sees_gops_decoded_again_in_random_order(data):
    ds = maskdec.MaskDataset(data.frames)
    order = np.random.default_rng(0).permutation(data.n)
    for start in range(0, data.n, 8):
        ds.__getitems__(order[start:start + 8].tolist())
    assert sum(ds.readers.decoded().values()) > 1.5 * FRAMES * len(data.videos)


@pytest.mark.parametrize("workers", [2, 3])
def test_each_worker_decodes_its_gops_once(data, workers):
    """DataLoader workers take batches in turn; simulated here, each worker its own dataset."""
    sampler = GopBatchSampler(maskdec.MaskDataset(data.frames), 4, window=2, num_workers=workers)
    for epoch in range(3):
        mine = [maskdec.MaskDataset(data.frames) for _ in range(workers)]
        seen: list[list[int]] = [[] for _ in range(workers)]
        for i, batch in enumerate(sampler.batches(epoch)):
            mine[i % workers].__getitems__(batch)
            seen[i % workers] += batch
        for w in range(workers):
            assert decoded(mine[w]) == minimal_decode(sampler.spots, seen[w])
        total = sum(sum(m.readers.decoded().values()) for m in mine)
        assert total <= FRAMES * len(data.videos) + 2 * (workers - 1) * GOP  # a cut block per worker boundary


# ----------------------------------------------------------------- shuffle buffer and randomness

def test_shuffle_buffer_holds_at_most_its_size():
    buffer = ShuffleBuffer(10, np.random.default_rng(0), nbytes=lambda item: 100)
    out = list(buffer(iter(range(200))))
    assert sorted(out) == list(range(200)) and out != list(range(200))
    assert buffer.peak_bytes == 11 * 100 and buffer.bytes == 0  # 10 held + the one coming in
    assert max(abs(k - v) for k, v in enumerate(out)) < 200  # a window, not a full shuffle
    assert list(ShuffleBuffer(10, np.random.default_rng(0))(range(200))) == out  # same rng, same order
    assert list(ShuffleBuffer(500, np.random.default_rng(0))(range(20))) != list(range(20))  # never fills


def test_randomness_of_in_order_uniform_and_gop_aware_orders(data):
    ds = maskdec.MaskDataset(data.frames)
    in_order = randomness(list(range(data.n)), ds, 8)
    assert in_order.spearman == pytest.approx(1.0) and in_order.file_spearman == pytest.approx(1.0)
    assert in_order.one_file_batches > 0.8 and in_order.batches == -(-data.n // 8)
    uniform = in_order.uniform
    assert abs(uniform.spearman) < 0.3 and abs(uniform.file_spearman) < 0.3 and uniform.one_file_batches == 0.0
    gop_aware = randomness(GopBatchSampler(ds, 8, window=4).batches(0), ds)
    assert gop_aware.one_file_batches < 0.2 and gop_aware.files_per_batch > 2
    assert abs(gop_aware.spearman) < 0.6
    files = [f["sources"][0]["masks"][0]["uri"] for f in data.frames]
    assert randomness(list(range(data.n)), files, 8) == in_order  # files given directly
    assert in_order.as_dict()["uniform"]["batches"] == in_order.batches


# ----------------------------------------------------------------- through torch's DataLoader

def _items(batches) -> list[tuple[int, np.ndarray, np.ndarray]]:
    out = []
    for b in batches:
        for k, (h, w) in enumerate(b["size"].tolist()):
            out.append((int(b["frame_index"][k]), b["image"][k, :, :h, :w].permute(1, 2, 0).numpy(),
                        b["label_map"][k, :h, :w].numpy()))
    return out


def _check_items(data: Data, items) -> list[int]:
    order = [i for i, _, _ in items]
    assert sorted(order) == list(range(data.n))  # every sample exactly once
    for i, image, label_map in items:
        np.testing.assert_array_equal(label_map, data.reference[i].label_map)
        np.testing.assert_array_equal(image, data.reference[i].image)
    return order


@torch_only
@pytest.mark.parametrize("workers,method", [(0, None)] + [(2, m) for m in METHODS])
def test_gop_sampler_through_a_dataloader(data, workers, method):
    ds = mt.MaskDataset(data.frames)
    sampler = mt.GopBatchSampler(ds, 5, window=3, num_workers=workers)
    loader = DataLoader(ds, batch_sampler=sampler, num_workers=workers, collate_fn=ds.collate,
                        multiprocessing_context=method, timeout=60 if workers else 0)
    order = _check_items(data, _items(loader))
    assert order == flat(sampler.batches(0))  # the DataLoader hands batches out in the sampler's order
    assert order != sorted(order)


if torch is not None:
    class Probe(mt.MaskDataset):
        """Tags each item with its worker and that worker's frames decoded so far."""

        def __getitems__(self, indices):
            items = super().__getitems__(indices)
            decoded = json.dumps(self.dataset.readers.decoded())
            for item in items:
                item.update(worker=get_worker_info().id, decoded=decoded)
            return items


@torch_only
def test_persistent_workers_decode_each_gop_once_per_epoch(data):
    ds = Probe(data.frames)
    sampler = mt.GopBatchSampler(ds, 4, window=2, num_workers=2)
    loader = DataLoader(ds, batch_sampler=sampler, num_workers=2, collate_fn=ds.collate, persistent_workers=True,
                        multiprocessing_context="fork", timeout=60)
    before: dict[int, Counter] = {0: Counter(), 1: Counter()}
    for epoch in range(2):
        seen: dict[int, list[int]] = {0: [], 1: []}
        last: dict[int, dict] = {}
        for k, b in enumerate(loader):
            assert set(b["worker"].tolist()) == {k % 2}  # batch k went to worker k % 2, as the sampler planned
            seen[k % 2] += b["frame_index"].tolist()
            last[k % 2] = json.loads(b["decoded"][0])
        for w in (0, 1):
            this_epoch = Counter(last[w])
            this_epoch.subtract(before[w])
            assert +this_epoch == Counter(minimal_decode(sampler.spots, seen[w]))
            before[w] = Counter(last[w])


@torch_only
@pytest.mark.parametrize("workers,method", [(0, None)] + [(2, m) for m in METHODS])
def test_shuffled_stream_yields_each_sample_once(data, workers, method):
    ds = mt.MaskIterableDataset(data.frames, shuffle_buffer=16, interleave=3, seed=1)
    loader = DataLoader(ds, batch_size=4, num_workers=workers, collate_fn=ds.collate,
                        multiprocessing_context=method, timeout=60 if workers else 0)
    order = _check_items(data, _items(loader))
    assert order != sorted(order)
    if not workers:
        sample_bytes = W * H * 4  # RGB image + uint8 label map
        assert 16 * sample_bytes <= ds.peak_buffered_bytes <= 17 * sample_bytes


@torch_only
def test_shuffled_stream_order_follows_seed_and_epoch(data):

    def epoch_order(ds, epoch=None):
        if epoch is not None:
            ds.set_epoch(epoch)
        return [item["frame_index"] for item in ds]

    a = mt.MaskIterableDataset(data.frames, shuffle_buffer=8, interleave=2, seed=4, images=False)
    b = mt.MaskIterableDataset(data.frames, shuffle_buffer=8, interleave=2, seed=4, images=False)
    assert epoch_order(a, 3) == epoch_order(b, 3) != epoch_order(b, 4)
    assert epoch_order(a) == epoch_order(b, 4)  # a pass advances the epoch
    interleaved = mt.MaskIterableDataset(data.frames, interleave=CLIPS, seed=0, images=False)
    order = epoch_order(interleaved)
    assert sorted(order) == list(range(data.n)) and order != sorted(order)
    for c in range(CLIPS):  # interleaving alone keeps each file in order
        mine = [i for i in order if i // FRAMES == c]
        assert mine == sorted(mine)
    torch.manual_seed(0)
    unseeded = mt.MaskIterableDataset(data.frames, shuffle_buffer=8, images=False)
    first = epoch_order(unseeded)
    torch.manual_seed(0)
    assert epoch_order(unseeded) == first != epoch_order(unseeded)  # torch's random state decides
    with pytest.raises(maskdec.OptionError):
        mt.MaskIterableDataset(data.frames, shuffle_buffer=-1)
    with pytest.raises(maskdec.OptionError):
        mt.MaskIterableDataset(data.frames, interleave=0)


@torch_only
def test_shuffled_stream_shards_over_ranks(data):
    everything = []
    for rank in (0, 1):
        ds = mt.MaskIterableDataset(data.frames, rank=rank, world_size=2, shuffle_buffer=8, interleave=2, seed=0)
        mine = [i for i, _, _ in _items(DataLoader(ds, batch_size=4, num_workers=2, collate_fn=ds.collate,
                                                   multiprocessing_context="fork", timeout=60))]
        assert sorted(mine) == ds.shard() and len(mine) == len(ds)
        everything += mine
    assert sorted(everything) == list(range(data.n))


def _ddp_rank(rank: int, store: str, frames: list[dict], out: str) -> None:
    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    torch.distributed.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=2)
    try:
        ds = mt.MaskDataset(frames, images=False)
        sampler = mt.GopBatchSampler(ds, 4, num_workers=2)
        loader = DataLoader(ds, batch_sampler=sampler, num_workers=2, collate_fn=ds.collate,
                            multiprocessing_context="fork", timeout=60)
        gop = [int(i) for b in loader for i in b["frame_index"]]
        stream = mt.MaskIterableDataset(frames, images=False, shuffle_buffer=8, interleave=2, seed=0)
        streamed = [item["frame_index"] for item in stream]
        shares = [sampler.rank_and_world(), pickle.loads(pickle.dumps(stream)).rank_and_world()]
        Path(out).write_text(json.dumps([shares, len(sampler), gop, streamed]))
    finally:
        torch.distributed.destroy_process_group()


@torch_only
def test_torch_distributed_ranks_share_both_samplers(data, tmp_path):
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_ddp_rank, args=(r, str(tmp_path / "store"), data.frames, str(tmp_path / f"{r}.json")))
             for r in (0, 1)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(180)
        assert p.exitcode == 0
    results = [json.loads((tmp_path / f"{r}.json").read_text()) for r in (0, 1)]
    gop, streamed = [], []
    for r, (shares, batches, mine, stream) in enumerate(results):
        assert shares == [[r, 2], [r, 2]]
        assert len(mine) == -(-data.n // 2)  # equal shares, padded
        gop += mine
        streamed += stream
    assert set(gop) == set(range(data.n)) and len(gop) == 2 * -(-data.n // 2)
    assert sorted(streamed) == list(range(data.n))
