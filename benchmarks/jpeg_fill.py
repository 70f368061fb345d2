"""JPEG header walks on hostile padding: the old byte-at-a-time walk (four times a file) against the new one.

    python benchmarks/jpeg_fill.py [MB]     # default 2 MB of padding; about half a minute on 2 cores

Two files: SOI, then MB of FF fill bytes (or MB of empty COM segments, FF FE 00 02), then a small real JPEG.
Timed side by side in one process, each repeated, median and spread (min-max) printed with the ratio:
- metadata walk: the old `jpeg_segments` (a Python loop that stepped over fill one byte at a time), run four
  times as the XMP, C2PA, JPEG-structure and EXIF-thumbnail readers did, against `segments.walk` once
  (fill skipped by a compiled pattern, at most MAX_SEGMENTS segments);
- Pillow's header read: `Image.open` on the bytes as they are against what media/images.py now gives it (the
  bytes without fill from `segments.compacted`; a header past MAX_SEGMENTS segments refused unread).
"""

from __future__ import annotations

import contextlib
import io
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from PIL import Image

from fakevlm_cli.core.errors import ImageError
from fakevlm_cli.evidence import segments
from fakevlm_cli.media.images import _without_fill


def old_jpeg_segments(data: bytes):
    """The walk before this change (evidence/xmp.py), kept here to measure against."""
    pos = 2 if data[:2] == b"\xff\xd8" else len(data)
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            return
        marker = data[pos + 1]
        if marker == 0xFF:
            pos += 1
            continue
        if marker in (0xD9, 0xDA):
            return
        length = int.from_bytes(data[pos + 2:pos + 4], "big")
        if length < 2:
            return
        yield marker, pos + 4, min(pos + 2 + length, len(data))
        pos += 2 + length


def pillow_now(data: bytes) -> None:
    """What media/images.py now hands Pillow: the header without fill, or nothing past MAX_SEGMENTS segments."""
    with contextlib.suppress(ImageError):
        Image.open(io.BytesIO(_without_fill(data))).size  # noqa: B018


def timed(fn, repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def line(name: str, old: list[float], new: list[float]) -> str:
    o, n = statistics.median(old), statistics.median(new)
    return (f"{name:<34} old {o * 1e3:9.1f} ms ({min(old) * 1e3:.1f}-{max(old) * 1e3:.1f})   new {n * 1e3:8.2f} ms "
            f"({min(new) * 1e3:.2f}-{max(new) * 1e3:.2f})   x{o / n:,.0f}")


def main() -> None:
    mb = float(sys.argv[1]) if len(sys.argv) > 1 else 2.0
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), (90, 30, 200)).save(buffer, "JPEG")
    jpeg = buffer.getvalue()
    size = int(mb * 2**20)
    files = {"FF fill": jpeg[:2] + b"\xff" * size + jpeg[2:],
             "empty COM segments": jpeg[:2] + b"\xff\xfe\x00\x02" * (size // 4) + jpeg[2:]}
    print(f"{mb:g} MB of padding, median of 5 (min-max)")
    for name, data in files.items():
        old = timed(lambda data=data: [list(old_jpeg_segments(data)) for _ in range(4)], 5)
        new = timed(lambda data=data: segments.walk(data), 5)
        print(line(f"{name}: metadata walk", old, new))
        old = timed(lambda data=data: Image.open(io.BytesIO(data)).size, 5)
        new = timed(lambda data=data: pillow_now(data), 5)
        print(line(f"{name}: Pillow header", old, new))


if __name__ == "__main__":
    main()
