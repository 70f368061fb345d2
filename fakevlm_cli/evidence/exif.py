"""EXIF evidence through exifread: camera fields, Software, GPS, maker notes, generation parameters.

exifread runs with ``details=False``: with ``True`` it turns every byte of a maker note into a Python int
and decodes vendor notes (about 1 ms for a 2 KB note, more for a Canon's), which we do not need. But with
``False`` it skips MakerNote and UserComment altogether (its IGNORE_TAGS), and even with ``True`` it drops
any other non-text field of 1000 bytes or more, which is where a long A1111 prompt lives. So those two tags
are taken from the IFD entries directly (``skipped_fields``), at the TIFF header and EXIF IFD offsets that
exifread itself found.

exifread trusts the file: it walks the whole IFD chain (a TIFF with 100,000 pages costs seconds and a
million tags) and reads every ASCII field at the length the entry claims, so a 1 MB file whose thousand
entries all point at the same 1 MB string costs a gigabyte. It is therefore handed `_BoundedView`: IFD0's
link to the next IFD reads as zero (only IFD0 and its EXIF/GPS sub-IFDs are read, which is all we use), and
at most MAX_EXIF_READ bytes are handed out in all; past that, reads come back empty and a note says so.
"""

from __future__ import annotations

import io
import logging
from typing import BinaryIO, Literal, cast

import exifread

from ._common import classify_software, clip, describe_parameters, to_text
from .png import describe_comfy
from .types import Evidence, MetadataReport
from .xmp import riff_chunk

# exifread warns through logging on every oddity of a damaged file; those are not the user's business.
logging.getLogger("exifread").setLevel(logging.ERROR)

_CAMERA = (("Make", "Image Make", "make"), ("Model", "Image Model", "model"),
           ("LensModel", "EXIF LensModel", "lens_model"),
           ("DateTimeOriginal", "EXIF DateTimeOriginal", "datetime_original"))
_FOOOCUS_SCHEMES = (b"fooocus", b"a1111")  # Fooocus writes its metadata scheme name into MakerNote
_SKIPPED = {0x927C: "MakerNote", 0x9286: "UserComment"}
_TYPE_SIZE = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8}  # TIFF field types
MAX_ENTRIES = 1024  # per IFD; the format allows 65535, real files have a few dozen
MAX_EXIF_READ = 16 * 1024 * 1024  # bytes exifread may read from one file, all fields together


class _BoundedView:
    """A read-only file over bytes for exifread: a total read budget, and 4 bytes that read as zero."""

    def __init__(self, data: bytes, budget: int, zero_at: int | None = None):
        self.data, self.left, self.zero_at, self.pos = data, budget, zero_at, 0
        self.exhausted = False

    def seek(self, pos: int, whence: int = 0) -> int:
        self.pos = max(0, pos if whence == 0 else self.pos + pos if whence == 1 else len(self.data) + pos)
        return self.pos

    def tell(self) -> int:
        return self.pos

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            n = len(self.data) - self.pos
        if n > self.left:
            self.exhausted, n = True, self.left
        chunk = self.data[self.pos:self.pos + n]
        z = self.zero_at
        if z is not None and self.pos < z + 4 and z < self.pos + len(chunk):
            patched = bytearray(chunk)
            for i in range(max(z, self.pos), min(z + 4, self.pos + len(chunk))):
                patched[i - self.pos] = 0
            chunk = bytes(patched)
        self.left -= len(chunk)
        self.pos += len(chunk)
        return chunk


def _next_ifd_link(data: bytes) -> int | None:
    """Where IFD0's link to the next IFD sits in `data` (as exifread will locate it), or None."""
    try:
        base, endian, _fake = exifread.determine_type(io.BytesIO(data))
    except Exception:  # noqa: BLE001 - no EXIF found: exifread will say so itself
        return None
    order: Literal["little", "big"] = "little" if endian == b"I" else "big"
    ifd0 = base + int.from_bytes(data[base + 4:base + 8], order)
    if ifd0 + 2 > len(data):
        return None
    return ifd0 + 2 + 12 * int.from_bytes(data[ifd0:ifd0 + 2], order)


def _text(tag) -> str:
    values = tag.values
    if isinstance(values, (str, bytes)):
        return to_text(values).strip("\x00 \t\r\n")
    return str(tag.printable).strip()


def skipped_fields(exif: bytes, tags: dict) -> dict[str, bytes]:
    """The MakerNote and UserComment bytes in IFD0 and the EXIF IFD (Fooocus puts both in IFD0)."""
    base, endian, _fake = exifread.determine_type(io.BytesIO(exif))
    order: Literal["little", "big"] = "little" if endian == b"I" else "big"

    def number(pos: int, size: int) -> int:
        return int.from_bytes(exif[pos:pos + size], order)

    ifds = [number(base + 4, 4)]
    exif_ifd = tags.get("Image ExifOffset")
    if exif_ifd is not None and isinstance(exif_ifd.values, list) and exif_ifd.values:
        ifds.append(int(exif_ifd.values[0]))
    found: dict[str, bytes] = {}
    for ifd in ifds:
        pos = base + ifd
        for entry in range(pos + 2, pos + 2 + 12 * min(number(pos, 2), MAX_ENTRIES), 12):
            if entry + 12 > len(exif):
                break
            name = _SKIPPED.get(number(entry, 2))
            if name and name not in found:
                size = number(entry + 4, 4) * _TYPE_SIZE.get(number(entry + 2, 2), 1)
                start = entry + 8 if size <= 4 else base + number(entry + 8, 4)
                found[name] = exif[start:start + size]
    return found


def decode_user_comment(raw: bytes) -> str:
    """UserComment text: an 8-byte charset header, then the text (UTF-16 of either byte order for UNICODE)."""
    head, body = raw[:8], raw[8:]
    if head == b"UNICODE\x00":
        if body[:2] in (b"\xff\xfe", b"\xfe\xff"):
            codec, body = ("utf-16-le" if body[:2] == b"\xff\xfe" else "utf-16-be"), body[2:]
        else:  # no BOM: mostly-ASCII text has its zero bytes first in big-endian, second in little-endian
            codec = "utf-16-le" if body[1::2].count(0) > body[0::2].count(0) else "utf-16-be"
        text = body.decode(codec, errors="replace")
    elif head == b"JIS\x00\x00\x00\x00\x00":
        text = body.decode("iso2022_jp", errors="replace")
    elif head.startswith(b"ASCII") or head == b"\x00" * 8:
        text = body.decode("utf-8", errors="replace")
    else:  # no header at all: some writers store the text bare
        text = raw.decode("utf-8", errors="replace")
    return text.strip("\x00 \t\r\n")


def exif_source(data: bytes, fmt: str) -> bytes:
    """The bytes to give exifread. For WebP, the EXIF chunk's TIFF data: exifread 3.5 assumes the chunk
    starts with the old "Exif\\0\\0" prefix, which Pillow and libwebp no longer write, and ignores RIFF padding."""
    if fmt == "WEBP" and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        chunk = riff_chunk(data, b"EXIF") or b""
        return chunk[6:] if chunk.startswith(b"Exif\x00\x00") else chunk
    if fmt in ("HEIF", "AVIF"):  # exifread 3.5 cannot walk HEIF boxes: libheif hands over the EXIF item
        return heif_exif(data)
    return data


def heif_exif(data: bytes) -> bytes:
    """The TIFF data of a HEIF/AVIF file's EXIF item (pillow-heif), or b"" when it has none."""
    try:
        import pillow_heif
    except ImportError:
        return b""
    blob = pillow_heif.open_heif(data, convert_hdr_to_8bit=False).info.get("exif") or b""
    start = blob.find(b"II*\x00")
    alt = blob.find(b"MM\x00*")
    starts = [i for i in (start, alt) if i >= 0]
    return blob[min(starts):] if starts else b""


def read(data: bytes, fmt: str, report: MetadataReport) -> None:
    """Report camera fields, software, GPS, maker notes and generation parameters found in EXIF."""
    data = exif_source(data, fmt)
    if not data:
        return
    view = _BoundedView(data, MAX_EXIF_READ, _next_ifd_link(data))
    # exifread only seeks, tells and reads: the view is a BinaryIO for all it uses
    tags = exifread.process_file(cast(BinaryIO, view), details=False, extract_thumbnail=False)
    if view.exhausted:
        report.notes.append(f"exif: stopped after reading {MAX_EXIF_READ // 2**20} MiB of fields (the rest was not "
                            "read)")
    if not tags:
        return
    comfy_keys = _comfy(tags, report.items)
    _camera(tags, comfy_keys, report)
    raw = skipped_fields(data, tags)
    maker_note = raw.get("MakerNote", b"")
    report.exif["makernote_present"] = bool(maker_note)
    if maker_note and maker_note[:16].strip(b"\x00 ").lower() not in _FOOOCUS_SCHEMES:
        report.items.append(Evidence("exif", "MakerNote", f"present ({len(maker_note)} bytes)", "camera", False))
    texts = [("UserComment", decode_user_comment(raw.get("UserComment", b"")))]
    if "Image ImageDescription" in tags and "Image ImageDescription" not in comfy_keys:
        texts.append(("ImageDescription", _text(tags["Image ImageDescription"])))
    for key, text in texts:
        found = describe_parameters(text, strict=True) if text else None
        if found:
            report.items.append(Evidence("exif", key, found[1], "ai_generated", True, found[0]))


def _comfy(tags: dict, items: list[Evidence]) -> set[str]:
    """ComfyUI graphs, which its WebP writer stores as ``prompt:{json}`` / ``workflow:{json}`` IFD0 strings;
    returns the keys of the tags that held one (they are not camera fields or descriptions)."""
    keys = set()
    for key, tag in tags.items():
        if not key.startswith("Image ") or not isinstance(tag.values, (str, bytes)):
            continue
        text = _text(tag)
        name, sep, rest = text.partition(":")
        name = name.strip().lower()
        if sep and name in ("prompt", "workflow") and (comfy := describe_comfy(name, rest.strip())):
            keys.add(key)
            items.append(Evidence("exif", key[6:], f"{name}: {comfy}", "ai_generated", True, "ComfyUI"))
    return keys


def _camera(tags: dict, comfy_keys: set[str], report: MetadataReport) -> None:
    """The camera fields, the Software tag and whether GPS coordinates are present."""
    items, summary_ = report.items, report.exif
    for label, key, field in _CAMERA:
        tag = tags.get(key)
        value = _text(tag) if tag is not None and key not in comfy_keys else ""
        if value:
            summary_[field] = clip(value)
            items.append(Evidence("exif", label, clip(value), "camera", False))
    software = tags.get("Image Software")
    if software is not None and _text(software):
        name = _text(software)
        summary_["software"] = clip(name)
        signal, generator = classify_software(name)
        items.append(Evidence("exif", "Software", clip(name), signal, False, generator))
    summary_["gps_present"] = "GPS GPSLatitude" in tags or "GPS GPSLongitude" in tags
    if summary_["gps_present"]:
        items.append(Evidence("exif", "GPS", "coordinates present", "camera", False))
