"""Relevance maps over the model's image-token grid for its verdict, and the curves that measure their faithfulness.

The quantity explained is the verdict's **log-odds**, logit("fake") - logit("real), at the step where greedy
decoding writes the verdict word: the same step, and the same context (the prompt, then whatever the model
wrote before "fake"/"real", teacher-forced), as P(fake) (docs/fidelity.md). P(fake) is its sigmoid. A map
value is positive where the image pushes the verdict towards "fake".

Three methods (docs/localisation.md compares them):

* ``occlusion`` — each block of patches in turn is replaced by the same block of a blurred copy of the image
  (the artifact-free baseline), and the drop in log-odds is that block's relevance. The variants run through
  the ordinary score path, `chunk` images per model call, so memory is that of a score batch.
* ``gradient`` — gradient × (input - baseline) on the projected image-token embeddings (the vectors the
  language model reads at the image positions), the baseline being the blurred image's: one forward and one
  backward pass per image, no parameter gradients kept. (Plain gradient × input is measured, not offered.)
* ``attention`` — attention from the verdict position to each image token, averaged over heads and layers
  (eager attention for that call only; one image per call, as every layer's weights are returned).

`curves` computes deletion and insertion curves (Petsiuk et al., RISE, 2018): patches are removed from the
image (replaced by the blurred baseline) or inserted into the blurred baseline in the order a map ranks them,
and P(fake) is read after each step. A faithful map makes P(fake) fall fast on deletion and rise fast on
insertion; a random order is the baseline.

torch is imported inside functions only; the engine (engine.py) calls in here with itself.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from fakevlm_cli.core.engine_types import DEFAULT_RELEVANCE_METHOD as DEFAULT_METHOD
from fakevlm_cli.core.engine_types import RELEVANCE_METHODS as METHODS

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    import torch

__all__ = ["DEFAULT_METHOD", "METHODS", "area", "curves", "geometry", "maps"]


@dataclass(frozen=True)
class Geometry:
    """The vision tower's patch grid: `grid` × `grid` patches of `patch` px on a `size`-px input (square)."""

    size: int
    patch: int
    grid: int
    first_token: int  # 1 when the model keeps CLS ("full" strategy): the patch tokens start after it


def geometry(model) -> Geometry:
    vision = model.config.vision_config
    size, patch = int(vision.image_size), int(vision.patch_size)
    full = getattr(model.config, "vision_feature_select_strategy", "default") == "full"
    return Geometry(size=size, patch=patch, grid=size // patch, first_token=1 if full else 0)


def occlusion_block(grid: int) -> int:
    """Side of an occlusion block in patches: 2 on LLaVA's 24 × 24 grid (windows of 2 × 2 blocks sliding by a
    block: 11 × 11 = 121 variants), one patch on grids of 12 or fewer."""
    return max(1, math.ceil(grid / 12))


# ---- the score being explained --------------------------------------------------------------------------

def log_odds(engine, pixels: torch.Tensor, prefix: tuple[int, ...]) -> torch.Tensor:
    """logit(fake) - logit(real) at the verdict step for a batch of pixel tensors sharing one answer prefix."""
    import torch

    with torch.inference_mode():
        out = engine.model(**engine._inputs(pixels.to(engine.device, engine.dtype), prefix), logits_to_keep=1)
    logits = out.logits[:, -1, :].float()
    return logits[:, engine._fake_id] - logits[:, engine._real_id]


def _chunked_log_odds(engine, variant: Callable[[int], torch.Tensor], count: int, prefix: tuple[int, ...],
                      chunk: int) -> torch.Tensor:
    """log_odds of `count` pixel variants, `variant(i)` each, made and scored `chunk` at a time: neither the
    model nor the CPU ever holds more than one chunk of them."""
    import torch

    parts = [log_odds(engine, torch.stack([variant(i) for i in range(start, min(count, start + chunk))]), prefix).cpu()
             for start in range(0, count, chunk)]
    return torch.cat(parts) if parts else torch.zeros(0)


def blurred(pixels: torch.Tensor, sigma: float) -> torch.Tensor:
    """A Gaussian blur of (3, S, S) or (B, 3, S, S) pixel values (reflected edges): the artifact-free baseline."""
    import torch

    single = pixels.dim() == 3
    x = (pixels[None] if single else pixels).float()
    radius = max(1, round(3 * sigma))
    t = torch.arange(-radius, radius + 1, dtype=torch.float32, device=x.device)
    kernel = torch.exp(-(t**2) / (2 * sigma**2))
    kernel = kernel / kernel.sum()
    channels = x.shape[1]
    pad = torch.nn.functional.pad(x, (radius, radius, radius, radius), mode="reflect")
    horizontal = kernel.view(1, 1, 1, -1).expand(channels, 1, 1, -1)
    vertical = kernel.view(1, 1, -1, 1).expand(channels, 1, -1, 1)
    out = torch.nn.functional.conv2d(pad, horizontal, groups=channels)
    out = torch.nn.functional.conv2d(out, vertical, groups=channels)
    out = out.to(pixels.dtype)
    return out[0] if single else out


def baseline_of(pixels: torch.Tensor, geo: Geometry) -> torch.Tensor:
    return blurred(pixels, sigma=geo.patch / 2)


def _patch_mask(geo: Geometry, cells: Sequence[int]):
    """A (S, S) boolean mask covering the given patches (row-major indices into the grid)."""
    import torch

    mask = torch.zeros(geo.grid, geo.grid, dtype=torch.bool)
    if len(cells):
        mask.view(-1)[torch.as_tensor(list(cells), dtype=torch.long)] = True
    return mask.repeat_interleave(geo.patch, 0).repeat_interleave(geo.patch, 1)


# ---- the three methods ----------------------------------------------------------------------------------

def occlusion(engine, pixel: torch.Tensor, prefix: tuple[int, ...], *, chunk: int) -> np.ndarray:
    """Drop in log-odds when a window of patches is replaced by the blurred baseline, averaged over the windows
    that cover each patch (grid × grid). Windows are 2 blocks wide and slide by one block, so an artifact that
    straddles a block edge is still removed whole by some window."""
    import numpy as np

    geo = geometry(engine.model)
    block = occlusion_block(geo.grid)
    window = min(geo.grid, 2 * block)
    pixel = pixel.float().cpu()
    base = baseline_of(pixel, geo)
    starts = list(range(0, geo.grid - window + 1, block))
    if starts[-1] != geo.grid - window:
        starts.append(geo.grid - window)
    boxes = [(r, c) for r in starts for c in starts]

    def variant(i: int) -> torch.Tensor:
        r, c = boxes[i]
        y0, y1, x0, x1 = r * geo.patch, (r + window) * geo.patch, c * geo.patch, (c + window) * geo.patch
        out = pixel.clone()
        out[:, y0:y1, x0:x1] = base[:, y0:y1, x0:x1]
        return out

    full = float(log_odds(engine, pixel[None], prefix)[0])
    scores = _chunked_log_odds(engine, variant, len(boxes), prefix, chunk)
    total = np.zeros((geo.grid, geo.grid), dtype=np.float64)
    covered = np.zeros((geo.grid, geo.grid), dtype=np.float64)
    for (r, c), score in zip(boxes, scores.tolist(), strict=True):
        total[r:r + window, c:c + window] += full - score
        covered[r:r + window, c:c + window] += 1
    return (total / np.maximum(covered, 1)).astype(np.float32)


def _image_positions(engine) -> list[int]:
    config = engine.model.config
    image_id = getattr(config, "image_token_index", None)
    if image_id is None:
        image_id = config.image_token_id
    return [i for i, token in enumerate(engine.prompt_ids) if token == image_id]


def gradient(engine, pixels: torch.Tensor, prefix: tuple[int, ...], *, relative: bool = True) -> list[np.ndarray]:
    """Gradient × (input - baseline) on the projected image-token embeddings, summed over the hidden size: the
    first-order estimate of what replacing each token by the blurred image's token would change (grid × grid
    each). `relative=False` is plain gradient × input (measured in docs/localisation.md, not offered)."""
    import torch

    geo = geometry(engine.model)
    model = engine.model
    model.requires_grad_(False)  # an inference engine: gradients for the inputs only, none kept for weights
    positions = torch.as_tensor(_image_positions(engine), device=engine.device)
    batch = pixels.to(engine.device, engine.dtype)
    inputs = engine._inputs(batch, prefix)
    with torch.no_grad():
        features = _image_features(model, batch).to(engine.dtype)
        reference = _image_features(model, baseline_of(batch, geo)).float() if relative else 0.0
        embeds = model.get_input_embeddings()(inputs["input_ids"])
    features = features.detach().requires_grad_(True)
    with torch.enable_grad():
        rows = torch.arange(batch.shape[0], device=engine.device)[:, None]
        merged = embeds.index_put((rows, positions[None]), features)
        out = model(inputs_embeds=merged, attention_mask=inputs["attention_mask"], logits_to_keep=1)
        logits = out.logits[:, -1, :].float()
        score = (logits[:, engine._fake_id] - logits[:, engine._real_id]).sum()
        (grad,) = torch.autograd.grad(score, features)
    relevance = (grad.float() * (features.detach().float() - reference)).sum(-1)
    return [_to_grid(row, geo) for row in relevance]


def _image_features(model, pixels: torch.Tensor) -> torch.Tensor:
    import torch

    features = model.model.get_image_features(pixel_values=pixels, return_dict=True).pooler_output
    return torch.stack(list(features))


def attention(engine, pixels: torch.Tensor, prefix: tuple[int, ...]) -> list[np.ndarray]:
    """Attention from the verdict position to each image token, mean over heads and layers (grid × grid each)."""
    import torch

    geo = geometry(engine.model)
    model = engine.model
    positions = torch.as_tensor(_image_positions(engine), device=engine.device)
    previous = getattr(model.config, "_attn_implementation", None)
    grids = []
    try:
        if previous != "eager":
            model.set_attn_implementation("eager")
        for i in range(pixels.shape[0]):  # one image a call: every layer's weights come back at once
            batch = pixels[i:i + 1].to(engine.device, engine.dtype)
            with torch.inference_mode():
                out = model(**engine._inputs(batch, prefix), output_attentions=True, logits_to_keep=1)
            rows = torch.stack([layer[0, :, -1, :].float() for layer in out.attentions])  # layers × heads × L
            weights = rows[:, :, positions].mean(dim=(0, 1))
            grids.append(_to_grid(weights, geo))
            del out, rows
    finally:
        if previous is not None and previous != "eager":
            model.set_attn_implementation(previous)
    return grids


def _to_grid(values: torch.Tensor, geo: Geometry) -> np.ndarray:
    import numpy as np

    flat = values.detach().float().cpu().numpy()[geo.first_token:]
    return np.asarray(flat[: geo.grid * geo.grid], dtype=np.float32).reshape(geo.grid, geo.grid)


def maps(engine, pixels: Sequence[torch.Tensor], prefixes: Sequence[tuple[int, ...]], method: str, *,
         chunk: int) -> list[np.ndarray]:
    """One grid per image; images sharing a prefix go through the model together (`chunk` at a time)."""
    import torch

    if method not in METHODS:
        raise ValueError(f"unknown relevance method {method!r}; choose one of {', '.join(METHODS)}")
    out: list[Any] = [None] * len(pixels)
    groups: dict[tuple[int, ...], list[int]] = {}
    for row, prefix in enumerate(prefixes):
        groups.setdefault(tuple(prefix), []).append(row)
    for prefix, rows in groups.items():
        if method == "occlusion":
            for row in rows:
                out[row] = occlusion(engine, pixels[row], prefix, chunk=chunk)
            continue
        for start in range(0, len(rows), chunk):
            part = rows[start:start + chunk]
            batch = torch.stack([pixels[r] for r in part])
            found = gradient(engine, batch, prefix) if method == "gradient" else attention(engine, batch, prefix)
            for row, grid in zip(part, found, strict=True):
                out[row] = grid
    return out


# ---- faithfulness: deletion and insertion curves -----------------------------------------------------------

def curves(engine, pixel: torch.Tensor, prefix: tuple[int, ...], order: Sequence[int], *, steps: int,
           chunk: int) -> tuple[list[float], list[float]]:
    """P(fake) after removing (deletion) or inserting (insertion) the first k patches of `order`, for `steps` + 1
    evenly spaced k from 0 to every patch. Removed patches take the blurred baseline's pixels."""
    import torch

    geo = geometry(engine.model)
    pixel = pixel.float().cpu()
    base = baseline_of(pixel, geo)
    n = geo.grid * geo.grid
    counts = sorted({round(n * i / steps) for i in range(steps + 1)})

    def variant(i: int) -> torch.Tensor:  # deletions first, then insertions
        mask = _patch_mask(geo, order[:counts[i % len(counts)]])
        return torch.where(mask, base, pixel) if i < len(counts) else torch.where(mask, pixel, base)

    scores = _chunked_log_odds(engine, variant, 2 * len(counts), prefix, chunk)
    p = torch.sigmoid(scores).tolist()
    return p[: len(counts)], p[len(counts):]


def area(values: Sequence[float]) -> float:
    """Area under a curve sampled at evenly spaced points of [0, 1] (trapezoid rule)."""
    if len(values) < 2:
        return float(values[0]) if values else 0.0
    return (sum(values) - (values[0] + values[-1]) / 2) / (len(values) - 1)
