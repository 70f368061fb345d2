"""Size and speed of the HTML report at scale (issue #12): docs/report.md's numbers.

    python benchmarks/report.py                    # 10,000 records (~1 min on 2 cores, plus the browser)
    python benchmarks/report.py --records 1000

Writes a results file of N scan records shaped like real ones (an answer, reasons, evidence, EXIF, a 24 × 24
relevance map, as `scan --explain --localise` writes on LLaVA-1.5; calibrated P(fake) and an inconclusive
band on each; every tenth a video clip with 32 sampled frames), pointing at photo-like JPEGs (1024 × 768:
smooth fields with sensor-like noise, 64 distinct pictures reused), then measures:

* `fakevlm report` (`build_report`): wall time, peak memory of the process (ru_maxrss), file size;
* headless Chromium (the system's, as in the tests): time from navigation to the first page rendered
  (``body[data-ready]``), to sort all records by P(fake), and to filter them by a path search, each the best
  of 3 loads.

Nothing is asserted. Results: a table on stdout and benchmarks/results/report-<date>.json (or --out).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

RESULTS_DIR = Path(__file__).resolve().parent / "results"
PICTURES = 64


def photo(seed: int, size=(1024, 768)):
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    h, w = size[1], size[0]
    y, x = np.mgrid[0:h, 0:w] / max(h, w)
    base = np.stack([0.5 + 0.3 * np.sin(6.28 * (rng.uniform(0.5, 3) * x + rng.uniform(0.5, 3) * y + rng.uniform()))
                     for _ in range(3)], -1)
    noisy = base + rng.normal(0, 0.06, base.shape)
    return Image.fromarray((np.clip(noisy, 0, 1) * 255).astype(np.uint8), "RGB")


def make_results(folder: Path, n: int) -> Path:
    import hashlib

    import numpy as np

    pictures = folder / "photos"
    pictures.mkdir()
    hashes = []
    for i in range(PICTURES):
        path = pictures / f"{i:02d}.jpg"
        photo(i).save(path, "JPEG", quality=88)
        hashes.append(hashlib.sha256(path.read_bytes()).hexdigest())
    rng = np.random.default_rng(0)
    results = folder / "results.jsonl"
    with open(results, "w") as out:
        for i in range(n):
            k = i % PICTURES
            p = float(rng.beta(0.5, 0.5))
            grid = np.clip(rng.normal(0, 0.2, (24, 24)), -1, 1)
            grid[rng.integers(0, 20), rng.integers(0, 20)] = 1.0
            fake = p >= 0.5
            record = {
                "schema": 1, "path": f"photos/{k:02d}.jpg", "path_bytes": None, "verdict": "fake" if fake else "real",
                "p_fake": round(p, 6), "threshold": 0.5, "model_verdict": "fake" if fake else "real",
                "text_verdict": "fake" if fake else "real",
                "explanation": "The lighting on the face is inconsistent with the background, and the fingers of the "
                               "left hand merge into one another; the text on the sign is garbled.",
                "answer": f"This is a {'fake' if fake else 'real'} image. The lighting on the face is inconsistent "
                          "with the background, and the fingers of the left hand merge into one another; the text "
                          "on the sign is garbled.",
                "lead_in": "", "reasons": [f"model says {'fake' if fake else 'real'} (P(fake) = {p:.1%})"],
                "disagreement": False,
                "evidence": [{"source": "exif", "key": "Make", "value": "Canon", "signal": "camera", "strong": False}],
                "exif": {"make": "Canon", "model": "Canon EOS R5", "software": "Firmware 1.2"}, "notes": [],
                "sha256": hashes[k], "size": (pictures / f"{k:02d}.jpg").stat().st_size, "format": "JPEG",
                "width": 1024, "height": 768, "frames": 1, "error": None,
                "model": {"id": "lingcco/fakeVLM", "dtype": "bfloat16", "quant": "none", "pixels": "viewer"},
                "elapsed_ms": 120.0,
                "localisation": {"method": "attention", "target": "fake", "image_size": [1024, 768],
                                 "crop": [128.0, 0.0, 896.0, 768.0],
                                 "grid": [[round(float(v), 3) for v in row] for row in grid], "scale": 0.02,
                                 "peak": [400.0, 300.0], "regions": [{"box": [400.0, 288.0, 432.0, 320.0],
                                                                      "score": 0.2, "peak": 1.0}],
                                 "heatmap": None},
                "tool": {"name": "fakevlm", "version": "0.1.0"},
            }
            record.update(calibrated_p_fake=round(p, 6), inconclusive=False,
                          calibration={"file": "ours.json", "sha256": None, "target_fpr": 0.01, "mapping": "platt",
                                       "inconclusive": [0.2, 0.8]})
            if i % 10 == 9:  # a clip: 32 sampled frames, no picture and no map (as scan writes them)
                frames = [{"t": round(0.5 * f, 3), "p_fake": round(float(rng.uniform()), 6)} for f in range(32)]
                record.update(path=f"clips/{k:02d}.mp4", format="MP4", media="video", localisation=None, video={
                    "container": "mp4", "codec": "h264", "width": 1920, "height": 1080, "fps": 30.0,
                    "duration_s": 16.0, "frame_count": 480, "rotation": 0, "sampled": frames,
                    "aggregate": "mean of the top third of sampled frames", "most_suspicious": max(
                        frames, key=lambda f: f["p_fake"]), "explained_frame": None})
            else:
                record["media"] = "image"
            out.write(json.dumps(record) + "\n")
    return results


def browser_times(report: Path, rounds: int = 3) -> dict:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from browser import launch

    manager, browser = launch()
    best: dict[str, float] = {}
    try:
        for _ in range(rounds):
            context = browser.new_context(offline=True, viewport={"width": 1280, "height": 1000})
            page = context.new_page()
            start = time.perf_counter()
            page.goto(report.resolve().as_uri())
            page.wait_for_selector("body[data-ready='1']", timeout=120_000)
            times = {"open_s": time.perf_counter() - start}
            start = time.perf_counter()
            page.select_option("#sort", "p-desc")
            page.wait_for_selector("article.card")
            times["sort_s"] = time.perf_counter() - start
            start = time.perf_counter()
            page.fill("#search", "photos/07")
            page.wait_for_function("document.querySelector('#shown').textContent.startsWith('12')"  # 126 at 10,000
                                   " || document.querySelector('#shown').textContent.startsWith('13')")  # 13 at 1,000
            times["search_s"] = time.perf_counter() - start
            times["heap_mb"] = page.evaluate("performance.memory ? performance.memory.usedJSHeapSize / 2**20 : null")
            for key, value in times.items():
                if value is not None:
                    best[key] = min(best.get(key, value), value)
            context.close()
    finally:
        browser.close()
        manager.stop()
    return {k: round(v, 3) for k, v in best.items()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=10_000)
    parser.add_argument("--thumbnail-size", type=int, default=None)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    from fakevlm_cli.outputs.report import THUMBNAIL_SIZE, build_report

    size = THUMBNAIL_SIZE if args.thumbnail_size is None else args.thumbnail_size
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        results = make_results(folder, args.records)
        report = folder / "report.html"
        start = time.perf_counter()
        built = build_report(results, report, images_from=folder, thumbnail_size=size)
        build_s = time.perf_counter() - start
        doc = {"date": _dt.date.today().isoformat(), "machine": platform.processor() or platform.machine(),
               "records": built.records, "thumbnail_size": size, "results_mb": round(results.stat().st_size / 2**20, 1),
               "report_mb": round(report.stat().st_size / 2**20, 1), "build_s": round(build_s, 2),
               "build_peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
               "browser": browser_times(report)}
    print("| records | thumbnails | JSONL | report | build | build peak RSS | open | sort | search |")
    print("|---|---|---|---|---|---|---|---|---|")
    b = doc["browser"]
    print(f"| {doc['records']:,} | {size} px | {doc['results_mb']} MiB | {doc['report_mb']} MiB | {doc['build_s']} s "
          f"| {doc['build_peak_rss_mb']} MiB | {b.get('open_s')} s | {b.get('sort_s')} s | {b.get('search_s')} s |")
    out = args.out or RESULTS_DIR / f"report-{doc['date']}.json"
    out.write_text(json.dumps(doc, indent=1) + "\n")
    print(f"\nwritten: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
