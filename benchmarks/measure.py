"""Timing, machine description and subprocess helpers shared by the benchmark rows."""

from __future__ import annotations

import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def timed(fn, sync=None) -> tuple[float, object]:
    """(seconds, result) of one call of `fn`; `sync` (CUDA) before and after, so queued kernels are counted."""
    if sync:
        sync()
    t = time.perf_counter()
    result = fn()
    if sync:
        sync()
    return time.perf_counter() - t, result


def best_of(fn, repeats: int, *, sync=None) -> tuple[float, list[float]]:
    """Run `fn` `repeats` times; return (best seconds, all seconds). Only for single-sided costs (a stage's
    milliseconds); comparisons go through `paired_rounds`."""
    times = [timed(fn, sync)[0] for _ in range(max(1, repeats))]
    return min(times), times


def paired_rounds(sides: dict, rounds: int, *, sync=None, log=None) -> dict:
    """Time every side once per round, back to back, the order rotating from round to round.

    `sides` maps a name to a function returning the number of items it handled (or a dict with ``items``
    and, for a side that runs in another process, its own ``wall_s`` and ``cpu_s``). Returns per side and
    round: items, wall seconds and CPU seconds (this process's, children included). A comparison divides the
    two sides' throughputs *within each round* (`ratio`), so load that comes and goes on a shared machine
    lands on both sides of every ratio instead of on one side of a best-of.
    """
    names = list(sides)
    out: dict = {name: [] for name in names}
    for r in range(max(1, rounds)):
        order = names[r % len(names):] + names[: r % len(names)]
        for name in order:
            if log:
                log(f"  round {r + 1}/{rounds}: {name}")
            cpu0 = _cpu_seconds()
            wall, result = timed(sides[name], sync)
            cpu = _cpu_seconds() - cpu0
            entry = {"items": result, "wall_s": wall, "cpu_s": cpu}
            if isinstance(result, dict):
                entry = {"items": result["items"], "wall_s": result.get("wall_s", wall),
                         "cpu_s": result.get("cpu_s", cpu), "extra": result}
            out[name].append(entry)
    return out


def _cpu_seconds() -> float:
    import resource

    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def throughput(entry: dict) -> float:
    return entry["items"] / entry["wall_s"] if entry["wall_s"] > 0 else float("nan")


def ratio(rounds: dict, ours: str, reference: str) -> dict:
    """Per-round throughput ratio ours / reference: the median and the spread (min, max) over rounds."""
    values = [throughput(a) / throughput(b) for a, b in zip(rounds[ours], rounds[reference], strict=True)]
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "rounds": values}


def cpu_ratio(rounds: dict, ours: str, reference: str) -> dict:
    """Per-round ratio of CPU seconds per item, reference / ours (> 1: ours does the work with less CPU), the
    median and spread. Far less sensitive than wall time to load from other processes on a shared machine."""
    values = [(b["cpu_s"] / max(1, b["items"])) / (a["cpu_s"] / max(1, a["items"]))
              for a, b in zip(rounds[ours], rounds[reference], strict=True)]
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "rounds": values}


def rate(rounds: dict, name: str) -> dict:
    """Median items/s of one side over its rounds, with CPU seconds per item beside it."""
    entries = rounds[name]
    return {"median": statistics.median(throughput(e) for e in entries),
            "cpu_ms_per_item": 1000 * statistics.median(e["cpu_s"] / max(1, e["items"]) for e in entries),
            "rounds": [throughput(e) for e in entries]}


def cuda_sync_for(device: str):
    if not str(device).startswith("cuda"):
        return None
    import torch

    return torch.cuda.synchronize


def time_command(argv: list[str], runs: int, *, warmup: int = 1) -> dict:
    """Median wall time of a command over `runs` runs (after `warmup` untimed ones), output discarded."""
    def once():
        return subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)

    for _ in range(warmup):
        once()
    times, codes = [], []
    for _ in range(max(1, runs)):
        seconds, proc = timed(once)
        times.append(seconds)
        codes.append(proc.returncode)
    return {"median_s": statistics.median(times), "min_s": min(times), "times_s": times, "exit_codes": codes,
            "argv": argv}


def fakevlm_argv() -> tuple[list[str], str]:
    """How to start the CLI as users do: the console script next to this interpreter, else `python -m`."""
    script = Path(sys.executable).with_name("fakevlm")
    if script.is_file() and os.access(script, os.X_OK):
        return [str(script)], "console script"
    found = shutil.which("fakevlm")
    if found:
        return [found], "console script on PATH"
    return [sys.executable, "-m", "fakevlm_cli"], "python -m fakevlm_cli"


def exiftool_path() -> str | None:
    return shutil.which("exiftool")


def exiftool_version(path: str) -> str | None:
    try:
        return subprocess.run([path, "-ver"], capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "cpu"


def slug(text: str) -> str:
    text = re.sub(r"\(r\)|\(tm\)|\bcpu\b|\bprocessor\b|@.*$", "", text, flags=re.I)
    text = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return re.sub(r"-+", "-", text)[:40].strip("-") or "machine"


def machine(device: str) -> dict:
    cores = os.cpu_count() or 1
    info = {"cpu": cpu_model(), "cores": cores, "platform": platform.platform(),
            "memory_gb": _memory_gb()}
    gpu = None
    if str(device).startswith("cuda"):
        import torch

        index = torch.device(device).index or 0
        gpu = torch.cuda.get_device_name(index)
        props = torch.cuda.get_device_properties(index)
        info["gpu"] = gpu
        info["gpu_memory_gb"] = round(props.total_memory / 2**30, 1)
    info["slug"] = f"{slug(gpu or info['cpu'])}-{cores}c"
    return info


def _memory_gb() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return None


def versions() -> dict:
    out = {"python": platform.python_version()}
    for name in ("torch", "transformers", "PIL", "tokenizers", "bitsandbytes", "exifread", "numpy"):
        try:
            module = __import__(name)
            out["pillow" if name == "PIL" else name] = getattr(module, "__version__", "?")
        except Exception:  # noqa: BLE001 - a missing optional package is only a missing version
            out[name] = None
    try:
        from fakevlm_cli import __version__

        out["fakevlm_cli"] = __version__
    except Exception:  # noqa: BLE001
        pass
    git = ["git", "--no-optional-locks", "-C", str(REPO)]  # read-only queries; no index refresh
    try:
        head = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=10)
        out["git_commit"] = head.stdout.strip() or None
        dirty = subprocess.run([*git, "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                               text=True, timeout=10)
        out["git_dirty"] = bool(dirty.stdout.strip())
    except (OSError, subprocess.SubprocessError):
        pass
    return out


def loadavg() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None
