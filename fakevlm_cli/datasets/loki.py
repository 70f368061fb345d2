"""LOKI's image modality (opendatalab/LOKI): ``data_json/image/true_or_false.json`` for the verdicts and
``open_ended_vqa.json`` beside it for the reference explanations and the boxes around fake regions."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from fakevlm_cli.core.errors import DatasetError

from .common import (
    DEFAULT_CATEGORY,
    LoadResult,
    Row,
    bench_item,
    data_root,
    finish,
    inside,
    read_json,
    record_list,
    record_name,
    require,
)

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
    for index, record in enumerate(record_list(read_json(path), path)):
        if not isinstance(record, dict) or "image_path" not in record:
            continue
        problems = record.get("problems")
        if not isinstance(problems, dict):
            problems = {}
        text = " ".join(_descs(problems.get("global")) + _descs(problems.get("regional")))
        image = inside(root, record["image_path"], path, record_name(index, record))
        found[image] = _Annotation(text, _boxes(problems.get("regional")), str(record["image_path"]))
    return found


def _loki_localisation_rows(root: Path, annotations: dict[Path, _Annotation], seen: dict,
                            notes: list[str]) -> list[Row]:
    """`--localise`: annotated images with boxes that true_or_false.json does not list, as unscored items."""
    rows = []
    for image, note in annotations.items():
        if note.boxes and image not in seen:
            item = bench_item(root, image, "fake", DEFAULT_CATEGORY, [note.text] if note.text else [],
                         item_id=note.image_path)
            rows.append(Row(DEFAULT_CATEGORY, replace(item, boxes=note.boxes, scored=False)))
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
    root = data_root(data_dir)
    path = Path(annotations) if annotations else root / "data_json" / "image" / "true_or_false.json"
    notes: list[str] = []
    annotated = _loki_open_ended(root, path.parent / "open_ended_vqa.json", notes)
    seen: dict[Path, tuple[str, str, str]] = {}
    rows, contradictions = [], []
    for index, record in enumerate(record_list(read_json(path), path)):
        where = record_name(index, record)
        require(record, ("image_path",), path, where)
        image = inside(root, record["image_path"], path, where)
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
        item = bench_item(root, image, truth, category, [note.text] if note and note.text else [],
                     item_id=record["image_path"])
        if note is not None and truth == "fake":
            item = replace(item, boxes=note.boxes)
        rows.append(Row(category, item))
    if contradictions:
        notes.append(f"{path}: {len(contradictions)} answers contradict their question_type, which was "
                     f"trusted: {', '.join(contradictions[:5])}{' …' if len(contradictions) > 5 else ''}")
    if localise:
        rows += _loki_localisation_rows(root, annotated, seen, notes)
    return finish(rows, notes, categories, limit)
