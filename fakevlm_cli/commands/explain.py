"""`fakevlm explain IMAGE`: the run layer over one source, rendered as a panel (or one JSON object)."""

from __future__ import annotations

from fakevlm_cli import run
from fakevlm_cli.discover import Candidate
from fakevlm_cli.errors import EXIT_CLEAN, EXIT_FAKE, FakevlmError, ImageError
from fakevlm_cli.loader import check_media
from fakevlm_cli.options import ExplainRequest
from fakevlm_cli.sinks import Diagnostics, Environment, explain_outputs


def explain(request: ExplainRequest, diag: Diagnostics, env: Environment | None = None) -> int:
    """Exit 0 (real, unknown or inconclusive), 1 (fake); a file that cannot be judged is an error (2)."""
    env = env or Environment.detect()
    image = request.args.image
    try:  # a bad file is reported before the (slow) model load
        check_media(image, request.judge.max_pixels)
    except ImageError as exc:
        raise FakevlmError(f"{image}: {exc}") from None
    prepared = run.prepare(request.judge)
    outs = explain_outputs(env, as_json=request.args.as_json)
    engine = run.load_engine(request.engine, notify=diag.note)
    for notice in run.check_model(prepared, engine, request.judge):
        diag.note(notice)
    (record,) = run.predict([Candidate(path=image, explicit=True)], request.judge, engine, prepared=prepared)
    if record.verdict == "error":
        raise FakevlmError(f"{record.path}: {record.error}")
    try:
        outs.write(record)
    finally:
        outs.close()
    return EXIT_FAKE if record.verdict == "fake" else EXIT_CLEAN
