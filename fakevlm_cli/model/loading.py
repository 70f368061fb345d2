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

from fakevlm_cli.core.engine_types import (
    DEFAULT_MODEL,
    DTYPES,
    QUANTS,
    UPSTREAM_PROCESSOR,
    UPSTREAM_PROCESSOR_REVISION,
    ModelInfo,
)
from fakevlm_cli.core.errors import ModelLoadError, first_line
from fakevlm_cli.core.options import EngineOptions
from fakevlm_cli.model.tokens import Codec, find_tokenizer_file


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
    source = _checked_source(options)
    import transformers

    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    notices: list[str] = []
    device = _pick_device(options.device, notices)
    dtype = _pick_dtype(options.dtype, device)
    if options.compile and device.type != "cuda":
        raise ModelLoadError(f"--compile needs a CUDA GPU (the model runs on {device.type})")
    local_only = _local_only(source, notices)
    config = _load_config(source, options.revision, local_only)
    if getattr(config, "model_type", None) != "llava":
        raise ModelLoadError(
            f"'{options.model}' is a '{getattr(config, 'model_type', 'unknown')}' checkpoint, not a LLaVA model"
        )
    model = _load_model(source, options, dtype, device, local_only)
    processor, processor_source, processor_revision = _load_processor(source, options, notices, local_only)
    codec = _codec(processor, processor_source, processor_revision, local_only, notices)
    revision = options.revision or getattr(config, "_commit_hash", None)
    info = ModelInfo(id=options.model, revision=revision, dtype=str(dtype).replace("torch.", ""),
                     quant=options.quant, device=str(device), processor=processor_source,
                     processor_revision=processor_revision, prompt=options.prompt,
                     answer_prefix=options.answer_prefix, prompt_ids_from=codec.source)
    return cls(model, processor, info=info, codec=codec, prompt=options.prompt,
               answer_prefix=options.answer_prefix, verdict_steps=options.verdict_steps, notices=notices,
               compile_decode=options.compile)


def load_processor(options: EngineOptions):
    """The processor `load` pairs with the model, loaded alone (no weights, no torch model): for preprocessing
    where the model is not (a Ray CPU task)."""
    _quiet_libraries()
    source = _checked_source(options)
    notices: list[str] = []
    return _load_processor(source, options, notices, _local_only(source, notices))[0]


def _local_only(source: str, notices: list[str]) -> bool:
    """Whether to load from the local cache alone: asked for (HF_HUB_OFFLINE), or the hub cannot be reached."""
    local_only = offline_requested()
    if not local_only and not Path(source).is_dir() and not hub_reachable():
        # Without this, huggingface_hub retries for ~25 s before falling back to the cache (or failing).
        local_only = True
        notices.append("the Hugging Face hub cannot be reached: using the local cache only")
    return local_only


def check_source(options: EngineOptions) -> None:
    """`ModelLoadError` now, without loading anything, for a model folder that does not exist or is not one."""
    _checked_source(options)


def _checked_source(options: EngineOptions) -> str:
    """The model source (a hub id, or a local folder that holds a config), and options checked for sense."""
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
    return source


def _load_model(source: str, options: EngineOptions, dtype, device, local_only: bool):
    """The LLaVA weights: safetensors preferred, no remote code, on `device` in `dtype` (or quantised)."""
    import torch
    import transformers

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
    except Exception as exc:
        # safetensors' SafetensorError (a truncated or half-downloaded file) derives from Exception alone
        if type(exc).__module__.split(".")[0] != "safetensors" and type(exc).__name__ != "SafetensorError":
            raise
        raise ModelLoadError(f"cannot load model '{options.model}': its weights file is damaged or incomplete "
                             f"({first_line(exc)}); download it again") from exc
    if "device_map" not in kwargs:
        model = model.to(device)
    return model.eval()


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


def auto_device() -> tuple[str, str, str]:
    """What `--device auto --dtype auto` would pick here: (device type, dtype name, the device's name), for
    `fakevlm doctor`; the same choice as a model load makes."""
    device = _pick_device("auto", [])
    dtype = str(_pick_dtype("auto", device)).removeprefix("torch.")
    if device.type == "cuda":
        import torch

        return "cuda", dtype, torch.cuda.get_device_name(device)
    import torch

    if torch.backends.mps.is_available():
        return "mps", "float16", "Apple GPU"
    return device.type, dtype, "CPU"


def _pick_dtype(name: str, device):
    """auto: bfloat16 on a GPU that supports it (upstream trained and evaluated in bf16), float16 on other GPUs
    and on Apple's MPS, float32 on the CPU (where half precision is slow or unsupported)."""
    import torch

    if name != "auto":
        return getattr(torch, name)
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "mps":
        return torch.float16
    return torch.float32


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


def offline_requested() -> bool:
    return any(os.environ.get(v, "").strip().lower() in ("1", "true", "yes", "on")
               for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def hub_reachable(timeout: float = 3.0) -> bool:
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


def _processor_candidates(source: str, options: EngineOptions) -> list[tuple[str, str | None]]:
    """Where to take the processor from, in order of preference.

    An explicit --processor wins. The released weights get the processor the upstream evaluation paired them
    with (llava-hf/llava-1.5-7b-hf at revision a272c74, `scripts/eval.py`); other checkpoints their own
    processor files, else that same upstream processor.
    """
    upstream = (UPSTREAM_PROCESSOR, UPSTREAM_PROCESSOR_REVISION)
    if options.processor:
        return [(options.processor, options.processor_revision)]
    if options.model.strip().lower() == DEFAULT_MODEL.lower():
        return [upstream, (source, options.revision)]
    return [(source, options.revision), upstream]


def _load_processor(source: str, options: EngineOptions, notices: list[str], local_only: bool = False):
    """Load the processor with the PIL image backend; return it, where it came from and at which revision.

    transformers 5 picks a torchvision image backend whenever torchvision is installed, whose pixels differ
    from the PIL pipeline upstream ran by up to 5 levels: the PIL backend is asked for explicitly.
    """
    from transformers import AutoProcessor

    candidates = _processor_candidates(source, options)
    errors = []
    for candidate, revision in candidates:
        if options.processor and _looks_like_path(candidate) and not Path(candidate).expanduser().is_dir():
            raise ModelLoadError(f"processor directory '{candidate}' does not exist")
        try:
            processor = AutoProcessor.from_pretrained(candidate, revision=revision, trust_remote_code=False,
                                                      local_files_only=local_only, backend="pil")
        except (OSError, ValueError, KeyError, TypeError) as exc:
            errors.append(f"{candidate}: {first_line(exc)}")
            continue
        if not hasattr(processor, "image_processor") or not hasattr(processor, "tokenizer"):
            errors.append(f"{candidate}: not an image-text processor")
            continue
        if not _is_pil_backend(processor.image_processor):
            raise ModelLoadError(f"{candidate}: its image processor ({type(processor.image_processor).__name__}) "
                                 "has no PIL backend; pixels would differ from the upstream evaluation's")
        if (candidate, revision) != candidates[0]:
            wanted = candidates[0][0] + (f"@{candidates[0][1]}" if candidates[0][1] else "")
            notices.append(f"processor {wanted} is not available ({errors[-1] if errors else 'no files'}): "
                           f"using {candidate}'s processor")
        processor.tokenizer.padding_side = "left"
        return processor, candidate, revision
    raise ModelLoadError("could not load a processor — " + "; ".join(errors) +
                         " (pass --processor PATH to a local llava-1.5 processor)")


def _is_pil_backend(image_processor) -> bool:
    try:
        from transformers.image_processing_backends import PilBackend
    except ImportError:  # pragma: no cover - transformers without selectable backends is PIL-only
        return True
    return isinstance(image_processor, PilBackend)


def _codec(processor, source: str, revision: str | None, local_only: bool, notices: list[str]) -> Codec:
    """Token ids from the processor's own tokenizer.json (as upstream's stack produced them) when it has one."""
    path = find_tokenizer_file(source, revision, local_only)
    if path is not None:
        try:
            codec = Codec.from_file(path)
        except Exception as exc:  # noqa: BLE001 - a file the tokenizers library cannot read
            notices.append(f"{path}: cannot be read by the tokenizers library ({first_line(exc)})")
        else:
            if codec.note:
                notices.append(codec.note)
            return codec
    notices.append(f"processor {source} has no usable tokenizer.json: prompt ids come from the transformers "
                   "tokenizer and may differ from what the upstream evaluation fed")
    return Codec.from_transformers(processor.tokenizer)



def _explain_load_failure(model: str, exc: BaseException) -> str:
    detail = first_line(exc)
    lowered = str(exc).lower()
    if any(s in lowered for s in ("connect", "offline", "cannot find the requested files", "local_files_only",
                                  "couldn't find", "not found in the cache", "outgoing traffic")):
        why = ("HF_HUB_OFFLINE is set (only the cache is used)" if offline_requested()
               else "the hub cannot be reached")
        return (f"cannot load model '{model}': it is not in the local Hugging Face cache and {why}. On a connected "
                f"machine run `hf download {model}` (about 14 GB), or pass --model PATH (or set FAKEVLM_MODEL) to a "
                f"local copy; --no-model reads the metadata alone, and `fakevlm demo` shows the tool on a toy "
                f"model. ({detail})")
    if "bitsandbytes" in lowered:
        return f"cannot load model '{model}' quantised: {detail} (pip install bitsandbytes)"
    return f"cannot load model '{model}': {detail}"
