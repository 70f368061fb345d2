"""Whether the report may be written where it was asked to be (docs/report.md, Safety): the output guard every
writer uses (outputs/guard.py), under the names the report's callers know."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from fakevlm_cli.outputs.guard import REPORT, OutputTarget

GENERATOR = b'<meta name="generator" content="fakevlm'


def is_ours(path: Path) -> bool:
    """Whether `path` may be replaced by a report without --force: absent, empty, or a fakevlm report (OSError
    when it cannot be read)."""
    if not path.exists() or not path.stat().st_size:
        return True
    return REPORT.is_ours(path)


def check_target(path: Path, *, force: bool = False, inputs: Iterable[Path] = ()) -> None:
    """Refuse, before any work, to write the report where it would destroy something (outputs/guard.py): over
    one of the inputs, a folder or a device, or an existing file that is not a fakevlm report (unless `force`)."""
    OutputTarget(path, REPORT, inputs=inputs, force=force).check()
