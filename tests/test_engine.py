"""The engine on a tiny random LLaVA: plumbing and invariants (tests/test_toy.py checks right answers).

A random model never writes "fake" or "real", so two seams stand in for a trained one: a forced answer
prefix (`--answer-prefix`, P(fake) read at the next token), and *designated* verdict tokens — ids the random
model does write greedily at various steps — which exercise the free path's verdict search against plain
`generate` exactly as a real verdict word would.
"""

import importlib.util
import json
from collections import Counter

import pytest
from conftest import noise_image
from reference import greedy_tokens, reference_verdicts

from fakevlm_cli.core.engine_types import DEFAULT_PROMPT
from fakevlm_cli.core.errors import ModelLoadError
from fakevlm_cli.core.options import EngineOptions
from fakevlm_cli.model.engine import Engine

IMAGES = [noise_image(seed, size=(40 + 9 * seed, 56)) for seed in range(8)]
FORCED = "\nThis is a"


@pytest.fixture(scope="module")
def forced(tiny_model):
    return Engine.load(EngineOptions(model=str(tiny_model), device="cpu", dtype="float32", answer_prefix=FORCED))


@pytest.fixture(scope="module")
def designated(engine):
    """Two ids the random model writes at different steps for different images, chosen from its own greedy
    output so that some rows state a "verdict" late and one never; with plain generate's answers for them."""
    rows = greedy_tokens(engine, IMAGES)
    counts = Counter(t for row in rows for t in row[1:])
    for fake_id, real_id in ((a, b) for a in counts for b in counts if a != b):
        steps = [next((i for i, t in enumerate(row) if t in (fake_id, real_id)), None) for row in rows]
        found = [s for s in steps if s is not None]
        if len(found) >= 3 and sum(s >= 2 for s in found) >= 2 and None in steps and len(set(found)) >= 2:
            want = reference_verdicts(engine, IMAGES, fake_id=fake_id, real_id=real_id)
            return fake_id, real_id, rows, want
    pytest.fail("the random model's greedy output offers no pair of tokens to designate")


@pytest.fixture
def rigged(engine, designated):
    """A fresh free-answering engine on the tiny model, with the designated ids as its verdict tokens."""
    rigged = Engine(engine.model, engine.processor, info=engine.info, codec=engine.codec)
    rigged._fake_id, rigged._real_id = designated[:2]
    rigged._verdict_ids = frozenset(designated[:2])
    return rigged


def _close(got, want, tol=1e-5):
    return all((g is None and w is None) or (g is not None and w is not None and abs(g - w) <= tol)
               for g, w in zip(got, want, strict=True))


# ---- the free path: the verdict where the model writes it ---------------------------------------------------

@pytest.mark.slow
def test_random_model_states_no_verdict_so_p_fake_is_none(engine, designated):
    rows = designated[2]
    assert not any(t in (engine._fake_id, engine._real_id) for row in rows for t in row)
    assert engine.score(IMAGES) == [None] * 8  # never a number made up from a token the model did not write


def test_p_fake_equals_plain_generate_at_the_verdict_step(rigged, designated):
    want = designated[3]
    answers = rigged.verdicts([rigged.preprocess(im) for im in IMAGES])
    assert [a.verdict_step for a in answers] == [w and w[0] for w in want]
    assert _close([a.p_fake for a in answers], [w and w[1] for w in want])


def test_verdict_search_batch_equals_one_by_one_and_any_lead_in(rigged, designated):
    want = [w and w[1] for w in designated[3]]
    single = [rigged.score([im])[0] for im in IMAGES]
    assert _close(single, want)
    rigged._lead_in = (rigged._fake_id + 1, rigged._real_id + 1, 5)  # a wrong guess: every row diverges
    assert _close(rigged.score(IMAGES), want)


def test_the_lead_in_is_learnt_and_checked_in_one_pass(rigged, designated, monkeypatch):
    answers = rigged.verdicts([rigged.preprocess(im) for im in IMAGES])
    rows = designated[2]
    leads = Counter(tuple(row[:a.verdict_step]) for row, a in zip(rows, answers, strict=True) if a.p_fake is not None)
    assert rigged._lead_in == leads.most_common(1)[0][0]
    matching = [im for im, row, a in zip(IMAGES, rows, answers, strict=True)
                if a.p_fake is not None and tuple(row[:a.verdict_step]) == rigged._lead_in]
    calls = []
    monkeypatch.setattr(rigged.model, "generate", lambda *a, **k: calls.append(1))
    assert all(p is not None for p in rigged.score(matching))
    assert calls == []  # verified in the same forward pass as the prompt: no decoding at all


def test_an_answer_that_ends_before_its_verdict_has_no_p_fake(rigged, designated):
    """A designated stop token too, chosen so that some rows end (EOS) before their "verdict" and others state
    it first: the rows that ended have no P(fake) — never one read past the end of the answer — and the others
    keep plain generate's, in the score path (lead-in checked or decoded) and in explain."""
    fake_id, real_id, rows, want = designated
    verdict_at = [next((i for i, t in enumerate(row) if t in (fake_id, real_id)), None) for row in rows]

    def first(row, token):
        return row.index(token) if token in row else None

    def ends_first(row, token, at):
        return first(row, token) is not None and (at is None or first(row, token) < at)

    candidates = {t for row in rows for t in row} - {fake_id, real_id}
    for stop in sorted(candidates):
        ends = [ends_first(row, stop, at) for row, at in zip(rows, verdict_at, strict=True)]
        if any(e and at is not None for e, at in zip(ends, verdict_at, strict=True)) and any(
                not e and at is not None for e, at in zip(ends, verdict_at, strict=True)):
            break
    else:
        pytest.skip("the random model's greedy output offers no stop token that ends some answers early")
    expected = [None if e else w and w[1] for e, w in zip(ends, want, strict=True)]
    rigged._stop_ids = frozenset({stop})
    assert _close(rigged.score(IMAGES), expected)
    assert _close(rigged.score(IMAGES), expected)  # again, with the lead-in learnt from the first pass
    assert _close([a.p_fake for a in rigged.explain(IMAGES, max_new_tokens=16)], expected)


def test_verdict_search_is_bounded(rigged, designated):
    rigged.verdict_steps = 2
    want = [w if w and w[0] < 2 else None for w in designated[3]]
    assert _close(rigged.score(IMAGES), [w and w[1] for w in want])


def test_explain_reads_p_fake_at_the_verdict_step_of_its_own_generation(rigged):
    answers = rigged.explain(IMAGES, max_new_tokens=16)
    scores = rigged.score(IMAGES)
    assert _close([a.p_fake for a in answers], scores)
    assert [a.text for a in answers] == [rigged.explain([im], max_new_tokens=16)[0].text for im in IMAGES]
    for answer in answers:
        assert "Does the image" not in answer.text and "<image>" not in answer.text  # no prompt echo


def test_lead_in_is_split_from_the_verdict_sentence(engine):
    tokens = engine.codec.encode(" ASSISTANT: This is a fake image. The sky is flat.", special=False)
    fake_at = tokens.index(engine._fake_id)
    answer = engine._compose(tokens, fake_at, 0.9, fake_at)
    assert answer.lead_in == "ASSISTANT:"
    assert answer.text == "This is a fake image. The sky is flat."
    assert answer.verdict_sentence == "This is a fake image."
    assert answer.explanation == "The sky is flat." and answer.text_verdict == "fake"
    plain = engine.codec.encode("This is a real image. Fine.", special=False)
    answer = engine._compose(plain, plain.index(engine._real_id), 0.1, 3)
    assert answer.lead_in == "" and answer.text_verdict == "real"


# ---- the forced path (--answer-prefix) ---------------------------------------------------------------------

def test_forced_scores_are_probabilities(forced):
    scores = forced.score(IMAGES)
    assert len(scores) == 8
    assert all(0.0 <= p <= 1.0 for p in scores)
    assert len({round(p, 6) for p in scores}) > 1  # the images really reach the model


def test_forced_batch_of_eight_equals_one_by_one(forced):
    batched = forced.score(IMAGES)
    single = [forced.score([im])[0] for im in IMAGES]
    assert max(abs(a - b) for a, b in zip(batched, single, strict=True)) < 1e-4


@pytest.mark.slow
def test_forced_explain_batch_equals_single_and_score_matches(forced):
    batched = forced.explain(IMAGES, max_new_tokens=12)
    single = [forced.explain([im], max_new_tokens=12)[0] for im in IMAGES]
    assert [a.text for a in batched] == [b.text for b in single]
    for answer, p in zip(batched, forced.score(IMAGES), strict=True):
        assert abs(answer.p_fake - p) < 1e-4  # text and score come from the same pass as the score path


def test_forced_explain_text_starts_with_the_prefix(forced):
    answer = forced.explain(IMAGES[:1], max_new_tokens=8)[0]
    assert answer.text.startswith("This is a")
    assert "Does the image" not in answer.text and "<image>" not in answer.text
    assert answer.text_verdict in ("real", "fake", "unknown")


def test_verdict_tokens_come_from_the_tokenizer(engine, forced):
    for eng in (engine, forced):
        assert eng.codec.decode([eng._fake_id]).strip() == "fake"
        assert eng.codec.decode([eng._real_id]).strip() == "real"
    assert engine._forced == () and len(forced._forced) > 0  # forced only when asked


@pytest.mark.slow
def test_bf16_load_scores_close_to_fp32(tiny_model, engine):
    bf16 = Engine.load(EngineOptions(model=str(tiny_model), device="cpu", dtype="bfloat16", answer_prefix=FORCED))
    fp32 = Engine.load(EngineOptions(model=str(tiny_model), device="cpu", dtype="float32", answer_prefix=FORCED))
    assert bf16.info.dtype == "bfloat16"
    got, want = bf16.score(IMAGES[:4]), fp32.score(IMAGES[:4])
    assert all(0 <= p <= 1 for p in got)
    assert max(abs(a - b) for a, b in zip(got, want, strict=True)) < 0.05


@pytest.mark.slow
@pytest.mark.parametrize("quant", ["8bit", "4bit"])
def test_quantised_load_on_cpu(tiny_model, quant):
    if importlib.util.find_spec("bitsandbytes") is None:
        pytest.skip("bitsandbytes is not installed")
    try:
        eng = Engine.load(EngineOptions(model=str(tiny_model), device="cpu", quant=quant, answer_prefix=FORCED))
    except ModelLoadError as exc:
        pytest.skip(f"bitsandbytes cannot run {quant} on this CPU: {exc}")
    assert eng.info.quant == quant
    batched = eng.score(IMAGES[:4])
    assert all(0 <= p <= 1 for p in batched)
    assert max(abs(a - eng.score([im])[0]) for a, im in zip(batched, IMAGES[:4], strict=True)) < 1e-3


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
    with pytest.raises(ModelLoadError, match=r"no config.json"):
        Engine.load(EngineOptions(model=str(tmp_path)))


def test_not_a_llava_checkpoint(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert", "architectures": ["BertModel"]}))
    with pytest.raises(ModelLoadError, match="not a LLaVA"):
        Engine.load(EngineOptions(model=str(tmp_path)))


def test_a_damaged_weights_file_is_a_load_error(tiny_model, tmp_path):
    """A half-downloaded model.safetensors (safetensors' SafetensorError is neither OSError nor ValueError)."""
    import shutil

    damaged = tmp_path / "damaged"
    shutil.copytree(tiny_model, damaged)
    weights = damaged / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(ModelLoadError, match=r"weights file is damaged or incomplete .*download it again"):
        Engine.load(EngineOptions(model=str(damaged), device="cpu", dtype="float32"))


def test_uncached_hub_model_offline_says_how_to_fix():
    with pytest.raises(ModelLoadError, match=r"hf download|--model PATH"):
        Engine.load(EngineOptions(model="lingcco/fakeVLM-does-not-exist"))


def test_unavailable_device(tiny_model):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(ModelLoadError, match="no CUDA"):
        Engine.load(EngineOptions(model=str(tiny_model), device="cuda"))
    with pytest.raises(ModelLoadError, match=r"unknown device|not supported"):
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
    import fakevlm_cli.model.loading as loading_module

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    calls = []
    monkeypatch.setattr(loading_module, "hub_reachable", lambda **kw: calls.append(1) or False)
    with pytest.raises(ModelLoadError, match=r"the hub cannot be reached.*hf download.*--no-model"):
        Engine.load(EngineOptions(model="lingcco/fakeVLM"))
    assert calls == [1]


def test_offline_mode_is_named_as_the_reason_not_an_unreachable_hub(monkeypatch):
    """With HF_HUB_OFFLINE=1 the hub is never asked; the error says offline mode kept the weights out."""
    import fakevlm_cli.model.loading as loading_module

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(loading_module, "hub_reachable", lambda **kw: pytest.fail("the hub was asked"))
    with pytest.raises(ModelLoadError) as caught:
        Engine.load(EngineOptions(model="someone/not-cached"))
    message = str(caught.value)
    assert "HF_HUB_OFFLINE is set" in message and "cannot be reached" not in message
    assert "--no-model" in message and "fakevlm demo" in message


@pytest.mark.parametrize("size", [(640, 480), (480, 640), (1001, 333), (90, 60), (112, 112), (113, 112),
                                  (112, 500), (4000, 113)])
def test_preprocess_equals_the_processor_exactly(engine, size):
    """The fast path (a Pillow resize, an array crop, a lookup table) is bit-identical to the processor."""
    import torch

    assert engine._fast is not None  # the CLIP processor qualifies: the fast path is the one running
    image = noise_image(11, size)
    ours = engine.preprocess(image)
    theirs = engine.processor.image_processor(images=[image], return_tensors="pt")["pixel_values"][0]
    assert ours.shape == theirs.shape and torch.equal(ours, theirs)


def test_a_processor_the_fast_path_cannot_match_is_used_as_it_is(tiny_model):
    from transformers import AutoProcessor, LlavaForConditionalGeneration

    from fakevlm_cli.core.engine_types import ModelInfo

    processor = AutoProcessor.from_pretrained(tiny_model)
    processor.image_processor.do_normalize = False  # not the four steps the lookup table stands for
    model = LlavaForConditionalGeneration.from_pretrained(tiny_model)
    eng = Engine(model, processor, info=ModelInfo("m", None, "float32", "none", "cpu"), answer_prefix=FORCED)
    assert eng._fast is None
    image = noise_image(3, (200, 150))
    theirs = processor.image_processor(images=[image], return_tensors="pt")["pixel_values"][0]
    assert eng.preprocess(image).equal(theirs)


def test_the_model_gets_the_cores_the_loaders_leave_during_a_scan(engine, tmp_path, monkeypatch):
    """On the CPU, torch's threads are cores - loader threads (at least 1) while a scan runs, then restored."""
    import torch

    from fakevlm_cli.core.options import JudgeOptions
    from fakevlm_cli.media.discover import Candidate
    from fakevlm_cli.model.engine import _usable_cores
    from fakevlm_cli.run.pipeline import Scanner

    noise_image(1).save(tmp_path / "a.png")
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv("MKL_NUM_THREADS", raising=False)
    forced = Engine(engine.model, engine.processor, info=engine.info, codec=engine.codec, answer_prefix=FORCED)
    seen = []
    real = forced.verdicts
    monkeypatch.setattr(forced, "verdicts", lambda px: seen.append(torch.get_num_threads()) or real(px))
    before = torch.get_num_threads()
    for workers in (1, 2, 64):
        list(Scanner(forced, JudgeOptions(workers=workers)).run([Candidate(tmp_path / "a.png", explicit=True)]))
        assert seen[-1] == max(1, _usable_cores() - workers)
        assert torch.get_num_threads() == before
    monkeypatch.setenv("OMP_NUM_THREADS", "3")  # the user's choice stands
    list(Scanner(forced, JudgeOptions(workers=2)).run([Candidate(tmp_path / "a.png", explicit=True)]))
    assert seen[-1] == before


def test_a_processor_that_predates_image_token_expansion_works(tiny_model):
    """llava-hf/llava-1.5-7b-hf at a272c74 (upstream's pin) has no patch size: the engine expands <image> itself."""
    from transformers import AutoProcessor, LlavaForConditionalGeneration

    from fakevlm_cli.core.engine_types import ModelInfo

    processor = AutoProcessor.from_pretrained(tiny_model)
    processor.patch_size = None  # as saved by transformers < 4.44
    processor.vision_feature_select_strategy = None
    model = LlavaForConditionalGeneration.from_pretrained(tiny_model)
    info = ModelInfo(id="old", revision=None, dtype="float32", quant="none", device="cpu")
    eng = Engine(model, processor, info=info, answer_prefix=FORCED)
    assert eng.prompt_ids.count(model.config.image_token_index) == model.config.image_seq_length
    assert 0 <= eng.score(IMAGES[:1])[0] <= 1


def test_a_processor_for_another_image_size_is_refused(tiny_model, engine):
    from fakevlm_cli.core.engine_types import ModelInfo

    original = engine.processor.image_processor.crop_size
    engine.processor.image_processor.crop_size = {"height": 224, "width": 224}
    try:
        with pytest.raises(ModelLoadError, match=r"crops images to 224 px.*expects 112 px"):
            Engine(engine.model, engine.processor, info=ModelInfo("m", None, "float32", "none", "cpu"))
    finally:
        engine.processor.image_processor.crop_size = original


def test_a_long_explanation_is_exactly_what_plain_greedy_generate_writes(engine):
    """Long answers decode into a static KV cache: the tokens must be those of plain `generate` (dynamic cache)."""
    import torch

    from fakevlm_cli.model.engine import STATIC_CACHE_FROM

    steps = STATIC_CACHE_FROM + 16
    answers = engine.explain(IMAGES[:4], max_new_tokens=steps)
    ids = torch.tensor([engine.prompt_ids] * 4)
    pixels = torch.stack([engine.preprocess(im) for im in IMAGES[:4]])
    with torch.inference_mode():
        plain = engine.model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), pixel_values=pixels,
                                      max_new_tokens=steps, do_sample=False)
    for answer, row in zip(answers, plain[:, ids.shape[1]:].tolist(), strict=True):
        eos = engine.model.generation_config.eos_token_id
        row = row[: row.index(eos)] if eos in row else row
        assert answer.lead_in == ""  # a random model writes no verdict: its whole answer is `text`
        assert answer.text == engine.codec.decode(row).strip()


def test_long_explanations_are_not_compiled_unless_asked(engine, monkeypatch):
    """transformers compiles a static-cache generate on CUDA by default; fakevlm turns that off (disable_compile)
    unless --compile was given, for the verdict search and for long explanations alike."""
    from fakevlm_cli.model.engine import STATIC_CACHE_FROM

    seen = []
    real = engine.model.generate

    def spy(**kwargs):
        seen.append((kwargs.get("cache_implementation"), kwargs.get("disable_compile")))
        return real(**kwargs)

    monkeypatch.setattr(engine.model, "generate", spy)
    engine.explain(IMAGES[:1], max_new_tokens=STATIC_CACHE_FROM + 1)
    engine.score(IMAGES[:1])
    assert ("static", True) in seen and all(disabled is True for _, disabled in seen)
    monkeypatch.setattr(engine, "compile_decode", True)
    seen.clear()
    engine.explain(IMAGES[:1], max_new_tokens=STATIC_CACHE_FROM + 1)
    assert seen and all(disabled is False for _, disabled in seen)


def test_compile_on_the_cpu_is_refused_before_loading(tiny_model):
    from fakevlm_cli.core.errors import ModelLoadError
    from fakevlm_cli.core.options import EngineOptions
    from fakevlm_cli.model.engine import Engine

    with pytest.raises(ModelLoadError, match=r"^--compile needs a CUDA GPU \(the model runs on cpu\)$"):
        Engine.load(EngineOptions(model=str(tiny_model), device="cpu", compile=True))


def test_the_verdict_watch_closes_a_row_at_the_end_of_its_answer():
    """generate keeps computing a finished row (padded) until the batch ends: a "verdict" it would pick after
    the row's end of answer is not the model's, so the watch reads nothing there; nor past its step bound."""
    import torch

    from fakevlm_cli.model.watch import VerdictWatch

    fake, real, stop, other = 3, 4, 2, 5
    watch = VerdictWatch(fake, real, frozenset({stop}), 10, limit=3, read_first=False)

    def step(n, picks):
        scores = torch.zeros(len(picks), 8)
        for row, token in enumerate(picks):
            scores[row, token] = 5.0
        watch(torch.zeros(len(picks), 10 + n, dtype=torch.long), scores)

    step(0, [other, stop, other, other])  # row 1 ends its answer
    step(1, [fake, fake, other, other])   # row 0: verdict at step 1; row 1: after its end, not read
    step(2, [real, real, real, other])    # row 2: verdict at step 2
    step(3, [real, real, real, fake])     # row 3: beyond the bound of 3 steps
    assert watch.step == [1, None, 2, None]
    assert watch.p_fake[0] == pytest.approx(float(torch.softmax(torch.tensor([5.0, 0.0]), 0)[0]))
    assert watch.p_fake[1] is None and watch.p_fake[3] is None
