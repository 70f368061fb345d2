"""`fakevlm eval`: the run layer over a benchmark's images, scored with the paper's metrics, beside its figures.

Predictions are ordinary scan records (with the item's label, category and id added), written as they come,
so a crash or Ctrl-C keeps what was judged, and a predictions file can be re-scored later with
`--from-predictions` without loading a model. Evaluation judges the model alone: metadata evidence is not
read (it would change what is measured), and by default the pixels are upstream's (`--pixels upstream`).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import platform
import random
import sys
import time
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path

import orjson

from fakevlm_cli import __version__, run
from fakevlm_cli.commands import silence_libraries
from fakevlm_cli.core.errors import EXIT_CLEAN, DatasetError, FakevlmError, OutputError
from fakevlm_cli.core.files import same_file
from fakevlm_cli.core.options import EvalRequest
from fakevlm_cli.core.record import VERDICTS, Record
from fakevlm_cli.datasets.loaders import BenchItem, LoadResult, load_bench
from fakevlm_cli.datasets.metrics import Prediction, evaluate, localisation, upstream_accounting
from fakevlm_cli.datasets.paper import compare
from fakevlm_cli.media.discover import Candidate
from fakevlm_cli.model.verdict import upstream_verdict
from fakevlm_cli.outputs.guard import CALIBRATION, EVAL_RESULTS, PREDICTIONS, OutputTarget
from fakevlm_cli.outputs.output import JsonlSink
from fakevlm_cli.outputs.sinks import Deferred, Diagnostics, Environment, Outputs, loading
from fakevlm_cli.run import EngineSpec, Executor, Plan, calibration, check_cluster, executor_for
from fakevlm_cli.run.calibration import Calibration
from fakevlm_cli.run.judge import apply_decision
from fakevlm_cli.run.pipeline import ScanStats


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
    applied: dict | None = None  # the calibration and band the verdicts were judged with (record.calibration)
    fitted: Calibration | None = None  # --fit-calibration: what was fitted and saved


def eval_command(request: EvalRequest, diag: Diagnostics, env: Environment | None = None) -> int:
    """Evaluate, print the report, write the results file; exit 0 (errors exit 2 through FakevlmError)."""
    from fakevlm_cli.outputs import render
    from fakevlm_cli.outputs.eval_report import eval_tables

    env = env or Environment.detect()
    if request.args.quiet:
        silence_libraries()
    result = run_eval(request, diag, env)
    con = render.console()
    for part in eval_tables(result):
        con.print(part)
    if request.args.output is not None:
        write_results(_target(request.args, "-o"), result)
    if result.fitted is not None and request.args.fit_calibration is not None:
        _target(request.args, "--fit-calibration").replace(calibration.document_bytes(result.fitted))
    return EXIT_CLEAN


def run_eval(request: EvalRequest, diag: Diagnostics, env: Environment) -> EvalRun:
    started = time.perf_counter()
    args, judge = request.args, request.judge
    _check(request)
    # A band given with --fit-calibration is stored in the file (checked against the fitted threshold), not applied.
    prepared = run.prepare(replace(judge, inconclusive=None) if args.fit_calibration is not None else judge)
    loaded = load_bench(args.bench, args.data, annotations=args.annotations, frames=args.frames,
                        categories=args.categories, limit=args.limit, localise=judge.localise)
    if not loaded.items:
        raise DatasetError(f"{args.data}: no {args.bench} items to evaluate"
                           + (f" ({len(loaded.missing)} images missing)" if loaded.missing else ""))
    _refuse_outputs_over_items(args, loaded.items)
    if args.from_predictions is not None:
        records = _records_from_file(args.from_predictions, loaded.items)
        model = next((r.model for r in records if r.model), None)
        _warn_other_prompts(loaded.items, (model or {}).get("prompt") or request.engine.prompt, diag)
        _rejudge(records, prepared, model, diag)
        if args.predictions is not None:  # the records as judged now (under --threshold, --calibration …)
            _write_predictions(_target(args, "--predictions"), records)
    else:
        _warn_other_prompts(loaded.items, request.engine.prompt, diag)
        records, model = _predict(request, loaded.items, diag, env, prepared)
    pairs = list(zip(loaded.items, records, strict=True))
    labels = RandomLabels(args.seed) if args.verdict_from == "upstream" else None
    preds = [_prediction(item, record, args.verdict_from, labels) for item, record in pairs if item.scored]
    metrics = evaluate(preds, n_missing=len(loaded.missing), text=judge.explain, css_model=args.css_model,
                       strip_verdict=args.text_compare == "explanation", rouge_impl=args.rouge)
    metrics["upstream_accounting"] = upstream_accounting(
        metrics["overall"], random_labels=labels.drawn if labels else None, seed=args.seed if labels else None)
    if judge.localise:
        metrics["localisation"] = _localisation(pairs, loaded, args.bench)
    paper_bench = args.compare_to or (args.bench if args.bench != "folder" else None)
    paper = compare(paper_bench, metrics, subset=_subset_reason(args, loaded)) if paper_bench else []
    fitted = _fit(request, loaded, records, model) if args.fit_calibration is not None else None
    return EvalRun(request=request, loaded=loaded, metrics=metrics, paper=paper, paper_bench=paper_bench,
                   model=model, elapsed=time.perf_counter() - started, applied=prepared.decision.summary(),
                   fitted=fitted)


def _subset_reason(args, loaded: LoadResult) -> str | None:
    """Why this run covers only part of the benchmark's test set (its numbers are then not the paper's), or None."""
    reasons = []
    if args.limit is not None:
        reasons.append(f"--limit {args.limit}")
    if args.categories:
        reasons.append(f"--categories {args.categories}")
    if loaded.missing:
        reasons.append(f"{len(loaded.missing)} image{'' if len(loaded.missing) == 1 else 's'} missing")
    return ", ".join(reasons) or None


def _warn_other_prompts(items: list[BenchItem], prompt: str, diag: Diagnostics) -> None:
    """Every item is asked one prompt (--prompt, or the one the predictions were made with); say once how many
    dataset records carry a prompt of their own that differs (FakeClue's human turn)."""
    differ = [item.prompt for item in items if item.prompt is not None and item.prompt.strip() != prompt.strip()]
    if differ:
        diag.warn(f"{len(differ)} of {len(items)} records carry a prompt of their own other than the one every "
                  f"item is asked ({prompt[:80]!r}; see --prompt); first: {differ[0][:80]!r}")


def _check(request: EvalRequest) -> None:
    """Usage errors and unwritable outputs, before any work."""
    args, judge = request.args, request.judge
    check_cluster(request.cluster)  # a --ray that names no cluster, --replicas without --ray
    if args.verdict_from in ("text", "upstream") and not judge.explain:
        raise FakevlmError(f"--verdict-from {args.verdict_from} needs --explain (the verdict is read from the "
                           "generated text)")
    if args.fit_calibration is not None and judge.calibration is not None:
        raise FakevlmError("--fit-calibration fits on the raw P(fake): give it without --calibration")
    outputs = _outputs(args)
    for i, (flag, path) in enumerate(outputs):
        for other_flag, other in outputs[:i]:
            if _one_file(path, other):
                raise OutputError(f"{path}: {other_flag} and {flag} name the same file: one would overwrite the other")
    for flag, _ in outputs:
        _target(args, flag).check()


_KINDS = {"-o": EVAL_RESULTS, "--predictions": PREDICTIONS, "--fit-calibration": CALIBRATION}


def _target(args, flag: str) -> OutputTarget:
    """The output a flag names, as outputs/guard.py checks and writes it: never over --from-predictions."""
    path = dict(_outputs(args))[flag]
    inputs = [args.from_predictions] if args.from_predictions is not None else []
    return OutputTarget(path, _KINDS[flag], inputs=inputs, force=args.force, role="the --from-predictions file")


def _outputs(args) -> list[tuple[str, Path]]:
    """The files this run writes, by the flag that names them."""
    named = (("-o", args.output), ("--predictions", args.predictions), ("--fit-calibration", args.fit_calibration))
    return [(flag, path) for flag, path in named if path is not None]


def _refuse_outputs_over_items(args, items: list[BenchItem]) -> None:
    """Before the model runs: no output may replace one of the benchmark's pictures, --force or not."""
    images = [item.image for item in items]
    for flag, _ in _outputs(args):
        _target(args, flag).check_not_input(images, "one of the benchmark's images")


def _rejudge(records: list[Record], prepared: run.Prepared, model: dict | None, diag: Diagnostics) -> None:
    """--from-predictions: judge the recorded P(fake) again under this run's threshold, --calibration and
    --inconclusive wherever a record was judged otherwise (a record written at --threshold 0.3, or under a
    calibration, is judged at the 0.5 that results.json then states), so the metrics are those of the options
    the run names; a record judged as this run would judge it keeps its verdict."""
    decision = prepared.decision
    if decision.calibration is not None:
        if model is None:
            raise FakevlmError("--calibration: the predictions do not say which model made them")
        for notice in decision.calibration.check(model):
            diag.note(notice)
    for record in records:
        judged_otherwise = (decision.active or record.threshold != decision.threshold
                            or record.calibration is not None)
        if judged_otherwise and record.verdict != "error" and record.p_fake is not None:
            apply_decision(record, decision)
            record.verdict, record.calibration = record.model_verdict or "unknown", decision.summary()


def _fit(request: EvalRequest, loaded: LoadResult, records: list[Record], model: dict | None) -> Calibration:
    """--fit-calibration: the threshold for --target-fpr and the calibrated P(fake), from this labelled set."""
    args = request.args
    if model is None:
        raise FakevlmError("--fit-calibration: no prediction says which model made it")
    data = {"bench": args.bench, "data": str(args.data), "categories_kept": args.categories, "limit": args.limit,
            "from_predictions": str(args.from_predictions) if args.from_predictions else None,
            "items_sha256": hashlib.sha256("\n".join(item.id for item in loaded.items).encode()).hexdigest()}
    triples = [(item.label, record.p_fake if record.verdict != "error" else None, item.category)
               for item, record in zip(loaded.items, records, strict=True) if item.scored]
    return calibration.fit(triples, model=model, target_fpr=args.target_fpr, inconclusive=request.judge.inconclusive,
                           data=data)


def _predict(request: EvalRequest, items: list[BenchItem], diag: Diagnostics, env: Environment,
             prepared: run.Prepared):
    with executor_for(request.cluster, notify=None if request.args.quiet else diag.note) as executor:
        plan = Plan(judge=request.judge, engine=EngineSpec(request.engine), prepared=prepared, read_metadata=False)
        # the model loads here (on Ray, each replica loads it, checks a calibration against it, sends its notices)
        with loading(env, plan.engine, quiet=request.args.quiet, what=request.engine.model):
            executor.start(plan)
        records = _judge(request, items, env, plan, executor, diag)
    # on Ray, the model is known from what the replicas wrote into the records
    return records, executor.model or next((r.model for r in records if r.model), None)


def _judge(request: EvalRequest, items: list[BenchItem], env: Environment, plan: Plan, executor: Executor,
           diag: Diagnostics) -> list[Record]:
    """Each item's record, written to --predictions as it comes."""
    # opened at the first prediction: a model that fails to load (here or on a replica) leaves the file as it was
    predictions = _target(request.args, "--predictions") if request.args.predictions is not None else None
    outs = Outputs(sinks=[] if predictions is None else [Deferred(lambda: _open_predictions(predictions))])
    bar = None
    if not request.args.quiet and env.stderr_tty:
        from fakevlm_cli.outputs import render

        bar = render.Progress(render.console(stderr=True), len(items), label="evaluating")
    stats, records = ScanStats(), []
    failed = True
    try:
        with bar or contextlib.nullcontext():
            sources = [Candidate(path=item.image, explicit=True, frame_index=item.frame_index) for item in items]
            judged = executor.run(plan, sources, stats=stats, on_progress=bar.update if bar else None)
            for item, record in zip(items, judged, strict=True):
                record.label, record.category, record.item_id = item.label, item.category, item.id
                records.append(record)
                outs.write(record)
        failed = False
    finally:
        # a failure of the run stays the one reported: a predictions file that fails to close is a warning
        outs.end(failed=failed, warn=diag.warn if failed else None)
    return records


def _localisation(pairs: list[tuple[BenchItem, Record]], loaded: LoadResult, bench: str) -> dict:
    """--localise: the maps against the benchmark's human boxes (LOKI's regional problems), beside the centre
    prior; a benchmark without boxes gets its maps in the predictions and a note here."""
    boxed = [(record.localisation, item.boxes) for item, record in pairs if item.boxes]
    if not boxed:
        note = f"{bench} has no boxes: the maps are in the predictions, nothing to score them against"
        loaded.notes.append(note)
        return {"n": 0, "note": note}
    scores = localisation(boxed)
    scores["n_scored_items"] = sum(1 for item, _ in pairs if item.scored)
    return scores


class RandomLabels:
    """--verdict-from upstream: the random labels upstream's eval.py gives answers with neither word, drawn from
    a generator seeded with --seed (so a run can be repeated), counted."""

    def __init__(self, seed: int):
        self._rng, self.drawn = random.Random(seed), 0

    def __call__(self, choices: tuple[str, ...]) -> str:
        self.drawn += 1
        return self._rng.choice(choices)


def _prediction(item: BenchItem, record: Record, verdict_from: str = "score",
                labels: RandomLabels | None = None) -> Prediction:
    """What metrics score: the P(fake) verdict by default, or the text's own verdict (unknown when unreadable),
    or upstream's parse of the text (a random label when it finds no verdict; unknown when there is no text)."""
    if record.verdict == "error":
        verdict = "error"
    elif verdict_from == "text":
        verdict = record.text_verdict or "unknown"
    elif verdict_from == "upstream" and labels is not None:
        # upstream parses everything the model wrote: lead-in ("ASSISTANT:") and answer
        text = " ".join(part for part in (record.lead_in, record.answer) if part)
        verdict = upstream_verdict(text, labels) if record.answer is not None else "unknown"
    else:
        verdict = record.verdict if record.verdict in ("real", "fake", "unknown") else "unknown"
    return Prediction(label=item.label, verdict=verdict, p_fake=record.p_fake, category=item.category,
                      explanation=record.explanation, references=item.references or
                      ((item.reference,) if item.reference else ()), calibrated=record.calibrated_p_fake)


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
    if not isinstance(data.get("path"), str):
        return where + f"path must be a string, found {shown(data.get('path'))}"
    if data.get("verdict") not in VERDICTS:
        return where + f"verdict must be one of {', '.join(VERDICTS)}, found {shown(data.get('verdict'))}"
    if p_fake is not None and (isinstance(p_fake, bool) or not isinstance(p_fake, (int, float))
                               or not 0.0 <= p_fake <= 1.0):
        return where + f"p_fake must be a number in [0, 1] or null, found {shown(p_fake)}"
    if data.get("text_verdict") not in (None, "real", "fake", "unknown"):
        return where + f"text_verdict must be real, fake, unknown or null, found {shown(data.get('text_verdict'))}"
    for key, kind in (("explanation", str), ("model", dict)):
        if data.get(key) is not None and not isinstance(data[key], kind):
            wanted = "string" if kind is str else "JSON object"
            return where + f"{key} must be a {wanted} or null, found {shown(data[key])}"
    return None


def _one_file(a: Path, b: Path) -> bool:
    """Whether two output paths name one file, existing or not (through links, or ./x and x)."""
    return same_file(a, b) or os.path.abspath(a) == os.path.abspath(b)


def _write_predictions(target: OutputTarget, records: list[Record]) -> None:
    sink = _open_predictions(target)
    try:
        for record in records:
            sink.write(record)
    finally:
        sink.close()


def _open_predictions(target: OutputTarget) -> JsonlSink:
    target.check()  # again: the model may have taken a while to load
    return JsonlSink(target.open_stream(), str(target.path), owns_stream=True)


def results_document(run: EvalRun) -> dict:
    """The -o results.json: every number, the configuration, versions and time taken."""
    args, judge = run.request.args, run.request.judge
    return {
        "tool": {"name": "fakevlm", "version": __version__},
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "bench": args.bench,
        "data": str(args.data),
        "config": {
            "annotations": str(args.annotations) if args.annotations else None,
            "frames": str(args.frames) if args.frames else None, "limit": args.limit,
            "categories": args.categories, "explain": judge.explain, "threshold": judge.threshold,
            "verdict_from": args.verdict_from, "seed": args.seed if args.verdict_from == "upstream" else None,
            "text_compare": args.text_compare if judge.explain else None,
            "rouge": args.rouge if judge.explain else None, "css_model": args.css_model,
            "batch_size": judge.batch_size, "max_new_tokens": judge.max_new_tokens, "pixels": judge.pixels,
            "from_predictions": str(args.from_predictions) if args.from_predictions else None,
            "calibration": str(judge.calibration) if judge.calibration else None,
            "inconclusive": list(judge.inconclusive) if judge.inconclusive else None,
            "fit_calibration": str(args.fit_calibration) if args.fit_calibration else None,
            "target_fpr": args.target_fpr if args.fit_calibration else None,
        },
        "model": run.model,
        "versions": _versions(),
        "items": len(run.loaded.items),
        "missing": run.loaded.missing,
        "notes": run.loaded.notes,
        "metrics": run.metrics,
        "paper": {"bench": run.paper_bench, "rows": run.paper,
                  "subset": next((row["subset"] for row in run.paper if row.get("subset")), None)},
        "calibration": {"applied": run.applied,
                        "fitted": calibration.to_document(run.fitted) if run.fitted is not None else None},
        "elapsed_s": round(run.elapsed, 3),
    }


def write_results(target: OutputTarget, run: EvalRun) -> None:
    target.replace(orjson.dumps(results_document(run), option=orjson.OPT_INDENT_2) + b"\n")


def _versions() -> dict:
    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in ("torch", "transformers"):
        module = sys.modules.get(name)
        out[name] = getattr(module, "__version__", None) if module else None
    return out
