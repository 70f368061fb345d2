"""`fakevlm report`'s pictures: each record's file read back from disk, checked, as a thumbnail (or why not)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from fakevlm_cli.core import library_warnings
from fakevlm_cli.core.errors import ImageError, OutputError
from fakevlm_cli.core.files import file_key
from fakevlm_cli.core.options import DEFAULT_MAX_PIXELS
from fakevlm_cli.core.record import raw_path
from fakevlm_cli.media.images import load_image, max_file_bytes
from fakevlm_cli.media.pictures import thumbnail
from fakevlm_cli.outputs.report.entries import visible


def _record_files(data: dict, roots: list[Path]) -> list[bytes] | None:
    """Where the record's file may be on disk (its absolute path, or its relative path under each root); None
    when the record's path cannot be read."""
    try:
        name = raw_path(data["path"], data.get("path_bytes"))
    except (ValueError, TypeError, KeyError):
        return None
    return [name] if os.path.isabs(name) else [os.path.join(os.fsencode(root), name) for root in roots]


def _refuse_if_recorded(output_key: tuple[int, int], data: dict, roots: list[Path], output: Path) -> None:
    """The page must not replace a file the results record (with --force over "not a report", an image)."""
    for candidate in _record_files(data, roots) or []:
        if file_key(candidate) == output_key:
            raise OutputError(f"{output}: is a file the results record ({visible(data.get('path'))}): refusing to "
                              "write the report over it")


def _picture(data: dict, roots: list[Path], size: int) -> tuple[bytes | None, str | None]:
    """The record's file read back from disk and checked against its recorded hash, as a thumbnail; or why not."""
    if not size:
        return None, None
    if data.get("media") == "video":  # a clip has no one picture: the page draws its frames' P(fake) instead
        return None, None
    candidates = _record_files(data, roots)
    if candidates is None:
        return None, "no picture (unreadable path)"
    limit = max_file_bytes(DEFAULT_MAX_PIXELS)
    for candidate in candidates:
        try:
            if not os.path.isfile(candidate):
                continue
            if os.path.getsize(candidate) > limit:
                return None, "no picture (file too big)"
            with open(candidate, "rb") as handle:
                raw = handle.read(limit + 1)
        except OSError:
            continue
        if isinstance(data.get("sha256"), str) and hashlib.sha256(raw).hexdigest() != data["sha256"]:
            return None, "no picture: the file has changed since it was recorded"
        model = data.get("model")
        pixels = model.get("pixels") if isinstance(model, dict) else None
        mode = pixels if pixels in ("viewer", "upstream") else "viewer"
        try:
            with library_warnings.silenced():  # the record says what there was to say about the file
                return thumbnail(load_image(raw, mode=mode).image, size), None
        except (ImageError, OSError, ValueError):
            return None, "no picture (the file does not decode)"
    return None, "no picture (file not found)"
