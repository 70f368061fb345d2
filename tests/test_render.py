"""What people read: the scan table at 80 columns keeps the decisive evidence; panels list it first."""

from __future__ import annotations

import io

import factories as f
from rich.console import Console

from fakevlm_cli.core.record import Record
from fakevlm_cli.outputs.render import TableSink, explain_panel


def table(cli, tmp_path, width: int) -> str:
    folder = tmp_path / "a folder with a rather long name" / "and another one inside it"
    folder.mkdir(parents=True)
    f.a1111_png(folder / "astronaut-riding-a-horse-on-the-moon.png")
    f.xmp_jpeg(folder / "press-photo-from-the-agency.jpg")
    f.truncated_jpeg(folder / "broken.jpg")
    result = cli("scan", folder, "--no-model", "--format", "table", terminal_width=width, env={"COLUMNS": str(width)})
    assert result.exit_code == 1, result.stderr
    return result.stdout


def test_at_80_columns_the_decisive_evidence_is_shown_whole(cli, tmp_path):
    out = table(cli, tmp_path, 80)
    assert max(len(line) for line in out.splitlines()) <= 80
    assert "png: Stable Diffusion (A1111)" in out  # it was cut to "png: Stable Di…" beside a 47-column path
    assert "xmp: trainedAlgorithmicMedia" in out
    broken = next(line for line in out.splitlines() if "broken.jpg" in line or "truncated" in line)
    assert "jpeg: quality" not in broken  # an error row shows the error, not an info line


def test_wide_terminals_keep_evidence_and_note_apart(cli, tmp_path):
    out = table(cli, tmp_path, 160)
    header = out.splitlines()[0].split()
    assert header == ["file", "verdict", "P(fake)", "evidence", "note"]
    assert "png: Stable Diffusion (A1111)" in out


def test_every_row_of_a_narrow_table_has_the_same_columns():
    con = Console(file=io.StringIO(), width=80, color_system=None)
    sink = TableSink(con)
    for record in (Record(path="a.jpg", verdict="real", p_fake=0.01),
                   Record(path="b.png", verdict="fake", p_fake=0.2, disagreement=True,
                          evidence=[{"signal": "ai_generated", "source": "png", "key": "parameters",
                                     "value": "x", "generator": "Stable Diffusion (A1111)", "strong": True}])):
        sink.write(record)
    lines = con.file.getvalue().splitlines()
    assert lines[0].split() == ["file", "verdict", "P(fake)", "why"]
    assert lines[1].index("REAL") == lines[2].index("FAKE")  # aligned


def test_the_panel_lists_decisive_evidence_before_information():
    record = Record(path="x.jpg", verdict="fake", p_fake=0.1, evidence=[
        {"signal": "info", "source": "jpeg", "key": "quantization", "value": "quality ≈ 85"},
        {"signal": "camera", "source": "exif", "key": "Make", "value": "Canon"},
        {"signal": "ai_generated", "source": "c2pa", "key": "c2pa.actions", "value": "trainedAlgorithmicMedia",
         "strong": True}])
    con = Console(file=io.StringIO(), width=100, color_system=None)
    con.print(explain_panel(record))
    text = con.file.getvalue()
    assert text.index("[ai_generated] c2pa") < text.index("[camera] exif") < text.index("[info] jpeg")


def test_a_spinner_while_the_model_loads_on_a_terminal_only():
    import contextlib

    from rich.status import Status

    from fakevlm_cli.outputs.sinks import Environment, loading

    terminal = Environment(stdout=None, stdout_tty=True, stderr_tty=True)
    piped = Environment(stdout=None, stdout_tty=False, stderr_tty=False)
    spinner = loading(terminal, object(), quiet=False, what="lingcco/fakeVLM")
    assert isinstance(spinner, Status) and "loading the model lingcco/fakeVLM" in str(spinner.status)
    for env, engine, quiet in ((piped, object(), False), (terminal, object(), True), (terminal, None, False)):
        assert isinstance(loading(env, engine, quiet=quiet, what="m"), contextlib.nullcontext)
