"""Who carries out a plan: this process (`LocalExecutor`) or a Ray cluster (distributed.RayExecutor).

`executor_for` chooses once, from the cluster options; a command then does the same whatever it got::

    with executor_for(request.cluster, notify=diag.note) as executor:
        executor.start(plan)          # the model loads here (or Ray starts and replicas will load it)
        for record in executor.run(plan, sources, stats=stats, on_progress=bar):
            ...

`start` is separate from `run` so that a command can order its steps around the model load (scan locks its
-o file first and opens its sinks after); `run` starts the executor itself when it was not. Leaving the `with`
block closes it (a local Ray this run started is stopped).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Protocol

from fakevlm_cli.core.errors import FakevlmError
from fakevlm_cli.core.options import ClusterOptions
from fakevlm_cli.run.plan import Plan, Prepared

if TYPE_CHECKING:  # pragma: no cover
    from fakevlm_cli.core.engine_types import EngineLike
    from fakevlm_cli.core.record import Record
    from fakevlm_cli.media.discover import Candidate
    from fakevlm_cli.run.pipeline import ScanStats

Notify = Callable[[str], None]


class Executor(Protocol):
    """Carries out a `Plan`: records out, one per source, in the sources' order."""

    @property
    def model(self) -> dict | None:
        """What the records' `model` says (once known: after `start` locally, with the first record on Ray)."""

    def start(self, plan: Plan) -> None:
        """Make ready for `plan`: load the model and check a --calibration against it (FakevlmError when it is
        refused or cannot load), or join a cluster whose replicas will."""

    def run(self, plan: Plan, sources: Iterable[Candidate], *, stats: ScanStats | None = None,
            on_progress: Callable[[ScanStats], None] | None = None) -> Iterator[Record]:
        """One record per source, in order, each as it becomes final; `stats` kept up to date for progress."""

    def close(self) -> None:
        """Let go of what `start` took (idempotent)."""

    def __enter__(self) -> Executor: ...

    def __exit__(self, *exc_info) -> None: ...


class LocalExecutor:
    """The plan in this process: the engine from `run.load_engine` (the tests' seam), checked against the
    plan's --calibration, then pipeline.Scanner. Notices (the engine's, a calibration's) go to `notify`."""

    def __init__(self, *, notify: Notify | None = None):
        self.notify = notify
        self.engine: EngineLike | None = None
        self._model: dict | None = None
        self._started = False

    @property
    def model(self) -> dict | None:
        return self._model

    def start(self, plan: Plan) -> None:
        from fakevlm_cli import run

        if plan.engine is not None:
            prepared = plan.prepared or run.prepare(plan.judge)
            self.engine = run.load_checked(plan.engine.options, prepared, plan.judge, notify=self.notify)
            self._model = run.model_record(self.engine, plan.judge)
        self._started = True

    def run(self, plan: Plan, sources: Iterable[Candidate], *, stats: ScanStats | None = None,
            on_progress: Callable[[ScanStats], None] | None = None) -> Iterator[Record]:
        from fakevlm_cli import run

        if not self._started:
            self.start(plan)
        if plan.prepared is None:
            plan = _prepared(plan)
        return run.run_plan(plan, self.engine, sources, stats=stats, on_progress=on_progress)

    def close(self) -> None:
        self.engine = None

    def __enter__(self) -> LocalExecutor:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def _prepared(plan: Plan) -> Plan:
    """The plan with the files its options name read (`run.prepare`)."""
    from dataclasses import replace

    from fakevlm_cli import run

    prepared: Prepared = run.prepare(plan.judge, uses_model=plan.engine is not None)
    return replace(plan, prepared=prepared)


def check_cluster(options: ClusterOptions) -> None:
    """Usage errors in the cluster options, before anything starts: an address that cannot name a cluster,
    --replicas without --ray."""
    if options.ray:
        from fakevlm_cli.run.cluster import check_address

        check_address(options.ray)
    if options.replicas and not options.ray:
        raise FakevlmError("--replicas needs --ray (the model replicas are Ray actors)")


def executor_for(options: ClusterOptions, *, notify: Notify | None = None) -> Executor:
    """The executor the cluster options ask for (checked as `check_cluster` does): Ray with --ray, else this
    process. Nothing starts until its `start`."""
    check_cluster(options)
    if options.ray:
        from fakevlm_cli.run.distributed import RayExecutor

        return RayExecutor(options, notify=notify)
    return LocalExecutor(notify=notify)
