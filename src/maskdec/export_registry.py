"""The export formats maskdec knows, by name (see export_formats.FormatSpec)."""
from __future__ import annotations

from .errors import MaskdecError
from .export_coco import COCO, COCO_PANOPTIC
from .export_formats import NPZ, PNG, WEBDATASET, FormatSpec
from .export_parquet import PARQUET

__all__ = ["FORMATS", "FORMAT_NAMES", "format_spec"]

FORMATS: dict[str, FormatSpec] = {spec.name: spec for spec in (PNG, NPZ, WEBDATASET, COCO, COCO_PANOPTIC, PARQUET)}
#: The names `maskdec export --format` accepts, the default first.
FORMAT_NAMES: tuple[str, ...] = tuple(FORMATS)


def format_spec(name: str) -> FormatSpec:
    """The format called `name`; MaskdecError naming the choices when there is none."""
    try:
        return FORMATS[name]
    except (KeyError, TypeError):
        raise MaskdecError(f"unknown export format {name!r}; choose one of {', '.join(FORMAT_NAMES)}") from None
