"""A toy FakeVLM: a tiny LLaVA trained offline on synthetic images whose right answers are known.

`synthetic.build_tiny_llava` gives a *random* LLaVA: it proves plumbing, never accuracy. The toy here is
trained (about 25 s on two idle CPU cores) to do what FakeVLM does, on images whose truth is known by
construction, so tests can tell a right answer from a wrong one:

* **Images** (`toy_image`): smooth, low-frequency colour fields. A "fake" is the same picture (same seed) with a
  small 1-px checkerboard (20–28 px, about 2×2 CLIP patches) planted inside one cell of a 3×3 grid; the answer
  names that cell. Images are exactly the model's input size (126 px = 9×9 patches of 14 px, so the grid falls
  on patch boundaries), so the CLIP processor's resize and crop are no-ops, and they are plain 8-bit RGB, so a
  PNG round trip leaves them unchanged.
* **Prompt**: FakeClue's raw prompt `<image>Does the image looks real/fake?`, tokenised the way the upstream
  evaluation tokenised it: by the raw `tokenizers` library on the checkpoint's `tokenizer.json` (the
  "oracle", `oracle_tokenizer`), whose Llama-2 normaliser prepends "▁" after `<image>` (so "▁Does"). The
  toy was trained on those ids only. transformers 5's `LlamaTokenizer` drops that normaliser and gives
  "Do" "es"; which class `AutoTokenizer` picks depends on the folder (see tests/test_toy.py).
* **Answers**: a lead-in, then FakeClue's verdict sentence and an explanation (`target_text`). The lead-in
  depends on an easy global property (`lead_in_for`: bright images get " ASSISTANT: ", dark ones a newline),
  because nobody knows how the real model starts its answer after the raw prompt: code that assumes one
  fixed start is caught by the toy.

`cached_toy_fakevlm()` builds the checkpoint once per recipe and library versions and reuses it.
torch and transformers are imported inside functions only.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from fakevlm_cli.testing.synthetic import merge_pair

if TYPE_CHECKING:  # pragma: no cover
    from PIL import Image
    from tokenizers import Tokenizer

# Bump when anything below changes what gets built (images, texts, tokenizer, architecture, training).
RECIPE_VERSION = "toy-1"

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
    return _toy_image(seed, fake)


def _toy_image(seed: int, fake: bool, sizes: tuple[int, int] = ARTIFACT_SIZES) -> ToyImage:
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


def _answer_ids(tok, prompt: str, target: str) -> list[int]:
    """Ids of `target` as they follow `prompt` when the two are tokenised jointly (prompt ids must be a prefix)."""
    p = tok.encode(prompt).ids
    joint = tok.encode(prompt + target).ids
    if joint[: len(p)] != p:
        raise AssertionError(f"prompt ids {p} are not a prefix of prompt+answer ids {joint}")
    return joint[len(p):]


# ----------------------------------------------------------------------------------------------- model


@dataclass(frozen=True)
class Recipe:
    """Everything that decides the trained weights (with RECIPE_VERSION and the library versions)."""

    vision_hidden: int = 64
    vision_layers: int = 2  # the feature layer is -2, so (as in LLaVA-1.5) the last CLIP layer goes unused
    text_hidden: int = 64
    text_layers: int = 2
    heads: int = 4
    steps: int = 180
    batch: int = 32
    lr: float = 3e-3
    warmup: int = 20
    seed: int = 0
    curriculum: int = 80  # steps over which the artifact shrinks from start_size to its final 20–28 px
    key_weight: float = 3.0  # loss weight of the verdict and region pieces
    init_std: float = 0.1  # Llama/projector init; transformers' 0.02 is sized for 4096-wide models
    pos_std: float | None = 0.5  # CLIP position-embedding init (default 0.02, drowned by the patch content)
    start_size: int = 64  # artifact size at step 0 of the curriculum
    # One torch thread: on 2 shared cores a busy neighbour makes 2 threads wait on each other at every op
    # (measured: 1.4 s a step instead of 0.15 s), while one thread loses little when the machine is idle.
    threads: int = 1


def _build_config(recipe: Recipe, tok):
    from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig

    vision = CLIPVisionConfig(
        hidden_size=recipe.vision_hidden, intermediate_size=2 * recipe.vision_hidden,
        num_hidden_layers=recipe.vision_layers, num_attention_heads=recipe.heads,
        image_size=IMAGE_SIZE, patch_size=PATCH, projection_dim=recipe.vision_hidden,
    )
    text = LlamaConfig(
        vocab_size=tok.get_vocab_size(with_added_tokens=True), hidden_size=recipe.text_hidden,
        intermediate_size=2 * recipe.text_hidden, num_hidden_layers=recipe.text_layers,
        num_attention_heads=recipe.heads, num_key_value_heads=recipe.heads, max_position_embeddings=256,
        bos_token_id=1, eos_token_id=2, pad_token_id=tok.token_to_id("<pad>"), initializer_range=recipe.init_std,
    )
    config = LlavaConfig(
        vision_config=vision, text_config=text, image_token_index=tok.token_to_id("<image>"),
        image_seq_length=N_IMAGE_TOKENS, vision_feature_select_strategy="default", vision_feature_layer=-2,
    )
    config.pad_token_id = tok.token_to_id("<pad>")
    return config


def _make_batch(tok, step: int, recipe: Recipe, prompt: list[int], answers: dict):
    """One training batch of fresh synthetic images: (input_ids, attention_mask, labels, pixel_values)."""
    import torch

    n = recipe.batch
    # Each seed appears twice, as real and as fake: the pair differs only by the artifact, so the verdict's
    # gradient points at it rather than at the background.
    seeds = [step * n + i // 2 for i in range(n)]
    fakes = [i % 2 == 0 for i in range(n)]
    lo, hi = ARTIFACT_SIZES
    if step < recipe.curriculum:  # a big artifact is found in a few dozen steps; then it shrinks to final size
        f = step / recipe.curriculum
        lo, hi = (round(recipe.start_size + (end - recipe.start_size) * f) for end in (lo, hi))
    toys = [_toy_image(s, f, (lo, hi)) for s, f in zip(seeds, fakes, strict=True)]
    targets = [answers[(t.lead_in, t.region)] for t in toys]
    width = len(prompt) + max(len(a) for a in targets)
    pad = tok.token_to_id("<pad>")
    ids = torch.full((n, width), pad, dtype=torch.long)
    labels = torch.full((n, width), -100, dtype=torch.long)
    mask = torch.zeros((n, width), dtype=torch.long)
    for row, a in enumerate(targets):  # right padding: training positions match generate's from a full prompt
        seq = prompt + a
        ids[row, : len(seq)] = torch.tensor(seq)
        labels[row, len(prompt): len(seq)] = torch.tensor(a)
        mask[row, : len(seq)] = 1
    return ids, mask, labels, pixel_values(t.image for t in toys)


def _train(model, tok, recipe: Recipe, log: Callable[[str], None] | None):
    import math

    import torch

    image_id = tok.token_to_id("<image>")
    prompt = expand_image_token(tok.encode(PROMPT).ids, image_id)
    eos = tok.token_to_id("</s>")
    answers = {}
    for lead in LEAD_INS:
        for region in (None, *REGIONS):
            answers[(lead, region)] = [*_answer_ids(tok, PROMPT, target_text(region is not None, region, lead)), eos]

    key_ids = torch.tensor(sorted({tok.token_to_id(p) for p in VERDICT_PIECES.values()}
                                  | {tok.token_to_id("▁" + w) for r in REGIONS for w in r.split()}))
    opt = torch.optim.AdamW(model.parameters(), lr=recipe.lr, betas=(0.9, 0.98), weight_decay=0.0)

    def lr_at(step):
        if step < recipe.warmup:
            return (step + 1) / recipe.warmup
        progress = (step - recipe.warmup) / max(1, recipe.steps - recipe.warmup)
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_at)
    model.train()
    losses = []
    for step in range(recipe.steps):
        ids, mask, labels, pix = _make_batch(tok, step, recipe, prompt, answers)
        logits = model(input_ids=ids, attention_mask=mask, pixel_values=pix).logits
        gold = labels[:, 1:].reshape(-1)
        per_token = torch.nn.functional.cross_entropy(
            logits[:, :-1].reshape(-1, logits.shape[-1]), gold, ignore_index=-100, reduction="none"
        )
        weight = (gold != -100).float() * torch.where(torch.isin(gold, key_ids), recipe.key_weight, 1.0)
        loss = (per_token * weight).sum() / weight.sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        losses.append(float(loss.detach()))
        if log and (step % 20 == 0 or step == recipe.steps - 1):
            log(f"step {step:4d} loss {losses[-1]:.4f} " + _teacher_forced_accuracy(logits, labels, tok))
    model.eval()
    return losses


# ------------------------------------------------------------------------------------------ evaluation


def _teacher_forced_accuracy(logits, labels, tok) -> str:
    """Training-batch accuracy of the verdict and region pieces (argmax under teacher forcing), for logs."""
    import torch

    pred = logits[:, :-1].argmax(-1)
    gold = labels[:, 1:]
    verdict = torch.tensor([tok.token_to_id(p) for p in VERDICT_PIECES.values()])
    region = torch.tensor(sorted({tok.token_to_id("▁" + w) for r in REGIONS for w in r.split()}))
    parts = []
    where = torch.isin(gold, verdict)
    two = logits.detach()[:, :-1][where][:, verdict]
    p_fake = torch.softmax(two.float(), -1)[:, list(verdict).index(tok.token_to_id("▁fake"))]
    is_fake = gold[where] == tok.token_to_id("▁fake")
    parts.append(f"P(fake) {float(p_fake[is_fake].mean()):.3f}/{float(p_fake[~is_fake].mean()):.3f}")
    for name, ids in (("verdict", verdict), ("region", region)):
        where = torch.isin(gold, ids)
        parts.append(f"{name} {float((pred[where] == gold[where]).float().mean()):.3f}")
    return " ".join(parts)


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


def generate_answers(model, model_dir: str | Path, toys: Sequence[ToyImage], *, max_new_tokens: int = 32,
                     batch_size: int = 32) -> list[dict]:
    """Plain greedy `model.generate` from the raw prompt's oracle ids; per image: text, ids, lead-in, P(fake).

    P(fake) is the softmax over the ▁fake/▁real logits at the step where greedy decoding emits the verdict
    word (None if it emits neither).
    """
    import torch

    tok = oracle_tokenizer(model_dir)
    prompt = prompt_ids(model_dir)
    fake_id, real_id = (tok.token_to_id(VERDICT_PIECES[v]) for v in ("fake", "real"))
    results = []
    for start in range(0, len(toys), batch_size):
        chunk = toys[start:start + batch_size]
        ids = torch.tensor([prompt] * len(chunk))
        with torch.no_grad():
            out = model.generate(
                input_ids=ids, attention_mask=torch.ones_like(ids), pixel_values=pixel_values(t.image for t in chunk),
                do_sample=False, max_new_tokens=max_new_tokens, output_scores=True, return_dict_in_generate=True,
            )
        new = out.sequences[:, ids.shape[1]:]
        for row, toy in enumerate(chunk):
            gen = new[row].tolist()
            p_fake = None
            for step, token in enumerate(gen):
                if token in (fake_id, real_id):
                    two = out.scores[step][row, [fake_id, real_id]].float()
                    p_fake = float(torch.softmax(two, 0)[0])
                    break
            text = tok.decode(gen, skip_special_tokens=True)
            results.append({"text": text, "ids": gen, "p_fake": p_fake, "fake": toy.fake, "region": toy.region,
                            "lead_in": toy.lead_in})
    return results


def score_answers(results: Sequence[dict]) -> dict:
    """Held-out numbers from `generate_answers` results."""
    fakes = [r for r in results if r["fake"]]
    reals = [r for r in results if not r["fake"]]
    verdict_ok = [verdict_of(r["text"]) == ("fake" if r["fake"] else "real") for r in results]
    region_ok = [region_in(r["text"]) == r["region"] for r in fakes]
    lead_ok = [_starts_with_lead_in(r["text"], r["lead_in"]) for r in results]
    p_fakes = sorted(r["p_fake"] for r in fakes if r["p_fake"] is not None)
    p_reals = sorted(r["p_fake"] for r in reals if r["p_fake"] is not None)

    def frac(xs):
        return sum(xs) / len(xs) if xs else float("nan")

    def quantiles(xs):
        if not xs:
            return None
        return {q: round(xs[min(len(xs) - 1, int(q * len(xs)))], 5) for q in (0.0, 0.1, 0.5, 0.9)} | {
            1.0: round(xs[-1], 5)}

    return {
        "n": len(results), "n_fake": len(fakes),
        "verdict_accuracy": frac(verdict_ok),
        "region_accuracy": frac(region_ok),
        "lead_in_accuracy": frac(lead_ok),
        "p_fake_gt_0.9_on_fakes": frac([p > 0.9 for p in p_fakes]),
        "p_fake_lt_0.1_on_reals": frac([p < 0.1 for p in p_reals]),
        "p_fake_quantiles_fakes": quantiles(p_fakes),
        "p_fake_quantiles_reals": quantiles(p_reals),
    }


def _starts_with_lead_in(text: str, lead_in: str) -> bool:
    # the Llama decoder strips one leading space: " ASSISTANT: This…" decodes to "ASSISTANT: This…"
    return text.startswith(lead_in[1:] if lead_in.startswith(" ") else lead_in)


# ------------------------------------------------------------------------------------------ build/save


def _write_llava_hf_tokenizer_files(out: Path, tok) -> None:
    """Tokenizer files shaped like llava-hf/llava-1.5-7b-hf's (what transformers 4.45 wrote for it)."""
    tok.save(str(out / "tokenizer.json"), pretty=True)
    added = {}
    for t in ("<unk>", "<s>", "</s>", "<image>", "<pad>"):
        added[str(tok.token_to_id(t))] = {"content": t, "lstrip": False, "normalized": False, "rstrip": False,
                                          "single_word": False, "special": True}
    config = {
        "add_bos_token": True, "add_eos_token": False, "added_tokens_decoder": added, "bos_token": "<s>",
        "clean_up_tokenization_spaces": False, "eos_token": "</s>", "legacy": False,
        "model_max_length": 1000000000000000019884624838656, "pad_token": "<pad>",
        "processor_class": "LlavaProcessor", "sp_model_kwargs": {}, "tokenizer_class": "LlamaTokenizer",
        "trust_remote_code": False, "unk_token": "<unk>", "use_default_system_prompt": False,
    }
    (out / "tokenizer_config.json").write_text(json.dumps(config, indent=1) + "\n")
    special = {"bos_token": "<s>", "eos_token": "</s>", "pad_token": "<pad>", "unk_token": "<unk>"}
    (out / "special_tokens_map.json").write_text(json.dumps(special, indent=1) + "\n")


def _save(model, tok, config, out: Path) -> None:
    """Model and processor with save_pretrained, then tokenizer files shaped like llava-hf's."""
    from transformers import CLIPImageProcessorPil, LlavaProcessor, PreTrainedTokenizerFast

    model.generation_config.pad_token_id = config.pad_token_id
    model.generation_config.eos_token_id = tok.token_to_id("</s>")
    model.generation_config.bos_token_id = tok.token_to_id("<s>")
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>",
                                   pad_token="<pad>", additional_special_tokens=["<image>"])
    fast.padding_side = "left"
    image_processor = CLIPImageProcessorPil(
        size={"shortest_edge": IMAGE_SIZE}, crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE},
    )
    processor = LlavaProcessor(image_processor=image_processor, tokenizer=fast, patch_size=PATCH,
                               vision_feature_select_strategy="default", num_additional_image_tokens=1)
    model.save_pretrained(out)
    processor.save_pretrained(out)
    _write_llava_hf_tokenizer_files(out, tok)  # replaces what transformers 5 wrote for the tokenizer


def build_toy_fakevlm(out_dir: str | Path, *, recipe: Recipe | None = None, heldout: int = 64,
                      log: Callable[[str], None] | None = None) -> dict:
    """Train the toy, save it to `out_dir` (model + processor, loadable offline) and return its toy.json.

    toy.json is written last: its presence marks a complete checkpoint. It records the recipe, versions,
    timings, the final loss and held-out numbers measured with plain greedy `generate` on `heldout` fresh
    images (seeds FRESH_SEEDS…, half fake).
    """
    t0 = time.perf_counter()
    import tokenizers
    import torch
    import transformers
    from transformers import LlavaForConditionalGeneration

    recipe = recipe or Recipe()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tok = build_toy_tokenizer()
    config = _build_config(recipe, tok)
    torch.manual_seed(recipe.seed)
    model = LlavaForConditionalGeneration(config).float()
    if recipe.pos_std is not None:
        torch.nn.init.normal_(model.model.vision_tower.embeddings.position_embedding.weight, std=recipe.pos_std)
    saved_threads = torch.get_num_threads()
    torch.set_num_threads(recipe.threads)
    try:
        t_train = time.perf_counter()
        losses = _train(model, tok, recipe, log)
        t_train = time.perf_counter() - t_train
        _save(model, tok, config, out)
        results = generate_answers(model, out, fresh_toy_images(heldout))
    finally:
        torch.set_num_threads(saved_threads)

    info = {
        "recipe_version": RECIPE_VERSION, "key": cache_key(recipe), "recipe": asdict(recipe),
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                     "tokenizers": tokenizers.__version__},
        "image_size": IMAGE_SIZE, "patch_size": PATCH, "image_tokens": N_IMAGE_TOKENS,
        "prompt": PROMPT, "prompt_ids": tok.encode(PROMPT).ids,
        "verdict_token_ids": {piece: tok.token_to_id(piece) for piece in VERDICT_PIECES.values()},
        "lead_ins": {"bright": LEAD_IN_BRIGHT, "dark": LEAD_IN_DARK},
        "steps": recipe.steps, "final_loss": round(sum(losses[-10:]) / len(losses[-10:]), 6),
        "train_seconds": round(t_train, 2),
        "heldout_seeds": [FRESH_SEEDS, FRESH_SEEDS + heldout], "heldout": score_answers(results),
    }
    info["build_seconds"] = round(time.perf_counter() - t0, 2)
    (out / "toy.json").write_text(json.dumps(info, indent=1) + "\n")
    return info


def cache_key(recipe: Recipe | None = None) -> str:
    """Hash of RECIPE_VERSION, the recipe (default: Recipe()) and the torch/transformers/tokenizers versions."""
    import tokenizers
    import torch
    import transformers

    text = json.dumps([RECIPE_VERSION, asdict(recipe or Recipe()), torch.__version__, transformers.__version__,
                       tokenizers.__version__])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def default_cache_dir() -> Path:
    """$FAKEVLM_TOY_CACHE if set, else ~/.cache/fakevlm/toy-<cache_key()>."""
    env = os.environ.get("FAKEVLM_TOY_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "fakevlm" / f"toy-{cache_key()}"


def cached_toy_fakevlm(cache_dir: Path | None = None, *, log: Callable[[str], None] | None = None) -> Path:
    """Directory of the trained toy (`cache_dir` or `default_cache_dir()`), built on first use and reused after.

    A folder whose toy.json carries another cache key (older recipe or libraries) is rebuilt. The build runs in
    a temporary folder beside the target and is moved into place with os.replace, so a reader never sees half
    a checkpoint and two processes building at once both end up with one complete folder.
    """
    target = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    key = cache_key()
    if _cached_key(target) == key:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.build-", dir=target.parent))
    try:
        build_toy_fakevlm(tmp, log=log)
        _move_into_place(tmp, target, key)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def is_cached(cache_dir: Path | None = None) -> bool:
    """Whether `cached_toy_fakevlm(cache_dir)` would reuse a trained toy (no training)."""
    target = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    return _cached_key(target) == cache_key()


def _move_into_place(built: Path, target: Path, key: str) -> None:
    try:
        os.replace(built, target)  # succeeds when target is absent or an empty folder
        return
    except OSError:
        if _cached_key(target) == key:  # another process finished first: keep its copy
            return
    # target holds a stale or broken build: move it aside, then take its place
    stale = Path(tempfile.mkdtemp(prefix=f".{target.name}.stale-", dir=target.parent))
    try:
        with contextlib.suppress(FileNotFoundError):
            os.replace(target, stale / "old")
        try:
            os.replace(built, target)
        except OSError:
            if _cached_key(target) != key:
                raise
    finally:
        shutil.rmtree(stale, ignore_errors=True)


def _cached_key(folder: Path) -> str | None:
    """The cache key a complete toy folder was built with (None if the folder is absent or incomplete)."""
    try:
        return json.loads((folder / "toy.json").read_text()).get("key")
    except (OSError, ValueError, AttributeError):
        return None
