"""Building the toy FakeVLM (see `toy`): the recipe, the training loop, the held-out check with plain greedy
`generate`, saving a llava-hf checkpoint, and the cache key that names a build. The data it trains on is in
`toy_data`. torch and transformers are imported inside functions only."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from fakevlm_cli.testing.toy_data import (
    ARTIFACT_SIZES,
    FRESH_SEEDS,
    IMAGE_SIZE,
    LEAD_IN_BRIGHT,
    LEAD_IN_DARK,
    LEAD_INS,
    N_IMAGE_TOKENS,
    PATCH,
    PROMPT,
    REGIONS,
    VERDICT_PIECES,
    ToyImage,
    answer_ids,
    build_toy_tokenizer,
    draw_toy_image,
    expand_image_token,
    fresh_toy_images,
    oracle_tokenizer,
    pixel_values,
    prompt_ids,
    region_in,
    target_text,
    verdict_of,
)

# Bump when anything here or in toy_data changes what gets built (images, texts, tokenizer, architecture,
# training).
RECIPE_VERSION = "toy-1"


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
    toys = [draw_toy_image(s, f, (lo, hi)) for s, f in zip(seeds, fakes, strict=True)]
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
            answers[(lead, region)] = [*answer_ids(tok, PROMPT, target_text(region is not None, region, lead)), eos]

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
