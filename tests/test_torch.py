"""maskdec.torch: the map-style and streaming datasets through real DataLoaders (no workers,
fork, spawn, forkserver), sharding over workers and ranks (explicit and torch.distributed),
collate's padding, transforms, label dtypes, and that `import maskdec` leaves torch alone."""
from __future__ import annotations

import gc
import json
import multiprocessing
import os
import pickle
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="torch is not installed (README: the CPU build for the torch tests)")
from torch.utils.data import DataLoader, get_worker_info  # noqa: E402

import maskdec  # noqa: E402
import maskdec.torch as mt  # noqa: E402
from maskdec.example import Example, make_example  # noqa: E402
from maskdec.frames import Frame, load_frames  # noqa: E402

from conftest import frame_dict, palette_rois  # noqa: E402

#: three examples of different sizes; lossless (FFV1) masks so label maps equal the ground truth
SIZES = [(64, 48), (48, 32), (80, 40)]
N_FRAMES = 5
METHODS = [m for m in ("fork", "spawn", "forkserver") if m in multiprocessing.get_all_start_methods()]


@dataclass
class Data:
    frames: list[Frame]
    examples: list[Example]
    where: dict[int, tuple[Example, int | None]]  # frame_index -> (its example, video frame or None: the still)
    reference: dict[tuple, maskdec.Sample]  # iter_samples' samples by identity
    labels: maskdec.LabelTable


def key(item: dict) -> tuple:
    return item["frame_index"], item["source_id"], item["mask_id"], item["timestamp"]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Data:
    root = tmp_path_factory.mktemp("torch")
    frames, examples, where = [], [], {}
    for k, (w, h) in enumerate(SIZES):
        ex = make_example(root / f"ex{k}", width=w, height=h, n_frames=N_FRAMES, mask_codec="ffv1",
                          mask_pix_fmt="bgr0")
        for i, frame in enumerate(load_frames(ex.frames_path)):
            where[len(frames)] = (ex, i if i < N_FRAMES else None)
            frames.append(frame)
        examples.append(ex)
    it = maskdec.iter_samples(frames)
    reference = {(s.frame_index, s.source_id, s.mask_id, s.timestamp): s for s in it}
    assert len(reference) == len(frames) == len(SIZES) * (N_FRAMES + 1)
    return Data(frames, examples, where, reference, it.labels)


def truth(data: Data, frame_index: int, labels: dict[str, int] | None = None) -> np.ndarray:
    """The label map a frame must have: the generator's classes mapped to label ids."""
    ex, video_frame = data.where[frame_index]
    classes = ex.still_truth() if video_frame is None else ex.truth(video_frame)
    return ex.label_ids(data.labels.ids if labels is None else labels)[classes]


def check_item(data: Data, image: torch.Tensor | None, label_map: torch.Tensor, ident: tuple) -> None:
    """An item (cropped out of a batch if need be) is the sample iter_samples made for its identity."""
    ref = data.reference[ident]
    assert label_map.dtype == torch.int64
    np.testing.assert_array_equal(label_map.numpy(), ref.label_map)
    np.testing.assert_array_equal(label_map.numpy(), truth(data, ident[0]))
    assert image is not None and image.dtype == torch.uint8 and image.shape == (3, *ref.image.shape[:2])
    np.testing.assert_array_equal(image.permute(1, 2, 0).numpy(), ref.image)


def unbatch(batches) -> list[tuple]:
    """(identity, image, label map) of every item of collated batches, padding cropped off."""
    out = []
    for b in batches:
        for k, (h, w) in enumerate(b["size"].tolist()):
            ident = (int(b["frame_index"][k]), b["source_id"][k], b["mask_id"][k], int(b["timestamp"][k]))
            out.append((ident, b["image"][k, :, :h, :w], b["label_map"][k, :h, :w]))
    return out


def loader(ds, workers: int, method: str | None, **kwargs) -> DataLoader:
    """Batches of 4; with workers, a batch that takes over a minute (a hung worker) is an error."""
    return DataLoader(ds, batch_size=4, num_workers=workers, multiprocessing_context=method if workers else None,
                      collate_fn=ds.collate, timeout=60 if workers else 0, **kwargs)


# ----------------------------------------------------------------- import and items

def test_import_maskdec_does_not_import_torch():
    code = "import maskdec, sys; assert 'torch' not in sys.modules, 'import maskdec imported torch'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_items_are_tensors_with_identity_and_nothing_opens_in_init(data):
    ds = mt.MaskDataset(data.frames)
    assert ds.dataset.open_readers == 0  # the frames were planned; no media file opened
    assert len(ds) == len(data.reference) and ds.labels.ids == data.labels.ids
    for i in (0, 3, N_FRAMES, N_FRAMES + 1, len(ds) - 1):
        item = ds[i]
        assert set(item) == {"image", "label_map", "frame_index", "source_id", "mask_id", "timestamp"}
        assert item["frame_index"] == i
        check_item(data, item["image"], item["label_map"], key(item))
    assert ds.dataset.open_readers > 0
    ds.close()


def test_items_kept_by_the_caller_are_never_reused(data):
    """Items' arrays are recycled once nothing refers to them: kept items (and views and
    collated copies of them) keep their pixels while later batches are made."""
    ds = mt.MaskDataset(data.frames)
    first = ds.__getitems__([0, 1, 2])
    view = first[1]["label_map"][::2]
    copies = [(item["image"].clone(), item["label_map"].clone()) for item in first]
    del first[2]  # dropped: its arrays may serve the next batch
    for start in (3, 6, 9, 3):
        later = ds.__getitems__(list(range(start, start + 3)))
        for item in later:
            check_item(data, item["image"], item["label_map"], key(item))
    for item, (image, label_map) in zip(first, copies):
        assert torch.equal(item["image"], image) and torch.equal(item["label_map"], label_map)
    assert torch.equal(view, copies[1][1][::2])
    assert pickle.loads(pickle.dumps(ds))._pool is None  # recycled arrays stay in their process


def test_label_maps_as_uint8_on_request(data):
    ds = mt.MaskDataset(data.frames, label_dtype=torch.uint8)
    item = ds[2]
    assert item["label_map"].dtype == torch.uint8
    np.testing.assert_array_equal(item["label_map"].numpy(), truth(data, 2))
    wide = {name: 300 + i for i, name in enumerate(sorted(data.labels.ids))}  # ids need 16 bits
    with pytest.raises(maskdec.MaskdecError, match="uint8"):
        mt.MaskDataset(data.frames, labels=wide, label_dtype=torch.uint8)
    with pytest.raises(maskdec.MaskdecError, match="label_dtype"):
        mt.MaskIterableDataset(data.frames, label_dtype=torch.float32)
    item = mt.MaskDataset(data.frames, labels=wide)[2]  # int64 holds them
    np.testing.assert_array_equal(item["label_map"].numpy(), truth(data, 2, wide))


def flip_and_crop(image: torch.Tensor, label_map: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A transform that changes sizes: mirrored left-right, the bottom row dropped."""
    return image.flip(-1)[..., :-1, :], label_map.flip(-1)[:-1, :]


def test_transform_applies_to_the_pair_in_workers(data):
    ds = mt.MaskDataset(data.frames, transform=flip_and_crop)
    batches = list(loader(ds, 2, "fork"))
    items = unbatch(batches)
    assert sorted(i for i, _, _ in items) == sorted(data.reference)
    for ident, image, label_map in items:
        ref = data.reference[ident]
        np.testing.assert_array_equal(label_map.numpy(), ref.label_map[:-1, ::-1])
        np.testing.assert_array_equal(image.permute(1, 2, 0).numpy(), ref.image[:-1, ::-1])


# ----------------------------------------------------------------- DataLoaders

@pytest.mark.parametrize("workers,method", [(0, None)] + [(2, m) for m in METHODS])
@pytest.mark.parametrize("kind", ["map", "iterable"])
def test_dataloader_yields_the_samples_of_iter_samples(data, kind, workers, method):
    cls = mt.MaskDataset if kind == "map" else mt.MaskIterableDataset
    ds = cls(data.frames)
    items = unbatch(loader(ds, workers, method))
    counts = Counter(ident for ident, _, _ in items)
    assert set(counts) == set(data.reference) and set(counts.values()) == {1}  # every sample exactly once
    for ident, image, label_map in items:
        check_item(data, image, label_map, ident)
    if workers:
        assert ds.dataset.open_readers == 0  # the workers opened their own readers, the parent none


def test_shuffled_map_style_access_returns_the_right_frames(data):
    ds = mt.MaskDataset(data.frames, max_open_readers=2)
    batches = list(loader(ds, 0, None, shuffle=True, generator=torch.Generator().manual_seed(3)))
    items = unbatch(batches)
    order = [ident[0] for ident, _, _ in items]
    assert sorted(order) == list(range(len(ds))) and order != sorted(order)
    for ident, image, label_map in items:
        check_item(data, image, label_map, ident)
    rng = np.random.default_rng(5)
    for i in rng.integers(0, len(ds), 25):  # single random accesses, readers evicted and reopened
        item = ds[int(i)]
        assert item["frame_index"] == i
        check_item(data, item["image"], item["label_map"], key(item))
    assert ds.dataset.open_readers <= 2


class EnvProbe(mt.MaskDataset):
    """Adds what the worker process saw: its id, kernel threads, its open decoders' thread counts."""

    def __getitems__(self, indices):
        items = super().__getitems__(indices)
        info = get_worker_info()
        decoders = sorted({r.stream.codec_context.thread_count for r in self.dataset.readers._readers.values()
                           if r.stream is not None})
        for item in items:
            item.update(worker=info.id, kernel_threads=os.environ.get("MASKDEC_KERNEL_THREADS"),
                        decoder_threads=decoders)
        return items


@pytest.mark.parametrize("method", METHODS[:2])
def test_workers_run_one_decoder_and_one_kernel_thread(data, method):
    ds = EnvProbe(data.frames)
    batches = list(loader(ds, 2, method))
    assert {w for b in batches for w in b["worker"].tolist()} == {0, 1}
    assert {t for b in batches for t in b["kernel_threads"]} == {"1"}
    assert {tuple(d) for b in batches for d in b["decoder_threads"]} == {(1,)}


def collect_garbage(image: torch.Tensor, label_map: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    gc.collect()
    return image, label_map


def test_forked_workers_neither_free_nor_reuse_the_parents_decoders(data):
    """FFmpeg decoders and scalers made in the parent wait on threads a forked child lacks:
    a child that frees them (its garbage collector, or a reader cache it inherited) hangs."""
    ds = mt.MaskDataset(data.frames, transform=collect_garbage)
    assert ds[N_FRAMES + 2]["frame_index"] == N_FRAMES + 2  # the parent holds open readers
    gc.disable()
    try:
        leftover = maskdec.iter_samples(data.frames)  # half read: open threaded decoders, converted frames
        next(leftover), next(leftover)
        cycle = {"iterator": leftover}
        cycle["cycle"] = cycle
        del leftover, cycle  # garbage only the collector can free
        items = unbatch(loader(ds, 2, "fork"))  # each worker collects garbage for every item
    finally:
        gc.enable()
    assert sorted(ident for ident, _, _ in items) == sorted(data.reference)
    for ident, image, label_map in items:
        check_item(data, image, label_map, ident)
    assert ds.dataset.open_readers > 0  # the parent's readers are still its own
    assert ds[1]["frame_index"] == 1


# ----------------------------------------------------------------- sharding

class WorkerTag(mt.MaskIterableDataset):
    """Tags each item with the worker that streamed it."""

    def __iter__(self):
        for item in super().__iter__():
            item["worker"] = get_worker_info().id
            yield item


def test_iterable_workers_stream_whole_files_in_order_each_sample_once(data):
    ds = WorkerTag(data.frames)
    streams: dict[int, list[int]] = {0: [], 1: []}
    for b in DataLoader(ds, batch_size=None, num_workers=2, multiprocessing_context="fork"):
        streams[b["worker"]].append(b["frame_index"])
    assert sorted(streams[0] + streams[1]) == list(range(len(data.frames)))  # exactly once
    for stream in streams.values():
        assert stream and stream == sorted(stream)  # input order within a worker
    mine = [{(str(data.frames[i].base_dir), s.uri) for i in streams[w] for s in data.frames[i].sources} |
            {(str(data.frames[i].base_dir), m.uri) for i in streams[w] for s in data.frames[i].sources
             for m in s.masks} for w in (0, 1)]
    assert not mine[0] & mine[1]  # no media file read by both workers
    assert abs(len(streams[0]) - len(streams[1])) <= N_FRAMES + 1  # balanced by sample count


def test_explicit_ranks_split_the_files_and_workers_split_each_rank(data):
    everything = []
    for rank in (0, 1):
        ds = mt.MaskIterableDataset(data.frames, rank=rank, world_size=2)
        assert ds.rank_and_world() == (rank, 2)
        alone = [key(item) for item in ds]
        assert len(alone) == len(ds) > 0 and alone == sorted(alone)
        with_workers = [ident for ident, _, _ in unbatch(loader(ds, 2, "fork"))]
        assert sorted(with_workers) == alone  # the rank's workers split exactly its samples
        everything += alone
    assert sorted(everything) == sorted(data.reference)
    with pytest.raises(maskdec.MaskdecError, match="rank"):
        mt.MaskIterableDataset(data.frames, rank=2, world_size=2)
    with pytest.raises(maskdec.MaskdecError, match="both"):
        mt.MaskIterableDataset(data.frames, rank=0)


def test_requests_sharing_a_file_stay_in_one_shard(data, tmp_path):
    a, b = (ex.root for ex in data.examples[:2])
    frames = [frame_dict(a / "source.mp4", a / "mask.mp4", palette_rois(), timestamp=0),
              frame_dict(b / "source.mp4", b / "mask.mp4", palette_rois(), timestamp=0),
              frame_dict(b / "source.mp4", a / "mask.mp4", palette_rois(), timestamp=33),  # joins a and b
              frame_dict(a / "still.png", a / "still_mask.png", palette_rois())]
    ds = mt.MaskIterableDataset(frames)
    assert ds.units == [[0, 1, 2], [3]]
    shards = [mt.MaskIterableDataset(frames, rank=r, world_size=2) for r in (0, 1)]
    assert sorted(len(s) for s in shards) == [1, 3]


def _ddp_rank(rank: int, store: str, frames_paths: list[str], out: str) -> None:
    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    torch.distributed.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=2)
    try:
        ds = mt.MaskIterableDataset([f for p in frames_paths for f in load_frames(p)])
        seen = [ident for ident, _, _ in unbatch(loader(ds, 2, "fork"))]
        copied = pickle.loads(pickle.dumps(ds)).rank_and_world()  # what a spawned worker gets
        Path(out).write_text(json.dumps([ds.rank_and_world(), copied, len(ds), seen]))
    finally:
        torch.distributed.destroy_process_group()


def test_torch_distributed_ranks_each_get_their_share(data, tmp_path):
    paths = [str(ex.frames_path) for ex in data.examples]
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_ddp_rank, args=(r, str(tmp_path / "store"), paths, str(tmp_path / f"rank{r}.json")))
             for r in (0, 1)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    seen = []
    for r in (0, 1):
        share, copied, length, idents = json.loads((tmp_path / f"rank{r}.json").read_text())
        assert share == copied == [r, 2]
        assert len(idents) == length > 0
        seen += [tuple(i) for i in idents]
    assert sorted(seen) == sorted(data.reference)


# ----------------------------------------------------------------- collate

def test_collate_pads_images_with_zero_and_label_maps_with_ignore_index(data):
    ds = mt.MaskDataset(data.frames, ignore_index=100)
    picks = [0, N_FRAMES + 1, 2 * (N_FRAMES + 1) + 2]  # 64x48, 48x32, 80x40
    items = [ds[i] for i in picks]
    batch = ds.collate(items)
    assert batch["image"].shape == (3, 3, 48, 80) and batch["image"].dtype == torch.uint8
    assert batch["label_map"].shape == (3, 48, 80) and batch["label_map"].dtype == torch.int64
    assert batch["size"].tolist() == [[48, 64], [32, 48], [40, 80]]
    assert batch["frame_index"].tolist() == picks and batch["frame_index"].dtype == torch.int64
    assert batch["timestamp"].tolist() == [it["timestamp"] for it in items]
    assert batch["source_id"] == ["front"] * 3 and batch["mask_id"] == ["seg"] * 3
    for k, item in enumerate(items):
        h, w = item["label_map"].shape
        assert torch.equal(batch["label_map"][k, :h, :w], item["label_map"])
        assert torch.equal(batch["image"][k, :, :h, :w], item["image"])
        assert (batch["label_map"][k, h:, :] == 100).all() and (batch["label_map"][k, :, w:] == 100).all()
        assert (batch["image"][k, :, h:, :] == 0).all() and (batch["image"][k, :, :, w:] == 0).all()
    assert (mt.collate(items)["label_map"][1, 32:] == 255).all()  # the plain function: ignore_index 255


def test_collate_without_images_and_bad_batches(data):
    ds = mt.MaskDataset(data.frames, images=False, label_dtype=torch.uint8)
    batch = mt.collate([ds[0], ds[N_FRAMES + 1]])
    assert batch["image"] is None and batch["label_map"].dtype == torch.uint8
    assert batch["label_map"].shape == (2, 48, 64) and (batch["label_map"][1, 32:] == 255).all()
    with pytest.raises(maskdec.MaskdecError, match="ignore_index"):
        mt.collate([ds[0]], ignore_index=65535)
    with pytest.raises(maskdec.MaskdecError, match="empty"):
        mt.collate([])
    with_image = mt.MaskDataset(data.frames)[0]
    with pytest.raises(maskdec.MaskdecError, match="image"):
        mt.collate([with_image, {**with_image, "image": None}])
    with pytest.raises(maskdec.MaskdecError, match="does not batch"):
        mt.collate([with_image, {**with_image, "label_map": with_image["label_map"].to(torch.int32)}])
