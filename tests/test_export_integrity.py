"""Nothing lost, nothing mixed up (issue 15): output names that never collide and stay
within file-system limits, an --out that maskdec owns (marked, refused when foreign,
no links followed, --overwrite removes only its own files), one export at a time
per --out, a resume that notices changed media, and dead pool workers reported,
not raised. Real exports, real processes, real signals; media made here.
"""
from __future__ import annotations

import http.server
import json
import os
import re
import signal
import subprocess
import sys
import tarfile
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

import maskdec
from maskdec.export import export
from maskdec.export_lock import LOCK_NAME
from maskdec.export_store import OutputError
from test_export import make_dataset, read_manifest, temp_files, tree

# ------------------------------------------------------------------ small PNG datasets

COLOURS = {"x": (200, 40, 40), "y": (40, 200, 40), "z": (40, 40, 200)}


def write_png(path: Path, rgb: np.ndarray) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    return str(path)


def solid(colour, h: int = 12, w: int = 16) -> np.ndarray:
    return np.full((h, w, 3), colour, np.uint8)


def two_sources_frame(root: Path, first: tuple[str, str], second: tuple[str, str], *,
                      shared_image: bool = False) -> dict:
    """One frame with two sources, each (source id, mask id) with its own image (or one
    image file for both: then they are one work unit) and a mask painted all in its own
    colour (x for the first, y for the second)."""
    sources, rois = [], []
    for n, ((sid, mid), label) in enumerate(zip((first, second), ("x", "y"))):
        image = write_png(root / f"image{0 if shared_image else n}.png", solid((10 * n, 100, 100 + 50 * n)))
        mask = write_png(root / f"mask{n}.png", solid(COLOURS[label]))
        sources.append({"id": sid, "uri": image, "masks": [{"id": mid, "uri": mask}]})
        rois.append({"id": f"roi-{n}", "label": [label], "sources": [sid], "mask": {"id": mid, "value": list(COLOURS[label])}})
    return {"sources": sources, "rois": rois}


def write_frames(path: Path, frames: list[dict]) -> Path:
    path.write_text("".join(json.dumps(f) + "\n" for f in frames))
    return path


def run_cli(*args, timeout: float = 300, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "maskdec.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, **kwargs)


@pytest.fixture()
def colliding(tmp_path) -> Path:
    """Source `a_b` + mask `c` and source `a` + mask `b_c` in one frame: joined with '_'
    both read `a_b_c`."""
    return write_frames(tmp_path / "frames.jsonl", [two_sources_frame(tmp_path / "media", ("a_b", "c"), ("a", "b_c"))])


def label_of(label_map: np.ndarray, labels: dict) -> str:
    values = np.unique(label_map)
    assert values.size == 1
    return {v: k for k, v in labels.items()}[int(values[0])]


# ------------------------------------------------------------------ 1. collision-free names

@pytest.mark.parametrize("fmt", ["png", "npz"])
def test_ids_that_join_alike_get_their_own_files(colliding, tmp_path, fmt):
    out = tmp_path / "out"
    summary = export(colliding, out, format=fmt, per_roi=True, workers=1)
    assert (summary.samples, summary.failed) == (2, 0)
    manifest = read_manifest(out)
    assert [(e["source_id"], e["mask_id"]) for e in manifest] == [("a_b", "c"), ("a", "b_c")]
    paths = [e["label_map"] for e in manifest]
    assert len(set(paths)) == 2, paths
    images = [e["image"] for e in manifest]
    assert len(set(images)) == 2, images
    rois = [r["mask"] for e in manifest for r in e["rois"]]
    if fmt == "png":
        assert len(set(rois)) == len(rois) == 2, rois  # one ROI per sample (its source's)
    for entry, label in zip(manifest, ("x", "y")):
        if fmt == "png":
            label_map = cv2.imread(str(out / entry["label_map"]), cv2.IMREAD_UNCHANGED)
            own_roi = next(r for r in entry["rois"] if r["label"] == label)
            roi_mask = cv2.imread(str(out / own_roi["mask"]), cv2.IMREAD_UNCHANGED)
        else:
            with np.load(out / entry["label_map"]) as arrays:
                label_map = arrays["label_map"]
                roi_mask = arrays["roi_masks"][[r["label"] for r in entry["rois"]].index(label)]
        assert label_of(label_map, summary.labels) == label
        assert roi_mask.all()  # the sample's own ROI covers its whole mask
    assert len(list(out.rglob("*.png" if fmt == "png" else "*.npz"))) == (2 + 2 + 2 if fmt == "png" else 2)


def test_webdataset_members_are_unique_per_sample(tmp_path):
    """The two samples share their image file, so they land in one shard."""
    colliding = write_frames(tmp_path / "frames.jsonl", [
        two_sources_frame(tmp_path / "media", ("a_b", "c"), ("a", "b_c"), shared_image=True)])
    out = tmp_path / "out"
    summary = export(colliding, out, format="webdataset", per_roi=True, workers=1)
    assert (summary.samples, summary.failed) == (2, 0)
    (shard,) = (out / "shards").iterdir()
    with tarfile.open(shard) as tar:
        names = tar.getnames()
        members = {n: tar.extractfile(n).read() for n in names}
    assert len(names) == len(set(names)) == 2 * (3 + 1)  # label, image, json and the ROI mask of each
    keys = {n.split(".", 1)[0] for n in names}
    assert len(keys) == 2
    for entry, label in zip(read_manifest(out), ("x", "y")):
        label_map = cv2.imdecode(np.frombuffer(members[entry["label_map"]], np.uint8), cv2.IMREAD_UNCHANGED)
        assert label_of(label_map, summary.labels) == label
        key = entry["label_map"].split(".", 1)[0]
        meta = json.loads(members[f"{key}.json"])
        assert (meta["source_id"], meta["mask_id"]) == (entry["source_id"], entry["mask_id"])


def test_a_plan_whose_names_still_collide_is_refused(tmp_path, monkeypatch):
    """Ids `a b` and `a-b` read alike; with the digest forced equal (as if it collided) the
    plan maps two samples to one name: refused before anything is written."""
    import maskdec.export_names as names

    frames = write_frames(tmp_path / "frames.jsonl", [two_sources_frame(tmp_path / "media", ("a b", "m"),
                                                                         ("a-b", "m"))])
    ok = export(frames, tmp_path / "fine", workers=1)
    assert ok.samples == 2 and len({e["label_map"] for e in read_manifest(tmp_path / "fine")}) == 2
    monkeypatch.setattr(names, "digest", lambda *identity: "same")
    with pytest.raises(names.NameCollisionError, match="one output name") as info:
        export(frames, tmp_path / "out", workers=1)
    assert "'a b'" in str(info.value) and "'a-b'" in str(info.value)
    assert not (tmp_path / "out").exists()
    with pytest.raises(names.NameCollisionError):  # also an identity given twice
        names.check_unique_keys([(0, "s", "m"), (0, "s", "m")])


def test_names_are_one_per_identity_and_case_insensitive_safe():
    from maskdec.export_names import check_unique_keys, image_key, sample_key

    ids = ["a", "A", "a_b", "b_c", "a-b", "a b", "", "_", "ä", "a\x00", "\ud800", "x" * 5000, "x" * 5001]
    keys = {(f, s, m): sample_key(f, s, m) for f in (0, 1) for s in ids for m in ids}
    assert len({k.lower() for k in keys.values()}) == len(keys)
    check_unique_keys(keys)
    for key in keys.values():
        assert re.fullmatch(r"\d{6}_[A-Za-z0-9-]*_[A-Za-z0-9-]*_[a-z2-7]{16}", key) and len(key) < 120
    assert len({image_key(0, s).lower() for s in ids}) == len(ids)


# ------------------------------------------------------------------ 2. long ids

def test_ten_thousand_character_ids_export_with_bounded_names(tmp_path):
    long_source, long_mask = "s" * 10_000, "m\u00e9" * 5_000  # 10,000 characters each (15,000 bytes)
    frame = two_sources_frame(tmp_path / "media", (long_source, long_mask), ("cam", "seg"))
    frame["rois"][0]["id"] = "r" * 10_000
    frames = write_frames(tmp_path / "frames.jsonl", [frame])
    for fmt in ("png", "webdataset"):
        out = tmp_path / fmt
        summary = export(frames, out, format=fmt, per_roi=True, workers=1)
        assert (summary.samples, summary.failed) == (2, 0), summary.failures
        names = [p.name for p in out.rglob("*")]
        if fmt == "webdataset":
            with tarfile.open(next((out / "shards").iterdir())) as tar:
                names += tar.getnames()
        # with room for the temporary name's suffix: `.<name>.<pid>-<8 hex>.tmp`
        assert max(len(n.encode()) for n in names) + 30 < 255, max(names, key=len)
        assert [e["source_id"] for e in read_manifest(out)] == [long_source, "cam"]


def test_a_sample_whose_file_cannot_be_written_fails_alone(colliding, tmp_path):
    from maskdec.export_names import sample_key

    out = tmp_path / "out"
    (out / "label_maps" / f"{sample_key(0, 'a_b', 'c')}.png").mkdir(parents=True)  # a folder in the way
    result = run_cli("export", colliding, "--out", out, "--workers", "1", "--allow-foreign-dir")
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr and "1 failed" in result.stderr
    (failure,) = [json.loads(line) for line in (out / "failures.jsonl").read_text().splitlines()]
    assert (failure["source_id"], failure["error_type"]) == ("a_b", "OutputError")
    assert [e["source_id"] for e in read_manifest(out)] == ["a"]


# ------------------------------------------------------------------ 3. --out belongs to maskdec

def user_folder(root: Path) -> dict[str, bytes]:
    """A folder of the user's: images, a temporary file, notes; returns its tree."""
    files = {"images/holiday.png": b"the user's photo", "images/.thumbs.png.1-cafebabe.tmp.bak": b"keep",
             ".editor.tmp": b"draft", "labels.txt": b"mine", "sub/.x.tmp": b"nested"}
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return tree(root)


def test_a_foreign_folder_is_refused_and_left_untouched(colliding, tmp_path):
    out = tmp_path / "user"
    before = user_folder(out)
    for mode in ("--resume", "--overwrite"):
        result = run_cli("export", colliding, "--out", out, mode, "--workers", "1")
        assert result.returncode == 2, result.stderr
        assert "--allow-foreign-dir" in result.stderr and "Traceback" not in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
        assert tree(out) == before and sorted(p.name for p in out.iterdir()) == sorted(
            {rel.split("/")[0] for rel in before})
    with pytest.raises(maskdec.MaskdecError, match="not empty"):
        export(colliding, out, workers=1, resume=False)
    assert tree(out) == before


def test_allowed_foreign_folder_keeps_the_users_files_through_overwrite(colliding, tmp_path):
    out = tmp_path / "user"
    before = user_folder(out)
    first = run_cli("export", colliding, "--out", out, "--workers", "1", "--allow-foreign-dir")
    assert first.returncode == 0, first.stderr
    assert {k: v for k, v in tree(out).items() if k in before} == before
    mine = set(tree(out)) - set(before)
    assert "export.json" in mine and len(mine) > 5
    # now an export of maskdec's: --overwrite needs no flag, and removes only what it wrote
    again = run_cli("export", colliding, "--out", out, "--workers", "1", "--overwrite")
    assert again.returncode == 0, again.stderr
    assert {k: v for k, v in tree(out).items() if k in before} == before
    assert set(tree(out)) - set(before) == mine
    # files the user added to maskdec's folders survive --overwrite as well
    (out / "label_maps" / "notes.txt").write_bytes(b"user")
    (out / "label_maps" / ".draft.tmp").write_bytes(b"user")
    assert run_cli("export", colliding, "--out", out, "--workers", "1", "--overwrite").returncode == 0
    assert (out / "label_maps" / "notes.txt").read_bytes() == (out / "label_maps" / ".draft.tmp").read_bytes()


def test_only_maskdecs_own_temporary_files_are_cleaned(colliding, tmp_path):
    out = tmp_path / "out"
    export(colliding, out, workers=1)
    own = out / "label_maps" / ".000000_a-b_c_abcdefghijklmnop.png.4242-deadbeef.tmp"
    own.write_bytes(b"half a file a killed run left")
    theirs = [out / ".notes.tmp", out / "label_maps" / ".swap.tmp", out / "label_maps" / "x.4242-deadbeef.tmp"]
    for path in theirs:
        path.write_bytes(b"not maskdec's")
    export(colliding, out, workers=1)
    assert not own.exists()
    assert all(p.read_bytes() == b"not maskdec's" for p in theirs)


def test_links_in_out_are_never_followed(colliding, tmp_path):
    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    export(colliding, out, workers=1)
    elsewhere.mkdir()
    (elsewhere / "precious.png").write_bytes(b"precious")
    victim = tmp_path / "victim.png"
    victim.write_bytes(b"do not overwrite")
    # a listed label map replaced by a link to a file outside: redone as a real file, the target kept
    first = out / read_manifest(out)[0]["label_map"]
    first.unlink()
    first.symlink_to(victim)
    summary = export(colliding, out, workers=1)
    assert summary.skipped == 1 and summary.failed == 0
    assert not first.is_symlink() and victim.read_bytes() == b"do not overwrite"
    # an output folder replaced by a link to a folder outside: refused (resume and overwrite)
    saved = out / "images.saved"
    (out / "images").rename(saved)
    (out / "images").symlink_to(elsewhere, target_is_directory=True)
    for resume in (True, False):
        with pytest.raises(OutputError, match="symbolic link"):
            export(colliding, out, workers=1, resume=resume)
    result = run_cli("export", colliding, "--out", out, "--workers", "1", "--overwrite")
    assert result.returncode == 2 and "symbolic link" in result.stderr and "Traceback" not in result.stderr
    assert tree(elsewhere) == {"precious.png": b"precious"}
    # the manifest as a link to a file outside: refused too
    (out / "images").unlink()
    saved.rename(out / "images")
    manifest = out / "manifest.jsonl"
    manifest.rename(tmp_path / "manifest.saved")
    manifest.symlink_to(victim)
    with pytest.raises(OutputError, match="manifest.jsonl"):
        export(colliding, out, workers=1)
    assert victim.read_bytes() == b"do not overwrite"


def test_overwrite_of_a_tampered_manifest_removes_nothing_outside_the_output(colliding, tmp_path):
    out = tmp_path / "out"
    export(colliding, out, workers=1)
    outside = tmp_path / "outside.png"
    outside.write_bytes(b"keep")
    entry = read_manifest(out)[0]
    entry["label_map"] = "../outside.png"
    entry["image"] = "label_maps/../../outside.png"
    with open(out / "manifest.jsonl", "a") as fh:
        fh.write(json.dumps(entry) + "\n")
    export(colliding, out, workers=1, resume=False)
    assert outside.read_bytes() == b"keep"


# ------------------------------------------------------------------ 4. one export at a time

@pytest.fixture(scope="module")
def big(tmp_path_factory) -> Path:
    """Two 160-frame clips and a PNG pair (321 samples): an export that runs for seconds."""
    return make_dataset(tmp_path_factory.mktemp("big"), n=160, width=320, height=240)


def wait_for_lines(path: Path, n: int, process: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        if path.exists() and path.read_text().count("\n") >= n:
            return
        time.sleep(0.01)
    raise AssertionError(f"the export ended (or stalled) before {path} had {n} lines: {process.poll()}")


def start_cli(*args, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "maskdec.cli", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kwargs)


class GatedHandler(http.server.BaseHTTPRequestHandler):
    """Serves server.body (Range requests honoured): HEAD at once, GET only once
    server.gate is set (server.asked is set when a GET arrives)."""

    def log_message(self, *args) -> None:
        pass

    def _head(self) -> tuple[int, int]:
        size = len(self.server.body)
        match = re.fullmatch(r"bytes=(\d+)-(\d*)", self.headers.get("Range", "").strip())
        start, end = (int(match.group(1)), min(int(match.group(2) or size - 1), size - 1)) if match else (0, size - 1)
        self.send_response(206 if match else 200)
        if match:
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("ETag", '"v1"')
        self.send_header("Content-Length", str(end - start + 1))
        self.end_headers()
        return start, end

    def do_HEAD(self) -> None:
        self._head()

    def do_GET(self) -> None:
        self.server.asked.set()
        self.server.gate.wait(120)
        start, end = self._head()
        self.wfile.write(self.server.body[start:end + 1])


@pytest.fixture()
def gated_server(tmp_path):
    """A loopback HTTP server whose GETs wait for a gate: an export reading from it
    holds its --out for as long as the test wants."""
    ok, buf = cv2.imencode(".png", cv2.cvtColor(solid(COLOURS["x"]), cv2.COLOR_RGB2BGR))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), GatedHandler)
    server.body, server.gate, server.asked = buf.tobytes(), threading.Event(), threading.Event()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.gate.set()
        server.shutdown()
        server.server_close()


def test_a_second_export_into_one_out_is_refused_while_the_first_finishes(gated_server, tmp_path):
    image = write_png(tmp_path / "image.png", solid((50, 50, 50)))
    url = f"http://127.0.0.1:{gated_server.server_address[1]}/mask.png"
    frames = write_frames(tmp_path / "frames.jsonl", [
        {"sources": [{"id": "cam", "uri": image, "masks": [{"id": "m", "uri": url}]}],
         "rois": [{"label": ["x"], "mask": {"id": "m", "value": list(COLOURS["x"])}}]}])
    out = tmp_path / "out"
    first = start_cli("export", frames, "--out", out, "--workers", "1")
    try:
        assert gated_server.asked.wait(60), "the first export never asked for its mask"
        lock = json.loads((out / LOCK_NAME).read_text())
        assert lock["pid"] == first.pid and lock["host"] and lock["started"]
        second = run_cli("export", frames, "--out", out, "--workers", "1", "--overwrite", timeout=120)
        assert first.poll() is None  # the first is still waiting for its mask
        before_release = tree(out)
    finally:
        gated_server.gate.set()
        _, first_err = first.communicate(timeout=120)
    assert second.returncode == 2, second.stderr
    assert f"in use by another maskdec export (pid {first.pid} on host" in second.stderr
    assert len(second.stderr.strip().splitlines()) == 1 and "Traceback" not in second.stderr
    assert LOCK_NAME in before_release and "export.json" in before_release  # the second removed nothing
    assert first.returncode == 0, first_err
    assert "exported 1 samples, 0 failed" in first_err
    (entry,) = read_manifest(out)
    labels = json.loads((out / "labels.json").read_text())
    assert label_of(cv2.imread(str(out / entry["label_map"]), cv2.IMREAD_UNCHANGED), labels) == "x"
    assert temp_files(out) == [] and not (out / LOCK_NAME).exists()


def test_a_stale_lock_of_a_dead_process_is_taken_over(colliding, tmp_path):
    out = tmp_path / "out"
    export(colliding, out, workers=1)
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(gone.stdout)
    import socket

    (out / LOCK_NAME).write_text(json.dumps({"pid": dead_pid, "host": socket.gethostname(),
                                             "started": "2020-01-01T00:00:00+00:00"}))
    result = run_cli("export", colliding, "--out", out, "--workers", "1")
    assert result.returncode == 0, result.stderr
    assert f"took over the lock of an earlier export that is gone (pid {dead_pid}" in result.stderr
    assert not (out / LOCK_NAME).exists()


# ------------------------------------------------------------------ 5. resume knows content

def test_a_changed_mask_file_has_its_samples_redone(tmp_path):
    media = tmp_path / "media"
    frames = []
    for i in range(3):
        mask = write_png(media / f"mask{i}.png", solid(COLOURS["x"]))
        image = write_png(media / f"image{i}.png", solid((50, 50, 50)))
        frames.append({"sources": [{"id": "cam", "uri": image, "masks": [{"id": "m", "uri": mask}]}],
                       "rois": [{"label": [n], "mask": {"id": "m", "value": list(c)}} for n, c in COLOURS.items()]})
    path = write_frames(tmp_path / "frames.jsonl", frames)
    out = tmp_path / "out"
    first = run_cli("export", path, "--out", out, "--workers", "1")
    assert first.returncode == 0, first.stderr
    stamps = {e["label_map"]: (out / e["label_map"]).stat().st_mtime_ns for e in read_manifest(out)}
    write_png(media / "mask1.png", solid(COLOURS["z"]))  # the annotator fixed frame 1's mask
    again = run_cli("export", path, "--out", out, "--workers", "1")
    assert again.returncode == 0, again.stderr
    assert re.search(r"1 media file changed since the last run \(.*mask1\.png\): redid 1 samples finished before",
                     again.stderr), again.stderr
    assert "(2 done before)" in again.stderr
    labels = json.loads((out / "labels.json").read_text())
    manifest = read_manifest(out)
    got = [label_of(cv2.imread(str(out / e["label_map"]), cv2.IMREAD_UNCHANGED), labels) for e in manifest]
    assert got == ["x", "z", "x"]
    assert [(out / e["label_map"]).stat().st_mtime_ns == stamps[e["label_map"]] for e in manifest] == [
        True, False, True]
    assert tree(out) == tree(_fresh_export(path, tmp_path / "fresh"))
    third = run_cli("export", path, "--out", out, "--workers", "1")
    assert "changed since" not in third.stderr and "(3 done before)" in third.stderr


def _fresh_export(path: Path, out: Path) -> Path:
    result = run_cli("export", path, "--out", out, "--workers", "1")
    assert result.returncode == 0, result.stderr
    return out


def test_a_changed_object_on_s3_has_its_samples_redone(tmp_path):
    pytest.importorskip("s3fs")
    moto_server = pytest.importorskip("moto.server")
    from test_remote import free_port

    bucket = "maskdec-integrity"  # moto's state is per process: not test_remote's bucket

    port = free_port()
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        import s3fs

        endpoint = f"http://127.0.0.1:{port}"
        env = {**os.environ, "FSSPEC_S3_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "testing",
               "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
               "AWS_EC2_METADATA_DISABLED": "true", "AWS_CONFIG_FILE": os.devnull,
               "AWS_SHARED_CREDENTIALS_FILE": os.devnull}
        fs = s3fs.S3FileSystem(endpoint_url=endpoint, key="testing", secret="testing", skip_instance_cache=True)
        fs.mkdir(bucket)

        def put(name: str, rgb: np.ndarray) -> str:
            ok, buf = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
            fs.pipe_file(f"{bucket}/data/{name}", buf.tobytes())
            return f"s3://{bucket}/data/{name}"

        frames = [{"sources": [{"id": "cam", "uri": put(f"image{i}.png", solid((50, 50, 50))),
                                "masks": [{"id": "m", "uri": put(f"mask{i}.png", solid(COLOURS["x"]))}]}],
                   "rois": [{"label": [n], "mask": {"id": "m", "value": list(c)}} for n, c in COLOURS.items()]}
                  for i in range(2)]
        path = write_frames(tmp_path / "frames.jsonl", frames)
        out = tmp_path / "out"
        assert run_cli("export", path, "--out", out, "--workers", "1", env=env).returncode == 0
        put("mask0.png", solid(COLOURS["y"]))  # same size, other bytes: another ETag
        again = run_cli("export", path, "--out", out, "--workers", "1", env=env)
        assert again.returncode == 0, again.stderr
        assert "1 media file changed since the last run" in again.stderr and "(1 done before)" in again.stderr
        labels = json.loads((out / "labels.json").read_text())
        assert [label_of(cv2.imread(str(out / e["label_map"]), cv2.IMREAD_UNCHANGED), labels)
                for e in read_manifest(out)] == ["y", "x"]
        assert "ETag=" in json.loads((out / "export.json").read_text())["media"][frames[0]["sources"][0]["masks"][0]["uri"]]
        fs.rm(bucket, recursive=True)
    finally:
        server.stop()


# ------------------------------------------------------------------ 6. a pool worker that dies

def worker_pids(parent: int) -> set[int]:
    """The spawned pool workers among `parent`'s children (not its resource tracker)."""
    found = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == parent and b"spawn_main" in cmdline:
            found.add(int(entry))
    return found


@pytest.fixture(scope="module")
def big_reference(big, tmp_path_factory) -> dict[str, bytes]:
    out = tmp_path_factory.mktemp("ref") / "out"
    result = run_cli("export", big, "--out", out, "--workers", "2", "--no-images")
    assert result.returncode == 0, result.stderr
    return tree(out)


def test_a_killed_worker_is_replaced_and_its_unit_redone(big, big_reference, tmp_path):
    out = tmp_path / "out"
    run = start_cli("export", big, "--out", out, "--workers", "2", "--no-images")
    try:
        wait_for_lines(out / "manifest.jsonl", 3, run)
        victims = worker_pids(run.pid)
        assert victims, "no pool worker found"
        victim = min(victims)
        os.kill(victim, signal.SIGKILL)
    finally:
        _, err = run.communicate(timeout=300)
    assert run.returncode == 0, err
    assert "Traceback" not in err and "BrokenProcessPool" not in err
    assert "note: a worker process died (killed by SIGKILL: out of memory?)" in err and "running them again" in err
    assert tree(out) == big_reference


def test_a_unit_whose_worker_dies_twice_becomes_failures(big, tmp_path):
    out = tmp_path / "out"
    run = start_cli("export", big, "--out", out, "--workers", "2", "--no-images")
    killed: set[int] = set()
    try:
        deadline = time.monotonic() + 120
        while run.poll() is None and time.monotonic() < deadline:
            for pid in worker_pids(run.pid) - killed:  # every worker, as soon as it is there
                with_suppress_kill(pid)
                killed.add(pid)
            time.sleep(0.005)
    finally:
        _, err = run.communicate(timeout=300)
    assert run.returncode in (1, 2), err
    assert "Traceback" not in err and "BrokenProcessPool" not in err
    if run.returncode == 2:  # every worker died before it could take work: said so in one line
        assert "keep dying" in err
        return
    failures = [json.loads(line) for line in (out / "failures.jsonl").read_text().splitlines()]
    assert failures and all(f["error_type"] == "WorkerDiedError" for f in failures)
    assert "2 times" in failures[0]["error"]
    assert "they are recorded as failures" in err
    assert len(failures) + len(read_manifest(out)) == 321
    assert temp_files(out) == []  # what the killed workers were writing is gone
    assert len([line for line in err.splitlines() if "failed:" in line]) <= 3  # one line per media file


def with_suppress_kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


# ------------------------------------------------------------------ 7. Ctrl-C

def test_ctrl_c_stops_cleanly_with_status_130_and_the_rerun_completes(big, big_reference, tmp_path):
    out = tmp_path / "out"
    run = start_cli("export", big, "--out", out, "--workers", "2", "--no-images", start_new_session=True)
    try:
        wait_for_lines(out / "manifest.jsonl", 3, run)
        workers = worker_pids(run.pid)
        os.killpg(run.pid, signal.SIGINT)  # what a terminal does: the whole foreground group
    finally:
        _, err = run.communicate(timeout=60)
    assert run.returncode == 130, err
    assert err.strip().splitlines() == ["maskdec: interrupted (an export keeps the samples it finished: run it "
                                        "again to resume)"]
    assert not (out / LOCK_NAME).exists() and temp_files(out) == []
    assert len(workers) == 2 and not [pid for pid in workers if Path(f"/proc/{pid}").exists()]
    rerun = run_cli("export", big, "--out", out, "--workers", "2", "--no-images")
    assert rerun.returncode == 0 and "done before" in rerun.stderr, rerun.stderr
    assert tree(out) == big_reference


# ------------------------------------------------------------------ names, property-based

def test_any_ids_give_bounded_well_formed_distinct_names():
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from maskdec.export_names import check_unique_keys, roi_suffix, sample_key

    ids = st.text(st.characters(codec=None, exclude_categories=()), max_size=300) | st.sampled_from(
        ["a", "a_b", "b_c", "A", "a-b", "a b", ""])

    @settings(max_examples=300, deadline=None)
    @given(st.lists(st.tuples(st.integers(0, 10**7), ids, ids), min_size=1, max_size=8, unique=True),
           st.integers(0, 999), st.none() | ids)
    def check(identities, k, roi_id):
        check_unique_keys(identities)  # distinct identities: never refused
        keys = [sample_key(*identity) for identity in identities]
        assert len({key.lower() for key in keys}) == len(keys)
        for key in keys:
            name = f".{key}_{roi_suffix(k, roi_id)}.png.4194304-deadbeef.tmp"
            assert re.fullmatch(r"[.A-Za-z0-9_-]+", name) and len(name.encode()) < 255
            assert key.count("_") == 3  # frame, source, mask, digest: always four fields

    check()
