"""Shared fixtures: media is generated here, never committed."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Mapping, Optional, Sequence

import av
import numpy as np
import pytest

from maskdec.example import PALETTE, make_example


@pytest.fixture(scope="session")
def example(tmp_path_factory):
    """The embedded example, small: a lossy (H.264 yuv420p crf 23) mask video of
    the six touching PALETTE colours, its source video, a PNG still pair."""
    return make_example(tmp_path_factory.mktemp("example"), width=320, height=240, n_frames=30,
                        mask_options={"crf": "23"})


def index_colour(i: int) -> tuple[int, int, int]:
    """A colour that encodes the frame index i (0 <= i < 64), far from its neighbours."""
    return (4 * i, 255 - 4 * i, (97 * i) % 256)


def solid_frames(n: int, height: int = 48, width: int = 64) -> list[np.ndarray]:
    """n solid RGB frames, frame i in index_colour(i)."""
    return [np.full((height, width, 3), index_colour(i), np.uint8) for i in range(n)]


def index_of(label_map: np.ndarray, labels) -> int:
    """The frame index a label map of a solid_frames mask shows (labels named f00, f01 ...)."""
    values = np.unique(label_map)
    assert values.size == 1, f"expected a uniform label map, got ids {values}"
    return int(labels.names()[int(values[0])][1:])


def index_rois(n: int) -> list[dict]:
    """ROIs declaring index_colour(i) as class f{i:02d}, for the frame's only mask."""
    return [{"label": [f"f{i:02d}"], "mask": {"id": "m", "value": list(index_colour(i))}} for i in range(n)]


def palette_rois(palette: Mapping[str, Sequence[int]] = PALETTE, mask_id: str = "m") -> list[dict]:
    return [{"label": [name], "mask": {"id": mask_id, "value": list(colour)}} for name, colour in palette.items()]


def frame_dict(image_uri, mask_uri, rois: list[dict], *, timestamp: Optional[int] = None,
               mask_timestamp: Optional[int] = None, width: Optional[int] = None, height: Optional[int] = None,
               mask_width: Optional[int] = None, mask_height: Optional[int] = None) -> dict:
    """A one-source, one-mask (id "m") frame dict."""
    mask = {"id": "m", "uri": os.fspath(mask_uri)}
    source = {"id": "cam", "uri": os.fspath(image_uri), "masks": [mask]}
    if timestamp is not None:
        source["timestamp"] = timestamp
    if mask_timestamp is not None:
        mask["timestamp"] = mask_timestamp
    for d, key, value in ((source, "width", width), (source, "height", height), (mask, "width", mask_width),
                          (mask, "height", mask_height)):
        if value is not None:
            d[key] = value
    return {"sources": [source], "rois": rois}


def write_png_av(path, frame: av.VideoFrame) -> None:
    """Encode one PyAV frame as a PNG in its own pixel format (e.g. pal8)."""
    with av.open(os.fspath(path), "w", format="image2") as container:
        stream = container.add_stream("png", rate=1)
        stream.width, stream.height = frame.width, frame.height
        stream.pix_fmt = frame.format.name
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def kill_export_mid_run(frames, out: Path, args: Sequence[str], *, after: int) -> int:
    """Start `maskdec export FRAMES --out OUT ARGS` in a session of its own, SIGKILL the whole job
    (the export and its workers) once its journal lists `after` samples, and return how many it
    lists then (the test asserts the kill came mid-run)."""
    victim = subprocess.Popen([sys.executable, "-m", "maskdec.cli", "export", str(frames), "--out", str(out),
                               *map(str, args)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True)
    journal = out / "manifest.jsonl"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and victim.poll() is None:
        if journal.exists() and journal.read_text().count("\n") >= after:
            break
        time.sleep(0.005)
    assert victim.poll() is None, "the export ended before it could be killed"
    os.killpg(victim.pid, signal.SIGKILL)
    victim.wait()
    return journal.read_text().count("\n")
