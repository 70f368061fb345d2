"""Evaluation datasets: loaders for FakeClue, LOKI, DD-VQA and real/fake folders, the paper's metrics, and
the paper's figures to compare with, for ``fakevlm eval`` (the speed benchmarks live in ``benchmarks/``).
Nothing here imports torch: the CLI can list, load and score benchmark results without the model stack (CSS
alone loads sentence-transformers, and only when asked)."""

from .loaders import BENCHMARKS, BenchItem, LoadResult, load_bench
from .metrics import Prediction, evaluate

__all__ = ["BENCHMARKS", "BenchItem", "LoadResult", "Prediction", "evaluate", "load_bench"]
