"""The evidence item every metadata reader returns.

Readers know nothing of torch or of the model: they look at the bytes of one file and report what its
metadata says about where it came from. Fusion (``fakevlm_cli.run.fusion``) turns items into a verdict.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Signal = Literal["ai_generated", "ai_edited", "edited", "camera", "info"]
SIGNALS: tuple[str, ...] = ("ai_generated", "ai_edited", "edited", "camera", "info")
Trust = Literal["trusted", "untrusted", "unknown"]


@dataclass(frozen=True)
class Evidence:
    """One fact read from a file's metadata.

    ``source``  where it was read: ``exif``, ``png``, ``xmp``, ``c2pa`` or ``jpeg`` (the file's JPEG structure).
    ``key``     the field, e.g. ``Make``, ``parameters``, ``DigitalSourceType``, ``c2pa.actions``.
    ``value``   a short human-readable value (long prompts are cut; never the raw bytes).
    ``signal``  what it suggests: ``ai_generated``, ``ai_edited``, ``edited``, ``camera`` or ``info``.
    ``strong``  True for explicit provenance markers written by a generator or a signed manifest (these can
                decide a verdict); False for hints (an EXIF ``Software`` name, camera tags) that are easy to
                forge or ambiguous and are only listed.
    ``generator`` the generator's name when known (``Stable Diffusion (A1111)``, ``ComfyUI``, ``Adobe Firefly``).
    ``trust``   only on a C2PA ``signer`` item: ``trusted`` (its certificate chains to a trust anchor),
                ``untrusted`` (anchors were given and it chains to none) or ``unknown`` (none were given, or
                trust could not be checked).
    """

    source: str
    key: str
    value: str
    signal: Signal
    strong: bool = False
    generator: str | None = None
    trust: Trust | None = None

    def to_dict(self) -> dict:
        out = {"source": self.source, "key": self.key, "value": self.value, "signal": self.signal,
               "strong": self.strong}
        if self.generator:
            out["generator"] = self.generator
        if self.trust:
            out["trust"] = self.trust
        return out


@dataclass
class MetadataReport:
    """Everything the readers found in one file.

    ``exif`` is a flat summary of the camera fields (Make, Model, LensModel, DateTimeOriginal, Software,
    gps_present, makernote_present) for the record; ``notes`` are non-fatal remarks such as
    "c2pa-python is not installed: content credentials not checked" or "remote manifest, not fetched".
    """

    items: list[Evidence] = field(default_factory=list)
    exif: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
