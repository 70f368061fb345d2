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
from fakevlm_cli.media.images import load_image
from fakevlm_cli.media.pictures import thumbnail
from fakevlm_cli.outputs.report.entries import visible

MAX_PICTURE_BYTES = 64 * 2**20  # the most read of one file for its thumbnail; a bigger one is named, not read


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


class Pictures:
    """Where `fakevlm report` may take a record's picture from, and the picture as a thumbnail (or why not).

    Relative paths are looked up under `--images-from DIR`, else the current folder, then the results file's
    folder. A file is shown when its SHA-256 equals the record's (wherever it is); a record with no SHA-256 gets
    a picture only from inside the results file's folder or DIR (resolved: no `..`, absolute path or link leads
    out), so a hand-written results file cannot pull other files into a page that will be shared. Each file is
    read only up to MAX_PICTURE_BYTES and decoded within the scan's pixel limit; with `workers` threads, at most
    workers × MAX_PICTURE_BYTES of files are in memory at once."""

    def __init__(self, results: Path, images_from: Path | None, size: int):
        folder = results.resolve().parent
        self.roots = [images_from] if images_from is not None else [Path.cwd(), folder]
        self.folders = [os.fsencode(os.path.realpath(f)) for f in (folder, images_from) if f is not None]
        self.size = size

    def inside(self, candidate: bytes) -> bool:
        """Whether the file, all links followed, lies in the results file's folder or --images-from."""
        real = os.path.realpath(candidate)
        return any(real == f or real.startswith(os.path.join(f, b"")) for f in self.folders)

    def __call__(self, data: dict) -> tuple[bytes | None, str | None]:
        """The record's picture as a thumbnail, or the note that says why there is none (naming the file)."""
        if not self.size or data.get("media") == "video":  # a clip has no one picture: the page draws its frames
            return None, None
        candidates = _record_files(data, self.roots)
        if candidates is None:
            return None, "no picture: the record's path cannot be read"
        name = visible(data.get("path"), 300)
        expected = data["sha256"] if isinstance(data.get("sha256"), str) else None
        why = None
        for candidate in candidates:
            if not os.path.isfile(candidate):
                continue
            if expected is None and not self.inside(candidate):
                why = why or (f"no picture: {name} is outside the results file's folder and the record has no "
                              "SHA-256 to check it against")
                continue
            raw, problem = _read(candidate)
            if raw is not None and expected is not None and hashlib.sha256(raw).hexdigest() != expected:
                raw, problem = None, "has changed since it was recorded"
            if raw is not None:
                return self._thumbnail(raw, data, name)
            why = why or f"no picture: {name} {problem}"
        return None, why or f"no picture: {name} not found"

    def _thumbnail(self, raw: bytes, data: dict, name: str) -> tuple[bytes | None, str | None]:
        model = data.get("model")
        pixels = model.get("pixels") if isinstance(model, dict) else None
        mode = pixels if pixels in ("viewer", "upstream") else "viewer"
        try:
            with library_warnings.silenced():  # the record says what there was to say about the file
                loaded = load_image(raw, max_pixels=DEFAULT_MAX_PIXELS, mode=mode, draft_short=self.size)
                return thumbnail(loaded.image, self.size), None
        except (ImageError, OSError, ValueError) as exc:
            return None, f"no picture: {name} does not decode ({visible(exc, 200)})"


def _read(candidate: bytes) -> tuple[bytes | None, str]:
    """The file's bytes, up to MAX_PICTURE_BYTES; or None and why not."""
    try:
        with open(candidate, "rb") as handle:
            if os.fstat(handle.fileno()).st_size > MAX_PICTURE_BYTES:
                return None, f"is over {MAX_PICTURE_BYTES // 2**20} MiB, the most the report reads for a picture"
            raw = handle.read(MAX_PICTURE_BYTES + 1)
    except OSError as exc:
        return None, f"cannot be read ({exc.strerror or exc})"
    if len(raw) > MAX_PICTURE_BYTES:  # grew since it was looked at
        return None, f"is over {MAX_PICTURE_BYTES // 2**20} MiB, the most the report reads for a picture"
    return raw, ""
