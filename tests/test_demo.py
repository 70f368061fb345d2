"""`fakevlm demo`: offline, on the toy model, every sample judged as its evidence says; a second run reuses all."""

from __future__ import annotations

import json

import pytest

from fakevlm_cli.outputs.report import is_ours
from fakevlm_cli.testing import samples, toy


@pytest.fixture(scope="module")
def demo_run(cli, toy_model, tmp_path_factory):
    folder = tmp_path_factory.mktemp("demo") / "here"
    return folder, cli("demo", folder)


@pytest.mark.slow  # the demo run: seconds on the toy model
def test_every_sample_is_judged_as_its_evidence_says(demo_run):
    folder, result = demo_run
    assert result.exit_code == 0, result.stderr
    records = {json.loads(line)["path"].rsplit("/", 1)[-1]: json.loads(line)
               for line in (folder / "results.jsonl").read_text().splitlines()}
    assert sorted(records) == sorted(s.name for s in samples.SAMPLES)
    got = {name: record["verdict"] for name, record in records.items()}
    assert got == {s.name: s.expected for s in samples.SAMPLES}
    # the metadata files are decided by their evidence: the toy itself calls their pixels real
    for name in ("stable-diffusion.png", "xmp-ai-source.jpg", "c2pa-ai-source.jpg"):
        assert records[name]["model_verdict"] == "real"
        assert "overruled by the metadata" in " ".join(records[name]["reasons"])
    assert records["clip.mp4"]["video"]["sampled"]  # judged on its frames
    assert is_ours(folder / "report.html")
    page = (folder / "report.html").read_text()
    assert "<h1>fakevlm demo: a TOY model on sample files" in page
    assert page.count('"thumb":"') == len(samples.SAMPLES) - 1  # every sample but the broken file, the clip too
    heatmaps = {p.name.split("-", 1)[1] for p in (folder / "heatmaps").iterdir()}
    assert {"toy-fake-1.png", "toy-real-1.png", "phone.png"} <= heatmaps


@pytest.mark.slow  # the demo run: seconds on the toy model
def test_the_toy_is_called_a_toy_and_the_real_weights_are_named(demo_run):
    _, result = demo_run
    assert "TOY model" in result.stderr and "not a detector" in result.stderr
    assert "lingcco/fakeVLM" in result.stderr and "fakevlm scan PHOTOS" in result.stderr


@pytest.mark.slow  # the demo run: seconds on the toy model
def test_a_second_run_reuses_the_model_and_the_samples(cli, demo_run, monkeypatch):
    folder, _ = demo_run
    before = {p.name: p.stat().st_mtime_ns for p in (folder / "samples").iterdir()}

    def no_training(*args, **kwargs):
        raise AssertionError("the toy was trained again")

    monkeypatch.setattr(toy, "build_toy_fakevlm", no_training)
    result = cli("demo", folder)
    assert result.exit_code == 0, result.stderr
    assert "(cached)" in result.stderr
    assert {p.name: p.stat().st_mtime_ns for p in (folder / "samples").iterdir()} == before


def test_a_folder_holding_someone_elses_files_is_refused(cli, tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    result = cli("demo", tmp_path)
    assert result.exit_code == 2
    assert result.stderr.strip() == (f"fakevlm: error: {tmp_path}: is not empty and not a fakevlm demo folder: "
                                     "choose another folder")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]
    result = cli("demo", tmp_path / "notes.txt")
    assert result.exit_code == 2 and "is a file" in result.stderr
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_a_link_planted_as_the_demo_marker_is_not_written_through(cli, tmp_path):
    outside = tmp_path / "evidence.txt"
    outside.write_text("keep me")
    folder = tmp_path / "demo"
    folder.mkdir()
    (folder / ".fakevlm-demo").symlink_to(outside)
    result = cli("demo", folder)
    assert result.exit_code == 2 and ".fakevlm-demo" in result.stderr
    assert outside.read_text() == "keep me" and (folder / ".fakevlm-demo").is_symlink()
