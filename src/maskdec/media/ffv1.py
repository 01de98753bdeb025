"""FFV1 slice checksums, verified by maskdec before each packet is decoded.

FFmpeg's FFV1 decoder checks every slice's CRC, but on a mismatch it only logs
"slice CRC mismatch" and hands out the frame with the damaged slice copied from
the previous frame: the slice decoder's error is discarded, so
err_detect=explode changes nothing, and the frame carries no corrupt flag or
decode error flag. Logs are no way out either: PyAV routes FFmpeg's log through
one process-wide callback that names only the codec, not the decoder, and runs
it on FFmpeg's own threads under the GIL (a known deadlock risk). So the reader
checks the CRCs itself, per packet, with no shared state: FFV1 version 3 and 4
streams with error correction (`ec`, FFmpeg's `slicecrc`, on by default at
level 3) end every slice with its length and a CRC-32 (FFmpeg's AV_CRC_32_IEEE:
MSB first, no final xor) over which the whole slice checks to a known value.

The stream's configuration record (the codec's extradata, range coded) says
whether slices carry CRCs; `SliceCheck.from_extradata` reads just enough of it.
Streams without slice CRCs (versions 0-2, `slicecrc=0`) cannot be verified.
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Optional

__all__ = ["SliceCheck", "crc32_ieee"]

_REV8 = bytes(int(f"{i:08b}"[::-1], 2) for i in range(256))


def _rev32(x: int) -> int:
    return int(f"{x:032b}"[::-1], 2)


def crc32_ieee(data: bytes, init: int = 0) -> int:
    """CRC-32 of `data`, polynomial 0x04C11DB7, MSB first, no final xor (FFmpeg's
    av_crc with AV_CRC_32_IEEE), computed by zlib's reflected CRC on bit-reversed bytes."""
    return _crc_of_reversed(data.translate(_REV8), init)


def _crc_of_reversed(reversed_data, init: int) -> int:
    """crc32_ieee of the data whose bytes, bit-reversed, are `reversed_data`."""
    return _rev32(zlib.crc32(reversed_data, ~_rev32(init) & 0xFFFFFFFF) ^ 0xFFFFFFFF)


def _rac_states(factor: int = int(0.05 * (1 << 32)), max_p: int = 256 - 8) -> tuple[list[int], list[int]]:
    """The range coder's default state transitions (FFmpeg's ff_build_rac_states): (zero, one)."""
    one_bit = 1 << 32
    one = [0] * 256
    last, p = 0, one_bit // 2
    for _ in range(128):
        p8 = (256 * p + one_bit // 2) >> 32
        if p8 <= last:
            p8 = last + 1
        if last and last < 256 and p8 <= max_p:
            one[last] = p8
        p += ((one_bit - p) * factor + one_bit // 2) >> 32
        last = p8
    for i in range(256 - max_p, max_p + 1):
        if one[i]:
            continue
        p = (i * one_bit + 128) >> 8
        p += ((one_bit - p) * factor + one_bit // 2) >> 32
        p8 = (256 * p + one_bit // 2) >> 32
        one[i] = min(max(p8, i + 1), max_p)
    zero = [0] * 256
    for i in range(1, 255):
        zero[i] = 256 - one[256 - i]
    return zero, one


_ZERO, _ONE = _rac_states()


class _RangeDecoder:
    """FFV1's binary range decoder over a byte string, with adaptive 8-bit states."""

    def __init__(self, data: bytes, end: Optional[int] = None) -> None:
        if len(data) < 2:
            raise ValueError("too short")
        self.data = data
        self.end = len(data) if end is None else end
        self.low = int.from_bytes(data[:2], "big")
        self.pos = 2
        self.range = 0xFF00
        if self.low >= 0xFF00:
            self.low, self.end = 0xFF00, self.pos

    def bit(self, state: list[int], k: int) -> int:
        s = state[k]
        range1 = (self.range * s) >> 8
        self.range -= range1
        if self.low < self.range:
            state[k], bit = _ZERO[s], 0
        else:
            self.low -= self.range
            self.range = range1
            state[k], bit = _ONE[s], 1
        if self.range < 0x100:
            self.range <<= 8
            self.low <<= 8
            if self.pos < self.end:
                self.low += self.data[self.pos]
                self.pos += 1
        return bit

    def symbol(self, state: list[int], signed: bool = False) -> int:
        if self.bit(state, 0):
            return 0
        e = 0
        while self.bit(state, 1 + min(e, 9)):
            e += 1
            if e > 31:
                raise ValueError("symbol too long")
        a = 1
        for i in range(e - 1, -1, -1):
            a = 2 * a + self.bit(state, 22 + min(i, 9))
        negative = signed and self.bit(state, 11 + min(e, 10))
        return -a if negative else a


def _quant_tables(rc: _RangeDecoder) -> int:
    """Skip one quantisation table set; its context count."""
    count = 1
    for _ in range(5):
        state = [128] * 32
        i = v = 0
        while i < 128:
            run = rc.symbol(state) + 1
            if run > 128 - i:
                raise ValueError("quant table overflows")
            i += run
            v += 1
        count *= 2 * v - 1
        if count > 32768:
            raise ValueError("too many contexts")
    return (count + 1) // 2


@dataclass(frozen=True)
class SliceCheck:
    """Verifies the slice CRCs of an FFV1 stream's packets.

    `version`: FFV1 version; `ec`: its error correction level (slice CRCs when >= 1);
    `crcref`: the value every slice's CRC must come to (non-zero for ec >= 2).
    """

    version: int
    ec: int
    crcref: int

    @classmethod
    def from_extradata(cls, extradata: Optional[bytes]) -> Optional["SliceCheck"]:
        """The check for a stream with this configuration record, or None when its
        slices carry no CRCs (or the record is one FFmpeg would refuse, or codes
        initial context states, which this reader does not walk through)."""
        if not extradata or len(extradata) < 8:
            return None
        try:
            rc = _RangeDecoder(extradata)
            state = [128] * 32
            version = rc.symbol(state)
            if version < 3 or version > 4:
                return None  # versions 0-2 have no slice CRCs
            rc.end = min(rc.end, len(extradata) - 4)
            rc.symbol(state)  # micro version
            if rc.symbol(state) == 2:  # coder: range coder with a custom state table
                for _ in range(255):
                    rc.symbol(state, signed=True)
            rc.symbol(state)  # colour space
            rc.symbol(state)  # bits per raw sample
            rc.bit(state, 0)  # chroma planes
            rc.symbol(state)  # chroma h shift
            rc.symbol(state)  # chroma v shift
            rc.bit(state, 0)  # transparency
            rc.symbol(state)  # horizontal slices - 1
            rc.symbol(state)  # vertical slices - 1
            tables = rc.symbol(state)
            if not 1 <= tables <= 8:
                return None
            for _ in range(tables):
                _quant_tables(rc)
            for _ in range(tables):
                if rc.bit(state, 0):  # initial states coded (two-pass encodes)
                    return None
            ec = rc.symbol(state)
        except (ValueError, IndexError):
            return None
        crcref = 0x7A8C4079 if ec >= 2 else 0
        if ec < 1 or crc32_ieee(bytes(extradata), crcref) != crcref:
            return None
        return cls(version, ec, crcref)

    def damage(self, packet: bytes) -> Optional[str]:
        """What is wrong with one packet's slices, or None when every slice checks.
        Slices are found from the end: each ends with its 24-bit length, a status
        byte and its CRC."""
        end, found = len(packet), 0
        reversed_bytes = memoryview(packet.translate(_REV8))
        while end > 0:
            if end < 8:
                return f"{found} slices check, then {end} bytes that are no slice"
            size = int.from_bytes(packet[end - 8:end - 5], "big") + 8
            if size > end:
                return f"slice pointer chain broken after {found} slices"
            if _crc_of_reversed(reversed_bytes[end - size:end], self.crcref) != self.crcref:
                return f"slice {found + 1} from the end fails its CRC"
            end -= size
            found += 1
        return None
