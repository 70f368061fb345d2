"""The one record every output renders: table row, JSONL line, CSV row, `explain` panel, eval prediction.

The JSONL form is a contract other tools consume. Its shape is described by
``fakevlm_cli/core/schema/record.schema.json`` and versioned by ``SCHEMA_VERSION``: fields are only ever added
(consumers must ignore unknown ones); renaming, removing or changing the meaning of a field bumps it.
"""

from __future__ import annotations

import base64
import json
import os
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from fakevlm_cli import __version__

SCHEMA_VERSION = 1
VERDICTS = ("real", "fake", "unknown", "error")
SIGNAL_LABELS = {"ai_generated": "AI-generated", "ai_edited": "edited with generative AI", "edited": "edited",
                 "camera": "camera metadata", "info": "metadata"}


def format_percent(p: float) -> str:
    """A probability for people: one decimal, but never a rounded 0.0 % or 100.0 % the model did not say."""
    if 0 < p < 0.0005:
        return "<0.1%"
    if 0.9995 <= p < 1:
        return ">99.9%"
    return f"{p:.1%}"


@dataclass(frozen=True)
class Cited:
    """One evidence item as a reason cites it."""

    source: str
    key: str
    value: str
    generator: str | None = None

    def describe(self) -> str:
        who = f" ({self.generator})" if self.generator and self.generator not in self.value else ""
        return f"{self.source} {self.key}: {self.value}{who}"


@dataclass(frozen=True)
class Reason:
    """Why a verdict is what it is, as data (fusion.py makes them; renderers word or style them).

    rule: "decisive" (a strong provenance marker decided), "model" (what the model says), "nothing" (no model
    and nothing decisive), "hint" (an AI marker too weak to decide), "invalid_credentials", "edited",
    "camera", or "text" (a reason read back from a results file, kept as it was written).
    """

    rule: str
    signal: str | None = None
    cited: tuple[Cited, ...] = ()
    verdict: str | None = None  # rule "model": the model's verdict ("unknown": it stated none, or inconclusive)
    p_fake: float | None = None  # rule "model": the P(fake) shown (calibrated when `calibrated`)
    overruled: bool = False  # rule "model": decisive metadata overrules it
    text: str | None = None  # rule "text"
    calibrated: bool = False  # rule "model": p_fake is the calibrated P(fake) (--calibration)
    band: tuple[float, float] | None = None  # rule "model": inconclusive, P(fake) within this band

    def word(self) -> str:
        """The sentence schema-1 records carry in `reasons`."""
        rule, label = self.rule, SIGNAL_LABELS.get(self.signal or "", "")
        first = self.cited[0].describe() if self.cited else ""
        if rule == "text":
            return self.text or ""
        if rule == "decisive":
            return f"{label} per {first}"
        if rule == "model":
            return self._model_says() + (" — overruled by the metadata" if self.overruled else "")
        if rule == "nothing":
            return "no model run, and no decisive provenance metadata"
        if rule == "hint":
            return f"hint only ({label}?): {first}"
        if rule == "invalid_credentials":
            return f"content credentials fail validation: {self.cited[0].value}"
        if rule == "edited":
            return f"edited: {first}"
        if rule == "camera":
            return ("camera metadata, not proof of a real photo (easily forged): "
                    + "; ".join(f"{c.source} {c.key}: {c.value}" for c in self.cited))
        raise ValueError(f"unknown reason rule {rule!r}")

    def _model_says(self) -> str:
        name = "calibrated P(fake)" if self.calibrated else "P(fake)"
        if self.band is not None and self.p_fake is not None:
            return (f"model inconclusive: {name} = {format_percent(self.p_fake)} lies in the inconclusive band "
                    f"{format_percent(self.band[0])}–{format_percent(self.band[1])}")
        if self.p_fake is None:
            return "the model stated no verdict" if self.verdict == "unknown" else f"model says {self.verdict}"
        return f"model says {self.verdict} ({name} = {format_percent(self.p_fake)})"


@dataclass
class Record:
    path: str
    path_bytes: str | None = None  # base64 of the raw name, only when it is not UTF-8 (see `recorded_path`)
    verdict: str = "unknown"
    p_fake: float | None = None
    threshold: float | None = None
    # --calibration / --inconclusive (all three absent from older records; consumers default them):
    calibrated_p_fake: float | None = None  # P(fake) through the calibration's monotone map
    inconclusive: bool = False  # P(fake) fell in the inconclusive band: model_verdict and verdict say unknown
    calibration: dict | None = None  # which calibration and band judged it
    model_verdict: str | None = None
    text_verdict: str | None = None
    explanation: str | None = None
    answer: str | None = None
    lead_in: str | None = None
    reasons: list[Reason] = field(default_factory=list)
    disagreement: bool = False
    evidence: list[dict] = field(default_factory=list)
    exif: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    sha256: str | None = None
    size: int | None = None
    format: str | None = None
    width: int | None = None
    height: int | None = None
    frames: int | None = None
    media: str | None = None  # "image" or "video", from the content
    video: dict | None = None  # a clip's container facts and sampled frames (docs/record.md)
    error: str | None = None
    model: dict | None = None
    elapsed_ms: float | None = None
    # With --localise: where the model's verdict comes from (localise.describe; docs/localisation.md).
    localisation: dict | None = None
    # Only in `fakevlm eval` predictions: the ground truth the record is scored against.
    label: str | None = None
    category: str | None = None
    item_id: str | None = None
    # In-process only, never written: a small JPEG of the picture for `scan --report` (pictures.thumbnail).
    thumbnail: bytes | None = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict:
        """The JSONL object: every field always present (null when unknown), in a stable order."""
        out: dict[str, Any] = {"schema": SCHEMA_VERSION}
        for name in _FIELD_ORDER:
            out[name] = getattr(self, name)
        out["reasons"] = [r.word() for r in self.reasons]
        if self.label is not None:
            out["label"], out["category"], out["item_id"] = self.label, self.category, self.item_id
        out["tool"] = {"name": "fakevlm", "version": __version__}
        return out

    @classmethod
    def from_dict(cls, data: dict) -> Record:
        """Rebuild a record from a JSONL object, ignoring fields this version does not know."""
        known = {k: data[k] for k in _ALL_FIELDS if k in data}
        known["reasons"] = [Reason("text", text=str(r)) for r in known.get("reasons") or []]
        return cls(**known)

    @property
    def strongest_evidence(self) -> dict | None:
        """The item most worth showing in one table cell: strong markers first, then by signal weight."""
        if not self.evidence:
            return None
        return max(self.evidence, key=evidence_rank)


_FIELD_ORDER = (
    "path", "path_bytes", "verdict", "p_fake", "threshold", "calibrated_p_fake", "inconclusive", "calibration",
    "model_verdict", "text_verdict", "explanation", "answer", "lead_in", "reasons", "disagreement", "evidence",
    "exif", "notes", "sha256", "size", "format", "width", "height", "frames", "media", "video", "error", "model",
    "elapsed_ms", "localisation",
)
_ALL_FIELDS = (*_FIELD_ORDER, "label", "category", "item_id")
_SIGNAL_WEIGHT = {"ai_generated": 5, "ai_edited": 4, "edited": 3, "camera": 2, "info": 1}


def evidence_rank(evidence: dict) -> tuple[bool, int]:
    """How much an evidence item weighs when shown: strong (decisive) first, then by signal, info last."""
    return bool(evidence.get("strong")), _SIGNAL_WEIGHT.get(str(evidence.get("signal")), 0)


def recorded_path(path: str | bytes | os.PathLike) -> tuple[str, str | None]:
    """(`path`, `path_bytes`) for a file name as the OS gave it: the lossless, JSON-safe form of a record's path.

    Linux names are bytes, and need not be UTF-8 (``b"bad\\xff.png"`` is legal). A UTF-8 name is recorded as it
    is, and `path_bytes` is None. Any other name is recorded decoded as UTF-8 with each undecodable byte
    written as a visible ``\\xff`` escape (readable, valid JSON, safe on a terminal), plus `path_bytes`: the
    base64 of the exact bytes, from which `raw_path` recovers the name.
    """
    if isinstance(path, bytes):
        raw = path
    else:
        text = os.fspath(path)
        try:
            raw = os.fsencode(text)
        except UnicodeEncodeError:  # a lone surrogate that no OS name decodes to: keep its code point visible
            raw = text.encode("utf-8", "backslashreplace")
    try:
        return raw.decode("utf-8"), None
    except UnicodeDecodeError:
        return raw.decode("utf-8", "backslashreplace"), base64.b64encode(raw).decode("ascii")


def raw_path(path: str, path_bytes: str | None = None) -> bytes:
    """The OS bytes of a recorded path: the inverse of `recorded_path`."""
    if path_bytes:
        return base64.b64decode(path_bytes, validate=True)
    return path.encode("utf-8", "surrogateescape")


def load_schema() -> dict:
    """The JSON Schema of one JSONL record, as shipped with the package."""
    text = resources.files("fakevlm_cli").joinpath("core/schema/record.schema.json").read_text("utf-8")
    return json.loads(text)
