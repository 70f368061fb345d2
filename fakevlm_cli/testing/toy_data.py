"""The toy FakeVLM's data (see `toy`): its synthetic images and their known answers, the texts it is trained to
write, its tokenizer and the oracle that tokenises as upstream did. Building and training are in `toy_build`.
torch, NumPy, Pillow and tokenizers are imported inside functions only."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from fakevlm_cli.testing.synthetic import merge_pair

if TYPE_CHECKING:  # pragma: no cover
    from PIL import Image
    from tokenizers import Tokenizer

IMAGE_SIZE = 126  # = 9 CLIP patches of 14 px: the 3×3 answer grid falls on patch boundaries
PATCH = 14
GRID = IMAGE_SIZE // PATCH
N_IMAGE_TOKENS = GRID * GRID  # "default" strategy drops CLS: 81 image tokens
CELL = IMAGE_SIZE // 3  # one answer region: 42 px = 3×3 patches
ARTIFACT_SIZES = (20, 28)  # side of the checkerboard, px (inclusive): about 2×2 patches

PROMPT = "<image>Does the image looks real/fake?"
REGIONS = ("top left", "top", "top right", "left", "centre", "right", "bottom left", "bottom", "bottom right")
LEAD_IN_BRIGHT = " ASSISTANT: "
LEAD_IN_DARK = "\n"
LEAD_INS = (LEAD_IN_BRIGHT, LEAD_IN_DARK)
FAKE_ANSWER = "This is a fake image. The checkerboard artifact is in the {region} of the image."
REAL_ANSWER = "This is a real image. The texture is smooth and consistent, with no artifacts."
VERDICT_PIECES = {"fake": "▁fake", "real": "▁real"}

# Training draws seeds below FRESH_SEEDS; the build's held-out check and the tests use seeds from it up.
FRESH_SEEDS = 10**9

_CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
_CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


# ---------------------------------------------------------------------------------------------- images


@dataclass(frozen=True)
class ToyImage:
    """A synthetic image and its known answer. `box` is (x0, y0, x1, y1) in pixels, x1/y1 exclusive."""

    image: Image.Image
    fake: bool
    box: tuple[int, int, int, int] | None
    region: str | None

    @property
    def lead_in(self) -> str:
        return lead_in_for(self.image)

    @property
    def target(self) -> str:
        return target_text(self.fake, self.region, self.lead_in)


def region_of(box: Sequence[float], size: int = IMAGE_SIZE) -> str:
    """Name of the 3×3 grid cell holding the centre of `box` (x0, y0, x1, y1) in a `size`-px square."""
    cx = (box[0] + box[2]) / 2
    cy = (box[1] + box[3]) / 2
    col = min(2, max(0, int(cx * 3 // size)))
    row = min(2, max(0, int(cy * 3 // size)))
    return REGIONS[row * 3 + col]


def _background(rng):
    """Smooth RGB field in [0, 1], H×W×3 float: a base tone, a gradient, a few low-frequency waves and blobs.

    Every term is separable (a row profile times a column profile times an RGB amplitude), so an image costs
    one small einsum: fast enough to draw fresh training images on the fly.
    """
    import numpy as np

    t = (np.arange(IMAGE_SIZE, dtype=np.float32) + 0.5) / IMAGE_SIZE
    ones = np.ones_like(t)
    bright = rng.random() < 0.5
    base = rng.uniform(0.62, 0.76) if bright else rng.uniform(0.24, 0.38)
    rows, cols, amps = [ones], [ones], [base + rng.normal(0, 0.05, 3)]  # tinted base tone
    g = rng.normal(0, 0.10, (2, 3))
    rows += [ones, t - 0.5]
    cols += [t - 0.5, ones]
    amps += [g[0], g[1]]
    for _ in range(2):  # waves of at most 1.5 cycles per image: cos(a + b) = cos a cos b - sin a sin b
        fx, fy = rng.uniform(-1.5, 1.5, 2)
        phase = rng.uniform(0, 2 * np.pi)
        amp = rng.normal(0, 0.05, 3)
        ax, ay = 2 * np.pi * fx * t + phase, 2 * np.pi * fy * t
        rows += [np.cos(ay), np.sin(ay)]
        cols += [np.cos(ax), np.sin(ax)]
        amps += [amp, -amp]
    for _ in range(int(rng.integers(1, 4))):  # soft blobs
        cx, cy = rng.uniform(0, 1, 2)
        sigma = rng.uniform(0.08, 0.22)
        rows.append(np.exp(-((t - cy) ** 2) / (2 * sigma**2)))
        cols.append(np.exp(-((t - cx) ** 2) / (2 * sigma**2)))
        amps.append(rng.normal(0, 0.08, 3))
    return np.einsum("ky,kx,kc->yxc", np.stack(rows), np.stack(cols), np.asarray(amps, np.float32), optimize=True)


def _plant_artifact(img, rng, sizes: tuple[int, int]) -> tuple[int, int, int, int]:
    """Add a 1-px checkerboard of `sizes` px (about 2×2 patches) inside one random grid cell; return its box."""
    import numpy as np

    cell = int(rng.integers(0, 9))
    row, col = divmod(cell, 3)
    w, h = (int(v) for v in rng.integers(sizes[0], sizes[1] + 1, 2))

    def start(index: int, side: int) -> int:  # anywhere inside the cell; bigger ones (curriculum) centred on it
        if side <= CELL:
            return index * CELL + int(rng.integers(0, CELL - side + 1))
        return min(max(0, index * CELL + (CELL - side) // 2), IMAGE_SIZE - side)

    x0, y0 = start(col, w), start(row, h)
    # 1-px cells in phase with the image's pixel grid, like a generator's up-sampling artifacts: every patch
    # the artifact covers sees the same pattern.
    yy, xx = np.mgrid[y0:y0 + h, x0:x0 + w]
    sign = (((yy + xx) % 2) * 2 - 1).astype(np.float32)
    delta = rng.uniform(0.25, 0.40)
    img[y0:y0 + h, x0:x0 + w] += (sign * delta)[..., None]
    return (x0, y0, x0 + w, y0 + h)


def toy_image(seed: int, fake: bool) -> ToyImage:
    """The image for `seed`; `fake=True` gives the same picture with a checkerboard artifact planted in it."""
    return draw_toy_image(seed, fake)


def draw_toy_image(seed: int, fake: bool, sizes: tuple[int, int] = ARTIFACT_SIZES) -> ToyImage:
    """`toy_image` with the artifact's side drawn from `sizes` (training's curriculum starts larger)."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    img = _background(rng)
    box = _plant_artifact(img, rng, sizes) if fake else None
    pixels = np.clip(np.rint(img * 255), 0, 255).astype(np.uint8)
    return ToyImage(Image.fromarray(pixels, "RGB"), fake, box, region_of(box) if box else None)


def fresh_toy_images(n: int, *, start: int = FRESH_SEEDS) -> list[ToyImage]:
    """`n` images the toy never saw in training, alternating fake and real (half each for even n)."""
    return [toy_image(start + i, fake=(i % 2 == 0)) for i in range(n)]


def lead_in_for(image: Image.Image) -> str:
    """The lead-in the toy writes before "This is …": " ASSISTANT: " for a bright image, "\\n" for a dark one."""
    import numpy as np

    grey = np.asarray(image.convert("L"), dtype=np.float32)
    return LEAD_IN_BRIGHT if grey.mean() >= 127.5 else LEAD_IN_DARK


def answer_text(fake: bool, region: str | None = None) -> str:
    """The answer after the lead-in: FakeClue's verdict sentence, then an explanation naming the region."""
    if fake:
        if region not in REGIONS:
            raise ValueError(f"a fake needs one of {REGIONS}, not {region!r}")
        return FAKE_ANSWER.format(region=region)
    return REAL_ANSWER


def target_text(fake: bool, region: str | None, lead_in: str) -> str:
    """What the toy was trained to generate right after the raw prompt."""
    return lead_in + answer_text(fake, region)


def pixel_values(images: Iterable[Image.Image]):
    """CLIP-normalised float32 tensor (B, 3, S, S) of toy-sized images: what the processor gives, computed fast."""
    import numpy as np
    import torch

    arr = np.stack([np.asarray(im.convert("RGB"), dtype=np.float32) for im in images]) / 255.0
    if arr.shape[1:3] != (IMAGE_SIZE, IMAGE_SIZE):
        raise ValueError(f"toy images are {IMAGE_SIZE}×{IMAGE_SIZE}, got {arr.shape[2]}×{arr.shape[1]}")
    norm = (arr - np.asarray(_CLIP_MEAN, np.float32)) / np.asarray(_CLIP_STD, np.float32)
    return torch.from_numpy(np.ascontiguousarray(norm.transpose(0, 3, 1, 2)))


# ------------------------------------------------------------------------------------------- tokenizer


def _tokenizer_corpus() -> list[str]:
    """Exactly the texts the toy encodes: the raw prompt's text followed by every possible target."""
    prompt = PROMPT.replace("<image>", "")
    return [prompt + target_text(region is not None, region, lead)
            for lead in LEAD_INS for region in (None, *REGIONS)]


def build_toy_tokenizer() -> Tokenizer:
    """A Llama-2-shaped BPE tokenizer trained on the toy's texts (see the module docstring).

    Ids: <unk> 0, <s> 1, </s> 2, the 256 byte pieces <0x00>… 3–258, learnt pieces, then <image> and <pad> as
    added special tokens. Merges never cross a word start, a newline or punctuation, so every word of the texts
    is one piece ("▁fake", "▁real") and the prompt's ids are a prefix of the prompt+answer ids.
    """
    from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

    specials = ["<unk>", "<s>", "</s>"]
    trainer_tok = Tokenizer(models.BPE(unk_token="<unk>"))
    # Training only: words start with "▁" (none after a newline, as in Llama's "\nThis" = <0x0A> "This"),
    # punctuation stands alone, and "\n" is never learnt, so it falls back to its byte piece.
    trainer_tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split("\n", behavior="removed"),
        pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first", split=True),
        pre_tokenizers.Punctuation("isolated"),
    ])
    trainer = trainers.BpeTrainer(vocab_size=320, special_tokens=specials, show_progress=False)
    trainer_tok.train_from_iterator(_tokenizer_corpus(), trainer=trainer)
    learnt = json.loads(trainer_tok.to_str())["model"]

    vocab: dict[str, int] = {}
    for piece in specials + [f"<0x{i:02X}>" for i in range(256)] + sorted(learnt["vocab"], key=learnt["vocab"].get):
        vocab.setdefault(piece, len(vocab))
    merges = [merge_pair(m) for m in learnt["merges"]]
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    tok.pre_tokenizer = None
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s>:1 $B:1", special_tokens=[("<s>", 1)],
    )
    tok.decoder = decoders.Sequence(
        [decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(), decoders.Strip(" ", 1, 0)]
    )
    tok.add_special_tokens([AddedToken(t, normalized=False, special=True) for t in [*specials, "<image>", "<pad>"]])
    for piece in VERDICT_PIECES.values():
        if piece not in vocab:
            raise AssertionError(f"{piece!r} must be one piece")
    return tok


def oracle_tokenizer(model_dir: str | Path) -> Tokenizer:
    """The checkpoint's tokenizer.json read by the raw `tokenizers` library: the ids upstream fed the model."""
    from tokenizers import Tokenizer

    return Tokenizer.from_file(str(Path(model_dir) / "tokenizer.json"))


def expand_image_token(ids: Sequence[int], image_token_id: int, n: int = N_IMAGE_TOKENS) -> list[int]:
    """Replace each `<image>` id by `n` copies, as the LLaVA processor does before the model sees the ids."""
    out: list[int] = []
    for i in ids:
        out.extend([i] * n if i == image_token_id else [i])
    return out


def prompt_ids(model_dir: str | Path, prompt: str = PROMPT, *, expand: bool = True) -> list[int]:
    """Oracle ids of the raw prompt (BOS added), with `<image>` expanded to the image tokens unless expand=False."""
    tok = oracle_tokenizer(model_dir)
    ids = tok.encode(prompt).ids
    image_id = tok.token_to_id("<image>")
    if image_id is None:
        raise ValueError(f"{model_dir}: the tokenizer has no <image> token")
    return expand_image_token(ids, image_id) if expand else ids


def answer_ids(tok, prompt: str, target: str) -> list[int]:
    """Ids of `target` as they follow `prompt` when the two are tokenised jointly (prompt ids must be a prefix)."""
    p = tok.encode(prompt).ids
    joint = tok.encode(prompt + target).ids
    if joint[: len(p)] != p:
        raise AssertionError(f"prompt ids {p} are not a prefix of prompt+answer ids {joint}")
    return joint[len(p):]



def verdict_of(text: str) -> str | None:
    """'fake' or 'real' from the toy's "This is a fake/real image." sentence (None if absent)."""
    for verdict in ("fake", "real"):
        if f"This is a {verdict} image." in text:
            return verdict
    return None


def region_in(text: str) -> str | None:
    """The region the toy's explanation names (None if none)."""
    for region in sorted(REGIONS, key=len, reverse=True):
        if f"in the {region} of the image" in text:
            return region
    return None
