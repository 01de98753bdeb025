"""Hostile input: every bad case raises a MaskdecError subclass whose message names its
culprit, or is listed in failures.jsonl by `maskdec export` with no partial output; no
crash, no hang, no wrong pixels returned quietly.

Each case runs in a fresh interpreter killed after LIMIT seconds, so a hang fails its
test and a segfault shows as a dead interpreter. Cases covered elsewhere are not
repeated here: docs/format.md, "What is rejected" in test_frames.py, truncated, zero-byte and non-media
files in test_media.py, a truncated video and a missing file in an export in
test_export.py.
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

import maskdec
from maskdec.example import CLASS_NAMES, PALETTE, colour_mask, scene_classes, scene_image
from maskdec.media.writer import write_video

from conftest import index_colour, index_rois, solid_frames

LIMIT = 60  # seconds any one case may run
H, W = 48, 64
N = 30  # frames of the generated clips, 30 fps
STAMPS = [int(i * 1000 / 30) for i in range(N)]

PRELUDE = textwrap.dedent("""
    import json, os, sys
    import numpy as np
    import maskdec

    def outcome(fn):
        try:
            value = fn()
        except BaseException as exc:
            return {"raised": type(exc).__name__, "mro": [c.__name__ for c in type(exc).__mro__],
                    "message": str(exc)}
        return {"value": value}
""")


def bounded(code: str, *args, env: dict | None = None, timeout: float = LIMIT) -> dict:
    """Run PRELUDE + code in a fresh interpreter (argv: args), killed after `timeout` s;
    the JSON object it printed last."""
    try:
        proc = subprocess.run([sys.executable, "-c", PRELUDE + textwrap.dedent(code), *map(str, args)],
                              capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})})
    except subprocess.TimeoutExpired:
        pytest.fail(f"hang: the case was still running after {timeout} s")
    assert proc.returncode == 0, f"interpreter died ({proc.returncode}): {proc.stderr[-3000:]}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


def assert_raised(result: dict, error: str, *culprits: str) -> str:
    """The case raised `error`, a MaskdecError, whose message names every culprit."""
    assert "raised" in result, f"no error: {str(result)[:300]}"
    assert "MaskdecError" in result["mro"], result
    assert result["raised"] == error, result
    for culprit in culprits:
        assert culprit in result["message"], (culprit, result["message"])
    return result["message"]


def run_cli(*args, env: dict | None = None) -> subprocess.CompletedProcess:
    try:
        return subprocess.run([sys.executable, "-m", "maskdec.cli", *map(str, args)], capture_output=True,
                              text=True, timeout=LIMIT * 2, env={**os.environ, **(env or {})})
    except subprocess.TimeoutExpired:
        pytest.fail(f"hang: maskdec {args[0]} was still running after {LIMIT * 2} s")


def files_under(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()) if root.exists() else []


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def rois(mask_id: str = "m") -> list[dict]:
    return [{"label": [name], "mask": {"id": mask_id, "value": list(colour)}} for name, colour in PALETTE.items()]


def frame(image, mask, ts: int | None = None, **source_keys) -> dict:
    source = {"id": "cam", "uri": os.fspath(image), "masks": [{"id": "m", "uri": os.fspath(mask)}], **source_keys}
    if ts is not None:
        source["timestamp"] = ts
    return {"sources": [source], "rois": rois()}


def truth(classes: np.ndarray) -> np.ndarray:
    """The label map of a scene under the derived table (sorted class names)."""
    ids = {name: i for i, name in enumerate(sorted(CLASS_NAMES))}
    return np.array([ids[name] for name in CLASS_NAMES], np.uint8)[classes]


def corrupt_packet(path: Path, out: Path, seed: int) -> int:
    """Copy `path` to `out` with random bytes over part of one packet after the first
    (chosen by `seed`); returns that packet's number in decode order."""
    with av.open(str(path)) as container:
        packets = [(p.pos, p.size) for p in container.demux(video=0) if p.size]
    rng = np.random.default_rng(seed)
    k = int(rng.integers(1, len(packets)))
    pos, size = packets[k]
    length = max(1, min(64, size // 2))
    data = bytearray(path.read_bytes())
    data[pos + size // 4: pos + size // 4 + length] = rng.integers(0, 256, length, dtype=np.uint8).tobytes()
    out.write_bytes(bytes(data))
    return k


def presented_at(path: Path, k: int) -> int:
    """The presentation position of packet k (decode order) of a clip starting at pts 0."""
    with av.open(str(path)) as container:
        pts = [p.pts for p in container.demux(video=0) if p.size]
    return sorted(pts).index(pts[k])


# ----------------------------------------------------------------- media made here

@pytest.fixture(scope="module")
def media(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("hostile")
    classes = scene_classes(3, H, W, still=True)
    cv2.imwrite(str(root / "image.png"), cv2.cvtColor(scene_image(3, classes), cv2.COLOR_RGB2BGR))
    cv2.imwrite(str(root / "mask.png"), cv2.cvtColor(colour_mask(classes), cv2.COLOR_RGB2BGR))
    paths = {"image": root / "image.png", "mask": root / "mask.png"}
    # H.264 mask clips in GOPs of 10 frames: lossy yuv420p, and lossless RGB
    for name, codec, pix_fmt, options in (("h264", "libx264", "yuv420p", {"crf": "23", "g": "10"}),
                                          ("h264rgb", "libx264rgb", "rgb24", {"qp": "0", "g": "10"})):
        paths[name] = root / f"{name}.mp4"
        write_video(paths[name], (colour_mask(scene_classes(i, H, W)) for i in range(N)), fps=30, codec=codec,
                    pix_fmt=pix_fmt, options=options)
    paths["ffv1"] = root / "ffv1.mkv"
    write_video(paths["ffv1"], (colour_mask(scene_classes(i, H, W)) for i in range(N)), fps=30, codec="ffv1",
                pix_fmt="bgr0")
    # a PNG whose signature is wrong: 'PNX' instead of 'PNG'
    data = bytearray(paths["mask"].read_bytes())
    data[3] = ord("X")
    paths["bad_magic"] = root / "bad_magic.png"
    paths["bad_magic"].write_bytes(bytes(data))
    # content types that lie: a PNG named .mp4, a Matroska video named .png
    paths["png_as_mp4"] = root / "still_mask.mp4"
    paths["png_as_mp4"].write_bytes(paths["mask"].read_bytes())
    paths["mkv_as_png"] = root / "index_clip.png"
    write_video(root / "index_clip.mkv", solid_frames(N, H, W), fps=30, codec="ffv1", pix_fmt="bgr0")
    (root / "index_clip.mkv").rename(paths["mkv_as_png"])
    paths["root"] = root
    return paths


def clip_frames(clip: Path) -> list[dict]:
    """One frame per frame of a scene clip: the clip is both the source and the mask."""
    return [frame(clip, clip, ts) for ts in STAMPS]


# ----------------------------------------------------------------- frames files

SAMPLES = """
path, kwargs = sys.argv[1], json.loads(sys.argv[2])
def run():
    it = maskdec.iter_samples(path, **kwargs)
    return {"labels": it.labels.to_dict(), "maps": [s.label_map.tolist() for s in it]}
print(json.dumps(outcome(run)))
"""

LOAD = """
path, errors = sys.argv[1], sys.argv[2]
def run():
    if errors == "raise":
        return [f.to_dict() for f in maskdec.load_frames(path)]
    frames, bad = maskdec.frames.load_frames(path, errors="collect")
    return {"frames": [f.to_dict() for f in frames],
            "errors": [[type(e).__name__, str(e), isinstance(e, maskdec.MaskdecError)] for e in bad]}
print(json.dumps(outcome(run)))
"""


def write_frames(tmp_path: Path, frames, name: str = "frames.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(frames))
    return path


DEEP = "[" * 200_000 + "]" * 200_000
MALFORMED = {  # file name: (its text, None for bytes that are not UTF-8; what the error must name)
    "deep.json": (DEEP, "deep.json"),
    "deep.jsonl": ('{"sources": [{"id": "a", "uri": "a.png"}]}\n' + DEEP + "\n", "deep.jsonl line 2"),
    "nan.json": ('{"sources": [{"id": "a", "uri": "a.png"}], "timestamp": NaN}', "nan.json: $.timestamp"),
    "inf.json": ('{"sources": [{"id": "a", "uri": "a.png", "timestamp": 1e400}]}', "$.sources[0].timestamp"),
    "huge.json": ('{"sources": [{"id": "a", "uri": "a.png"}], "rois": [{"label": ["x"], "mask": '
                  '{"id": "m", "value": [1, 2, 100000000000000000000000000000]}}]}', "$.rois[0].mask.value"),
    "binary.json": (None, "binary.json"),
}


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_malformed_frames_files_name_the_file(tmp_path, name):
    text, culprit = MALFORMED[name]
    path = tmp_path / name
    if text is None:
        path.write_bytes(bytes(range(256)) * 4)
    else:
        path.write_text(text)
    assert_raised(bounded(LOAD, path, "raise"), "FrameFormatError", culprit)


def test_jsonl_with_bad_lines_among_good_ones(tmp_path, media):
    good = [frame(media["image"], media["mask"]) | {"id": f"good{i}"} for i in range(3)]
    lines = [json.dumps(good[0]), json.dumps(good[1]), '{"sources": [{"id": "cam", "uri": ',  # line 3: cut short
             "", json.dumps(good[2]), json.dumps({"id": "bad", "sources": []})]  # line 6: no sources
    path = tmp_path / "frames.jsonl"
    path.write_text("\n".join(lines) + "\n")
    # the default still stops at the first bad line, naming it
    assert_raised(bounded(LOAD, path, "raise"), "FrameFormatError", "frames.jsonl line 3", "invalid JSON")
    # opted in: the good frames load, in order, and each bad line is reported with its number
    result = bounded(LOAD, path, "collect")["value"]
    assert [f["id"] for f in result["frames"]] == ["good0", "good1", "good2"]
    assert [(kind, ok) for kind, _, ok in result["errors"]] == [("FrameFormatError", True)] * 2
    (_, first, _), (_, second, _) = result["errors"]
    assert first.startswith("frames.jsonl line 3") and "invalid JSON" in first
    assert second.startswith("frames.jsonl line 6: $.sources") and "non-empty" in second
    # and what loaded decodes like the same frames written alone
    frames, errors = maskdec.frames.load_frames(path, errors="collect")
    alone = write_frames(tmp_path, good, "good.json")
    want = bounded(SAMPLES, alone, "{}")["value"]["maps"]
    assert [s.label_map.tolist() for s in maskdec.iter_samples(frames)] == want
    np.testing.assert_array_equal(np.array(want[0]), truth(scene_classes(3, H, W, still=True)))


def test_a_frames_file_export_cannot_read_leaves_no_output(tmp_path, media):
    lines = [json.dumps(frame(media["image"], media["mask"])),
             json.dumps({"sources": [{"id": "cam", "uri": "x.png"}], "rois": [{"label": ["a"], "sources": ["nope"]}]})]
    path = tmp_path / "frames.jsonl"
    path.write_text("\n".join(lines) + "\n")
    out = tmp_path / "out"
    result = run_cli("export", path, "--out", out, "--workers", "1")
    assert result.returncode == 2, result.stderr
    assert "frames.jsonl line 2: $.rois[0].sources[0]" in result.stderr and "nope" in result.stderr
    assert files_under(out) == []


# ----------------------------------------------------------------- corrupt bytes in the middle of a video

DATASET = """
path, indices = sys.argv[1], json.loads(sys.argv[2])
ds = maskdec.MaskDataset(path, images=False)
print(json.dumps([outcome(lambda: ds[i].label_map.tolist()) for i in indices]))
"""


@pytest.mark.parametrize("clip", ["h264", "h264rgb"])
@pytest.mark.parametrize("seed", [0, 1, 11])
def test_corrupt_bytes_in_a_video_raise_and_never_give_wrong_pixels(media, tmp_path, clip, seed):
    bad = tmp_path / f"corrupt_{clip}.mp4"
    k = corrupt_packet(media[clip], bad, seed)
    reference = [s.label_map for s in maskdec.iter_samples(clip_frames(media[clip]), images=False)]
    path = write_frames(tmp_path, clip_frames(bad))
    results = bounded(DATASET, path, json.dumps(list(range(N))))
    failed = []
    for i, (result, want) in enumerate(zip(results, reference)):
        if "raised" in result:
            assert_raised(result, "MediaDecodeError", str(bad))
            failed.append(i)
        else:  # anything that comes back is what the undamaged file holds
            np.testing.assert_array_equal(np.array(result["value"]), want, err_msg=f"frame {i} (packet {k} hit)")
    assert failed, f"the damage to packet {k} went unnoticed"
    # random access recovers at the next keyframe: whole GOPs (10 frames) before and after the damage decode
    gops = {i // 10 for i in failed}
    assert len(gops) == 1, failed
    assert len(failed) < N - 10


def test_export_of_a_corrupt_video_lists_the_damaged_samples(media, tmp_path):
    bad = tmp_path / "corrupt.mp4"
    corrupt_packet(media["h264"], bad, 1)
    reference = [s.label_map for s in maskdec.iter_samples(clip_frames(media["h264"]), images=False)]
    path = write_frames(tmp_path, clip_frames(bad))
    out = tmp_path / "out"
    result = run_cli("export", path, "--out", out, "--workers", "1", "--no-images")
    assert result.returncode == 1, result.stderr
    failures = read_jsonl(out / "failures.jsonl")
    manifest = read_jsonl(out / "manifest.jsonl")
    failed = [f["frame_index"] for f in failures]
    assert failed and all(f["error_type"] == "MediaDecodeError" and str(bad) in f["error"] for f in failures)
    assert sorted(failed + [e["frame_index"] for e in manifest]) == list(range(N))
    for entry in manifest:
        got = cv2.imread(str(out / entry["label_map"]), cv2.IMREAD_UNCHANGED)
        np.testing.assert_array_equal(got, reference[entry["frame_index"]], err_msg=entry["label_map"])
    assert files_under(out / "label_maps") == sorted(Path(e["label_map"]).name for e in manifest)
    assert not [f for f in files_under(out) if ".tmp" in f]


@pytest.mark.parametrize("seed", [3, 5, 8])
def test_corrupt_bytes_in_an_ffv1_video_raise(media, tmp_path, seed):
    # FFmpeg's FFV1 decoder conceals a slice whose CRC fails with the previous frame's pixels and
    # flags nothing, even with err_detect explode: the reader checks the slice CRCs itself.
    bad = tmp_path / "corrupt.mkv"
    k = corrupt_packet(media["ffv1"], bad, seed)
    with av.open(str(bad)) as container:
        packets = [(p.pts, p.is_keyframe) for p in container.demux(video=0) if p.size]
    keys = [i for i, (_, key) in enumerate(packets) if key]
    reference = [s.label_map for s in maskdec.iter_samples(clip_frames(media["ffv1"]), images=False)]
    results = bounded(DATASET, write_frames(tmp_path, clip_frames(bad)), json.dumps(list(range(N))))
    failed = []
    for i, (result, want) in enumerate(zip(results, reference)):
        if "raised" in result:  # naming the file and the damaged frame
            assert_raised(result, "MediaDecodeError", str(bad), "CRC", f"frame pts {packets[k][0]})")
            failed.append(i)
        else:
            np.testing.assert_array_equal(np.array(result["value"]), want, err_msg=f"frame {i}")
    # FFV1 frames between keyframes share their coder's state: the damaged frame and the rest of its GOP fail
    assert len(keys) > 1 and failed == list(range(k, min([key for key in keys if key > k], default=N)))


# ----------------------------------------------------------------- PNG signature, lying content types

@pytest.mark.parametrize("role", ["mask", "image"])
def test_png_with_a_wrong_signature(media, tmp_path, role):
    image, mask = (media["image"], media["bad_magic"]) if role == "mask" else (media["bad_magic"], media["mask"])
    result = bounded(SAMPLES, write_frames(tmp_path, [frame(image, mask)]), "{}")
    assert_raised(result, "MediaDecodeError", str(media["bad_magic"]))


def test_a_png_named_mp4_decodes_as_the_image_it_is(media, tmp_path):
    f = frame(media["image"], media["png_as_mp4"], ts=500)
    f["sources"][0]["masks"][0]["content_type"] = "video/mp4"
    result = bounded(SAMPLES, write_frames(tmp_path, [f]), "{}")
    (label_map,) = result["value"]["maps"]
    np.testing.assert_array_equal(np.array(label_map), truth(scene_classes(3, H, W, still=True)))


def test_a_video_named_png_decodes_as_the_video_it_is(media, tmp_path):
    frames = [{"sources": [{"id": "cam", "uri": str(media["mkv_as_png"]), "content_type": "image/png",
                            "timestamp": STAMPS[i], "masks": [{"id": "m", "uri": str(media["mkv_as_png"]),
                                                               "content_type": "image/png"}]}],
               "rois": index_rois(N)} for i in (0, 7, 29)]
    result = bounded(SAMPLES, write_frames(tmp_path, frames), json.dumps({"images": False}))
    names = {v: k for k, v in result["value"]["labels"].items()}
    shown = [{names[v] for row in m for v in row} for m in result["value"]["maps"]]
    assert shown == [{"f00"}, {"f07"}, {"f29"}]


def test_a_video_stream_no_decoder_knows(media, tmp_path):
    # found by fuzz/fuzz_maskdec.py: PyAV gives such a stream no codec context at all
    unknown = tmp_path / "unknown_codec.mkv"
    data = media["ffv1"].read_bytes()
    assert data.count(b"V_FFV1") == 1
    unknown.write_bytes(data.replace(b"V_FFV1", b"V_ZZZ1"))
    result = bounded(SAMPLES, write_frames(tmp_path, [frame(unknown, unknown, 0)]), "{}")
    assert_raised(result, "MediaDecodeError", str(unknown), "no decoder")


# ----------------------------------------------------------------- labels: 16-bit ids, 16-bit colour indices

def many_rois(n: int, *, same_label: bool = False) -> list[dict]:
    return [{"label": ["car" if same_label else f"c{i:05d}"],
             "mask": {"id": "m", "value": [i >> 16, (i >> 8) & 255, i & 255]}} for i in range(n)]


def test_more_labels_than_16_bit_ids_hold(media, tmp_path):
    f = frame(media["image"], media["mask"])
    f["rois"] = many_rois(65536)
    path = write_frames(tmp_path, [f])
    assert_raised(bounded(SAMPLES, path, "{}"), "LabelError", "65536 classes", "16-bit")
    out = tmp_path / "out"
    result = run_cli("export", path, "--out", out, "--workers", "1")
    assert result.returncode == 2 and "65536 classes" in result.stderr, result.stderr
    assert files_under(out) == []
    # an explicit enumeration with an id past 16 bits names its label
    labels = tmp_path / "labels.json"
    labels.write_text(json.dumps({"road": 1, "car": 70000}))
    result = run_cli("export", write_frames(tmp_path, [frame(media["image"], media["mask"])], "one.json"),
                     "--labels", labels, "--out", out, "--workers", "1")
    assert result.returncode == 2 and "'car'" in result.stderr and "70000" in result.stderr, result.stderr
    assert files_under(out) == []


def test_more_colours_than_16_bit_palette_indices_hold(media, tmp_path):
    f = frame(media["image"], media["mask"])
    f["rois"] = many_rois(70000, same_label=True)
    path = write_frames(tmp_path, [f])
    for options in ({"images": False}, {"images": False, "instances": True}):
        assert_raised(bounded(SAMPLES, path, json.dumps(options)), "LabelError", str(media["mask"]),
                      "70000 distinct colours")


# ----------------------------------------------------------------- timestamps out of range

@pytest.mark.parametrize("ts, unit", [(5000, "ms"), (10 ** 30, "ms"), (30, "index"), (10 ** 30, "index")])
def test_timestamps_out_of_range_name_file_timestamp_and_range(media, tmp_path, ts, unit):
    frames = [frame(media["h264"], media["h264"], 0), frame(media["h264"], media["h264"], ts)]
    result = bounded(SAMPLES, write_frames(tmp_path, frames), json.dumps({"timestamp_unit": unit}))
    assert_raised(result, "TimestampRangeError", str(media["h264"]), str(ts))


# ----------------------------------------------------------------- one export over the whole corpus

def test_export_lists_each_bad_sample_and_writes_the_rest_whole(media, tmp_path):
    still = frame(media["image"], media["mask"])
    conflict = frame(media["image"], media["mask"])
    conflict["rois"].append({"label": ["intruder"], "mask": {"id": "m", "value": list(PALETTE["road"])}})
    wrong_size = frame(media["image"], media["mask"], width=W + 1)
    corrupt = tmp_path / "corrupt.mp4"
    damaged = presented_at(media["h264"], corrupt_packet(media["h264"], corrupt, 11))  # a frame of the first GOP
    frames = [
        still,                                                   # 0 good
        frame(media["image"], media["bad_magic"]),                # 1 mask with a wrong PNG signature
        frame(media["image"], media["png_as_mp4"], ts=500),       # 2 good: the bytes win over the name
        wrong_size,                                               # 3 declared width disagrees
        conflict,                                                 # 4 road's colour is also 'intruder'
        frame(media["h264"], media["h264"], 5000),                # 5 past the end of the clip
        frame(media["h264"], media["h264"], 10 ** 30),            # 6 far past it
        frame(media["h264"], media["h264"], STAMPS[25]),          # 7 good
        frame(corrupt, corrupt, STAMPS[damaged]),                 # 8 the damaged frame
        frame(media["bad_magic"], media["mask"]),                 # 9 image with a wrong PNG signature
    ]
    expected = {1: ("MediaDecodeError", str(media["bad_magic"])), 3: ("SizeMismatchError", "frames[3].sources[0]"),
                4: ("LabelError", "intruder"), 5: ("TimestampRangeError", "5000"),
                6: ("TimestampRangeError", str(10 ** 30)), 8: ("MediaDecodeError", str(corrupt)),
                9: ("MediaDecodeError", str(media["bad_magic"]))}
    path = write_frames(tmp_path, frames)
    out = tmp_path / "out"
    result = run_cli("export", path, "--out", out, "--workers", "2")
    assert result.returncode == 1, result.stderr
    assert f"{len(expected)} failed" in result.stderr
    failures = read_jsonl(out / "failures.jsonl")
    assert {f["frame_index"]: f["error_type"] for f in failures} == {i: e for i, (e, _) in expected.items()}
    for f in failures:
        assert expected[f["frame_index"]][1] in f["error"], f
    manifest = read_jsonl(out / "manifest.jsonl")
    assert [e["frame_index"] for e in manifest] == [0, 2, 7]
    labels = json.loads((out / "labels.json").read_text())
    reference = maskdec.iter_samples([frames[0], frames[2], frames[7]], labels=labels)
    for entry, sample in zip(manifest, reference):
        got = cv2.imread(str(out / entry["label_map"]), cv2.IMREAD_UNCHANGED)
        np.testing.assert_array_equal(got, sample.label_map, err_msg=entry["label_map"])
        image = cv2.cvtColor(cv2.imread(str(out / entry["image"]), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
        np.testing.assert_array_equal(image, sample.image, err_msg=entry["image"])
    # no partial outputs: exactly the manifest's files, no temporary leftovers
    written = set(files_under(out / "label_maps")) | set(files_under(out / "images"))
    assert written == {Path(e[k]).name for e in manifest for k in ("label_map", "image")}
    assert not [f for f in files_under(out) if ".tmp" in f]


# ----------------------------------------------------------------- unreachable remote URIs

class SilentServer:
    """A TCP server on loopback that accepts connections and never answers; counts them."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.accepted: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except (socket.timeout, OSError):
                continue
            self.accepted.append(conn)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        for conn in self.accepted:
            conn.close()
        self.sock.close()


@pytest.fixture
def silent():
    server = SilentServer()
    yield server
    server.close()


def closed_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def remote_env(scheme: str, port: int) -> tuple[str, dict]:
    """A URI on 127.0.0.1:port and the environment that sets fsspec's own short timeouts and retries."""
    if scheme == "s3":
        s3 = pytest.importorskip("s3fs")
        assert s3
        config = {"endpoint_url": f"http://127.0.0.1:{port}", "key": "testing", "secret": "testing",
                  "config_kwargs": {"connect_timeout": 1, "read_timeout": 0.2, "retries": {"max_attempts": 1}}}
        return "s3://bucket/data/mask.mp4", {
            "FSSPEC_S3": json.dumps(config), "AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull}
    pytest.importorskip("aiohttp")
    return f"http://127.0.0.1:{port}/data/mask.mp4", {"FSSPEC_HTTP": json.dumps({"timeout": 0.5})}


OPEN = """
from maskdec.media.reader import MediaReader
def run():
    with MediaReader(sys.argv[1]) as reader:
        return reader.codec
print(json.dumps(outcome(run)))
"""


@pytest.mark.parametrize("scheme", ["s3", "http"])
def test_unreachable_remote_uri_refused(scheme):
    uri, env = remote_env(scheme, closed_port())
    message = assert_raised(bounded(OPEN, uri, env=env), "MediaDecodeError", uri)
    assert "connect" in message.lower(), message


@pytest.mark.parametrize("scheme", ["s3", "http"])
def test_unreachable_remote_uri_silent_times_out_by_fsspec_settings(scheme, silent):
    # Without the short timeouts of the environment the defaults (minutes) would outlast LIMIT.
    uri, env = remote_env(scheme, silent.port)
    message = assert_raised(bounded(OPEN, uri, env=env), "MediaDecodeError", uri)
    assert "timeout" in message.lower(), message
    assert silent.accepted, "the request never reached the server"


def test_export_with_a_silent_remote_lists_the_sample(media, tmp_path, silent):
    uri, env = remote_env("http", silent.port)
    frames = [frame(media["image"], media["mask"]), frame(uri, uri, 0)]
    out = tmp_path / "out"
    result = run_cli("export", write_frames(tmp_path, frames), "--out", out, "--workers", "1", env=env)
    assert result.returncode == 1, result.stderr
    (failure,) = read_jsonl(out / "failures.jsonl")
    assert failure["frame_index"] == 1 and failure["uri"] == uri and failure["error_type"] == "MediaDecodeError"
    assert [e["frame_index"] for e in read_jsonl(out / "manifest.jsonl")] == [0]
    assert not [f for f in files_under(out) if ".tmp" in f]
