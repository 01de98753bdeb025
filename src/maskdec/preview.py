"""`maskdec preview`: overlays, a contact sheet and a static index.html to look at samples.

Layout of DIR (every link in index.html is relative, so the folder opens from
disk, moves, and needs no server):
  index.html          samples with thumbnails, per-class pixel counts and warnings
  overlays/*.png      the image blended with the label colours, class boundaries drawn
  thumbs/*.png        small overlays for the index
  contact_sheet.png   the thumbnails on one grid
"""
from __future__ import annotations

import html
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Optional, Sequence, Union

import cv2
import numpy as np

from .errors import MaskdecError
from .exported import exported_samples
from .labels import LabelTable
from .samples import FramesArg, Sample, SampleFailure, SampleRequest, _as_frames, plan_samples

__all__ = ["PreviewSummary", "preview", "overlay", "boundaries", "label_colours"]

#: A sample whose mask has more unknown (ignore_index) pixels than this share gets a warning.
UNKNOWN_WARNING_SHARE = 0.01
THUMB_WIDTH = 240
_UNKNOWN_COLOUR = (255, 0, 255)


@dataclass
class PreviewRow:
    """One line of the index: a sample (or its failure) and what was written for it."""

    frame_index: int
    source_id: str
    mask_id: str
    timestamp: int
    overlay: Optional[str] = None
    thumb: Optional[str] = None
    counts: dict[str, int] = field(default_factory=dict)  # class name -> pixels
    stats: Optional[dict] = None
    warnings: list[str] = field(default_factory=list)


@dataclass
class PreviewSummary:
    """What `preview` wrote."""

    out_dir: Path
    index: Path
    contact_sheet: Optional[Path]
    rows: list[PreviewRow]
    colours: dict[str, tuple[int, int, int]]

    @property
    def warnings(self) -> list[str]:
        return [w for r in self.rows for w in r.warnings]

    @property
    def stats(self) -> dict[str, int]:
        """Exact / snapped / unknown mask pixels over the previewed samples (their `Sample.stats`)."""
        return _total_stats(self.rows)


def _total_stats(rows: Sequence[PreviewRow]) -> dict[str, int]:
    total = {"exact": 0, "snapped": 0, "unknown": 0}
    for row in rows:
        for key, value in (row.stats or {}).items():
            total[key] += value
    return total


def label_colours(labels: LabelTable, requests: Sequence[SampleRequest]) -> dict[int, tuple[int, int, int]]:
    """Label id -> display colour: the first RGB colour declared for it, else a generated one."""
    out: dict[int, tuple[int, int, int]] = {}
    for r in requests:
        if r.table is None:
            continue
        for colour, label in zip(r.table.colours, r.table.ids):
            if label != labels.ignore_index and label not in out:
                out[label] = tuple(colour) if len(colour) == 3 else (colour[0] >> 8,) * 3
    for i, label in enumerate(sorted(set(labels.ids.values()) - set(out))):
        hue = int(179 * ((i * 0.618034) % 1.0))
        bgr = cv2.cvtColor(np.array([[[hue, 200, 230]]], np.uint8), cv2.COLOR_HSV2BGR)[0, 0]
        out[label] = (int(bgr[2]), int(bgr[1]), int(bgr[0]))
    return out


def boundaries(label_map: np.ndarray) -> np.ndarray:
    """Boolean (H, W): pixels whose right or lower neighbour has another label."""
    edge = np.zeros(label_map.shape, bool)
    edge[:, :-1] |= label_map[:, :-1] != label_map[:, 1:]
    edge[:-1, :] |= label_map[:-1, :] != label_map[1:, :]
    return edge


def overlay(image: Optional[np.ndarray], label_map: np.ndarray, colours: Mapping[int, Sequence[int]],
            ignore_index: int, alpha: float = 0.45) -> np.ndarray:
    """(H, W, 3) RGB: the image blended with each label's colour, unknown pixels hatched in
    magenta, class boundaries in white. Without an image, the colours on grey."""
    h, w = label_map.shape
    base = np.full((h, w, 3), 96, np.uint8) if image is None else image
    size = int(label_map.max()) + 1 if label_map.size else 1
    palette = np.zeros((max(size, ignore_index + 1), 3), np.uint8)
    painted = np.zeros(palette.shape[0], bool)
    for label, colour in colours.items():
        if label < palette.shape[0]:
            palette[label] = colour
            painted[label] = True
    tint = palette[label_map].astype(np.float32)
    out = base.astype(np.float32)
    mask = painted[label_map]
    out[mask] = (1 - alpha) * out[mask] + alpha * tint[mask]
    unknown = label_map == ignore_index
    if unknown.any():
        yy, xx = np.mgrid[0:h, 0:w]
        hatch = unknown & (((yy + xx) // 3) % 2 == 0)
        out[hatch] = _UNKNOWN_COLOUR
    out[boundaries(label_map)] = 255
    return np.clip(out, 0, 255).astype(np.uint8)


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name) or "_"


def _write_png(path: Path, rgb: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)):
        raise MaskdecError(f"cannot write {path}")


def _thumb(rgb: np.ndarray) -> np.ndarray:
    h, w = rgb.shape[:2]
    if w <= THUMB_WIDTH:
        return rgb
    size = (THUMB_WIDTH, max(1, round(h * THUMB_WIDTH / w)))
    return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)


def preview(
    frames: FramesArg,
    out_dir: Union[str, os.PathLike],
    *,
    labels: Optional[Mapping[str, int]] = None,
    mask_labels: Union[str, os.PathLike, Mapping, Sequence, None] = None,
    tolerance: Optional[float] = None,
    ignore_index: int = 255,
    max_samples: Optional[int] = None,
    alpha: float = 0.45,
    columns: int = 6,
) -> PreviewSummary:
    """Write overlays, thumbnails, a contact sheet and index.html for the samples of `frames`.

    max_samples: preview at most this many samples (the first ones). Failures and
    suspicious samples (unknown pixels, resized masks) are listed as warnings.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    table, requests = plan_samples(_as_frames(frames), labels=labels, mask_labels=mask_labels,
                                   ignore_index=ignore_index)
    if max_samples is not None:
        requests = requests[:max_samples]
    colours = label_colours(table, requests)
    names = table.names()
    samples = exported_samples(table, requests, tolerance=tolerance, images=True)  # stats as export counts them
    rows: list[PreviewRow] = []
    thumbs: list[tuple[np.ndarray, str]] = []
    for request, result in zip(requests, samples):
        row = PreviewRow(frame_index=request.frame_index, source_id=request.source.id, mask_id=request.mask.id,
                         timestamp=request.image_ts)
        rows.append(row)
        if isinstance(result, SampleFailure):
            row.warnings.append(f"failed: {result.error}")
            continue
        _preview_sample(out, result, row, colours, names, table.ignore_index, alpha, thumbs)
    sheet = _contact_sheet(out, thumbs, columns)
    named_colours = {names[i]: c for i, c in colours.items() if i in names}
    index = out / "index.html"
    index.write_text(_index_html(rows, named_colours, sheet is not None, table), encoding="utf-8")
    return PreviewSummary(out_dir=out, index=index, contact_sheet=sheet, rows=rows, colours=named_colours)


def _preview_sample(out: Path, sample: Sample, row: PreviewRow, colours: Mapping[int, tuple], names: Mapping[int, str],
                    ignore_index: int, alpha: float, thumbs: list) -> None:
    label_map = sample.label_map
    stem = f"{sample.frame_index:06d}_{_safe(sample.source_id)}_{_safe(sample.mask_id)}"
    rgb = overlay(sample.image, label_map, colours, ignore_index, alpha)
    row.overlay = f"overlays/{stem}.png"
    row.thumb = f"thumbs/{stem}.png"
    _write_png(out / row.overlay, rgb)
    small = _thumb(rgb)
    _write_png(out / row.thumb, small)
    thumbs.append((small, f"#{sample.frame_index} {sample.source_id}/{sample.mask_id}"))
    ids, counts = np.unique(label_map, return_counts=True)
    for i, n in zip(ids.tolist(), counts.tolist()):
        row.counts[names.get(i, "(unknown)" if i == ignore_index else f"id {i}")] = n
    if sample.stats is not None:
        row.stats = sample.stats.to_dict()
        if sample.stats.total and sample.stats.unknown / sample.stats.total > UNKNOWN_WARNING_SHARE:
            row.warnings.append(f"{100 * sample.stats.unknown / sample.stats.total:.1f}% of the mask's pixels "
                                f"are unknown (ignore_index {ignore_index})")
        if sample.stats.total != label_map.size:
            row.warnings.append(f"mask resized to the image's {label_map.shape[1]}x{label_map.shape[0]}")


def _contact_sheet(out: Path, thumbs: list[tuple[np.ndarray, str]], columns: int) -> Optional[Path]:
    if not thumbs:
        return None
    cell_w = max(t.shape[1] for t, _ in thumbs)
    cell_h = max(t.shape[0] for t, _ in thumbs) + 18
    cols = max(1, min(columns, len(thumbs)))
    rows = -(-len(thumbs) // cols)
    sheet = np.full((rows * cell_h, cols * cell_w, 3), 32, np.uint8)
    for k, (t, caption) in enumerate(thumbs):
        y, x = (k // cols) * cell_h, (k % cols) * cell_w
        sheet[y:y + t.shape[0], x:x + t.shape[1]] = t
        cv2.putText(sheet, caption[:40], (x + 3, y + cell_h - 5), cv2.FONT_HERSHEY_SIMPLEX, 0.38, (230, 230, 230), 1,
                    cv2.LINE_AA)
    path = out / "contact_sheet.png"
    _write_png(path, sheet)
    return path


_CSS = """
body { font-family: sans-serif; margin: 1.5em; background: #fafafa; color: #222; }
table { border-collapse: collapse; }
td, th { border: 1px solid #ccc; padding: 4px 8px; vertical-align: top; text-align: left; }
.swatch { display: inline-block; width: 1em; height: 1em; border: 1px solid #444; vertical-align: middle; }
.warn { color: #b00020; }
img.thumb { max-width: 240px; }
"""


def _index_html(rows: list[PreviewRow], colours: Mapping[str, tuple], has_sheet: bool, table: LabelTable) -> str:
    e = html.escape
    n_warn = sum(len(r.warnings) for r in rows)
    stats = _total_stats(rows)
    total = max(sum(stats.values()), 1)
    shares = ", ".join(f"{100 * v / total:.2f}% {k}" for k, v in stats.items())
    parts = ["<!DOCTYPE html>", "<html><head><meta charset=\"utf-8\"><title>maskdec preview</title>",
             f"<style>{_CSS}</style></head><body>", "<h1>maskdec preview</h1>",
             f"<p>{len(rows)} samples, {n_warn} warnings; ignore_index {table.ignore_index} "
             "(unknown pixels hatched in magenta)</p>", f"<p>mask pixels: {shares}</p>",
             "<h2>Classes</h2><table><tr><th>id</th><th>class</th><th>colour</th></tr>"]
    for name, i in sorted(table.ids.items(), key=lambda kv: kv[1]):
        c = colours.get(name)
        swatch = f'<span class="swatch" style="background: rgb{tuple(c)}"></span> {list(c)}' if c else ""
        parts.append(f"<tr><td>{i}</td><td>{e(name)}</td><td>{swatch}</td></tr>")
    parts.append("</table>")
    if has_sheet:
        parts.append('<h2>Contact sheet</h2><p><a href="contact_sheet.png">'
                     '<img src="contact_sheet.png" alt="contact sheet" style="max-width: 100%"></a></p>')
    parts.append("<h2>Samples</h2><table><tr><th>sample</th><th>overlay</th><th>pixels per class</th>"
                 "<th>mask pixels</th><th>warnings</th></tr>")
    for r in rows:
        thumb = (f'<a href="{e(r.overlay)}"><img class="thumb" src="{e(r.thumb)}" alt="frame {r.frame_index}"></a>'
                 if r.thumb else "")
        counts = "<br>".join(
            f'<span class="swatch" style="background: rgb{tuple(colours[n])}"></span> {e(n)}: {v}'
            if n in colours else f"{e(n)}: {v}" for n, v in sorted(r.counts.items(), key=lambda kv: -kv[1]))
        stats = "<br>".join(f"{k}: {v}" for k, v in (r.stats or {}).items())
        warnings = "<br>".join(f'<span class="warn">{e(w)}</span>' for w in r.warnings)
        parts.append(f"<tr><td>frame {r.frame_index}<br>{e(r.source_id)} / {e(r.mask_id)}<br>{r.timestamp} ms</td>"
                     f"<td>{thumb}</td><td>{counts}</td><td>{stats}</td><td>{warnings}</td></tr>")
    parts.append("</table></body></html>")
    return "\n".join(parts) + "\n"
