"""The YUV path: label maps straight from yuv planes, honouring matrix and range tags."""
import dataclasses
import itertools

import av
import numpy as np
import pytest

import maskdec
from maskdec.example import PALETTE, colour_mask, scene_classes
from maskdec.lut import ColourTable, map_pixels
from maskdec.media.planes import YuvPlanes, mask_data, yuv_planes
from maskdec.media.reader import mask_pixels
from maskdec.media.writer import write_video

H, W, N = 96, 128, 5
TAGS = list(itertools.product(("bt601", "bt709"), (False, True)))


def clip_frames(path, n=N):
    return [{"sources": [{"id": "cam", "uri": str(path), "timestamp": int(i * 1000 / 30),
                          "masks": [{"id": "seg", "uri": str(path)}]}],
             "rois": [{"label": [name], "mask": {"id": "seg", "value": list(c)}} for name, c in PALETTE.items()]}
            for i in range(n)]


def accuracies(path, **kw):
    it = maskdec.iter_samples(clip_frames(path), images=False, **kw)
    ids = np.array([it.labels.ids[name] for name in PALETTE])
    samples = list(it)
    return [float((s.label_map == ids[scene_classes(i, H, W)]).mean()) for i, s in enumerate(samples)], samples


@pytest.fixture(scope="module")
def tagged(tmp_path_factory):
    """(matrix, full_range, pix_fmt) -> clip path, encoded with that matrix and range and tagged so."""
    root = tmp_path_factory.mktemp("tagged")
    clips = {}
    for (matrix, full), (pix_fmt, codec, opts, ext) in itertools.product(
            TAGS, [("yuv444p", "ffv1", {}, "mkv"), ("yuv420p", "libx264", {"crf": "18"}, "mp4")]):
        path = root / f"{matrix}_{int(full)}_{pix_fmt}.{ext}"
        write_video(path, (colour_mask(scene_classes(i, H, W)) for i in range(N)), codec=codec, pix_fmt=pix_fmt,
                    options=opts, matrix=matrix, full_range=full)
        clips[(matrix, full, pix_fmt)] = path
    return clips


@pytest.mark.parametrize("matrix,full", TAGS)
def test_tags_are_read_from_the_stream(tagged, matrix, full):
    with av.open(str(tagged[(matrix, full, "yuv420p")])) as c:
        planes = yuv_planes(next(c.decode(video=0)))
    assert (planes.matrix, planes.full_range) == (matrix, full)


@pytest.mark.parametrize("matrix,full", TAGS)
def test_lossless_yuv444_maps_exactly_with_a_tight_tolerance(tagged, matrix, full):
    accs, _ = accuracies(tagged[(matrix, full, "yuv444p")], tolerance=3)
    assert min(accs) == 1.0


def test_wrong_tags_would_give_wrong_labels(tagged):
    """Control: reading a BT.709 full-range clip as BT.601 limited breaks the exact mapping."""
    path = tagged[("bt709", True, "yuv444p")]
    table = ColourTable(tuple(PALETTE.values()), tuple(range(len(PALETTE))), 255)
    with av.open(str(path)) as c:
        frame = next(c.decode(video=0))
    right = yuv_planes(frame)
    wrong = YuvPlanes(right.y, right.u, right.v, right.shift_x, right.shift_y, "bt601", False, frame)
    truth = scene_classes(0, H, W)
    assert (map_pixels(right, table, 3) == truth).mean() == 1.0
    assert (map_pixels(wrong, table, 3) == truth).mean() < 0.9


def test_same_label_maps_across_tags_on_lossy_clips(tagged):
    maps = {}
    for matrix, full in TAGS:
        accs, samples = accuracies(tagged[(matrix, full, "yuv420p")])
        assert min(accs) >= 0.99, (matrix, full, accs)
        maps[(matrix, full)] = [s.label_map for s in samples]
    first = maps[TAGS[0]]
    for tag in TAGS[1:]:
        for a, b in zip(first, maps[tag]):
            assert (a == b).mean() >= 0.99


@pytest.mark.parametrize("matrix,full", TAGS)
def test_yuv_path_at_least_as_accurate_as_rgb_path(tagged, matrix, full):
    path = tagged[(matrix, full, "yuv420p")]
    yuv, _ = accuracies(path)
    rgb, _ = accuracies(path, yuv=False)
    assert np.mean(yuv) >= np.mean(rgb) - 2e-4  # equal up to chroma siting on a few edge pixels


@pytest.mark.parametrize("pix_fmt", ["yuv420p", "yuv422p", "yuv444p", "nv12"])
def test_planar_layouts_agree_with_rgb_conversion(tmp_path, pix_fmt):
    """A lossless clip: each chroma layout maps to what its RGB conversion maps to."""
    path = tmp_path / "clip.mkv"
    write_video(path, (colour_mask(scene_classes(i, H + 1, W + 1)) for i in range(2)), codec="ffv1",
                pix_fmt="yuv444p", options={})
    table = ColourTable(tuple(PALETTE.values()), tuple(range(len(PALETTE))), 255)
    with av.open(str(path)) as c:
        frame = next(c.decode(video=0)).reformat(format=pix_fmt)
    data = mask_data(frame)
    assert isinstance(data, YuvPlanes) and data.shape == (H + 1, W + 1)
    yuv = map_pixels(data, table, 40)
    rgb = map_pixels(mask_pixels(frame), table, 40)
    agree = (yuv == rgb).mean()
    assert agree >= (1.0 if pix_fmt == "yuv444p" else 0.97), agree


def test_yuv_kernel_writes_into_a_strided_out(tagged):
    table = ColourTable(tuple(PALETTE.values()), tuple(range(len(PALETTE))), 255)
    with av.open(str(tagged[("bt601", False, "yuv420p")])) as c:
        planes = yuv_planes(next(c.decode(video=0)))
    big = np.zeros((H, 2 * W), np.uint8)
    out = big[:, ::2]
    result = map_pixels(planes, table, 60, out=out)
    assert result is out
    assert np.array_equal(out, map_pixels(planes, table, 60))


@pytest.fixture(params=["avx2", "sse2"])
def simd(request):
    """The kernel's flat-run checks with AVX2 (where the CPU has it) and without."""
    from maskdec._core import kernels

    if kernels.use_avx2(request.param == "avx2") != (request.param == "avx2"):
        kernels.use_avx2()
        pytest.skip("this CPU has no AVX2")
    yield request.param
    kernels.use_avx2()


@pytest.fixture(scope="module")
def lossy_frames(tmp_path_factory):
    """Decoded frames of a lossy yuv420p clip of the example scene, with their truth."""
    path = tmp_path_factory.mktemp("lossy") / "clip.mp4"
    h, w = 240, 320
    write_video(path, (colour_mask(scene_classes(i, h, w)) for i in range(6)), codec="libx264", pix_fmt="yuv420p",
                options={"crf": "23"})
    with av.open(str(path)) as c:
        frames = list(c.decode(video=0))
    return frames, [scene_classes(i, h, w) for i in range(6)]


def test_edge_repair_beats_plain_yuv_and_rgb(lossy_frames):
    from maskdec.lut import _map_yuv

    frames, truth = lossy_frames
    table = ColourTable(tuple(PALETTE.values()), tuple(range(len(PALETTE))), 255)
    repaired = np.mean([(map_pixels(mask_data(f), table, 60) == t).mean() for f, t in zip(frames, truth)])
    plain = np.mean([(_map_yuv(yuv_planes(f), table.palette, table.remap, 60, None, edge_repair=False) == t).mean()
                     for f, t in zip(frames, truth)])
    rgb = np.mean([(map_pixels(mask_pixels(f), table, 60) == t).mean() for f, t in zip(frames, truth)])
    assert repaired > plain and repaired > rgb
    assert 1 - repaired < 0.75 * (1 - rgb)  # at least a quarter of the RGB path's errors gone


def test_edge_repair_only_changes_pixels_that_match_nothing_well(lossy_frames):
    from maskdec.lut import EDGE_REPAIR_DISTANCE, _map_yuv

    frames, _ = lossy_frames
    table = ColourTable(tuple(PALETTE.values()), tuple(range(len(PALETTE))), 255)
    dist = table.yuv_distance("bt601", False)
    planes = yuv_planes(frames[2])
    repaired = map_pixels(planes, table, 60)
    plain = _map_yuv(planes, table.palette, table.remap, 60, None, edge_repair=False)
    u = np.repeat(np.repeat(planes.u, 2, 0), 2, 1)[:planes.y.shape[0], :planes.y.shape[1]].astype(np.uint32)
    v = np.repeat(np.repeat(planes.v, 2, 0), 2, 1)[:planes.y.shape[0], :planes.y.shape[1]].astype(np.uint32)
    far = dist[(u << 16) | (v << 8) | planes.y] > EDGE_REPAIR_DISTANCE
    assert far.any() and (repaired != plain).any()
    assert np.array_equal(repaired[~far], plain[~far])


def _repair_oracle(planes, table, tolerance):
    """Edge repair of a 4:2:0 frame as map_yuv's docstring states it, in numpy: a pixel whose chroma
    differs by more than 2 from the chroma row on its side (above for even rows, below for odd ones)
    or from the neighbouring column on its side (left for even columns, right for odd ones), and
    whose own colour is far from every palette colour, takes the nearest (coarse distance, then own,
    horizontal, vertical, diagonal chroma) of its own and those neighbours' chroma with its own luma."""
    from maskdec.lut import _radius2, _yuv_tables

    lut, coarse, coarse_index, far_bits = _yuv_tables(table.palette, _radius2(tolerance), planes.matrix,
                                                      planes.full_range)
    h, w = planes.y.shape
    u, v = planes.u.astype(np.int64), planes.v.astype(np.int64)
    ch, cw = u.shape
    i, j = np.mgrid[0:h, 0:w]
    k, c = i >> 1, j >> 1
    side = np.where(i % 2 == 0, k - 1, k + 1)
    side = np.where((side < 0) | (side >= ch), k, side)  # the frame's first and last chroma rows: their own
    cn = np.where(j % 2 == 0, c - 1, c + 1)
    cn = np.where((cn < 0) | (cn >= cw), c, cn)
    y = planes.y.astype(np.int64)

    def key(kk, cc):
        return (u[kk, cc] << 16) | (v[kk, cc] << 8) | y

    own = key(k, c)
    differs = ((abs(u[k, c] - u[side, c]) > 2) | (abs(v[k, c] - v[side, c]) > 2)
               | (abs(u[k, c] - u[k, cn]) > 2) | (abs(v[k, c] - v[k, cn]) > 2))
    far = np.unpackbits(far_bits, bitorder="little")[own].astype(bool)

    def cell(key_):
        return ((key_ >> 18) << 12) | (((key_ >> 10) & 63) << 6) | ((key_ >> 2) & 63)

    tried = np.stack([own, key(k, cn), key(side, c), key(side, cn)])
    rank = (coarse[cell(tried)].astype(np.int64) << 2) | np.arange(4)[:, None, None]
    best = np.take_along_axis(tried, rank.argmin(axis=0)[None], axis=0)[0]
    index = np.where(differs & far, coarse_index[cell(best)], lut[own])
    return table.remap[index]


def _nv12(planes):
    """The same frame with NV12's interleaved chroma (strided views)."""
    uv = np.empty((planes.u.shape[0], 2 * planes.u.shape[1]), np.uint8)
    uv[:, 0::2], uv[:, 1::2] = planes.u, planes.v
    return dataclasses.replace(planes, u=uv[:, 0::2], v=uv[:, 1::2])


def _sparse_planes(rng, planes):
    """One flat colour (the frame's top-left pixel, a palette colour) with lone luma pixels and
    chroma samples, about one in 60 of each plane, set to values found elsewhere in the frame:
    wherever the kernel checks a run of columns for flatness, some runs differ in that place only."""
    out = {}
    for name in ("y", "u", "v"):
        source = getattr(planes, name)
        plane = np.full(source.shape, source[0, 0], np.uint8)
        spots = rng.integers(0, plane.size, plane.size // 60)
        plane.flat[spots] = source.flat[rng.integers(0, source.size, spots.size)]
        out[name] = plane
    return out


def _blocky_planes(rng, luma_shape, chroma_shape):
    """Random planes made of horizontal runs (1 to 40 columns) of a few chroma values and lumas,
    each chroma row often a copy of the one above: flat stretches, and edges on one side only."""
    chroma = rng.integers(0, 256, (6, 2))
    u, v = np.empty(chroma_shape, np.uint8), np.empty(chroma_shape, np.uint8)
    for k in range(chroma_shape[0]):
        if k and rng.random() < 0.5:
            u[k], v[k] = u[k - 1], v[k - 1]
            continue
        c = 0
        while c < chroma_shape[1]:
            run = int(rng.choice([1, 2, 3, 5, 17, 40]))
            pick = chroma[rng.integers(0, len(chroma))] + rng.integers(-3, 4, 2)
            u[k, c:c + run], v[k, c:c + run] = np.clip(pick, 0, 255)
            c += run
    y = np.repeat(rng.integers(16, 236, (luma_shape[0], -(-luma_shape[1] // 8))), 8, axis=1)[:, :luma_shape[1]]
    return {"y": y.astype(np.uint8), "u": u, "v": v}


@pytest.mark.parametrize("crop", [(None, None), (-1, None), (None, -1), (-1, -1)], ids=["even", "odd-h", "odd-w", "odd"])
def test_edge_repair_matches_its_specification(lossy_frames, crop, simd):
    """Every pixel, whatever the chroma layout (planar rows are scanned 16 columns at a time,
    interleaved NV12 chroma column by column), odd sizes and row bands split across threads."""
    frames, _ = lossy_frames
    table = ColourTable(tuple(PALETTE.values()), tuple(range(len(PALETTE))), 255)
    repaired = 0
    rng = np.random.default_rng(7)
    for n, f in enumerate(frames + ["blocky", "sparse", "sparse"]):
        planes = yuv_planes(f if not isinstance(f, str) else frames[0])
        if f == "blocky":  # runs of 1 to 40 columns, differing on one side or both, often far from every colour
            planes = dataclasses.replace(planes, **_blocky_planes(rng, planes.y.shape, planes.u.shape))
        elif f == "sparse":  # flat, but for lone samples: each flat-run check must notice them
            planes = dataclasses.replace(planes, **_sparse_planes(rng, planes))
        elif n % 2:  # chroma noise of up to 3 code values: differences on both sides of the edge threshold
            noisy = [np.clip(p.astype(np.int16) + rng.integers(-3, 4, p.shape), 0, 255).astype(np.uint8)
                     for p in (planes.u, planes.v)]
            planes = dataclasses.replace(planes, u=noisy[0], v=noisy[1])
        planes = dataclasses.replace(planes, y=planes.y[:crop[0], :crop[1]])
        want = _repair_oracle(planes, table, 60)
        plain = map_pixels(planes, table, 60, threads=1)
        repaired += int((want != table.remap[_yuv_lut_index(planes, table)]).sum())
        for layout in (planes, _nv12(planes)):
            for threads in (1, 3):
                got = map_pixels(layout, table, 60, threads=threads)
                assert np.array_equal(got, want), (n, threads, np.argwhere(got != want)[:5])
        assert np.array_equal(plain, want)
    assert repaired > 100  # the clip has edges to repair


def _yuv_lut_index(planes, table):
    from maskdec.lut import _radius2, _yuv_tables

    lut = _yuv_tables(table.palette, _radius2(60), planes.matrix, planes.full_range).index
    u = np.repeat(np.repeat(planes.u, 2, 0), 2, 1)[:planes.y.shape[0], :planes.y.shape[1]].astype(np.int64)
    v = np.repeat(np.repeat(planes.v, 2, 0), 2, 1)[:planes.y.shape[0], :planes.y.shape[1]].astype(np.int64)
    return lut[(u << 16) | (v << 8) | planes.y]


def test_edge_repair_same_for_uint16_tables(lossy_frames):
    frames, _ = lossy_frames
    ids = tuple(range(len(PALETTE)))
    small = ColourTable(tuple(PALETTE.values()), ids, 255)
    wide = ColourTable(tuple(PALETTE.values()), ids, 65535, "uint16")
    planes = yuv_planes(frames[3])
    a, b = map_pixels(planes, small, 60), map_pixels(planes, wide, 60)
    assert b.dtype == np.uint16
    assert np.array_equal(np.where(a == 255, 65535, a.astype(np.uint16)), b)


@pytest.mark.parametrize("layout", ["planar", "nv12", "odd"])
def test_yuv_frames_map_straight_to_the_runs_of_their_palette_indices(lossy_frames, layout, monkeypatch, simd):
    """Frames waiting their turn are kept as runs made row pair by row pair (the index map is never
    written whole): the same runs as encoding the whole mapped frame, for 8- and 16-bit palettes,
    and, for rows busier than the one-pass room, through the whole frame."""
    import maskdec.runs as runs_module
    from maskdec.lut import Palette, map_palette
    from maskdec.runs import IndexRuns

    frames, _ = lossy_frames
    rng = np.random.default_rng(3)
    wide = Palette(set(PALETTE.values()) | {tuple(int(x) for x in rng.integers(0, 256, 3)) for _ in range(300)})
    assert wide.dtype == np.uint16
    for palette in (Palette(PALETTE.values()), wide):
        for n, f in enumerate(frames[:3]):
            planes = yuv_planes(f)
            planes = {"planar": planes, "nv12": _nv12(planes),
                      "odd": dataclasses.replace(planes, y=planes.y[:-1, :-1])}[layout]
            want = IndexRuns.encode(map_palette(planes, palette, palette.identity(), 60, threads=1))
            for room in (runs_module.RUNS_PER_ROW, 1):  # 1: too little room, so the frame is mapped whole
                monkeypatch.setattr(runs_module, "RUNS_PER_ROW", room)
                got = IndexRuns.of_pixels(planes, palette, 60)
                assert got.shape == want.shape
                for field in ("values", "ends", "row_start"):
                    np.testing.assert_array_equal(getattr(got, field), getattr(want, field))
                assert got.values.dtype == palette.dtype


def test_map_yuv_runs_mode_rejects_what_it_cannot_do(lossy_frames):
    from maskdec._core import kernels
    from maskdec.lut import Palette, _kernel_tables

    planes = yuv_planes(lossy_frames[0][0])
    palette = Palette(PALETTE.values())
    lut = _kernel_tables(planes, palette, 60, False)[0]
    h, w = planes.y.shape
    values, ends, rows = np.empty(h * 64, np.uint8), np.empty(h * 64, np.uint32), np.empty(h + 1, np.int64)
    args = (planes.y, planes.u, planes.v, 1, 1, lut, palette.identity())
    with pytest.raises(ValueError, match="runs mode"):  # a partial frame
        kernels.map_yuv(*args, np.empty((2, w), np.uint8), row1=h // 2, run_values=values, run_ends=ends,
                        run_rows=rows)
    with pytest.raises(ValueError, match="height"):  # a whole-frame out of the wrong height
        kernels.map_yuv(*args, np.empty((2, w), np.uint8))
    assert kernels.map_yuv(*args, np.empty((2, w), np.uint8), run_values=values[:5], run_ends=ends[:5],
                           run_rows=rows) == -1  # too little room
    n = kernels.map_yuv(*args, np.empty((2, w), np.uint8), run_values=values, run_ends=ends, run_rows=rows)
    assert 0 < n == rows[h] and np.all(np.diff(rows) >= 1)


def test_edge_repair_and_runs_on_realistic_mask_files(tmp_path, simd):
    """The specification and the runs hold on frames shaped like real exports (maskdec.realistic,
    H.264 masks): each mask file's palette from the plan, over every frame of every file."""
    from maskdec.lut import ColourTable, map_palette
    from maskdec.realistic import make_realistic
    from maskdec.runs import IndexRuns

    ds = make_realistic(tmp_path / "realistic", scale="test", seed=0, lossless=False)
    it = maskdec.iter_samples(ds.frames_path, images=False)
    palettes = {r.mask_uri: r.palette for r in it.requests if r.error is None}
    it.close()
    frames = 0
    for uri, palette in sorted(palettes.items()):
        table = ColourTable(palette.colours, tuple(range(1, len(palette) + 1)), 0, str(palette.dtype))
        with av.open(uri) as container:
            for f in container.decode(video=0):
                planes = yuv_planes(f)
                want = _repair_oracle(planes, table, 60)
                assert np.array_equal(map_pixels(planes, table, 60, threads=1), want), (uri, f.pts)
                runs = IndexRuns.of_pixels(planes, palette, 60)
                np.testing.assert_array_equal(runs.decode(palette.identity()),
                                              map_palette(planes, palette, palette.identity(), 60, threads=1))
                frames += 1
    assert len(palettes) >= 4 and frames > 40
