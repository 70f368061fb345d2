"""The ``score`` and ``explain`` rows: our engine paths against the upstream loop, on the same model and images.

Both rows read one set of paired rounds (`model_rounds`), taken the first time either asks: every round runs
every side once, back to back, in rotating order (`measure.paired_rounds`), and each comparison is the median
of its per-round throughput ratios, with their spread. The sides:

* ``upstream``   the upstream loop (`baseline.upstream_eval_loop`): 1,599 padded positions, batch 16,
                 ``generate(max_new_tokens=256)``, text parsed;
* ``upstream_1`` the same loop generating one new token: what upstream would cost if it only read a verdict,
                 so the score ratio is not just "does not generate";
* ``score/B``    `Engine.score` (preprocessing included) at batch B: one forward pass over the prompt and the
                 forced answer start (random weights state no verdict of their own; a trained model's learnt
                 lead-in costs the same one pass);
* ``explain/B``  `Engine.explain` at batch B, ``max_new_tokens=256``: free greedy generation.

Besides, the explain text is checked token for token against plain `model.generate`, and the decode step
time is measured per batch size.
"""

from __future__ import annotations

import statistics

from benchmarks import measure
from benchmarks.baseline import UPSTREAM_BATCH, upstream_eval_loop
from benchmarks.context import TARGETS, Ctx, chunks

SCORE_BATCHES = (8, 32)
EXPLAIN_BATCHES = (8, 16)
STEP_BATCHES = (1, 8, 16)


def model_rounds(ctx: Ctx) -> dict:
    if ctx.timings is None:
        a, engine = ctx.args, ctx.engine
        images = ctx.images[: a.images]
        explain_images = ctx.images[: a.explain_images]
        base = ctx.images[: a.baseline_images]
        sides = {
            "upstream": lambda: _count(upstream_eval_loop(engine.model, engine.processor, base,
                                                          max_new_tokens=a.max_new_tokens)),
            "upstream_1": lambda: _count(upstream_eval_loop(engine.model, engine.processor, base,
                                                            max_new_tokens=1)),
        }
        forced = _forced(engine)
        if "score" not in a.skip_set:
            for b in SCORE_BATCHES:
                sides[f"score/{b}"] = lambda b=b: len([p for c in chunks(images, b) for p in forced.score(c)])
        if "explain" not in a.skip_set:
            for b in EXPLAIN_BATCHES:
                sides[f"explain/{b}"] = lambda b=b: len(
                    [x for c in chunks(explain_images, b) for x in engine.explain(c, a.max_new_tokens)])
        ctx.log(f"model: warm-up, then {a.repeats} paired rounds of {', '.join(sides)}")
        forced.score(images[:2])  # untimed first calls: allocator, caches, first-call setup
        engine.explain(explain_images[:2], 4)
        ctx.timings = measure.paired_rounds(sides, a.repeats, sync=measure.cuda_sync_for(ctx.device), log=ctx.log)
        ctx.results["model_rounds"] = ctx.timings
    return ctx.timings


def _count(result) -> int:
    return len(result.texts)


def _forced(engine):
    """The engine with the answer start forced (see the module docstring), sharing its loaded model."""
    from benchmarks.models import RANDOM_PREFIX
    from fakevlm_cli.model.engine import Engine

    if engine.forced:
        return engine
    return Engine(engine.model, engine.processor, info=engine.info, codec=engine.codec, answer_prefix=RANDOM_PREFIX)


def score_row(ctx: Ctx) -> None:
    rounds = model_rounds(ctx)
    out = {"upstream": measure.rate(rounds, "upstream"), "upstream_1": measure.rate(rounds, "upstream_1")}
    ctx.row("score", f"upstream loop, images/s (batch {UPSTREAM_BATCH}, 256 new tokens)", out["upstream"]["median"])
    ctx.row("score", f"upstream loop, 1 new token, images/s (batch {UPSTREAM_BATCH})", out["upstream_1"]["median"])
    for b in SCORE_BATCHES:
        name = f"score/{b}"
        out[name] = measure.rate(rounds, name)
        vs_full, vs_one = measure.ratio(rounds, name, "upstream"), measure.ratio(rounds, name, "upstream_1")
        out[name]["vs_upstream"], out[name]["vs_upstream_1"] = vs_full, vs_one
        ctx.row("score", f"ours, images/s (batch {b}) vs upstream loop", out[name]["median"],
                out["upstream"]["median"], _spread(vs_full))
        ctx.row("score", f"ours, images/s (batch {b}) vs upstream loop with 1 new token", out[name]["median"],
                out["upstream_1"]["median"], _spread(vs_one))
    ctx.results["score"] = out


def explain_row(ctx: Ctx) -> None:
    a, engine = ctx.args, ctx.engine
    rounds = model_rounds(ctx)
    out: dict = {"upstream": measure.rate(rounds, "upstream")}
    for b in EXPLAIN_BATCHES:
        name = f"explain/{b}"
        out[name] = measure.rate(rounds, name)
        out[name]["vs_upstream"] = measure.ratio(rounds, name, "upstream")
        status = ""
        target = ""
        if b == 8:
            target = TARGETS["explain_ratio_b8"]["text"]
            status = ctx.target("explain_ratio_b8", out[name]["vs_upstream"]["median"])
        ctx.row("explain", f"ours, images/s (batch {b}, {a.max_new_tokens} new tokens) vs upstream loop",
                out[name]["median"], out["upstream"]["median"], _spread(out[name]["vs_upstream"]), target, status)
    out["identical_to_plain_generate"] = _same_as_generate(engine, ctx.images[: min(8, a.explain_images)],
                                                           a.max_new_tokens)
    same = out["identical_to_plain_generate"]
    ctx.row("explain", "answers token for token equal to plain greedy generate", f"{same['same']}/{same['n']}")
    out["step_ms"] = _step_times(ctx)
    for b, ms in out["step_ms"].items():
        ctx.row("explain", f"decode step, ms (batch {b}; prefill excluded)", ms)
    ctx.results["explain"] = out


def _spread(r: dict) -> str:
    return f"{r['median']:.2f}x ({r['min']:.2f}-{r['max']:.2f})"


def _same_as_generate(engine, images, max_new_tokens: int) -> dict:
    """Our explain text against plain `model.generate` (dynamic cache, nothing of ours), image by image."""
    import torch

    ids = torch.tensor([engine.prompt_ids], device=engine.device)
    eos = engine.model.generation_config.eos_token_id
    same = 0
    answers = engine.explain(images, max_new_tokens)
    for image, answer in zip(images, answers, strict=True):
        pixels = engine.preprocess(image).unsqueeze(0).to(engine.device, engine.dtype)
        with torch.inference_mode():
            row = engine.model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), pixel_values=pixels,
                                        max_new_tokens=max_new_tokens, do_sample=False)[0, ids.shape[1]:].tolist()
        row = row[: row.index(eos)] if eos in row else row
        same += " ".join(filter(None, [answer.lead_in, answer.text])) == engine.codec.decode(row).strip()
    return {"same": same, "n": len(images)}


def _step_times(ctx: Ctx) -> dict:
    """Milliseconds per decode step at each batch size: (time for 2N tokens - time for N tokens) / N."""
    engine = ctx.engine
    n = max(8, ctx.args.max_new_tokens // 4)
    out = {}
    for b in STEP_BATCHES:
        images = (ctx.images * b)[:b]
        pixels = [engine.preprocess(im) for im in images]
        short = [measure.timed(lambda px=pixels: engine.explain_pixels(px, n))[0] for _ in range(3)]
        long = [measure.timed(lambda px=pixels: engine.explain_pixels(px, 2 * n))[0] for _ in range(3)]
        out[b] = 1000 * (statistics.median(long) - statistics.median(short)) / n
    return out
