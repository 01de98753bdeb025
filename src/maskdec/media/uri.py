"""Where a media URI points: a local path, or a remote object read through fsspec.

Remote files are decoded whole (one forward pass per file), so by default
they are first copied into a local temporary file that lives as long as the
reader keeps it open: each file crosses the network once, and FFmpeg's seeks
(an MP4's index sits at its end) stay local. MASKDEC_REMOTE_CACHE=0 streams
through fsspec instead (HTTP Range requests, S3 ranged GETs);
MASKDEC_CACHE_DIR chooses where the copies go (default: the temp folder).
Endpoints, credentials, timeouts and retries are fsspec's own settings:
`FSSPEC_S3_ENDPOINT_URL`, `FSSPEC_S3='{"config_kwargs": {...}}'`, config files
in FSSPEC_CONFIG_DIR, or the storage backend's usual variables (AWS_*).

S3 (s3fs 2026.9): `config_kwargs` sets botocore's `connect_timeout`,
`read_timeout` and `retries` (`{"max_attempts": 1}`: botocore retries nothing).
s3fs wraps each call in its own loop of 5 attempts with 0.1-0.8 s pauses, which
no fsspec setting reaches: its count is a class attribute, S3FileSystem.retries,
and a `retries` key in the config goes to aiobotocore's session, which refuses
it (TypeError; fsspec/s3fs#541). Opening a file makes two calls, so an endpoint
that accepts connections and never answers fails after about
10 x read_timeout + 4 s with botocore retries off: 7 s with
`{"connect_timeout": 1, "read_timeout": 0.2, "retries": {"max_attempts": 1}}`,
15 s with read_timeout 1 (minutes with the defaults); a refused connection fails
at once. In Python, `s3fs.S3FileSystem.retries = 1` before first use cuts the 5.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from typing import IO, Optional, Union
from urllib.parse import unquote, urlparse

from ..errors import MediaDecodeError, MediaNotFoundError, MissingExtraError

#: Bytes copied per read when a remote file is cached locally.
_COPY_CHUNK = 4 << 20

REMOTE_SCHEMES = ("s3", "gs", "gcs", "http", "https", "az", "abfs", "azure", "memory")


def is_remote(uri: str) -> bool:
    scheme = urlparse(uri).scheme.lower()
    return scheme in REMOTE_SCHEMES


def resolve_uri(uri: str, base_dir: Optional[str] = None) -> str:
    """A local absolute path for plain paths and file:// URIs (relative ones
    resolve against `base_dir`); remote URIs are returned unchanged."""
    if is_remote(uri):
        return uri
    if uri.lower().startswith("file://"):
        parsed = urlparse(uri)
        path = unquote(parsed.path)
        if parsed.netloc and parsed.netloc != "localhost":  # file://relative/x.png
            path = parsed.netloc + path
    else:
        path = uri
    path = os.path.expanduser(path)
    if not os.path.isabs(path) and base_dir is not None:
        path = os.path.join(base_dir, path)
    return os.path.abspath(path)


def remote_cache_enabled() -> bool:
    """Whether remote files are copied locally before decoding (MASKDEC_REMOTE_CACHE, default on)."""
    return os.environ.get("MASKDEC_REMOTE_CACHE", "1").strip().lower() not in ("0", "false", "no", "off")


def open_uri(uri: str, *, cache: Optional[bool] = None) -> Union[str, IO[bytes]]:
    """What PyAV can open: a local path (checked to exist), or for a remote URI a local
    temporary copy that vanishes when closed (`cache`, default remote_cache_enabled()),
    else an fsspec file object reading the remote bytes on demand."""
    if not is_remote(uri):
        if not os.path.exists(uri):
            raise MediaNotFoundError(f"media file not found: {uri}")
        if os.path.isdir(uri):
            raise MediaNotFoundError(f"media path is a folder, not a file: {uri}")
        return uri
    try:
        import fsspec
    except ImportError:
        raise MissingExtraError(
            f"{uri}: reading remote URIs needs fsspec; install it with `pip install maskdec[remote]`") from None
    if cache is None:
        cache = remote_cache_enabled()
    try:
        remote = fsspec.open(uri, "rb").open()
    except FileNotFoundError as exc:
        raise _not_found(uri, exc) from None
    except ImportError as exc:
        raise MissingExtraError(f"{uri}: {exc}; install `maskdec[remote]`") from None
    except Exception as exc:  # noqa: BLE001 - network and auth errors of any fsspec backend
        raise MediaDecodeError(f"{uri}: cannot open: {type(exc).__name__}: {exc}") from None
    if not cache:
        return remote
    return _local_copy(uri, remote)


def _not_found(uri: str, exc: FileNotFoundError) -> Union[MediaNotFoundError, MediaDecodeError]:
    """fsspec's HTTP backend reports any failure to reach a file as FileNotFoundError;
    only a missing file (no cause, or an HTTP 404/410) is one."""
    cause = exc.__cause__
    if cause is None or isinstance(cause, FileNotFoundError) or getattr(cause, "status", None) in (404, 410):
        return MediaNotFoundError(f"media file not found: {uri}")
    return MediaDecodeError(f"{uri}: cannot open: {type(cause).__name__}: {cause}")


def _local_copy(uri: str, remote: IO[bytes]) -> IO[bytes]:
    """Copy an open remote file into an anonymous local temporary file, positioned at 0."""
    suffix = os.path.splitext(urlparse(uri).path)[1][:16]
    local = tempfile.NamedTemporaryFile(prefix="maskdec-remote-", suffix=suffix,
                                        dir=os.environ.get("MASKDEC_CACHE_DIR") or None)
    try:
        with remote:
            shutil.copyfileobj(remote, local, _COPY_CHUNK)
        local.flush()
        local.seek(0)
    except FileNotFoundError as exc:
        local.close()
        raise _not_found(uri, exc) from None
    except Exception as exc:  # noqa: BLE001 - a dropped connection, a timeout, an auth error ...
        local.close()
        raise MediaDecodeError(f"{uri}: reading it failed: {type(exc).__name__}: {exc}") from None
    return local
