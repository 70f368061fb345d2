"""File identity: which file a path names (through links), what --resume matches files by, and whether a path
is an object-store URI. Every "is this output one of the inputs?" check and the resume index use these."""

from __future__ import annotations

import os
import re

_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]+://")


_URI_BYTES = re.compile(_URI.pattern.encode())


def is_uri(path: object) -> bool:
    """True for an object-store URI (``s3://bucket/key``, as str or bytes), False for a local path (a Path, or
    a str or bytes without a scheme)."""
    if isinstance(path, bytes):
        return _URI_BYTES.match(path) is not None
    return isinstance(path, str) and _URI.match(path) is not None


def resume_key(path: str | bytes | os.PathLike) -> bytes:
    """What --resume matches files by: the absolute path with symbolic links resolved, as raw OS bytes.

    So ``photos/a.jpg``, ``./photos/a.jpg``, ``/home/me/photos/a.jpg`` and a symlink to it are one file, and a
    name that is not UTF-8 matches its record exactly (through `path_bytes`). Relative paths are taken from
    the current directory; an object-store URI (``s3://…``) is matched as it is written.
    """
    if is_uri(path):  # an object-store URI is its own key
        return path if isinstance(path, bytes) else str(path).encode()
    raw = path if isinstance(path, bytes) else os.fsencode(path)
    return os.path.realpath(raw)


def file_key(path: str | bytes | os.PathLike | None) -> tuple[int, int] | None:
    """(st_dev, st_ino) of an existing file, through links: one file by any path to it; None when there is
    none."""
    if path is None:
        return None
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return None
    return st.st_dev, st.st_ino


def same_file(a: str | bytes | os.PathLike, b: str | bytes | os.PathLike) -> bool:
    """Whether two existing paths are one file (a hard link, a symlink, ./x and x)."""
    key = file_key(a)
    return key is not None and key == file_key(b)
