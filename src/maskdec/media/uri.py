"""Where a media URI points: a local path, or a remote object read through fsspec."""
from __future__ import annotations

import os
from typing import IO, Optional, Union
from urllib.parse import unquote, urlparse

from ..errors import MediaNotFoundError, MissingExtraError

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


def open_uri(uri: str) -> Union[str, IO[bytes]]:
    """What PyAV can open: a local path (checked to exist) or an fsspec file object."""
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
    try:
        return fsspec.open(uri, "rb").open()
    except FileNotFoundError:
        raise MediaNotFoundError(f"media file not found: {uri}") from None
    except ImportError as exc:
        raise MissingExtraError(f"{uri}: {exc}; install `maskdec[remote]`") from None
