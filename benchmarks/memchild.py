"""One memory measurement in a fresh process (RSS never goes down, so each configuration gets its own).

    python -m benchmarks.memchild '{"arch": "tiny", "checkpoint": DIR, "device": "cpu", "dtype": "float32",
                                    "quant": "none", "workdir": DIR, "batch": 8, "max_new_tokens": 256}'

Prints one JSON line: the RSS high-water mark (``VmHWM``) and current RSS after imports, after the model
load, after a score batch and after an explain batch; on CUDA also `torch.cuda.max_memory_allocated` /
`max_memory_reserved` at the same points. Models come from `checkpoint` through `Engine.load` (what users
run); the in-memory full-size architecture (no checkpoint, dtype only) is built with benchmarks.models.
"""

from __future__ import annotations

import json
import resource
import sys
import time


def _status_mb(field: str) -> float | None:
    """VmHWM / VmRSS of this process's own address space, from /proc (Linux)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    except (OSError, ValueError):
        pass
    return None


def _snapshot(device: str) -> dict:
    # Not ru_maxrss: Linux carries it across fork+exec, so a child of a big parent reports the parent's size.
    peak = _status_mb("VmHWM")
    if peak is None:  # not Linux: ru_maxrss (KB on Linux/BSD, bytes on macOS)
        scale = 2**20 if sys.platform == "darwin" else 2**10
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / scale
    out = {"rss_peak_mb": peak, "rss_now_mb": _status_mb("VmRSS")}
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()
        out["cuda_max_allocated_mb"] = torch.cuda.max_memory_allocated() / 2**20
        out["cuda_max_reserved_mb"] = torch.cuda.max_memory_reserved() / 2**20
    return out


def main(spec: dict) -> dict:
    from pathlib import Path

    from benchmarks.files import photo_like

    images = [photo_like(640, 480, seed=i) for i in range(spec.get("batch", 8))]
    device = spec["device"]
    result: dict = {"spec": spec}
    import torch  # noqa: F401 - the import itself is part of the baseline figure
    import transformers  # noqa: F401

    from benchmarks import models
    from fakevlm_cli.core.options import EngineOptions
    from fakevlm_cli.model.engine import Engine

    models.quiet()
    result["after_import"] = _snapshot(device)
    start = time.perf_counter()
    if spec.get("checkpoint"):
        engine = Engine.load(EngineOptions(model=spec["checkpoint"], device=device, dtype=spec["dtype"],
                                           quant=spec.get("quant", "none")))
    else:
        if spec.get("quant", "none") != "none":
            raise SystemExit("quantised configurations need a saved checkpoint")
        engine = models.build_full_engine(device, spec["dtype"], Path(spec["workdir"]),
                                          shrink=bool(spec.get("shrink")))
    result["load_seconds"] = time.perf_counter() - start
    result["after_load"] = _snapshot(device)
    try:
        result["model_footprint_mb"] = engine.model.get_memory_footprint() / 2**20
    except Exception:  # noqa: BLE001 - informative only
        result["model_footprint_mb"] = None
    result["engine_dtype"] = str(engine.dtype).replace("torch.", "")
    models.equal_lengths(engine, spec.get("max_new_tokens", 256))
    from benchmarks.rows_model import _forced

    p = _forced(engine).score(images)  # random weights state no verdict: the answer start is forced
    result["after_score"] = _snapshot(device)
    result["score_ok"] = len(p) == len(images)
    answers = engine.explain(images, max_new_tokens=spec.get("max_new_tokens", 256))
    result["after_explain"] = _snapshot(device)
    result["explain_ok"] = len(answers) == len(images)
    return result


if __name__ == "__main__":
    out = main(json.loads(sys.argv[1]))
    sys.stdout.write("MEMCHILD " + json.dumps(out) + "\n")
