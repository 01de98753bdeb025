"""Output names of an export: readable, bounded, and one per sample identity.

A sample's key is `<frame:06d>_<source>_<mask>_<digest>`: the two id parts are
readable shortenings (letters, digits and '-' only, at most READABLE_MAX
characters each) and `digest` is 16 base32 characters (80 bits) of a SHA-256
over the exact identity (frame index, source id, mask id). Since '_' occurs
only as the field separator, a key always splits into the same four fields, and
a ROI mask name `<key>_roi<k>[_<id>]` into the key and `k`; two identities
share a name only if their digests collide, which `check_unique_keys` refuses
(it also compares keys case-insensitively, for case-insensitive file systems).

Every name stays far below the usual 255-byte limit of a file name, also with
the temporary-file suffix (see export_store), whatever the ids' length.
"""
from __future__ import annotations

import base64
import hashlib
import json
import re
from typing import Iterable, Optional, Sequence

from .errors import MaskdecError

__all__ = ["READABLE_MAX", "readable", "digest", "sample_key", "image_key", "roi_suffix", "check_unique_keys",
           "NameCollisionError"]

#: Characters kept of each id in a name (the digest tells ids apart, not these).
READABLE_MAX = 40
_DIGEST_CHARS = 16


class NameCollisionError(MaskdecError, ValueError):
    """Two samples of one plan would be written under one output name."""


def readable(text: str, limit: int = READABLE_MAX) -> str:
    """A name-safe shortening of an id: runs of anything but ASCII letters and digits
    become '-', at most `limit` characters, never starting or ending with '-'."""
    return re.sub(r"[^A-Za-z0-9]+", "-", text[: 4 * limit])[:limit].strip("-")


def digest(*identity: object) -> str:
    """16 lowercase base32 characters of a SHA-256 over the identity's JSON (ASCII-escaped,
    so every string, even one with lone surrogates, hashes)."""
    raw = hashlib.sha256(json.dumps(list(identity), ensure_ascii=True).encode("ascii")).digest()
    return base64.b32encode(raw).decode("ascii").lower()[:_DIGEST_CHARS]


def sample_key(frame_index: int, source_id: str, mask_id: str) -> str:
    """The name stem of one sample's outputs: `<frame:06d>_<source>_<mask>_<digest>`."""
    return (f"{frame_index:06d}_{readable(source_id)}_{readable(mask_id)}_"
            f"{digest(frame_index, source_id, mask_id)}")


def image_key(frame_index: int, source_id: str) -> str:
    """The name stem of one source image (shared by all its masks' samples):
    `<frame:06d>_<source>_<digest>`."""
    return f"{frame_index:06d}_{readable(source_id)}_{digest(frame_index, source_id)}"


def roi_suffix(k: int, roi_id: Optional[str]) -> str:
    """`roi<k:03d>` with `_<id>` (readable) when the ROI has an id; `k` alone tells ROIs apart."""
    name = f"roi{k:03d}"
    part = readable(roi_id) if roi_id is not None else ""
    return f"{name}_{part}" if part else name


def check_unique_keys(identities: Iterable[Sequence], key=None, *, what: str = "samples") -> None:
    """Raise NameCollisionError when two distinct identities get one key (compared
    case-insensitively). `key(*identity)` defaults to sample_key; an identity given
    twice is itself a collision (two samples, one name)."""
    key = sample_key if key is None else key
    seen: dict[str, tuple] = {}
    for identity in identities:
        identity = tuple(identity)
        name = key(*identity).lower()
        other = seen.get(name)
        if other is None:
            seen[name] = identity
        else:
            raise NameCollisionError(
                f"two {what} would be written under one output name {name!r}: {_describe(other)} and "
                f"{_describe(identity)}; rename one of the ids")


def _describe(identity: tuple) -> str:
    fields = ("frame", "source", "mask")
    return ", ".join(f"{f} {v!r}" for f, v in zip(fields, identity))
