"""`maskdec preview`: overlays, a contact sheet and a static index.html to look at samples.

Layout of DIR (every link in index.html is relative, so the folder opens from
disk, moves, and needs no server):
  index.html          the legend (every declared colour of each class), samples with
                      thumbnails, per-class pixel counts and warnings
  overlays/*.png      per sample, side by side: the image blended with the class colours
                      and outlined in them, and the label map in the plain class colours
  thumbs/*.png        small overlays for the index
  contact_sheet.png   the thumbnails on one grid

At most `DEFAULT_MAX_SAMPLES` samples by default, spread over the mask files;
the page and the summary say how many were skipped.
"""
from __future__ import annotations

import html
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Hashable, Mapping, Optional, Sequence, Union

import cv2
import numpy as np

from .errors import MaskdecError, OptionError
from .exported import exported_samples
from .options import Options
from .labels import LabelTable
from .samples import FramesArg, Sample, SampleFailure, SampleRequest, _as_frames, plan_samples

__all__ = ["DEFAULT_MAX_SAMPLES", "PreviewSummary", "preview", "spread_samples", "overlay", "mask_view",
           "overlay_panels", "boundaries", "label_colours", "declared_colours"]

#: Samples previewed unless `max_samples` says otherwise (0 or None: all).
DEFAULT_MAX_SAMPLES = 100
#: A sample whose mask has more unknown (ignore_index) pixels than this share gets a warning.
UNKNOWN_WARNING_SHARE = 0.01
THUMB_WIDTH = 320
_UNKNOWN_COLOUR = (255, 0, 255)
_UNCOLOURED = 96  # grey of pixels whose label has no colour (and of images that are missing)
_GAP = 4  # pixels between the two panels of an overlay
_FOLDED_COLOURS = 12  # a legend row with more declared colours lists them folded (<details>)
#: Colours declared for one class, in first-declared order, each with the ids of the masks declaring it.
Declared = list[tuple[tuple[int, ...], list[str]]]


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
    colours: dict[str, tuple[int, int, int]]  # class name -> the colour the overlays draw it in
    total: int  # samples in the frames; `rows` holds the previewed ones
    declared: dict[str, Declared] = field(default_factory=dict)  # class name -> every colour declared for it

    @property
    def skipped(self) -> int:
        """Samples of the frames that the cap left out."""
        return self.total - len(self.rows)

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


def spread_samples(keys: Sequence[Hashable], cap: Optional[int]) -> list[int]:
    """Indices of at most `cap` items (None or 0: all), in input order, as many files as possible.

    `keys[i]` names item i's file. Every file gets an equal share of the cap (a file
    with fewer items gives its rest to the others), the shares left over go to files
    evenly spread in input order, and each file's share is evenly spaced over its items.
    """
    if not cap or len(keys) <= cap:
        return list(range(len(keys)))
    groups: dict[Hashable, list[int]] = {}
    for i, key in enumerate(keys):
        groups.setdefault(key, []).append(i)
    members = list(groups.values())
    sizes = sorted(len(m) for m in members)
    level, used = 0, 0  # the largest equal share whose total fits the cap
    for k, size in enumerate(sizes):
        step = (cap - used) // (len(sizes) - k)
        if step < size:
            level = step
            break
        used += size
    quotas = [min(len(m), level) for m in members]
    eligible = [g for g, m in enumerate(members) if len(m) > level]
    extra = cap - sum(quotas)
    for k in range(extra):
        quotas[eligible[k * len(eligible) // extra]] += 1
    chosen = [m[k * len(m) // q] for m, q in zip(members, quotas) for k in range(q)]
    return sorted(chosen)


def _display(colour: Sequence[int]) -> tuple[int, int, int]:
    """The RGB a declared colour is shown in: itself, or the grey of a 16-bit (v,) value."""
    return (int(colour[0]), int(colour[1]), int(colour[2])) if len(colour) == 3 else (int(colour[0]) >> 8,) * 3


def declared_colours(labels: LabelTable, requests: Sequence[SampleRequest]) -> dict[int, Declared]:
    """Label id -> every colour declared for it (in first-declared order), each with the
    ids of the masks that declare it."""
    out: dict[int, dict[tuple[int, ...], list[str]]] = {}
    seen: set[tuple[int, str]] = set()
    for r in requests:
        if r.table is None or (id(r.table), r.mask.id) in seen:
            continue
        seen.add((id(r.table), r.mask.id))
        for colour, label in zip(r.table.colours, r.table.ids):
            if label == labels.ignore_index:
                continue
            masks = out.setdefault(label, {}).setdefault(tuple(int(c) for c in colour), [])
            if r.mask.id not in masks:
                masks.append(r.mask.id)
    return {label: list(colours.items()) for label, colours in out.items()}


def label_colours(labels: LabelTable, requests: Sequence[SampleRequest]) -> dict[int, tuple[int, int, int]]:
    """Label id -> display colour: the first colour declared for it, else a generated one."""
    out = {label: _display(colours[0][0]) for label, colours in declared_colours(labels, requests).items()}
    for i, label in enumerate(sorted(set(labels.ids.values()) - set(out))):
        hue = int(179 * ((i * 0.618034) % 1.0))
        bgr = cv2.cvtColor(np.array([[[hue, 200, 230]]], np.uint8), cv2.COLOR_HSV2BGR)[0, 0]
        out[label] = (int(bgr[2]), int(bgr[1]), int(bgr[0]))
    return out


def boundaries(label_map: np.ndarray) -> np.ndarray:
    """Boolean (H, W): pixels with a left, right, upper or lower neighbour of another label."""
    edge = np.zeros(label_map.shape, bool)
    horizontal = label_map[:, :-1] != label_map[:, 1:]
    vertical = label_map[:-1, :] != label_map[1:, :]
    edge[:, :-1] |= horizontal
    edge[:, 1:] |= horizontal
    edge[:-1, :] |= vertical
    edge[1:, :] |= vertical
    return edge


def _palette(label_map: np.ndarray, colours: Mapping[int, Sequence[int]],
             ignore_index: int) -> tuple[np.ndarray, np.ndarray]:
    """Label id -> RGB, and label id -> whether it has a colour."""
    size = int(label_map.max()) + 1 if label_map.size else 1
    palette = np.full((max(size, ignore_index + 1), 3), _UNCOLOURED, np.uint8)
    painted = np.zeros(palette.shape[0], bool)
    for label, colour in colours.items():
        if label < palette.shape[0]:
            palette[label] = colour
            painted[label] = True
    return palette, painted


def _hatch(out: np.ndarray, label_map: np.ndarray, ignore_index: int) -> None:
    unknown = label_map == ignore_index
    if unknown.any():
        yy, xx = np.mgrid[0:label_map.shape[0], 0:label_map.shape[1]]
        out[unknown & (((yy + xx) // 3) % 2 == 0)] = _UNKNOWN_COLOUR


def overlay(image: Optional[np.ndarray], label_map: np.ndarray, colours: Mapping[int, Sequence[int]],
            ignore_index: int, alpha: float = 0.45) -> np.ndarray:
    """(H, W, 3) RGB: the image blended with each label's colour, unknown pixels hatched in
    magenta, and each class outlined in its own, unblended colour (both sides of a boundary;
    pixels without a colour in white). Without an image, the colours on grey."""
    h, w = label_map.shape
    base = np.full((h, w, 3), _UNCOLOURED, np.uint8) if image is None else image
    palette, painted = _palette(label_map, colours, ignore_index)
    out = base.astype(np.float32)
    mask = painted[label_map]
    out[mask] = (1 - alpha) * out[mask] + alpha * palette[label_map][mask].astype(np.float32)
    _hatch(out, label_map, ignore_index)
    edge = boundaries(label_map)
    on_edge = label_map[edge]
    out[edge] = np.where(painted[on_edge][:, None], palette[on_edge], 255)
    return np.clip(out, 0, 255).astype(np.uint8)


def mask_view(label_map: np.ndarray, colours: Mapping[int, Sequence[int]], ignore_index: int) -> np.ndarray:
    """(H, W, 3) RGB: the label map in the plain class colours (the legend's swatches),
    unknown pixels hatched magenta on black, labels without a colour grey."""
    palette, _ = _palette(label_map, colours, ignore_index)
    palette[ignore_index] = 0
    out = palette[label_map]
    _hatch(out, label_map, ignore_index)
    return out


def overlay_panels(image: Optional[np.ndarray], label_map: np.ndarray, colours: Mapping[int, Sequence[int]],
                   ignore_index: int, alpha: float = 0.45) -> np.ndarray:
    """(H, 2W + 4, 3) RGB: `overlay` on the left, `mask_view` on the right, a dark gap between."""
    left = overlay(image, label_map, colours, ignore_index, alpha)
    gap = np.full((label_map.shape[0], _GAP, 3), 32, np.uint8)
    return np.hstack([left, gap, mask_view(label_map, colours, ignore_index)])


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
    max_samples: Optional[int] = DEFAULT_MAX_SAMPLES,
    alpha: float = 0.45,
    columns: int = 6,
) -> PreviewSummary:
    """Write overlays, thumbnails, a contact sheet and index.html for the samples of `frames`.

    max_samples: preview at most this many samples (default 100; 0 or None: all),
    spread over the mask files (`spread_samples`); the page says how many were
    skipped. Failures and suspicious samples (unknown pixels, resized masks) are
    listed as warnings.
    """
    if max_samples is not None and (isinstance(max_samples, bool) or not isinstance(max_samples, int)
                                    or max_samples < 0):
        raise OptionError(f"max_samples must be a whole number >= 0 (0: no cap), not {max_samples!r}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    table, planned = plan_samples(_as_frames(frames), labels=labels, mask_labels=mask_labels,
                                  ignore_index=ignore_index)
    requests = [planned[i] for i in spread_samples([r.mask_uri for r in planned], max_samples)]
    colours = label_colours(table, planned)  # the same colours whatever the cap picks
    names = table.names()
    declared = {names[i]: cs for i, cs in sorted(declared_colours(table, planned).items()) if i in names}
    samples = exported_samples(table, requests, Options.of({"tolerance": tolerance}))  # stats as export counts them
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
    summary = PreviewSummary(out_dir=out, index=out / "index.html", contact_sheet=sheet, rows=rows,
                             colours=named_colours, total=len(planned), declared=declared)
    n_files = len({r.mask_uri for r in requests})
    summary.index.write_text(_index_html(summary, sheet is not None, table, max_samples, n_files), encoding="utf-8")
    return summary


def _preview_sample(out: Path, sample: Sample, row: PreviewRow, colours: Mapping[int, tuple], names: Mapping[int, str],
                    ignore_index: int, alpha: float, thumbs: list) -> None:
    label_map = sample.label_map
    stem = f"{sample.frame_index:06d}_{_safe(sample.source_id)}_{_safe(sample.mask_id)}"
    rgb = overlay_panels(sample.image, label_map, colours, ignore_index, alpha)
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
.note { background: #fff4d6; border: 1px solid #e0c060; padding: 6px 10px; display: inline-block; }
img.thumb { max-width: 320px; }
"""


def _n(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def _swatch(colour: Sequence[int]) -> str:
    return f'<span class="swatch" style="background: rgb{_display(colour)}"></span>'


def _declared_text(colour: Sequence[int]) -> str:
    return f"{list(colour)}" if len(colour) == 3 else f"grey {colour[0]} (16-bit)"


def _index_html(summary: PreviewSummary, has_sheet: bool, table: LabelTable, cap: Optional[int], n_files: int) -> str:
    e = html.escape
    rows, colours = summary.rows, summary.colours
    n_warn = sum(len(r.warnings) for r in rows)
    stats = _total_stats(rows)
    total = max(sum(stats.values()), 1)
    shares = ", ".join(f"{100 * v / total:.2f}% {k}" for k, v in stats.items())
    parts = ["<!DOCTYPE html>", "<html><head><meta charset=\"utf-8\"><title>maskdec preview</title>",
             f"<style>{_CSS}</style></head><body>", "<h1>maskdec preview</h1>"]
    if summary.skipped:
        parts.append(f'<p class="note">Showing {len(rows)} of {summary.total} samples, spread over '
                     f"{_n(n_files, 'mask file')}; {summary.skipped} skipped (at most {_n(cap or 0, 'sample')}; "
                     "raise the cap with <code>--max-samples N</code>, <code>--max-samples 0</code> shows all)."
                     "</p>")
    parts += [f"<p>{_n(len(rows), 'sample')}, {_n(n_warn, 'warning')}; ignore_index {table.ignore_index} "
              "(unknown pixels hatched in magenta)</p>", f"<p>mask pixels of these samples: {shares}</p>",
              "<p>Each overlay shows the image tinted and outlined in the class colours, and beside it the "
              "label map in the plain class colours.</p>",
              "<h2>Classes</h2><table><tr><th>id</th><th>class</th><th>colour in the overlays</th>"
              "<th>colours declared in the masks</th></tr>"]
    for name, i in sorted(table.ids.items(), key=lambda kv: kv[1]):
        c = colours.get(name)
        swatch = f"{_swatch(c)} {list(c)}" if c else ""
        declared = summary.declared.get(name)
        listed = ("<br>".join(f"{_swatch(d)} {_declared_text(d)} (mask {e(', '.join(masks))})"
                              for d, masks in declared) if declared else "none (colour generated)")
        if declared and len(declared) > _FOLDED_COLOURS:  # many instance colours: all listed, folded
            listed = f"<details><summary>{len(declared)} colours</summary>{listed}</details>"
        parts.append(f"<tr><td>{i}</td><td>{e(name)}</td><td>{swatch}</td><td>{listed}</td></tr>")
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
            f"{_swatch(colours[n])} {e(n)}: {v}"
            if n in colours else f"{e(n)}: {v}" for n, v in sorted(r.counts.items(), key=lambda kv: -kv[1]))
        stats = "<br>".join(f"{k}: {v}" for k, v in (r.stats or {}).items())
        warnings = "<br>".join(f'<span class="warn">{e(w)}</span>' for w in r.warnings)
        parts.append(f"<tr><td>frame {r.frame_index}<br>{e(r.source_id)} / {e(r.mask_id)}<br>{r.timestamp} ms</td>"
                     f"<td>{thumb}</td><td>{counts}</td><td>{stats}</td><td>{warnings}</td></tr>")
    parts.append("</table></body></html>")
    return "\n".join(parts) + "\n"
