"""Print a results file's table as Markdown, for docs/performance.md: the table in the docs is this output.

    python benchmarks/markdown.py benchmarks/results/<machine>-<date>.json [more.json ...]

With several files (the same benchmark run again), a ratio column per run shows whether the figures reproduce.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def _cell(text) -> str:
    return str(text if text not in (None, "") else "").replace("|", "\\|")


def markdown(reports: list[dict]) -> str:
    first = reports[0]
    runs = len(reports)
    head = ["row", "measure", "ours", "baseline / reference", "ratio (median, min–max of rounds)"]
    head += [f"ratio, run {i + 1}" for i in range(1, runs)] + ["target"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    others = [{(r["row"], r["measure"]): r for r in rep["table"]} for rep in reports[1:]]
    for r in first["table"]:
        key = (r["row"], r["measure"])
        again = [_cell(o.get(key, {}).get("ratio")) for o in others]
        target = " ".join(x for x in (r.get("target"), r.get("status")) if x)
        cells = [r["row"], r["measure"], r["ours"], r["baseline"], r["ratio"], *again, target]
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    paths = [Path(p) for p in (sys.argv[1:] if argv is None else argv)]
    if not paths:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    print(markdown([json.loads(p.read_text()) for p in paths]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
