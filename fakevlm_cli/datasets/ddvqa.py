"""DD-VQA's test split (Reality-Defender/Research-DD-VQA): ``DQ_FF++/test_set/<Method>/<Method>.json``, with the
frames of each video from a folder of extracted images or from the clip itself."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fakevlm_cli.core.errors import DatasetError
from fakevlm_cli.media.video import VIDEO_SUFFIXES

from .common import LoadResult, Row, bench_item, data_root, finish, inside, natural_key, read_json, require

DDVQA_METHODS = ("Deepfakes", "Face2Face", "FaceShifter", "FaceSwap", "NeuralTextures", "Original")
# The released folder is spelled "Neuraltexture"; accept the FF++ spelling and case variants too.
_METHOD_ALIASES = {name.lower(): name for name in DDVQA_METHODS} | {"neuraltexture": "NeuralTextures"}
_FRAME_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp"}


def _method_dirs(parent: Path) -> dict[str, Path]:
    if not parent.is_dir():
        return {}
    found = {}
    for child in sorted(parent.iterdir()):
        method = _METHOD_ALIASES.get(child.name.lower())
        if method and child.is_dir() and method not in found:
            found[method] = child
    return found


def _is_verdict_question(question: str) -> bool:
    """"Does the image looks real/fake?" and its spellings; part questions name the person's skin, eyes…"""
    words = set(re.findall(r"[a-z]+", question.lower()))
    return {"image", "real", "fake"} <= words and "person" not in words


def _answers(qa: Any, path: Path, where: str) -> tuple[str, tuple[str, ...]]:
    require(qa, ("question", "answer"), path, where)
    answers = [qa["answer"]] if isinstance(qa["answer"], str) else qa["answer"]
    if not isinstance(qa["question"], str) or not isinstance(answers, list) or not all(
            isinstance(answer, str) for answer in answers):
        raise DatasetError(f"{path}: {where}: 'question' must be a string and 'answer' a list of strings")
    return qa["question"].strip(), tuple(answer.strip() for answer in answers)


def _frames(frames_root: Path, method_dir: Path | None, key: str, path: Path, where: str) -> _VideoFrames:
    """Frames of one video: the images of ``<method dir>/<video id>/`` (``114_102``, ``044``) or
    ``<method dir>/<record key>/`` (``0_114_102``, ``5_044``) in natural order, else the clip
    ``<method dir>/<video id>.mp4`` (any video suffix), whose i-th decoded frame is frame i."""
    if method_dir is None:
        return _VideoFrames()
    video = key.split("_", 1)[1] if re.match(r"\d+_.", key) else key
    for name in (video, key):
        folder = inside(frames_root, f"{method_dir.name}/{name}", path, where)
        if folder.is_dir():
            names = sorted((entry.name for entry in os.scandir(folder) if entry.is_file()
                            and not entry.name.startswith(".")
                            and os.path.splitext(entry.name)[1].lower() in _FRAME_SUFFIXES), key=natural_key)
            return _VideoFrames(images=[folder / name for name in names])
    for name in (video, key):
        for suffix in sorted(VIDEO_SUFFIXES):
            clip = inside(frames_root, f"{method_dir.name}/{name}{suffix}", path, where)
            if clip.is_file():
                return _VideoFrames(clip=clip, count=_declared_frames(clip))
    return _VideoFrames()


@dataclass
class _VideoFrames:
    """A DD-VQA video's frames: extracted images, or a clip and the frame count its container declares."""

    images: list[Path] = field(default_factory=list)
    clip: Path | None = None
    count: int | None = None  # the clip's declared frame count (None: unknown, a later error record says so)

    def __len__(self) -> int:
        return len(self.images) if self.clip is None else (self.count if self.count is not None else 1 << 30)

    def describe(self) -> str:
        return f"{len(self.images)} frames" if self.clip is None else f"{self.count} frames in {self.clip.name}"


def _declared_frames(clip: Path) -> int | None:
    """The frame count a clip's container declares (header only; PyAV imported here, lazily), or None."""
    import av

    try:
        with av.open(str(clip), metadata_errors="ignore") as container:
            if not container.streams.video:
                return 0
            return int(container.streams.video[0].frames) or None
    except (av.FFmpegError, OSError, ValueError):
        return None


def load_ddvqa(data_dir, *, annotations=None, frames=None, categories=None, limit=None) -> LoadResult:
    """DD-VQA test split: ``test_set/<Method>/<Method>.json`` under data_dir (or the folder ``annotations``);
    one item per verdict question ("Does the image look real/fake?"), category = method, Original = real and
    every other method = fake. As the FakeVLM authors did (opendatalab/FakeVLM issue #3), the i-th question of
    a video goes with the i-th frame of ``frames/<Method>/<video id>/`` in natural order, so the verdict
    question is asked about the frame of its position; without that folder, with the i-th decoded frame of the
    clip ``frames/<Method>/<video id>.mp4`` (or .avi, .mkv…; docs/video.md says how this differs from frames
    extracted by hand). Part questions (the person's skin, nose, eyes…) are
    skipped: each would need its own prompt, and a scan asks every image the same one."""
    root = data_root(data_dir)
    test_set = Path(annotations) if annotations else next(
        (p for p in (root / "test_set", root / "DQ_FF++" / "test_set") if p.is_dir()), root / "test_set")
    methods = _method_dirs(test_set)
    if not methods:
        raise DatasetError(f"{test_set}: no DD-VQA method folders ({', '.join(DDVQA_METHODS)})")
    notes = [f"{test_set}: no {m} folder" for m in DDVQA_METHODS if m not in methods]
    frames_root = (Path(frames).expanduser() if frames else root / "frames").resolve()
    frame_dirs = _method_dirs(frames_root)
    if not frame_dirs:
        notes.append(f"{frames_root}: no frames found (expected {frames_root}/<Method>/<video id>/*.png "
                     "or <video id>.mp4)")
    rows = []
    for method, folder in methods.items():
        path = folder / f"{folder.name}.json"
        doc = read_json(path)
        if not isinstance(doc, dict):
            raise DatasetError(f"{path}: expected an object of videos, found {type(doc).__name__}")
        label = "real" if method == "Original" else "fake"
        for key in sorted(doc, key=natural_key):
            video = doc[key]
            require(video, (), path, f"video {key!r}")
            video_frames = _frames(frames_root, frame_dirs.get(method), key, path, f"video {key!r}")
            for position, qid in enumerate(sorted(video, key=natural_key)):
                where = f"video {key!r} question {qid!r}"
                question, answers = _answers(video[qid], path, where)
                if not _is_verdict_question(question):
                    continue
                if position >= len(video_frames):
                    rows.append(Row(method, None, f"{frames_root}/{method}/{key}: frame #{position} "
                                                   f"for question {qid} ({video_frames.describe()})"))
                    continue
                item_id = f"{method}/{key}/{qid}"
                if video_frames.clip is not None:
                    item = bench_item(frames_root, video_frames.clip, label, method, answers, item_id=item_id,
                                 frame_index=position)
                else:  # a frame may be a symbolic link: it too must stay inside the frames directory
                    image = inside(frames_root, str(video_frames.images[position].relative_to(frames_root)),
                                    path, where)
                    item = bench_item(frames_root, image, label, method, answers, item_id=item_id)
                rows.append(Row(method, item))
    return finish(rows, notes, categories, limit)
