"""The project's own error types and exit codes.

Every error a user can cause (a bad file, a missing model, a malformed data set, an output that cannot be
written) is raised as a `FakevlmError` subclass whose message is one complete, actionable line. The commands
print it as ``fakevlm: error: <message>`` and exit 2; the scan pipeline turns a bad file into an ``error``
record and goes on.
"""

# Exit codes, as scanners use them (clamscan, ruff): scripts can trust them.
EXIT_CLEAN, EXIT_FAKE, EXIT_ERROR = 0, 1, 2
EXIT_INTERRUPTED = 130  # Ctrl-C (128 + SIGINT): every finished record was written
EXIT_PIPE = 141  # the reader of stdout went away (128 + SIGPIPE), e.g. `| head -1`: not an error
EXIT_TERMINATED = 143  # SIGTERM (128 + SIGTERM), e.g. `timeout` or a service manager: records as on Ctrl-C
EXIT_HANGUP = 129  # SIGHUP (128 + SIGHUP): the terminal or ssh session went away; records as on Ctrl-C


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (its type's name when it has none): what a one-line error
    shows of a library's error."""
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def one_line(text: str) -> str:
    """A library's message on one line (a record's `error` is one line): its lines joined, ends trimmed."""
    return " ".join(part.strip() for part in str(text).splitlines() if part.strip())


class FakevlmError(Exception):
    """Base class: the message is shown to the user as it is."""


class ImageError(FakevlmError):
    """A file could not be read as an image (missing, unreadable, truncated, not an image, too big)."""


class ModelLoadError(FakevlmError):
    """The model or its processor could not be loaded (no network, bad path, not a LLaVA, no bitsandbytes)."""


class DatasetError(FakevlmError):
    """A benchmark folder or file is malformed, or a path in it escapes the data directory."""


class OutputError(FakevlmError):
    """An output cannot be written or resumed from (a full disk, a closed stdout, a file that is not ours)."""


class PipeClosedError(Exception):
    """The process reading our stdout closed it: stop quietly (EXIT_PIPE)."""


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread so a run stops exactly as on Ctrl-C, only with EXIT_TERMINATED."""

    code, said = EXIT_TERMINATED, "terminated"


class HungUp(Terminated):
    """SIGHUP (the terminal closed, the ssh session dropped): a stop as on SIGTERM, with EXIT_HANGUP."""

    code, said = EXIT_HANGUP, "hung up"
