"""The marker segments of a JPEG before its image data, walked once per file and shared by every reader.

A JPEG's header is a run of marker segments (``FF xx``, a two-byte length, a payload) up to the first scan
(SOS). Any number of ``FF`` fill bytes may precede a marker, and nothing bounds how many segments a file holds,
so a hostile file can make a byte-at-a-time walk in Python cost minutes (20 MB of fill, or millions of empty
COM segments). Here fill is skipped in bulk by a compiled pattern (C speed), at most MAX_SEGMENTS segments are
read, and `shared(data)` lets the readers of one file (XMP, C2PA markers, JPEG structure, EXIF thumbnail) use
one walk instead of four. `compacted` gives Pillow, whose own header walk is also byte at a time, the same
header without its fill.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager

MAX_SEGMENTS = 4096  # marker segments read before the image data (real files have tens)
SOI = b"\xff\xd8"
_FILL = re.compile(rb"\xff+")
_local = threading.local()  # the walk of the file being read in this thread (`shared`)


class Segments(list):
    """(marker, payload start, payload end) for each segment before SOS, and how the walk ended."""

    def __init__(self) -> None:
        super().__init__()
        self.capped = False  # stopped after MAX_SEGMENTS segments
        self.fill = 0  # fill bytes skipped
        self.end = 0  # where the walk stopped: the SOS or EOI marker, or where the bytes stopped making sense
        self.steps = 0  # loop turns: a bound on the work, for tests


def walk(data: bytes) -> Segments:
    """The segments of `data` (a JPEG: SOI first) before its image data; see the module's docstring."""
    found = Segments()
    pos = 2 if data[:2] == SOI else len(data)
    found.end = pos
    while pos + 4 <= len(data) and not found.capped:
        found.steps += 1
        run = _FILL.match(data, pos)
        if run is None:  # not a marker: the header is over
            break
        marker_at = run.end() - 1  # the last FF of the run: the marker's own
        found.fill += marker_at - pos
        pos = found.end = marker_at
        if pos + 4 > len(data) or data[pos + 1] in (0xD9, 0xDA):  # EOI, SOS: metadata is over
            break
        length = int.from_bytes(data[pos + 2:pos + 4], "big")
        if length < 2:
            break
        found.append((data[pos + 1], pos + 4, min(pos + 2 + length, len(data))))
        pos += 2 + length
        found.end = min(pos, len(data))
        found.capped = len(found) >= MAX_SEGMENTS
    return found


def jpeg_segments(data: bytes) -> Segments:
    """`walk(data)`, the one walk `shared` made of these very bytes when there is one."""
    held = getattr(_local, "walked", None)
    if held is not None and held[0] is data:
        if held[1] is None:
            _local.walked = (data, walk(data))
        return _local.walked[1]
    return walk(data)


@contextmanager
def shared(data: bytes) -> Iterator[None]:
    """Within this block (in this thread), `jpeg_segments(data)` walks `data` once; nothing is kept after it."""
    before = getattr(_local, "walked", None)
    _local.walked = (data, None)
    try:
        yield
    finally:
        _local.walked = before


def compacted(data: bytes) -> tuple[bytes, Segments]:
    """`data` with the fill bytes before its markers dropped (the same JPEG: fill is optional), and its walk."""
    found = jpeg_segments(data)
    if not found.fill:
        return data, found
    parts = [SOI] + [data[start - 4:end] for _, start, end in found]
    return b"".join(parts) + data[found.end:], found


_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}  # frame headers (C4 DHT, C8 JPG, CC DAC are not)
_PIECE = 4096


def frame_header(fh) -> tuple[int, int, int] | None:
    """(width, height, components) from the first frame header (SOF) of a JPEG read from the seekable file
    object `fh`, reading only the markers (payloads are skipped by seeking, fill in pieces matched in bulk);
    None when the bytes stop making sense, the image data comes first, or after MAX_SEGMENTS segments."""
    fh.seek(0)
    if fh.read(2) != SOI:
        return None
    pos, count = 2, 0
    while count < MAX_SEGMENTS:
        fh.seek(pos)
        piece = fh.read(_PIECE)
        run = _FILL.match(piece)
        if run is None:
            return None
        if run.end() == len(piece):  # fill to the end of this piece: on from its last byte
            pos += max(1, len(piece) - 1)
            if len(piece) < _PIECE:
                return None
            continue
        fh.seek(pos + run.end() - 1)
        head = fh.read(10)
        if len(head) < 4 or head[1] in (0xD9, 0xDA):
            return None
        if head[1] in _SOF:
            return (int.from_bytes(head[7:9], "big"), int.from_bytes(head[5:7], "big"), head[9]) \
                if len(head) == 10 else None
        length = int.from_bytes(head[2:4], "big")
        if length < 2:
            return None
        pos += run.end() - 1 + 2 + length
        count += 1
    return None
