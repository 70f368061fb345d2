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
import threading
import time
from collections import Counter, deque
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable, Iterator

from fakevlm_cli.errors import ImageError
from fakevlm_cli.evidence import collect
from fakevlm_cli.evidence.types import Evidence
from fakevlm_cli.fusion import fuse
from fakevlm_cli.images import (DEFAULT_MAX_PIXELS, SNIFF_BYTES, check_size, count_frames, decode_bytes,
                                load_image, max_file_bytes, probe, sniff_format, without_refused_png_chunks)
from fakevlm_cli.record import Record, recorded_path

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
    # --resume: resolved path (bytes, see `resume_key`) -> sha256 values recorded for it (None: unreadable then)
    resume: Mapping[bytes, frozenset] = field(default_factory=dict)
    max_memory: int | None = None  # bytes the loader threads may hold at once; None: `default_max_memory()`


@dataclass
class ScanStats:
    verdicts: Counter = field(default_factory=Counter)
    skipped: int = 0  # files whose content is not an image (found in a folder)
    resumed: int = 0  # files already in the output of an earlier run
    changed: list[str] = field(default_factory=list)  # recorded earlier with other content: judged again
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
    pixel_error: str | None = None  # the pixels could not be judged; decisive metadata may still decide


class Scanner:
    """Runs one scan. `engine` None means metadata only (torch is never imported)."""

    def __init__(self, engine: "Engine | None", config: ScanConfig = ScanConfig(),
                 on_progress: Callable[[ScanStats], None] | None = None):
        self.engine = engine
        self.config = config
        self.stats = ScanStats()
        self.on_progress = on_progress
        self._model_info = {**engine.info.to_dict(), "pixels": config.pixels} if engine is not None else None
        self.memory = MemoryBudget(config.max_memory or default_max_memory())

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
        """Everything one file needs before the model: read, hash, sniff, metadata, decode, preprocess.

        Only a small head of each file is read before its format is known: a file found in a folder that is
        not an image costs one read, whatever its size. An image is read whole only when it is no bigger than
        any image within --max-pixels can be (`max_file_bytes`), and only once the loader threads together
        have room for it and its decoding under --max-memory (`MemoryBudget`).
        """
        start = time.perf_counter()
        path = Path(candidate.path)
        shown, path_bytes = recorded_path(candidate.path)
        record = Record(path=shown, path_bytes=path_bytes, threshold=self.config.threshold if self.engine else None,
                        model=self._model_info)
        job = _Job(record=record)
        if candidate.error:  # found unusable during discovery (missing, fifo, ...): never opened
            record.verdict, record.error = "error", candidate.error
            return job
        earlier = self.config.resume.get(resume_key(path)) if self.config.resume else None
        if earlier is not None and None in earlier:
            return _Job(record=None)  # recorded by an earlier run without a hash (it was unreadable then)
        try:
            with _OpenFile(path) as fh:
                record.size = fh.size
                fmt = sniff_format(fh.head[:SNIFF_BYTES])
                if fmt is None and not (candidate.explicit or path.suffix.lower() in IMAGE_SUFFIXES):
                    return _Job(record=None, skipped=True)
                record.format = fmt
                limit = max_file_bytes(self.config.max_pixels)
                if fmt is None:
                    if fh.size <= limit:  # hashed in pieces; a bigger non-image is not worth reading at all
                        record.sha256 = fh.sha256()
                        if self._seen_before(record, earlier):
                            return _Job(record=None)
                    raise ImageError("empty file (0 bytes)" if fh.size == 0
                                     else "not an image (its content matches no image format)")
                try:
                    if fh.size > limit:
                        raise ImageError(f"file is {_size(fh.size)}, bigger than any image within --max-pixels can "
                                         f"be ({_size(limit)}): not read")
                    need = 2 * fh.size  # the bytes, and what Pillow keeps of their metadata while decoding
                    self._check_memory(need)
                    if self.engine is not None:
                        with self.memory.hold(fh.size):
                            header = probe(fh.head, fh.reader(), fmt)
                        if header is not None:
                            record.width, record.height = header[0], header[1]
                            if header[0] * header[1] <= self.config.max_pixels:
                                need += decode_bytes(*header)
                                self._check_memory(need)
                except ImageError:
                    # Refused unread. With --resume, a file recorded earlier (under other limits) is hashed in
                    # pieces to tell whether it is the same content, so it is not written twice.
                    if earlier:
                        record.sha256 = fh.sha256()
                        if self._seen_before(record, earlier):
                            return _Job(record=None)
                    raise
                with self.memory.hold(need):
                    data = fh.read_all()
                    record.sha256 = hashlib.sha256(data).hexdigest()
                    if self._seen_before(record, earlier):
                        return _Job(record=None)
                    if self.config.read_metadata:
                        report = collect(path, data, fmt)
                        job.evidence = report.items
                        record.evidence = [e.to_dict() for e in report.items]
                        record.exif = report.exif
                        record.notes += report.notes
                    try:
                        if self.engine is not None:
                            loaded = load_image(data, max_pixels=self.config.max_pixels, mode=self.config.pixels)
                            record.width, record.height, record.frames = loaded.width, loaded.height, loaded.frames
                            record.notes += loaded.notes
                            job.pixels = self.engine.preprocess(loaded.image)
                            del loaded
                        else:
                            _read_size(record, data, fmt, self.config.max_pixels)
                    except ImageError as exc:  # decided in _finish: decisive metadata can still give a verdict
                        job.pixel_error = str(exc)
        except ImageError as exc:
            record.verdict, record.error = "error", str(exc)
        except Exception as exc:  # a reader or decoder bug must not end the scan: record it
            record.verdict, record.error = "error", f"unexpected {type(exc).__name__}: {exc}"
        job.seconds = time.perf_counter() - start
        return job

    def _check_memory(self, need: int) -> None:
        if need > self.memory.total:
            raise ImageError(f"reading and decoding it needs about {_size(need)}, more than --max-memory allows "
                             f"({_size(self.memory.total)})")

    def _seen_before(self, record: Record, earlier: frozenset | None) -> bool:
        """--resume: True when this content is already recorded for this file; note it when the content changed."""
        if not earlier:
            return False
        if record.sha256 in earlier:
            return True
        before = ", ".join(sorted(h[:12] for h in earlier if h))
        record.notes.append(f"content changed since an earlier record of this file in the results file "
                            f"(sha256 {before}… then, {record.sha256[:12]}… now): judged again; this record "
                            "supersedes the earlier one")
        self.stats.changed.append(record.path)
        return False

    # ---- main thread -----------------------------------------------------------------------------------
    def _finish(self, jobs: list[_Job]) -> Iterator[Record]:
        todo = [j for j in jobs if j.pixels is not None]
        if todo:
            self._run_model(todo)
        for job in jobs:
            record = job.record
            if job.pixel_error and record.verdict != "error":
                # A file whose pixels cannot be judged is an error, unless its metadata alone decides the verdict
                # (a generator's parameters chunk, say): then it gets that verdict with or without a model, and
                # the notes say why the pixels were not judged.
                if fuse(None, None, job.evidence).verdict == "fake":
                    record.notes.append(f"pixels not judged ({job.pixel_error}): the verdict rests on the "
                                        "metadata alone")
                else:
                    record.verdict, record.error = "error", job.pixel_error
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
    with _OpenFile(path) as fh:
        limit = max_file_bytes(max_pixels)
        if fh.size > limit:
            raise ImageError(f"file is {_size(fh.size)}, bigger than any image within --max-pixels can be "
                             f"({_size(limit)})")
        load_image(fh.read_all(), max_pixels=max_pixels)


def resume_key(path: "str | bytes | os.PathLike") -> bytes:
    """What --resume matches files by: the absolute path with symbolic links resolved, as raw OS bytes.

    So ``photos/a.jpg``, ``./photos/a.jpg``, ``/home/me/photos/a.jpg`` and a symlink to it are one file, and a
    name that is not UTF-8 matches its record exactly (through `path_bytes`). Relative paths are taken from
    the current directory.
    """
    raw = path if isinstance(path, bytes) else os.fsencode(path)
    return os.path.realpath(raw)


def default_max_memory() -> int:
    """--max-memory's default: a quarter of the machine's memory, and at least 1 GiB."""
    try:
        physical = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        physical = 8 * 2**30
    return max(physical // 4, 2**30)


class MemoryBudget:
    """Bytes the loader threads may hold at once for files being read and decoded.

    A thread waits until its share fits beside the others'; a share bigger than the whole budget is refused
    by the caller before it asks, so the peak stays near the budget however many loader threads there are.
    """

    def __init__(self, total: int):
        self.total = total
        self.used = 0
        self.peak = 0  # the most held at once, for tests and benchmarks
        self.waiting = 0  # threads waiting for room
        self._cond = threading.Condition()

    @contextmanager
    def hold(self, amount: int):
        with self._cond:
            while self.used and self.used + amount > self.total:
                self.waiting += 1
                self._cond.notify_all()  # lets an observer (a test) see the new waiter
                self._cond.wait()
                self.waiting -= 1
            self.used += amount
            self.peak = max(self.peak, self.used)
        try:
            yield
        finally:
            with self._cond:
                self.used -= amount
                self._cond.notify_all()


class _OpenFile:
    """A regular file opened for reading: its size, its first bytes, and bounded ways to read the rest.

    Opened non-blocking and checked with fstat, so a file swapped for a FIFO after discovery cannot hang us.
    OS errors become one-line `ImageError`s.
    """

    HEAD = 4096

    def __init__(self, path: Path):
        self.path = path

    def __enter__(self) -> "_OpenFile":
        try:
            self.fd = os.open(self.path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
        except FileNotFoundError:
            raise ImageError("broken symbolic link" if self.path.is_symlink() else "no such file") from None
        except PermissionError:
            raise ImageError("permission denied") from None
        except OSError as exc:
            raise ImageError(f"cannot open: {exc.strerror or exc}") from None
        try:
            st = os.fstat(self.fd)
            if not stat.S_ISREG(st.st_mode):
                raise ImageError("not a regular file")
            self.size = st.st_size
            self.head = self._pread(min(self.HEAD, self.size), 0)
        except BaseException:
            os.close(self.fd)
            raise
        return self

    def __exit__(self, *exc) -> None:
        os.close(self.fd)

    def _pread(self, n: int, offset: int) -> bytes:
        try:
            return os.pread(self.fd, n, offset)
        except OSError as exc:
            raise ImageError(f"cannot read: {exc.strerror or exc}") from None

    def reader(self) -> io.BufferedReader:
        """A file object over the same descriptor (not closing it), at the start."""
        fh = os.fdopen(self.fd, "rb", closefd=False)
        fh.seek(0)
        return fh

    def read_all(self) -> bytes:
        """The whole file, as big as fstat said it was; a file that grew since is an error, not a surprise."""
        try:
            with self.reader() as fh:
                data = fh.read(self.size + 1)
        except OSError as exc:
            raise ImageError(f"cannot read: {exc.strerror or exc}") from None
        if len(data) > self.size:
            raise ImageError("the file grew while it was being read")
        return data

    def sha256(self) -> str:
        """The hash of the whole file, read in 1 MiB pieces (memory stays flat whatever its size)."""
        digest, offset = hashlib.sha256(), 0
        while piece := self._pread(1 << 20, offset):
            digest.update(piece)
            offset += len(piece)
        return digest.hexdigest()


def _size(n: int) -> str:
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} bytes"


def _read_size(record: Record, data: bytes, fmt: str, max_pixels: int) -> None:
    """Width, height and frames from the header alone (metadata-only scans never decode pixels).

    The header is held to --max-pixels as a decoding scan would be, so both kinds of scan agree on a file.
    """
    import warnings

    from PIL import Image

    data, notes = without_refused_png_chunks(data) if fmt == "PNG" else (data, [])
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            im = Image.open(io.BytesIO(data))
            with im:
                width, height = im.size
                frames, frame_notes = count_frames(im, data, fmt)
    except Exception:  # noqa: BLE001 - a header we cannot read is only a missing size here
        record.notes.append("image header could not be read: size unknown")
        return
    record.width, record.height, record.frames = width, height, frames
    record.notes += notes + frame_notes
    check_size(width, height, max_pixels)


def _free_accelerator_memory() -> None:
    import sys

    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()
