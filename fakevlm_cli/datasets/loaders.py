"""Benchmark loaders: turn a local copy of FakeClue, LOKI, DD-VQA or a real/fake folder into `BenchItem`s.

Each loader reads the benchmark's own annotation files, so that our numbers are computed on exactly the
records the paper used (arXiv 2503.14905). Layouts are those of the released files: FakeClue's
``data_json/test.json`` (lingcco/FakeClue, the test split opendatalab/FakeVLM evaluates on),
opendatalab/LOKI's ``data_json/image/true_or_false.json`` and ``open_ended_vqa.json``, and
Reality-Defender/Research-DD-VQA's ``DQ_FF++/test_set/<Method>/<Method>.json``. Two rules hold for every loader:

* An image path read from a dataset file must resolve (symlinks included) inside the data directory; a
  path that escapes is refused with a `DatasetError`, because dataset files are downloaded, untrusted input.
* A malformed file stops the load with a one-line `DatasetError` naming the file and the record; an image
  that is simply absent is not an error: it is listed in `LoadResult.missing`, counted, and reported.

`categories` filters (case-insensitive) and then `limit` keeps the first N records in dataset order, present
or missing alike, so the same options always select the same records whichever files are on disk.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from fakevlm_cli.core.errors import DatasetError, FakevlmError
from fakevlm_cli.core.options import BENCHES
from fakevlm_cli.core.record import recorded_path
from fakevlm_cli.media.images import SNIFF_BYTES, sniff_format
from fakevlm_cli.media.video import VIDEO_SUFFIXES, sniff_video

BENCHMARKS = BENCHES
DEFAULT_CATEGORY = "default"  # folder benchmark: images directly inside real/ or fake/


@dataclass(frozen=True)
class BenchItem:
    """One image to score, asked the engine's prompt (the official real/fake question). ``references``
    holds every reference explanation (DD-VQA has up to three); ``reference`` is the first, or None; ``boxes``
    the regions a person marked as fake (LOKI)."""

    id: str
    image: Path
    label: str
    category: str
    reference: str | None
    references: tuple[str, ...] = ()
    # Human-drawn boxes around the fake parts (LOKI's regional problems), (x0, y0, x1, y1) in stored pixels.
    boxes: tuple[tuple[float, float, float, float], ...] = ()
    # False: in the benchmark for localisation only (an annotated LOKI image missing from true_or_false.json),
    # not scored for classification or text.
    scored: bool = True
    frame_index: int | None = None  # `image` is a video and this its frame to judge (DD-VQA from clips)


@dataclass
class LoadResult:
    items: list[BenchItem] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _Row:
    """A record before the existence check; ``item`` is None when no image could even be named for it."""

    category: str
    item: BenchItem | None
    missing: str | None = None


# ---------------------------------------------------------------------------------------------- shared


def _read_json(path: Path) -> Any:
    """A JSON file in any encoding RFC 8259 §8.1 allows readers to accept: UTF-8, UTF-16 or UTF-32, with or
    without a byte order mark (LOKI's open_ended_vqa.json is UTF-16 LE with a BOM). Python's json tells them
    apart by the BOM, else by where the zero bytes of the first two characters fall (RFC 4627 §3)."""
    try:
        return json.loads(path.read_bytes())
    except FileNotFoundError:
        raise DatasetError(f"{path}: file not found") from None
    except UnicodeDecodeError:
        raise DatasetError(f"{path}: not UTF-8, UTF-16 or UTF-32 text") from None
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read ({exc.strerror})") from None
    except json.JSONDecodeError as exc:
        raise DatasetError(f"{path}: invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from None
    except RecursionError:
        raise DatasetError(f"{path}: JSON nested too deeply to be a dataset file") from None
    except ValueError as exc:  # json's other refusal: an integer with more digits than int() converts
        raise DatasetError(f"{path}: unreadable JSON: {str(exc).split(';')[0]}") from None


def _record_list(doc: Any, path: Path) -> list[Any]:
    if not isinstance(doc, list):
        raise DatasetError(f"{path}: expected a JSON list of records, found {type(doc).__name__}")
    return doc


def _where(index: int, record: Any) -> str:
    """How a record is named in errors: its position, plus its id or image when it has one."""
    name = ""
    if isinstance(record, dict):
        for key in ("id", "image", "image_path"):
            if isinstance(record.get(key), (str, int)):
                name = f" ({key} {record[key]!r})"
                break
    return f"record #{index}{name}"


def _require(record: Any, keys: Iterable[str], path: Path, where: str) -> None:
    if not isinstance(record, dict):
        raise DatasetError(f"{path}: {where}: expected an object, found {type(record).__name__}")
    for key in keys:
        if key not in record:
            raise DatasetError(f"{path}: {where}: missing field {key!r}")


def _inside(root: Path, rel: Any, path: Path, where: str) -> Path:
    """Resolve ``rel`` against ``root`` (already resolved) and refuse anything that ends up outside it."""
    if not isinstance(rel, str) or not rel.strip():
        raise DatasetError(f"{path}: {where}: image path must be a non-empty string")
    try:
        resolved = (root / rel).resolve()
    except (OSError, ValueError, RuntimeError) as exc:
        raise DatasetError(f"{path}: {where}: bad image path {rel!r} ({exc})") from None
    if not resolved.is_relative_to(root):
        raise DatasetError(f"{path}: {where}: image path {rel!r} leads outside the data directory {root}")
    return resolved


def _root(data_dir: str | os.PathLike) -> Path:
    root = Path(data_dir).expanduser()
    if not root.is_dir():
        raise DatasetError(f"{root}: data directory not found")
    return root.resolve()


def _natural_key(text: str) -> list:
    """Sort key that puts frame 2 before frame 10 (digit runs compare as numbers)."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", text)]


def _wanted(categories: str | Iterable[str] | None) -> set[str] | None:
    if categories is None:
        return None
    names = categories.split(",") if isinstance(categories, str) else categories
    wanted = {name.strip().lower() for name in names if name.strip()}
    return wanted or None


def _finish(rows: list[_Row], notes: list[str], categories, limit: int | None) -> LoadResult:
    """Make ids unique, filter by category, apply the limit, then split present from missing images."""
    rows = _select(_unique_ids(rows, notes), categories, limit)
    result = LoadResult(notes=notes)
    for row in rows:
        if row.item is None:
            result.missing.append(str(row.missing))
        elif row.item.image.is_file():
            result.items.append(row.item)
        else:
            result.missing.append(str(row.item.image))
    if result.missing:
        notes.append(f"{len(result.missing)} of {len(rows)} images are missing: counted, not scored")
    return result


def _unique_ids(rows: list[_Row], notes: list[str]) -> list[_Row]:
    """The rows with a ``#n`` suffix on the n-th repeat of an id (noted), so predictions join back one to one."""
    seen: dict[str, int] = {}
    unique: list[_Row] = []
    for row in rows:
        if row.item is not None:
            count = seen[row.item.id] = seen.get(row.item.id, 0) + 1
            if count > 1:
                row = replace(row, item=replace(row.item, id=f"{row.item.id}#{count}"))
        unique.append(row)
    duplicates = sum(count - 1 for count in seen.values())
    if duplicates:
        notes.append(f"{duplicates} duplicate record ids made unique with a #n suffix")
    return unique


def _select(rows: list[_Row], categories, limit: int | None) -> list[_Row]:
    """The rows of the wanted categories (an unknown one is an error), then the first `limit` of them."""
    wanted = _wanted(categories)
    if wanted is not None:
        known = {row.category.lower() for row in rows}
        unknown = sorted(wanted - known)
        if unknown:
            raise DatasetError(f"unknown categor{'y' if len(unknown) == 1 else 'ies'} {', '.join(unknown)}; "
                               f"this benchmark has: {', '.join(sorted(known)) or 'none'}")
        rows = [row for row in rows if row.category.lower() in wanted]
    if limit is not None:
        if limit < 0:
            raise FakevlmError(f"limit must be 0 or more, got {limit}")
        rows = rows[:limit]
    return rows


def _label01(value: Any, path: Path, where: str) -> str:
    """FakeClue's convention in ``data_json/test.json``: 1 = real, 0 = fake (the paper's F1, with real as the
    positive class, is computed on these labels). Booleans are refused as ambiguous."""
    if isinstance(value, bool) or value not in (0, 1, "0", "1"):
        raise DatasetError(f"{path}: {where}: label must be 1 (real) or 0 (fake), found {value!r}")
    return "real" if int(value) == 1 else "fake"


def _item(root: Path, image: Path, label: str, category: str, refs: Iterable[str], *,
          item_id: str | None = None, frame_index: int | None = None) -> BenchItem:
    refs = tuple(ref for ref in refs if ref.strip())
    # A name that is not UTF-8 gets the record's escaped form, so the id survives a predictions file unchanged.
    item_id = item_id or recorded_path(image.relative_to(root).as_posix())[0]
    return BenchItem(id=item_id, image=image, label=label, category=category,
                     reference=refs[0] if refs else None, references=refs, frame_index=frame_index)


# -------------------------------------------------------------------------------------------- FakeClue


def _gpt_answer(conversations: Any, path: Path, where: str) -> str | None:
    if conversations is None:
        return None
    if not isinstance(conversations, list):
        raise DatasetError(f"{path}: {where}: 'conversations' must be a list")
    for turn in conversations:
        if isinstance(turn, dict) and turn.get("from") == "gpt" and isinstance(turn.get("value"), str):
            return turn["value"].strip()
    return None


def load_fakeclue(data_dir, *, annotations=None, categories=None, limit=None) -> LoadResult:
    """FakeClue test set: ``data_json/test.json`` (or ``annotations``), image paths relative to data_dir,
    label 1 = real / 0 = fake, category from ``cate``, reference = the gpt turn."""
    root = _root(data_dir)
    path = Path(annotations) if annotations else root / "data_json" / "test.json"
    rows = []
    for index, record in enumerate(_record_list(_read_json(path), path)):
        where = _where(index, record)
        _require(record, ("image", "label", "cate"), path, where)
        label = _label01(record["label"], path, where)
        category = record["cate"]
        if not isinstance(category, str) or not category.strip():
            raise DatasetError(f"{path}: {where}: 'cate' must be a non-empty string")
        image = _inside(root, record["image"], path, where)
        answer = _gpt_answer(record.get("conversations"), path, where)
        item = _item(root, image, label, category.strip(), [answer] if answer else [],
                     item_id=str(record.get("id", record["image"])))
        rows.append(_Row(item.category, item))
    return _finish(rows, [], categories, limit)


# ------------------------------------------------------------------------------------------------ LOKI

_ASK = re.compile(r"(?:^|_)(real|fake)_ask_(.+)$")
_ASKS_FAKE = re.compile(r"generat|\bai\b|fake|synthe|artificial")


def _loki_truth(record: dict, path: Path, where: str) -> tuple[str, str, bool]:
    """Truth, category and whether the yes/no answer disagrees, for one yes/no item. ``question_type``
    decides (``image_tf_image_fake_ask_real_animals`` = a fake image asked "is it real?", category
    animals); the answer to the question decides only when the type carries no truth."""
    qtype = str(record.get("question_type", "")).strip().lower()
    match = _ASK.search(qtype)
    by_type, category = None, qtype.rsplit("_", 1)[-1] or DEFAULT_CATEGORY
    if match:
        by_type, rest = match[1], match[2].split("_")
        category = "_".join(rest[1:] if len(rest) > 1 and rest[0] in ("real", "fake") else rest)
    by_answer = None
    answer = str(record.get("answer", "")).strip().lower().rstrip(".")
    question = str(record.get("question", "")).lower()
    if answer in ("yes", "no") and question:
        asks_fake = bool(_ASKS_FAKE.search(question))
        if asks_fake or "real" in question:
            by_answer = "fake" if (answer == "yes") == asks_fake else "real"
    truth = by_type or by_answer
    if truth is None:
        raise DatasetError(f"{path}: {where}: cannot tell real from fake (question_type {qtype!r})")
    return truth, category, by_answer not in (None, truth)


def _descs(entries: Any) -> list[str]:
    """LOKI's ``problems.global`` / ``problems.regional``: a list of {"desc": ...} (regional ones also carry a
    ``region`` box), tolerated as a single object or bare strings."""
    if isinstance(entries, (dict, str)):
        entries = [entries]
    if not isinstance(entries, list):
        return []
    texts = [entry.get("desc") if isinstance(entry, dict) else entry for entry in entries]
    return [text.strip() for text in texts if isinstance(text, str) and text.strip()]


@dataclass(frozen=True)
class _Annotation:
    """One image of LOKI's open_ended_vqa.json: its reference text and its regional boxes."""

    text: str
    boxes: tuple[tuple[float, float, float, float], ...]
    image_path: str


def _boxes(entries: Any) -> tuple[tuple[float, float, float, float], ...]:
    """The ``region`` [x, y, width, height] of each regional problem, as (x0, y0, x1, y1); malformed ones left out."""
    if isinstance(entries, dict):
        entries = [entries]
    out = []
    for entry in entries if isinstance(entries, list) else []:
        region = entry.get("region") if isinstance(entry, dict) else None
        if (isinstance(region, list) and len(region) == 4
                and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in region)
                and region[2] > 0 and region[3] > 0):
            x, y, w, h = (float(v) for v in region)
            out.append((x, y, x + w, y + h))
    return tuple(out)


def _loki_open_ended(root: Path, path: Path, notes: list[str]) -> dict[Path, _Annotation]:
    if not path.is_file():
        notes.append(f"{path} not found: no reference explanations (ROUGE-L/CSS not computed) and no boxes")
        return {}
    found = {}
    for index, record in enumerate(_record_list(_read_json(path), path)):
        if not isinstance(record, dict) or "image_path" not in record:
            continue
        problems = record.get("problems")
        if not isinstance(problems, dict):
            problems = {}
        text = " ".join(_descs(problems.get("global")) + _descs(problems.get("regional")))
        image = _inside(root, record["image_path"], path, _where(index, record))
        found[image] = _Annotation(text, _boxes(problems.get("regional")), str(record["image_path"]))
    return found


def _loki_localisation_rows(root: Path, annotations: dict[Path, _Annotation], seen: dict,
                            notes: list[str]) -> list[_Row]:
    """`--localise`: annotated images with boxes that true_or_false.json does not list, as unscored items."""
    rows = []
    for image, note in annotations.items():
        if note.boxes and image not in seen:
            item = _item(root, image, "fake", DEFAULT_CATEGORY, [note.text] if note.text else [],
                         item_id=note.image_path)
            rows.append(_Row(DEFAULT_CATEGORY, replace(item, boxes=note.boxes, scored=False)))
    boxed = sum(1 for note in annotations.values() if note.boxes)
    joined = sum(1 for image, note in annotations.items() if note.boxes and image in seen)
    notes.append(f"localisation over the {boxed} images of open_ended_vqa.json with boxes; {joined} of them are "
                 f"in true_or_false.json, and only those are scored for classification and text (ROUGE-L/CSS)")
    return rows


def load_loki(data_dir, *, annotations=None, categories=None, limit=None, localise=False) -> LoadResult:
    """LOKI image modality: one item per unique ``image_path`` of ``data_json/image/true_or_false.json`` (or
    ``annotations``); references for fake images from the sibling ``open_ended_vqa.json``, global then
    regional ``desc`` joined with spaces (the paper does not publish how it built them), and the regional
    ``region`` boxes. With ``localise``, the annotated images true_or_false.json does not list are added as
    unscored items (`BenchItem.scored` False): localisation runs over every image with boxes."""
    root = _root(data_dir)
    path = Path(annotations) if annotations else root / "data_json" / "image" / "true_or_false.json"
    notes: list[str] = []
    annotated = _loki_open_ended(root, path.parent / "open_ended_vqa.json", notes)
    seen: dict[Path, tuple[str, str, str]] = {}
    rows, contradictions = [], []
    for index, record in enumerate(_record_list(_read_json(path), path)):
        where = _where(index, record)
        _require(record, ("image_path",), path, where)
        image = _inside(root, record["image_path"], path, where)
        truth, category, contradicted = _loki_truth(record, path, where)
        if contradicted:
            contradictions.append(where)
        if image in seen:
            if seen[image][:2] != (truth, category):
                raise DatasetError(f"{path}: {where}: says {truth}/{category} but {seen[image][2]} says "
                                   f"{seen[image][0]}/{seen[image][1]} for the same image")
            continue
        seen[image] = (truth, category, where)
        note = annotated.get(image)
        item = _item(root, image, truth, category, [note.text] if note and note.text else [],
                     item_id=record["image_path"])
        if note is not None and truth == "fake":
            item = replace(item, boxes=note.boxes)
        rows.append(_Row(category, item))
    if contradictions:
        notes.append(f"{path}: {len(contradictions)} answers contradict their question_type, which was "
                     f"trusted: {', '.join(contradictions[:5])}{' …' if len(contradictions) > 5 else ''}")
    if localise:
        rows += _loki_localisation_rows(root, annotated, seen, notes)
    return _finish(rows, notes, categories, limit)


# ---------------------------------------------------------------------------------------------- DD-VQA

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
    _require(qa, ("question", "answer"), path, where)
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
        folder = _inside(frames_root, f"{method_dir.name}/{name}", path, where)
        if folder.is_dir():
            names = sorted((entry.name for entry in os.scandir(folder) if entry.is_file()
                            and not entry.name.startswith(".")
                            and os.path.splitext(entry.name)[1].lower() in _FRAME_SUFFIXES), key=_natural_key)
            return _VideoFrames(images=[folder / name for name in names])
    for name in (video, key):
        for suffix in sorted(VIDEO_SUFFIXES):
            clip = _inside(frames_root, f"{method_dir.name}/{name}{suffix}", path, where)
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
    root = _root(data_dir)
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
        doc = _read_json(path)
        if not isinstance(doc, dict):
            raise DatasetError(f"{path}: expected an object of videos, found {type(doc).__name__}")
        label = "real" if method == "Original" else "fake"
        for key in sorted(doc, key=_natural_key):
            video = doc[key]
            _require(video, (), path, f"video {key!r}")
            video_frames = _frames(frames_root, frame_dirs.get(method), key, path, f"video {key!r}")
            for position, qid in enumerate(sorted(video, key=_natural_key)):
                where = f"video {key!r} question {qid!r}"
                question, answers = _answers(video[qid], path, where)
                if not _is_verdict_question(question):
                    continue
                if position >= len(video_frames):
                    rows.append(_Row(method, None, f"{frames_root}/{method}/{key}: frame #{position} "
                                                   f"for question {qid} ({video_frames.describe()})"))
                    continue
                item_id = f"{method}/{key}/{qid}"
                if video_frames.clip is not None:
                    item = _item(frames_root, video_frames.clip, label, method, answers, item_id=item_id,
                                 frame_index=position)
                else:  # a frame may be a symbolic link: it too must stay inside the frames directory
                    image = _inside(frames_root, str(video_frames.images[position].relative_to(frames_root)),
                                    path, where)
                    item = _item(frames_root, image, label, method, answers, item_id=item_id)
                rows.append(_Row(method, item))
    return _finish(rows, notes, categories, limit)


# ---------------------------------------------------------------------------------------------- folder

def _is_media(path: Path) -> bool:
    """Content decides, as in a scan (`images.sniff_format`, `video.sniff_video`): a PNG named .txt is an
    image, notes.png is not."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(SNIFF_BYTES)
            return sniff_format(head) is not None or sniff_video(head[:64]) is not None
    except OSError:
        return False


def load_folder(data_dir, *, categories=None, limit=None) -> LoadResult:
    """``real/`` and ``fake/`` (any case) with images at any depth; the first folder below them is the
    category (files directly inside get ``default``). Images and videos are recognised by content (JPEG, PNG, GIF, WebP,
    TIFF, BMP and the rest `images.sniff_format` knows); hidden files and folders and symbolic links are
    skipped (ripgrep's convention) and counted in the notes; order is the sorted relative path."""
    root = _root(data_dir)
    classes = _class_folders(root)
    notes = [f"{root}: no {label}/ folder" for label in ("real", "fake") if label not in classes]
    items: list[BenchItem] = []
    links = others = 0
    for label, top in classes.items():
        for path in _visible_files(top):
            if path.is_symlink():
                links += 1
            elif not _is_media(path):
                others += 1
            else:
                parts = path.relative_to(top).parts
                category = recorded_path(parts[0])[0] if len(parts) > 1 else DEFAULT_CATEGORY
                items.append(_item(root, path, label, category, []))
    rows = [_Row(item.category, item) for item in sorted(items, key=lambda item: item.id)]
    if links:
        notes.append(f"{links} symbolic links skipped")
    if others:
        notes.append(f"{others} files skipped: not a recognised image or video format")
    return _finish(rows, notes, categories, limit)


def _class_folders(root: Path) -> dict[str, Path]:
    """``{"real": folder, "fake": folder}`` for the class folders present (any case, not symlinks)."""
    classes: dict[str, Path] = {}
    for child in sorted(root.iterdir()):
        label = child.name.lower()
        if label in ("real", "fake") and child.is_dir() and not child.is_symlink():
            if label in classes:
                raise DatasetError(f"{root}: both {classes[label].name}/ and {child.name}/ exist; keep one")
            classes[label] = child
    if not classes:
        raise DatasetError(f"{root}: no real/ or fake/ folder")
    return classes


def _visible_files(top: Path) -> Iterator[Path]:
    """The files below `top` that are not hidden and not inside a hidden folder or a symlinked one."""
    for current, dirs, files in os.walk(top):
        dirs[:] = [d for d in dirs if not d.startswith(".") and not os.path.islink(os.path.join(current, d))]
        yield from (Path(current, name) for name in files if not name.startswith("."))


# ------------------------------------------------------------------------------------------ dispatcher


def load_bench(name: str, data_dir, *, annotations=None, frames=None, categories=None, limit=None,
               localise=False) -> LoadResult:
    """Load benchmark ``name`` (fakeclue, loki, ddvqa, folder). DD-VQA items are its verdict questions only
    (part questions would each need their own prompt; see `load_ddvqa`). ``localise`` adds LOKI's annotated
    images that its true/false file lacks (`load_loki`)."""
    key = name.lower().replace("-", "").replace("_", "")
    if key not in BENCHMARKS:
        raise FakevlmError(f"unknown benchmark {name!r}; choose one of {', '.join(BENCHMARKS)}")
    if frames is not None and key != "ddvqa":
        raise FakevlmError("frames applies only to the ddvqa benchmark")
    if key == "folder":
        if annotations is not None:
            raise FakevlmError("the folder benchmark takes no annotations file")
        return load_folder(data_dir, categories=categories, limit=limit)
    if key == "ddvqa":
        return load_ddvqa(data_dir, annotations=annotations, frames=frames, categories=categories, limit=limit)
    if key == "loki":
        return load_loki(data_dir, annotations=annotations, categories=categories, limit=limit, localise=localise)
    return load_fakeclue(data_dir, annotations=annotations, categories=categories, limit=limit)
