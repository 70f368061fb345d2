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
from fakevlm_cli.core.options import DEFAULT_FRAMES
from fakevlm_cli.core.text import megapixels

if TYPE_CHECKING:  # pragma: no cover
    from PIL import Image

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
    length: float | None = None  # how long the frame is shown, in seconds, when the stream says


class BiggerFrame(Exception):  # noqa: N818 - not an error: the caller holds more memory and samples again
    """A decoded frame needs more memory than the caller set aside for the size the container header gave."""

    def __init__(self, need: int):
        super().__init__(need)
        self.need = need


def frame_bytes(width: int, height: int) -> int:
    """Memory one frame of this size takes while it is sampled: the codec's picture, its RGB copy, headroom."""
    return 4 * 3 * width * height


class Clip:
    """An open video container (a file object it does not own). Use as a context manager."""

    def __init__(self, stream: IO[bytes], fmt: str, *, max_pixels: int, max_frame_bytes: int | None = None):
        self.stream, self.fmt, self.max_pixels = stream, fmt, max_pixels
        self.max_frame_bytes = max_frame_bytes  # memory set aside for one frame (None: not counted)
        self.decoded = 0
        self.header_size: tuple[int, int] | None = None  # what the container says (info())
        self.largest: tuple[int, int] | None = None  # the biggest frame actually decoded

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
            raise ImageError(f"video frames are {width}x{height} ({megapixels(width * height)}), over the "
                             f"--max-pixels limit of {megapixels(self.max_pixels)}")
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
        self.header_size = (width, height)
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

        When the clip has fewer distinct frames than sampled times, or the frame on screen at the last sampled
        time began more than one frame period before it (the frames end before the duration the file declares,
        or they are sparser than its rate says), the last frame that decodes is found and the clip is sampled
        again over [0, that frame's time], the last sample on that frame: every frame up to it can be reached,
        whatever the declared duration and rate say. `keep` (e.g. the engine's preprocess) replaces each
        picture as soon as it is decoded, so a 4K clip holds one full-size frame at a time, not all of them.
        A frame bigger than the container header said raises `BiggerFrame` (over `max_frame_bytes`) or an
        `ImageError` (over --max-pixels).
        """
        times = sample_times(info.duration_s, frames=frames, fps=fps)
        if not times:  # no duration known: the first frames the stream gives
            out = [self._kept(s, keep) for s in self._first(frames)]
        else:
            out = self._at(times, info, keep)
            period = 1 / info.fps if info.fps else 0.0
            if out and (len(out) < len(times) or out[-1].t + period < times[-1] - 1e-6):
                times, out = self._up_to_last(info, out, frames=frames, fps=fps, keep=keep)
        if not out:
            out = [self._kept(s, keep) for s in self._first(1)]
        if not out:
            raise ImageError(f"no decodable video frame in this {self.fmt} file")
        if times and len(out) < len(times):
            info.notes.append(f"video: {len(out)} of {len(times)} sampled times had a frame of their own (the "
                              "clip has fewer frames than that, or they did not decode)")
        info.rotation = out[0].rotation
        self.real_size(info)
        return out

    def _up_to_last(self, info: VideoInfo, out: list[Sample], *, frames: int, fps: float | None,
                    keep) -> tuple[list[float], list[Sample]]:
        """Sample again over [0, the last frame that decodes], the last sample on that frame; the pass with more
        distinct frames wins (the first pass's frames are never lost to a worse second one)."""
        declared = min(info.duration_s or 0.0, MAX_DURATION_S)
        last = self._seek_to(max(declared, out[-1].t))
        if last is None or last.t < out[-1].t:
            last = out[-1]
        ends = last.t + (last.length or (1 / info.fps if info.fps else 0.0))
        if declared - ends > max(1e-3, ends * 1e-3):
            shown, claimed = _two(ends, declared)
            info.notes.append(f"video: frames end at {shown} (the last at {last.t:.3f} s), not at the {claimed} "
                              "the file declares: sampled up to the last frame")
        times = times_up_to(last.t, frames=frames, fps=fps)
        again = self._at(times, info, keep)
        return (times, again) if len(again) >= len(out) else (times, out)

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
                return self._sample(frame)  # the caller states its real size (real_size)
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
        """The decoded frame as a picture, once its real size (not the header's) is within --max-pixels and
        the memory set aside for a frame."""
        width, height = int(frame.width), int(frame.height)
        if width * height > self.max_pixels:
            said = f" (the container header says {self.header_size[0]}x{self.header_size[1]})" \
                if self.header_size and self.header_size != (width, height) else ""
            raise ImageError(f"a video frame is {width}x{height} ({megapixels(width * height)}), over the "
                             f"--max-pixels limit of {megapixels(self.max_pixels)}{said}")
        if self.max_frame_bytes is not None and frame_bytes(width, height) > self.max_frame_bytes:
            raise BiggerFrame(frame_bytes(width, height))
        if self.largest is None or width * height > self.largest[0] * self.largest[1]:
            self.largest = (width, height)
        rotation = int(getattr(frame, "rotation", 0) or 0)
        length = float(frame.duration * frame.time_base) if frame.duration and frame.time_base else None
        return Sample(t=float(frame.time or 0.0), image=upright(frame.to_image(), rotation), rotation=rotation,
                      length=length)

    def real_size(self, info: VideoInfo) -> None:
        """`info` gives the size of the biggest frame decoded when it differs from the header's (a note says so)."""
        if self.largest is not None and self.largest != (info.width, info.height):
            info.notes.append(f"video: frames are {self.largest[0]}x{self.largest[1]}, not the {info.width}x"
                              f"{info.height} the container header says")
            info.width, info.height = self.largest


def sample_times(duration: float | None, *, frames: int = DEFAULT_FRAMES, fps: float | None = None) -> list[float]:
    """When to sample a clip of `duration` seconds: `frames` evenly spread (each in the middle of its share), or
    every 1/fps seconds (at most MAX_SAMPLES); none when the duration is unknown."""
    if not duration or duration <= 0 or not math.isfinite(duration):
        return []
    duration = min(duration, MAX_DURATION_S)
    if fps:  # every 1/fps share that begins within the clip, the last one too however little of it is left
        n = min(MAX_SAMPLES, max(1, math.ceil(duration * fps - 1e-9)))
        return [(i + 0.5) / fps for i in range(n)]
    n = max(1, min(frames, MAX_SAMPLES))
    return [(i + 0.5) * duration / n for i in range(n)]


def times_up_to(last: float, *, frames: int = DEFAULT_FRAMES, fps: float | None = None) -> list[float]:
    """When to sample a clip whose last frame is at `last` seconds, so that every frame up to it can be reached:
    `frames` times each in the middle of its share with the last exactly at `last`, or every 1/fps seconds
    through the share holding `last` (at most MAX_SAMPLES)."""
    if last <= 0:
        return [0.0]
    if fps:
        n = min(MAX_SAMPLES, int(last * fps) + 1)
        return [min((i + 0.5) / fps, last) for i in range(n)]
    n = max(1, min(frames, MAX_SAMPLES))
    return [last / 2] if n == 1 else [last * (2 * i + 1) / (2 * n - 1) for i in range(n)]


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


def _two(a: float, b: float) -> tuple[str, str]:
    """Two durations in words, with two significant digits at least and as many decimals (up to 3) as it
    takes to tell them apart."""
    if max(a, b) >= 3600:
        return _duration(a), _duration(b)
    smaller = min(a, b)
    places = min(3, max(1, 1 - math.floor(math.log10(smaller)))) if smaller > 0 else 1  # two significant digits
    shown = f"{a:.{places}f} s", f"{b:.{places}f} s"
    while shown[0] == shown[1] and places < 3:
        places += 1
        shown = f"{a:.{places}f} s", f"{b:.{places}f} s"
    return shown


def _reason(exc: BaseException) -> str:
    """FFmpeg's message without its errno or the file name (the record names the file)."""
    text = getattr(exc, "strerror", None) or str(exc)
    lines = str(text).strip().splitlines()
    return lines[0][:200] if lines else type(exc).__name__
