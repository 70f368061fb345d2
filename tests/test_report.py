"""`fakevlm report` and `scan --report` without a browser: the page's policy and structure, what it refuses to
overwrite, where its pictures come from (and when they are withheld), and which inputs it reads.
The browser tests (test_report_browser.py) check what the page does."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from conftest import noise_image
from factories import camera_jpeg

from fakevlm_cli.outputs.report import entry, visible


def record(path: str, **fields) -> dict:
    base = {"schema": 1, "path": path, "verdict": "real", "p_fake": 0.1, "tool": {"name": "fakevlm", "version": "0"}}
    return {**base, **fields}


def write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


class _Page(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.scripts: list[str] = []
        self.styles: list[str] = []
        self._in: str | None = None

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        self._in = tag if tag in ("script", "style") else None

    def handle_data(self, data):
        if self._in == "script" and not self.tags[-1][1].get("type"):
            self.scripts.append(data)
        elif self._in == "style":
            self.styles.append(data)

    def handle_endtag(self, tag):
        self._in = None


def parse(html: str) -> _Page:
    page = _Page()
    page.feed(html)
    return page


def data_of(html: str) -> list[dict]:
    block = re.search(r'<script type="application/json" id="fakevlm-data">(.*?)</script>', html, re.S)
    return json.loads(block.group(1))["records"]


def test_the_page_allows_only_its_own_script_and_style(cli, tmp_path):
    results = write_jsonl(tmp_path / "r.jsonl", [record("a.jpg"), record("b.jpg", verdict="fake", p_fake=0.9)])
    out = tmp_path / "report.html"
    result = cli("report", results, "-o", out)
    assert result.exit_code == 0, result.output
    html = out.read_text("utf-8")
    page = parse(html)
    metas = [attrs for tag, attrs in page.tags if tag == "meta"]
    assert metas[1]["http-equiv"] == "Content-Security-Policy"  # right after the charset, before any script
    policy = dict(part.strip().split(" ", 1) for part in metas[1]["content"].split(";"))

    def digest(text: str) -> str:
        return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"

    assert policy == {"default-src": "'none'", "script-src": digest(page.scripts[0]),
                      "style-src": digest(page.styles[0]), "img-src": "data:", "base-uri": "'none'",
                      "form-action": "'none'"}
    assert len(page.scripts) == 1 and len(page.styles) == 1
    linked = [(tag, attrs) for tag, attrs in page.tags if {"src", "href", "action", "style"} & set(attrs)]
    assert linked == []  # nothing to fetch, no inline style attribute (the policy would refuse it)
    assert not re.search(r"https?://", html)
    assert [r["path"] for r in data_of(html)] == ["a.jpg", "b.jpg"]


def test_untrusted_text_cannot_leave_the_data_block(cli, tmp_path):
    evil = "</script><script>alert(1)</script><!-- \u2028 &amp; \u202e \x1b[31m"
    results = write_jsonl(tmp_path / "r.jsonl", [record(evil, answer=evil, exif={"make": evil}, category=evil,
                                                        label="fake", evidence=[{"source": "c2pa", "key": evil,
                                                                                 "value": evil, "signal": "info"}])])
    out = tmp_path / "report.html"
    assert cli("report", results, "-o", out, "--title", evil).exit_code == 0
    html = out.read_text("utf-8")
    assert html.count("</script>") == 3 and html.count("<script") == 3 and "<!-- " not in html
    assert "\u202e" not in html and "\x1b" not in html  # shown as visible escapes
    (shown,) = data_of(html)
    assert shown["path"] == "</script><script>alert(1)</script><!-- \\u2028 &amp; \\u202e \\x1b[31m"
    assert "&lt;/script&gt;" in html  # the title and the category table, escaped by Jinja


def test_visible_keeps_lines_and_cuts_long_text():
    assert visible("a\nb\u202ec\td") == "a\nb\\u202ec\\td"
    assert len(visible("x" * 10_000, 100)) == 100


def test_entry_accepts_only_what_it_understands():
    weird = {"verdict": "<b>", "p_fake": "0.5", "label": "maybe", "localisation": {"grid": "nope"}, "exif": [1],
             "evidence": ["x", {"source": 1}], "path": None, "disagreement": "yes"}
    shown = entry(weird, 0, None)
    assert shown["verdict"] == "unknown" and shown["p"] is None and shown["label"] is None and shown["loc"] is None
    assert shown["exif"] == [] and len(shown["provenance"]) == 1 and shown["disagreement"] is False


def test_clip_and_calibration_fields_are_checked_too():
    weird = {"media": "<video>", "video": {"duration_s": -1, "fps": "x", "sampled": [{"t": 1, "p_fake": 2},
             {"t": "<b>"}, "x", {"t": 2.5, "p_fake": 0.7}], "most_suspicious": {"t": 2.5, "p_fake": 0.7},
             "aggregate": "\u202emax"},
             "calibrated_p_fake": 7, "inconclusive": "yes", "calibration": {"inconclusive": [0.2, "<b>"]},
             "evidence": [{"source": "c2pa", "key": "signer", "value": "x", "trust": "<script>"},
                          {"source": "c2pa", "key": "signer", "value": "y", "trust": "trusted"}]}
    shown = entry(weird, 0, None)
    assert shown["media"] is None and shown["cal"] is None
    video = shown["video"]
    assert video["duration"] is None and video["facts"] == "" and video["aggregate"] == "\\u202emax"
    assert video["frames"] == [{"t": 1.0, "p": None}, {"t": 2.5, "p": 0.7}] and video["top"] == {"t": 2.5, "p": 0.7}
    assert [p["text"].endswith("chains to a trust anchor)") for p in shown["provenance"]] == [False, True]
    good = entry({"calibrated_p_fake": 0.55, "inconclusive": True, "calibration": {"file": "c.json",
                  "inconclusive": [0.2, 0.8]}}, 1, None)
    assert good["cal"] == {"p": 0.55, "inconclusive": True, "band": [0.2, 0.8], "file": "c.json"}


@pytest.mark.video
def test_a_clip_gets_no_picture_and_no_note_for_it(tmp_path):
    """`fakevlm report` never decodes a clip as a picture: the page draws its frames instead."""
    from fakevlm_cli.outputs.report.pictures import Pictures

    assert Pictures(tmp_path / "r.jsonl", None, 160)({"media": "video", "path": "clip.mp4"}) == (None, None)


def test_pictures_are_read_back_and_checked_against_the_recorded_hash(cli, tmp_path, monkeypatch):
    photos = tmp_path / "photos"
    photos.mkdir()
    same, changed = camera_jpeg(photos / "same.jpg"), camera_jpeg(photos / "changed.jpg", seed=2)
    rows = [record(f"photos/{p.name}", sha256=hashlib.sha256(p.read_bytes()).hexdigest()) for p in (same, changed)]
    rows.append(record("photos/gone.jpg"))
    results = write_jsonl(tmp_path / "r.jsonl", rows)
    noise_image(9).save(changed, "JPEG")  # the evidence changed after the scan
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "report.html"
    result = cli("report", results, "-o", out)
    assert result.exit_code == 0 and "2 of 3 pictures not shown" in result.stderr
    shown = data_of(out.read_text())
    assert shown[0]["thumb"] and shown[0]["thumb_note"] is None
    assert shown[1]["thumb"] is None and "changed since it was recorded" in shown[1]["thumb_note"]
    assert shown[2]["thumb"] is None and shown[2]["thumb_note"] == "no picture: photos/gone.jpg not found"
    monkeypatch.chdir(photos)  # relative paths start at --images-from, or the results file's folder
    again = tmp_path / "again.html"
    assert cli("report", results, "-o", again, "--thumbnail-size", "64").exit_code == 0
    assert data_of(again.read_text())[0]["thumb"]
    none = tmp_path / "none.html"
    assert cli("report", results, "-o", none, "--thumbnail-size", "0").exit_code == 0
    assert [r["thumb"] for r in data_of(none.read_text())] == [None, None, None]


def test_a_file_with_no_fakevlm_record_is_refused_and_no_page_is_written(cli, tmp_path):
    """`report photo.jpg -o x.html` wrote an empty page and exited 0; a results file that is only empty stays a
    (empty) report."""
    photo = tmp_path / "photo.jpg"
    noise_image(3).save(photo, "JPEG")
    notes = tmp_path / "notes.txt"
    notes.write_text("not\na results\nfile\n")
    for source, lines in ((photo, None), (notes, "3 lines")):
        out = tmp_path / "x.html"
        result = cli("report", source, "-o", out)
        assert result.exit_code == 2 and not out.exists()
        (line,) = result.stderr.strip().splitlines()
        assert line.startswith(f"fakevlm: error: {source}: is not a fakevlm results file (")
        assert lines is None or f"({lines}, none a fakevlm record)" in line
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    assert cli("report", empty, "-o", tmp_path / "e.html").exit_code == 0


def test_reads_eval_predictions_explain_json_and_skips_other_lines(cli, tmp_path):
    rows = [record("a.jpg", label="fake", category="x", item_id="a"), "not json", json.dumps({"path": "x"}), ""]
    results = write_jsonl(tmp_path / "r.jsonl", rows)
    out = tmp_path / "report.html"
    result = cli("report", results, "-o", out)
    assert result.exit_code == 0 and "2 lines are not fakevlm records" in result.stderr
    html = out.read_text()
    assert 'id="confusion"' in html and "2 lines that are not a fakevlm record skipped" in html
    single = tmp_path / "explain.json"
    single.write_text(json.dumps(record("one.jpg", verdict="fake"), indent=2))
    assert cli("report", single, "-o", out).exit_code == 0
    assert [r["path"] for r in data_of(out.read_text())] == ["one.jpg"]


def test_what_the_report_refuses_to_overwrite(cli, tmp_path):
    results = write_jsonl(tmp_path / "r.jsonl", [record("a.jpg")])
    notes = tmp_path / "notes.html"
    notes.write_text("<p>my notes</p>")
    result = cli("report", results, "-o", notes)
    assert result.exit_code == 2 and "not a fakevlm report" in result.stderr and notes.read_text() == "<p>my notes</p>"
    assert cli("report", results, "-o", notes, "--force").exit_code == 0
    assert cli("report", results, "-o", notes).exit_code == 0  # now it is one: replaced freely
    result = cli("report", results, "-o", results)
    assert result.exit_code == 2 and "is also an input" in result.stderr
    result = cli("report", results, "-o", tmp_path / "nowhere" / "r.html")
    assert result.exit_code == 2 and "does not exist" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.html", "r.jsonl"]  # no temporary file left


def test_a_report_folder_that_cannot_be_written_is_refused_before_the_scan(cli, tmp_path, monkeypatch):
    """Checked before any work (not after an hour of scanning); EACCES is faked: as root chmod changes nothing."""
    import os

    locked = tmp_path / "locked"
    locked.mkdir()
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode, **kw: mode != os.W_OK and real_access(p, mode, **kw)
                        if Path(p) == locked else real_access(p, mode, **kw))
    camera_jpeg(tmp_path / "a.jpg")
    out = tmp_path / "r.jsonl"
    result = cli("scan", tmp_path / "a.jpg", "--no-model", "-o", out, "--report", locked / "r.html")
    assert result.exit_code == 2 and not out.exists()
    assert result.stderr == (f"fakevlm: error: {locked / 'r.html'}: permission denied, cannot write the report in "
                             f"{locked}\n")


def test_the_report_names_where_a_scan_took_its_paths(cli, tmp_path):
    camera_jpeg(tmp_path / "a.jpg")
    listing = tmp_path / "paths.txt"
    listing.write_text(f"{tmp_path / 'a.jpg'}\n")
    for args, said in ((["--from-file", listing], f"the list in {listing}"),
                       (["-", tmp_path / "a.jpg"], f"stdin, {tmp_path / 'a.jpg'}")):
        report = tmp_path / "r.html"
        result = cli("scan", *args, "--no-model", "--format", "jsonl", "--report", report, "--force",
                     input=f"{tmp_path / 'a.jpg'}\n")
        assert result.exit_code == 0, result.output
        assert said in report.read_text()


def test_scan_report_with_the_stub_engine(cli, tmp_path, monkeypatch):
    from stub_engine import install

    install(monkeypatch)
    folder = tmp_path / "in"
    folder.mkdir()
    camera_jpeg(folder / "a.jpg")
    (folder / "bad.jpg").write_bytes(b"\xff\xd8\xff garbage")
    report, out = tmp_path / "scan.html", tmp_path / "r.jsonl"
    result = cli("scan", folder, "-o", out, "--report", report, "--localise")
    assert result.exit_code in (0, 1), result.output
    shown = data_of(report.read_text())
    assert [Path(r["path"]).name for r in shown] == ["a.jpg", "bad.jpg"]
    assert shown[0]["thumb"] and shown[0]["loc"]["rows"] == 4 and shown[1]["verdict"] == "error"
    assert cli("scan", folder, "-o", out, "--report", out).exit_code == 2  # one file cannot be both
    result = cli("scan", folder, "--no-model", "--report", report, "--format", "jsonl")
    assert result.exit_code == 0 and data_of(report.read_text())[0]["thumb"]  # metadata-only scans get pictures


def test_an_interrupted_scan_still_writes_its_report(cli, tmp_path, monkeypatch):
    from stub_engine import install

    engine = install(monkeypatch)
    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(3):
        camera_jpeg(folder / f"{i}.jpg", seed=i)
    calls = []

    def stop_on_second(pixels):
        calls.append(len(pixels))
        if len(calls) == 2:
            raise KeyboardInterrupt
        return type(engine).verdicts(engine, pixels)

    monkeypatch.setattr(engine, "verdicts", stop_on_second)
    report = tmp_path / "scan.html"
    result = cli("scan", folder, "--report", report, "--batch-size", "1", "--format", "jsonl")
    assert result.exit_code == 130
    assert [Path(r["path"]).name for r in data_of(report.read_text())] == ["0.jpg"]


@pytest.mark.parametrize("size", [0, 32])
def test_thumbnail_size_option(cli, size, tmp_path):
    results = write_jsonl(tmp_path / "r.jsonl", [record(str(camera_jpeg(tmp_path / "a.jpg")))])
    out = tmp_path / "r.html"
    assert cli("report", results, "-o", out, "--thumbnail-size", size).exit_code == 0
    thumb = data_of(out.read_text())[0]["thumb"]
    if size:
        from io import BytesIO

        from PIL import Image

        assert max(Image.open(BytesIO(base64.b64decode(thumb))).size) == size
    else:
        assert thumb is None


@pytest.mark.slow
def test_report_never_imports_torch(tmp_path):
    import subprocess
    import sys

    results = write_jsonl(tmp_path / "r.jsonl", [record("a.jpg")])
    code = ("import sys\nfrom fakevlm_cli.cli import main\n"
            f"sys.argv = ['fakevlm', 'report', {str(results)!r}, '-o', {str(tmp_path / 'r.html')!r}]\n"
            "try:\n    main()\nexcept SystemExit as exit:\n    assert exit.code == 0, exit.code\n"
            "print('LOADED', [m for m in ('torch', 'transformers') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "LOADED []" in out and (tmp_path / "r.html").exists()


def test_the_report_never_replaces_a_device_a_recorded_picture_or_a_link(cli, tmp_path):
    """-o /dev/null (as root, renaming the page over it replaced the device for the whole machine), a picture
    the results record (with --force: not a report, so forced over), and a symbolic link (the page goes to the
    file it names, the link stays)."""
    import os
    import stat

    from PIL import Image

    picture = tmp_path / "photo.png"
    Image.new("RGB", (8, 8), (200, 10, 10)).save(picture)
    evidence = picture.read_bytes()
    results = write_jsonl(tmp_path / "r.jsonl", [record(str(picture)), record("elsewhere.jpg")])
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    result = cli("report", results, "-o", fifo, "--force")
    assert result.exit_code == 2 and "is not a regular file" in result.stderr
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    result = cli("report", results, "-o", picture, "--force")
    assert result.exit_code == 2 and "is a file the results record" in result.stderr
    assert picture.read_bytes() == evidence
    target = tmp_path / "pages" / "report.html"
    target.parent.mkdir()
    target.write_text("old notes")
    link = tmp_path / "latest.html"
    link.symlink_to(target)
    assert cli("report", results, "-o", link, "--force").exit_code == 0
    assert link.is_symlink() and len(data_of(target.read_text())) == 2
    assert sorted(p.name for p in target.parent.iterdir()) == ["report.html"]  # no temporary file left


def test_the_page_lists_decisive_evidence_first_as_the_explain_panel_does():
    shown = entry({"evidence": [
        {"signal": "info", "source": "jpeg", "key": "quantization", "value": "quality ≈ 85"},
        {"signal": "camera", "source": "exif", "key": "Make", "value": "Canon"},
        {"signal": "ai_generated", "source": "c2pa", "key": "c2pa.actions", "value": "trainedAlgorithmicMedia",
         "strong": True}]}, 0, None)
    assert [p["text"].split("]")[0] for p in shown["provenance"]] == ["[ai_generated", "[camera", "[info"]
    assert [p["strong"] for p in shown["provenance"]] == [True, False, False]
