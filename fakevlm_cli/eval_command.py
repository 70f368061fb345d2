"""`fakevlm eval`: run the model over a benchmark's items, score them, and set the paper's figures beside ours.

Predictions are ordinary scan records (with the item's label, category and id added), so a predictions file
can be re-scored later with `--from-predictions` without loading a model, and read by any JSONL tool.
Evaluation judges the model alone: metadata evidence is not read (it would change what is measured).
"""

from __future__ import annotations

import platform
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import orjson

from fakevlm_cli import __version__
from fakevlm_cli.datasets.loaders import BenchItem, LoadResult, load_bench
from fakevlm_cli.datasets.metrics import Prediction, evaluate
from fakevlm_cli.datasets.paper import compare
from fakevlm_cli.errors import DatasetError, FakevlmError, OutputError
from fakevlm_cli.record import VERDICTS, Record
from fakevlm_cli.results_file import check_writable

# Which paper rows a folder run is compared with (the paper evaluated DMimage and FF++ frames as folders).
FOLDER_PAPER_ROWS = ("dmimage", "ffpp")


@dataclass
class EvalRequest:
    bench: str
    data: Path
    annotations: Path | None = None
    frames: Path | None = None
    limit: int | None = None
    categories: str | None = None
    explain: bool = False
    output: Path | None = None
    predictions: Path | None = None
    from_predictions: Path | None = None
    compare_to: str | None = None
    verdict_from: str = "score"  # "text": judge by the verdict sentence the model wrote (needs explain)
    css_model: str | None = None
    batch_size: int = 8
    threshold: float = 0.5
    max_new_tokens: int = 256
    workers: int | None = None
    quiet: bool = False
    pixels: str = "upstream"  # as the upstream evaluation fed the model (images.PIXEL_MODES)


@dataclass
class EvalRun:
    """Everything the renderer and the results file need."""

    request: EvalRequest
    loaded: LoadResult
    metrics: dict
    paper: list[dict]
    paper_bench: str | None
    model: dict | None
    elapsed: float


def run_eval(request: EvalRequest, load_engine: Callable | None, progress_factory=None) -> EvalRun:
    started = time.perf_counter()
    if request.verdict_from == "text" and not request.explain:
        raise FakevlmError("--verdict-from text needs --explain (the verdict is read from the generated text)")
    for path in (request.output, request.predictions):
        if path is not None:
            check_writable(path)
    options = {"verdict_only": True} if request.bench == "ddvqa" else {}
    loaded = load_bench(request.bench, request.data, annotations=request.annotations, frames=request.frames,
                        categories=request.categories, limit=request.limit, **options)
    if not loaded.items:
        raise DatasetError(f"{request.data}: no {request.bench} items to evaluate"
                           + (f" ({len(loaded.missing)} images missing)" if loaded.missing else ""))
    if request.from_predictions is not None:
        records = _records_from_file(request.from_predictions, loaded.items)
        model = next((r.model for r in records if r.model), None)
    else:
        records, model = _predict(request, loaded.items, load_engine, progress_factory)
    preds = [_prediction(item, record, request.verdict_from) for item, record in zip(loaded.items, records)]
    metrics = evaluate(preds, n_missing=len(loaded.missing), text=request.explain, css_model=request.css_model)
    paper_bench = request.compare_to or (request.bench if request.bench != "folder" else None)
    paper = compare(paper_bench, metrics) if paper_bench else []
    return EvalRun(request=request, loaded=loaded, metrics=metrics, paper=paper, paper_bench=paper_bench,
                   model=model, elapsed=time.perf_counter() - started)


def _predict(request: EvalRequest, items: list[BenchItem], load_engine, progress_factory):
    from fakevlm_cli.discover import Candidate
    from fakevlm_cli.pipeline import ScanConfig, Scanner

    engine = load_engine()
    sink = _open_predictions(request.predictions) if request.predictions is not None else None
    config = ScanConfig(explain=request.explain, batch_size=request.batch_size, threshold=request.threshold,
                        max_new_tokens=request.max_new_tokens, read_metadata=False, pixels=request.pixels,
                        **({"workers": request.workers} if request.workers else {}))
    bar = progress_factory(len(items)) if progress_factory else None
    scanner = Scanner(engine, config, on_progress=(lambda s: bar.update_to(s.records)) if bar else None)
    records = []
    try:
        # Predictions are written as they come, so a crash or Ctrl-C keeps what was already judged.
        for item, record in zip(items, scanner.run([Candidate(path=item.image, explicit=True) for item in items])):
            record.label, record.category, record.item_id = item.label, item.category, item.id
            records.append(record)
            if sink is not None:
                sink.write(record)
    finally:
        if bar:
            bar.close()
        if sink is not None:
            sink.close()
    return records, {**engine.info.to_dict(), "pixels": request.pixels}


def _prediction(item: BenchItem, record: Record, verdict_from: str = "score") -> Prediction:
    """What metrics score: the P(fake) verdict by default, or the text's own verdict (unknown when unreadable)."""
    if record.verdict == "error":
        verdict = "error"
    elif verdict_from == "text":
        verdict = record.text_verdict or "unknown"
    else:
        verdict = record.verdict if record.verdict in ("real", "fake", "unknown") else "unknown"
    return Prediction(label=item.label, verdict=verdict, p_fake=record.p_fake, category=item.category,
                      explanation=record.explanation, references=item.references or
                      ((item.reference,) if item.reference else ()))


def _records_from_file(path: Path, items: list[BenchItem]) -> list[Record]:
    """Records of an earlier run, matched to the items by id; every item must have one."""
    by_id: dict[str, Record] = {}
    try:
        lines = path.read_bytes().splitlines()
    except OSError as exc:
        raise FakevlmError(f"{path}: cannot read predictions: {exc.strerror or exc}") from None
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            data = orjson.loads(line)
        except orjson.JSONDecodeError:
            raise DatasetError(f"{path}: line {number} is not JSON") from None
        if not isinstance(data, dict) or "item_id" not in data:
            raise DatasetError(f"{path}: line {number} is not an eval prediction (no item_id)")
        problem = _prediction_problem(data)
        if problem:
            raise DatasetError(f"{path}: line {number}: {problem}")
        by_id[data["item_id"]] = Record.from_dict(data)
    absent = [item.id for item in items if item.id not in by_id]
    if absent:
        raise DatasetError(f"{path}: no prediction for {len(absent)} of {len(items)} items "
                           f"(first: {absent[0]}); was it made with the same benchmark and options?")
    return [by_id[item.id] for item in items]


def _prediction_problem(data: dict) -> str | None:
    """What is wrong with the fields of one prediction that scoring reads, or None when they are sound."""
    def shown(value) -> str:
        return type(value).__name__ if isinstance(value, (dict, list)) else repr(value)[:40]

    item_id, p_fake = data["item_id"], data.get("p_fake")
    if not isinstance(item_id, str):
        return f"item_id must be a string, found {shown(item_id)}"
    where = f"item {item_id[:80]!r}: "
    if data.get("verdict") not in VERDICTS:
        return where + f"verdict must be one of {', '.join(VERDICTS)}, found {shown(data.get('verdict'))}"
    if p_fake is not None and (isinstance(p_fake, bool) or not isinstance(p_fake, (int, float))
                               or not 0.0 <= p_fake <= 1.0):
        return where + f"p_fake must be a number in [0, 1] or null, found {shown(p_fake)}"
    if data.get("text_verdict") not in (None, "real", "fake", "unknown"):
        return where + f"text_verdict must be real, fake, unknown or null, found {shown(data.get('text_verdict'))}"
    for key, kind in (("explanation", str), ("model", dict)):
        if data.get(key) is not None and not isinstance(data[key], kind):
            return where + f"{key} must be a {'string' if kind is str else 'JSON object'} or null, " \
                           f"found {shown(data[key])}"
    return None


def _open_predictions(path: Path):
    from fakevlm_cli.output import JsonlWriter

    try:
        return JsonlWriter(open(path, "wb"), owns_stream=True)
    except OSError as exc:
        raise OutputError(f"{path}: cannot write predictions: {exc.strerror or exc}") from None


def results_document(run: EvalRun) -> dict:
    """The -o results.json: every number, the configuration, versions and time taken."""
    req = run.request
    return {
        "tool": {"name": "fakevlm", "version": __version__},
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "bench": req.bench,
        "data": str(req.data),
        "config": {
            "annotations": str(req.annotations) if req.annotations else None,
            "frames": str(req.frames) if req.frames else None, "limit": req.limit,
            "categories": req.categories, "explain": req.explain, "threshold": req.threshold,
            "verdict_from": req.verdict_from,
            "batch_size": req.batch_size, "max_new_tokens": req.max_new_tokens, "pixels": req.pixels,
            "from_predictions": str(req.from_predictions) if req.from_predictions else None,
        },
        "model": run.model,
        "versions": _versions(),
        "items": len(run.loaded.items),
        "missing": run.loaded.missing,
        "notes": run.loaded.notes,
        "metrics": run.metrics,
        "paper": {"bench": run.paper_bench, "rows": run.paper},
        "elapsed_s": round(run.elapsed, 3),
    }


def write_results(path: Path, run: EvalRun) -> None:
    try:
        path.write_bytes(orjson.dumps(results_document(run), option=orjson.OPT_INDENT_2) + b"\n")
    except OSError as exc:
        raise OutputError(f"{path}: cannot write results: {exc.strerror or exc}") from None


def _versions() -> dict:
    out = {"python": platform.python_version()}
    for name in ("torch", "transformers"):
        module = sys.modules.get(name)
        out[name] = getattr(module, "__version__", None) if module else None
    return out
