"""Fork safety for FFmpeg objects.

FFmpeg objects (frame-threaded decoders, scalers) made in a parent process wait on
threads that a forked child does not have, so freeing them in the child can hang it.
A forked child therefore never frees what it inherited: every fork hands the child
its objects frozen (`gc.freeze`: outside the collector's reach; the parent unfreezes
right after). Imported by maskdec's media readers, so process pools (export, torch
DataLoader workers, multiprocessing) are covered however they are started.
"""
from __future__ import annotations

import gc
import os

_froze = False


def _before_fork() -> None:
    """In the parent, just before a fork: freeze every object. When the caller froze
    objects already, collect the garbage here instead, where freeing is safe."""
    global _froze
    _froze = gc.get_freeze_count() == 0
    if _froze:
        gc.freeze()
    else:
        gc.collect()


def _after_fork_in_parent() -> None:
    if _froze:
        gc.unfreeze()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=_before_fork, after_in_parent=_after_fork_in_parent, after_in_child=gc.freeze)
