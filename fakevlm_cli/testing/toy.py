"""A toy FakeVLM: a tiny LLaVA trained offline on synthetic images whose right answers are known.

`synthetic.build_tiny_llava` gives a *random* LLaVA: it proves plumbing, never accuracy. The toy here is
trained (about 25 s on two idle CPU cores) to do what FakeVLM does, on images whose truth is known by
construction, so tests can tell a right answer from a wrong one:

* **Images** (`toy_image`): smooth, low-frequency colour fields. A "fake" is the same picture (same seed) with a
  small 1-px checkerboard (20–28 px, about 2×2 CLIP patches) planted inside one cell of a 3×3 grid; the answer
  names that cell. Images are exactly the model's input size (126 px = 9×9 patches of 14 px, so the grid falls
  on patch boundaries), so the CLIP processor's resize and crop are no-ops, and they are plain 8-bit RGB, so a
  PNG round trip leaves them unchanged.
* **Prompt**: FakeClue's raw prompt `<image>Does the image looks real/fake?`, tokenised the way the upstream
  evaluation tokenised it: by the raw `tokenizers` library on the checkpoint's `tokenizer.json` (the
  "oracle", `oracle_tokenizer`), whose Llama-2 normaliser prepends "▁" after `<image>` (so "▁Does"). The
  toy was trained on those ids only. transformers 5's `LlamaTokenizer` drops that normaliser and gives
  "Do" "es"; which class `AutoTokenizer` picks depends on the folder (see tests/test_toy.py).
* **Answers**: a lead-in, then FakeClue's verdict sentence and an explanation (`target_text`). The lead-in
  depends on an easy global property (`lead_in_for`: bright images get " ASSISTANT: ", dark ones a newline),
  because nobody knows how the real model starts its answer after the raw prompt: code that assumes one
  fixed start is caught by the toy.

`cached_toy_fakevlm()` builds the checkpoint once per recipe and library versions and reuses it.
torch and transformers are imported inside functions only.

This module is the toy's public face and its cache; the images, answers and tokenizer are in `toy_data`, the
recipe, training and checkpoint writing in `toy_build`, and every public name of both is importable from here.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from fakevlm_cli.testing.toy_build import (
    RECIPE_VERSION,
    Recipe,
    build_toy_fakevlm,
    cache_key,
    generate_answers,
    score_answers,
)
from fakevlm_cli.testing.toy_data import (
    ARTIFACT_SIZES,
    CELL,
    FAKE_ANSWER,
    FRESH_SEEDS,
    GRID,
    IMAGE_SIZE,
    LEAD_IN_BRIGHT,
    LEAD_IN_DARK,
    LEAD_INS,
    N_IMAGE_TOKENS,
    PATCH,
    PROMPT,
    REAL_ANSWER,
    REGIONS,
    VERDICT_PIECES,
    ToyImage,
    answer_text,
    build_toy_tokenizer,
    expand_image_token,
    fresh_toy_images,
    lead_in_for,
    oracle_tokenizer,
    pixel_values,
    prompt_ids,
    region_in,
    region_of,
    target_text,
    toy_image,
    verdict_of,
)

__all__ = [
    "ARTIFACT_SIZES",
    "CELL",
    "FAKE_ANSWER",
    "FRESH_SEEDS",
    "GRID",
    "IMAGE_SIZE",
    "LEAD_INS",
    "LEAD_IN_BRIGHT",
    "LEAD_IN_DARK",
    "N_IMAGE_TOKENS",
    "PATCH",
    "PROMPT",
    "REAL_ANSWER",
    "RECIPE_VERSION",
    "REGIONS",
    "VERDICT_PIECES",
    "Recipe",
    "ToyImage",
    "answer_text",
    "build_toy_fakevlm",
    "build_toy_tokenizer",
    "cache_key",
    "cached_toy_fakevlm",
    "default_cache_dir",
    "expand_image_token",
    "fresh_toy_images",
    "generate_answers",
    "is_cached",
    "lead_in_for",
    "oracle_tokenizer",
    "pixel_values",
    "prompt_ids",
    "region_in",
    "region_of",
    "score_answers",
    "target_text",
    "toy_image",
    "verdict_of",
]


def default_cache_dir() -> Path:
    """$FAKEVLM_TOY_CACHE if set, else ~/.cache/fakevlm/toy-<cache_key()>."""
    env = os.environ.get("FAKEVLM_TOY_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "fakevlm" / f"toy-{cache_key()}"


def cached_toy_fakevlm(cache_dir: Path | None = None, *, log: Callable[[str], None] | None = None) -> Path:
    """Directory of the trained toy (`cache_dir` or `default_cache_dir()`), built on first use and reused after.

    A folder whose toy.json carries another cache key (older recipe or libraries) is rebuilt. The build runs in
    a temporary folder beside the target and is moved into place with os.replace, so a reader never sees half
    a checkpoint and two processes building at once both end up with one complete folder.
    """
    target = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    key = cache_key()
    if _cached_key(target) == key:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.build-", dir=target.parent))
    try:
        build_toy_fakevlm(tmp, log=log)
        _move_into_place(tmp, target, key)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def is_cached(cache_dir: Path | None = None) -> bool:
    """Whether `cached_toy_fakevlm(cache_dir)` would reuse a trained toy (no training)."""
    target = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    return _cached_key(target) == cache_key()


def _move_into_place(built: Path, target: Path, key: str) -> None:
    try:
        os.replace(built, target)  # succeeds when target is absent or an empty folder
        return
    except OSError:
        if _cached_key(target) == key:  # another process finished first: keep its copy
            return
    # target holds a stale or broken build: move it aside, then take its place
    stale = Path(tempfile.mkdtemp(prefix=f".{target.name}.stale-", dir=target.parent))
    try:
        with contextlib.suppress(FileNotFoundError):
            os.replace(target, stale / "old")
        try:
            os.replace(built, target)
        except OSError:
            if _cached_key(target) != key:
                raise
    finally:
        shutil.rmtree(stale, ignore_errors=True)


def _cached_key(folder: Path) -> str | None:
    """The cache key a complete toy folder was built with (None if the folder is absent or incomplete)."""
    try:
        return json.loads((folder / "toy.json").read_text()).get("key")
    except (OSError, ValueError, AttributeError):
        return None
