"""`maskdec preview`: overlays, contact sheet and an index.html that opens from disk."""
import json
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from urllib.parse import unquote, urlparse

import cv2
import numpy as np
import pytest

import maskdec
from maskdec.example import PALETTE
from maskdec.export import export
from maskdec.inspect import inspect_frames
from maskdec.preview import boundaries, overlay, preview


class Links(HTMLParser):
    """Every href and src of a page."""

    def __init__(self):
        super().__init__()
        self.links = []

    def handle_starttag(self, tag, attrs):
        self.links += [value for key, value in attrs if key in ("href", "src") and value]


def links_of(index):
    parser = Links()
    parser.feed(index.read_text(encoding="utf-8"))
    return parser.links


def read_rgb(path):
    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)


@pytest.fixture(scope="module")
def previewed(example, tmp_path_factory):
    out = tmp_path_factory.mktemp("preview")
    return preview(example.frames_path, out), out


def test_writes_overlays_thumbs_sheet_and_an_index_whose_links_resolve(previewed, example):
    summary, out = previewed
    n = example.n_frames + 1
    assert len(summary.rows) == n and not summary.warnings
    assert len(list((out / "overlays").glob("*.png"))) == n
    assert len(list((out / "thumbs").glob("*.png"))) == n
    assert (out / "contact_sheet.png").is_file() and summary.contact_sheet == out / "contact_sheet.png"
    links = links_of(out / "index.html")
    assert len(links) >= 2 * n + 2  # per sample an overlay link and a thumbnail, the sheet twice
    for link in links:
        parsed = urlparse(link)
        assert not parsed.scheme and not parsed.netloc and not link.startswith("/"), link  # opens from disk
        assert (out / unquote(parsed.path)).is_file(), link
    for row in summary.rows:
        assert row.overlay in links and row.thumb in links
        assert read_rgb(out / row.thumb).shape[1] <= 240


def test_overlay_files_are_the_blend_of_image_and_label_colours(previewed, example):
    summary, out = previewed
    it = maskdec.iter_samples(example.frames_path)
    colours = {i: PALETTE[name] for name, i in it.labels.ids.items()}
    samples = list(it)
    for row, sample in list(zip(summary.rows, samples))[::10]:
        written = read_rgb(out / row.overlay)
        assert np.array_equal(written, overlay(sample.image, sample.label_map, colours, 255))


def test_overlay_blends_draws_boundaries_and_hatches_unknown():
    image = np.full((12, 16, 3), 100, np.uint8)
    labels = np.zeros((12, 16), np.uint8)
    labels[:, 8:] = 1
    labels[:4, :4] = 255
    out = overlay(image, labels, {0: (200, 0, 0), 1: (0, 0, 200)}, 255, alpha=0.5)
    assert tuple(out[8, 2]) == (150, 50, 50)  # (1 - a) * image + a * colour
    assert tuple(out[8, 12]) == (50, 50, 150)
    edge = boundaries(labels)
    assert edge[8, 7] and not edge[8, 6] and not edge[8, 12]
    assert tuple(out[8, 7]) == (255, 255, 255)
    hatch = out[:3, :3].reshape(-1, 3)
    assert {tuple(p) for p in hatch} == {(255, 0, 255), (100, 100, 100)}  # magenta stripes over the image


def test_per_class_counts_match_the_label_maps(previewed, example):
    summary, out = previewed
    it = maskdec.iter_samples(example.frames_path, images=False)
    names = it.labels.names()
    page = (out / "index.html").read_text(encoding="utf-8")
    for row, sample in zip(summary.rows, it):
        ids, counts = np.unique(sample.label_map, return_counts=True)
        assert row.counts == {names.get(int(i), "(unknown)"): int(c) for i, c in zip(ids, counts)}
        assert row.stats is not None and sum(row.stats.values()) == sample.label_map.size
        for name, count in row.counts.items():
            assert f"{name}: {count}" in page


def test_pixel_stats_are_the_export_manifests_and_inspects(previewed, example, tmp_path):
    """preview counts exact / snapped / unknown exactly as export and inspect do (Sample.stats)."""
    summary, out = previewed
    export(example.frames_path, tmp_path / "out", workers=1, images=False)
    manifest = [json.loads(line) for line in (tmp_path / "out" / "manifest.jsonl").read_text().splitlines()]
    assert [row.stats for row in summary.rows] == [entry["stats"] for entry in manifest]
    report = inspect_frames(example.frames_path)
    assert summary.stats == {k: sum(m.stats[k] for m in report.mask_reports) for k in summary.stats}
    assert summary.stats["exact"] > summary.stats["snapped"] > 0  # the lossy clip, mapped from its YUV planes
    total = sum(summary.stats.values())
    shares = ", ".join(f"{100 * v / total:.2f}% {k}" for k, v in summary.stats.items())
    assert f"mask pixels: {shares}" in (out / "index.html").read_text(encoding="utf-8")


def test_warnings_for_unknown_pixels_resized_masks_and_failures(tmp_path):
    mask = np.zeros((24, 32, 3), np.uint8)
    mask[:] = PALETTE["road"]
    mask[:6] = (255, 255, 0)  # 25% unknown: no ROI declares it
    cv2.imwrite(str(tmp_path / "m.png"), cv2.cvtColor(mask, cv2.COLOR_RGB2BGR))
    cv2.imwrite(str(tmp_path / "i.png"), np.full((48, 64, 3), 90, np.uint8))
    rois = [{"label": ["road"], "mask": {"id": "seg", "value": list(PALETTE["road"])}}]
    frames = [{"sources": [{"id": "cam", "uri": "i.png", "masks": [{"id": "seg", "uri": "m.png"}]}], "rois": rois},
              {"sources": [{"id": "cam", "uri": "i.png", "masks": [{"id": "seg", "uri": "missing.png"}]}],
               "rois": rois}]
    (tmp_path / "frames.json").write_text(json.dumps(frames))
    summary = preview(tmp_path / "frames.json", tmp_path / "out")
    first, second = summary.rows
    assert any("25.0% of the mask's pixels are unknown (ignore_index 255)" in w for w in first.warnings)
    assert any("mask resized" in w for w in first.warnings)
    assert second.overlay is None and any(w.startswith("failed:") and "missing.png" in w for w in second.warnings)
    page = (tmp_path / "out" / "index.html").read_text(encoding="utf-8")
    assert "pixels are unknown" in page and "missing.png" in page
    overlay_png = read_rgb(tmp_path / "out" / first.overlay)
    assert overlay_png.shape == (48, 64, 3)
    assert (overlay_png[:12] == (255, 0, 255)).all(axis=2).any()  # the unknown rows are hatched


def chromium():
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(chromium() is None, reason="Chromium is not installed (.ci/run installs the Debian package)")
def test_index_renders_in_headless_chromium(previewed, tmp_path):
    summary, out = previewed
    shot = tmp_path / "shot.png"
    result = subprocess.run([chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                             f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1200,1600",
                             f"--screenshot={shot}", summary.index.resolve().as_uri()],
                            capture_output=True, text=True, timeout=180)
    assert result.returncode == 0 and shot.is_file(), result.stderr[-2000:]
    pixels = cv2.cvtColor(cv2.imread(str(shot)), cv2.COLOR_BGR2RGB)
    assert pixels.shape[:2] == (1600, 1200)
    assert pixels.std() > 20  # not a blank page
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 500
    saturated = (pixels.max(axis=2).astype(int) - pixels.min(axis=2)) > 40
    assert saturated.mean() > 0.03  # the thumbnails and the contact sheet were drawn, not just text
    person = np.abs(pixels.astype(int) - PALETTE["person"]).max(axis=2) <= 2
    assert person.sum() >= 50  # the class swatches are drawn in their colours


def test_preview_command(example, tmp_path):
    result = subprocess.run([sys.executable, "-m", "maskdec.cli", "preview", str(example.frames_path), "--out",
                             str(tmp_path / "p"), "--max-samples", "2"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "previewed 2 samples" in result.stderr
    assert len(list((tmp_path / "p" / "overlays").glob("*.png"))) == 2
    assert all((tmp_path / "p" / link).is_file() for link in links_of(tmp_path / "p" / "index.html"))
