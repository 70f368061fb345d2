"""Relevance maps (`--localise`): they explain the verdict the model gave, find the toy's planted artifact, map
back to the picture's pixels, cost bounded memory, and never turn a judged file into an error."""

from __future__ import annotations

import json
import math
from pathlib import Path

import jsonschema
import numpy as np
import orjson
import pytest
from PIL import Image

from fakevlm_cli import run
from fakevlm_cli.core.options import JudgeOptions
from fakevlm_cli.core.record import load_schema
from fakevlm_cli.media.discover import Candidate
from fakevlm_cli.model import localise, relevance
from fakevlm_cli.model.localise import View
from fakevlm_cli.testing import toy

SEEDS = toy.FRESH_SEEDS + 40_000  # fresh toy images no other test uses


def toy_files(folder, n: int, *, start: int = 0, fake=None) -> list:
    """`n` toy images saved as PNG (fakes only when fake=True; alternating otherwise) and their ToyImage."""
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(start, start + n):
        item = toy.toy_image(SEEDS + i, fake=True if fake else i % 2 == 0)
        path = folder / f"{'fake' if item.fake else 'real'}_{i:03d}.png"
        item.image.save(path)
        out.append((path, item))
    return out


# ---- on the toy FakeVLM --------------------------------------------------------------------------------------

@pytest.mark.slow
def test_the_heatmap_points_at_the_planted_artifact(toy_engine, tmp_path):
    """The issue's bar: the pointing game hits the artifact on >= 90% of toy fakes, through the scan pipeline
    with the default method, and the top region overlaps the artifact as often."""
    files = toy_files(tmp_path, 32, fake=True)
    records = list(run.predict([Candidate(path=p, explicit=True) for p, _ in files],
                               JudgeOptions(localise=True, batch_size=8), toy_engine))
    assert all(r.verdict == "fake" and r.localisation is not None for r in records)
    hits, overlaps = [], []
    for record, (_, item) in zip(records, files, strict=True):
        loc = record.localisation
        assert loc["method"] == relevance.DEFAULT_METHOD and loc["image_size"] == [toy.IMAGE_SIZE] * 2
        assert loc["crop"] == [0, 0, toy.IMAGE_SIZE, toy.IMAGE_SIZE]  # the toy's input is its whole picture
        hits.append(localise.pointing_hit(loc["grid"], loc["crop"], [item.box]))
        box = loc["regions"][0]["box"]
        overlaps.append(box[0] < item.box[2] and box[2] > item.box[0] and box[1] < item.box[3] and box[3] > item.box[1])
    assert sum(hits) / len(hits) >= 0.9
    assert sum(overlaps) / len(overlaps) >= 0.9


@pytest.mark.slow
@pytest.mark.parametrize("method", relevance.METHODS)
def test_every_method_finds_the_artifact(method, toy_engine):
    items = [toy.toy_image(SEEDS + 100 + i, True) for i in range(8)]
    pixels = [toy_engine.preprocess(t.image) for t in items]
    answers = toy_engine.verdicts(pixels)
    grids = toy_engine.relevance(pixels, answers, method, chunk=4)
    crop = (0, 0, toy.IMAGE_SIZE, toy.IMAGE_SIZE)
    assert all(g.shape == (toy.GRID, toy.GRID) for g in grids)
    assert sum(localise.pointing_hit(g, crop, [t.box]) for g, t in zip(grids, items, strict=True)) >= 7


def test_the_map_explains_the_score_the_record_carries(toy_engine):
    """The quantity explained is the verdict's log-odds in the context the verdict was written in (the lead-in
    the model wrote, which differs between bright and dark toys): its sigmoid is the record's P(fake)."""
    items = [toy.toy_image(SEEDS + 200 + i, fake=i % 2 == 0) for i in range(8)]
    assert len({t.lead_in for t in items}) == 2
    pixels = [toy_engine.preprocess(t.image) for t in items]
    for pixel, answer in zip(pixels, toy_engine.verdicts(pixels), strict=True):
        assert answer.prefix is not None and len(answer.prefix) >= 1
        odds = float(relevance.log_odds(toy_engine, pixel[None], answer.prefix)[0])
        assert 1 / (1 + math.exp(-odds)) == pytest.approx(answer.p_fake, abs=1e-4)


def test_explanations_carry_the_same_prefix(toy_engine):
    items = [toy.toy_image(SEEDS + 300 + i, fake=i % 2 == 0) for i in range(4)]
    pixels = [toy_engine.preprocess(t.image) for t in items]
    assert [a.prefix for a in toy_engine.explain_pixels(pixels, 24)] == [a.prefix for a in toy_engine.verdicts(pixels)]


@pytest.mark.slow
def test_the_default_map_beats_a_random_order_on_deletion_and_insertion(toy_engine):
    """Faithfulness, the measure the default was chosen by (docs/localisation.md): removing patches in the map's
    order lowers P(fake) sooner, and putting them back raises it sooner, than a random order."""
    rng = np.random.default_rng(0)
    items = [toy.toy_image(SEEDS + 400 + i, True) for i in range(4)]
    pixels = [toy_engine.preprocess(t.image) for t in items]
    answers = toy_engine.verdicts(pixels)
    grids = toy_engine.relevance(pixels, answers, relevance.DEFAULT_METHOD)
    n = toy.GRID * toy.GRID
    for pixel, answer, grid in zip(pixels, answers, grids, strict=True):
        ranked = [int(i) for i in np.argsort(-grid.reshape(-1), kind="stable")]
        deletion, insertion = relevance.curves(toy_engine, pixel, answer.prefix, ranked, steps=27, chunk=32)
        randomly = relevance.curves(toy_engine, pixel, answer.prefix, [int(i) for i in rng.permutation(n)],
                                    steps=27, chunk=32)
        assert deletion[0] == pytest.approx(answer.p_fake, abs=1e-4)  # nothing removed: the model's own P(fake)
        assert relevance.area(deletion) < relevance.area(randomly[0])
        assert relevance.area(insertion) > relevance.area(randomly[1])


def test_occlusion_runs_in_batches_no_bigger_than_asked(toy_engine, monkeypatch):
    seen = []
    real = relevance.log_odds

    def counting(engine, pixels, prefix):
        seen.append(pixels.shape[0])
        return real(engine, pixels, prefix)

    monkeypatch.setattr(relevance, "log_odds", counting)
    item = toy.toy_image(SEEDS + 500, True)
    pixel = toy_engine.preprocess(item.image)
    (answer,) = toy_engine.verdicts([pixel])
    (grid,) = toy_engine.relevance([pixel], [answer], "occlusion", chunk=5)
    assert max(seen) <= 5 and sum(seen) > 5 * 4  # many variants, never more than 5 at once
    assert localise.pointing_hit(grid, (0, 0, toy.IMAGE_SIZE, toy.IMAGE_SIZE), [item.box])


def test_a_model_without_a_verdict_gets_a_note_not_a_map(engine, tmp_path):
    """The tiny random model states no verdict: nothing to explain, and the record says why."""
    from conftest import noise_image

    path = tmp_path / "noise.png"
    noise_image(3).save(path)
    (record,) = run.predict([Candidate(path=path, explicit=True)], JudgeOptions(localise=True), engine)
    assert record.verdict == "unknown" and record.localisation is None
    assert "no heatmap: the model stated no verdict" in record.notes


def test_a_failing_map_is_a_note_and_the_verdict_stands(toy_engine, tmp_path, monkeypatch):
    calls = []

    def broken(pixels, answers, method, chunk=8):
        calls.append(len(pixels))
        raise RuntimeError("out of memory")

    monkeypatch.setattr(toy_engine, "relevance", broken)
    files = toy_files(tmp_path, 3, fake=True)
    records = list(run.predict([Candidate(path=p, explicit=True) for p, _ in files],
                               JudgeOptions(localise=True, batch_size=3), toy_engine))
    assert calls == [3, 1, 1, 1]  # the batch, then each image alone
    for record in records:
        assert record.verdict == "fake" and record.p_fake > 0.9 and record.localisation is None
        assert "no heatmap: RuntimeError: out of memory" in record.notes


@pytest.mark.slow
def test_scan_writes_heatmaps_and_the_records_point_at_them(cli, toy_model, tmp_path):
    files = toy_files(tmp_path / "in", 4)
    out, maps = tmp_path / "r.jsonl", tmp_path / "maps"
    result = cli("scan", tmp_path / "in", "-m", toy_model, "-o", out, "--heatmaps", maps, "-q")
    assert result.exit_code == 1, result.output  # fakes were found
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == len(files)
    for row in rows:
        jsonschema.validate(row, load_schema())
        loc = row["localisation"]
        picture = Image.open(loc["heatmap"])
        assert loc["heatmap"].startswith(str(maps)) and loc["heatmap"].endswith(".png")
        assert row["sha256"][:16] in loc["heatmap"] and max(picture.size) >= 384  # small images are enlarged
        assert (row["verdict"] == "fake") == bool(row["model_verdict"] == "fake")
    assert len(list(maps.iterdir())) == len(files)


def test_explain_heatmap(cli, toy_model, tmp_path):
    ((path, _),) = toy_files(tmp_path, 1, fake=True)
    picture = tmp_path / "where.png"
    result = cli("explain", path, "-m", toy_model, "--heatmap", picture, "--json")
    assert result.exit_code == 1
    record = json.loads(result.stdout)
    jsonschema.validate(record, load_schema())
    assert record["localisation"]["heatmap"] == str(picture) and Image.open(picture).format == "PNG"
    panel = cli("explain", path, "-m", toy_model, "--localise")
    assert "Where (attention" in panel.output and "region 1: (" in panel.output


def test_explain_heatmap_never_replaces_the_image_or_a_file_it_did_not_write(cli, toy_model, tmp_path):
    """--heatmap over the image explained (or a link to it) is refused, even with --force; over another file
    that is not a heatmap it needs --force; an earlier heatmap is replaced freely. Refused before the model
    loads, the files untouched."""
    ((path, _),) = toy_files(tmp_path, 1, fake=True)
    evidence = path.read_bytes()
    (tmp_path / "link.png").symlink_to(path)
    notes = tmp_path / "notes.png"
    notes.write_bytes(b"not a heatmap")

    def explain(*args):
        return cli("explain", path, "--heatmap", *args, "--json")

    for target in (path, tmp_path / "link.png"):
        result = explain(target, "--force", "-m", tmp_path / "never-loaded")
        assert result.exit_code == 2 and "is the image being explained" in result.stderr
    result = explain(notes, "-m", tmp_path / "never-loaded")
    assert result.exit_code == 2 and "not a fakevlm heatmap" in result.stderr and "--force" in result.stderr
    assert path.read_bytes() == evidence and notes.read_bytes() == b"not a heatmap"
    assert explain(notes, "--force", "-m", toy_model).exit_code == 1 and Image.open(notes).format == "PNG"
    assert explain(notes, "-m", toy_model).exit_code == 1  # now a heatmap of ours: replaced freely


def test_localise_needs_the_model(cli, tmp_path):
    result = cli("scan", tmp_path, "--no-model", "--localise")
    assert result.exit_code == 2 and "need the model" in result.stderr


# ---- geometry and measures (no model) ----------------------------------------------------------------------

def test_crop_box_is_the_processors_centre_square():
    llava = View(shortest_edge=336, crop_width=336, crop_height=336)
    assert localise.crop_box(1000, 500, llava) == (250.0, 0.0, 750.0, 500.0)  # resized 672 × 336, left 168
    assert localise.crop_box(500, 1000, llava) == (0.0, 250.0, 500.0, 750.0)
    assert localise.crop_box(336, 336, llava) == (0.0, 0.0, 336.0, 336.0)
    assert localise.crop_box(100, 80, llava) == (10.0, 0.0, 90.0, 80.0)  # enlarged, then cropped
    assert localise.crop_box(640, 480, View(None, None, None)) == (0.0, 0.0, 640.0, 480.0)


def test_the_crop_matches_what_the_processor_keeps(toy_engine):
    """A picture whose left and right thirds are black: the processor's input is the bright middle only."""
    width, height = 3 * toy.IMAGE_SIZE, toy.IMAGE_SIZE
    canvas = np.zeros((height, width, 3), dtype=np.uint8)
    x0, _, x1, _ = localise.crop_box(width, height, toy_engine.view)
    canvas[:, int(x0):int(x1)] = 255
    pixels = toy_engine.preprocess(Image.fromarray(canvas)).numpy()
    assert (x0, x1) == (toy.IMAGE_SIZE, 2 * toy.IMAGE_SIZE) and pixels.min() > 1.5  # all white after normalising


def test_describe_regions_and_measures():
    grid = np.zeros((6, 6))
    grid[1, 1], grid[1, 2] = 4.0, 3.0  # the strongest blob, top left
    grid[4, 4] = 2.5  # a second one
    grid[5, 0] = -8.0  # evidence for real: never a region
    crop = (100.0, 0.0, 400.0, 300.0)  # a 300-px crop: 50 px a cell
    loc = localise.describe(grid, method="occlusion", image_size=(500, 300), crop=crop)
    orjson.dumps(loc)  # plain JSON types only
    assert loc["scale"] == 8.0 and loc["grid"][5][0] == -1.0 and loc["grid"][1][1] == 0.5
    assert loc["peak"] == [175.0, 75.0]
    assert [r["box"] for r in loc["regions"]] == [[150.0, 50.0, 250.0, 100.0], [300.0, 200.0, 350.0, 250.0]]
    assert loc["regions"][0]["score"] == pytest.approx(7 / 9.5, abs=1e-4)
    assert localise.pointing_hit(grid, crop, [(160, 60, 190, 90)])
    assert not localise.pointing_hit(grid, crop, [(300, 200, 350, 250)])
    assert localise.energy_inside(grid, crop, [(150, 50, 250, 100)]) == pytest.approx(7 / 9.5)
    assert localise.energy_inside(-grid.clip(min=0), crop, [(0, 0, 10, 10)]) is None  # no positive mass
    prior = localise.centre_prior((6, 6))
    assert prior.argmax() in (14, 15, 20, 21) and localise.xywh_box([1, 2, 3, 4]) == (1, 2, 4, 6)


def test_a_map_with_nothing_positive_has_no_regions():
    loc = localise.describe(-np.ones((3, 3)), method="gradient", image_size=(30, 30), crop=(0, 0, 30, 30))
    assert loc["regions"] == [] and loc["scale"] == 1.0


@pytest.mark.slow
def test_the_faithfulness_benchmark_runs(tmp_path):
    """benchmarks/localisation.py (docs/localisation.md's numbers): its pieces run and report every method."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from benchmarks import localisation as bench

    out = tmp_path / "loc.json"
    assert bench.main(["--fakes", "2", "--random-orders", "1", "--out", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert [r["method"] for r in doc["rows"]] == [*relevance.METHODS, "gradient-x-input", "random", "centre prior"]
    assert doc["paired"]["best"] in relevance.METHODS and len(doc["paired"]["against"]) == 2


@pytest.mark.video
def test_a_clip_gets_a_note_not_a_map(cli, tmp_path, monkeypatch):
    """--localise on a video: no map (one frame's map would be read as the clip's), a note that says where to
    look instead; the image beside it still gets its map and heatmap picture, and explain --heatmap warns."""
    from factories import video_clip
    from stub_engine import install

    install(monkeypatch)
    folder = tmp_path / "in"
    folder.mkdir()
    video_clip(folder / "clip.mp4", [Image.new("RGB", (64, 48), (230, 20, 20))] * 4)
    Image.new("RGB", (64, 48), (230, 20, 20)).save(folder / "red.png")
    out, maps = tmp_path / "r.jsonl", tmp_path / "maps"
    result = cli("scan", folder, "--heatmaps", maps, "-o", out, "-q")
    assert result.exit_code == 1, result.output
    records = {Path(r["path"]).name: r for r in map(json.loads, out.read_text().splitlines())}
    clip, image = records["clip.mp4"], records["red.png"]
    assert clip["media"] == "video" and clip["verdict"] == "fake" and clip["localisation"] is None
    assert any(n.startswith("no heatmap: maps are made for still pictures, not for video clips") for n in clip["notes"])
    assert image["localisation"] is not None and Path(image["localisation"]["heatmap"]).is_file()
    assert len(list(maps.iterdir())) == 1
    result = cli("explain", folder / "clip.mp4", "--heatmap", tmp_path / "c.png")
    assert result.exit_code == 1 and not (tmp_path / "c.png").exists()
    assert "not written: no heatmap: maps are made for still pictures" in result.output.replace("\n", " ")
