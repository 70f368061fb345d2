"""What every benchmark loader shares: the items they make (`BenchItem`, `LoadResult`), reading and validating
dataset files, and the final step (unique ids, category filter, limit, missing images). The loaders
themselves live one per benchmark (fakeclue, loki, ddvqa, folder); `loaders.load_bench` dispatches by name.

Two rules hold for every loader:

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
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from fakevlm_cli.core.errors import DatasetError, FakevlmError
from fakevlm_cli.core.options import BENCHES
from fakevlm_cli.core.record import recorded_path

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
    # The question the dataset's own record asks (FakeClue's human turn), None where it names none: eval asks
    # --prompt of every item and warns when they differ.
    prompt: str | None = None


@dataclass
class LoadResult:
    items: list[BenchItem] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Row:
    """A record before the existence check; ``item`` is None when no image could even be named for it."""

    category: str
    item: BenchItem | None
    missing: str | None = None


# ---------------------------------------------------------------------------------------------- shared


def read_json(path: Path) -> Any:
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


def record_list(doc: Any, path: Path) -> list[Any]:
    if not isinstance(doc, list):
        raise DatasetError(f"{path}: expected a JSON list of records, found {type(doc).__name__}")
    return doc


def record_name(index: int, record: Any) -> str:
    """How a record is named in errors: its position, plus its id or image when it has one."""
    name = ""
    if isinstance(record, dict):
        for key in ("id", "image", "image_path"):
            if isinstance(record.get(key), (str, int)):
                name = f" ({key} {record[key]!r})"
                break
    return f"record #{index}{name}"


def require(record: Any, keys: Iterable[str], path: Path, where: str) -> None:
    if not isinstance(record, dict):
        raise DatasetError(f"{path}: {where}: expected an object, found {type(record).__name__}")
    for key in keys:
        if key not in record:
            raise DatasetError(f"{path}: {where}: missing field {key!r}")


def inside(root: Path, rel: Any, path: Path, where: str) -> Path:
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


def data_root(data_dir: str | os.PathLike) -> Path:
    root = Path(data_dir).expanduser()
    if not root.is_dir():
        raise DatasetError(f"{root}: data directory not found")
    return root.resolve()


def natural_key(text: str) -> list:
    """Sort key that puts frame 2 before frame 10 (digit runs compare as numbers)."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", text)]


def _wanted(categories: str | Iterable[str] | None) -> set[str] | None:
    if categories is None:
        return None
    names = categories.split(",") if isinstance(categories, str) else categories
    wanted = {name.strip().lower() for name in names if name.strip()}
    return wanted or None


def finish(rows: list[Row], notes: list[str], categories, limit: int | None) -> LoadResult:
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


def _unique_ids(rows: list[Row], notes: list[str]) -> list[Row]:
    """The rows with a ``#n`` suffix on the n-th repeat of an id (noted), so predictions join back one to one."""
    seen: dict[str, int] = {}
    unique: list[Row] = []
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


def _select(rows: list[Row], categories, limit: int | None) -> list[Row]:
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




def bench_item(root: Path, image: Path, label: str, category: str, refs: Iterable[str], *,
          item_id: str | None = None, frame_index: int | None = None, prompt: str | None = None) -> BenchItem:
    refs = tuple(ref for ref in refs if ref.strip())
    # A name that is not UTF-8 gets the record's escaped form, so the id survives a predictions file unchanged.
    item_id = item_id or recorded_path(image.relative_to(root).as_posix())[0]
    return BenchItem(id=item_id, image=image, label=label, category=category,
                     reference=refs[0] if refs else None, references=refs, frame_index=frame_index, prompt=prompt)
