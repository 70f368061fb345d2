"""What every benchmark row shares: the run context (`Ctx`), the issue's targets, table cell formatting.

Kept apart from run.py so the row modules can import it without importing the script that imports them.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks import files as benchfiles

IMAGE_SIZE = (640, 480)  # the in-memory pictures the score / explain rows use

# The targets of issues #5 and #11. Printed, never asserted. `tiny` marks targets defined on the tiny model.
TARGETS = {
    "explain_ratio_b8": {"text": ">= 1.6x upstream loop", "min": 1.6, "tiny": True},
    "scan_speedup": {"text": ">= 2.5x previous code", "min": 2.5, "tiny": True},
    "help_seconds": {"text": "<= 0.3 s", "max": 0.3, "tiny": False},
    "metadata_ratio": {"text": ">= exiftool", "min": 1.0, "tiny": False},
}


@dataclass
class Ctx:
    """One benchmark run: its arguments, the model, and everything the rows report."""

    args: argparse.Namespace
    workdir: Path
    device: str
    dtype: str
    results: dict = field(default_factory=dict)
    table: list = field(default_factory=list)
    notes: list = field(default_factory=list)
    targets: list = field(default_factory=list)
    built: object = None
    images: list = field(default_factory=list)
    timings: dict | None = None  # the interleaved model timings, shared by the score and explain rows

    @property
    def engine(self):
        return self.built.engine

    def row(self, section, measure_, ours, baseline="", ratio="", target="", status=""):
        self.table.append([section, measure_, fmt(ours), fmt(baseline), fmt_ratio(ratio), target, status])

    def target(self, key: str, value) -> str:
        """Record `value` against target `key`; return its status (a `*` marks a tiny-model target elsewhere)."""
        spec = TARGETS[key]
        if value is None:
            status = "n/a"
        elif "min" in spec:
            status = "MET" if value >= spec["min"] else "MISSED"
        else:
            status = "MET" if value <= spec["max"] else "MISSED"
        entry = {"target": key, "text": spec["text"], "value": value, "status": status}
        if spec["tiny"] and self.args.arch != "tiny":
            entry["note"] = "target defined on the tiny model"
            status += "*"
        self.targets.append(entry)
        return status

    def log(self, message: str) -> None:
        if not self.args.json_only:
            print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def fmt(value) -> str:
    if value is None or value == "":
        return "" if value == "" else "-"
    if isinstance(value, str):
        return value
    if isinstance(value, int):
        return f"{value:,}"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}" if abs(value) >= 0.1 else f"{value:.3f}"


def fmt_ratio(value) -> str:
    if value in ("", None):
        return "" if value == "" else "-"
    if isinstance(value, str):
        return value
    return f"{value:.1f}x" if value >= 1 else f"{value:.2f}x"


def make_images(n: int) -> list:
    return [benchfiles.photo_like(*IMAGE_SIZE, seed=1000 + i) for i in range(n)]


def chunks(items, size):
    return [items[i:i + size] for i in range(0, len(items), size)]


def torch_num_threads() -> int:
    import torch

    return torch.get_num_threads()
