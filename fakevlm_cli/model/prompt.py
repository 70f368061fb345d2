"""What the engine reads once, when it is built, from its tokenizer, processor and model config: the prompt's
token ids as upstream fed them (`<image>` expanded), the "fake"/"real" verdict tokens (and the ids of a forced
answer prefix), and the question's words an answer may echo. No torch: plain token ids and text."""

from __future__ import annotations

import re

from fakevlm_cli.core.engine_types import DEFAULT_PROMPT, UPSTREAM_PROMPT_IDS, VERDICT_CONTEXT
from fakevlm_cli.core.errors import ModelLoadError
from fakevlm_cli.model.localise import View
from fakevlm_cli.model.tokens import Codec, first_difference


def image_token_count(config) -> int:
    """How many image tokens `<image>` stands for in this model's input."""
    count = getattr(config, "image_seq_length", None)
    if count:
        return int(count)
    vision = config.vision_config
    count = (vision.image_size // vision.patch_size) ** 2
    return count + (1 if getattr(config, "vision_feature_select_strategy", "default") == "full" else 0)


def check_geometry(view: View, config) -> None:
    """The processor must crop to the size the vision tower was built for."""
    height = view.crop_height
    expected = config.vision_config.image_size
    if height is not None and int(height) != int(expected):
        raise ModelLoadError(f"the processor crops images to {height} px but the model's vision tower expects "
                             f"{expected} px: processor and model do not match (try --processor)")


def prompt_ids(codec: Codec, processor, config, prompt: str, notices: list[str]) -> list[int]:
    """The prompt's ids as upstream fed them, `<image>` expanded to the model's image tokens (a notice appended
    where the default prompt tokenises differently from upstream's)."""
    placeholder = getattr(processor, "image_token", None) or "<image>"
    if placeholder not in prompt:
        raise ModelLoadError(f"the prompt has no {placeholder} placeholder; add '{placeholder}' to --prompt")
    image_id = getattr(config, "image_token_index", None)
    if image_id is None:
        image_id = config.image_token_id
    raw = codec.encode(prompt)
    if raw.count(image_id) != 1:
        raise ModelLoadError(f"the prompt must hold exactly one {placeholder} (the tokenizer finds "
                             f"{raw.count(image_id)} of token {image_id}, the model's image token)")
    if (prompt == DEFAULT_PROMPT and codec.token_id("▁Does") == UPSTREAM_PROMPT_IDS[2]
            and tuple(raw) != UPSTREAM_PROMPT_IDS):
        notices.append(
            f"the prompt's token ids differ from those the upstream evaluation fed (ours {raw}, upstream "
            f"{list(UPSTREAM_PROMPT_IDS)}): results may not match the paper's")
    count = image_token_count(config)
    at = raw.index(image_id)
    return raw[:at] + [image_id] * count + raw[at + 1:]


def verdict_tokens(codec: Codec, prompt: str, answer_prefix: str | None) -> tuple[int, int, tuple[int, ...]]:
    """The "fake"/"real" token ids, and the ids forced after the prompt (none unless --answer-prefix).

    The two full answers are tokenised and compared: the first differing token of each is the verdict
    token. Nothing is hard-coded, so any tokenizer works, however it splits the words.
    """
    if answer_prefix is not None:
        base = codec.encode(prompt)
        fake = codec.encode(prompt + answer_prefix + " fake image.")
        real = codec.encode(prompt + answer_prefix + " real image.")
    else:
        base = []
        fake = codec.encode(VERDICT_CONTEXT + " fake image.", special=False)
        real = codec.encode(VERDICT_CONTEXT + " real image.", special=False)
    k = first_difference(fake, real)
    if k is None:
        raise ModelLoadError("the tokenizer does not tell 'fake' from 'real'")
    if k < len(base) or fake[:len(base)] != base:
        raise ModelLoadError("the answer prefix merges with the end of the prompt when tokenised; "
                             "start --answer-prefix with a space or a newline")
    for token, word in ((fake[k], "fake"), (real[k], "real")):
        piece = codec.piece(token).replace("▁", "").replace("Ġ", "").strip().lower()
        if not piece or not word.startswith(piece):
            raise ModelLoadError(f"the tokenizer splits '{word}' oddly (first piece {piece!r}): "
                                 "the verdict cannot be read from its token")
    return fake[k], real[k], tuple(fake[len(base):k]) if answer_prefix is not None else ()


def question_words(processor, prompt: str, fake_id: int, real_id: int) -> dict[int, str]:
    """For each verdict token whose word the prompt's question contains ("real" in "Does the image looks
    real/fake?"): the question up to that word, lower-case, spaces collapsed. An answer that ends so is
    the model repeating the question, not stating its verdict (`Engine._echoes`)."""
    placeholder = getattr(processor, "image_token", None) or "<image>"
    question = " ".join(prompt.replace(placeholder, " ").split()).lower()
    ends = {}
    for token, word in ((fake_id, "fake"), (real_id, "real")):
        found = re.search(rf"(?<![a-z]){word}(?![a-z])", question)
        if found and found.start() > 0:
            ends[token] = question[:found.end()]
    return ends
