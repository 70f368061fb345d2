"""What the engine answers and the facts it is built on, torch-free, so that loading.py, engine.py, the run
layer and the commands can all import it without importing each other (or torch). The options a user
chooses about the model are in options.py (`EngineOptions`).

The defaults are the upstream evaluation's (opendatalab/FakeVLM `scripts/eval.py`): the released weights, the
llava-hf/llava-1.5-7b-hf processor pinned at revision a272c74, FakeClue's raw test prompt with no chat
wrapper and nothing forced after it, greedy decoding up to 256 new tokens.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:  # pragma: no cover
    from PIL import Image

    from fakevlm_cli.core.record import Record


DEFAULT_MODEL = "lingcco/fakeVLM"
# The processor upstream pairs with the released weights, at the revision its eval.py pins.
UPSTREAM_PROCESSOR = "llava-hf/llava-1.5-7b-hf"
UPSTREAM_PROCESSOR_REVISION = "a272c74"
# FakeClue's own test prompt, verbatim (grammar included), with no chat wrapper and no newline after <image>.
DEFAULT_PROMPT = "<image>Does the image looks real/fake?"
# The ids upstream fed for DEFAULT_PROMPT (transformers 4.45, llava-hf's tokenizer.json; the model expands
# 32000 to its 576 image tokens): a fact measured on the upstream stack, used to check what we feed.
UPSTREAM_PROMPT_IDS = (1, 32000, 5538, 278, 1967, 3430, 1855, 29914, 29888, 1296, 29973)
# The answer FakeVLM was trained to give starts "This is a fake image." / "This is a real image.": the
# verdict tokens are the ones at which these two sentences differ.
VERDICT_CONTEXT = "This is a"
# Greedy decoding must state the verdict within this many new tokens, or the answer has none.
DEFAULT_VERDICT_STEPS = 16
DEFAULT_MAX_NEW_TOKENS = 256
DEFAULT_THRESHOLD = 0.5  # P(fake) at or above which the model's verdict is fake (the paper: argmax of two)
# Relevance-map methods (relevance.py); the default was chosen by measured faithfulness (docs/localisation.md).
RELEVANCE_METHODS = ("occlusion", "gradient", "attention")
DEFAULT_RELEVANCE_METHOD = "attention"
DTYPES = ("auto", "float16", "bfloat16", "float32")
QUANTS = ("none", "8bit", "4bit")


@dataclass(frozen=True)
class View:
    """How the processor turns an image into the model's input: resize the short side to `shortest_edge`
    (None: no resize), then keep the centred `crop_width` × `crop_height` (None: no crop)."""

    shortest_edge: int | None
    crop_width: int | None
    crop_height: int | None

    def resized(self, width: int, height: int) -> tuple[int, int]:
        """The size a `width` × `height` image is resized to (transformers' get_resize_output_image_size: the
        short side to `shortest_edge`, the long side int()-rounded)."""
        short = self.shortest_edge
        if not short:
            return width, height
        return (short, int(short * height / width)) if width <= height else (int(short * width / height), short)


@dataclass(frozen=True)
class ModelInfo:
    """Which model, processor and input produced a result: goes into every record."""

    id: str
    revision: str | None
    dtype: str
    quant: str
    device: str
    processor: str | None = None
    processor_revision: str | None = None
    prompt: str | None = None
    answer_prefix: str | None = None
    prompt_ids_from: str | None = None  # "tokenizer.json" (as upstream) or "transformers" (could not check)

    def to_dict(self) -> dict:
        return {"id": self.id, "revision": self.revision, "dtype": self.dtype, "quant": self.quant,
                "device": self.device, "processor": self.processor, "processor_revision": self.processor_revision,
                "prompt": self.prompt, "answer_prefix": self.answer_prefix, "prompt_ids_from": self.prompt_ids_from}


@dataclass(frozen=True)
class Answer:
    """One image's result.

    `p_fake` is the softmax over the "fake"/"real" logits at the step where greedy decoding states the
    verdict (`verdict_step`, counted in generated tokens from 0), or None when it states none within the
    bound. With explanation, `lead_in` is what the model wrote before its verdict sentence (e.g.
    "ASSISTANT:"), `text` the answer after it (the verdict sentence, then the explanation), `explanation` the
    text without its verdict sentence, and `text_verdict` what the verdict sentence says. `prefix` is the
    token ids the model wrote before its verdict word (the context P(fake) is read in; relevance maps explain
    the verdict in that same context). `verdict_word` is the word greedy decoding wrote there ("fake" or
    "real"; None when a forced prefix made it write another token): at a tie of the two logits, P(fake) is 0.5
    and the word is the one with the lower token id, as transformers' argmax picks it.
    """

    p_fake: float | None
    verdict_step: int | None = None
    lead_in: str | None = None
    text: str | None = None
    verdict_sentence: str | None = None
    explanation: str | None = None
    text_verdict: str | None = None
    prefix: tuple[int, ...] | None = None
    verdict_word: str | None = None


class Preprocessor(Protocol):
    """An image to what the engine's `verdicts` takes: `engine.Pixels` (the processor alone), or an engine."""

    @property
    def input_short_edge(self) -> int | None: ...

    def preprocess(self, image: Image.Image) -> Any: ...


class EngineLike(Protocol):
    """What the run layer needs of an engine: `engine.Engine`, or a stand-in in tests and benchmarks."""

    info: ModelInfo
    notices: list[str]
    verdict_steps: int

    def preprocess(self, image: Image.Image) -> Any: ...

    def verdicts(self, pixels: Sequence[Any]) -> list[Answer]: ...

    def explain_pixels(self, pixels: Sequence[Any], max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS) -> list[Answer]: ...

    def free_memory(self) -> None: ...

    # Relevance maps (`--localise`): one grid per answer with a verdict, and how the model crops its input.
    @property
    def view(self) -> View: ...

    def relevance(self, pixels: Sequence[Any], answers: Sequence[Answer], method: str,
                  chunk: int = 8) -> list[Any]: ...

    def sharing_cpu(self, loader_threads: int) -> AbstractContextManager[None]: ...


class HeatmapWriter(Protocol):
    """Where scan --heatmaps puts each record's heatmap picture (outputs/heatmaps.py). The command makes one
    and hands it to the run layer, which may not import outputs/; it is pickled to Ray replicas."""

    def write(self, record: Record, image: Image.Image, localisation: dict, *, boxes: bool) -> str:
        """Write the picture; return the path written, or raise FakevlmError (one line: the path, why)."""
        ...
