"""Colours -> classes -> label ids (docs/format.md), with the ClearML docs' examples."""
from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

from maskdec import FrameFormatError, LabelError, MaskdecError, MaskdecWarning, map_pixels
from maskdec.frames import Frame
from maskdec.labels import ColourDecl, LabelTable, load_mask_labels, mask_declarations
from maskdec.lut import table_for

# The docs' "Masks" page, Example 1: masks "seg" and "seg_instance"; every ROI has
# label ["seg"] and a mask id naming its class.
EXAMPLE_1 = """
{
  "timestamp": 1234567889,
  "context_id": "car_1",
  "meta": {"velocity": "60"},
  "sources": [
    {
      "id": "front",
      "content_type": "video/mp4",
      "width": 800,
      "height": 600,
      "uri": "https://s3.amazonaws.com/my_cars/car_1/front.mp4",
      "timestamp": 1234567889,
      "meta": {"angle": 45, "fov": 129},
      "masks": [
        {"id": "seg", "content_type": "video/mp4",
         "uri": "https://s3.amazonaws.com/seg_masks/car_1/front_seg.mp4", "timestamp": 123456789},
        {"id": "seg_instance", "content_type": "video/mp4",
         "uri": "https://s3.amazonaws.com/seg_masks/car_1/front_instance_seg.mp4", "timestamp": 123456789}
      ]
    }
  ],
  "rois": [
    {"sources": ["front"], "label": ["seg"], "mask": {"id": "car", "value": [210, 210, 120]}},
    {"sources": ["front"], "label": ["seg"], "mask": {"id": "person", "value": [147, 44, 209]}},
    {"sources": ["front"], "label": ["seg"], "mask": {"id": "road", "value": [197, 135, 146]}},
    {"sources": ["front"], "label": ["seg"], "mask": {"id": "street", "value": [135, 198, 145]}},
    {"sources": ["front"], "label": ["seg"], "mask": {"id": "building", "value": [72, 191, 65]}}
  ]
}
"""

# Example 2, a fragment (the `sources` and `rois` of a frame): masks "car" and "road",
# ROIs labelled ["right_lane"] whose mask ids name the masks.
EXAMPLE_2_FRAGMENT = """
"sources": [
  {
    "id": "front",
    "content_type": "video/mp4",
    "width": 800,
    "height": 600,
    "uri": "https://s3.amazonaws.com/my_cars/car_1/front.mp4",
    "timestamp": 1234567889,
    "meta": {"angle": 45, "fov": 129},
    "masks": [
      {"id": "car", "content_type": "video/mp4",
       "uri": "https://s3.amazonaws.com/seg_masks/car_1/front_seg.mp4", "timestamp": 123456789},
      {"id": "road", "content_type": "video/mp4",
       "uri": "https://s3.amazonaws.com/seg_masks/car_1/front_seg.mp4", "timestamp": 123456789}
    ]
  }
],
"rois": [
  {"sources": ["front"], "label": ["right_lane"], "mask": {"id": "car", "value": [210, 210, 120]}},
  {"sources": ["front"], "label": ["right_lane"], "mask": {"id": "road", "value": [197, 135, 146]}}
]
"""

EXAMPLE_1_CLASSES = {
    "car": (210, 210, 120),
    "person": (147, 44, 209),
    "road": (197, 135, 146),
    "street": (135, 198, 145),
    "building": (72, 191, 65),
}


def example_1() -> Frame:
    return Frame.from_dict(json.loads(EXAMPLE_1))


def example_2() -> Frame:
    return Frame.from_dict(json.loads("{" + EXAMPLE_2_FRAGMENT + "}"))


def frame(masks_by_source: dict, rois: list) -> Frame:
    """A frame with the given sources ({source id: [mask ids]}) and ROIs."""
    return Frame.from_dict({
        "sources": [{"id": sid, "uri": f"{sid}.mp4", "masks": [{"id": m, "uri": f"{sid}_{m}.mp4"} for m in masks]}
                    for sid, masks in masks_by_source.items()],
        "rois": rois,
    })


def roi(labels, mask_id, value, sources=None) -> dict:
    out = {"label": labels, "mask": {"id": mask_id, "value": value}}
    if sources is not None:
        out["sources"] = sources
    return out


def summary(decls: dict) -> dict:
    """{(source, mask): {colour: class}} for easy comparison."""
    return {key: {d.colour: d.name for d in ds} for key, ds in decls.items()}


# ----------------------------------------------------------------- the docs' examples

def test_example_1_rule_2_classes_are_mask_ids_on_mask_seg():
    f = example_1()
    assert f.sources[0].timestamp == 1234567889 and f.sources[0].masks[0].timestamp == 123456789
    decls = mask_declarations(f)
    assert summary(decls) == {
        ("front", "seg"): {colour: name for name, colour in EXAMPLE_1_CLASSES.items()},
        ("front", "seg_instance"): {},
    }
    assert [d.roi_index for d in decls[("front", "seg")]] == [0, 1, 2, 3, 4]
    assert all(d.labels == ("seg",) for d in decls[("front", "seg")])


def test_example_1_maps_pixels():
    decls = mask_declarations(example_1())[("front", "seg")]
    labels = LabelTable.derive(d.name for d in decls)
    assert labels.to_dict() == {"building": 0, "car": 1, "person": 2, "road": 3, "street": 4}
    table = table_for(decls, [labels.id_of(d.name) for d in decls], labels.ignore_index, labels.dtype)
    names = list(EXAMPLE_1_CLASSES)
    rng = np.random.default_rng(3)
    which = rng.integers(0, len(names) + 1, size=(6, 9))  # len(names) = an undeclared colour
    palette = np.array(list(EXAMPLE_1_CLASSES.values()) + [(0, 0, 0)], dtype=np.uint8)
    image = palette[which]
    expected = np.array([labels.id_of(names[k]) if k < len(names) else 255 for k in which.ravel()]).reshape(6, 9)
    np.testing.assert_array_equal(map_pixels(image, table), expected)


def test_example_2_rule_1_class_right_lane_on_each_mask():
    decls = mask_declarations(example_2())
    assert summary(decls) == {
        ("front", "car"): {(210, 210, 120): "right_lane"},
        ("front", "road"): {(197, 135, 146): "right_lane"},
    }
    assert LabelTable.derive(d.name for ds in decls.values() for d in ds).to_dict() == {"right_lane": 0}


# ----------------------------------------------------------------- rules 1-4

def test_rule_1_beats_rule_2():
    # mask id "car" names a mask (rule 1) even though the label "seg" names one too (rule 2)
    f = frame({"cam": ["seg", "car"]}, [roi(["seg"], "car", [1, 2, 3])])
    assert summary(mask_declarations(f)) == {("cam", "seg"): {}, ("cam", "car"): {(1, 2, 3): "seg"}}


def test_rule_1_class_is_the_first_label():
    f = frame({"cam": ["a", "b"]}, [roi(["car", "red", "parked"], "b", [1, 2, 3])])
    (decl,) = mask_declarations(f)[("cam", "b")]
    assert decl.name == "car" and decl.labels == ("car", "red", "parked") and decl.roi_index == 0


def test_rule_2_uses_any_label():
    f = frame({"cam": ["seg", "inst"]}, [roi(["vehicle", "inst"], "truck_7", [9, 9, 9])])
    assert summary(mask_declarations(f))[("cam", "inst")] == {(9, 9, 9): "truck_7"}


def test_rule_3_only_mask():
    f = frame({"cam": ["m"]}, [roi(["road"], "no_such_mask", [5, 6, 7]), roi(["car"], "m", [1, 1, 1])])
    assert summary(mask_declarations(f)) == {("cam", "m"): {(5, 6, 7): "road", (1, 1, 1): "car"}}


def test_roi_without_sources_uses_the_first_source():
    f = frame({"a": ["m"], "b": ["m"]}, [roi(["x"], "m", [1, 2, 3])])
    assert summary(mask_declarations(f)) == {("a", "m"): {(1, 2, 3): "x"}, ("b", "m"): {}}


def test_rules_apply_within_the_rois_sources():
    masks = {"a": ["seg", "inst"], "b": ["only"], "c": ["car", "road"]}
    f = frame(masks, [
        roi(["x"], "whatever", [1, 1, 1], sources=["b"]),        # rule 3 on b
        roi(["y"], "road", [2, 2, 2], sources=["c"]),            # rule 1 on c
        roi(["inst"], "bike", [3, 3, 3], sources=["a"]),         # rule 2 on a
        roi(["z"], "road", [4, 4, 4], sources=["b", "c"]),       # rule 3 on b, rule 1 on c: both paint
        roi(["inst"], "car", [5, 5, 5], sources=["a", "c"]),     # rule 2 on a (class car), rule 1 on c (class inst)
    ])
    assert summary(mask_declarations(f)) == {
        ("a", "seg"): {}, ("a", "inst"): {(3, 3, 3): "bike", (5, 5, 5): "car"},
        ("b", "only"): {(1, 1, 1): "x", (4, 4, 4): "z"},
        ("c", "car"): {(5, 5, 5): "inst"}, ("c", "road"): {(2, 2, 2): "y", (4, 4, 4): "z"},
    }


def test_a_multi_source_roi_ambiguous_in_one_source():
    masks = {"a": ["seg", "inst"], "c": ["car", "road"]}
    f = frame(masks, [roi(["z"], "road", [4, 4, 4], sources=["a", "c"])])  # a has two masks, none named
    with pytest.raises(FrameFormatError, match=r"source 'a'"):
        mask_declarations(f)
    with pytest.warns(MaskdecWarning, match=r"source 'a'.*skipped for that source"):
        found = summary(mask_declarations(f, strict=False))
    assert found == {("a", "seg"): {}, ("a", "inst"): {}, ("c", "car"): {}, ("c", "road"): {(4, 4, 4): "z"}}


def test_mask_of_another_source_does_not_count():
    # "road" is a mask of source c, but the ROI points at a (two masks, none matching)
    f = frame({"a": ["seg", "inst"], "c": ["road"]}, [roi(["lane"], "road", [1, 2, 3], sources=["a"])])
    with pytest.raises(FrameFormatError, match=r"\$\.rois\[0\]"):
        mask_declarations(f)


def test_rois_without_mask_are_ignored():
    f = frame({"cam": ["seg", "inst"]}, [{"label": ["night"]}, {"label": ["car"], "poly": [0, 0, 1, 1]}])
    assert summary(mask_declarations(f)) == {("cam", "seg"): {}, ("cam", "inst"): {}}


def test_rule_4_strict_error():
    f = frame({"cam": ["seg", "inst"]}, [roi(["car"], "car", [1, 2, 3]), roi(["road"], "lane", [4, 5, 6])])
    with pytest.raises(FrameFormatError) as info:
        mask_declarations(f, strict=True)
    err = info.value
    assert isinstance(err, ValueError) and isinstance(err, MaskdecError)
    assert "$.rois[0]" in str(err) and "[1, 2, 3]" in str(err)
    with pytest.raises(FrameFormatError, match=r"frames\.jsonl line 4: \$\.rois\[0\]"):
        mask_declarations(f, where="frames.jsonl line 4: $")


def test_rule_4_source_without_masks_is_ambiguous():
    f = frame({"cam": []}, [roi(["car"], "car", [1, 2, 3])])
    with pytest.raises(FrameFormatError, match=r"\$\.rois\[0\]"):
        mask_declarations(f)


def test_rule_4_lenient_warns_and_skips():
    f = frame({"cam": ["seg", "inst"]}, [
        roi(["car"], "seg", [1, 2, 3]),
        roi(["road"], "lane", [4, 5, 6]),
        roi(["inst"], "bike", [7, 8, 9]),
    ])
    with pytest.warns(MaskdecWarning, match=r"\$\.rois\[1\]") as record:
        decls = mask_declarations(f, strict=False)
    assert len([w for w in record if issubclass(w.category, MaskdecWarning)]) == 1
    assert summary(decls) == {("cam", "seg"): {(1, 2, 3): "car"}, ("cam", "inst"): {(7, 8, 9): "bike"}}


def test_lenient_mode_is_silent_when_nothing_is_ambiguous():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        mask_declarations(example_1(), strict=False)
        mask_declarations(example_2(), strict=False)


# ----------------------------------------------------------------- conflicts

def test_colour_conflict_names_both_rois():
    f = frame({"cam": ["m"]}, [
        roi(["car"], "m", [1, 2, 3]),
        roi(["tree"], "m", [9, 9, 9]),
        roi(["truck"], "m", [1, 2, 3]),
    ])
    with pytest.raises(LabelError) as info:
        mask_declarations(f)
    message = str(info.value)
    assert "rois[0]" in message and "rois[2]" in message
    assert "car" in message and "truck" in message
    assert isinstance(info.value, ValueError) and isinstance(info.value, MaskdecError)


def test_colour_conflict_in_legacy_form():
    f = example_1()
    f.rois[3].mask.value = f.rois[1].mask.value  # street painted like person
    with pytest.raises(LabelError) as info:
        mask_declarations(f)
    assert "rois[1]" in str(info.value) and "rois[3]" in str(info.value)


def test_grey_and_its_triple_are_the_same_colour():
    f = frame({"cam": ["m"]}, [roi(["a"], "m", [7]), roi(["b"], "m", [7, 7, 7])])
    with pytest.raises(LabelError, match=r"rois\[0\].*rois\[1\]"):
        mask_declarations(f)


def test_same_colour_same_class_is_no_conflict():
    f = frame({"cam": ["m"]}, [roi(["car"], "m", [1, 2, 3]), roi(["car", "red"], "m", [1, 2, 3])])
    (decl,) = mask_declarations(f)[("cam", "m")]
    assert decl.name == "car" and decl.roi_index == 0


def test_same_colour_on_different_masks_is_no_conflict():
    f = frame({"cam": ["a", "b"]}, [roi(["car"], "a", [1, 2, 3]), roi(["truck"], "b", [1, 2, 3])])
    assert summary(mask_declarations(f)) == {("cam", "a"): {(1, 2, 3): "car"}, ("cam", "b"): {(1, 2, 3): "truck"}}


# ----------------------------------------------------------------- dataset-level mask labels

ALL_FORM = {"_all_": [
    {"value": [0, 0, 0], "labels": ["background"]},
    {"value": [255, 0, 0], "labels": ["car", "vehicle"]},
    {"value": [12], "labels": ["lane"]},
    {"value": [40000], "labels": ["deep"]},
]}


def test_mask_labels_both_forms_and_file(tmp_path):
    expected = [
        ColourDecl((0, 0, 0), "background", ("background",)),
        ColourDecl((255, 0, 0), "car", ("car", "vehicle")),
        ColourDecl((12, 12, 12), "lane", ("lane",)),
        ColourDecl((40000,), "deep", ("deep",)),
    ]
    assert load_mask_labels(ALL_FORM) == expected
    assert load_mask_labels(ALL_FORM["_all_"]) == expected
    path = tmp_path / "mask_labels.json"
    path.write_text(json.dumps(ALL_FORM), encoding="utf-8")
    assert load_mask_labels(path) == expected
    assert load_mask_labels(str(path)) == expected
    assert load_mask_labels(None) == []


def test_mask_labels_apply_to_every_mask_and_rois_override():
    f = frame({"a": ["seg", "inst"], "b": ["m"]}, [
        roi(["truck"], "seg", [255, 0, 0], sources=["a"]),   # overrides car on a/seg only
        roi(["tree"], "m", [0, 255, 0], sources=["b"]),      # adds a colour on b/m
    ])
    decls = mask_declarations(f, mask_labels=load_mask_labels(ALL_FORM))
    base = {(0, 0, 0): "background", (255, 0, 0): "car", (12, 12, 12): "lane", (40000,): "deep"}
    assert summary(decls) == {
        ("a", "seg"): {**base, (255, 0, 0): "truck"},
        ("a", "inst"): base,
        ("b", "m"): {**base, (0, 255, 0): "tree"},
    }
    overriding = [d for d in decls[("a", "seg")] if d.colour == (255, 0, 0)]
    assert len(overriding) == 1 and overriding[0].roi_index == 0


def test_mask_labels_conflict_names_both_entries():
    spec = [{"value": [0, 0, 0], "labels": ["unlabeled"]},
            {"value": [128, 64, 128], "labels": ["road"]},
            {"value": [0, 0, 0], "labels": ["ego vehicle"]}]
    with pytest.raises(LabelError) as info:
        load_mask_labels(spec)
    message = str(info.value)
    assert "mask_labels[0]" in message and "mask_labels[2]" in message
    assert "unlabeled" in message and "ego vehicle" in message
    with pytest.raises(LabelError, match=r"_all_\[0\].*_all_\[1\]"):
        load_mask_labels({"_all_": [{"value": [5], "labels": ["a"]}, {"value": [5, 5, 5], "labels": ["b"]}]})
    # the same colour twice with the same class is fine
    assert len(load_mask_labels([spec[0], {"value": [0, 0, 0], "labels": ["unlabeled", "void"]}])) == 2


@pytest.mark.parametrize("spec, path", [
    ({"all": []}, "mask_labels"),
    ({"_all_": {"value": [0, 0, 0]}}, "mask_labels._all_"),
    ([{"value": [0, 0, 0], "labels": []}], "mask_labels[0].labels"),
    ([{"value": [0, 0, 0], "labels": ["a"]}, {"value": [0, 0, 256], "labels": ["b"]}], "mask_labels[1].value"),
    ({"_all_": [{"value": [0, 0, 0], "labels": ["a"]}, "b"]}, "mask_labels._all_[1]"),
    ([{"labels": ["a"]}], "mask_labels[0].value"),
])
def test_bad_mask_labels(spec, path):
    with pytest.raises(FrameFormatError) as info:
        load_mask_labels(spec)
    assert path in str(info.value)


# ----------------------------------------------------------------- label tables

def test_derived_table_sorted_names():
    table = LabelTable.derive(["road", "car", "person", "car", "building"])
    assert table.to_dict() == {"building": 0, "car": 1, "person": 2, "road": 3}
    assert table.names() == {0: "building", 1: "car", 2: "person", 3: "road"}
    assert table.ignore_index == 255 and table.dtype == np.uint8 and not table.explicit
    assert table.id_of("car") == 1


def test_derived_table_goes_16_bit_when_needed():
    names = [f"c{i:03d}" for i in range(300)]
    table = LabelTable.derive(reversed(names))
    assert table.ids["c000"] == 0 and table.ids["c299"] == 299
    assert table.dtype == np.uint16 and table.ignore_index == 65535
    table = LabelTable.derive(names[:255])  # ids 0..254 still fit beside ignore 255
    assert table.dtype == np.uint8 and table.ignore_index == 255
    table = LabelTable.derive(names[:256])  # id 255 would be the ignore index
    assert table.dtype == np.uint16 and table.ignore_index == 65535


def test_derived_table_size_limit():
    assert len(LabelTable.derive(str(i) for i in range(65535)).ids) == 65535
    with pytest.raises(LabelError):
        LabelTable.derive(str(i) for i in range(65536))


def test_explicit_enumeration():
    table = LabelTable.from_enumeration({"car": 7, "road": 1, "person": 0})
    assert table.explicit and table.to_dict() == {"car": 7, "road": 1, "person": 0}
    assert table.id_of("car") == 7 and table.id_of("bike") == 255
    assert table.dtype == np.uint8


def test_explicit_enumeration_class_is_first_label_with_an_id():
    f = frame({"cam": ["m"]}, [
        roi(["parked", "car", "road"], "m", [1, 1, 1]),  # class car
        roi(["bike"], "m", [2, 2, 2]),                   # no id: ignore_index
        roi(["road", "car"], "m", [3, 3, 3]),            # class road
    ])
    enumeration = {"car": 3, "road": 9}
    decls = mask_declarations(f, enumeration=enumeration)[("cam", "m")]
    assert [d.name for d in decls] == ["car", "bike", "road"]
    assert [d.name for d in mask_declarations(f)[("cam", "m")]] == ["parked", "bike", "road"]
    table = LabelTable.from_enumeration(enumeration)
    colours = table_for(decls, [table.id_of(d.name) for d in decls], table.ignore_index, table.dtype)
    image = np.array([[[1, 1, 1], [2, 2, 2], [3, 3, 3], [4, 4, 4]]], dtype=np.uint8)
    np.testing.assert_array_equal(map_pixels(image, colours), [[3, 255, 9, 255]])


def test_explicit_enumeration_does_not_change_rule_2_class():
    decls = mask_declarations(example_1(), enumeration={"car": 1, "seg": 2})[("front", "seg")]
    assert [d.name for d in decls] == list(EXAMPLE_1_CLASSES)


@pytest.mark.parametrize("enumeration, ignore, dtype", [
    ({"a": 0, "b": 254}, 255, np.uint8),
    ({"a": 0, "b": 255}, 65535, np.uint16),
    ({"a": 0, "b": 1000}, 65535, np.uint16),
    ({"a": 65534}, 65535, np.uint16),
])
def test_enumeration_dtype(enumeration, ignore, dtype):
    table = LabelTable.from_enumeration(enumeration)
    assert table.ignore_index == ignore and table.dtype == dtype
    assert np.iinfo(table.dtype).max >= max(enumeration.values())
    assert table.id_of("missing") == ignore


def test_custom_ignore_index():
    table = LabelTable.from_enumeration({"a": 0, "b": 1}, ignore_index=100)
    assert table.ignore_index == 100 and table.dtype == np.uint8 and table.id_of("z") == 100
    table = LabelTable.from_enumeration({"a": 0, "b": 1}, ignore_index=300)
    assert table.ignore_index == 300 and table.dtype == np.uint16
    with pytest.raises(LabelError):
        LabelTable.from_enumeration({"a": 0}, ignore_index=70000)
    with pytest.raises(LabelError):
        LabelTable.from_enumeration({"a": 0}, ignore_index=-1)


@pytest.mark.parametrize("enumeration", [
    {"a": 65536},
    {"a": 1, "b": 10 ** 6},
    {"a": -1},
    {"a": 1.5},
    {"a": "3"},
    {"a": True},
    {"a": 65535},   # collides with the 16-bit ignore index
])
def test_bad_enumeration_rejected(enumeration):
    with pytest.raises(LabelError):
        LabelTable.from_enumeration(enumeration)


def test_id_equal_to_ignore_index_rejected():
    with pytest.raises(LabelError, match="ignore_index"):
        LabelTable.from_enumeration({"a": 0, "b": 100}, ignore_index=100)


def test_numpy_integer_ids_accepted():
    table = LabelTable.from_enumeration({"a": np.int64(4), "b": np.uint16(300)})
    assert table.to_dict() == {"a": 4, "b": 300} and all(type(v) is int for v in table.ids.values())
    assert table.dtype == np.uint16


def test_table_equality():
    assert LabelTable.derive(["b", "a"]) == LabelTable.from_enumeration({"a": 0, "b": 1})
    assert LabelTable.derive(["b", "a"]) != LabelTable.from_enumeration({"a": 1, "b": 0})
    assert LabelTable.derive(["a"]) != LabelTable.derive(["a"], ignore_index=200)


def test_dataset_mask_labels_take_the_first_label_with_an_id():
    from maskdec.labels import load_mask_labels, mask_declarations

    from maskdec import Frame

    frame = Frame.from_dict({"sources": [{"id": "a", "uri": "a.png", "masks": [{"id": "m", "uri": "m.png"}]}]})
    decls = load_mask_labels([{"value": [1, 1, 1], "labels": ["sitting", "person"]}])
    found = mask_declarations(frame, mask_labels=decls, enumeration={"person": 3})
    assert [d.name for d in found[("a", "m")]] == ["person"]
    found = mask_declarations(frame, mask_labels=decls)
    assert [d.name for d in found[("a", "m")]] == ["sitting"]


def test_normalised_colours_are_tuples_of_python_ints():
    """Greys widen to (v, v, v); whatever integers come in (numpy's from a picked pixel), plain
    ints come out, as JSON writers of dataset metadata need."""
    from maskdec.labels import normalise_colour

    for value, want in (((1, 2, 3), (1, 2, 3)), ([4, 5, 6], (4, 5, 6)), ([7], (7, 7, 7)), ([300], (300,)),
                        ((np.uint8(8), np.int64(9), 10), (8, 9, 10))):
        got = normalise_colour(value)
        assert got == want and type(got) is tuple and all(type(c) is int for c in got)
        json.dumps(got)
