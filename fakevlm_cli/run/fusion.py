"""Fusing the model's verdict with metadata evidence: a short rule table (docs/evidence.md).

| rule | evidence                                                            | final verdict            |
|------|---------------------------------------------------------------------|--------------------------|
| 1    | a strong `ai_generated` marker (C2PA/XMP trainedAlgorithmicMedia,   | fake, whatever the model |
|      | a generator's parameters chunk, "Made with Google AI", ...)         | says                     |
| 2    | a strong `ai_edited` marker (compositeWithTrainedAlgorithmicMedia)  | fake                     |
| 3    | otherwise                                                           | the model's verdict      |
|      |                                                                     | (unknown without one, or |
|      |                                                                     | inconclusive)            |

Camera EXIF, editor names, weak generator hints and JPEG structure (an EXIF thumbnail that does not match the
picture) are listed as reasons but never change a verdict: they are trivially forged or ambiguous, and the
absence of any marker proves nothing (screenshots and re-saving strip it).
When rule 1 or 2 overrules a model that said "real", the record's `disagreement` flag is set.

Reasons are data (`record.Reason`): renderers word or style them; nothing parses them back.
"""

from __future__ import annotations

from dataclasses import dataclass

from fakevlm_cli.core.record import Cited, Reason
from fakevlm_cli.evidence.types import Evidence

DECIDING = ("ai_generated", "ai_edited")


@dataclass(frozen=True)
class Fused:
    verdict: str
    reasons: list[Reason]
    disagreement: bool


def decisive(evidence: list[Evidence]) -> list[Evidence]:
    """The strong AI markers (rules 1 and 2), generated before edited."""
    found = [e for e in evidence if e.strong and e.signal in DECIDING]
    return sorted(found, key=lambda e: e.signal != "ai_generated")


def fuse(model_verdict: str | None, p_fake: float | None, evidence: list[Evidence], *, calibrated: bool = False,
         inconclusive: tuple[float, float] | None = None) -> Fused:
    """Combine a model verdict (or None with --no-model) with the evidence items of one file.

    `p_fake` is the probability shown (`calibrated`: through a --calibration map); `inconclusive`: the band
    it fell in, when the model verdict is unknown for that reason (rule 3 then gives unknown too).
    """
    deciding = decisive(evidence)
    reasons = [Reason("decisive", signal=e.signal, cited=(_cite(e),)) for e in deciding]
    disagreement = bool(deciding) and model_verdict == "real"
    model = None if model_verdict is None else Reason("model", verdict=model_verdict, p_fake=p_fake,
                                                      overruled=disagreement, calibrated=calibrated,
                                                      band=inconclusive)
    if deciding:
        verdict = "fake"
        reasons += [model] if model else []
    else:
        verdict = model_verdict or "unknown"
        reasons.append(model or Reason("nothing"))
    reasons += _context([e for e in evidence if e not in deciding])
    return Fused(verdict=verdict, reasons=list(dict.fromkeys(reasons)), disagreement=disagreement)


def _context(evidence: list[Evidence]) -> list[Reason]:
    """Evidence that informs but never decides: AI hints, edits, failed validation, camera metadata."""
    reasons = []
    for e in evidence:
        if e.signal in DECIDING:
            reasons.append(Reason("hint", signal=e.signal, cited=(_cite(e),)))
        elif e.signal == "edited" and e.source == "c2pa" and e.key == "validation":
            reasons.append(Reason("invalid_credentials", signal=e.signal, cited=(_cite(e),)))
        elif e.signal == "edited":
            reasons.append(Reason("edited", signal=e.signal, cited=(_cite(e),)))
    camera = tuple(_cite(e) for e in evidence if e.signal == "camera")
    if camera:
        reasons.append(Reason("camera", signal="camera", cited=camera))
    return reasons


def _cite(e: Evidence) -> Cited:
    return Cited(e.source, e.key, e.value, e.generator)
