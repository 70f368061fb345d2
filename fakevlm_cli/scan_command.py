"""`fakevlm scan` from request to exit code: discovery, writers, progress, summary, Ctrl-C.

Kept out of cli.py so the command stays a thin parser; kept out of pipeline.py so the pipeline knows
nothing of terminals. Data goes to stdout (or -o FILE), diagnostics to stderr.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Callable, Iterator

from fakevlm_cli.discover import DiscoveryStats, discover, read_path_list
from fakevlm_cli.errors import EXIT_CLEAN, EXIT_FAKE, EXIT_INTERRUPTED, FakevlmError, OutputError
from fakevlm_cli.images import DEFAULT_MAX_PIXELS
from fakevlm_cli.output import CsvWriter, JsonlWriter, error_line, safe_text
from fakevlm_cli.pipeline import ScanConfig, Scanner, ScanStats
from fakevlm_cli.results_file import ResultsFile, format_for_path



@dataclass
class ScanRequest:
    paths: tuple[str, ...]
    from_file: IO[bytes] | None = None
    nul: bool = False
    max_depth: int | None = None
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    hidden: bool = False
    follow_symlinks: bool = False
    fmt: str | None = None
    output: Path | None = None  # Path("-") means stdout
    resume: bool = False
    force: bool = False  # overwrite an -o file that is not a fakevlm results file
    explain: bool = False
    no_model: bool = False
    batch_size: int = 8
    threshold: float = 0.5
    max_new_tokens: int = 256
    max_pixels: int | None = None
    workers: int | None = None
    pixels: str = "viewer"
    max_memory: int | None = None
    quiet: bool = False


def run_scan(request: ScanRequest, load_engine: Callable | None) -> int:
    """Run one scan and return the exit code (0 clean, 1 something fake, 2 fatal, 130 interrupted).

    The order protects what is on disk: the -o file is checked (ours? an input?) before anything is opened
    for writing, locked before the model loads (a second run fails at once), and cut back only after the model
    has loaded (a failed load costs nothing).
    """
    if request.output is not None and str(request.output) == "-":  # -o - is stdout, as in most tools
        if request.resume:
            raise FakevlmError("--resume needs -o FILE.jsonl (the file an earlier run wrote), not stdout")
        request.output, request.fmt = None, request.fmt or "jsonl"
    if request.resume and request.output is None:
        raise FakevlmError("--resume needs -o FILE.jsonl (the file an earlier run wrote)")
    target = None
    if request.output is not None:
        fmt = request.fmt if request.fmt in ("jsonl", "csv") else format_for_path(request.output)
        target = ResultsFile(request.output, fmt, resume=request.resume, force=request.force)
        target.check()
        target.check_not_input([p for p in request.paths if p != "-"])
    discovery = DiscoveryStats()
    avoid = {target.key} if target is not None and target.key else set()  # the output is never scanned
    try:
        candidates = discover(_arguments(request), max_depth=request.max_depth, include=request.include,
                              exclude=request.exclude, hidden=request.hidden,
                              follow_symlinks=request.follow_symlinks, stats=discovery, avoid=avoid)
    except ValueError as exc:  # a malformed glob: a usage error, before any work
        raise FakevlmError(str(exc)) from None
    err = None if request.quiet else _terminal_console(stderr=True)
    show_progress = err is not None
    if target is not None and target.existed and not target.ours and not target.resume:
        # --force over a file that is not ours: it may be evidence, so every input is known before it is touched.
        candidates = list(candidates)
        if discovery.outputs:
            raise OutputError(f"{request.output}: is also an input ({discovery.outputs[0]}): refusing to write "
                              "results over it")
    try:
        if target is not None:
            target.open()
            avoid.add(target.key)
        if show_progress:  # an ETA needs the total; otherwise discovery streams and scanning starts at once
            candidates = list(candidates)
        # The model loads before the output file is cut, so a failed load never truncates earlier results.
        engine = load_engine() if load_engine is not None else None
        writers, closers = _open_writers(request, target)
    except BaseException:
        if target is not None:
            target.abandon()
        raise
    config = ScanConfig(
        explain=request.explain, batch_size=request.batch_size, threshold=request.threshold,
        max_new_tokens=request.max_new_tokens, max_pixels=request.max_pixels or DEFAULT_MAX_PIXELS,
        read_metadata=True, resume=target.index.recorded if target is not None else {}, pixels=request.pixels,
        max_memory=request.max_memory, **({"workers": request.workers} if request.workers else {}),
    )
    table = next((w for w in writers if hasattr(w, "console")), None)  # the Rich table, if any
    table_on_terminal = table is not None and table.console.is_terminal
    # Rows and the live bar must share one console to interleave cleanly; piped data leaves it on stderr.
    progress = _Progress(table.console if table_on_terminal else err, len(candidates)) if show_progress else None
    scanner = Scanner(engine, config, on_progress=progress.update if progress else None)
    interrupted = False
    try:
        if progress:
            progress.start()
        for record in scanner.run(candidates):
            for writer in writers:
                writer.write(record)
            if record.verdict == "error" and not table_on_terminal:
                print(error_line(record), file=sys.stderr, flush=True)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        if progress:
            progress.stop()
        for close in closers:
            close()
    _print_summary(scanner.stats, discovery, writers, err, interrupted, request.output)
    if interrupted:
        return EXIT_INTERRUPTED
    return EXIT_FAKE if scanner.stats.verdicts.get("fake") else EXIT_CLEAN


def _arguments(request: ScanRequest) -> Iterator[str]:
    """Path arguments plus the lines of --from-file / stdin ('-'), in the order given, read lazily."""
    for path in request.paths:
        if path == "-":
            yield from read_path_list(sys.stdin.buffer, nul=request.nul, warn=_warner("stdin"))
        else:
            yield path
    if request.from_file is not None:
        yield from read_path_list(request.from_file, nul=request.nul,
                                  warn=_warner(getattr(request.from_file, "name", "--from-file")))


def _warner(source: str) -> Callable[[str], None]:
    def warn(message: str) -> None:
        print(f"fakevlm: warning: {safe_text(source)}: {message}", file=sys.stderr, flush=True)

    return warn


def _open_writers(request: ScanRequest, target: ResultsFile | None):
    """Writers for stdout and -o FILE, and what to close."""
    writers, closers = [], []
    stdout_tty = sys.stdout.isatty()

    def table_writer():
        from fakevlm_cli import render

        return render.TableWriter(render.console(), explain=request.explain)

    fmt = request.fmt
    if target is not None:
        stream = target.start()
        writers.append(JsonlWriter(stream) if target.fmt == "jsonl" else CsvWriter(stream))
        closers.append(stream.close)
        if stdout_tty and fmt in (None, "table"):
            writers.append(table_writer())
    else:
        fmt = fmt or ("table" if stdout_tty else "jsonl")
        if fmt == "table":
            writers.append(table_writer())
        elif fmt == "jsonl":
            writers.append(JsonlWriter(sys.stdout.buffer))
        else:
            writers.append(CsvWriter(sys.stdout.buffer))
    return writers, closers


def _terminal_console(stderr: bool):
    """A Rich console for stdout/stderr when it is a terminal, else None: piped runs never import Rich."""
    if not (sys.stderr if stderr else sys.stdout).isatty():
        return None
    from fakevlm_cli import render

    return render.console(stderr=stderr)


def _print_summary(stats: ScanStats, discovery: DiscoveryStats, writers, err, interrupted, output=None) -> None:
    table_writer = next((w for w in writers if hasattr(w, "console")), None)
    console = table_writer.console if table_writer is not None else err
    if console is not None:
        from fakevlm_cli import render

        if table_writer is not None:
            console.print()
        console.print(render.summary_table(stats, discovery=discovery, interrupted=interrupted))
    for problem in discovery.unreadable_dirs:
        print(f"fakevlm: warning: {safe_text(problem)}", file=sys.stderr)
    for path in stats.changed:
        print(f"fakevlm: warning: {safe_text(path)}: content changed since it was recorded in {safe_text(output)}; "
              "judged again (the new record supersedes the old one)", file=sys.stderr)


class _Progress:
    """Files done, images/s and ETA on stderr, only when stderr is a terminal."""

    def __init__(self, console, total: int):
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                                   TimeRemainingColumn)

        self.progress = Progress(TextColumn("scanning"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), TimeRemainingColumn(),
                                 console=console, transient=True, redirect_stdout=False, redirect_stderr=False)
        self.task = self.progress.add_task("scan", total=total, rate="")

    def start(self) -> None:
        self.progress.start()

    def stop(self) -> None:
        self.progress.stop()

    def update(self, stats: ScanStats) -> None:
        done = stats.files
        rate = stats.records / stats.elapsed if stats.elapsed > 0 else 0.0
        self.progress.update(self.task, completed=done, rate=f"{rate:.1f} img/s")
