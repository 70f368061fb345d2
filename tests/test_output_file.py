"""The -o results file: never an input, never someone else's file, one writer, resume only into our records."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
from pathlib import Path

import factories as f
import pytest
import stub_engine


@pytest.fixture
def photos(tmp_path) -> Path:
    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(3):
        f.camera_jpeg(folder / f"img{i:03d}.jpg", seed=i)
    f.a1111_png(folder / "sd.png")
    return folder


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_bytes().splitlines()]


# ---- -o is one of the inputs ---------------------------------------------------------------------------------

def _routes_to_an_input(photos: Path, tmp_path: Path) -> dict[str, Path]:
    target = photos / "img000.jpg"
    os.symlink(target, tmp_path / "link.jpg")
    os.link(target, tmp_path / "hard.jpg")
    return {"same path": target, "symlink": tmp_path / "link.jpg", "hard link": tmp_path / "hard.jpg"}


@pytest.mark.parametrize("route", ["same path", "symlink", "hard link"])
@pytest.mark.parametrize("force", [False, True])
def test_output_that_is_an_input_found_in_a_folder_is_refused_untouched(cli, photos, tmp_path, route, force):
    out = _routes_to_an_input(photos, tmp_path)[route]
    evidence = (photos / "img000.jpg").read_bytes()
    result = cli("scan", photos, "--no-model", "-o", out, *(["--force"] if force else []))
    assert result.exit_code == 2
    assert len(result.stderr.strip().splitlines()) == 1 and result.stderr.startswith("fakevlm: error: ")
    assert ("also an input" if force else "not a fakevlm results file") in result.stderr
    assert (photos / "img000.jpg").read_bytes() == evidence


@pytest.mark.parametrize("route", ["same path", "symlink", "hard link"])
def test_a_report_that_is_an_input_found_in_a_folder_is_refused_even_with_force(cli, photos, tmp_path, route):
    """--report --force over a picture the scan reads (by its path, a link to it, or a hard link) would
    replace the evidence with the page at the end of the scan: refused before any work, the picture untouched."""
    out = _routes_to_an_input(photos, tmp_path)[route]
    evidence = (photos / "img000.jpg").read_bytes()
    result = cli("scan", photos, "--no-model", "-o", tmp_path / "r.jsonl", "--report", out, "--force")
    assert result.exit_code == 2 and "refusing to write the report over it" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert (photos / "img000.jpg").read_bytes() == evidence and not (tmp_path / "r.jsonl").exists()


def test_an_earlier_report_inside_the_scanned_folder_is_replaced_not_scanned(cli, photos, tmp_path):
    page = photos / "report.html"
    assert cli("scan", photos, "--no-model", "-o", tmp_path / "r.jsonl", "--report", page).exit_code == 1
    assert cli("scan", photos, "--no-model", "-o", tmp_path / "r.jsonl", "--report", page).exit_code == 1
    assert not [r for r in lines(tmp_path / "r.jsonl") if r["path"].endswith("report.html")]


@pytest.mark.parametrize("route", ["same path", "symlink", "hard link"])
def test_output_named_as_an_input_is_refused_even_when_it_is_ours(cli, photos, tmp_path, route):
    out = _routes_to_an_input(photos, tmp_path)[route]
    result = cli("scan", photos / "img000.jpg", "--no-model", "-o", out, "--force")
    assert result.exit_code == 2 and "also an input" in result.stderr
    previous = tmp_path / "earlier.jsonl"
    assert cli("scan", photos / "sd.png", "--no-model", "-o", previous).exit_code == 1
    before = previous.read_bytes()
    result = cli("scan", previous, photos / "sd.png", "--no-model", "-o", previous)
    assert result.exit_code == 2 and "also an input" in result.stderr and previous.read_bytes() == before


def test_output_listed_on_stdin_with_force_is_refused(cli, photos):
    out = photos / "img001.jpg"
    evidence = out.read_bytes()
    result = cli("scan", "-", "--no-model", "-o", out, "--force", input=f"{photos / 'sd.png'}\n{out}\n")
    assert result.exit_code == 2 and "also an input" in result.stderr and out.read_bytes() == evidence


def test_results_file_inside_the_scanned_folder_is_not_scanned(cli, photos):
    out = photos / "results.jsonl"
    assert cli("scan", photos, "--no-model", "-o", out).exit_code == 1
    assert cli("scan", photos, "--no-model", "-o", out).exit_code == 1  # overwrites its own earlier output
    assert sorted(Path(r["path"]).name for r in lines(out)) == ["img000.jpg", "img001.jpg", "img002.jpg", "sd.png"]


# ---- an existing file that is not ours -----------------------------------------------------------------------

@pytest.mark.parametrize("content", [b"my notes\n", b"\x89PNG\r\n\x1a\n\x00binary", b'{"other": "tool"}\n',
                                     b"a,b,c\n1,2,3\n"])
def test_existing_file_that_is_not_ours_needs_force(cli, photos, tmp_path, content):
    out = tmp_path / "out.jsonl"
    out.write_bytes(content)
    result = cli("scan", photos / "sd.png", "--no-model", "-o", out)
    assert result.exit_code == 2 and "--force" in result.stderr and out.read_bytes() == content
    assert cli("scan", photos / "sd.png", "--no-model", "-o", out, "--force").exit_code == 1
    assert [Path(r["path"]).name for r in lines(out)] == ["sd.png"]


@pytest.mark.parametrize("name", ["out.jsonl", "out.csv"])
def test_earlier_output_and_empty_file_are_overwritten_without_force(cli, photos, tmp_path, name):
    out = tmp_path / name
    assert cli("scan", photos, "--no-model", "-o", out).exit_code == 1
    assert cli("scan", photos / "sd.png", "--no-model", "-o", out).exit_code == 1
    assert out.read_text().count("sd.png") == 1 and "img000" not in out.read_text()
    out.write_bytes(b"")
    assert cli("scan", photos / "sd.png", "--no-model", "-o", out).exit_code == 1


def test_failed_model_load_leaves_no_new_file_and_an_old_one_untouched(cli, photos, tmp_path):
    new = tmp_path / "new.jsonl"
    assert cli("scan", photos / "sd.png", "-m", tmp_path / "missing-model", "-o", new).exit_code == 2
    assert not new.exists()
    old = tmp_path / "old.jsonl"
    cli("scan", photos / "sd.png", "--no-model", "-o", old)
    before = old.read_bytes()
    assert cli("scan", photos / "sd.png", "-m", tmp_path / "missing-model", "-o", old).exit_code == 2
    assert old.read_bytes() == before


# ---- --resume into files that are not ours -------------------------------------------------------------------

@pytest.mark.parametrize("content", [
    b'{"id": 1, "note": "one JSON object, no newline"}',
    b"\x00\x01\x02\xff binary without newline",
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\n\x00binary with newlines\n",
    b'{"schema": 1, "path": "x", "tool": {"name": "othertool"}}\n{"schema": 1, "path": "y"}\n',
    b'{"event": "login", "user": 1}\n{"event": "logout", "user": 1}\n{"event": "lo',
    b"[1, 2, 3]\n",
])
def test_resume_refuses_files_that_are_not_ours_and_leaves_them_untouched(cli, photos, tmp_path, content):
    out = tmp_path / "out.jsonl"
    out.write_bytes(content)
    result = cli("scan", photos, "--no-model", "-o", out, "--resume")
    assert result.exit_code == 2 and len(result.stderr.strip().splitlines()) == 1
    assert "refusing to resume" in result.stderr and out.read_bytes() == content


def test_resume_refuses_our_records_followed_by_a_foreign_line(cli, photos, tmp_path):
    out = tmp_path / "out.jsonl"
    cli("scan", photos / "sd.png", "--no-model", "-o", out)
    content = out.read_bytes() + b'{"other": "tool"}\n'
    out.write_bytes(content)
    result = cli("scan", photos, "--no-model", "-o", out, "--resume")
    assert result.exit_code == 2 and "line 2 is not a fakevlm record" in result.stderr
    assert out.read_bytes() == content


def test_resume_repairs_only_our_torn_line_and_keeps_a_whole_last_record(cli, photos, tmp_path):
    out = tmp_path / "out.jsonl"
    cli("scan", photos, "--no-model", "-o", out)
    full = out.read_bytes().splitlines(keepends=True)
    out.write_bytes(b"".join(full[:2]) + full[2][:-1])  # the third record lost only its newline
    assert cli("scan", photos, "--no-model", "-o", out, "--resume").exit_code == 1  # sd.png was missing
    now = out.read_bytes().splitlines(keepends=True)
    assert now[:3] == full[:3] and len(now) == 4  # the whole third record kept, its newline restored
    assert json.loads(now[3])["path"].endswith("sd.png")
    out.write_bytes(full[0][:30])  # a first record torn by a kill: ours by its start
    assert cli("scan", photos, "--no-model", "-o", out, "--resume").exit_code == 1
    assert len(lines(out)) == 4
    out.write_bytes(b"")  # an empty file is a fine start
    assert cli("scan", photos, "--no-model", "-o", out, "--resume").exit_code == 1 and len(lines(out)) == 4


# ---- resume identity -------------------------------------------------------------------------------------------

def test_resume_knows_a_file_by_any_path_to_it(cli, photos, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "out.jsonl"
    assert cli("scan", "photos", "--no-model", "-o", out).exit_code == 1
    before = out.read_bytes()
    os.symlink(photos, tmp_path / "alias")
    for route in (photos, "./photos/", tmp_path / "alias", "alias/../photos"):
        result = cli("scan", route, "--no-model", "-o", out, "--resume")
        # exit 1: the file recorded fake (sd.png) is part of the scan it completes, judged or not this time
        assert result.exit_code == 1, (route, result.stderr)
        assert out.read_bytes() == before, route  # not one record written twice


def test_a_file_back_to_an_earlier_content_is_judged_again_so_its_last_record_is_true(cli, photos, tmp_path):
    """A, then B (judged again: its record supersedes A's), then A again (a restore from backup): the last
    record must describe the file as it is, so A is judged again too; it was skipped, leaving B's verdict."""
    out = tmp_path / "out.jsonl"
    sd, original = photos / "sd.png", (photos / "sd.png").read_bytes()
    assert cli("scan", photos, "--no-model", "-o", out).exit_code == 1
    f.plain_png(sd, seed=99)
    cli("scan", photos, "--no-model", "-o", out, "--resume")
    sd.write_bytes(original)
    result = cli("scan", photos, "--no-model", "-o", out, "--resume")
    assert result.exit_code == 1 and "sd.png: content changed" in result.stderr
    last = [r for r in lines(out) if r["path"].endswith("sd.png")][-1]
    assert last["verdict"] == "fake" and last["sha256"] == hashlib.sha256(original).hexdigest()
    assert len([r for r in lines(out) if r["path"].endswith("sd.png")]) == 3


def test_a_resumed_scan_exits_as_the_whole_scan_would(cli, photos, tmp_path):
    """Stopped after the fake file was recorded, then resumed: the resumed run judges only real files, yet the
    scan it completes found something fake, so it exits 1 (it exited 0) and the summary says how many of the
    files it skipped were recorded fake; a file recorded fake whose content changed counts as judged now."""
    out = tmp_path / "out.jsonl"
    assert cli("scan", photos / "sd.png", "--no-model", "-o", out).exit_code == 1
    result = cli("scan", photos, "--no-model", "-o", out, "--resume")
    assert result.exit_code == 1
    from rich.console import Console

    from fakevlm_cli.outputs.render import summary_table
    from fakevlm_cli.run.pipeline import ScanStats

    shown = Console(width=200, record=True)
    shown.print(summary_table(ScanStats(resumed=1, resumed_fake=1)))
    assert "1 already in the output (resumed, 1 of them fake)" in shown.export_text()
    assert [Path(r["path"]).name for r in lines(out)].count("sd.png") == 1
    f.plain_png(photos / "sd.png", seed=99)  # now an ordinary picture: judged again, not fake
    assert cli("scan", photos, "--no-model", "-o", out, "--resume").exit_code == 0
    assert cli("scan", photos, "--no-model", "-o", out, "--resume").exit_code == 0  # its last record is what counts


def test_resume_judges_a_changed_file_again_and_says_so(cli, photos, tmp_path):
    out = tmp_path / "out.jsonl"
    cli("scan", photos, "--no-model", "-o", out)
    before = lines(out)
    f.plain_png(photos / "sd.png", seed=99)  # the same name, other content
    result = cli("scan", photos, "--no-model", "-o", out, "--resume")
    assert result.exit_code == 0
    assert "sd.png: content changed since it was recorded" in result.stderr
    after = lines(out)
    assert after[:len(before)] == before and len(after) == len(before) + 1
    new = after[-1]
    assert Path(new["path"]).name == "sd.png" and new["verdict"] == "unknown"
    assert any("supersedes" in note for note in new["notes"])
    assert new["sha256"] != next(r["sha256"] for r in before if r["path"].endswith("sd.png"))
    assert cli("scan", photos, "--no-model", "-o", out, "--resume").exit_code == 0
    assert len(lines(out)) == len(after)  # and only once


# ---- one writer ----------------------------------------------------------------------------------------------

def test_a_second_writer_is_refused_and_the_file_left_alone(cli, photos, tmp_path):
    out = tmp_path / "out.jsonl"
    cli("scan", photos / "sd.png", "--no-model", "-o", out)
    before = out.read_bytes()
    with open(out, "rb") as held:  # another run's lock (flock locks are per open file)
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        for extra in ([], ["--resume"], ["--force"]):
            result = cli("scan", photos, "--no-model", "-o", out, *extra)
            assert result.exit_code == 2 and "another fakevlm run is writing this file" in result.stderr
            assert str(out) in result.stderr and out.read_bytes() == before


def test_the_lock_is_held_from_before_the_model_loads_to_the_end(cli, photos, tmp_path, monkeypatch):
    out = tmp_path / "out.jsonl"
    seen = []

    def try_lock():
        with open(out, "rb") as other:
            try:
                fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
                seen.append("free")
            except BlockingIOError:
                seen.append("held")

    stub_engine.install(monkeypatch, on_load=try_lock)
    assert cli("scan", photos, "-o", out, "-q").exit_code == 1
    try_lock()
    assert seen == ["held", "free"]


# ---- -o - ------------------------------------------------------------------------------------------------------

def test_dash_means_stdout(cli, photos, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = cli("scan", photos / "sd.png", "--no-model", "-o", "-")
    assert result.exit_code == 1 and not (tmp_path / "-").exists()
    assert json.loads(result.stdout)["path"].endswith("sd.png")
    csv_out = cli("scan", photos / "sd.png", "--no-model", "-o", "-", "--format", "csv")
    assert csv_out.stdout.startswith("path,verdict,")
    assert cli("scan", photos, "--no-model", "-o", "-", "--resume").exit_code == 2


def test_resume_under_tighter_limits_does_not_record_a_file_twice(cli, photos, tmp_path):
    out = tmp_path / "out.jsonl"
    assert cli("scan", photos, "--no-model", "-o", out).exit_code == 1
    before = out.read_bytes()
    for limits in (["--max-pixels", "1"], ["--max-memory", "1K"]):  # each would now refuse the files unread
        result = cli("scan", photos, "--no-model", "-o", out, "--resume", *limits)
        assert result.exit_code == 1 and out.read_bytes() == before, limits  # 1: sd.png is recorded fake


def test_resuming_from_another_folder_says_why_every_file_is_judged_again(cli, photos, tmp_path, monkeypatch):
    """Relative paths are taken from the current folder: resumed from inside the folder it scanned, a scan
    matches none of them and judges every file again. It does so (as documented), and says why it may have."""
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "out.jsonl"
    assert cli("scan", "photos", "--no-model", "-o", out).exit_code == 1
    monkeypatch.chdir(photos)
    result = cli("scan", ".", "--no-model", "-o", out, "--resume")
    assert "4 files judged again have the same content as records of other paths" in result.stderr
    assert "recorded from another folder?" in result.stderr
    monkeypatch.chdir(tmp_path)
    (photos / "copy.jpg").write_bytes((photos / "img000.jpg").read_bytes())  # a copy under a new name
    result = cli("scan", "photos", "--no-model", "-o", out, "--resume")
    assert result.exit_code == 1 and "judged again" not in result.stderr  # paths matched: no such warning


def test_a_read_only_file_system_is_said_as_such(cli, photos, tmp_path, monkeypatch):
    """An evidence disk mounted read-only: the reason is the mount, not a permission to ask for."""
    import types

    from fakevlm_cli.outputs import results_file

    monkeypatch.setattr(results_file.os, "access", lambda path, mode: False)
    monkeypatch.setattr(results_file.os, "statvfs", lambda path: types.SimpleNamespace(f_flag=os.ST_RDONLY))
    result = cli("scan", photos, "--no-model", "-o", tmp_path / "out.jsonl")
    assert result.exit_code == 2 and "read-only file system, cannot write the results file in" in result.stderr


def test_resume_with_other_options_than_the_records_is_refused_before_the_model_loads(cli, photos, tmp_path,
                                                                                         monkeypatch):
    """A run with --localise, resumed without it, left 10 records with maps and 70 without, silently."""
    stub_engine.install(monkeypatch)
    out = tmp_path / "out.jsonl"
    first = cli("scan", photos, "-o", out, "-m", "stub", "--localise", "--threshold", "0.4")  # the stub's id
    assert first.exit_code in (0, 1) and all(json.loads(line)["localisation"] for line in out.read_text().splitlines())
    before = out.read_bytes()
    loads = []
    stub_engine.install(monkeypatch, on_load=lambda: loads.append(1))
    result = cli("scan", photos, "-o", out, "-m", "stub", "--resume", "--threshold", "0.6")
    assert result.exit_code == 2 and out.read_bytes() == before and loads == []
    (line,) = result.stderr.strip().splitlines()
    assert line == (f"fakevlm: error: {out}: --resume with other options than its records: --localise (on there, "
                    "off now); --threshold (0.4 there, 0.6 now). Give the same options, or --force to mix records "
                    "made both ways")
    assert cli("scan", photos, "-o", out, "-m", "stub", "--resume", "--localise", "--threshold", "0.4").exit_code < 2
    assert cli("scan", photos, "-o", out, "-m", "stub", "--resume", "--force").exit_code < 2  # mixed, as asked
    assert out.read_bytes().startswith(before)
    edge = tmp_path / "edge.jsonl"
    assert cli("scan", photos, "-o", edge, "-m", "stub", "--threshold", "1").exit_code < 2
    result = cli("scan", photos, "-o", edge, "-m", "stub", "--resume", "--threshold", "0")
    assert "--threshold (1.0 there, 0.0 now)" in result.stderr  # not "on"/"off": 1.0 == True in a lookup


def test_resume_of_a_metadata_only_scan_goes_on_without_the_model(cli, photos, tmp_path):
    out = tmp_path / "out.jsonl"
    assert cli("scan", photos, "-o", out, "--no-model").exit_code in (0, 1)
    assert cli("scan", photos, "-o", out, "--no-model", "--resume").exit_code in (0, 1)
    refused = cli("scan", photos, "-o", out, "--resume", "-m", "some/model")
    assert refused.exit_code == 2 and "--model (no model there, some/model now)" in refused.stderr
