"""The upstream evaluation loop, re-created as the baseline (no code copied from opendatalab/FakeVLM).

What `scripts/eval.py` of opendatalab/FakeVLM does per batch (see that file, and issue #5 here):

* the raw prompt ``<image>Does the image looks real/fake?`` for every image, no chat wrapper;
* prompts and images go through the processor together with ``padding="max_length", max_length=1024``, its
  ``<image>`` one id that the model expands to 576 image tokens: every row is 1,599 positions whatever its
  real length (595), padded on the left as llava-hf's tokenizer does;
* ``model.generate(max_new_tokens=256)``, greedy, batch size 16;
* the whole sequence is decoded, cut after its last "?", and the verdict is a substring test on the first
  "."-sentence, then the second, that checks "real" before "fake" and falls
  back to a random label.

The function is written against the same model and processor objects the engine wraps, so both sides of
each comparison run on the same weights, dtype and device.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field

UPSTREAM_PROMPT = "<image>Does the image looks real/fake?"
UPSTREAM_BATCH = 16
UPSTREAM_MAX_LENGTH = 1024
UPSTREAM_MAX_NEW_TOKENS = 256


def upstream_parse(text: str, rng: random.Random) -> int:
    """Their verdict parse, defects included (label 1 = real, 0 = fake): the text after the last "?", its
    first "."-sentence then its second; in each, "real" before "fake"; else a coin toss."""
    sentences = text.split("?")[-1].split(".")
    for sentence in sentences[:2]:
        lowered = sentence.lower()
        if "real" in lowered:
            return 1
        if "fake" in lowered:
            return 0
    return rng.choice([0, 1])


@dataclass
class BaselineResult:
    texts: list[str] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)
    new_tokens: list[int] = field(default_factory=list)  # generated steps per batch (max over its rows)
    prompt_tokens: int = 0  # padded prompt length fed to generate
    prep_seconds: float = 0.0  # processor: image preprocessing + tokenisation/padding
    generate_seconds: float = 0.0
    decode_seconds: float = 0.0  # batch_decode + parse


def upstream_eval_loop(model, processor, images: Sequence, *, batch_size: int = UPSTREAM_BATCH,
                       max_new_tokens: int = UPSTREAM_MAX_NEW_TOKENS, max_length: int = UPSTREAM_MAX_LENGTH,
                       padding_side: str = "left", seed: int = 0) -> BaselineResult:
    """Run the upstream loop over PIL `images` and return texts, labels and token counts."""
    import time

    import torch

    device = next(model.parameters()).device
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    dtype = getattr(model, "dtype", torch.float32)
    if dtype not in (torch.float16, torch.bfloat16, torch.float32):  # quantised weights
        dtype = torch.float16
    tokenizer = processor.tokenizer
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    rng = random.Random(seed)
    result = BaselineResult()
    saved_side = tokenizer.padding_side
    tokenizer.padding_side = padding_side
    try:
        for start in range(0, len(images), batch_size):
            chunk = list(images[start:start + batch_size])
            t0 = time.perf_counter()
            # transformers 4.45's llava-1.5 processor had no patch size: it padded 1,024 ids holding one <image>
            # id, which the model then expanded to its image tokens (576): 1,599 positions. This processor
            # expands before padding, so it pads to the same 1,599.
            positions = max_length + int(model.config.image_seq_length) - 1
            inputs = processor(images=chunk, text=[UPSTREAM_PROMPT] * len(chunk), return_tensors="pt",
                               padding="max_length", max_length=positions)
            inputs = {k: (v.to(device, dtype) if k == "pixel_values" else v.to(device)) for k, v in inputs.items()}
            sync()
            t1 = time.perf_counter()
            with torch.inference_mode():
                out = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False, num_beams=1,
                                     pad_token_id=pad_id)
            sync()
            t2 = time.perf_counter()
            n_in = inputs["input_ids"].shape[1]
            result.prompt_tokens = n_in
            new = out[:, n_in:]
            result.new_tokens.append(int(new.shape[1]))
            for text in processor.batch_decode(out, skip_special_tokens=True):  # prompt included, as upstream
                result.texts.append(text)
                result.labels.append(upstream_parse(text, rng))
            result.prep_seconds += t1 - t0
            result.generate_seconds += t2 - t1
            result.decode_seconds += time.perf_counter() - t2
    finally:
        tokenizer.padding_side = saved_side
    return result
