"""maskdec export at scale: formats, workers, resume, SIGKILL, failures, progress, summary.

Every export is compared with iter_samples (the reference decoder) or with an
uninterrupted export, file by file and byte for byte.
"""
from __future__ import annotations

import fcntl
import json
import math
import os
import pty
import struct
import subprocess
import sys
import tarfile
import termios
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import kill_export_mid_run
import maskdec
from maskdec.example import PALETTE, make_example
from maskdec.export import export

N_PER_VIDEO = 10  # two videos of 10 frames and one PNG pair: 21 samples


def make_dataset(root: Path, *, n: int = N_PER_VIDEO, width: int = 128, height: int = 96) -> Path:
    """Two example clips (a/, b/: each a source and a mask H.264 video) and one PNG pair,
    in one root/frames.jsonl with media URIs relative to root."""
    frames = []
    for part in ("a", "b"):
        make_example(root / part, n_frames=n, width=width, height=height)
        for line in (root / part / "frames.jsonl").read_text().splitlines():
            frame = json.loads(line)
            if part == "b" and frame.get("id") == "still":
                continue
            for source in frame["sources"]:
                source["uri"] = f"{part}/{source['uri']}"
                for mask in source.get("masks", []):
                    mask["uri"] = f"{part}/{mask['uri']}"
            frames.append(frame)
    path = root / "frames.jsonl"
    path.write_text("".join(json.dumps(f) + "\n" for f in frames))
    return path


def with_prefix(frames_path: Path, prefix: str, out_path: Path) -> Path:
    """A copy of a frames file whose media URIs are prefixed (e.g. by s3://bucket/data/)."""
    lines = []
    for line in frames_path.read_text().splitlines():
        frame = json.loads(line)
        for source in frame["sources"]:
            source["uri"] = prefix + source["uri"]
            for mask in source.get("masks", []):
                mask["uri"] = prefix + mask["uri"]
        lines.append(json.dumps(frame) + "\n")
    out_path.write_text("".join(lines))
    return out_path


def tree(out: Path) -> dict[str, bytes]:
    """Every file under `out`, by relative path, with its bytes."""
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


def temp_files(out: Path) -> list[str]:
    return [p.name for p in out.rglob("*") if ".tmp" in p.name]


def read_manifest(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]


def png(data: bytes) -> np.ndarray:
    return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)


def run_cli(*args, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "maskdec.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=300, **kwargs)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("dataset"))


@pytest.fixture(scope="module")
def reference(dataset):
    """iter_samples of the dataset: the reference every export must equal."""
    return list(maskdec.iter_samples(dataset))


@pytest.fixture(scope="module")
def png_export(dataset, tmp_path_factory):
    out = tmp_path_factory.mktemp("png") / "out"
    return out, export(dataset, out, workers=2)


def test_png_export_equals_iter_samples(dataset, reference, png_export):
    out, summary = png_export
    assert len(reference) == 2 * N_PER_VIDEO + 1
    assert (summary.samples, summary.failed, summary.skipped) == (len(reference), 0, 0)
    manifest = read_manifest(out)
    assert [(e["frame_index"], e["source_id"], e["mask_id"]) for e in manifest] == [
        (s.frame_index, s.source_id, s.mask_id) for s in reference]
    for entry, sample in zip(manifest, reference):
        label_map = cv2.imread(str(out / entry["label_map"]), cv2.IMREAD_UNCHANGED)
        assert label_map.dtype == sample.label_map.dtype and np.array_equal(label_map, sample.label_map)
        image = cv2.cvtColor(cv2.imread(str(out / entry["image"])), cv2.COLOR_BGR2RGB)
        assert np.array_equal(image, sample.image)
        assert entry["pixels"] == sample.label_map.size
        assert entry["unknown_pixels"] == int((sample.label_map == 255).sum())
    labels = json.loads((out / "labels.json").read_text())
    assert labels == maskdec.iter_samples(dataset).labels.ids == summary.labels
    meta = json.loads((out / "dataset_meta.json").read_text())
    assert meta["label_map"] == {str(i): name for name, i in labels.items()}
    assert [tuple(c) for c in meta["segmentation_colors"]] == [PALETTE[meta["label_map"][str(i)]]
                                                               for i in range(len(labels))]
    assert (out / "failures.jsonl").read_text() == ""
    assert temp_files(out) == []


def test_one_worker_writes_the_same_files(dataset, png_export, tmp_path):
    out, _ = png_export
    export(dataset, tmp_path / "one", workers=1)
    assert tree(tmp_path / "one") == tree(out)


@pytest.mark.parametrize("fmt", ["npz", "webdataset"])
def test_npz_and_webdataset_equal_iter_samples(dataset, reference, tmp_path, fmt):
    out = tmp_path / "out"
    summary = export(dataset, out, format=fmt, shard_size=4, workers=2)
    assert summary.samples == len(reference) and summary.failed == 0
    manifest = read_manifest(out)
    assert len(manifest) == len(reference)
    if fmt == "npz":
        for entry, sample in zip(manifest, reference):
            with np.load(out / entry["label_map"]) as arrays:
                assert np.array_equal(arrays["label_map"], sample.label_map)
                assert arrays["label_map"].dtype == sample.label_map.dtype
                assert np.array_equal(arrays["image"], sample.image)
        return
    # 10 + 10 + 1 samples in units of one file set each, cut into shards of at most 4
    shards = sorted(p.name for p in (out / "shards").iterdir())
    assert len(shards) == 2 * math.ceil(N_PER_VIDEO / 4) + 1
    members: dict[str, bytes] = {}
    for name in shards:
        with tarfile.open(out / "shards" / name) as tar:
            for info in tar.getmembers():
                members[f"{name}/{info.name}"] = tar.extractfile(info).read()
    assert len(members) == 3 * len(reference)  # label map, image and JSON per sample
    for entry, sample in zip(manifest, reference):
        shard = Path(entry["shard"]).name
        assert np.array_equal(png(members[f"{shard}/{entry['label_map']}"]), sample.label_map)
        image = cv2.cvtColor(png(members[f"{shard}/{entry['image']}"]), cv2.COLOR_BGR2RGB)
        assert np.array_equal(image, sample.image)
        key = entry["label_map"].split(".", 1)[0]
        meta = json.loads(members[f"{shard}/{key}.json"])
        assert (meta["frame_index"], meta["source_id"], meta["timestamp"]) == (
            sample.frame_index, sample.source_id, sample.timestamp)


def test_rerun_skips_finished_samples_and_redoes_the_rest(dataset, tmp_path):
    out = tmp_path / "out"
    export(dataset, out, workers=2)
    first = tree(out)
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("*.png")}
    again = export(dataset, out, workers=2)
    assert (again.samples, again.skipped) == (2 * N_PER_VIDEO + 1, 2 * N_PER_VIDEO + 1)
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.png")} == stamps  # nothing rewritten
    # drop three samples from the journal and one label map from the disk: exactly those four are redone
    lines = (out / "manifest.jsonl").read_text().splitlines(keepends=True)
    (out / "manifest.jsonl").write_text("".join(lines[:2] + lines[5:]))
    (out / read_manifest(out)[-1]["label_map"]).unlink()
    redone = export(dataset, out, workers=2)
    assert redone.skipped == 2 * N_PER_VIDEO + 1 - 4
    assert tree(out) == first
    fresh = export(dataset, out, workers=2, resume=False)
    assert fresh.skipped == 0 and tree(out) == first


def test_resume_refuses_other_settings(dataset, tmp_path):
    out = tmp_path / "out"
    export(dataset, out, workers=1, images=False)
    with pytest.raises(maskdec.MaskdecError, match="images"):
        export(dataset, out, workers=1)
    with pytest.raises(maskdec.MaskdecError, match="format"):
        export(dataset, out, workers=1, images=False, format="npz")
    summary = export(dataset, out, workers=1, format="npz", resume=False)
    assert summary.skipped == 0 and not (out / "label_maps").exists()
    assert len(list((out / "samples").iterdir())) == summary.samples


def test_unknown_pixels_share_counts_ignore_index(dataset, tmp_path):
    labels = {name: i for i, name in enumerate(n for n in PALETTE if n != "car")}  # car -> ignore_index
    reference = list(maskdec.iter_samples(dataset, labels=labels, images=False))
    unknown = sum(int((s.label_map == 255).sum()) for s in reference)
    assert unknown > 0
    summary = export(dataset, tmp_path / "out", labels=labels, images=False, workers=2)
    assert summary.unknown_pixels == unknown
    assert summary.unknown_share == pytest.approx(unknown / sum(s.label_map.size for s in reference))
    labels_file = tmp_path / "labels.json"
    labels_file.write_text(json.dumps(labels))
    result = run_cli("export", dataset, "--out", tmp_path / "cli", "--labels", labels_file, "--no-images",
                     "--workers", "1")
    assert result.returncode == 0, result.stderr
    assert f"{100 * summary.unknown_share:.2f}% unknown pixels" in result.stderr


@pytest.mark.parametrize("fmt", ["png", "webdataset"])
def test_sigkill_then_rerun_equals_an_uninterrupted_run(tmp_path, fmt):
    frames = make_dataset(tmp_path / "data", n=40, width=320, height=240)
    args = ["--format", fmt, "--shard-size", "8", "--workers", "2"]
    reference = run_cli("export", frames, "--out", tmp_path / "ref", *args)
    assert reference.returncode == 0, reference.stderr
    out = tmp_path / "out"
    finished = kill_export_mid_run(frames, out, args, after=2)
    assert 2 <= finished < 81  # killed mid-run
    # a kill in the middle of a write leaves a temporary file like this one behind
    stale = out / ("label_maps" if fmt == "png" else "shards")
    stale.mkdir(exist_ok=True)
    (stale / ".000000_front_seg.png.999-deadbeef.tmp").write_bytes(b"half a file")
    rerun = run_cli("export", frames, "--out", out, *args)
    assert rerun.returncode == 0, rerun.stderr
    if fmt == "png":  # (a shard the kill caught half-journaled is redone whole)
        assert "done before" in rerun.stderr
    assert temp_files(out) == []
    assert tree(out) == tree(tmp_path / "ref")


def test_truncated_video_and_missing_file_fail_alone(dataset, tmp_path):
    frames = [json.loads(line) for line in dataset.read_text().splitlines()]
    data = dataset.parent
    source = (data / "a" / "source.mp4").read_bytes()
    (data / "truncated.mp4").write_bytes(source[: len(source) // 2])
    truncated = json.loads(json.dumps(frames[3]))
    truncated["sources"][0]["uri"] = "truncated.mp4"
    missing = json.loads(json.dumps(frames[15]))
    missing["sources"][0]["masks"][0]["uri"] = "b/no_such_mask.mp4"
    frames = frames[:7] + [truncated] + frames[7:19] + [missing] + frames[19:]
    path = data / "with_bad_files.json"
    path.write_text(json.dumps(frames))
    out = tmp_path / "out"
    result = run_cli("export", path, "--out", out, "--workers", "2")
    assert result.returncode == 1, result.stderr
    assert "2 failed" in result.stderr
    failures = [json.loads(line) for line in (out / "failures.jsonl").read_text().splitlines()]
    assert [(f["frame_index"], Path(f["uri"]).name) for f in failures] == [(7, "truncated.mp4"),
                                                                             (20, "no_such_mask.mp4")]
    assert all(f["error"] and f["error_type"] for f in failures)
    assert failures[0]["error_type"] == "MediaDecodeError" and failures[1]["error_type"] == "MediaNotFoundError"
    manifest = read_manifest(out)
    assert len(manifest) == len(frames) - 2
    assert {e["frame_index"] for e in manifest} == set(range(len(frames))) - {7, 20}
    assert all((out / e["label_map"]).exists() for e in manifest)


def test_progress_bar_only_on_a_terminal(dataset, tmp_path):
    quiet = run_cli("export", dataset, "--out", tmp_path / "quiet", "--workers", "1", "--no-images")
    assert quiet.returncode == 0 and "%|" not in quiet.stderr and "exported 21 samples" in quiet.stderr
    # stderr on a pseudo-terminal: the bar appears there, stdout stays clean
    main, side = pty.openpty()
    fcntl.ioctl(side, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # a 100-column terminal
    try:
        result = subprocess.run([sys.executable, "-m", "maskdec.cli", "export", str(dataset), "--out",
                                 str(tmp_path / "tty"), "--workers", "1", "--no-images"],
                                stdout=subprocess.PIPE, stderr=side, timeout=300)
        os.close(side)
        side = None
        text = b""
        while True:
            try:
                chunk = os.read(main, 65536)
            except OSError:  # EIO: the writer side is closed
                break
            if not chunk:
                break
            text += chunk
    finally:
        if side is not None:
            os.close(side)
        os.close(main)
    assert result.returncode == 0 and result.stdout == b""
    assert b"21/21" in text and b"100%|" in text


def test_cli_rejects_an_unknown_format_and_a_lonely_ray_address(dataset, tmp_path):
    bad = run_cli("export", dataset, "--out", tmp_path / "x", "--format", "tiff")
    assert bad.returncode == 2 and "tiff" in bad.stderr
    lonely = run_cli("export", dataset, "--out", tmp_path / "x", "--ray-address", "127.0.0.1:1")
    assert lonely.returncode == 2 and "--backend ray" in lonely.stderr
    assert not (tmp_path / "x").exists()
