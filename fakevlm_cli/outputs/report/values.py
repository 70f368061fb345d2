"""Values from a record made safe for the page. Text: control, format and bidi-override characters shown as
visible escapes, long text cut. Numbers: a real number (not a boolean, not a string), finite, in its range.
A record is untrusted input (`fakevlm report` reads any JSONL): a value that fails is left out of that
record's entry, and a note in `dropped` says which and why; nothing a record holds can stop the report.

Also the parts of an entry made mostly of numbers: the relevance map, a clip's frames, calibration."""

from __future__ import annotations

import base64
import math
from typing import Any

from fakevlm_cli.core.text import safe_text

_MAX_ITEM = 600  # characters of one shown item
MAX_SIDE = 1_000_000  # pixels: an image side, a box corner (200 MP pictures are far below)
MAX_SECONDS = 1e7  # a clip's time (115 days)
_MAX_REGIONS = 5
_MAX_FRAMES = 256  # a clip's sampled frames shown (scan samples at most 256)
_MAX_CELLS = 4096  # a relevance map's grid (LLaVA's is 24 × 24)


def visible(value: Any, limit: int = _MAX_ITEM) -> str:
    """Text made safe to look at: control, format and bidi-override characters as visible escapes (line breaks
    kept), and long text cut with an ellipsis."""
    text = "" if value is None else str(value)
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return "\n".join(safe_text(line) for line in text.split("\n"))


def real(value: Any, low: float, high: float) -> float | None:
    """`value` as a float if it is a finite number from `low` to `high`; else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        number = float(value)
    except OverflowError:  # an int past float's range
        return None
    return number if math.isfinite(number) and low <= number <= high else None


def count(value: Any, high: int) -> int | None:
    """`value` if it is a whole number from 0 to `high`; else None."""
    return value if type(value) is int and 0 <= value <= high else None


def shown(value: Any) -> str:
    """A rejected value as a note names it: short, control characters escaped, containers by kind."""
    text = value if isinstance(value, (str, int, float)) else type(value).__name__
    text = str(text)
    return safe_text(text[:39] + "…" if len(text) > 40 else text)


def checked(data: dict, key: str, low: float, high: float, dropped: list[str], name: str | None = None) -> float | None:
    """data[key] checked; absent or null is no value (and no note)."""
    value = data.get(key)
    if value is None:
        return None
    number = real(value, low, high)
    if number is None:
        dropped.append(f"{name or key} left out: {shown(value)} is not a number from {low:g} to {high:g}")
    return number


def reals(values: Any, n: int, low: float, high: float) -> list[float] | None:
    """A list of exactly `n` numbers, each finite and in range; else None."""
    if not isinstance(values, list) or len(values) != n:
        return None
    out = [real(v, low, high) for v in values]
    return None if None in out else out  # type: ignore[return-value]


# ---- the relevance map --------------------------------------------------------------------------------------

def _grid(value: Any):
    """The map's grid as a float array (null and NaN cells count as 0, as the scan writes NaN); None unless it
    is a non-empty rectangle of at most _MAX_CELLS numbers."""
    import numpy as np

    if not isinstance(value, list) or not value or not all(isinstance(row, list) for row in value):
        return None
    cols = len(value[0])
    if not cols or len(value) * cols > _MAX_CELLS or any(len(row) != cols for row in value):
        return None
    if not all(v is None or (isinstance(v, (int, float)) and not isinstance(v, bool)) for row in value for v in row):
        return None
    try:  # NaN and infinite cells are made 0 by the caller, as the scan writes NaN where a cell has no value
        return np.asarray([[math.nan if v is None else v for v in row] for row in value], dtype=np.float64)
    except OverflowError:  # an int past float's range
        return None


def _regions(loc: dict, width: float, height: float, dropped: list[str]) -> list[dict]:
    raw = loc.get("regions")
    out = []
    for n, region in enumerate(raw[:_MAX_REGIONS] if isinstance(raw, list) else [], 1):
        box = reals(region.get("box"), 4, -MAX_SIDE, MAX_SIDE) if isinstance(region, dict) else None
        score = real(region.get("score") or 0, 0.0, 1.0) if isinstance(region, dict) else None
        if box is None or score is None:
            dropped.append(f"map region {n} left out: its box or score is not numbers in range")
            continue
        x0, y0, x1, y1 = (round(v) for v in box)
        out.append({"box": _fraction(box, width, height), "score": score, "px": f"({x0}, {y0})–({x1}, {y1}) px"})
    return out


def _fraction(box: list[float], width: float, height: float) -> list[float]:
    x0, y0, x1, y1 = box
    return [round(min(max(v, 0.0), 1.0), 5) for v in (x0 / width, y0 / height, x1 / width, y1 / height)]


def localisation(loc: Any, dropped: list[str]) -> dict | None:
    """The map as the page draws it: crop and boxes as fractions of the picture, the grid's positive part as
    bytes (0–255), base64. A map whose size, crop or grid is malformed is left out (a note says so); a
    malformed region is left out alone."""
    import numpy as np

    size = reals(loc.get("image_size"), 2, 0.0, MAX_SIDE) if isinstance(loc, dict) else None
    crop = reals(loc.get("crop"), 4, -MAX_SIDE, MAX_SIDE) if isinstance(loc, dict) else None
    grid = _grid(loc.get("grid")) if isinstance(loc, dict) else None
    if size is None or min(size) <= 0 or crop is None or grid is None:
        dropped.append("relevance map left out: its image size, crop or grid is not numbers in range")
        return None
    assert isinstance(loc, dict)
    width, height = size
    positive = np.nan_to_num(grid, nan=0.0, posinf=0.0, neginf=0.0).clip(min=0)
    peak = positive.max()
    strength = (positive / peak * 255).round().astype(np.uint8) if peak > 0 else positive.astype(np.uint8)
    return {"method": visible(loc.get("method"), 40), "crop": _fraction(crop, width, height),
            "rows": int(grid.shape[0]), "cols": int(grid.shape[1]),
            "g": base64.b64encode(strength.tobytes()).decode("ascii"), "regions": _regions(loc, width, height, dropped),
            "heatmap": visible(loc.get("heatmap"), 300) if loc.get("heatmap") else None}


# ---- a clip -------------------------------------------------------------------------------------------------

def seconds(value: Any) -> float | None:
    number = real(value, 0.0, MAX_SECONDS)
    return None if number is None else round(number, 3)


def frame(value: Any, dropped: list[str] | None = None, name: str = "frame") -> dict | None:
    """One sampled frame {t, p}: t in seconds, p its P(fake) (None if the model stated no verdict on it)."""
    if value is None:
        return None
    t = seconds(value.get("t")) if isinstance(value, dict) else None
    if t is None:
        if dropped is not None:
            dropped.append(f"{name} left out: its time is not a number of seconds from 0 to {MAX_SECONDS:g}")
        return None
    assert isinstance(value, dict)
    p = value.get("p_fake")
    if p is not None and real(p, 0.0, 1.0) is None and dropped is not None:
        dropped.append(f"{name}'s P(fake) left out: {shown(p)} is not a number from 0 to 1")
    return {"t": t, "p": real(p, 0.0, 1.0)}


def _frames(video: dict, dropped: list[str]) -> list[dict]:
    sampled: list = video["sampled"] if isinstance(video.get("sampled"), list) else []
    bad: list[str] = []
    frames = [f for f in (frame(v, bad) for v in sampled[:_MAX_FRAMES]) if f is not None]
    if bad:
        dropped.append(f"{len(bad)} sampled frame value{'' if len(bad) == 1 else 's'} left out (first: {bad[0]})")
    return frames


def video_facts(video: dict, dropped: list[str]) -> str:
    facts = [visible(video.get(k), 40) for k in ("container", "codec") if isinstance(video.get(k), str)]
    fps = checked(video, "fps", 0.0, 10_000.0, dropped, "frame rate")
    if fps:
        facts.append(f"{fps:.3g} fps")
    frame_count = video.get("frame_count")
    if count(frame_count, 2**53) is not None:
        facts.append(f"{frame_count} frames")
    elif frame_count is not None:
        dropped.append(f"frame count left out: {shown(frame_count)} is not a whole number")
    return " · ".join(facts)


def video(value: Any, dropped: list[str]) -> dict | None:
    """A clip as the page draws it: duration, the sampled frames' P(fake) at their times, the most suspicious
    and explained frames; every number checked, every string made visible-safe."""
    if not isinstance(value, dict):
        return None
    single = frame({**value["frame"], "p_fake": None}, dropped) if isinstance(value.get("frame"), dict) else None
    duration = checked(value, "duration_s", 0.0, MAX_SECONDS, dropped, "clip duration")
    return {"duration": None if duration is None else round(duration, 3), "frames": _frames(value, dropped),
            "top": frame(value.get("most_suspicious"), dropped, "most suspicious frame"),
            "explained": frame(value.get("explained_frame"), dropped, "explained frame"),
            "aggregate": visible(value.get("aggregate"), 200) if value.get("aggregate") else None,
            "facts": video_facts(value, dropped), "frame": single}


# ---- calibration --------------------------------------------------------------------------------------------

def calibration(data: dict, dropped: list[str]) -> dict | None:
    """Calibrated P(fake) and the inconclusive band, when the record was judged with them."""
    cal: dict = data["calibration"] if isinstance(data.get("calibration"), dict) else {}
    band = cal.get("inconclusive")
    checked_band = reals(band, 2, 0.0, 1.0)
    if band is not None and checked_band is None:
        dropped.append("inconclusive band left out: not two numbers from 0 to 1")
    out = {"p": checked(data, "calibrated_p_fake", 0.0, 1.0, dropped, "calibrated P(fake)"),
           "inconclusive": data.get("inconclusive") is True, "band": checked_band,
           "file": visible(cal.get("file"), 300) if isinstance(cal.get("file"), str) else None}
    return out if out["p"] is not None or out["inconclusive"] or out["band"] else None
