"""`maskdec preview`: overlays, contact sheet and an index.html that opens from disk."""
import json
import random
import re
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
from maskdec.errors import OptionError
from maskdec.preview import (DEFAULT_MAX_SAMPLES, THUMB_WIDTH, boundaries, mask_view, overlay, overlay_panels, preview,
                             spread_samples)


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
    assert summary.total == n and summary.skipped == 0  # under the cap: everything, and no note
    assert "skipped" not in (out / "index.html").read_text(encoding="utf-8")
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
        assert read_rgb(out / row.thumb).shape[1] <= THUMB_WIDTH


def test_overlay_files_are_the_image_overlay_beside_the_mask_in_class_colours(previewed, example):
    summary, out = previewed
    it = maskdec.iter_samples(example.frames_path)
    colours = {i: PALETTE[name] for name, i in it.labels.ids.items()}
    assert summary.colours == {name: PALETTE[name] for name in it.labels.ids}
    samples = list(it)
    for row, sample in list(zip(summary.rows, samples))[::10]:
        written = read_rgb(out / row.overlay)
        h, w = sample.label_map.shape
        assert written.shape == (h, 2 * w + 4, 3)
        assert np.array_equal(written, overlay_panels(sample.image, sample.label_map, colours, 255))
        assert np.array_equal(written[:, :w], overlay(sample.image, sample.label_map, colours, 255))
        right = written[:, w + 4:]
        for name, i in it.labels.ids.items():  # the mask panel shows each class in its legend colour, unblended
            if (sample.label_map == i).any():
                assert (right[sample.label_map == i] == PALETTE[name]).all(), name


def test_overlay_blends_outlines_in_class_colours_and_hatches_unknown():
    image = np.full((12, 16, 3), 100, np.uint8)
    labels = np.zeros((12, 16), np.uint8)
    labels[:, 8:] = 1
    labels[:4, :4] = 255
    out = overlay(image, labels, {0: (200, 0, 0), 1: (0, 0, 200)}, 255, alpha=0.5)
    assert tuple(out[8, 2]) == (150, 50, 50)  # (1 - a) * image + a * colour
    assert tuple(out[8, 12]) == (50, 50, 150)
    edge = boundaries(labels)
    assert edge[8, 7] and edge[8, 8] and not edge[8, 6] and not edge[8, 9] and not edge[8, 12]
    assert tuple(out[8, 7]) == (200, 0, 0) and tuple(out[8, 8]) == (0, 0, 200)  # each side in its own colour
    assert tuple(out[3, 3]) == (255, 255, 255)  # the unknown side of a boundary: white
    hatch = out[:3, :3].reshape(-1, 3)
    assert {tuple(p) for p in hatch} == {(255, 0, 255), (100, 100, 100)}  # magenta stripes over the image


def test_mask_view_paints_plain_class_colours_and_hatches_unknown_on_black():
    labels = np.zeros((12, 16), np.uint8)
    labels[:, 8:] = 1
    labels[:4, :4] = 255
    labels[10:, :2] = 7  # a label without a colour
    view = mask_view(labels, {0: (200, 0, 0), 1: (0, 0, 200)}, 255)
    assert (view[labels == 0] == (200, 0, 0)).all() and (view[labels == 1] == (0, 0, 200)).all()
    assert {tuple(p) for p in view[:4, :4].reshape(-1, 3)} == {(255, 0, 255), (0, 0, 0)}
    assert (view[labels == 7] == 96).all()
    panels = overlay_panels(None, labels, {0: (200, 0, 0), 1: (0, 0, 200)}, 255)
    assert panels.shape == (12, 36, 3) and np.array_equal(panels[:, 20:], view)


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
    assert f"mask pixels of these samples: {shares}" in (out / "index.html").read_text(encoding="utf-8")


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
    assert overlay_png.shape == (48, 2 * 64 + 4, 3)  # the image's size, beside the resized mask
    assert (overlay_png[:12, :64] == (255, 0, 255)).all(axis=2).any()  # the unknown rows are hatched
    assert (overlay_png[:12, 68:] == (255, 0, 255)).all(axis=2).any()  # in both panels


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
    n = example.n_frames + 1
    assert f"previewed 2 of {n} samples ({n - 2} skipped" in result.stderr
    assert len(list((tmp_path / "p" / "overlays").glob("*.png"))) == 2
    assert all((tmp_path / "p" / link).is_file() for link in links_of(tmp_path / "p" / "index.html"))


def write_png(path, rgb):
    cv2.imwrite(str(path), cv2.cvtColor(np.asarray(rgb, np.uint8), cv2.COLOR_RGB2BGR))


@pytest.fixture(scope="module")
def many(tmp_path_factory):
    """300 samples: frames 0-289 share one mask file, frames 290-299 have a mask file each."""
    root = tmp_path_factory.mktemp("many")
    image = np.full((12, 16, 3), 90, np.uint8)
    mask = np.zeros((12, 16, 3), np.uint8)
    mask[:] = PALETTE["road"]
    mask[4:8, 4:12] = PALETTE["car"]
    write_png(root / "i.png", image)
    names = ["big.png"] * 290 + [f"m{k}.png" for k in range(10)]
    for name in set(names):
        write_png(root / name, mask)
    rois = [{"label": [c], "mask": {"id": "seg", "value": list(PALETTE[c])}} for c in ("road", "car")]
    lines = [json.dumps({"sources": [{"id": "cam", "uri": "i.png", "masks": [{"id": "seg", "uri": name}]}],
                         "rois": rois}) for name in names]
    (root / "frames.jsonl").write_text("\n".join(lines) + "\n")
    return root / "frames.jsonl"


def test_preview_of_300_samples_writes_at_most_the_cap_spread_over_the_files(many, tmp_path):
    summary = preview(many, tmp_path / "p")
    assert DEFAULT_MAX_SAMPLES == 100
    assert len(summary.rows) == 100 and summary.total == 300 and summary.skipped == 200
    assert len(list((tmp_path / "p" / "overlays").glob("*.png"))) == 100
    assert len(list((tmp_path / "p" / "thumbs").glob("*.png"))) == 100
    shown = [r.frame_index for r in summary.rows]
    # every file is represented (each one-sample file and the big one), the big one evenly, in input order
    assert shown == [k * 290 // 90 for k in range(90)] + list(range(290, 300))
    page = (tmp_path / "p" / "index.html").read_text(encoding="utf-8")
    assert "Showing 100 of 300 samples, spread over 11 mask files; 200 skipped" in page
    assert "--max-samples N" in page
    again = preview(many, tmp_path / "q")
    assert [r.frame_index for r in again.rows] == shown  # deterministic


def test_preview_cap_can_be_raised_or_lifted(many, tmp_path):
    assert len(preview(many, tmp_path / "a", max_samples=150).rows) == 150
    everything = preview(many, tmp_path / "b", max_samples=0)
    assert [r.frame_index for r in everything.rows] == list(range(300)) and everything.skipped == 0
    assert "skipped" not in everything.index.read_text(encoding="utf-8")
    with pytest.raises(OptionError, match="max_samples"):
        preview(many, tmp_path / "c", max_samples=-1)


def test_preview_command_caps_and_says_how_many_were_skipped(many, tmp_path):
    result = subprocess.run([sys.executable, "-m", "maskdec.cli", "preview", str(many), "--out", str(tmp_path / "p")],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "previewed 100 of 300 samples (200 skipped; --max-samples N raises the cap of 100, 0 shows all)" \
        in result.stderr
    assert len(list((tmp_path / "p" / "overlays").glob("*.png"))) == 100
    bad = subprocess.run([sys.executable, "-m", "maskdec.cli", "preview", str(many), "--out", str(tmp_path / "q"),
                          "--max-samples", "-1"], capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and "--max-samples" in bad.stderr


def test_spread_samples_keeps_the_cap_and_represents_as_many_files_as_it_can():
    rng = random.Random(16)
    for _ in range(300):
        keys = sorted(rng.choices(range(rng.randint(1, 40)), k=rng.randint(0, 400)))
        cap = rng.randint(1, 120)
        chosen = spread_samples(keys, cap)
        assert chosen == sorted(set(chosen)) and len(chosen) == min(cap, len(keys))
        assert len({keys[i] for i in chosen}) == min(cap, len(set(keys)))
        per_file = [sum(keys[i] == k for i in chosen) for k in set(keys)]
        full = [sum(keys[i] == k for i in range(len(keys))) for k in set(keys)]
        assert all(n == f or n >= max(per_file) - 1 for n, f in zip(per_file, full))  # equal shares
    assert spread_samples(list(range(50)), 10) == list(range(0, 50, 5))  # more files than the cap: evenly spread
    assert spread_samples(["a"] * 7, None) == spread_samples(["a"] * 7, 0) == list(range(7))


def legend_row(page, name):
    legend = page.split("<h2>Classes</h2>", 1)[1].split("</table>", 1)[0]
    [row] = [r for r in legend.split("<tr>") if f"<td>{name}</td>" in r]
    return row


def test_legend_lists_every_colour_declared_for_a_class(tmp_path):
    """car is declared in three colours: by two frames, two ROIs of one frame and a second mask file."""
    cars = [(0, 0, 142), (0, 0, 230), (0, 60, 100)]
    for k, car in enumerate(cars):
        mask = np.zeros((12, 16, 3), np.uint8)
        mask[:] = PALETTE["road"]
        mask[4:8, 4:12] = car
        write_png(tmp_path / f"m{k}.png", mask)
    write_png(tmp_path / "i.png", np.full((12, 16, 3), 90, np.uint8))

    def roi(label, colour, mask="seg"):
        return {"label": [label], "mask": {"id": mask, "value": list(colour)}}

    frames = [
        {"sources": [{"id": "cam", "uri": "i.png", "masks": [{"id": "seg", "uri": "m0.png"}]}],
         "rois": [roi("road", PALETTE["road"]), roi("car", cars[0])]},
        {"sources": [{"id": "cam", "uri": "i.png", "masks": [{"id": "seg", "uri": "m1.png"}]}],
         "rois": [roi("road", PALETTE["road"]), roi("car", cars[1]), roi("car", cars[0])]},
        {"sources": [{"id": "cam", "uri": "i.png", "masks": [{"id": "seg", "uri": "m0.png"},
                                                             {"id": "thermal", "uri": "m2.png"}]}],
         "rois": [roi("road", PALETTE["road"]), roi("car", cars[0]),
                  roi("road", PALETTE["road"], "thermal"), roi("car", cars[2], "thermal")]},
    ]
    (tmp_path / "frames.json").write_text(json.dumps(frames))
    summary = preview(tmp_path / "frames.json", tmp_path / "out", max_samples=1)  # the legend covers every frame
    assert [r.frame_index for r in summary.rows] == [0] and summary.skipped == 3
    assert [c for c, _ in summary.declared["car"]] == cars
    assert dict(summary.declared["car"])[cars[2]] == ["thermal"]
    page = (tmp_path / "out" / "index.html").read_text(encoding="utf-8")
    row = legend_row(page, "car")
    for car in cars:
        assert f"background: rgb{car}" in row and f"{list(car)}" in row
    assert len(re.findall(r'class="swatch"', row)) == 4  # the colour the overlays use, then the three declared
    assert "thermal" in row
    assert len(re.findall(r'class="swatch"', legend_row(page, "road"))) == 2

    everything = preview(tmp_path / "frames.json", tmp_path / "all", max_samples=0)
    assert everything.colours["car"] == cars[0]  # one colour per class in the overlays: the first declared
    for row in everything.rows:  # and that is what the mask panel shows, whichever colour the mask file held
        written = read_rgb(tmp_path / "all" / row.overlay)
        assert tuple(written[6, 16 + 4 + 8]) == cars[0]


def test_a_class_with_many_colours_lists_them_all_folded(tmp_path):
    colours = [(10 * k, 0, 200) for k in range(13)]  # e.g. one colour per instance
    mask = np.zeros((12, 16, 3), np.uint8)
    for k, colour in enumerate(colours):
        mask[:, k] = colour
    write_png(tmp_path / "m.png", mask)
    write_png(tmp_path / "i.png", np.full((12, 16, 3), 90, np.uint8))
    rois = [{"label": ["person"], "mask": {"id": "seg", "value": list(c)}} for c in colours]
    frames = [{"sources": [{"id": "cam", "uri": "i.png", "masks": [{"id": "seg", "uri": "m.png"}]}], "rois": rois}]
    (tmp_path / "frames.json").write_text(json.dumps(frames))
    summary = preview(tmp_path / "frames.json", tmp_path / "out")
    row = legend_row(summary.index.read_text(encoding="utf-8"), "person")
    assert "<details><summary>13 colours</summary>" in row
    assert all(f"background: rgb{c}" in row for c in colours)
