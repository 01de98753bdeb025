"""Samples made the way `maskdec export` makes them, for the tools that report on them.

`inspect` and `preview` take their exact / snapped / unknown counts from
`Sample.stats` of these samples, so their figures and an export manifest's
`stats` are the same numbers for the same file: same plan (strict ROI
resolution), same mapping path (YUV planes when the mask video has them),
same tolerance default, failures yielded rather than raised.
"""
from __future__ import annotations

from .labels import LabelTable
from .options import Options
from .samples import SampleIterator, SampleRequest

__all__ = ["exported_samples", "export_options"]

#: Options that export sets itself: the caller's values would change what it writes.
EXPORT_SETS = ("stats", "instances", "label_maps")


def export_options(options: Options, *, per_roi: bool = False) -> Options:
    """The options export decodes with: the caller's, with stats on, and per-ROI views when asked."""
    return options.replace(stats=True, instances=per_roi, label_maps=True)


def exported_samples(table: LabelTable, requests: list[SampleRequest], options: Options, *,
                     per_roi: bool = False) -> SampleIterator:
    """Iterate `requests` (from `plan_samples`) as export does (export_options): a SampleFailure
    for each sample that cannot be made."""
    return SampleIterator.of(table, requests, export_options(options, per_roi=per_roi), raise_errors=False)
