"""Where records and messages go, decided once from the environment (httpie's and ruff's way).

A **sink** takes records one by one (`write`) and is closed at the end (`close`): JSONL and CSV (output.py,
no Rich), the terminal table and the explain panel (render.py). `scan_outputs` and `explain_outputs` pick the
sinks, and the console for progress and summary, from what stdout and stderr are (a terminal, a pipe, a
file, closed), `--format`, `-o` and `-q`. **Diagnostics** — `fakevlm: error: …` and `fakevlm: warning: …`
lines — go to stderr, terminal-safe, and never raise: a closed stderr costs the messages, not the results.
Piped runs never import Rich.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Any, Protocol

from fakevlm_cli.core.errors import OutputError, first_line
from fakevlm_cli.core.text import safe_text
from fakevlm_cli.outputs.output import CsvSink, JsonlSink, JsonObjectSink

if TYPE_CHECKING:  # pragma: no cover
    from fakevlm_cli.core.record import Record
    from fakevlm_cli.outputs.results_file import ResultsFile


class Sink(Protocol):
    def write(self, record: Record) -> None: ...

    def close(self) -> None: ...


class Deferred:
    """A sink made at its first record, so the file it replaces is cut back only when there is something to
    put in its place: after the model has loaded and judged, here or on every Ray replica.

    `close` with no record makes it all the same (a scan of nothing writes an empty file); `abandon` — the run
    failed or stopped before its first record — calls `on_abandon` instead, and the file stays as it was.
    """

    def __init__(self, make: Callable[[], Sink], on_abandon: Callable[[], None] | None = None):
        self._make, self._on_abandon = make, on_abandon
        self._sink: Sink | None = None

    def _made(self) -> Sink:
        if self._sink is None:
            self._sink = self._make()
        return self._sink

    def write(self, record: Record) -> None:
        self._made().write(record)

    def close(self) -> None:
        self._made().close()

    @property
    def made(self) -> bool:
        """Whether the file was opened (and so cut back) already."""
        return self._sink is not None

    def abandon(self) -> None:
        if self._sink is not None:
            self._sink.close()
        elif self._on_abandon is not None:
            self._on_abandon()


@dataclass(frozen=True)
class Environment:
    """What the process is attached to. stdout None: it was closed before we started (`>&-`)."""

    stdout: IO[bytes] | None
    stdout_tty: bool
    stderr_tty: bool

    @classmethod
    def detect(cls) -> Environment:
        out = sys.stdout
        return cls(stdout=getattr(out, "buffer", None) if out is not None else None,
                   stdout_tty=_isatty(out), stderr_tty=_isatty(sys.stderr))

    def require_stdout(self) -> IO[bytes]:
        if self.stdout is None:
            raise OutputError("stdout: is closed, nowhere to write results (use -o FILE)")
        return self.stdout


def _isatty(stream: Any) -> bool:
    try:
        return stream is not None and stream.isatty()
    except (OSError, ValueError):
        return False


class Diagnostics:
    """One-line messages on stderr. Untrusted text is made terminal-safe; a closed stderr drops them."""

    def line(self, text: str) -> None:
        stream = sys.stderr
        if stream is None:
            return
        with contextlib.suppress(OSError, ValueError):
            print(text, file=stream, flush=True)

    def error(self, message: str) -> None:
        self.line(f"fakevlm: error: {safe_text(message)}")

    def file_error(self, path: str, message: str | None) -> None:
        self.line(f"fakevlm: error: {safe_text(path)}: {safe_text(message)}")

    def warn(self, message: str) -> None:
        self.line(f"fakevlm: warning: {safe_text(message)}")

    def note(self, message: str) -> None:
        self.line(f"fakevlm: note: {safe_text(message)}")


@dataclass
class Outputs:
    """The sinks of one run, and where progress and the summary are shown (None: nowhere)."""

    sinks: list[Sink] = field(default_factory=list)
    console: Any = None  # Rich console for the summary: the table's, else stderr's on a terminal (None: no summary)
    live: Any = None  # Rich console for a progress bar: a terminal's (None: no bar)
    table_on_screen: bool = False  # the table shows error rows itself; otherwise errors go to stderr as lines
    written: int = 0  # records every sink has taken
    abandoned: bool = False  # ended before its first record: the files were left as they were

    def write(self, record: Record) -> None:
        for sink in self.sinks:
            sink.write(record)
        self.written += 1

    def end(self, *, failed: bool, warn: Callable[[str], None] | None = None) -> None:
        """`close`, or — when the run failed or was stopped before its first record — `abandon`.

        `warn`: the run is ending on an exception of its own, which must stay the one reported: a sink that
        fails to close is said through `warn` instead of raised over it."""
        if failed and not self.written:
            self.abandon()
            return
        try:
            self.close()
        except Exception as exc:
            if warn is None:
                raise
            warn(f"while stopping, {first_line(exc)}")

    def abandon(self) -> None:
        """Nothing was written: every sink that would replace a file leaves it as it was. Quietly (the failure
        that ended the run is the one to report)."""
        # a stop inside the first record's writing may come after the file sink made its file: not left as it was
        self.abandoned = not any(isinstance(sink, Deferred) and sink.made for sink in self.sinks)
        for sink in self.sinks:
            with contextlib.suppress(Exception):
                getattr(sink, "abandon", sink.close)()

    def close(self) -> None:
        """Close every sink; the first failure is raised once all are closed."""
        failure: BaseException | None = None
        for sink in self.sinks:
            try:
                sink.close()
            except Exception as exc:  # noqa: BLE001 - re-raised below, after the other sinks are closed
                failure = failure or exc
        if failure is not None:
            raise failure


def scan_outputs(env: Environment, fmt: str | None, target: ResultsFile | None, *, explain: bool,
                 quiet: bool) -> Outputs:
    """Sinks for `scan`: -o FILE gets JSONL or CSV (and a terminal still shows the table), else stdout gets
    `--format`, by default the table on a terminal and JSONL when piped."""
    out = Outputs()
    if target is not None:
        file_sink = JsonlSink if target.fmt == "jsonl" else CsvSink
        out.sinks.append(Deferred(lambda: file_sink(target.start(), str(target.path), owns_stream=True),
                                  target.abandon))
        if env.stdout_tty and fmt in (None, "table"):
            _add_table(out, explain)
    else:
        fmt = fmt or ("table" if env.stdout_tty else "jsonl")
        if fmt == "table":
            _add_table(out, explain)
        else:
            stream = env.require_stdout()
            if fmt == "jsonl":
                out.sinks.append(JsonlSink(stream, "stdout"))
            else:
                out.sinks.append(CsvSink(stream, "stdout", terminal=env.stdout_tty))
    if out.live is None and not quiet and env.stderr_tty:
        from fakevlm_cli.outputs import render

        # a bar on the terminal that stdout's JSONL or CSV rows also reach would overwrite them: the summary only
        rows_on_terminal = target is None and env.stdout_tty
        stderr = render.console(stderr=True)
        out.live = None if rows_on_terminal else stderr
        out.console = out.console or stderr
    return out


def _add_table(out: Outputs, explain: bool) -> None:
    from fakevlm_cli.outputs import render

    console = render.console()
    out.sinks.append(render.TableSink(console, explain=explain))
    out.console = console  # the summary ends the table, on screen or not
    if console.is_terminal:  # rows and the live bar share one console to interleave cleanly
        out.live, out.table_on_screen = console, True


def explain_outputs(env: Environment, *, as_json: bool) -> Outputs:
    """`explain`: one record as a panel on the terminal, or as one indented JSON object (`--json`)."""
    if as_json:
        return Outputs(sinks=[JsonObjectSink(env.require_stdout(), "stdout")])
    from fakevlm_cli.outputs import render

    return Outputs(sinks=[render.PanelSink(render.console())], table_on_screen=True)


def loading(env: Environment, plan_engine: object, *, quiet: bool, what: str):
    """While the model loads (seconds to minutes, a download on a first run): a spinner on a terminal's stderr
    saying what loads; nothing when piped or quiet, or when no model is loaded (Rich imported only here)."""
    if quiet or not env.stderr_tty or plan_engine is None:
        return contextlib.nullcontext()
    from fakevlm_cli.outputs import render

    return render.console(stderr=True).status(safe_text(f"loading the model {what} …"), spinner="dots")
