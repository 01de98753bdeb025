"""Property-based tests (Hypothesis).

The frame parser: any JSON value either parses into a Frame that survives
to_dict / from_dict (and a trip through JSON text) unchanged, or raises a
MaskdecError; nothing else escapes.

The kernels: map_pixels on RGB, 8- and 16-bit grey and YUV planes agrees with
a plain numpy oracle for arbitrary shapes, strides (views with steps, reversed
axes) and palettes. RGB and grey: the nearest declared colour within the
tolerance, ties to the smaller colour (a colour declared twice keeps its first id),
else ignore_index. YUV: the
table lookup ColourTable.yuv_lut at (U, V, Y) of each pixel's chroma block,
edge repair off.
"""
from __future__ import annotations

import json
import math

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import maskdec
from maskdec import ColourTable, Frame, map_pixels
from maskdec.lut import _map_yuv
from maskdec.media.planes import YuvPlanes

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# ----------------------------------------------------------------- the frame parser

KEYS = ["sources", "rois", "id", "uri", "masks", "timestamp", "content_type", "width", "height", "label",
        "labels", "mask", "value", "meta", "preview", "context_id", "confidence"]

scalars = (st.none() | st.booleans() | st.integers(-2 ** 70, 2 ** 70) | st.floats(allow_nan=True)
           | st.text(max_size=6) | st.sampled_from(["0", "66", " 7 ", "-1", "cam", "m", "a.png", "1e3"]))
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=4), inner, max_size=6),
    max_leaves=30)

ident = st.sampled_from(["cam", "left", "m", "seg", "0", "7"]) | st.integers(0, 9)
timestamp = st.none() | st.integers(0, 10 ** 12) | st.integers(0, 99999).map(str)
size = st.none() | st.integers(1, 4096)
colour = st.lists(st.integers(0, 255), min_size=3, max_size=3) | st.lists(st.integers(0, 65535), min_size=1,
                                                                           max_size=1)


@st.composite
def frame_dicts(draw) -> dict:
    """Frame objects that follow the format, with optional keys present or not."""
    n_sources = draw(st.integers(1, 3))
    sources = []
    for s in range(n_sources):
        masks = [{"id": draw(ident) if k == 0 else f"mask{k}", "uri": draw(st.sampled_from(["m.png", "m.mp4"])),
                  **({"timestamp": ts} if (ts := draw(timestamp)) is not None else {}),
                  **({"width": w} if (w := draw(size)) is not None else {})}
                 for k in range(draw(st.integers(0, 2)))]
        source = {"id": f"s{s}", "uri": draw(st.sampled_from(["a.png", "clip.mp4", "s3://b/x.mkv"]))}
        for key, value in (("masks", masks), ("timestamp", draw(timestamp)), ("height", draw(size)),
                           ("content_type", draw(st.none() | st.sampled_from(["image / PNG", "video/mp4", "png"]))),
                           ("meta", draw(st.none() | st.dictionaries(st.text(max_size=3), scalars, max_size=2)))):
            if value is not None and value != []:
                source[key] = value
        sources.append(source)
    rois = []
    for _ in range(draw(st.integers(0, 3))):
        roi = {draw(st.sampled_from(["label", "labels"])): draw(st.lists(st.text(min_size=1, max_size=5),
                                                                         min_size=1, max_size=3))}
        if draw(st.booleans()):
            roi["sources"] = [f"s{draw(st.integers(0, n_sources - 1))}"]
        if draw(st.booleans()):
            roi["mask"] = {"id": draw(ident), "value": draw(colour)}
        if draw(st.booleans()):
            roi["confidence"] = draw(st.floats(0, 1))
        rois.append(roi)
    frame = {"sources": sources}
    for key, value in (("rois", rois), ("id", draw(st.none() | st.text(max_size=4))),
                       ("timestamp", draw(timestamp)), ("context_id", draw(st.none() | st.text(max_size=4))),
                       ("extra_key", draw(st.none() | scalars))):
        if value is not None and value != []:
            frame[key] = value
    return frame


def _round_trips(frame: Frame) -> None:
    again = Frame.from_dict(frame.to_dict())
    assert again == frame
    assert again.to_dict() == frame.to_dict()
    text = json.dumps(frame.to_dict(), sort_keys=True)  # as text: NaN in free metadata is not equal to itself
    assert json.dumps(Frame.from_dict(json.loads(text)).to_dict(), sort_keys=True) == text


@SETTINGS
@given(frame_dicts())
def test_valid_frames_round_trip(d):
    frame = Frame.from_dict(d)
    _round_trips(frame)
    assert len(frame.sources) == len(d["sources"]) and len(frame.rois) == len(d.get("rois", []))


@st.composite
def mutated_frames(draw) -> dict:
    """A valid frame with one value of a source, mask or ROI replaced by any JSON value."""
    d = draw(frame_dicts())
    places = [d, *d["sources"], *(m for s in d["sources"] for m in s.get("masks", [])), *d.get("rois", [])]
    target = draw(st.sampled_from(places))
    target[draw(st.sampled_from(sorted(target) + ["timestamp", "id"]))] = draw(json_values)
    return d


@settings(max_examples=300, deadline=None)
@given(json_values | mutated_frames())
def test_any_json_value_parses_or_raises_a_maskdec_error(value):
    try:
        frame = Frame.from_dict(value)
    except maskdec.MaskdecError:
        return
    _round_trips(frame)


# ----------------------------------------------------------------- the kernels

INF = float("inf")
tolerances = st.sampled_from([0.0, 1.0, math.sqrt(2), 3.5, 12.0, 60.0, 300.0, INF])


@st.composite
def tables(draw, *, grey16: bool = False) -> ColourTable:
    """Palettes drawn from a coarse grid, so repeats, greys and ties between colours occur."""
    grid = st.integers(0, 255).map(lambda v: v // 16 * 16)
    colours = draw(st.lists(st.tuples(grid, grid, grid) | grid.map(lambda v: (v, v, v)), min_size=0, max_size=7))
    if grey16:
        colours += draw(st.lists(st.integers(0, 65535).map(lambda v: (v,)), max_size=3))
    wide = draw(st.booleans())
    ignore = 65535 if wide else 255
    ids = draw(st.lists(st.integers(0, ignore), min_size=len(colours), max_size=len(colours)))
    return ColourTable(tuple(colours), tuple(ids), ignore, "uint16" if wide else "uint8")


def strided(draw, shape: tuple[int, ...], high: int, dtype) -> np.ndarray:
    """An array of `shape` as a view with steps and possibly reversed axes into a larger one."""
    steps = [draw(st.integers(1, 3)) for _ in shape]
    base = draw(st.integers(0, 2 ** 32 - 1))
    big = np.random.default_rng(base).integers(0, high + 1, size=[n * k for n, k in zip(shape, steps)], dtype=dtype)
    view = big[tuple(slice(None, None, k) for k in steps)]
    for axis in range(len(shape)):
        if draw(st.booleans()):
            view = np.flip(view, axis)
    assert view.shape == shape
    return view


def snap_some(draw, pixels: np.ndarray, table: ColourTable) -> np.ndarray:
    """Put declared colours (exact and nudged) on some pixels, so matches are common."""
    rgb = [c for c in table.colours if len(c) == 3]
    if not rgb or pixels.size == 0:
        return pixels
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 32 - 1)))
    out = pixels.copy()
    hit = rng.random(out.shape[:2]) < 0.6
    picked = np.array(rgb, np.int64)[rng.integers(len(rgb), size=out.shape[:2])]
    picked = np.clip(picked + rng.integers(-4, 5, size=picked.shape) * (rng.random(picked.shape) < 0.5), 0, 255)
    out[hit] = picked[hit]
    return out


def nearest(d2: np.ndarray, ok: np.ndarray, ids: np.ndarray, table: ColourTable) -> np.ndarray:
    """Per row of distances (pixels x colours): the id of the first nearest eligible colour."""
    out = np.full(d2.shape[0], table.ignore_index, np.int64)
    if d2.shape[1]:
        best = np.argmin(np.where(ok, d2, np.iinfo(np.int64).max), axis=1)
        hit = ok.any(axis=1)
        out[hit] = ids[best[hit]]
    return out.astype(table.dtype)


def oracle(pixels: np.ndarray, table: ColourTable, tolerance: float) -> np.ndarray:
    """RGB (H, W, 3) matches (r, g, b) colours; 8-bit grey v is (v, v, v); 16-bit grey v
    matches (v,) and grey triples."""
    h, w = pixels.shape[:2]
    first: dict[tuple, int] = {}
    for colour, label in zip(table.colours, table.ids):
        first.setdefault(tuple(colour), label)
    canonical = sorted(first.items())  # argmin below picks the first minimum: the smaller colour
    if pixels.ndim == 3 or pixels.dtype == np.uint8:
        pix = (pixels if pixels.ndim == 3 else np.stack([pixels] * 3, axis=-1)).reshape(-1, 3).astype(np.int64)
        decl = [(c, i) for c, i in canonical if len(c) == 3]
        colours = np.array([c for c, _ in decl], np.int64).reshape(-1, 3)
        d2 = ((pix[:, None, :] - colours[None]) ** 2).sum(axis=2)
    else:
        pix = pixels.reshape(-1, 1).astype(np.int64)
        decl = [(c, i) for c, i in canonical if len(c) == 1 or c[0] == c[1] == c[2]]
        values = np.array([c[0] for c, _ in decl], np.int64).reshape(1, -1)
        d2 = (pix - values) ** 2
    ids = np.array([i for _, i in decl], np.int64)
    return nearest(d2, np.sqrt(d2) <= tolerance, ids, table).reshape(h, w)


dims = st.tuples(st.integers(0, 40), st.integers(0, 40))


@SETTINGS
@given(data=st.data(), table=tables(), tolerance=tolerances, shape=dims)
def test_rgb_kernel_agrees_with_the_oracle(data, table, tolerance, shape):
    pixels = strided(data.draw, (*shape, 3), 255, np.uint8)
    if data.draw(st.booleans()):
        pixels = pixels[:, :, ::-1]  # reversed channels: a negative channel stride
    pixels = snap_some(data.draw, pixels, table)
    got = map_pixels(pixels, table, tolerance)
    assert got.shape == shape and got.dtype == np.dtype(table.dtype)
    np.testing.assert_array_equal(got, oracle(pixels, table, tolerance))


@SETTINGS
@given(data=st.data(), table=tables(grey16=True), tolerance=tolerances, shape=dims,
       dtype=st.sampled_from([np.uint8, np.uint16]))
def test_grey_kernel_agrees_with_the_oracle(data, table, tolerance, shape, dtype):
    high = 255 if dtype == np.uint8 else 65535
    pixels = strided(data.draw, shape, high, dtype)
    values = [c[0] for c in table.colours if len(c) == 1 or c[0] == c[1] == c[2]]
    if values and pixels.size:  # some exact greys
        rng = np.random.default_rng(data.draw(st.integers(0, 2 ** 32 - 1)))
        pixels = pixels.copy()
        hit = rng.random(shape) < 0.5
        pixels[hit] = np.array(values, np.int64)[rng.integers(len(values), size=int(hit.sum()))] % (high + 1)
    out = None
    if data.draw(st.booleans()):  # into a strided out
        out = np.zeros((shape[0], 2 * shape[1]), table.dtype)[:, ::2]
    got = map_pixels(pixels, table, tolerance, out=out)
    assert out is None or got is out
    np.testing.assert_array_equal(got, oracle(pixels, table, tolerance))


@settings(SETTINGS, max_examples=40)  # each new (palette, tolerance, matrix, range) builds a 2**24 table
@given(data=st.data(), table=tables(), tolerance=tolerances,
       shape=st.tuples(st.integers(1, 80), st.integers(1, 40)), shifts=st.sampled_from([(1, 1), (1, 0), (0, 0)]),
       matrix=st.sampled_from(["bt601", "bt709", "bt2020"]), full_range=st.booleans())
def test_yuv_kernel_agrees_with_the_table_lookup(data, table, tolerance, shape, shifts, matrix, full_range):
    h, w = shape
    sx, sy = shifts
    ch, cw = -(-h >> sy), -(-w >> sx)
    y = strided(data.draw, (h, w), 255, np.uint8)
    u = strided(data.draw, (ch, cw), 255, np.uint8)
    v = strided(data.draw, (ch, cw), 255, np.uint8)
    planes = YuvPlanes(y, u, v, sx, sy, matrix, full_range)
    got = _map_yuv(planes, table.palette, table.remap, tolerance, None, edge_repair=False)
    lut = table.yuv_lut(tolerance, matrix, full_range)
    rows, cols = np.arange(h)[:, None] >> sy, np.arange(w)[None, :] >> sx
    keys = (u[rows, cols].astype(np.int64) << 16) | (v[rows, cols].astype(np.int64) << 8) | y
    np.testing.assert_array_equal(got, lut[keys])
    # map_pixels takes the same path for planes with no chroma subsampling (no edges to repair)
    if shifts == (0, 0):
        np.testing.assert_array_equal(map_pixels(planes, table, tolerance), got)


@settings(SETTINGS, max_examples=40)
@given(data=st.data(), table=tables(), tolerance=tolerances,
       shape=st.tuples(st.integers(1, 60), st.integers(1, 70)), shift_y=st.sampled_from([1, 0]),
       matrix=st.sampled_from(["bt601", "bt709"]))
def test_yuv_kernel_on_flat_planes_agrees_with_the_table_lookup(data, table, tolerance, shape, shift_y, matrix):
    """Mostly flat planes (what mask videos decode to), where the kernel copies the labels of
    runs of equal Y, U and V instead of looking each pixel up: every pixel still equals the table."""
    h, w = shape
    ch, cw = -(-h >> shift_y), -(-w >> 1)
    rng = np.random.default_rng(data.draw(st.integers(0, 2 ** 32 - 1)))

    def flat(rows: int, cols: int) -> np.ndarray:
        values = rng.integers(0, 256, 3, dtype=np.uint8)  # few values, in long runs
        plane = values[np.minimum(np.arange(cols)[None, :] // rng.integers(3, 20), 2)].repeat(rows, axis=0)
        plane = np.ascontiguousarray(plane)
        spots = rng.random((rows, cols)) < data.draw(st.sampled_from([0.0, 0.01, 0.2]))
        plane[spots] = rng.integers(0, 256, int(spots.sum()), dtype=np.uint8)
        return plane

    y, u, v = flat(h, w), flat(ch, cw), flat(ch, cw)
    planes = YuvPlanes(y, u, v, 1, shift_y, matrix, False)
    got = _map_yuv(planes, table.palette, table.remap, tolerance, None, edge_repair=False)
    lut = table.yuv_lut(tolerance, matrix, False)
    rows, cols = np.arange(h)[:, None] >> shift_y, np.arange(w)[None, :] >> 1
    keys = (u[rows, cols].astype(np.int64) << 16) | (v[rows, cols].astype(np.int64) << 8) | y
    np.testing.assert_array_equal(got, lut[keys])
