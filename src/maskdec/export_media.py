"""What a media file is right now, so a resumed export notices changed files.

A local file's identity is its size and mtime_ns; a remote object's is what
fsspec's info() tells of its version (VersionId, ETag, checksums, modification
time, size: whichever the store gives), asked with the same storage options and
timeouts as the reads (media.uri.remote_fs). URIs the settings do not let
maskdec read (MASKDEC_URI_SCHEMES, MASKDEC_MEDIA_ROOTS) are not asked about.
Files whose identity cannot be known
(missing, unreachable, or still unanswered when the answers stalled for
`stall` seconds) get None, and None never counts as a
change: those samples fail or succeed on their own.
"""
from __future__ import annotations

import os
import queue
import threading
import time
from typing import Iterable, Mapping, Optional

from .errors import MaskdecError
from .media.uri import check_allowed, is_remote, remote_fs

__all__ = ["media_identities", "changed_media"]

#: info() keys that tell one version of a remote object from another, most specific first.
_VERSION_KEYS = ("VersionId", "version_id", "generation", "ETag", "etag", "md5Hash", "Content-MD5", "crc32c",
                 "content_md5", "LastModified", "last_modified", "Last-Modified", "updated", "mtime", "size")
_REMOTE_THREADS = 16


def _allowed(uri: str) -> bool:
    try:
        check_allowed(uri)
    except MaskdecError:
        return False
    return True


def _local_identity(path: str) -> Optional[str]:
    if not _allowed(path):
        return None
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return None
    return f"size={st.st_size};mtime_ns={st.st_mtime_ns}"


def _remote_identity(uri: str) -> Optional[str]:
    if not _allowed(uri):
        return None
    try:
        fs, path = remote_fs(uri)
        info = fs.info(path)
    except Exception:  # noqa: BLE001 - unknown is an answer: the sample's own read reports the error
        return None
    parts = [f"{key}={info[key]}" for key in _VERSION_KEYS if info.get(key) not in (None, "")]
    return ";".join(parts) or None


def media_identities(uris: Iterable[str], *, stall: float = 30.0) -> dict[str, Optional[str]]:
    """The identity of every URI (local paths: os.stat; remote: fsspec info() in
    threads; when no answer came for `stall` seconds, the unanswered ones: None)."""
    out: dict[str, Optional[str]] = {}
    remote: list[str] = []
    for uri in dict.fromkeys(uris):
        if is_remote(uri):
            remote.append(uri)
        else:
            out[uri] = _local_identity(uri)
    if remote:
        todo: "queue.Queue[str]" = queue.Queue()
        for uri in remote:
            todo.put(uri)
        found: dict[str, Optional[str]] = {}

        def work() -> None:
            while True:
                try:
                    uri = todo.get_nowait()
                except queue.Empty:
                    return
                found[uri] = _remote_identity(uri)

        threads = [threading.Thread(target=work, daemon=True) for _ in range(min(_REMOTE_THREADS, len(remote)))]
        for thread in threads:
            thread.start()
        answered, last = 0, time.monotonic()
        while any(t.is_alive() for t in threads) and time.monotonic() - last < stall:
            time.sleep(0.02)
            if len(found) != answered:
                answered, last = len(found), time.monotonic()
        out.update({uri: found.get(uri) for uri in remote})
    return out


def changed_media(before: Mapping[str, Optional[str]], now: Mapping[str, Optional[str]]) -> list[str]:
    """URIs known both times whose identity differs, in the order of `now`."""
    return [uri for uri, ident in now.items()
            if ident is not None and before.get(uri) is not None and before[uri] != ident]
