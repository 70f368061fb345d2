"""The page itself: entries spooled to a temporary file, then the template (Jinja2, autoescaped), its
Content-Security-Policy and the records' JSON written out atomically (docs/report.md)."""

from __future__ import annotations

import base64
import hashlib
import tempfile
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path
from typing import IO, Any

import orjson

from fakevlm_cli import __version__
from fakevlm_cli.core.errors import OutputError
from fakevlm_cli.core.record import VERDICTS
from fakevlm_cli.core.text import byte_size
from fakevlm_cli.media.pictures import RAMP
from fakevlm_cli.outputs.guard import REPORT, OutputTarget
from fakevlm_cli.outputs.report.charts import evaluation_panels, histogram
from fakevlm_cli.outputs.report.entries import Summary, entry, visible

PAGE_SIZE = 50
_DATA_MARKER = "<!--fakevlm:data-->"
_NAMED_LINES = 10  # skipped lines named by number
# Chromium cannot hold a string over 512 MiB (the page's JSON): a bigger page opens empty. Past this size the
# thumbnails are left out (the page says so); a page too big even without them is refused (docs/report.md).
MAX_PAGE_BYTES = 400 * 2**20


class ReportWriter:
    """Collects page entries on disk (a temporary file: memory stays flat at any size) and writes the page at
    the end, atomically: a run that fails leaves no half-written report."""

    def __init__(self, path: Path, *, title: str, source: str):
        self.path = Path(path)
        self.title, self.source = title, source
        self.summary = Summary()
        self._spool: IO[bytes] | None = tempfile.TemporaryFile()  # noqa: SIM115 - closed by finish/abandon
        self._count = 0
        self._bytes = 0  # the spooled entries' JSON
        self.thumbnails_dropped: str | None = None  # why the thumbnails were left out, when they were

    def add(self, data: dict, thumb: bytes | None, thumb_note: str | None = None) -> None:
        page_entry = entry(data, self._count, thumb, thumb_note)
        self._count += 1
        self.summary.add(page_entry, data)
        assert self._spool is not None
        self._bytes += self._spool.write(_json(page_entry) + b"\n")

    def skip(self, line: int | None = None) -> None:
        """An input line (or pretty-printed block, by its first line) that is not a fakevlm record."""
        self.summary.skipped += 1
        if line is not None and len(self.summary.skipped_lines) < _NAMED_LINES:
            self.summary.skipped_lines.append(line)

    def abandon(self) -> None:
        if self._spool is not None:
            self._spool.close()
            self._spool = None

    def finish(self) -> Path:
        if self._spool is None:
            raise RuntimeError("the report was already written or abandoned")
        before, after = self._fitted()
        spool = self._spool

        def chunks():
            yield before
            spool.seek(0)
            for number, line in enumerate(spool):
                yield (b"," if number else b"") + line.rstrip(b"\n")
            yield after

        try:  # checked before any work (check_target); written beside it and renamed into place (outputs/guard.py)
            OutputTarget(self.path, REPORT).replace(chunks(), recheck=False)
        finally:
            self.abandon()
        return self.path

    def _fitted(self) -> tuple[bytes, bytes]:
        """The page around its data, within MAX_PAGE_BYTES: thumbnails left out if they would not fit, an
        OutputError if the text alone would not."""
        before, after = self._frame()
        size = len(before) + len(after) + self._bytes
        if size > MAX_PAGE_BYTES and self.summary.thumbnails:
            self.thumbnails_dropped = (f"thumbnails left out: with them the page would be {byte_size(size)}, over "
                                       f"the {byte_size(MAX_PAGE_BYTES)} a browser can open; a smaller "
                                       "--thumbnail-size keeps them")
            self._drop_thumbnails()
            self.summary.notice = self.thumbnails_dropped
            before, after = self._frame()
            size = len(before) + len(after) + self._bytes
        if size > MAX_PAGE_BYTES:
            raise OutputError(f"{self.path}: the report would be {byte_size(size)}, over the "
                              f"{byte_size(MAX_PAGE_BYTES)} a browser can open: split the results file")
        return before, after

    def _frame(self) -> tuple[bytes, bytes]:
        before, after = _page(self.title, self.source, self.summary).rsplit(_DATA_MARKER, 1)
        return before.encode("utf-8") + b'{"records":[', b"]}" + after.encode("utf-8")

    def _drop_thumbnails(self) -> None:
        assert self._spool is not None
        spool, self._spool = self._spool, tempfile.TemporaryFile()  # noqa: SIM115 - closed by finish/abandon
        self._bytes = 0
        with spool:
            spool.seek(0)
            for line in spool:
                page_entry = orjson.loads(line)
                if page_entry["thumb"]:
                    page_entry["thumb"], page_entry["thumb_note"] = None, "picture left out: the page would be too big"
                self._bytes += self._spool.write(_json(page_entry) + b"\n")
        self.summary.thumbnails = 0


def _json(value: Any) -> bytes:
    """JSON that is safe inside a <script> block: <, > and & as \\u escapes (the same string to JSON.parse)."""
    raw = orjson.dumps(value)
    return raw.replace(b"<", b"\\u003c").replace(b">", b"\\u003e").replace(b"&", b"\\u0026")


def _asset(name: str) -> str:
    return resources.files("fakevlm_cli.outputs.report").joinpath(name).read_text("utf-8")


def _hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("ascii") + "'"


def content_security_policy(script: str, style: str) -> str:
    """Only the page's own inline script and style (by hash) and data: images; nothing can be fetched."""
    return (f"default-src 'none'; script-src {_hash(script)}; style-src {_hash(style)}; img-src data:; "
            "base-uri 'none'; form-action 'none'")


def _page(title: str, source: str, summary: Summary) -> str:
    import jinja2

    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    template = env.from_string(_asset("page.html.j2"))
    script, style = _asset("page.js"), _asset("page.css")
    meta = {"page_size": PAGE_SIZE, "ramp": [[s, list(c)] for s, c in RAMP], "threshold": summary.threshold}
    return template.render(
        csp=content_security_policy(script, style), css=jinja2.utils.markupsafe.Markup(style),
        js=jinja2.utils.markupsafe.Markup(script), title=visible(title, 300), source=visible(source, 500),
        created=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), version=__version__, summary=summary,
        verdicts=VERDICTS, histogram=histogram(summary.scores, summary.threshold),
        evaluation=evaluation_panels(summary.truths), meta=meta)
