"""The ``memory``, ``startup`` and ``metadata`` rows: whole processes, timed or measured from outside.

* ``memory``   peak memory per dtype / quantisation, each in a fresh subprocess (`benchmarks.memchild`),
               because RSS never goes down within a process.
* ``startup``  `fakevlm --help`, `fakevlm scan FILE --no-model`, `exiftool -json FILE`: median wall time.
* ``metadata`` `fakevlm scan DIR --no-model` (the real CLI, JSONL to a temp file) vs `exiftool -json -r DIR`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

from benchmarks import files as benchfiles
from benchmarks import measure
from benchmarks.context import TARGETS, Ctx

NO_EXIFTOOL = "exiftool not found: {} (apt-get install libimage-exiftool-perl)"


# ---- memory -----------------------------------------------------------------------------------------------

def memory_row(ctx: Ctx) -> None:
    on_gpu = ctx.device.startswith("cuda")
    configs = [("float16" if on_gpu else "float32", "none"), ("bfloat16", "none"), ("auto", "8bit"),
               ("auto", "4bit")]
    out = {}
    for dtype, quant in configs:
        label = dtype if quant == "none" else f"{quant} (dtype {dtype})"
        try:
            spec = _memory_spec(ctx, dtype, quant)
        except Exception as exc:  # noqa: BLE001 - a full disk costs one row, not the run
            out[label] = {"error": f"could not save a checkpoint: {exc}"}
            ctx.row("memory", label, "skipped")
            continue
        ctx.log(f"memory: {label} in a fresh process")
        out[label] = _run_memchild(spec)
        _memory_table_row(ctx, label, out[label], on_gpu)
    ctx.results["memory"] = out


def _memory_spec(ctx: Ctx, dtype: str, quant: str) -> dict:
    """The memchild's instructions. The tiny model loads from its checkpoint; the full-size dtype rows build
    the model in memory as the bench does, and its quantised rows need it saved once (about 14 GB)."""
    a = ctx.args
    spec = {"arch": a.arch, "device": ctx.device, "dtype": dtype, "quant": quant, "workdir": str(ctx.workdir),
            "batch": 8, "max_new_tokens": a.max_new_tokens if not a.quick else 16, "checkpoint": None,
            "shrink": bool(a.shrink)}
    if ctx.built.checkpoint is not None:
        spec["checkpoint"] = str(ctx.built.checkpoint)
    elif quant != "none":
        spec["checkpoint"] = str(_saved_full_checkpoint(ctx))
    return spec


def _saved_full_checkpoint(ctx: Ctx):
    checkpoint = ctx.workdir / "full-checkpoint"
    if not (checkpoint / "config.json").exists():
        ctx.log("memory: saving the random full-size model for the quantised loads (about 14 GB)")
        from benchmarks.models import save_full_checkpoint

        save_full_checkpoint(ctx.engine, checkpoint)
    return checkpoint


def _run_memchild(spec: dict) -> dict:
    t = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "benchmarks.memchild", json.dumps(spec)], cwd=measure.REPO,
                          capture_output=True, text=True, timeout=1800,
                          env={**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_DISABLE_PROGRESS_BARS": "1"})
    line = next((x for x in proc.stdout.splitlines() if x.startswith("MEMCHILD ")), None)
    if proc.returncode != 0 or line is None:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        return {"error": " | ".join(tail), "returncode": proc.returncode}
    res = json.loads(line[len("MEMCHILD "):])
    res["wall_s"] = time.perf_counter() - t
    return res


def _memory_table_row(ctx: Ctx, label: str, res: dict, on_gpu: bool) -> None:
    if "error" in res:
        ctx.row("memory", label, "failed")
        ctx.notes.append(f"memory {label}: {res['error']}")
        return
    if on_gpu:
        ctx.row("memory", f"{label}: GPU max allocated MB (load / explain b8)",
                f"{res['after_load']['cuda_max_allocated_mb']:,.0f} / "
                f"{res['after_explain']['cuda_max_allocated_mb']:,.0f}")
    else:
        peaks = [res[k]["rss_peak_mb"] for k in ("after_import", "after_load", "after_score", "after_explain")]
        ctx.row("memory", f"{label}: peak RSS MB (import / load / score b8 / explain b8)",
                " / ".join(f"{p:.0f}" for p in peaks))
    if res.get("model_footprint_mb") is not None:
        ctx.table[-1][3] = f"model {res['model_footprint_mb']:.1f} MB"


# ---- start-up and metadata --------------------------------------------------------------------------------

def startup_row(ctx: Ctx) -> None:
    fv, how = measure.fakevlm_argv()
    one = ctx.workdir / "one" / "photo.jpg"
    one.parent.mkdir(parents=True, exist_ok=True)
    one.write_bytes(benchfiles.MetadataFactory().data("camera.jpg", 1))
    runs = ctx.args.startup_runs
    ctx.log(f"startup: median of {runs} runs each")
    out = {"fakevlm": how, "runs": runs,
           "python -c pass": measure.time_command([sys.executable, "-c", "pass"], runs),
           "fakevlm --help": measure.time_command([*fv, "--help"], runs),
           "fakevlm scan FILE --no-model": measure.time_command([*fv, "scan", str(one), "--no-model"], runs)}
    tool = measure.exiftool_path()
    if tool:
        out["exiftool -json FILE"] = measure.time_command([tool, "-json", str(one)], runs)
        out["exiftool_version"] = measure.exiftool_version(tool)
    else:
        ctx.notes.append(NO_EXIFTOOL.format("its start-up row is skipped"))
    ctx.results["startup"] = out
    ex = out.get("exiftool -json FILE", {}).get("median_s")
    ctx.row("startup", "python -c pass (interpreter floor), s", out["python -c pass"]["median_s"])
    help_s = out["fakevlm --help"]["median_s"]
    ctx.row("startup", "fakevlm --help, s", help_s, "", "", TARGETS["help_seconds"]["text"],
            ctx.target("help_seconds", help_s))
    scan_s = out["fakevlm scan FILE --no-model"]["median_s"]
    ctx.row("startup", "fakevlm scan FILE --no-model vs exiftool -json FILE, s", scan_s,
            ex if ex else "skipped", (ex / scan_s) if ex else "-")


def metadata_row(ctx: Ctx) -> None:
    n, runs = ctx.args.n_files, ctx.args.metadata_runs
    folder = ctx.workdir / "meta"
    ctx.log(f"metadata: generating {n} files (EXIF JPEG, XMP JPEG, A1111 PNG, ComfyUI PNG)")
    made = benchfiles.make_metadata_folder(folder, n)
    fv, _ = measure.fakevlm_argv()
    jsonl = ctx.workdir / "scan.jsonl"
    ctx.log(f"metadata: fakevlm scan --no-model vs exiftool -json -r, median of {runs}")
    ours = measure.time_command([*fv, "scan", str(folder), "--no-model", "-q", "--format", "jsonl", "-o", str(jsonl)],
                                runs)
    ours["files_per_s"] = n / ours["median_s"]
    ours["records"] = sum(1 for _ in jsonl.open("rb")) if jsonl.exists() else 0
    out = {"folder": made, "fakevlm": ours, "ratio": None}
    tool = measure.exiftool_path()
    if tool:
        ex = measure.time_command([tool, "-json", "-r", str(folder)], runs)
        ex["files_per_s"] = n / ex["median_s"]
        ex["version"] = measure.exiftool_version(tool)
        out["exiftool"] = ex
        out["ratio"] = ours["files_per_s"] / ex["files_per_s"]
    else:
        ctx.notes.append(NO_EXIFTOOL.format("the metadata comparison row is skipped"))
    ctx.results["metadata"] = out
    if ours["records"] != n:
        ctx.notes.append(f"metadata: scan wrote {ours['records']} records for {n} files")
    ctx.row("metadata", f"scan --no-model files/s ({n} files, {made['bytes'] / 2**20:.0f} MB)",
            ours["files_per_s"], out["exiftool"]["files_per_s"] if tool else "skipped",
            out["ratio"] if tool else "-", TARGETS["metadata_ratio"]["text"],
            ctx.target("metadata_ratio", out["ratio"]) if tool else "n/a")
