"""The HTML report in a real browser (headless Chromium, tests/browser.py): it loads offline with no request,
no console error and no CSP violation; its filters, sorting, search, paging and heatmap toggle work; and no
script payload planted in a file name, EXIF string, C2PA field or model text runs or fetches anything."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from browser import launch, visit
from factories import a1111_png, camera_jpeg, truncated_jpeg, video_clip
from PIL import Image, ImageStat

from fakevlm_cli.testing import toy

# starting Chromium and rendering pages takes seconds a test
pytestmark = [pytest.mark.browser, pytest.mark.slow]

SEEDS = toy.FRESH_SEEDS + 50_000


@pytest.fixture(scope="module")
def browser():
    manager, browser = launch()
    yield browser
    browser.close()
    manager.stop()


def cards(page) -> list[dict]:
    """What each rendered card shows: its verdict badge, P(fake) text and path."""
    return page.eval_on_selector_all("article.card", """cards => cards.map(c => ({
        verdict: c.querySelector('.badge').textContent, pct: c.querySelector('.pct').textContent,
        path: c.querySelector('.path').textContent, p: c.dataset.index}))""")


def not_blank(png: bytes) -> bool:
    image = Image.open(io.BytesIO(png)).convert("RGB")
    colours = image.getcolors(maxcolors=1 << 20) or []
    return len(colours) > 200 and max(ImageStat.Stat(image).stddev) > 20


@pytest.fixture(scope="module")
def mixed_report(cli, tmp_path_factory, toy_model):
    """A scan of a mixed folder with the toy FakeVLM: toy fakes and reals, a camera JPEG, a generator PNG, a
    broken file and a clip with two fake frames in eight, with maps, records and the report."""
    root = tmp_path_factory.mktemp("mixed")
    folder = root / "photos"
    folder.mkdir()
    for i in range(6):
        item = toy.toy_image(SEEDS + i, fake=i % 2 == 0)
        item.image.save(folder / f"{'fake' if item.fake else 'real'}_{i}.png")
    camera_jpeg(folder / "camera.jpg")
    a1111_png(folder / "astronaut.png")
    truncated_jpeg(folder / "broken.jpg")
    clip = [toy.toy_image(SEEDS + 10 + i, fake=i in (5, 6)).image for i in range(8)]  # two fake frames of eight
    video_clip(folder / "clip.mp4", clip, rate=2)
    report, results = root / "report.html", root / "results.jsonl"
    result = cli("scan", folder, "-m", toy_model, "--localise", "--explain", "-o", results, "--report", report, "-q")
    assert result.exit_code == 1, result.output
    return report, results


@pytest.mark.video
def test_the_scan_report_loads_clean_and_shows_every_record(browser, mixed_report):
    report, results = mixed_report
    seen = visit(browser, report)
    seen.assert_clean()
    page = seen.page
    shown = cards(page)
    assert len(shown) == 10 == len(results.read_text().splitlines())
    assert {c["verdict"] for c in shown} == {"FAKE", "REAL", "ERROR"}
    assert page.text_content("#shown") == "10 of 10 shown"
    broken = page.locator("article.card", has_text="broken.jpg")
    assert "truncated JPEG file" in broken.text_content() and broken.locator("img").count() == 0
    fake = page.locator("article.card", has_text="fake_0.png")
    assert "This is a fake image." in fake.text_content() and "region 1: (" in fake.text_content()
    assert fake.locator("canvas.heat").count() == 1 and fake.locator(".crop").count() == 1
    assert fake.locator(".region").count() >= 1
    assert page.locator("article.card", has_text="real_1.png").locator(".region").count() == 0  # judged real
    overruled = page.locator("article.card", has_text="astronaut.png")
    assert "metadata overrules the model" in overruled.text_content()
    assert "Stable Diffusion" in overruled.text_content()
    assert page.locator("svg[aria-label='histogram of P(fake)'] rect").count() >= 2
    every_img = page.eval_on_selector_all("img", "imgs => imgs.map(i => [i.src.slice(0, 23), i.naturalWidth])")
    assert len(every_img) == 9 and all(src == "data:image/jpeg;base64," and w > 0 for src, w in every_img)
    clip = page.locator("article.card", has_text="clip.mp4")  # judged frame by frame: a strip, its worst frame
    assert clip.locator(".badge").text_content() == "FAKE" and clip.locator("canvas").count() == 0
    assert clip.locator("img").get_attribute("alt") == "the most suspicious frame"
    assert "The most suspicious frame, at " in clip.text_content()
    assert clip.locator(".strip .frame").count() == 8 and clip.locator(".strip .frame.hi").count() == 2
    assert clip.locator(".strip .frame.top.hi").count() == 1
    assert "most suspicious frame: at 2.50 s" in clip.text_content() or "at 3.00 s" in clip.text_content()
    assert "no heatmap: maps are made for still pictures" in clip.text_content()


def test_filters_sorting_search_and_the_heatmap_toggle(browser, mixed_report):
    report, _ = mixed_report
    seen = visit(browser, report)
    page = seen.page
    page.uncheck("input[name=verdict][value=real]")
    page.uncheck("input[name=verdict][value=error]")
    assert {c["verdict"] for c in cards(page)} == {"FAKE"} and page.text_content("#shown") == "5 of 10 shown"
    page.check("input[name=verdict][value=real]")
    page.check("input[name=verdict][value=error]")

    page.select_option("#sort", "p-desc")
    values = [c["pct"] for c in cards(page)]
    assert values[0] == "P(fake) >99.9%" and values[-1] == "P(fake) \u2014"  # no P(fake) (the error) last
    numbers = [float(v.split()[1].strip("<>%")) for v in values if "%" in v]
    assert numbers == sorted(numbers, reverse=True)
    page.select_option("#sort", "p-asc")
    assert cards(page)[0]["pct"] != "P(fake) >99.9%" and cards(page)[-1]["pct"] == "P(fake) \u2014"

    page.fill("#search", "REAL_")
    assert {Path(c["path"]).name for c in cards(page)} == {"real_1.png", "real_3.png", "real_5.png"}
    page.fill("#search", "no such name")
    assert page.text_content("#list") == "No record matches these filters."
    page.fill("#search", "")

    heat = page.locator("canvas.heat").first
    assert heat.is_visible()
    page.uncheck("#heatmaps")
    assert not heat.is_visible() and page.locator(".crop").first.is_visible()  # the crop stays outlined
    page.check("#heatmaps")
    assert heat.is_visible()
    seen.assert_clean()


def test_a_screenshot_shows_the_report(browser, mixed_report, tmp_path):
    report, _ = mixed_report
    seen = visit(browser, report, height=1400)
    page = seen.page
    page.select_option("#sort", "p-desc")
    shot = page.screenshot(path=str(tmp_path / "report.png"))
    assert not_blank(shot)
    figure = page.locator(".figure").first.screenshot()
    assert max(ImageStat.Stat(Image.open(io.BytesIO(figure)).convert("RGB")).stddev) > 5  # a picture, not a grey box
    seen.assert_clean()


def test_pages_of_a_large_report(cli, browser, tmp_path):
    """Records beyond one page are reached with the pager; the page renders only its own cards."""
    results = tmp_path / "many.jsonl"
    rows = [{"schema": 1, "path": f"photos/{i:04d}.jpg", "verdict": "fake" if i % 3 == 0 else "real",
             "p_fake": (i % 100) / 100, "tool": {"name": "fakevlm", "version": "0"}} for i in range(120)]
    results.write_text("".join(json.dumps(r) + "\n" for r in rows))
    report = tmp_path / "many.html"
    assert cli("report", results, "-o", report).exit_code == 0
    seen = visit(browser, report)
    page = seen.page
    assert len(cards(page)) == 50 and page.text_content("#page") == "page 1 of 3"
    page.click("#next")
    page.click("#next")
    assert len(cards(page)) == 20 and page.text_content("#page") == "page 3 of 3" and page.is_disabled("#next")
    assert cards(page)[-1]["path"] == "photos/0119.jpg"
    seen.assert_clean()


# ---- hostile content ------------------------------------------------------------------------------------------

PAYLOADS = [
    "<img src=x onerror=\"window.__pwned='img';alert(1)\">",
    "</script><script>window.__pwned='script';alert(2)</script>",
    "javascript:window.__pwned='url';alert(3)",
    "\"><svg onload=\"window.__pwned='svg'\"><a href=\"javascript:alert(4)\">x</a>",
    ("<iframe srcdoc=\"<script>parent.__pwned='frame'</script>\"></iframe>"
     "<link rel=stylesheet href=http://198.51.100.7/x.css>"),
    ("<style>@import url(http://198.51.100.7/s.css)</style>"
     "<meta http-equiv=refresh content=\"0;url=javascript:alert(5)\">"),
]
RTL_NAME = "invoice\u202egnp.exe"  # shows as "invoiceexe.png" when the override is obeyed


def hostile_record(i: int, payload: str) -> dict:
    return {
        "schema": 1, "path": f"evidence/{payload}{RTL_NAME}.png", "path_bytes": None, "verdict": "fake",
        "p_fake": 0.93, "threshold": 0.5, "model_verdict": "fake", "text_verdict": "fake",
        "explanation": payload, "answer": f"This is a fake image. {payload}", "lead_in": payload,
        "reasons": [payload, f"AI-generated per c2pa {payload}"], "disagreement": False,
        "evidence": [{"source": "c2pa", "key": f"claim_generator {payload}", "value": payload, "signal": "ai_generated",
                      "strong": True, "generator": payload},
                     {"source": "xmp", "key": "DigitalSourceType", "value": payload, "signal": "ai_generated",
                      "strong": True}],
        "exif": {"make": payload, "model": payload, "software": payload, payload: payload},
        "notes": [payload, "\u202e" + payload], "sha256": None, "size": 10, "format": payload, "width": 100,
        "height": 100, "frames": 1, "error": None, "model": {"id": payload, "pixels": payload}, "elapsed_ms": 1,
        "label": "fake", "category": payload, "item_id": payload,
        "localisation": {"method": payload, "target": "fake", "image_size": [100, 100], "crop": [0, 0, 100, 100],
                         "grid": [[0, 1], [0.5, 0]], "scale": 1, "regions": [{"box": [50, 0, 100, 50], "score": 1}],
                         "heatmap": payload},
        "tool": {"name": "fakevlm", "version": payload},
    }


def assert_nothing_ran(seen, payload_texts: list[str]) -> None:
    page = seen.page
    seen.assert_clean()
    assert page.evaluate("window.__pwned") is None
    assert page.locator("iframe, link, meta[http-equiv=refresh], a[href], object, embed, form").count() == 0
    assert page.locator("script").count() == 3  # the page's own: meta, data, code
    assert page.locator("style").count() == 1
    assert page.eval_on_selector_all("img", "imgs => imgs.every(i => i.src.startsWith('data:image/jpeg;base64,'))")
    body = page.inner_text("body")  # what is rendered (not the data block's JSON)
    for text in payload_texts:
        assert text in body  # shown, as text


def test_hostile_strings_in_records_are_shown_never_run(cli, browser, tmp_path):
    """A results file whose every string is a script payload: paths, model text, EXIF, C2PA and XMP fields,
    categories, notes, the map's method and heatmap path."""
    results = tmp_path / "hostile.jsonl"
    results.write_text("".join(json.dumps(hostile_record(i, p)) + "\n" for i, p in enumerate(PAYLOADS)))
    report = tmp_path / "hostile.html"
    assert cli("report", results, "-o", report, "--title", PAYLOADS[1]).exit_code == 0
    seen = visit(browser, report)
    assert seen.page.title() == PAYLOADS[1]
    for card in seen.page.locator("article.card").all():  # open every folded section
        for details in card.locator("details").all():
            details.locator("summary").click()
    assert_nothing_ran(seen, PAYLOADS[:3])
    body = seen.page.inner_text("body")
    assert "\u202e" not in body and "invoice\\u202egnp.exe" in body  # the override shown, not obeyed
    assert seen.page.locator("#categories td", has_text="window.__pwned").count() >= 1  # eval table, escaped


def test_hostile_file_names_and_exif_through_a_scan(cli, browser, tmp_path, monkeypatch):
    """The same through a real scan (stub engine: no torch): payloads in file names and in EXIF strings."""
    from stub_engine import install

    install(monkeypatch)
    folder = tmp_path / "in"
    folder.mkdir()
    names = ["<img src=x onerror=\"window.__pwned=1\">.jpg", "\"><svg onload=\"window.__pwned=2\">.jpg",
             f"{RTL_NAME}.jpg", "javascript:window.__pwned=3.jpg"]
    for i, name in enumerate(names):
        camera_jpeg(folder / name, seed=i, make=PAYLOADS[0], model=PAYLOADS[1])
    report = tmp_path / "scan.html"
    result = cli("scan", folder, "--report", report, "--localise", "--format", "jsonl")
    assert result.exit_code in (0, 1), result.output
    seen = visit(browser, report)
    for details in seen.page.locator("details").all():
        details.locator("summary").click()
    assert_nothing_ran(seen, [names[0], names[1], names[3], PAYLOADS[0], PAYLOADS[1]])
    assert seen.page.locator("article.card img").count() == len(names)  # the thumbnails the scan made
    assert "invoice\\u202egnp.exe.jpg" in seen.page.inner_text("body")


# ---- eval predictions ---------------------------------------------------------------------------------------

def test_an_eval_predictions_report_has_roc_confusion_and_categories(cli, browser, tmp_path, toy_model):
    data = tmp_path / "bench"
    for i in range(8):
        truth = "fake" if i % 2 else "real"
        item = toy.toy_image(SEEDS + 100 + i, fake=truth == "fake")
        path = data / truth / ("sdxl" if i < 4 else "dalle") / f"{i}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        item.image.save(path)
    (data / "real" / "dalle").mkdir(exist_ok=True)
    preds = tmp_path / "preds.jsonl"
    result = cli("eval", "--bench", "folder", "--data", data, "-m", toy_model, "--predictions", preds, "-q",
                 "--threshold", "0.99999")  # a threshold that makes some fakes real: a matrix with misses
    assert result.exit_code == 0, result.output
    report = tmp_path / "eval.html"
    assert cli("report", preds, "-o", report).exit_code == 0
    seen = visit(browser, report)
    page = seen.page
    assert page.locator("svg[aria-label='ROC curve'] polyline").count() == 1
    assert "AUC 1.000" in page.text_content("svg[aria-label='ROC curve']")
    matrix = page.eval_on_selector_all("#confusion tr", "rows => rows.map(r => [...r.cells].map(c => c.textContent))")
    assert matrix[0] == ["truth \\ verdict", "real", "fake", "unknown", "error"]
    counts = {row[0]: [int(n) for n in row[1:]] for row in matrix[1:]}
    assert sum(counts["real"]) == 4 and sum(counts["fake"]) == 4 and counts["fake"][0] >= 1  # misses exist
    categories = page.eval_on_selector_all("#categories tr", "rows => rows.map(r => r.cells[0].textContent)")
    assert categories[1:] == ["dalle", "sdxl"]
    operating = page.eval_on_selector_all("#operating tr", "rows => rows.map(r => r.cells[0].textContent)")
    assert operating == ["TPR at FPR \u2264 1%", "TPR at FPR \u2264 5%", "EER"]
    assert page.locator("#reliability circle").count() >= 1 and "ECE 0." in page.text_content("body")
    wrong = sum(counts["real"][1:]) + counts["fake"][0] + sum(counts["fake"][2:])
    page.check("#wrong")
    assert len(cards(page)) == wrong
    seen.assert_clean()


# ---- what main added: clips, calibration, C2PA trust, JPEG structure -----------------------------------------

def clip_record(payload: str) -> dict:
    frames = [{"t": t, "p_fake": p} for t, p in ((0.0, 0.2), (1.5, 0.4), (3.0, 0.97), (4.5, 0.6), (6.0, None))]
    return {
        "schema": 1, "path": f"clips/{payload}{RTL_NAME}.mp4", "verdict": "fake", "p_fake": 0.79, "threshold": 0.5,
        "model_verdict": "fake", "answer": f"This is a fake image. {payload}", "media": "video",
        "video": {"container": payload, "codec": payload, "width": 640, "height": 360, "fps": 2.0, "duration_s": 7.5,
                  "frame_count": 15, "rotation": 0, "sampled": [*frames, {"t": payload, "p_fake": payload}],
                  "aggregate": payload, "most_suspicious": frames[2], "explained_frame": frames[2]},
        "evidence": [{"source": "c2pa", "key": "signer", "value": payload, "signal": "info", "strong": False,
                      "trust": "untrusted"},
                     {"source": "jpeg", "key": "quality", "value": f"about 75 {payload}", "signal": "info",
                      "strong": False}],
        "notes": ["no heatmap: maps are made for still pictures, not for video clips"], "sha256": None,
        "tool": {"name": "fakevlm", "version": "0"},
    }


def inconclusive_record(payload: str) -> dict:
    return {
        "schema": 1, "path": f"photos/{payload}.jpg", "verdict": "unknown", "p_fake": 0.61, "threshold": 0.42,
        "calibrated_p_fake": 0.55, "inconclusive": True, "model_verdict": "unknown",
        "calibration": {"file": payload, "sha256": None, "target_fpr": 0.01, "mapping": "platt",
                        "inconclusive": [0.2, 0.8]},
        "reasons": [f"model inconclusive: calibrated P(fake) = 55.0% lies in the inconclusive band {payload}"],
        "tool": {"name": "fakevlm", "version": "0"},
    }


def test_clips_calibration_and_signer_trust_render_and_hostile_strings_stay_text(cli, browser, tmp_path):
    """A clip's frame strip (one bar a judged frame, the most suspicious marked, no broken picture), the
    inconclusive badge with the calibrated P(fake) and its band, signer trust and JPEG structure in the
    provenance: payloads in every new string are shown, never run."""
    results = tmp_path / "new.jsonl"
    rows = [clip_record(PAYLOADS[0]), inconclusive_record(PAYLOADS[1]), clip_record(PAYLOADS[3])]
    results.write_text("".join(json.dumps(r) + "\n" for r in rows))
    report = tmp_path / "new.html"
    assert cli("report", results, "-o", report).exit_code == 0
    seen = visit(browser, report)
    page = seen.page
    clip = page.locator("article.card").nth(0)
    assert clip.locator(".strip .frame").count() == 5  # the malformed sixth frame dropped
    assert clip.locator(".strip .frame.top").count() == 1 and clip.locator(".strip .frame.hi").count() == 2
    assert clip.locator(".strip .frame.top").get_attribute("title") == "3.00 s: P(fake) 97.0% (most suspicious)"
    assert clip.locator("img").count() == 0 and clip.locator(".media").text_content() == "VIDEO"
    text = clip.inner_text()
    assert "most suspicious frame: at 3.00 s, P(fake) 97.0%" in text and "over 7.50 s" in text
    assert "signer NOT trusted" in text and "jpeg quality: about 75" in text
    inc = page.locator("article.card").nth(1)
    assert inc.locator(".badge").text_content() == "INCONCLUSIVE"
    assert inc.locator(".pct").text_content() == "calibrated P(fake) 55.0%"
    assert "(model 61.0%)" in inc.inner_text() and "in the band 20.0%\u201380.0%" in inc.inner_text()
    assert inc.locator(".bar .band").count() == 1
    assert "1 inconclusive" in page.text_content("#inconclusive-count")
    page.uncheck("input[name=verdict][value=fake]")
    assert [c["verdict"] for c in cards(page)] == ["INCONCLUSIVE"]
    page.check("input[name=verdict][value=fake]")
    assert_nothing_ran(seen, [PAYLOADS[0], PAYLOADS[1], PAYLOADS[3]])
    page.screenshot(path=str(tmp_path / "new.png"), full_page=True)
