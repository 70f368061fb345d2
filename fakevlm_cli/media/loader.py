"""One file, from path to what the model needs: open, read, hash, sniff, metadata, decode, preprocess.

Runs in the loader threads of the scan pipeline (pipeline.py), so everything here is thread-safe and
torch-free (the engine's `preprocess` is the one call into the model's world). Each file is read once, and
only as much as its format allows: see `Inspector.inspect`. Whatever goes wrong becomes the record's error.
"""

from __future__ import annotations

import contextlib
import hashlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from fakevlm_cli.core import library_warnings
from fakevlm_cli.core.errors import ImageError, one_line
from fakevlm_cli.core.files import is_uri, resume_key
from fakevlm_cli.core.options import DEFAULT_MAX_PIXELS, JudgeOptions
from fakevlm_cli.core.record import Record, recorded_path
from fakevlm_cli.core.text import byte_size
from fakevlm_cli.evidence import collect, read_container
from fakevlm_cli.evidence.types import Evidence
from fakevlm_cli.media.images import (
    SNIFF_BYTES,
    check_size,
    count_frames,
    decode_bytes,
    load_image,
    max_file_bytes,
    opened,
    probe,
    sniff_format,
)
from fakevlm_cli.media.objects import RemoteFile
from fakevlm_cli.media.pictures import PREVIEW_MAX_SIDE, downscaled, thumbnail
from fakevlm_cli.media.reading import MemoryBudget, OpenFile, default_max_memory
from fakevlm_cli.media.video import VIDEO_FORMATS, VIDEO_SUFFIXES, BiggerFrame, Clip, frame_bytes, sniff_video

if TYPE_CHECKING:  # pragma: no cover
    from fakevlm_cli.core.engine_types import EngineLike
    from fakevlm_cli.media.discover import Candidate

# A file found in a folder whose content is neither image nor video is skipped quietly unless its name claims
# to be one.
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".gif", ".webp", ".tif", ".tiff", ".bmp",
                  ".heic", ".heif", ".avif", ".jp2", ".j2k", ".ico", ".apng"}
MEDIA_SUFFIXES = IMAGE_SUFFIXES | VIDEO_SUFFIXES


@dataclass
class Job:
    """One candidate after the loader: its record so far, evidence, and the pixels for the model."""

    record: Record
    evidence: list[Evidence] = field(default_factory=list)
    pixels: list = field(default_factory=list)  # preprocessed tensors for the model: one an image, several a clip
    sample_times: list[float] | None = None  # a clip's sampled times, in seconds (None: an image)
    frame_thumbnails: list[bytes | None] = field(default_factory=list)  # a clip's, with --report (scan --report)
    seconds: float = 0.0
    pixel_error: str | None = None  # the pixels could not be judged; decisive metadata may still decide
    input_size: tuple[int, int] | None = None  # of the picture handed to the model (after orientation)
    preview: Any = None  # a downscaled copy (PIL) of that picture, kept only to draw its heatmap (--heatmaps)


@dataclass(frozen=True)
class NoRecord:
    """A candidate that gets no record: not an image, found in a folder (`skipped`), or already recorded."""

    skipped: bool = False
    resumed: tuple[bytes, str | None] | None = None  # already recorded: (resume key, sha256) of that record


class _Unrecorded(Exception):  # noqa: N818 - not an error: the file gets no record (skipped, or already recorded)
    def __init__(self, skipped: bool = False):
        super().__init__()
        self.skipped = skipped


class Inspector:
    """The loader threads' work for one scan: `inspect(candidate) -> Job`."""

    def __init__(self, engine: EngineLike | None, options: JudgeOptions, *, read_metadata: bool = True,
                 resume=None, model_info: dict | None = None, trust_anchors: str | None = None,
                 preview: bool = False, thumbnails: int = 0):
        self.engine = engine
        self.preview = preview  # keep a downscaled copy of each picture for its heatmap
        self.thumbnails = thumbnails  # > 0: a thumbnail of that size on each record (for the HTML report)
        self.options = options
        self.read_metadata = read_metadata
        self.trust_anchors = trust_anchors  # PEM bundle C2PA signers are checked against (--trust-anchors)
        self.resume = resume or {}
        self.model_info = model_info
        self.memory = MemoryBudget(options.max_memory or default_max_memory())
        self.changed: list[str] = []  # --resume: files recorded earlier with other content (judged again)

    def inspect(self, candidate: Candidate) -> Job | NoRecord:
        """`_inspect`, with what Pillow warns about the file meanwhile as notes on its record."""
        notes: list[str] = []
        with library_warnings.notes_to(notes):
            job = self._inspect(candidate)
        if notes and isinstance(job, Job):
            job.record.notes += notes
        return job

    def _inspect(self, candidate: Candidate) -> Job | NoRecord:
        """Everything one file needs before the model: read, hash, sniff, metadata, decode, preprocess.

        Only a small head of each file is read before its format is known: a file found in a folder that is
        not an image costs one read, whatever its size. An image is read whole only when it is no bigger than
        any image within --max-pixels can be (`max_file_bytes`), and only once the loader threads together
        have room for it and its decoding under --max-memory (`MemoryBudget`).
        """
        start = time.perf_counter()
        path = Path(candidate.path)
        shown, path_bytes = recorded_path(candidate.path)
        record = Record(path=shown, path_bytes=path_bytes, threshold=self.options.threshold if self.engine else None,
                        model=self.model_info)
        job = Job(record=record)
        if candidate.error:  # found unusable during discovery (missing, fifo, ...): never opened
            record.verdict, record.error = "error", candidate.error
            return job
        key = resume_key(candidate.path) if self.resume else b""
        earlier = self.resume.get(key) if self.resume else None
        if earlier is not None and None in earlier:
            return NoRecord(resumed=(key, None))  # recorded by an earlier run without a hash (unreadable then)
        try:
            with RemoteFile(str(candidate.path)) if is_uri(candidate.path) else OpenFile(path) as fh:
                fmt = self._identify(fh, candidate, record, earlier)
                if fmt in VIDEO_FORMATS:
                    self._video(fh, path, fmt, job, earlier, candidate.frame_index)
                    job.seconds = time.perf_counter() - start
                    return job
                need = self._admit(fh, fmt, record, earlier)
                with self.memory.hold(need):
                    data = fh.read_all()
                    record.sha256 = hashlib.sha256(data).hexdigest()
                    if self._seen_before(record, earlier):
                        raise _Unrecorded()
                    self._read_metadata(path, data, fmt, job)
                    self._decode(data, fmt, job)
        except _Unrecorded as nothing:
            return NoRecord(skipped=nothing.skipped, resumed=None if nothing.skipped else (key, record.sha256))
        except ImageError as exc:
            record.verdict, record.error = "error", str(exc)
        except Exception as exc:  # noqa: BLE001 - a reader or decoder bug must not end the scan: record it
            record.verdict, record.error = "error", f"unexpected {type(exc).__name__}: {one_line(str(exc))}"
        job.seconds = time.perf_counter() - start
        return job

    def _identify(self, fh: _Source, candidate: Candidate, record: Record, earlier: frozenset | None) -> str:
        """The file's format from its first bytes; a non-image is skipped (found in a folder) or an error."""
        record.size = fh.size
        fmt = sniff_format(fh.head[:SNIFF_BYTES]) or sniff_video(fh.head[:64])
        if fmt is None and not (candidate.explicit or Path(candidate.path).suffix.lower() in MEDIA_SUFFIXES):
            raise _Unrecorded(skipped=True)
        record.format = fmt
        record.media = None if fmt is None else "video" if fmt in VIDEO_FORMATS else "image"
        if fmt is not None:
            return fmt
        if fh.size <= max_file_bytes(self.options.max_pixels):  # hashed in pieces; a bigger one is not read
            record.sha256 = fh.sha256()
            if self._seen_before(record, earlier):
                raise _Unrecorded()
        raise ImageError("empty file (0 bytes)" if fh.size == 0
                         else "not an image (its content matches no image or video format)")

    def _admit(self, fh: _Source, fmt: str, record: Record, earlier: frozenset | None) -> int:
        """The memory reading and decoding the file will need, or ImageError when it is refused unread."""
        limit = max_file_bytes(self.options.max_pixels)
        try:
            if fh.size > limit:
                raise ImageError(f"file is {byte_size(fh.size)}, bigger than any image within --max-pixels can be "
                                 f"({byte_size(limit)}): not read")
            need = 2 * fh.size  # the bytes, and what Pillow keeps of their metadata while decoding
            self._check_memory(need)
            if self.engine is not None:
                with self.memory.hold(fh.size):
                    header = probe(fh.head, fh.reader(), fmt)
                if header is not None:
                    record.width, record.height = header[0], header[1]
                    if header[0] * header[1] <= self.options.max_pixels:
                        need += decode_bytes(*header)
                        self._check_memory(need)
            return need
        except ImageError:
            # Refused unread. With --resume, a file recorded earlier (under other limits) is hashed in pieces to
            # tell whether it is the same content, so it is not written twice.
            if earlier:
                record.sha256 = fh.sha256()
                if self._seen_before(record, earlier):
                    raise _Unrecorded() from None
            raise

    def _read_metadata(self, path: Path, data: bytes, fmt: str, job: Job) -> None:
        if not self.read_metadata:
            return
        record = job.record
        report = collect(path, data, fmt, trust_anchors=self.trust_anchors)
        job.evidence = report.items
        record.evidence = [e.to_dict() for e in report.items]
        record.exif = report.exif
        record.notes += report.notes

    def _decode(self, data: bytes, fmt: str, job: Job) -> None:
        """Pixels for the model (or, without one, the size from the header); a failure is decided later:
        decisive metadata can still give the file a verdict (pipeline._finish)."""
        record = job.record
        try:
            if self.engine is None:
                _read_size(record, data, fmt, self.options.max_pixels)
                if self.thumbnails:  # metadata-only scans decode pixels for the report's picture alone
                    with contextlib.suppress(ImageError):
                        image = load_image(data, max_pixels=self.options.max_pixels, mode=self.options.pixels)
                        self._thumbnail(record, image.image)
                return
            draft = getattr(self.engine, "input_short_edge", None) if self.options.fast_decode else None
            loaded = load_image(data, max_pixels=self.options.max_pixels, mode=self.options.pixels,
                                draft_short=draft)
            record.width, record.height, record.frames = loaded.width, loaded.height, loaded.frames
            record.notes += loaded.notes
            self._picture(job, loaded.image)
        except ImageError as exc:
            job.pixel_error = str(exc)

    def _picture(self, job: Job, image) -> None:
        """A still picture (a file's, or one frame of a clip) as the model and the maps take it: its pixels, the
        size a map is laid over, and with --heatmaps / --report the preview and thumbnail."""
        job.pixels = [self.engine.preprocess(image)]  # type: ignore[union-attr]
        job.input_size = image.size
        if self.preview:
            job.preview = downscaled(image, PREVIEW_MAX_SIDE)
        if self.thumbnails:
            self._thumbnail(job.record, image)

    def _thumbnail(self, record: Record, image) -> None:
        """The report's picture of the file; a picture that cannot be made costs the thumbnail, not the record."""
        try:
            record.thumbnail = thumbnail(image, self.thumbnails)
        except (OSError, ValueError) as exc:
            record.notes.append(f"no thumbnail: {exc}")

    def _video(self, fh: _Source, path: Path, fmt: str, job: Job, earlier: frozenset | None,
               frame_index: int | None) -> None:
        """A clip: hashed in pieces (never read whole), its container read, frames sampled by seeking and
        preprocessed one by one; `frame_index` asks for that one frame instead (DD-VQA)."""
        record = job.record
        record.sha256 = fh.sha256()
        if self._seen_before(record, earlier):
            raise _Unrecorded()
        if self.read_metadata:
            report = read_container(fh.reader(), fmt, trust_anchors=self.trust_anchors)
            job.evidence = report.items
            record.evidence = [e.to_dict() for e in report.items]
            record.notes += report.notes
        with Clip(fh.reader(), fmt, max_pixels=self.options.max_pixels) as clip:
            info = clip.info()
            record.width, record.height = info.width, info.height  # frames: see video.frame_count
            record.video = info.to_dict()
            if self.engine is None:
                record.notes += info.notes  # what the container claims (a 100-hour AVI): said without a model too
                return
            samples = self._sampled(clip, info, frame_index)
            record.width, record.height = info.width, info.height  # the frames' real size, not the header's
            record.video = info.to_dict()  # with the rotation sampling found
            record.notes += info.notes
        if frame_index is not None:  # one frame of the clip, judged as an image
            record.video["frame"] = {"index": frame_index, "t": round(samples[0].t, 3)}
            self._picture(job, samples[0].image)
            return
        kept = [cast("tuple[Any, bytes | None]", s.image) for s in samples]  # what _keep_frame made of each
        job.pixels = [pixels for pixels, _ in kept]
        job.frame_thumbnails = [small for _, small in kept]
        job.sample_times = [s.t for s in samples]

    def _sampled(self, clip: Clip, info, frame_index: int | None) -> list:
        """The clip's samples, decoded while the memory their frames really take is held. That is first what the
        container header's size needs; a frame bigger than the header said (`BiggerFrame`) is sampled again,
        holding its real size (the smaller hold let go first, so threads never wait on each other's)."""
        need, notes = frame_bytes(info.width, info.height), len(info.notes)
        while True:
            self._check_memory(need)
            clip.max_frame_bytes = need
            with self.memory.hold(need):
                try:
                    if frame_index is not None:
                        samples = [clip.frame_at_index(frame_index)]
                        clip.real_size(info)
                        return samples
                    return clip.sample(info, frames=self.options.video_frames, fps=self.options.video_fps,
                                       keep=self._keep_frame)
                except BiggerFrame as bigger:
                    need = min(max(bigger.need, 2 * need), max(self.memory.total, bigger.need))
                    del info.notes[notes:]

    def _keep_frame(self, image) -> tuple[Any, bytes | None]:
        """What a sampled frame is kept as: the model's input, and with --report a thumbnail (the report shows
        the clip's most suspicious frame); the full-size picture is let go at once."""
        small = None
        if self.thumbnails:
            with contextlib.suppress(OSError, ValueError):
                small = thumbnail(image, self.thumbnails)
        return self.engine.preprocess(image), small  # type: ignore[union-attr]

    def _check_memory(self, need: int) -> None:
        if need > self.memory.total:
            raise ImageError(f"reading and decoding it needs about {byte_size(need)}, more than --max-memory allows "
                             f"({byte_size(self.memory.total)})")

    def _seen_before(self, record: Record, earlier: frozenset | None) -> bool:
        """--resume: True when this content is already recorded for this file; note it when the content changed."""
        if not earlier:
            return False
        if record.sha256 is None or record.sha256 in earlier:
            return record.sha256 is not None
        before = ", ".join(sorted(h[:12] for h in earlier if h))
        record.notes.append(f"content changed since an earlier record of this file in the results file "
                            f"(sha256 {before}… then, {record.sha256[:12]}… now): judged again; this record "
                            "supersedes the earlier one")
        self.changed.append(record.path)
        return False


def check_media(path: Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> None:
    """Raise `ImageError` unless `path` decodes as an image, or opens as a video whose frames are within
    `max_pixels`: lets one-file commands fail before a model load."""
    with OpenFile(path) as fh:
        fmt = sniff_video(fh.head[:64])
        if fmt is not None:
            with Clip(fh.reader(), fmt, max_pixels=max_pixels) as clip:
                clip.info()
            return
        limit = max_file_bytes(max_pixels)
        if fh.size > limit:
            raise ImageError(f"file is {byte_size(fh.size)}, bigger than any image within --max-pixels can be "
                             f"({byte_size(limit)})")
        load_image(fh.read_all(), max_pixels=max_pixels)


_Source = OpenFile | RemoteFile  # a local file or an object-store object, read the same way


def _read_size(record: Record, data: bytes, fmt: str, max_pixels: int) -> None:
    """Width, height and frames from the header alone (metadata-only scans never decode pixels).

    The header is held to --max-pixels as a decoding scan would be, and a header that does not decode at all is
    an `ImageError` as it is there (decisive metadata may still give the file a verdict), so both kinds of scan
    agree on a file; only a failure past the header (counting frames) costs just the size.
    """
    try:
        with opened(data, fmt) as (im, data, notes), im:
            width, height = im.size
            frames, frame_notes = count_frames(im, data, fmt)
    except ImageError:
        raise
    except Exception:  # noqa: BLE001 - past the header: only a missing size here
        record.notes.append("image header could not be read: size unknown")
        return
    record.width, record.height, record.frames = width, height, frames
    record.notes += notes + frame_notes
    check_size(width, height, max_pixels)


