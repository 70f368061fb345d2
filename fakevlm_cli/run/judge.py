"""Judging: the model's answers on a batch of inspected jobs → each record's fields.

pipeline.Scanner decides *when* the model runs (batches, retries in halves, the order records come out); a
`Judge` decides *what its answers mean* for a record: P(fake) under the run's `Decision` (threshold, calibration,
inconclusive band), a clip's aggregate over its sampled frames, the explanation text, relevance maps and heatmap
pictures (--localise), and at the end the fusion of the model's verdict with the metadata evidence.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from fakevlm_cli.core.engine_types import DEFAULT_THRESHOLD, Answer, HeatmapWriter
from fakevlm_cli.core.errors import FakevlmError
from fakevlm_cli.core.options import JudgeOptions
from fakevlm_cli.core.record import Record
from fakevlm_cli.media.loader import Job
from fakevlm_cli.media.video import AGGREGATE, aggregate
from fakevlm_cli.model.localise import crop_box, describe
from fakevlm_cli.run.calibration import Decision
from fakevlm_cli.run.fusion import decisive, fuse

if TYPE_CHECKING:  # pragma: no cover
    from fakevlm_cli.core.engine_types import EngineLike


class Judge:
    """Turns answers into record fields. `engine` None: metadata only (only `finalise` is called then).

    `options` carry the threshold records show (the decision's); `heatmaps` writes the pictures of the maps
    (--heatmaps; None: the maps are described on the records only)."""

    def __init__(self, engine: EngineLike | None, options: JudgeOptions, decision: Decision,
                 heatmaps: HeatmapWriter | None = None):
        self.engine = engine
        self.options = options
        self.decision = decision
        self.heatmaps = heatmaps

    @property
    def model(self) -> EngineLike:
        """The engine; only jobs with pixels reach the model, and only a scan with an engine makes pixels."""
        if self.engine is None:
            raise RuntimeError("pixels to judge in a metadata-only scan")
        return self.engine

    def call(self, jobs: list[Job], size: int) -> None:
        """Every model call first, then the answers onto the records: a call that fails leaves no record half
        written, so the retry writes each once (maps and relevance notes included). `jobs` are all pictures
        or all clips; `size` images go to each engine call."""
        if jobs[0].sample_times is None:
            pixels = [j.pixels[0] for j in jobs]
            if self.options.explain:
                answers = _batched(lambda p: self.model.explain_pixels(p, self.options.max_new_tokens), pixels, size)
            else:
                answers = _batched(self.model.verdicts, pixels, size)
            for job, answer in zip(jobs, answers, strict=True):
                self._set_model_result(job.record, answer)
            if self.options.localise:
                self._localise(jobs, answers)
            return
        # the sampled frames of every clip, `size` at a time; with --explain, each clip's most suspicious frame
        frames = iter(_batched(self.model.verdicts, [p for j in jobs for p in j.pixels], size))
        per_clip = [[next(frames) for _ in job.pixels] for job in jobs]
        explained = [self._explain_frame(job, answers) for job, answers in zip(jobs, per_clip, strict=True)]
        for job, answers, explanation in zip(jobs, per_clip, explained, strict=True):
            self._set_clip_result(job, answers, explanation)
            if self.options.localise:  # a map of one frame would be read as the clip's: not made
                job.record.notes.append("no heatmap: maps are made for still pictures, not for video clips "
                                        "(see video.most_suspicious for the frame to examine)")

    def finalise(self, job: Job) -> Record:
        """The job's final record: pixels that could not be judged, the calibration applied, fusion with the
        metadata evidence, the time spent; the job's images are let go."""
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
        return record

    # ---- localisation ------------------------------------------------------------------------------------------
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
            view = self.model.view
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
            return list(self.model.relevance(pixels, answers, method, chunk))
        except Exception as exc:  # noqa: BLE001 - out of memory, say: retried image by image below
            self.model.free_memory()
            if len(pixels) == 1:
                return [exc]
        found: list = []
        for pixel, answer in zip(pixels, answers, strict=True):
            try:
                found += list(self.model.relevance([pixel], [answer], method, chunk))
            except Exception as exc:  # noqa: BLE001 - this image gets a note, the others their maps
                self.model.free_memory()
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

    # ---- answers → records -------------------------------------------------------------------------------------
    def _explain_frame(self, job: Job, answers: list[Answer]) -> Answer | None:
        """With --explain: the model's answer on the clip's most suspicious frame."""
        top = most_suspicious(answers)
        if not self.options.explain or top is None:
            return None
        return self.model.explain_pixels([job.pixels[top]], self.options.max_new_tokens)[0]

    def _set_clip_result(self, job: Job, answers: list[Answer], explained: Answer | None) -> None:
        """A clip's verdict from its frames' (`video.aggregate`); with --explain, `explained` (its most
        suspicious frame's answer) gives the text."""
        record, times = job.record, job.sample_times or []
        frames = [{"t": round(t, 3), "p_fake": None if a.p_fake is None else round(float(a.p_fake), 6)}
                  for t, a in zip(times, answers, strict=True)]
        video = dict(record.video or {})
        video["sampled"] = frames
        record.video = video
        top = most_suspicious(answers)
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
        # the clip's P(fake) is an aggregate, not a tie greedy decoding broke: no greedy word goes with it
        self._set_model_result(record, replace(explained or answers[top], p_fake=p_fake, verdict_word=None))

    def _set_model_result(self, record: Record, answer: Answer) -> None:
        """`answer`'s verdict (under the run's decision) and text onto the record."""
        if answer.p_fake is None:
            record.p_fake, record.model_verdict = None, "unknown"
            record.notes.append(f"the model stated no verdict ('fake' or 'real') within its first "
                                f"{self.model.verdict_steps} tokens")
        else:
            record.p_fake = round(float(answer.p_fake), 6)
            apply_decision(record, self.decision, greedy=answer.verdict_word)
        if answer.text is not None:
            record.text_verdict, record.explanation = answer.text_verdict, answer.explanation
            record.answer, record.lead_in = answer.text, answer.lead_in


def _batched(call, pixels: list, size: int) -> list[Answer]:
    """`call` over `pixels` in slices of `size` (a clip brings up to 256 frames at once)."""
    return [answer for i in range(0, len(pixels), size) for answer in call(pixels[i:i + size])]


def most_suspicious(answers: list[Answer]) -> int | None:
    """The index of the frame with the highest P(fake) (the last of equals); None when no frame has one."""
    judged = [(a.p_fake, i) for i, a in enumerate(answers) if a.p_fake is not None]
    return max(judged)[1] if judged else None


def model_record(engine: EngineLike, options: JudgeOptions) -> dict:
    """A record's `model`: the engine's identity and the options that shape the pixels it was given."""
    return {**engine.info.to_dict(), "pixels": options.pixels, "fast_decode": options.fast_decode}


def apply_decision(record: Record, decision: Decision, greedy: str | None = None) -> None:
    """The model's verdict from the record's (rounded) P(fake): threshold, calibrated P(fake), inconclusive band;
    a tie at 0.5 follows `greedy`, the word greedy decoding wrote (`Decision.judge`). Also used on records read
    back from a predictions file (eval --from-predictions --calibration): there a tie follows the verdict the
    record was given at 0.5, which was greedy's word."""
    if record.p_fake is None:
        return
    if greedy is None and record.threshold == DEFAULT_THRESHOLD and not record.inconclusive:
        greedy = record.model_verdict
    judged = decision.judge(record.p_fake, greedy)
    record.model_verdict, record.calibrated_p_fake = judged.verdict, judged.calibrated
    record.inconclusive = judged.inconclusive
    record.threshold = decision.threshold


def fuse_record(record: Record, evidence: list, decision: Decision):
    """fusion.fuse for a record judged under `decision` (the probability shown, the band when inconclusive)."""
    shown = record.calibrated_p_fake if record.calibrated_p_fake is not None else record.p_fake
    return fuse(record.model_verdict, shown, evidence, calibrated=record.calibrated_p_fake is not None,
                inconclusive=decision.band if record.inconclusive else None)
