"""Metadata evidence: what a file's own metadata says about where it came from.

``collect(path, data, fmt)`` runs every reader that applies to the sniffed format over bytes the caller has
already read, and merges what they find into one ``MetadataReport``. A reader that fails leaves a one-line note
(``exif: could not parse: <reason>``) and the others still run; the one exception is the c2pa library refusing
its settings (``c2pa.C2paSettingsError``, an ``ImageError``): that would turn provenance off for every file, so
it is the record's error, not a note. Nothing here imports
torch or transformers; c2pa-python is imported only for files that carry a C2PA marker. JPEGs also get their
structure read (jpeg.py: quantisation tables, EXIF thumbnail against the image).
"""

from __future__ import annotations

import pathlib

from . import c2pa, container, exif, jpeg, png, segments, xmp
from ._common import clip
from .types import SIGNALS, Evidence, MetadataReport, Signal

__all__ = ["SIGNALS", "Evidence", "MetadataReport", "Signal", "collect", "read_container"]

# Containers exifread can find EXIF in.
EXIF_FORMATS = frozenset({"JPEG", "MPO", "TIFF", "PNG", "WEBP", "HEIF", "AVIF", "JXL"})
# Containers with no metadata blocks at all: nothing to search.
NO_METADATA_FORMATS = frozenset({"BMP", "DIB", "PCX", "PPM", "TGA", "ICO"})


def _readers(data: bytes, fmt: str, trust_anchors: str | None = None):
    if fmt in NO_METADATA_FORMATS:
        return
    if fmt in EXIF_FORMATS:
        yield "exif", lambda report: exif.read(data, fmt, report)
    if fmt in ("JPEG", "MPO"):
        yield "jpeg", lambda report: jpeg.read(data, fmt, report)
    if fmt == "PNG":
        yield "png", lambda report: png.read(data, report)  # also reads the PNG's XMP (iTXt)
    else:
        yield "xmp", lambda report: xmp.read(data, fmt, report)
    yield "c2pa", lambda report: c2pa.read(data, fmt, report, trust_anchors=trust_anchors)


def collect(path: pathlib.Path, data: bytes, fmt: str, *, trust_anchors: str | None = None) -> MetadataReport:
    """All metadata evidence for one file. ``path`` is only for context; the file is never reopened.

    ``trust_anchors``: a PEM bundle (`c2pa.read_anchors`) that C2PA signers are checked against.
    """
    report = MetadataReport()
    fmt = (fmt or "").upper()
    data = data if isinstance(data, bytes) else bytes(data or b"")
    with segments.shared(data):  # a JPEG's marker segments are walked once for all the readers
        for name, run in _readers(data, fmt, trust_anchors):
            try:
                run(report)
            except c2pa.C2paSettingsError:
                raise  # provenance is off for every file: the record's error, never a note
            except Exception as exc:  # noqa: BLE001 - a hostile file must never stop the scan
                reason = clip(f"{type(exc).__name__}: {exc}", 200)
                report.notes.append(f"{name}: could not parse: {reason}")
    return report


def read_container(stream, fmt: str, *, trust_anchors: str | None = None) -> MetadataReport:
    """A video's evidence: its container tags and C2PA manifest, read from `stream` (never whole)."""
    return container.read(stream, fmt, trust_anchors=trust_anchors)
