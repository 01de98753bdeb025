"""maskdec.tables: palette index tables checked cell for cell against a brute-force numpy
oracle written here. Each cell (RGB, or YUV code values converted to RGB in floating point,
clipped, not rounded) gets 1 + the index of the nearest palette colour within sqrt(radius2),
0 if none; equidistant colours go to the smaller index. The YUV `dist` table holds
ceil(sqrt(distance to the nearest colour)), exact up to the cap, 255 above it.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from maskdec import MaskdecError
from maskdec.errors import LabelError
from maskdec.tables import rgb_index_table, yuv_index_table

CITYSCAPES = [(128, 64, 128), (244, 35, 232), (70, 70, 70), (102, 102, 156), (190, 153, 153), (153, 153, 153),
              (250, 170, 30), (220, 220, 0), (107, 142, 35), (152, 251, 152), (70, 130, 180), (220, 20, 60),
              (255, 0, 0), (0, 0, 142), (0, 0, 70), (0, 60, 100), (0, 80, 100), (0, 0, 230), (119, 11, 32)]
SATURATED = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0), (0, 255, 255), (255, 0, 255),
             (0, 0, 0), (255, 255, 255)]
KR_KB = {"bt601": (0.299, 0.114), "bt709": (0.2126, 0.0722), "bt2020": (0.2627, 0.0593)}
MATRICES = [(m, full) for m in KR_KB for full in (False, True)]
HUGE = 10 ** 9  # farther than any two colours


# ----------------------------------------------------------------- the oracle

def yuv_to_rgb(keys: np.ndarray, matrix: str, full_range: bool) -> np.ndarray:
    """(n, 3) float64 RGB of chroma-major keys (U << 16 | V << 8 | Y), 0..255, unrounded."""
    kr, kb = KR_KB[matrix]
    u, v, y = ((keys >> s) & 255 for s in (16, 8, 0))
    if full_range:
        luma, cb, cr = y / 255.0, (u - 128.0) / 255.0, (v - 128.0) / 255.0
    else:
        luma, cb, cr = (y - 16.0) / 219.0, (u - 128.0) / 224.0, (v - 128.0) / 224.0
    r = luma + 2.0 * (1.0 - kr) * cr
    b = luma + 2.0 * (1.0 - kb) * cb
    g = (luma - kr * r - kb * b) / (1.0 - kr - kb)
    return np.stack([255.0 * np.clip(x, 0.0, 1.0) for x in (r, g, b)], axis=1)


def rgb_of(keys: np.ndarray) -> np.ndarray:
    return np.stack([(keys >> s) & 255 for s in (16, 8, 0)], axis=1).astype(np.int64)


def oracle(points: np.ndarray, colours: np.ndarray, radius2: int) -> tuple[np.ndarray, np.ndarray]:
    """Per point: 1 + the first nearest colour within radius2 (else 0), and the squared distance
    to the nearest colour (inf without colours). Same arithmetic order as the kernels."""
    index = np.zeros(len(points), np.int64)
    nearest = np.full(len(points), np.inf)
    if len(colours) == 0:
        return index, nearest
    c = colours.astype(points.dtype)
    step = max(1, 4_000_000 // len(colours))
    for s in range(0, len(points), step):
        p = points[s:s + step]
        d2 = ((p[:, None, 0] - c[None, :, 0]) * (p[:, None, 0] - c[None, :, 0])
              + (p[:, None, 1] - c[None, :, 1]) * (p[:, None, 1] - c[None, :, 1])
              + (p[:, None, 2] - c[None, :, 2]) * (p[:, None, 2] - c[None, :, 2]))
        k = np.argmin(d2, axis=1)  # the first minimum: ties go to the smaller index
        d = d2[np.arange(len(p)), k]
        index[s:s + step] = np.where(d <= radius2, k + 1, 0)
        nearest[s:s + step] = d
    return index, nearest


def sample_keys(colours: np.ndarray, rng: np.random.Generator, yuv: dict | None = None,
                slabs: tuple[int, ...] = (0, 255), n_random: int = 100_000) -> np.ndarray:
    """Random cells, cells around each colour (its RGB, or its approximate YUV codes), and every
    cell of a few whole first-axis slabs (U = 0 and 255 hold the most saturated chroma)."""
    parts = [rng.integers(0, 1 << 24, n_random)]
    parts += [(np.int64(s) << 16) + np.arange(1 << 16) for s in slabs]
    if len(colours):
        centres = colours.astype(np.float64) if yuv is None else rgb_to_codes(colours, **yuv)
        pick = rng.integers(0, len(colours), 40_000)
        cells = np.clip(np.rint(centres[pick] + rng.normal(0, 8, (len(pick), 3))), 0, 255).astype(np.int64)
        parts.append((cells[:, 0] << 16) | (cells[:, 1] << 8) | cells[:, 2])
    return np.concatenate(parts)


def rgb_to_codes(colours: np.ndarray, matrix: str, full_range: bool) -> np.ndarray:
    """Approximate (U, V, Y) code values of RGB colours (the inverse conversion, unclipped)."""
    kr, kb = KR_KB[matrix]
    r, g, b = (colours[:, i] / 255.0 for i in range(3))
    luma = kr * r + (1 - kr - kb) * g + kb * b
    cb, cr = (b - luma) / (2 * (1 - kb)), (r - luma) / (2 * (1 - kr))
    if full_range:
        return np.stack([128 + 255 * cb, 128 + 255 * cr, 255 * luma], axis=1)
    return np.stack([128 + 224 * cb, 128 + 224 * cr, 16 + 219 * luma], axis=1)


def check_rgb(colours, radius2, dtype=np.uint8, seed=0, keys=None):
    colours = np.asarray(colours, np.uint8).reshape(-1, 3)
    table = rgb_index_table(colours, radius2, dtype)
    assert table.shape == (1 << 24,) and table.dtype == dtype and not table.flags.writeable
    if keys is None:
        keys = sample_keys(colours, np.random.default_rng(seed))
    want, _ = oracle(rgb_of(keys), colours, radius2)
    np.testing.assert_array_equal(table[keys], want)
    return table


def check_yuv(colours, radius2, matrix="bt709", full_range=False, dtype=np.uint8, seed=0, keys=None):
    colours = np.asarray(colours, np.uint8).reshape(-1, 3)
    table, dist = yuv_index_table(colours, radius2, matrix, full_range, dtype)
    assert table.shape == dist.shape == (1 << 24,) and table.dtype == dtype and dist.dtype == np.uint8
    assert not table.flags.writeable and not dist.flags.writeable
    if keys is None:
        keys = sample_keys(colours, np.random.default_rng(seed), {"matrix": matrix, "full_range": full_range})
    want, nearest = oracle(yuv_to_rgb(keys, matrix, full_range), colours, radius2)
    np.testing.assert_array_equal(table[keys], want)
    exact = np.minimum(np.ceil(np.sqrt(np.minimum(nearest, 255.0 ** 2))), 255)
    cap = distance_cap(radius2)
    np.testing.assert_array_equal(dist[keys], np.where(exact <= cap, exact, 255))
    return table, dist


def distance_cap(radius2: int) -> int:
    """Up to this value `dist` is exact: max(ceil(sqrt(radius2)), 16) + 1."""
    root = math.isqrt(radius2)
    return max(root + (root * root < radius2), 16) + 1


def palette(n: int, seed: int = 0) -> np.ndarray:
    """Cityscapes' colours, then random ones: n distinct colours in canonical (sorted) order."""
    rng = np.random.default_rng(seed)
    found = {tuple(c) for c in CITYSCAPES[:n]}
    while len(found) < n:
        found.add(tuple(int(x) for x in rng.integers(0, 256, 3)))
    return np.array(sorted(found), np.uint8).reshape(-1, 3)


# ----------------------------------------------------------------- tables match the oracle

CASES = [(0, 3600), (1, 0), (1, 3600), (2, 9), (5, 3600), (5, HUGE), (20, 0), (20, 30), (20, 3600),
         (20, HUGE), (255, 0), (255, 3600), (255, HUGE)]


@pytest.mark.parametrize("n,radius2", CASES)
def test_rgb_table_matches_the_oracle(n, radius2):
    check_rgb(palette(n, seed=n), radius2)


@pytest.mark.parametrize("n,radius2", CASES)
def test_yuv_table_matches_the_oracle(n, radius2):
    check_yuv(palette(n, seed=n), radius2)


@pytest.mark.parametrize("matrix,full_range", MATRICES)
@pytest.mark.parametrize("radius2", [25, 3600])
def test_yuv_every_matrix_and_range(matrix, full_range, radius2):
    check_yuv(np.array(sorted(CITYSCAPES + SATURATED), np.uint8), radius2, matrix, full_range)


@pytest.mark.parametrize("matrix,full_range", MATRICES)
def test_saturated_colours_where_yuv_leaves_the_gamut(matrix, full_range):
    """Around pure red, blue, ... most YUV cells lie outside the RGB cube and are clipped onto it:
    whole slabs of extreme U and V, all of them, must still match."""
    colours = np.array(sorted(SATURATED), np.uint8)
    slabs = (0, 1, 16, 128, 240, 254, 255)
    keys = np.concatenate([(np.int64(s) << 16) + np.arange(1 << 16) for s in slabs]  # fixed U
                          + [((np.arange(256, dtype=np.int64)[:, None] << 16)
                              + (np.int64(v) << 8) + np.arange(256)).reshape(-1) for v in (0, 255)])  # fixed V
    for radius2 in (100, 3600):
        check_yuv(colours, radius2, matrix, full_range, keys=keys)
    check_rgb(colours, 3600)


def test_uint16_tables_for_more_than_255_colours():
    colours = palette(300, seed=3)
    table = check_rgb(colours, 3600, np.uint16)
    assert table.max() == 300  # the last colour's own cell
    check_yuv(colours, 3600, "bt601", True, np.uint16)


def test_a_full_16_bit_palette():
    """65535 colours, the most a uint16 index holds (checked on a sample of cells)."""
    rng = np.random.default_rng(7)
    colours = np.unique(rng.integers(0, 256, (80_000, 3)).astype(np.uint8), axis=0)[:65535]
    assert len(colours) == 65535
    keys = np.concatenate([rng.integers(0, 1 << 24, 1500),
                           (colours[::50].astype(np.int64) * [1 << 16, 1 << 8, 1]).sum(axis=1)])
    check_rgb(colours, 3600, np.uint16, keys=keys)
    check_yuv(colours, 3600, "bt709", False, np.uint16, keys=keys)


# ----------------------------------------------------------------- ties and near-duplicates

def test_near_duplicate_and_repeated_colours():
    colours = np.array([(10, 10, 10), (10, 10, 11), (10, 10, 11), (11, 10, 10), (12, 12, 12),
                        (200, 200, 200), (201, 201, 201)], np.uint8)
    table = check_rgb(colours, 3600)
    assert table[(10 << 16) | (10 << 8) | 11] == 2  # the repeated colour: its first index
    check_yuv(colours, 3600, "bt601", False)
    check_yuv(colours, 3600, "bt709", True)


@pytest.mark.parametrize("reverse", [False, True])
def test_rgb_ties_go_to_the_smaller_index(reverse):
    colours = np.array([(100, 100, 100), (102, 102, 100), (104, 100, 100)], np.uint8)
    if reverse:
        colours = colours[::-1].copy()
    table = check_rgb(colours, 3600)
    assert table[(102 << 16) | (100 << 8) | 100] == 1  # 2 away from all three: the first wins
    assert table[(103 << 16) | (101 << 8) | 100] == (2 if not reverse else 1)  # sqrt(2) from the last two


@pytest.mark.parametrize("reverse", [False, True])
def test_yuv_ties_go_to_the_smaller_index(reverse):
    """Two colours exactly as far (in floating point) from a YUV cell's RGB value."""
    keys = (np.int64(128) << 16) | (np.int64(128) << 8) | np.arange(256)
    rgb = yuv_to_rgb(keys, "bt601", True)
    y = next(i for i in range(40, 200) if rgb[i, 0] == round(rgb[i, 0]))  # R lands on an integer
    r, g, b = rgb[y]
    base = (int(round(g)), int(round(b)))
    colours = np.array([(int(r) - 5, *base), (int(r) + 5, *base)], np.uint8)
    if reverse:
        colours = colours[::-1].copy()
    table, _ = check_yuv(colours, 3600, "bt601", True)
    assert table[keys[y]] == 1


# ----------------------------------------------------------------- dist, empty palettes, threads, errors

@pytest.mark.parametrize("radius2", [0, 400, 3600, 40_000, HUGE])
def test_yuv_dist_is_exact_up_to_the_cap(radius2):
    cap = distance_cap(radius2)
    colours = np.array(CITYSCAPES[:6], np.uint8)
    _, dist = check_yuv(colours, radius2, "bt709", False)
    assert set(np.unique(dist[dist > cap]).tolist()) <= {255}  # beyond the cap: 255
    if radius2 <= 3600:
        assert (dist == 255).any()


def test_no_colours_gives_empty_tables():
    colours = np.zeros((0, 3), np.uint8)
    assert not rgb_index_table(colours, HUGE, np.uint8).any()
    table, dist = yuv_index_table(colours, HUGE, "bt601", False, np.uint16)
    assert not table.any() and (dist == 255).all()


def test_thread_count_does_not_change_the_tables(monkeypatch):
    colours = palette(40, seed=5)
    monkeypatch.setenv("MASKDEC_KERNEL_THREADS", "1")
    one = rgb_index_table(colours, 3600, np.uint8), *yuv_index_table(colours, 3600, "bt709", False, np.uint8)
    monkeypatch.setenv("MASKDEC_KERNEL_THREADS", "3")
    three = rgb_index_table(colours, 3600, np.uint8), *yuv_index_table(colours, 3600, "bt709", False, np.uint8)
    for a, b in zip(one, three):
        np.testing.assert_array_equal(a, b)


def test_bad_input_is_refused_clearly():
    ok = np.array(CITYSCAPES, np.uint8)
    with pytest.raises(LabelError, match="256 colours"):
        rgb_index_table(palette(256), 0, np.uint8)
    with pytest.raises(LabelError, match="65536 colours"):
        yuv_index_table(np.zeros((65536, 3), np.uint8), 0, "bt601", False, np.uint16)
    with pytest.raises(MaskdecError, match=r"\(n, 3\) uint8"):
        rgb_index_table(ok.astype(np.int64), 0, np.uint8)
    with pytest.raises(MaskdecError, match=r"\(n, 3\) uint8"):
        rgb_index_table(ok[:, :2], 0, np.uint8)
    with pytest.raises(MaskdecError, match="radius2"):
        rgb_index_table(ok, -1, np.uint8)
    with pytest.raises(MaskdecError, match="radius2"):
        rgb_index_table(ok, 2.5, np.uint8)
    with pytest.raises(MaskdecError, match="uint8 or uint16"):
        rgb_index_table(ok, 0, np.int32)
    with pytest.raises(MaskdecError, match="bt666"):
        yuv_index_table(ok, 0, "bt666", False, np.uint8)


def test_the_table_cache_builds_once_for_threads_that_ask_together():
    """Frames are mapped in decode-ahead and pool threads: a table they all need is built once,
    every thread gets that one, and the cache's byte count stays right."""
    import threading
    import time

    from maskdec.lut import _TableCache

    builds = []

    def build(n: int) -> np.ndarray:
        builds.append(n)
        time.sleep(0.05)  # long enough for the other threads to arrive while it builds
        return np.zeros(1000 * n, np.uint8)

    cache = _TableCache(build)
    got: list = []
    threads = [threading.Thread(target=lambda: got.append(cache(3))) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert builds == [3]
    assert len(got) == 6 and all(g is got[0] for g in got)
    assert cache.nbytes == 3000


def test_pack_above_is_numpys_packbits_of_the_comparison():
    """Edge repair's far bits are packed in one pass, bit for bit as numpy packs them."""
    from maskdec._core import tables as core_tables

    rng = np.random.default_rng(2)
    for n in (8, 64, 8 * 1001):
        values = rng.integers(0, 40, n).astype(np.uint8)
        for threshold in (0, 16, 39, 255):
            out = np.empty(n // 8, np.uint8)
            core_tables.pack_above(values, threshold, out)
            np.testing.assert_array_equal(out, np.packbits(values > threshold, bitorder="little"))
