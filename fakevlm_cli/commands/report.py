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
        lines = "1 line is" if built.skipped == 1 else f"{built.skipped} lines are"
        diag.warn(f"{args.results}: {lines} not fakevlm records: left out")
    if args.thumbnail_size and built.missing:
        diag.note(f"{built.missing} of {built.records} pictures not shown (not found, changed since they were "
                  "recorded, or not decodable); --images-from DIR says where relative paths start")
    diag.note(f"report: {built.path} ({built.records} records)")
    return EXIT_CLEAN
