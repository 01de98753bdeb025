"""The `maskdec` command line."""
from __future__ import annotations

import json
import sys
import tempfile
from typing import Optional

import click

from .errors import MaskdecError


def _load_json(path: Optional[str]) -> Optional[dict]:
    if path is None:
        return None
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


@click.group()
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


@main.command()
@click.argument("frames", required=False, type=click.Path(dir_okay=False))
@click.option("--out", "out_dir", required=True,
              help="Output folder, or a remote URL such as s3://bucket/prefix ([remote] extra).")
@click.option("--example", "use_example", is_flag=True, help="Export the embedded example dataset.")
@click.option("--labels", "labels_file", type=click.Path(dir_okay=False, exists=True),
              help="JSON {name: id} enumeration.")
@click.option("--mask-labels", "mask_labels_file", type=click.Path(dir_okay=False, exists=True),
              help="Dataset-level colours, a JSON file (see docs/format.md).")
@click.option("--tolerance", type=float, default=None, help="RGB snapping distance (default: by codec).")
@click.option("--no-images", is_flag=True, help="Write label maps only.")
@click.option("--format", "fmt", type=click.Choice(["png", "npz", "webdataset"]), default="png", show_default=True,
              help="png: single-channel label maps and RGB images; npz: compressed arrays; "
                   "webdataset: tar shards.")
@click.option("--shard-size", type=click.IntRange(min=1), default=500, show_default=True,
              help="Samples per WebDataset shard.")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Worker processes (default: cores; 1: in this process); with --backend ray, tasks in flight.")
@click.option("--resume/--overwrite", default=True, show_default=True,
              help="Skip the samples an earlier run of the same export finished, or start afresh.")
@click.option("--backend", type=click.Choice(["local", "ray"]), default="local", show_default=True,
              help="local process pool, or Ray ([ray] extra).")
@click.option("--ray-address", default=None, help="Address of a running Ray cluster (default: start a local one).")
@click.option("--per-roi", is_flag=True,
              help="Also one mask per ROI (0/255 PNG; npz: a roi_masks array), listed in the manifest with "
                   "box, area and labels.")
def export(frames: Optional[str], out_dir: str, use_example: bool, labels_file: Optional[str],
           mask_labels_file: Optional[str], tolerance: Optional[float], no_images: bool, fmt: str,
           shard_size: int, workers: Optional[int], resume: bool, backend: str, ray_address: Optional[str],
           per_roi: bool) -> None:
    """Export label maps of every sample in FRAMES (or of --example) to --out.

    Exits 1 when a sample failed (see failures.jsonl), 2 on an error that stops the export.
    """
    from .export import export as run_export

    if use_example == (frames is not None):
        raise click.UsageError("give either FRAMES or --example")
    if ray_address is not None and backend != "ray":
        raise click.UsageError("--ray-address needs --backend ray")
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
            summary = run_export(frames, out_dir, labels=_load_json(labels_file), mask_labels=mask_labels_file,
                                 tolerance=tolerance, images=not no_images, format=fmt, shard_size=shard_size,
                                 workers=workers, resume=resume, backend=backend, ray_address=ray_address,
                                 per_roi=per_roi, start=start,
                                 progress=lambda n: bar.update(n) if bar is not None else None)
        except MaskdecError as exc:
            click.echo(f"maskdec: error: {exc}", err=True)
            sys.exit(2)
        finally:
            if bar is not None:
                bar.close()
    skipped = f" ({summary.skipped} done before)" if summary.skipped else ""
    click.echo(f"exported {summary.samples} samples{skipped}, {summary.failed} failed, "
               f"{100 * summary.unknown_share:.2f}% unknown pixels, to {summary.out_dir}; "
               f"labels {summary.labels}", err=True)
    for failure in summary.failures:
        click.echo(f"  failed: frame {failure['frame_index']}: {failure['error']}", err=True)
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

    try:
        report = inspect_frames(frames, labels=_load_json(labels_file), mask_labels=mask_labels_file,
                                tolerance=tolerance, max_samples=max_samples)
    except MaskdecError as exc:
        click.echo(f"maskdec: error: {exc}", err=True)
        sys.exit(2)
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
@click.option("--max-samples", type=int, default=None, help="Preview at most the first N samples.")
def preview(frames: str, out_dir: str, labels_file: Optional[str], mask_labels_file: Optional[str],
            tolerance: Optional[float], max_samples: Optional[int]) -> None:
    """Write overlays, a contact sheet and index.html for the samples of FRAMES to --out."""
    from .preview import preview as run_preview

    try:
        summary = run_preview(frames, out_dir, labels=_load_json(labels_file), mask_labels=mask_labels_file,
                              tolerance=tolerance, max_samples=max_samples)
    except MaskdecError as exc:
        click.echo(f"maskdec: error: {exc}", err=True)
        sys.exit(2)
    click.echo(f"previewed {len(summary.rows)} samples, {len(summary.warnings)} warnings: {summary.index}", err=True)
    for warning in summary.warnings:
        click.echo(f"  warning: {warning}", err=True)


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

    try:
        result = encode_masks(label_maps, out_dir, labels=_load_json(labels_file), colours=_load_json(colours_file),
                              codec=codec, fps=fps, source=source, mask_id=mask_id, ignore_index=ignore_index,
                              crf=crf)
    except MaskdecError as exc:
        click.echo(f"maskdec: error: {exc}", err=True)
        sys.exit(2)
    click.echo(f"encoded {result.n_frames} label maps into {result.mask_path} "
               f"({'lossless' if result.lossless else 'lossy'}); frames {result.frames_path}", err=True)
    click.echo(str(result.frames_path))


if __name__ == "__main__":  # pragma: no cover
    main()
