"""A labelled folder: ``real/`` and ``fake/`` with images at any depth, the first folder below them the category."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from fakevlm_cli.core.errors import DatasetError
from fakevlm_cli.core.record import recorded_path
from fakevlm_cli.media.images import SNIFF_BYTES, sniff_format
from fakevlm_cli.media.video import sniff_video

from .common import DEFAULT_CATEGORY, BenchItem, LoadResult, Row, bench_item, data_root, finish


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
    root = data_root(data_dir)
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
                items.append(bench_item(root, path, label, category, []))
    rows = [Row(item.category, item) for item in sorted(items, key=lambda item: item.id)]
    if links:
        notes.append(f"{links} symbolic links skipped")
    if others:
        notes.append(f"{others} files skipped: not a recognised image or video format")
    return finish(rows, notes, categories, limit)


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
