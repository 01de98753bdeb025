"""The `maskdec` command line.

Exit status: 0 done; 1 done, but some samples failed (export, inspect); 2 an error
that stopped the command (bad input, a usage error, an --out in use); 3 an internal
error (a bug: MASKDEC_DEBUG=1 shows its traceback); 130 interrupted (Ctrl-C).
Errors are one line on stderr, never a traceback; names and URIs from the input
are printed with control characters escaped.
"""
from __future__ import annotations

import json
import os
import signal
import sys
import tempfile
from typing import Any, NoReturn, Optional, Sequence

import click

from .errors import MaskdecError
from .export_registry import FORMAT_NAMES

#: Failed media files listed one by one before the rest is summed up.
FAILURE_LINES = 10


_SHORT_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def printable(text: object) -> str:
    """`text` with every character that is not printable (control characters, line
    breaks, bidi overrides, lone surrogates) written as a Python escape, so one
    message is one line and cannot steer the terminal."""
    text = str(text)
    if text.isprintable():
        return text
    out = []
    for ch in text:
        if ch.isprintable() or ch == " ":
            out.append(ch)
        elif ch in _SHORT_ESCAPES:
            out.append(_SHORT_ESCAPES[ch])
        else:
            code = ord(ch)
            out.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}")
    return "".join(out)


def _say(message: str) -> None:
    click.echo(printable(message), err=True)


def _fail(message: str, status: int = 2) -> NoReturn:
    _say(f"maskdec: error: {message}")
    sys.exit(status)


def _load_json(path: Optional[str], option: str) -> Any:
    """The JSON value of the file given to `option` (None when not given); a file that
    cannot be read, is not UTF-8 or not JSON stops the command with a one-line error."""
    if path is None:
        return None
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        _fail(f"{option} {path}: cannot read it: {exc.strerror or exc}")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        _fail(f"{option} {path}: not UTF-8 text (byte {exc.start})")
    try:
        return json.loads(text)
    except RecursionError:
        _fail(f"{option} {path}: JSON nested too deeply")
    except ValueError as exc:
        _fail(f"{option} {path}: invalid JSON: {getattr(exc, 'msg', exc)} "
              f"(line {getattr(exc, 'lineno', '?')}, column {getattr(exc, 'colno', '?')})")


def _load_labels(path: Optional[str], option: str = "--labels") -> Optional[dict]:
    """A {name: id} enumeration: a JSON object of integer ids."""
    value = _load_json(path, option)
    if value is None:
        return None
    if not isinstance(value, dict):
        _fail(f"{option} {path}: expected a JSON object {{name: id}}, got a JSON {_json_type(value)}")
    for name, label_id in value.items():
        if not isinstance(label_id, int) or isinstance(label_id, bool):
            _fail(f"{option} {path}: the id of {name!r} must be an integer, got {json.dumps(label_id)[:40]}")
    return value


def _load_colours(path: Optional[str]) -> Optional[dict]:
    """--colours: a JSON object {name: [r, g, b]}."""
    value = _load_json(path, "--colours")
    if value is None:
        return None
    if not isinstance(value, dict):
        _fail(f"--colours {path}: expected a JSON object {{name: [r, g, b]}}, got a JSON {_json_type(value)}")
    for name, colour in value.items():
        if not (isinstance(colour, list) and len(colour) == 3
                and all(isinstance(c, int) and not isinstance(c, bool) and 0 <= c <= 255 for c in colour)):
            _fail(f"--colours {path}: the colour of {name!r} must be [r, g, b] with integers 0-255, "
                  f"got {json.dumps(colour)[:40]}")
    return value


def _check_mask_labels(path: Optional[str]) -> Optional[str]:
    """--mask-labels: checked to be UTF-8 JSON here (its structure is checked when loaded)."""
    if path is not None:
        value = _load_json(path, "--mask-labels")
        if not isinstance(value, (dict, list)):
            _fail(f"--mask-labels {path}: expected a JSON object or list, got a JSON {_json_type(value)}")
    return path


def _json_type(value: object) -> str:
    return {dict: "object", list: "list", str: "string", bool: "boolean", int: "number", float: "number",
            type(None): "null"}.get(type(value), type(value).__name__)


def _interrupted(signum: int, frame: object) -> None:
    """The first Ctrl-C stops the command cleanly; a second one ends it at once."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    raise KeyboardInterrupt


class _Main(click.Group):
    """Runs a command so that every way it can stop is one line and a documented status."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            signal.signal(signal.SIGINT, _interrupted)
        except ValueError:  # not the main thread (a test harness): keep Python's handler
            pass
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            done = " (an export keeps the samples it finished: run it again to resume)"
            _say(f"maskdec: interrupted{done if ctx.invoked_subcommand == 'export' else ''}")
            sys.exit(130)
        except MaskdecError as exc:
            _fail(str(exc))
        except OSError as exc:
            _fail(str(exc))
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except Exception as exc:  # noqa: BLE001 - a bug: one line, the traceback on request
            if os.environ.get("MASKDEC_DEBUG"):
                raise
            _fail(f"internal error: {type(exc).__name__}: {exc} (MASKDEC_DEBUG=1 shows the traceback)", 3)


@click.group(cls=_Main)
@click.version_option(package_name="maskdec")
def main() -> None:
    """maskdec: decode segmentation masks of dataset frames into label maps."""


@main.command()
@click.argument("directory", type=click.Path(file_okay=False))
@click.option("--frames", "n_frames", default=30, show_default=True, help="Video frames to generate.")
@click.option("--width", default=320, show_default=True)
@click.option("--height", default=240, show_default=True)
def example(directory: str, n_frames: int, width: int, height: int) -> None:
    """Write the synthetic example dataset (videos, PNGs, frames.jsonl) into DIRECTORY."""
    from .example import make_example

    ex = make_example(directory, n_frames=n_frames, width=width, height=height)
    click.echo(str(ex.frames_path))


def _report_failures(failures: Sequence[dict]) -> None:
    """One line per media file at fault (with a count when it failed several samples),
    at most FAILURE_LINES of them."""
    by_uri: dict[str, list[dict]] = {}
    for failure in failures:
        by_uri.setdefault(str(failure.get("uri")), []).append(failure)
    for n, (uri, items) in enumerate(by_uri.items()):
        if n == FAILURE_LINES:
            _say(f"  ... and {len(by_uri) - n} more files with failures; each failure is in failures.jsonl")
            break
        first = items[0]
        if len(items) == 1:
            _say(f"  failed: frame {first['frame_index']}: {first['error']}")
            continue
        indices = [f["frame_index"] for f in items]
        others = len({f["error"] for f in items}) - 1
        more = f" (and {others} other errors)" if others else ""
        _say(f"  failed: {len(items)} samples of {uri} (frames {min(indices)} to {max(indices)}): "
             f"{first['error']}{more}")


@main.command()
@click.argument("frames", required=False, type=click.Path(dir_okay=False))
@click.option("--out", "out_dir", required=True,
              help="Output folder, or a remote URL such as s3://bucket/prefix ([remote] extra). It must be "
                   "empty, new, or an earlier maskdec export (see --allow-foreign-dir).")
@click.option("--example", "use_example", is_flag=True, help="Export the embedded example dataset.")
@click.option("--labels", "labels_file", type=click.Path(dir_okay=False, exists=True),
              help="JSON {name: id} enumeration.")
@click.option("--mask-labels", "mask_labels_file", type=click.Path(dir_okay=False, exists=True),
              help="Dataset-level colours, a JSON file (see docs/format.md).")
@click.option("--tolerance", type=float, default=None, help="RGB snapping distance (default: by codec).")
@click.option("--no-images", is_flag=True, help="Write label maps only.")
@click.option("--format", "fmt", type=click.Choice(FORMAT_NAMES), default="png", show_default=True,
              help="png: single-channel label maps and RGB images; npz: compressed arrays; "
                   "coco: COCO instance annotations.json (RLE) and images; coco-panoptic: COCO panoptic PNGs "
                   "and panoptic.json; "
                   "webdataset: tar shards; parquet: Parquet shards (Hugging Face datasets, [parquet] extra).")
@click.option("--shard-size", type=click.IntRange(min=1), default=500, show_default=True,
              help="Samples per WebDataset or Parquet shard.")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Worker processes (default: cores; 1: in this process); with --backend ray, tasks in flight.")
@click.option("--resume/--overwrite", default=True, show_default=True,
              help="Skip the samples an earlier run of the same export finished (redoing those whose media "
                   "files changed since), or start afresh: --overwrite removes only the files the earlier "
                   "export recorded writing.")
@click.option("--backend", type=click.Choice(["local", "ray"]), default="local", show_default=True,
              help="local process pool, or Ray ([ray] extra).")
@click.option("--ray-address", default=None, help="Address of a running Ray cluster (default: start a local one).")
@click.option("--per-roi", is_flag=True,
              help="Also one mask per ROI (0/255 PNG; npz: a roi_masks array), listed in the manifest with "
                   "box, area and labels.")
@click.option("--allow-foreign-dir", is_flag=True,
              help="Write into a non-empty --out that holds no maskdec export (refused by default). maskdec "
                   "then replaces files named like its outputs and removes only what it wrote.")
def export(frames: Optional[str], out_dir: str, use_example: bool, labels_file: Optional[str],
           mask_labels_file: Optional[str], tolerance: Optional[float], no_images: bool, fmt: str,
           shard_size: int, workers: Optional[int], resume: bool, backend: str, ray_address: Optional[str],
           per_roi: bool, allow_foreign_dir: bool) -> None:
    """Export label maps of every sample in FRAMES (or of --example) to --out.

    One export at a time writes into --out (a second one exits 2 naming the first);
    maskdec writes only its own files there and never follows a link in it.
    Exits 1 when a sample failed (see failures.jsonl), 2 on an error that stops the
    export, 130 when interrupted (run it again to resume).
    """
    from .export import export as run_export
    from .export_store import open_store

    if use_example == (frames is not None):
        raise click.UsageError("give either FRAMES or --example")
    if ray_address is not None and backend != "ray":
        raise click.UsageError("--ray-address needs --backend ray")
    labels = _load_labels(labels_file)
    mask_labels = _check_mask_labels(mask_labels_file)
    open_store(out_dir)  # an --out that cannot be written stops here, before any work
    bar = None

    def start(total: int) -> None:
        nonlocal bar
        if sys.stderr.isatty():  # a progress bar for people; logs stay quiet
            from tqdm import tqdm

            bar = tqdm(total=total, unit="sample", file=sys.stderr, dynamic_ncols=True)

    with tempfile.TemporaryDirectory(prefix="maskdec-example-") as tmp:
        if use_example:
            from .example import make_example

            frames = str(make_example(tmp).frames_path)
        try:
            summary = run_export(frames, out_dir, labels=labels, mask_labels=mask_labels, tolerance=tolerance,
                                 images=not no_images, format=fmt, shard_size=shard_size, workers=workers,
                                 resume=resume, backend=backend, ray_address=ray_address, per_roi=per_roi,
                                 allow_foreign_dir=allow_foreign_dir, start=start,
                                 progress=lambda n: bar.update(n) if bar is not None else None)
        finally:
            if bar is not None:
                bar.close()
    for note in summary.notes:
        _say(f"note: {note}")
    if summary.changed_media:
        shown = ", ".join(summary.changed_media[:3]) + (
            f" and {len(summary.changed_media) - 3} more" if len(summary.changed_media) > 3 else "")
        n = len(summary.changed_media)
        _say(f"{n} media file{'s' if n != 1 else ''} changed since the last run ({shown}): redid "
             f"{summary.changed_samples} samples finished before")
    skipped = f" ({summary.skipped} done before)" if summary.skipped else ""
    _say(f"exported {summary.samples} samples{skipped}, {summary.failed} failed, "
         f"{100 * summary.unknown_share:.2f}% unknown pixels, to {summary.out_dir}; labels {summary.labels}")
    _report_failures(summary.failures)
    sys.exit(1 if summary.failed else 0)


@main.command()
@click.argument("frames", type=click.Path(dir_okay=False, exists=True))
@click.option("--labels", "labels_file", type=click.Path(dir_okay=False, exists=True),
              help="JSON {name: id} enumeration.")
@click.option("--mask-labels", "mask_labels_file", type=click.Path(dir_okay=False, exists=True),
              help="Dataset-level colours, a JSON file (see docs/format.md).")
@click.option("--tolerance", type=float, default=None,
              help="RGB distance that counts as drift of a declared colour (default: by codec).")
@click.option("--max-samples", type=int, default=None, help="Inspect at most N samples per mask file.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def inspect(frames: str, labels_file: Optional[str], mask_labels_file: Optional[str], tolerance: Optional[float],
            max_samples: Optional[int], as_json: bool) -> None:
    """Report media facts, the label table and the colours each mask really holds."""
    from .inspect import inspect_frames

    report = inspect_frames(frames, labels=_load_labels(labels_file), mask_labels=_check_mask_labels(mask_labels_file),
                            tolerance=tolerance, max_samples=max_samples)
    click.echo(json.dumps(report.to_dict(), indent=2) if as_json else report.format_text(), nl=as_json)
    sys.exit(1 if report.failures else 0)


@main.command()
@click.argument("frames", type=click.Path(dir_okay=False, exists=True))
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Output folder.")
@click.option("--labels", "labels_file", type=click.Path(dir_okay=False, exists=True),
              help="JSON {name: id} enumeration.")
@click.option("--mask-labels", "mask_labels_file", type=click.Path(dir_okay=False, exists=True),
              help="Dataset-level colours, a JSON file (see docs/format.md).")
@click.option("--tolerance", type=float, default=None, help="RGB snapping distance (default: by codec).")
@click.option("--max-samples", type=click.IntRange(min=0), default=None,
              help="Preview at most N samples, spread over the mask files (default 100; 0: all).")
def preview(frames: str, out_dir: str, labels_file: Optional[str], mask_labels_file: Optional[str],
            tolerance: Optional[float], max_samples: Optional[int]) -> None:
    """Write overlays, a contact sheet and index.html for the samples of FRAMES to --out."""
    from .preview import DEFAULT_MAX_SAMPLES, preview as run_preview

    cap = DEFAULT_MAX_SAMPLES if max_samples is None else max_samples
    summary = run_preview(frames, out_dir, labels=_load_labels(labels_file),
                          mask_labels=_check_mask_labels(mask_labels_file), tolerance=tolerance, max_samples=cap)
    shown = (f"{len(summary.rows)} of {summary.total} samples ({summary.skipped} skipped; --max-samples N raises "
             f"the cap of {cap}, 0 shows all)" if summary.skipped else f"{len(summary.rows)} samples")
    _say(f"previewed {shown}, {len(summary.warnings)} warnings: {summary.index}")
    for warning in summary.warnings:
        _say(f"  warning: {warning}")


@main.command()
@click.argument("label_maps", type=click.Path(exists=True))
@click.option("--labels", "labels_file", required=True, type=click.Path(dir_okay=False, exists=True),
              help="JSON {name: id} label table.")
@click.option("--colours", "colours_file", type=click.Path(dir_okay=False, exists=True),
              help="JSON {name: [r, g, b]} (default: generated distinct colours).")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Output folder.")
@click.option("--codec", type=click.Choice(["ffv1", "libx264rgb", "h264"]), default="ffv1", show_default=True,
              help="ffv1 and libx264rgb are lossless; h264 is lossy yuv420p.")
@click.option("--crf", type=int, default=None, help="Quality of the lossy h264 codec (default 18).")
@click.option("--fps", type=int, default=30, show_default=True)
@click.option("--source", type=click.Path(exists=True), default=None,
              help="Image video or folder of images paired with the label maps (default: the mask video).")
@click.option("--mask-id", default="seg", show_default=True)
@click.option("--ignore-index", type=int, default=255, show_default=True,
              help="Label id of unlabelled pixels (painted black, declared by no ROI).")
def encode(label_maps: str, labels_file: str, colours_file: Optional[str], out_dir: str, codec: str,
           crf: Optional[int], fps: int, source: Optional[str], mask_id: str, ignore_index: int) -> None:
    """Encode LABEL_MAPS (a folder of PNGs or an .npy stack) into a mask video and frames.jsonl."""
    from .encode import encode_masks

    result = encode_masks(label_maps, out_dir, labels=_load_labels(labels_file), colours=_load_colours(colours_file),
                          codec=codec, fps=fps, source=source, mask_id=mask_id, ignore_index=ignore_index, crf=crf)
    _say(f"encoded {result.n_frames} label maps into {result.mask_path} "
         f"({'lossless' if result.lossless else 'lossy'}); frames {result.frames_path}")
    click.echo(str(result.frames_path))


def _threads(value: str) -> Optional[int]:
    if value.strip().lower() == "auto":
        return None
    try:
        threads = int(value)
    except ValueError:
        threads = 0
    if not 1 <= threads <= 1024:
        raise click.BadParameter(f"expected auto or a number from 1 to 1024, got {value!r}", param_hint="--threads")
    return threads


@main.command()
@click.argument("frames", required=False, type=click.Path(dir_okay=False, exists=True))
@click.option("--example", "use_example", is_flag=True, help="Benchmark the embedded example dataset.")
@click.option("--samples", type=click.IntRange(min=1), default=120, show_default=True,
              help="Every stage reads the first N samples (input order).")
@click.option("--random", "n_random", type=click.IntRange(min=0), default=32, show_default=True,
              help="Random samples for the random access measures (0: skip them).")
@click.option("--batch", type=click.IntRange(min=1), default=8, show_default=True,
              help="Batch size of MaskDataset.__getitems__, the samplers and the DataLoader.")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Also measure the export worker pool and a DataLoader with N workers.")
@click.option("--threads", "threads_text", default="auto", show_default=True,
              help="Decoder threads per file: auto (FFmpeg's choice, maskdec's default) or a number.")
@click.option("--repeat", type=click.IntRange(min=1), default=3, show_default=True,
              help="Interleaved runs per stage (the report shows their median and spread).")
@click.option("--min-time", "min_seconds", type=click.FloatRange(min=0), default=0.2, show_default=True,
              help="Seconds one timed run lasts at least: a short stage is repeated within it.")
@click.option("--max-time", "max_seconds", type=click.FloatRange(min=0), default=10.0, show_default=True,
              help="A stage whose first run takes this long is timed by it alone; random access stops after it.")
@click.option("--check", "n_check", type=click.IntRange(min=1), default=4, show_default=True,
              help="First samples the baselines must equal maskdec's label maps on.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the random picks.")
@click.option("--json", "json_out", default=None,
              help="Also write the report as JSON to this file ('-': print JSON instead of the table).")
@click.option("--labels", "labels_file", type=click.Path(dir_okay=False, exists=True),
              help="JSON {name: id} enumeration.")
@click.option("--mask-labels", "mask_labels_file", type=click.Path(dir_okay=False, exists=True),
              help="Dataset-level colours, a JSON file (see docs/format.md).")
@click.option("--tolerance", type=float, default=None, help="RGB snapping distance (default: by codec).")
def bench(frames: Optional[str], use_example: bool, samples: int, n_random: int, batch: int, workers: Optional[int],
          threads_text: str, repeat: int, min_seconds: float, max_seconds: float, n_check: int, seed: int,
          json_out: Optional[str], labels_file: Optional[str], mask_labels_file: Optional[str],
          tolerance: Optional[float]) -> None:
    """Decode throughput on FRAMES (or --example), stage by stage, against the plain ways.

    Prints frames/s, ms/frame and the ratio to decode-only of: demux, decode, decode +
    RGB, label maps (YUV and RGB paths), a PyAV + numpy baseline (and torchcodec when
    installed, both checked equal to maskdec first), source images, whole samples; then
    random access, each file's GOP and whether re-encoding would pay off; with --workers,
    scaling. Exits 0 unless the data could not be read (2).
    """
    from .bench_data import BenchSettings, run_bench

    if use_example == (frames is not None):
        raise click.UsageError("give either FRAMES or --example")
    if json_out not in (None, "-") and not os.access(os.path.dirname(os.path.abspath(json_out)), os.W_OK):
        _fail(f"--json {json_out}: cannot write there (no such folder, or not writable)")
    settings = BenchSettings(samples=samples, random=n_random, batch=batch, workers=workers,
                             threads=_threads(threads_text), repeat=repeat, min_seconds=min_seconds,
                             max_seconds=max_seconds, check=n_check, seed=seed,
                             labels=_load_labels(labels_file), mask_labels=_check_mask_labels(mask_labels_file),
                             tolerance=tolerance)
    bar = None

    def start(total: int) -> None:
        nonlocal bar
        from tqdm import tqdm

        bar = tqdm(total=total, unit="step", file=sys.stderr, dynamic_ncols=True, disable=None, leave=False)

    def progress(step: str) -> None:
        if bar is not None:
            bar.set_description(step, refresh=False)
            bar.update(1)

    with tempfile.TemporaryDirectory(prefix="maskdec-example-") as tmp:
        if use_example:
            from .example import make_example

            frames = str(make_example(tmp).frames_path)
        try:
            report = run_bench(frames, settings, name="the embedded example" if use_example else frames,
                               start=start, progress=progress)
        finally:
            if bar is not None:
                bar.close()
    data = report.to_dict()
    if json_out is not None and json_out != "-":
        with open(json_out, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=2)
            fh.write("\n")
    if json_out == "-":
        click.echo(json.dumps(data, indent=2))
    else:
        click.echo("\n".join(printable(line) for line in report.format_text().splitlines()))


if __name__ == "__main__":  # pragma: no cover
    main()
