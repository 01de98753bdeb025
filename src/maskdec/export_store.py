"""Where an export writes: a local folder or an fsspec URL (s3://, gs:// ...).

Every output appears whole or not at all: locally through a temporary name
in the same folder and a rename; on object stores through one whole-object
write. The manifest is a journal: `append_journal` adds finished samples'
lines (appended to the file locally; a new whole object under
`<name>.parts/` on object stores, which cannot append), `read_journal` reads
them back and `compact_journal` replaces them with one whole file.

A local store never follows a symbolic link below its root: folders are
opened one component at a time with O_NOFOLLOW, files are created with
O_EXCL | O_NOFOLLOW and renamed into place (a rename replaces a link, never
its target), and listings skip links. Only the root folder and the output
folders (DIRS) are ever listed, and `clean_temp` removes only files named
like maskdec's own temporary files (TEMP_PATTERN) there.
"""
from __future__ import annotations

import contextlib
import errno
import os
import re
import tempfile
import uuid
from pathlib import Path
from typing import IO, Iterable, Iterator, Optional, Union

from .errors import MaskdecError, MissingExtraError
from .media.uri import is_remote

__all__ = ["LocalStore", "FsspecStore", "OutputStore", "OutputError", "open_store", "DIRS", "ROOT_FILES", "TEMP_SUFFIX",
           "TEMP_PATTERN", "is_temp_name"]

#: Temporary files end so; `clean_temp` removes the ones a killed run left.
TEMP_SUFFIX = ".tmp"
#: The exact form of maskdec's temporary names: `.<output name>.<pid>-<8 hex>.tmp`.
TEMP_PATTERN = re.compile(r"\.[A-Za-z0-9_][A-Za-z0-9_.-]*\.(?P<pid>[0-9]+)-[0-9a-f]{8}\.tmp")
#: The folders an export writes its per-sample files into (each flat).
DIRS = ("label_maps", "images", "samples", "shards", "roi_masks", "panoptic", "data")
#: The files an export writes at the root of its output (the last three: format's finish steps).
ROOT_FILES = ("export.json", "labels.json", "dataset_meta.json", "manifest.jsonl", "failures.jsonl",
              "annotations.json", "panoptic.json", "README.md")

_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_O_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_LINK_ERRNOS = (errno.ELOOP, errno.ENOTDIR, getattr(errno, "EMLINK", errno.ELOOP))


class OutputError(MaskdecError, OSError):
    """An output cannot be written, read or removed (a link in the way, a full disk, a name
    the file system refuses); names the output."""


def is_temp_name(name: str, pid: Optional[int] = None) -> bool:
    """Whether a file name has the exact form of maskdec's temporary files (of process `pid`)."""
    match = TEMP_PATTERN.fullmatch(name)
    return match is not None and (pid is None or match.group("pid") == str(pid))


def _split(rel: str) -> tuple[str, str]:
    parent, _, name = rel.rpartition("/")
    if not name or name in (".", "..") or any(p in (".", "..") for p in parent.split("/")):
        raise OutputError(f"not an output name: {rel!r}")
    return parent, name


class LocalStore:
    """A local output folder."""

    remote = False
    #: seconds between journal appends (0: every batch of finished samples at once)
    journal_interval = 0.0

    def __init__(self, root: Union[str, os.PathLike]) -> None:
        self.root = Path(root).expanduser().absolute()
        self.url = str(self.root)

    def _error(self, rel: str, exc: OSError, doing: str) -> OutputError:
        where = f"{self.url}/{rel}" if rel else self.url
        if exc.errno in _LINK_ERRNOS:
            return OutputError(f"cannot {doing} {where}: a symbolic link or a file is in the way (maskdec never "
                               f"writes through links in --out)")
        return OutputError(f"cannot {doing} {where}: {exc.strerror or exc}")

    @contextlib.contextmanager
    def _dir(self, rel_dir: str, *, create: bool) -> Iterator[int]:
        """A descriptor of folder `rel_dir` of the root, opened one component at a
        time without following links (created when `create`)."""
        fd = os.open(self.root, os.O_RDONLY | _O_DIRECTORY | _O_CLOEXEC)
        try:
            for part in (p for p in rel_dir.split("/") if p):
                if create:
                    with contextlib.suppress(FileExistsError):
                        os.mkdir(part, 0o777, dir_fd=fd)
                sub = os.open(part, os.O_RDONLY | _O_DIRECTORY | _O_NOFOLLOW | _O_CLOEXEC, dir_fd=fd)
                os.close(fd)
                fd = sub
            yield fd
        finally:
            os.close(fd)

    def prepare(self) -> None:
        """Create the root folder; refuse links where maskdec's own outputs go."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise MaskdecError(f"--out {self.root}: cannot create the output folder: {exc.strerror or exc}") from None
        if not self.root.is_dir():
            raise MaskdecError(f"--out {self.root}: not a folder")
        for name in (*ROOT_FILES, *DIRS):
            if (self.root / name).is_symlink():
                raise OutputError(f"--out {self.root}: {name} is a symbolic link; maskdec never writes through "
                                  f"links in --out (remove it, or choose another --out)")

    def write_bytes(self, rel: str, data: bytes) -> None:
        with self.open_write(rel) as fh:
            fh.write(data)

    @contextlib.contextmanager
    def open_write(self, rel: str) -> Iterator[IO[bytes]]:
        """A binary file that becomes `rel` whole when the block ends without error."""
        parent, name = _split(rel)
        try:
            with self._dir(parent, create=True) as dfd:
                tmp: Optional[str] = f".{name}.{os.getpid()}-{uuid.uuid4().hex[:8]}{TEMP_SUFFIX}"
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_NOFOLLOW | _O_CLOEXEC, 0o666,
                             dir_fd=dfd)
                try:
                    with os.fdopen(fd, "wb") as fh:
                        yield fh
                    os.replace(tmp, name, src_dir_fd=dfd, dst_dir_fd=dfd)
                    tmp = None
                finally:
                    if tmp is not None:
                        with contextlib.suppress(OSError):
                            os.unlink(tmp, dir_fd=dfd)
        except OutputError:
            raise
        except OSError as exc:
            raise self._error(rel, exc, "write") from None

    def read_text(self, rel: str) -> Optional[str]:
        parent, name = _split(rel)
        try:
            with self._dir(parent, create=False) as dfd:
                fd = os.open(name, os.O_RDONLY | _O_NOFOLLOW | _O_CLOEXEC, dir_fd=dfd)
                with os.fdopen(fd, "rb") as fh:
                    data = fh.read()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise self._error(rel, exc, "read") from None
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            raise OutputError(f"{self.url}/{rel} is not UTF-8 text; it was not written by maskdec") from None

    def _listing(self, rel_dir: str) -> list[os.DirEntry]:
        path = self.root / rel_dir if rel_dir else self.root
        if rel_dir and (path.is_symlink() or not path.is_dir()):
            return []
        try:
            with os.scandir(path) as it:
                return list(it)
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise self._error(rel_dir, exc, "list") from None

    def entries(self) -> list[str]:
        """The names at the root, whatever they are."""
        return sorted(e.name for e in self._listing(""))

    def files(self) -> set[str]:
        """Regular files (not links) at the root and in DIRS, as paths relative to the root with '/'."""
        out = {e.name for e in self._listing("") if e.is_file(follow_symlinks=False)}
        for folder in DIRS:
            out.update(f"{folder}/{e.name}" for e in self._listing(folder) if e.is_file(follow_symlinks=False))
        return out

    def remove(self, rel: str) -> None:
        """Remove one file (a link is removed, never its target); a missing file is fine."""
        parent, name = _split(rel)
        try:
            with self._dir(parent, create=False) as dfd:
                os.unlink(name, dir_fd=dfd)
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise self._error(rel, exc, "remove") from None

    def remove_many(self, rels: Iterable[str]) -> None:
        for rel in rels:
            self.remove(rel)

    def remove_empty_dir(self, rel: str) -> None:
        """Remove folder `rel` if it is empty (and a real folder)."""
        path = self.root / rel
        if path.is_symlink():
            return
        with contextlib.suppress(OSError):
            path.rmdir()

    def clean_temp(self, pid: Optional[int] = None) -> int:
        """Remove temporary files a killed run (or the process `pid`) left behind (exact
        TEMP_PATTERN names, at the root and in DIRS only); returns how many."""
        count = 0
        for folder in ("", *DIRS):
            for entry in self._listing(folder):
                if is_temp_name(entry.name, pid) and not entry.is_dir(follow_symlinks=False):
                    self.remove(f"{folder}/{entry.name}" if folder else entry.name)
                    count += 1
        return count

    # ------------------------------------------------------------ journal
    def append_journal(self, rel: str, text: str) -> None:
        parent, name = _split(rel)
        try:
            with self._dir(parent, create=True) as dfd:
                fd = os.open(name, os.O_WRONLY | os.O_APPEND | os.O_CREAT | _O_NOFOLLOW | _O_CLOEXEC, 0o666,
                             dir_fd=dfd)
                with os.fdopen(fd, "a", encoding="utf-8") as fh:
                    fh.write(text)
        except OSError as exc:
            raise self._error(rel, exc, "append to") from None

    def read_journal(self, rel: str) -> str:
        return self.read_text(rel) or ""

    def compact_journal(self, rel: str, text: str) -> None:
        self.write_bytes(rel, text.encode("utf-8"))


class FsspecStore:
    """An output prefix on an fsspec filesystem (object stores: whole-object writes).

    Storage options (endpoint, credentials, timeouts, retries) come from
    fsspec's own configuration: `FSSPEC_S3_ENDPOINT_URL=...`, `FSSPEC_S3='{json}'`
    or files in `FSSPEC_CONFIG_DIR`.
    """

    remote = True
    journal_interval = 2.0

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")
        self._fs = None
        self._root: Optional[str] = None
        self._seq = 0

    def __getstate__(self) -> dict:
        return {"url": self.url}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["url"])

    @property
    def fs(self):
        if self._fs is None:
            try:
                import fsspec
            except ImportError:
                raise MissingExtraError(f"--out {self.url}: writing to remote storage needs fsspec; install "
                                        f"`pip install maskdec[remote]`") from None
            try:
                self._fs, self._root = fsspec.core.url_to_fs(self.url)
            except ImportError as exc:
                raise MissingExtraError(f"--out {self.url}: {exc}; install `maskdec[remote]`") from None
            except Exception as exc:  # noqa: BLE001 - a bad URL or storage option
                raise OutputError(f"--out {self.url}: {exc}") from None
            self._root = self._root.rstrip("/")
        return self._fs

    def _path(self, rel: str) -> str:
        _ = self.fs  # resolves self._root
        return f"{self._root}/{rel}" if rel else self._root

    def prepare(self) -> None:
        try:
            self.fs.makedirs(self._root, exist_ok=True)
        except MaskdecError:
            raise
        except Exception as exc:  # noqa: BLE001 - any backend error means the output is unusable
            raise MaskdecError(f"--out {self.url}: cannot create or reach it: {exc}") from None

    def write_bytes(self, rel: str, data: bytes) -> None:
        try:
            self.fs.pipe_file(self._path(rel), data)
        except Exception as exc:  # noqa: BLE001 - any backend error: this output is not written
            raise OutputError(f"cannot write {self.url}/{rel}: {exc}") from None

    @contextlib.contextmanager
    def open_write(self, rel: str) -> Iterator[IO[bytes]]:
        """A local temporary file, uploaded whole to `rel` when the block ends without error."""
        with tempfile.NamedTemporaryFile(prefix="maskdec-", suffix=TEMP_SUFFIX) as fh:
            yield fh
            fh.flush()
            try:
                self.fs.put_file(fh.name, self._path(rel))
            except Exception as exc:  # noqa: BLE001
                raise OutputError(f"cannot write {self.url}/{rel}: {exc}") from None

    def read_text(self, rel: str) -> Optional[str]:
        try:
            return self.fs.cat_file(self._path(rel)).decode("utf-8")
        except FileNotFoundError:
            return None
        except UnicodeDecodeError:
            raise OutputError(f"{self.url}/{rel} is not UTF-8 text; it was not written by maskdec") from None

    def files(self) -> set[str]:
        root = self._path("")
        try:
            found = self.fs.find(root)
        except FileNotFoundError:
            return set()
        prefix = root.rstrip("/") + "/"
        return {p[len(prefix):] for p in found if p.startswith(prefix)}

    def entries(self) -> list[str]:
        return sorted({rel.split("/", 1)[0] for rel in self.files()})

    def remove(self, rel: str) -> None:
        self.remove_many([rel])

    def remove_many(self, rels: Iterable[str]) -> None:
        """Remove these objects (missing ones are fine)."""
        paths = [self._path(rel) for rel in rels]
        if not paths:
            return
        try:
            try:
                self.fs.rm(paths)
            except FileNotFoundError:  # some backends stop at a missing one: the rest one by one
                for path in paths:
                    with contextlib.suppress(FileNotFoundError):
                        self.fs.rm(path)
        except Exception as exc:  # noqa: BLE001
            raise OutputError(f"cannot remove outputs under {self.url}: {exc}") from None

    def remove_empty_dir(self, rel: str) -> None:
        pass  # object stores have no folders of their own

    def clean_temp(self, pid: Optional[int] = None) -> int:
        return 0  # whole-object writes leave no temporary objects

    # ------------------------------------------------------------ journal
    def _parts(self, rel: str) -> list[str]:
        prefix = f"{rel}.parts/"
        return sorted(p for p in self.files() if p.startswith(prefix))

    def append_journal(self, rel: str, text: str) -> None:
        self._seq += 1
        name = f"{rel}.parts/{os.getpid()}-{uuid.uuid4().hex[:8]}-{self._seq:08d}.jsonl"
        self.write_bytes(name, text.encode("utf-8"))

    def read_journal(self, rel: str) -> str:
        texts = [self.read_text(rel) or ""]
        texts += [self.read_text(part) or "" for part in self._parts(rel)]
        return "".join(t if not t or t.endswith("\n") else t + "\n" for t in texts)

    def compact_journal(self, rel: str, text: str) -> None:
        parts = self._parts(rel)
        self.write_bytes(rel, text.encode("utf-8"))
        self.remove_many(parts)


OutputStore = Union[LocalStore, FsspecStore]

#: Schemes fsspec reads but cannot write.
_READ_ONLY = ("http", "https")


def open_store(out: Union[str, os.PathLike]) -> OutputStore:
    """A LocalStore for paths and file:// URLs, an FsspecStore for remote URLs."""
    text = os.fspath(out)
    if not isinstance(text, str):
        text = os.fsdecode(text)
    if "\x00" in text:
        raise OutputError("--out: the path holds a NUL character")
    if is_remote(text):
        scheme = text.split(":", 1)[0].lower()
        if scheme in _READ_ONLY:
            raise OutputError(f"--out {text}: cannot write over {scheme.upper()}; give a folder or an object "
                              f"store URL (s3://, gs://, az://)")
        return FsspecStore(text)
    if text.lower().startswith("file://"):
        text = text[len("file://"):]
    return LocalStore(text)
