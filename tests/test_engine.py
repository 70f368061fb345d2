"""The engine on a tiny random LLaVA: plumbing and invariants, never accuracy."""

import importlib.util
import json

import pytest

from conftest import noise_image
from fakevlm_cli.engine import DEFAULT_PROMPT, Engine, EngineOptions
from fakevlm_cli.errors import ModelLoadError

IMAGES = [noise_image(seed, size=(40 + 9 * seed, 56)) for seed in range(8)]


def test_scores_are_probabilities(engine):
    scores = engine.score(IMAGES)
    assert len(scores) == 8
    assert all(0.0 <= p <= 1.0 for p in scores)
    assert len(set(round(p, 6) for p in scores)) > 1  # the images really reach the model


def test_batch_of_eight_equals_one_by_one(engine):
    batched = engine.score(IMAGES)
    single = [engine.score([im])[0] for im in IMAGES]
    assert max(abs(a - b) for a, b in zip(batched, single)) < 1e-4


def test_explain_batch_equals_single_and_score_matches(engine):
    batched = engine.explain(IMAGES, max_new_tokens=12)
    single = [engine.explain([im], max_new_tokens=12)[0] for im in IMAGES]
    assert [a.text for a in batched] == [b.text for b in single]
    scores = engine.score(IMAGES)
    for answer, p in zip(batched, scores):
        assert abs(answer.p_fake - p) < 1e-4  # text and score come from the same pass as the score path


def test_explain_text_has_no_prompt_echo(engine):
    answer = engine.explain(IMAGES[:1], max_new_tokens=8)[0]
    assert answer.text.startswith("This is a")
    assert "Does the image" not in answer.text and "<image>" not in answer.text
    assert answer.text_verdict in ("real", "fake", "unknown")


def test_verdict_tokens_come_from_the_tokenizer(engine):
    tok = engine.processor.tokenizer
    assert tok.decode([engine._fake_id]).strip() == "fake"
    assert tok.decode([engine._real_id]).strip() == "real"
    assert engine._prefix_ids.shape[1] > engine._n_prompt  # the answer prefix is really forced


def test_bf16_load_scores_close_to_fp32(tiny_model, engine):
    bf16 = Engine.load(EngineOptions(model=str(tiny_model), device="cpu", dtype="bfloat16"))
    assert bf16.info.dtype == "bfloat16"
    got, want = bf16.score(IMAGES[:4]), engine.score(IMAGES[:4])
    assert all(0 <= p <= 1 for p in got)
    assert max(abs(a - b) for a, b in zip(got, want)) < 0.05


@pytest.mark.parametrize("quant", ["8bit", "4bit"])
def test_quantised_load_on_cpu(tiny_model, quant):
    if importlib.util.find_spec("bitsandbytes") is None:
        pytest.skip("bitsandbytes is not installed")
    try:
        eng = Engine.load(EngineOptions(model=str(tiny_model), device="cpu", quant=quant))
    except ModelLoadError as exc:
        pytest.skip(f"bitsandbytes cannot run {quant} on this CPU: {exc}")
    assert eng.info.quant == quant
    batched = eng.score(IMAGES[:4])
    assert all(0 <= p <= 1 for p in batched)
    assert max(abs(a - eng.score([im])[0]) for a, im in zip(batched, IMAGES[:4])) < 1e-3


def test_default_device_on_cpu_machine_gives_notice(tiny_model):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    eng = Engine.load(EngineOptions(model=str(tiny_model)))
    assert eng.info.device == "cpu" and eng.info.dtype == "float32"
    assert any("CPU" in n for n in eng.notices)


def test_missing_model_directory(tmp_path):
    with pytest.raises(ModelLoadError, match="does not exist"):
        Engine.load(EngineOptions(model=str(tmp_path / "no-such-model")))


def test_directory_without_config(tmp_path):
    with pytest.raises(ModelLoadError, match="no config.json"):
        Engine.load(EngineOptions(model=str(tmp_path)))


def test_not_a_llava_checkpoint(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert", "architectures": ["BertModel"]}))
    with pytest.raises(ModelLoadError, match="not a LLaVA"):
        Engine.load(EngineOptions(model=str(tmp_path)))


def test_uncached_hub_model_offline_says_how_to_fix():
    with pytest.raises(ModelLoadError, match="hf download|--model PATH"):
        Engine.load(EngineOptions(model="lingcco/fakeVLM-does-not-exist"))


def test_unavailable_device(tiny_model):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(ModelLoadError, match="no CUDA"):
        Engine.load(EngineOptions(model=str(tiny_model), device="cuda"))
    with pytest.raises(ModelLoadError, match="unknown device|not supported"):
        Engine.load(EngineOptions(model=str(tiny_model), device="tpu9"))


def test_prompt_without_image_placeholder_is_refused(tiny_model):
    with pytest.raises(ModelLoadError, match="<image>"):
        Engine.load(EngineOptions(model=str(tiny_model), prompt="Is this fake?"))


def test_custom_prompt_still_scores(tiny_model):
    eng = Engine.load(EngineOptions(model=str(tiny_model), prompt="<image>Is this image real or fake?",
                                    answer_prefix="\nThe image looks"))
    assert eng.prompt != DEFAULT_PROMPT
    assert all(0 <= p <= 1 for p in eng.score(IMAGES[:2]))


def test_missing_bitsandbytes_is_a_clear_error(tiny_model, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "bitsandbytes", None)  # import now raises ImportError
    with pytest.raises(ModelLoadError, match="needs bitsandbytes: pip install bitsandbytes"):
        Engine.load(EngineOptions(model=str(tiny_model), device="cpu", quant="4bit"))


def test_unreachable_hub_fails_fast_without_offline_variables(monkeypatch):
    import fakevlm_cli.loading as loading_module

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    calls = []
    monkeypatch.setattr(loading_module, "_hub_reachable", lambda: calls.append(1) or False)
    with pytest.raises(ModelLoadError, match="hub cannot be reached.*hf download"):
        Engine.load(EngineOptions(model="lingcco/fakeVLM"))
    assert calls == [1]


@pytest.mark.parametrize("size", [(640, 480), (480, 640), (1001, 333), (90, 60)])
def test_preprocess_equals_the_processor_exactly(engine, size):
    import torch

    image = noise_image(11, size)
    ours = engine.preprocess(image)
    theirs = engine.processor.image_processor(images=[image], return_tensors="pt")["pixel_values"][0]
    assert ours.shape == theirs.shape and torch.equal(ours, theirs)


def test_an_old_processor_is_completed_from_the_model_config(tiny_model):
    from transformers import AutoProcessor, LlavaForConditionalGeneration

    from fakevlm_cli.engine import ModelInfo
    from fakevlm_cli.loading import complete_processor

    processor = AutoProcessor.from_pretrained(tiny_model)
    processor.patch_size = None  # as saved by transformers < 4.44
    processor.vision_feature_select_strategy = None
    processor.num_additional_image_tokens = 0
    model = LlavaForConditionalGeneration.from_pretrained(tiny_model)
    notices = []
    complete_processor(processor, model.config, notices)
    assert processor.patch_size == 14 and processor.num_additional_image_tokens == 1
    assert notices and "patch_size=14" in notices[0]
    info = ModelInfo(id="old", revision=None, dtype="float32", quant="none", device="cpu")
    eng = Engine(model, processor, info=info)  # image-token count checked against the model here
    assert 0 <= eng.score(IMAGES[:1])[0] <= 1


def test_a_modern_processor_is_left_alone(tiny_model, engine):
    from fakevlm_cli.loading import complete_processor

    notices = []
    complete_processor(engine.processor, engine.model.config, notices)
    assert notices == []
