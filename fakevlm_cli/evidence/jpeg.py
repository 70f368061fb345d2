"""JPEG structure: quantisation tables (estimated quality, which family of tables) and the EXIF thumbnail.

Everything is read from the bytes already in memory; only the segments before the image data (SOS) are
walked, and only the EXIF thumbnail and a reduced-size decode of the main image (libjpeg's DCT scaling, at
most 1/8 of each side) are ever decoded.

**Quality.** A JPEG's quantisation tables (DQT) say how coarsely it was compressed. Two readings are given:

* exiftool's ``JPEGQualityEstimate`` (Image::ExifTool::JPEGDigest, itself a port of ImageMagick's estimate
  in coders/jpeg.c), reproduced exactly, so the number matches what analysts see in exiftool: two sample
  entries and the sum of all tables are compared with ImageMagick's tables of both for qualities 1–100.
  Like exiftool, it reads the entries in stored (zig-zag) order and every table as 8-bit.
* whether the tables are exactly the IJG standard tables (ITU-T T.81 Annex K, K.1 and K.2) scaled to a
  quality with libjpeg's formula (``jpeg_quality_scaling``): what libjpeg and libjpeg-turbo write, so
  Pillow, OpenCV, ImageMagick, GIMP and most web services and generator front ends, but also many cameras
  and phones (14 of 31 unedited camera files we checked).

Both are hand-written because they are short and standard (a DQT segment is a precision/id byte and 64
entries), and no maintained Python library exposes the tables with their segment layout (Pillow's
``quantization`` merges segments and reorders entries).

What the tables can tell: how hard the file was compressed last, and whether the last encoder used libjpeg's
stock tables. What they cannot: whether the picture is real or generated (generators' outputs are saved by
the same libraries as photos), nor that a camera file was edited (many cameras use the stock tables).

**The EXIF thumbnail** (extracted by exifread) is compared with the image, both grey and normalised: a
thumbnail that shows other content, a wider view or another orientation than the image is the classic trace
of an edit that kept the camera's thumbnail (`compare_thumbnail`). A thumbnail that matches proves nothing:
editors rewrite it, and a forger can too.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from ._common import clip
from .segments import MAX_SEGMENTS, jpeg_segments
from .thumbnail import check_thumbnail, describe_thumbnail
from .types import Evidence, MetadataReport

SOI = b"\xff\xd8"
MAX_TABLES = 4

# ITU-T T.81 Annex K: the example luminance (K.1) and chrominance (K.2) tables, in natural (row-major) order.
STD_LUMINANCE = (
    16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55,
    14, 13, 16, 24, 40, 57, 69, 56, 14, 17, 22, 29, 51, 87, 80, 62,
    18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99,
)
STD_CHROMINANCE = (
    17, 18, 24, 47, 99, 99, 99, 99, 18, 21, 26, 66, 99, 99, 99, 99,
    24, 26, 56, 99, 99, 99, 99, 99, 47, 66, 99, 99, 99, 99, 99, 99,
    99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99,
    99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99,
)
# ZIGZAG[k] is the natural-order index of the k-th entry as stored in a DQT segment.
ZIGZAG = (
    0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5,
    12, 19, 26, 33, 40, 48, 41, 34, 27, 20, 13, 6, 7, 14, 21, 28,
    35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51,
    58, 59, 52, 45, 38, 31, 39, 46, 53, 60, 61, 54, 47, 55, 62, 63,
)

# ImageMagick's quality tables (coders/jpeg.c), as exiftool 12.57 carries them: index i is quality i + 1's
# bound on (two sample entries) and on (the sum of all entries).
_COLOR_HASH = (
    1020, 1015, 932, 848, 780, 735, 702, 679, 660, 645, 632, 623, 613, 607, 600, 594, 589, 585, 581, 571,
    555, 542, 529, 514, 494, 474, 457, 439, 424, 410, 397, 386, 373, 364, 351, 341, 334, 324, 317, 309,
    299, 294, 287, 279, 274, 267, 262, 257, 251, 247, 243, 237, 232, 227, 222, 217, 213, 207, 202, 198,
    192, 188, 183, 177, 173, 168, 163, 157, 153, 148, 143, 139, 132, 128, 125, 119, 115, 108, 104, 99,
    94, 90, 84, 79, 74, 70, 64, 59, 55, 49, 45, 40, 34, 30, 25, 20, 15, 11, 6, 4,
)
_COLOR_SUMS = (
    32640, 32635, 32266, 31495, 30665, 29804, 29146, 28599, 28104, 27670, 27225, 26725, 26210, 25716, 25240,
    24789, 24373, 23946, 23572, 22846, 21801, 20842, 19949, 19121, 18386, 17651, 16998, 16349, 15800, 15247,
    14783, 14321, 13859, 13535, 13081, 12702, 12423, 12056, 11779, 11513, 11135, 10955, 10676, 10392, 10208,
    9928, 9747, 9564, 9369, 9193, 9017, 8822, 8639, 8458, 8270, 8084, 7896, 7710, 7527, 7347,
    7156, 6977, 6788, 6607, 6422, 6236, 6054, 5867, 5684, 5495, 5305, 5128, 4945, 4751, 4638,
    4442, 4248, 4065, 3888, 3698, 3509, 3326, 3139, 2957, 2775, 2586, 2405, 2216, 2037, 1846,
    1666, 1483, 1297, 1109, 927, 735, 554, 375, 201, 128,
)
_GREY_HASH = (
    510, 505, 422, 380, 355, 338, 326, 318, 311, 305, 300, 297, 293, 291, 288, 286, 284, 283, 281, 280,
    279, 278, 277, 273, 262, 251, 243, 233, 225, 218, 211, 205, 198, 193, 186, 181, 177, 172, 168, 164,
    158, 156, 152, 148, 145, 142, 139, 136, 133, 131, 129, 126, 123, 120, 118, 115, 113, 110, 107, 105,
    102, 100, 97, 94, 92, 89, 87, 83, 81, 79, 76, 74, 70, 68, 66, 63, 61, 57, 55, 52,
    50, 48, 44, 42, 39, 37, 34, 31, 29, 26, 24, 21, 18, 16, 13, 11, 8, 6, 3, 2,
)
_GREY_SUMS = (
    16320, 16315, 15946, 15277, 14655, 14073, 13623, 13230, 12859, 12560, 12240, 11861, 11456, 11081, 10714,
    10360, 10027, 9679, 9368, 9056, 8680, 8331, 7995, 7668, 7376, 7084, 6823, 6562, 6345, 6125,
    5939, 5756, 5571, 5421, 5240, 5086, 4976, 4829, 4719, 4616, 4463, 4393, 4280, 4166, 4092,
    3980, 3909, 3835, 3755, 3688, 3621, 3541, 3467, 3396, 3323, 3247, 3170, 3096, 3021, 2952,
    2874, 2804, 2727, 2657, 2583, 2509, 2437, 2362, 2290, 2211, 2136, 2068, 1996, 1915, 1858,
    1773, 1692, 1620, 1552, 1477, 1398, 1326, 1251, 1179, 1109, 1031, 961, 884, 814, 736,
    667, 592, 518, 441, 369, 292, 221, 151, 86, 64,
)


@dataclass(frozen=True)
class Structure:
    """What the segments before the image data say about how the file was encoded."""

    tables: dict[int, tuple[int, ...]]  # table id → 64 entries in natural order (the last definition wins)
    segments: list[bytes]  # DQT payloads, as exiftool collects them (see `exiftool_quality`)
    components: tuple[tuple[int, int, int, int], ...] = ()  # (id, h, v, table id) per SOF component
    process: str | None = None  # "baseline", "extended", "progressive", "lossless"
    width: int = 0
    height: int = 0


_SOF = {0xC0: "baseline", 0xC1: "extended", 0xC2: "progressive", 0xC3: "lossless", 0xC5: "baseline",
        0xC6: "progressive", 0xC7: "lossless", 0xC9: "extended", 0xCA: "progressive", 0xCB: "lossless",
        0xCD: "extended", 0xCE: "progressive", 0xCF: "lossless"}


def structure(data: bytes) -> Structure:
    """The DQT tables and the frame header (SOF) of a JPEG, from the segments before the first scan."""
    tables: dict[int, tuple[int, ...]] = {}
    by_first_id: dict[int, bytes] = {}
    components: tuple[tuple[int, int, int, int], ...] = ()
    process, width, height = None, 0, 0
    for marker, start, end in jpeg_segments(data):
        body = data[start:end]
        if marker == 0xDB and body:
            by_first_id[body[0] & 0x0F] = body
            tables.update(_parse_dqt(body))
        elif marker in _SOF and len(body) >= 6 and process is None:
            process = _SOF[marker]
            height, width = int.from_bytes(body[1:3], "big"), int.from_bytes(body[3:5], "big")
            n = body[5]
            components = tuple((body[6 + 3 * i], body[7 + 3 * i] >> 4, body[7 + 3 * i] & 0x0F, body[8 + 3 * i])
                               for i in range(n) if 9 + 3 * i <= len(body))
    segments = [by_first_id[i] for i in sorted(by_first_id) if i < MAX_TABLES]
    return Structure(tables, segments, components, process, width, height)


def _parse_dqt(body: bytes) -> dict[int, tuple[int, ...]]:
    """Tables of one DQT segment: a byte of precision (high nibble: 0 = 8-bit, 1 = 16-bit) and id, then 64
    entries in zig-zag order; a table cut short ends the segment."""
    out: dict[int, tuple[int, ...]] = {}
    pos = 0
    while pos < len(body):
        precision, table_id = body[pos] >> 4, body[pos] & 0x0F
        size = 2 if precision else 1
        raw = body[pos + 1:pos + 1 + 64 * size]
        if len(raw) < 64 * size or table_id >= MAX_TABLES:
            break
        stored = [int.from_bytes(raw[i:i + size], "big") for i in range(0, 64 * size, size)]
        natural = [0] * 64
        for k, value in enumerate(stored):
            natural[ZIGZAG[k]] = value
        out[table_id] = tuple(natural)
        pos += 1 + 64 * size
    return out


def exiftool_quality(segments: list[bytes]) -> int | None:
    """exiftool's JPEGQualityEstimate, step for step (JPEGDigest.pm 1.06, ``EstimateQuality``).

    exiftool keeps each DQT segment under the id of its first table (a later segment with the same first id
    replaces an earlier one), walks them by that id, reads 65-byte steps of each as one id byte and 64 8-bit
    entries in stored order, and stops after four tables.
    """
    tables: list[bytes] = []
    for segment in segments:
        for i in range(1, len(segment) - 63, 65):
            tables.append(segment[i:i + 64])
            if len(tables) >= MAX_TABLES:
                break
        if len(tables) >= MAX_TABLES:
            break
    if not tables:
        return None
    total = sum(sum(t) for t in tables)
    qval = tables[0][2] + tables[0][53]
    if len(tables) > 1:
        qval += tables[1][0] + tables[1][63]
        hashes, sums = _COLOR_HASH, _COLOR_SUMS
    else:
        hashes, sums = _GREY_HASH, _GREY_SUMS
    for i in range(100):
        if qval < hashes[i] and total < sums[i]:
            continue
        if (qval <= hashes[i] and total <= sums[i]) or i >= 50:
            return i + 1
        return None
    return None


@functools.lru_cache(maxsize=512)  # ijg_quality asks for up to 400 (two bases × 100 qualities × 2) per JPEG
def ijg_table(base: tuple[int, ...], quality: int, baseline: bool = True) -> tuple[int, ...]:
    """libjpeg's ``jpeg_add_quant_table`` after ``jpeg_quality_scaling``: the standard table at a quality."""
    quality = min(max(quality, 1), 100)
    scale = 5000 // quality if quality < 50 else 200 - 2 * quality
    top = 255 if baseline else 32767
    return tuple(min(max((v * scale + 50) // 100, 1), top) for v in base)


def ijg_quality(tables: dict[int, tuple[int, ...]]) -> int | None:
    """The quality at which the tables are exactly the IJG standard ones (table 0 luminance, 1 chrominance,
    any further table a copy of one of them), or None when they are not."""
    if 0 not in tables:
        return None
    for quality in range(100, 0, -1):
        for baseline in (True, False):
            luma = ijg_table(STD_LUMINANCE, quality, baseline)
            if tables[0] != luma:
                continue
            chroma = ijg_table(STD_CHROMINANCE, quality, baseline)
            if all(t in (luma, chroma) for t in tables.values()) and tables.get(1, chroma) == chroma:
                return quality
    return None


def subsampling(components: tuple[tuple[int, int, int, int], ...]) -> str | None:
    """Chroma subsampling as people write it (4:4:4, 4:2:2, 4:2:0, 4:4:0, 4:1:1), None for greyscale/other."""
    if len(components) != 3:
        return None
    (_, h0, v0, _), (_, h1, v1, _), (_, h2, v2, _) = components
    if (h1, v1) != (h2, v2) or h1 == 0 or v1 == 0:
        return None
    ratio = (h0 // h1 if h0 % h1 == 0 else 0, v0 // v1 if v0 % v1 == 0 else 0)
    return {(1, 1): "4:4:4", (2, 1): "4:2:2", (2, 2): "4:2:0", (1, 2): "4:4:0", (4, 1): "4:1:1"}.get(ratio)


def describe_quality(found: Structure) -> Evidence | None:
    """The ``info`` item for the tables: exiftool's estimate, the IJG match, subsampling and process."""
    if not found.tables:
        return None
    estimate = exiftool_quality(found.segments)
    ijg = ijg_quality(found.tables)
    head = f"quality ≈ {estimate} (exiftool's estimate)" if estimate is not None else "quality not estimable"
    if ijg is not None:
        family = (f"standard IJG tables at quality {ijg}, as libjpeg writes them (Pillow, OpenCV, ImageMagick, "
                  "GIMP, most web services and image generators' savers)")
    else:
        family = "not the standard IJG tables (camera firmware, Photoshop, phones and some encoders use their own)"
    details = [d for d in (subsampling(found.components), found.process) if d]
    value = f"{head}; {family}" + (f"; {', '.join(details)}" if details else "")
    return Evidence("jpeg", "quantization", clip(value, 300), "info")


def read(data: bytes, fmt: str, report: MetadataReport) -> None:
    """Report the quantisation tables of a JPEG (and MPO's first image) and check its EXIF thumbnail."""
    if fmt not in ("JPEG", "MPO") or data[:2] != SOI:
        return
    walked = jpeg_segments(data)
    if walked.capped:
        report.notes.append(f"jpeg: more than {MAX_SEGMENTS:,} marker segments before the image data: the rest "
                            "were not read")
    found = structure(data)
    item = describe_quality(found)
    if item is not None:
        report.items.append(item)
    try:
        check = check_thumbnail(data, found)
    except (OSError, ValueError, SyntaxError) as exc:  # Pillow's ways of saying a JPEG cannot be decoded
        report.notes.append(f"jpeg: EXIF thumbnail not compared: {clip(exc, 160)}")
        return
    if check is not None:
        report.items.append(describe_thumbnail(check))
