"""`fakevlm scan`: inputs from discovery, the run layer's records into sinks, a summary, an exit code.

The order protects what is on disk: the -o file is checked (ours? an input?) before anything is opened for
writing, locked before the model loads (a second run fails at once), and cut back only when the first record
is ready to take its place (a failed load — here or on a Ray replica — or Ctrl-C before then costs nothing;
an earlier --report stays too). Records are written and flushed one by one as they become final; Ctrl-C or
SIGTERM stop the run with every finished record on disk.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO, TYPE_CHECKING

from fakevlm_cli import run
from fakevlm_cli.commands import interrupted_code, silence_libraries
from fakevlm_cli.core.errors import EXIT_CLEAN, EXIT_ERROR, EXIT_FAKE, FakevlmError
from fakevlm_cli.core.files import file_key, is_uri
from fakevlm_cli.core.options import ScanRequest
from fakevlm_cli.media.discover import Candidate, DiscoveryStats, discover, read_path_list
from fakevlm_cli.outputs.guard import REPORT, OutputTarget
from fakevlm_cli.outputs.heatmaps import HeatmapFolder
from fakevlm_cli.outputs.results_file import ResultsFile, format_for_path
from fakevlm_cli.outputs.sinks import Diagnostics, Environment, Outputs, loading, scan_outputs
from fakevlm_cli.run import EngineSpec, Executor, Plan, executor_for
from fakevlm_cli.run.pipeline import ScanStats

if TYPE_CHECKING:  # pragma: no cover
    from fakevlm_cli.outputs.report import ReportSink


def scan(request: ScanRequest, diag: Diagnostics, env: Environment | None = None, *,
         report_title: str = "fakevlm scan") -> int:
    """Run one scan; the exit code is 0 (nothing fake), 1 (something fake), 2 (an error, or nothing could be
    judged), 130/143/129 (stopped)."""
    env = env or Environment.detect()
    # this process or Ray, chosen once (a bad --ray address or --replicas without --ray: a usage error now)
    executor = executor_for(request.cluster, notify=None if request.outputs.quiet else diag.note)
    request = _with_localise(request)
    inputs, outputs, judge = request.inputs, request.outputs, request.judge
    if not inputs.paths and inputs.from_file is None:
        raise FakevlmError("give at least one PATH, '-' or --from-file FILE")
    if outputs.quiet:
        silence_libraries()
    prepared = run.prepare(judge, uses_model=not outputs.no_model)  # --calibration, --trust-anchors: checked first
    target = _results_file(request)
    report = _report_sink(request, target, report_title)
    discovery = DiscoveryStats()
    avoid = {target.key} if target is not None and target.key else set()  # the outputs are never scanned
    report_key = file_key(outputs.report)  # checked by then: a regular file, if it exists
    if report_key is not None:
        avoid.add(report_key)
    candidates = _candidates(request, diag, discovery, avoid, target)
    with executor:
        run_ = _start(request, env, target, report, avoid, candidates, prepared, executor)
        stats = ScanStats()  # from here: the summary's time and rate are the scan's, not the model load's
        if target is not None and target.resume:
            stats.recorded_fake = target.index.fake
        stopped = _judge_all(run_, executor, target, stats, diag)
    _summary(stats, discovery, run_.outs, diag, stopped is not None, target)
    if run_.outs.abandoned and target is not None and target.existed:
        diag.note(f"{target.path}: left as it was (the run stopped before its first record)")
    if stopped is not None:
        return interrupted_code(stopped)
    if _nothing_judged(stats, discovery):
        # 0 would say "all clean" of a scan that judged nothing: every input missing, unreadable or broken
        diag.error(f"nothing could be judged: {_failures(stats, discovery)}")
        return EXIT_ERROR
    # a resumed scan is one scan: what the earlier run recorded fake counts as this run's own verdicts do
    return EXIT_FAKE if stats.verdicts.get("fake") or stats.resumed_fake else EXIT_CLEAN


def _check_resume_settings(request: ScanRequest, target: ResultsFile) -> None:
    """--resume goes on with the options the records were made with: records with maps and without, from two
    models or two thresholds, in one file are refused (before the model loads), unless --force mixes them."""
    if request.outputs.force:
        return
    ours = _settings(request)
    seen_in_file = {name: {_model_key(v) for v in seen} if name == "--model" else seen
                    for name, seen in target.index.settings.items()}
    differ = [f"{name} ({_said(seen)} there, {_said({ours[name]})} now)"
              for name, seen in sorted(seen_in_file.items()) if seen != {ours[name]}]
    if differ:
        raise FakevlmError(f"{target.path}: --resume with other options than its records: {'; '.join(differ)}. "
                           "Give the same options, or --force to mix records made both ways")


def _settings(request: ScanRequest) -> dict[str, object]:
    """This run's side of `results_file.settings_of` (the model as a record names it: a folder resolved)."""
    if request.outputs.no_model:
        return {"--model": None, "--threshold": None, "--localise": None, "--explain": None}
    judge = request.judge
    threshold = "calibrated" if judge.calibration else judge.threshold
    return {"--model": _model_key(request.engine.model), "--threshold": threshold, "--localise": judge.localise,
            "--explain": judge.explain}


def _model_key(model: object) -> object:
    """A model as --resume compares it: a local folder by its resolved path (records keep it as it was given)."""
    if isinstance(model, str) and Path(model).expanduser().is_dir():
        return str(Path(model).expanduser().resolve())
    return model


def _said(values: set) -> str:
    """How a difference reads: on/off for a flag, "no model" for None, the value itself otherwise (a threshold of
    1.0 is "1.0", not the "on" that a lookup keyed by True would give it: 1.0 == True)."""
    def word(value: object) -> str:
        if value is None:
            return "no model"
        if isinstance(value, bool):
            return "on" if value else "off"
        return str(value)

    return " and ".join(sorted(word(v) for v in values))


def _nothing_judged(stats: ScanStats, discovery: DiscoveryStats) -> bool:
    """No file got a verdict (real, fake or unknown) here or in the run resumed, and something failed: an
    error record, or a folder that could not be read. An empty folder is not a failure (0, with its summary)."""
    judged = stats.records - stats.verdicts.get("error", 0) + stats.resumed
    return judged == 0 and bool(stats.verdicts.get("error", 0) or discovery.unreadable_dirs)


def _failures(stats: ScanStats, discovery: DiscoveryStats) -> str:
    parts = []
    if errors := stats.verdicts.get("error", 0):
        parts.append(f"{errors} file{'s, each' if errors != 1 else ','} an error")
    if folders := len(discovery.unreadable_dirs):
        parts.append(f"{folders} folder{'s' * (folders != 1)} could not be read")
    return "; ".join(parts) + " (see above)"


def _nothing_there(request: ScanRequest) -> bool:
    """Every path named on the command line is missing (and no list comes from stdin or --from-file): each is
    an error record, and no model is loaded to write them — a mistyped folder costs no 14 GB load."""
    inputs = request.inputs
    paths = [p for p in inputs.paths if p != "-"]
    return (inputs.from_file is None and len(paths) == len(inputs.paths) > 0
            and not any(is_uri(p) or os.path.lexists(p) for p in paths))


@dataclass
class _Started:
    candidates: Iterable[Candidate]
    total: int | None  # known only when a progress bar needs it
    plan: Plan
    outs: Outputs


def _start(request: ScanRequest, env: Environment, target: ResultsFile | None, report: ReportSink | None,
           avoid: set, candidates: Iterable[Candidate], prepared: run.Prepared, executor: Executor) -> _Started:
    """Lock the -o file, start the executor (it loads the model, or joins Ray whose replicas load it), open the
    sinks; on any failure, leave the -o file as it was and write no report."""
    outputs = request.outputs
    total = None
    try:
        if target is not None:
            target.open()
            if target.resume:
                _check_resume_settings(request, target)
            if target.key is not None:
                avoid.add(target.key)
        if not outputs.quiet and env.stderr_tty:  # an ETA needs the total; else discovery streams as scanning goes
            candidates = list(candidates)
            total = len(candidates)
        plan = _plan(request, prepared, target)
        with loading(env, plan.engine, quiet=outputs.quiet, what=request.engine.model):
            executor.start(plan)
        outs = scan_outputs(env, outputs.fmt, target, explain=request.judge.explain, quiet=outputs.quiet)
        if report is not None:
            outs.sinks.append(report)
    except BaseException:
        _abandon(target, report)
        raise
    return _Started(candidates, total, plan, outs)


def _plan(request: ScanRequest, prepared: run.Prepared, target: ResultsFile | None) -> Plan:
    """What the scan judges and how (read after the -o file is open: --resume's index is read then)."""
    heatmaps = request.outputs.heatmaps
    metadata_only = request.outputs.no_model or _nothing_there(request)
    return Plan(judge=request.judge, engine=None if metadata_only else EngineSpec(request.engine),
                prepared=prepared, resume=target.index.recorded if target is not None else None,
                heatmaps=None if heatmaps is None else HeatmapFolder(heatmaps), thumbnails=_thumbnails(request))


def _candidates(request: ScanRequest, diag: Diagnostics, discovery: DiscoveryStats, avoid: set,
                target: ResultsFile | None) -> Iterable[Candidate]:
    """What discovery yields for the request (lazily, unless the output must be checked against all of it)."""
    inputs = request.inputs
    candidates: Iterable[Candidate]
    try:
        candidates = discover(_arguments(request, diag), max_depth=inputs.max_depth, include=inputs.include,
                              exclude=inputs.exclude, hidden=inputs.hidden, follow_symlinks=inputs.follow_symlinks,
                              stats=discovery, avoid=avoid)
    except ValueError as exc:  # a malformed glob: a usage error, before any work
        raise FakevlmError(str(exc)) from None
    foreign_output = target is not None and target.existed and not target.ours and not target.resume
    report = request.outputs.report
    foreign_report = report is not None and file_key(report) is not None and not _is_report(report)
    if foreign_output or foreign_report:
        # --force over a file that may not be ours: it may be evidence, so every input is known before it is
        # touched, and an output met among them is refused
        candidates = list(candidates)
        met = discovery.outputs
        if foreign_report and report is not None:
            OutputTarget(report, REPORT).check_not_input(met)
        if foreign_output and target is not None:
            target.check_not_input(met)
    return candidates


def _is_report(path: Path) -> bool:
    from fakevlm_cli.outputs.report import is_ours

    try:
        return is_ours(path)
    except OSError:
        return False


def _judge_all(run_: _Started, executor: Executor, target: ResultsFile | None, stats: ScanStats,
               diag: Diagnostics) -> KeyboardInterrupt | None:
    """Every record into the sinks as it comes; returns the interrupt that stopped the run, if one did."""
    outs = run_.outs
    from_render = None
    if run_.total is not None and outs.live is not None:
        from fakevlm_cli.outputs import render

        from_render = render.Progress(outs.live, run_.total)
    stopped = None
    try:
        with from_render or contextlib.nullcontext():
            progress = from_render.update if from_render else None
            records = executor.run(run_.plan, run_.candidates, stats=stats, on_progress=progress)
            contents = target.index.contents if target is not None and target.resume else None
            for record in records:
                outs.write(record)
                if contents and record.sha256 in contents:
                    stats.judged_again += 1
                if record.verdict == "error" and not outs.table_on_screen:
                    diag.file_error(record.path, record.error)
    except KeyboardInterrupt as exc:  # Ctrl-C or SIGTERM: what was judged is written; stop here
        stopped = exc
    except BaseException:
        outs.end(failed=True, warn=diag.warn)
        raise
    outs.end(failed=stopped is not None)
    return stopped


def _abandon(target: ResultsFile | None, report: ReportSink | None) -> None:
    """Before any record: leave the -o file as it was, and write no report."""
    if target is not None:
        target.abandon()
    if report is not None:
        report.writer.abandon()


def _with_localise(request: ScanRequest) -> ScanRequest:
    """--heatmaps implies --localise; both need the model. The --heatmaps folder is checked here, before any
    work: one that cannot be made or written is one error now, not a note on every record."""
    outputs, judge = request.outputs, request.judge
    if outputs.heatmaps is not None and not judge.localise:
        request = replace(request, judge=replace(judge, localise=True))
    if outputs.no_model and request.judge.localise:
        raise FakevlmError("--localise and --heatmaps need the model: drop --no-model")
    if outputs.no_model and request.judge.explain:
        raise FakevlmError("--explain needs the model (the explanation is its answer): drop --no-model")
    if outputs.heatmaps is not None:
        HeatmapFolder(outputs.heatmaps).check()
    return request


def _thumbnails(request: ScanRequest) -> int:
    if request.outputs.report is None:
        return 0
    from fakevlm_cli.outputs.report import THUMBNAIL_SIZE

    return THUMBNAIL_SIZE


def _report_sink(request: ScanRequest, target: ResultsFile | None, title: str) -> ReportSink | None:
    """The --report sink, its file checked before any work (never an input, never the -o file, never a file
    that is not a fakevlm report unless --force). The report module is imported only when asked for."""
    path = request.outputs.report
    if path is None:
        return None
    from fakevlm_cli.outputs.report import ReportSink, check_target
    if target is not None and path.resolve() == Path(target.path).resolve():
        raise FakevlmError(f"{path}: --report and -o name the same file")
    check_target(path, force=request.outputs.force,
                 inputs=[Path(p) for p in request.inputs.paths if p != "-" and Path(p).is_file()])
    inputs = request.inputs
    names = [p if p != "-" else "stdin" for p in inputs.paths]
    if inputs.from_file is not None:
        names.append(f"the list in {getattr(inputs.from_file, 'name', '--from-file')}")
    source = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
    return ReportSink(path, source=source, title=title)


def _results_file(request: ScanRequest) -> ResultsFile | None:
    """The -o file, checked (ours? writable? an input?) without touching it; None for stdout."""
    outputs = request.outputs
    path = outputs.output
    if path is not None and str(path) == "-":  # -o - is stdout, as in most tools
        if outputs.resume:
            raise FakevlmError("--resume needs -o FILE.jsonl (the file an earlier run wrote), not stdout")
        return None
    if path is None:
        if outputs.resume:
            raise FakevlmError("--resume needs -o FILE.jsonl (the file an earlier run wrote)")
        return None
    fmt = _file_format(path, outputs.fmt)
    target = ResultsFile(path, fmt, resume=outputs.resume, force=outputs.force)
    target.check(inputs=[p for p in request.inputs.paths if p != "-"])
    return target


def _file_format(path: Path, fmt: str | None) -> str:
    """The -o file's format: its suffix says it (.csv, .jsonl); --format may say it for another name. A suffix
    and a --format that disagree are refused, and so is .json, which names one JSON document where fakevlm
    writes JSON Lines (a reader expecting one document would fail on the second line)."""
    suffix = path.suffix.lower()
    said = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}.get(suffix)
    asked = fmt if fmt in ("jsonl", "csv") else None
    if said and asked and said != asked:
        raise FakevlmError(f"{path}: the name says {said.upper()} but --format says {asked}: make them agree")
    if suffix == ".json" and asked is None:
        raise FakevlmError(f"{path}: fakevlm writes JSON Lines (one record a line), not one JSON document: name "
                           "it .jsonl, or add --format jsonl to write JSON Lines under this name")
    return asked or said or format_for_path(path)


def _arguments(request: ScanRequest, diag: Diagnostics) -> Iterator[str]:
    """Path arguments plus the lines of --from-file / stdin ('-'), in the order given, read lazily."""
    inputs = request.inputs
    for path in inputs.paths:
        if path == "-":
            yield from read_path_list(_unbuffered(sys.stdin.buffer), nul=inputs.nul, warn=_warner(diag, "stdin"))
        else:
            yield path
    if inputs.from_file is not None:
        name = getattr(inputs.from_file, "name", "--from-file")
        yield from read_path_list(_unbuffered(inputs.from_file), nul=inputs.nul, warn=_warner(diag, str(name)))


def _unbuffered(stream: IO[bytes]) -> IO[bytes]:
    """The same file read straight from its descriptor: the scan's feeder thread may be blocked reading it
    when the run ends, and must not be holding the lock of a buffered stream that the interpreter flushes on
    its way out (a daemon thread holding it aborts the process)."""
    try:
        return open(stream.fileno(), "rb", buffering=0, closefd=False)
    except (OSError, ValueError, AttributeError):  # no descriptor (a test's BytesIO): read it as it is
        return stream


def _warner(diag: Diagnostics, source: str):
    return lambda message: diag.warn(f"{source}: {message}")


def _summary(stats: ScanStats, discovery: DiscoveryStats, outs: Outputs, diag: Diagnostics, interrupted: bool,
             target: ResultsFile | None) -> None:
    if outs.console is not None:
        from fakevlm_cli.outputs import render

        if outs.table_on_screen:
            outs.console.print()
        outs.console.print(render.summary_table(stats, discovery=discovery, interrupted=interrupted))
    for problem in discovery.unreadable_dirs:
        diag.warn(problem)
    for path in stats.changed:
        diag.warn(f"{path}: content changed since it was recorded in {target.path if target else '-o'}; judged "
                  "again (the new record supersedes the old one)")
    if stats.judged_again and not stats.resumed and target is not None:  # not one path matched (copies of a
        # file under other names would match some): the paths were most likely recorded from another folder
        diag.warn(f"{stats.judged_again} files judged again have the same content as records of other paths in "
                  f"{target.path}, and none was skipped: recorded from another folder? (relative paths are "
                  "taken from the current one)")
