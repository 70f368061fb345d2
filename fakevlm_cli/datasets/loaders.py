"""Benchmark loaders: turn a local copy of FakeClue, LOKI, DD-VQA or a real/fake folder into `BenchItem`s.

Each loader reads the benchmark's own annotation files, so that our numbers are computed on exactly the
records the paper used (arXiv 2503.14905); one module per benchmark (fakeclue, loki, ddvqa, folder), what
they share in `common` (the rules every loader keeps are in its docstring). This module picks the loader by
name and re-exports the names callers import from here.
"""

from __future__ import annotations

from fakevlm_cli.core.errors import FakevlmError

from .common import BENCHMARKS, DEFAULT_CATEGORY, BenchItem, LoadResult
from .ddvqa import DDVQA_METHODS, load_ddvqa
from .fakeclue import load_fakeclue
from .folder import load_folder
from .loki import load_loki

__all__ = ["BENCHMARKS", "DDVQA_METHODS", "DEFAULT_CATEGORY", "BenchItem", "LoadResult", "load_bench", "load_ddvqa",
           "load_fakeclue", "load_folder", "load_loki"]


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
