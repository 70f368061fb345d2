"""Machine outputs over `Record` — JSONL and CSV — and terminal-safe text. No Rich here (see render.py).

Untrusted strings (file names, EXIF text, model text) reach the terminal only through `safe_text`, which
turns control characters into visible escapes, and then only inside `rich.text.Text` objects (render.py),
which Rich never parses as markup. JSONL keeps every string exact (orjson escapes it); CSV keeps it exact
too, except that a cell a spreadsheet would run as a formula gets a leading apostrophe. Piped JSONL output
never imports Rich.
"""

from __future__ import annotations

import csv
import io
import re
from typing import IO

import orjson
from fakevlm_cli.record import Record

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]")


def safe_text(value: object, *, max_len: int | None = None) -> str:
    """A string that cannot move the cursor, change colours or reorder text on a terminal.

    Newlines, escapes, bidi overrides and zero-width characters become visible ``\\n``, ``\\x1b``,
    ``\\u202e`` forms, so a file named to look like another one is shown for what it is.
    """
    text = "" if value is None else str(value)
    text = _CONTROL.sub(_escape_char, text)
    if max_len is not None and len(text) > max_len:
        text = text[: max_len - 1] + "…"
    return text


def _escape_char(match: re.Match) -> str:
    ch = match.group(0)
    named = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
    if ch in named:
        return named[ch]
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def percent(p: float | None) -> str:
    return "—" if p is None else f"{p:.1%}"


def first_line(text: str | None) -> str:
    lines = (text or "").strip().splitlines()
    return lines[0] if lines else ""


def evidence_cell(record: Record) -> str:
    ev = record.strongest_evidence
    if ev is None:
        return ""
    name = ev.get("generator") or ev.get("value", "")
    return f"{ev.get('source')}: {name}"


# ---- writers -------------------------------------------------------------------------------------------

class JsonlWriter:
    """One orjson line per record, flushed at once so a killed run loses nothing already judged."""

    def __init__(self, stream: IO[bytes], *, owns_stream: bool = False):
        self.stream = stream
        self.owns_stream = owns_stream

    def write(self, record: Record) -> None:
        self.stream.write(orjson.dumps(record.to_dict(), option=orjson.OPT_SERIALIZE_NUMPY) + b"\n")
        self.stream.flush()

    def close(self) -> None:
        self.stream.flush()
        if self.owns_stream:
            self.stream.close()


CSV_COLUMNS = ("path", "verdict", "p_fake", "model_verdict", "text_verdict", "disagreement", "evidence",
               "reasons", "explanation", "error", "sha256", "size", "format", "width", "height",
               "model_id", "elapsed_ms")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


class CsvWriter:
    """CSV for spreadsheets: one UTF-8 row per record, lists joined with " | ", formulas defused."""

    def __init__(self, stream: IO[bytes]):
        self.stream = stream
        self._row = io.StringIO()
        self.writer = csv.writer(self._row)
        self._emit(CSV_COLUMNS)

    def _emit(self, cells) -> None:
        self._row.seek(0)
        self._row.truncate()
        self.writer.writerow(cells)
        self.stream.write(self._row.getvalue().encode("utf-8"))
        self.stream.flush()

    def write(self, record: Record) -> None:
        d = record.to_dict()
        row = {
            **d,
            "evidence": " | ".join(f"{e['source']}:{e['key']}={e['value']} ({e['signal']})" for e in record.evidence),
            "reasons": " | ".join(record.reasons),
            "model_id": (record.model or {}).get("id"),
        }
        self._emit([_csv_cell(row.get(col)) for col in CSV_COLUMNS])

    def close(self) -> None:
        self.stream.flush()


def _csv_cell(value: object) -> object:
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def error_line(record: Record) -> str:
    """The one stderr line for a file that could not be judged."""
    return f"fakevlm: error: {safe_text(record.path)}: {safe_text(record.error)}"
