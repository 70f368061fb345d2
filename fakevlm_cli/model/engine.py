"""The FakeVLM inference engine; with loading.py, pixels.py and watch.py, the only modules that import torch and
transformers. What it reads once when built (prompt ids, verdict tokens) comes from prompt.py, the image side
(processor → pixel values) from pixels.py, the verdict watch over `generate` from watch.py.

The model is fed what the upstream evaluation fed it (opendatalab/FakeVLM `scripts/eval.py`): FakeClue's raw
prompt, tokenised as upstream's stack did (tokens.py), with `<image>` expanded to the model's image tokens,
and nothing forced after it. FakeVLM then writes its answer freely — possibly after a lead-in such as
"ASSISTANT:" or a newline — and states its verdict with the word "fake" or "real" ("This is a fake image.").
P(fake) is the softmax over those two tokens' logits *at the step where greedy decoding writes the verdict*,
the maintainers' own reading of a probability (FakeVLM issue #5).

Two paths share one loaded model:

* **score** — find the verdict step with as little decoding as possible. The engine keeps the lead-in the
  model has been writing (learnt from its own output, never written by us) and checks it in the same forward
  pass as the prompt, as speculative decoding checks a draft: where the model's own argmax agrees with the
  lead-in at every position and then picks "fake" or "real", the verdict step is found in one pass. Rows that
  disagree are decoded greedily, only those, from the point where they disagree, within `verdict_steps` new
  tokens; no verdict by then means P(fake) is None. Either way the value equals what plain greedy `generate`
  gives at that step.
* **explain** — free greedy generation from the raw prompt, as upstream; P(fake) from the verdict step of the
  same generation, so text and score come from one pass and equal the score path's.

`--answer-prefix` (opt-in) forces an answer start instead and reads P(fake) from the very next token.
Every prompt is the same string, so batches never pad and results cannot depend on batch size.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from typing import TYPE_CHECKING

from fakevlm_cli.core.engine_types import (
    DEFAULT_MAX_NEW_TOKENS,
    DEFAULT_PROMPT,
    DEFAULT_VERDICT_STEPS,
    Answer,
    ModelInfo,
)
from fakevlm_cli.core.options import EngineOptions
from fakevlm_cli.model import prompt as prompting
from fakevlm_cli.model.localise import View
from fakevlm_cli.model.pixels import FastPixels, Pixels
from fakevlm_cli.model.tokens import Codec
from fakevlm_cli.model.verdict import parse_verdict, split_verdict
from fakevlm_cli.model.watch import StopWhenRead, VerdictWatch

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    import torch
    from PIL import Image

__all__ = ["Answer", "Engine", "EngineOptions", "ModelInfo", "Pixels"]

# Generations longer than this use a static KV cache (shorter ones, the verdict search, are not worth its setup).
STATIC_CACHE_FROM = 32
# What ends a lead-in: the text after the last of these (plus spaces) is where the verdict sentence starts.
_LEAD_IN_END = re.compile(r"^(.*[.!?:;\n])\s*", re.S)


class Engine:
    """A loaded FakeVLM (or any LLaVA-1.5 checkpoint) ready to score and explain images."""

    def __init__(self, model, processor, *, info: ModelInfo, codec: Codec | None = None,
                 prompt: str = DEFAULT_PROMPT, answer_prefix: str | None = None,
                 verdict_steps: int = DEFAULT_VERDICT_STEPS, notices: Sequence[str] = (), compile_decode: bool = False):
        import torch

        self.model = model
        self.processor = processor
        self.info = info
        self.notices = list(notices)
        self.codec = codec or Codec.from_transformers(processor.tokenizer)
        self.prompt = prompt
        self.answer_prefix = answer_prefix
        self.verdict_steps = max(1, int(verdict_steps))
        self.compile_decode = compile_decode  # --compile: torch.compile the static-cache decode (CUDA)
        self.device = torch.device(info.device)
        self.dtype = _model_input_dtype(model)
        generation = getattr(model, "generation_config", None)
        eos = getattr(generation, "eos_token_id", None)
        if eos is None:
            eos = processor.tokenizer.eos_token_id
        self._stop_ids = frozenset(eos if isinstance(eos, (list, tuple)) else [eos]) - {None}
        pad = getattr(generation, "pad_token_id", None)
        if pad is None:
            pad = processor.tokenizer.pad_token_id
        self._pad_id = pad if pad is not None else next(iter(self._stop_ids), 0)
        self.pixels = Pixels(processor)
        prompting.check_geometry(self.view, model.config)
        self.prompt_ids = prompting.prompt_ids(self.codec, processor, model.config, prompt, self.notices)
        self._fake_id, self._real_id, self._forced = prompting.verdict_tokens(self.codec, prompt, answer_prefix)
        self._verdict_ids = frozenset((self._fake_id, self._real_id))
        self._echo_ends = prompting.question_words(processor, prompt, self._fake_id, self._real_id)
        self._lead_ins: Counter = Counter()  # lead-ins the model wrote, in tokens
        self._lead_in: tuple[int, ...] = ()  # the one checked first: the most frequent so far
        self._ids_cache: dict[tuple[int, ...], torch.Tensor] = {}

    # ---- loading -------------------------------------------------------------------------------------
    @classmethod
    def load(cls, options: EngineOptions = EngineOptions()) -> Engine:
        """Load model and processor from a hub id or a local directory, exactly as users run it."""
        from fakevlm_cli.model.loading import load

        return load(cls, options)

    @staticmethod
    def load_pixels(options: EngineOptions = EngineOptions()) -> Pixels:
        """The processor alone, as `load` would pair it with the model: preprocessing without the weights
        (a Ray CPU task's)."""
        from fakevlm_cli.model.loading import load_processor

        return Pixels(load_processor(options))

    @contextmanager
    def sharing_cpu(self, loader_threads: int) -> Iterator[None]:
        """While loader threads decode images on the same CPU, give torch only the cores they leave.

        torch's default of one intra-op thread per core makes the model fight the loaders for the cores
        (and OpenMP's spinning threads burn what the loaders need): on 2 cores a scan ran 1.4-3.7× faster with
        one torch thread beside two loaders, P(fake) identical (docs/performance.md). Only on the CPU, and
        never when the user chose a thread count (OMP_NUM_THREADS, MKL_NUM_THREADS).
        """
        import torch

        if self.device.type != "cpu" or any(os.environ.get(v) for v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")):
            yield
            return
        before = torch.get_num_threads()
        torch.set_num_threads(max(1, _usable_cores() - loader_threads))
        try:
            yield
        finally:
            torch.set_num_threads(before)

    def free_memory(self) -> None:
        """Give cached accelerator memory back (after a batch failed, before it is retried in halves)."""
        import torch

        if self.device.type == "cuda":
            torch.cuda.empty_cache()

    @property
    def forced(self) -> bool:
        """True when an answer prefix is forced (`--answer-prefix`), False when the model writes freely."""
        return self.answer_prefix is not None

    @property
    def view(self) -> View:
        """How the processor turns an image into the model's input (resize, centre crop): relevance maps are
        mapped back to image pixels with it."""
        return self.pixels.view

    @property
    def input_short_edge(self) -> int | None:
        """The short side the processor resizes images to (336 for LLaVA-1.5)."""
        return self.pixels.input_short_edge

    @property
    def _fast(self) -> FastPixels | None:
        return self.pixels.fast

    @property
    def lead_in(self) -> str:
        """The lead-in the score path currently checks first, as text."""
        return self.codec.decode(self._lead_in)

    # ---- preprocessing (thread-safe; loader threads run it) --------------------------------------------
    def preprocess(self, image: Image.Image) -> torch.Tensor:
        return self.pixels.preprocess(image)

    def _resize_like_processor(self, image: Image.Image) -> Image.Image:
        return self.pixels.resize_like_processor(image)

    def score(self, images: Sequence[Image.Image]) -> list[float | None]:
        return self.score_pixels([self.preprocess(im) for im in images])

    def explain(self, images: Sequence[Image.Image], max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS) -> list[Answer]:
        return self.explain_pixels([self.preprocess(im) for im in images], max_new_tokens)

    def score_pixels(self, pixels: Sequence[torch.Tensor]) -> list[float | None]:
        """P(fake) for each image at its verdict step (None where the model states no verdict)."""
        return [answer.p_fake for answer in self.verdicts(pixels)]

    def verdicts(self, pixels: Sequence[torch.Tensor]) -> list[Answer]:
        """The verdict step and P(fake) of each image, without generating the explanation."""
        import torch

        if not pixels:
            return []
        batch = self._pixel_batch(pixels)
        if self.forced:
            with torch.inference_mode():
                out = self.model(**self._inputs(batch, ()), logits_to_keep=1)
            return [Answer(p_fake=p, verdict_step=0, prefix=()) for p in self._pair(out.logits[:, -1, :])]
        lead = self._lead_in
        with torch.inference_mode():
            out = self.model(**self._inputs(batch, lead), logits_to_keep=len(lead) + 1)
        logits = out.logits
        greedy = logits.argmax(-1).tolist()
        results: list[Answer | None] = [None] * len(pixels)
        diverged: dict[tuple[int, ...], list[int]] = {}
        for row, tokens in enumerate(greedy):
            for step, token in enumerate(tokens):
                if token in self._verdict_ids and not self._echoes((*lead[:step], token)):
                    # the model's own verdict, after a prefix it agrees with
                    results[row] = Answer(p_fake=self._pair(logits[row, step])[0], verdict_step=step,
                                          prefix=tuple(lead[:step]), verdict_word=self._word(token))
                    self._learn(lead[:step])
                elif token in self._stop_ids:
                    results[row] = Answer(p_fake=None)  # the answer ended without a verdict
                elif step < len(lead) and token == lead[step]:
                    continue
                else:  # the model writes something else here: decode this row on from its own token
                    diverged.setdefault((*tuple(lead[:step]), token), []).append(row)
                break
        for prefix, rows in diverged.items():
            found = self._decode_to_verdict(batch[rows], prefix)
            for row, answer in zip(rows, found, strict=True):
                results[row] = answer
        return results  # type: ignore[return-value]

    def explain_pixels(self, pixels: Sequence[torch.Tensor],
                       max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS) -> list[Answer]:
        """Free greedy answers (as upstream), with P(fake) from the verdict step of the same generation."""
        if not pixels:
            return []
        batch = self._pixel_batch(pixels)
        watch, sequences = self._generate(batch, (), max_new_tokens, stop_at_verdict=False)
        answers = []
        for row, generated in enumerate(sequences):
            tokens = list(self._forced) + _cut_at(generated, self._stop_ids, self._pad_id)
            step = watch.step[row]
            if step is not None and not self.forced:
                self._learn(tuple(generated[:step]))
            at = None if step is None else len(self._forced) + step
            answer = self._compose(tokens, at, watch.p_fake[row], step)
            if step is not None:
                answer = replace(answer, prefix=() if self.forced else tuple(generated[:step]),
                                 verdict_word=self._word(watch.token[row]))
            answers.append(answer)
        return answers

    def relevance(self, pixels: Sequence[torch.Tensor], answers: Sequence[Answer], method: str,
                  chunk: int = 8) -> list[np.ndarray]:
        """A relevance map (grid × grid, numpy) per image for its verdict's log-odds, fake vs real, read in the
        context the verdict was written in (`Answer.prefix`); `chunk` images per model call (relevance.py).
        An answer without a verdict has no map: ValueError."""
        from fakevlm_cli.model import relevance

        if any(a.prefix is None for a in answers):
            raise ValueError("the model stated no verdict: nothing to explain")
        return relevance.maps(self, list(pixels), [a.prefix or () for a in answers], method, chunk=max(1, chunk))

    # ---- internals -------------------------------------------------------------------------------------
    def _decode_to_verdict(self, batch: torch.Tensor, prefix: tuple[int, ...]) -> list[Answer]:
        """Greedy-decode rows whose known answer so far is `prefix`, until each states a verdict or stops."""
        budget = self.verdict_steps - len(prefix)
        if budget <= 0:
            return [Answer(p_fake=None) for _ in range(batch.shape[0])]
        watch, sequences = self._generate(batch, prefix, budget, stop_at_verdict=True)
        answers = []
        for row, generated in enumerate(sequences):
            step = watch.step[row]
            if step is None:
                answers.append(Answer(p_fake=None))
                continue
            self._learn(prefix + tuple(generated[:step]))
            answers.append(Answer(p_fake=watch.p_fake[row], verdict_step=len(prefix) + step,
                                  prefix=prefix + tuple(generated[:step]), verdict_word=self._word(watch.token[row])))
        return answers

    def _generate(self, batch, prefix: tuple[int, ...], max_new_tokens: int, *, stop_at_verdict: bool):
        import torch
        from transformers import StoppingCriteriaList

        inputs = self._inputs(batch, prefix)
        watch = VerdictWatch(self._fake_id, self._real_id, self._stop_ids, inputs["input_ids"].shape[1],
                              limit=1 if self.forced else self.verdict_steps - len(prefix),
                              read_first=self.forced,
                              echoes=None if self.forced else lambda ids: self._echoes(prefix + tuple(ids)))
        stops = StoppingCriteriaList([StopWhenRead(watch)]) if stop_at_verdict else None
        # A long answer decodes into a preallocated (static) KV cache: no growing copy of every layer's keys
        # and values at each step (a third of a CPU decode step on the tiny model); greedy text is unchanged.
        # transformers torch.compiles the forward of a static-cache generate on CUDA unless told not to: a
        # compilation for every new batch shape that nobody asked for, so it happens only with --compile.
        cache = {"cache_implementation": "static"} if max_new_tokens > STATIC_CACHE_FROM else {}
        with torch.inference_mode():
            out = self.model.generate(
                **inputs, max_new_tokens=max_new_tokens, do_sample=False, num_beams=1, temperature=None,
                top_p=None, top_k=None, repetition_penalty=None, eos_token_id=sorted(self._stop_ids),
                pad_token_id=self._pad_id, return_dict_in_generate=True, logits_processor=[watch],
                stopping_criteria=stops, disable_compile=not self.compile_decode, **cache,
            )
        return watch, out.sequences[:, inputs["input_ids"].shape[1]:].tolist()

    def _compose(self, tokens: list[int], at: int | None, p_fake: float | None, step: int | None) -> Answer:
        """Split a generated answer into lead-in, verdict sentence and explanation."""
        full = self.codec.decode(tokens).strip()
        lead = ""
        if at is not None:
            match = _LEAD_IN_END.match(self.codec.decode(tokens[:at]))
            candidate = match.group(1).strip() if match else ""
            if candidate and full.startswith(candidate):
                lead = candidate
        body = full[len(lead):].strip()
        sentence, explanation = split_verdict(body)
        return Answer(p_fake=p_fake, verdict_step=step, lead_in=lead, text=body, verdict_sentence=sentence,
                      explanation=explanation, text_verdict=parse_verdict(body))

    def _echoes(self, answer: tuple[int, ...]) -> bool:
        """Whether the answer so far, ending in a verdict token, is the prompt's question repeated up to that
        word (" Does the image looks real"): greedy decoding wrote the word, but not as a verdict."""
        end = self._echo_ends.get(answer[-1]) if answer else None
        if end is None or len(answer) < 2:
            return False
        text = " ".join(self.codec.decode(list(self._forced) + list(answer)).split()).lower()
        return text.endswith(end) and (len(text) == len(end) or not text[-len(end) - 1].isalpha())

    def _learn(self, lead_in: tuple[int, ...]) -> None:
        """Count a lead-in the model wrote; the most frequent one is checked first from now on."""
        self._lead_ins[tuple(lead_in)] += 1
        self._lead_in = self._lead_ins.most_common(1)[0][0]

    def _pixel_batch(self, pixels: Sequence[torch.Tensor]) -> torch.Tensor:
        import torch

        return torch.stack(list(pixels)).to(self.device, self.dtype)

    def _inputs(self, batch: torch.Tensor, extra: tuple[int, ...]) -> dict:
        import torch

        ids = self._ids_cache.get(extra)
        if ids is None:
            ids = torch.tensor([self.prompt_ids + list(self._forced) + list(extra)], device=self.device)
            if len(self._ids_cache) < 64:
                self._ids_cache[extra] = ids
        ids = ids.expand(batch.shape[0], -1)
        return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "pixel_values": batch}

    def _word(self, token: int | None) -> str | None:
        """The verdict word a picked token is (greedy's word at the verdict step), None for any other token."""
        return "fake" if token == self._fake_id else "real" if token == self._real_id else None

    def _pair(self, logits: torch.Tensor) -> list[float]:
        """Softmax over the fake/real logits, for one row (1-D) or a batch (2-D)."""
        import torch

        pair = logits[..., [self._fake_id, self._real_id]].float()
        p = torch.softmax(pair, dim=-1)[..., 0].clamp(0.0, 1.0)
        return p.reshape(-1).tolist()


def _usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def _cut_at(row: list[int], stop: frozenset, pad: int | None) -> list[int]:
    for i, tok in enumerate(row):
        if tok in stop or tok == pad:
            return row[:i]
    return row


def _model_input_dtype(model):
    import torch

    dtype = getattr(model, "dtype", torch.float32)
    return dtype if dtype in (torch.float16, torch.bfloat16, torch.float32) else torch.float16
