"""`--format parquet`: Parquet shards that Hugging Face `datasets`, pyarrow, pandas,
Polars, DuckDB or Spark read as they are.

Shards `data/<n>.parquet` of `shard_size` samples, one row per sample (COLUMNS):
  image, label_map   {bytes: PNG, path: name} structs, the layout `datasets` decodes as
                     Image() features (image null without images); the label map is a
                     single-channel uint8/uint16 PNG of label ids, the image RGB
  key, frame_index, source_id, mask_id, timestamp, mask_timestamp
                     which sample (key: its file-name key in the other formats)
  pixels, unknown_pixels, stats_exact, stats_snapped, stats_unknown
                     the manifest's counts (`stats_*`: its `stats`, null when absent)
  rois               with per_roi: each ROI's record (as the manifest's `rois`) with its
                     0/255 mask as an Image struct
The schema's `huggingface` metadata names these features, so `datasets` knows the
Image columns without a card. A shard lands whole (store.open_write), and its bytes
depend only on its rows (fixed writer version, row groups, compression; no
timestamps), so a resumed export writes exactly the shards an uninterrupted one does.
The finish step writes README.md, a dataset card (parquet_card).
"""
from __future__ import annotations

import contextlib
import json
from typing import Any, Iterator, Mapping, Optional

import numpy as np

from .errors import MaskdecError, MissingExtraError
from .export_formats import FormatSpec, Finished, encode_png, roi_entry, roi_name, roi_png, roi_views
from .export_names import sample_key
from .export_store import OutputError, OutputStore
from .labels import LabelTable
from .samples import Sample

__all__ = ["PARQUET", "ParquetShardError", "parquet_schema", "parquet_card", "hf_features", "SHARD",
           "ROW_GROUP_ROWS", "ROW_GROUP_BYTES"]

#: Shard names (the n-th group of `shard_size` samples, numbered in plan order).
SHARD = "data/{:06d}.parquet"
#: A row group ends after this many rows, or once its PNG bytes pass ROW_GROUP_BYTES (a
#: binary column chunk must stay under 2 GiB); both depend on the rows only.
ROW_GROUP_ROWS = 64
ROW_GROUP_BYTES = 256 << 20
#: Fixed writer settings: the same rows give the same bytes (for one pyarrow version).
WRITE_OPTIONS: dict = {"version": "2.6", "data_page_version": "1.0", "write_page_index": False,
                       "use_dictionary": ["source_id", "mask_id"]}

# The column layout, written once for Arrow, `datasets` and the card: a leaf is
# ("int64" | "float64" | "string" | "image"), a list is [item], a struct is a list of (name, type).
_ROI = [("k", "int64"), ("roi_id", "string"), ("labels", ["string"]), ("label", "string"), ("label_id", "int64"),
        ("box", ["int64"]), ("area", "int64"), ("confidence", "float64"), ("mask", "image")]
COLUMNS = [("image", "image"), ("label_map", "image"), ("key", "string"), ("frame_index", "int64"),
           ("source_id", "string"), ("mask_id", "string"), ("timestamp", "int64"), ("mask_timestamp", "int64"),
           ("pixels", "int64"), ("unknown_pixels", "int64"), ("stats_exact", "int64"),
           ("stats_snapped", "int64"), ("stats_unknown", "int64")]
ROIS_COLUMN = ("rois", [_ROI])


class ParquetShardError(OutputError):
    """A Parquet shard cannot be written; names the shard and the sample at fault."""


def _pyarrow():
    try:
        import pyarrow
        import pyarrow.parquet
    except ImportError:
        raise MissingExtraError("--format parquet needs pyarrow; install it with `pip install "
                                "'maskdec[parquet]'`") from None
    return pyarrow, pyarrow.parquet


def _columns(per_roi: bool) -> list:
    return COLUMNS + [ROIS_COLUMN] if per_roi else list(COLUMNS)


def _is_struct(kind: Any) -> bool:
    return isinstance(kind, list) and bool(kind) and isinstance(kind[0], tuple)


def _arrow_type(pa, kind: Any):
    if kind == "image":  # datasets.Image's storage type
        return pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    if _is_struct(kind):
        return pa.struct([(name, _arrow_type(pa, sub)) for name, sub in kind])
    if isinstance(kind, list):
        return pa.list_(_arrow_type(pa, kind[0]))
    return {"int64": pa.int64(), "float64": pa.float64(), "string": pa.string()}[kind]


def _feature(kind: Any) -> Any:
    """A `datasets` feature in its JSON form (a list `[item]` for lists: read alike by datasets 2, 3 and 4)."""
    if kind == "image":
        return {"_type": "Image"}
    if _is_struct(kind):
        return {name: _feature(sub) for name, sub in kind}
    if isinstance(kind, list):
        return [_feature(kind[0])]
    return {"dtype": kind, "_type": "Value"}


def hf_features(per_roi: bool = False) -> dict:
    """The `datasets` features of the rows, as the `huggingface` schema metadata holds them."""
    return {name: _feature(kind) for name, kind in _columns(per_roi)}


def parquet_schema(per_roi: bool = False):
    """The Arrow schema of every shard, with the `huggingface` metadata `datasets` reads
    (Features.from_arrow_schema: Image for image, label_map and each ROI's mask)."""
    pa, _ = _pyarrow()
    metadata = {"huggingface": json.dumps({"info": {"features": hf_features(per_roi)}})}
    return pa.schema([(name, _arrow_type(pa, kind)) for name, kind in _columns(per_roi)], metadata=metadata)


def _leaves(pa, prefix: str, typ) -> Iterator[str]:
    """Parquet column paths of the leaves of an Arrow type (lists as `<name>.list.element`)."""
    if pa.types.is_struct(typ):
        for i in range(typ.num_fields):
            yield from _leaves(pa, f"{prefix}.{typ.field(i).name}", typ.field(i).type)
    elif pa.types.is_list(typ):
        yield from _leaves(pa, f"{prefix}.list.element", typ.value_type)
    else:
        yield prefix


def _write_options(pa, schema) -> dict:
    """WRITE_OPTIONS with a codec per column: PNG bytes as they are, the rest zstd; statistics
    only for the scalar columns (min/max of PNG bytes say nothing)."""
    leaves = [leaf for field in schema for leaf in _leaves(pa, field.name, field.type)]
    compression = {leaf: "NONE" if leaf.endswith(".bytes") else "ZSTD" for leaf in leaves}
    scalar = [f.name for f in schema if not pa.types.is_nested(f.type)]
    return {**WRITE_OPTIONS, "compression": compression, "write_statistics": scalar}


def _png(value: bytes, path: str) -> dict:
    return {"bytes": value, "path": path}


class _ParquetShard:
    """One open shard: rows come as samples do, a row group is written as it fills,
    the file lands whole when the group ends (finish).

    A sample whose row cannot be made (a PNG that does not encode, text Parquet cannot
    hold) fails alone, before it touches the shard; once writing a row group fails, the
    shard is broken: every later sample and `finish` raise, so none of it lands."""

    def __init__(self, store: OutputStore, rel: str, stack: contextlib.ExitStack, per_roi: bool) -> None:
        self.store, self.rel, self._stack, self.per_roi = store, rel, stack, per_roi
        self._pa, self._pq = _pyarrow()
        self.schema = parquet_schema(per_roi)
        self._writer = None
        self._tables: list = []  # one-row tables not yet written
        self._bytes = 0
        self._count = 0  # rows written or buffered
        self._broken: Optional[ParquetShardError] = None

    @property
    def where(self) -> str:
        return f"{self.store.url}/{self.rel}"

    def _open(self) -> None:
        fh = self._stack.enter_context(self.store.open_write(self.rel))
        try:
            self._writer = self._pq.ParquetWriter(fh, self.schema, **_write_options(self._pa, self.schema))
        except (self._pa.ArrowException, OSError, ValueError) as exc:
            raise self._break("opening it", exc) from None
        self._stack.callback(self._discard)  # runs before open_write drops the temporary file

    def _discard(self) -> None:
        """A shard that did not finish: let go of the writer (its file is removed whole)."""
        writer, self._writer = self._writer, None
        if writer is not None:
            with contextlib.suppress(Exception):
                writer.close()

    def _break(self, doing: str, exc: BaseException) -> ParquetShardError:
        self._broken = ParquetShardError(f"cannot write Parquet shard {self.where} ({doing}): "
                                         f"{type(exc).__name__}: {exc}")
        return self._broken

    def add(self, sample: Sample) -> dict:
        if self._broken is not None:
            raise self._broken
        key = sample_key(sample.frame_index, sample.source_id, sample.mask_id)
        try:
            row, files = self._row(sample, key)
            table = self._pa.Table.from_pylist([row], schema=self.schema)
        except (MaskdecError, self._pa.ArrowException, ValueError, TypeError) as exc:
            raise ParquetShardError(
                f"cannot store sample {key} (frame {sample.frame_index}, source {sample.source_id!r}, mask "
                f"{sample.mask_id!r}) in Parquet shard {self.where}: {type(exc).__name__}: {exc}") from None
        if self._writer is None:  # a shard whose samples all failed is not written at all
            self._open()
        self._tables.append(table)
        self._bytes += sum(len(v["bytes"]) for v in (row["image"], row["label_map"]) if v is not None)
        files["row"] = self._count
        self._count += 1
        if len(self._tables) >= ROW_GROUP_ROWS or self._bytes >= ROW_GROUP_BYTES:
            self._flush(f"rows up to sample {key}")
        return files

    def _row(self, sample: Sample, key: str) -> tuple[dict, dict]:
        label_path = f"{key}.label.png"
        image_path = None if sample.image is None else f"{key}.image.png"
        stats = sample.stats
        table = None if sample.request is None else sample.request.table
        if table is None:
            raise MaskdecError("the sample carries no colour table (its ignore_index is unknown)")
        row = {
            "image": None if image_path is None else _png(encode_png(sample.image, rgb=True), image_path),
            "label_map": _png(encode_png(sample.label_map), label_path),
            "key": key, "frame_index": sample.frame_index, "source_id": sample.source_id,
            "mask_id": sample.mask_id, "timestamp": sample.timestamp, "mask_timestamp": sample.mask_timestamp,
            "pixels": int(sample.label_map.size),
            "unknown_pixels": int(np.count_nonzero(sample.label_map == table.ignore_index)),  # as the manifest
            "stats_exact": None if stats is None else stats.exact,
            "stats_snapped": None if stats is None else stats.snapped,
            "stats_unknown": None if stats is None else stats.unknown,
        }
        files: dict = {"shard": self.rel, "label_map": label_path, "image": image_path}
        if self.per_roi:
            views = roi_views(sample)
            files["rois"] = [roi_entry(v, f"{key}.{roi_name(v, with_id=False)}.png") for v in views]
            row["rois"] = [{"k": r["k"], "roi_id": r["roi_id"], "labels": r["labels"], "label": r["label"],
                            "label_id": r["label_id"], "box": r["box"], "area": r["area"],
                            "confidence": r.get("confidence"), "mask": _png(roi_png(v), r["mask"])}
                           for v, r in zip(views, files["rois"])]
        return row, files

    def _flush(self, what: str) -> None:
        """Write the buffered rows as one row group (contiguous, so the bytes depend on the rows only)."""
        if not self._tables:
            return
        try:
            table = self._pa.concat_tables(self._tables).combine_chunks()
            self._writer.write_table(table, row_group_size=table.num_rows)
        except (self._pa.ArrowException, OSError, ValueError, TypeError) as exc:
            raise self._break(what, exc) from None
        self._tables, self._bytes = [], 0

    def finish(self) -> None:
        """Write the last row group and the footer (the file lands when the group's block ends)."""
        if self._broken is not None:
            raise self._broken
        if self._writer is None:
            return
        self._flush("its last rows")
        writer, self._writer = self._writer, None
        try:
            writer.close()
        except (self._pa.ArrowException, OSError, ValueError) as exc:
            raise self._break("closing it", exc) from None


class _ParquetWriter:
    #: a sample whose row cannot be made fails alone; a shard lands whole or not at all
    per_sample = True

    def __init__(self, store: OutputStore, per_roi: bool = False) -> None:
        _pyarrow()  # a missing extra stops the export here, before any decoding
        self.store = store
        self.per_roi = per_roi

    @contextlib.contextmanager
    def group(self, name: Optional[str]) -> Iterator[_ParquetShard]:
        if name is None:
            raise MaskdecError("a parquet group needs a shard name")
        with contextlib.ExitStack() as stack:
            shard = _ParquetShard(self.store, name, stack, self.per_roi)
            yield shard
            shard.finish()


# ------------------------------------------------------------------ the dataset card

def _yaml_features(columns: list, indent: int) -> list[str]:
    """The card's `dataset_info.features` list (the YAML form `datasets` reads back)."""
    pad = " " * indent
    lines: list[str] = []
    for name, kind in columns:
        lines.append(f"{pad}- name: {name}")
        if _is_struct(kind):
            lines += [f"{pad}  struct:"] + _yaml_features(kind, indent + 2)
        elif isinstance(kind, list) and _is_struct(kind[0]):
            lines += [f"{pad}  list:"] + _yaml_features(kind[0], indent + 2)
        elif isinstance(kind, list):
            lines.append(f"{pad}  list: {kind[0]}")
        else:
            lines.append(f"{pad}  dtype: {kind}")
    return lines


def _cell(text: str) -> str:
    """A label name as Markdown table text: shown as it is, never taken for markup."""
    out = []
    for ch in text:
        if ch in "\\|`*_[]<>#":
            out.append("\\" + ch)
        elif not ch.isprintable():
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return "".join(out)


_COLUMN_DOCS = [
    ("image", "the source image: PNG, RGB 8-bit (`datasets`: Image); null when exported without images"),
    ("label_map", "the label map: PNG, one channel, {dtype} label ids (`datasets`: Image)"),
    ("key", "the sample's key (`manifest.jsonl`, the other formats' file names)"),
    ("frame_index", "the frame's line in the frames file (0-based)"),
    ("source_id, mask_id", "which source image and which of its masks"),
    ("timestamp, mask_timestamp", "the image's and the mask's timestamps (as in the frames file)"),
    ("pixels, unknown_pixels", "label-map pixels, and those equal to ignore_index"),
    ("stats_exact, stats_snapped, stats_unknown",
     "mask pixels that matched a declared colour exactly, by tolerance, or not at all (before any resize)"),
]
_ROIS_DOC = ("rois", "per ROI: `k`, `roi_id`, `labels`, `label`, `label_id`, `box` [x0, y0, x1, y1] "
                     "(exclusive ends, null when empty), `area`, `confidence`, `mask` (PNG, 255 on its pixels)")


def parquet_card(table: LabelTable, entries: Mapping[int, dict]) -> str:
    """README.md of a Parquet export: a Hugging Face dataset card (YAML header with the
    data files and features), the columns, the label table and how to load the shards."""
    rows = [entries[p] for p in sorted(entries)]
    per_roi = any("rois" in e for e in rows)
    shards = sorted({e["shard"] for e in rows if isinstance(e.get("shard"), str)})
    images = any(e.get("image") for e in rows)
    columns = _columns(per_roi)
    lines = ["---", "configs:", "- config_name: default", "  data_files:", "  - split: train",
             "    path: data/*.parquet", "dataset_info:", "  features:", *_yaml_features(columns, 2), "---", "",
             "# maskdec export (Parquet)", "",
             f"{len(rows)} samples in {len(shards)} Parquet shards (`data/*.parquet`), one row per sample, "
             f"written by `maskdec export --format parquet`"
             + ("" if images or not rows else " without images") + ". `manifest.jsonl` lists the same "
             "samples in the same order (each entry's `shard` and `row`); `failures.jsonl` the samples "
             "that could not be exported.", "", "## Columns", "", "| column | content |", "|---|---|"]
    docs = _COLUMN_DOCS + ([_ROIS_DOC] if per_roi else [])
    lines += [f"| {name} | {text.format(dtype=table.dtype.name)} |" for name, text in docs]
    lines += ["", "## Labels", "",
              f"Label-map pixels hold these ids; {table.ignore_index} (ignore_index) marks pixels no "
              f"declared colour covers. The same table is in `labels.json`.", "", "| id | name |", "|---:|---|"]
    lines += [f"| {label_id} | {_cell(name)} |" for label_id, name in sorted(table.names().items())]
    lines += ["", "## Loading", "", "With Hugging Face `datasets` (image and label_map decode to PIL images):", "",
              "```python", "import numpy as np", "from datasets import load_dataset", "",
              'ds = load_dataset("parquet", data_files="data/*.parquet", split="train")',
              "# or this folder, by this card: load_dataset(\"path/to/this/folder\", split=\"train\")",
              "row = ds[0]", 'label_map = np.asarray(row["label_map"])  # (H, W) label ids',
              'image = np.asarray(row["image"])  # (H, W, 3) uint8 RGB', "```", "",
              "With pyarrow (the PNG bytes as they are):", "", "```python", "import cv2",
              "import numpy as np", "import pyarrow.parquet as pq", "",
              'table = pq.read_table("data")',
              'row = table.slice(0, 1).to_pylist()[0]',
              'label_map = cv2.imdecode(np.frombuffer(row["label_map"]["bytes"], np.uint8), cv2.IMREAD_UNCHANGED)',
              "```", ""]
    return "\n".join(lines)


def _finish(done: Finished) -> None:
    done.store.write_bytes("README.md", parquet_card(done.table, done.done).encode("utf-8"))


PARQUET = FormatSpec("parquet", _ParquetWriter, shard=SHARD, finish=_finish)
