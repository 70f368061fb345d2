"""Reading a path list (``--from-file FILE``, ``-`` for stdin, ``-0`` for NUL-separated): lazily, in linear
time and bounded memory, whatever the stream holds."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from itertools import compress
from typing import IO, Any

# PATH_MAX on Linux: no longer path can be opened, so a longer entry of a path list is not a path.
MAX_PATH_BYTES = 4096


def read_path_list(stream: IO[bytes] | IO[str], nul: bool = False, *, max_len: int = MAX_PATH_BYTES,
                   warn: Callable[[str], None] | None = None) -> Iterator[str]:
    """Yield the paths listed in `stream` (``--from-file FILE`` or ``-`` for stdin), lazily.

    Newline mode: one path a line; a trailing ``\\r`` is dropped (CRLF files from Windows) and blank
    or whitespace-only lines are skipped; anything else, leading and trailing spaces included, is
    kept exactly. NUL mode (``-0``, for ``find -print0``): records end with ``\\0``, only empty
    records are skipped, and names may contain newlines. Prefer a binary stream (``sys.stdin.buffer``):
    bytes that are not valid UTF-8 then survive as `os.fsdecode` surrogates and map back to the same
    file, and the first paths are yielded while the producer is still writing.

    The stream is read in pieces and each entry joined once, so time is linear in its size, and an entry
    longer than `max_len` (PATH_MAX: it cannot be a path) is skipped with a `warn` — memory stays bounded
    even on a list without separators, or ``--from-file /dev/zero``.
    """
    binary = isinstance(stream.read(0), bytes)
    what = "entry" if nul else "line"

    def too_long(index: int) -> None:
        if warn is not None:
            warn(f"{what} {index} is longer than {max_len} bytes: not a path, skipped")

    sep = "\0" if nul else "\n"
    limit = max_len if nul else max_len + 1  # room for a CR before the newline
    decode = os.fsdecode if binary else str
    for entry in _bounded_entries(stream, sep.encode() if binary else sep, limit, too_long):
        if not nul:
            entry = entry.removesuffix(b"\r" if binary else "\r")
            if not entry.strip():
                continue  # blank or whitespace-only line
        if entry:
            yield decode(entry)


def _bounded_entries(stream: IO[bytes] | IO[str], sep: Any, limit: int,
                     too_long: Callable[[int], None]) -> Iterator[Any]:
    """The `sep`-separated entries of `stream` (bytes or str, as the stream reads), lazily; an entry longer
    than `limit` is not kept: ``too_long(its 1-based number)`` is called instead, once, as soon as it is seen.

    The stream is read in 64 KiB pieces (``read1`` on a binary stream: what the pipe holds now, instead of
    waiting for a full buffer), each split once, and an entry joined once, so time is linear in the size.
    """
    empty = stream.read(0)
    read = (getattr(stream, "read1", None) if isinstance(empty, bytes) else None) or stream.read
    pending: list = []  # the pieces of the entry being read (empty once it is known to be too long)
    length = number = 0  # the pending entry's length so far; how many entries were finished before it
    while chunk := read(65536):
        parts = chunk.split(sep)
        head = parts[0]
        if length <= limit:
            pending.append(head)
        length += len(head)
        if length > limit and pending:
            pending = []
            too_long(number + 1)
        if len(parts) == 1:
            continue  # the entry goes on in the next chunk
        if length <= limit:
            yield empty.join(pending)
        # Whole entries inside this chunk; empty ones (a run of separators) are skipped at C speed.
        middle = parts[1:-1]
        for index, entry in compress(enumerate(middle, number + 2), middle):
            if len(entry) > limit:
                too_long(index)
            else:
                yield entry
        number += len(parts) - 1
        pending, length = [parts[-1]], len(parts[-1])
        if length > limit:
            pending = []
            too_long(number + 1)
    if length <= limit:
        yield empty.join(pending)
