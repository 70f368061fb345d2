"""A record as the page gets it: every string made visible-safe, every number checked, nothing else
(docs/report.md, Safety). Records are untrusted input: `fakevlm report` reads any JSONL it is given."""

from __future__ import annotations

import base64
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from fakevlm_cli.core.record import VERDICTS, evidence_rank
from fakevlm_cli.core.text import byte_size
from fakevlm_cli.outputs.report.values import (
    MAX_SIDE,
    calibration,
    checked,
    count,
    localisation,
    real,
    shown,
    video,
    visible,
)

# Caps on what one record may put into the page, so a hostile file cannot make the report unusable.
_MAX_TEXT, _MAX_ITEM, _MAX_ITEMS = 8000, 600, 40
_TRUST = {"trusted": "trusted (chains to a trust anchor)", "untrusted": "NOT trusted (no trust anchor vouches for it)",
          "unknown": "trust unknown (no trust anchors given)"}
_EXIF_LABELS = {"make": "make", "model": "model", "lens_model": "lens", "datetime_original": "taken",
                "software": "software", "gps_present": "GPS", "makernote_present": "maker note"}


# ---- untrusted text -> what the page shows ------------------------------------------------------------------

def _items(values: Any, limit: int = _MAX_ITEMS) -> list[str]:
    if not isinstance(values, list):
        return []
    out = [visible(v) for v in values[:limit]]
    if len(values) > limit:
        out.append(f"… and {len(values) - limit} more")
    return out


def _number(value: Any) -> float | None:
    return real(value, 0.0, 1.0)


def _choice(value: Any, allowed: Iterable[str]) -> str | None:
    return value if isinstance(value, str) and value in allowed else None


def _whole(data: dict, key: str, high: int, dropped: list[str], name: str) -> int | None:
    """data[key] if it is a whole number from 0 to `high`; absent or null is no value (and no note)."""
    value = data.get(key)
    if value is not None and count(value, high) is None:
        dropped.append(f"{name} left out: {shown(value)} is not a whole number from 0 to {high}")
        return None
    return value


def _facts(data: dict, dropped: list[str]) -> str:
    parts = []
    if isinstance(data.get("format"), str):
        parts.append(visible(data["format"], 20))
    width = _whole(data, "width", MAX_SIDE, dropped, "width")
    height = _whole(data, "height", MAX_SIDE, dropped, "height")
    if width is not None and height is not None:
        parts.append(f"{width}×{height}")
    size = _whole(data, "size", 2**63 - 1, dropped, "size")
    if size is not None:
        parts.append(byte_size(size))
    if isinstance(data.get("sha256"), str):
        parts.append("sha256 " + visible(data["sha256"], 64))
    model = data.get("model")
    if isinstance(model, dict) and isinstance(model.get("id"), str):
        parts.append("model " + visible(model["id"], 120))
    return " · ".join(parts)


def _provenance(evidence: Any) -> list[dict]:
    """The record's evidence as the page lists it: decisive first, information last (as the explain panel)."""
    out = []
    # a record is untrusted: a bounded number of items is looked at (a real one has a few dozen at most)
    items = [item for item in evidence[:10 * _MAX_ITEMS] if isinstance(item, dict)] \
        if isinstance(evidence, list) else []
    for item in sorted(items, key=evidence_rank, reverse=True)[:_MAX_ITEMS]:
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
    """What the page gets for one record: every string visible-safe, every number checked, nothing else; a
    value that fails its check is left out, and the entry's notes say which."""
    dropped: list[str] = []
    verdict = _choice(data.get("verdict"), VERDICTS) or "unknown"
    answer = data.get("answer") or data.get("explanation")
    reasons = _items(data.get("reasons"))
    loc = localisation(data["localisation"], dropped) if data.get("localisation") else None
    if loc is not None:
        loc = _explained(loc, data.get("model_verdict"))
    p_fake = checked(data, "p_fake", 0.0, 1.0, dropped, "P(fake)")
    checked(data, "threshold", 0.0, 1.0, dropped)
    facts, clip, cal = _facts(data, dropped), video(data.get("video"), dropped), calibration(data, dropped)
    return {
        "i": index, "path": visible(data.get("path"), 2000), "verdict": verdict, "p": p_fake,
        "disagreement": data.get("disagreement") is True,
        "answer": visible(answer, _MAX_TEXT) if answer else None,
        "lead_in": visible(data.get("lead_in"), 200) if data.get("lead_in") and answer else None,
        "reasons": reasons, "provenance": _provenance(data.get("evidence")), "exif": _exif(data.get("exif")),
        "notes": _items(data.get("notes")) + dropped,
        "error": visible(data.get("error"), 1000) if data.get("error") else None,
        "facts": facts, "label": _choice(data.get("label"), ("real", "fake")),
        "category": visible(data.get("category"), 120) if data.get("category") is not None else None,
        "media": _choice(data.get("media"), ("image", "video")), "video": clip, "cal": cal,
        "loc": loc, "thumb": base64.b64encode(thumb).decode("ascii") if thumb else None,
        "thumb_note": visible(thumb_note, 600) if thumb_note else None,
    }


# ---- the summary (counts, histogram, evaluation) ------------------------------------------------------------

@dataclass
class Summary:
    total: int = 0
    skipped: int = 0  # input lines that are not fakevlm records
    skipped_lines: list[int] = field(default_factory=list)  # the first few of them, by number
    thumbnails: int = 0
    notice: str | None = None  # what the page must say about itself (thumbnails left out for size)
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
        self.thumbnails += page_entry["thumb"] is not None
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
