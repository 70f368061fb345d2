"""Benchmark loaders on tiny synthetic copies of each format, built here with Pillow (16x16 images)."""

import json
import os
from pathlib import Path

import pytest
from PIL import Image

from fakevlm_cli.core.errors import DatasetError, FakevlmError
from fakevlm_cli.datasets.loaders import BenchItem, load_bench, load_ddvqa, load_fakeclue, load_folder, load_loki

VERDICT_Q = "Does the image looks real/fake?"


def image(path: Path, fmt: str = "PNG", color=(200, 30, 30)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (16, 16), color).save(path, format=fmt)
    return path


def write_json(path: Path, doc) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc))
    return path


# ------------------------------------------------------------------------------------------- FakeClue

def clue(image_path: str, label, cate: str = "animal", answer: str = "This is a fake image. Odd fur."):
    return {"image": image_path, "label": label, "cate": cate,
            "conversations": [{"from": "human", "value": "<image>" + VERDICT_Q}, {"from": "gpt", "value": answer}]}


@pytest.fixture
def fakeclue(tmp_path):
    root = tmp_path / "FakeClue"
    for name in ("a/real1.png", "a/fake1.png", "b/fake2.png"):
        image(root / "test" / name)
    records = [clue("test/a/real1.png", 1, "animal", "This is a real image. Natural fur."),
               clue("test/a/fake1.png", 0, "animal"),
               clue("test/b/fake2.png", 0, "doc", "This is a fake image. Garbled text."),
               clue("test/b/gone.png", 0, "doc")]
    write_json(root / "data_json" / "test.json", records)
    return root


def test_fakeclue_reads_labels_categories_references_and_counts_missing(fakeclue):
    result = load_fakeclue(fakeclue)
    assert [(i.id, i.label, i.category) for i in result.items] == [
        ("test/a/real1.png", "real", "animal"), ("test/a/fake1.png", "fake", "animal"),
        ("test/b/fake2.png", "fake", "doc")]
    first = result.items[0]
    assert first.image == (fakeclue / "test/a/real1.png").resolve() and first.image.is_absolute()
    assert first.reference == "This is a real image. Natural fur." and first.references == (first.reference,)
    assert result.missing == [str((fakeclue / "test/b/gone.png").resolve())]
    assert any("1 of 4 images are missing" in note for note in result.notes)


def test_fakeclue_category_filter_and_limit_are_deterministic(fakeclue, tmp_path):
    assert [i.category for i in load_fakeclue(fakeclue, categories="DOC").items] == ["doc"]
    limited = load_fakeclue(fakeclue, categories=["animal", "doc"], limit=2)
    assert [i.id for i in limited.items] == ["test/a/real1.png", "test/a/fake1.png"] and not limited.missing
    with pytest.raises(DatasetError, match=r"unknown category satellite.*animal, doc"):
        load_fakeclue(fakeclue, categories="satellite")
    moved = write_json(tmp_path / "elsewhere.json", [clue("test/a/real1.png", 1)])
    assert len(load_bench("FakeClue", fakeclue, annotations=moved).items) == 1


@pytest.mark.parametrize("how", ["dotdot", "absolute", "symlink"])
def test_image_paths_escaping_the_data_directory_are_refused(fakeclue, tmp_path, how):
    outside = image(tmp_path / "outside.png")
    path = {"dotdot": "../outside.png", "absolute": str(outside), "symlink": "test/link.png"}[how]
    if how == "symlink":
        os.symlink(outside, fakeclue / "test" / "link.png")
    write_json(fakeclue / "data_json" / "test.json", [clue("test/a/fake1.png", 0), clue(path, 0)])
    with pytest.raises(DatasetError, match=r"test\.json: record #1 \(image .*\): .*outside the data directory"):
        load_fakeclue(fakeclue)


def test_absolute_path_and_symlink_that_stay_inside_are_accepted(fakeclue):
    os.symlink(fakeclue / "test/a/fake1.png", fakeclue / "test" / "alias.png")
    write_json(fakeclue / "data_json" / "test.json",
               [clue(str(fakeclue / "test/a/real1.png"), 1), clue("test/alias.png", 0)])
    assert [i.image.name for i in load_fakeclue(fakeclue).items] == ["real1.png", "fake1.png"]


@pytest.mark.parametrize(("content", "message"), [
    ("[{\"image\": ", r"test\.json: invalid JSON at line 1"),
    ("{\"image\": \"x.png\"}", r"test\.json: expected a JSON list of records, found dict"),
    (json.dumps([clue("test/a/fake1.png", 0), {"image": "test/b/fake2.png", "cate": "doc"}]),
     r"test\.json: record #1 \(image 'test/b/fake2.png'\): missing field 'label'"),
    (json.dumps([clue("test/a/fake1.png", 2)]), r"test\.json: record #0 .*label must be 1 \(real\) or 0"),
    (json.dumps([clue("test/a/fake1.png", True)]), r"record #0 .*label must be"),
    (json.dumps([{**clue("x.png", 0), "id": "r7"}, ["not", "a", "record"]]), r"record #1: expected an object"),
])
def test_malformed_fakeclue_names_file_and_record(fakeclue, content, message):
    (fakeclue / "data_json" / "test.json").write_text(content)
    with pytest.raises(DatasetError, match=message):
        load_fakeclue(fakeclue)


def test_duplicate_ids_are_made_unique(fakeclue):
    write_json(fakeclue / "data_json" / "test.json", [clue("test/a/fake1.png", 0)] * 2)
    result = load_fakeclue(fakeclue)
    assert [i.id for i in result.items] == ["test/a/fake1.png", "test/a/fake1.png#2"]


# ----------------------------------------------------------------------------------------------- LOKI

def tf(uuid: str, truth: str, asked: str, category: str, answer: str, qtype: str | None = None, n: int = 0):
    question = ("Is this image generated by an AI model?" if asked == "fake"
                else "Is this image taken from the real world?")
    return {"id": f"{uuid}-{n}", "image_path": f"media_data/image/{uuid}.jpg", "question": question,
            "answer": answer, "question_type": qtype or f"image_tf_image_{truth}_ask_{asked}_{category}"}


@pytest.fixture
def loki(tmp_path):
    root = tmp_path / "LOKI"
    for uuid in ("f1", "r1", "f2"):
        image(root / "media_data" / "image" / f"{uuid}.jpg", "JPEG")
    records = [tf("f1", "fake", "fake", "animals", "Yes"), tf("f1", "fake", "real", "animals", "No", n=1),
               tf("r1", "real", "real", "person", "Yes"), tf("r1", "real", "fake", "person", "No", n=1),
               tf("f2", "fake", "real", "sence", "No"), tf("gone", "fake", "fake", "doc", "Yes")]
    write_json(root / "data_json" / "image" / "true_or_false.json", records)
    write_json(root / "data_json" / "image" / "open_ended_vqa.json", [
        {"image_path": "media_data/image/f1.jpg",
         "problems": {"global": [{"desc": "Fur merges into the grass."}],
                      "regional": [{"region": [1, 2, 3, 4], "desc": "The eye has no pupil."},
                                   {"region": [5, 6, 7, 8], "desc": "Extra claw."}]}},
        {"image_path": "media_data/image/f2.jpg"},                      # no problems: tolerated
        {"image_path": "media_data/image/gone.jpg", "problems": {"regional": {"desc": "Bent pole."}}},
    ])
    return root


def test_loki_gives_one_item_per_image_with_truth_category_and_references(loki):
    result = load_loki(loki)
    assert [(i.id, i.label, i.category) for i in result.items] == [
        ("media_data/image/f1.jpg", "fake", "animals"), ("media_data/image/r1.jpg", "real", "person"),
        ("media_data/image/f2.jpg", "fake", "sence")]
    assert result.items[0].reference == "Fur merges into the grass. The eye has no pupil. Extra claw."
    assert result.items[1].reference is None and result.items[2].reference is None
    assert result.missing == [str((loki / "media_data/image/gone.jpg").resolve())]


def test_loki_truth_from_the_answer_when_question_type_has_no_pattern(loki):
    write_json(loki / "data_json" / "image" / "true_or_false.json",
               [tf("r1", "real", "real", "x", "No", qtype="image_tf_misc"),
                {**tf("f1", "fake", "fake", "x", "No."), "question_type": ""}])
    assert [(i.label, i.category) for i in load_loki(loki).items] == [("fake", "misc"), ("real", "default")]


def test_loki_answer_contradicting_question_type_is_noted_and_type_wins(loki):
    write_json(loki / "data_json" / "image" / "true_or_false.json", [tf("f1", "fake", "fake", "animals", "No")])
    result = load_loki(loki)
    assert [i.label for i in result.items] == ["fake"]
    assert any("1 answers contradict their question_type" in n and "record #0 (id 'f1-0')" in n
               for n in result.notes)


def test_loki_reads_only_the_question_sentence_not_the_shared_preamble(loki):
    """LOKI's questions open with a preamble naming "an advanced AI model"; the question is the sentence that
    asks. Read whole, every "taken from the real world?" item was read as asking "fake?" and contradicted."""
    preamble = "The following image may or may not have been generated by an advanced AI model. "
    records = [tf("f1", "fake", "real", "animals", "No"), tf("r1", "real", "real", "person", "Yes"),
               tf("f2", "fake", "fake", "sence", "Yes")]
    for record in records:
        record["question"] = preamble + record["question"]
    write_json(loki / "data_json" / "image" / "true_or_false.json", records)
    result = load_loki(loki)
    assert [(i.id.rsplit("/", 1)[-1], i.label) for i in result.items] == [
        ("f1.jpg", "fake"), ("r1.jpg", "real"), ("f2.jpg", "fake")]
    assert not any("contradict" in n for n in result.notes), result.notes


def test_loki_record_without_any_truth_is_refused(loki):
    write_json(loki / "data_json" / "image" / "true_or_false.json",
               [{"id": "q9", "image_path": "media_data/image/f1.jpg", "question_type": "image_tf_animals"}])
    with pytest.raises(DatasetError, match=r"true_or_false\.json: record #0 \(id 'q9'\): cannot tell real"):
        load_loki(loki)


def test_loki_records_disagreeing_about_one_image_are_refused(loki):
    write_json(loki / "data_json" / "image" / "true_or_false.json",
               [tf("f1", "fake", "fake", "animals", "Yes"), tf("f1", "fake", "fake", "doc", "Yes", n=1)])
    with pytest.raises(DatasetError, match=r"record #1 \(id 'f1-1'\): says fake/doc but record #0"):
        load_loki(loki)


def test_loki_reference_path_escape_is_refused(loki):
    write_json(loki / "data_json" / "image" / "open_ended_vqa.json",
               [{"image_path": "../../etc/passwd", "problems": {"global": [{"desc": "x"}]}}])
    with pytest.raises(DatasetError, match=r"open_ended_vqa\.json: record #0 .*outside the data directory"):
        load_loki(loki)


def test_loki_without_open_ended_file_notes_it(loki):
    (loki / "data_json" / "image" / "open_ended_vqa.json").unlink()
    result = load_loki(loki)
    assert all(i.reference is None for i in result.items)
    assert any("no reference explanations" in note for note in result.notes)


# --------------------------------------------------------------------------------------------- DD-VQA

def qa(question: str, *answers: str) -> dict:
    return {"question": question, "answer": list(answers)}


@pytest.fixture
def ddvqa(tmp_path):
    root = tmp_path / "DQ_FF++"
    write_json(root / "test_set" / "Deepfakes" / "Deepfakes.json", {"0_114_102": {
        "0": qa(VERDICT_Q, "The image looks fake. The nose is curved.", "The image looks fake. Blurry eyes."),
        "1": qa("Does the person's skin look real/fake?", "The person's skin looks fake. Too smooth."),
        "2": qa("Does the person's nose look real/fake?", "The person's nose looks fake. Curved.")}})
    write_json(root / "test_set" / "Original" / "Original.json", {"5_044": {
        "0": qa("Does the image look real/fake?", "The image looks real. Natural skin."),
        "1": qa("Do the person's eyes look real/fake?", "The person's eyes look real.")}})
    write_json(root / "test_set" / "Neuraltexture" / "Neuraltexture.json", {"6_001_002": {
        "0": qa(VERDICT_Q, "The image looks fake.")}})
    frames = tmp_path / "frames"
    for n in (1, 2, 10):  # natural order 1, 2, 10 (a string sort would give 1, 10, 2)
        image(frames / "Deepfakes" / "114_102" / f"{n}.png")
    image(frames / "original" / "5_044" / "0001.png")  # method folder in any case; record key as folder
    return root, frames


def test_ddvqa_maps_the_ith_question_to_the_ith_frame(ddvqa):
    root, frames = ddvqa
    result = load_ddvqa(root, frames=frames)
    # Verdict questions only; part questions are skipped but still count for the frame position.
    got = {i.id: (i.image.name, i.label, i.category) for i in result.items}
    assert got == {"Deepfakes/0_114_102/0": ("1.png", "fake", "Deepfakes"),
                   "Original/5_044/0": ("0001.png", "real", "Original")}
    verdict = result.items[0]
    assert verdict.reference == "The image looks fake. The nose is curved." and len(verdict.references) == 2
    assert len(result.missing) == 1 and "NeuralTextures/6_001_002: frame #0" in result.missing[0]


def test_ddvqa_verdict_question_takes_the_frame_of_its_position(ddvqa):
    root, frames = ddvqa
    write_json(root / "test_set" / "Deepfakes" / "Deepfakes.json", {"0_114_102": {
        "0": qa("Does the person's skin look real/fake?", "The person's skin looks fake."),
        "1": qa("Does the person's nose look real/fake?", "The person's nose looks fake."),
        "2": qa(VERDICT_Q, "The image looks fake.")}})
    result = load_bench("ddvqa", root, frames=frames, categories="deepfakes,original")
    assert [(i.id, i.image.name) for i in result.items] == [("Deepfakes/0_114_102/2", "10.png"),
                                                           ("Original/5_044/0", "0001.png")]


def test_ddvqa_items_are_the_verdict_questions_only(ddvqa):
    root, frames = ddvqa
    items = load_bench("ddvqa", root, frames=frames).items
    assert len(items) == 2  # one per video: its "Does the image looks real/fake?" question


def test_ddvqa_without_frames_counts_everything_missing(ddvqa):
    root, _ = ddvqa
    result = load_ddvqa(root)
    assert result.items == [] and len(result.missing) == 3
    assert any("no frames found" in note for note in result.notes)


def test_ddvqa_video_key_and_frame_symlink_cannot_escape(ddvqa, tmp_path):
    root, frames = ddvqa
    (tmp_path / "secret").mkdir()
    image(tmp_path / "secret" / "1.png")
    write_json(root / "test_set" / "Deepfakes" / "Deepfakes.json", {"../../secret": {"0": qa(VERDICT_Q, "x")}})
    with pytest.raises(DatasetError, match=r"Deepfakes\.json: video '\.\./\.\./secret'.*outside"):
        load_ddvqa(root, frames=frames)
    write_json(root / "test_set" / "Deepfakes" / "Deepfakes.json", {"0_9_9": {"0": qa(VERDICT_Q, "x")}})
    (frames / "Deepfakes" / "9_9").mkdir()
    os.symlink(tmp_path / "secret" / "1.png", frames / "Deepfakes" / "9_9" / "1.png")
    with pytest.raises(DatasetError, match=r"video '0_9_9' question '0'.*outside"):
        load_ddvqa(root, frames=frames)


def test_ddvqa_malformed_answer_names_video_and_question(ddvqa):
    root, frames = ddvqa
    write_json(root / "test_set" / "Original" / "Original.json", {"5_044": {"0": {"question": VERDICT_Q,
                                                                                "answer": 3}}})
    with pytest.raises(DatasetError, match=r"Original\.json: video '5_044' question '0': 'question' must be"):
        load_ddvqa(root, frames=frames)


# --------------------------------------------------------------------------------------------- folder

def test_folder_sniffs_images_and_takes_the_first_level_as_category(tmp_path):
    image(tmp_path / "real" / "cam.jpg", "JPEG")
    image(tmp_path / "FAKE" / "sd" / "deep" / "x.webp", "WEBP")
    image(tmp_path / "FAKE" / "sd" / "renamed.txt")            # a PNG named .txt: kept
    (tmp_path / "FAKE" / "sd" / "notes.png").write_text("text")  # not an image: skipped
    image(tmp_path / "FAKE" / ".hidden.png")
    image(tmp_path / "FAKE" / ".cache" / "y.png")
    os.symlink(tmp_path / "real" / "cam.jpg", tmp_path / "FAKE" / "link.jpg")
    result = load_folder(tmp_path)
    assert [(i.id, i.label, i.category) for i in result.items] == [
        ("FAKE/sd/deep/x.webp", "fake", "sd"), ("FAKE/sd/renamed.txt", "fake", "sd"),
        ("real/cam.jpg", "real", "default")]
    assert all(i.reference is None and i.references == () for i in result.items)
    assert "1 symbolic links skipped" in result.notes
    assert any("1 files skipped: not a recognised image" in note for note in result.notes)


def test_folder_errors(tmp_path):
    with pytest.raises(DatasetError, match="no real/ or fake/ folder"):
        load_folder(tmp_path)
    (tmp_path / "real").mkdir()
    (tmp_path / "Real").mkdir()
    with pytest.raises(DatasetError, match="both Real/ and real/ exist"):
        load_folder(tmp_path)
    with pytest.raises(DatasetError, match="data directory not found"):
        load_folder(tmp_path / "nope")


def test_folder_recognises_the_six_formats_by_content_not_name(tmp_path):
    formats = ["JPEG", "PNG", "GIF", "WEBP", "TIFF", "BMP"]
    for fmt in formats:
        image(tmp_path / "fake" / "mixed" / f"{fmt.lower()}.bin", fmt)
    (tmp_path / "fake" / "mixed" / "bm.bmp").write_text("BM is not enough for a bitmap")
    (tmp_path / "fake" / "mixed" / "riff.webp").write_bytes(b"RIFF\x00\x00\x00\x00WAVEfmt ")
    result = load_folder(tmp_path)
    assert sorted(i.image.name for i in result.items) == sorted(f"{fmt.lower()}.bin" for fmt in formats)
    assert any("2 files skipped" in note for note in result.notes)
    assert any("no real/ folder" in note for note in result.notes)


def test_dispatcher_refuses_options_that_do_not_apply(tmp_path):
    with pytest.raises(FakevlmError, match="unknown benchmark 'imagenet'"):
        load_bench("imagenet", tmp_path)
    with pytest.raises(FakevlmError, match="frames applies only to the ddvqa"):
        load_bench("fakeclue", tmp_path, frames=tmp_path)
    assert BenchItem("i", tmp_path, "real", "c", None).references == ()
