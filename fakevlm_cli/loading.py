"""Loading a LLaVA checkpoint the way users name it: a hub id or a local folder, any dtype or quantisation.

Kept apart from the engine's inference code because it is all about the outside world: the hub (reachable or
not, cached or not), devices that may be missing, bitsandbytes that may not be installed, processors saved by
older transformers. Every failure becomes a one-line `ModelLoadError` that says how to fix it. Safetensors
are preferred and checkpoint code is never run (`trust_remote_code=False`).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from fakevlm_cli.engine import DEFAULT_PROCESSOR, DTYPES, QUANTS, EngineOptions, ModelInfo
from fakevlm_cli.errors import ModelLoadError


def _looks_like_path(source: str) -> bool:
    """Hub ids are exactly "org/name"; anything that exists, or reads as a path, is a local directory."""
    if Path(source).expanduser().exists():
        return True
    return source.startswith((".", "/", "~")) or source.count("/") > 1 or "\\" in source


def _quiet_libraries() -> None:
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    for name in ("bitsandbytes", "transformers", "accelerate", "huggingface_hub"):
        logging.getLogger(name).setLevel(logging.ERROR)


def load(cls, options: EngineOptions):
    """Load model and processor and return ``cls(model, processor, ...)`` (an `Engine`)."""
    _quiet_libraries()
    source = options.model
    if _looks_like_path(source):
        path = Path(source).expanduser()
        if not path.is_dir():
            raise ModelLoadError(f"model directory '{source}' does not exist")
        if not (path / "config.json").is_file():
            raise ModelLoadError(f"'{source}' is not a model directory (no config.json in it)")
        source = str(path)
    if options.dtype not in DTYPES:
        raise ModelLoadError(f"unknown dtype '{options.dtype}' (choose from {', '.join(DTYPES)})")
    if options.quant not in QUANTS:
        raise ModelLoadError(f"unknown quantisation '{options.quant}' (choose from {', '.join(QUANTS)})")

    import torch
    import transformers

    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    notices: list[str] = []
    device = _pick_device(options.device, notices)
    dtype = _pick_dtype(options.dtype, device)
    local_only = _offline_requested()
    if not local_only and not Path(source).is_dir() and not _hub_reachable():
        # Without this, huggingface_hub retries for ~25 s before falling back to the cache (or failing).
        local_only = True
        notices.append("the Hugging Face hub cannot be reached: using the local cache only")
    config = _load_config(source, options.revision, local_only)
    if getattr(config, "model_type", None) != "llava":
        raise ModelLoadError(
            f"'{options.model}' is a '{getattr(config, 'model_type', 'unknown')}' checkpoint, not a LLaVA model"
        )
    kwargs: dict = {"revision": options.revision, "trust_remote_code": False, "dtype": dtype,
                    "local_files_only": local_only}
    if Path(source).is_dir() and any(Path(source).glob("*.safetensors")):
        kwargs["use_safetensors"] = True
    if options.quant != "none":
        kwargs["quantization_config"] = _bnb_config(options.quant, dtype, torch)
        kwargs["device_map"] = {"": str(device)}
    elif device.type == "cuda":
        kwargs["device_map"] = {"": str(device)}
    try:
        model = transformers.LlavaForConditionalGeneration.from_pretrained(source, **kwargs)
    except (OSError, ValueError, RuntimeError, ImportError) as exc:
        raise ModelLoadError(_explain_load_failure(options.model, exc)) from exc
    if "device_map" not in kwargs:
        model = model.to(device)
    model.eval()
    processor = _load_processor(source, options, notices, local_only)
    complete_processor(processor, config, notices)
    revision = options.revision or getattr(config, "_commit_hash", None)
    info = ModelInfo(id=options.model, revision=revision, dtype=str(dtype).replace("torch.", ""),
                     quant=options.quant, device=str(device))
    return cls(model, processor, info=info, prompt=options.prompt, answer_prefix=options.answer_prefix,
               notices=notices)


def _pick_device(name: str, notices: list[str]):
    import torch

    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        notices.append("no CUDA GPU found: running on the CPU, which is slow for the full-size model")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ModelLoadError(f"unknown device '{name}' (use auto, cpu, cuda or cuda:N)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ModelLoadError(f"device '{name}' was asked for but this torch build sees no CUDA GPU")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise ModelLoadError(f"device '{name}' does not exist ({torch.cuda.device_count()} GPU(s) visible)")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ModelLoadError("device 'mps' was asked for but Metal is not available")
    if device.type not in ("cpu", "cuda", "mps"):
        raise ModelLoadError(f"device '{name}' is not supported (use auto, cpu, cuda or cuda:N)")
    return device


def _pick_dtype(name: str, device):
    import torch

    if name == "auto":
        return torch.float16 if device.type in ("cuda", "mps") else torch.float32
    return getattr(torch, name)


def _bnb_config(quant: str, dtype, torch):
    try:
        import bitsandbytes  # noqa: F401
    except ImportError:
        raise ModelLoadError(f"--quant {quant} needs bitsandbytes: pip install bitsandbytes") from None
    from transformers import BitsAndBytesConfig

    if quant == "8bit":
        return BitsAndBytesConfig(load_in_8bit=True)
    compute = dtype if dtype in (torch.float16, torch.bfloat16) else torch.bfloat16
    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                              bnb_4bit_compute_dtype=compute)


def _offline_requested() -> bool:
    return any(os.environ.get(v, "").strip().lower() in ("1", "true", "yes", "on")
               for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def _hub_reachable(timeout: float = 3.0) -> bool:
    """Can we open a TCP connection to the hub? A cheap check that spares users minutes of retries."""
    import socket
    from urllib.parse import urlparse

    url = urlparse(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    try:
        with socket.create_connection((url.hostname, url.port or 443), timeout=timeout):
            return True
    except (OSError, ValueError):
        return False


def _load_config(source: str, revision: str | None, local_only: bool = False):
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(source, revision=revision, trust_remote_code=False,
                                          local_files_only=local_only)
    except (OSError, ValueError) as exc:
        raise ModelLoadError(_explain_load_failure(source, exc)) from exc


def _load_processor(source: str, options: EngineOptions, notices: list[str], local_only: bool = False):
    """The checkpoint's own processor when it ships one, else llava-1.5's (as the upstream evaluation does)."""
    from transformers import AutoProcessor

    candidates = [options.processor] if options.processor else [source, DEFAULT_PROCESSOR]
    errors = []
    for candidate in candidates:
        try:
            processor = AutoProcessor.from_pretrained(candidate, trust_remote_code=False,
                                                      local_files_only=local_only)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            errors.append(f"{candidate}: {_first_line(exc)}")
            continue
        if not hasattr(processor, "image_processor") or not hasattr(processor, "tokenizer"):
            errors.append(f"{candidate}: not an image-text processor")
            continue
        if candidate != candidates[0]:
            notices.append(f"the checkpoint ships no processor files: using {candidate}'s processor")
        processor.tokenizer.padding_side = "left"
        return processor
    raise ModelLoadError("could not load a processor — " + "; ".join(errors) +
                         " (pass --processor PATH to a local llava-1.5 processor)")


def complete_processor(processor, config, notices: list[str]) -> None:
    """Fill what an older LLaVA processor lacks from the model's own config.

    Processors saved before transformers 4.44 carry no patch size or feature strategy, so they cannot expand
    ``<image>`` into the model's image tokens; the values are in the model's config. CLIP adds one class
    token that the "default" strategy drops, hence one additional token.
    """
    filled = []
    if getattr(processor, "patch_size", None) is None:
        processor.patch_size = config.vision_config.patch_size
        filled.append(f"patch_size={processor.patch_size}")
    if getattr(processor, "vision_feature_select_strategy", None) is None:
        processor.vision_feature_select_strategy = config.vision_feature_select_strategy
        filled.append(f"vision_feature_select_strategy={processor.vision_feature_select_strategy}")
    if filled and not getattr(processor, "num_additional_image_tokens", 0) and \
            getattr(config.vision_config, "model_type", "").startswith("clip"):
        processor.num_additional_image_tokens = 1
        filled.append("num_additional_image_tokens=1")
    if filled:
        notices.append("the processor predates image-token expansion; taken from the model config: "
                       + ", ".join(filled))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _explain_load_failure(model: str, exc: BaseException) -> str:
    detail = _first_line(exc)
    lowered = str(exc).lower()
    if any(s in lowered for s in ("connect", "offline", "cannot find the requested files", "local_files_only",
                                  "couldn't find", "not found in the cache", "outgoing traffic")):
        return (f"cannot load model '{model}': it is not in the local Hugging Face cache and the hub cannot be "
                f"reached. On a connected machine run `hf download {model}` (about 14 GB), or pass --model PATH "
                f"(or set FAKEVLM_MODEL) to a local copy. ({detail})")
    if "bitsandbytes" in lowered:
        return f"cannot load model '{model}' quantised: {detail} (pip install bitsandbytes)"
    return f"cannot load model '{model}': {detail}"
