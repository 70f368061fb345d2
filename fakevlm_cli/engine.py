"""The FakeVLM inference engine; with loading.py, the only modules that import torch and transformers.

Two paths share one loaded model:

* **score** — one forward pass per batch over ``prompt + "\\nThis is a"`` (the fixed start of every FakeVLM
  answer, teacher-forced) and a softmax over the logits of the two tokens that can come next, "fake" and
  "real". That is the maintainers' own way to get a probability (FakeVLM issue #5) and costs one step
  instead of 256.
* **explain** — greedy generation continuing the same forced prefix, so the verdict word is always at a
  known position: the first generated step's logits give P(fake) exactly as the score path does, and the text
  gives the verdict sentence and the explanation. Text and score come from one pass.

Every prompt is the same string, so its token ids are computed once at load time and the batch only
stacks pixel values: no padding, no per-batch tokenisation, and results cannot depend on batch size.
Image preprocessing (`preprocess`) is thread-safe so loader threads can run it while the model computes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

from fakevlm_cli.errors import ModelLoadError
from fakevlm_cli.verdict import parse_verdict, split_verdict

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from PIL import Image

DEFAULT_MODEL = "lingcco/fakeVLM"
DEFAULT_PROCESSOR = "llava-hf/llava-1.5-7b-hf"  # what the upstream evaluation pairs with the released weights
# FakeClue's own test prompt, verbatim (grammar included), with no chat wrapper: see README "The model".
DEFAULT_PROMPT = "<image>Does the image looks real/fake?"
DEFAULT_ANSWER_PREFIX = "\nThis is a"
DTYPES = ("auto", "float16", "bfloat16", "float32")
QUANTS = ("none", "8bit", "4bit")


@dataclass(frozen=True)
class EngineOptions:
    """What a user chooses about the model; defaults are what the paper's evaluation used."""

    model: str = DEFAULT_MODEL
    processor: str | None = None
    revision: str | None = None
    device: str = "auto"
    dtype: str = "auto"
    quant: str = "none"
    prompt: str = DEFAULT_PROMPT
    answer_prefix: str = DEFAULT_ANSWER_PREFIX


@dataclass(frozen=True)
class ModelInfo:
    """Which model produced a result: goes into every record."""

    id: str
    revision: str | None
    dtype: str
    quant: str
    device: str

    def to_dict(self) -> dict:
        return {"id": self.id, "revision": self.revision, "dtype": self.dtype, "quant": self.quant,
                "device": self.device}


@dataclass(frozen=True)
class Answer:
    """One generated answer: the full text, its two halves, the verdict the text states, and P(fake)."""

    text: str
    verdict_sentence: str
    explanation: str
    text_verdict: str
    p_fake: float


class Engine:
    """A loaded FakeVLM (or any LLaVA-1.5 checkpoint) ready to score and explain images."""

    def __init__(self, model, processor, *, info: ModelInfo, prompt: str = DEFAULT_PROMPT,
                 answer_prefix: str = DEFAULT_ANSWER_PREFIX, notices: Sequence[str] = ()):
        import torch

        self.model = model
        self.processor = processor
        self.info = info
        self.notices = list(notices)
        self.prompt = prompt
        self.answer_prefix = answer_prefix
        self.device = torch.device(info.device)
        self.dtype = _model_input_dtype(model)
        tokenizer = processor.tokenizer
        self._eos_id = tokenizer.eos_token_id
        self._pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self._eos_id
        self._prefix_ids, self._fake_id, self._real_id, self._n_prompt = self._verdict_position()
        self._prefix_on_device = self._prefix_ids.to(self.device)  # moved once, not every batch

    # ---- loading -------------------------------------------------------------------------------------
    @classmethod
    def load(cls, options: EngineOptions = EngineOptions()) -> "Engine":
        """Load model and processor from a hub id or a local directory, exactly as users run it."""
        from fakevlm_cli.loading import load

        return load(cls, options)

    # ---- the two paths ---------------------------------------------------------------------------------
    def preprocess(self, image: "Image.Image") -> "torch.Tensor":
        """Resize, crop and normalise one RGB image to pixel values (thread-safe; run it in loaders).

        A large photo is first resized by Pillow to exactly the size the processor would resize it to (same
        shortest edge, same rounding, same filter), so the processor's own resize becomes a copy and its
        full-resolution array conversions are skipped: the pixel values are identical, at about half the
        cost on a 12-megapixel image.
        """
        image = self._resize_like_processor(image)
        out = self.processor.image_processor(images=[image], return_tensors="pt")
        return out["pixel_values"][0]

    def _resize_like_processor(self, image: "Image.Image") -> "Image.Image":
        ip = self.processor.image_processor
        size = getattr(ip, "size", None)
        short = size.get("shortest_edge") if isinstance(size, dict) else getattr(size, "shortest_edge", None)
        width, height = image.size
        if not getattr(ip, "do_resize", False) or not short or min(width, height) <= short:
            return image
        if width <= height:  # transformers' get_resize_output_image_size: the long side is int()-rounded
            target = (short, int(short * height / width))
        else:
            target = (int(short * width / height), short)
        return image.resize(target, resample=int(getattr(ip, "resample", 3)))

    def score(self, images: Sequence["Image.Image"]) -> list[float]:
        return self.score_pixels([self.preprocess(im) for im in images])

    def explain(self, images: Sequence["Image.Image"], max_new_tokens: int = 256) -> list[Answer]:
        return self.explain_pixels([self.preprocess(im) for im in images], max_new_tokens)

    def score_pixels(self, pixels: Sequence["torch.Tensor"]) -> list[float]:
        """P(fake) for each image: one forward pass, verdict-token logits at the forced position."""
        import torch

        if not pixels:
            return []
        inputs = self._batch_inputs(pixels)
        with torch.inference_mode():
            out = self.model(**inputs, logits_to_keep=1)
        return self._p_fake(out.logits[:, -1, :])

    def explain_pixels(self, pixels: Sequence["torch.Tensor"], max_new_tokens: int = 256) -> list[Answer]:
        """Greedy answers continuing the forced prefix, with P(fake) from the first generated step."""
        import torch

        if not pixels:
            return []
        inputs = self._batch_inputs(pixels)
        first_step = _FirstStepLogits()
        with torch.inference_mode():
            out = self.model.generate(
                **inputs, max_new_tokens=max_new_tokens, do_sample=False, num_beams=1,
                temperature=None, top_p=None, top_k=None, repetition_penalty=None,
                eos_token_id=self._eos_id, pad_token_id=self._pad_id, return_dict_in_generate=True,
                logits_processor=[first_step],
            )
        p_fake = self._p_fake(first_step.logits)
        forced = self._prefix_ids[0, self._n_prompt:].tolist()
        answers = []
        for row, p in zip(out.sequences[:, self._prefix_ids.shape[1]:].tolist(), p_fake):
            row = _cut_at(row, self._eos_id, self._pad_id)
            text = self.processor.tokenizer.decode(forced + row, skip_special_tokens=True).strip()
            sentence, explanation = split_verdict(text)
            answers.append(Answer(text=text, verdict_sentence=sentence, explanation=explanation,
                                  text_verdict=parse_verdict(text), p_fake=p))
        return answers

    # ---- internals -------------------------------------------------------------------------------------
    def _batch_inputs(self, pixels: Sequence["torch.Tensor"]) -> dict:
        import torch

        n = len(pixels)
        ids = self._prefix_on_device.expand(n, -1)
        return {
            "input_ids": ids,
            "attention_mask": torch.ones_like(ids),
            "pixel_values": torch.stack(list(pixels)).to(self.device, self.dtype),
        }

    def _p_fake(self, logits: "torch.Tensor") -> list[float]:
        import torch

        pair = logits[:, [self._fake_id, self._real_id]].float()
        return torch.softmax(pair, dim=-1)[:, 0].clamp(0.0, 1.0).tolist()

    def _verdict_position(self):
        """Token ids of the forced prefix and of the "fake"/"real" tokens that follow it.

        Both full answers are tokenised with the checkpoint's own processor and compared: the common prefix is
        what gets teacher-forced and the first differing token of each is the verdict token. Nothing is
        hard-coded, so any tokenizer works, however it splits the words.
        """
        from PIL import Image

        placeholder = getattr(self.processor, "image_token", None) or "<image>"
        if placeholder not in self.prompt:
            raise ModelLoadError(f"the prompt has no {placeholder} placeholder; add '{placeholder}' to --prompt")
        blank = Image.new("RGB", (32, 32))

        def ids(text: str):
            return self.processor(images=[blank], text=[text], return_tensors="pt")["input_ids"][0]

        fake = ids(self.prompt + self.answer_prefix + " fake image.")
        real = ids(self.prompt + self.answer_prefix + " real image.")
        k = 0
        while k < min(len(fake), len(real)) and fake[k] == real[k]:
            k += 1
        if k >= min(len(fake), len(real)):
            raise ModelLoadError("the tokenizer does not tell 'fake' from 'real' after the answer prefix")
        prompt_ids = ids(self.prompt)
        n_prompt = len(prompt_ids) if bool((fake[: len(prompt_ids)] == prompt_ids).all()) else k
        self._check_image_tokens(fake)
        return fake[:k].unsqueeze(0), int(fake[k]), int(real[k]), min(n_prompt, k)

    def _check_image_tokens(self, ids) -> None:
        config = self.model.config
        n_image = int((ids == config.image_token_index).sum())
        expected = getattr(config, "image_seq_length", None)
        if expected and n_image != expected:
            raise ModelLoadError(
                f"the processor expands <image> to {n_image} tokens but the model expects {expected}: "
                "processor and model do not match (try --processor)"
            )


class _FirstStepLogits:
    """A logits processor that keeps the first generated step's logits and changes nothing.

    `output_logits=True` would keep every step's full-vocabulary logits (about 33 MB per image for 256
    steps of a 32k vocabulary) when only the verdict step is needed.
    """

    def __init__(self):
        self.logits = None

    def __call__(self, input_ids, scores):
        if self.logits is None:
            self.logits = scores.detach().clone()
        return scores


def _cut_at(row: list[int], eos: int | None, pad: int | None) -> list[int]:
    for i, tok in enumerate(row):
        if tok == eos or tok == pad:
            return row[:i]
    return row


def _model_input_dtype(model):
    import torch

    dtype = getattr(model, "dtype", torch.float32)
    return dtype if dtype in (torch.float16, torch.bfloat16, torch.float32) else torch.float16
