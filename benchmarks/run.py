"""fakevlm benchmarks (issues #5 and #11): our paths against the upstream loop and the previous code.

    python benchmarks/run.py                         # tiny random LLaVA at LLaVA-1.5 geometry, on the CPU
    python benchmarks/run.py --quick                 # smoke run, small counts (~2 min on 2 cores)
    python benchmarks/run.py --arch llava-1.5-7b     # full-size architecture, random weights, on a GPU

Method. Every comparison is measured in paired rounds: each round runs every side once, back to back, in
rotating order, and a ratio is the median of the per-round throughput ratios, printed with its spread
(min-max over rounds); CPU seconds are recorded beside wall seconds. On a shared machine, load that comes and
goes then lands on both sides of each ratio. The model is the tiny random LLaVA at LLaVA-1.5's geometry (336 px,
576 image tokens, the real prompt's length), so padding and prompt length weigh what they weigh on the real
model; it proves relative cost, not full-size speed. Rows (``--skip`` takes a comma-separated subset):

* ``score``    `Engine.score` at batch 8 and 32 against the upstream loop (1,599 padded positions, batch 16,
               256 new tokens) and against the same loop generating one new token.
* ``explain``  `Engine.explain` (256 new tokens) at batch 8 and 16 against the upstream loop; its text checked
               against plain `generate`; decode step time per batch size.
* ``scan``     a real scan (`run.predict`, CLI defaults) of a mixed folder (1 in 8 at 12 MP) in fresh
               processes, this code against the previous code (``--baseline-rev``) and with --fast-decode;
               P(fake) compared file by file; loader capacity by stage; model capacity alone; the pixel
               difference --fast-decode makes.
* ``memory``   peak memory per dtype / quantisation, each in a fresh subprocess (`benchmarks.memchild`).
* ``startup``  `fakevlm --help`, `fakevlm scan FILE --no-model`, `exiftool -json FILE`: median wall time.
* ``metadata`` `fakevlm scan DIR --no-model` (the real CLI, JSONL to a temp file) vs `exiftool -json -r DIR`.

Targets are printed beside the figures, never asserted. Results: a table on stdout and a JSON file under
benchmarks/results/ (or --out) with every round, the machine, load averages, versions and the commit.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import shlex
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `benchmarks` and `fakevlm_cli` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import measure
from benchmarks.baseline import UPSTREAM_MAX_NEW_TOKENS
from benchmarks.context import IMAGE_SIZE, Ctx, make_images, torch_num_threads
from benchmarks.rows_model import explain_row, score_row
from benchmarks.rows_scan import scan_row
from benchmarks.rows_system import memory_row, metadata_row, startup_row

ROWS = {"score": score_row, "explain": explain_row, "scan": scan_row, "memory": memory_row,
        "startup": startup_row, "metadata": metadata_row}
MODEL_ROWS = ("score", "explain", "scan", "memory")
RESULTS_DIR = Path(__file__).resolve().parent / "results"

DEFAULTS = {
    "full": {"images": 64, "explain_images": 16, "baseline_images": 16, "scan_images": 160, "n_files": 2000,
             "repeats": 3, "scan_rounds": 3, "startup_runs": 7, "metadata_runs": 3},
    "quick": {"images": 16, "explain_images": 8, "baseline_images": 4, "scan_images": 16, "n_files": 40,
              "repeats": 1, "scan_rounds": 1, "startup_runs": 3, "metadata_runs": 1},
}

# What became of the changes these benchmarks proposed; written into every JSON so a reader of an old and a
# new result file knows why a variant row appeared or went.
EXPERIMENTS = {
    "pre-resize before processor": {"status": "adopted", "commit": "e959022", "where": "Engine.preprocess"},
    "model threads = cores left by the loaders (CPU)": {"status": "adopted", "commit": "2ee3c67",
                                                        "where": "Engine.sharing_cpu"},
    "pixel values by lookup table, bit-identical": {"status": "adopted", "commit": "2ee3c67",
                                                    "where": "pixels.FastPixels"},
    "EXIF orientation in place": {"status": "adopted", "commit": "2ee3c67", "where": "images.load_image"},
    "static KV cache for explanations": {"status": "adopted", "where": "Engine._generate"},
    "jpeg draft decode": {"status": "opt-in (--fast-decode)", "commit": "a426e62",
                          "note": "changes the pixels the model sees; off until its FakeClue accuracy is measured"},
}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="benchmarks/run.py", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--arch", choices=("tiny", "llava-1.5-7b"), default="tiny",
                   help="tiny random LLaVA (CPU-friendly) or the full LLaVA-1.5-7B architecture, random weights")
    p.add_argument("--device", default="auto", help="auto (cuda if present, else cpu), cpu, cuda, cuda:N")
    p.add_argument("--dtype", default="auto",
                   help="auto = float32 on CPU, bfloat16 on GPU (float16 where unsupported), as fakevlm")
    p.add_argument("--images", type=int, default=None, help="images for our score path (default 128; quick 16)")
    p.add_argument("--explain-images", type=int, default=None, help="images for our explain path (default 32)")
    p.add_argument("--baseline-images", type=int, default=None,
                   help="images for the upstream loop (default 32 = two batches of 16; quick 4)")
    p.add_argument("--scan-images", type=int, default=None, help="JPEGs in the scan folder (default 160)")
    p.add_argument("--n-files", type=int, default=None, help="files in the metadata folder (default 2000)")
    p.add_argument("--repeats", type=int, default=None, help="paired rounds of the score/explain rows (default 3)")
    p.add_argument("--skip", default="", help=f"comma-separated rows to skip: {','.join(ROWS)}")
    p.add_argument("--quick", action="store_true", help="small counts: a smoke run of every row")
    p.add_argument("--scan-rounds", type=int, default=None, help="paired rounds of the scan row (default 3)")
    p.add_argument("--baseline-rev", default=None,
                   help="git revision of the previous code for the scan row (default: the code before #11's work)")
    p.add_argument("--max-new-tokens", type=int, default=UPSTREAM_MAX_NEW_TOKENS,
                   help="explain and baseline generation length (256, the upstream setting; lower only for "
                        "plumbing checks - the ratios are then not the issue's)")
    p.add_argument("--out", type=Path, default=None,
                   help="JSON file (default benchmarks/results/<machine>-<YYYY-MM-DD>.json)")
    p.add_argument("--no-json", action="store_true", help="do not write the JSON file")
    p.add_argument("--json-only", action="store_true", help="no progress lines on stderr")
    p.add_argument("--shrink", action="store_true", help=argparse.SUPPRESS)  # 2-layer 7B: plumbing tests only
    args = p.parse_args(argv)
    defaults = DEFAULTS["quick" if args.quick else "full"]
    for key, value in defaults.items():
        if getattr(args, key, None) is None:
            setattr(args, key, value)
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    unknown = skip - set(ROWS)
    if unknown:
        p.error(f"unknown row(s) in --skip: {', '.join(sorted(unknown))} (rows: {', '.join(ROWS)})")
    args.skip_set = skip
    if args.baseline_rev is None:
        from benchmarks.rows_scan import PREVIOUS

        args.baseline_rev = PREVIOUS
    return args


def render_table(table: list) -> str:
    header = ["row", "measure", "ours", "baseline/ref", "ratio", "target", "status"]
    rows = [header] + [[str(c) for c in r] for r in table]
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    align = ["<", "<", ">", ">", ">", "<", "<"]
    lines = []
    for k, r in enumerate(rows):
        lines.append("  ".join(f"{c:{a}{w}}" for c, a, w in zip(r, align, widths, strict=True)).rstrip())
        if k == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def main(argv=None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    from benchmarks import models

    models.quiet()
    device = models.pick_device(args.device)
    ctx = Ctx(args=args, workdir=Path(tempfile.mkdtemp(prefix="fakevlm-bench-")), device=device,
              dtype=models.pick_dtype(args.dtype, device))
    rows = [r for r in ROWS if r not in args.skip_set]
    need_model = any(r in rows for r in MODEL_ROWS)
    load = {"start": measure.loadavg()}
    try:
        if need_model:
            _build_model(ctx, rows)
        _run_rows(ctx, rows, load)
    finally:
        shutil.rmtree(ctx.workdir, ignore_errors=True)
    report = build_report(ctx, argv, rows, load, time.perf_counter() - started,
                          torch_num_threads() if need_model else None)
    print_report(report, ctx)
    if not args.no_json:
        print(f"results: {write_report(report, args)}")
    return 0


def _build_model(ctx: Ctx, rows: list) -> None:
    from benchmarks import models

    args = ctx.args
    ctx.log(f"building {args.arch} on {ctx.device} ({ctx.dtype})")
    ctx.built = models.build(args.arch, ctx.device, ctx.dtype, ctx.workdir, shrink=args.shrink,
                             max_new_tokens=args.max_new_tokens)
    ctx.results["model"] = {"arch": args.arch, "params": ctx.built.params, "build_seconds": ctx.built.seconds,
                            "note": ctx.built.note, "engine_dtype": str(ctx.engine.dtype),
                            "image_tokens": int(ctx.engine.model.config.image_seq_length),
                            "prompt_tokens": len(ctx.engine.prompt_ids)}
    if any(r in rows for r in ("score", "explain")):
        ctx.images = make_images(max(args.images, args.explain_images, args.baseline_images))


def _run_rows(ctx: Ctx, rows: list, load: dict) -> None:
    for name in rows:
        t = time.perf_counter()
        try:
            ROWS[name](ctx)
        except Exception as exc:  # noqa: BLE001 - one failed row must not lose the others
            ctx.notes.append(f"{name}: FAILED: {type(exc).__name__}: {exc}")
            ctx.results[name] = {"error": traceback.format_exc()}
            ctx.row(name, "FAILED", f"{type(exc).__name__}: {exc}"[:60])
        load[name] = measure.loadavg()
        ctx.results.setdefault("row_seconds", {})[name] = time.perf_counter() - t


def build_report(ctx: Ctx, argv, rows: list, load: dict, total: float, torch_threads: int | None) -> dict:
    a = ctx.args
    return {
        "schema": 3,  # 3: paired rounds (per-round ratios with their spread), scan against the previous code
        "created": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "command": shlex.join([sys.executable, *sys.argv]) if argv is None else shlex.join(["run.py", *argv]),
        "machine": measure.machine(ctx.device),
        "versions": measure.versions(),
        "config": {"arch": a.arch, "device": ctx.device, "dtype": ctx.dtype, "rows": rows, "quick": a.quick,
                   "images": a.images, "explain_images": a.explain_images, "baseline_images": a.baseline_images,
                   "scan_images": a.scan_images, "n_files": a.n_files, "repeats": a.repeats,
                   "startup_runs": a.startup_runs, "metadata_runs": a.metadata_runs, "image_size": list(IMAGE_SIZE),
                   "scan_rounds": a.scan_rounds, "baseline_rev": a.baseline_rev, "max_new_tokens": a.max_new_tokens,
                   "torch_threads": torch_threads},
        "experiments": EXPERIMENTS,
        "results": ctx.results,
        "targets": ctx.targets,
        "table": [dict(zip(["row", "measure", "ours", "baseline", "ratio", "target", "status"], r, strict=True))
                  for r in ctx.table],
        "notes": ctx.notes,
        "loadavg": load,
        "total_seconds": total,
    }


def print_report(report: dict, ctx: Ctx) -> None:
    mach = report["machine"]
    print(f"fakevlm benchmarks - {mach['slug']} ({mach['cpu']}{', ' + mach['gpu'] if mach.get('gpu') else ''}), "
          f"arch {ctx.args.arch}, {ctx.device}, {ctx.dtype}")
    print(render_table(ctx.table))
    for note in ctx.notes:
        print(f"note: {note}")
    summary = ", ".join(f"{t['target']} {t['status']}" for t in ctx.targets)
    if summary:
        print(f"targets: {summary}")
    print(f"total {report['total_seconds']:.0f} s; load average {report['loadavg'].get('start')} -> "
          f"{measure.loadavg()}")


def write_report(report: dict, args: argparse.Namespace) -> Path:
    out = args.out
    if out is None:
        suffix = "" if args.arch == "tiny" else f"-{args.arch}"
        stamp = _dt.date.today().isoformat()
        out = RESULTS_DIR / f"{report['machine']['slug']}{suffix}{'-quick' if args.quick else ''}-{stamp}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2, default=str) + "\n")
    return out


if __name__ == "__main__":
    sys.exit(main())
