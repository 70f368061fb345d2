"""Relevance maps in the image's own coordinates: the record's `localisation` field, top regions, the pointing
game, the share of map energy inside boxes, and the heatmap picture. Torch-free (numpy and Pillow only).

The model never sees the whole file: the processor resizes the image so that its short side is the vision
tower's input size (336 px for LLaVA-1.5), then keeps the centred square (`crop_box`). A map is a grid over
that square (24 × 24 image tokens on LLaVA-1.5, 9 × 9 on the toy); everything here maps grid cells back to
pixels of the image as it was handed to the model (EXIF orientation applied under `--pixels viewer`), so boxes
can be drawn on the picture a person looks at. What lies outside the crop was never seen: no region is ever
placed there, and pictures shade it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from fakevlm_cli.core.engine_types import View

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

Box = tuple[float, float, float, float]  # x0, y0, x1, y1 in image pixels (x1, y1 exclusive)

TOP_REGIONS = 3
REGION_THRESHOLD = 0.5  # cells at or above this share of the map's maximum make up its regions


def crop_box(width: int, height: int, view: View) -> Box:
    """The part of a `width` × `height` image the model sees, in its pixels (transformers' resize and
    centre-crop arithmetic: the long side int()-rounded, the crop's offset floored)."""
    rw, rh = view.resized(width, height)
    cw, ch = view.crop_width or rw, view.crop_height or rh
    left, top = (rw - cw) // 2, (rh - ch) // 2
    sx, sy = width / rw, height / rh
    x0, y0 = max(0.0, left * sx), max(0.0, top * sy)
    x1, y1 = min(float(width), (left + cw) * sx), min(float(height), (top + ch) * sy)
    return (round(x0, 2), round(y0, 2), round(x1, 2), round(y1, 2))


def cell_box(row: int, col: int, shape: tuple[int, int], crop: Sequence[float]) -> Box:
    """Grid cell (row, col) of a map over `crop`, in image pixels."""
    rows, cols = shape
    x0, y0, x1, y1 = crop
    w, h = (x1 - x0) / cols, (y1 - y0) / rows
    return (x0 + col * w, y0 + row * h, x0 + (col + 1) * w, y0 + (row + 1) * h)


def _array(grid) -> np.ndarray:
    import numpy as np

    array = np.asarray(grid, dtype=np.float64)
    if array.ndim != 2 or not array.size:
        raise ValueError(f"a relevance map must be a non-empty 2-D grid, not shape {array.shape}")
    return np.nan_to_num(array, nan=0.0, posinf=0.0, neginf=0.0)


# ---- the record field -------------------------------------------------------------------------------------

def describe(grid, *, method: str, image_size: tuple[int, int], crop: Sequence[float],
             heatmap: str | None = None, top: int = TOP_REGIONS) -> dict[str, Any]:
    """The record's `localisation` object for one map (docs/record.md).

    `grid` is normalised so that its largest absolute value is 1 (`scale` keeps that value, in the method's
    units), rounded to 3 decimals; regions are the connected groups of cells at or above half the maximum,
    as boxes in image pixels, scored by their share of the map's positive mass, best first.
    """
    array = _array(grid)
    scale = float(abs(array).max())
    normal = array / scale if scale > 0 else array
    shape = (int(array.shape[0]), int(array.shape[1]))
    row, col = divmod(int(array.argmax()), shape[1])
    cell = cell_box(row, col, shape, crop)
    return {
        "method": method,
        "target": "fake",
        "image_size": [int(image_size[0]), int(image_size[1])],
        "crop": [round(float(v), 2) for v in crop],
        "grid": [[round(float(v), 3) + 0.0 for v in line] for line in normal],
        "scale": round(scale, 6),
        "peak": [round((cell[0] + cell[2]) / 2, 1), round((cell[1] + cell[3]) / 2, 1)] if scale > 0 else None,
        "regions": regions(array, crop, top=top),
        "heatmap": heatmap,
    }


def regions(grid, crop: Sequence[float], *, top: int = TOP_REGIONS,
            threshold: float = REGION_THRESHOLD) -> list[dict[str, Any]]:
    """Connected (8-neighbour) groups of cells ≥ `threshold` × the map's maximum, as boxes in image pixels with
    `score` (their share of the map's positive mass) and `peak` (their highest cell over the map's maximum)."""
    array = _array(grid)
    positive = array.clip(min=0)
    total, peak = float(positive.sum()), float(positive.max())
    if peak <= 0:
        return []
    hot = positive >= threshold * peak
    seen = set()
    found = []
    rows, cols = array.shape
    for start in ((int(r), int(c)) for r, c in zip(*hot.nonzero(), strict=True)):
        if start in seen:
            continue
        seen.add(start)
        stack, cells = [start], []
        while stack:
            r, c = stack.pop()
            cells.append((r, c))
            for dr in (-1, 0, 1):
                for dc in (-1, 0, 1):
                    n = (r + dr, c + dc)
                    if 0 <= n[0] < rows and 0 <= n[1] < cols and hot[n] and n not in seen:
                        seen.add(n)
                        stack.append(n)
        found.append(_region(cells, positive, total, peak, crop))
    found.sort(key=lambda region: (-region["score"], region["box"]))
    return found[:top]


def _region(cells, positive, total: float, peak: float, crop: Sequence[float]) -> dict[str, Any]:
    shape = positive.shape
    r0, r1 = min(r for r, _ in cells), max(r for r, _ in cells)
    c0, c1 = min(c for _, c in cells), max(c for _, c in cells)
    first, last = cell_box(r0, c0, shape, crop), cell_box(r1, c1, shape, crop)
    mass = float(sum(positive[cell] for cell in cells))
    return {"box": [round(float(first[0]), 1), round(float(first[1]), 1), round(float(last[2]), 1),
                    round(float(last[3]), 1)],
            "score": round(mass / total, 4), "peak": round(max(float(positive[cell]) for cell in cells) / peak, 4)}


# ---- measuring maps against boxes ---------------------------------------------------------------------------

def xywh_box(region: Sequence[float]) -> Box:
    """A LOKI-style [x, y, width, height] box as (x0, y0, x1, y1)."""
    x, y, w, h = (float(v) for v in region)
    return (x, y, x + w, y + h)


def pointing_hit(grid, crop: Sequence[float], boxes: Sequence[Sequence[float]]) -> bool:
    """The pointing game (Zhang et al., 2016): does the map's maximum fall inside one of `boxes`? The maximum is
    the centre of the top cell, and a box counts as hit within half a cell of its edge (the map cannot point
    finer than one cell: the tolerance the original game gives at its own resolution)."""
    array = _array(grid)
    shape = (int(array.shape[0]), int(array.shape[1]))
    row, col = divmod(int(array.argmax()), shape[1])
    x0, y0, x1, y1 = cell_box(row, col, shape, crop)
    px, py, tx, ty = (x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) / 2, (y1 - y0) / 2
    return any(b[0] - tx <= px <= b[2] + tx and b[1] - ty <= py <= b[3] + ty for b in boxes)


def coverage(shape: tuple[int, int], crop: Sequence[float], boxes: Sequence[Sequence[float]],
             samples: int = 8) -> np.ndarray:
    """Share of each grid cell covered by the union of `boxes` (sampled `samples` × `samples` per cell)."""
    import numpy as np

    rows, cols = shape
    x0, y0, x1, y1 = crop
    xs = x0 + (np.arange(cols * samples) + 0.5) * (x1 - x0) / (cols * samples)
    ys = y0 + (np.arange(rows * samples) + 0.5) * (y1 - y0) / (rows * samples)
    inside = np.zeros((ys.size, xs.size), dtype=bool)
    for b in boxes:
        inside |= ((ys >= b[1]) & (ys < b[3]))[:, None] & ((xs >= b[0]) & (xs < b[2]))[None, :]
    return inside.reshape(rows, samples, cols, samples).mean(axis=(1, 3))


def energy_inside(grid, crop: Sequence[float], boxes: Sequence[Sequence[float]]) -> float | None:
    """Share of the map's positive mass that lies inside the union of `boxes` (None for a map with none)."""
    array = _array(grid).clip(min=0)
    total = float(array.sum())
    if total <= 0:
        return None
    return float((array * coverage(array.shape, crop, boxes)).sum() / total)


def centre_prior(shape: tuple[int, int]) -> np.ndarray:
    """The centre-bias baseline: an isotropic Gaussian over the grid, sigma a quarter of its side, peak at the
    centre (photographers and generators put subjects there)."""
    import numpy as np

    rows, cols = shape
    y = (np.arange(rows) + 0.5) / rows - 0.5
    x = (np.arange(cols) + 0.5) / cols - 0.5
    return np.exp(-(y[:, None] ** 2 + x[None, :] ** 2) / (2 * 0.25**2))
