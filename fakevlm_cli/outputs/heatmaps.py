"""scan --heatmaps DIR: one heatmap picture per judged image, under a name fakevlm chooses.

The command checks the folder before any work (`HeatmapFolder.check`: one error line, exit 2, for a folder
that cannot be made or written) and hands the writer to the run layer, which calls `write` for each map (on a
Ray replica too: the writer is a small picklable dataclass). A name is predictable (the content's hash and
the file's name), so what is found there is treated as planted until shown otherwise (outputs/guard.py): a
symbolic link is never written through, and a file that is not a fakevlm heatmap is never replaced, --force or
not; the record gets a note saying so instead.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from fakevlm_cli.core.errors import OutputError
from fakevlm_cli.outputs.guard import HEATMAP, OutputTarget, why_not, why_not_writable

if TYPE_CHECKING:  # pragma: no cover
    from PIL import Image

    from fakevlm_cli.core.record import Record


def heatmap_name(record: Record) -> str:
    """A heatmap's file name: the content's hash (the same picture always gets the same map) and a readable,
    filesystem-safe part of the file's name."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(record.path).stem).strip("._")[:40] or "image"
    return f"{(record.sha256 or '0' * 16)[:16]}-{stem}.png"


@dataclass(frozen=True)
class HeatmapFolder:
    """The --heatmaps folder (a `core.engine_types.HeatmapWriter`)."""

    folder: Path

    def check(self) -> None:
        """Before any work: the folder exists or can be made, and can be written (OutputError otherwise).
        Nothing is created here: the folder is made at the first map."""
        folder = Path(os.path.abspath(self.folder))
        existing = folder
        while not existing.exists() and existing != existing.parent:
            existing = existing.parent
        if not existing.is_dir():
            raise OutputError(f"{self.folder}: cannot make the heatmap folder: {existing} is not a folder")
        if not os.access(existing, os.W_OK | os.X_OK):
            doing = "write the heatmaps in it" if existing == folder else f"make the heatmap folder in {existing}"
            raise OutputError(f"{self.folder}: {why_not_writable(existing)}, cannot {doing}")

    def write(self, record: Record, image: Image.Image, localisation: dict, *, boxes: bool) -> str:
        """Render and write one map; the path written, or OutputError (the path and why) when it was not."""
        from fakevlm_cli.media.pictures import heatmap_png

        path = self.folder / heatmap_name(record)
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"{self.folder}: cannot make the heatmap folder: {why_not(exc)}") from None
        target = OutputTarget(path, HEATMAP, user_named=False)
        target.check()  # no --force: a name fakevlm chose never replaces what someone put there
        try:
            png = heatmap_png(image, localisation, boxes=boxes)
        except (OSError, ValueError) as exc:
            raise OutputError(f"{path}: cannot draw the heatmap: {getattr(exc, 'strerror', None) or exc}") from None
        target.replace(png, recheck=False)
        return str(path)
