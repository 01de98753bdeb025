"""The command line: `maskdec example` and `maskdec export` on real generated media."""
import json
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest

import maskdec
from maskdec.example import make_example


def run_cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "maskdec.cli", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=300)


@pytest.fixture(scope="module")
def example(tmp_path_factory):
    return make_example(tmp_path_factory.mktemp("example"), n_frames=12)


def read_manifest(out):
    with open(out / "manifest.jsonl") as fh:
        return [json.loads(line) for line in fh]


def test_example_command_writes_a_loadable_dataset(tmp_path):
    result = run_cli("example", str(tmp_path / "ex"), "--frames", "5")
    assert result.returncode == 0, result.stderr
    frames = maskdec.load_frames(tmp_path / "ex" / "frames.jsonl")
    assert len(frames) == 6  # 5 video frames + the PNG pair
    for name in ("source.mp4", "mask.mp4", "still.png", "still_mask.png"):
        assert (tmp_path / "ex" / name).stat().st_size > 0


def test_export_equals_iter_samples(example, tmp_path):
    out = tmp_path / "out"
    result = run_cli("export", str(example.frames_path), "--out", str(out))
    assert result.returncode == 0, result.stderr
    labels = json.loads((out / "labels.json").read_text())
    manifest = read_manifest(out)
    samples = list(maskdec.iter_samples(example.frames_path))
    assert labels == maskdec.iter_samples(example.frames_path).labels.ids
    assert len(manifest) == len(samples) == example.n_frames + 1
    assert (out / "failures.jsonl").read_text() == ""
    for entry, sample in zip(manifest, samples):
        assert (entry["frame_index"], entry["source_id"], entry["mask_id"], entry["timestamp"]) == (
            sample.frame_index, sample.source_id, sample.mask_id, sample.timestamp)
        label_map = cv2.imread(str(out / entry["label_map"]), cv2.IMREAD_UNCHANGED)
        assert label_map.ndim == 2 and label_map.dtype == np.uint8
        assert np.array_equal(label_map, sample.label_map)
        image = cv2.cvtColor(cv2.imread(str(out / entry["image"])), cv2.COLOR_BGR2RGB)
        assert np.array_equal(image, sample.image)
    assert not [p for p in out.rglob("*") if ".tmp" in p.name]


def test_export_example_flag_and_no_images(tmp_path):
    out = tmp_path / "out"
    result = run_cli("export", "--example", "--out", str(out), "--no-images")
    assert result.returncode == 0, result.stderr
    manifest = read_manifest(out)
    assert len(manifest) == 31 and all(entry["image"] is None for entry in manifest)
    assert not (out / "images").exists()


def test_export_records_failures_and_exits_nonzero(example, tmp_path):
    frames = [f.to_dict() for f in maskdec.load_frames(example.frames_path)][:3]
    frames[1]["sources"][0]["masks"][0]["uri"] = "missing.mp4"
    frames_path = example.root / "with_missing.json"
    frames_path.write_text(json.dumps(frames))
    out = tmp_path / "out"
    result = run_cli("export", str(frames_path), "--out", str(out))
    assert result.returncode == 1
    failures = [json.loads(line) for line in (out / "failures.jsonl").read_text().splitlines()]
    assert [f["frame_index"] for f in failures] == [1]
    assert "missing.mp4" in failures[0]["error"]
    assert [e["frame_index"] for e in read_manifest(out)] == [0, 2]


def test_export_needs_frames_or_example(tmp_path):
    result = run_cli("export", "--out", str(tmp_path / "out"))
    assert result.returncode != 0 and "FRAMES or --example" in result.stderr
