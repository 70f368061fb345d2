"""The benchmarks' photo-like image generator, for tests (benchmarks/ is a folder of the repository)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.files import photo_like

__all__ = ["photo_like"]
