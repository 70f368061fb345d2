"""An independent reference for the engine: plain greedy `generate`, one image at a time, logits kept.

P(fake) is the softmax over the two verdict-token logits at the first step where greedy decoding emits one
of them — what the FakeVLM maintainers read (upstream issue #5) — computed here the obvious, slow way.
"""

from __future__ import annotations


def reference_verdicts(engine, images, steps: int = 16, *, fake_id=None, real_id=None):
    """[(step, p_fake) or None] per image, by `model.generate(..., output_logits=True)`."""
    import torch

    fake_id = engine._fake_id if fake_id is None else fake_id
    real_id = engine._real_id if real_id is None else real_id
    ids = torch.tensor([engine.prompt_ids + list(engine._forced)])
    eos = engine.model.generation_config.eos_token_id
    out_rows = []
    for image in images:
        pixels = engine.preprocess(image).unsqueeze(0)
        with torch.inference_mode():
            out = engine.model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), pixel_values=pixels,
                                        max_new_tokens=steps, do_sample=False, output_logits=True,
                                        return_dict_in_generate=True)
        found = None
        for step, token in enumerate(out.sequences[0, ids.shape[1]:].tolist()):
            if token in (fake_id, real_id):
                pair = out.logits[step][0, [fake_id, real_id]].float()
                found = (step, float(torch.softmax(pair, -1)[0]))
                break
            if token == eos:
                break
        out_rows.append(found)
    return out_rows


def greedy_tokens(engine, images, steps: int = 16) -> list[list[int]]:
    """The first `steps` tokens plain greedy decoding writes for each image."""
    import torch

    ids = torch.tensor([engine.prompt_ids])
    rows = []
    for image in images:
        pixels = engine.preprocess(image).unsqueeze(0)
        with torch.inference_mode():
            out = engine.model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), pixel_values=pixels,
                                        max_new_tokens=steps, do_sample=False)
        rows.append(out[0, ids.shape[1]:].tolist())
    return rows
