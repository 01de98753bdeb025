"""Frames a decoder may leave undecoded: those nobody asked for that no other frame refers to.

Decoding forward from a keyframe to a wanted frame decodes every frame in between. A
frame the bitstream marks as a non-reference picture (H.264 nal_ref_idc 0, mostly B-frames;
HEVC sub-layer non-reference pictures) is needed by no other frame, so when nobody wants it
FFmpeg can skip it (`skip_frame` NONREF). The decision is per packet, taken before the packet
goes to the decoder, from its presentation time; FFmpeg's frame threads take the setting
with each packet. Wanted frames always decode, and so does every frame past the last one
wanted (a later call may want it without seeking).

Only where packets are whole frames with their own times (MP4/MOV, Matroska/WebM) and the
codec's non-reference marking is safe: H.264, and HEVC with one temporal sub-layer (FFmpeg
would skip sub-layer non-reference pictures that higher sub-layers refer to).
MASKDEC_SKIP_FRAMES=0 decodes every frame, as before.
"""
from __future__ import annotations

import os
from typing import Iterable, Optional

from ..errors import OptionError

__all__ = ["SkipPlan", "skip_frames_enabled", "can_skip"]

_CONTAINERS = frozenset({"mov", "mp4", "matroska", "webm"})


def skip_frames_enabled() -> bool:
    """MASKDEC_SKIP_FRAMES: 1 (default) skips unwanted non-reference frames, 0 decodes all."""
    value = os.environ.get("MASKDEC_SKIP_FRAMES", "").strip()
    if value in ("", "1"):
        return True
    if value == "0":
        return False
    raise OptionError(f"MASKDEC_SKIP_FRAMES={value[:40]!r}: expected 1 (skip frames nobody wants and no "
                      f"frame refers to, the default) or 0 (decode every frame)")


def can_skip(codec: str, container_format: str, extradata: Optional[bytes]) -> bool:
    """Whether frames of this stream may be skipped (see the module docstring)."""
    if not _CONTAINERS & set(container_format.split(",")):
        return False
    if codec == "h264":
        return True
    if codec == "hevc":
        return _hevc_temporal_layers(extradata) == 1
    return False


def _hevc_temporal_layers(extradata: Optional[bytes]) -> int:
    """numTemporalLayers of an HEVCDecoderConfigurationRecord (hvcC); 0 when unknown."""
    if not extradata or len(extradata) < 23 or extradata[0] != 1:
        return 0
    return (extradata[21] >> 3) & 0x7


class SkipPlan:
    """What one decoder's current request wants, as packet presentation times.

    `discardable(pts)`: a packet the decoder may skip if no frame refers to it (not wanted,
    and before the last wanted frame). `sent` lists the pts of packets sent that way since
    the decoder last started over: a later request must not expect them to be presented.
    """

    def __init__(self) -> None:
        self.keep: frozenset = frozenset()
        self.below: Optional[int] = None
        self.sent: list[int] = []

    def want(self, pts: Iterable[int]) -> None:
        """The presentation times the next frames asked for are at."""
        self.keep = frozenset(pts)
        self.below = max(self.keep) if self.keep else None

    def discardable(self, pts: Optional[int]) -> bool:
        return pts is not None and self.below is not None and pts < self.below and pts not in self.keep

    def restart(self) -> None:
        """The decoder starts over (a seek): nothing sent before counts any more."""
        self.sent.clear()
