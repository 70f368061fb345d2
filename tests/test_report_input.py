"""What `fakevlm report` reads and how far it goes: which pictures it may embed and how much of them it reads,
numbers in records it cannot trust, the largest page a browser opens, and results files that are not clean
JSON Lines (docs/report.md)."""

from __future__ import annotations

import hashlib
import json
import math
import random
from pathlib import Path

import orjson
from factories import camera_jpeg
from test_report import data_of, record, write_jsonl

from fakevlm_cli.outputs.report import entry, read_records
from fakevlm_cli.outputs.report import page as report_page
from fakevlm_cli.outputs.report import pictures as report_pictures


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ---- which pictures, and how much of them ---------------------------------------------------------------------

def test_pictures_come_only_from_the_results_folder_unless_their_hash_matches(cli, tmp_path, monkeypatch):
    """A hand-written results file naming `../`, absolute or linked paths with no SHA-256 must not pull those
    pictures into a page that will be shared; with the recorded hash, or under --images-from, they are shown."""
    out, private = tmp_path / "out", tmp_path / "private"
    out.mkdir()
    private.mkdir()
    inside, secret = camera_jpeg(out / "inside.jpg"), camera_jpeg(private / "secret.jpg", seed=3)
    (out / "link.jpg").symlink_to(secret)
    rows = [record("inside.jpg"), record("../private/secret.jpg"), record(str(secret)), record("link.jpg"),
            record("secret.jpg"), record(str(secret), sha256=sha(secret)), record(str(inside))]
    results = write_jsonl(out / "r.jsonl", rows)
    monkeypatch.chdir(private)  # the current folder is no licence either
    result = cli("report", results, "-o", out / "report.html")
    assert result.exit_code == 0, result.output
    shown = data_of((out / "report.html").read_text())
    assert [bool(r["thumb"]) for r in shown] == [True, False, False, False, False, True, True]
    assert shown[1]["thumb_note"] == ("no picture: ../private/secret.jpg is outside the results file's folder and "
                                      "the record has no SHA-256 to check it against")
    assert all("outside the results file's folder" in shown[n]["thumb_note"] for n in (2, 3, 4))
    assert "4 of 7 pictures not shown: ../private/secret.jpg is outside" in result.stderr
    result = cli("report", results, "-o", out / "from.html", "--images-from", private)
    assert [bool(r["thumb"]) for r in data_of((out / "from.html").read_text())][4] is True


def test_a_picture_is_read_only_up_to_its_bound_and_decoded_within_the_pixel_limit(cli, tmp_path, monkeypatch):
    big, small = camera_jpeg(tmp_path / "big.jpg"), tmp_path / "small.png"
    from PIL import Image

    Image.new("RGB", (40, 30), (9, 9, 9)).save(small)
    assert small.stat().st_size < 1000 < big.stat().st_size
    monkeypatch.setattr(report_pictures, "MAX_PICTURE_BYTES", 1000)
    results = write_jsonl(tmp_path / "r.jsonl", [record("big.jpg", sha256=sha(big)), record("small.png")])
    result = cli("report", results, "-o", tmp_path / "a.html")
    shown = data_of((tmp_path / "a.html").read_text())
    assert shown[0]["thumb"] is None and shown[1]["thumb"]
    assert shown[0]["thumb_note"] == "no picture: big.jpg is over 0 MiB, the most the report reads for a picture"
    assert "1 of 2 pictures not shown: big.jpg is over" in result.stderr
    monkeypatch.setattr(report_pictures, "DEFAULT_MAX_PIXELS", 1000)  # the scan's limit, here 40 × 30 > 1000
    cli("report", results, "-o", tmp_path / "b.html")
    note = data_of((tmp_path / "b.html").read_text())[1]["thumb_note"]
    assert note.startswith("no picture: small.png does not decode (") and "--max-pixels" in note


# ---- numbers a record cannot be trusted with ----------------------------------------------------------------

def _map(box) -> dict:
    return {"method": "gradcam", "image_size": [64, 48], "crop": [0, 0, 64, 48], "grid": [[0.1, 0.9], [0.2, 0.3]],
            "regions": [{"box": box, "score": 0.5}, {"box": [0, 0, 10, 10], "score": 0.2}]}


def test_a_region_box_holding_inf_drops_that_region_not_the_report(cli, tmp_path):
    """The red team's record: `"inf"` in a region's box was an OverflowError, exit 2 and no page."""
    rows = [record("a.jpg", verdict="fake", model_verdict="fake", localisation=_map([0, 0, "inf", 5])),
            record("b.jpg")]
    out = tmp_path / "r.html"
    result = cli("report", write_jsonl(tmp_path / "r.jsonl", rows), "-o", out)
    assert result.exit_code == 0, result.output
    first = data_of(out.read_text())[0]
    assert [r["px"] for r in first["loc"]["regions"]] == ["(0, 0)–(10, 10) px"]
    assert first["notes"] == ["map region 1 left out: its box or score is not numbers in range"]


NASTY = [None, True, -1, 0, 2, 1e308, -1e308, 2**63, "inf", "nan", "1e999", "0.5", "", [], {}, [1, 2],
         ["inf"] * 4, [[float("nan")]], {"t": "inf"}, [{"box": "x"}], "\u202e<script>"]
FIELDS = ["p_fake", "calibrated_p_fake", "threshold", "width", "height", "size", "inconclusive", "media", "verdict"]
NESTED = {"localisation": ["image_size", "crop", "grid", "regions", "method"],
          "video": ["duration_s", "fps", "frame_count", "sampled", "most_suspicious", "explained_frame", "frame"],
          "calibration": ["inconclusive", "file"]}


def _numbers(value):
    if isinstance(value, dict):
        for v in value.values():
            yield from _numbers(v)
    elif isinstance(value, list):
        for v in value:
            yield from _numbers(v)
    elif isinstance(value, float):
        yield value


def test_fuzzed_record_fields_never_stop_the_report_and_every_number_shown_is_finite():
    """A seeded loop (hypothesis is not a dependency): thousands of records, each with a few fields, top-level
    or nested, set to hostile values; every entry is built, serialised, and holds only finite numbers."""
    from fakevlm_cli.outputs.report.entries import Summary

    rng = random.Random(23)
    summary = Summary()
    base = record("a.jpg", localisation=_map([1, 2, 3, 4]), model_verdict="fake",
                  video={"duration_s": 3, "fps": 25, "sampled": [{"t": 1, "p_fake": 0.2}], "frame": {"t": 1}},
                  calibration={"inconclusive": [0.2, 0.8], "file": "c.json"}, calibrated_p_fake=0.5)
    for _ in range(3000):
        data = json.loads(json.dumps(base))
        for _ in range(rng.randint(1, 4)):
            if rng.random() < 0.5:
                data[rng.choice(FIELDS)] = rng.choice(NASTY)
            else:
                part = rng.choice(list(NESTED))
                data[part] = data[part] if isinstance(data.get(part), dict) else {}
                data[part][rng.choice(NESTED[part])] = rng.choice(NASTY)
        if rng.random() < 0.3:
            data["localisation"] = _map([1, 2, 3, 4])
            data["localisation"]["regions"][0]["box"][rng.randrange(4)] = rng.choice(NASTY)
        shown = entry(data, 0, None)
        summary.add(shown, data)
        assert all(math.isfinite(v) for v in _numbers(shown)), data
        orjson.dumps(shown)  # no NaN, nothing the page cannot carry
    assert summary.total == 3000


# ---- the largest page a browser opens -------------------------------------------------------------------------

def test_a_page_too_big_for_a_browser_drops_its_thumbnails_or_is_refused(cli, tmp_path, monkeypatch):
    for n in range(3):
        camera_jpeg(tmp_path / f"{n}.jpg", seed=n)
    results = write_jsonl(tmp_path / "r.jsonl", [record(f"{n}.jpg") for n in range(3)])
    out = tmp_path / "r.html"
    assert cli("report", results, "-o", out, "--thumbnail-size", "256").exit_code == 0
    full = out.stat().st_size
    assert cli("report", results, "-o", out, "--thumbnail-size", "0").exit_code == 0
    text_only = out.stat().st_size
    monkeypatch.setattr(report_page, "MAX_PAGE_BYTES", (full + text_only) // 2)
    result = cli("report", results, "-o", out, "--thumbnail-size", "256")
    assert result.exit_code == 0, result.output
    html = out.read_text()
    assert [r["thumb"] for r in data_of(html)] == [None, None, None]
    assert "thumbnails left out: with them the page would be" in html
    assert "thumbnails left out" in result.stderr and "--thumbnail-size" in result.stderr
    before = out.read_bytes()
    monkeypatch.setattr(report_page, "MAX_PAGE_BYTES", text_only // 2)
    result = cli("report", results, "-o", out)
    assert result.exit_code == 2
    assert result.stderr.strip().count("\n") == 0 and "a browser can open: split the results file" in result.stderr
    assert out.read_bytes() == before  # the earlier page stays; no page that cannot open is written


# ---- results files that are not clean JSON Lines --------------------------------------------------------------

def _paths(path: Path) -> list:
    return [(n, data["path"] if data else None) for n, data in read_records(path)]


def test_records_are_read_through_torn_lines_any_line_ending_a_bom_and_pretty_printed_objects(tmp_path):
    one, two, three = (json.dumps(record(name)) for name in ("a.jpg", "b.jpg", "c.jpg"))
    torn = tmp_path / "torn.jsonl"
    torn.write_text(one[:20] + "\n" + two + "\n" + "not json\n\n" + three + "\n" + one[:30])
    assert _paths(torn) == [(1, None), (2, "b.jpg"), (3, None), (5, "c.jpg"), (6, None)]
    for ending in ("\r", "\r\n"):
        mixed = tmp_path / "endings.jsonl"
        mixed.write_bytes(("\ufeff" + ending.join([one, two, three]) + ending).encode())
        assert _paths(mixed) == [(1, "a.jpg"), (2, "b.jpg"), (3, "c.jpg")]
    pretty = tmp_path / "pretty.json"
    pretty.write_text(json.dumps(record("a.jpg", reasons=["x"]), indent=2) + "\n"
                      + json.dumps(record("b.jpg", exif={"make": "{"}), indent=2) + "\n")
    assert [p for _, p in _paths(pretty)] == ["a.jpg", "b.jpg"]
    torn_pretty = tmp_path / "torn-pretty.json"
    cut = json.dumps(record("a.jpg"), indent=2)[:40]
    torn_pretty.write_text(cut + "\n" + two + "\n")
    assert _paths(torn_pretty) == [(1, None), (cut.count("\n") + 2, "b.jpg")]


def test_a_line_over_the_record_bound_is_named_once_and_never_held(tmp_path, monkeypatch):
    from fakevlm_cli.outputs.report import results as report_results

    monkeypatch.setattr(report_results, "MAX_RECORD_CHARS", 200)
    one = json.dumps(record("a.jpg"))
    long = json.dumps(record("long.jpg", answer="x" * 1000))
    path = tmp_path / "r.jsonl"
    path.write_text("\n".join([long, one, "{", *['  "k": 1,'] * 100, "}", one]) + "\n")
    assert _paths(path) == [(1, None), (2, "a.jpg"), (3, None), (105, "a.jpg")]


def test_what_the_report_says_about_skipped_lines_records_and_pictures(cli, tmp_path):
    camera_jpeg(tmp_path / "here.jpg")
    results = write_jsonl(tmp_path / "r.jsonl", [record("here.jpg"), "{\"torn"])
    result = cli("report", results, "-o", tmp_path / "r.html")
    assert "1 line is not a fakevlm record (line 2): left out" in result.stderr
    assert "(1 record)" in result.stderr and "pictures not shown" not in result.stderr
    assert "1 line that is not a fakevlm record skipped (line 2)" in (tmp_path / "r.html").read_text()
    results = write_jsonl(tmp_path / "r.jsonl", [record("here.jpg"), record("gone.jpg"), "x", "y"])
    result = cli("report", results, "-o", tmp_path / "r.html")
    assert "2 lines are not fakevlm records (lines 3, 4): left out" in result.stderr
    assert "1 of 2 pictures not shown: gone.jpg not found" in result.stderr and "(2 records)" in result.stderr
