"""Machine outputs over `Record` — JSONL and CSV — and terminal-safe text. No Rich here (see render.py).

Untrusted strings (file names, EXIF text, model text) reach the terminal only through `safe_text`, which
turns control characters into visible escapes, and then only inside `rich.text.Text` objects (render.py),
which Rich never parses as markup. JSONL keeps every string exact (orjson escapes it); CSV keeps it exact
too, except that a cell a spreadsheet would run as a formula gets a leading apostrophe. Piped JSONL output
never imports Rich.
"""

from __future__ import annotations

import contextlib
import csv
import io
import re
from typing import IO

import orjson

from fakevlm_cli.core.errors import OutputError, PipeClosedError
from fakevlm_cli.core.record import Record
from fakevlm_cli.core.text import escape_char, percent, safe_text, seconds


def video_cell(record: Record) -> str:
    """A clip's one-line summary for the table: frames judged and the most suspicious one."""
    video = record.video or {}
    if "frame" in video:
        return f"frame #{video['frame']['index']} ({seconds(video['frame']['t'])})"
    sampled = video.get("sampled")
    if not sampled:
        return ""
    top = video.get("most_suspicious")
    head = f"{len(sampled)} frames"
    return f"{head}, top at {seconds(top['t'])} ({percent(top['p_fake'])})" if top else head


def evidence_cell(record: Record, *, strong_only: bool = False) -> str:
    """The record's strongest evidence in a few words ("png: Stable Diffusion (A1111)"); with `strong_only`,
    nothing unless it is strong (an error row is not the place for "jpeg: quality ≈ 85")."""
    ev = record.strongest_evidence
    if ev is None or (strong_only and not ev.get("strong")):
        return ""
    name = ev.get("generator") or ev.get("value", "")
    return f"{ev.get('source')}: {name}"


# ---- writers -------------------------------------------------------------------------------------------

# U+0080..U+009F in UTF-8 (C2 80..C2 9F; C2 is never a continuation byte, so this cannot match mid-character).
_C1_UTF8 = re.compile(rb"\xc2([\x80-\x9f])")


def json_bytes(obj: dict, *, indent: bool = False) -> bytes:
    """JSON, one line (or indented), ending in a newline. Besides what JSON must escape, C1 controls are written
    as ``\\u0080``..``\\u009f``: the same string to any JSON reader, but JSON printed on a terminal cannot
    smuggle a CSI (U+009B) into it. A string that is not valid Unicode (a lone surrogate: a byte of a non-UTF-8
    file name) is written with that byte visible (``\\xff``) instead of failing."""
    option = orjson.OPT_SERIALIZE_NUMPY | (orjson.OPT_INDENT_2 if indent else 0)
    try:
        line = orjson.dumps(obj, option=option)
    except orjson.JSONEncodeError:
        line = orjson.dumps(_visible_surrogates(obj), option=option)
    if b"\xc2" in line:
        line = _C1_UTF8.sub(lambda m: b"\\u00%02x" % m.group(1)[0], line)
    return line + b"\n"


def _visible_surrogates(value):
    if isinstance(value, str):
        return "".join(escape_char(c) if 0xD800 <= ord(c) <= 0xDFFF else c for c in value)
    if isinstance(value, dict):
        return {_visible_surrogates(k): _visible_surrogates(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_visible_surrogates(v) for v in value]
    return value


class _StreamSink:
    """Writes whole lines to a byte stream and flushes each, so a killed run loses nothing already written.

    A failed write is fatal and said in one line (`OutputError`: a full disk, a closed stdout), once: closing
    a sink whose write failed only lets go of its stream. A reader that went away (`| head -1`) is not an
    error (`PipeClosedError`).
    """

    def __init__(self, stream: IO[bytes], name: str, *, owns_stream: bool = False):
        self.stream = stream
        self.name = name
        self.owns_stream = owns_stream
        self._broken = False  # a write failed (and said so)

    def _put(self, data: bytes) -> None:
        try:
            self.stream.write(data)
            self.stream.flush()
        except BrokenPipeError:
            self._broken = True
            raise PipeClosedError(self.name) from None
        except (OSError, ValueError) as exc:  # ValueError: the stream was closed under us
            self._broken = True
            reason = getattr(exc, "strerror", None) or str(exc)
            raise OutputError(f"{self.name}: cannot write results: {reason}") from None

    def close(self) -> None:
        if self._broken:
            if self.owns_stream:
                with contextlib.suppress(OSError, ValueError):
                    self.stream.close()
            return
        try:
            self.stream.flush()
            if self.owns_stream:
                self.stream.close()
        except BrokenPipeError:
            raise PipeClosedError(self.name) from None
        except (OSError, ValueError) as exc:
            reason = getattr(exc, "strerror", None) or str(exc)
            raise OutputError(f"{self.name}: cannot write results: {reason}") from None


class JsonlSink(_StreamSink):
    """One orjson line per record."""

    def write(self, record: Record) -> None:
        self._put(json_bytes(record.to_dict()))


class JsonObjectSink(_StreamSink):
    """Each record as one indented JSON object (`explain --json`)."""

    def write(self, record: Record) -> None:
        self._put(json_bytes(record.to_dict(), indent=True))


CSV_COLUMNS = ("path", "verdict", "p_fake", "model_verdict", "text_verdict", "disagreement", "evidence",
               "reasons", "explanation", "error", "sha256", "size", "format", "width", "height",
               "model_id", "elapsed_ms", "path_bytes", "media", "duration_s", "frames_judged",
               "most_suspicious_s")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


class CsvSink(_StreamSink):
    """CSV for spreadsheets: one UTF-8 row per record, lists joined with " | ", formulas defused. Written to a
    terminal (`terminal`), every cell goes through `safe_text`: a file name cannot move the cursor there."""

    def __init__(self, stream: IO[bytes], name: str, *, owns_stream: bool = False, terminal: bool = False):
        super().__init__(stream, name, owns_stream=owns_stream)
        self._row = io.StringIO()
        self.writer = csv.writer(self._row)
        self.terminal = terminal
        self._emit(CSV_COLUMNS)

    def _emit(self, cells) -> None:
        self._row.seek(0)
        self._row.truncate()
        self.writer.writerow([safe_text(c) if self.terminal and isinstance(c, str) else c for c in cells])
        self._put(_visible_surrogates(self._row.getvalue()).encode("utf-8"))

    def write(self, record: Record) -> None:
        d = record.to_dict()
        row = {
            **d,
            "evidence": " | ".join(f"{e['source']}:{e['key']}={e['value']} ({e['signal']})" for e in record.evidence),
            "reasons": " | ".join(r.word() for r in record.reasons),
            "model_id": (record.model or {}).get("id"),
            **_video_columns(record.video),
        }
        self._emit([_csv_cell(row.get(col)) for col in CSV_COLUMNS])


def _video_columns(video: dict | None) -> dict:
    if not video:
        return {}
    top = video.get("most_suspicious") or video.get("frame")
    return {"duration_s": video.get("duration_s"), "frames_judged": len(video.get("sampled") or []) or None,
            "most_suspicious_s": top["t"] if top else None}


def _csv_cell(value: object) -> object:
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


