"""`fakevlm doctor`: can the main job run here, on what, and what to do when it cannot — one screen.

Each check is one line: `ok`, `note` (fine, worth knowing), `warn` (works, with a cost the line names) or `fail`
(the model cannot run: the line says what to install). Exit code 0 when `fakevlm scan` with the model can run
here, 1 when it cannot (a `fail` line), 2 when the doctor itself fails. Nothing is downloaded; the hub is asked
at most for a TCP connection (2 s), and only when the weights are not in the cache and offline mode is off.
"""

from __future__ import annotations

import importlib
import os
import platform
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from fakevlm_cli import __version__
from fakevlm_cli.core.engine_types import DEFAULT_MODEL
from fakevlm_cli.core.text import safe_text
from fakevlm_cli.outputs.sinks import Diagnostics

EXIT_READY, EXIT_NOT_READY = 0, 1
LEVELS = ("ok", "note", "warn", "fail")


@dataclass(frozen=True)
class Check:
    level: str  # one of LEVELS
    text: str


def doctor(diag: Diagnostics, *, model: str | None = None, echo: Callable[[str], None] = print) -> int:
    """Print every check; EXIT_READY when none failed."""
    model = model or os.environ.get("FAKEVLM_MODEL") or DEFAULT_MODEL
    echo(f"fakevlm {__version__} on Python {platform.python_version()} ({platform.system()} {platform.machine()})")
    checks = list(_core()) + list(_device()) + [_weights(model)] + list(_media()) + list(_extras()) + list(_tools())
    for check in checks:
        echo(f"{check.level:<5} {safe_text(check.text)}")
    failed = [c for c in checks if c.level == "fail"]
    if failed:
        echo(f"not ready: {len(failed)} problem{'s' * (len(failed) != 1)} above; `fakevlm scan --no-model` "
             "(metadata only) works without the model")
        return EXIT_NOT_READY
    echo("ready: `fakevlm scan PHOTOS -o results.jsonl` runs here; `fakevlm demo` shows it offline on a toy model")
    return EXIT_READY


def _version(module: str) -> str | None:
    """The module's version, None when it is not installed; an import that fails otherwise raises."""
    try:
        found = importlib.import_module(module)
    except ImportError:
        return None
    return str(getattr(found, "__version__", "installed"))


CPU_TORCH = "pip install torch --index-url https://download.pytorch.org/whl/cpu"  # PyTorch's CPU-only wheels


def _core():
    for module, why in (("torch", f"pip install torch (a machine without a GPU: {CPU_TORCH})"),
                        ("transformers", "pip install 'transformers>=5,<6'")):
        try:
            version = _version(module)
        except Exception as exc:  # noqa: BLE001 - a broken install (a missing shared library, say) is a finding
            yield Check("fail", f"{module}: cannot be imported ({type(exc).__name__}: {exc}); reinstall: {why}")
            continue
        yield Check("ok", f"{module} {version}") if version else Check("fail", f"{module}: not installed: {why}")


def _device():
    """The device and precision `--device auto --dtype auto` would pick (model/loading.py decides)."""
    try:
        import torch  # noqa: F401
    except Exception:  # noqa: BLE001 - already a `fail` line
        return
    from fakevlm_cli.model.loading import auto_device

    device, dtype, name = auto_device()
    if device == "cuda":
        yield Check("ok", f"device: {name} (CUDA), {dtype}")
    elif device == "mps":
        yield Check("note", f"device: Apple GPU (MPS) with --device mps, {dtype}; auto uses the CPU")
    else:
        yield Check("warn", f"device: CPU, {dtype} — no CUDA GPU: the 7B model takes minutes an image here "
                            "(--no-model needs none; --quant 4bit needs a GPU to help)")


def _weights(model: str) -> Check:
    if os.path.isdir(model):
        has = (Path(model) / "config.json").is_file()
        return Check("ok" if has else "fail",
                     f"weights: {model} (a local folder{'' if has else ' with no config.json: not a checkpoint'})")
    try:
        from huggingface_hub import try_to_load_from_cache
        from huggingface_hub.constants import HF_HUB_CACHE
    except ImportError:
        return Check("fail", "huggingface_hub: not installed (it comes with transformers: pip install transformers)")
    cached = try_to_load_from_cache(model, "config.json")
    if isinstance(cached, str):
        return Check("ok", f"weights: {model} in the Hugging Face cache ({HF_HUB_CACHE})")
    from fakevlm_cli.model.loading import hub_reachable, offline_requested

    if offline_requested():
        return Check("fail", f"weights: {model} is not in the cache ({HF_HUB_CACHE}) and HF_HUB_OFFLINE is set: "
                             "copy the checkpoint here and pass --model DIR, or unset HF_HUB_OFFLINE to download it")
    if not hub_reachable(timeout=2.0):
        return Check("fail", f"weights: {model} is not in the cache ({HF_HUB_CACHE}) and the hub cannot be "
                             "reached: pass --model DIR with a local copy")
    return Check("note", f"weights: {model} is not in the cache yet: the first scan downloads it (about 14 GB "
                         f"into {HF_HUB_CACHE})")


def _media():
    for module, label, what in (("av", "PyAV", "video clips"), ("pillow_heif", "pillow-heif", "HEIC/AVIF photos"),
                                ("c2pa", "c2pa-python", "C2PA content credentials")):
        try:
            version = _version(module)
        except Exception as exc:  # noqa: BLE001
            yield Check("warn", f"{label}: cannot be imported ({type(exc).__name__}): {what} become error records")
            continue
        yield (Check("ok", f"{label} {version} ({what})") if version
               else Check("warn", f"{label}: not installed: {what} become error records (pip install {label})"))


_EXTRAS = (("ray", "scan --ray / eval --ray", "ray"), ("s3fs", "s3:// inputs", "ray"),
           ("rouge_score", "eval --explain text metrics", "eval"),
           ("sentence_transformers", "eval --explain similarity (CSS)", "eval"),
           ("bitsandbytes", "--quant 8bit/4bit", None))


def _extras():
    for module, use, extra in _EXTRAS:
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):
            found = False
        how = f"pip install 'fakevlm-cli[{extra}]'" if extra else f"pip install {module}"
        yield Check("ok", f"{module}: installed ({use})") if found else Check("note", f"{module}: not installed, "
                                                                               f"needed only for {use} ({how})")


def _tools():
    for tool, use in (("exiftool", "an independent reader the test suite cross-checks metadata with"),
                      ("chromium", "the report's browser tests (any browser opens the report)")):
        where = shutil.which(tool)
        yield Check("ok", f"{tool}: {where}") if where else Check("note", f"{tool}: not found; optional: {use}")
