"""The commands, from a typed request (options.py) to an exit code (errors.py). cli.py only parses.

`run_command` is the one place that turns what can end a run into an exit code and a line on stderr:
Ctrl-C (130), SIGTERM (143) and SIGHUP (129) stop it as cleanly as each command allows (records already judged are on
disk); a closed pipe (141) ends it quietly; a `FakevlmError` is one `fakevlm: error:` line (2). Anything
else is a bug: one `fakevlm: error: internal error …` line and exit 2 as well (never the 1 that a Python
traceback would give, which scripts read as "something judged fake"); `--debug` shows its traceback.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from fakevlm_cli.core.errors import (
    EXIT_ERROR,
    EXIT_HANGUP,
    EXIT_INTERRUPTED,
    EXIT_PIPE,
    EXIT_TERMINATED,
    FakevlmError,
    HungUp,
    PipeClosedError,
    Terminated,
    first_line,
)
from fakevlm_cli.outputs.sinks import Diagnostics


def debug() -> bool:
    return os.environ.get("FAKEVLM_DEBUG", "") not in ("", "0")


def run_command(body: Callable[[Diagnostics], int]) -> int:
    """Run a command body and return its exit code, whatever ends it."""
    diag = Diagnostics()
    with _sigterm_raises():
        try:
            code = body(diag)
            if code in _STOPPED:  # the command stopped itself cleanly (its summary was written): say why
                diag.line(_STOPPED[code])
            return code
        except Terminated as exc:
            diag.line(f"fakevlm: {exc.said}")
            return exc.code
        except KeyboardInterrupt:
            diag.line("fakevlm: interrupted")
            return EXIT_INTERRUPTED
        except PipeClosedError:
            _silence_stdout()
            return EXIT_PIPE
        except FakevlmError as exc:
            if debug():
                raise
            diag.error(str(exc))
            return EXIT_ERROR
        except Exception as exc:  # a bug: said in one line, and never exit 1 ("something fake")
            if debug():
                raise
            diag.error(f"internal error: {type(exc).__name__}: {first_line(exc)} (a bug in fakevlm: run again "
                       "with --debug for the traceback, and please report it)")
            return EXIT_ERROR


_STOPPED = {EXIT_INTERRUPTED: "fakevlm: interrupted", EXIT_TERMINATED: "fakevlm: terminated",
            EXIT_HANGUP: "fakevlm: hung up"}


def interrupted_code(exc: KeyboardInterrupt) -> int:
    """The exit code for a run a command stopped itself after Ctrl-C or SIGTERM."""
    return exc.code if isinstance(exc, Terminated) else EXIT_INTERRUPTED


@contextmanager
def _sigterm_raises() -> Iterator[None]:
    """SIGTERM raises `Terminated` in the main thread, and SIGHUP `HungUp`, so a run stops exactly as on Ctrl-C.
    A SIGHUP that was ignored when we started (`nohup`) stays ignored."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def raise_terminated(signum, frame):
        raise Terminated()

    def raise_hung_up(signum, frame):
        raise HungUp()

    previous = {signal.SIGTERM: signal.signal(signal.SIGTERM, raise_terminated)}
    if signal.getsignal(signal.SIGHUP) is not signal.SIG_IGN:
        previous[signal.SIGHUP] = signal.signal(signal.SIGHUP, raise_hung_up)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _silence_stdout() -> None:
    """After a closed pipe, point stdout at /dev/null so the interpreter's final flush cannot complain."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, AttributeError, ValueError):
        pass


def silence_libraries() -> None:
    """-q: library warnings (Pillow's "Invalid APNG", "Corrupt EXIF data", transformers' notices) go unprinted.

    Our own errors are printed directly, not through `warnings` or `logging`, so they still reach stderr.
    """
    import logging

    from fakevlm_cli.core import library_warnings

    library_warnings.quiet()  # every library's warnings unprinted; Pillow's still noted on the file's record
    logging.disable(logging.WARNING)
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
