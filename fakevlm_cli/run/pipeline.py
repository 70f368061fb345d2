"""The scan driver: candidates → loader threads → engine batches → fusion → records, in input order.

A pool of loader threads inspects files (loader.py: read once, hash, metadata, decode, preprocess) while the
main thread keeps the model busy with the previous batch. A bounded window of work in flight keeps memory
flat on folders of any size. Records come out in the order the candidates went in, so output is
deterministic whatever the thread timing or batch size, and each one is yielded as soon as it is final: a
record that needs no model (metadata only, an error) is not held back for a batch.

A file that cannot be judged becomes an ``error`` record and the scan goes on; a batch that fails (a GPU out
of memory, say) is split and retried down to single images, so one bad image never costs its neighbours.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable, Container, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from fakevlm_cli.core.engine_types import Answer, HeatmapWriter
from fakevlm_cli.core.errors import FakevlmError
from fakevlm_cli.core.options import JudgeOptions
from fakevlm_cli.core.record import Record
from fakevlm_cli.media.loader import Inspector, Job, NoRecord
from fakevlm_cli.media.video import AGGREGATE, aggregate
from fakevlm_cli.model.localise import crop_box, describe
from fakevlm_cli.run.calibration import Decision
from fakevlm_cli.run.fusion import decisive, fuse

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
    """Runs one scan. `engine` None means metadata only (torch is never imported).

    `resume` maps files already recorded (see results_file.ResumeIndex) to their hashes; `read_metadata`
    False judges the pixels alone (eval). `decision` turns P(fake) into the model's verdict (default: P(fake)
    >= options.threshold; run.prepare builds one from --calibration and --inconclusive); `trust_anchors` is
    the PEM bundle C2PA signers are checked against.
    """

    def __init__(self, engine: EngineLike | None, options: JudgeOptions = JudgeOptions(), *,
                 read_metadata: bool = True, resume: Mapping[bytes, frozenset] | None = None,
                 on_progress: Callable[[ScanStats], None] | None = None, decision: Decision | None = None,
                 trust_anchors: str | None = None, heatmaps: HeatmapWriter | None = None, thumbnails: int = 0):
        self.engine = engine
        self.decision = decision or Decision(threshold=options.threshold)
        options = replace(options, threshold=self.decision.threshold)  # the threshold records carry
        self.options = options
        self.heatmaps = heatmaps if options.localise else None
        model_info = None if engine is None else model_record(engine, options)
        self.model_info = model_info  # what every record's `model` says
        self.inspector = Inspector(engine, options, read_metadata=read_metadata, resume=resume,
                                   model_info=model_info, trust_anchors=trust_anchors,
                                   preview=self.heatmaps is not None, thumbnails=thumbnails)
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
            record = job.record
            if job.pixel_error and record.verdict != "error":
                # A file whose pixels cannot be judged is an error, unless its metadata alone decides the verdict
                # (a generator's parameters chunk, say): then it gets that verdict with or without a model, and
                # the notes say why the pixels were not judged.
                if decisive(job.evidence):
                    record.notes.append(f"pixels not judged ({job.pixel_error}): the verdict rests on the "
                                        "metadata alone")
                else:
                    record.verdict, record.error = "error", job.pixel_error
            if self.engine is not None:
                record.calibration = self.decision.summary()
            if record.verdict != "error":
                fused = fuse_record(record, job.evidence, self.decision)
                record.verdict, record.reasons, record.disagreement = fused.verdict, fused.reasons, fused.disagreement
            record.elapsed_ms = round(job.seconds * 1000, 3)
            job.pixels, job.preview, job.frame_thumbnails = [], None, []
            self.stats.count(record)
            self._progress()
            yield record

    @property
    def _model(self) -> EngineLike:
        """The engine; only jobs with pixels reach the model, and only a scan with an engine makes pixels."""
        if self.engine is None:
            raise RuntimeError("pixels to judge in a metadata-only scan")
        return self.engine

    def _run_model(self, jobs: list[Job], size: int) -> None:
        """The model over the jobs (all pictures or all clips), `size` images per engine call; on failure,
        halve the jobs and retry so only the guilty file errors — and a clip alone that ran out of memory, its
        frames in halved slices (a long clip on a small GPU; any other failure would only fail again)."""
        start = time.perf_counter()
        try:
            self._call_engine(jobs, size)
        except Exception as exc:  # noqa: BLE001 - out of memory, a bad tensor: isolate it
            if len(jobs) > 1 or (jobs[0].sample_times is not None and size > 1 and out_of_memory(exc)):
                self._model.free_memory()
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

    def _call_engine(self, jobs: list[Job], size: int) -> None:
        """Every model call first, then the answers onto the records: a call that fails leaves no record half
        written, so the retry writes each once (maps and relevance notes included)."""
        if jobs[0].sample_times is None:
            pixels = [j.pixels[0] for j in jobs]
            if self.options.explain:
                answers = self._batched(lambda p: self._model.explain_pixels(p, self.options.max_new_tokens),
                                        pixels, size)
            else:
                answers = self._batched(self._model.verdicts, pixels, size)
            for job, answer in zip(jobs, answers, strict=True):
                self._set_model_result(job.record, answer)
            if self.options.localise:
                self._localise(jobs, answers)
            return
        # the sampled frames of every clip, `size` at a time; with --explain, each clip's most suspicious frame
        frames = iter(self._batched(self._model.verdicts, [p for j in jobs for p in j.pixels], size))
        per_clip = [[next(frames) for _ in job.pixels] for job in jobs]
        explained = [self._explain_frame(job, answers) for job, answers in zip(jobs, per_clip, strict=True)]
        for job, answers, explanation in zip(jobs, per_clip, explained, strict=True):
            self._set_clip_result(job, answers, explanation)
            if self.options.localise:  # a map of one frame would be read as the clip's: not made
                job.record.notes.append("no heatmap: maps are made for still pictures, not for video clips "
                                        "(see video.most_suspicious for the frame to examine)")

    def _localise(self, jobs: list[Job], answers: list[Answer]) -> None:
        """Relevance maps for the batch's verdicts (heatmap pictures too with --heatmaps). A map that cannot be
        computed or written is a note on its record, never an error: the verdict stands without it."""
        todo = []
        for job, answer in zip(jobs, answers, strict=True):
            if answer.p_fake is None:
                job.record.notes.append("no heatmap: the model stated no verdict")
            else:
                todo.append((job, answer))
        if not todo:
            return
        grids = self._relevance([job.pixels[0] for job, _ in todo], [answer for _, answer in todo])
        try:
            view = self._model.view
        except Exception as exc:  # noqa: BLE001 - an engine that cannot say how it crops: no maps, verdicts stand
            grids = [exc] * len(todo)
        for (job, _), grid in zip(todo, grids, strict=True):
            record = job.record
            if isinstance(grid, Exception):
                record.notes.append(f"no heatmap: {type(grid).__name__}: {grid}".rstrip(": "))
                continue
            size = job.input_size or (record.width or 0, record.height or 0)
            try:
                record.localisation = describe(grid, method=self.options.heatmap_method, image_size=size,
                                               crop=crop_box(size[0], size[1], view))
            except ValueError as exc:
                record.notes.append(f"no heatmap: {exc}")
                continue
            if self.heatmaps is not None and job.preview is not None:
                self._write_heatmap(job, record.localisation)

    def _relevance(self, pixels: list, answers: list[Answer]) -> list:
        """One map (or the exception that prevented it) per image: the batch at once, else one by one."""
        method, chunk = self.options.heatmap_method, self.options.batch_size
        try:
            return list(self._model.relevance(pixels, answers, method, chunk))
        except Exception as exc:  # noqa: BLE001 - out of memory, say: retried image by image below
            self._model.free_memory()
            if len(pixels) == 1:
                return [exc]
        found: list = []
        for pixel, answer in zip(pixels, answers, strict=True):
            try:
                found += list(self._model.relevance([pixel], [answer], method, chunk))
            except Exception as exc:  # noqa: BLE001 - this image gets a note, the others their maps
                self._model.free_memory()
                found.append(exc)
        return found

    def _write_heatmap(self, job: Job, localisation: dict) -> None:
        """Through the command's writer (outputs/heatmaps.py): a map it refuses gets a note, never a failure."""
        record = job.record
        try:
            written = self.heatmaps.write(record, job.preview, localisation,  # type: ignore[union-attr]
                                          boxes=record.model_verdict == "fake")
        except FakevlmError as exc:
            record.notes.append(f"heatmap not written: {exc}")
            return
        localisation["heatmap"] = written

    @staticmethod
    def _batched(call, pixels: list, size: int) -> list[Answer]:
        """`call` over `pixels` in slices of `size` (a clip brings up to 256 frames at once)."""
        return [answer for i in range(0, len(pixels), size) for answer in call(pixels[i:i + size])]

    def _explain_frame(self, job: Job, answers: list[Answer]) -> Answer | None:
        """With --explain: the model's answer on the clip's most suspicious frame."""
        top = _most_suspicious(answers)
        if not self.options.explain or top is None:
            return None
        return self._model.explain_pixels([job.pixels[top]], self.options.max_new_tokens)[0]

    def _set_clip_result(self, job: Job, answers: list[Answer], explained: Answer | None) -> None:
        """A clip's verdict from its frames' (`video.aggregate`); with --explain, `explained` (its most
        suspicious frame's answer) gives the text."""
        record, times = job.record, job.sample_times or []
        frames = [{"t": round(t, 3), "p_fake": None if a.p_fake is None else round(float(a.p_fake), 6)}
                  for t, a in zip(times, answers, strict=True)]
        video = dict(record.video or {})
        video["sampled"] = frames
        record.video = video
        top = _most_suspicious(answers)
        if top is None:
            self._set_model_result(record, answers[0])
            return
        judged = [a.p_fake for a in answers if a.p_fake is not None]
        p_fake = aggregate(judged)
        if top < len(job.frame_thumbnails):  # scan --report: the report shows the most suspicious frame
            record.thumbnail = job.frame_thumbnails[top]
        video["aggregate"] = AGGREGATE
        video["most_suspicious"] = frames[top]
        if len(judged) < len(answers):
            record.notes.append(f"the model stated no verdict on {len(answers) - len(judged)} of "
                                f"{len(answers)} sampled frames")
        if explained is not None:
            video["explained_frame"] = frames[top]
        self._set_model_result(record, explained or answers[top], p_fake=p_fake)

    def _set_model_result(self, record: Record, answer: Answer, *, p_fake: float | None = None) -> None:
        """`answer`'s verdict, or the given `p_fake` (a clip's aggregate) with `answer`'s text."""
        if p_fake is not None:
            answer = Answer(p_fake=p_fake, verdict_step=answer.verdict_step, lead_in=answer.lead_in,
                            text=answer.text, verdict_sentence=answer.verdict_sentence,
                            explanation=answer.explanation, text_verdict=answer.text_verdict)
        if answer.p_fake is None:
            record.p_fake, record.model_verdict = None, "unknown"
            record.notes.append(f"the model stated no verdict ('fake' or 'real') within its first "
                                f"{self._model.verdict_steps} tokens")
        else:
            record.p_fake = round(float(answer.p_fake), 6)
            apply_decision(record, self.decision)
        if answer.text is not None:
            record.text_verdict, record.explanation = answer.text_verdict, answer.explanation
            record.answer, record.lead_in = answer.text, answer.lead_in



def model_record(engine: EngineLike, options: JudgeOptions) -> dict:
    """A record's `model`: the engine's identity and the options that shape the pixels it was given."""
    return {**engine.info.to_dict(), "pixels": options.pixels, "fast_decode": options.fast_decode}


def out_of_memory(exc: BaseException) -> bool:
    """Whether a model call failed for want of memory: torch's OutOfMemoryError (CUDA, MPS), a CPU allocator's
    "can't allocate memory", Python's MemoryError. Told by name and message: this module never imports torch."""
    if isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError":
        return True
    text = str(exc).lower()
    return "out of memory" in text or "can't allocate memory" in text


def _most_suspicious(answers: list[Answer]) -> int | None:
    """The index of the frame with the highest P(fake) (the last of equals); None when no frame has one."""
    judged = [(a.p_fake, i) for i, a in enumerate(answers) if a.p_fake is not None]
    return max(judged)[1] if judged else None


def apply_decision(record: Record, decision: Decision) -> None:
    """The model's verdict from the record's (rounded) P(fake): threshold, calibrated P(fake), inconclusive band.
    Also used on records read back from a predictions file (eval --from-predictions --calibration)."""
    if record.p_fake is None:
        return
    judged = decision.judge(record.p_fake)
    record.model_verdict, record.calibrated_p_fake = judged.verdict, judged.calibrated
    record.inconclusive = judged.inconclusive
    record.threshold = decision.threshold


def fuse_record(record: Record, evidence: list, decision: Decision):
    """fusion.fuse for a record judged under `decision` (the probability shown, the band when inconclusive)."""
    shown = record.calibrated_p_fake if record.calibrated_p_fake is not None else record.p_fake
    return fuse(record.model_verdict, shown, evidence, calibrated=record.calibrated_p_fake is not None,
                inconclusive=decision.band if record.inconclusive else None)


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
