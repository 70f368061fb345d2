"""Opening the `-o` results file, and resuming from one that an earlier, killed run left behind.

A run killed mid-write can leave a torn last line. Resuming cuts the file back to its last complete line
before appending, so the file stays valid JSONL, and collects (path, sha256) of every record already there
so no file is judged — or written — twice.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import IO

import orjson

from fakevlm_cli.errors import OutputError

FORMATS = ("table", "jsonl", "csv")


def format_for_path(path: Path) -> str:
    """The output format a file name asks for: .csv → csv, anything else → jsonl."""
    return "csv" if path.suffix.lower() == ".csv" else "jsonl"


def read_done(path: Path) -> tuple[frozenset, int]:
    """(path, sha256) pairs recorded in a JSONL file, and the byte length of its complete lines.

    Records written without a hash (the file was unreadable then) are keyed by (path, None) so they are
    not written again either.
    """
    done = set()
    good_end = 0
    with open(path, "rb") as fh:
        offset = 0
        for line in fh:
            end = offset + len(line)
            offset = end
            if not line.endswith(b"\n"):
                break  # torn last line: dropped, and its file is scanned again
            try:
                obj = orjson.loads(line)
            except orjson.JSONDecodeError:
                raise OutputError(f"{path}: a complete line ending at byte {end} is not JSON: not a fakevlm "
                                  "results file, refusing to resume into it") from None
            if isinstance(obj, dict) and "path" in obj:
                done.add((obj["path"], obj.get("sha256")))
            good_end = end
    return frozenset(done), good_end


def open_results(path: Path, fmt: str, *, resume: bool) -> tuple[IO[bytes], frozenset]:
    """Open `path` for writing records (truncating it, or appending after a resume check)."""
    done: frozenset = frozenset()
    try:
        if resume and path.exists():
            if fmt != "jsonl":
                raise OutputError(f"{path}: --resume works with JSONL output only")
            done, good_end = read_done(path)
            stream = open(path, "r+b")
            stream.truncate(good_end)
            stream.seek(good_end)
            return stream, done
        if path.parent and not path.parent.exists():
            raise OutputError(f"{path}: folder {path.parent} does not exist")
        return open(path, "wb"), done
    except OutputError:
        raise
    except OSError as exc:
        raise OutputError(f"{path}: cannot write results: {exc.strerror or exc}") from None


def check_writable(path: Path) -> None:
    """Fail before any work when `path` cannot be written, so a long run never ends in a lost result."""
    folder = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        raise OutputError(f"{path}: is a directory, not a results file")
    if not folder.is_dir():
        raise OutputError(f"{path}: folder {folder} does not exist")
    if not os.access(path if path.exists() else folder, os.W_OK):
        raise OutputError(f"{path}: permission denied, cannot write results there")
