"""`fakevlm demo [DIR]`: see the whole tool work on a fresh machine, offline, without the 14 GB weights.

It trains (once, cached) the toy FakeVLM the test suite uses, writes a folder of sample files — toy fakes and
reals plus one file for each kind of evidence (testing/samples.py) — and scans it as `fakevlm scan` would with
`-o results.jsonl --report report.html --heatmaps heatmaps`, through the same command code. The toy is said to be
a toy, loudly: it knows only its own planted artifact and is no detector of real images.

This is the one runtime module that uses the test kit (`fakevlm_cli.testing`); pyproject.toml's import
contract names it as the exception.
"""

from __future__ import annotations

from pathlib import Path

from fakevlm_cli.commands.scan import scan
from fakevlm_cli.core import options
from fakevlm_cli.core.errors import EXIT_CLEAN, EXIT_FAKE, OutputError
from fakevlm_cli.outputs.guard import Kind, OutputTarget
from fakevlm_cli.outputs.sinks import Diagnostics, Environment

DEFAULT_FOLDER = Path("fakevlm-demo")
MARKER = ".fakevlm-demo"  # a folder holding it is one the demo made: a later run may write there again
MARKER_TEXT = b"made by `fakevlm demo`; safe to delete\n"
DEMO_MARKER = Kind("demo marker", "fakevlm demo's marker", lambda path: path.read_bytes() == MARKER_TEXT)
TOY_WORDS = ("This demo runs a TOY model trained here on synthetic pictures: it knows only its own planted "
             "artifact (a 1-pixel checkerboard) and is not a detector of real images.")
REPORT_TITLE = "fakevlm demo: a TOY model on sample files (it knows only its own planted artifact; not a detector)"
NEXT_STEPS = ("With the released FakeVLM weights (lingcco/fakeVLM, 14 GB, downloaded once):\n"
              "  fakevlm scan PHOTOS -o results.jsonl --report report.html\n"
              "  fakevlm scan PHOTOS --no-model          # metadata only: no model, no GPU")


def demo(folder: Path | None, diag: Diagnostics, env: Environment | None = None) -> int:
    """Build or reuse the toy and the samples, scan them; 0 when the scan ran (fakes are expected here)."""
    from fakevlm_cli.testing import samples, toy

    folder = folder or DEFAULT_FOLDER
    _claim(folder)
    diag.note(TOY_WORDS)
    model = _toy_model(toy, diag)
    made = samples.write_samples(folder / "samples")
    diag.note(f"{len(made)} sample files in {folder / 'samples'}: toy fakes and reals, camera EXIF, a generator "
              "PNG, XMP and C2PA AI sources, a HEIC, a clip, a broken file")
    request = options.build("scan", {
        "paths": (str(folder / "samples"),), "model": str(model), "output": folder / "results.jsonl",
        "report": folder / "report.html", "heatmaps": folder / "heatmaps", "force": False})
    code = scan(request, diag, env, report_title=REPORT_TITLE)  # the page's heading says what the model is
    if code not in (EXIT_CLEAN, EXIT_FAKE):  # stopped (Ctrl-C, SIGTERM): the scan said so
        return code
    diag.note(f"wrote {folder / 'results.jsonl'} (one JSON record a file), {folder / 'report.html'} (open it in a "
              f"browser) and heatmaps in {folder / 'heatmaps'}")
    diag.note(TOY_WORDS)
    diag.line(NEXT_STEPS)
    return EXIT_CLEAN


def _claim(folder: Path) -> None:
    """The demo writes only into a folder it made, or an empty or absent one: never over someone's files."""
    if folder.exists() and not folder.is_dir():
        raise OutputError(f"{folder}: exists and is not a folder: choose another folder for the demo")
    if folder.is_dir() and not (folder / MARKER).exists() and any(folder.iterdir()):
        raise OutputError(f"{folder}: is not empty and not a fakevlm demo folder: choose another folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{folder}: cannot write the demo there: {exc.strerror or exc}") from None
    marker = OutputTarget(folder / MARKER, DEMO_MARKER, user_named=False)
    marker.check()
    marker.replace(MARKER_TEXT)


def _toy_model(toy, diag: Diagnostics) -> Path:
    """The cached toy FakeVLM, trained first when absent (about 30 s on two CPU cores), with its progress."""
    target = toy.default_cache_dir()
    if toy.is_cached(target):
        diag.note(f"toy model: {target} (cached)")
        return target
    diag.note(f"training the toy model into {target} (about 30 s on a laptop CPU, once) ...")
    return toy.cached_toy_fakevlm(target, log=lambda line: diag.note(f"toy training: {line}"))
