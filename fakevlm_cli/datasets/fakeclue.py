"""FakeClue's test set (lingcco/FakeClue, the split opendatalab/FakeVLM evaluates on): ``data_json/test.json``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fakevlm_cli.core.errors import DatasetError

from .common import LoadResult, Row, bench_item, data_root, finish, inside, read_json, record_list, record_name, require


def _label01(value: Any, path: Path, where: str) -> str:
    """FakeClue's convention in ``data_json/test.json``: 1 = real, 0 = fake (the paper's F1, with real as the
    positive class, is computed on these labels). Booleans are refused as ambiguous."""
    if isinstance(value, bool) or value not in (0, 1, "0", "1"):
        raise DatasetError(f"{path}: {where}: label must be 1 (real) or 0 (fake), found {value!r}")
    return "real" if int(value) == 1 else "fake"



def _turn(conversations: Any, speaker: str, path: Path, where: str) -> str | None:
    """The first turn of ``speaker`` ("human": the prompt, "gpt": the reference answer), or None."""
    if conversations is None:
        return None
    if not isinstance(conversations, list):
        raise DatasetError(f"{path}: {where}: 'conversations' must be a list")
    for turn in conversations:
        if isinstance(turn, dict) and turn.get("from") == speaker and isinstance(turn.get("value"), str):
            return turn["value"].strip()
    return None


def load_fakeclue(data_dir, *, annotations=None, categories=None, limit=None) -> LoadResult:
    """FakeClue test set: ``data_json/test.json`` (or ``annotations``), image paths relative to data_dir,
    label 1 = real / 0 = fake, category from ``cate``, reference = the gpt turn, prompt = the human turn."""
    root = data_root(data_dir)
    path = Path(annotations) if annotations else root / "data_json" / "test.json"
    rows = []
    for index, record in enumerate(record_list(read_json(path), path)):
        where = record_name(index, record)
        require(record, ("image", "label", "cate"), path, where)
        label = _label01(record["label"], path, where)
        category = record["cate"]
        if not isinstance(category, str) or not category.strip():
            raise DatasetError(f"{path}: {where}: 'cate' must be a non-empty string")
        image = inside(root, record["image"], path, where)
        answer = _turn(record.get("conversations"), "gpt", path, where)
        item = bench_item(root, image, label, category.strip(), [answer] if answer else [],
                          item_id=str(record.get("id", record["image"])),
                          prompt=_turn(record.get("conversations"), "human", path, where))
        rows.append(Row(item.category, item))
    return finish(rows, [], categories, limit)
