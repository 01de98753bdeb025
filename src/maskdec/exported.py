"""Samples made the way `maskdec export` makes them, for the tools that report on them.

`inspect` and `preview` take their exact / snapped / unknown counts from
`Sample.stats` of these samples, so their figures and an export manifest's
`stats` are the same numbers for the same file: same plan (strict ROI
resolution), same mapping path (YUV planes when the mask video has them),
same tolerance default, failures yielded rather than raised.
"""
from __future__ import annotations

from typing import Optional

from .labels import LabelTable
from .samples import SampleIterator, SampleRequest

__all__ = ["exported_samples"]


def exported_samples(table: LabelTable, requests: list[SampleRequest], *, tolerance: Optional[float],
                     images: bool) -> SampleIterator:
    """Iterate `requests` (from `plan_samples`) with export's settings: stats on, sizes
    fitted, timestamps in ms, a SampleFailure for each sample that cannot be made."""
    return SampleIterator(table, requests, tolerance=tolerance, images=images, strict_sizes=False,
                          timestamp_unit="ms", threads=None, raise_errors=False, stats=True)
