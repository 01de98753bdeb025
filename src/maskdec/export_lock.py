"""One export at a time per --out: a lock file naming its holder.

Locally the lock is `<out>/.maskdec.lock`, held with flock(2) for the run's
lifetime: the kernel lets go when the holder dies (even by SIGKILL), so a
lock file left by a dead run is taken over, with a note naming it. The file
holds the holder's pid, host and start time, for the message a second run
prints before it exits. On file systems without flock the holder's pid is
checked instead (a dead process on this host: stale). On object stores the
lock is an object with the same content, checked before and removed after the
run; it cannot exclude two runs that start within the same moment, and a
lock left by a run on another host that died must be removed by hand.
"""
from __future__ import annotations

import contextlib
import datetime
import errno
import json
import os
import socket
from typing import Iterator, Optional

from .errors import MaskdecError
from .export_store import FsspecStore, LocalStore, OutputStore

__all__ = ["LOCK_NAME", "OutputLockedError", "hold_lock"]

LOCK_NAME = ".maskdec.lock"
_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


class OutputLockedError(MaskdecError, BlockingIOError):
    """Another export is writing into the same --out."""


def _holder() -> dict:
    now = datetime.datetime.now(datetime.timezone.utc)
    return {"pid": os.getpid(), "host": socket.gethostname(), "started": now.isoformat(timespec="seconds")}


def _parse(data: bytes) -> Optional[dict]:
    try:
        info = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None
    return info if isinstance(info, dict) else None


def describe(info: Optional[dict]) -> str:
    """`pid 123 on host h since 2026-...` (or what is known of it)."""
    if not info:
        return "an unknown holder"
    return f"pid {info.get('pid')} on host {info.get('host')!r} since {info.get('started')}"


def _alive(info: dict) -> bool:
    """Whether the holder may still run: only a process of this host can be seen dead."""
    if info.get("host") != socket.gethostname() or not isinstance(info.get("pid"), int):
        return True
    try:
        os.kill(info["pid"], 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _locked(store: OutputStore, info: Optional[dict], where: str) -> OutputLockedError:
    return OutputLockedError(f"--out {store.url} is in use by another maskdec export ({describe(info)}); wait for "
                             f"it to end, or use another --out (a lock left by a run that is gone: remove {where})")


def _stale_note(info: Optional[dict]) -> Optional[str]:
    if not info:
        return None
    return f"took over the lock of an earlier export that is gone ({describe(info)})"


@contextlib.contextmanager
def _hold_local(store: LocalStore) -> Iterator[Optional[str]]:
    import fcntl

    dfd = os.open(store.root, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | _O_CLOEXEC)
    path = f"{store.url}/{LOCK_NAME}"
    try:
        for _attempt in range(10):
            try:
                fd = os.open(LOCK_NAME, os.O_RDWR | os.O_CREAT | _O_NOFOLLOW | _O_CLOEXEC, 0o644, dir_fd=dfd)
            except OSError as exc:
                raise MaskdecError(f"--out {store.url}: cannot create the lock file {LOCK_NAME}: "
                                   f"{exc.strerror or exc}") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                info = _parse(os.pread(fd, 65536, 0))
                os.close(fd)
                raise _locked(store, info, path) from None
            except OSError as exc:  # no flock here (ENOLCK, EOPNOTSUPP): judge by the recorded pid
                if exc.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
                    os.close(fd)
                    raise
                info = _parse(os.pread(fd, 65536, 0))
                if info and _alive(info):
                    os.close(fd)
                    raise _locked(store, info, path) from None
            # a holder that was ending may have removed the file we locked: lock the current one
            try:
                current = os.stat(LOCK_NAME, dir_fd=dfd, follow_symlinks=False)
            except FileNotFoundError:
                current = None
            mine = os.fstat(fd)
            if current is not None and (current.st_ino, current.st_dev) == (mine.st_ino, mine.st_dev):
                break
            os.close(fd)
        else:
            raise _locked(store, None, path)
        try:
            note = _stale_note(_parse(os.pread(fd, 65536, 0)))
            os.ftruncate(fd, 0)
            os.pwrite(fd, (json.dumps(_holder()) + "\n").encode("utf-8"), 0)
            yield note
        finally:
            with contextlib.suppress(OSError):
                os.unlink(LOCK_NAME, dir_fd=dfd)  # still holding it: nobody can take it in between
            os.close(fd)
    finally:
        os.close(dfd)


@contextlib.contextmanager
def _hold_remote(store: FsspecStore) -> Iterator[Optional[str]]:
    text = store.read_text(LOCK_NAME)
    info = _parse(text.encode("utf-8")) if text else None
    if text and (info is None or _alive(info)):
        raise _locked(store, info, f"{store.url}/{LOCK_NAME}")
    store.write_bytes(LOCK_NAME, (json.dumps(_holder()) + "\n").encode("utf-8"))
    try:
        yield _stale_note(info)
    finally:
        with contextlib.suppress(Exception):
            store.remove(LOCK_NAME)


def hold_lock(store: OutputStore):
    """A context manager holding the output's lock; yields a note when it took over a
    stale lock (else None); raises OutputLockedError when another export holds it."""
    return _hold_remote(store) if store.remote else _hold_local(store)
