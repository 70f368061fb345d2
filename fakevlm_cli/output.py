"""Renderers over `Record`: a streaming Rich table, JSONL and CSV — and terminal-safe text for all of them.

Untrusted strings (file names, EXIF text, model text) reach the terminal only through `safe_text`, which
turns control characters into visible escapes, and only inside `rich.text.Text` objects, which Rich never
parses as markup. JSONL keeps every string exact (orjson escapes it); CSV keeps it exact too, except that a
cell a spreadsheet would run as a formula gets a leading apostrophe.
"""

from __future__ import annotations

import csv
import io
import re
from typing import IO

import orjson
from rich.console import Console
from rich.table import Table
from rich.text import Text

from fakevlm_cli.record import Record

VERDICT_STYLE = {"fake": "bold red", "real": "bold green", "unknown": "bold yellow", "error": "bold magenta"}
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


def plain(value: object, *, style: str | None = None, max_len: int | None = None) -> Text:
    """Untrusted text as a Rich `Text` (never parsed as markup), made terminal-safe."""
    return Text(safe_text(value, max_len=max_len), style=style or "")


def verdict_text(verdict: str) -> Text:
    return Text(verdict.upper() if verdict in ("fake", "real") else verdict, style=VERDICT_STYLE.get(verdict, ""))


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

    def __init__(self, stream: IO[bytes]):
        self.stream = stream

    def write(self, record: Record) -> None:
        self.stream.write(orjson.dumps(record.to_dict(), option=orjson.OPT_SERIALIZE_NUMPY) + b"\n")
        self.stream.flush()

    def close(self) -> None:
        self.stream.flush()


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


class TableWriter:
    """A Rich table printed row by row, so results appear as they come and nothing waits for the end."""

    def __init__(self, console: Console, *, explain: bool = False):
        self.console = console
        self.explain = explain
        self._header_done = False

    def _table(self, header: bool) -> Table:
        width = self.console.width
        table = Table(show_header=header, header_style="bold", box=None, pad_edge=False, expand=True,
                      show_edge=False)
        table.add_column("file", ratio=3, overflow="fold", no_wrap=False)
        table.add_column("verdict", width=8, no_wrap=True)
        table.add_column("P(fake)", width=7, justify="right", no_wrap=True)
        table.add_column("evidence", ratio=2, overflow="ellipsis", no_wrap=True)
        table.add_column("explanation" if self.explain else "note", ratio=3 if width > 100 else 2,
                         overflow="ellipsis", no_wrap=True)
        return table

    def write(self, record: Record) -> None:
        table = self._table(header=not self._header_done)
        self._header_done = True
        if record.verdict == "error":
            note = plain(record.error, style="magenta")
        elif self.explain and record.explanation:
            note = plain(first_line(record.explanation))
        else:
            note = plain(record.reasons[0] if record.reasons else "")
        flag = Text(" !", style="bold red") if record.disagreement else Text("")
        table.add_row(plain(record.path), verdict_text(record.verdict) + flag, percent(record.p_fake),
                      plain(evidence_cell(record)), note)
        self.console.print(table)

    def close(self) -> None:
        pass
