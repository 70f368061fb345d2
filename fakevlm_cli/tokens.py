"""Text ↔ token ids exactly as the upstream FakeVLM evaluation produced them, under any transformers version.

Upstream ran transformers 4.45, whose fast Llama tokenizer *was* the `tokenizers` library applied to the
processor's `tokenizer.json`: its normaliser prepends "▁" to the text after the special `<image>` token, so
FakeClue's prompt starts `<s> <image> ▁Does …` (ids 1, 32000, 5538, …). transformers 5 rebuilds Llama
tokenizers without that normaliser unless `legacy=True`, and gives 25125 "Does" instead: a different input
than the one that reproduced the paper. So the `tokenizers` library on the processor's own `tokenizer.json`
is the oracle: prompts are encoded and answers decoded with it whenever the file exists. Only when a
processor ships no `tokenizer.json` does the transformers tokenizer stand in, and the load says so.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

TOKENIZER_FILE = "tokenizer.json"


class Codec:
    """Encode and decode with one tokenizer; `source` says which ("tokenizer.json" or "transformers")."""

    def __init__(self, backend, source: str):
        self._backend = backend
        self.source = source

    @classmethod
    def from_file(cls, path: str | Path) -> Codec:
        from tokenizers import Tokenizer

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
