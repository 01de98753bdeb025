"""Output buffers reused only once dropped (ArrayPool), and decoding ahead in a thread (Prefetch)."""
from __future__ import annotations

import gc
import threading
import time

import numpy as np
import pytest

import maskdec
from maskdec.buffers import ArrayPool
from maskdec.media.prefetch import Prefetch


# ----------------------------------------------------------------- ArrayPool

def test_a_dropped_array_is_reused_and_a_kept_one_never():
    pool = ArrayPool()
    kept = pool.empty((4, 6), np.uint8)
    kept[:] = 7
    dropped = pool.empty((4, 6), np.uint8)
    address = dropped.__array_interface__["data"][0]
    del dropped
    again = pool.empty((4, 6), np.uint8)
    assert again.__array_interface__["data"][0] == address  # recycled
    assert not np.shares_memory(again, kept)
    again[:] = 1
    assert (kept == 7).all()


@pytest.mark.parametrize("holder", ["view", "memoryview", "list"])
def test_anything_that_refers_to_an_array_keeps_its_buffer(holder):
    pool = ArrayPool()
    array = pool.empty((8, 8), np.uint16)
    array[:] = 5
    ref = {"view": lambda a: a[2:, ::2], "memoryview": memoryview, "list": lambda a: [a]}[holder](array)
    del array
    for _ in range(10):  # none of these may land on the held buffer
        pool.empty((8, 8), np.uint16)[:] = 9
    held = ref[0] if holder == "list" else np.asarray(ref)
    assert (held == 5).all()


def test_torch_tensors_made_from_a_label_map_keep_it():
    torch = pytest.importorskip("torch")
    pool = ArrayPool()
    array = pool.empty((3, 3), np.uint8)
    array[:] = 3
    tensor = torch.from_numpy(array)
    del array
    for _ in range(5):
        pool.empty((3, 3), np.uint8)[:] = 0
    assert (tensor == 3).all()


def test_the_pool_forgets_old_buffers_beyond_its_size():
    pool = ArrayPool(size=4)
    kept = [pool.empty((2, 2), np.uint8) for _ in range(20)]
    assert len(pool) <= 5
    assert len({a.__array_interface__["data"][0] for a in kept}) == 20  # every kept array has its own memory


def test_kept_samples_keep_their_label_maps_while_dropped_ones_are_recycled(example):
    reference = [s.label_map.copy() for s in maskdec.iter_samples(example.frames_path, images=False)]
    it = maskdec.iter_samples(example.frames_path, images=False)
    kept, addresses = {}, set()
    for i, sample in enumerate(it):
        addresses.add(sample.label_map.__array_interface__["data"][0])
        if i % 3 == 0:
            kept[i] = sample.label_map[1:]  # a view is enough to keep the buffer
    for i, view in kept.items():
        np.testing.assert_array_equal(view, reference[i][1:], err_msg=f"sample {i} was overwritten")
    n = len(reference)
    assert len(addresses) < n, "dropped label maps were never recycled"


# ----------------------------------------------------------------- Prefetch

def _threads() -> set:
    return {t for t in threading.enumerate() if t.name == "maskdec-decode"}


def test_prefetch_keeps_order_and_raises_where_the_source_did():
    def source():
        yield from range(5)
        raise ValueError("bad at 5")

    got = []
    with pytest.raises(ValueError, match="bad at 5"):
        for item in Prefetch(source(), depth=2):
            got.append(item)
    assert got == list(range(5))


def test_prefetch_close_stops_the_thread_and_closes_the_source():
    closed = threading.Event()

    def endless():
        try:
            i = 0
            while True:
                yield i
                i += 1
        finally:
            closed.set()

    before = _threads()
    ahead = Prefetch(endless(), depth=2)
    assert [next(ahead) for _ in range(3)] == [0, 1, 2]
    ahead.close()
    assert closed.is_set()
    assert _threads() == before
    with pytest.raises(StopIteration):
        next(ahead)


def test_prefetch_stays_within_its_byte_budget_and_lets_a_big_item_through():
    produced = []

    def source():
        for i in range(20):
            produced.append(i)
            yield i

    sizes = {3: 100}  # one item bigger than the whole budget: it waits for an empty queue, then passes
    ahead = Prefetch(source(), depth=100, max_bytes=35, size=lambda i: sizes.get(i, 10))
    deadline = time.monotonic() + 5
    while len(produced) < 4 and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.1)
    assert len(produced) == 4  # three of 10 bytes wait; the fourth (100 bytes) is held back in the thread
    got = [next(ahead) for _ in range(3)]
    assert got == [0, 1, 2]
    assert next(ahead) == 3  # alone in the queue, over the budget
    assert list(ahead) == list(range(4, 20))
    with pytest.raises(StopIteration):
        next(ahead)


def test_an_abandoned_iterator_leaves_no_decoding_thread(example):
    before = _threads()
    it = maskdec.iter_samples(example.frames_path)
    next(it)
    assert _threads() - before, "no decode-ahead thread ran"
    del it
    gc.collect()  # the iterator and its generator form a cycle
    deadline = time.monotonic() + 10
    while _threads() - before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _threads() - before
