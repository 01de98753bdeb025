"""Remote storage for real, on loopback: an S3 endpoint (moto's server, reached by
s3fs through fsspec's own settings) for input and output, and an HTTPS server
that honours Range requests for input."""
from __future__ import annotations

import datetime
import http.server
import ipaddress
import json
import os
import re
import socket
import ssl
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from test_export import make_dataset, read_manifest, tree, with_prefix
from test_hostile import SilentServer

s3fs = pytest.importorskip("s3fs")
moto_server = pytest.importorskip("moto.server")

BUCKET = "maskdec-test"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_cli(*args, env: dict, timeout: float = 300) -> subprocess.CompletedProcess:
    try:
        return subprocess.run([sys.executable, "-m", "maskdec.cli", *map(str, args)], capture_output=True, text=True,
                              timeout=timeout, env={**os.environ, **env})
    except subprocess.TimeoutExpired:
        pytest.fail(f"maskdec {args[0]} was still running after {timeout} s")


def comparable(files: dict[str, bytes]) -> dict[str, bytes]:
    """All outputs but export.json, whose plan digest names the media URIs as the frames wrote them."""
    return {k: v for k, v in files.items() if k != "export.json"}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("dataset"))


@pytest.fixture(scope="module")
def local_export(dataset, tmp_path_factory) -> dict[str, bytes]:
    out = tmp_path_factory.mktemp("local") / "out"
    result = run_cli("export", dataset, "--out", out, "--workers", "2", env={})
    assert result.returncode == 0, result.stderr
    return tree(out)


# ------------------------------------------------------------------ S3 (moto server)

@pytest.fixture(scope="module")
def s3(dataset):
    """A moto S3 server on 127.0.0.1 holding the dataset's media under s3://BUCKET/data/;
    yields (s3fs filesystem, the environment a maskdec process needs to reach it)."""
    port = free_port()
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    env = {"FSSPEC_S3_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
           "AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true",
           "AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull}
    fs = s3fs.S3FileSystem(endpoint_url=endpoint, key="testing", secret="testing", skip_instance_cache=True)
    fs.mkdir(BUCKET)
    root = dataset.parent
    for path in root.rglob("*"):
        if path.is_file() and path.suffix in (".mp4", ".png"):
            fs.put_file(str(path), f"{BUCKET}/data/{path.relative_to(root).as_posix()}")
    try:
        yield fs, env
    finally:
        server.stop()


def s3_tree(fs, prefix: str) -> dict[str, bytes]:
    fs.invalidate_cache()
    return {p[len(prefix) + 1:]: fs.cat_file(p) for p in fs.find(prefix)}


def test_s3_input_and_output_equal_a_local_export(s3, dataset, local_export, tmp_path):
    fs, env = s3
    frames = with_prefix(dataset, f"s3://{BUCKET}/data/", tmp_path / "frames.jsonl")
    result = run_cli("export", frames, "--out", f"s3://{BUCKET}/out", "--workers", "2", env=env)
    assert result.returncode == 0, result.stderr
    assert "exported 21 samples, 0 failed" in result.stderr
    remote = s3_tree(fs, f"{BUCKET}/out")
    assert comparable(remote) == comparable(local_export)
    assert not any(".parts/" in k for k in remote)  # the journal was compacted into manifest.jsonl
    again = run_cli("export", frames, "--out", f"s3://{BUCKET}/out", "--workers", "2", env=env)
    assert again.returncode == 0 and "(21 done before)" in again.stderr


def test_s3_resume_reads_journal_parts(s3, dataset, local_export, tmp_path):
    """A run killed on an object store leaves its journal as whole part objects (S3 cannot
    append): a re-run takes the samples they list as done and redoes the rest."""
    fs, env = s3
    out = f"{BUCKET}/resume"
    result = run_cli("export", dataset, "--out", f"s3://{out}", "--workers", "1", env=env)
    assert result.returncode == 0, result.stderr
    lines = fs.cat_file(f"{out}/manifest.jsonl").decode().splitlines(keepends=True)
    fs.rm(f"{out}/manifest.jsonl")
    fs.pipe_file(f"{out}/manifest.jsonl.parts/1-a-00000001.jsonl", "".join(lines[:6]).encode())
    fs.pipe_file(f"{out}/manifest.jsonl.parts/1-a-00000002.jsonl", "".join(lines[6:10]).encode())
    fs.rm(f"{out}/{json.loads(lines[3])['label_map']}")  # listed as done, but its file is gone
    rerun = run_cli("export", dataset, "--out", f"s3://{out}", "--workers", "2", env=env)
    assert rerun.returncode == 0, rerun.stderr
    assert "(9 done before)" in rerun.stderr
    assert comparable(s3_tree(fs, out)) == comparable(local_export)


def test_s3_missing_object_is_a_recorded_failure(s3, dataset, tmp_path):
    fs, env = s3
    frames = [json.loads(line) for line in dataset.read_text().splitlines()][:3]
    frames[1]["sources"][0]["masks"][0]["uri"] = "a/gone.mp4"
    (tmp_path / "in.jsonl").write_text("".join(json.dumps(f) + "\n" for f in frames))
    path = with_prefix(tmp_path / "in.jsonl", f"s3://{BUCKET}/data/", tmp_path / "frames.jsonl")
    out = tmp_path / "out"
    result = run_cli("export", path, "--out", out, "--workers", "1", env=env)
    assert result.returncode == 1, result.stderr
    failures = [json.loads(line) for line in (out / "failures.jsonl").read_text().splitlines()]
    assert [(f["frame_index"], f["uri"], f["error_type"]) for f in failures] == [
        (1, f"s3://{BUCKET}/data/a/gone.mp4", "MediaNotFoundError")]
    assert [e["frame_index"] for e in read_manifest(out)] == [0, 2]


def test_silent_s3_endpoint_fails_within_the_timeouts_of_an_fsspec_config_file(dataset, tmp_path):
    """An S3 endpoint that accepts connections and never answers. The timeouts come from an
    fsspec config file (FSSPEC_CONFIG_DIR), botocore's retries are off there, and s3fs's own
    loop (5 attempts per call, not configurable through fsspec: see media/uri.py) multiplies
    them: about 7 s here, where the defaults would take minutes. The sample fails naming its
    URI; the export goes on."""
    server = SilentServer()
    try:
        config_dir = tmp_path / "fsspec"
        config_dir.mkdir()
        (config_dir / "s3.json").write_text(json.dumps({"s3": {
            "endpoint_url": f"http://127.0.0.1:{server.port}", "key": "testing", "secret": "testing",
            "config_kwargs": {"connect_timeout": 1, "read_timeout": 0.2, "retries": {"max_attempts": 1}}}}))
        env = {"FSSPEC_CONFIG_DIR": str(config_dir), "AWS_DEFAULT_REGION": "us-east-1",
               "AWS_EC2_METADATA_DISABLED": "true", "AWS_CONFIG_FILE": os.devnull,
               "AWS_SHARED_CREDENTIALS_FILE": os.devnull}
        local = with_prefix(dataset, f"{dataset.parent}/", tmp_path / "local.jsonl")
        frames = [json.loads(line) for line in local.read_text().splitlines()][:2]
        uri = f"s3://{BUCKET}/data/a/mask.mp4"
        frames[1]["sources"][0]["masks"][0]["uri"] = uri
        path = tmp_path / "frames.jsonl"
        path.write_text("".join(json.dumps(f) + "\n" for f in frames))
        out = tmp_path / "out"
        result = run_cli("export", path, "--out", out, "--workers", "1", env=env, timeout=120)
        assert result.returncode == 1, result.stderr
        (failure,) = [json.loads(line) for line in (out / "failures.jsonl").read_text().splitlines()]
        assert (failure["frame_index"], failure["uri"], failure["error_type"]) == (1, uri, "MediaDecodeError")
        assert uri in failure["error"] and "timeout" in failure["error"].lower(), failure
        assert [e["frame_index"] for e in read_manifest(out)] == [0]
        assert server.accepted, "the requests never reached the endpoint"
    finally:
        server.close()


# ------------------------------------------------------------------ HTTPS with Range requests

class RangeHandler(http.server.SimpleHTTPRequestHandler):
    """Serves files, honouring `Range: bytes=a-b` (206 Partial Content); logs what it sent."""

    def log_message(self, *args) -> None:
        pass

    def _send_head(self):
        path = Path(self.translate_path(self.path))
        if not path.is_file():
            self.send_error(404)
            return None
        size = path.stat().st_size
        start, end = 0, size - 1
        wanted = self.headers.get("Range")
        if wanted:
            match = re.fullmatch(r"bytes=(\d*)-(\d*)", wanted.strip())
            if match is None or (not match.group(1) and not match.group(2)):
                self.send_error(416)
                return None
            if match.group(1):
                start = int(match.group(1))
                end = min(int(match.group(2)), size - 1) if match.group(2) else size - 1
            else:  # the last n bytes
                start = max(0, size - int(match.group(2)))
            if start >= size or end < start:
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{size}")
                self.end_headers()
                return None
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        else:
            self.send_response(200)
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Type", self.guess_type(str(path)))
        self.send_header("Content-Length", str(end - start + 1))
        self.end_headers()
        return path, start, end - start + 1, bool(wanted)

    def do_HEAD(self) -> None:
        self._send_head()

    def do_GET(self) -> None:
        head = self._send_head()
        if head is None:
            return
        path, start, length, ranged = head
        with open(path, "rb") as fh:
            fh.seek(start)
            self.wfile.write(fh.read(length))
        with self.server.lock:
            self.server.sent.append((self.path, length, ranged))


@pytest.fixture(scope="module")
def https(dataset, tmp_path_factory):
    """An HTTPS server on 127.0.0.1 (a self-signed certificate the clients trust through
    SSL_CERT_FILE) serving the dataset folder; yields (base URL, env, the log of bodies sent)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    certs = tmp_path_factory.mktemp("certs")
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
            .sign(key, hashes.SHA256()))
    (certs / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (certs / "key.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                      serialization.PrivateFormat.PKCS8,
                                                      serialization.NoEncryption()))
    handler = lambda *a, **kw: RangeHandler(*a, directory=str(dataset.parent), **kw)  # noqa: E731
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.lock, server.sent = threading.Lock(), []
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certs / "cert.pem", certs / "key.pem")
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}/", {"SSL_CERT_FILE": str(certs / "cert.pem")}, server
    finally:
        server.shutdown()
        server.server_close()


def test_https_input_is_fetched_once_per_file(https, dataset, local_export, tmp_path):
    base, env, server = https
    server.sent.clear()
    frames = with_prefix(dataset, base, tmp_path / "frames.jsonl")
    out = tmp_path / "out"
    result = run_cli("export", frames, "--out", out, "--workers", "2", env=env)
    assert result.returncode == 0, result.stderr
    assert comparable(tree(out)) == comparable(local_export)
    sent: dict[str, int] = {}
    for path, length, _ in server.sent:
        sent[path] = sent.get(path, 0) + length
    used = {u for line in dataset.read_text().splitlines() for s in json.loads(line)["sources"]
            for u in [s["uri"]] + [m["uri"] for m in s["masks"]]}
    media = {f"/{uri}": (dataset.parent / uri).stat().st_size for uri in used}
    # every media file crossed the network exactly once (a local copy serves all its samples)
    assert sent == media


def test_https_streaming_uses_range_requests(https, dataset, local_export, tmp_path):
    base, env, server = https
    server.sent.clear()
    frames = with_prefix(dataset, base, tmp_path / "frames.jsonl")
    out = tmp_path / "out"
    result = run_cli("export", frames, "--out", out, "--workers", "1", env={**env, "MASKDEC_REMOTE_CACHE": "0"})
    assert result.returncode == 0, result.stderr
    assert comparable(tree(out)) == comparable(local_export)
    assert any(ranged for _, _, ranged in server.sent)


def test_https_without_trust_fails_each_sample_not_the_job(https, dataset, tmp_path):
    base, _, _ = https
    frames = with_prefix(dataset, base, tmp_path / "frames.jsonl")
    out = tmp_path / "out"
    result = run_cli("export", frames, "--out", out, "--workers", "1", env={})  # the certificate is not trusted
    assert result.returncode == 1
    failures = [json.loads(line) for line in (out / "failures.jsonl").read_text().splitlines()]
    assert len(failures) == 21 and all(f["uri"].startswith(base) for f in failures)
    assert all(f["error_type"] == "MediaDecodeError" and "certificate" in f["error"].lower() for f in failures)


def test_https_missing_file_is_not_found(https, dataset, tmp_path):
    base, env, _ = https
    frames = [json.loads(line) for line in dataset.read_text().splitlines()][:3]
    frames[2]["sources"][0]["masks"][0]["uri"] = "a/gone.mp4"
    (tmp_path / "in.jsonl").write_text("".join(json.dumps(f) + "\n" for f in frames))
    path = with_prefix(tmp_path / "in.jsonl", base, tmp_path / "frames.jsonl")
    result = run_cli("export", path, "--out", tmp_path / "out", "--workers", "1", env=env)
    assert result.returncode == 1, result.stderr
    failures = [json.loads(line) for line in (tmp_path / "out" / "failures.jsonl").read_text().splitlines()]
    assert [(f["frame_index"], f["uri"], f["error_type"]) for f in failures] == [
        (2, f"{base}a/gone.mp4", "MediaNotFoundError")]
