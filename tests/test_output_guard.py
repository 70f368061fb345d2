"""One output guard (fakevlm_cli/outputs/guard.py) for every file fakevlm writes: the same hostile targets are
refused, or handled, the same way by each writer — the -o results file, the HTML report (scan --report and
`report -o`), explain --heatmap, scan --heatmaps, and eval's -o, --predictions and --fit-calibration."""

from __future__ import annotations

import hashlib
import json
import os
import stat
from pathlib import Path

import pytest
from PIL import Image

ROOT = hasattr(os, "geteuid") and os.geteuid() == 0  # root writes into read-only folders: faked for root


def _read_only(folder: Path, monkeypatch) -> None:
    """`folder` made read-only; as root, where chmod changes nothing, os.access says so instead."""
    folder.chmod(0o555)
    if ROOT:
        real_access = os.access
        monkeypatch.setattr(os, "access", lambda p, mode, **kw: (not mode & os.W_OK and real_access(p, mode, **kw))
                            if Path(p) == folder else real_access(p, mode, **kw))
HOSTILE = ["symlink to a file outside", "a file that is not ours", "a folder", "a device", "a read-only folder",
           "one of the inputs"]


def red(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (48, 40), (230, 20, 20)).save(path)
    return path


# ---- each writer, as a command line writing to `target`, and the input it reads ------------------------------

def _eval(flag):
    def writer(cli, tmp: Path, target: Path, force: list[str]):
        data = tmp / "labelled"
        for i, folder in enumerate(("real/camA", "fake/sdxl")):
            red(data / folder / f"{i}.png")
        return cli("eval", "--bench", "folder", "--data", data, "-m", tmp / "never-loaded", flag, target, *force)
    return writer, lambda tmp: tmp / "labelled" / "real" / "camA" / "0.png"


def _scan(*extra):
    def writer(cli, tmp: Path, target: Path, force: list[str]):
        red(tmp / "in" / "photo.png")
        args = [a if a != "TARGET" else target for a in extra]
        return cli("scan", tmp / "in" / "photo.png", "--no-model", *args, *force)
    return writer, lambda tmp: tmp / "in" / "photo.png"


def _report(cli, tmp: Path, target: Path, force: list[str]):
    red(tmp / "in" / "photo.png")
    assert cli("scan", tmp / "in" / "photo.png", "--no-model", "-o", tmp / "r.jsonl").exit_code == 0
    return cli("report", tmp / "r.jsonl", "-o", target, *force)


def _explain(cli, tmp: Path, target: Path, force: list[str]):
    red(tmp / "in" / "photo.png")
    return cli("explain", tmp / "in" / "photo.png", "--heatmap", target, "-m", tmp / "never-loaded", *force)


WRITERS = {
    "scan -o": (*_scan("-o", "TARGET"), True),
    "scan --report": (*_scan("-o", "r.jsonl", "--report", "TARGET"), False),
    "report -o": (_report, lambda tmp: tmp / "r.jsonl", False),
    "explain --heatmap": (_explain, lambda tmp: tmp / "in" / "photo.png", False),
    "eval -o": (*_eval("-o"), False),
    "eval --predictions": (*_eval("--predictions"), True),
    "eval --fit-calibration": (*_eval("--fit-calibration"), False),
}  # name: (writer, its input, whether it is a stream: written *into* a device, not renamed over it)


def _place(case: str, tmp: Path, input_of, monkeypatch) -> tuple[Path, list[str]]:
    """The hostile target for `case` (and whether --force is given: only where it must not matter)."""
    out = tmp / "out" / "target.out"
    out.parent.mkdir()
    if case == "symlink to a file outside":
        (tmp / "elsewhere").mkdir()
        (tmp / "elsewhere" / "notes.txt").write_text("my notes")
        out.symlink_to(tmp / "elsewhere" / "notes.txt")
    elif case == "a file that is not ours":
        out.write_text("my notes")
    elif case == "a folder":
        out.mkdir()
    elif case == "a device":
        return Path(os.devnull), []
    elif case == "a read-only folder":
        _read_only(out.parent, monkeypatch)
    elif case == "one of the inputs":
        return input_of(tmp), ["--force"]
    return out, []


@pytest.mark.parametrize("case", HOSTILE)
@pytest.mark.parametrize("name", sorted(WRITERS))
def test_every_writer_refuses_the_same_hostile_targets_the_same_way(cli, tmp_path, monkeypatch, name, case):
    monkeypatch.chdir(tmp_path)
    writer, input_of, stream = WRITERS[name]
    target, force = _place(case, tmp_path, input_of, monkeypatch)
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file() and not p.is_symlink()}
    result = writer(cli, tmp_path, target, force)
    (tmp_path / "out").chmod(0o755)
    if case == "a device" and stream:  # -o /dev/null: written into, never replaced
        assert "target" not in result.stderr and str(target) not in result.stderr, result.stderr
        assert stat.S_ISCHR(os.lstat(os.devnull).st_mode)
        return
    assert result.exit_code == 2, (result.exit_code, result.output)
    lines = result.stderr.strip().splitlines()
    if case == "a folder":  # every output option is a file option: Click refuses a folder as a usage error
        assert f"'{target}' is a directory" in lines[-1], result.stderr
        lines = [f"fakevlm: error: {target}: is a folder"]
    assert len(lines) == 1 and lines[0].startswith(f"fakevlm: error: {target}: "), result.stderr
    expected = {"symlink to a file outside": "exists and is not", "a file that is not ours": "exists and is not",
                "a folder": "is a folder", "a device": "is not a regular file (a device or a pipe)",
                "a read-only folder": "permission denied", "one of the inputs": "refusing to write the"}[case]
    assert expected in lines[0], lines[0]
    if expected == "exists and is not":
        assert lines[0].endswith("refusing to overwrite it (--force overwrites it)")
    assert "never-loaded" not in result.stderr  # refused before the model would load
    for path, content in before.items():  # nothing that was there changed
        assert path.read_bytes() == content, path
    assert stat.S_ISCHR(os.lstat(os.devnull).st_mode)
    if case == "symlink to a file outside":
        assert target.is_symlink()


def test_a_symlink_the_user_names_is_written_through_with_force_and_stays_a_link(tmp_path):
    """--force over a link: the file it names is replaced (a new file beside it, renamed over it), the link
    stays a link, and nothing is left behind."""
    from fakevlm_cli.outputs.guard import CALIBRATION, OutputTarget

    (tmp_path / "pages").mkdir()
    target = tmp_path / "pages" / "calibration.json"
    target.write_text("old notes")
    link = tmp_path / "latest.json"
    link.symlink_to(target)
    OutputTarget(link, CALIBRATION, force=True).replace(b"{}\n")
    assert link.is_symlink() and target.read_bytes() == b"{}\n"
    assert sorted(p.name for p in target.parent.iterdir()) == ["calibration.json"]


# ---- scan --heatmaps: names fakevlm chooses (issue 23, items 1 and 12) -----------------------------------------

def _heatmap_scan(cli, tmp: Path, monkeypatch, *extra):
    from stub_engine import install

    install(monkeypatch)
    photo = red(tmp / "in" / "red.png")
    maps = tmp / "maps"
    maps.mkdir(exist_ok=True)
    name = maps / f"{hashlib.sha256(photo.read_bytes()).hexdigest()[:16]}-red.png"
    return photo, maps, name, lambda: cli("scan", tmp / "in", "--heatmaps", maps, "-o", tmp / "r.jsonl", *extra)


def _record(tmp: Path) -> dict:
    (row,) = [json.loads(line) for line in (tmp / "r.jsonl").read_text().splitlines()]
    return row


@pytest.mark.parametrize("force", [[], ["--force"]])
@pytest.mark.parametrize("planted", ["notes", "symlink outside", "symlink to a device", "folder", "the input"])
def test_a_per_file_heatmap_never_replaces_what_was_planted_at_its_name(cli, tmp_path, monkeypatch, planted, force):
    """A predictable name (hash prefix + file name): a file that is not a fakevlm heatmap, or a symbolic link,
    found there is left as it is, --force or not; the record says why it has no heatmap, the scan goes on."""
    photo, _, name, scan = _heatmap_scan(cli, tmp_path, monkeypatch, *force)
    outside = tmp_path / "outside.txt"
    outside.write_text("someone's notes")
    if planted == "notes":
        name.write_text("my notes")
    elif planted == "symlink outside":
        name.symlink_to(outside)
    elif planted == "symlink to a device":
        name.symlink_to(os.devnull)
    elif planted == "folder":
        name.mkdir()
    else:
        os.link(photo, name)
    evidence = photo.read_bytes()
    result = scan()
    assert result.exit_code == 1, result.output  # the red picture is judged fake: the scan itself went on
    row = _record(tmp_path)
    notes = [n for n in row["notes"] if n.startswith("heatmap not written: ")]
    assert len(notes) == 1 and str(name) in notes[0], row["notes"]
    assert row["localisation"]["heatmap"] is None
    assert outside.read_text() == "someone's notes" and photo.read_bytes() == evidence
    assert stat.S_ISCHR(os.lstat(os.devnull).st_mode)
    if planted.startswith("symlink"):
        assert name.is_symlink() and "symbolic link" in notes[0]
    if planted == "notes":
        assert name.read_text() == "my notes" and "not a fakevlm heatmap" in notes[0]


def test_a_per_file_heatmap_replaces_its_own_earlier_one(cli, tmp_path, monkeypatch):
    _, maps, name, scan = _heatmap_scan(cli, tmp_path, monkeypatch)
    assert scan().exit_code == 1 and name.is_file()
    assert scan().exit_code == 1
    assert _record(tmp_path)["localisation"]["heatmap"] == str(name)
    assert sorted(p.name for p in maps.iterdir()) == [name.name]  # no temporary file left


@pytest.mark.parametrize("how", ["under a file", "read-only"])
def test_a_heatmap_folder_that_cannot_be_made_is_one_error_before_any_work(cli, tmp_path, monkeypatch, how):
    """Not a note on every record and exit 0: one line, exit 2, no model loaded and no results written."""
    from stub_engine import install

    loaded = []
    install(monkeypatch, on_load=lambda: loaded.append(True))
    red(tmp_path / "in" / "red.png")
    if how == "under a file":
        (tmp_path / "file.txt").write_text("x")
        maps = tmp_path / "file.txt" / "maps"
    else:
        (tmp_path / "locked").mkdir()
        _read_only(tmp_path / "locked", monkeypatch)
        maps = tmp_path / "locked" / "maps"
    result = cli("scan", tmp_path / "in", "--heatmaps", maps, "-o", tmp_path / "r.jsonl")
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"fakevlm: error: {maps}: "), result.stderr
    assert not loaded and not (tmp_path / "r.jsonl").exists()


# ---- a link planted between the check and the write ---------------------------------------------------------

def test_a_link_planted_at_the_results_file_after_the_check_is_not_followed(tmp_path):
    """--force checked a new file; a symbolic link put at its name before the file is opened is not followed
    (O_NOFOLLOW): the file it points at is left as it was."""
    from fakevlm_cli.core.errors import OutputError
    from fakevlm_cli.outputs.results_file import ResultsFile

    outside = tmp_path / "notes.txt"
    outside.write_text("my notes")
    out = tmp_path / "r.jsonl"
    results = ResultsFile(out, "jsonl", force=True)
    results.check()
    out.symlink_to(outside)
    with pytest.raises(OutputError, match=f"^{out}: cannot write results: "):
        results.open()
    assert outside.read_text() == "my notes" and out.is_symlink()


def test_a_link_planted_where_a_whole_file_goes_is_replaced_not_written_through(tmp_path):
    from fakevlm_cli.outputs.guard import HEATMAP, OutputTarget

    outside = tmp_path / "notes.txt"
    outside.write_text("my notes")
    target = OutputTarget(tmp_path / "map.png", HEATMAP, user_named=False)
    target.check()
    (tmp_path / "map.png").symlink_to(outside)
    target.replace(b"png", recheck=False)
    assert outside.read_text() == "my notes" and not (tmp_path / "map.png").is_symlink()
    assert (tmp_path / "map.png").read_bytes() == b"png"
