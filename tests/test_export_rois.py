"""maskdec export --per-roi: one mask per ROI, listed in the manifest with box, area and labels.

Two generated clips (lossless FFV1 instance masks, 5 objects a frame, one colour
each, plus an ROI whose colour never occurs) are exported and every ROI mask is
compared with the generator's truth and with iter_roi_samples.
"""
from __future__ import annotations

import json
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import cv2
import numpy as np
import pytest

import maskdec
from maskdec.export import export
from maskdec.export_names import sample_key
from maskdec.media.writer import write_video

H, W, N = 64, 96, 6
CLIPS = ("a", "b")
OBJECTS = [  # (colour, label, ROI id, confidence, rectangle y0, y1, x0, x1 at frame 0; moves right 2 px a frame)
    ((200, 30, 30), "car", "obj 0/ä", 0.9, 5, 25, 5, 30),
    ((30, 200, 30), "car", "obj.1", None, 30, 50, 10, 40),
    ((30, 30, 200), "person", "obj2", 0.5, 10, 45, 50, 60),
    ((200, 200, 30), "sign", None, None, 2, 12, 65, 85),
    ((200, 30, 200), "person", "obj:4", None, 50, 62, 60, 80),
]
GHOST = ((1, 2, 3), "ghost", "ghost")  # declared, never painted: an empty ROI
N_ROIS = len(OBJECTS) + 1


def truth(clip: int, i: int) -> np.ndarray:
    """(H, W) int: k + 1 for the k-th object in frame i of clip `clip`, 0 for background."""
    out = np.zeros((H, W), np.int32)
    shift = 2 * i + 3 * clip
    for k, (*_head, y0, y1, x0, x1) in enumerate(OBJECTS):
        out[y0:y1, min(x0 + shift, W):min(x1 + shift, W)] = k + 1
    return out


def numpy_box(mask: np.ndarray):
    ys, xs = np.nonzero(mask)
    return None if len(xs) == 0 else [int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("export_rois")
    palette = np.array([(0, 0, 0)] + [o[0] for o in OBJECTS], np.uint8)
    lines = []
    for c, clip in enumerate(CLIPS):
        (root / clip).mkdir()
        write_video(root / clip / "inst.mkv", (palette[truth(c, i)] for i in range(N)), codec="ffv1",
                    pix_fmt="bgr0", options={})
        write_video(root / clip / "image.mp4", (np.full((H, W, 3), 60 + 40 * c, np.uint8) for _ in range(N)),
                    codec="libx264", pix_fmt="yuv420p", options={"crf": "30"})
        for i in range(N):
            frame = maskdec.Frame.from_dict({"sources": [{"id": "cam", "uri": f"{clip}/image.mp4",
                                                          "timestamp": int(i * 1000 / 30),
                                                          "masks": [{"id": "inst", "uri": f"{clip}/inst.mkv"}]}]},
                                            base_dir=root)
            for colour, label, roi_id, confidence, *_rect in OBJECTS:
                frame.add_annotation(mask_rgb=colour, labels=[label, "object"], id=roi_id, confidence=confidence)
            frame.add_annotation(mask_rgb=GHOST[0], labels=[GHOST[1]], id=GHOST[2])
            lines.append(json.dumps(frame.to_dict()) + "\n")
    path = root / "frames.jsonl"
    path.write_text("".join(lines))
    return path


@pytest.fixture(scope="module")
def png_export(dataset, tmp_path_factory):
    """The reference: png, per_roi, two worker processes (the clips are two units)."""
    out = tmp_path_factory.mktemp("png") / "out"
    return out, export(dataset, out, per_roi=True, workers=2)


def tree(out: Path) -> dict[str, bytes]:
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


def read_manifest(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]


def png(data: bytes) -> np.ndarray:
    return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)


def check_rois(entry: dict, clip: int, i: int, masks: list[np.ndarray]) -> None:
    """An entry's `rois` against the truth: labels, ids, boxes and areas from numpy, and
    each ROI's mask (given as read back from the export, bool)."""
    rois = entry["rois"]
    assert [r["k"] for r in rois] == list(range(N_ROIS)) and len(masks) == N_ROIS
    expected = truth(clip, i)
    for k, (record, mask) in enumerate(zip(rois, masks)):
        want = expected == k + 1  # the ghost (k = 5) is never painted
        assert np.array_equal(mask, want), (entry["frame_index"], k)
        assert record["box"] == numpy_box(want) and record["area"] == int(want.sum())
        if k < len(OBJECTS):
            colour, label, roi_id, confidence, *_rect = OBJECTS[k]
            assert record["area"] > 0
            assert (record["labels"], record["label"], record["roi_id"]) == ([label, "object"], label, roi_id)
            assert record.get("confidence") == confidence
        else:
            assert (record["labels"], record["roi_id"], record["box"], record["area"]) == (["ghost"], "ghost",
                                                                                           None, 0)


def test_png_roi_masks_equal_the_truth_and_iter_roi_samples(dataset, png_export):
    out, summary = png_export
    assert (summary.samples, summary.failed) == (len(CLIPS) * N, 0)
    manifest = read_manifest(out)
    samples = list(maskdec.iter_samples(dataset, instances=True))
    views = list(maskdec.iter_roi_samples(dataset, images=False))
    assert len(manifest) == len(samples) == len(CLIPS) * N and len(views) == len(manifest) * N_ROIS
    label_ids = json.loads((out / "labels.json").read_text())
    for n, (entry, sample) in enumerate(zip(manifest, samples)):
        clip, i = divmod(n, N)
        assert np.array_equal(cv2.imread(str(out / entry["label_map"]), cv2.IMREAD_UNCHANGED), sample.label_map)
        masks = []
        for record, view in zip(entry["rois"], views[n * N_ROIS:(n + 1) * N_ROIS]):
            stored = cv2.imread(str(out / record["mask"]), cv2.IMREAD_UNCHANGED)
            assert stored.dtype == np.uint8 and stored.shape == (H, W)
            assert set(np.unique(stored)) <= {0, 255}
            assert np.array_equal(stored == 255, view.mask)
            assert record["box"] == (None if view.box is None else list(view.box)) and record["area"] == view.area
            assert record["label_id"] == view.label_id == label_ids[record["label"]]
            masks.append(stored == 255)
        check_rois(entry, clip, i, masks)
        assert np.array_equal(sample.instance_map, truth(clip, i))  # the ghost shares no pixel


def test_png_roi_mask_names_are_file_safe_and_unique_and_all_exist(png_export):
    out, _ = png_export
    paths = [r["mask"] for e in read_manifest(out) for r in e["rois"]]
    assert len(paths) == len(set(paths)) == len(CLIPS) * N * N_ROIS
    assert all(re.fullmatch(r"roi_masks/[A-Za-z0-9_-]+\.png", p) for p in paths), paths[:N_ROIS]
    assert sorted(paths) == sorted(f"roi_masks/{p.name}" for p in (out / "roi_masks").iterdir())
    key = sample_key(0, "cam", "inst")  # 000000_cam_inst_<digest of the identity>
    assert f"roi_masks/{key}_roi003.png" in paths  # an ROI without an id: its position alone
    assert f"roi_masks/{key}_roi002_obj2.png" in paths
    assert f"roi_masks/{key}_roi000_obj-0.png" in paths  # "obj 0/ä": its readable part
    assert not [p for p in out.rglob("*") if ".tmp" in p.name]
    assert (out / "failures.jsonl").read_text() == ""


@pytest.mark.parametrize("fmt", ["npz", "webdataset"])
def test_npz_and_webdataset_carry_the_roi_masks(dataset, tmp_path, fmt):
    out = tmp_path / "out"
    summary = export(dataset, out, format=fmt, per_roi=True, images=False, shard_size=4, workers=1)
    assert (summary.samples, summary.failed) == (len(CLIPS) * N, 0)
    manifest = read_manifest(out)
    members: dict[str, bytes] = {}
    for shard in (out / "shards").glob("*.tar") if fmt == "webdataset" else ():
        with tarfile.open(shard) as tar:
            members.update({f"shards/{shard.name}/{m.name}": tar.extractfile(m).read() for m in tar.getmembers()})
    for n, entry in enumerate(manifest):
        if fmt == "npz":
            assert all(r["mask"] == entry["label_map"] for r in entry["rois"])
            with np.load(out / entry["label_map"]) as arrays:
                stack = arrays["roi_masks"]
            assert stack.shape == (N_ROIS, H, W) and stack.dtype == bool
            masks = list(stack)
        else:
            key = entry["label_map"].split(".", 1)[0]
            assert [r["mask"] for r in entry["rois"]] == [f"{key}.roi{k:03d}.png" for k in range(N_ROIS)]
            masks = [png(members[f"{entry['shard']}/{r['mask']}"]) == 255 for r in entry["rois"]]
            assert json.loads(members[f"{entry['shard']}/{key}.json"])["rois"] == entry["rois"]
        check_rois(entry, *divmod(n, N), masks)


class Interrupted(Exception):
    pass


def test_interrupted_export_resumes_to_identical_files(dataset, png_export, tmp_path):
    reference, _ = png_export
    out = tmp_path / "out"
    done = 0

    def stop_after_seven(k: int) -> None:
        nonlocal done
        done += k
        if done == 7:
            raise Interrupted

    with pytest.raises(Interrupted):
        export(dataset, out, per_roi=True, workers=1, progress=stop_after_seven)
    assert len(read_manifest(out)) == 7
    assert len(list((out / "roi_masks").iterdir())) < len(CLIPS) * N * N_ROIS
    (out / "roi_masks" / ".000011_cam_inst_roi000.png.999-deadbeef.tmp").write_bytes(b"half a file")
    first_mask = read_manifest(out)[0]["rois"][4]["mask"]
    (out / first_mask).unlink()  # a listed ROI mask gone: its sample is redone
    resumed = export(dataset, out, per_roi=True, workers=2)
    assert (resumed.samples, resumed.skipped) == (len(CLIPS) * N, 6)
    assert tree(out) == tree(reference)


def test_changing_per_roi_on_resume_is_refused(dataset, tmp_path):
    out = tmp_path / "out"
    export(dataset, out, per_roi=True, images=False, workers=1)
    with pytest.raises(maskdec.MaskdecError, match="per_roi"):
        export(dataset, out, images=False, workers=1)
    plain = tmp_path / "plain"
    export(dataset, plain, images=False, workers=1)
    with pytest.raises(maskdec.MaskdecError, match="per_roi"):
        export(dataset, plain, per_roi=True, images=False, workers=1)
    # an output whose export.json predates the setting resumes as per_roi=False
    settings = json.loads((plain / "export.json").read_text())
    del settings["per_roi"]
    (plain / "export.json").write_text(json.dumps(settings))
    assert export(dataset, plain, images=False, workers=1).skipped == len(CLIPS) * N
    with pytest.raises(maskdec.MaskdecError, match="per_roi"):
        export(dataset, plain, per_roi=True, images=False, workers=1)
    fresh = export(dataset, out, images=False, workers=1, resume=False)
    assert fresh.skipped == 0 and not (out / "roi_masks").exists()
    assert all("rois" not in e for e in read_manifest(out))


def test_cli_per_roi_writes_what_the_api_writes(dataset, png_export, tmp_path):
    reference, _ = png_export
    out = tmp_path / "cli"
    result = subprocess.run([sys.executable, "-m", "maskdec.cli", "export", str(dataset), "--out", str(out),
                             "--per-roi", "--workers", "1"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert f"exported {len(CLIPS) * N} samples" in result.stderr
    assert tree(out) == tree(reference)
    assert all(len(e["rois"]) == N_ROIS for e in read_manifest(out))
