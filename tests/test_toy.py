"""The toy FakeVLM: synthetic images with known answers, a Llama-2-shaped tokenizer, and a trained tiny LLaVA
whose plain greedy answers are right. Other tests rely on these facts to tell right answers from wrong ones."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import CORPUS
from PIL import Image

from fakevlm_cli.testing import toy

REPLICA = CORPUS.parent / "models" / "llava-1.5-processor-replica"
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")
TEST_SEEDS = toy.FRESH_SEEDS + 500_000  # fresh: neither training nor the build's held-out check used them


# ------------------------------------------------------------------------------------------------ images


def test_images_have_the_model_size_and_are_deterministic():
    a, b = toy.toy_image(7, fake=True), toy.toy_image(7, fake=True)
    assert a.image.mode == "RGB" and a.image.size == (toy.IMAGE_SIZE, toy.IMAGE_SIZE)
    assert np.array_equal(np.asarray(a.image), np.asarray(b.image)) and a.box == b.box
    assert not np.array_equal(np.asarray(a.image), np.asarray(toy.toy_image(8, fake=True).image))


@pytest.mark.parametrize("seed", range(40))
def test_a_fake_is_its_real_plus_a_checkerboard_inside_one_cell(seed):
    fake, real = toy.toy_image(seed, fake=True), toy.toy_image(seed, fake=False)
    assert real.box is None and real.region is None and not real.fake
    x0, y0, x1, y1 = fake.box
    assert 0 <= x0 < x1 <= toy.IMAGE_SIZE and 0 <= y0 < y1 <= toy.IMAGE_SIZE
    lo, hi = toy.ARTIFACT_SIZES
    assert lo <= x1 - x0 <= hi and lo <= y1 - y0 <= hi
    assert x0 // toy.CELL == (x1 - 1) // toy.CELL and y0 // toy.CELL == (y1 - 1) // toy.CELL  # one grid cell
    assert fake.region == toy.REGIONS[(y0 // toy.CELL) * 3 + x0 // toy.CELL] == toy.region_of(fake.box)

    f = np.asarray(fake.image).astype(int)
    r = np.asarray(real.image).astype(int)
    outside = np.ones(f.shape[:2], bool)
    outside[y0:y1, x0:x1] = False
    assert np.array_equal(f[outside], r[outside])
    # high frequency: horizontally adjacent pixels of the patch alternate; the real image there is smooth
    patch_steps = np.abs(np.diff(f[y0:y1, x0:x1].mean(-1), axis=1))
    real_steps = np.abs(np.diff(r[y0:y1, x0:x1].mean(-1), axis=1))
    assert np.median(patch_steps) > 30 and real_steps.max() < 8


def test_region_names_follow_the_centre_of_the_box():
    s = toy.IMAGE_SIZE
    assert toy.region_of((0, 0, 10, 10)) == "top left"
    assert toy.region_of((s - 10, 0, s, 10)) == "top right"
    assert toy.region_of((s // 2 - 5, s // 2 - 5, s // 2 + 5, s // 2 + 5)) == "centre"
    assert toy.region_of((0, s - 10, 10, s)) == "bottom left"
    assert toy.region_of((s // 2 - 5, s - 10, s // 2 + 5, s)) == "bottom"
    assert sorted({toy.toy_image(seed, True).region for seed in range(200)}) == sorted(toy.REGIONS)


def test_lead_in_follows_brightness_and_both_occur():
    toys = [toy.toy_image(seed, fake=seed % 2 == 0) for seed in range(60)]
    leads = [t.lead_in for t in toys]
    assert set(leads) == set(toy.LEAD_INS)
    for t, lead in zip(toys, leads, strict=True):
        bright = np.asarray(t.image.convert("L"), dtype=float).mean() >= 127.5
        assert lead == (toy.LEAD_IN_BRIGHT if bright else toy.LEAD_IN_DARK)
    # the artifact never changes which lead-in a picture gets
    assert all(toy.toy_image(s, True).lead_in == toy.toy_image(s, False).lead_in for s in range(60))


def test_png_round_trip_is_lossless(tmp_path):
    t = toy.toy_image(3, fake=True)
    t.image.save(tmp_path / "x.png")
    with Image.open(tmp_path / "x.png") as im:
        assert np.array_equal(np.asarray(im.convert("RGB")), np.asarray(t.image))


def test_answers_name_the_verdict_and_region():
    assert toy.verdict_of(toy.answer_text(True, "top right")) == "fake"
    assert toy.region_in(toy.answer_text(True, "top right")) == "top right"
    assert toy.region_in(toy.answer_text(True, "top")) == "top"
    assert toy.verdict_of(toy.answer_text(False)) == "real" and toy.region_in(toy.answer_text(False)) is None
    with pytest.raises(ValueError, match="a fake needs one of"):
        toy.answer_text(True, None)


# --------------------------------------------------------------------------------------------- tokenizer


@pytest.fixture(scope="module")
def oracle(toy_model):
    return toy.oracle_tokenizer(toy_model)


def test_tokenizer_json_is_shaped_like_llama2(toy_model):
    spec = json.loads((toy_model / "tokenizer.json").read_text())
    assert spec["normalizer"] == {"type": "Sequence", "normalizers": [
        {"type": "Prepend", "prepend": "▁"}, {"type": "Replace", "pattern": {"String": " "}, "content": "▁"}]}
    assert spec["pre_tokenizer"] is None
    post = spec["post_processor"]
    assert post["type"] == "TemplateProcessing" and post["single"][0] == {"SpecialToken": {"id": "<s>", "type_id": 0}}
    assert [d["type"] for d in spec["decoder"]["decoders"]] == ["Replace", "ByteFallback", "Fuse", "Strip"]
    model = spec["model"]
    assert model["type"] == "BPE" and model["byte_fallback"] and model["fuse_unk"]
    vocab = model["vocab"]
    assert (vocab["<unk>"], vocab["<s>"], vocab["</s>"]) == (0, 1, 2)
    assert [vocab[f"<0x{i:02X}>"] for i in range(256)] == list(range(3, 259))
    added = {t["content"]: t for t in spec["added_tokens"]}
    n = len(vocab)
    assert (added["<image>"]["id"], added["<pad>"]["id"]) == (n, n + 1)
    assert added["<image>"]["special"] and not added["<image>"]["normalized"]
    assert 300 <= n + 2 <= 1000  # "a few hundred pieces"


def test_tokenizer_config_is_shaped_like_llava_hf(toy_model):
    config = json.loads((toy_model / "tokenizer_config.json").read_text())
    assert config["tokenizer_class"] == "LlamaTokenizer" and config["legacy"] is False
    assert config["add_bos_token"] is True and config["add_eos_token"] is False
    added = {v["content"] for v in config["added_tokens_decoder"].values()}
    assert added == {"<unk>", "<s>", "</s>", "<image>", "<pad>"}
    special = json.loads((toy_model / "special_tokens_map.json").read_text())
    assert special == {"bos_token": "<s>", "eos_token": "</s>", "pad_token": "<pad>", "unk_token": "<unk>"}


def test_verdict_words_are_single_word_initial_pieces(oracle):
    for word in ("fake", "real"):
        enc = oracle.encode(f"This is a {word} image.")
        assert enc.tokens[4] == f"▁{word}"
        assert oracle.token_to_id(f"▁{word}") == enc.ids[4]


def test_oracle_puts_a_word_start_after_the_image_token(oracle):
    enc = oracle.encode(toy.PROMPT)
    assert enc.tokens[:3] == ["<s>", "<image>", "▁Does"]
    assert enc.tokens.count("<image>") == 1


@pytest.mark.parametrize("lead_in", toy.LEAD_INS)
@pytest.mark.parametrize("region", [None, *toy.REGIONS])
def test_prompt_ids_are_a_prefix_of_prompt_plus_answer(oracle, lead_in, region):
    prompt = oracle.encode(toy.PROMPT).ids
    joint = oracle.encode(toy.PROMPT + toy.target_text(region is not None, region, lead_in)).ids
    assert joint[: len(prompt)] == prompt
    target = toy.target_text(region is not None, region, lead_in)
    assert oracle.decode(joint[len(prompt):]) == target.lstrip(" ")  # the decoder strips one leading space


def _tf5_ids(folder: Path, loader: str) -> list[int]:
    from transformers import AutoTokenizer, LlamaTokenizer

    cls = AutoTokenizer if loader == "AutoTokenizer" else LlamaTokenizer
    return cls.from_pretrained(folder)(toy.PROMPT).input_ids


def test_transformers_llama_tokenizer_differs_from_the_oracle(toy_model, oracle, tmp_path):
    """The hazard the engine guards against: transformers 5 builds LlamaTokenizer without the normaliser."""
    for f in TOKENIZER_FILES:  # a tokenizer-only folder, laid out like the processor replica
        shutil.copy(toy_model / f, tmp_path / f)
    expected = oracle.encode(toy.PROMPT).ids
    for loader in ("AutoTokenizer", "LlamaTokenizer"):
        ids = _tf5_ids(tmp_path, loader)
        assert ids != expected, loader
        assert ids[:2] == expected[:2] and oracle.token_to_id("▁Does") not in ids


@pytest.mark.slow
@pytest.mark.skipif(not REPLICA.is_dir(), reason="needs ../shared/models/llava-1.5-processor-replica")
@pytest.mark.parametrize("layout", ["tokenizer only", "with llava config.json"])
@pytest.mark.parametrize("loader", ["AutoTokenizer", "LlamaTokenizer"])
def test_toy_tokenizer_loads_like_the_real_llama2_files(toy_model, tmp_path, layout, loader):
    """Whatever transformers does with the real Llama-2 files (the replica), it does with the toy's: the toy
    reproduces the real model's tokenisation situation, not just its vocabulary's shape.

    Measured under 5.23: AutoTokenizer honours `LlamaTokenizer` (no ▁ after <image>) only when the folder has no
    config.json; next to a llava config.json it loads tokenizer.json as-is (llava is in its
    MODELS_WITH_INCORRECT_HUB_TOKENIZER_CLASS), giving the oracle ids.
    """
    from tokenizers import Tokenizer

    matches = []
    for name, source in (("toy", toy_model), ("replica", REPLICA)):
        folder = tmp_path / name
        folder.mkdir()
        for f in TOKENIZER_FILES:
            shutil.copy(source / f, folder / f)
        if layout != "tokenizer only":
            shutil.copy(toy_model / "config.json", folder / "config.json")
        oracle_ids = Tokenizer.from_file(str(folder / "tokenizer.json")).encode(toy.PROMPT).ids
        matches.append(_tf5_ids(folder, loader) == oracle_ids)
    assert matches[0] == matches[1]


# ------------------------------------------------------------------------------------------------- model


@pytest.fixture(scope="module")
def loaded(toy_model):
    import torch
    from transformers import AutoProcessor, LlavaForConditionalGeneration

    model = LlavaForConditionalGeneration.from_pretrained(toy_model, dtype=torch.float32).eval()
    processor = AutoProcessor.from_pretrained(toy_model)
    return model, processor


def test_checkpoint_loads_offline_with_the_llava_geometry(toy_model, loaded, oracle):
    model, processor = loaded
    config = model.config
    assert config.image_token_index == oracle.token_to_id("<image>")
    grid = config.vision_config.image_size // config.vision_config.patch_size
    assert config.image_seq_length == toy.N_IMAGE_TOKENS == grid**2
    assert config.vision_feature_layer == -2 and config.vision_feature_select_strategy == "default"
    assert type(processor).__name__ == "LlavaProcessor"
    batch = processor(images=[toy.toy_image(1, True).image], text=[toy.PROMPT], return_tensors="pt")
    assert int((batch["input_ids"] == config.image_token_index).sum()) == toy.N_IMAGE_TOKENS


def test_processor_leaves_toy_images_untouched(loaded):
    _, processor = loaded
    images = [toy.toy_image(seed, seed % 2 == 0).image for seed in range(6)]
    expected = processor.image_processor(images=images, return_tensors="pt")["pixel_values"]
    assert expected.shape[-2:] == (toy.IMAGE_SIZE, toy.IMAGE_SIZE)
    assert float((expected - toy.pixel_values(images)).abs().max()) < 1e-5


@pytest.fixture(scope="module")
def greedy(toy_model, loaded, oracle, tmp_path_factory):
    """Plain greedy generate on 24 fresh images read back from PNG: per image, the truth and what came out."""
    import torch

    model, processor = loaded
    folder = tmp_path_factory.mktemp("toy-png")
    truths, images = [], []
    for i in range(24):
        t = toy.toy_image(TEST_SEEDS + i, fake=i % 2 == 0)
        path = folder / f"{i:02d}.png"
        t.image.save(path)
        with Image.open(path) as im:
            images.append(im.convert("RGB"))
        truths.append(t)
    prompt = oracle.encode(toy.PROMPT).ids
    image_id = oracle.token_to_id("<image>")
    ids = [j for i in prompt for j in ([i] * toy.N_IMAGE_TOKENS if i == image_id else [i])]
    input_ids = torch.tensor([ids] * len(images))
    pixels = processor.image_processor(images=images, return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        out = model.generate(input_ids=input_ids, attention_mask=torch.ones_like(input_ids), pixel_values=pixels,
                             do_sample=False, max_new_tokens=32, output_scores=True, return_dict_in_generate=True)
    new = out.sequences[:, input_ids.shape[1]:]
    fake_id, real_id = oracle.token_to_id("▁fake"), oracle.token_to_id("▁real")
    rows = []
    for row, truth in enumerate(truths):
        gen = new[row].tolist()
        step = next(k for k, token in enumerate(gen) if token in (fake_id, real_id))
        p_fake = float(torch.softmax(out.scores[step][row, [fake_id, real_id]], 0)[0])
        rows.append({"truth": truth, "text": oracle.decode(gen, skip_special_tokens=True), "step": step,
                     "p_fake": p_fake})
    return rows


def test_verdicts_are_right(greedy):
    right = [toy.verdict_of(r["text"]) == ("fake" if r["truth"].fake else "real") for r in greedy]
    assert sum(right) / len(right) >= 0.95, [r["text"] for r in greedy]


def test_regions_are_named(greedy):
    fakes = [r for r in greedy if r["truth"].fake]
    right = [toy.region_in(r["text"]) == r["truth"].region for r in fakes]
    assert sum(right) / len(right) >= 0.9, [(r["truth"].region, r["text"]) for r in fakes]


def test_answers_start_with_the_lead_in_the_image_calls_for(greedy):
    leads = {r["truth"].lead_in for r in greedy}
    assert leads == set(toy.LEAD_INS)  # rows of one batch begin differently
    for r in greedy:
        assert r["text"].startswith(r["truth"].lead_in.lstrip(" ")), r["text"]  # the decoder strips one space
    assert len({r["step"] for r in greedy}) == 2  # so the verdict word comes at two different steps


def test_verdict_probabilities_separate(greedy):
    fakes = [r["p_fake"] for r in greedy if r["truth"].fake]
    reals = [r["p_fake"] for r in greedy if not r["truth"].fake]
    assert np.mean([p > 0.9 for p in fakes]) >= 0.9 and np.mean([p < 0.1 for p in reals]) >= 0.9


# ------------------------------------------------------------------------------------------------- cache


def test_toy_json_records_the_build(toy_model):
    import tokenizers
    import torch
    import transformers

    info = json.loads((toy_model / "toy.json").read_text())
    assert info["key"] == toy.cache_key() and info["recipe_version"] == toy.RECIPE_VERSION
    assert info["versions"] == {"torch": torch.__version__, "transformers": transformers.__version__,
                                "tokenizers": tokenizers.__version__}
    assert info["steps"] == toy.Recipe().steps and info["final_loss"] < 0.1 and info["build_seconds"] > 0
    held = info["heldout"]
    assert held["n"] >= 64 and held["verdict_accuracy"] >= 0.97 and held["region_accuracy"] >= 0.9


def test_cache_is_reused_without_rebuilding(toy_model, monkeypatch):
    before = {p.name: p.stat().st_mtime_ns for p in toy_model.iterdir()}

    def no_rebuild(*args, **kwargs):
        raise AssertionError("the cached toy was rebuilt")

    monkeypatch.setattr(toy, "build_toy_fakevlm", no_rebuild)
    assert toy.cached_toy_fakevlm(toy_model) == toy_model
    assert {p.name: p.stat().st_mtime_ns for p in toy_model.iterdir()} == before


def _fake_build(marker: str):
    def build(out_dir, **kwargs):
        out = Path(out_dir)
        (out / "weights").write_text(marker)
        (out / "toy.json").write_text(json.dumps({"key": toy.cache_key()}))
    return build


def test_stale_cache_is_replaced(tmp_path, monkeypatch):
    target = tmp_path / "toy"
    target.mkdir()
    (target / "toy.json").write_text(json.dumps({"key": "from-an-older-recipe"}))
    (target / "weights").write_text("old")
    monkeypatch.setattr(toy, "build_toy_fakevlm", _fake_build("new"))
    assert toy.cached_toy_fakevlm(target) == target
    assert (target / "weights").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["toy"]  # no temporary folders left behind


def test_env_variable_picks_the_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("FAKEVLM_TOY_CACHE", str(tmp_path / "here"))
    monkeypatch.setattr(toy, "build_toy_fakevlm", _fake_build("built"))
    assert toy.cached_toy_fakevlm() == tmp_path / "here"
    assert (tmp_path / "here" / "weights").read_text() == "built"


def test_concurrent_builder_keeps_the_first_complete_copy(tmp_path, monkeypatch):
    target = tmp_path / "toy"

    def racing_build(out_dir, **kwargs):  # another process finishes while this one is still building
        _fake_build("theirs")(target.parent / "theirs")
        (target.parent / "theirs").rename(target)
        _fake_build("ours")(out_dir)

    (tmp_path / "theirs").mkdir()
    monkeypatch.setattr(toy, "build_toy_fakevlm", racing_build)
    assert toy.cached_toy_fakevlm(target) == target
    assert (target / "weights").read_text() == "theirs"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["toy"]
