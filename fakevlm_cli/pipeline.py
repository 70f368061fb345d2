"""The scan driver: candidates → loader threads → engine batches → fusion → records, in input order.

Each file is read once. A pool of loader threads hashes it, reads its metadata, decodes it and runs the
processor's image preprocessing, while the main thread keeps the model busy with the previous batch. A
bounded window of work in flight keeps memory flat on folders of any size. Records come out in the order
the candidates went in, so output is deterministic whatever the thread timing or batch size.

A file that cannot be judged becomes an ``error`` record and the scan goes on; a batch that fails (a GPU out
of memory, say) is split and retried down to single images, so one bad image never costs its neighbours.
"""

from __future__ import annotations

import hashlib
import io
import os
import stat
import time
from collections import Counter, deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable, Iterator

from fakevlm_cli.errors import ImageError
from fakevlm_cli.evidence import collect
from fakevlm_cli.evidence.types import Evidence
from fakevlm_cli.fusion import fuse
from fakevlm_cli.images import DEFAULT_MAX_PIXELS, SNIFF_BYTES, load_image, sniff_format
from fakevlm_cli.record import Record

if TYPE_CHECKING:  # pragma: no cover
    from fakevlm_cli.discover import Candidate
    from fakevlm_cli.engine import Engine

# A non-image found in a folder is skipped quietly unless its name claims to be an image.
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".gif", ".webp", ".tif", ".tiff", ".bmp",
                  ".heic", ".heif", ".avif", ".jp2", ".j2k", ".ico", ".apng"}


@dataclass(frozen=True)
class ScanConfig:
    explain: bool = False
    batch_size: int = 8
    threshold: float = 0.5
    max_new_tokens: int = 256
    max_pixels: int = DEFAULT_MAX_PIXELS
    workers: int = min(8, os.cpu_count() or 2)
    read_metadata: bool = True
    pixels: str = "viewer"  # see images.PIXEL_MODES
    resume: frozenset = frozenset()  # (path, sha256) pairs already recorded


@dataclass
class ScanStats:
    verdicts: Counter = field(default_factory=Counter)
    skipped: int = 0  # files whose content is not an image (found in a folder)
    resumed: int = 0  # files already in the output of an earlier run
    files: int = 0  # candidates looked at
    started: float = field(default_factory=time.perf_counter)
    model_seconds: float = 0.0
    model_images: int = 0

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    @property
    def records(self) -> int:
        return sum(self.verdicts.values())


@dataclass
class _Job:
    record: Record | None  # None: skipped or resumed
    evidence: list[Evidence] = field(default_factory=list)
    pixels: object = None  # preprocessed tensor, when the model will see this file
    seconds: float = 0.0
    skipped: bool = False


class Scanner:
    """Runs one scan. `engine` None means metadata only (torch is never imported)."""

    def __init__(self, engine: "Engine | None", config: ScanConfig = ScanConfig(),
                 on_progress: Callable[[ScanStats], None] | None = None):
        self.engine = engine
        self.config = config
        self.stats = ScanStats()
        self.on_progress = on_progress
        self._model_info = {**engine.info.to_dict(), "pixels": config.pixels} if engine is not None else None

    def run(self, candidates: Iterable["Candidate"]) -> Iterator[Record]:
        """Yield one record per judged file, in candidate order. Safe to stop early (Ctrl-C, break)."""
        pool = ThreadPoolExecutor(max_workers=max(1, self.config.workers), thread_name_prefix="fakevlm-load")
        window = max(2 * self.config.batch_size, 4 * self.config.workers)
        pending: deque[Future] = deque()
        source = iter(candidates)
        ready: list[_Job] = []
        waiting_for_model = 0
        try:
            self._fill(pool, pending, source, window)
            while pending:
                job = pending.popleft().result()
                self._fill(pool, pending, source, window)
                self.stats.files += 1
                if job.record is None:
                    self.stats.skipped += job.skipped
                    self.stats.resumed += not job.skipped
                    self._progress()
                    continue
                ready.append(job)
                waiting_for_model += job.pixels is not None
                if waiting_for_model >= self.config.batch_size:
                    yield from self._finish(ready)
                    ready, waiting_for_model = [], 0
            yield from self._finish(ready)
        finally:
            pool.shutdown(wait=False, cancel_futures=True)

    def _fill(self, pool, pending, source, window) -> None:
        while len(pending) < window:
            candidate = next(source, None)
            if candidate is None:
                return
            pending.append(pool.submit(self._inspect, candidate))

    def _progress(self) -> None:
        if self.on_progress is not None:
            self.on_progress(self.stats)

    # ---- loader threads --------------------------------------------------------------------------------
    def _inspect(self, candidate: "Candidate") -> _Job:
        """Everything one file needs before the model: read, hash, sniff, metadata, decode, preprocess."""
        start = time.perf_counter()
        path = Path(candidate.path)
        record = Record(path=str(candidate.path), threshold=self.config.threshold if self.engine else None,
                        model=self._model_info)
        job = _Job(record=record)
        if candidate.error:  # found unusable during discovery (missing, fifo, ...): never opened
            record.verdict, record.error = "error", candidate.error
            return job
        if (record.path, None) in self.config.resume:
            return _Job(record=None)  # recorded by an earlier run without a hash (it was unreadable then)
        try:
            data = _read(path)
            record.size = len(data)
            record.sha256 = hashlib.sha256(data).hexdigest()
            if (record.path, record.sha256) in self.config.resume:
                return _Job(record=None)
            fmt = sniff_format(data[:SNIFF_BYTES])
            if fmt is None and not (candidate.explicit or path.suffix.lower() in IMAGE_SUFFIXES):
                return _Job(record=None, skipped=True)
            if not data:
                raise ImageError("empty file (0 bytes)")
            if fmt is None:
                raise ImageError("not an image (its content matches no image format)")
            record.format = fmt
            if self.config.read_metadata:
                report = collect(path, data, fmt)
                job.evidence = report.items
                record.evidence = [e.to_dict() for e in report.items]
                record.exif = report.exif
                record.notes = list(report.notes)
            if self.engine is not None:
                loaded = load_image(data, max_pixels=self.config.max_pixels, mode=self.config.pixels)
                record.width, record.height, record.frames = loaded.width, loaded.height, loaded.frames
                job.pixels = self.engine.preprocess(loaded.image)
            else:
                _read_size(record, data)
        except ImageError as exc:
            record.verdict, record.error = "error", str(exc)
        except Exception as exc:  # a reader or decoder bug must not end the scan: record it
            record.verdict, record.error = "error", f"unexpected {type(exc).__name__}: {exc}"
        job.seconds = time.perf_counter() - start
        return job

    # ---- main thread -----------------------------------------------------------------------------------
    def _finish(self, jobs: list[_Job]) -> Iterator[Record]:
        todo = [j for j in jobs if j.pixels is not None]
        if todo:
            self._run_model(todo)
        for job in jobs:
            record = job.record
            if record.verdict != "error":
                fused = fuse(record.model_verdict, record.p_fake, job.evidence)
                record.verdict, record.reasons, record.disagreement = fused.verdict, fused.reasons, fused.disagreement
            record.elapsed_ms = round(job.seconds * 1000, 3)
            job.pixels = None
            self.stats.verdicts[record.verdict] += 1
            self._progress()
            yield record

    def _run_model(self, jobs: list[_Job]) -> None:
        """One engine call for the batch; on failure, halve and retry so only the guilty image errors."""
        start = time.perf_counter()
        try:
            self._call_engine(jobs)
        except Exception as exc:  # noqa: BLE001 - out of memory, a bad tensor: isolate it
            if len(jobs) > 1:
                _free_accelerator_memory()
                half = len(jobs) // 2
                self._run_model(jobs[:half])
                self._run_model(jobs[half:])
                return
            jobs[0].record.verdict = "error"
            jobs[0].record.error = f"model failed on this image: {type(exc).__name__}: {exc}"
        spent = time.perf_counter() - start
        self.stats.model_seconds += spent
        self.stats.model_images += len(jobs)
        for job in jobs:
            job.seconds += spent / len(jobs)

    def _call_engine(self, jobs: list[_Job]) -> None:
        pixels = [j.pixels for j in jobs]
        if self.config.explain:
            answers = self.engine.explain_pixels(pixels, self.config.max_new_tokens)
        else:
            answers = self.engine.verdicts(pixels)
        for job, answer in zip(jobs, answers):
            self._set_model_result(job.record, answer)

    def _set_model_result(self, record: Record, answer) -> None:
        if answer.p_fake is None:
            record.p_fake, record.model_verdict = None, "unknown"
            record.notes.append(f"the model stated no verdict ('fake' or 'real') within its first "
                                f"{self.engine.verdict_steps} tokens")
        else:
            record.p_fake = round(float(answer.p_fake), 6)
            record.model_verdict = "fake" if answer.p_fake >= self.config.threshold else "real"
        if answer.text is not None:
            record.text_verdict, record.explanation = answer.text_verdict, answer.explanation
            record.answer, record.lead_in = answer.text, answer.lead_in


def check_image(path: Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> None:
    """Raise `ImageError` unless `path` decodes as an image: lets one-image commands fail before a model load."""
    load_image(_read(path), max_pixels=max_pixels)


def _read(path: Path) -> bytes:
    """Read a whole regular file, turning OS errors into one-line `ImageError`s.

    Opened non-blocking and checked with fstat, so a file swapped for a FIFO after discovery cannot hang us.
    """
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    except FileNotFoundError:
        raise ImageError("broken symbolic link" if path.is_symlink() else "no such file") from None
    except PermissionError:
        raise ImageError("permission denied") from None
    except OSError as exc:
        raise ImageError(f"cannot open: {exc.strerror or exc}") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ImageError("not a regular file")
        with os.fdopen(fd, "rb", closefd=False) as fh:
            return fh.read()
    except OSError as exc:
        raise ImageError(f"cannot read: {exc.strerror or exc}") from None
    finally:
        os.close(fd)


def _read_size(record: Record, data: bytes) -> None:
    """Width and height from the header alone (metadata-only scans never decode pixels)."""
    import warnings

    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            im = Image.open(io.BytesIO(data))
        with im:
            record.width, record.height = im.size
            record.frames = getattr(im, "n_frames", 1)
    except Exception:  # noqa: BLE001 - a header we cannot read is only a missing size here
        record.notes.append("image header could not be read: size unknown")


def _free_accelerator_memory() -> None:
    import sys

    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()
