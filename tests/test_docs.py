"""The user-facing docs: links resolve inside the repository, the example frames files in
README.md and docs/format.md parse and run as described, the README's test command is the
one CI runs, and the command line points to docs/format.md."""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import maskdec
from maskdec.cli import main
from maskdec.frames import Frame
from maskdec.labels import load_mask_labels

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
PAGES = [README] + DOCS
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def blocks(path: Path, language: str) -> list[str]:
    """The fenced code blocks of one language in a Markdown file."""
    return re.findall(rf"^```{language}\n(.*?)^```", path.read_text(encoding="utf-8"), re.S | re.M)


def anchors(path: Path) -> set[str]:
    """GitHub's anchors of a Markdown file's headings (outside code blocks)."""
    text = re.sub(r"^```.*?^```", "", path.read_text(encoding="utf-8"), flags=re.S | re.M)
    out = set()
    for heading in re.findall(r"^#+ (.+)$", text, re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        out.add(slug)
    return out


def test_docs_exist():
    assert (ROOT / "docs" / "format.md").is_file()
    assert {p.name for p in DOCS} >= {"format.md", "api.md", "tools.md", "export.md", "safety.md", "remote.md",
                                      "internals.md", "benchmarks.md", "design.md"}


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_relative_link_resolves_inside_the_repository(page):
    links = LINK.findall(page.read_text(encoding="utf-8"))
    assert links or page.name != "README.md"
    for link in links:
        if re.match(r"[a-z]+://", link):
            continue
        target, _, anchor = link.partition("#")
        path = page if not target else (page.parent / target).resolve()
        assert path.is_file(), f"{page.name}: {link} points to nothing"
        assert ROOT in path.parents, f"{page.name}: {link} leaves the repository"
        if anchor:
            assert anchor in anchors(path), f"{page.name}: {link}: no heading #{anchor} in {path.name}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_no_page_sends_readers_outside_the_repository(page):
    text = page.read_text(encoding="utf-8")
    assert "shared/" not in text and "FORMAT.md" not in text


def test_cli_help_points_to_docs_format():
    for command in ("export", "inspect", "preview"):
        result = CliRunner().invoke(main, [command, "--help"])
        assert result.exit_code == 0
        assert "docs/format.md" in result.output and "FORMAT.md" not in result.output
    assert (ROOT / "docs" / "format.md").is_file()


def test_readme_test_command_is_the_one_ci_runs_and_pulls_no_torch():
    quick_start = README.read_text(encoding="utf-8").split("## Quick start", 1)[1].split("\n## ", 1)[0]
    [test_command] = [b.strip() for b in blocks(README, "bash") if b in quick_start and "'.[test]'" in b]
    assert "'.[test]'" in test_command and "pytest" in test_command
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert test_command in ci  # the same line, byte for byte
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    [test_extra] = re.findall(r"^test = \[(.*?)\]$", pyproject, re.M | re.S)  # one line or several
    assert "torch" not in test_extra  # PyPI's default torch is the CUDA build


def write_frames(example, name: str, text: str) -> Path:
    path = Path(example.root) / name
    path.write_text(text, encoding="utf-8")
    return path


def test_readme_example_runs_as_described(example):
    [text] = blocks(README, "jsonl")
    frames = maskdec.load_frames(write_frames(example, "readme.jsonl", text))
    assert [f.id for f in frames] == ["clip-0010", "still"]
    it = maskdec.iter_samples(frames, stats=True)
    assert it.labels.ids == {"car": 0, "road": 1} and it.labels.ignore_index == 255
    samples = list(it)
    assert [s.timestamp for s in samples] == [333, 0]
    for image, label_map in samples:
        assert image.shape == (240, 320, 3) and label_map.shape == (240, 320) and label_map.dtype == np.uint8
        assert (label_map == 255).any()  # sky, buildings ...: declared by no ROI
    assert set(np.unique(samples[0].label_map)) == {0, 1, 255}


def test_format_example_runs_as_described(example):
    [text] = blocks(ROOT / "docs" / "format.md", "jsonl")
    path = write_frames(example, "format_doc.jsonl", text)
    frames = maskdec.load_frames(path)
    assert [len(f.sources) for f in frames] == [1, 1, 1]
    it = maskdec.iter_samples(path, stats=True)
    assert it.labels.ids == {"car": 0, "person": 1, "road": 2, "sky": 3}
    first, tenth, still = list(it)
    assert (first.timestamp, first.mask_timestamp, tenth.timestamp, tenth.mask_timestamp) == (0, 0, 333, 333)
    assert first.label_map.shape == tenth.label_map.shape == still.label_map.shape == (240, 320)
    # person pixels are in every frame; clip-0000 does not declare their colour, clip-0010 does
    assert 1 not in first.label_map and 1 in tenth.label_map
    assert set(np.unique(still.label_map)) == {2, 3, 255}
    assert still.stats.snapped == 0  # a lossless PNG: tolerance 0


def test_format_json_fragments_parse():
    fragments = [json.loads(b) for b in blocks(ROOT / "docs" / "format.md", "json")]
    frames = [Frame.from_dict(f) for f in fragments if "sources" in f]
    tables = [load_mask_labels(f) for f in fragments if "_all_" in f]
    assert frames and tables
    roi = frames[0].rois[0]
    assert roi.sources == ["left", "right"] and roi.mask.value == (0, 0, 142)
    assert [(d.colour, d.name) for d in tables[0]] == [((128, 64, 128), "road"), ((0, 0, 142), "car")]
