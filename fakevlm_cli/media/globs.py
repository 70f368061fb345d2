"""The include and exclude globs of a walk: gitignore patterns, taken literally, matched with pathspec."""

from __future__ import annotations

import re
import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pathspec


class Globs:
    """The include or the exclude patterns of one `discover` call, in gitignore syntax (see `discover`).

    Matching is pathspec's gitignore implementation, given each pattern as a gitignore line that means it
    literally (`_gitignore_line`) and each entry as its path relative to the walked directory, with a
    trailing ``/`` for a directory. A pattern without a ``/`` (other than a trailing one) matches at any
    depth, which is the same as matching the entry's name; a pattern that matches a directory matches
    everything below it, so ``raw/**`` and ``raw`` both prune the directory ``raw``.
    """

    def __init__(self, patterns: Sequence[str]):
        self._spec: pathspec.PathSpec | None = None
        lines = []
        for pattern in patterns:
            if not pattern.strip("/"):
                raise ValueError(f"empty glob pattern: {pattern!r}")
            lines.append(_gitignore_line(pattern))
        if not lines:
            return
        import pathspec  # only when there are globs: it adds ~10 ms to every start

        with warnings.catch_warnings():
            # "[[]" is a valid class; Python's re only warns that it may change meaning one day.
            warnings.simplefilter("ignore", FutureWarning)
            try:
                self._spec = pathspec.PathSpec.from_lines("gitignore", lines)
            except (ValueError, re.error):  # pathspec's GitIgnorePatternError (an escaped "/": a\/b), or a
                for pattern, line in zip(patterns, lines, strict=True):  # range Python's re refuses ([b-a])
                    try:
                        pathspec.PathSpec.from_lines("gitignore", [line])
                    except (ValueError, re.error) as exc:  # re's msg: its "at position N" is in the regex
                        raise ValueError(f"invalid glob pattern {pattern!r}: {getattr(exc, 'msg', exc)}") from None
                raise

    def __bool__(self) -> bool:
        return self._spec is not None

    def matches(self, rel: str, is_dir: bool) -> bool:
        if self._spec is None:
            return False
        return self._spec.match_file(rel.replace("\n", "\0") + ("/" if is_dir else ""))


def _gitignore_line(pattern: str) -> str:
    """`pattern` as a gitignore line that means it literally.

    A file name may hold a newline, which pathspec's regular expressions (``.``, ``$``) treat as a line
    end; no name can hold a NUL, so newlines become NULs here and in the paths matched (`Globs.matches`).
    A command-line pattern is not a line of a .gitignore file, so a leading ``#`` or ``!`` is escaped (not a
    comment, not a negation), trailing spaces are escaped (kept, not stripped), and a lone trailing
    backslash matches itself.
    """
    tokens = re.findall(r"\\.|.", pattern.replace("\n", "\0"), re.DOTALL)
    if tokens[0] in ("#", "!"):
        tokens[0] = "\\" + tokens[0]
    if tokens[-1] == "\\":
        tokens[-1] = "\\\\"
    end = len(tokens)
    while end and tokens[end - 1] == " ":
        end -= 1
    return "".join(tokens[:end]) + "\\ " * (len(tokens) - end)
