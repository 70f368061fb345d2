"""The engine on the toy FakeVLM, whose right answers are known: it is loaded as users load a checkpoint, fed
the raw prompt, and must find the verdict where the model writes it — after a lead-in the engine was never
told about (" ASSISTANT: " for bright images, a newline for dark ones, both in one batch)."""

from __future__ import annotations

import pytest
from reference import reference_verdicts

from fakevlm_cli.core.options import EngineOptions
from fakevlm_cli.model.engine import Engine
from fakevlm_cli.testing import toy

# Fresh images (never trained on), half fake, bright and dark mixed.
TOYS = toy.fresh_toy_images(16, start=toy.FRESH_SEEDS + 7000)
IMAGES = [t.image for t in TOYS]


@pytest.fixture(scope="module")
def reference(toy_engine):
    return reference_verdicts(toy_engine, IMAGES)


def test_the_batch_mixes_both_lead_ins_and_both_truths():
    assert {t.lead_in for t in TOYS} == set(toy.LEAD_INS)
    assert {t.fake for t in TOYS} == {True, False}


def test_prompt_and_verdict_ids_are_the_oracles(toy_engine, toy_model):
    oracle = toy.oracle_tokenizer(toy_model)
    assert toy_engine.prompt_ids == toy.prompt_ids(toy_model)
    assert toy_engine.info.prompt_ids_from == "tokenizer.json" and toy_engine.notices == []
    assert (toy_engine._fake_id, toy_engine._real_id) == (oracle.token_to_id("▁fake"), oracle.token_to_id("▁real"))


def test_a_tokenizer_json_in_transformers_5_form_gets_the_llama_normaliser_back(toy_model, tmp_path):
    """The toy's tokenizer.json rewritten as transformers 5 writes a Llama tokenizer (no normaliser, a Metaspace
    marking only the first piece) encodes the text after <image> without its "▁": the codec restores the
    normaliser and gives the oracle's ids again, and says so; a file in any other form is left alone."""
    import json

    from fakevlm_cli.model.tokens import Codec

    state = json.loads((toy_model / "tokenizer.json").read_text())
    state["normalizer"] = None
    state["pre_tokenizer"] = {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "first", "split": False}
    rewritten = tmp_path / "tokenizer.json"
    rewritten.write_text(json.dumps(state))
    from tokenizers import Tokenizer

    oracle = toy.oracle_tokenizer(toy_model)
    assert Tokenizer.from_file(str(rewritten)).encode(toy.PROMPT).ids != oracle.encode(toy.PROMPT).ids
    codec = Codec.from_file(rewritten)
    assert codec.note and "restored" in codec.note
    for text in (toy.PROMPT, toy.PROMPT + " This is a fake image.", "<image> two  spaces\nand a line"):
        assert codec.encode(text) == oracle.encode(text).ids
    assert Codec.from_file(toy_model / "tokenizer.json").note is None


def test_score_path_is_right(toy_engine):
    scores = toy_engine.score(IMAGES)
    assert all(p is not None for p in scores)
    assert [p >= 0.5 for p in scores] == [t.fake for t in TOYS]


def test_answers_carry_the_word_greedy_wrote(toy_engine):
    """The verdict word greedy decoding picked (a tie at 0.5 follows it, run/judge.py), from the one-pass check
    of a learnt lead-in and from decoding the rows that write another (both lead-ins are in the batch)."""
    engine = Engine(toy_engine.model, toy_engine.processor, info=toy_engine.info, codec=toy_engine.codec)
    pixels = [engine.preprocess(im) for im in IMAGES]
    for answers in (engine.verdicts(pixels), engine.verdicts(pixels)):  # nothing learnt, then a lead-in learnt
        assert [a.verdict_word for a in answers] == ["fake" if t.fake else "real" for t in TOYS]


@pytest.mark.slow
def test_score_path_equals_plain_generate_at_the_verdict_step(toy_engine, reference):
    engine = Engine(toy_engine.model, toy_engine.processor, info=toy_engine.info, codec=toy_engine.codec)
    answers = engine.verdicts([engine.preprocess(im) for im in IMAGES])  # a fresh engine: nothing learnt yet
    assert all(r is not None for r in reference)
    assert [a.verdict_step for a in answers] == [r[0] for r in reference]
    assert max(abs(a.p_fake - r[1]) for a, r in zip(answers, reference, strict=True)) <= 1e-5
    # the two lead-ins have different lengths, so the verdict comes at two different steps
    assert len({a.verdict_step for a in answers}) == 2


def test_batch_equals_one_by_one_whatever_was_learnt(toy_engine, reference):
    engine = Engine(toy_engine.model, toy_engine.processor, info=toy_engine.info, codec=toy_engine.codec)
    single = [engine.score([im])[0] for im in IMAGES]  # learns and re-learns the lead-in as it goes
    batched = engine.score(IMAGES)
    for got in (single, batched):
        assert max(abs(g - r[1]) for g, r in zip(got, reference, strict=True)) <= 1e-5


def test_the_learnt_lead_in_is_what_the_model_writes(toy_engine):
    engine = Engine(toy_engine.model, toy_engine.processor, info=toy_engine.info, codec=toy_engine.codec)
    bright = [t.image for t in TOYS if t.lead_in == toy.LEAD_IN_BRIGHT]
    engine.score(bright)
    assert engine.lead_in == "ASSISTANT: This is a"
    dark = [t.image for t in TOYS if t.lead_in == toy.LEAD_IN_DARK]
    engine.score(dark * 3)  # now the newline start is the more frequent one
    assert engine.lead_in.strip() == "This is a" and engine.lead_in.startswith("\n")


def test_explain_gives_the_models_own_verdict_sentence_and_explanation(toy_engine, reference):
    answers = toy_engine.explain(IMAGES, max_new_tokens=40)
    for answer, t, ref in zip(answers, TOYS, reference, strict=True):
        verdict = "fake" if t.fake else "real"
        assert answer.verdict_sentence == f"This is a {verdict} image."
        assert answer.text_verdict == verdict
        assert answer.verdict_word == verdict
        assert answer.lead_in == ("ASSISTANT:" if t.lead_in == toy.LEAD_IN_BRIGHT else "")
        assert answer.text.startswith(answer.verdict_sentence) and "ASSISTANT" not in answer.text
        if t.fake:
            assert toy.region_in(answer.explanation) == t.region  # the artifact found, and where
        else:
            assert answer.explanation == toy.REAL_ANSWER.split(". ", 1)[1]
        assert abs(answer.p_fake - ref[1]) <= 1e-5 and answer.verdict_step == ref[0]


def test_explain_batch_equals_one_by_one(toy_engine):
    batched = toy_engine.explain(IMAGES[:6], max_new_tokens=40)
    single = [toy_engine.explain([im], max_new_tokens=40)[0] for im in IMAGES[:6]]
    assert [a.text for a in batched] == [b.text for b in single]
    assert [a.lead_in for a in batched] == [b.lead_in for b in single]


def test_a_forced_prefix_the_model_never_writes_reads_another_context(toy_engine, toy_model, reference):
    """--answer-prefix is an opt-in: forcing "\\nThis is a" on bright images (whose answers start "ASSISTANT:")
    reads P(fake) where the model never is — which is why the default forces nothing."""
    forced = Engine.load(EngineOptions(model=str(toy_model), device="cpu", dtype="float32",
                                       answer_prefix="\nThis is a"))
    got = forced.score(IMAGES)
    assert all(0 <= p <= 1 for p in got)
    bright = [i for i, t in enumerate(TOYS) if t.lead_in == toy.LEAD_IN_BRIGHT]
    assert max(abs(got[i] - reference[i][1]) for i in bright) > 1e-5


def test_a_verdict_word_that_repeats_the_question_is_not_the_verdict(toy_engine):
    """Fed the raw prompt, a model may first repeat it (" Does the image looks real/fake? This is a fake
    image."): the "real" of the question is not its verdict, so the search goes on past it, in the score path and
    in the watch that reads explain's; an answer that merely uses the question's words is a verdict."""
    from fakevlm_cli.model.watch import VerdictWatch

    codec = toy_engine.codec

    def ids(text):
        return tuple(codec.encode(text, special=False))

    echo = ids(" Does the image looks real")
    assert echo[-1] == toy_engine._real_id and toy_engine._echoes(echo)
    assert toy_engine._echoes(ids(" ASSISTANT: Does the image looks real"))
    for answer in (" The image looks real", "\nThis is a real", " ASSISTANT: This is a real",
                   " Does the image looks real/fake? This is a real"):
        assert ids(answer)[-1] == toy_engine._real_id and not toy_engine._echoes(ids(answer)), answer

    import torch

    echo_ids = list(ids(" Does the image looks real/fake? This is a fake"))
    at_real, at_fake = echo_ids.index(toy_engine._real_id), len(echo_ids) - 1
    watch = VerdictWatch(toy_engine._fake_id, toy_engine._real_id, frozenset(), 0, limit=32, read_first=False,
                          echoes=lambda generated: toy_engine._echoes(tuple(generated)))
    vocabulary = max(echo_ids) + 1
    for step, token in enumerate(echo_ids):
        scores = torch.zeros(1, vocabulary)
        scores[0, token] = 1.0
        watch(torch.tensor([echo_ids[:step]], dtype=torch.long).reshape(1, step), scores)
    assert at_real < at_fake and watch.step == [at_fake]
