"""The scan's scheduling: candidates → loader threads → engine batches → records, in input order.

A pool of loader threads inspects files (loader.py: read once, hash, metadata, decode, preprocess) while the
main thread keeps the model busy with the previous batch. A bounded window of work in flight keeps memory
flat on folders of any size. Records come out in the order the candidates went in, so output is
deterministic whatever the thread timing or batch size, and each one is yielded as soon as it is final: a
record that needs no model (metadata only, an error) is not held back for a batch.

A file that cannot be judged becomes an ``error`` record and the scan goes on; a batch that fails (a GPU out
of memory, say) is split and retried down to single images, so one bad image never costs its neighbours.
What the model's answers mean for a record (decision, clip aggregate, maps, fusion) is judge.py's.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable, Container, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from fakevlm_cli.core.options import JudgeOptions
from fakevlm_cli.core.record import Record
from fakevlm_cli.media.loader import Inspector, Job, NoRecord
from fakevlm_cli.run.judge import Judge, apply_decision, fuse_record, model_record
from fakevlm_cli.run.plan import Plan

__all__ = ["ScanStats", "Scanner", "apply_decision", "fuse_record", "model_record", "out_of_memory"]

# How long images ready for the model wait for more of a batch when the source is slow (a fast source fills
# batches well within it, so batch composition does not depend on timing).
LINGER_SECONDS = 0.25

if TYPE_CHECKING:  # pragma: no cover
    from fakevlm_cli.core.engine_types import EngineLike
    from fakevlm_cli.media.discover import Candidate


@dataclass
class ScanStats:
    verdicts: Counter = field(default_factory=Counter)
    skipped: int = 0  # files whose content is not an image (found in a folder)
    resumed: int = 0  # files already in the output of an earlier run
    resumed_fake: int = 0  # of those, recorded fake there (the exit code counts them: the scan is one scan)
    recorded_fake: Container = frozenset()  # --resume: (key, sha256) the results file records as fake
    judged_again: int = 0  # --resume: records written whose content the results file holds under another path
    changed: list[str] = field(default_factory=list)  # recorded earlier with other content: judged again
    files: int = 0  # candidates looked at
    started: float = field(default_factory=time.perf_counter)
    model_seconds: float = 0.0
    model_images: int = 0
    inconclusive: int = 0  # records whose P(fake) fell in the --inconclusive band (counted as unknown too)

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    @property
    def records(self) -> int:
        return sum(self.verdicts.values())

    def count(self, outcome: Record | NoRecord) -> None:
        """One candidate's outcome: a final record (its verdict; inconclusive when its P(fake) fell in the
        band), or no record (not an image, or already in the output)."""
        self.files += 1
        if isinstance(outcome, NoRecord):
            self.skipped += outcome.skipped
            self.resumed += not outcome.skipped
            self.resumed_fake += outcome.resumed in self.recorded_fake
        else:
            self.verdicts[outcome.verdict] += 1
            self.inconclusive += outcome.inconclusive and outcome.verdict == "unknown"


class Scanner:
    """Runs one scan: the scheduling (loader threads, batches, retries, record order); `judge.Judge` reads the
    model's answers into the records. `engine` None means metadata only (torch is never imported).

    `plan` says how (run/plan.py): the judge options (a bare `JudgeOptions` is a plan of those options alone),
    what an earlier run recorded (`resume`), whether metadata is read, the decision that turns P(fake) into the
    model's verdict, the trust anchors C2PA signers are checked against, the heatmap writer, thumbnails. The
    plan's engine spec is for executors to load: the engine is given here, loaded.
    """

    def __init__(self, engine: EngineLike | None, plan: Plan | JudgeOptions = JudgeOptions(), *,
                 on_progress: Callable[[ScanStats], None] | None = None):
        plan = plan if isinstance(plan, Plan) else Plan(judge=plan)
        self.engine = engine
        decision = plan.decision
        options = replace(plan.judge, threshold=decision.threshold)  # the threshold records carry
        self.options = options
        heatmaps = plan.heatmap_writer
        self.judge = Judge(engine, options, decision, heatmaps)
        model_info = None if engine is None else model_record(engine, options)
        self.model_info = model_info  # what every record's `model` says
        self.inspector = Inspector(engine, options, read_metadata=plan.read_metadata, resume=plan.resume,
                                   model_info=model_info, trust_anchors=plan.trust_anchors,
                                   preview=heatmaps is not None, thumbnails=plan.thumbnails)
        self.stats = ScanStats(changed=self.inspector.changed)
        self.on_progress = on_progress

    @property
    def memory(self):
        return self.inspector.memory

    def run(self, candidates: Iterable[Candidate]) -> Iterator[Record]:
        """Yield one record per judged file, in candidate order. Safe to stop early (Ctrl-C, break).

        A feeder thread walks `candidates` and hands each to the loader pool, a bounded window ahead, so the
        main thread never blocks on the source itself: when the source is slow (paths trickling in on
        stdin), images in hand wait at most LINGER_SECONDS for batch-mates before they are judged.
        """
        batch = self.options.batch_size
        workers = self.options.loader_threads
        pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="fakevlm-load")
        feeder = _Feeder(candidates, pool, self.inspector.inspect, window=max(2 * batch, 4 * workers))
        ready: list[Job] = []
        waiting_for_model = 0
        sharing = self.engine.sharing_cpu(workers) if self.engine is not None else contextlib.nullcontext()
        try:
            with sharing:
                while True:
                    # With images waiting for batch-mates, wait for the next file only so long: a slow source
                    # (paths trickling in on stdin) must not hold finished work back.
                    future = feeder.next(timeout=LINGER_SECONDS if waiting_for_model else None)
                    if future is _Feeder.END:
                        break
                    if future is _Feeder.IDLE:
                        yield from self._finish(ready)
                        ready, waiting_for_model = [], 0
                        continue
                    job = future.result()
                    if isinstance(job, NoRecord):
                        self.stats.count(job)
                        self._progress()
                    else:
                        ready.append(job)
                        waiting_for_model += len(job.pixels)  # a clip brings several frames
                    if ready and (waiting_for_model == 0 or waiting_for_model >= batch):
                        # nothing in hand waits for the model (stream it now), or a batch is full
                        yield from self._finish(ready)
                        ready, waiting_for_model = [], 0
                yield from self._finish(ready)
        finally:
            feeder.stop()
            pool.shutdown(wait=False, cancel_futures=True)

    def _progress(self) -> None:
        if self.on_progress is not None:
            self.on_progress(self.stats)

    # ---- main thread -----------------------------------------------------------------------------------
    def finish(self, jobs: list[Job]) -> Iterator[Record]:
        """The records of inspected jobs (loader.Inspector's, here or in a Ray CPU task): the model on those
        with pixels, in batches, then fusion; in the jobs' order. A Ray replica's whole work (distributed.py)."""
        return self._finish(jobs)

    def _finish(self, jobs: list[Job]) -> Iterator[Record]:
        # still pictures and clips in separate model runs: a clip that fails never re-runs the pictures
        for todo in ([j for j in jobs if j.pixels and j.sample_times is None],
                     [j for j in jobs if j.pixels and j.sample_times is not None]):
            if todo:
                self._run_model(todo, self.options.batch_size)
        for job in jobs:
            record = self.judge.finalise(job)
            self.stats.count(record)
            self._progress()
            yield record

    def _run_model(self, jobs: list[Job], size: int) -> None:
        """The model over the jobs (all pictures or all clips), `size` images per engine call; on failure,
        halve the jobs and retry so only the guilty file errors — and a clip alone that ran out of memory, its
        frames in halved slices (a long clip on a small GPU; any other failure would only fail again)."""
        start = time.perf_counter()
        try:
            self.judge.call(jobs, size)
        except Exception as exc:  # noqa: BLE001 - out of memory, a bad tensor: isolate it
            if len(jobs) > 1 or (jobs[0].sample_times is not None and size > 1 and out_of_memory(exc)):
                self.judge.model.free_memory()
                if len(jobs) == 1:
                    self._run_model(jobs, size // 2)
                    return
                half = len(jobs) // 2
                self._run_model(jobs[:half], size)
                self._run_model(jobs[half:], size)
                return
            jobs[0].record.verdict = "error"
            jobs[0].record.error = f"model failed on this image: {type(exc).__name__}: {exc}"
        spent = time.perf_counter() - start
        self.stats.model_seconds += spent
        self.stats.model_images += len(jobs)
        for job in jobs:
            job.seconds += spent / len(jobs)


def out_of_memory(exc: BaseException) -> bool:
    """Whether a model call failed for want of memory: torch's OutOfMemoryError (CUDA, MPS), a CPU allocator's
    "can't allocate memory", Python's MemoryError. Told by name and message: this module never imports torch."""
    if isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError":
        return True
    text = str(exc).lower()
    return "out of memory" in text or "can't allocate memory" in text


class _Feeder:
    """Walks the candidates in its own thread and submits each to the loader pool, at most `window` ahead.

    `next` hands the futures over in candidate order. An exception raised by the candidate source (an
    unreadable --from-file, say) is raised in the consumer, after the futures submitted before it.
    """

    END = object()  # the source is exhausted
    IDLE = object()  # nothing arrived within the timeout

    def __init__(self, candidates: Iterable[Candidate], pool: ThreadPoolExecutor, work, *, window: int):
        self._queue: queue.Queue = queue.Queue(maxsize=window)
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._feed, args=(candidates, pool, work), daemon=True,
                                        name="fakevlm-feed")
        self._thread.start()

    def _feed(self, candidates, pool, work) -> None:
        item: object = self.END
        try:
            for candidate in candidates:
                if not self._put(pool.submit(work, candidate)):
                    return
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, which raises it
            item = exc
        self._put(item)

    def _put(self, item) -> bool:
        while not self._stopping.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def next(self, timeout: float | None = None):
        """The next future in candidate order, END when there are no more, IDLE if none came within `timeout`."""
        try:
            item = self._queue.get(timeout=timeout)
        except queue.Empty:
            return self.IDLE
        if item is self.END:
            self._queue.put(item)  # stays the answer to every later call
        if isinstance(item, BaseException):
            raise item
        return item

    def stop(self) -> None:
        self._stopping.set()
