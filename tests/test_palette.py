"""A palette per mask file: label maps depend on each frame's set of declarations, never
on their order; the nearest colour is judged among every colour declared for the file;
ROIs that name several sources paint in each (docs/format.md, "Colours and labels")."""
from __future__ import annotations

import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import maskdec
from maskdec import LabelError, iter_samples
from maskdec.lut import MAX_PALETTE_COLOURS, Palette
from maskdec.media.writer import write_video

RED, DARK_RED, BLUE, GREEN = (200, 0, 0), (180, 0, 0), (0, 0, 200), (0, 200, 0)


def stripes(colours, h: int = 8, w_each: int = 4) -> np.ndarray:
    """One image with a vertical stripe per colour."""
    return np.concatenate([np.full((h, w_each, 3), c, np.uint8) for c in colours], axis=1)


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """A lossless clip whose frame t shows stripes RED, DARK_RED, BLUE, GREEN, then t's colour."""
    path = tmp_path_factory.mktemp("palette") / "mask.mkv"
    write_video(path, [stripes([RED, DARK_RED, BLUE, GREEN, (10 * t, 10 * t, 10 * t)]) for t in range(6)],
                codec="ffv1", pix_fmt="bgr0", fps=10)
    return path


def roi(label: str, colour, mask: str = "m", sources=None) -> dict:
    d = {"label": [label], "mask": {"id": mask, "value": list(colour)}}
    if sources is not None:
        d["sources"] = sources
    return d


def frame(path, t: int, rois: list[dict]) -> dict:
    return {"sources": [{"id": "cam", "uri": str(path), "timestamp": 100 * t,
                         "masks": [{"id": "m", "uri": str(path)}]}], "rois": rois}


def maps(frames, **options) -> list[np.ndarray]:
    it = iter_samples(frames, images=False, **options)
    names = it.labels.names()
    return [np.vectorize(lambda v: names.get(int(v), "-"))(s.label_map[0, ::4]) for s in it]


def test_label_maps_do_not_depend_on_roi_order(clip):
    rois = [roi("red", RED), roi("dark", DARK_RED), roi("blue", BLUE), roi("green", GREEN)]
    frames = []
    rng = random.Random(3)
    for t in range(6):
        shuffled = list(rois)
        rng.shuffle(shuffled)
        frames.append(frame(clip, t, shuffled))
    ordered = [frame(clip, t, rois) for t in range(6)]
    got, want = maps(frames, tolerance=30), maps(ordered, tolerance=30)
    assert all((a == b).all() for a, b in zip(got, want))
    assert list(want[0][:4]) == ["red", "dark", "blue", "green"]


@settings(max_examples=15, deadline=None)
@given(st.permutations(range(4)), st.permutations(range(4)))
def test_any_permutation_gives_the_same_maps(clip, first, second):
    rois = [roi("red", RED), roi("dark", DARK_RED), roi("blue", BLUE), roi("green", GREEN)]
    a = maps([frame(clip, 0, [rois[k] for k in first])], tolerance=40)
    b = maps([frame(clip, 0, [rois[k] for k in second])], tolerance=40)
    assert (a[0] == b[0]).all()


def test_a_pixel_nearest_to_a_colour_the_frame_does_not_declare_is_ignored(clip):
    # frame 0 declares only RED; frame 1 declares DARK_RED too. DARK_RED pixels lie within the
    # tolerance of RED, but their nearest colour of the file is DARK_RED: ignore in frame 0.
    frames = [frame(clip, 0, [roi("red", RED)]), frame(clip, 1, [roi("red", RED), roi("dark", DARK_RED)])]
    first, second = maps(frames, tolerance=60)
    assert list(first[:4]) == ["red", "-", "-", "-"]
    assert list(second[:4]) == ["red", "dark", "-", "-"]
    # alone (no other frame declares DARK_RED), the tolerance snaps DARK_RED pixels to RED
    (alone,) = maps(frames[:1], tolerance=60)
    assert list(alone[:4]) == ["red", "red", "-", "-"]


def test_instance_colours_reused_for_other_classes(clip):
    frames = [frame(clip, 0, [roi("car", BLUE), roi("road", GREEN)]),
              frame(clip, 1, [roi("person", BLUE), roi("road", GREEN)])]
    first, second = maps(frames)
    assert list(first[2:4]) == ["car", "road"] and list(second[2:4]) == ["person", "road"]


def test_two_classes_on_one_colour_in_one_frame_stay_an_error(clip):
    with pytest.raises(LabelError, match="car.*person|person.*car"):
        list(iter_samples([frame(clip, 0, [roi("car", BLUE), roi("person", BLUE)])], images=False))


def test_a_roi_spanning_two_cameras_paints_in_both(tmp_path):
    left, right = tmp_path / "left.mkv", tmp_path / "right.mkv"
    write_video(left, [stripes([RED, BLUE])], codec="ffv1", pix_fmt="bgr0", fps=10)
    write_video(right, [stripes([BLUE, RED])], codec="ffv1", pix_fmt="bgr0", fps=10)
    group = {"sources": [{"id": "left", "uri": str(left), "masks": [{"id": "m", "uri": str(left)}]},
                         {"id": "right", "uri": str(right), "masks": [{"id": "m", "uri": str(right)}]}],
             "rois": [roi("car", RED, sources=["left", "right"]),
                      roi("sky", BLUE, sources=["left"]), roi("sea", BLUE, sources=["right"])]}
    it = iter_samples([group], images=False)
    names = it.labels.names()
    got = {s.source_id: [names[int(v)] for v in s.label_map[0, ::4]] for s in it}
    assert got == {"left": ["car", "sky"], "right": ["sea", "car"]}
    painted = {r.source_id: r.box for r in maskdec.iter_roi_samples([group], images=False) if r.labels == ["car"]}
    assert painted == {"left": (0, 0, 4, 8), "right": (4, 0, 8, 8)}


def test_a_palette_has_at_most_65535_colours():
    Palette([(i >> 16, (i >> 8) & 255, i & 255) for i in range(MAX_PALETTE_COLOURS)])
    with pytest.raises(LabelError, match="65535"):
        Palette([(i >> 16, (i >> 8) & 255, i & 255) for i in range(MAX_PALETTE_COLOURS + 1)])


def test_too_many_colours_for_one_mask_file_name_the_file(clip):
    colours = [(i >> 16, (i >> 8) & 255, i & 255) for i in range(MAX_PALETTE_COLOURS + 1)]
    frames = [frame(clip, 0, [{"label": ["x"], "mask": {"id": "m", "value": list(c)}} for c in colours[:40000]]),
              frame(clip, 1, [{"label": ["x"], "mask": {"id": "m", "value": list(c)}} for c in colours[40000:]])]
    it = iter_samples(frames, images=False)
    with pytest.raises(LabelError, match="mask.mkv"):
        next(it)


def test_palette_is_canonical():
    a = Palette([(3, 0, 0), (1, 0, 0), (2, 0, 0), (1, 0, 0)])
    b = Palette([(2, 0, 0), (3, 0, 0), (1, 0, 0)])
    assert a == b and hash(a) == hash(b) and a.colours == ((1, 0, 0), (2, 0, 0), (3, 0, 0))


def test_tables_of_interleaved_palettes_are_built_once_each(monkeypatch):
    from maskdec import lut, tables
    built = []
    real = tables.rgb_index_table
    monkeypatch.setattr(tables, "rgb_index_table", lambda colours, *a: built.append(len(colours)) or real(colours, *a))
    lut._rgb_index.cache_clear()
    palettes = [Palette([(k, 0, 0), (0, k, 0), (0, 0, k)][: 1 + k % 3]) for k in (1, 2, 3, 4)]
    pixels = np.zeros((2, 2, 3), np.uint8)
    for _ in range(5):  # files taking turns, as a merged frames file makes them
        for p in palettes:
            maskdec.lut.map_palette(pixels, p, p.identity(), 10.0)
    assert len(built) == 4
    monkeypatch.setenv("MASKDEC_TABLE_CACHE_BYTES", str(56 << 20))  # room for three 16 MiB tables
    lut._rgb_index.cache_clear()
    built.clear()
    for _ in range(5):
        for p in palettes:
            maskdec.lut.map_palette(pixels, p, p.identity(), 10.0)
            assert lut._rgb_index.nbytes <= 56 << 20
    # four palettes taking turns over room for three: least recently used eviction would build
    # at every turn (20 builds); dropping one of the older tables at random keeps some
    assert 4 < len(built) < 16
    lut._rgb_index.cache_clear()
