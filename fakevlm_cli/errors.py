"""The project's own error types.

Every error a user can cause (a bad file, a missing model, a malformed data set) is raised as a
`FakevlmError` subclass whose message is one complete, actionable line. The CLI prints it as
``error: <message>`` and exits 2; the scan pipeline turns it into an ``error`` record and goes on.
"""

# Exit codes, as scanners use them (clamscan, ruff): scripts can trust them.
EXIT_CLEAN, EXIT_FAKE, EXIT_ERROR, EXIT_INTERRUPTED = 0, 1, 2, 130


class FakevlmError(Exception):
    """Base class: the message is shown to the user as it is."""


class ImageError(FakevlmError):
    """A file could not be read as an image (missing, unreadable, truncated, not an image, too big)."""


class ModelLoadError(FakevlmError):
    """The model or its processor could not be loaded (no network, bad path, not a LLaVA, no bitsandbytes)."""


class DatasetError(FakevlmError):
    """A benchmark folder or file is malformed, or a path in it escapes the data directory."""


class OutputError(FakevlmError):
    """An output file cannot be written or resumed from."""
