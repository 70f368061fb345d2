"""Reading a results file back: the records `fakevlm report` builds its page from, streamed line by line.

JSON Lines as fakevlm writes them, and also what a person or another tool may hand over: any line ending (LF,
CRLF, CR alone), a byte-order mark, a torn line (a scan killed mid-write, a truncated copy), and pretty-printed
objects (`explain --json`, one or several: an object opens with ``{`` at the start of a line and closes with ``}``
at the start of a line). Each line or block that is not a fakevlm record is reported once, by its first line's
number; nothing is read whole, and no line or object over `MAX_RECORD_CHARS` is held.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import orjson

from fakevlm_cli.core.errors import FakevlmError
from fakevlm_cli.outputs.results_file import is_record

MAX_RECORD_CHARS = 16 * 2**20  # one record, one line or one pretty-printed object (fakevlm's are a few KiB)
_BAD = object()


def read_records(path: Path) -> Iterator[tuple[int, dict | None]]:
    """(line number, record) for each record in `path`, (line number, None) for each line (or pretty-printed
    block) that is not a fakevlm record; blank lines are passed over."""
    try:  # universal newlines: \r, \r\n and \n all end a line; utf-8-sig drops a leading byte-order mark
        handle = open(path, encoding="utf-8-sig", errors="surrogateescape", newline=None)  # noqa: SIM115
    except OSError as exc:
        raise FakevlmError(f"{path}: cannot read: {exc.strerror or exc}") from None
    with handle:
        try:
            yield from _Reader().read(_lines(handle))
        except OSError as exc:
            raise FakevlmError(f"{path}: cannot read: {exc.strerror or exc}") from None


def _lines(handle: IO[str]) -> Iterator[tuple[int, str | None]]:
    """(number, text) per line; text None for a line over MAX_RECORD_CHARS (read past, never held)."""
    number = 0
    while True:
        text = handle.readline(MAX_RECORD_CHARS)
        if not text:
            return
        number += 1
        if len(text) >= MAX_RECORD_CHARS and not text.endswith("\n"):
            while (more := handle.readline(MAX_RECORD_CHARS)) and not more.endswith("\n"):
                pass
            yield number, None
            continue
        yield number, text


def _parse(text: str) -> Any:
    try:
        return orjson.loads(text)
    except (orjson.JSONDecodeError, ValueError):
        return _BAD


class _Reader:
    """Lines in, records out: a line that is JSON is one value; a line opening with ``{`` that is not starts a
    block, closed by a line opening with ``}`` where the block parses; a new ``{`` line ends a block that never
    did (a torn line)."""

    def __init__(self) -> None:
        self.block: list[str] = []
        self.start = 0
        self.size = 0
        self.skipping = False  # past an oversized block: its remaining lines are not counted again

    def read(self, lines: Iterator[tuple[int, str | None]]) -> Iterator[tuple[int, dict | None]]:
        for number, text in lines:
            if text is None:
                yield from self._end_block()
                yield number, None
            elif self.block or (self.skipping and not text.startswith("{")):
                yield from self._continue_block(number, text)
            else:
                self.skipping = False
                yield from self._line(number, text)
        yield from self._end_block()

    def _line(self, number: int, text: str) -> Iterator[tuple[int, dict | None]]:
        if not text.strip():
            return
        value = _parse(text)
        if value is not _BAD:
            yield number, value if is_record(value) else None
        elif text.startswith("{"):
            self.block, self.start, self.size = [text], number, len(text)
        else:
            yield number, None

    def _continue_block(self, number: int, text: str) -> Iterator[tuple[int, dict | None]]:
        if self.skipping:
            return
        if text.startswith("{"):  # a new object: the open one was torn
            yield from self._end_block()
            yield from self._line(number, text)
            return
        self.block.append(text)
        self.size += len(text)
        if self.size > MAX_RECORD_CHARS:
            yield from self._end_block()
            self.skipping = True
        elif text.startswith("}") and (value := _parse("".join(self.block))) is not _BAD:
            self.block = []
            yield self.start, value if is_record(value) else None

    def _end_block(self) -> Iterator[tuple[int, dict | None]]:
        if self.block:
            self.block = []
            yield self.start, None
