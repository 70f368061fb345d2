"""Whether the report may be written where it was asked to be (docs/report.md, Safety)."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from fakevlm_cli.core.errors import OutputError
from fakevlm_cli.core.files import same_file

GENERATOR = b'<meta name="generator" content="fakevlm'


def is_ours(path: Path) -> bool:
    """Whether `path` may be replaced by a report without --force: absent, empty, or a fakevlm report (OSError
    when it cannot be read)."""
    if not path.exists() or not path.stat().st_size:
        return True
    with open(path, "rb") as handle:
        return GENERATOR in handle.read(2048)


def check_target(path: Path, *, force: bool = False, inputs: Iterable[Path] = ()) -> None:
    """Refuse, before any work, to write the report where it would destroy something: over one of the inputs,
    over a folder, or over an existing file that is not a fakevlm report (unless `force`)."""
    try:
        for other in inputs:
            if same_file(path, other):
                raise OutputError(f"{path}: is also an input ({other}): refusing to write the report over it")
        if path.is_dir():
            raise OutputError(f"{path}: is a folder")
        if path.exists() and not path.is_file():  # /dev/null, a FIFO: the page would replace the node itself
            raise OutputError(f"{path}: is not a regular file (a device or a pipe): refusing to replace it")
        if not force and not is_ours(path):
            raise OutputError(f"{path}: exists and is not a fakevlm report: refusing to overwrite it (use --force)")
        folder = path.resolve().parent
        if not folder.is_dir():
            raise OutputError(f"{path.parent}: no such folder")
        if not os.access(folder, os.W_OK):  # the page is written beside it, then renamed over it
            raise OutputError(f"{path}: permission denied, cannot write the report in {folder}")
    except OSError as exc:
        raise OutputError(f"{path}: cannot check: {exc.strerror or exc}") from None
