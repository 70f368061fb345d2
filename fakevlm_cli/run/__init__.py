"""The run layer every command goes through: a `Plan` (plan.py) carried out by an `Executor` (executor.py) —
sources in, records out.

`explain` runs a plan over one source rendered as a panel, `scan` over whatever discovery finds rendered by
sinks, `eval` over a benchmark's images scored by metrics. The commands choose inputs and outputs and build the
plan; how an image is judged is decided here and below (pipeline → judge → loader → engine), the same for all
three, in this process (`LocalExecutor`) or on Ray (`distributed.RayExecutor`). `predict` is the local path as
one call (benchmarks, tests); `load_engine` is where engines are made (the tests' seam).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING

from fakevlm_cli.core.engine_types import DEFAULT_THRESHOLD
from fakevlm_cli.core.errors import FakevlmError
from fakevlm_cli.core.options import EngineOptions, JudgeOptions
from fakevlm_cli.run import calibration
from fakevlm_cli.run.executor import Executor, LocalExecutor, check_cluster, executor_for
from fakevlm_cli.run.pipeline import Scanner, ScanStats, model_record
from fakevlm_cli.run.plan import EngineSpec, Plan, Prepared

__all__ = ["EngineSpec", "Executor", "LocalExecutor", "Plan", "Prepared", "ScanStats",
           "check_cluster", "check_model", "executor_for", "load_checked", "load_engine", "load_pixels", "predict",
           "prepare"]

if TYPE_CHECKING:  # pragma: no cover
    from fakevlm_cli.core.engine_types import EngineLike, HeatmapWriter, Preprocessor
    from fakevlm_cli.core.record import Record
    from fakevlm_cli.media.discover import Candidate


def load_engine(options: EngineOptions, *, notify: Callable[[str], None] | None = None) -> EngineLike:
    """Load the model (this is where torch is first imported) and pass each of its notices to `notify`.

    The one place engines are made from options: tests stand a stub in here (tests/stub_engine.py).
    """
    from fakevlm_cli.model.engine import Engine

    engine = Engine.load(options)
    for notice in engine.notices:
        if notify is not None:
            notify(notice)
    return engine


def load_checked(options: EngineOptions, prepared: Prepared, judge: JudgeOptions, *,
                 notify: Callable[[str], None] | None = None) -> EngineLike:
    """`load_engine`, then a --calibration checked against the model: refused (FakevlmError) when fitted for
    another model, processor or prompt; its notices, like the engine's, go to `notify`."""
    engine = load_engine(options, notify=notify)
    for notice in check_model(prepared, engine, judge):
        if notify is not None:
            notify(notice)
    return engine


def load_pixels(options: EngineOptions) -> Preprocessor:
    """The model's preprocessing alone (its processor, no weights): what a Ray CPU task turns images into
    pixels with, exactly as `load_engine`'s engine would."""
    from fakevlm_cli.model.engine import Engine

    return Engine.load_pixels(options)


def prepare(options: JudgeOptions, *, uses_model: bool = True) -> Prepared:
    """Read --calibration and --trust-anchors and check them with --threshold and --inconclusive: a bad file or
    a contradiction is one FakevlmError line, before the (slow) model load."""
    if not uses_model and (options.calibration is not None or options.inconclusive is not None):
        raise FakevlmError("--calibration and --inconclusive apply to the model's P(fake): drop --no-model")
    loaded = None
    if options.calibration is not None:
        if options.threshold_given or options.threshold != DEFAULT_THRESHOLD:
            raise FakevlmError("give --threshold or --calibration, not both (the calibration has its own threshold)")
        loaded = calibration.load(options.calibration)
    anchors = None
    if options.trust_anchors is not None:
        from fakevlm_cli.evidence.c2pa import read_anchors

        try:
            anchors = read_anchors(options.trust_anchors)
        except ValueError as exc:
            raise FakevlmError(f"{options.trust_anchors}: {exc}") from None
    return Prepared(calibration.decision(options.threshold, loaded, options.inconclusive), anchors)


def check_model(prepared: Prepared, engine: EngineLike, options: JudgeOptions) -> list[str]:
    """Refuse a calibration fitted for another model, processor or prompt (FakevlmError); notices otherwise."""
    if prepared.decision.calibration is None:
        return []
    return prepared.decision.calibration.check(model_record(engine, options))


def predict(sources: Iterable[Candidate], options: JudgeOptions, engine: EngineLike | None, *,
            read_metadata: bool = True, resume: Mapping[bytes, frozenset] | None = None,
            stats: ScanStats | None = None, on_progress: Callable[[ScanStats], None] | None = None,
            prepared: Prepared | None = None, heatmaps: HeatmapWriter | None = None,
            thumbnails: int = 0) -> Iterator[Record]:
    """One record per source, in order, as each becomes final, judged by `engine` (None: metadata only) in
    this process: the plan these arguments make (plan.Plan; `heatmaps` writes the heatmap pictures, see
    outputs/heatmaps.py) run by `run_plan`. `prepared`: as `prepare` read the files the options name (read here
    when not given)."""
    prepared = prepared or prepare(options, uses_model=engine is not None)
    plan = Plan(judge=options, prepared=prepared, resume=resume, read_metadata=read_metadata,
                heatmaps=heatmaps, thumbnails=thumbnails)
    yield from run_plan(plan, engine, sources, stats=stats, on_progress=on_progress)


def run_plan(plan: Plan, engine: EngineLike | None, sources: Iterable[Candidate], *, stats: ScanStats | None = None,
             on_progress: Callable[[ScanStats], None] | None = None) -> Iterator[Record]:
    """`plan` over `sources` with `engine`, in this process (pipeline.Scanner). `stats`, when given, is kept up
    to date (counts, timings) for progress bars and summaries."""
    scanner = Scanner(engine, plan, on_progress=on_progress)
    if stats is not None:
        scanner.stats = stats
        stats.changed = scanner.inspector.changed
    yield from scanner.run(sources)
