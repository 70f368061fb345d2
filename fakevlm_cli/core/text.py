"""Text as people read it and as terminals may safely show it: escapes for untrusted strings, sizes, times.

Untrusted strings (file names, EXIF text, model text) reach a terminal only through `safe_text`. Torch-free and
Rich-free: every layer may use it.
"""

from __future__ import annotations

import unicodedata

from fakevlm_cli.core.record import format_percent

# Shown as they are: printable characters and plain spaces (category Zs). Everything else — C0 and C1 controls,
# DEL, format characters (bidi overrides and isolates, zero-width joiners, soft hyphen, BOM, tag characters),
# line and paragraph separators, surrogates, private-use and unassigned code points — is made visible.
_VISIBLE_SPACE = "Zs"


def safe_text(value: object, *, max_len: int | None = None) -> str:
    """A string that cannot move the cursor, change colours or reorder text on a terminal.

    Newlines, escapes, C1 controls (``\\x9b`` is a CSI introducer), bidi overrides and zero-width characters
    become visible ``\\n``, ``\\x1b``, ``\\u202e`` forms, so a file named to look like another one is shown
    for what it is. A lone surrogate — a byte of a non-UTF-8 file name, as `os.fsdecode` hands it over — is
    shown as the byte it stands for (``\\xff``), so the raw byte never reaches the terminal.
    """
    text = "" if value is None else str(value)
    if not text.isprintable():  # the common case costs one C-level scan
        text = "".join(ch if ch.isprintable() or unicodedata.category(ch) == _VISIBLE_SPACE else escape_char(ch)
                       for ch in text)
    if max_len is not None and len(text) > max_len:
        text = text[: max_len - 1] + "…"
    return text


def escape_char(ch: str) -> str:
    named = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
    if ch in named:
        return named[ch]
    code = ord(ch)
    if 0xDC80 <= code <= 0xDCFF:  # surrogateescape: the undecodable byte itself
        return f"\\x{code - 0xDC00:02x}"
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def percent(p: float | None) -> str:
    return "—" if p is None else format_percent(p)


def byte_size(n: int) -> str:
    """``3.7 MiB``, ``512 bytes``: a size as people read it."""
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} bytes"


def first_line(text: str | None) -> str:
    lines = (text or "").strip().splitlines()
    return lines[0] if lines else ""


def seconds(t: float | None) -> str:
    """A time in a clip: ``4.5 s``, ``1:02.5``, ``1:02:03``."""
    if t is None:
        return "?"
    if t < 60:
        return f"{t:.1f} s"
    minutes, secs = divmod(t, 60)
    if minutes < 60:
        return f"{int(minutes)}:{secs:04.1f}"
    hours, minutes = divmod(int(minutes), 60)
    return f"{hours}:{minutes:02d}:{int(secs):02d}"


def megapixels(n: float) -> str:
    """A pixel count as people read it: ``256 MP``, ``4.2 MP``, ``250,000 pixels`` (never ``0 MP``)."""
    if n >= 10_000_000:
        return f"{n / 1e6:.0f} MP"
    if n >= 1_000_000:
        return f"{n / 1e6:.1f} MP"
    return f"{int(n):,} pixels"
