"""A record as the page gets it: every string made visible-safe, every number checked, nothing else
(docs/report.md, Safety). Records are untrusted input: `fakevlm report` reads any JSONL it is given."""

from __future__ import annotations

import base64
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from fakevlm_cli.core.record import VERDICTS
from fakevlm_cli.core.text import byte_size, safe_text

# Caps on what one record may put into the page, so a hostile file cannot make the report unusable.
_MAX_TEXT, _MAX_ITEM, _MAX_ITEMS = 8000, 600, 40
_TRUST = {"trusted": "trusted (chains to a trust anchor)", "untrusted": "NOT trusted (no trust anchor vouches for it)",
          "unknown": "trust unknown (no trust anchors given)"}
_MAX_FRAMES = 256  # a clip's sampled frames shown (scan samples at most 256)
_EXIF_LABELS = {"make": "make", "model": "model", "lens_model": "lens", "datetime_original": "taken",
                "software": "software", "gps_present": "GPS", "makernote_present": "maker note"}


# ---- untrusted text -> what the page shows ------------------------------------------------------------------

def visible(value: Any, limit: int = _MAX_ITEM) -> str:
    """Text made safe to look at: control, format and bidi-override characters as visible escapes (line breaks
    kept), and long text cut with an ellipsis."""
    text = "" if value is None else str(value)
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return "\n".join(safe_text(line) for line in text.split("\n"))


def _items(values: Any, limit: int = _MAX_ITEMS) -> list[str]:
    if not isinstance(values, list):
        return []
    out = [visible(v) for v in values[:limit]]
    if len(values) > limit:
        out.append(f"… and {len(values) - limit} more")
    return out


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        return None
    return float(value)


def _choice(value: Any, allowed: Iterable[str]) -> str | None:
    return value if isinstance(value, str) and value in allowed else None


def _size(n: Any) -> str:
    """A record's size as shown; nothing for a value that is not a size (records are untrusted input)."""
    return byte_size(n) if isinstance(n, int) and not isinstance(n, bool) and n >= 0 else ""


def _facts(data: dict) -> str:
    parts = []
    if isinstance(data.get("format"), str):
        parts.append(visible(data["format"], 20))
    width, height = data.get("width"), data.get("height")
    if isinstance(width, int) and isinstance(height, int):
        parts.append(f"{width}×{height}")
    if _size(data.get("size")):
        parts.append(_size(data.get("size")))
    if isinstance(data.get("sha256"), str):
        parts.append("sha256 " + visible(data["sha256"], 64))
    model = data.get("model")
    if isinstance(model, dict) and isinstance(model.get("id"), str):
        parts.append("model " + visible(model["id"], 120))
    return " · ".join(parts)


def _provenance(evidence: Any) -> list[dict]:
    out = []
    for item in evidence[:_MAX_ITEMS] if isinstance(evidence, list) else []:
        if not isinstance(item, dict):
            continue
        source, key = visible(item.get("source"), 120), visible(item.get("key"), 120)
        value = visible(item.get("value"), _MAX_ITEM)
        signal, generator = visible(item.get("signal"), 40), item.get("generator")
        text = f"{source} {key}: {value}" + (f" ({visible(generator, 120)})" if generator else "")
        trust = _choice(item.get("trust"), _TRUST)
        if trust is not None:  # a C2PA signer: whether its certificate chains to a trusted anchor
            text += f" · signer {_TRUST[trust]}"
        out.append({"text": f"[{signal}] {text}",
                    "strong": bool(item.get("strong")) and str(item.get("signal", "")).startswith("ai_")})
    return out


def _exif(exif: Any) -> list[list[str]]:
    if not isinstance(exif, dict):
        return []
    return [[_EXIF_LABELS.get(str(k), visible(k, 60)), visible(v, 200)] for k, v in list(exif.items())[:_MAX_ITEMS]
            if v not in (None, "", False)]


def _localisation(loc: Any) -> dict | None:
    """The map as the page draws it: crop and boxes as fractions of the picture, the grid's positive part as
    bytes (0–255), base64. Anything malformed is dropped, never drawn."""
    try:
        import numpy as np

        width, height = (float(v) for v in loc["image_size"])
        grid = np.asarray(loc["grid"], dtype=np.float64)
        if width <= 0 or height <= 0 or grid.ndim != 2 or not 0 < grid.size <= 4096:
            return None
        positive = np.nan_to_num(grid, nan=0.0, posinf=0.0, neginf=0.0).clip(min=0)
        peak = positive.max()
        strength = (positive / peak * 255).round().astype(np.uint8) if peak > 0 else positive.astype(np.uint8)

        def fraction(box) -> list[float]:
            x0, y0, x1, y1 = (float(v) for v in box)
            return [round(min(max(v, 0.0), 1.0), 5) for v in (x0 / width, y0 / height, x1 / width, y1 / height)]

        regions = []
        for region in (loc.get("regions") or [])[:5]:
            x0, y0, x1, y1 = (round(float(v)) for v in region["box"])
            regions.append({"box": fraction(region["box"]), "score": float(region.get("score") or 0),
                            "px": f"({x0}, {y0})–({x1}, {y1}) px"})
        return {"method": visible(loc.get("method"), 40), "crop": fraction(loc["crop"]), "rows": int(grid.shape[0]),
                "cols": int(grid.shape[1]), "g": base64.b64encode(strength.tobytes()).decode("ascii"),
                "regions": regions, "heatmap": visible(loc.get("heatmap"), 300) if loc.get("heatmap") else None}
    except (KeyError, TypeError, ValueError, IndexError, AttributeError):
        return None


def _seconds(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value < 1e7:
        return None
    return round(float(value), 3)


def _frame(value: Any) -> dict | None:
    """One sampled frame {t, p}: t in seconds, p its P(fake) (None if the model stated no verdict on it)."""
    if not isinstance(value, dict) or _seconds(value.get("t")) is None:
        return None
    return {"t": _seconds(value.get("t")), "p": _number(value.get("p_fake"))}


def _video(video: Any) -> dict | None:
    """A clip as the page draws it: duration, the sampled frames' P(fake) at their times, the most suspicious
    and explained frames; every number checked, every string made visible-safe."""
    if not isinstance(video, dict):
        return None
    sampled: list = video["sampled"] if isinstance(video.get("sampled"), list) else []
    frames = [f for f in (_frame(v) for v in sampled[:_MAX_FRAMES]) if f is not None]
    fps = video.get("fps")
    facts = [visible(video.get(k), 40) for k in ("container", "codec") if isinstance(video.get(k), str)]
    if isinstance(fps, (int, float)) and not isinstance(fps, bool) and 0 < fps < 10_000:
        facts.append(f"{fps:.3g} fps")
    if isinstance(video.get("frame_count"), int) and not isinstance(video.get("frame_count"), bool):
        facts.append(f"{video['frame_count']} frames")
    single = _frame({**video["frame"], "p_fake": None}) if isinstance(video.get("frame"), dict) else None
    return {"duration": _seconds(video.get("duration_s")), "frames": frames,
            "top": _frame(video.get("most_suspicious")), "explained": _frame(video.get("explained_frame")),
            "aggregate": visible(video.get("aggregate"), 200) if video.get("aggregate") else None,
            "facts": " · ".join(facts), "frame": single}


def _calibration(data: dict) -> dict | None:
    """Calibrated P(fake) and the inconclusive band, when the record was judged with them."""
    cal: dict = data["calibration"] if isinstance(data.get("calibration"), dict) else {}
    band = cal.get("inconclusive")
    band = [_number(v) for v in band] if isinstance(band, list) and len(band) == 2 else None
    out = {"p": _number(data.get("calibrated_p_fake")), "inconclusive": data.get("inconclusive") is True,
           "band": band if band and None not in band else None,
           "file": visible(cal.get("file"), 300) if isinstance(cal.get("file"), str) else None}
    return out if out["p"] is not None or out["inconclusive"] or out["band"] else None


def _explained(loc: dict, model_verdict: Any) -> dict:
    """What the colours mean, in words; regions are outlined only where the model judged the image fake (on
    any other verdict they would point at evidence for a conclusion the model did not reach)."""
    signed = loc["method"] != "attention"
    if model_verdict == "fake":
        loc["explains"] = ("what pushed the verdict towards fake" if signed
                           else "where the model looked as it wrote its verdict")
        return loc
    loc["explains"] = ("what looked most fake to the model, though it did not judge the image fake" if signed
                       else "where the model looked as it wrote its verdict")
    loc["regions"] = []
    loc["note"] = "no regions outlined: the model did not judge this image fake"
    return loc


def entry(data: dict, index: int, thumb: bytes | None, thumb_note: str | None = None) -> dict:
    """What the page gets for one record: every string visible-safe, every number checked, nothing else."""
    verdict = _choice(data.get("verdict"), VERDICTS) or "unknown"
    answer = data.get("answer") or data.get("explanation")
    reasons = _items(data.get("reasons"))
    loc = _localisation(data.get("localisation")) if data.get("localisation") else None
    if loc is not None:
        loc = _explained(loc, data.get("model_verdict"))
    return {
        "i": index, "path": visible(data.get("path"), 2000), "verdict": verdict, "p": _number(data.get("p_fake")),
        "disagreement": data.get("disagreement") is True,
        "answer": visible(answer, _MAX_TEXT) if answer else None,
        "lead_in": visible(data.get("lead_in"), 200) if data.get("lead_in") and answer else None,
        "reasons": reasons, "provenance": _provenance(data.get("evidence")), "exif": _exif(data.get("exif")),
        "notes": _items(data.get("notes")), "error": visible(data.get("error"), 1000) if data.get("error") else None,
        "facts": _facts(data), "label": _choice(data.get("label"), ("real", "fake")),
        "category": visible(data.get("category"), 120) if data.get("category") is not None else None,
        "media": _choice(data.get("media"), ("image", "video")), "video": _video(data.get("video")),
        "cal": _calibration(data),
        "loc": loc, "thumb": base64.b64encode(thumb).decode("ascii") if thumb else None,
        "thumb_note": thumb_note,
    }


# ---- the summary (counts, histogram, evaluation) ------------------------------------------------------------

@dataclass
class Summary:
    total: int = 0
    skipped: int = 0  # input lines that are not fakevlm records
    counts: dict[str, int] = field(default_factory=dict)
    scores: list[tuple[float, str]] = field(default_factory=list)  # (p_fake, verdict)
    truths: list[tuple[str, str, float | None, str]] = field(default_factory=list)  # label, verdict, p, category
    models: list[str] = field(default_factory=list)
    methods: list[str] = field(default_factory=list)
    localised: int = 0
    threshold: float | None = None
    inconclusive: int = 0
    videos: int = 0
    band: list | None = None
    calibrated: bool = False  # the band is on calibrated P(fake)

    def add(self, page_entry: dict, data: dict) -> None:
        self.total += 1
        verdict = page_entry["verdict"]
        self.counts[verdict] = self.counts.get(verdict, 0) + 1
        if page_entry["p"] is not None:
            self.scores.append((page_entry["p"], verdict))
        if page_entry["label"] is not None:
            self.truths.append((page_entry["label"], verdict, page_entry["p"], page_entry["category"] or "default"))
        model = data.get("model")
        if isinstance(model, dict) and isinstance(model.get("id"), str) and len(self.models) < 5:
            name = visible(model["id"], 120)
            if name not in self.models:
                self.models.append(name)
        if page_entry["loc"] is not None:
            self.localised += 1
            if page_entry["loc"]["method"] not in self.methods:
                self.methods.append(page_entry["loc"]["method"])
        if self.threshold is None:
            self.threshold = _number(data.get("threshold"))
        cal = page_entry["cal"]
        self.inconclusive += bool(cal and cal["inconclusive"])
        if cal and cal["band"] and self.band is None:
            self.band, self.calibrated = cal["band"], cal["file"] is not None
        self.videos += page_entry["media"] == "video"
