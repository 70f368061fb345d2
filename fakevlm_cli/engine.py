"""The FakeVLM inference engine: the only module that imports torch and transformers.

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

import logging
import os
from dataclasses import dataclass
from pathlib import Path
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

    # ---- loading -------------------------------------------------------------------------------------
    @classmethod
    def load(cls, options: EngineOptions = EngineOptions()) -> "Engine":
        """Load model and processor from a hub id or a local directory, exactly as users run it."""
        return _load(cls, options)

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
        ids = self._prefix_ids.expand(n, -1).to(self.device)
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


# ---- loading ---------------------------------------------------------------------------------------------

def resolve_model_source(model: str | None) -> str:
    """The model to load: the explicit option, else $FAKEVLM_MODEL, else the released weights."""
    return model or os.environ.get("FAKEVLM_MODEL") or DEFAULT_MODEL


def _looks_like_path(source: str) -> bool:
    """Hub ids are exactly "org/name"; anything that exists, or reads as a path, is a local directory."""
    if Path(source).expanduser().exists():
        return True
    return source.startswith((".", "/", "~")) or source.count("/") > 1 or "\\" in source


def _quiet_libraries() -> None:
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    for name in ("bitsandbytes", "transformers", "accelerate", "huggingface_hub"):
        logging.getLogger(name).setLevel(logging.ERROR)


def _load(cls, options: EngineOptions) -> Engine:
    _quiet_libraries()
    source = options.model
    if _looks_like_path(source):
        path = Path(source).expanduser()
        if not path.is_dir():
            raise ModelLoadError(f"model directory '{source}' does not exist")
        if not (path / "config.json").is_file():
            raise ModelLoadError(f"'{source}' is not a model directory (no config.json in it)")
        source = str(path)
    if options.dtype not in DTYPES:
        raise ModelLoadError(f"unknown dtype '{options.dtype}' (choose from {', '.join(DTYPES)})")
    if options.quant not in QUANTS:
        raise ModelLoadError(f"unknown quantisation '{options.quant}' (choose from {', '.join(QUANTS)})")

    import torch
    import transformers

    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    notices: list[str] = []
    device = _pick_device(options.device, notices)
    dtype = _pick_dtype(options.dtype, device)
    local_only = _offline_requested()
    if not local_only and not Path(source).is_dir() and not _hub_reachable():
        # Without this, huggingface_hub retries for ~25 s before falling back to the cache (or failing).
        local_only = True
        notices.append("the Hugging Face hub cannot be reached: using the local cache only")
    config = _load_config(source, options.revision, local_only)
    if getattr(config, "model_type", None) != "llava":
        raise ModelLoadError(
            f"'{options.model}' is a '{getattr(config, 'model_type', 'unknown')}' checkpoint, not a LLaVA model"
        )
    kwargs: dict = {"revision": options.revision, "trust_remote_code": False, "dtype": dtype,
                    "local_files_only": local_only}
    if Path(source).is_dir() and any(Path(source).glob("*.safetensors")):
        kwargs["use_safetensors"] = True
    if options.quant != "none":
        kwargs["quantization_config"] = _bnb_config(options.quant, dtype, torch)
        kwargs["device_map"] = {"": str(device)}
    elif device.type == "cuda":
        kwargs["device_map"] = {"": str(device)}
    try:
        model = transformers.LlavaForConditionalGeneration.from_pretrained(source, **kwargs)
    except (OSError, ValueError, RuntimeError, ImportError) as exc:
        raise ModelLoadError(_explain_load_failure(options.model, exc)) from exc
    if "device_map" not in kwargs:
        model = model.to(device)
    model.eval()
    processor = _load_processor(source, options, notices, local_only)
    complete_processor(processor, config, notices)
    revision = options.revision or getattr(config, "_commit_hash", None)
    info = ModelInfo(id=options.model, revision=revision, dtype=str(dtype).replace("torch.", ""),
                     quant=options.quant, device=str(device))
    return cls(model, processor, info=info, prompt=options.prompt, answer_prefix=options.answer_prefix,
               notices=notices)


def _pick_device(name: str, notices: list[str]):
    import torch

    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        notices.append("no CUDA GPU found: running on the CPU, which is slow for the full-size model")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ModelLoadError(f"unknown device '{name}' (use auto, cpu, cuda or cuda:N)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ModelLoadError(f"device '{name}' was asked for but this torch build sees no CUDA GPU")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise ModelLoadError(f"device '{name}' does not exist ({torch.cuda.device_count()} GPU(s) visible)")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ModelLoadError("device 'mps' was asked for but Metal is not available")
    if device.type not in ("cpu", "cuda", "mps"):
        raise ModelLoadError(f"device '{name}' is not supported (use auto, cpu, cuda or cuda:N)")
    return device


def _pick_dtype(name: str, device):
    import torch

    if name == "auto":
        return torch.float16 if device.type in ("cuda", "mps") else torch.float32
    return getattr(torch, name)


def _bnb_config(quant: str, dtype, torch):
    try:
        import bitsandbytes  # noqa: F401
    except ImportError:
        raise ModelLoadError(f"--quant {quant} needs bitsandbytes: pip install bitsandbytes") from None
    from transformers import BitsAndBytesConfig

    if quant == "8bit":
        return BitsAndBytesConfig(load_in_8bit=True)
    compute = dtype if dtype in (torch.float16, torch.bfloat16) else torch.bfloat16
    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                              bnb_4bit_compute_dtype=compute)


def _offline_requested() -> bool:
    return any(os.environ.get(v, "").strip().lower() in ("1", "true", "yes", "on")
               for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def _hub_reachable(timeout: float = 3.0) -> bool:
    """Can we open a TCP connection to the hub? A cheap check that spares users minutes of retries."""
    import socket
    from urllib.parse import urlparse

    url = urlparse(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    try:
        with socket.create_connection((url.hostname, url.port or 443), timeout=timeout):
            return True
    except (OSError, ValueError):
        return False


def _load_config(source: str, revision: str | None, local_only: bool = False):
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(source, revision=revision, trust_remote_code=False,
                                          local_files_only=local_only)
    except (OSError, ValueError) as exc:
        raise ModelLoadError(_explain_load_failure(source, exc)) from exc


def _load_processor(source: str, options: EngineOptions, notices: list[str], local_only: bool = False):
    """The checkpoint's own processor when it ships one, else llava-1.5's (as the upstream evaluation does)."""
    from transformers import AutoProcessor

    candidates = [options.processor] if options.processor else [source, DEFAULT_PROCESSOR]
    errors = []
    for candidate in candidates:
        try:
            processor = AutoProcessor.from_pretrained(candidate, trust_remote_code=False,
                                                      local_files_only=local_only)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            errors.append(f"{candidate}: {_first_line(exc)}")
            continue
        if not hasattr(processor, "image_processor") or not hasattr(processor, "tokenizer"):
            errors.append(f"{candidate}: not an image-text processor")
            continue
        if candidate != candidates[0]:
            notices.append(f"the checkpoint ships no processor files: using {candidate}'s processor")
        processor.tokenizer.padding_side = "left"
        return processor
    raise ModelLoadError("could not load a processor — " + "; ".join(errors) +
                         " (pass --processor PATH to a local llava-1.5 processor)")


def complete_processor(processor, config, notices: list[str]) -> None:
    """Fill what an older LLaVA processor lacks from the model's own config.

    Processors saved before transformers 4.44 carry no patch size or feature strategy, so they cannot expand
    ``<image>`` into the model's image tokens; the values are in the model's config. CLIP adds one class
    token that the "default" strategy drops, hence one additional token.
    """
    filled = []
    if getattr(processor, "patch_size", None) is None:
        processor.patch_size = config.vision_config.patch_size
        filled.append(f"patch_size={processor.patch_size}")
    if getattr(processor, "vision_feature_select_strategy", None) is None:
        processor.vision_feature_select_strategy = config.vision_feature_select_strategy
        filled.append(f"vision_feature_select_strategy={processor.vision_feature_select_strategy}")
    if filled and not getattr(processor, "num_additional_image_tokens", 0) and \
            getattr(config.vision_config, "model_type", "").startswith("clip"):
        processor.num_additional_image_tokens = 1
        filled.append("num_additional_image_tokens=1")
    if filled:
        notices.append("the processor predates image-token expansion; taken from the model config: "
                       + ", ".join(filled))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _explain_load_failure(model: str, exc: BaseException) -> str:
    detail = _first_line(exc)
    lowered = str(exc).lower()
    if any(s in lowered for s in ("connect", "offline", "cannot find the requested files", "local_files_only",
                                  "couldn't find", "not found in the cache", "outgoing traffic")):
        return (f"cannot load model '{model}': it is not in the local Hugging Face cache and the hub cannot be "
                f"reached. On a connected machine run `hf download {model}` (about 14 GB), or pass --model PATH "
                f"(or set FAKEVLM_MODEL) to a local copy. ({detail})")
    if "bitsandbytes" in lowered:
        return f"cannot load model '{model}' quantised: {detail} (pip install bitsandbytes)"
    return f"cannot load model '{model}': {detail}"
