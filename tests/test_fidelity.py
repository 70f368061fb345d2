"""The model is fed exactly what the upstream FakeVLM evaluation fed it: prompt ids, processor, pixels, dtype.

The oracles are facts measured on the upstream stack (transformers 4.45.2): the prompt ids in the
llava-1.5 processor replica (../shared/models/), and the pixel values of tests/upstream_cases.py pinned in
tests/data/upstream_pixels.json by tests/make_upstream_pixels.py. Tests needing ../shared skip without it.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from conftest import SHARED
from upstream_cases import decoded_digest, write_cases

from fakevlm_cli.core.engine_types import UPSTREAM_PROCESSOR, UPSTREAM_PROCESSOR_REVISION, UPSTREAM_PROMPT_IDS
from fakevlm_cli.core.options import EngineOptions
from fakevlm_cli.media.images import load_image
from fakevlm_cli.model.engine import Engine

REPLICA = SHARED / "models" / "llava-1.5-processor-replica"
# [1] + [32000]*576 + the rest: the ids upstream's processor produced, with <image> as the model expands it.
UPSTREAM_EXPANDED = [1] + [32000] * 576 + list(UPSTREAM_PROMPT_IDS[2:])
needs_replica = pytest.mark.skipif(not (REPLICA / "tokenizer.json").is_file(),
                                   reason="../shared/models/llava-1.5-processor-replica is absent")


@pytest.fixture(scope="session")
def llava15_folder(tmp_path_factory):
    """A tiny random model with LLaVA-1.5's geometry, the replica's processor files inside its folder."""
    from fakevlm_cli.testing.synthetic import build_llava15_shaped

    return build_llava15_shaped(tmp_path_factory.mktemp("llava15-with-processor"), REPLICA)


@pytest.fixture(scope="session")
def llava15_engine(llava15_folder):
    return Engine.load(EngineOptions(model=str(llava15_folder), device="cpu", dtype="float32"))


@needs_replica
def test_prompt_ids_are_upstreams_with_the_processor_in_the_model_folder(llava15_engine):
    assert llava15_engine.prompt_ids == UPSTREAM_EXPANDED
    assert llava15_engine.info.prompt_ids_from == "tokenizer.json"
    assert llava15_engine.notices == []


@needs_replica
def test_prompt_ids_are_upstreams_with_processor_option(tmp_path, llava15_engine):
    from fakevlm_cli.testing.synthetic import build_llava15_shaped

    bare = build_llava15_shaped(tmp_path / "weights-only", None)
    assert not (bare / "tokenizer.json").exists()
    engine = Engine.load(EngineOptions(model=str(bare), processor=str(REPLICA), device="cpu", dtype="float32"))
    assert engine.prompt_ids == UPSTREAM_EXPANDED
    assert engine.info.processor == str(REPLICA)


@needs_replica
def test_a_tokenizer_that_feeds_other_ids_is_said_at_load(llava15_engine):
    """Fed by transformers' own Llama tokenizer (what the fallback without tokenizer.json uses), the prompt
    differs under transformers 5 (25125 "Does" where upstream fed 5538 "▁Does"), and the load says so."""
    import transformers
    from transformers import AutoTokenizer

    from fakevlm_cli.model.tokens import Codec

    codec = Codec.from_transformers(AutoTokenizer.from_pretrained(REPLICA))
    engine = Engine(llava15_engine.model, llava15_engine.processor, info=llava15_engine.info, codec=codec)
    theirs = codec.encode(engine.prompt)
    differs = tuple(theirs) != UPSTREAM_PROMPT_IDS
    if int(transformers.__version__.split(".")[0]) >= 5:
        assert differs and theirs[2] == 25125  # the case the notice exists for
    assert any("differ from those the upstream evaluation fed" in n for n in engine.notices) == differs


@pytest.mark.slow
@needs_replica
def test_a_checkpoint_resaved_by_transformers_5_still_gets_upstreams_prompt_ids(tmp_path, llava15_folder):
    """save_pretrained under transformers 5 writes tokenizer.json without the Llama normaliser (so 25125 "Does"):
    the load restores it, says so, and the model is fed upstream's ids."""
    import shutil

    from transformers import AutoProcessor

    resaved = tmp_path / "resaved"
    shutil.copytree(llava15_folder, resaved)
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "preprocessor_config.json"):
        (resaved / name).unlink(missing_ok=True)
    AutoProcessor.from_pretrained(REPLICA, backend="pil").save_pretrained(resaved)
    written = json.loads((resaved / "tokenizer.json").read_text())
    assert written["normalizer"] is None  # what transformers 5 writes: the case this test is about
    engine = Engine.load(EngineOptions(model=str(resaved), device="cpu", dtype="float32"))
    assert engine.prompt_ids == UPSTREAM_EXPANDED and engine.info.prompt_ids_from == "tokenizer.json"
    assert [n for n in engine.notices if "restored it" in n] and (engine._fake_id, engine._real_id) == (25713, 1855)
    assert engine.codec.decode([910, 338, 263, 25713, 1967, 29889]) == "This is a fake image."


@needs_replica
def test_verdict_tokens_and_decoding_are_llamas(llava15_engine):
    assert (llava15_engine._fake_id, llava15_engine._real_id) == (25713, 1855)
    codec = llava15_engine.codec
    assert codec.encode("This is a fake image.", special=False) == [910, 338, 263, 25713, 1967, 29889]
    assert codec.decode([910, 338, 263, 25713, 1967, 29889]) == "This is a fake image."
    assert llava15_engine._forced == ()  # nothing is forced after the prompt by default


@pytest.mark.slow
@needs_replica
def test_an_answer_prefix_is_forced_only_when_asked(llava15_folder):
    engine = Engine.load(EngineOptions(model=str(llava15_folder), device="cpu", dtype="float32",
                                       answer_prefix="\nThis is a"))
    assert engine.prompt_ids == UPSTREAM_EXPANDED  # the prompt itself is unchanged
    assert engine._forced and engine.codec.decode(list(engine._forced)).strip() == "This is a"
    assert (engine._fake_id, engine._real_id) == (25713, 1855)


@needs_replica
@pytest.mark.parametrize("mode", ["upstream", "viewer"])
def test_record_says_which_processor_and_pixels_ran(llava15_engine, photo, mode):
    from fakevlm_cli.core.options import JudgeOptions
    from fakevlm_cli.media.discover import Candidate
    from fakevlm_cli.run.pipeline import Scanner

    config = JudgeOptions(batch_size=1, workers=1, pixels=mode)
    record = next(iter(Scanner(llava15_engine, config).run([Candidate(path=photo, explicit=True)])))
    model = record.to_dict()["model"]
    assert model["processor"] == str(llava15_engine.info.processor) and model["pixels"] == mode
    assert model["prompt_ids_from"] == "tokenizer.json" and model["answer_prefix"] is None


# ---- pixels ------------------------------------------------------------------------------------------------

DATA = Path(__file__).parent / "data"
_PINNED = json.loads((DATA / "upstream_pixels.json").read_text())["cases"]
# llava-hf/llava-1.5-7b-hf's image processor settings (the replica's preprocessor_config.json, kept here so that
# the pixel pins run without ../shared; test_the_kept_image_processor_settings_are_the_replicas keeps them equal)
LLAVA15_IMAGE_PROCESSOR = json.loads((DATA / "llava15_preprocessor_config.json").read_text())


@pytest.fixture(scope="module")
def llava15_pixels(tmp_path_factory):
    """The processor side alone, as `Engine.load` pairs it with a model: llava-hf's image processor settings
    in a tiny model's folder (its tokenizer plays no part in pixels)."""
    from fakevlm_cli.testing.synthetic import build_tiny_llava

    folder = build_tiny_llava(tmp_path_factory.mktemp("llava15-pixels") / "model", image_size=336)
    config = json.loads((folder / "processor_config.json").read_text())
    config["image_processor"] = {k: v for k, v in LLAVA15_IMAGE_PROCESSOR.items() if k != "processor_class"}
    (folder / "processor_config.json").write_text(json.dumps(config))
    return Engine.load_pixels(EngineOptions(model=str(folder)))


@needs_replica
def test_the_kept_image_processor_settings_are_the_replicas():
    assert json.loads((REPLICA / "preprocessor_config.json").read_text()) == LLAVA15_IMAGE_PROCESSOR


@pytest.fixture(scope="module")
def case_files(tmp_path_factory):
    return write_cases(tmp_path_factory.mktemp("upstream-cases"))


def _digest(pixels) -> str:
    return hashlib.sha256(np.ascontiguousarray(pixels.numpy(), dtype=np.float32).tobytes()).hexdigest()


@pytest.mark.parametrize("name", sorted(_PINNED))
def test_eval_pixels_are_bit_identical_to_upstreams(llava15_pixels, case_files, name):
    path, pinned = case_files[name], _PINNED[name]
    if decoded_digest(path) != pinned["decoded"]:
        pytest.skip(f"this Pillow decodes {path.name} differently from the one that pinned it")
    pixels = llava15_pixels.preprocess(load_image(path.read_bytes(), mode="upstream").image)
    assert list(pixels.shape) == pinned["shape"]
    assert _digest(pixels) == pinned["pixels_sha256"]


@pytest.mark.parametrize("name", ["jpeg_exif_rotated", "rgba_alpha", "palette_transparent"])
def test_viewer_pixels_differ_from_upstream_where_a_person_would_see_otherwise(llava15_pixels, case_files, name):
    """Scan shows the model the picture as people see it: rotated by EXIF, transparency on white."""
    data = case_files[name].read_bytes()
    viewer, upstream = (llava15_pixels.preprocess(load_image(data, mode=m).image) for m in ("viewer", "upstream"))
    assert not np.array_equal(viewer.numpy(), upstream.numpy())


def test_upstream_rotation_is_ignored_and_viewer_applies_it(case_files):
    data = case_files["jpeg_exif_rotated"].read_bytes()
    assert load_image(data, mode="upstream").image.size == (480, 320)
    assert load_image(data, mode="viewer").image.size == (320, 480)


# ---- processor, backend and dtype choices ------------------------------------------------------------------

def test_processor_pairing():
    from fakevlm_cli.model.loading import _processor_candidates

    upstream = (UPSTREAM_PROCESSOR, UPSTREAM_PROCESSOR_REVISION)
    assert _processor_candidates("lingcco/fakeVLM", EngineOptions())[0] == upstream
    assert _processor_candidates("/ckpt", EngineOptions(model="/ckpt", revision="r1")) == [("/ckpt", "r1"), upstream]
    explicit = EngineOptions(model="/ckpt", processor="org/proc", processor_revision="v2")
    assert _processor_candidates("/ckpt", explicit) == [("org/proc", "v2")]


def test_processor_is_loaded_with_the_pil_backend(tiny_model, monkeypatch):
    """transformers 5 would pick torchvision whenever it is installed, with pixels up to 5 levels off."""
    from transformers import AutoProcessor
    from transformers.image_processing_backends import PilBackend

    seen = []
    original = AutoProcessor.from_pretrained.__func__

    def spy(cls, *args, **kwargs):
        seen.append(kwargs.get("backend"))
        return original(cls, *args, **kwargs)

    monkeypatch.setattr(AutoProcessor, "from_pretrained", classmethod(spy))
    engine = Engine.load(EngineOptions(model=str(tiny_model), device="cpu", dtype="float32"))
    assert seen == ["pil"]
    assert isinstance(engine.processor.image_processor, PilBackend)


@pytest.mark.parametrize(("bf16", "expected"), [(True, "bfloat16"), (False, "float16")])
def test_auto_dtype_is_bfloat16_on_gpus_that_have_it(monkeypatch, bf16, expected):
    import torch

    from fakevlm_cli.model.loading import _pick_dtype

    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: bf16)
    assert str(_pick_dtype("auto", torch.device("cuda"))) == f"torch.{expected}"
    assert _pick_dtype("auto", torch.device("cpu")) == torch.float32
    assert _pick_dtype("float16", torch.device("cpu")) == torch.float16


def test_a_processor_without_tokenizer_json_falls_back_and_says_so(engine, tmp_path):
    from fakevlm_cli.model.loading import _codec

    notices: list[str] = []
    codec = _codec(engine.processor, str(tmp_path), None, True, notices)
    assert codec.source == "transformers"
    assert notices and "no usable tokenizer.json" in notices[0]


def test_first_difference_of_id_lists():
    from fakevlm_cli.model.tokens import first_difference

    assert first_difference([1, 2, 3], [1, 5, 3]) == 1
    assert first_difference([1, 2], [1, 2, 3]) is None  # a prefix: no difference within the shorter one
    assert first_difference([1, 2, 3], [1, 2]) is None
