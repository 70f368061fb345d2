"""The ``scan`` row: a real scan of a mixed folder, this code against the previous code, side by side.

* **throughput**: `benchmarks/scanchild.py` scans a folder of camera JPEGs (1 in 8 at 12 MP, the rest
  1024x768) in a fresh process with the CLI's default options, once with this checkout and once with the
  previous code (``--baseline-rev``, checked out beside it with `git worktree`), in paired rounds; the
  speed-up is the median of per-round ratios. The P(fake) of every file is compared between the two.
  ``--fast-decode`` runs as a third side.
* **loader capacity**: what one loader thread does per file, stage by stage (read + hash, metadata, decode,
  orientation and RGB, resize, pixel values), in ms, and the files/s one thread can feed.
* **model capacity**: images/s of the model alone on ready pixel values (batch 8), at 1 torch thread and at
  torch's default: what the loaders would have to keep up with.
* **fast decode**: how far ``--fast-decode``'s pixel values are from a full decode (max and mean, in the
  model's normalised units).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks import files as benchfiles
from benchmarks import measure
from benchmarks.context import TARGETS, Ctx

# The code before issue #11's CPU-scan work (model threads, in-place orientation, lookup-table pixels).
PREVIOUS = "1eed13e"


def scan_row(ctx: Ctx) -> None:
    a = ctx.args
    folder = ctx.workdir / "photos"
    ctx.log(f"scan: generating {a.scan_images} JPEGs (1 in 8 at 4000x3000, the rest 1024x768)")
    made = benchfiles.make_photo_folder(folder, a.scan_images, large_every=8)
    out = {"folder": made}
    out["throughput"] = _throughput(ctx, folder)
    out["loader"] = _loader_stages(ctx, folder)
    out["model"] = _model_capacity(ctx)
    out["fast_decode_pixels"] = _fast_decode_difference(ctx, folder)
    # Every file costs one loader pass and one model share, on the same cores: the most a scan could do here.
    cores = os.cpu_count() or 1
    per_file_s = 1 / out["loader"]["files_per_s_one_thread"] + 1 / out["model"]["threads_1"]
    out["ceiling_files_per_s"] = cores / per_file_s
    ctx.row("scan", f"ceiling: {cores} cores all busy with loader + model work, files/s", out["ceiling_files_per_s"])
    ctx.results["scan"] = out


def _throughput(ctx: Ctx, folder: Path) -> dict:
    a = ctx.args
    checkpoint = ctx.built.checkpoint
    previous = _previous_tree(ctx, a.baseline_rev)
    sides, outputs = {}, {}
    trees = {"previous": previous, "ours": measure.REPO, "ours --fast-decode": measure.REPO}
    for name, tree in trees.items():
        if tree is None:
            continue
        outputs[name] = ctx.workdir / f"p_fake-{name.replace(' ', '')}.json"
        spec = {"checkpoint": str(checkpoint), "folder": str(folder), "out": str(outputs[name]),
                "options": {"fast_decode": True} if "fast" in name else {}}
        sides[name] = lambda tree=tree, spec=spec: _child(tree, spec)
    ctx.log(f"scan: {a.scan_rounds} paired rounds of {', '.join(sides)}")
    rounds = measure.paired_rounds(sides, a.scan_rounds, log=ctx.log)
    result: dict = {"rounds": rounds, "baseline_rev": a.baseline_rev if previous else None}
    result["ours"] = measure.rate(rounds, "ours")
    ctx.row("scan", f"scan with the model, images/s ({a.scan_images} files, defaults)", result["ours"]["median"])
    if previous is not None:
        result["previous"] = measure.rate(rounds, "previous")
        result["speedup"] = measure.ratio(rounds, "ours", "previous")
        result["p_fake_vs_previous"] = _compare(outputs["previous"], outputs["ours"])
        ctx.row("scan", f"vs the previous code ({a.baseline_rev}), images/s", result["ours"]["median"],
                result["previous"]["median"], _spread(result["speedup"]), TARGETS["scan_speedup"]["text"],
                ctx.target("scan_speedup", result["speedup"]["median"]))
        result["cpu_saving"] = measure.cpu_ratio(rounds, "ours", "previous")
        ctx.row("scan", "CPU ms per file, ours vs the previous code (previous / ours)",
                f"{result['ours']['cpu_ms_per_item']:.1f}", f"{result['previous']['cpu_ms_per_item']:.1f}",
                _spread(result["cpu_saving"]))
        same = result["p_fake_vs_previous"]
        ctx.row("scan", "P(fake) equal to the previous code's (files; largest difference)",
                f"{same['equal']}/{same['n']}; {same['max_abs_diff']:.1e}")
        shutil.rmtree(previous, ignore_errors=True)
        subprocess.run(["git", "-C", str(measure.REPO), "worktree", "prune"], capture_output=True, check=False)
    result["fast"] = measure.rate(rounds, "ours --fast-decode")
    result["fast_speedup"] = measure.ratio(rounds, "ours --fast-decode", "ours")
    ctx.row("scan", "with --fast-decode, images/s (vs defaults)", result["fast"]["median"], result["ours"]["median"],
            _spread(result["fast_speedup"]))
    return result


def _child(tree: Path, spec: dict) -> dict:
    env = {**os.environ, "PYTHONPATH": str(tree), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, str(measure.REPO / "benchmarks" / "scanchild.py"), json.dumps(spec)],
                          capture_output=True, text=True, env=env, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"scan child failed ({tree}): {proc.stderr[-800:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _previous_tree(ctx: Ctx, rev: str | None) -> Path | None:
    """The previous code checked out beside this one (a detached git worktree), or None without git/rev."""
    if not rev:
        return None
    target = Path(tempfile.mkdtemp(prefix="fakevlm-previous-")) / "tree"
    proc = subprocess.run(["git", "-C", str(measure.REPO), "worktree", "add", "--detach", str(target), rev],
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        ctx.notes.append(f"scan: no previous code to compare with ({rev}): {proc.stderr.strip()[:200]}")
        return None
    return target


def _compare(a: Path, b: Path) -> dict:
    first, second = json.loads(a.read_text()), json.loads(b.read_text())
    diffs = [abs(first[k] - second[k]) for k in first if first[k] is not None and second.get(k) is not None]
    return {"n": len(first), "equal": sum(d == 0 for d in diffs), "max_abs_diff": max(diffs, default=0.0)}


def _spread(r: dict) -> str:
    return f"{r['median']:.2f}x ({r['min']:.2f}-{r['max']:.2f})"


def _loader_stages(ctx: Ctx, folder: Path) -> dict:
    """Median ms per stage for one big and one normal file, and the files/s one loader thread sustains.

    The capacity is measured, not summed: one thread runs the scan's own `Inspector.inspect` (read, hash,
    metadata, decode, orientation, resize, pixel values, record) over the first 16 files (1 in 8 big), and
    the stages only say where that time goes.
    """
    import hashlib
    import io
    import statistics

    from PIL import Image, ImageOps

    from fakevlm_cli.evidence import collect
    from fakevlm_cli.media.images import to_rgb

    engine = ctx.engine
    files = sorted(folder.glob("*.jpg"))
    picks = {"4000x3000": files[7], "1024x768": files[0]}
    out = {}
    for label, path in picks.items():
        data = path.read_bytes()

        def decode(data=data):
            im = Image.open(io.BytesIO(data))
            im.load()
            return im

        decoded = decode()
        upright = to_rgb(ImageOps.exif_transpose(decoded.copy()))  # the stages below must not change `decoded`
        resized = engine._resize_like_processor(upright)
        stages = {
            "read_and_hash": lambda path=path: hashlib.sha256(path.read_bytes()).hexdigest(),
            "metadata": lambda path=path, data=data: collect(path, data, "JPEG"),
            "decode": decode,
            # in place, as the loader does it: a picture that needs no turning is not copied
            "orient_rgb": lambda d=decoded: (ImageOps.exif_transpose(d, in_place=True), to_rgb(d)),
            "resize": lambda im=upright: engine._resize_like_processor(im),
            "pixel_values": lambda im=resized: engine.preprocess(im),
        }
        ms = {name: 1000 * statistics.median(measure.timed(fn)[0] for _ in range(5)) for name, fn in stages.items()}
        ms["total"] = sum(ms.values())
        out[label] = ms
        ctx.row("scan", f"loader, one thread, ms per {label} file (decode / resize / pixels)",
                f"{ms['total']:.1f} ({ms['decode']:.1f} / {ms['resize']:.1f} / {ms['pixel_values']:.1f})")
    out["stages_files_per_s"] = 8000 / (out["4000x3000"]["total"] + 7 * out["1024x768"]["total"])
    out["files_per_s_one_thread"] = _inspector_rate(engine, files[:16])
    ctx.row("scan", "loader capacity, files/s per thread (the scan's own loader pass, 1 in 8 big)",
            out["files_per_s_one_thread"])
    return out


def _inspector_rate(engine, files: list[Path]) -> float:
    """Files/s of the scan's own loader work (`Inspector.inspect`) on one thread: the median of 3 passes."""
    import statistics

    from fakevlm_cli.core.options import JudgeOptions
    from fakevlm_cli.media.discover import Candidate
    from fakevlm_cli.media.loader import Inspector

    inspector = Inspector(engine, JudgeOptions())

    def one_pass():
        for path in files:
            job = inspector.inspect(Candidate(path=path, explicit=True))
            if getattr(job, "pixel_error", None) or not getattr(job, "pixels", None):
                raise RuntimeError(f"loader benchmark: {path} gave no pixels")

    one_pass()  # warm: imports, lookup tables
    return len(files) / statistics.median(measure.timed(one_pass)[0] for _ in range(3))


def _model_capacity(ctx: Ctx) -> dict:
    import torch

    from benchmarks.rows_model import _forced

    engine = _forced(ctx.engine)
    pixels = [engine.preprocess(im) for im in (ctx.images or _some_images())[:8]]
    engine.verdicts(pixels)
    out = {}
    saved = torch.get_num_threads()
    for threads in sorted({1, saved}):
        torch.set_num_threads(threads)
        times = [measure.timed(lambda: engine.verdicts(pixels))[0] for _ in range(5)]
        out[f"threads_{threads}"] = len(pixels) / sorted(times)[len(times) // 2]
        ctx.row("scan", f"model capacity alone, images/s (batch 8, {threads} torch thread{'s' * (threads > 1)})",
                out[f"threads_{threads}"])
    torch.set_num_threads(saved)
    return out


def _some_images():
    from benchmarks.context import make_images

    return make_images(8)


def _fast_decode_difference(ctx: Ctx, folder: Path) -> dict:
    """--fast-decode against a full decode, on the big files: pixel values in normalised units."""
    from fakevlm_cli.media.images import load_image

    engine = ctx.engine
    big = sorted(folder.glob("*.jpg"))[7::8][:4]
    diffs = []
    for path in big:
        data = path.read_bytes()
        exact = engine.preprocess(load_image(data).image)
        fast = engine.preprocess(load_image(data, draft_short=engine.input_short_edge).image)
        diffs.append((fast - exact).abs())
    out = {"files": len(big), "max": max(float(d.max()) for d in diffs),
           "mean": sum(float(d.mean()) for d in diffs) / len(diffs)}
    ctx.row("scan", "--fast-decode pixel difference on 12 MP files (max / mean, normalised units)",
            f"{out['max']:.3f} / {out['mean']:.4f}")
    return out
