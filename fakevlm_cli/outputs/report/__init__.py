"""The HTML report: one self-contained, offline file a person reviews in a browser (docs/report.md).

`fakevlm report results.jsonl -o report.html` builds it from any JSONL fakevlm wrote (thumbnails read back from
the files, checked against their recorded hash); `scan --report report.html` builds it from the scan's own
records (thumbnails made while the pixels were in memory).

Safety, for a page built from untrusted strings (file names, EXIF/XMP/C2PA text, model text, and the JSONL
itself): the server-side parts are rendered by Jinja2 with autoescaping; the records travel as JSON inside a
``<script type="application/json">`` block with ``<``, ``>`` and ``&`` escaped, and the page's own script shows
every string with ``textContent``, never as HTML. A Content-Security-Policy allows only the page's own inline
script and style (by hash) and ``data:`` images: no network request, no other script, no form, no base URL.
Control and bidirectional-override characters are shown as visible escapes (``\\u202e``), so a name cannot
pose as another. Thumbnails are JPEGs this code encoded; nothing from a record is ever used as a URL.

Size: the records are paged in the browser (50 a page), so only one page of thumbnails is decoded at a time.

Modules: entries (record -> page entry, the summary), page (writer, template, CSP), results (reading a results
file back), pictures (thumbnails read back from disk), guard (where the page may be written), charts.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from fakevlm_cli.core.errors import OutputError
from fakevlm_cli.core.files import file_key
from fakevlm_cli.core.options import DEFAULT_THUMBNAIL_SIZE
from fakevlm_cli.core.record import Record
from fakevlm_cli.outputs.report.entries import entry, visible
from fakevlm_cli.outputs.report.guard import GENERATOR, check_target, is_ours
from fakevlm_cli.outputs.report.page import PAGE_SIZE, ReportWriter, content_security_policy
from fakevlm_cli.outputs.report.pictures import Pictures, _refuse_if_recorded
from fakevlm_cli.outputs.report.results import read_records

THUMBNAIL_SIZE = DEFAULT_THUMBNAIL_SIZE


# ---- the two ways in ----------------------------------------------------------------------------------------

class ReportSink:
    """`scan --report`: each record (and the thumbnail the loader made) goes to the report as it comes; the page
    is written when the scan ends, interrupted or not."""

    def __init__(self, path: Path, *, source: str, title: str | None = None):
        self.writer = ReportWriter(path, title=title or "fakevlm scan", source=source)

    def write(self, record: Record) -> None:
        note = None if record.thumbnail else ("no picture (not decodable)" if record.verdict == "error" else None)
        self.writer.add(record.to_dict(), record.thumbnail, note)

    def close(self) -> None:
        self.writer.finish()

    def abandon(self) -> None:
        """No record came: an earlier report at this path stays as it was."""
        self.writer.abandon()


@dataclass
class Built:
    path: Path
    records: int
    skipped: int
    skipped_lines: list[int]  # the first few skipped lines, by number
    thumbnails: int
    missing: int  # pictures not found, unreadable, outside the allowed folders, or changed since recorded
    missing_files: list[str]  # the first few of them, each with why
    thumbnails_dropped: str | None = None  # why every thumbnail was left out (the page would be too big)


_NAMED_FILES = 5  # files named in the "pictures not shown" note


def build_report(results: Path, output: Path, *, images_from: Path | None = None,
                 thumbnail_size: int = THUMBNAIL_SIZE, title: str | None = None, force: bool = False,
                 workers: int = 4) -> Built:
    """`fakevlm report`: the page for every record in `results`, pictures read back from disk (`workers`
    threads, a bounded window ahead, in record order)."""
    check_target(output, force=force, inputs=[results])
    pictures = Pictures(results, images_from, thumbnail_size)
    writer = ReportWriter(output, title=title or results.name, source=results.name)
    output_key = file_key(output)
    missing: list[str] = []
    missing_count = 0
    try:
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="fakevlm-report") as pool:
            window: list = []

            def drain(keep: int) -> None:
                nonlocal missing_count
                while len(window) > keep:
                    data, future = window.pop(0)
                    thumb, note = future.result()
                    if note is not None:
                        missing_count += 1
                        if len(missing) < _NAMED_FILES:
                            missing.append(note.removeprefix("no picture: "))
                    writer.add(data, thumb, note)

            for number, data in read_records(results):
                if data is None:
                    writer.skip(number)
                    continue
                if output_key is not None:
                    _refuse_if_recorded(output_key, data, pictures.roots, output)
                window.append((data, pool.submit(pictures, data)))
                drain(4 * workers)
            drain(0)
        summary = writer.summary
        if summary.total == 0 and summary.skipped:  # a photo, someone's notes: no page, one line, exit 2
            raise OutputError(f"{results}: is not a fakevlm results file ({summary.skipped} line"
                              f"{'' if summary.skipped == 1 else 's'}, none a fakevlm record): give the JSON Lines "
                              "that scan -o or eval --predictions wrote")
        writer.finish()
    except BaseException:
        writer.abandon()
        raise
    summary = writer.summary
    return Built(path=output, records=summary.total, skipped=summary.skipped, skipped_lines=summary.skipped_lines,
                 thumbnails=summary.thumbnails, missing=missing_count, missing_files=missing,
                 thumbnails_dropped=writer.thumbnails_dropped)


__all__ = ["GENERATOR", "PAGE_SIZE", "THUMBNAIL_SIZE", "Built", "ReportSink", "ReportWriter", "build_report",
           "check_target", "content_security_policy", "entry", "is_ours", "read_records", "visible"]
