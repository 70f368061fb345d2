"""`fakevlm scan` end to end: inputs, fusion, outputs, errors, exit codes, resume, interrupts."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import factories as f
import jsonschema
import pytest

from fakevlm_cli.core.record import load_schema

SCHEMA = load_schema()


@pytest.fixture
def evidence_dir(tmp_path) -> Path:
    d = tmp_path / "photos"
    (d / "sub").mkdir(parents=True)
    f.camera_jpeg(d / "camera.jpg")
    f.a1111_png(d / "sd.png")
    f.comfy_png(d / "sub" / "comfy.png")
    f.xmp_jpeg(d / "firefly.jpg")
    f.truncated_jpeg(d / "truncated.jpg")
    (d / "empty.jpg").write_bytes(b"")
    (d / "text.jpg").write_text("I am text pretending to be a JPEG")
    (d / "notes.txt").write_text("not an image, not named like one")
    f.bomb_png(d / "bomb.png")
    return d


def records(output: str) -> list[dict]:
    rows = [json.loads(line) for line in output.splitlines() if line.strip()]
    for row in rows:
        jsonschema.validate(row, SCHEMA)
    return rows


def by_name(rows):
    return {Path(r["path"]).name: r for r in rows}


@pytest.mark.slow
def test_no_model_scan_reads_metadata_and_fuses(cli, evidence_dir):
    result = cli("scan", evidence_dir, "--no-model", "--format", "jsonl")
    rows = by_name(records(result.stdout))
    assert set(rows) == {"camera.jpg", "sd.png", "comfy.png", "firefly.jpg", "truncated.jpg", "empty.jpg",
                         "text.jpg", "bomb.png"}  # notes.txt: not an image, skipped and counted
    assert rows["sd.png"]["verdict"] == "fake" and rows["sd.png"]["p_fake"] is None
    assert any(e["strong"] and e["signal"] == "ai_generated" for e in rows["sd.png"]["evidence"])
    assert rows["comfy.png"]["verdict"] == "fake"
    assert rows["firefly.jpg"]["verdict"] == "fake"
    assert rows["camera.jpg"]["verdict"] == "unknown"  # camera EXIF never makes a verdict "real"
    assert rows["camera.jpg"]["exif"].get("make") == "Canon"
    assert rows["empty.jpg"]["verdict"] == "error" and "empty" in rows["empty.jpg"]["error"]
    assert rows["text.jpg"]["verdict"] == "error" and "not an image" in rows["text.jpg"]["error"]
    assert rows["sd.png"]["model"] is None and rows["sd.png"]["model_verdict"] is None
    assert result.exit_code == 1  # at least one fake


@pytest.mark.slow
def test_no_model_scan_never_imports_torch_ray_or_fsspec(evidence_dir):
    code = ("import sys\nfrom fakevlm_cli.cli import main\n"
            f"sys.argv=['fakevlm','scan',{str(evidence_dir)!r},'--no-model','-o',{str(evidence_dir / 'o.jsonl')!r}]\n"
            "try:\n    main()\nexcept SystemExit as e:\n    code = e.code\n"
            "print('EXIT', code, [m for m in ('torch', 'transformers', 'ray', 'fsspec', 'pyarrow')"
            " if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert "EXIT 1 []" in out.stdout, out.stderr


@pytest.mark.slow
def test_model_scan_records(cli, evidence_dir, toy_model):
    result = cli("scan", evidence_dir, "--model", toy_model, "--format", "jsonl", "--threshold", "1.0")
    rows = by_name(records(result.stdout))
    for name in ("camera.jpg", "sd.png", "comfy.png", "firefly.jpg"):
        row = rows[name]
        assert 0 <= row["p_fake"] <= 1 and row["model"]["id"] == str(toy_model)
        assert row["width"] == 64 and row["height"] == 48
    # threshold 1.0: the model calls everything real, so the metadata overrules it and says so.
    assert rows["camera.jpg"]["verdict"] == "real" and not rows["camera.jpg"]["disagreement"]
    assert rows["sd.png"]["verdict"] == "fake" and rows["sd.png"]["model_verdict"] == "real"
    assert rows["sd.png"]["disagreement"] is True
    assert any("overruled" in r for r in rows["sd.png"]["reasons"])
    for bad in ("truncated.jpg", "bomb.png", "empty.jpg", "text.jpg"):
        assert rows[bad]["verdict"] == "error" and rows[bad]["p_fake"] is None
    assert "max-pixels" in rows["bomb.png"]["error"] or "bomb" in rows["bomb.png"]["error"]
    assert result.exit_code == 1


@pytest.mark.slow
def test_records_do_not_depend_on_batch_size(cli, evidence_dir, toy_model):
    def run(batch):
        rows = records(cli("scan", evidence_dir, "-m", toy_model, "--format", "jsonl", "--batch-size", batch).stdout)
        for row in rows:
            row.pop("elapsed_ms")
        return rows

    one, eight = run(1), run(8)
    assert [r["path"] for r in one] == [r["path"] for r in eight]
    for a, b in zip(one, eight, strict=True):
        if a["p_fake"] is not None:
            assert abs(a["p_fake"] - b["p_fake"]) < 1e-4
            a["p_fake"] = b["p_fake"]
            a["reasons"], b["reasons"] = a["reasons"][1:], b["reasons"][1:]  # they quote P(fake)
    assert one == eight


def test_order_is_sorted_and_deterministic(cli, tmp_path):
    for name in ("b.png", "a.png", "c/z.png", "c/a.png"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        f.plain_png(tmp_path / name)
    rows = records(cli("scan", tmp_path, "--no-model", "--format", "jsonl").stdout)
    assert [Path(r["path"]).relative_to(tmp_path).as_posix() for r in rows] == ["a.png", "b.png", "c/a.png", "c/z.png"]


def test_csv_output(cli, evidence_dir):
    result = cli("scan", evidence_dir, "--no-model", "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert {Path(r["path"]).name for r in rows} >= {"sd.png", "camera.jpg"}
    sd = next(r for r in rows if r["path"].endswith("sd.png"))
    assert sd["verdict"] == "fake" and "ai_generated" in sd["evidence"]


def test_csv_defuses_formulas(cli, tmp_path):
    f.camera_jpeg(tmp_path / "=cmd.jpg", make="=HYPERLINK(\"http://x\")")
    rows = list(csv.DictReader(io.StringIO(cli("scan", tmp_path, "--no-model", "--format", "csv").stdout)))
    assert rows[0]["path"].startswith(str(tmp_path))  # a path starting with / is harmless
    assert all(not cell.startswith("=") for row in rows for cell in row.values())


@pytest.mark.slow
def test_table_output_is_terminal_safe(cli, tmp_path, monkeypatch):
    monkeypatch.setenv("COLUMNS", "250")  # names whole on one line, so they can be read back as they are shown
    nasty = ["spaced name.png", "ünïcödé.png", "line\nbreak.png", "[bold]red.png", "esc\x1b[31m.png"]
    for name in nasty:
        f.plain_png(tmp_path / name)
    f.camera_jpeg(tmp_path / "evil.jpg", make="\x1b[2J\x1b[31mEvilCam [blink]x[/blink]")
    result = cli("scan", tmp_path, "--no-model", "--format", "table")
    out = result.stdout
    assert "\x1b" not in out  # no escape sequence from a name or EXIF reaches the terminal
    assert "[bold]red.png" in out.replace("\n", "")  # shown literally, not as markup
    assert "line\\nbreak.png" in out.replace("\n", "")
    assert "scanned" in out and "6 files" in out
    jsonl = records(cli("scan", tmp_path, "--no-model", "--format", "jsonl").stdout)
    assert {Path(r["path"]).name for r in jsonl} == set(nasty) | {"evil.jpg"}  # exact in JSONL
    evil = next(r for r in jsonl if r["path"].endswith("evil.jpg"))
    assert evil["exif"]["make"].startswith("\x1b[2J")


def test_paths_from_stdin_and_file(cli, tmp_path):
    a, b = f.plain_png(tmp_path / "a b.png"), f.a1111_png(tmp_path / "sd.png")
    rows = records(cli("scan", "-", "--no-model", "--format", "jsonl", input=f"{a}\n{b}\n").stdout)
    assert [Path(r["path"]).name for r in rows] == ["a b.png", "sd.png"]
    listing = tmp_path / "list.txt"
    listing.write_bytes(f"{b}\0{a}\0".encode())
    rows = records(cli("scan", "--from-file", listing, "-0", "--no-model", "--format", "jsonl").stdout)
    assert [Path(r["path"]).name for r in rows] == ["sd.png", "a b.png"]


def test_explicit_missing_path_is_an_error_record(cli, tmp_path):
    f.plain_png(tmp_path / "ok.png")
    result = cli("scan", tmp_path / "ok.png", tmp_path / "missing.png", "--no-model", "--format", "jsonl")
    rows = by_name(records(result.stdout))
    assert rows["missing.png"]["verdict"] == "error" and "no such file" in rows["missing.png"]["error"]
    assert "missing.png" in result.stderr  # one error line on stderr too
    assert result.exit_code == 0


def test_symlink_loop_does_not_hang(cli, tmp_path):
    f.plain_png(tmp_path / "a.png")
    os.symlink(tmp_path, tmp_path / "loop")
    rows = records(cli("scan", tmp_path, "--no-model", "--format", "jsonl", "--follow-symlinks").stdout)
    assert [Path(r["path"]).name for r in rows] == ["a.png"]


def test_hidden_and_globs(cli, tmp_path):
    f.plain_png(tmp_path / ".hidden.png")
    f.plain_png(tmp_path / "keep.png")
    f.plain_png(tmp_path / "skip.png")
    def names(*args):
        return [Path(r["path"]).name for r in records(cli("scan", tmp_path, "--no-model", "--format", "jsonl",
                                                          *args).stdout)]

    assert names() == ["keep.png", "skip.png"]
    assert names("--hidden") == [".hidden.png", "keep.png", "skip.png"]
    assert names("--exclude", "skip*") == ["keep.png"]


@pytest.mark.slow
def test_exit_codes(cli, tmp_path, toy_model):
    f.camera_jpeg(tmp_path / "cam.jpg")
    assert cli("scan", tmp_path, "--no-model", "-q", "--format", "jsonl").exit_code == 0
    assert cli("scan", tmp_path, "-m", toy_model, "--threshold", "0", "--format", "jsonl").exit_code == 1
    assert cli("scan", tmp_path, "-m", toy_model, "--threshold", "1", "--format", "jsonl").exit_code == 0
    bad_model = cli("scan", tmp_path, "-m", tmp_path / "nope" / "model")
    assert bad_model.exit_code == 2 and "does not exist" in bad_model.stderr
    unwritable = cli("scan", tmp_path, "--no-model", "-o", tmp_path / "no-such-dir" / "out.jsonl")
    assert unwritable.exit_code == 2 and "does not exist" in unwritable.stderr
    assert cli("scan", "--no-model").exit_code == 2  # no paths: usage error


def test_output_file_and_explain(cli, tmp_path, toy_model):
    f.plain_png(tmp_path / "a.png")
    out = tmp_path / "out.jsonl"
    result = cli("scan", tmp_path / "a.png", "-m", toy_model, "--explain", "--max-new-tokens", "4", "-o", out)
    assert result.stdout == ""  # not a terminal, data went to the file
    (row,) = records(out.read_text())
    assert row["explanation"] is not None and row["text_verdict"] in ("real", "fake", "unknown")


def test_failed_model_load_keeps_earlier_results(cli, tmp_path):
    f.plain_png(tmp_path / "a.png")
    out = tmp_path / "out.jsonl"
    earlier = '{"schema":1,"path":"earlier.png","verdict":"real","tool":{"name":"fakevlm","version":"0"}}\n'
    out.write_text(earlier)  # an earlier run's output: overwritten by a run that gets going, not by a failed one
    assert cli("scan", tmp_path / "a.png", "-m", tmp_path / "missing-model", "-o", out).exit_code == 2
    assert out.read_text() == earlier


@pytest.mark.slow
def test_resume_tolerates_torn_line_and_writes_no_duplicate(cli, evidence_dir):
    out = evidence_dir.parent / "out.jsonl"
    cli("scan", evidence_dir, "--no-model", "-o", out)
    full = out.read_bytes().splitlines(keepends=True)
    out.write_bytes(b"".join(full[:3]) + full[3][:25])  # a run killed mid-line
    cli("scan", evidence_dir, "--no-model", "-o", out, "--resume")
    rows = records(out.read_text())
    assert len(rows) == len(full) and len({r["path"] for r in rows}) == len(rows)
    assert sorted(json.dumps(r, sort_keys=True) for r in rows if True) != []


def test_resume_refuses_foreign_file(cli, tmp_path):
    f.plain_png(tmp_path / "a.png")
    out = tmp_path / "notes.jsonl"
    out.write_text("hello\nworld\n")
    result = cli("scan", tmp_path / "a.png", "--no-model", "-o", out, "--resume")
    assert result.exit_code == 2 and "line 1 is not a fakevlm record" in result.stderr
    assert out.read_text() == "hello\nworld\n"


def test_scan_of_the_shared_c2pa_corpus(cli):
    from conftest import CORPUS

    folder = CORPUS / "c2pa"
    if not folder.is_dir():
        pytest.skip(f"shared corpus not found at {folder} (set FAKEVLM_CORPUS)")
    rows = by_name(records(cli("scan", folder, "--no-model", "--format", "jsonl").stdout))
    assert all(r["verdict"] != "error" for r in rows.values())
    assert not any(e["signal"].startswith("ai_") for e in rows["C_algorithmicMedia.jpg"]["evidence"])
    assert rows["C_algorithmicMedia.jpg"]["verdict"] == "unknown"  # algorithmic, not generative AI
    invalid = rows["E-sig-CA_invalid_signature.jpg"]
    assert any("fail validation" in r for r in invalid["reasons"])
    assert not any(e["source"] == "c2pa" for e in rows["no_manifest.jpg"]["evidence"])


def test_progress_bar_on_a_terminal_and_not_when_piped(tmp_path, monkeypatch):
    from rich.console import Console

    from fakevlm_cli.commands.scan import scan as scan_command
    from fakevlm_cli.core.options import build
    from fakevlm_cli.outputs import render
    from fakevlm_cli.outputs.sinks import Diagnostics, Environment

    for i in range(3):
        f.plain_png(tmp_path / f"{i}.png", seed=i)
    screen = io.StringIO()
    terminal = Console(file=screen, force_terminal=True, width=100)
    monkeypatch.setattr(render, "console", lambda stderr=False: terminal)
    on_terminal = Environment(stdout=io.BytesIO(), stdout_tty=False, stderr_tty=True)
    request = build("scan", {"paths": (str(tmp_path),), "no_model": True, "fmt": "jsonl",
                             "output": tmp_path / "o.jsonl"})
    assert scan_command(request, Diagnostics(), on_terminal) == 0
    shown = screen.getvalue()
    assert "scanning" in shown and "3/3" in shown and "scanned" in shown  # bar, then the summary
    screen.truncate(0)
    quiet = build("scan", {"paths": (str(tmp_path),), "no_model": True, "fmt": "jsonl", "quiet": True,
                           "output": tmp_path / "o2.jsonl"})
    scan_command(quiet, Diagnostics(), on_terminal)
    assert screen.getvalue().strip("\x00") == ""
    # JSONL or CSV rows on the terminal too: a bar beside them would overwrite the first row; none, the summary stays
    screen.truncate(0)
    screen.seek(0)
    both = Environment(stdout=io.BytesIO(), stdout_tty=True, stderr_tty=True)
    for fmt in ("jsonl", "csv"):
        rows = build("scan", {"paths": (str(tmp_path),), "no_model": True, "fmt": fmt})
        assert scan_command(rows, Diagnostics(), both) == 0
    shown = screen.getvalue()
    assert "scanning" not in shown and shown.count("scanned") == 2


@pytest.mark.slow
def test_shipped_schema_is_a_valid_json_schema_and_rejects_bad_records():
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    good = {"schema": 1, "path": "a.png", "verdict": "fake", "p_fake": 0.7, "model_verdict": "fake",
            "evidence": [], "reasons": [], "error": None, "model": None, "sha256": None, "size": None,
            "format": None, "width": None, "height": None, "elapsed_ms": None,
            "tool": {"name": "fakevlm", "version": "0"}}
    jsonschema.validate(good, SCHEMA)
    jsonschema.validate({**good, "path": "bad\\xff.png", "path_bytes": "YmFk/y5wbmc="}, SCHEMA)
    for bad in ({**good, "verdict": "maybe"}, {**good, "p_fake": 1.5}, {**good, "verdict": "error", "error": None},
                {**good, "path_bytes": "not base64!"}, {**good, "path_bytes": 7}):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, SCHEMA)


def test_a_sink_failing_to_close_never_hides_the_failure_that_ended_the_run():
    """A run ending on its own exception closes its sinks with `warn`: a file that cannot be closed (a full disk
    on the last flush) is said as a warning, and the run's exception stays the one reported; a run that ended
    well raises the close failure itself."""
    from fakevlm_cli.core.errors import OutputError
    from fakevlm_cli.core.record import Record
    from fakevlm_cli.outputs.sinks import Outputs

    class Full:
        closed = 0

        def write(self, record):
            pass

        def close(self):
            self.closed += 1
            raise OutputError("r.jsonl: cannot write results: No space left on device")

    first, second = Full(), Full()
    outs, warned = Outputs(sinks=[first, second]), []
    outs.write(Record(path="a.jpg"))
    outs.end(failed=True, warn=warned.append)
    assert warned == ["while stopping, r.jsonl: cannot write results: No space left on device"]
    assert first.closed == second.closed == 1  # every sink was closed all the same
    with pytest.raises(OutputError, match="No space left"):
        outs.end(failed=False)


@pytest.mark.parametrize(("text", "expected"), [("512M", 512 * 2**20), ("1.5G", 3 * 2**29), ("4096", 4096),
                                                 ("2KiB", 2048), ("1k", 1024)])
def test_sizes_are_read_in_powers_of_1024(text, expected):
    from fakevlm_cli.cli import ByteSize

    assert ByteSize().convert(text, None, None) == expected


@pytest.mark.parametrize(("text", "said"), [("0.5", "less than one byte"), ("0", "not a positive size"),
                                            ("-1G", "not a positive size"), ("nan", "not a positive size"),
                                            ("99999999999999999999T", "too large"), ("lots", "not a size")])
def test_a_size_that_is_no_usable_size_is_refused_not_taken_for_the_default(text, said):
    """--max-memory 0.5 was 0 bytes, which the loader took for "unset" (the default, a quarter of RAM)."""
    import click

    from fakevlm_cli.cli import ByteSize

    with pytest.raises(click.BadParameter, match=said):
        ByteSize().convert(text, None, None)


@pytest.mark.parametrize(("args", "said"), [
    (["scan", ".", "--threshold", "nan"], "'nan' is not a number"),  # P(fake) >= nan: every image "real"
    (["scan", ".", "--fps", "nan"], "'nan' is not a number"),
    (["eval", "--bench", "folder", "--data", ".", "--fit-calibration", "c.json", "--target-fpr", "0"],
     "0.0 is not in the range 0.0<x<=0.5"),  # fitted after the whole run, then divided by zero
    (["eval", "--bench", "folder", "--data", ".", "--fit-calibration", "c.json", "--target-fpr", "nan"],
     "'nan' is not a number"),
])
def test_numbers_that_would_judge_wrongly_or_fail_late_are_usage_errors(cli, args, said):
    result = cli(*args)
    assert result.exit_code == 2 and said in result.output


@pytest.mark.slow
def test_the_table_on_a_terminal_that_is_not_utf8_replaces_what_it_cannot_show(tmp_path):
    """LC_ALL=C or a latin-1 terminal: the table's "—" (no P(fake)) raised UnicodeEncodeError at the first row,
    which ended the scan (and the -o file beside it) with a traceback and exit 1. Now it shows "?" and goes on."""
    import subprocess
    import sys

    from PIL import Image

    for i in range(3):
        Image.new("RGB", (8, 8), (i, 0, 0)).save(tmp_path / f"p{i}.png")
    env = {**os.environ, "PYTHONIOENCODING": "latin-1", "PYTHONUTF8": "0"}
    result = subprocess.run([sys.executable, "-m", "fakevlm_cli", "scan", str(tmp_path), "--no-model", "--format",
                             "table"], capture_output=True, env=env, check=False)
    assert result.returncode == 0, result.stderr.decode("latin-1")
    shown = result.stdout.decode("latin-1")
    assert shown.count(".png") == 3 and "?" in shown and b"Traceback" not in result.stderr


@pytest.mark.slow
def test_a_table_that_cannot_be_written_is_one_error_line(tmp_path):
    import subprocess
    import sys

    from PIL import Image

    Image.new("RGB", (8, 8)).save(tmp_path / "p.png")
    with open("/dev/full", "wb") as full:
        result = subprocess.run([sys.executable, "-m", "fakevlm_cli", "scan", str(tmp_path), "--no-model",
                                 "--format", "table"], stdout=full, stderr=subprocess.PIPE, text=True, check=False)
    assert result.returncode == 2
    assert result.stderr == "fakevlm: error: stdout: cannot write: No space left on device\n"


# ---- exit codes when nothing could be judged (issue 23 item 9) and refusals before any work ----------------

def test_a_scan_that_judged_nothing_exits_2_not_0(cli, tmp_path):
    """A script could not tell "nothing scanned" from "all clean": a missing file, a folder of broken files."""
    missing = cli("scan", tmp_path / "nonexistent.jpg", "--no-model", "--format", "jsonl")
    assert missing.exit_code == 2
    last = missing.stderr.strip().splitlines()[-1]
    assert last == "fakevlm: error: nothing could be judged: 1 file, an error (see above)"
    assert records(missing.stdout)[0]["verdict"] == "error"  # the record is still written
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "a.jpg").write_bytes(b"\xff\xd8\xff\xe0" + b"\x00" * 40)  # headers that do not decode
    (broken / "b.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    result = cli("scan", broken, "--no-model", "--format", "jsonl")
    assert result.exit_code == 2 and "nothing could be judged: 2 files, each an error" in result.stderr


def test_one_file_judged_among_errors_or_an_empty_folder_is_not_a_failure(cli, tmp_path):
    f.truncated_jpeg(tmp_path / "a.jpg")
    f.camera_jpeg(tmp_path / "b.jpg")
    assert cli("scan", tmp_path, "--no-model", "--format", "jsonl").exit_code == 0
    empty = tmp_path / "empty"
    empty.mkdir()
    result = cli("scan", empty, "--no-model", "--format", "jsonl")
    assert result.exit_code == 0 and "nothing could be judged" not in result.stderr


def test_missing_paths_are_errors_before_any_model_loads(cli, tmp_path, monkeypatch):
    import fakevlm_cli.run as run

    def no_load(*args, **kwargs):
        raise AssertionError("the model was loaded for paths that do not exist")

    monkeypatch.setattr(run, "load_engine", no_load)
    out = tmp_path / "out.jsonl"
    result = cli("scan", tmp_path / "nophotos", tmp_path / "nophoto.jpg", "-m", "lingcco/fakeVLM", "-o", out)
    assert result.exit_code == 2
    assert [r["verdict"] for r in records(out.read_text())] == ["error", "error"]


@pytest.mark.parametrize(("args", "message"), [
    (["--no-model", "--explain"], "--explain needs the model (the explanation is its answer): drop --no-model"),
    (["-o", "{tmp}/out.json"], ("{tmp}/out.json: fakevlm writes JSON Lines (one record a line), not one JSON "
                               "document: name it .jsonl, or add --format jsonl to write JSON Lines under this name")),
    (["-o", "{tmp}/out.csv", "--format", "jsonl"], ("{tmp}/out.csv: the name says CSV but --format says jsonl: make "
                                                   "them agree")),
])
def test_contradictory_options_are_refused_in_one_line(cli, tmp_path, args, message):
    f.camera_jpeg(tmp_path / "a.jpg")
    result = cli("scan", tmp_path / "a.jpg", "--no-model", *[a.format(tmp=tmp_path) for a in args])
    assert result.exit_code == 2
    assert result.stderr.strip() == "fakevlm: error: " + message.format(tmp=tmp_path)
    assert not (tmp_path / "out.json").exists() and not (tmp_path / "out.csv").exists()


def test_json_lines_under_a_json_name_when_asked_for(cli, tmp_path):
    f.camera_jpeg(tmp_path / "a.jpg")
    out = tmp_path / "out.json"
    assert cli("scan", tmp_path / "a.jpg", "--no-model", "-o", out, "--format", "jsonl").exit_code == 0
    assert records(out.read_text())[0]["path"].endswith("a.jpg")
