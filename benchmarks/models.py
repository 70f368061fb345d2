"""The models the benchmarks time: the tiny random LLaVA, or the full LLaVA-1.5-7B architecture.

* ``tiny``: `fakevlm_cli.testing.synthetic.build_tiny_llava` at LLaVA-1.5's geometry (336 px, 576 image tokens, the
  real prompt's length) and tiny widths, saved to a temp dir and loaded with `Engine.load`, the way users load
  a checkpoint: so padding, prompt length and the processor's work weigh what they weigh on the real model.
* ``llava-1.5-7b``: `llava_1_5_7b_config()` with random weights, built directly on the target device
  (``torch.device("cuda")`` as default device, so 7B parameters never get initialised on the CPU), in the
  chosen dtype, wrapped in `Engine(model, processor, info=...)`. Nothing is downloaded: the processor is the
  tiny model's tokenizer with a CLIP image processor at 336 px and patch 14, so each image is 576 tokens as
  in the real model. The config's image/pad token ids are remapped onto that tokenizer.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

ARCHES = ("tiny", "llava-1.5-7b")


@dataclass
class Built:
    engine: object
    checkpoint: Path | None  # a directory `Engine.load` can read (tiny), else None
    seconds: float
    params: int
    note: str = ""


def pick_device(name: str) -> str:
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return name


def pick_dtype(name: str | None, device: str) -> str:
    if name and name != "auto":
        return name
    if device.startswith("cuda"):  # as fakevlm's own auto (loading._pick_dtype): upstream ran bfloat16
        import torch

        return "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
    return "float32"


def quiet() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import logging

    for name in ("transformers", "bitsandbytes", "accelerate", "huggingface_hub"):
        logging.getLogger(name).setLevel(logging.ERROR)
    import warnings

    warnings.filterwarnings("ignore", message=".*CLIPImageProcessorPil.*")
    warnings.filterwarnings("ignore", message=".*torchvision.*")
    # equal_lengths sets min_new_tokens for the explain rows; calls that ask for fewer tokens (the verdict
    # search, the one-token upstream loop, the step timings) stop at their max_new_tokens, as meant.
    warnings.filterwarnings("ignore", message="Unfeasible length constraints")


def build_tiny_checkpoint(workdir: Path) -> Path:
    from fakevlm_cli.testing.synthetic import build_tiny_llava

    quiet()
    import transformers

    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    return build_tiny_llava(Path(workdir) / "tiny-llava", image_size=336)  # LLaVA-1.5's 576 image tokens


# Random weights never write "fake" or "real", so the free verdict search would always decode its full bound:
# the benchmark forces the answer start instead, which costs what a trained model's learnt lead-in costs (one
# forward pass on the score path).
RANDOM_PREFIX = "\nThis is a"


def equal_lengths(engine, max_new_tokens: int) -> None:
    """Random weights end an answer at a random step: make every generation, ours and the upstream loop's,
    write exactly `max_new_tokens` tokens (generation config's min_new_tokens), so that both sides of an
    explain comparison do the same work."""
    engine.model.generation_config.min_new_tokens = max_new_tokens


def build(arch: str, device: str, dtype: str, workdir: Path, *, shrink: bool = False,
          max_new_tokens: int = 256) -> Built:
    """Build the engine for `arch` on `device` in `dtype` (`shrink`: 2-layer 7B-width model, for tests).

    The engine answers freely (as users run it); the score row forces the answer start itself, since random
    weights state no verdict of their own (`rows_model._forced`)."""
    quiet()
    start = time.perf_counter()
    if arch == "tiny":
        from fakevlm_cli.core.options import EngineOptions
        from fakevlm_cli.model.engine import Engine

        ckpt = build_tiny_checkpoint(workdir)
        engine = Engine.load(EngineOptions(model=str(ckpt), device=device, dtype=dtype))
        equal_lengths(engine, max_new_tokens)
        params = sum(p.numel() for p in engine.model.parameters())
        return Built(engine, ckpt, time.perf_counter() - start, params,
                     "tiny random LLaVA at LLaVA-1.5 geometry (336 px, 576 image tokens) via Engine.load")
    if arch == "llava-1.5-7b":
        engine = build_full_engine(device, dtype, workdir, shrink=shrink)
        params = sum(p.numel() for p in engine.model.parameters())
        note = "llava_1_5_7b_config(), random weights, built on device"
        if shrink:
            note += " (SHRUNK to 2 layers: plumbing test only)"
        return Built(engine, None, time.perf_counter() - start, params, note)
    raise ValueError(f"unknown arch {arch!r} (choose from {', '.join(ARCHES)})")


def full_size_processor(workdir: Path):
    """The tiny tokenizer with a CLIP image processor at 336 px / patch 14 (576 image tokens)."""
    from transformers import AutoTokenizer, CLIPImageProcessorPil, LlavaProcessor

    ckpt = Path(workdir) / "tiny-llava"
    if not (ckpt / "config.json").is_file():
        build_tiny_checkpoint(workdir)
    tokenizer = AutoTokenizer.from_pretrained(ckpt)
    tokenizer.padding_side = "left"
    image_processor = CLIPImageProcessorPil(size={"shortest_edge": 336},
                                            crop_size={"height": 336, "width": 336})
    return LlavaProcessor(image_processor=image_processor, tokenizer=tokenizer, patch_size=14,
                          vision_feature_select_strategy="default", num_additional_image_tokens=1)


def full_size_config(tokenizer, *, shrink: bool = False):
    from fakevlm_cli.testing.synthetic import llava_1_5_7b_config

    config = llava_1_5_7b_config()
    image_id = tokenizer.convert_tokens_to_ids("<image>")
    config.image_token_index = image_id
    config.pad_token_id = tokenizer.pad_token_id
    config.text_config.pad_token_id = tokenizer.pad_token_id
    config.text_config.bos_token_id = tokenizer.bos_token_id
    config.text_config.eos_token_id = tokenizer.eos_token_id
    if shrink:
        config.text_config.num_hidden_layers = 2
        config.vision_config.num_hidden_layers = 2
    return config


def build_full_model(config, device: str, dtype: str):
    """Random-weight LlavaForConditionalGeneration created on `device` directly, in `dtype`."""
    import torch
    from transformers import LlavaForConditionalGeneration

    torch_dtype = getattr(torch, dtype)
    saved = torch.get_default_dtype()
    torch.manual_seed(0)
    try:
        torch.set_default_dtype(torch_dtype)
        with torch.device(device):
            model = LlavaForConditionalGeneration(config)
    finally:
        torch.set_default_dtype(saved)
    model = model.to(torch_dtype).eval()
    model.generation_config.pad_token_id = config.pad_token_id
    model.generation_config.eos_token_id = config.text_config.eos_token_id
    model.generation_config.bos_token_id = config.text_config.bos_token_id
    return model


def build_full_engine(device: str, dtype: str, workdir: Path, *, shrink: bool = False):
    from fakevlm_cli.model.engine import Engine, ModelInfo

    processor = full_size_processor(workdir)
    config = full_size_config(processor.tokenizer, shrink=shrink)
    model = build_full_model(config, device, dtype)
    info = ModelInfo(id="random:llava-1.5-7b" + ("-shrunk" if shrink else ""), revision=None, dtype=dtype,
                     quant="none", device=device)
    engine = Engine(model, processor, info=info)
    equal_lengths(engine, 256)
    return engine


def save_full_checkpoint(engine, out: Path) -> Path:
    """Save an in-memory engine's model and processor so `Engine.load` (and quantisation) can read it."""
    out = Path(out)
    engine.model.save_pretrained(out)
    engine.processor.save_pretrained(out)
    return out
