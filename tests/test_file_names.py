"""File names that are not UTF-8, or that hold controls: recorded losslessly, shown safely, resumed exactly."""

from __future__ import annotations

import base64
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

from fakevlm_cli.core.record import load_schema, raw_path, recorded_path
from fakevlm_cli.core.text import safe_text

SCHEMA = load_schema()
# Legal Linux names: invalid UTF-8 (0xff 0xfe), a raw C1 CSI byte (0x9b), Latin-1 é, an encoded surrogate.
BAD_NAMES = [b"bad\xff\xfe.png", b"csi\x9b31m.png", b"caf\xe9.png", b"sur\xed\xa0\x80.png"]
GOOD_NAMES = ["ok.png", "ünïcödé.png", "c1\u009bchar.png"]  # valid UTF-8, the last one holding U+009B


@pytest.fixture
def odd_dir(tmp_path) -> Path:
    folder = tmp_path / "names"
    folder.mkdir()
    for i, name in enumerate(BAD_NAMES):
        f.plain_png(Path(os.fsdecode(bytes(folder) + b"/" + name)), seed=i)
    for i, name in enumerate(GOOD_NAMES):
        f.plain_png(folder / name, seed=10 + i)
    return folder


def run(*args: str | Path) -> subprocess.CompletedProcess:
    """The real CLI in a child, so the bytes on stdout/stderr are exactly what a terminal or file gets."""
    return subprocess.run([sys.executable, "-m", "fakevlm_cli", *map(str, args)], capture_output=True,
                          env={**os.environ, "COLUMNS": "400"})


@pytest.mark.parametrize("raw", BAD_NAMES + [n.encode() for n in GOOD_NAMES] + [b"a\\xffb.png", b"\x1b[2J.png"])
def test_recorded_path_is_lossless_and_json_safe(raw):
    shown, path_bytes = recorded_path(raw)
    assert raw_path(shown, path_bytes) == raw
    assert recorded_path(os.fsdecode(raw)) == (shown, path_bytes)  # as discovery hands it over
    json.dumps(shown, ensure_ascii=False).encode("utf-8")  # encodable: no lone surrogates
    try:
        raw.decode("utf-8")
        assert path_bytes is None and shown == raw.decode("utf-8")
    except UnicodeDecodeError:
        assert base64.b64decode(path_bytes) == raw and "\\x" in shown


@pytest.mark.slow
def test_jsonl_records_every_name_losslessly(odd_dir):
    result = run("scan", odd_dir, "--no-model", "--format", "jsonl")
    assert result.returncode == 0, result.stderr
    assert b"\x9b" not in result.stdout  # neither the raw byte nor U+009B's UTF-8 (C2 9B) reaches a terminal
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    for row in rows:
        jsonschema.validate(row, SCHEMA)
    names = {raw_path(r["path"], r["path_bytes"]).rsplit(b"/", 1)[1] for r in rows}
    assert names == set(BAD_NAMES) | {n.encode() for n in GOOD_NAMES}
    by_name = {Path(r["path"]).name: r for r in rows}
    assert by_name["bad\\xff\\xfe.png"]["path_bytes"] is not None
    assert by_name["c1\u009bchar.png"]["path_bytes"] is None  # valid UTF-8: exact, JSON-escaped
    assert all(r["verdict"] == "unknown" for r in rows)


def test_csv_records_every_name_losslessly(odd_dir):
    result = run("scan", odd_dir, "--no-model", "--format", "csv")
    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader(io.StringIO(result.stdout.decode("utf-8"))))  # strict UTF-8
    assert "path_bytes" in rows[0]
    names = {raw_path(r["path"], r["path_bytes"] or None).rsplit(b"/", 1)[1] for r in rows}
    assert names == set(BAD_NAMES) | {n.encode() for n in GOOD_NAMES}


@pytest.mark.slow
def test_table_and_error_lines_show_names_escaped(odd_dir):
    (odd_dir / os.fsdecode(b"broken\x9b\xff.jpg")).write_bytes(b"not a jpeg at all")
    table = run("scan", odd_dir, "--no-model", "--format", "table")
    assert table.returncode == 0
    for stream in (table.stdout, table.stderr):
        assert b"\x9b" not in stream and b"\x1b" not in stream  # no raw C1 byte, no U+009B, no escape
        stream.decode("utf-8")  # nothing undecodable reaches the terminal
    shown = table.stdout.decode().replace("\n", "")
    assert "bad\\xff\\xfe.png" in shown and "csi\\x9b31m.png" in shown and "c1\\x9bchar.png" in shown
    piped = run("scan", odd_dir / os.fsdecode(b"broken\x9b\xff.jpg"), "--no-model", "--format", "jsonl")
    line, nothing = piped.stderr.decode("utf-8").strip().splitlines()  # the file's error, then the scan's
    assert line.startswith("fakevlm: error: ") and line.endswith("broken\\x9b\\xff.jpg: not an image (its content "
                                                                 "matches no image or video format)")
    assert piped.returncode == 2 and nothing.startswith("fakevlm: error: nothing could be judged")


def test_fatal_error_naming_an_odd_path_is_escaped(tmp_path):
    out = Path(os.fsdecode(bytes(tmp_path) + b"/missing\x9b\xff/out.jsonl"))
    f.plain_png(tmp_path / "a.png")
    result = run("scan", tmp_path / "a.png", "--no-model", "-o", out)
    assert result.returncode == 2
    assert b"\x9b" not in result.stderr and "missing\\x9b\\xff" in result.stderr.decode("utf-8")


@pytest.mark.slow
def test_resume_matches_odd_names_by_their_bytes(odd_dir):
    out = odd_dir.parent / "out.jsonl"
    first = run("scan", odd_dir, "--no-model", "-o", out)
    assert first.returncode == 0, first.stderr
    before = out.read_bytes()
    again = run("scan", odd_dir, "--no-model", "-o", out, "--resume")
    assert again.returncode == 0, again.stderr
    assert out.read_bytes() == before  # every file recognised: nothing judged or written twice


@pytest.mark.parametrize(("text", "shown"), [
    ("a\x1b[31mb", "a\\x1b[31mb"), ("tab\there", "tab\\there"), ("del\x7f", "del\\x7f"),
    ("c1\x85\x9b", "c1\\x85\\x9b"), ("rtl\u202eevil", "rtl\\u202eevil"), ("iso\u2066x\u2069", "iso\\u2066x\\u2069"),
    ("alm\u061c", "alm\\u061c"), ("zw\u200b\u200d", "zw\\u200b\\u200d"), ("bom\ufeff", "bom\\ufeff"),
    ("shy\xad", "shy\\xad"), ("tag\U000e0041", "tag\\U000e0041"), ("ls\u2028ps\u2029", "ls\\u2028ps\\u2029"),
    ("byte\udcff", "byte\\xff"), ("lone\ud800", "lone\\ud800"), ("pua\ue000", "pua\\ue000"),
    ("ünïcödé 日本 a b", "ünïcödé 日本 a b"), ("nbsp\xa0x", "nbsp\xa0x"), ("[bold]x", "[bold]x"),
])
def test_safe_text_makes_every_invisible_or_controlling_character_visible(text, shown):
    assert safe_text(text) == shown


def test_cli_runner_scan_with_odd_names_does_not_crash(cli, odd_dir):
    result = cli("scan", odd_dir, "--no-model", "--format", "jsonl")
    assert result.exit_code == 0 and len(result.stdout.splitlines()) == len(BAD_NAMES) + len(GOOD_NAMES)


def test_csv_on_a_terminal_shows_names_escaped_and_piped_csv_keeps_them_exact(odd_dir):
    """CSV is exact in a file or a pipe (above); printed on a terminal, a name cannot move the cursor."""
    from fakevlm_cli.commands.scan import scan as scan_command
    from fakevlm_cli.core.options import build
    from fakevlm_cli.outputs.sinks import Diagnostics, Environment

    f.plain_png(odd_dir / "clear\x1b[2J.png", seed=30)
    screen = io.BytesIO()
    request = build("scan", {"paths": (str(odd_dir),), "no_model": True, "fmt": "csv"})
    terminal = Environment(stdout=screen, stdout_tty=True, stderr_tty=False)
    assert scan_command(request, Diagnostics(), terminal) == 0
    shown = screen.getvalue()
    assert b"\x1b" not in shown and b"\x9b" not in shown
    names = {Path(r["path"]).name for r in csv.DictReader(io.StringIO(shown.decode("utf-8")))}
    assert {"clear\\x1b[2J.png", "c1\\x9bchar.png", "csi\\x9b31m.png", "bad\\xff\\xfe.png"} <= names


def test_explain_json_with_a_heatmap_name_that_is_not_utf8(cli, monkeypatch, tmp_path):
    """`explain --json --heatmap` to a non-UTF-8 name: the map is written there, and the JSON names it with the
    odd bytes visible (as JSONL does), valid UTF-8 with no raw C1 byte, instead of a crash."""
    import stub_engine
    from PIL import Image

    stub_engine.install(monkeypatch)
    image = tmp_path / "red.png"
    Image.new("RGB", (32, 32), (230, 20, 20)).save(image)
    heatmap = Path(os.fsdecode(bytes(tmp_path) + b"/map\xff\x9b.png"))
    result = cli("explain", image, "--heatmap", heatmap, "--json")
    assert result.exit_code == 1  # the stub calls a red image fake
    assert b"\x9b" not in result.stdout_bytes and b"\xc2\x9b" not in result.stdout_bytes
    record = json.loads(result.stdout_bytes.decode("utf-8"))
    jsonschema.validate(record, SCHEMA)
    assert record["localisation"]["heatmap"].endswith("map\\xff\\x9b.png") and os.path.isfile(heatmap)
