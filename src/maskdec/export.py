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
export.json also records each media file's identity (export_media): a re-run
redoes the samples of files that changed since.

--out belongs to the export: it must be empty or hold a maskdec export (its
export.json), unless allow_foreign_dir; one export at a time holds its lock
(export_lock); --overwrite removes only what the manifest and export.json say
the earlier export wrote; no write or removal follows a link (export_store).
Names are one per sample identity and bounded in length (export_names).
"""
from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, Optional, Sequence, Union

from .backends import BACKENDS, run_units
from .errors import MaskdecError, OptionError
from .export_formats import Finished, dataset_meta_json, entry_files
from .export_lock import LOCK_NAME, hold_lock
from .export_media import changed_media, media_identities
from .export_names import check_unique_keys, image_key
from .export_registry import FORMAT_NAMES, format_spec
from .export_store import DIRS, ROOT_FILES, OutputStore, is_temp_name, open_store
from .export_work import ExportJob, WorkUnit, failure_record, make_units, worker_threads
from .exported import EXPORT_SETS
from .labels import LabelTable
from .options import Options
from .samples import FramesArg, SampleFailure, SampleRequest, plan_of

__all__ = ["ExportSummary", "ForeignOutputError", "export"]

MANIFEST = "manifest.jsonl"
FAILURES = "failures.jsonl"
SETTINGS = "export.json"
#: Output names and layout (export_names); outputs of an older layout are not resumed.
LAYOUT = 2
#: What a setting was before export.json recorded it (so older outputs still resume, or say why not).
SETTING_DEFAULTS = {"per_roi": False, "layout": 1}


class ForeignOutputError(MaskdecError, FileExistsError):
    """--out holds files, and no maskdec export: maskdec does not write into it unasked."""


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
    #: media files that changed since the earlier run (their samples were redone)
    changed_media: list = field(default_factory=list)
    changed_samples: int = 0
    #: things worth telling: a stale lock taken over, a worker that died
    notes: list = field(default_factory=list)

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
            complete = all(f in files for f in entry_files(entry))
        except (ValueError, KeyError, TypeError, AttributeError):
            continue
        if complete:
            done[position] = entry
    return done


def _manifest_text(done: Mapping[int, dict]) -> str:
    return "".join(json.dumps(done[p]) + "\n" for p in sorted(done))


def _parse_settings(text: Optional[str]) -> Optional[dict]:
    """export.json's settings when they are those of a maskdec export, else None."""
    if text is None:
        return None
    try:
        settings = json.loads(text)
    except ValueError:
        return None
    return settings if isinstance(settings, dict) and "plan" in settings and "format" in settings else None


def _claim(store: OutputStore, allow_foreign_dir: bool) -> Optional[dict]:
    """The settings of the export already in `store` (None: none there). A folder that
    holds anything but a maskdec export is refused unless `allow_foreign_dir`."""
    previous = _parse_settings(store.read_text(SETTINGS))
    if previous is not None:
        return previous
    others = [name for name in store.entries() if name != LOCK_NAME and not is_temp_name(name)]
    if others and not allow_foreign_dir:
        shown = ", ".join(repr(n) for n in others[:3]) + (f" and {len(others) - 3} more" if len(others) > 3 else "")
        raise ForeignOutputError(
            f"--out {store.url} is not empty ({shown}) and holds no maskdec export (no export.json of one); "
            f"maskdec writes only into an empty folder or its own export. Choose another --out, or give "
            f"--allow-foreign-dir (allow_foreign_dir=True) to add the export to it: maskdec then replaces only "
            f"files named like its outputs and removes only what it wrote")
    return None


def _own_file(rel: object) -> bool:
    """Whether a path from a manifest names a file an export writes (a folder of DIRS, one name)."""
    if not isinstance(rel, str):
        return False
    folder, _, name = rel.partition("/")
    return folder in DIRS and bool(name) and "/" not in name and name not in (".", "..")


def _remove_recorded(store: OutputStore) -> None:
    """Remove what the export in `store` recorded having written: the files its manifest
    lists and its own root files (export.json last), then its folders if empty."""
    listed: set[str] = set()
    for line in store.read_journal(MANIFEST).split("\n"):
        try:
            entry = json.loads(line)
            listed.update(f for f in entry_files(entry) if _own_file(f))
        except (ValueError, TypeError, AttributeError, KeyError):
            continue
    store.remove_many(sorted(listed))
    if store.remote:
        store.remove_many(sorted(f for f in store.files() if f.startswith(f"{MANIFEST}.parts/")))
    store.remove_many(n for n in ROOT_FILES if n != SETTINGS)
    for folder in DIRS:
        store.remove_empty_dir(folder)
    store.remove(SETTINGS)


def _check_settings(store: OutputStore, before: dict, settings: dict) -> None:
    changed = sorted(k for k in settings if before.get(k, SETTING_DEFAULTS.get(k)) != settings[k])
    if changed:
        layout = " (made by an older maskdec, whose file names differ)" if "layout" in changed else ""
        raise MaskdecError(f"{store.url} holds an export made with other settings ({', '.join(changed)} "
                           f"differ){layout}; give --overwrite to start it afresh, or another --out")


def _media_of(request: SampleRequest, images: bool) -> tuple[str, ...]:
    """The media files one sample reads."""
    return (request.mask_uri, request.image_uri) if images else (request.mask_uri,)


def _todo_units(units: list[list], done: Mapping[int, dict], requests: Sequence[SampleRequest]) -> list[WorkUnit]:
    """Units restricted to the groups that are not finished (a group is redone whole)."""
    out = []
    for groups in units:
        unit = WorkUnit(tuple(groups), tuple(requests[p] for g in groups for p in g.positions)).without(done)
        if unit is not None:
            out.append(unit)
    return out


def export(
    frames: FramesArg,
    out_dir: Union[str, os.PathLike],
    *,
    format: str = "png",
    workers: Optional[int] = None,
    backend: str = "local",
    ray_address: Optional[str] = None,
    resume: bool = True,
    shard_size: int = 500,
    per_roi: bool = False,
    allow_foreign_dir: bool = False,
    progress: Optional[Callable[[int], None]] = None,
    start: Optional[Callable[[int], None]] = None,
    **options: Any,
) -> ExportSummary:
    """Export every sample of `frames` to `out_dir` (a folder or an fsspec URL).

    options: how samples are decoded, as for iter_samples (maskdec.Options: labels, mask_labels,
        tolerance, images, ignore_index, strict, strict_keys, timestamp_unit ...); export sets
        stats, instances and label_maps itself.

    format: one of FORMAT_NAMES: "png" (default), "npz", "webdataset" (tar shards of
        `shard_size` samples) ...; docs/export.md says what each writes.
    workers: processes (local backend; default: this machine's cores) or Ray tasks in
        flight (default: the cluster's CPUs); 1 runs everything in this process.
    backend: "local" or "ray" (`ray_address` joins a running cluster; default: a running
        ray.init(), else a new local instance).
    resume: skip samples the manifest lists as finished, unless a media file they read
        changed since (size and mtime; a remote object's ETag or version); False: remove
        what the earlier export wrote first.
    per_roi: also write each ROI's own mask (uint8 0/255; all 0 when the ROI has no pixels):
        png `roi_masks/<key>_roi<k>[_<id>].png`, npz a `roi_masks` (N, H, W) bool array,
        webdataset `<key>.roi<k>.png`; the manifest entry's `rois` lists every ROI of the
        sample with `k`, `mask`, `roi_id`, `labels`, `label`, `label_id`, `box`, `area`
        (and `confidence` when given).
    allow_foreign_dir: write into a non-empty `out_dir` that holds no maskdec export
        (refused by default: ForeignOutputError).
    start(n) is called once with the number of samples to do, progress(k) as k more finish.
    Failures are recorded in failures.jsonl and the summary, not raised. One export at a
    time writes into `out_dir` (a second one raises OutputLockedError naming the first).
    """
    spec = format_spec(format)
    if backend not in BACKENDS:
        raise MaskdecError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    taken = sorted(set(options) & set(EXPORT_SETS))
    if taken:
        raise OptionError(f"export sets {', '.join(taken)} itself")
    opts = Options.of(options)
    images, tolerance = opts.images, opts.tolerance
    store = open_store(out_dir)
    table, requests = plan_of(frames, opts)
    check_unique_keys((r.frame_index, r.source.id, r.mask.id) for r in requests)
    check_unique_keys(sorted({(r.frame_index, r.source.id) for r in requests}), image_key, what="source images")
    settings = {"format": format, "images": images, "tolerance": tolerance,
                "shard_size": shard_size if spec.shard else None, "labels": table.to_dict(),
                "ignore_index": table.ignore_index, "per_roi": per_roi, "layout": LAYOUT,
                "plan": _fingerprint(requests, table, per_roi or spec.instances)}
    store.prepare()
    with hold_lock(store) as note:
        summary = ExportSummary(out_dir=store.url, labels=table.to_dict(), notes=[note] if note else [])
        previous = _claim(store, allow_foreign_dir)
        if previous is not None and not resume:
            _remove_recorded(store)
            previous = None
        store.clean_temp()
        if previous is not None:
            _check_settings(store, previous, settings)
        _run(store, requests, table, settings, previous, summary, options=opts, fmt=format,
             shard_size=shard_size, per_roi=per_roi, workers=workers, backend=backend,
             ray_address=ray_address, progress=progress, start=start)
    return summary


def _run(store: OutputStore, requests: Sequence[SampleRequest], table: LabelTable, settings: dict,
         previous: Optional[dict], summary: ExportSummary, *, options: Options, fmt: str, shard_size: int,
         per_roi: bool, workers: Optional[int], backend: str,
         ray_address: Optional[str], progress: Optional[Callable[[int], None]],
         start: Optional[Callable[[int], None]]) -> None:
    """The export proper, in a folder that is ours and locked: journal, changed media, units, records."""
    media = media_identities(u for r in requests if r.error is None for u in _media_of(r, options.images))
    positions = {_sample_id(r.frame_index, r.source.id, r.mask.id): p for p, r in enumerate(requests)}
    done = _read_journal(store, positions) if previous is not None else {}
    before = previous.get("media") if previous is not None else None
    before = before if isinstance(before, dict) else {}
    changed = set(changed_media(before, media))
    stale = [p for p in done if changed.intersection(_media_of(requests[p], options.images))]
    for p in stale:
        del done[p]
    summary.changed_media = sorted(changed)
    summary.changed_samples = len(stale)
    # the journal forgets the stale samples before export.json records the new identities
    store.compact_journal(MANIFEST, _manifest_text(done))  # also drops a half-written last line
    recorded = {u: media[u] if media[u] is not None else before.get(u) for u in media}
    store.write_bytes(SETTINGS, _json_bytes({**settings, "media": recorded}))
    store.write_bytes("labels.json", _json_bytes(table.to_dict()))
    store.write_bytes("dataset_meta.json", dataset_meta_json(table, requests).encode())

    failures = {p: failure_record(p, SampleFailure(r, r.error))["failure"]
                for p, r in enumerate(requests) if r.error is not None}
    spec = format_spec(fmt)
    units = _todo_units(make_units(requests, images=options.images, shard=spec.shard, shard_size=shard_size),
                        done, requests)
    redo = {p for unit in units for group in unit.groups for p in group.positions}
    summary.skipped = sum(1 for p in done if p not in redo)  # a shard with a missing sample is redone whole
    if start is not None:
        start(len(redo))
    if workers is None and backend == "local":
        workers = worker_threads()
    job = ExportJob(store=store, table=table, fmt=fmt, options=options, per_roi=per_roi)
    records = run_units(units, job, backend=backend, workers=workers or 0, ray_address=ray_address)
    _collect(records, store, done, failures, summary.notes, progress)
    store.compact_journal(MANIFEST, _manifest_text(done))
    if spec.finish is not None:
        spec.finish(Finished(store=store, table=table, requests=requests, done=done))
    store.write_bytes(FAILURES, "".join(json.dumps(failures[p]) + "\n" for p in sorted(failures)).encode())
    summary.samples, summary.failed = len(done), len(failures)
    summary.failures = [failures[p] for p in sorted(failures)]
    summary.pixels = sum(e.get("pixels", 0) for e in done.values())
    summary.unknown_pixels = sum(e.get("unknown_pixels", 0) for e in done.values())


def _json_bytes(obj: object) -> bytes:
    return (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode()


def _collect(records: Iterable[dict], store: OutputStore, done: dict[int, dict], failures: dict[int, dict],
             notes: list, progress: Optional[Callable[[int], None]]) -> None:
    """Take the workers' records into `done` and `failures` (and `notes`), journaling finished
    samples (every record locally; every store.journal_interval seconds on object stores)."""
    pending: list[str] = []
    last_flush = time.monotonic()
    try:
        for record in records:
            if "note" in record:
                notes.append(record["note"])
                continue
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
