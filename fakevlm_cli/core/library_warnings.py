"""Pillow's warnings about one file ("Corrupt EXIF data", "Invalid APNG"), said on that file's record.

Pillow warns through `warnings`, from whichever loader thread reads the file. `warnings.catch_warnings` swaps
the process's one filter list and is not thread-safe: a warning raised while another thread was inside such a
block leaked as a raw two-line Python warning (a site-packages path, no file name), even under `-q`. So no
module here uses it around Pillow; one hook, installed once, decides instead:

* raised while a thread reads a file (`notes_to`): a note on that file's record, once per message, whatever
  `-q` says (the record does not depend on what is printed);
* inside `silenced()` (a header read for its size alone, a thumbnail, a pre-check whose file is read again):
  nothing;
* Pillow's decompression-bomb warning: nothing (--max-pixels decides);
* anywhere else: one `fakevlm: warning: Pillow: …` line on stderr, once per message, none under `-q`.

Warnings of other libraries go where they went before. The bottom of the import stack: evidence/ uses it.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import threading
import warnings
from collections.abc import Iterator

_local = threading.local()
_lock = threading.RLock()
_quiet = False
_said: set[str] = set()
_PIL = f"{os.sep}PIL{os.sep}"


def quiet() -> None:
    """-q: no library warning is printed (commands.silence_libraries); the records' notes stay."""
    global _quiet
    _quiet = True
    warnings.simplefilter("ignore")
    _front()


@contextlib.contextmanager
def notes_to(notes: list[str]) -> Iterator[None]:
    """Pillow's warnings raised in this thread meanwhile are appended to `notes`."""
    install()
    outer = getattr(_local, "notes", None)
    _local.notes = notes
    try:
        yield
    finally:
        _local.notes = outer


@contextlib.contextmanager
def silenced() -> Iterator[None]:
    """Pillow's warnings raised in this thread meanwhile are dropped."""
    install()
    _local.silenced = getattr(_local, "silenced", 0) + 1
    try:
        yield
    finally:
        _local.silenced -= 1


def install() -> None:
    """Put the hook in place and Pillow's filter in front, unless they are there already (cheap: called for
    every file; something else — a test runner's `catch_warnings` — may have put its own back meanwhile)."""
    if getattr(warnings.showwarning, "_fakevlm", False) and warnings.filters[:1] == _OURS:
        return
    with _lock:
        if not getattr(warnings.showwarning, "_fakevlm", False):
            previous = warnings.showwarning

            def show(message, category, filename, lineno, file=None, line=None):
                if _PIL not in str(filename):
                    return previous(message, category, filename, lineno, file, line)
                _pillow(message, category)
                return None

            show._fakevlm = True  # type: ignore[attr-defined]
            warnings.showwarning = show
        _front()


_PIL_MODULES = r"PIL(\.|$)"


def _front() -> None:
    """Pillow's warnings always reach the hook (Python's "default" action would say each only once per
    process, and `-q`'s "ignore" would hide them from the records): a filter for the PIL package, first
    (`filterwarnings` moves an equal one there rather than adding a second)."""
    with _lock:
        warnings.filterwarnings("always", module=_PIL_MODULES)


# what `_front` puts first, as `warnings.filters` holds it (re.compile caches: the same pattern object)
_OURS = [("always", None, Warning, re.compile(_PIL_MODULES), 0)]


def _pillow(message, category) -> None:
    from PIL import Image

    if issubclass(category, Image.DecompressionBombWarning) or _local.__dict__.get("silenced", 0):
        return
    text = "Pillow: " + " ".join(str(message).split())  # one line (errors.one_line; this module is below it)
    notes = getattr(_local, "notes", None)
    if notes is not None:
        if text not in notes:
            notes.append(text)
        return
    if _quiet or text in _said:
        return
    _said.add(text)
    with contextlib.suppress(OSError, ValueError, AttributeError):
        print(f"fakevlm: warning: {text}", file=sys.stderr, flush=True)
