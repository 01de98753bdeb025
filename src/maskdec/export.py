"""`maskdec export`: write the label maps (and images) of every sample, resumably.

Layout of the output (a folder, or a URL such as s3://bucket/prefix):
  labels.json        {name: id}
  dataset_meta.json  Datumaro's label_map and segmentation_colors
  export.json        the settings and plan fingerprint a resumed run must match
  manifest.jsonl     one line per exported sample, in input order
  failures.jsonl     one line per failed sample: frame index, URI, error
  label_maps/ images/ (png), samples/ (npz) or shards/ (webdataset)
  roi_masks/         with per_roi and png: one 0/255 mask per ROI

The frames are planned once here, so the label table is global; the samples
go to workers in units that each own their media files (see export_work).
Every output lands whole (export_store). The manifest is the journal of
finished samples: a re-run skips them and redoes the rest, so a job killed
at any moment and run again ends with exactly an uninterrupted run's files.
"""
from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable, Mapping, Optional, Sequence, Union

from .backends import BACKENDS, run_units
from .errors import MaskdecError
from .export_formats import FORMATS, dataset_meta_json, entry_files
from .export_store import OutputStore, open_store
from .export_work import ExportJob, WorkUnit, failure_record, make_units, worker_threads
from .labels import LabelTable
from .samples import FramesArg, SampleFailure, SampleRequest, _as_frames, plan_samples

__all__ = ["ExportSummary", "export"]

MANIFEST = "manifest.jsonl"
FAILURES = "failures.jsonl"
SETTINGS = "export.json"
#: Everything an export writes; --overwrite removes exactly these.
OUTPUTS = ("labels.json", "dataset_meta.json", SETTINGS, MANIFEST, f"{MANIFEST}.parts", FAILURES,
           "label_maps", "images", "samples", "shards", "roi_masks")
#: What a setting was before export.json recorded it (so older outputs still resume).
SETTING_DEFAULTS = {"per_roi": False}


@dataclass
class ExportSummary:
    """What an export did. `samples` counts every sample in the manifest (`skipped` of
    them were finished by an earlier run); `failures` holds the failures.jsonl records;
    `unknown_share` is the share of the samples' label-map pixels equal to ignore_index."""

    out_dir: str
    samples: int = 0
    failed: int = 0
    skipped: int = 0
    labels: dict = field(default_factory=dict)
    failures: list = field(default_factory=list)
    pixels: int = 0
    unknown_pixels: int = 0

    @property
    def unknown_share(self) -> float:
        return self.unknown_pixels / self.pixels if self.pixels else 0.0


def _sample_id(frame_index: int, source_id: str, mask_id: str) -> str:
    return json.dumps([frame_index, source_id, mask_id])


def _fingerprint(requests: Sequence[SampleRequest], table: LabelTable, per_roi: bool = False) -> str:
    """A digest of what the plan asks for (files as written in the frames, timestamps, colours;
    with per_roi also each mask's ROIs, whose ids and labels the manifest lists)."""
    digest = hashlib.sha256(repr((sorted(table.ids.items()), table.ignore_index)).encode())
    for r in requests:
        colours = None if r.table is None else (r.table.colours, r.table.ids)
        digest.update(repr((r.frame_index, r.source.id, r.mask.id, r.source.uri, r.mask.uri, r.image_ts, r.mask_ts,
                            colours, None if r.error is None else str(r.error))).encode())
        if per_roi and r.index is not None:
            digest.update(repr([(ref.roi.id, ref.roi.labels, ref.roi.confidence, ref.colour, ref.label_id)
                                for ref in r.index.rois]).encode())
    return digest.hexdigest()


def _read_journal(store: OutputStore, positions: Mapping[str, int]) -> dict[int, dict]:
    """Finished samples of earlier runs whose files are all there, by plan position.
    Lines a killed run left half-written, or of samples not in this plan, are dropped."""
    files = store.files()
    done: dict[int, dict] = {}
    for line in store.read_journal(MANIFEST).split("\n"):
        try:
            entry = json.loads(line)
            position = positions[_sample_id(entry["frame_index"], entry["source_id"], entry["mask_id"])]
        except (ValueError, KeyError, TypeError):
            continue
        if all(f in files for f in entry_files(entry)):
            done[position] = entry
    return done


def _manifest_text(done: Mapping[int, dict]) -> str:
    return "".join(json.dumps(done[p]) + "\n" for p in sorted(done))


def _check_settings(store: OutputStore, settings: dict) -> None:
    text = store.read_text(SETTINGS)
    if text is None:
        return
    try:
        before = json.loads(text)
    except ValueError:
        return
    changed = sorted(k for k in settings if before.get(k, SETTING_DEFAULTS.get(k)) != settings[k])
    if changed:
        raise MaskdecError(f"{store.url} holds an export made with other settings ({', '.join(changed)} "
                           f"differ); give --overwrite to start it afresh, or another --out")


def _todo_units(units: list[list], done: Mapping[int, dict], requests: Sequence[SampleRequest]) -> list[WorkUnit]:
    """Units restricted to the groups that are not finished (a group is redone whole)."""
    out = []
    for groups in units:
        todo = tuple(g for g in groups if not all(p in done for p in g.positions))
        if todo:
            out.append(WorkUnit(todo, tuple(requests[p] for g in todo for p in g.positions)))
    return out


def export(
    frames: FramesArg,
    out_dir: Union[str, os.PathLike],
    *,
    labels: Optional[Mapping[str, int]] = None,
    mask_labels: Union[str, os.PathLike, Mapping, Sequence, None] = None,
    tolerance: Optional[float] = None,
    images: bool = True,
    ignore_index: int = 255,
    format: str = "png",
    workers: Optional[int] = None,
    backend: str = "local",
    ray_address: Optional[str] = None,
    resume: bool = True,
    shard_size: int = 500,
    per_roi: bool = False,
    progress: Optional[Callable[[int], None]] = None,
    start: Optional[Callable[[int], None]] = None,
) -> ExportSummary:
    """Export every sample of `frames` to `out_dir` (a folder or an fsspec URL).

    format: "png" (default), "npz" or "webdataset" (tar shards of `shard_size` samples).
    workers: processes (local backend; default: this machine's cores) or Ray tasks in
        flight (default: the cluster's CPUs); 1 runs everything in this process.
    backend: "local" or "ray" (`ray_address` joins a running cluster; default: a running
        ray.init(), else a new local instance).
    resume: skip samples the manifest lists as finished (False: remove earlier outputs first).
    per_roi: also write each ROI's own mask (uint8 0/255; all 0 when the ROI has no pixels):
        png `roi_masks/<key>_roi<k>[_<id>].png`, npz a `roi_masks` (N, H, W) bool array,
        webdataset `<key>.roi<k>.png`; the manifest entry's `rois` lists every ROI of the
        sample with `k`, `mask`, `roi_id`, `labels`, `label`, `label_id`, `box`, `area`
        (and `confidence` when given).
    start(n) is called once with the number of samples to do, progress(k) as k more finish.
    Failures are recorded in failures.jsonl and the summary, not raised.
    """
    if format not in FORMATS:
        raise MaskdecError(f"unknown export format {format!r}; choose one of {', '.join(FORMATS)}")
    if backend not in BACKENDS:
        raise MaskdecError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    store = open_store(out_dir)
    table, requests = plan_samples(_as_frames(frames), labels=labels, mask_labels=mask_labels,
                                   ignore_index=ignore_index)
    settings = {"format": format, "images": images, "tolerance": tolerance,
                "shard_size": shard_size if format == "webdataset" else None, "labels": table.to_dict(),
                "ignore_index": table.ignore_index, "per_roi": per_roi,
                "plan": _fingerprint(requests, table, per_roi)}
    store.prepare()
    if not resume:
        for name in OUTPUTS:
            store.remove(name)
    store.clean_temp()
    _check_settings(store, settings)
    store.write_bytes(SETTINGS, _json_bytes(settings))
    store.write_bytes("labels.json", _json_bytes(table.to_dict()))
    store.write_bytes("dataset_meta.json", dataset_meta_json(table, requests).encode())

    positions = {_sample_id(r.frame_index, r.source.id, r.mask.id): p for p, r in enumerate(requests)}
    done = _read_journal(store, positions)
    store.compact_journal(MANIFEST, _manifest_text(done))  # drops a half-written last line
    failures = {p: failure_record(p, SampleFailure(r, r.error))["failure"]
                for p, r in enumerate(requests) if r.error is not None}
    units = _todo_units(make_units(requests, images=images, fmt=format, shard_size=shard_size), done, requests)
    redo = {p for unit in units for group in unit.groups for p in group.positions}
    skipped = sum(1 for p in done if p not in redo)  # a shard with a missing sample is redone whole
    if start is not None:
        start(len(redo))
    if workers is None and backend == "local":
        workers = worker_threads()
    job = ExportJob(store=store, table=table, fmt=format, images=images, tolerance=tolerance, per_roi=per_roi)
    records = run_units(units, job, backend=backend, workers=workers or 0, ray_address=ray_address)
    _collect(records, store, done, failures, progress)
    store.compact_journal(MANIFEST, _manifest_text(done))
    store.write_bytes(FAILURES, "".join(json.dumps(failures[p]) + "\n" for p in sorted(failures)).encode())
    return ExportSummary(
        out_dir=store.url, samples=len(done), failed=len(failures), skipped=skipped, labels=table.to_dict(),
        failures=[failures[p] for p in sorted(failures)],
        pixels=sum(e.get("pixels", 0) for e in done.values()),
        unknown_pixels=sum(e.get("unknown_pixels", 0) for e in done.values()))


def _json_bytes(obj: object) -> bytes:
    return (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode()


def _collect(records: Iterable[dict], store: OutputStore, done: dict[int, dict], failures: dict[int, dict],
             progress: Optional[Callable[[int], None]]) -> None:
    """Take the workers' records into `done` and `failures`, journaling finished samples
    (every record locally; every store.journal_interval seconds on object stores)."""
    pending: list[str] = []
    last_flush = time.monotonic()
    try:
        for record in records:
            position = record["position"]
            if "entry" in record:
                done[position] = record["entry"]
                failures.pop(position, None)
                pending.append(json.dumps(record["entry"]) + "\n")
            else:
                failures[position] = record["failure"]
            if pending and time.monotonic() - last_flush >= store.journal_interval:
                store.append_journal(MANIFEST, "".join(pending))
                pending, last_flush = [], time.monotonic()
            if progress is not None:
                progress(1)
    finally:  # an export stopped by an error keeps what it finished
        if pending:
            store.append_journal(MANIFEST, "".join(pending))
