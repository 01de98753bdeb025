"""`maskdec inspect`: media facts, the label table, and the colours masks really hold."""
import json
import subprocess
import sys

import cv2
import numpy as np
import pytest

import maskdec
from maskdec.example import PALETTE, colour_mask, scene_classes
from maskdec.inspect import inspect_frames
from maskdec.media.writer import write_video

YELLOW = (255, 255, 0)  # far from every PALETTE colour (> 180)
W, H = 160, 120


def palette_rois(mask_id="seg"):
    return [{"label": [name], "mask": {"id": mask_id, "value": list(c)}} for name, c in PALETTE.items()]


def injected_masks(n):
    """Scene masks with a yellow rectangle (declared by no ROI) moving over them; its true pixel count."""
    masks, injected = [], 0
    for i in range(n):
        m = colour_mask(scene_classes(i, H, W))
        x0 = 10 + 8 * i
        m[40:70, x0:x0 + 40] = YELLOW
        injected += 30 * 40
        masks.append(m)
    return masks, injected


def video_frames(path, n, mask_path, extra_rois=()):
    return [{"sources": [{"id": "cam", "uri": str(path), "timestamp": int(i * 1000 / 30),
                          "masks": [{"id": "seg", "uri": str(mask_path)}]}],
             "rois": palette_rois() + list(extra_rois)} for i in range(n)]


@pytest.fixture(scope="module")
def lossy(tmp_path_factory):
    """An H.264 yuv420p (crf 23) mask video with an injected colour no ROI declares, and its frames."""
    root = tmp_path_factory.mktemp("lossy")
    masks, injected = injected_masks(10)
    write_video(root / "mask.mp4", masks, fps=30, codec="libx264", pix_fmt="yuv420p", options={"crf": "23"})
    write_video(root / "source.mp4", [np.full((H, W, 3), 128, np.uint8)] * 10, fps=30)
    frames = video_frames(root / "source.mp4", 10, root / "mask.mp4")
    (root / "frames.json").write_text(json.dumps(frames))
    return root, injected / (10 * W * H)


def test_lossy_injected_colour_share_within_one_point(lossy):
    root, truth = lossy
    report = inspect_frames(root / "frames.json")
    [mask] = report.mask_reports
    assert mask.tolerance == 60 and mask.samples == 10 and mask.pixels == 10 * W * H
    top = max(mask.clusters, key=lambda c: c.share)
    assert np.linalg.norm(np.subtract(top.colour, YELLOW)) <= 60  # the drifted yellow, clustered
    assert abs(top.share - truth) < 0.01
    assert top.colours > 1  # lossy: many near-yellow colours in one cluster
    assert top.frames == list(range(10))
    assert not mask.never_seen
    assert any("pixels are unknown, colour" in w for w in report.warnings)


def test_lossy_drift_and_declared_distances(lossy):
    root, _ = lossy
    [mask] = inspect_frames(root / "frames.json").mask_reports
    colours = np.array(list(PALETTE.values()), np.float64)
    d = np.sqrt(((colours[:, None] - colours[None]) ** 2).sum(-1))
    d[np.diag_indices_from(d)] = np.inf
    assert mask.min_declared_distance == pytest.approx(d.min(), abs=0.01)
    assert set(mask.closest_pair) == {"building", "road"}
    assert 0 < mask.drift_mean <= mask.drift_p99 <= mask.drift_max <= 60
    assert mask.exact + mask.snapped + mask.unknown == mask.pixels
    declared = {d["name"]: d["share"] for d in mask.declared}
    assert set(declared) == set(PALETTE) and all(share > 0 for share in declared.values())


def test_lossless_counts_are_exact_and_never_seen_is_reported(tmp_path):
    masks, injected = injected_masks(6)
    write_video(tmp_path / "mask.mkv", masks, fps=30, codec="ffv1", pix_fmt="bgr0")
    ghost = {"label": ["ghost"], "mask": {"id": "seg", "value": [1, 2, 3]}}
    frames = video_frames(tmp_path / "mask.mkv", 6, tmp_path / "mask.mkv", [ghost])
    (tmp_path / "frames.json").write_text(json.dumps(frames))
    report = inspect_frames(tmp_path / "frames.json")
    [mask] = report.mask_reports
    assert mask.tolerance == 0
    [cluster] = mask.clusters
    assert cluster.colour == list(YELLOW) and cluster.colours == 1
    assert cluster.pixels == injected and cluster.share == pytest.approx(injected / (6 * W * H))
    assert cluster.nearest_name is not None and cluster.distance > 60
    assert mask.unknown == injected and mask.exact == 6 * W * H - injected and mask.snapped == 0
    assert mask.never_seen == [{"colour": [1, 2, 3], "name": "ghost"}]
    assert mask.drift_max == 0
    assert any("(ghost) never occurs" in w for w in report.warnings)
    assert report.labels == {n: i for i, n in enumerate(sorted(list(PALETTE) + ["ghost"]))}


def test_media_facts(tmp_path):
    write_video(tmp_path / "v.mp4", [np.zeros((48, 64, 3), np.uint8)] * 12, fps=25)
    mask = np.zeros((24, 32, 3), np.uint8)
    mask[:] = PALETTE["road"]
    cv2.imwrite(str(tmp_path / "m.png"), cv2.cvtColor(mask, cv2.COLOR_RGB2BGR))
    frame = {"sources": [{"id": "cam", "uri": "v.mp4", "timestamp": 40, "masks": [{"id": "seg", "uri": "m.png"}]}],
             "rois": palette_rois()}
    (tmp_path / "frames.json").write_text(json.dumps(frame))
    report = inspect_frames(tmp_path / "frames.json")
    media = {m.uri.rsplit("/", 1)[-1]: m for m in report.media}
    v, m = media["v.mp4"], media["m.png"]
    assert (v.role, v.kind, v.codec, v.pix_fmt, v.width, v.height) == ("source", "video", "h264", "yuv420p", 64, 48)
    assert v.fps == 25 and v.duration == pytest.approx(12 / 25, abs=0.001) and v.frames == 12 and not v.lossless
    assert (m.role, m.kind, m.codec, m.width, m.height, m.lossless) == ("mask", "image", "png", 32, 24, True)
    assert m.fps is None and m.duration is None
    assert any("m.png is 32x24 but its image" in w and "64x48" in w for w in report.warnings)
    assert (report.frames, report.sources, report.masks) == (1, 1, 1)


def test_grey_masks_report_grey_colours(tmp_path):
    mask = np.full((20, 30), 10, np.uint8)
    mask[:5] = 77  # unknown: a quarter of the pixels
    cv2.imwrite(str(tmp_path / "m.png"), mask)
    frame = {"sources": [{"id": "cam", "uri": "m.png", "masks": [{"id": "seg", "uri": "m.png"}]}],
             "rois": [{"label": ["a"], "mask": {"id": "seg", "value": [10]}}]}
    (tmp_path / "frames.json").write_text(json.dumps(frame))
    [mask_report] = inspect_frames(tmp_path / "frames.json").mask_reports
    assert [c.colour for c in mask_report.clusters] == [[77, 77, 77]]
    assert mask_report.clusters[0].share == pytest.approx(0.25)


def test_failures_and_exit_codes(tmp_path, lossy):
    root, truth = lossy
    frames = json.loads((root / "frames.json").read_text())
    frames[0]["sources"][0]["masks"][0]["timestamp"] = 99000  # past the end
    (tmp_path / "frames.json").write_text(json.dumps(frames))
    report = inspect_frames(tmp_path / "frames.json")
    assert len(report.failures) == 1 and "99000" in report.failures[0] and "frames[0]" in report.failures[0]
    assert report.mask_reports[0].samples == 9
    result = subprocess.run([sys.executable, "-m", "maskdec.cli", "inspect", str(tmp_path / "frames.json")],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 1 and "failures:" in result.stdout


def test_cli_json_and_text(lossy):
    root, truth = lossy
    result = subprocess.run([sys.executable, "-m", "maskdec.cli", "inspect", str(root / "frames.json"), "--json"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    [mask] = data["mask_reports"]
    top = max(mask["clusters"], key=lambda c: c["share"])
    assert abs(top["share"] - truth) < 0.01
    assert data["labels"] == {n: i for i, n in enumerate(sorted(PALETTE))}
    assert {m["role"] for m in data["media"]} == {"source", "mask"}
    text = subprocess.run([sys.executable, "-m", "maskdec.cli", "inspect", str(root / "frames.json"),
                           "--max-samples", "3"], capture_output=True, text=True, timeout=300)
    assert text.returncode == 0
    assert "UNKNOWN" in text.stdout and "3 samples" in text.stdout and "h264 yuv420p" in text.stdout


def test_close_declared_colours_beside_drift_warn(tmp_path):
    masks = []
    for i in range(4):
        m = np.zeros((64, 64, 3), np.uint8)
        m[:] = (100, 100, 100)
        m[16:48, 8 + 4 * i:40 + 4 * i] = (110, 106, 100)  # 11.7 apart from the background
        masks.append(m)
    write_video(tmp_path / "m.mp4", masks, fps=30, codec="libx264", pix_fmt="yuv420p", options={"crf": "35"})
    rois = [{"label": ["a"], "mask": {"id": "seg", "value": [100, 100, 100]}},
            {"label": ["b"], "mask": {"id": "seg", "value": [110, 106, 100]}}]
    frames = [{"sources": [{"id": "cam", "uri": "m.mp4", "timestamp": int(i * 1000 / 30),
                            "masks": [{"id": "seg", "uri": "m.mp4"}]}], "rois": rois} for i in range(4)]
    (tmp_path / "frames.json").write_text(json.dumps(frames))
    report = inspect_frames(tmp_path / "frames.json")
    [mask] = report.mask_reports
    assert mask.min_declared_distance == pytest.approx(11.66, abs=0.01)
    assert any("may snap to the wrong class" in w for w in report.warnings), (mask.drift_p99, report.warnings)


def test_inspect_export_and_sample_stats_agree_on_a_lossy_clip(lossy, tmp_path):
    """One source of truth: inspect --json, the export manifest and iter_samples(stats=True)
    count the same exact / snapped / unknown pixels of the same H.264 clip."""
    root, _ = lossy
    result = subprocess.run([sys.executable, "-m", "maskdec.cli", "inspect", str(root / "frames.json"), "--json"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    [report] = json.loads(result.stdout)["mask_reports"]
    exported = subprocess.run([sys.executable, "-m", "maskdec.cli", "export", str(root / "frames.json"),
                               "--out", str(tmp_path / "out"), "--workers", "1"],
                              capture_output=True, text=True, timeout=300)
    assert exported.returncode == 0, exported.stderr
    manifest = [json.loads(line) for line in (tmp_path / "out" / "manifest.jsonl").read_text().splitlines()]
    from_export = {k: sum(e["stats"][k] for e in manifest) for k in ("exact", "snapped", "unknown")}
    samples = list(maskdec.iter_samples(root / "frames.json", images=False, stats=True))
    from_samples = {"exact": sum(s.stats.exact for s in samples), "snapped": sum(s.stats.snapped for s in samples),
                    "unknown": sum(s.stats.unknown for s in samples)}
    assert report["stats"] == from_export == from_samples
    assert (report["exact"], report["snapped"], report["unknown"]) == tuple(from_samples.values())
    assert report["pixels"] == 10 * W * H == sum(from_samples.values())
    # the YUV path keeps most colours exact (counted through RGB conversion none would be)
    assert from_samples["exact"] > from_samples["snapped"] > 0 and from_samples["unknown"] > 0
    # unknown pixels are the label maps' ignore_index pixels, and the clusters account for them
    assert from_samples["unknown"] == sum(int((s.label_map == 255).sum()) for s in samples)
    assert sum(c["pixels"] for c in report["clusters"]) + report["other_unknown"] == report["unknown"]


def test_a_mask_smaller_than_its_image_is_counted_in_its_own_pixels(tmp_path):
    mask = np.zeros((30, 40, 3), np.uint8)
    mask[:] = PALETTE["road"]
    mask[10:20, 10:30] = YELLOW  # 200 unknown pixels
    cv2.imwrite(str(tmp_path / "m.png"), cv2.cvtColor(mask, cv2.COLOR_RGB2BGR))
    cv2.imwrite(str(tmp_path / "i.png"), np.zeros((60, 80, 3), np.uint8))
    frame = {"sources": [{"id": "cam", "uri": "i.png", "width": 80, "height": 60,
                          "masks": [{"id": "seg", "uri": "m.png"}]}], "rois": palette_rois()}
    (tmp_path / "frames.json").write_text(json.dumps(frame))
    report = inspect_frames(tmp_path / "frames.json")
    [m] = report.mask_reports
    assert (m.pixels, m.exact, m.snapped, m.unknown) == (1200, 1000, 0, 200)
    assert [(c.colour, c.pixels) for c in m.clusters] == [(list(YELLOW), 200)]
    assert {d["name"]: d["pixels"] for d in m.declared}["road"] == 1000
    assert any("label maps are resized" in w for w in report.warnings)
