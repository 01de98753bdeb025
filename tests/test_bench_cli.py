"""`maskdec bench` on real generated media: the embedded example and a long-GOP clip (every
stage measured, the JSON complete, GOP facts and advice), a baseline with a wrong table
reported as a mismatch, unreadable data, worker scaling, remote media on a loopback S3
server, and the interleaved timing loop itself."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

import maskdec
from maskdec import bench, bench_data
from maskdec.cli import main
from maskdec.example import PALETTE, colour_mask, scene_classes, scene_image
from maskdec.media.writer import write_video

#: Short runs: two timed runs a stage (plus the warm-up), no minimum run time.
QUICK = ["--repeat", "2", "--min-time", "0"]
STAGES = ["demux", "decode", "decode_rgb", "label_maps_yuv", "label_maps_rgb", "baseline_numpy",
          "baseline_torchcodec", "images", "samples"]
TOP_FIELDS = {"report_version", "frames", "samples", "total_samples", "settings", "machine", "versions", "files",
              "fetch", "stages", "checks", "random_access", "scaling", "advice", "notes"}
ROW_FIELDS = {"name", "title", "unit", "available", "items", "rate", "ms_per_item", "rate_min", "rate_max", "runs",
              "seconds", "check", "equal", "note"}
FILE_FIELDS = {"uri", "roles", "codec", "width", "height", "pix_fmt", "frames", "keyframes", "mean_gop", "max_gop",
               "mean_depth", "b_frames", "lossless", "still", "bytes", "index_ms"}
KEYINT = 240


def bench_cli(*args) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, ["bench", *map(str, args)])
    return result.exit_code, result.stdout, result.stderr


def run_bench(*args, expect: int = 0) -> tuple[dict, str]:
    """Run `maskdec bench ... --json FILE`; the report as a dict and the printed table."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "report.json"
        code, stdout, stderr = bench_cli(*args, "--json", out)
        assert code == expect, stderr
        return json.loads(out.read_text()), stdout


def assert_measured(row: dict) -> None:
    assert row["available"], row
    assert ROW_FIELDS <= set(row), row
    assert row["rate"] > 0 and row["items"] > 0, row
    assert row["rate_min"] <= row["rate"] <= row["rate_max"], row
    assert row["ms_per_item"] == pytest.approx(1000 / row["rate"], rel=0.02)
    assert len(row["seconds"]) == row["runs"] == 2 and all(s > 0 for s in row["seconds"])


def make_clip(root: Path, keyint: int, frames: int = KEYINT) -> Path:
    """A mask and a source video of `frames` frames with a keyframe every `keyint` (x264 with
    B-frames), and frames.jsonl pairing them frame by frame."""
    h, w = 144, 192
    classes = [scene_classes(i, h, w) for i in range(frames)]
    options = {"crf": "20", "bf": "3", "preset": "veryfast",
               "x264-params": f"keyint={keyint}:min-keyint={keyint}:scenecut=0"}
    write_video(root / "mask.mp4", (colour_mask(c) for c in classes), fps=30, options=options)
    write_video(root / "source.mp4", (scene_image(i, c) for i, c in enumerate(classes)), fps=30, options=options)
    rois = [{"label": [name], "mask": {"id": "seg", "value": list(colour)}} for name, colour in PALETTE.items()]
    lines = [json.dumps({"sources": [{"id": "cam", "uri": "source.mp4", "timestamp": int(i * 1000 / 30),
                                      "masks": [{"id": "seg", "uri": "mask.mp4"}]}], "rois": rois})
             for i in range(frames)]
    (root / "frames.jsonl").write_text("\n".join(lines) + "\n")
    return root / "frames.jsonl"


@pytest.fixture(scope="module")
def long_gop(tmp_path_factory) -> Path:
    """One keyframe in KEYINT frames."""
    return make_clip(tmp_path_factory.mktemp("long_gop"), KEYINT)


def test_example_every_stage_has_a_rate_and_the_json_every_field(example):
    report, table = run_bench(example.frames_path, *QUICK, "--random", "12", "--check", "3")
    assert TOP_FIELDS <= set(report)
    assert report["samples"] == report["total_samples"] == example.n_frames + 1
    assert [row["name"] for row in report["stages"]] == STAGES
    torchcodec_problem = bench.torchcodec_problem()  # "torchcodec not installed", or why it does not load
    for row in report["stages"]:
        if row["name"] == "baseline_torchcodec" and torchcodec_problem:
            assert not row["available"] and row["rate"] is None and row["note"] == torchcodec_problem
            continue
        assert_measured(row)
        decode = report["stages"][1]["rate"]
        assert row["ratio_to_decode_only"] == pytest.approx(row["rate"] / decode, rel=0.01)
    by_name = {row["name"]: row for row in report["stages"]}
    assert by_name["decode"]["items"] == by_name["label_maps_yuv"]["items"] == example.n_frames + 1
    assert by_name["baseline_numpy"]["equal"] is True and by_name["baseline_numpy"]["check"].startswith("equal")
    assert report["checks"][0]["baseline"] == "baseline_numpy" and report["checks"][0]["equal"] is True
    assert report["checks"][0]["samples"] == 4  # the first 3 and the first of the PNG mask
    files = {Path(f["uri"]).name: f for f in report["files"]}
    assert set(files) == {"mask.mp4", "source.mp4", "still_mask.png", "still.png"}
    assert all(FILE_FIELDS <= set(f) for f in files.values())
    assert files["mask.mp4"]["roles"] == ["mask"] and files["mask.mp4"]["frames"] == example.n_frames
    assert files["still_mask.png"]["still"] and files["still_mask.png"]["max_gop"] == 1
    random_rows = report["random_access"]["rows"]
    assert report["random_access"]["samples"] == 12 and report["random_access"]["in_order_rate"] > 0
    assert [r["name"] for r in random_rows] == ["random_one_by_one", "random_batches", "random_gop_sampler"]
    assert_measured(random_rows[0])
    assert_measured(random_rows[1])
    assert random_rows[0]["items"] == 12 and random_rows[0]["ratio_to_in_order"] > 0
    if bench_data.gop_sampler_class() is not None:
        assert_measured(random_rows[2])
    assert report["scaling"] is None
    assert report["machine"]["cores"] >= 1 and report["machine"]["cpu"]
    for key in ("python", "maskdec", "pyav", "ffmpeg", "numpy"):
        assert report["versions"][key], key
    assert report["settings"]["repeat"] == 2 and report["settings"]["threads"] is None
    for title in [row["title"] for row in report["stages"]] + ["frames/s", "ms/frame", "x decode", "GOP max"]:
        assert title in table, title
    assert report["advice"] and report["advice"][0] in table


def test_long_gop_clip_gives_gop_facts_and_reencoding_advice(long_gop):
    report, table = run_bench(long_gop, *QUICK, "--samples", "60", "--random", "10", "--threads", "2")
    assert report["samples"] == 60 and report["total_samples"] == KEYINT
    for row in report["stages"]:
        if row["name"] != "baseline_torchcodec":
            assert_measured(row)
    mask = next(f for f in report["files"] if f["roles"] == ["mask"])
    assert (mask["frames"], mask["keyframes"], mask["max_gop"], mask["b_frames"]) == (KEYINT, 1, KEYINT, True)
    assert mask["mean_gop"] == KEYINT and mask["mean_depth"] == 30.5  # frames 0-59, all in the first GOP
    assert report["settings"]["threads"] == 2
    single = report["random_access"]["rows"][0]
    assert_measured(single)
    # a random sample decodes about half a GOP of each file: far slower than reading in order
    assert single["ratio_to_in_order"] < 0.5, single
    advice = "\n".join(report["advice"])
    assert "keyframe every 15 frames" in advice and "mask.mp4 30 of a GOP of 240" in advice
    assert "ffmpeg -i mask.mp4" in advice and "-g 15 -keyint_min 15" in advice and "maskdec encode" in advice
    assert "ffmpeg -i mask.mp4" in table


def test_short_gop_clip_gets_no_reencoding_advice(tmp_path):
    frames = make_clip(tmp_path, 10, frames=60)
    report, table = run_bench(frames, *QUICK, "--random", "10")
    mask = next(f for f in report["files"] if f["roles"] == ["mask"])
    assert (mask["keyframes"], mask["max_gop"], mask["mean_gop"]) == (6, 10, 10.0)
    advice = "\n".join(report["advice"])
    assert "keyframes are at most 10 frames apart" in advice and "ffmpeg" not in advice, advice
    assert "ffmpeg" not in table


def test_a_wrong_baseline_table_is_reported_as_a_mismatch(example, monkeypatch):
    real = bench.packed_lut

    def wrong(palette, tolerance, bits=24):
        lut = real(palette, tolerance, bits).copy()
        lut[lut == 1] = 2  # the first colour read as the second
        return lut

    monkeypatch.setattr(bench, "packed_lut", wrong)
    report, table = run_bench(example.frames_path, *QUICK, "--random", "0", "--check", "2")
    row = next(r for r in report["stages"] if r["name"] == "baseline_numpy")
    assert row["equal"] is False and row["check"] == "3 of 3 samples differ", row
    assert row["rate"] > 0  # still timed, flagged
    check = report["checks"][0]
    assert check["equal"] is False and "MISMATCH" in check["detail"] and "sample 0 (frames[0]" in check["detail"]
    assert "MISMATCH: 3 of 3 samples differ" in table and "check: baseline: PyAV RGB + numpy packed LUT: MISMATCH" \
        in table
    assert report["random_access"] is None


def test_without_the_gop_sampler_its_row_says_so(example, monkeypatch):
    monkeypatch.setattr(bench_data, "gop_sampler_class", lambda: None)
    report, _ = run_bench(example.frames_path, "--repeat", "1", "--min-time", "0", "--random", "4", "--samples", "5")
    row = report["random_access"]["rows"][2]
    assert not row["available"] and "maskdec.sampling.GopBatchSampler" in row["note"]
    assert report["samples"] == 5


def test_unreadable_data_exits_2_naming_the_file(example, tmp_path):
    frames = [f.to_dict() for f in maskdec.load_frames(example.frames_path)][:3]
    for frame in frames:
        source = frame["sources"][0]
        source["uri"] = str(example.root / source["uri"])
        source["masks"][0]["uri"] = str(example.root / source["masks"][0]["uri"])
    frames[1]["sources"][0]["masks"][0]["uri"] = str(tmp_path / "gone.mp4")
    path = tmp_path / "frames.json"
    path.write_text(json.dumps(frames))
    code, stdout, stderr = bench_cli(path, *QUICK)
    assert code == 2 and stdout == ""
    assert stderr.startswith("maskdec: error:") and "gone.mp4" in stderr and len(stderr.splitlines()) == 1
    not_media = tmp_path / "mask.mp4"
    not_media.write_bytes(b"no video here" * 100)
    frames[1]["sources"][0]["masks"][0]["uri"] = str(not_media)
    path.write_text(json.dumps(frames))
    code, _, stderr = bench_cli(path, *QUICK)
    assert code == 2 and "mask.mp4" in stderr


def test_usage_errors(example, tmp_path):
    assert bench_cli()[0] == 2  # neither FRAMES nor --example
    code, _, stderr = bench_cli(example.frames_path, "--threads", "many")
    assert code == 2 and "--threads" in stderr
    code, _, stderr = bench_cli(example.frames_path, "--json", tmp_path / "missing" / "report.json")
    assert code == 2 and stderr.startswith("maskdec: error: --json") and "cannot write" in stderr
    with pytest.raises(maskdec.OptionError, match="'samples'"):
        bench_data.BenchSettings(samples=0)
    with pytest.raises(maskdec.OptionError, match="threads"):
        bench_data.BenchSettings(threads=0)


def test_workers_measure_the_export_pool_and_a_dataloader(example):
    pytest.importorskip("torch")
    report, table = run_bench(example.frames_path, *QUICK, "--random", "0", "--workers", "2", "--samples", "16")
    scaling = report["scaling"]
    assert scaling["workers"] == 2
    assert [r["name"] for r in scaling["rows"]] == ["export:1", "export:2", "dataloader:0", "dataloader:2"]
    for row in scaling["rows"]:
        assert_measured(row)
        assert row["items"] == 16
    assert scaling["rows"][0]["ratio_to_one"] == 1.0 and scaling["rows"][2]["ratio_to_one"] == 1.0
    start_up = any("starting the worker processes" in note for note in report["notes"])
    slower = any(scaling["rows"][k + 1]["rate"] < scaling["rows"][k]["rate"] for k in (0, 2))
    assert start_up == slower  # a pool slower than one process is explained
    assert "export (label maps, png), 2 workers" in table and "DataLoader, batch 8, 2 workers" in table


def test_progress_steps_add_up_to_the_announced_total(example):
    """The CLI's progress bar (tqdm on stderr) gets start(total) once, then one step per run:
    it ends exactly full."""
    totals, steps = [], []
    settings = bench_data.BenchSettings(samples=6, random=3, repeat=1, min_seconds=0.0)
    report = bench_data.run_bench(example.frames_path, settings, start=totals.append, progress=steps.append)
    assert len(totals) == 1 and len(steps) == totals[0]
    assert steps.count("decode") == 2 and steps.count("random_one_by_one") == 2  # warm-up and timed run
    assert report.samples == 6


def test_timing_is_interleaved_with_median_and_spread():
    calls: list[str] = []

    def stage(name: str, items: int):
        def run() -> int:
            calls.append(name)
            return items
        return run

    timings = bench.measure({"a": stage("a", 10), "b": stage("b", 5)}, repeat=3, warmup=True)
    assert calls == ["a", "b"] * 4  # a warm-up round, then rounds of every stage in turn
    a = timings["a"]
    assert len(a.runs) == 3 and a.items == 10
    a.runs = [(10, 1.0), (10, 0.5), (10, 2.0)]
    assert a.rate == 10.0 and a.spread == (5.0, 20.0) and a.ms_per_item == 100.0
    calls.clear()
    timings = bench.measure({"a": stage("a", 1)}, repeat=2, warmup=True, min_seconds=10.0)
    assert len(calls) == 1 + 2 * bench.MAX_LOOPS and timings["a"].items == bench.MAX_LOOPS

    def slow() -> int:
        calls.append("slow")
        time.sleep(0.02)
        return 1

    calls.clear()
    ticks: list[str] = []
    timings = bench.measure({"slow": slow, "a": stage("a", 1)}, repeat=3, warmup=True, max_seconds=0.01,
                            progress=ticks.append)
    assert calls == ["slow", "a", "a", "a", "a"]  # the slow stage's warm-up run is its one timed run
    assert len(timings["slow"].runs) == 1 and len(timings["a"].runs) == 3
    assert len(ticks) == 8  # every planned run still counts as a step of the progress bar


# ------------------------------------------------------------------ remote media (moto's S3 server on loopback)

def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_remote_media_on_s3(example, tmp_path):
    s3fs = pytest.importorskip("s3fs")
    moto_server = pytest.importorskip("moto.server")
    port = free_port()
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        endpoint = f"http://127.0.0.1:{port}"
        env = {"FSSPEC_S3_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "testing",
               "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
               "AWS_EC2_METADATA_DISABLED": "true", "AWS_CONFIG_FILE": os.devnull,
               "AWS_SHARED_CREDENTIALS_FILE": os.devnull}
        fs = s3fs.S3FileSystem(endpoint_url=endpoint, key="testing", secret="testing", skip_instance_cache=True)
        fs.mkdir("bench")
        for name in ("mask.mp4", "source.mp4", "still.png", "still_mask.png"):
            fs.put_file(str(example.root / name), f"bench/data/{name}")
        lines = []
        for frame in maskdec.load_frames(example.frames_path):
            d = frame.to_dict()
            for source in d["sources"]:
                source["uri"] = f"s3://bench/data/{source['uri']}"
                for mask in source["masks"]:
                    mask["uri"] = f"s3://bench/data/{mask['uri']}"
            lines.append(json.dumps(d))
        frames = tmp_path / "frames.jsonl"
        frames.write_text("\n".join(lines) + "\n")
        out = tmp_path / "report.json"
        result = subprocess.run([sys.executable, "-m", "maskdec.cli", "bench", str(frames), *QUICK, "--random", "4",
                                 "--json", str(out)], capture_output=True, text=True, timeout=300,
                                env={**os.environ, **env})
        assert result.returncode == 0, result.stderr
        report = json.loads(out.read_text())
        assert report["fetch"]["files"] == 4 and report["fetch"]["bytes"] == sum(
            (example.root / n).stat().st_size for n in ("mask.mp4", "source.mp4", "still.png", "still_mask.png"))
        assert sorted(f["uri"] for f in report["files"]) == sorted(
            f"s3://bench/data/{n}" for n in ("mask.mp4", "source.mp4", "still.png", "still_mask.png"))
        for row in report["stages"]:
            if row["name"] != "baseline_torchcodec":
                assert_measured(row)
        assert report["checks"][0]["equal"] is True
        assert "4 files" in result.stdout and "fetched once" in result.stdout
        assert "s3://bench/data/mask.mp4" in result.stdout
    finally:
        server.stop()
