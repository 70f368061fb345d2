"""`fakevlm report RESULTS -o report.html`: the HTML report of any JSONL fakevlm wrote. No model, no torch."""

from __future__ import annotations

from fakevlm_cli.core.errors import EXIT_CLEAN, FakevlmError
from fakevlm_cli.core.options import ReportRequest
from fakevlm_cli.outputs.report import build_report
from fakevlm_cli.outputs.sinks import Diagnostics


def report(request: ReportRequest, diag: Diagnostics) -> int:
    args = request.args
    if args.results.is_dir():
        raise FakevlmError(f"{args.results}: is a folder: give the JSONL results file a scan or eval wrote")
    if not args.results.is_file():
        raise FakevlmError(f"{args.results}: no such file")
    built = build_report(args.results, args.output, images_from=args.images_from,
                         thumbnail_size=args.thumbnail_size, title=args.title, force=args.force)
    if built.records == 0:
        diag.warn(f"{args.results}: holds no fakevlm records; the report is empty")
    if built.skipped:
        diag.warn(f"{args.results}: {_skipped(built.skipped, built.skipped_lines)}: left out")
    if built.thumbnails_dropped:
        diag.warn(f"{built.path}: {built.thumbnails_dropped}")
    if args.thumbnail_size and built.missing:
        named = "; ".join(built.missing_files) + ("; …" if built.missing > len(built.missing_files) else "")
        diag.note(f"{built.missing} of {_plural(built.records, 'picture')} not shown: {named}"
                  " (--images-from DIR says where relative paths start; docs/report.md)")
    diag.note(f"report: {built.path} ({_plural(built.records, 'record')})")
    return EXIT_CLEAN


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" + ("" if count == 1 else "s")


def _skipped(count: int, lines: list[int]) -> str:
    """'1 line is not a fakevlm record (line 3)', '12 lines are not fakevlm records (lines 1, 4, …)'."""
    where = ""
    if lines:
        more = ", …" if count > len(lines) else ""
        where = f" (line{'' if len(lines) == 1 else 's'} {', '.join(map(str, lines))}{more})"
    if count == 1:
        return f"1 line is not a fakevlm record{where}"
    return f"{count} lines are not fakevlm records{where}"
