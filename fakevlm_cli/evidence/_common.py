"""Helpers shared by the readers: safe text and JSON, known software names, SD-style parameter text.

Everything here takes hostile input: text is decoded with ``errors="replace"``, JSON is size-capped and
parse errors (including nesting too deep) become ``None``.
"""

from __future__ import annotations

import json
import re
from types import ModuleType
from typing import Any

from .types import Signal

_orjson: ModuleType | None
try:
    import orjson as _orjson
except ImportError:  # orjson is only faster; the stdlib parser gives the same answers
    _orjson = None

MAX_JSON_CHARS = 8 * 1024 * 1024

# Known generators, matched case-insensitively as substrings of a Software / CreatorTool / softwareAgent
# value. Deliberately short: there is no authoritative list, and a match is only a weak hint.
GENERATOR_NAMES = (
    ("midjourney", "Midjourney"),
    ("dall-e", "DALL-E"), ("dall·e", "DALL-E"), ("dalle", "DALL-E"),
    ("stable diffusion", "Stable Diffusion"), ("stable-diffusion", "Stable Diffusion"),
    ("firefly", "Adobe Firefly"),
    ("novelai", "NovelAI"),
    ("comfyui", "ComfyUI"),
    ("invokeai", "InvokeAI"),
    ("fooocus", "Fooocus"),
    ("draw things", "Draw Things"),
)
# Photo editors: a match says the file went through an editor, nothing about AI.
EDITOR_NAMES = ("photoshop", "gimp", "lightroom", "snapseed", "affinity photo", "pixelmator", "capture one",
                "darktable", "rawtherapee", "paint.net", "luminar", "facetune", "picsart")


def clip(text: object, limit: int = 120) -> str:
    """One line, whitespace collapsed, at most ``limit`` characters."""
    s = " ".join(str(text).split())
    return s if len(s) <= limit else s[: limit - 1] + "…"


def to_text(value: object) -> str:
    """A str from whatever a library handed back (bytes are decoded as UTF-8 with replacement)."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).decode("utf-8", errors="replace")
    return str(value)


def loads_json(text: str) -> Any:
    """Parsed JSON or None. orjson first; stdlib as fallback because ComfyUI writes NaN, which orjson refuses."""
    if len(text) > MAX_JSON_CHARS or text.lstrip()[:1] not in ("{", "["):
        return None
    if _orjson is not None:
        try:
            return _orjson.loads(text)
        except (ValueError, TypeError):
            pass
    try:
        return json.loads(text)
    except (ValueError, TypeError, RecursionError):
        return None


def dict_at(obj: object, key: str) -> dict[str, Any]:
    """``obj[key]`` when `obj` is a dict and that value is one too, else an empty dict (parsed JSON is untrusted)."""
    value = obj.get(key) if isinstance(obj, dict) else None
    return value if isinstance(value, dict) else {}


def list_at(obj: object, key: str) -> list[Any]:
    """``obj[key]`` when `obj` is a dict and that value is a list, else an empty list."""
    value = obj.get(key) if isinstance(obj, dict) else None
    return value if isinstance(value, list) else []


def classify_software(name: str) -> tuple[Signal, str | None]:
    """(signal, generator) for a software name: ``ai_generated``, ``edited`` or ``info``; always weak."""
    low = name.lower()
    for needle, generator in GENERATOR_NAMES:
        if needle in low:
            return "ai_generated", generator
    if any(needle in low for needle in EDITOR_NAMES):
        return "edited", None
    return "info", None


def summary(fields: dict, prompt: object = None) -> str:
    """``model=…, sampler=…, steps=…; prompt: …`` from whichever fields are present (values clipped)."""
    parts = [f"{k}={clip(v, 60)}" for k, v in fields.items() if v not in (None, "", [], {})]
    text = ", ".join(parts)
    if isinstance(prompt, str) and prompt.strip():
        text = f"{text}; prompt: {clip(prompt)}" if text else f"prompt: {clip(prompt)}"
    return text or "present"


# --- Stable Diffusion parameter text (A1111 / Forge / Fooocus / SwarmUI / Draw Things / Easy Diffusion) ---

# Patterns are written to stay linear on hostile text: no unbounded run that can span other start points.
_STEPS = re.compile(r"(?:^|[\n,])[ \t]*Steps: \d")
_PARAM = re.compile(r'([^,:"\n]{1,60}): ("[^"]{0,2000}"|[^,]*)')
_FORGE_VERSION = re.compile(r"^f\d")
MAX_PARAM_TEXT = 1024 * 1024  # an A1111 prompt is a few KB
MAX_PARAM_LINE = 16 * 1024


def describe_parameters(text: str, strict: bool) -> tuple[str, str] | None:
    """(generator, summary) when ``text`` is generation parameters, else None.

    ``strict`` is for free-text fields (EXIF UserComment): it needs ``Steps: N`` plus another A1111 key.
    A PNG ``parameters`` chunk is itself a marker, so one of the usual keys is enough there.
    """
    stripped = text.strip()
    if stripped.startswith("{"):
        obj = loads_json(stripped)
        return describe_json_parameters(obj) if isinstance(obj, dict) else None
    stripped = stripped[:MAX_PARAM_TEXT]
    has_steps = bool(_STEPS.search(stripped))
    others = sum(marker in stripped for marker in ("Sampler: ", "Seed: ", "CFG scale: ", "Negative prompt:"))
    if not ((has_steps and others) or (not strict and (has_steps or others))):
        return None
    lines = stripped.split("\n")
    index = next((i for i in range(len(lines) - 1, -1, -1) if "Steps: " in lines[i]), None)
    pairs = _PARAM.findall(lines[index][:MAX_PARAM_LINE]) if index is not None else []
    fields = {key.strip(): value.strip() for key, value in pairs}
    head = "\n".join(lines[:index] if index is not None else lines)
    prompt = head.split("Negative prompt:")[0]
    version = fields.get("Version", "")
    if "fooocus" in version.lower():
        generator = "Fooocus"
    elif _FORGE_VERSION.match(version):
        generator = "Stable Diffusion (Forge)"
    elif "sd.next" in fields.get("App", "").lower():
        generator = "SD.Next"
    else:
        generator = "Stable Diffusion (A1111)"
    return generator, summary({"model": fields.get("Model"), "sampler": fields.get("Sampler"),
                               "steps": fields.get("Steps")}, prompt)


def describe_json_parameters(obj: dict) -> tuple[str, str] | None:
    """(generator, summary) for the JSON parameter dialects; None when the keys fit none of them."""
    if isinstance(obj.get("sui_image_params"), dict):
        p = obj["sui_image_params"]
        return "StableSwarmUI", summary({"model": p.get("model"), "sampler": p.get("sampler"),
                                         "steps": p.get("steps")}, p.get("prompt"))
    low = {str(k).lower().replace(" ", "_"): v for k, v in obj.items()}
    version = str(low.get("version", ""))
    if "fooocus" in version.lower() or "fooocus_v2_expansion" in low:
        return "Fooocus", summary({"model": low.get("base_model"), "sampler": low.get("sampler"),
                                   "steps": low.get("steps"), "performance": low.get("performance")},
                                  low.get("prompt"))
    if "c" in obj and ("model" in obj or "sampler" in obj):  # Draw Things: c = prompt, uc = negative
        return "Draw Things", summary({"model": obj.get("model"), "sampler": obj.get("sampler"),
                                       "steps": obj.get("steps")}, obj.get("c"))
    if "use_stable_diffusion_model" in low or "num_inference_steps" in low:
        return "Easy Diffusion", summary({"model": low.get("use_stable_diffusion_model"),
                                          "sampler": low.get("sampler_name"),
                                          "steps": low.get("num_inference_steps")}, low.get("prompt"))
    if "prompt" in low and any(k in low for k in ("sampler", "steps", "seed", "cfg_scale")):
        return "Stable Diffusion (unknown UI)", summary({"model": low.get("model"), "sampler": low.get("sampler"),
                                                        "steps": low.get("steps")}, low.get("prompt"))
    return None
