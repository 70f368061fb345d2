"""Video container metadata: what an MP4, MOV, Matroska/WebM or AVI file says about where it came from.

Tags are read through PyAV (the container's and the video stream's), from a stream the caller hands over;
the file is never read whole. What they can tell is modest, and said so:

* a camera's make, model and software as QuickTime writes them (``com.apple.quicktime.make`` ...) are
  ``camera`` hints — as easy to forge as EXIF;
* the encoder and the handler name the last program that wrote the file (``Lavf`` = FFmpeg, which most
  editors, converters and generators use) — ``info``;
* a known video generator named in the encoder, software, comment, title or description tags is an
  ``ai_generated`` *hint* (never strong: such tags are free text anyone can write).

C2PA manifests in MP4/MOV files are read by c2pa-python, as for images (`c2pa.read_stream`).
"""

from __future__ import annotations

import re
from typing import IO

from . import c2pa
from ._common import clip
from .types import Evidence, MetadataReport

# Names of video generators; matched as whole words, case-insensitively. A hint, not proof.
_GENERATORS = ("Sora", "Runway", "Gen-2", "Gen-3", "Pika", "Kling", "Luma Dream Machine", "Veo", "Synthesia",
               "HeyGen", "Stable Video Diffusion", "AnimateDiff", "Hailuo", "Vidu", "CogVideoX", "Mochi",
               "Hunyuan Video", "Wan2.1", "LTX-Video")
_GENERATOR = re.compile(r"(?<![\w-])(" + "|".join(re.escape(g) for g in _GENERATORS) + r")(?![\w-])", re.I)
_CAMERA_KEYS = ("com.apple.quicktime.make", "com.apple.quicktime.model", "com.android.manufacturer",
                "com.android.model", "make", "model")
_TEXT_KEYS = ("encoder", "software", "com.apple.quicktime.software", "comment", "title", "description",
              "com.apple.quicktime.description", "artist", "copyright")
_INFO_KEYS = ("encoder", "handler_name", "creation_time", "com.apple.quicktime.creationdate", "major_brand")


def read(stream: IO[bytes], fmt: str, *, trust_anchors: str | None = None) -> MetadataReport:
    """Container and video-stream tags as evidence, then C2PA; a reader's failure is a note, except that the c2pa
    library refusing its settings raises `c2pa.C2paSettingsError` (an `ImageError`)."""
    report = MetadataReport()
    try:
        tags = _tags(stream)
    except Exception as exc:  # noqa: BLE001 - a hostile file must never stop the scan
        # FFmpeg's own words (PyAV's str() adds an errno and, for a stream, its file descriptor as the "file name")
        reason = getattr(exc, "strerror", None) or f"{type(exc).__name__}: {exc}"
        report.notes.append(f"container: could not read the tags: {clip(str(reason), 200)}")
        tags = {}
    report.items.extend(describe(tags))
    try:
        stream.seek(0)
        c2pa.read_stream(stream, fmt, report, trust_anchors=trust_anchors)
    except c2pa.C2paSettingsError:
        raise  # provenance is off for every file: the record's error, never a note
    except Exception as exc:  # noqa: BLE001
        report.notes.append(f"c2pa: could not parse: {clip(f'{type(exc).__name__}: {exc}', 200)}")
    return report


def _tags(stream: IO[bytes]) -> dict[str, str]:
    import av

    stream.seek(0)
    with av.open(stream, mode="r", metadata_errors="ignore") as container:
        tags = {k.lower(): str(v) for k, v in (container.metadata or {}).items()}
        if container.streams.video:
            for k, v in (container.streams.video[0].metadata or {}).items():
                tags.setdefault(k.lower(), str(v))
    return tags


def describe(tags: dict[str, str]) -> list[Evidence]:
    """Evidence items from lower-cased tag names: camera hints, generator hints, then plain facts."""
    items: list[Evidence] = []
    for key in _CAMERA_KEYS:
        if tags.get(key, "").strip():
            items.append(Evidence("container", key, clip(tags[key].strip(), 120), "camera"))
    for key in _TEXT_KEYS:
        found = _GENERATOR.search(tags.get(key, ""))
        if found:
            items.append(Evidence("container", key, clip(tags[key].strip(), 120), "ai_generated", strong=False,
                                  generator=found.group(1)))
    named = {e.key for e in items}
    for key in _INFO_KEYS:
        if tags.get(key, "").strip() and key not in named:
            items.append(Evidence("container", key, clip(tags[key].strip(), 120), "info"))
    return items
