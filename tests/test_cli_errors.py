"""The command line never prints a traceback for bad input (issue 15): every case is the
real CLI in a subprocess, ending with one line on stderr and a documented status
(2: the command stopped). Failures are reported once per media file with a count,
and names and URIs from the input are printed with control characters escaped.
(Ctrl-C and a dead pool worker: tests/test_export_integrity.py.)
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest


def run_cli(*args, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "maskdec.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout)


def one_line_error(result: subprocess.CompletedProcess, *needles: str) -> str:
    """Assert a clean stop: status 2, one stderr line, no traceback; return the line."""
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr and len(lines) == 1, result.stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """A PNG pair and frames.jsonl, a label-map folder for encode, and bad JSON files."""
    root = tmp_path_factory.mktemp("cli_errors")
    colour = (200, 40, 40)
    cv2.imwrite(str(root / "image.png"), np.full((8, 8, 3), 90, np.uint8))
    cv2.imwrite(str(root / "mask.png"), np.full((8, 8, 3), colour[::-1], np.uint8))
    frame = {"sources": [{"id": "cam", "uri": "image.png", "masks": [{"id": "m", "uri": "mask.png"}]}],
             "rois": [{"label": ["car"], "mask": {"id": "m", "value": list(colour)}}]}
    (root / "frames.jsonl").write_text(json.dumps(frame) + "\n")
    (root / "maps").mkdir()
    cv2.imwrite(str(root / "maps" / "000.png"), np.zeros((8, 8), np.uint8))
    (root / "good_labels.json").write_text(json.dumps({"car": 0}))
    (root / "invalid.json").write_text('{"car": 0,,}')
    (root / "list.json").write_text('["car", "road"]')
    (root / "string.json").write_text('"car"')
    (root / "latin1.json").write_bytes('{"caf\u00e9": 0}'.encode("latin-1"))
    (root / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    (root / "folder.json").mkdir()
    return root


BAD_FILES = [("invalid.json", "invalid JSON"), ("list.json", "JSON object"), ("latin1.json", "not UTF-8"),
             ("string.json", "JSON object"), ("deep.json", "")]


@pytest.mark.parametrize("name,message", BAD_FILES)
def test_bad_labels_files(data, tmp_path, name, message):
    bad = data / name
    one_line_error(run_cli("export", data / "frames.jsonl", "--out", tmp_path / "out", "--labels", bad),
                   "--labels", name, message)
    one_line_error(run_cli("inspect", data / "frames.jsonl", "--labels", bad), "--labels", message)
    one_line_error(run_cli("preview", data / "frames.jsonl", "--out", tmp_path / "p", "--labels", bad),
                   "--labels", message)
    one_line_error(run_cli("encode", data / "maps", "--labels", bad, "--out", tmp_path / "enc"), "--labels", message)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("name,message", [("invalid.json", "invalid JSON"), ("latin1.json", "not UTF-8"),
                                          ("string.json", "JSON object or list"), ("list.json", "")])
def test_bad_mask_labels_files(data, tmp_path, name, message):
    result = run_cli("export", data / "frames.jsonl", "--out", tmp_path / "out", "--mask-labels", data / name)
    one_line_error(result, message)


@pytest.mark.parametrize("name,message", BAD_FILES[:3] + [("good_labels.json", "[r, g, b]")])
def test_bad_encode_colours_files(data, tmp_path, name, message):
    result = run_cli("encode", data / "maps", "--labels", data / "good_labels.json", "--colours", data / name,
                     "--out", tmp_path / "enc")
    one_line_error(result, "--colours", message)


def test_a_folder_as_a_json_file(data, tmp_path):
    for command in (["export", data / "frames.jsonl", "--out", tmp_path / "out"], ["inspect", data / "frames.jsonl"]):
        result = run_cli(*command, "--labels", data / "folder.json")  # a usage error of click's
        assert result.returncode == 2 and "Traceback" not in result.stderr
        assert "Error: Invalid value for '--labels'" in result.stderr and "is a directory" in result.stderr


@pytest.mark.parametrize("out", ["http://127.0.0.1:9/out", "https://example.invalid/out"])
def test_an_out_that_cannot_be_written(data, out):
    one_line_error(run_cli("export", data / "frames.jsonl", "--out", out), "cannot write over HTTP")


def test_an_out_that_is_a_file(data, tmp_path):
    (tmp_path / "file").write_text("x")
    one_line_error(run_cli("export", data / "frames.jsonl", "--out", tmp_path / "file"), str(tmp_path / "file"))


def test_a_media_file_failing_90_samples_is_one_line_with_a_count(data, tmp_path):
    frames = []
    for i in range(90):
        frames.append({"sources": [{"id": "cam", "uri": str(data / "image.png"), "timestamp": 33 * i,
                                    "masks": [{"id": "m", "uri": str(tmp_path / "gone.mp4")}]}],
                       "rois": [{"label": ["car"], "mask": {"id": "m", "value": [200, 40, 40]}}]})
    frames.append({"sources": [{"id": "cam", "uri": str(data / "image.png"),
                                "masks": [{"id": "m", "uri": str(tmp_path / "also_gone.png")}]}],
                   "rois": [{"label": ["car"], "mask": {"id": "m", "value": [200, 40, 40]}}]})
    frames.append(json.loads((data / "frames.jsonl").read_text().replace('"image.png"', json.dumps(
        str(data / "image.png"))).replace('"mask.png"', json.dumps(str(data / "mask.png")))))
    path = tmp_path / "frames.jsonl"
    path.write_text("".join(json.dumps(f) + "\n" for f in frames))
    result = run_cli("export", path, "--out", tmp_path / "out", "--workers", "1")
    assert result.returncode == 1, result.stderr
    lines = result.stderr.strip().splitlines()
    assert "exported 1 samples, 91 failed" in lines[0]
    failed = [line for line in lines if "failed:" in line]
    assert len(failed) == 2, lines
    assert failed[0].startswith(f"  failed: 90 samples of {tmp_path / 'gone.mp4'} (frames 0 to 89): ")
    assert failed[1].startswith("  failed: frame 90: ") and "also_gone.png" in failed[1]
    assert len((tmp_path / "out" / "failures.jsonl").read_text().splitlines()) == 91  # every one on record


def test_control_characters_in_names_and_uris_are_escaped(data, tmp_path):
    hostile = "evil\x1b[2J\x1b]0;pwned\x07\nnext line\u202etxt.png"
    frame = {"sources": [{"id": "cam\x1b[31m", "uri": str(data / "image.png"),
                          "masks": [{"id": "m", "uri": str(tmp_path / hostile)}]}],
             "rois": [{"label": ["car"], "mask": {"id": "m", "value": [200, 40, 40]}}]}
    path = tmp_path / "frames.jsonl"
    path.write_text(json.dumps(frame) + "\n")
    result = run_cli("export", path, "--out", tmp_path / "out", "--workers", "1")
    assert result.returncode == 1, result.stderr
    assert "\x1b" not in result.stderr and "\x07" not in result.stderr and "\u202e" not in result.stderr
    failed = [line for line in result.stderr.splitlines() if "failed:" in line]
    assert len(failed) == 1 and "next line" in failed[0]  # the URI's line break did not split the line
    assert "evil\\x1b[2J\\x1b]0;pwned\\x07\\nnext line\\u202etxt.png" in failed[0]
    # the file on record keeps the exact URI
    (record,) = [json.loads(line) for line in (tmp_path / "out" / "failures.jsonl").read_text().splitlines()]
    assert record["uri"].endswith(hostile)


def test_printable_escapes_what_a_terminal_would_act_on():
    from maskdec.cli import printable

    assert printable("plain text, é and 漢字") == "plain text, é and 漢字"
    assert printable("a\x1bb\nc\td\x7fe\x9bf\u202eg\ud800h") == "a\\x1bb\\nc\\td\\x7fe\\x9bf\\u202eg\\ud800h"
