"""`fakevlm explain IMAGE`: the run layer over one source, rendered as a panel (or one JSON object)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from fakevlm_cli import run
from fakevlm_cli.core import library_warnings
from fakevlm_cli.core.errors import EXIT_CLEAN, EXIT_FAKE, FakevlmError, ImageError, OutputError
from fakevlm_cli.core.options import ExplainRequest, JudgeOptions
from fakevlm_cli.core.record import Record
from fakevlm_cli.media.discover import Candidate
from fakevlm_cli.media.loader import check_media
from fakevlm_cli.outputs.guard import HEATMAP, OutputTarget
from fakevlm_cli.outputs.sinks import Diagnostics, Environment, explain_outputs, loading


def explain(request: ExplainRequest, diag: Diagnostics, env: Environment | None = None) -> int:
    """Exit 0 (real, unknown or inconclusive), 1 (fake); a file that cannot be judged is an error (2)."""
    env = env or Environment.detect()
    image, heatmap = request.args.image, request.args.heatmap
    judge = request.judge
    target = None
    if heatmap is not None:
        judge = replace(judge, localise=True)
        target = _check_heatmap_target(heatmap, image, force=request.args.force)
    if image.is_dir():
        raise FakevlmError(f"{image}: is a folder: explain takes one image or video (scan reads folders)")
    if request.args.no_model:
        return _metadata_only(request, env)
    try:  # a bad file is reported before the (slow) model load; what Pillow warns comes with the record
        with library_warnings.silenced():
            check_media(image, judge.max_pixels)
    except ImageError as exc:
        record = _decided_by_metadata(image, judge, str(exc))
        if record is None:
            raise FakevlmError(f"{image}: {exc}") from None
        if heatmap is not None:
            diag.warn(f"{heatmap}: not written: no heatmap: the pixels could not be judged")
            heatmap = None
    else:
        plan = run.Plan(judge=judge, engine=run.EngineSpec(request.engine), prepared=run.prepare(judge))
        with run.LocalExecutor(notify=diag.note) as executor:
            with loading(env, plan.engine, quiet=False, what=request.engine.model):
                executor.start(plan)  # the model loads, a --calibration is checked against it
            (record,) = executor.run(plan, [Candidate(path=image, explicit=True)])
    if record.verdict == "error":
        raise FakevlmError(f"{record.path}: {record.error}")
    outs = explain_outputs(env, as_json=request.args.as_json)
    if heatmap is not None and target is not None:
        _write_heatmap(record, image, target, judge, diag)
    try:
        outs.write(record)
    finally:
        outs.close()
    return EXIT_FAKE if record.verdict == "fake" else EXIT_CLEAN


def _metadata_only(request: ExplainRequest, env: Environment) -> int:
    """--no-model: the panel of what the file's metadata says and decides, without torch or a model."""
    judge = request.judge
    if request.args.heatmap is not None or judge.localise:
        raise FakevlmError("--heatmap and --localise need the model: drop --no-model")
    prepared = run.prepare(judge, uses_model=False)  # refuses --calibration and --inconclusive, reads anchors
    plan = run.Plan(judge=replace(judge, explain=False), prepared=prepared)
    with run.LocalExecutor() as executor:
        (record,) = executor.run(plan, [Candidate(path=request.args.image, explicit=True)])
    if record.verdict == "error":
        raise FakevlmError(f"{record.path}: {record.error}")
    outs = explain_outputs(env, as_json=request.args.as_json)
    try:
        outs.write(record)
    finally:
        outs.close()
    return EXIT_FAKE if record.verdict == "fake" else EXIT_CLEAN


def _decided_by_metadata(image: Path, judge: JudgeOptions, pixel_error: str) -> Record | None:
    """A file whose pixels cannot be judged is an error, unless its metadata alone decides the verdict (a
    generator's parameters chunk, a C2PA or XMP generative-AI source type): then it gets that verdict, as in a
    scan, with a note saying why the pixels were not judged; no model is loaded for it."""
    metadata_only = replace(judge, localise=False, explain=False)
    with run.LocalExecutor() as executor:
        (record,) = executor.run(run.Plan(judge=metadata_only), [Candidate(path=image, explicit=True)])
    if record.verdict == "error" or not any(reason.rule == "decisive" for reason in record.reasons):
        return None
    record.notes.append(f"pixels not judged ({pixel_error}): the verdict rests on the metadata alone")
    return record


def _check_heatmap_target(heatmap: Path, image: Path, *, force: bool) -> OutputTarget:
    """Before any work: the heatmap goes where it destroys nothing (outputs/guard.py) — never over the image
    explained (through any link), nor over a folder or a device, nor over an existing file that is not a
    fakevlm heatmap unless `force`, and only where it can be written."""
    target = OutputTarget(heatmap, HEATMAP, inputs=[image], force=force, role="the image being explained")
    target.check()
    return target


def _write_heatmap(record: Record, image: Path, target: OutputTarget, judge: JudgeOptions,
                   diag: Diagnostics) -> None:
    """The heatmap picture over the image as the model was given it; without a map, a warning says why."""
    from fakevlm_cli.media.images import load_image
    from fakevlm_cli.media.pictures import heatmap_png

    heatmap = target.path
    if record.localisation is None:
        why = next((n for n in record.notes if n.startswith("no heatmap")), "no heatmap")
        diag.warn(f"{heatmap}: not written: {why}")
        return
    try:
        picture = load_image(image.read_bytes(), max_pixels=judge.max_pixels, mode=judge.pixels).image
        png = heatmap_png(picture, record.localisation, boxes=record.model_verdict == "fake")
    except (OSError, ImageError, ValueError) as exc:
        reason = getattr(exc, "strerror", None) or exc
        record.notes.append(f"heatmap not written: {reason}")
        diag.warn(f"{heatmap}: not written: {reason}")
        return
    try:
        target.replace(png)
    except OutputError as exc:
        record.notes.append(f"heatmap not written: {exc}")
        diag.warn(str(exc))
        return
    record.localisation["heatmap"] = str(heatmap)
