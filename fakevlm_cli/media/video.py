"""Video files: recognised by content, probed, and sampled frame by frame by seeking (PyAV, imported lazily).

A clip is judged as the frames sampled from it: `--frames N` spread evenly over its duration (default 8), or
`--fps F` (at most MAX_SAMPLES). Each sample is reached by seeking to the keyframe before it and decoding
forward, so a two-hour file costs N short decodes, never a full one. Every bound below turns into an
`ImageError` (an `error` record) or a note, never a hang or unbounded memory: a file with no video stream, a
codec that cannot be decoded, a resolution over --max-pixels, a duration or frame count it does not really
have, a truncated or corrupt stream.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Any

from fakevlm_cli.core.errors import ImageError

if TYPE_CHECKING:  # pragma: no cover
    from PIL import Image

DEFAULT_FRAMES = 8
MAX_SAMPLES = 256  # --fps on a long clip samples no more than this
MAX_DECODED_PER_SAMPLE = 600  # frames decoded forward from a seek point before a sample is given up
MAX_DECODED = 5000  # frames decoded in all for one file
MAX_DURATION_S = 48 * 3600.0  # a duration claimed beyond this is not believed (sampling uses what decodes)

# ISO base media brands of video files (MP4, QuickTime, M4V, 3GP); HEIF/AVIF brands are images (images.py).
_FTYP_BRANDS = {
    b"qt  ": "MOV",
    **dict.fromkeys((b"M4V ", b"M4VH", b"M4VP"), "M4V"),
    **dict.fromkeys((b"isom", b"iso2", b"iso3", b"iso4", b"iso5", b"iso6", b"mp41", b"mp42", b"avc1", b"dash",
                     b"MSNV", b"3gp4", b"3gp5", b"3gp6", b"3g2a", b"mmp4", b"f4v ", b"XAVC", b"nvr1"), "MP4"),
}
VIDEO_FORMATS = frozenset({"MP4", "MOV", "M4V", "MATROSKA", "WEBM", "AVI"})
VIDEO_SUFFIXES = {".mp4", ".m4v", ".mov", ".qt", ".mkv", ".webm", ".avi", ".3gp", ".3g2"}


def sniff_video(head: bytes) -> str | None:
    """The container of a video file from its first bytes, or None."""
    if head[4:8] == b"ftyp":
        return _FTYP_BRANDS.get(head[8:12])
    if head[:4] == b"\x1a\x45\xdf\xa3":  # EBML: Matroska or WebM (the DocType says which)
        return "WEBM" if b"webm" in head[:64] else "MATROSKA"
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return "AVI"
    return None


@dataclass
class VideoInfo:
    """What the container says about a clip (and what sampling found)."""

    format: str
    codec: str
    width: int
    height: int
    fps: float | None
    duration_s: float | None
    frame_count: int | None
    rotation: int = 0
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"container": self.format, "codec": self.codec, "width": self.width, "height": self.height,
                "fps": self.fps, "duration_s": self.duration_s, "frame_count": self.frame_count,
                "rotation": self.rotation}


@dataclass
class Sample:
    """One decoded frame: its time in seconds, the upright picture."""

    t: float
    image: Image.Image
    rotation: int = 0  # the display rotation that was undone


class Clip:
    """An open video container (a file object it does not own). Use as a context manager."""

    def __init__(self, stream: IO[bytes], fmt: str, *, max_pixels: int):
        self.stream, self.fmt, self.max_pixels = stream, fmt, max_pixels
        self.decoded = 0

    def __enter__(self) -> Clip:
        import av

        try:
            self.container = av.open(self.stream, mode="r", metadata_errors="ignore")
        except av.FFmpegError as exc:
            raise ImageError(f"corrupt {self.fmt} file: {_reason(exc)}") from None
        if not self.container.streams.video:
            kinds = sorted({str(s.type) for s in self.container.streams}) or ["nothing"]
            self.container.close()
            raise ImageError(f"no video stream in this {self.fmt} file (it holds {', '.join(kinds)})")
        self.video = self.container.streams.video[0]
        self.video.thread_type = "AUTO"
        return self

    def __exit__(self, *exc: object) -> None:
        self.container.close()

    # ---- what the file says -------------------------------------------------------------------------------
    def info(self) -> VideoInfo:
        vs, ctx = self.video, self.video.codec_context
        width, height = int(ctx.width or vs.width or 0), int(ctx.height or vs.height or 0)
        if width <= 0 or height <= 0:
            raise ImageError(f"video stream has no usable size ({width}x{height})")
        if width * height > self.max_pixels:
            raise ImageError(f"video frames are {width}x{height} ({width * height / 1e6:.0f} MP), over the "
                             f"--max-pixels limit of {self.max_pixels / 1e6:.0f} MP")
        rate = vs.average_rate or vs.guessed_rate
        fps = float(rate) if rate else None
        duration = None
        if vs.duration is not None and vs.time_base:
            duration = float(vs.duration * vs.time_base)
        elif self.container.duration:
            duration = self.container.duration / 1_000_000
        frame_count = int(vs.frames) or None
        if not duration and frame_count and fps:  # some containers give a frame count and a rate, no duration
            duration = frame_count / fps
        info = VideoInfo(format=self.fmt, codec=ctx.name or "?", width=width, height=height, fps=fps,
                         duration_s=duration, frame_count=frame_count)
        if duration is not None and duration > MAX_DURATION_S:
            info.notes.append(f"video: the file declares {_duration(duration)}; sampled within the first "
                              f"{_duration(MAX_DURATION_S)}")
        return info

    # ---- frames -------------------------------------------------------------------------------------------
    def sample(self, info: VideoInfo, *, frames: int = DEFAULT_FRAMES, fps: float | None = None,
               keep=None) -> list[Sample]:
        """The frames on screen at evenly spread times (or every 1/fps seconds).

        A clip whose frames end well before the duration it declares is sampled again over the frames it
        has (a note says so). `keep` (e.g. the engine's preprocess) replaces each picture as soon as it is
        decoded, so a 4K clip holds one full-size frame at a time, not all of them.
        """
        times = sample_times(info.duration_s, frames=frames, fps=fps)
        if not times:  # no duration known: the first frames the stream gives
            out = [self._kept(s, keep) for s in self._first(frames)]
        else:
            out = self._at(times, info, keep)
            period = 1 / info.fps if info.fps else 0.0
            if out and len(out) < len(times) and out[-1].t + period < times[-1]:
                end = out[-1].t + period
                declared = _duration(info.duration_s or 0)
                info.notes.append(f"video: frames end at {end:.1f} s, not at the {declared} the file declares: "
                                  "sampled over the frames it has")
                times = sample_times(end, frames=frames, fps=fps)
                out = self._at(times, info, keep)
        if not out:
            out = [self._kept(s, keep) for s in self._first(1)]
        if not out:
            raise ImageError(f"no decodable video frame in this {self.fmt} file")
        if times and len(out) < len(times):
            info.notes.append(f"video: {len(out)} of {len(times)} sampled times had a frame of their own (the "
                              "clip has fewer frames than that, or they did not decode)")
        info.rotation = out[0].rotation
        return out

    def _at(self, times: list[float], info: VideoInfo, keep) -> list[Sample]:
        out: list[Sample] = []
        for target in times:
            found = self._seek_to(target)
            if found is not None and (not out or found.t > out[-1].t):
                out.append(self._kept(found, keep))
            if self.decoded >= MAX_DECODED:
                info.notes.append(f"video: stopped after decoding {MAX_DECODED} frames")
                break
        return out

    @staticmethod
    def _kept(sample: Sample, keep) -> Sample:
        if keep is not None:
            sample.image = keep(sample.image)
        return sample

    def frame_at_index(self, index: int) -> Sample:
        """The frame at `index` in decoding order (DD-VQA's i-th frame), decoding from the start."""
        for number, frame in enumerate(self._frames()):
            if number == index:
                return self._sample(frame)
            if number >= MAX_DECODED:
                break
        raise ImageError(f"the video has no frame {index} (it decodes fewer)")

    def _seek_to(self, target: float) -> Sample | None:
        """The frame on screen at `target` seconds (the last one that starts at or before it; the first frame
        when none does), reached from the keyframe before it; the last frame that decodes when the stream
        ends first."""
        import av

        vs = self.video
        if not vs.time_base:
            return None
        try:
            self.container.seek(int(target / vs.time_base), stream=vs, backward=True)
        except (av.FFmpegError, OverflowError, ValueError):
            return None
        shown = None
        for count, frame in enumerate(self._frames()):
            if frame.time is not None and frame.time > target + 1e-6:
                return self._sample(shown if shown is not None else frame)
            shown = frame
            if count >= MAX_DECODED_PER_SAMPLE or self.decoded >= MAX_DECODED:
                break
        return self._sample(shown) if shown is not None else None

    def _first(self, n: int) -> list[Sample]:
        out = []
        for number, frame in enumerate(self._frames()):
            out.append(self._sample(frame))
            if len(out) >= n or number >= MAX_DECODED_PER_SAMPLE:
                break
        return out

    def _frames(self):
        """Decoded frames from the current position; decoding errors end the walk (a truncated file)."""
        import av

        try:
            for frame in self.container.decode(self.video):
                self.decoded += 1
                yield frame
        except (av.FFmpegError, EOFError):
            return

    def _sample(self, frame) -> Sample:
        rotation = int(getattr(frame, "rotation", 0) or 0)
        return Sample(t=float(frame.time or 0.0), image=upright(frame.to_image(), rotation), rotation=rotation)


def sample_times(duration: float | None, *, frames: int = DEFAULT_FRAMES, fps: float | None = None) -> list[float]:
    """When to sample a clip of `duration` seconds: `frames` evenly spread (each in the middle of its share), or
    every 1/fps seconds (at most MAX_SAMPLES); none when the duration is unknown."""
    if not duration or duration <= 0 or not math.isfinite(duration):
        return []
    duration = min(duration, MAX_DURATION_S)
    if fps:
        n = min(MAX_SAMPLES, max(1, int(duration * fps)))
        return [(i + 0.5) / fps for i in range(n)]
    n = max(1, min(frames, MAX_SAMPLES))
    return [(i + 0.5) * duration / n for i in range(n)]


def upright(image: Image.Image, rotation: int) -> Image.Image:
    """The picture as players show it: `rotation` is the display matrix's counter-clockwise turn in degrees."""
    from PIL import Image

    turn = {90: Image.Transpose.ROTATE_90, 180: Image.Transpose.ROTATE_180, 270: Image.Transpose.ROTATE_270,
            -90: Image.Transpose.ROTATE_270, -180: Image.Transpose.ROTATE_180, -270: Image.Transpose.ROTATE_90}
    method = turn.get(rotation % 360 if rotation % 360 in (90, 180, 270) else rotation)
    image = image.convert("RGB") if image.mode != "RGB" else image
    return image.transpose(method) if method is not None else image


AGGREGATE = "mean of the top third of sampled frames"


def aggregate(p_fakes: list[float]) -> float:
    """A clip's P(fake): the mean of its top third of frames (at least one).

    Chosen over the mean (a manipulation in a quarter of the frames averages away), the maximum (one
    spurious frame decides the clip) and the top quarter (of 8 frames, one spurious frame makes 0.5, a tie
    at the default threshold); measured on toy clips in docs/video.md (benchmarks/video_aggregate.py).
    """
    if not p_fakes:
        raise ValueError("no frames")
    k = max(1, math.ceil(len(p_fakes) / 3))
    top = sorted(p_fakes, reverse=True)[:k]
    return sum(top) / len(top)


def _duration(seconds: float) -> str:
    return f"{seconds / 3600:.1f} hours" if seconds >= 3600 else f"{seconds:.1f} s"


def _reason(exc: BaseException) -> str:
    """FFmpeg's message without its errno or the file name (the record names the file)."""
    text = getattr(exc, "strerror", None) or str(exc)
    lines = str(text).strip().splitlines()
    return lines[0][:200] if lines else type(exc).__name__
