"""maskdec export --format parquet: shards Hugging Face `datasets` and pyarrow read.

The realistic dataset (maskdec.realistic: shuffled clips, two cameras, instance
masks, undeclared background) is exported; every row's PNGs are decoded and
compared with iter_samples, every sample found exactly once. `datasets` is
not a dependency: its test skips when it is not installed.
"""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import kill_export_mid_run
import maskdec
from maskdec.export import export
from maskdec.export_names import sample_key
from maskdec.export_parquet import ROW_GROUP_ROWS, ParquetShardError, parquet_card
from maskdec.labels import LabelTable
from maskdec.realistic import CLASS_COLOURS, make_realistic
from maskdec.rois import roi_samples_of
from test_export import make_dataset, read_manifest, run_cli, temp_files, tree

pq = pytest.importorskip("pyarrow.parquet")

SHARD_SIZE = 16
#: label ids past 255: 16-bit label maps
WIDE_LABELS = {name: 300 + i for i, name in enumerate(sorted(CLASS_COLOURS))}


def identity(obj) -> tuple:
    if isinstance(obj, dict):
        return obj["frame_index"], obj["source_id"], obj["mask_id"]
    return obj.frame_index, obj.source_id, obj.mask_id


def png(data: bytes) -> np.ndarray:
    return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)


def rgb_png(data: bytes) -> np.ndarray:
    return cv2.cvtColor(png(data), cv2.COLOR_BGR2RGB)


def shard_rows(out: Path) -> list[tuple[str, int, dict]]:
    """Every row of every shard, as (shard, row number, row)."""
    rows = []
    for path in sorted((out / "data").iterdir()):
        for number, row in enumerate(pq.read_table(path).to_pylist()):
            rows.append((f"data/{path.name}", number, row))
    return rows


@pytest.fixture(scope="module")
def realistic(tmp_path_factory):
    return make_realistic(tmp_path_factory.mktemp("realistic"), scale="test", seed=0)


@pytest.fixture(scope="module")
def reference(realistic):
    return {identity(s): s for s in maskdec.iter_samples(realistic.frames_path)}


@pytest.fixture(scope="module")
def parquet_export(realistic, tmp_path_factory):
    out = tmp_path_factory.mktemp("parquet") / "out"
    return out, export(realistic.frames_path, out, format="parquet", shard_size=SHARD_SIZE, workers=2)


@pytest.fixture(scope="module")
def roi_export(realistic, tmp_path_factory):
    """Label maps only, 16-bit ids, one mask per ROI."""
    out = tmp_path_factory.mktemp("parquet_rois") / "out"
    return out, export(realistic.frames_path, out, format="parquet", shard_size=SHARD_SIZE, workers=2,
                       images=False, per_roi=True, labels=WIDE_LABELS)


def test_every_sample_is_one_row_whose_pngs_equal_iter_samples(reference, parquet_export):
    out, summary = parquet_export
    assert (summary.samples, summary.failed) == (len(reference), 0) and len(reference) > 2 * SHARD_SIZE
    rows = shard_rows(out)
    assert sorted(identity(row) for _, _, row in rows) == sorted(reference)  # each sample exactly once
    manifest = {identity(e): e for e in read_manifest(out)}
    per_shard: dict[str, int] = {}
    for shard, number, row in rows:
        sample = reference[identity(row)]
        label_map = png(row["label_map"]["bytes"])
        assert label_map.dtype == sample.label_map.dtype == np.uint8
        assert np.array_equal(label_map, sample.label_map)
        assert np.array_equal(rgb_png(row["image"]["bytes"]), sample.image)
        assert (row["timestamp"], row["mask_timestamp"]) == (sample.timestamp, sample.mask_timestamp)
        entry = manifest[identity(row)]
        assert (entry["shard"], entry["row"]) == (shard, number)
        assert row["key"] == sample_key(*identity(sample))
        assert entry["label_map"] == row["label_map"]["path"] and entry["image"] == row["image"]["path"]
        assert row["pixels"] == entry["pixels"] == sample.label_map.size
        assert row["unknown_pixels"] == entry["unknown_pixels"] == int((sample.label_map == 255).sum())
        stats = {k: row[f"stats_{k}"] for k in ("exact", "snapped", "unknown")}
        assert stats == entry["stats"] and sum(stats.values()) == sample.label_map.size
        per_shard[shard] = per_shard.get(shard, 0) + 1
    assert max(per_shard.values()) == SHARD_SIZE
    assert sum(r["unknown_pixels"] for _, _, r in rows) == summary.unknown_pixels > 0  # the undeclared black
    assert temp_files(out) == []


def test_schema_says_which_columns_are_images_and_bytes_are_fixed(parquet_export, realistic, tmp_path):
    out, _ = parquet_export
    first = sorted((out / "data").iterdir())[0]
    schema = pq.read_schema(first)
    features = json.loads(schema.metadata[b"huggingface"])["info"]["features"]
    assert features["image"] == features["label_map"] == {"_type": "Image"}
    assert features["frame_index"] == {"dtype": "int64", "_type": "Value"}
    assert list(features) == schema.names
    meta = pq.ParquetFile(first).metadata
    assert meta.num_row_groups == 1 and meta.num_rows == SHARD_SIZE <= ROW_GROUP_ROWS
    columns = {meta.row_group(0).column(i).path_in_schema: meta.row_group(0).column(i) for i in
               range(meta.num_columns)}
    assert columns["label_map.bytes"].compression == "UNCOMPRESSED"  # PNG is compressed already
    assert columns["frame_index"].compression == "ZSTD"
    # one worker, other timing: the same bytes
    export(realistic.frames_path, tmp_path / "one", format="parquet", shard_size=SHARD_SIZE, workers=1)
    assert tree(tmp_path / "one") == tree(out)


def test_label_maps_only_16_bit_and_per_roi_masks(realistic, roi_export):
    out, summary = roi_export
    reference = {identity(s): s for s in maskdec.iter_samples(realistic.frames_path, images=False,
                                                              labels=WIDE_LABELS, instances=True)}
    rows = shard_rows(out)
    assert sorted(identity(r) for _, _, r in rows) == sorted(reference) and summary.failed == 0
    n_rois = 0
    for _, _, row in rows:
        sample = reference[identity(row)]
        assert row["image"] is None
        label_map = png(row["label_map"]["bytes"])
        assert label_map.dtype == np.uint16 and np.array_equal(label_map, sample.label_map)
        assert row["unknown_pixels"] == int((sample.label_map == 65535).sum())
        views = roi_samples_of(sample)
        assert len(row["rois"]) == len(views) == len(sample.rois)
        for record, view in zip(row["rois"], views):
            assert np.array_equal(png(record["mask"]["bytes"]), view.mask.astype(np.uint8) * 255)
            assert (record["k"], record["roi_id"], record["label_id"], record["area"]) == (
                view.ref.k, view.roi.id, view.ref.label_id, view.area)
            assert record["box"] == (None if view.box is None else list(view.box))
            assert record["labels"] == list(view.roi.labels) and record["label"] == view.ref.name
            n_rois += 1
    assert n_rois > len(rows)
    features = json.loads(pq.read_schema(sorted((out / "data").iterdir())[0]).metadata[b"huggingface"])
    assert features["info"]["features"]["rois"][0]["mask"] == {"_type": "Image"}
    card = (out / "README.md").read_text()
    assert "uint16 label ids" in card and "| 300 | bicycle |" in card and "65535 (ignore_index)" in card


def test_datasets_load_dataset_gives_the_same_arrays(reference, parquet_export, realistic, roi_export, tmp_path):
    datasets = pytest.importorskip("datasets")
    pytest.importorskip("PIL")
    out, _ = parquet_export
    ds = datasets.load_dataset("parquet", data_files=str(out / "data" / "*.parquet"), split="train",
                               cache_dir=str(tmp_path / "cache"))
    assert isinstance(ds.features["image"], datasets.Image) and isinstance(ds.features["label_map"], datasets.Image)
    assert len(ds) == len(reference)
    seen = set()
    for row in ds:
        sample = reference[identity(row)]
        label_map, image = np.asarray(row["label_map"]), np.asarray(row["image"])
        assert label_map.dtype == np.uint8 and np.array_equal(label_map, sample.label_map)
        assert image.dtype == np.uint8 and np.array_equal(image, sample.image)
        seen.add(identity(row))
    assert seen == set(reference)
    # the folder itself, through its dataset card (configs and features in README.md)
    by_card = datasets.load_dataset(str(out), split="train", cache_dir=str(tmp_path / "cache2"))
    assert by_card.features == ds.features and len(by_card) == len(ds)
    # 16-bit label maps and ROI masks
    out16, _ = roi_export
    wide = {identity(s): s for s in maskdec.iter_samples(realistic.frames_path, images=False, labels=WIDE_LABELS)}
    ds16 = datasets.load_dataset("parquet", data_files=str(out16 / "data" / "*.parquet"), split="train",
                                 cache_dir=str(tmp_path / "cache3"))
    assert isinstance(ds16.features["rois"][0]["mask"] if isinstance(ds16.features["rois"], list)
                      else ds16.features["rois"].feature["mask"], datasets.Image)
    for row in ds16:
        label_map = np.asarray(row["label_map"])
        assert row["image"] is None
        assert label_map.dtype == np.uint16 and np.array_equal(label_map, wide[identity(row)].label_map)
        assert all(np.asarray(r["mask"]).max(initial=0) in (0, 255) for r in row["rois"])


def test_card_lists_the_labels_and_a_rerun_leaves_everything_as_it_was(parquet_export, realistic):
    out, summary = parquet_export
    card = (out / "README.md").read_text()
    header = card.split("---\n")[1]
    assert "configs:" in header and "path: data/*.parquet" in header
    assert "  - name: label_map\n    dtype: image\n" in header and "  - name: frame_index\n    dtype: int64\n" in header
    for name, label_id in summary.labels.items():
        assert f"| {label_id} | {name} |" in card
    assert f"{summary.samples} samples in {len(list((out / 'data').iterdir()))} Parquet shards" in card
    before = tree(out)
    stamps = {p: p.stat().st_mtime_ns for p in (out / "data").iterdir()}
    again = export(realistic.frames_path, out, format="parquet", shard_size=SHARD_SIZE, workers=2)
    assert again.skipped == summary.samples
    assert tree(out) == before and {p: p.stat().st_mtime_ns for p in (out / "data").iterdir()} == stamps


def test_card_shows_label_names_as_text():
    card = parquet_card(LabelTable({"a|b": 0, "x\ny": 1, "<b>": 2}), {})
    assert "| 0 | a\\|b |" in card and "| 1 | x\\u000ay |" in card and "| 2 | \\<b\\> |" in card
    assert "0 samples in 0 Parquet shards" in card


def test_a_sample_parquet_cannot_hold_fails_alone_naming_it(realistic, tmp_path):
    """An id with a lone surrogate (valid JSON, not UTF-8) cannot be a Parquet string."""
    frames = [json.loads(line) for line in realistic.frames_path.read_text().splitlines()]
    frame = next(f for f in frames if len(f["sources"]) == 1)
    bad = frame["sources"][0]["id"] + "\ud800"
    for roi in frame.get("rois", []):
        roi["sources"] = [bad if s == frame["sources"][0]["id"] else s for s in roi.get("sources", [])] or None
        if roi["sources"] is None:
            del roi["sources"]
    frame["sources"][0]["id"] = bad
    for f in frames:
        for source in f["sources"]:
            source["uri"] = str(realistic.root / source["uri"])
            for mask in source.get("masks", []):
                mask["uri"] = str(realistic.root / mask["uri"])
    path = tmp_path / "frames.jsonl"
    path.write_text("".join(json.dumps(f) + "\n" for f in frames))
    summary = export(path, tmp_path / "out", format="parquet", shard_size=SHARD_SIZE, workers=1)
    n_bad = len(frame["sources"][0]["masks"])
    total = len(list(maskdec.iter_samples(realistic.frames_path, images=False)))
    assert summary.failed == n_bad and summary.samples == total - n_bad
    for failure in summary.failures:
        assert failure["error_type"] == ParquetShardError.__name__
        assert "cannot store sample" in failure["error"] and repr(bad) in failure["error"]
        assert "data/0000" in failure["error"] and "surrogates not allowed" in failure["error"]
    rows = shard_rows(tmp_path / "out")
    assert len(rows) == summary.samples and all(r["source_id"] != bad for _, _, r in rows)


def test_a_shard_that_cannot_land_fails_its_samples_naming_it(realistic, parquet_export, tmp_path):
    out = tmp_path / "out"
    (out / "data" / "000001.parquet").mkdir(parents=True)  # a folder where the second shard goes
    summary = export(realistic.frames_path, out, format="parquet", shard_size=SHARD_SIZE, workers=1,
                     allow_foreign_dir=True)
    in_shard = pq.ParquetFile(parquet_export[0] / "data" / "000001.parquet").metadata.num_rows
    assert summary.failed == in_shard > 0
    assert all("data/000001.parquet" in f["error"] for f in summary.failures)
    assert summary.samples + summary.failed == len(list(maskdec.iter_samples(realistic.frames_path, images=False)))
    assert temp_files(out) == []


def test_sigkill_then_rerun_equals_an_uninterrupted_run(tmp_path):
    frames = make_dataset(tmp_path / "data", n=40, width=320, height=240)
    args = ["--format", "parquet", "--shard-size", "8", "--workers", "2"]
    reference = run_cli("export", frames, "--out", tmp_path / "ref", *args)
    assert reference.returncode == 0, reference.stderr
    out = tmp_path / "out"
    finished = kill_export_mid_run(frames, out, args, after=2)
    assert 2 <= finished < 81  # killed mid-run
    assert not (out / "README.md").exists()  # the card comes last
    (out / "data").mkdir(exist_ok=True)  # a kill in the middle of a write leaves a temporary file behind
    (out / "data" / ".000003.parquet.999-deadbeef.tmp").write_bytes(b"half a shard")
    rerun = run_cli("export", frames, "--out", out, *args)
    assert rerun.returncode == 0, rerun.stderr
    assert temp_files(out) == []
    assert tree(out) == tree(tmp_path / "ref")
    assert len(shard_rows(out)) == 81
