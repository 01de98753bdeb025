"""Where an export writes: a local folder or an fsspec URL (s3://, gs:// ...).

Every output appears whole or not at all: locally through a temporary name
in the same folder and a rename; on object stores through one whole-object
write. The manifest is a journal: `append_journal` adds finished samples'
lines (appended to the file locally; a new whole object under
`<name>.parts/` on object stores, which cannot append), `read_journal` reads
them back and `compact_journal` replaces them with one whole file.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import IO, Iterator, Optional, Union

from .errors import MaskdecError, MissingExtraError
from .media.uri import is_remote

__all__ = ["LocalStore", "FsspecStore", "OutputStore", "open_store", "TEMP_SUFFIX"]

#: Temporary files end so; `clean_temp` removes the ones a killed run left.
TEMP_SUFFIX = ".tmp"


class LocalStore:
    """A local output folder."""

    remote = False
    #: seconds between journal appends (0: every batch of finished samples at once)
    journal_interval = 0.0

    def __init__(self, root: Union[str, os.PathLike]) -> None:
        self.root = Path(root).expanduser().absolute()
        self.url = str(self.root)

    def _path(self, rel: str) -> Path:
        return self.root / rel

    def _temp_for(self, path: Path) -> Path:
        return path.with_name(f".{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}{TEMP_SUFFIX}")

    def prepare(self) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise MaskdecError(f"--out {self.root}: cannot create the output folder: {exc}") from None

    def write_bytes(self, rel: str, data: bytes) -> None:
        with self.open_write(rel) as fh:
            fh.write(data)

    @contextlib.contextmanager
    def open_write(self, rel: str) -> Iterator[IO[bytes]]:
        """A binary file that becomes `rel` whole when the block ends without error."""
        path = self._path(rel)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self._temp_for(path)
        try:
            with open(tmp, "wb") as fh:
                yield fh
            os.replace(tmp, path)
        finally:
            if tmp.exists():
                tmp.unlink()

    def read_text(self, rel: str) -> Optional[str]:
        try:
            return self._path(rel).read_text(encoding="utf-8")
        except FileNotFoundError:
            return None

    def files(self) -> set[str]:
        """Every file under the root, as paths relative to it with '/'."""
        out = set()
        for dirpath, _, names in os.walk(self.root):
            rel_dir = os.path.relpath(dirpath, self.root)
            for name in names:
                out.add(name if rel_dir == "." else f"{rel_dir}/{name}".replace(os.sep, "/"))
        return out

    def remove(self, rel: str) -> None:
        path = self._path(rel)
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()

    def clean_temp(self) -> int:
        """Remove temporary files a killed run left behind; returns how many."""
        count = 0
        for rel in self.files():
            name = rel.rsplit("/", 1)[-1]
            if name.startswith(".") and name.endswith(TEMP_SUFFIX):
                self._path(rel).unlink(missing_ok=True)
                count += 1
        return count

    # ------------------------------------------------------------ journal
    def append_journal(self, rel: str, text: str) -> None:
        with open(self._path(rel), "a", encoding="utf-8") as fh:
            fh.write(text)

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
            self._root = self._root.rstrip("/")
        return self._fs

    def _path(self, rel: str) -> str:
        _ = self.fs  # resolves self._root
        return f"{self._root}/{rel}" if rel else self._root

    def prepare(self) -> None:
        try:
            self.fs.makedirs(self._root, exist_ok=True)
        except Exception as exc:  # noqa: BLE001 - any backend error means the output is unusable
            raise MaskdecError(f"--out {self.url}: cannot create or reach it: {exc}") from None

    def write_bytes(self, rel: str, data: bytes) -> None:
        self.fs.pipe_file(self._path(rel), data)

    @contextlib.contextmanager
    def open_write(self, rel: str) -> Iterator[IO[bytes]]:
        """A local temporary file, uploaded whole to `rel` when the block ends without error."""
        with tempfile.NamedTemporaryFile(prefix="maskdec-", suffix=TEMP_SUFFIX) as fh:
            yield fh
            fh.flush()
            self.fs.put_file(fh.name, self._path(rel))

    def read_text(self, rel: str) -> Optional[str]:
        try:
            return self.fs.cat_file(self._path(rel)).decode("utf-8")
        except FileNotFoundError:
            return None

    def files(self) -> set[str]:
        root = self._path("")
        try:
            found = self.fs.find(root)
        except FileNotFoundError:
            return set()
        prefix = root.rstrip("/") + "/"
        return {p[len(prefix):] for p in found if p.startswith(prefix)}

    def remove(self, rel: str) -> None:
        path = self._path(rel)
        try:
            if self.fs.exists(path):
                self.fs.rm(path, recursive=True)
        except FileNotFoundError:
            pass

    def clean_temp(self) -> int:
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
        for part in parts:
            self.remove(part)


OutputStore = Union[LocalStore, FsspecStore]


def open_store(out: Union[str, os.PathLike]) -> OutputStore:
    """A LocalStore for paths and file:// URLs, an FsspecStore for remote URLs."""
    text = os.fspath(out)
    if is_remote(text):
        return FsspecStore(text)
    if text.lower().startswith("file://"):
        text = text[len("file://"):]
    return LocalStore(text)
