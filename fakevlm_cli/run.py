"""The run layer every command goes through: an engine from options, and `predict` — sources in, records out.

`explain` is `predict` over one source rendered as a panel, `scan` over whatever discovery finds rendered by
sinks, `eval` over a benchmark's images scored by metrics. The commands choose inputs and outputs; how an
image is judged is decided here and below (pipeline → loader → engine), the same for all three.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from fakevlm_cli.options import EngineOptions, JudgeOptions
from fakevlm_cli.pipeline import Scanner, ScanStats

if TYPE_CHECKING:  # pragma: no cover
    from fakevlm_cli.discover import Candidate
    from fakevlm_cli.engine_types import EngineLike
    from fakevlm_cli.record import Record


def load_engine(options: EngineOptions, *, notify: Callable[[str], None] | None = None) -> EngineLike:
    """Load the model (this is where torch is first imported) and pass each of its notices to `notify`.

    The one place engines are made from options: tests stand a stub in here (tests/stub_engine.py).
    """
    from fakevlm_cli.engine import Engine

    engine = Engine.load(options)
    for notice in engine.notices:
        if notify is not None:
            notify(notice)
    return engine


def predict(sources: Iterable[Candidate], options: JudgeOptions, engine: EngineLike | None, *,
            read_metadata: bool = True, resume: Mapping[bytes, frozenset] | None = None,
            stats: ScanStats | None = None, on_progress: Callable[[ScanStats], None] | None = None,
            heatmaps: Path | None = None, thumbnails: int = 0) -> Iterator[Record]:
    """One record per source, in order, as each becomes final. `engine` None: metadata only.

    `stats`, when given, is kept up to date (counts, timings) for progress bars and summaries. With
    `options.localise`, `heatmaps` is a folder for heatmap pictures; `thumbnails` > 0 puts a thumbnail of that
    size on each record (in memory only, for the HTML report).
    """
    scanner = Scanner(engine, options, read_metadata=read_metadata, resume=resume, on_progress=on_progress,
                      heatmaps=heatmaps, thumbnails=thumbnails)
    if stats is not None:
        scanner.stats = stats
        stats.changed = scanner.inspector.changed
    yield from scanner.run(sources)
