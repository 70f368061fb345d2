"""Reading a results file back: the records `fakevlm report` builds its page from."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import orjson

from fakevlm_cli.core.errors import FakevlmError
from fakevlm_cli.outputs.results_file import is_record


def read_records(path: Path) -> Iterator[dict | None]:
    """Each line of a JSONL results file as a record dict, or None for a line that is not a fakevlm record.
    A file holding one JSON object (`explain --json`) is read as one record."""
    try:
        handle = open(path, "rb")  # noqa: SIM115 - closed by the with below, after the error is worded
    except OSError as exc:
        raise FakevlmError(f"{path}: cannot read: {exc.strerror or exc}") from None
    with handle:
        first = handle.read(1)
        handle.seek(0)
        if first == b"{" and not _first_line_is_json(handle):
            handle.seek(0)
            try:
                whole = orjson.loads(handle.read())
            except orjson.JSONDecodeError:
                raise FakevlmError(f"{path}: neither JSON Lines nor one JSON object") from None
            yield whole if is_record(whole) else None
            return
        handle.seek(0)
        for line in handle:
            if not line.strip():
                continue
            try:
                data = orjson.loads(line)
            except orjson.JSONDecodeError:
                yield None
                continue
            yield data if is_record(data) else None


def _first_line_is_json(handle) -> bool:
    line = handle.readline()
    try:
        orjson.loads(line)
        return True
    except orjson.JSONDecodeError:
        return False
