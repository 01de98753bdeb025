"""Frames: parsing, validation (docs/format.md: keys, URIs, what is rejected), round trips and authoring."""
from __future__ import annotations

import copy
import json
import os

import numpy as np
import pytest

import maskdec
from maskdec import FrameFormatError, MaskdecError, load_frames
from maskdec.frames import Frame, Mask, Roi, RoiMask, Source, normalise_content_type
from maskdec.media.uri import resolve_uri


def full_frame() -> dict:
    """A frame using every key of docs/format.md, "Keys", in the canonical (written-back) form."""
    return {
        "id": "frame-7",
        "timestamp": 1500,
        "context_id": "clip-3",
        "meta": {"weather": "rain", "front": {"exposure": 3}},
        "sources": [
            {
                "id": "front",
                "uri": "videos/front.mp4",
                "content_type": "video/mp4",
                "width": 640,
                "height": 480,
                "timestamp": 66,
                "masks": [
                    {"id": "seg", "uri": "masks/front_seg.mp4", "content_type": "video/mp4",
                     "timestamp": 33, "width": 640, "height": 480},
                    {"id": "inst", "uri": "masks/front_inst.png"},
                ],
                "preview": {"uri": "previews/front.jpg"},
                "meta": {"camera": "A"},
            },
            {"id": "rear", "uri": "file:///data/rear.png", "content_type": "image/png"},
        ],
        "rois": [
            {"label": ["car", "parked"], "sources": ["front"], "mask": {"id": "seg", "value": [10, 20, 30]},
             "id": "r0", "confidence": 0.9, "meta": {"track": 4}},
            {"label": ["person"], "mask": {"id": "inst", "value": [7]}},
            {"label": ["sky"], "sources": ["rear"], "poly": [0, 0, 10, 0, 10, 10], "area": 50},
            {"label": ["night"]},
        ],
    }


def minimal_frame() -> dict:
    return {"sources": [{"id": "cam", "uri": "a.png", "masks": [{"id": "m", "uri": "m.png"}]}]}


def write_json(path, data) -> str:
    path.write_text(json.dumps(data), encoding="utf-8")
    return str(path)


def write_jsonl(path, objects) -> str:
    path.write_text("".join(json.dumps(o) + "\n" for o in objects), encoding="utf-8")
    return str(path)


# ----------------------------------------------------------------- loading files

def test_load_one_object_json(tmp_path):
    data = full_frame()
    frames = load_frames(write_json(tmp_path / "one.json", data))
    assert len(frames) == 1
    frame = frames[0]
    assert isinstance(frame, Frame)
    assert frame.id == "frame-7" and frame.timestamp == 1500 and frame.context_id == "clip-3"
    assert [s.id for s in frame.sources] == ["front", "rear"]
    assert [m.id for m in frame.source("front").masks] == ["seg", "inst"]
    assert frame.source("front").mask("seg").timestamp == 33
    assert frame.rois[0].mask == RoiMask("seg", (10, 20, 30))
    assert frame.rois[2].mask is None and frame.rois[3].sources == []
    assert frame.to_dict() == data
    assert frame.base_dir == str(tmp_path.resolve())


def test_load_list_json(tmp_path):
    first, second = full_frame(), minimal_frame()
    second["id"] = "second"
    frames = load_frames(write_json(tmp_path / "many.json", [first, second]))
    assert [f.to_dict() for f in frames] == [first, second]
    assert all(f.base_dir == str(tmp_path.resolve()) for f in frames)


def test_load_jsonl_skips_blank_lines(tmp_path):
    objs = [minimal_frame() for _ in range(3)]
    for i, o in enumerate(objs):
        o["id"] = f"f{i}"
    path = tmp_path / "frames.jsonl"
    path.write_text(json.dumps(objs[0]) + "\n\n" + json.dumps(objs[1]) + "\r\n   \n" + json.dumps(objs[2]),
                    encoding="utf-8")
    frames = load_frames(path)  # a PathLike works too
    assert [f.id for f in frames] == ["f0", "f1", "f2"]
    assert [f.to_dict() for f in frames] == objs


def test_load_jsonl_with_unicode_line_separators_inside_strings(tmp_path):
    """JSON allows raw U+2028/U+2029/U+0085 in strings; JSON lines are split on \\n only."""
    first = minimal_frame()
    first["meta"] = {"note": "a\u2028b\u2029c\x85d\x0ce"}
    path = tmp_path / "frames.jsonl"
    path.write_text(json.dumps(first, ensure_ascii=False) + "\n" + json.dumps({"sources": []}) + "\n",
                    encoding="utf-8")
    with pytest.raises(FrameFormatError) as info:
        load_frames(path)
    assert "frames.jsonl line 2" in str(info.value)  # line numbers count \n only
    path.write_text(json.dumps(first, ensure_ascii=False) + "\n", encoding="utf-8")
    assert load_frames(path)[0].meta == first["meta"]


def test_load_empty_jsonl_and_list(tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("", encoding="utf-8")
    assert load_frames(empty) == []
    assert load_frames(write_json(tmp_path / "empty.json", [])) == []


def test_missing_frames_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.json"):
        load_frames(tmp_path / "nope.json")
    with pytest.raises(MaskdecError):
        load_frames(tmp_path / "nope.json")


@pytest.mark.parametrize("name", ["broken.json", "broken.jsonl"])
def test_invalid_json_names_the_file(tmp_path, name):
    path = tmp_path / name
    path.write_text('{"sources": [\n  {"id": "a", "uri": \n', encoding="utf-8")
    with pytest.raises(FrameFormatError, match="invalid JSON") as info:
        load_frames(path)
    assert name in str(info.value)
    assert isinstance(info.value, ValueError) and isinstance(info.value, MaskdecError)


def test_invalid_jsonl_line_named(tmp_path):
    path = tmp_path / "f.jsonl"
    path.write_text(json.dumps(minimal_frame()) + "\n" + json.dumps(minimal_frame()) + "\n{oops\n",
                    encoding="utf-8")
    with pytest.raises(FrameFormatError, match=r"f\.jsonl line 3") as info:
        load_frames(path)
    assert "invalid JSON" in str(info.value)


def test_jsonl_error_has_line_and_json_path(tmp_path):
    bad = minimal_frame()
    bad["sources"][0]["masks"].append({"id": "m2"})  # no uri
    path = write_jsonl(tmp_path / "frames.jsonl", [minimal_frame(), minimal_frame(), bad])
    with pytest.raises(FrameFormatError) as info:
        load_frames(path)
    message = str(info.value)
    assert "frames.jsonl" in message and "line 3" in message
    assert "$.sources[0].masks[1]" in message and "uri" in message


def test_json_list_error_has_index_path(tmp_path):
    bad = minimal_frame()
    bad["rois"] = [{"label": ["x"]}, {"label": ["y"], "mask": {"id": "m", "value": [1, 2, 300]}}]
    path = write_json(tmp_path / "frames.json", [minimal_frame(), bad])
    with pytest.raises(FrameFormatError) as info:
        load_frames(path)
    assert "frames.json" in str(info.value)
    assert "$[1].rois[1].mask.value" in str(info.value)


def test_json_list_element_not_an_object(tmp_path):
    path = write_json(tmp_path / "frames.json", [minimal_frame(), "frame"])
    with pytest.raises(FrameFormatError, match=r"\$\[1\]"):
        load_frames(path)


# ----------------------------------------------------------------- round trips

def test_dict_round_trip():
    data = full_frame()
    original = copy.deepcopy(data)
    frame = Frame.from_dict(data)
    assert data == original  # parsing does not mutate its input
    out = frame.to_dict()
    assert out == data
    assert json.loads(json.dumps(out)) == data  # JSON-ready


def test_object_round_trip():
    frame = Frame(
        sources=[Source(id="s1", uri="x.mp4", timestamp=5, width=8, height=6,
                        masks=[Mask(id="m1", uri="m1.mkv", content_type="video/x-matroska", timestamp=0),
                               Mask(id="m2", uri="m2.png", extra={"note": "kept"})],
                        meta={"k": 1}, extra={"vendor": [1, 2]}),
                 Source(id="s2", uri="y.png")],
        rois=[Roi(labels=["a", "b"], sources=["s1"], mask=RoiMask("m1", (1, 2, 3)), id="r", confidence=0.5,
                  meta={"z": None}),
              Roi(labels=["grey"], sources=["s1", "s2"], mask=RoiMask("m2", (40000,))),
              Roi(labels=["tag"], extra={"poly": [1, 2, 3, 4]})],
        id="f", timestamp=0, context_id="ctx", meta={"s1": {"fps": 30}}, extra={"custom": True},
    )
    again = Frame.from_dict(json.loads(json.dumps(frame.to_dict())))
    assert again == frame
    assert again.to_dict() == frame.to_dict()
    assert again.rois[2].extra == {"poly": [1, 2, 3, 4]}
    assert again.sources[0].mask("m2").extra == {"note": "kept"}


def test_round_trip_changes_something_when_it_should():
    """Equality is not vacuous: a changed colour or label makes frames differ."""
    frame = Frame.from_dict(full_frame())
    other = Frame.from_dict(full_frame())
    other.rois[0].mask = RoiMask("seg", (10, 20, 31))
    assert frame != other
    third = Frame.from_dict(full_frame())
    third.rois[1].labels = ["people"]
    assert frame != third
    assert Frame.from_dict(third.to_dict()) == third


def test_base_dir_not_serialised_nor_compared():
    a = Frame.from_dict(minimal_frame(), base_dir="/one")
    b = Frame.from_dict(minimal_frame(), base_dir="/two")
    assert a == b and a.base_dir == "/one"
    assert "base_dir" not in a.to_dict()


def test_labels_alias():
    data = minimal_frame()
    data["rois"] = [{"labels": ["car", "red"], "mask": {"id": "m", "value": [1, 2, 3]}}]
    frame = Frame.from_dict(data)
    assert frame.rois[0].labels == ["car", "red"]
    assert frame.to_dict()["rois"][0] == {"label": ["car", "red"], "mask": {"id": "m", "value": [1, 2, 3]}}


def test_label_wins_over_labels_alias():
    data = minimal_frame()
    data["rois"] = [{"label": ["car"], "labels": ["truck"]}]
    assert Frame.from_dict(data).rois[0].labels == ["car"]


@pytest.mark.parametrize("roi, path", [
    ({"labels": []}, "$.rois[0].labels"),
    ({"labels": [3]}, "$.rois[0].labels"),
    ({"label": None}, "$.rois[0].label"),
    ({"mask": {"id": "m", "value": [0, 0, 0]}}, "$.rois[0].labels"),
])
def test_bad_labels_rejected(roi, path):
    data = minimal_frame()
    data["rois"] = [roi]
    with pytest.raises(FrameFormatError) as info:
        Frame.from_dict(data)
    assert path in str(info.value)


def test_mask_id_int_coerced_to_str():
    data = minimal_frame()
    data["sources"][0]["masks"] = [{"id": 0, "uri": "m0.png"}, {"id": 17, "uri": "m17.png"}]
    data["sources"][0]["id"] = 5
    data["rois"] = [{"label": ["car"], "sources": [5], "mask": {"id": 17, "value": [1, 2, 3]}}]
    frame = Frame.from_dict(data)
    assert [m.id for m in frame.sources[0].masks] == ["0", "17"]
    assert frame.sources[0].id == "5" and frame.rois[0].sources == ["5"]
    assert frame.rois[0].mask.id == "17"
    assert frame.sources[0].mask("17").uri == "m17.png"
    out = frame.to_dict()
    assert out["sources"][0]["masks"][1]["id"] == "17"
    assert out["rois"][0]["mask"]["id"] == "17"


def test_int_and_str_mask_ids_are_duplicates():
    data = minimal_frame()
    data["sources"][0]["masks"] = [{"id": 3, "uri": "a.png"}, {"id": "3", "uri": "b.png"}]
    with pytest.raises(FrameFormatError, match=r"\$\.sources\[0\]\.masks\[1\]"):
        Frame.from_dict(data)


@pytest.mark.parametrize("raw, expected", [("66", 66), (" 66 ", 66), ("0", 0), (66, 66), (66.0, 66), (0, 0),
                                           ("1234567889", 1234567889)])
def test_numeric_timestamps_accepted(raw, expected):
    data = minimal_frame()
    data["timestamp"] = raw
    data["sources"][0]["timestamp"] = raw
    data["sources"][0]["masks"][0]["timestamp"] = raw
    frame = Frame.from_dict(data)
    assert frame.timestamp == expected and type(frame.timestamp) is int
    assert frame.sources[0].timestamp == expected
    assert frame.sources[0].masks[0].timestamp == expected
    assert frame.to_dict()["sources"][0]["masks"][0]["timestamp"] == expected


def test_missing_timestamps_stay_missing():
    frame = Frame.from_dict(minimal_frame())
    assert frame.timestamp is None and frame.sources[0].timestamp is None
    assert "timestamp" not in frame.to_dict()


# ----------------------------------------------------------------- §6 rejections

def _with(mutate):
    data = full_frame()
    mutate(data)
    return data


def _set(path_keys, value):
    def mutate(d):
        target = d
        for k in path_keys[:-1]:
            target = target[k]
        target[path_keys[-1]] = value
    return mutate


def _delete(path_keys):
    def mutate(d):
        target = d
        for k in path_keys[:-1]:
            target = target[k]
        del target[path_keys[-1]]
    return mutate


def _append(path_keys, value):
    def mutate(d):
        target = d
        for k in path_keys:
            target = target[k]
        target.append(value)
    return mutate


REJECTIONS = [
    # (case, mutation of full_frame(), JSON path that must be named)
    ("sources missing", _delete(["sources"]), "$.sources"),
    ("sources empty", _set(["sources"], []), "$.sources"),
    ("sources not a list", _set(["sources"], {"id": "a", "uri": "b"}), "$.sources"),
    ("source not an object", _set(["sources", 1], "rear.png"), "$.sources[1]"),
    ("source without id", _delete(["sources", 1, "id"]), "$.sources[1]"),
    ("source with empty id", _set(["sources", 1, "id"], ""), "$.sources[1].id"),
    ("source without uri", _delete(["sources", 0, "uri"]), "$.sources[0]"),
    ("source uri null", _set(["sources", 0, "uri"], None), "$.sources[0]"),
    ("source uri not a string", _set(["sources", 0, "uri"], 12), "$.sources[0].uri"),
    ("mask not an object", _set(["sources", 0, "masks", 1], ["inst"]), "$.sources[0].masks[1]"),
    ("mask without id", _delete(["sources", 0, "masks", 1, "id"]), "$.sources[0].masks[1]"),
    ("mask without uri", _delete(["sources", 0, "masks", 1, "uri"]), "$.sources[0].masks[1]"),
    ("masks not a list", _set(["sources", 0, "masks"], {"id": "x"}), "$.sources[0].masks"),
    ("duplicate source ids", _set(["sources", 1, "id"], "front"), "$.sources[1]"),
    ("duplicate mask ids", _set(["sources", 0, "masks", 1, "id"], "seg"), "$.sources[0].masks[1]"),
    ("ROI at unknown source", _set(["rois", 0, "sources"], ["front", "side"]), "$.rois[0].sources[1]"),
    ("ROI not an object", _append(["rois"], "car"), "$.rois[4]"),
    ("colour channel above 255", _set(["rois", 0, "mask", "value"], [10, 256, 30]), "$.rois[0].mask.value"),
    ("colour channel negative", _set(["rois", 0, "mask", "value"], [-1, 20, 30]), "$.rois[0].mask.value"),
    ("colour too short", _set(["rois", 0, "mask", "value"], [10, 20]), "$.rois[0].mask.value"),
    ("colour too long", _set(["rois", 0, "mask", "value"], [10, 20, 30, 255]), "$.rois[0].mask.value"),
    ("colour not a list", _set(["rois", 0, "mask", "value"], "#0a141e"), "$.rois[0].mask.value"),
    ("colour missing", _delete(["rois", 0, "mask", "value"]), "$.rois[0].mask.value"),
    ("colour float", _set(["rois", 0, "mask", "value"], [10.0, 20, 30]), "$.rois[0].mask.value"),
    ("colour bool", _set(["rois", 0, "mask", "value"], [True, 20, 30]), "$.rois[0].mask.value"),
    ("grey above 16 bits", _set(["rois", 1, "mask", "value"], [65536]), "$.rois[1].mask.value"),
    ("grey negative", _set(["rois", 1, "mask", "value"], [-7]), "$.rois[1].mask.value"),
    ("ROI mask without id", _delete(["rois", 1, "mask", "id"]), "$.rois[1].mask"),
    ("negative frame timestamp", _set(["timestamp"], -1), "$.timestamp"),
    ("negative source timestamp", _set(["sources", 0, "timestamp"], -33), "$.sources[0].timestamp"),
    ("negative mask timestamp", _set(["sources", 0, "masks", 0, "timestamp"], -1),
     "$.sources[0].masks[0].timestamp"),
    ("negative numeric string", _set(["sources", 0, "masks", 0, "timestamp"], "-66"),
     "$.sources[0].masks[0].timestamp"),
    ("float timestamp", _set(["sources", 0, "timestamp"], 66.5), "$.sources[0].timestamp"),
    ("float string timestamp", _set(["sources", 0, "timestamp"], "66.0"), "$.sources[0].timestamp"),
    ("word timestamp", _set(["timestamp"], "soon"), "$.timestamp"),
    ("empty string timestamp", _set(["timestamp"], ""), "$.timestamp"),
    ("double minus timestamp", _set(["timestamp"], "--5"), "$.timestamp"),
    ("superscript digit timestamp", _set(["timestamp"], "\u00b2"), "$.timestamp"),
    ("exponent timestamp", _set(["timestamp"], "1e3"), "$.timestamp"),
    ("bool timestamp", _set(["sources", 1, "timestamp"], True), "$.sources[1].timestamp"),
    ("list timestamp", _set(["sources", 1, "timestamp"], [66]), "$.sources[1].timestamp"),
    ("infinite timestamp", _set(["timestamp"], float("inf")), "$.timestamp"),
]


@pytest.mark.parametrize("case, mutate, path", REJECTIONS, ids=[r[0] for r in REJECTIONS])
def test_rejections_name_the_json_path(case, mutate, path):
    data = _with(mutate)
    with pytest.raises(FrameFormatError) as info:
        Frame.from_dict(data)
    err = info.value
    assert isinstance(err, ValueError) and isinstance(err, MaskdecError)
    assert path in str(err), f"{case}: {err}"
    assert err.path.startswith(path), f"{case}: path {err.path!r}"


@pytest.mark.parametrize("value", [[], "frame", 7, None])
def test_frame_not_an_object(value):
    with pytest.raises(FrameFormatError) as info:
        Frame.from_dict(value)
    assert str(info.value).startswith("$")


@pytest.mark.parametrize("case, mutate, path", REJECTIONS[::5], ids=[r[0] for r in REJECTIONS[::5]])
def test_rejections_in_jsonl_name_line_and_path(tmp_path, case, mutate, path):
    file = write_jsonl(tmp_path / "frames.jsonl", [full_frame(), full_frame(), _with(mutate), full_frame()])
    with pytest.raises(FrameFormatError) as info:
        load_frames(file)
    message = str(info.value)
    assert "frames.jsonl line 3" in message and path in message, message


def test_unicode_digits_are_not_a_numeric_string():
    data = minimal_frame()
    data["timestamp"] = "\u0666\u0666"  # ARABIC-INDIC DIGIT SIX, twice
    with pytest.raises(FrameFormatError, match=r"\$\.timestamp"):
        Frame.from_dict(data)


# ----------------------------------------------------------------- content types (§5)

@pytest.mark.parametrize("given, uri, expected", [
    ("image / PNG", "x.bin", "image/png"),
    ("IMAGE/PNG", "x", "image/png"),
    ("image/jpg", "x", "image/jpeg"),
    (" image / JPG ", "x", "image/jpeg"),
    ("png", "x", "image/png"),
    ("PNG", "x", "image/png"),
    ("jpg", "x", "image/jpeg"),
    ("mp4", "x", "video/mp4"),
    ("video/mp4", "x.png", "video/mp4"),  # a given type wins over the extension
    (None, "masks/a.PNG", "image/png"),
    (None, "a.jpeg", "image/jpeg"),
    ("", "clip.mkv", "video/x-matroska"),
    (None, "s3://bucket/clip.webm", "video/webm"),
    (None, "https://host/x/clip.mp4?sig=a.png", "video/mp4"),
    (None, "file:///data/frame.jpg", "image/jpeg"),
    (None, "clip.mov", "video/quicktime"),
    (None, "noext", None),
    (None, "weird.xyz", None),
])
def test_normalise_content_type(given, uri, expected):
    assert normalise_content_type(given, uri) == expected


def test_media_type_of_sources_and_masks():
    data = minimal_frame()
    data["sources"][0].update(content_type="image / PNG")
    data["sources"][0]["masks"] = [{"id": "a", "uri": "a.JPG"}, {"id": "b", "uri": "b.bin", "content_type": "png"},
                                   {"id": "c", "uri": "c.png", "content_type": "image/jpg"}]
    frame = Frame.from_dict(data)
    assert frame.sources[0].media_type == "image/png"
    assert [m.media_type for m in frame.sources[0].masks] == ["image/jpeg", "image/png", "image/jpeg"]
    # the given spelling is carried unchanged when written back
    assert frame.to_dict()["sources"][0]["content_type"] == "image / PNG"


def test_content_type_must_be_a_string():
    data = minimal_frame()
    data["sources"][0]["masks"][0]["content_type"] = 5
    with pytest.raises(FrameFormatError, match=r"\$\.sources\[0\]\.masks\[0\]\.content_type"):
        Frame.from_dict(data)


# ----------------------------------------------------------------- URIs (§5)

def test_relative_uris_resolve_against_the_frames_file(tmp_path, monkeypatch):
    folder = tmp_path / "dataset"
    folder.mkdir()
    data = minimal_frame()
    data["sources"][0]["uri"] = "images/a.png"
    data["sources"][0]["masks"] = [
        {"id": "plain", "uri": "masks/m.png"},
        {"id": "dot", "uri": "./masks/../masks/m.png"},
        {"id": "up", "uri": "../shared/m.png"},
        {"id": "file_rel", "uri": "file://masks/m.png"},
        {"id": "file_abs", "uri": "file:///abs/where/m.png"},
        {"id": "file_host", "uri": "file://localhost/abs/where/m.png"},
        {"id": "file_quoted", "uri": "file:///abs/my%20dir/m.png"},
        {"id": "abs", "uri": "/abs/where/m.png"},
        {"id": "remote", "uri": "s3://bucket/m.png"},
    ]
    frames_file = write_json(folder / "frames.json", data)
    monkeypatch.chdir(tmp_path)  # resolution must not depend on the working folder
    frame = load_frames(frames_file)[0]
    base = frame.base_dir
    assert base == str(folder.resolve())
    masks = frame.sources[0].masks
    got = {m.id: resolve_uri(m.uri, base) for m in masks}
    want_local = str(folder.resolve() / "masks" / "m.png")
    assert resolve_uri(frame.sources[0].uri, base) == str(folder.resolve() / "images" / "a.png")
    assert got["plain"] == want_local
    assert got["dot"] == want_local
    assert got["file_rel"] == want_local
    assert got["up"] == str(tmp_path.resolve() / "shared" / "m.png")
    assert got["file_abs"] == got["file_host"] == got["abs"] == os.path.abspath("/abs/where/m.png")
    assert got["file_quoted"] == os.path.abspath("/abs/my dir/m.png")
    assert got["remote"] == "s3://bucket/m.png"


def test_relative_frames_path_gives_absolute_base_dir(tmp_path, monkeypatch):
    (tmp_path / "sub").mkdir()
    write_json(tmp_path / "sub" / "frames.json", minimal_frame())
    monkeypatch.chdir(tmp_path)
    frame = load_frames(os.path.join("sub", "frames.json"))[0]
    assert os.path.isabs(frame.base_dir)
    monkeypatch.chdir("/")
    assert resolve_uri("m.png", frame.base_dir) == str(tmp_path.resolve() / "sub" / "m.png")


# ----------------------------------------------------------------- add_annotation

def two_mask_frame() -> Frame:
    return Frame.from_dict({"sources": [
        {"id": "cam", "uri": "a.mp4", "masks": [{"id": "only", "uri": "m.mp4"}]},
        {"id": "side", "uri": "b.mp4", "masks": [{"id": "seg", "uri": "s.mp4"}, {"id": "inst", "uri": "i.mp4"}]},
    ]})


def test_add_annotation_defaults():
    frame = two_mask_frame()
    roi = frame.add_annotation(mask_rgb=(1, 2, 3), labels=["car"])
    assert frame.rois == [roi]
    assert roi.sources == ["cam"] and roi.mask == RoiMask("only", (1, 2, 3))
    assert roi.labels == ["car"] and roi.id is None and roi.confidence is None and roi.meta is None
    second = frame.add_annotation(mask_rgb=[0, 0, 0], labels="road", id="r1", confidence=0.25, meta={"a": 1})
    assert second.labels == ["road"] and second.id == "r1" and second.confidence == 0.25
    # round trips through the dict form
    again = Frame.from_dict(frame.to_dict())
    assert again == frame
    assert again.to_dict()["rois"][0] == {"label": ["car"], "sources": ["cam"],
                                          "mask": {"id": "only", "value": [1, 2, 3]}}


def test_add_annotation_named_source_and_mask():
    frame = two_mask_frame()
    roi = frame.add_annotation(mask_rgb=[9, 9, 9], labels=["person", "walking"], source_id="side", mask_id="inst")
    assert roi.sources == ["side"] and roi.mask == RoiMask("inst", (9, 9, 9))
    grey = frame.add_annotation(mask_rgb=[40000], labels=["deep"], source_id="side", mask_id="seg")
    assert grey.mask.value == (40000,)


def test_add_annotation_numpy_colour():
    """A colour picked from a decoded mask image (numpy integers) is accepted as plain ints."""
    frame = two_mask_frame()
    pixel = np.array([[[12, 34, 56]]], dtype=np.uint8)[0, 0]
    roi = frame.add_annotation(mask_rgb=pixel, labels=["car"])
    assert roi.mask.value == (12, 34, 56)
    assert all(type(c) is int for c in roi.mask.value)
    json.dumps(frame.to_dict())
    with pytest.raises(FrameFormatError):
        frame.add_annotation(mask_rgb=np.array([1.5, 2, 3]), labels=["car"])


def test_add_annotation_needs_mask_id_when_several():
    frame = two_mask_frame()
    with pytest.raises(FrameFormatError, match="mask_id"):
        frame.add_annotation(mask_rgb=[1, 2, 3], labels=["car"], source_id="side")
    assert frame.rois == []


def test_add_annotation_unknown_mask():
    frame = two_mask_frame()
    frame.add_annotation(mask_rgb=[1, 2, 3], labels=["car"])
    with pytest.raises(FrameFormatError) as info:
        frame.add_annotation(mask_rgb=[1, 2, 3], labels=["car"], mask_id="seg")  # seg is on "side"
    assert "$.rois[1].mask.id" in str(info.value) and "seg" in str(info.value)
    assert isinstance(info.value, ValueError)
    assert len(frame.rois) == 1


def test_add_annotation_unknown_source():
    frame = two_mask_frame()
    with pytest.raises(FrameFormatError, match="rear"):
        frame.add_annotation(mask_rgb=[1, 2, 3], labels=["car"], source_id="rear")
    assert frame.rois == []


@pytest.mark.parametrize("colour", [[256, 0, 0], [-1, 0, 0], [1, 2], [1, 2, 3, 4], [0.5, 0, 0], [65536], []])
def test_add_annotation_bad_colour(colour):
    frame = two_mask_frame()
    with pytest.raises(FrameFormatError) as info:
        frame.add_annotation(mask_rgb=colour, labels=["car"])
    assert "$.rois[0].mask.value" in str(info.value)
    assert frame.rois == []


@pytest.mark.parametrize("labels", [[], [1], ["ok", None]])
def test_add_annotation_bad_labels(labels):
    frame = two_mask_frame()
    with pytest.raises(FrameFormatError, match="label"):
        frame.add_annotation(mask_rgb=[1, 2, 3], labels=labels)
    assert frame.rois == []


def test_public_exports():
    assert maskdec.FrameFormatError is FrameFormatError
    assert issubclass(FrameFormatError, ValueError) and issubclass(FrameFormatError, MaskdecError)
    assert maskdec.load_frames is load_frames


def test_json_with_a_byte_order_mark_loads(tmp_path):
    path = tmp_path / "bom.json"
    path.write_bytes(b"\xef\xbb\xbf" + b'{"sources": [{"id": "a", "uri": "a.png"}]}')
    frames = maskdec.load_frames(path)
    assert frames[0].sources[0].id == "a"
