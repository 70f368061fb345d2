"""Fusing the model's verdict with metadata evidence: a short rule table, documented in the README.

| rule | evidence                                                            | final verdict            |
|------|---------------------------------------------------------------------|--------------------------|
| 1    | a strong `ai_generated` marker (C2PA/XMP trainedAlgorithmicMedia,   | fake, whatever the model |
|      | a generator's parameters chunk, "Made with Google AI", ...)         | says                     |
| 2    | a strong `ai_edited` marker (compositeWithTrainedAlgorithmicMedia)  | fake                     |
| 3    | otherwise                                                           | the model's verdict      |
|      |                                                                     | (unknown without one)    |

Camera EXIF, editor names and weak generator hints are listed as reasons but never change a verdict: they
are trivially forged, and the absence of any marker proves nothing (screenshots and re-saving strip it).
When rule 1 or 2 overrules a model that said "real", the record's `disagreement` flag is set.
"""

from __future__ import annotations

from dataclasses import dataclass

from fakevlm_cli.evidence.types import Evidence

_LABEL = {"ai_generated": "AI-generated", "ai_edited": "edited with generative AI", "edited": "edited",
          "camera": "camera metadata", "info": "metadata"}


@dataclass(frozen=True)
class Fused:
    verdict: str
    reasons: list[str]
    disagreement: bool


def fuse(model_verdict: str | None, p_fake: float | None, evidence: list[Evidence]) -> Fused:
    """Combine a model verdict (or None with --no-model) with the evidence items of one file."""
    decisive = [e for e in evidence if e.strong and e.signal in ("ai_generated", "ai_edited")]
    decisive.sort(key=lambda e: e.signal != "ai_generated")
    reasons = [f"{_LABEL[e.signal]} per {describe(e)}" for e in decisive]
    model_part = _model_reason(model_verdict, p_fake)
    disagreement = bool(decisive) and model_verdict == "real"
    if decisive:
        verdict = "fake"
        if model_part:
            reasons.append(model_part + (" — overruled by the metadata" if disagreement else ""))
    else:
        verdict = model_verdict or "unknown"
        reasons.append(model_part or "no model run, and no decisive provenance metadata")
    reasons += _context_reasons([e for e in evidence if e not in decisive])
    return Fused(verdict=verdict, reasons=_unique(reasons), disagreement=disagreement)


def _context_reasons(evidence: list[Evidence]) -> list[str]:
    """Evidence that informs but never decides: AI hints, edits, failed validation, camera metadata."""
    reasons = []
    for e in evidence:
        if e.signal in ("ai_generated", "ai_edited"):
            reasons.append(f"hint only ({_LABEL[e.signal]}?): {describe(e)}")
        elif e.signal == "edited" and e.source == "c2pa" and e.key == "validation":
            reasons.append(f"content credentials fail validation: {e.value}")
        elif e.signal == "edited":
            reasons.append(f"edited: {describe(e)}")
    camera = [f"{e.source} {e.key}: {e.value}" for e in evidence if e.signal == "camera"]
    if camera:
        reasons.append("camera metadata, not proof of a real photo (easily forged): " + "; ".join(camera))
    return reasons


def describe(e: Evidence) -> str:
    """One short phrase naming an evidence item, for reasons and table cells."""
    who = f" ({e.generator})" if e.generator and e.generator not in e.value else ""
    return f"{e.source} {e.key}: {e.value}{who}"


def _model_reason(model_verdict: str | None, p_fake: float | None) -> str | None:
    if model_verdict is None:
        return None
    if p_fake is None:
        return "the model stated no verdict" if model_verdict == "unknown" else f"model says {model_verdict}"
    return f"model says {model_verdict} (P(fake) = {p_fake:.1%})"


def _unique(items: list[str]) -> list[str]:
    seen: set[str] = set()
    return [x for x in items if not (x in seen or seen.add(x))]
