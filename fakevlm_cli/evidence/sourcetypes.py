"""The IPTC digital source type vocabulary, mapped to evidence signals.

The same URIs appear in XMP (``Iptc4xmpExt:DigitalSourceType``) and in C2PA actions (``digitalSourceType``),
so both readers share this table. Values are URIs under ``http://cv.iptc.org/newscodes/digitalsourcetype/``
(C2PA adds two under ``http://c2pa.org/digitalsourcetype/``); writers disagree on http/https, trailing
slashes, case and stray whitespace, so the code after the last slash is what is matched.

Only the two generative-AI codes are strong: they are explicit statements by the software that made the
file. Capture codes stay weak even inside a signed manifest, because a capture claim is the one a forger
wants to make, and in XMP they are just text.
"""

from __future__ import annotations

from typing import NamedTuple

from .types import Signal

_PREFIXES = ("cv.iptc.org/newscodes/digitalsourcetype/", "c2pa.org/digitalsourcetype/")


class SourceType(NamedTuple):
    signal: Signal
    strong: bool
    label: str


# code -> (signal, strong, human label). Keys are the official camelCase codes.
TABLE: dict[str, SourceType] = {
    # Generative AI: decisive when present.
    "trainedAlgorithmicMedia": SourceType("ai_generated", True, "created by generative AI"),
    "compositeWithTrainedAlgorithmicMedia": SourceType("ai_edited", True, "edited with generative AI"),
    # C2PA-only: output of a trained model that is *data*, not media (CSV, tensors). On an image it is a
    # mislabel of trainedAlgorithmicMedia at best, so it points to AI but is not allowed to decide alone.
    "trainedAlgorithmicData": SourceType("ai_generated", False, "data made by a trained model"),
    # Not generative AI. algorithmicMedia is made by a formula with no training data (a rendered gradient,
    # a fractal): nothing was captured and nothing was edited, so it is only information.
    # algorithmicallyEnhanced is a capture that an algorithm corrected (denoise, HDR tone mapping): an edit.
    "algorithmicMedia": SourceType("info", False, "created by an algorithm without training data, not generative AI"),
    "algorithmicallyEnhanced": SourceType("edited", False, "capture enhanced by an algorithm, not generative AI"),
    # Captures from real life: weak, metadata is forgeable.
    "digitalCapture": SourceType("camera", False, "original digital capture"),
    "computationalCapture": SourceType("camera", False, "computational capture"),
    "negativeFilm": SourceType("camera", False, "digitised from a film negative"),
    "positiveFilm": SourceType("camera", False, "digitised from a film positive"),
    "print": SourceType("camera", False, "digitised from a print"),
    # Human edits of captures.
    "humanEdits": SourceType("edited", False, "edited by a human"),
    "minorHumanEdits": SourceType("edited", False, "minor human edits (deprecated code)"),
    "compositeCapture": SourceType("edited", False, "composite of captured elements"),
    # Neither capture nor AI: listed only.
    "screenCapture": SourceType("info", False, "screen capture"),
    "digitalCreation": SourceType("info", False, "digital creation by a human"),
    "digitalArt": SourceType("info", False, "digital art (deprecated code)"),
    "virtualRecording": SourceType("info", False, "virtual recording"),
    "dataDrivenMedia": SourceType("info", False, "data-driven media"),
    "compositeSynthetic": SourceType("info", False, "composite with synthetic elements"),
    "softwareImage": SourceType("info", False, "software image (deprecated code)"),
    # C2PA-only: the action explicitly has no source (a blank canvas).
    "empty": SourceType("info", False, "no source (blank canvas)"),
}
_BY_LOWER = {code.lower(): code for code in TABLE}


def code_of(value: str) -> str | None:
    """The official code for a source type URI (any scheme, case or trailing slash) or bare code."""
    text = value.strip().lower()
    for scheme in ("https://", "http://"):
        if text.startswith(scheme):
            text = text[len(scheme):]
    text = text.rstrip("/")
    for prefix in _PREFIXES:
        if text.startswith(prefix):
            return _BY_LOWER.get(text[len(prefix):])
    return _BY_LOWER.get(text) if "/" not in text else None


def classify(value: str) -> tuple[Signal, bool, str]:
    """(signal, strong, display value) for a source type; unknown URIs are ``info`` with the URI shown."""
    code = code_of(value)
    if code is None:
        return "info", False, f"unknown source type {' '.join(value.split())[:120]}"
    entry = TABLE[code]
    return entry.signal, entry.strong, f"{code} ({entry.label})"
