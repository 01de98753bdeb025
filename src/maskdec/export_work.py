"""Work units of an export, and the code a worker runs on one.

A unit holds every sample that reads any of its media files (samples linked
through a shared image or mask file end in the same unit), so each file is
opened and decoded once, by one worker. Within a unit, samples form groups
that land whole: one sample each for png and npz, one shard for webdataset.
A worker reports one record per sample, after its group's files are in place.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Container, Iterator, Optional, Sequence

import numpy as np

from .errors import MaskdecError
from .export_registry import format_spec
from .export_store import OutputStore
from .labels import LabelTable
from .disjoint import DisjointSets
from .exported import exported_samples
from .options import Options
from .samples import Sample, SampleFailure, SampleRequest

__all__ = ["ExportJob", "Group", "WorkUnit", "make_units", "run_unit", "failure_record"]


@dataclass(frozen=True)
class ExportJob:
    """What every worker needs besides its unit: where and how to write."""

    store: OutputStore
    table: LabelTable
    fmt: str
    options: Options  # how samples are decoded (maskdec.Options)
    per_roi: bool = False  # also one mask per ROI (samples made with instances=True)


@dataclass(frozen=True)
class Group:
    """Samples whose outputs land together: `positions` in the plan, `name` of a shard."""

    positions: tuple[int, ...]
    name: Optional[str] = None


@dataclass(frozen=True)
class WorkUnit:
    """The groups of one connected set of media files, and their requests in group order."""

    groups: tuple[Group, ...]
    requests: tuple[SampleRequest, ...]

    def __len__(self) -> int:
        return len(self.requests)

    def positions(self) -> list[int]:
        return [p for g in self.groups for p in g.positions]

    def without(self, finished: Container[int]) -> Optional["WorkUnit"]:
        """This unit restricted to the groups not all of whose samples are `finished`
        (a group is redone whole); None when nothing is left."""
        by_position = dict(zip(self.positions(), self.requests))
        todo = tuple(g for g in self.groups if not all(p in finished for p in g.positions))
        if not todo:
            return None
        return WorkUnit(todo, tuple(by_position[p] for g in todo for p in g.positions))


def _components(requests: Sequence[SampleRequest], positions: Sequence[int], images: bool) -> list[list[int]]:
    """Plan positions grouped by shared media files (union-find), each list ascending,
    lists ordered by their first position."""
    sets: DisjointSets[int] = DisjointSets()
    owner: dict[tuple[str, str], int] = {}
    for p in positions:
        r = requests[p]
        files = [("mask", r.mask_uri)] + ([("image", r.image_uri)] if images else [])
        for f in files:
            if f in owner:
                a, b = sets.find(owner[f]), sets.find(p)
                sets.join(min(a, b), max(a, b))  # a set's root is its first position
            else:
                owner[f] = p
    groups: dict[int, list[int]] = {}
    for p in positions:
        groups.setdefault(sets.find(p), []).append(p)
    return [groups[root] for root in sorted(groups)]


def make_units(requests: Sequence[SampleRequest], *, images: bool, shard: Optional[str], shard_size: int
               ) -> list[list[Group]]:
    """Every decodable request of the plan in units of groups: one sample each, or with a
    `shard` name pattern, consecutive runs of at most `shard_size` samples of one unit,
    numbered across units in plan order, so a shard's name and content depend only on the plan."""
    if shard_size < 1:
        raise MaskdecError(f"shard_size must be at least 1, got {shard_size}")
    decodable = [p for p, r in enumerate(requests) if r.error is None]
    units: list[list[Group]] = []
    number = 0
    for component in _components(requests, decodable, images):
        if shard is not None:
            groups = []
            for start in range(0, len(component), shard_size):
                groups.append(Group(tuple(component[start:start + shard_size]), shard.format(number)))
                number += 1
        else:
            groups = [Group((p,)) for p in component]
        units.append(groups)
    return units


def failure_record(position: int, failure: SampleFailure) -> dict:
    """The failures.jsonl line of a failed sample: frame index, the URI at fault, the error."""
    r = failure.request
    message = str(failure.error)
    uri = r.mask_uri
    if r.image_uri != r.mask_uri and r.image_uri in message and r.mask_uri not in message:
        uri = r.image_uri
    return {"position": position, "failure": {
        "frame_index": r.frame_index, "source_id": r.source.id, "mask_id": r.mask.id, "timestamp": r.image_ts,
        "uri": uri, "image_uri": r.image_uri, "mask_uri": r.mask_uri,
        "error_type": type(failure.error).__name__, "error": message}}


def _sample_entry(sample: Sample, files: dict, ignore_index: int) -> dict:
    entry = {"frame_index": sample.frame_index, "source_id": sample.source_id, "mask_id": sample.mask_id,
             "timestamp": sample.timestamp, "mask_timestamp": sample.mask_timestamp}
    entry.update(files)
    entry["pixels"] = int(sample.label_map.size)
    entry["unknown_pixels"] = int(np.count_nonzero(sample.label_map == ignore_index))
    stats = getattr(sample, "stats", None)
    entry["stats"] = None if stats is None else stats.to_dict()
    return entry


def run_unit(unit: WorkUnit, job: ExportJob) -> Iterator[dict]:
    """Decode and write one unit; yield `{"position", "entry"}` per exported sample and
    `{"position", "failure"}` per failed one, each after its group has landed. A sample
    whose files cannot be written (a shard: every sample of it) is a failure, not an error."""
    spec = format_spec(job.fmt)
    iterator = exported_samples(job.table, list(unit.requests), job.options, per_roi=job.per_roi or spec.instances)
    writer = spec.writer(job.store, job.per_roi)
    requests = dict(zip(unit.positions(), unit.requests))
    results = iter(iterator)
    try:
        for group in unit.groups:
            for record in _write_group(writer, group, results, requests, job.table.ignore_index):
                yield record  # not `yield from`: Ray's streaming generators call .send()
    finally:
        iterator.close()


def _write_group(writer, group: Group, results: Iterator, requests: dict, ignore_index: int) -> list[dict]:
    """The records of one group, its files in place (or its samples failed)."""
    records: dict[int, dict] = {}
    taken = 0
    try:
        with writer.group(group.name) as out:
            for position in group.positions:
                result = next(results)
                taken += 1
                if isinstance(result, SampleFailure):
                    records[position] = failure_record(position, result)
                    continue
                try:
                    files = out.add(result)
                except MaskdecError as exc:
                    if not writer.per_sample:
                        raise
                    records[position] = failure_record(position, SampleFailure(requests[position], exc))
                    continue
                records[position] = {"position": position, "entry": _sample_entry(result, files, ignore_index)}
    except MaskdecError as exc:  # the group did not land: each of its samples fails with the reason
        while taken < len(group.positions):  # keep the samples in step with the groups
            position = group.positions[taken]
            result = next(results)
            taken += 1
            if isinstance(result, SampleFailure):
                records[position] = failure_record(position, result)
        for position in group.positions:
            if position not in records or "entry" in records[position]:
                records[position] = failure_record(position, SampleFailure(requests[position], exc))
    return [records[p] for p in group.positions]


def worker_threads() -> int:
    """Cores this process may use (for the default --workers)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1
