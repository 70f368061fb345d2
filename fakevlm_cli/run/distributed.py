"""`scan --ray` / `eval --ray`: `RayExecutor`, the same per-file work as the local executor's, spread over a Ray
cluster with Ray Data.

The pipeline (docs/ray.md):

1. the driver lists the inputs (discover.py: local paths and object-store URIs) and hands Ray one row each;
2. **CPU tasks** inspect them — loader.Inspector, unchanged: bounded reads, hash, sniff, metadata, decode, and
   preprocessing with the model's processor alone (`run.load_pixels`, loaded once per worker process);
3. an **actor pool of replicas** (`--replicas`, one GPU each when the cluster has GPUs) judges them: each actor
   loads the model once (plan.EngineSpec.load, i.e. `run.load_engine`) and runs pipeline.Scanner.finish — the
   single-process scan's own batching, retry-in-halves, clip aggregation and fusion;
4. records stream back to the driver in input order (Ray Data's backpressure bounds what is in flight), where
   the command writes them through its usual sinks.

So a record is the one a single-process scan writes, field for field. Ray restarts a replica that dies and
retries its batch (Ray Data's defaults for actor pools); the driver keeps the first answer for each input, so a
retried batch is never written twice, and an input Ray never answered for becomes an error record, so none is
lost. Ray is imported only here and in cluster.py, and only with --ray; the commands reach this module only through
executor.executor_for.
"""

from __future__ import annotations

import contextlib
import math
import pickle
import queue
import re
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace
from typing import TYPE_CHECKING, Any, cast

from fakevlm_cli import run
from fakevlm_cli.core.errors import FakevlmError, first_line
from fakevlm_cli.core.files import resume_key
from fakevlm_cli.core.options import ClusterOptions
from fakevlm_cli.core.record import Record, recorded_path
from fakevlm_cli.media.loader import Inspector, Job, NoRecord
from fakevlm_cli.run.cluster import Cluster, check_address, check_replicas, connect, cpus_per_replica, quiet_ray
from fakevlm_cli.run.pipeline import Scanner, ScanStats
from fakevlm_cli.run.plan import EngineSpec, Plan

__all__ = ["Cluster", "EngineSpec", "RayExecutor", "check_address", "connect", "predict"]

if TYPE_CHECKING:  # pragma: no cover
    from fakevlm_cli.core.engine_types import EngineLike, Preprocessor
    from fakevlm_cli.media.discover import Candidate

INSPECT_BATCH = 16  # files per CPU task: enough to spread its cost, few enough that a slow file holds few back
INSPECT_MEMORY = 512 * 2**20  # a CPU task reads and decodes one file at a time: a 12 MP photo needs ~150 MB


class RayExecutor:
    """executor.Executor on Ray: `start` joins the cluster (or starts a local Ray) and checks --model; `run`
    spreads the plan over it (the pipeline above); `close` stops a local Ray this run started. The replicas
    load the engine and check a calibration against it; their notices go to `notify`, each text once, as a
    single-process run says them."""

    def __init__(self, options: ClusterOptions, *, notify: Callable[[str], None] | None = None):
        self.options = options
        self.notify = notify
        self.cluster: Cluster | None = None
        self._model: dict | None = None

    @property
    def model(self) -> dict | None:
        """What the records' `model` says, known from the first record a replica judged."""
        return self._model

    def start(self, plan: Plan) -> None:
        if self.cluster is None:
            self.cluster = connect(self.options, notify=self.notify)
        if plan.engine is not None:
            from fakevlm_cli.model.loading import check_source

            check_source(plan.engine.options)  # a mistyped --model: one line now, not a failed job
            check_replicas(self.cluster, self.cluster.replicas(self.options.replicas), plan.engine)

    def run(self, plan: Plan, sources: Iterable[Candidate], *, stats: ScanStats | None = None,
            on_progress: Callable[[ScanStats], None] | None = None) -> Iterator[Record]:
        """One record per source, in order. Heatmap pictures are written by the replica that judged the image,
        on its node (a folder every node shares, on a cluster)."""
        self.start(plan)
        assert self.cluster is not None  # for mypy: start connected
        for record in predict(plan, self.cluster, sources, replicas=self.options.replicas, stats=stats,
                              on_progress=on_progress, notify=self.notify):
            if self._model is None and record.model:
                self._model = record.model
            yield record

    def close(self) -> None:
        if self.cluster is not None:
            self.cluster.close()
            self.cluster = None

    def __enter__(self) -> RayExecutor:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def predict(plan: Plan, cluster: Cluster, sources: Iterable[Candidate], *, replicas: int | None = None,
            stats: ScanStats | None = None, on_progress: Callable[[ScanStats], None] | None = None,
            notify: Callable[[str], None] | None = None) -> Iterator[Record]:
    """`plan` on `cluster`: one record per source, in order. `plan.engine` None: metadata only (no replicas)."""
    import ray.data

    if plan.prepared is None:
        plan = replace(plan, prepared=run.prepare(plan.judge, uses_model=plan.engine is not None))
    spec, options = plan.engine, plan.judge
    resume = plan.resume
    work = replace(plan, resume=None)  # shipped to every task: what an earlier run recorded stays here
    stats = stats if stats is not None else ScanStats()
    rows, paths = [], []
    for index, candidate in enumerate(sources):
        earlier = resume.get(resume_key(candidate.path)) if resume else None
        rows.append({"i": index, "task": pickle.dumps((candidate, earlier))})
        paths.append(candidate.path)
    if not rows:
        return
    quiet_ray()
    context = ray.data.DataContext.get_current()
    context.execution_options.preserve_order = True  # records in input order, as a single-process scan's
    context.enable_progress_bars = False
    context.print_on_execution_start = False
    context.enable_auto_log_stats = False
    # Files per CPU task: INSPECT_BATCH, fewer when there are few files, so that every CPU gets some.
    per_task = max(1, min(INSPECT_BATCH, math.ceil(len(rows) / (2 * max(1.0, cluster.cpus)))))
    dataset: Any = ray.data.from_items(rows, override_num_blocks=min(math.ceil(len(rows) / per_task), 1000))
    # --workers: at most that many inspecting tasks at once (by default, as many as the CPUs allow)
    tasks = {} if options.workers is None else {"compute": ray.data.TaskPoolStrategy(size=options.workers)}
    dataset = dataset.map_batches(_inspect, fn_kwargs={"work": work},
                                  batch_size=per_task, batch_format="numpy", num_cpus=1,
                                  # What one file being decoded may need (not --max-memory, a single process's
                                  # total: a node without it would leave the job waiting forever). Asked for
                                  # here (not by the replicas), it also keeps Ray Data from fusing this stage
                                  # into the replicas' (it fuses ops whose resource requests are equal):
                                  # decoding stays in CPU tasks instead of queueing on the model's actors.
                                  memory=INSPECT_MEMORY, **tasks)
    if spec is None:
        dataset = dataset.map_batches(_finish_metadata, fn_kwargs={"work": work}, batch_size=per_task,
                                      num_cpus=1, batch_format="numpy")
    else:
        count = cluster.replicas(replicas)
        resources: dict[str, float] = ({"num_gpus": spec.gpus} if cluster.gpus else
                                       {"num_cpus": cpus_per_replica(cluster.cpus, count)})
        dataset = dataset.map_batches(_replica_class(spec, work),
                                      batch_size=options.batch_size, batch_format="numpy",
                                      compute=ray.data.ActorPoolStrategy(size=count), **resources)
    yield from _collect(dataset, paths, stats, on_progress, notify)


def _rows(dataset, depth: int = 64) -> Iterator[dict]:
    """The dataset's rows, read by a thread of their own and handed over through a bounded queue.

    Ctrl-C raises KeyboardInterrupt in the main thread wherever it is; inside Ray Data's iterator that can
    leave its executor's lock held, and the shutdown that follows then waits for it forever (seen here about
    one run in four). Here the interrupt lands in `queue.get`, outside Ray; the reader stops at its next row
    and closes the iterator in its own thread. The queue keeps Ray's backpressure: the reader waits while it is
    full."""
    handoff: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    end = object()

    def put(item) -> bool:
        while not stop.is_set():
            try:
                handoff.put(item, timeout=0.5)
                return True
            except queue.Full:
                continue
        return False

    def read() -> None:
        rows = dataset.iter_rows()
        try:
            for row in rows:
                if not put(row):
                    break
            put(end)
        except Exception as exc:  # noqa: BLE001 - handed to the main thread, which raises it
            put(exc)
        finally:
            with contextlib.suppress(Exception):
                rows.close()

    reader = threading.Thread(target=read, name="fakevlm-ray-results", daemon=True)
    reader.start()
    try:
        while (item := handoff.get()) is not end:
            if isinstance(item, Exception):
                raise _job_failure(item) from item
            yield item
    finally:
        stop.set()


def _collect(dataset, paths: list, stats: ScanStats, on_progress, notify) -> Iterator[Record]:
    """The driver's side: each input's first answer, once, in input order; an input with none gets an error
    record in its place (rows come in input order, so one that is skipped over will not come later).
    Notices the replicas send with their first batch are passed to `notify`, each text once."""
    said: set[str] = set()
    expected = 0  # the index of the next input to write
    for row in _rows(dataset):
        if row.get("notes") and notify is not None:
            _say(pickle.loads(row["notes"]), said, notify)
        index = int(row["i"])
        if index < expected:  # a retried batch answering again: written once
            continue
        yield from _unanswered(paths, range(expected, index), stats, on_progress)
        expected = index + 1
        outcome, changed, model_seconds = pickle.loads(row["out"])
        if not isinstance(outcome, NoRecord):
            if changed:
                stats.changed.append(outcome.path)
            if model_seconds:
                stats.model_seconds += model_seconds
                stats.model_images += 1
        stats.count(outcome)
        if on_progress is not None:
            on_progress(stats)
        if not isinstance(outcome, NoRecord):
            yield outcome
    yield from _unanswered(paths, range(expected, len(paths)), stats, on_progress)


def _unanswered(paths: list, indices: range, stats: ScanStats, on_progress) -> Iterator[Record]:
    """An error record for each input never answered: Ray raises rather than drop a row, but say so if it did."""
    for index in indices:
        shown, path_bytes = recorded_path(paths[index])
        record = Record(path=shown, path_bytes=path_bytes, verdict="error",
                        error="the cluster returned no result for this file")
        stats.count(record)
        if on_progress is not None:
            on_progress(stats)
        yield record


def _say(notices: list[str], said: set[str], notify: Callable[[str], None]) -> None:
    """Each replica sends its notices; the user reads each text once."""
    for notice in notices:
        if notice not in said:
            said.add(notice)
            notify(notice)


# ---- what runs on the cluster ------------------------------------------------------------------------------------


_PIXELS: dict[EngineSpec, Preprocessor] = {}  # per worker process: the processor is loaded once, not per batch


def _pixels(spec: EngineSpec) -> Preprocessor:
    if spec not in _PIXELS:
        _PIXELS[spec] = spec.load_pixels()
    return _PIXELS[spec]


def _inspect(batch: dict, *, work: Plan) -> dict:
    """A CPU task: loader.Inspector over a few inputs, with the processor standing in for the engine."""
    pixels = _pixels(work.engine) if work.engine is not None else None
    options = replace(work.judge, threshold=work.decision.threshold)  # as Scanner hands it on
    out = []
    for task in batch["task"]:
        candidate, earlier = pickle.loads(task)
        resume = {resume_key(candidate.path): earlier} if earlier is not None else None
        inspector = Inspector(cast("EngineLike | None", pixels), options, read_metadata=work.read_metadata,
                              resume=resume, trust_anchors=work.trust_anchors,
                              preview=work.heatmap_writer is not None, thumbnails=work.thumbnails)
        job = inspector.inspect(candidate)
        out.append(pickle.dumps((job, bool(inspector.changed))))
    return {"i": batch["i"], "job": out}


def _finish_jobs(scanner: Scanner, batch: dict, notes: list[str] | None = None) -> dict:
    """The replica's (or a metadata-only task's) part: Scanner.finish over the batch's jobs, in order; `notes`
    ride on the batch's first row (every batch has the column, so that all blocks share one schema)."""
    inspected = [pickle.loads(item) for item in batch["job"]]
    jobs = [job for job, _ in inspected if isinstance(job, Job)]
    judged = sum(1 for job in jobs if job.pixels)
    before = scanner.stats.model_seconds
    for job in jobs:
        job.record.model = scanner.model_info
    records = iter(list(scanner.finish(jobs)))
    share = (scanner.stats.model_seconds - before) / judged if judged else 0.0
    out = []
    for job, changed in inspected:
        had_pixels = isinstance(job, Job) and bool(job.pixels)  # finish empties pixels: decided before
        outcome = next(records) if isinstance(job, Job) else job
        out.append(pickle.dumps((outcome, changed, share if had_pixels else 0.0)))
    said = [pickle.dumps(notes) if notes and i == 0 else b"" for i in range(len(out))]
    return {"i": batch["i"], "out": out, "notes": said}


def _finish_metadata(batch: dict, *, work: Plan) -> dict:
    return _finish_jobs(Scanner(None, work), batch)


def _replica_class(spec: EngineSpec, work: Plan) -> type:
    """The replica actor's class with `spec` and `work` inside it (Ray ships a class defined here by value):
    its constructor takes nothing, and loads the engine."""

    class Replica:
        """One model replica: an actor of Ray Data's pool, the engine loaded once in its constructor."""

        def __init__(self):
            self.notes: list[str] = []  # sent with the first batch, for the driver to print
            engine = spec.load(notify=self.notes.append)
            # a calibration for another model: refused; one that only shifts scores a little: a notice
            self.notes += run.check_model(work.prepared, engine, work.judge)  # type: ignore[arg-type]
            self.scanner = Scanner(engine, work)

        def __call__(self, batch: dict) -> dict:
            notes, self.notes = self.notes, []
            return _finish_jobs(self.scanner, batch, notes)

    return Replica


def _job_failure(exc: BaseException) -> FakevlmError:
    """One line for a failed job: the error our code raised on the cluster (a model that cannot be loaded, say),
    found inside Ray's wrappers, else Ray's own first line."""
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen:
        seen.append(current)
        if isinstance(current, FakevlmError):
            return FakevlmError(str(current))
        # Ray keeps a remote exception's traceback as text: its last line names our error and says what it was.
        ours = re.findall(rf"^{re.escape(FakevlmError.__module__)}\.\w+: (.+)$", str(current), re.M)
        if ours:
            return FakevlmError(ours[-1])
        current = getattr(current, "cause", None) or current.__cause__
    return FakevlmError(f"the Ray job failed: {first_line(seen[-1])}")


