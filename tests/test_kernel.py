"""maskdec.lut.map_pixels / ColourTable and the raw Cython kernels, checked bit for
bit against a plain numpy oracle written here from docs/format.md and lut.py's
contract: each pixel gets the id of the nearest declared colour (Euclidean
distance in the pixel's own units) within the tolerance, ties going to the
smaller colour (compared as tuples), whatever the order of declaration; a colour
declared twice keeps its first id; anything farther gets ignore_index.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from maskdec import ColourTable, MaskdecError, map_pixels
from maskdec._core import kernels

INF = float("inf")
TOLERANCES = [0.0, 1.0, math.sqrt(2), 5.5, 60.0, 200.0, INF]


# ----------------------------------------------------------------- the oracle

def _canonical(table: ColourTable) -> list[tuple[tuple, int]]:
    """(colour, id) with each colour once (its first declaration), sorted by colour."""
    first: dict[tuple, int] = {}
    for colour, label in zip(table.colours, table.ids):
        first.setdefault(tuple(colour), label)
    return sorted(first.items())


def _pick(d2: np.ndarray, ok: np.ndarray, ids: np.ndarray, ignore_index: int, dtype) -> np.ndarray:
    """Per row of d2 (pixels x colours): the id of the first smallest eligible distance."""
    out = np.full(d2.shape[0], ignore_index, dtype=dtype)
    if d2.shape[1] == 0:
        return out
    masked = np.where(ok, d2, np.iinfo(np.int64).max)
    nearest = np.argmin(masked, axis=1)  # argmin returns the first minimum: the smaller colour
    hit = ok.any(axis=1)
    out[hit] = ids[nearest[hit]]
    return out


def oracle_rgb(pixels: np.ndarray, table: ColourTable, tolerance: float) -> np.ndarray:
    """(H, W, 3) uint8 -> (H, W): only (r, g, b) declarations can occur in an RGB mask."""
    h, w = pixels.shape[:2]
    pix = np.asarray(pixels, dtype=np.int64).reshape(-1, 3)
    decl = [(c, i) for c, i in _canonical(table) if len(c) == 3]
    colours = np.array([c for c, _ in decl], dtype=np.int64).reshape(-1, 3)
    ids = np.array([i for _, i in decl], dtype=np.int64)
    d2 = ((pix[:, None, :] - colours[None, :, :]) ** 2).sum(axis=2)
    ok = np.sqrt(d2) <= tolerance
    return _pick(d2, ok, ids, table.ignore_index, table.dtype).reshape(h, w)


def oracle_gray8(pixels: np.ndarray, table: ColourTable, tolerance: float) -> np.ndarray:
    """An 8-bit grey v is the RGB colour (v, v, v)."""
    return oracle_rgb(np.stack([pixels] * 3, axis=-1), table, tolerance)


def oracle_gray16(pixels: np.ndarray, table: ColourTable, tolerance: float) -> np.ndarray:
    """A 16-bit grey is matched by (v,) declarations and by grey triples (v, v, v)."""
    h, w = pixels.shape
    pix = np.asarray(pixels, dtype=np.int64).reshape(-1)
    decl = [(c[0], i) for c, i in _canonical(table) if len(c) == 1 or c[0] == c[1] == c[2]]
    values = np.array([v for v, _ in decl], dtype=np.int64)
    ids = np.array([i for _, i in decl], dtype=np.int64)
    dist = np.abs(pix[:, None] - values[None, :])
    ok = dist <= tolerance
    return _pick(dist * dist, ok, ids, table.ignore_index, table.dtype).reshape(h, w)


# ----------------------------------------------------------------- random inputs

def random_table(rng: np.random.Generator, *, n: int, dtype: str = "uint8", grey16: bool = False) -> ColourTable:
    """A palette drawn from a coarse grid so that repeats and equidistant pixels (ties) occur."""
    grid = rng.integers(0, 256, size=(max(2, n // 2 + 1), 3)) // 4 * 4
    colours = []
    for _ in range(n):
        c = grid[rng.integers(len(grid))].copy()
        if rng.random() < 0.5:
            c = np.clip(c + rng.integers(-6, 7, size=3) // 2 * 2, 0, 255)
        if rng.random() < 0.2:
            c[:] = c[0]  # a grey
        colours.append(tuple(int(x) for x in c))
    if grey16:
        colours += [(int(v),) for v in rng.integers(256, 65536, size=2)]
    if dtype == "uint8":
        ignore = 255
        ids = rng.integers(0, 255, size=len(colours))
    else:
        ignore = 65535
        ids = rng.integers(200, 65535, size=len(colours))
    return ColourTable(tuple(colours), tuple(int(i) for i in ids), ignore, dtype)


def random_rgb(rng: np.random.Generator, table: ColourTable, h: int, w: int) -> np.ndarray:
    """Pixels: exact declared colours, colours nudged a little, and uniform noise."""
    rgb = [c for c in table.colours if len(c) == 3] or [(0, 0, 0)]
    base = np.array(rgb, dtype=np.int64)[rng.integers(len(rgb), size=(h, w))]
    noise = rng.integers(-8, 9, size=(h, w, 3)) * (rng.random((h, w, 1)) < 0.6)
    image = np.clip(base + noise, 0, 255)
    wild = rng.random((h, w)) < 0.15
    image[wild] = rng.integers(0, 256, size=(int(wild.sum()), 3))
    return image.astype(np.uint8)


# ----------------------------------------------------------------- map_pixels, RGB

@pytest.mark.parametrize("tolerance", TOLERANCES)
@pytest.mark.parametrize("seed", [1, 2])
def test_rgb_matches_oracle(seed, tolerance):
    rng = np.random.default_rng(seed * 1000 + TOLERANCES.index(tolerance))
    table = random_table(rng, n=int(rng.integers(1, 9)))
    image = random_rgb(rng, table, 11, 37)  # odd width
    got = map_pixels(image, table, tolerance)
    assert got.dtype == np.uint8 and got.shape == (11, 37)
    np.testing.assert_array_equal(got, oracle_rgb(image, table, tolerance))


@pytest.mark.parametrize("tolerance", [0.0, 3.0, 60.0, INF])
def test_rgb_uint16_table_matches_oracle(tolerance):
    rng = np.random.default_rng(77)
    table = random_table(rng, n=7, dtype="uint16", grey16=True)
    image = random_rgb(rng, table, 9, 15)
    got = map_pixels(image, table, tolerance)
    assert got.dtype == np.uint16
    np.testing.assert_array_equal(got, oracle_rgb(image, table, tolerance))
    assert set(np.unique(got)) <= set(table.ids) | {65535}


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    colours=st.lists(st.tuples(*[st.integers(0, 255).map(lambda v: v // 8 * 8)] * 3), min_size=1, max_size=5),
    tolerance=st.sampled_from([0.0, 1.0, math.sqrt(3), 8.0, 12.5, 100.0, INF]),
    seed=st.integers(0, 2 ** 32 - 1),
    width=st.integers(1, 9),
)
def test_rgb_matches_oracle_hypothesis(colours, tolerance, seed, width):
    rng = np.random.default_rng(seed)
    table = ColourTable(tuple(colours), tuple(int(i) for i in rng.integers(0, 255, len(colours))), 255)
    image = random_rgb(rng, table, 5, width)
    np.testing.assert_array_equal(map_pixels(image, table, tolerance), oracle_rgb(image, table, tolerance))


def test_exact_tolerance_zero_is_exact_match():
    table = ColourTable(((10, 20, 30), (200, 0, 5)), (1, 2), 255)
    image = np.array([[[10, 20, 30], [10, 20, 31], [200, 0, 5], [0, 0, 0]]], dtype=np.uint8)
    np.testing.assert_array_equal(map_pixels(image, table), [[1, 255, 2, 255]])


@pytest.mark.parametrize("d2", [1, 2, 4, 5, 49, 300])
def test_tolerance_boundary_is_inclusive_and_exact(d2):
    """A pixel at distance sqrt(d2) matches at tolerance sqrt(d2), not at the float just below."""
    # find an offset (a, b, c) with a^2 + b^2 + c^2 == d2
    offset = next((a, b, c) for a in range(18) for b in range(18) for c in range(18) if a * a + b * b + c * c == d2)
    table = ColourTable(((100, 100, 100),), (9,), 255)
    image = np.array([[[100 + offset[0], 100 + offset[1], 100 + offset[2]]]], dtype=np.uint8)
    at = math.sqrt(d2)
    below = float(np.nextafter(at, 0.0))
    assert map_pixels(image, table, at)[0, 0] == 9
    assert map_pixels(image, table, below)[0, 0] == 255
    gray16 = np.array([[100 + d2]], dtype=np.uint16)  # 16-bit grey at distance d2 from 100
    assert map_pixels(gray16, table, float(d2))[0, 0] == 9
    assert map_pixels(gray16, table, float(np.nextafter(d2, 0.0)))[0, 0] == 255


def test_ties_go_to_the_smaller_colour_whatever_the_order():
    pixel = np.array([[[1, 0, 0], [0, 0, 0], [2, 0, 0]]], dtype=np.uint8)
    first = ColourTable(((0, 0, 0), (2, 0, 0)), (7, 3), 255)
    second = ColourTable(((2, 0, 0), (0, 0, 0)), (3, 7), 255)
    np.testing.assert_array_equal(map_pixels(pixel, first, 1.0), [[7, 7, 3]])
    np.testing.assert_array_equal(map_pixels(pixel, second, 1.0), [[7, 7, 3]])
    duplicate = ColourTable(((5, 5, 5), (5, 5, 5)), (4, 8), 255)
    assert map_pixels(np.full((1, 1, 3), 5, np.uint8), duplicate)[0, 0] == 4


def test_nearest_wins_over_declaration_order():
    table = ColourTable(((0, 0, 0), (10, 0, 0)), (1, 2), 255)
    image = np.array([[[4, 0, 0], [6, 0, 0], [18, 0, 0]]], dtype=np.uint8)
    np.testing.assert_array_equal(map_pixels(image, table, 10.0), [[1, 2, 2]])
    np.testing.assert_array_equal(map_pixels(image, table, 5.0), [[1, 2, 255]])


def test_one_table_many_tolerances():
    """Cached tables must be keyed by tolerance: go up, then back down."""
    rng = np.random.default_rng(5)
    table = random_table(rng, n=4)
    image = random_rgb(rng, table, 6, 13)
    for tolerance in [0.0, 9.0, INF, 9.0, 0.0]:
        np.testing.assert_array_equal(map_pixels(image, table, tolerance), oracle_rgb(image, table, tolerance))


def test_empty_table_maps_everything_to_ignore():
    table = ColourTable((), (), 255)
    image = np.random.default_rng(0).integers(0, 256, (4, 5, 3), dtype=np.uint8)
    np.testing.assert_array_equal(map_pixels(image, table, INF), np.full((4, 5), 255))


@pytest.mark.parametrize("shape", [(0, 5, 3), (3, 0, 3), (1, 1, 3)])
def test_degenerate_shapes(shape):
    table = ColourTable(((0, 0, 0),), (1,), 255)
    image = np.zeros(shape, dtype=np.uint8)
    got = map_pixels(image, table)
    assert got.shape == shape[:2]
    np.testing.assert_array_equal(got, oracle_rgb(image, table, 0.0))


# ----------------------------------------------------------------- strided, read-only, out

def _views(rng: np.random.Generator, table: ColourTable):
    rgb = random_rgb(rng, table, 9, 23)
    rgba = np.concatenate([rgb, rng.integers(0, 256, (9, 23, 1), dtype=np.uint8)], axis=2)
    padded = np.zeros((9, 24, 3), np.uint8)  # like PyAV's row-padded frames at odd widths
    padded[:, :23] = rgb
    yield "every other column", rgb[:, ::2]
    yield "every other row", rgb[::2]
    yield "rgba[:, :, :3]", rgba[:, :, :3]
    yield "row-padded", padded[:, :23]
    yield "reversed", rgb[::-1, ::-1]
    yield "bgr view", rgb[:, :, ::-1]
    yield "transposed", rgb.transpose(1, 0, 2)
    yield "fortran", np.asfortranarray(rgb)
    yield "broadcast", np.broadcast_to(rgb[3, 4], (5, 7, 3))


@pytest.mark.parametrize("tolerance", [0.0, 10.0])
def test_strided_rgb_input(tolerance):
    rng = np.random.default_rng(11)
    table = random_table(rng, n=5)
    for name, view in _views(rng, table):
        expected = oracle_rgb(np.ascontiguousarray(view), table, tolerance)
        got = map_pixels(view, table, tolerance)
        np.testing.assert_array_equal(got, expected, err_msg=name)


def test_rgba_input_drops_alpha():
    rng = np.random.default_rng(12)
    table = random_table(rng, n=4)
    rgb = random_rgb(rng, table, 7, 9)
    rgba = np.concatenate([rgb, rng.integers(0, 256, (7, 9, 1), dtype=np.uint8)], axis=2)
    np.testing.assert_array_equal(map_pixels(rgba, table, 4.0), oracle_rgb(rgb, table, 4.0))


def test_read_only_input():
    rng = np.random.default_rng(13)
    table = random_table(rng, n=4)
    image = random_rgb(rng, table, 8, 11)
    image.setflags(write=False)
    np.testing.assert_array_equal(map_pixels(image, table, 3.0), oracle_rgb(image, table, 3.0))
    view = image[:, 1::2]
    np.testing.assert_array_equal(map_pixels(view, table, 3.0), oracle_rgb(view, table, 3.0))
    gray = rng.integers(0, 256, (5, 7), dtype=np.uint8)
    gray.setflags(write=False)
    np.testing.assert_array_equal(map_pixels(gray, table, 3.0), oracle_gray8(gray, table, 3.0))


def test_caller_given_out():
    rng = np.random.default_rng(14)
    table = random_table(rng, n=5)
    image = random_rgb(rng, table, 6, 15)
    out = np.full((6, 15), 123, dtype=np.uint8)
    result = map_pixels(image, table, 2.0, out=out)
    assert result is out
    np.testing.assert_array_equal(out, oracle_rgb(image, table, 2.0))


def test_caller_given_strided_out_writes_only_its_cells():
    rng = np.random.default_rng(15)
    table = random_table(rng, n=5)
    image = random_rgb(rng, table, 6, 15)
    big = np.full((6, 30), 77, dtype=np.uint8)
    result = map_pixels(image, table, 2.0, out=big[:, ::2])
    np.testing.assert_array_equal(result, oracle_rgb(image, table, 2.0))
    np.testing.assert_array_equal(big[:, ::2], oracle_rgb(image, table, 2.0))
    assert (big[:, 1::2] == 77).all()


@pytest.mark.parametrize("out", [
    np.zeros((6, 14), np.uint8),          # wrong width
    np.zeros((15, 6), np.uint8),          # transposed shape
    np.zeros((6, 15, 1), np.uint8),       # wrong rank
    np.zeros((6, 15), np.uint16),         # wrong dtype for a uint8 table
    np.zeros((6, 15), np.int8),
])
def test_wrong_out_rejected(out):
    table = ColourTable(((0, 0, 0),), (1,), 255)
    image = np.zeros((6, 15, 3), np.uint8)
    before = out.copy()
    with pytest.raises(MaskdecError, match="out"):
        map_pixels(image, table, out=out)
    np.testing.assert_array_equal(out, before)


def test_wrong_out_dtype_for_uint16_table_rejected():
    table = ColourTable(((0, 0, 0),), (300,), 65535, "uint16")
    with pytest.raises(MaskdecError, match="out"):
        map_pixels(np.zeros((2, 3, 3), np.uint8), table, out=np.zeros((2, 3), np.uint8))
    out = np.zeros((2, 3), np.uint16)
    assert map_pixels(np.zeros((2, 3, 3), np.uint8), table, out=out) is out
    assert (out == 300).all()


def test_read_only_out_rejected():
    table = ColourTable(((0, 0, 0),), (1,), 255)
    out = np.zeros((2, 3), np.uint8)
    out.setflags(write=False)
    with pytest.raises(MaskdecError):
        map_pixels(np.zeros((2, 3, 3), np.uint8), table, out=out)
    assert (out == 0).all()


@pytest.mark.parametrize("pixels", [
    np.zeros((2, 3, 3), np.float32),
    np.zeros((2, 3, 3), np.uint16),
    np.zeros((2, 3, 2), np.uint8),
    np.zeros((2, 3), np.int32),
    np.zeros((2, 3), np.float64),
    np.zeros((6,), np.uint8),
    np.zeros((1, 2, 3, 3), np.uint8),
])
def test_unsupported_pixels_rejected(pixels):
    table = ColourTable(((0, 0, 0),), (1,), 255)
    with pytest.raises(MaskdecError):
        map_pixels(pixels, table)


@pytest.mark.parametrize("tolerance", [-1.0, float("nan"), None])
def test_bad_tolerance_rejected(tolerance):
    table = ColourTable(((0, 0, 0),), (1,), 255)
    with pytest.raises(MaskdecError):
        map_pixels(np.zeros((1, 1, 3), np.uint8), table, tolerance)


def test_colour_table_lengths_must_agree():
    with pytest.raises(ValueError):
        ColourTable(((0, 0, 0), (1, 1, 1)), (1,), 255)


# ----------------------------------------------------------------- grayscale masks

@pytest.mark.parametrize("tolerance", [0.0, 2.0, 30.0, INF])
def test_gray8_matches_grey_triples(tolerance):
    rng = np.random.default_rng(21)
    table = random_table(rng, n=6, grey16=True)
    greys = [c[0] for c in table.colours if len(c) == 3 and c[0] == c[1] == c[2]]
    gray = rng.integers(0, 256, (9, 17), dtype=np.uint8)
    if greys:
        gray[::2] = np.array(greys, np.uint8)[rng.integers(len(greys), size=(5, 17))]
    got = map_pixels(gray, table, tolerance)
    np.testing.assert_array_equal(got, oracle_gray8(gray, table, tolerance))
    # the same as mapping the RGB image (v, v, v), for plain, strided and (H, W, 1) input
    np.testing.assert_array_equal(got, map_pixels(np.stack([gray] * 3, axis=-1), table, tolerance))
    np.testing.assert_array_equal(map_pixels(gray[:, ::3], table, tolerance), got[:, ::3])
    np.testing.assert_array_equal(map_pixels(gray[:, :, None], table, tolerance), got)


def test_gray8_exact():
    # [v] with v <= 255 is declared as the grey (v, v, v) (labels.normalise_colour)
    table = ColourTable(((7, 7, 7), (9, 9, 10), (300,)), (1, 2, 3), 255)
    gray = np.array([[7, 8, 9, 44]], dtype=np.uint8)
    np.testing.assert_array_equal(map_pixels(gray, table), [[1, 255, 255, 255]])


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_gray_ties_go_to_the_smaller_colour(dtype):
    gray = np.array([[12, 10, 14, 11]], dtype=dtype)
    first = ColourTable(((10, 10, 10), (14, 14, 14)), (1, 2), 255)
    second = ColourTable(((14, 14, 14), (10, 10, 10)), (2, 1), 255)
    np.testing.assert_array_equal(map_pixels(gray, first, INF), [[1, 1, 2, 1]])
    np.testing.assert_array_equal(map_pixels(gray, second, INF), [[1, 1, 2, 1]])


@pytest.mark.parametrize("tolerance", [0.0, 3.0, 1000.0, INF])
def test_gray16_matches_oracle(tolerance):
    rng = np.random.default_rng(31)
    values = [int(v) for v in rng.integers(0, 65536, size=5)] + [40000, 40006]  # 40003 is a tie
    colours = tuple((v,) if v > 255 else (v, v, v) for v in values) + ((10, 20, 30), (120, 120, 120))
    ids = tuple(int(i) for i in rng.permutation(len(colours)) + 1000)
    table = ColourTable(colours, ids, 65535, "uint16")
    pick = np.array([40003, 120, 10] + values, dtype=np.int64)
    gray = np.clip(pick[rng.integers(len(pick), size=(13, 21))] + rng.integers(-4, 5, (13, 21)), 0, 65535)
    gray[0, :6] = [40003, 120, 119, 10, 0, 65535]
    gray = gray.astype(np.uint16)
    got = map_pixels(gray, table, tolerance)
    assert got.dtype == np.uint16
    np.testing.assert_array_equal(got, oracle_gray16(gray, table, tolerance))
    np.testing.assert_array_equal(map_pixels(gray[::-1, 1::2], table, tolerance), got[::-1, 1::2])


def test_gray16_exact_values():
    table = ColourTable(((1000,), (5, 5, 5), (1, 2, 3)), (1, 2, 3), 255)
    gray = np.array([[1000, 5, 1, 2, 999, 0]], dtype=np.uint16)
    np.testing.assert_array_equal(map_pixels(gray, table), [[1, 2, 255, 255, 255, 255]])
    np.testing.assert_array_equal(map_pixels(gray, table, 1.0), [[1, 2, 255, 255, 1, 255]])


def test_gray16_with_uint8_out():
    table = ColourTable(((1000,), (5, 5, 5)), (1, 2), 255)
    gray = np.array([[1000, 5], [6, 999]], dtype=np.uint16)
    out = np.zeros((2, 2), np.uint8)
    assert map_pixels(gray, table, out=out) is out
    np.testing.assert_array_equal(out, [[1, 2], [255, 255]])


# ----------------------------------------------------------------- raw kernels

@pytest.fixture(scope="module")
def rgb_luts():
    rng = np.random.default_rng(41)
    return {
        np.uint8: rng.integers(0, 256, 1 << 24, dtype=np.uint8),
        np.uint16: rng.integers(0, 65536, 1 << 24, dtype=np.uint16),
    }


def _rgb_keys(image: np.ndarray) -> np.ndarray:
    image = image.astype(np.uint32)
    return (image[..., 0] << 16) | (image[..., 1] << 8) | image[..., 2]


@pytest.fixture(scope="module")
def remaps():
    rng = np.random.default_rng(40)
    return {label: rng.integers(0, np.iinfo(label).max + 1, 65536, dtype=label) for label in (np.uint8, np.uint16)}


@pytest.mark.parametrize("index", [np.uint8, np.uint16])
@pytest.mark.parametrize("label", [np.uint8, np.uint16])
def test_raw_map_rgb(rgb_luts, remaps, index, label):
    rng = np.random.default_rng(42)
    lut, remap = rgb_luts[index], remaps[label]
    rgb = rng.integers(0, 256, (7, 31, 3), dtype=np.uint8)
    rgba = rng.integers(0, 256, (7, 31, 4), dtype=np.uint8)
    views = {
        "contiguous": rgb,
        "every other column": rgb[:, ::2],
        "rgba[:, :, :3]": rgba[:, :, :3],
        "rgba[:, :, 1:]": rgba[:, :, 1:],
        "reversed columns": rgb[:, ::-1],
        "bgr view": rgb[:, :, ::-1],
        "transposed": rgb.transpose(1, 0, 2),
        "fortran": np.asfortranarray(rgb),
        "broadcast": np.broadcast_to(rgb[2, 3], (4, 6, 3)),
    }
    for name, view in views.items():
        out = np.empty(view.shape[:2], label)
        kernels.map_rgb(view, lut, remap, out)
        np.testing.assert_array_equal(out, remap[lut[_rgb_keys(view)]], err_msg=name)
    read_only = rgb[:, 1::2].copy()
    read_only.setflags(write=False)
    big = np.zeros((7, 30), label)
    kernels.map_rgb(read_only, lut, remap, big[:, ::2])  # strided out
    np.testing.assert_array_equal(big[:, ::2], remap[lut[_rgb_keys(read_only)]])
    assert (big[:, 1::2] == 0).all()


@pytest.mark.parametrize("gray", [np.uint8, np.uint16])
@pytest.mark.parametrize("index", [np.uint8, np.uint16])
@pytest.mark.parametrize("label", [np.uint8, np.uint16])
def test_raw_map_gray(remaps, gray, index, label):
    rng = np.random.default_rng(43)
    size = 1 << (8 * np.dtype(gray).itemsize)
    lut = rng.integers(0, np.iinfo(index).max + 1, size, dtype=index)
    remap = remaps[label]
    lut.setflags(write=False)
    image = rng.integers(0, size, (9, 29), dtype=gray)
    views = {
        "contiguous": image,
        "every third column": image[:, ::3],
        "reversed": image[::-1, ::-1],
        "transposed": image.T,
        "channel of (H, W, 2)": np.stack([image, image[::-1]], axis=-1)[:, :, 1],
        "broadcast": np.broadcast_to(image[0], (4, 29)),
    }
    for name, view in views.items():
        ro = view.view()
        ro.setflags(write=False)
        out = np.empty(view.shape, label)
        kernels.map_gray(ro, lut, remap, out)
        np.testing.assert_array_equal(out, remap[lut[view]], err_msg=name)
    big = np.zeros((9, 58), label)
    kernels.map_gray(image, lut, remap, big[:, 1::2])
    np.testing.assert_array_equal(big[:, 1::2], remap[lut[image]])
    assert (big[:, ::2] == 0).all()
