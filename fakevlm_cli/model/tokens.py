"""Text ↔ token ids exactly as the upstream FakeVLM evaluation produced them, under any transformers version.

Upstream ran transformers 4.45, whose fast Llama tokenizer *was* the `tokenizers` library applied to the
processor's `tokenizer.json`: its normaliser prepends "▁" to the text after the special `<image>` token, so
FakeClue's prompt starts `<s> <image> ▁Does …` (ids 1, 32000, 5538, …). transformers 5 rebuilds Llama
tokenizers without that normaliser unless `legacy=True`, and gives 25125 "Does" instead: a different input
than the one that reproduced the paper. So the `tokenizers` library on the processor's own `tokenizer.json`
is the oracle: prompts are encoded and answers decoded with it whenever the file exists. Only when a
processor ships no `tokenizer.json` does the transformers tokenizer stand in, and the load says so.

A `tokenizer.json` that transformers 5 wrote (a checkpoint re-saved with `save_pretrained`) has lost that
normaliser too: a Metaspace pre-tokeniser that marks only the text's first piece stands in its place, and
"Does" after `<image>` becomes 25125 again. Such a file gets the normaliser back (`_restore_llama_normaliser`),
and the load says so: the weights were trained and evaluated on the ids it gave.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

TOKENIZER_FILE = "tokenizer.json"


class Codec:
    """Encode and decode with one tokenizer; `source` says which ("tokenizer.json" or "transformers");
    `note`, when set, says what was done to the file to give upstream's ids."""

    def __init__(self, backend, source: str, note: str | None = None):
        self._backend = backend
        self.source = source
        self.note = note

    @classmethod
    def from_file(cls, path: str | Path) -> Codec:
        from tokenizers import Tokenizer

        state = json.loads(Path(path).read_bytes())
        if _restore_llama_normaliser(state):
            note = (f"{path}: written by transformers 5 without the Llama normaliser the upstream evaluation's "
                    "stack applied; restored it, so the prompt ids are upstream's")
            return cls(Tokenizer.from_str(json.dumps(state)), "tokenizer.json", note)
        return cls(Tokenizer.from_file(str(path)), "tokenizer.json")

    @classmethod
    def from_transformers(cls, tokenizer) -> Codec:
        return cls(tokenizer, "transformers")

    @property
    def exact(self) -> bool:
        """True when ids come from tokenizer.json, i.e. are what upstream's stack produced."""
        return self.source == "tokenizer.json"

    def encode(self, text: str, *, special: bool = True) -> list[int]:
        if self.exact:
            return list(self._backend.encode(text, add_special_tokens=special).ids)
        return list(self._backend(text, add_special_tokens=special)["input_ids"])

    def decode(self, ids: Sequence[int]) -> str:
        return self._backend.decode(list(ids), skip_special_tokens=True)

    def token_id(self, piece: str) -> int | None:
        if self.exact:
            return self._backend.token_to_id(piece)
        vocab = self._backend.get_vocab()
        return vocab.get(piece)

    def piece(self, token_id: int) -> str:
        if self.exact:
            return self._backend.id_to_token(token_id) or f"<{token_id}>"
        return self._backend.convert_ids_to_tokens(token_id)


# What transformers <= 4.x (and llava-hf's files) had: "▁" before every piece of text, after special tokens too.
_LLAMA_NORMALISER = {"type": "Sequence", "normalizers": [{"type": "Prepend", "prepend": "\u2581"},
                                                          {"type": "Replace", "pattern": {"String": " "},
                                                           "content": "\u2581"}]}


def _restore_llama_normaliser(state: dict) -> bool:
    """Give a Llama (SentencePiece BPE) tokenizer.json written by transformers 5 its legacy normaliser back, in
    place; True when it did. That file is recognised by what transformers 5's Llama converter writes: no
    normaliser, a Metaspace pre-tokeniser with prepend_scheme "first" that does not split, a byte-fallback BPE.
    Any other file is left alone."""
    pre, model = state.get("pre_tokenizer") or {}, state.get("model") or {}
    if (state.get("normalizer") is not None or pre.get("type") != "Metaspace" or pre.get("prepend_scheme") != "first"
            or pre.get("split") or pre.get("replacement") != "\u2581" or model.get("type") != "BPE"
            or not model.get("byte_fallback")):
        return False
    state["normalizer"], state["pre_tokenizer"] = _LLAMA_NORMALISER, None
    return True


def find_tokenizer_file(source: str, revision: str | None = None, local_only: bool = False) -> Path | None:
    """The `tokenizer.json` of a processor source (a folder, or a hub id already fetched), or None."""
    folder = Path(source).expanduser()
    if folder.is_dir():
        path = folder / TOKENIZER_FILE
        return path if path.is_file() else None
    try:
        from huggingface_hub import hf_hub_download

        return Path(hf_hub_download(source, TOKENIZER_FILE, revision=revision, local_files_only=local_only))
    except Exception:  # noqa: BLE001 - absent file, no network, no cache: the caller falls back and says so
        return None


def first_difference(a: Sequence[int], b: Sequence[int]) -> int | None:
    """Index of the first position where two id lists differ (None when one is a prefix of the other)."""
    for i, (x, y) in enumerate(zip(a, b, strict=False)):  # a prefix is not an error: it is None
        if x != y:
            return i
    return None
