"""The `maskdec` command line."""
from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
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
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Output folder.")
@click.option("--example", "use_example", is_flag=True, help="Export the embedded example dataset.")
@click.option("--labels", "labels_file", type=click.Path(dir_okay=False, exists=True),
              help="JSON {name: id} enumeration.")
@click.option("--mask-labels", "mask_labels_file", type=click.Path(dir_okay=False, exists=True),
              help="Dataset-level colour table (FORMAT.md §3).")
@click.option("--tolerance", type=float, default=None, help="RGB snapping distance (default: by codec).")
@click.option("--no-images", is_flag=True, help="Write label maps only.")
def export(frames: Optional[str], out_dir: str, use_example: bool, labels_file: Optional[str],
           mask_labels_file: Optional[str], tolerance: Optional[float], no_images: bool) -> None:
    """Export label maps of every sample in FRAMES (or of --example) to --out."""
    from .export import export as run_export

    if use_example == (frames is not None):
        raise click.UsageError("give either FRAMES or --example")
    with tempfile.TemporaryDirectory(prefix="maskdec-example-") as tmp:
        if use_example:
            from .example import make_example

            frames = str(make_example(tmp).frames_path)
        try:
            summary = run_export(frames, out_dir, labels=_load_json(labels_file), mask_labels=mask_labels_file,
                                 tolerance=tolerance, images=not no_images)
        except MaskdecError as exc:
            click.echo(f"maskdec: error: {exc}", err=True)
            sys.exit(2)
    click.echo(f"exported {summary.samples} samples, {summary.failed} failed, to {Path(out_dir)}; "
               f"labels {summary.labels}", err=True)
    for failure in summary.failures:
        click.echo(f"  failed: frame {failure.frame_index}: {failure.error}", err=True)
    sys.exit(1 if summary.failed else 0)


if __name__ == "__main__":  # pragma: no cover
    main()
