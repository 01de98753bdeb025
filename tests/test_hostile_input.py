"""Bounded resources on hostile input, and typed errors for it (issue 15).

Local media must be regular files; remote copies are bounded in size and time and never
survive a crash; pictures are bounded in pixels before FFmpeg allocates them; frames and
mask-labels files are bounded in size and every failure names the file; the frame-index
cache never trusts a bad entry; unknown keys (typos) are reported; what frames may reach
can be narrowed. Cases that could hang run in a fresh interpreter killed after a limit
(test_hostile.bounded); memory is measured as the growth of the process's peak RSS
(VmHWM, reset through /proc/self/clear_refs) in the process that runs the case.
"""
from __future__ import annotations

import http.server
import json
import os
import re
import signal
import struct
import subprocess
import sys
import textwrap
import threading
import time
import warnings
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest

import maskdec
from maskdec import FrameFormatError, MaskdecWarning, MediaDecodeError, MediaNotFoundError
from maskdec.errors import MediaAccessError, OptionError
from maskdec.frames import Frame, load_frames
from maskdec.labels import load_mask_labels
from maskdec.media import index as index_module
from maskdec.media.index import cached_index, clear_memory_cache
from maskdec.media.reader import MediaReader
from maskdec.media.writer import write_video

from test_hostile import PRELUDE, SilentServer, assert_raised, bounded

H, W = 16, 16
MiB = 1 << 20


def peak_rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM")


def reset_peak_rss() -> int:
    """Reset the process's peak RSS to its current RSS (Linux >= 4.0); returns it, in KiB."""
    Path("/proc/self/clear_refs").write_text("5")
    return peak_rss_kib()


# Prepended to the code of bounded() cases that measure their own memory growth.
MEASURE = textwrap.dedent("""
    import time
    from pathlib import Path
    def peak():
        return int([l for l in Path("/proc/self/status").read_text().splitlines()
                    if l.startswith("VmHWM:")][0].split()[1])
    def measured(fn):
        Path("/proc/self/clear_refs").write_text("5")
        before, start = peak(), time.perf_counter()
        result = outcome(fn)
        result["seconds"] = time.perf_counter() - start
        result["grew_mib"] = (peak() - before) / 1024
        return result
""")


def png_bomb(path: Path, width: int, height: int) -> Path:
    """A valid single-colour 8-bit grey PNG of width x height, a few hundred KB on disk."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    packer = zlib.compressobj(9)
    row = bytes(width + 1)  # filter byte 0, then black pixels
    data = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b""))
    return path


@pytest.fixture(scope="module")
def mask_png(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("media") / "mask.png"
    image = np.zeros((H, W, 3), np.uint8)
    image[: H // 2] = (255, 0, 0)
    cv2.imwrite(str(path), image)
    return path


def frame_dict(image, mask, **source_keys) -> dict:
    return {"sources": [{"id": "cam", "uri": os.fspath(image), "masks": [{"id": "m", "uri": os.fspath(mask)}],
                         **source_keys}],
            "rois": [{"label": ["red"], "mask": {"id": "m", "value": [0, 0, 255]}}]}


def write_frames(path: Path, frames: list) -> Path:
    path.write_text(json.dumps(frames))
    return path


# ----------------------------------------------------------------- local media: regular files only

SAMPLES_TIMED = MEASURE + """
path = sys.argv[1]
def run():
    return [s.label_map.shape for s in maskdec.iter_samples(path)]
print(json.dumps(measured(run)))
"""


def test_fifo_media_fails_within_a_second(tmp_path, mask_png):
    fifo = tmp_path / "mask.png"
    os.mkfifo(fifo)
    frames = write_frames(tmp_path / "frames.json", [frame_dict(mask_png, fifo)])
    result = bounded(SAMPLES_TIMED, frames, timeout=30)  # the old reader blocked in open() for ever
    message = assert_raised(result, "MediaDecodeError", str(fifo), "FIFO")
    assert "regular files" in message
    assert result["seconds"] < 1.0


@pytest.mark.parametrize("device", ["/dev/stdin", "/dev/zero"])
def test_device_media_fails_within_a_second(tmp_path, mask_png, device):
    frames = write_frames(tmp_path / "frames.json", [frame_dict(device, mask_png)])
    read_end, write_end = os.pipe()  # stdin: a pipe nobody ever writes to or closes
    try:
        proc = subprocess.run([sys.executable, "-c", PRELUDE + SAMPLES_TIMED, str(frames)], stdin=read_end,
                              capture_output=True, text=True, timeout=30)
    except subprocess.TimeoutExpired:
        pytest.fail(f"hang: {device} as media was still being read after 30 s")
    finally:
        os.close(read_end)
        os.close(write_end)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert_raised(result, "MediaDecodeError", device, "regular files")
    assert result["seconds"] < 1.0


def test_empty_file_and_nul_in_a_media_path(tmp_path, mask_png):
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    with pytest.raises(MediaDecodeError, match=r"empty\.png: is empty"):
        list(maskdec.iter_samples([frame_dict(mask_png, empty)]))
    with pytest.raises(MediaNotFoundError, match="NUL character"):
        list(maskdec.iter_samples([frame_dict(mask_png, str(mask_png) + "\0x")]))


# ----------------------------------------------------------------- what frames may reach

def test_uri_schemes_allowlist(tmp_path, mask_png, monkeypatch):
    monkeypatch.setenv("MASKDEC_URI_SCHEMES", "file")
    uri = "http://127.0.0.1:9/mask.png"  # never contacted: refused before any connection
    with pytest.raises(MediaAccessError, match=r"http://127\.0\.0\.1:9/mask\.png: the 'http' scheme is not allowed"):
        MediaReader(uri)
    with MediaReader(str(mask_png)) as reader:  # local files still are
        assert reader.is_still
    monkeypatch.setenv("MASKDEC_URI_SCHEMES", "file,ftp")
    with pytest.raises(OptionError, match=r"MASKDEC_URI_SCHEMES='file,ftp': unknown scheme 'ftp'"):
        MediaReader(str(mask_png))


def test_media_roots_confine_local_files(tmp_path, mask_png, monkeypatch):
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    inside = allowed / "mask.png"
    inside.write_bytes(mask_png.read_bytes())
    escape = allowed / "escape.png"
    escape.symlink_to(mask_png)  # a symlink inside the root pointing out of it
    monkeypatch.setenv("MASKDEC_MEDIA_ROOTS", str(allowed))
    with MediaReader(str(inside)) as reader:
        assert reader.is_still
    for path in (mask_png, escape, allowed / ".." / mask_png.name):
        with pytest.raises(MediaAccessError, match="MASKDEC_MEDIA_ROOTS"):
            MediaReader(str(path))
    with pytest.raises(MediaAccessError, match="escape.png"):
        list(maskdec.iter_samples([frame_dict(inside, escape)]))


# ----------------------------------------------------------------- remote: size, time, crash

class _Endless(http.server.BaseHTTPRequestHandler):
    """GET /endless: a body with no length that never ends (every `pause` s, 64 KiB of zeros);
    GET or HEAD /huge: declares Content-Length 10 GiB. Counts the bytes it sent."""

    protocol_version = "HTTP/1.0"

    def log_message(self, *args) -> None:
        pass

    def _head(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "video/mp4")
        if self.path.startswith("/huge"):
            self.send_header("Content-Length", str(10 << 30))
            self.send_header("Accept-Ranges", "bytes")
        self.end_headers()

    def do_HEAD(self) -> None:
        self._head()

    def do_GET(self) -> None:
        self._head()
        chunk = bytes(65536)
        try:
            while True:
                self.wfile.write(chunk)
                with self.server.lock:
                    self.server.sent += len(chunk)
                if self.server.pause:
                    time.sleep(self.server.pause)
        except OSError:
            pass


@pytest.fixture
def endless():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Endless)
    server.daemon_threads = True
    server.sent, server.pause, server.lock = 0, 0.0, threading.Lock()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


OPEN_TIMED = MEASURE + """
from maskdec.media.reader import MediaReader
def run():
    with MediaReader(sys.argv[1]) as reader:
        return reader.codec
print(json.dumps(measured(run)))
"""


@pytest.mark.parametrize("cached", [True, False])
def test_endless_http_body_stops_at_the_size_limit_and_leaves_nothing(endless, tmp_path, cached):
    pytest.importorskip("aiohttp")
    server, base = endless
    cache = tmp_path / "cache" / "remote"  # missing: created
    env = {"MASKDEC_MAX_REMOTE_BYTES": "256k", "MASKDEC_CACHE_DIR": str(cache),
           "MASKDEC_REMOTE_CACHE": "1" if cached else "0"}
    result = bounded(OPEN_TIMED, f"{base}/endless.mp4", env=env, timeout=60)
    message = assert_raised(result, "MediaDecodeError", f"{base}/endless.mp4", "256 KiB", "MASKDEC_MAX_REMOTE_BYTES")
    assert "more than 262144 bytes" in message
    assert result["grew_mib"] < 64, result
    assert cache.is_dir() == cached  # created for copies only
    assert not cached or list(cache.iterdir()) == []  # no partial copy left behind


def test_declared_size_over_the_limit_is_refused_before_reading(endless, tmp_path):
    pytest.importorskip("aiohttp")
    server, base = endless
    result = bounded(OPEN_TIMED, f"{base}/huge.mp4", env={"MASKDEC_CACHE_DIR": str(tmp_path)}, timeout=60)
    assert_raised(result, "MediaDecodeError", f"{base}/huge.mp4", str(10 << 30), "4 GiB")
    assert list(tmp_path.iterdir()) == []


COPY_FOREVER = """
from maskdec.media.uri import open_uri
print("started", flush=True)
open_uri(sys.argv[1])
"""


def test_a_copy_killed_midway_leaves_no_partial_file(endless, tmp_path):
    """SIGKILL while a remote file is being copied: the copy had no name on disk, so nothing stays."""
    pytest.importorskip("aiohttp")
    server, base = endless
    server.pause = 0.002
    cache = tmp_path / "cache"
    cache.mkdir()
    proc = subprocess.Popen([sys.executable, "-c", PRELUDE + COPY_FOREVER, f"{base}/endless.mp4"],
                            env={**os.environ, "MASKDEC_CACHE_DIR": str(cache)}, stdout=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while server.sent < 4 * MiB and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        assert proc.poll() is None and server.sent >= 4 * MiB, "the copy did not get going"
        used = sum(os.stat(f"/proc/{proc.pid}/fd/{fd}").st_size for fd in os.listdir(f"/proc/{proc.pid}/fd")
                   if os.readlink(f"/proc/{proc.pid}/fd/{fd}").startswith(str(cache)))
        assert used >= MiB  # the copy is under way, in the cache folder
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    assert list(cache.iterdir()) == []


def test_silent_http_server_fails_within_the_timeout(tmp_path):
    pytest.importorskip("aiohttp")
    server = SilentServer()
    try:
        uri = f"http://127.0.0.1:{server.port}/data/mask.mp4"
        env = {"MASKDEC_REMOTE_TIMEOUT": "1", "FSSPEC_HTTP": "", "FSSPEC_CONFIG_DIR": str(tmp_path)}
        result = bounded(OPEN_TIMED, uri, env=env, timeout=60)  # fsspec's own default: 5 minutes
        message = assert_raised(result, "MediaDecodeError", uri)
        assert "timeout" in message.lower(), message
        assert result["seconds"] < 10, result
        assert server.accepted
    finally:
        server.close()


def test_bad_remote_settings_are_option_errors(monkeypatch, tmp_path):
    from maskdec.media.uri import open_uri

    monkeypatch.setenv("MASKDEC_REMOTE_TIMEOUT", "soon")
    with pytest.raises(OptionError, match="MASKDEC_REMOTE_TIMEOUT='soon'"):
        open_uri("http://127.0.0.1:9/x.mp4")
    monkeypatch.delenv("MASKDEC_REMOTE_TIMEOUT")
    monkeypatch.setenv("MASKDEC_MAX_REMOTE_BYTES", "-5")
    with pytest.raises(OptionError, match="MASKDEC_MAX_REMOTE_BYTES='-5'"):
        open_uri("http://127.0.0.1:9/x.mp4")


def test_cache_dir_setting_that_is_a_file(tmp_path, endless):
    pytest.importorskip("aiohttp")
    _, base = endless
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("")
    result = bounded(OPEN_TIMED, f"{base}/endless.mp4", env={"MASKDEC_CACHE_DIR": str(blocker)}, timeout=60)
    assert_raised(result, "OptionError", "MASKDEC_CACHE_DIR", str(blocker))


# ----------------------------------------------------------------- pixel limits

def test_png_bomb_fails_fast_with_bounded_memory(tmp_path, mask_png):
    bomb = png_bomb(tmp_path / "bomb.png", 20000, 20000)
    assert bomb.stat().st_size < 1 * MiB
    before = reset_peak_rss()
    start = time.perf_counter()
    with pytest.raises(MediaDecodeError) as caught:
        list(maskdec.iter_samples([frame_dict(mask_png, bomb)]))
    seconds, grew = time.perf_counter() - start, (peak_rss_kib() - before) / 1024
    message = str(caught.value)
    assert str(bomb) in message and "20000x20000" in message and "MASKDEC_MAX_PIXELS" in message
    assert seconds < 1.0 and grew < 32, (seconds, grew)


def test_pixel_limit_is_configurable_and_bounds_what_ffmpeg_decodes(tmp_path, mask_png, monkeypatch):
    # 12000 x 12000 is within FFmpeg's own bound: without a limit it decodes (about 600 MB here)
    bomb = png_bomb(tmp_path / "big.png", 12000, 12000)
    monkeypatch.setenv("MASKDEC_MAX_PIXELS", "10M")
    before = reset_peak_rss()
    with pytest.raises(MediaDecodeError, match=r"12000x12000 is 144000000 pixels, more than the limit of 10485760"):
        list(maskdec.iter_samples([frame_dict(bomb, mask_png)]))
    assert (peak_rss_kib() - before) / 1024 < 32
    monkeypatch.setenv("MASKDEC_MAX_PIXELS", "lots")
    with pytest.raises(OptionError, match="MASKDEC_MAX_PIXELS='lots'"):
        list(maskdec.iter_samples([frame_dict(mask_png, mask_png)]))


@pytest.mark.parametrize("codec, suffix, pix_fmt", [("libx264", ".mp4", "yuv420p"), ("ffv1", ".mkv", "bgr0")])
def test_video_over_the_pixel_limit_is_refused_before_decoding(tmp_path, monkeypatch, codec, suffix, pix_fmt):
    clip = tmp_path / f"wide{suffix}"
    write_video(clip, [np.zeros((480, 2000, 3), np.uint8)] * 3, fps=30, codec=codec, pix_fmt=pix_fmt)
    monkeypatch.setenv("MASKDEC_MAX_PIXELS", "500000")
    with pytest.raises(MediaDecodeError, match="MASKDEC_MAX_PIXELS") as caught:
        MediaReader(str(clip))
    assert str(clip) in str(caught.value)
    if codec == "libx264":  # the MP4 header tells the size: the message gives it
        assert "2000x480 is 960000 pixels" in str(caught.value)
    monkeypatch.delenv("MASKDEC_MAX_PIXELS")
    with MediaReader(str(clip)) as reader:
        assert len(reader.index) == 3


@pytest.mark.parametrize("width, height, culprit", [
    (10 ** 9, 10 ** 9, "$[0].sources[0].width"),      # each side alone is past the limit
    (40000, 40000, "$[0].sources[0].width"),         # 1.6e9 pixels together
    (16, 10 ** 12, "$[0].sources[0].height"),
])
def test_declared_size_over_the_pixel_limit_is_a_parse_error(tmp_path, mask_png, width, height, culprit):
    frames = write_frames(tmp_path / "frames.json", [frame_dict(mask_png, mask_png, width=width, height=height)])
    before = reset_peak_rss()
    with pytest.raises(FrameFormatError, match="MASKDEC_MAX_PIXELS") as caught:
        list(maskdec.iter_samples(frames, images=False))  # images=False: the old code sized label maps from it
    assert f"frames.json: {culprit}" in str(caught.value)
    assert (peak_rss_kib() - before) / 1024 < 32
    mask = {"id": "m", "uri": "m.png", "width": width, "height": height}
    with pytest.raises(FrameFormatError, match=r"\$\.sources\[0\]\.masks\[0\]\.(width|height)"):
        Frame.from_dict({"sources": [{"id": "a", "uri": "a.png", "masks": [mask]}]})


# ----------------------------------------------------------------- frames files

LOAD_TIMED = MEASURE + """
path, how = sys.argv[1], sys.argv[2]
def run():
    if how == "collect":
        frames, errors = maskdec.frames.load_frames(path, errors="collect")
        return {"frames": len(frames), "errors": [[type(e).__name__, str(e)] for e in errors]}
    if how == "samples":
        return len(list(maskdec.iter_samples(path)))
    return len(maskdec.load_frames(path))
print(json.dumps(measured(run)))
"""


@pytest.mark.parametrize("how", ["raise", "collect", "samples"])
def test_dev_zero_as_a_frames_file(how):
    result = bounded(LOAD_TIMED, "/dev/zero", how, timeout=60)
    assert_raised(result, "FrameFormatError", "/dev/zero", "NUL")
    assert result["seconds"] < 1 and result["grew_mib"] < 32, result


def test_a_jsonl_line_over_the_limit(tmp_path, mask_png):
    good = json.dumps(frame_dict(mask_png, mask_png))
    long = frame_dict(mask_png, mask_png)
    long["rois"] = [{"label": [f"c{i}"], "mask": {"id": "m", "value": [0, 0, i % 256]}} for i in range(40000)]
    path = tmp_path / "frames.jsonl"
    path.write_text(good + "\n" + json.dumps(long) + "\n" + good + "\n")
    assert len(path.read_text().splitlines()[1]) > 2 * MiB
    env = {"MASKDEC_MAX_JSON_LINE_BYTES": "1M"}
    for how in ("raise", "collect"):  # a line that long cannot be skipped in bounded memory: it stops the load
        result = bounded(LOAD_TIMED, path, how, env=env)
        assert_raised(result, "FrameFormatError", "frames.jsonl line 2", "1 MiB", "MASKDEC_MAX_JSON_LINE_BYTES")
        assert result["grew_mib"] < 48, result
    assert bounded(LOAD_TIMED, path, "raise", env={"MASKDEC_MAX_JSON_LINE_BYTES": "4M"})["value"] == 3


def test_a_json_file_over_the_limit(tmp_path, mask_png, monkeypatch):
    path = write_frames(tmp_path / "frames.json", [frame_dict(mask_png, mask_png)] * 200)
    monkeypatch.setenv("MASKDEC_MAX_JSON_FILE_BYTES", "16k")
    with pytest.raises(FrameFormatError, match=r"frames\.json: frames file is larger than 16 KiB "
                                               r"\(MASKDEC_MAX_JSON_FILE_BYTES"):
        load_frames(path)
    monkeypatch.setenv("MASKDEC_MAX_JSON_FILE_BYTES", "1M")
    assert len(load_frames(path)) == 200


BIG = "9" * 5000


def test_a_5000_digit_number_names_its_path(tmp_path, mask_png):
    good = json.dumps(frame_dict(mask_png, mask_png))
    bad = good.replace('"uri"', f'"timestamp": {BIG}, "uri"', 1)
    meta = good[:-1] + f', "meta": {{"n": [1, -{BIG}]}}}}'
    jsonl = tmp_path / "frames.jsonl"
    jsonl.write_text("\n".join([good, bad, good, meta]) + "\n")
    frames, errors = load_frames(jsonl, errors="collect")
    assert len(frames) == 2
    assert [type(e) for e in errors] == [FrameFormatError, FrameFormatError]
    assert str(errors[0]).startswith("frames.jsonl line 2: $.sources[0].timestamp: a 5000-digit number")
    assert str(errors[1]).startswith("frames.jsonl line 4: $.meta.n[1]: a 5000-digit number")
    with pytest.raises(FrameFormatError, match=r"frames\.jsonl line 2: \$\.sources\[0\]\.timestamp"):
        load_frames(jsonl)
    whole = tmp_path / "frames.json"
    whole.write_text(f"[{good}, {bad}]")
    for errors_mode in ("raise", "collect"):
        with pytest.raises(FrameFormatError, match=r"frames\.json: \$\[1\]\.sources\[0\]\.timestamp: a 5000-digit"):
            load_frames(whole, errors=errors_mode)


def test_unreadable_frames_files_are_maskdec_errors(tmp_path):
    with pytest.raises(MediaNotFoundError, match="NUL character"):
        load_frames(str(tmp_path / "a\0b.json"))
    with pytest.raises(FrameFormatError, match="it is a folder"):
        load_frames(tmp_path)
    latin = tmp_path / "latin.json"
    latin.write_bytes('{"sources": [{"id": "caf\xe9", "uri": "a.png"}]}'.encode("latin-1"))
    with pytest.raises(FrameFormatError, match=r"latin\.json: frames file is not UTF-8 text: invalid .* at byte 24"):
        load_frames(latin)
    lines = tmp_path / "mixed.jsonl"
    good = json.dumps({"sources": [{"id": "a", "uri": "a.png"}]}).encode()
    lines.write_bytes(b"\xef\xbb\xbf" + good + b"\n" + good.replace(b'"a"', b'"\xff"', 1) + b"\n" + good + b"\n")
    frames, errors = load_frames(lines, errors="collect")
    assert len(frames) == 2 and [str(e)[:30] for e in errors] == ["mixed.jsonl line 2: not UTF-8 "]
    with pytest.raises(OptionError, match="expected a file path, got int"):
        load_frames(3)
    with pytest.raises(OptionError, match="errors must be 'raise' or 'collect'"):
        load_frames(lines, errors="ignore")


# ----------------------------------------------------------------- mask labels files

def test_bad_mask_labels_files_name_the_file(tmp_path, mask_png):
    latin = tmp_path / "latin.json"
    latin.write_bytes('[{"value": [1, 2, 3], "labels": ["caf\xe9"]}]'.encode("latin-1"))
    with pytest.raises(FrameFormatError, match=r"latin\.json: mask labels file is not UTF-8"):
        load_mask_labels(latin)
    with pytest.raises(FrameFormatError, match="mask labels file: it is a folder"):
        load_mask_labels(tmp_path)
    with pytest.raises(MediaNotFoundError, match="mask labels file not found"):
        load_mask_labels(tmp_path / "gone.json")
    with pytest.raises(MediaNotFoundError, match="NUL character"):
        load_mask_labels(str(tmp_path / "a\0.json"))
    by_name = tmp_path / "by_name.json"  # {name: colour}: an enumeration-like mix-up
    by_name.write_text(json.dumps({"car": [1, 2, 3], "road": [4, 5, 6]}))
    with pytest.raises(FrameFormatError, match=r"by_name\.json: mask_labels: expected .*keys 'car', 'road'"):
        load_mask_labels(by_name)
    nested = tmp_path / "nested.json"
    nested.write_text(json.dumps({"_all_": {"value": [1, 2, 3], "labels": ["car"]}}))
    with pytest.raises(FrameFormatError, match=r"nested\.json: mask_labels\._all_: expected a list .* got dict"):
        load_mask_labels(nested)
    lists = tmp_path / "lists.json"
    lists.write_text(json.dumps([[[1, 2, 3], ["car"]]]))
    with pytest.raises(FrameFormatError, match=r"lists\.json: mask_labels\[0\]"):
        load_mask_labels(lists)
    huge = tmp_path / "huge.json"
    huge.write_text(f'[{{"value": [1, 2, {BIG}], "labels": ["car"]}}]')
    with pytest.raises(FrameFormatError, match=r"huge\.json: \$\[0\]\.value\[2\]: a 5000-digit number"):
        load_mask_labels(huge)
    with pytest.raises(FrameFormatError, match=r"by_name\.json"):  # and through iter_samples
        maskdec.iter_samples([frame_dict(mask_png, mask_png)], mask_labels=by_name)


# ----------------------------------------------------------------- the frame-index cache

@pytest.fixture
def clip(tmp_path) -> Path:
    path = tmp_path / "clip.mkv"
    write_video(path, [np.full((H, W, 3), i * 10, np.uint8) for i in range(12)], fps=25, codec="ffv1",
                pix_fmt="bgr0")
    return path


def _entry(cache: Path) -> Path:
    (entry,) = cache.glob("*.json")
    return entry


def test_an_edited_cache_entry_is_rebuilt_not_trusted(tmp_path, clip):
    cache = tmp_path / "cache"
    clear_memory_cache()
    with MediaReader(str(clip), cache_dir=cache) as reader:
        truth = reader.index
    entry = _entry(cache)
    data = json.loads(entry.read_text())
    assert data["key"][1:] == [clip.stat().st_size, clip.stat().st_mtime_ns] and len(data["sha256"]) == 64
    data["index"]["pts"] = [p * 2 for p in data["index"]["pts"]]  # valid JSON, wrong times
    entry.write_text(json.dumps(data))
    clear_memory_cache()
    assert cached_index(str(clip), cache) is None
    with MediaReader(str(clip), cache_dir=cache) as reader:
        assert reader.index.pts == truth.pts
    assert json.loads(_entry(cache).read_text())["index"]["pts"] == list(truth.pts)  # rewritten
    # a matching checksum does not make nonsense trusted: descending times
    data = json.loads(_entry(cache).read_text())
    data["index"]["pts"] = data["index"]["pts"][::-1]
    data["sha256"] = index_module._checksum(data["key"], data["index"])
    _entry(cache).write_text(json.dumps(data))
    clear_memory_cache()
    assert cached_index(str(clip), cache) is None
    # and bytes that are not JSON at all
    _entry(cache).write_bytes(b"\x00garbage")
    clear_memory_cache()
    assert cached_index(str(clip), cache) is None
    with MediaReader(str(clip), cache_dir=cache) as reader:
        assert reader.index.pts == truth.pts


def test_a_changed_media_file_gets_a_new_index(tmp_path, clip):
    cache = tmp_path / "cache"
    clear_memory_cache()
    with MediaReader(str(clip), cache_dir=cache) as reader:
        assert len(reader.index) == 12
    stamp = clip.stat().st_mtime_ns
    write_video(clip, [np.zeros((H, W, 3), np.uint8)] * 5, fps=25, codec="ffv1", pix_fmt="bgr0")
    os.utime(clip, ns=(stamp, stamp))  # same mtime: the size still tells them apart
    clear_memory_cache()
    assert cached_index(str(clip), cache) is None
    with MediaReader(str(clip), cache_dir=cache) as reader:
        assert len(reader.index) == 5


def test_cache_dir_missing_is_created_and_a_file_is_an_option_error(tmp_path, clip):
    missing = tmp_path / "a" / "b"
    clear_memory_cache()
    with MediaReader(str(clip), cache_dir=missing) as reader:
        assert len(reader.index) == 12
    assert len(list(missing.glob("*.json"))) == 1
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(OptionError, match=r"cache_dir=.*file.*cannot be used as a folder"):
        MediaReader(str(clip), cache_dir=blocker)
    with pytest.raises(OptionError, match="cache_dir"):  # at construction, before any sample
        maskdec.MaskDataset([frame_dict(clip, clip, timestamp=0)], cache_dir=blocker)


# ----------------------------------------------------------------- unknown keys (typos)

TYPOS = [  # (where the key goes, misspelt key, the JSON path of its object, the key meant)
    ("frame", "timestmp", "$", "timestamp"),
    ("source", "timestmp", "$.sources[0]", "timestamp"),
    ("mask", "timestmp", "$.sources[0].masks[0]", "timestamp"),
    ("source", "mask", "$.sources[0]", "masks"),
    ("frame", "roi", "$", "rois"),
    ("roi", "lable", "$.rois[0]", "label"),
    ("roi mask", "valeu", "$.rois[0].mask", "value"),
]


def with_key(where: str, key: str, mask_png: Path) -> dict:
    d = frame_dict(mask_png, mask_png)
    target = {"frame": d, "source": d["sources"][0], "mask": d["sources"][0]["masks"][0], "roi": d["rois"][0],
              "roi mask": d["rois"][0]["mask"]}[where]
    if key == "roi":  # rois -> roi: the ROIs are lost under the wrong key
        d["roi"] = d.pop("rois")
    elif key == "mask":  # masks -> mask
        d["sources"][0]["mask"] = d["sources"][0].pop("masks")
    elif key == "lable":
        target["lable"] = ["extra"]
    else:
        target[key] = 66
    return d


@pytest.mark.parametrize("where, key, path, meant", TYPOS)
def test_a_misspelt_key_warns_and_strict_keys_refuses_it(tmp_path, mask_png, where, key, path, meant):
    d = with_key(where, key, mask_png)
    with pytest.warns(MaskdecWarning) as record:
        Frame.from_dict(d)
    (warning,) = [str(w.message) for w in record]
    assert warning.startswith(f"{path}: unknown") and f"key {key!r} (did you mean {meant!r}?)" in warning
    with pytest.raises(FrameFormatError, match=rf"did you mean {meant!r}") as caught:
        Frame.from_dict(d, strict_keys=True)
    assert caught.value.path == f"{path}.{key}"
    # through a file: one warning for the key however many frames carry it, naming the first
    path_file = tmp_path / "frames.jsonl"
    path_file.write_text("".join(json.dumps(d) + "\n" for _ in range(5)))
    with pytest.warns(MaskdecWarning) as record:
        frames = load_frames(path_file)
    assert len(frames) == 5
    (warning,) = [str(w.message) for w in record]
    assert warning.startswith(f"frames.jsonl line 1: {path}: unknown") and "and 4 more" in warning
    with pytest.raises(FrameFormatError, match=rf"frames\.jsonl line 1: {re.escape(path)}\.{key}: unknown"):
        load_frames(path_file, strict_keys=True)
    frames, errors = load_frames(path_file, errors="collect", strict_keys=True)
    assert frames == [] and len(errors) == 5


def test_known_clearml_keys_do_not_warn(mask_png):
    d = frame_dict(mask_png, mask_png)
    d.update({"meta_blob": {}, "video_gop": 10.0, "is_key_frame": True, "context_id": "c", "saved": 1,
              "labels_size": 1, "rule_name": "r", "augmentation": [], "dataset": {"id": "d", "version": "v"}})
    d["sources"][0].update({"preview": {"uri": "p.jpg", "anything": 1}, "meta": {"free": {"nested": 1}},
                            "content_type": "image/png", "timestamp": 0})
    d["sources"][0]["masks"][0].update({"content_type": "image/png", "width": W, "height": H})
    d["rois"][0].update({"poly": [0, 0, 1, 1], "area": 4, "confidence": 1.0, "label_num": 3, "id": "r",
                         "meta": {"x": 1}, "sources": ["cam"]})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        frame = Frame.from_dict(d, strict_keys=True)
    assert Frame.from_dict(frame.to_dict()) == frame



@pytest.mark.parametrize("change, culprit", [
    (lambda d: d["sources"][0].update(timestamp="9" * 5000), "$.sources[0].timestamp"),
    (lambda d: d["sources"][0].update(timestamp=10 ** 5000), "$.sources[0].timestamp"),
    (lambda d: d["sources"][0].update(width=10 ** 5000), "$.sources[0].width"),
    (lambda d: d["sources"][0].update(id=10 ** 5000), "$.sources[0].id"),
    (lambda d: d.update(id=10 ** 5000), "$.id"),
    (lambda d: d["rois"][0]["mask"].update(value=[10 ** 5000, 0, 0]), "$.rois[0].mask.value"),
])
def test_numbers_python_cannot_print_are_frame_errors(mask_png, change, culprit):
    """Given as Python objects (JSON files turn them into errors while reading)."""
    d = frame_dict(mask_png, mask_png)
    change(d)
    with pytest.raises(FrameFormatError) as caught:
        Frame.from_dict(d)
    assert caught.value.path == culprit and len(str(caught.value)) < 300


def test_many_unknown_keys_give_a_bounded_number_of_warnings(tmp_path, mask_png):
    d = frame_dict(mask_png, mask_png)
    d.update({f"custom{i}": i for i in range(500)})
    d["x" * 100_000] = 1
    with pytest.warns(MaskdecWarning) as record:
        Frame.from_dict(d)
    assert len(record) == 21 and str(record[-1].message) == "$: and 481 more unknown keys"
    assert max(len(str(w.message)) for w in record) < 300
    path = tmp_path / "frames.jsonl"
    path.write_text(json.dumps(d) + "\n")
    with pytest.warns(MaskdecWarning) as record:
        load_frames(path)
    assert len(record) == 21 and str(record[-1].message) == "and 481 more distinct unknown keys"
