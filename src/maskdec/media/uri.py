"""Where a media URI points: a local path, or a remote object read through fsspec; and
what an untrusted frames file may make maskdec read.

Local media must be regular files: a FIFO, a device (`/dev/stdin`, `/dev/zero`), a socket
or an empty file is refused before anything reads it, so none can hang or flood a decode.

Remote files are decoded whole (one forward pass per file), so by default they are first
copied into an anonymous local temporary file (no name on disk: nothing of it survives a
crash, however the process ends) that lives as long as the reader keeps it open: each file
crosses the network once, and FFmpeg's seeks (an MP4's index sits at its end) stay local.
MASKDEC_REMOTE_CACHE=0 streams through fsspec instead (HTTP Range requests, S3 ranged GETs);
MASKDEC_CACHE_DIR chooses the folder of the copies (created when missing; default: the
temp folder). A remote file may hold at most MASKDEC_MAX_REMOTE_BYTES (4 GiB): its declared
size (Content-Length, the object's size) is checked before reading, and the bytes read
while copying or streaming. An http(s) server gets MASKDEC_REMOTE_TIMEOUT seconds (30) to
accept a connection and for each read, unless fsspec's own settings give a `timeout`.

What frames may reach: by default any local file the process can read, and any URI of
REMOTE_SCHEMES with the process's credentials (AWS_*, fsspec config). Two settings narrow it:
MASKDEC_URI_SCHEMES (comma-separated, e.g. `file` for local files only, `file,s3`) and
MASKDEC_MEDIA_ROOTS (folders separated by os.pathsep: local media must lie inside one of
them once symlinks are resolved). A refused URI raises MediaAccessError.

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
import stat
import tempfile
from typing import IO, Any, Optional, Union
from urllib.parse import unquote, urlparse

from ..errors import MediaAccessError, MediaDecodeError, MediaNotFoundError, MissingExtraError, OptionError
from ..limits import format_bytes, max_remote_bytes, remote_timeout

#: Bytes copied per read when a remote file is cached locally.
_COPY_CHUNK = 4 << 20

REMOTE_SCHEMES = ("s3", "gs", "gcs", "http", "https", "az", "abfs", "azure", "memory")
_HTTP = ("http", "https")


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


# ------------------------------------------------------------------ what frames may reach

def allowed_schemes() -> frozenset:
    """The URI schemes media may use (MASKDEC_URI_SCHEMES; "file" stands for local paths)."""
    text = os.environ.get("MASKDEC_URI_SCHEMES", "").strip()
    if not text:
        return frozenset(("file",) + REMOTE_SCHEMES)
    schemes = frozenset(s.strip().lower() for s in text.split(",") if s.strip())
    unknown = sorted(schemes - {"file", *REMOTE_SCHEMES})
    if unknown:
        raise OptionError(f"MASKDEC_URI_SCHEMES={text!r}: unknown scheme {unknown[0]!r}; "
                          f"known: file, {', '.join(REMOTE_SCHEMES)}")
    return schemes


def media_roots() -> Optional[list[str]]:
    """The folders local media must lie in (MASKDEC_MEDIA_ROOTS), symlinks resolved; None: anywhere."""
    text = os.environ.get("MASKDEC_MEDIA_ROOTS", "").strip()
    if not text:
        return None
    return [os.path.realpath(os.path.expanduser(r)) for r in text.split(os.pathsep) if r.strip()]


def check_allowed(uri: str) -> None:
    """Raise MediaAccessError when the settings do not let maskdec read `uri`."""
    scheme = urlparse(uri).scheme.lower() if is_remote(uri) else "file"
    if scheme not in allowed_schemes():
        raise MediaAccessError(f"{uri}: the {scheme!r} scheme is not allowed "
                               f"(MASKDEC_URI_SCHEMES={os.environ.get('MASKDEC_URI_SCHEMES', '')!r})")
    roots = media_roots() if scheme == "file" else None
    if roots is not None:
        try:
            real = os.path.realpath(uri)
        except ValueError:  # a NUL character: not found, reported by the caller
            return
        if not any(os.path.commonpath([real, root]) == root for root in roots):
            raise MediaAccessError(f"{uri}: outside the media folders MASKDEC_MEDIA_ROOTS allows "
                                   f"({os.pathsep.join(roots)})")


# ------------------------------------------------------------------ local files

_KINDS = ((stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


def check_local_file(path: str) -> os.stat_result:
    """The stat of a local media file; MediaNotFoundError / MediaDecodeError / MediaAccessError
    unless it is a non-empty regular file (symlinks followed)."""
    try:
        st = os.stat(path)
    except ValueError:
        raise MediaNotFoundError(f"media file not found: {path!r} (a path cannot hold a NUL character)") from None
    except (FileNotFoundError, NotADirectoryError):
        raise MediaNotFoundError(f"media file not found: {path}") from None
    except PermissionError:
        raise MediaAccessError(f"{path}: permission denied") from None
    except OSError as exc:  # a symlink loop, a name too long ...
        raise MediaNotFoundError(f"media file cannot be reached: {path}: {exc.strerror or exc}") from None
    if stat.S_ISDIR(st.st_mode):
        raise MediaNotFoundError(f"media path is a folder, not a file: {path}")
    if not stat.S_ISREG(st.st_mode):
        kind = next((name for test, name in _KINDS if test(st.st_mode)), "not a regular file")
        raise MediaDecodeError(f"{path}: is {kind}; maskdec reads media from regular files only")
    if st.st_size == 0:
        raise MediaDecodeError(f"{path}: is empty (0 bytes)")
    return st


# ------------------------------------------------------------------ remote files

def storage_options(uri: str) -> dict:
    """fsspec options maskdec adds for `uri`: for http(s), connect and read timeouts of
    MASKDEC_REMOTE_TIMEOUT seconds unless fsspec's configuration already sets a timeout."""
    protocol = urlparse(uri).scheme.lower()
    if protocol not in _HTTP:
        return {}
    import fsspec.config

    configured: dict = {}
    for name in _HTTP:  # fsspec applies both sections to its HTTP filesystem
        configured.update(fsspec.config.conf.get(name, {}))
    client = dict(configured.get("client_kwargs") or {})
    if "timeout" in configured or "timeout" in client:
        return {}
    try:
        import aiohttp
    except ImportError:  # fsspec reports the missing dependency itself
        return {}
    seconds = remote_timeout()
    client["timeout"] = aiohttp.ClientTimeout(total=None, sock_connect=seconds, sock_read=seconds)
    return {"client_kwargs": client}


def remote_fs(uri: str) -> tuple[Any, str]:
    """(fsspec filesystem, path) for a remote URI, with maskdec's storage_options."""
    import fsspec

    return fsspec.core.url_to_fs(uri, **storage_options(uri))


def cache_folder() -> Optional[str]:
    """The folder for local copies of remote files (MASKDEC_CACHE_DIR, created when missing), or None."""
    folder = os.environ.get("MASKDEC_CACHE_DIR", "").strip() or None
    if folder is None:
        return None
    try:
        os.makedirs(folder, exist_ok=True)
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise OptionError(f"MASKDEC_CACHE_DIR={folder!r} cannot be used as a folder: {reason}") from None
    return folder


def open_uri(uri: str, *, cache: Optional[bool] = None) -> Union[str, IO[bytes]]:
    """What PyAV can open: a local path (checked to be a regular file), or for a remote URI an
    anonymous local copy that vanishes when closed (`cache`, default remote_cache_enabled()),
    else an fsspec file object reading the remote bytes on demand. Both are checked against
    the settings of what frames may reach (check_allowed) and the remote size limit."""
    check_allowed(uri)
    if not is_remote(uri):
        check_local_file(uri)
        return uri
    try:
        import fsspec
    except ImportError:
        raise MissingExtraError(
            f"{uri}: reading remote URIs needs fsspec; install it with `pip install maskdec[remote]`") from None
    if cache is None:
        cache = remote_cache_enabled()
    limit = max_remote_bytes()
    options = storage_options(uri)
    try:
        remote = fsspec.open(uri, "rb", **options).open()
    except FileNotFoundError as exc:
        raise _not_found(uri, exc) from None
    except ImportError as exc:
        raise MissingExtraError(f"{uri}: {exc}; install `maskdec[remote]`") from None
    except Exception as exc:  # noqa: BLE001 - network and auth errors of any fsspec backend
        raise MediaDecodeError(f"{uri}: cannot open: {type(exc).__name__}: {exc}") from None
    size = getattr(remote, "size", None)
    if isinstance(size, int) and size > limit:
        remote.close()
        raise _too_large(uri, limit, f"its size is {size} bytes")
    if not cache:
        return remote if isinstance(size, int) else _Capped(remote, uri, limit)
    return _local_copy(uri, remote, limit)


def _too_large(uri: str, limit: int, what: str) -> MediaDecodeError:
    return MediaDecodeError(f"{uri}: {what}, more than the {format_bytes(limit)} a remote file may hold "
                            f"(MASKDEC_MAX_REMOTE_BYTES; raise it for genuinely larger files)")


def _not_found(uri: str, exc: FileNotFoundError) -> Union[MediaNotFoundError, MediaDecodeError]:
    """fsspec's HTTP backend reports any failure to reach a file as FileNotFoundError;
    only a missing file (no cause, or an HTTP 404/410) is one."""
    cause = exc.__cause__
    if cause is None or isinstance(cause, FileNotFoundError) or getattr(cause, "status", None) in (404, 410):
        return MediaNotFoundError(f"media file not found: {uri}")
    return MediaDecodeError(f"{uri}: cannot open: {type(cause).__name__}: {cause}")


def _local_copy(uri: str, remote: IO[bytes], limit: int) -> IO[bytes]:
    """Copy an open remote file, at most `limit` bytes, into an anonymous local temporary
    file (in cache_folder()), positioned at 0."""
    try:
        local = tempfile.TemporaryFile(prefix="maskdec-remote-", dir=cache_folder())
    except OptionError:
        remote.close()
        raise
    except OSError as exc:
        remote.close()
        raise OptionError(f"cannot create a local copy of {uri} in {cache_folder() or tempfile.gettempdir()} "
                          f"(MASKDEC_CACHE_DIR): {exc.strerror or exc}") from None
    copied = 0
    try:
        with remote:
            while True:
                chunk = remote.read(_COPY_CHUNK)
                if not chunk:
                    break
                copied += len(chunk)
                if copied > limit:
                    raise _too_large(uri, limit, f"it sent more than {limit} bytes")
                local.write(chunk)
        local.flush()
        local.seek(0)
    except MediaDecodeError:
        local.close()
        raise
    except FileNotFoundError as exc:
        local.close()
        raise _not_found(uri, exc) from None
    except Exception as exc:  # noqa: BLE001 - a dropped connection, a timeout, an auth error ...
        local.close()
        raise MediaDecodeError(f"{uri}: reading it failed: {type(exc).__name__}: {exc}") from None
    return local


class _Capped:
    """A streamed remote file of unknown size whose reads raise MediaDecodeError past `limit` bytes."""

    def __init__(self, raw: IO[bytes], uri: str, limit: int) -> None:
        self._raw, self.uri, self.limit, self._read = raw, uri, limit, 0

    def read(self, n: int = -1) -> bytes:
        want = self.limit + 1 - self._read if n is None or n < 0 else min(n, self.limit + 1 - self._read)
        data = self._raw.read(max(want, 0))
        self._read += len(data)
        if self._read > self.limit:
            raise _too_large(self.uri, self.limit, f"it sent more than {self.limit} bytes")
        return data

    def close(self) -> None:
        self._raw.close()

    def __enter__(self) -> "_Capped":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
