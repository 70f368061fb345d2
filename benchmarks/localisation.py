"""Faithfulness of the relevance-map methods on the toy FakeVLM (issue #12): docs/localisation.md's numbers.

    python benchmarks/localisation.py                 # 64 fresh toy fakes, every patch a step (~3 min on 2 cores)
    python benchmarks/localisation.py --fakes 16      # a quicker look

For each method (relevance.METHODS, plus plain gradient × input, which is measured but not offered) and for a
random order (the baseline, three permutations per image), on fresh toy fakes whose artifact box is known:

* deletion and insertion curves (Petsiuk et al., RISE, 2018): P(fake) as the patches are replaced by the
  blurred image (deletion) or put back into it (insertion) in the map's order, one patch a step; the area
  under each curve (lower is better for deletion, higher for insertion);
* the pointing game (the map's maximum inside the artifact box, half a cell of tolerance) and the share of the
  map's positive mass inside the box, beside the centre-prior baseline;
* seconds per image on this machine's CPU.

Prints markdown tables and writes every number to benchmarks/results/localisation-<date>.json (or --out).
Nothing here is asserted: tests/test_localisation.py asserts behaviour, this script measures.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import platform
import statistics
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `fakevlm_cli` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fakevlm_cli.model import localise, relevance
from fakevlm_cli.testing import toy

SEED_BASE = toy.FRESH_SEEDS + 30_000  # fresh images no test uses
RESULTS_DIR = Path(__file__).resolve().parent / "results"


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fakes", type=int, default=64, help="fresh toy fakes to measure on")
    parser.add_argument("--random-orders", type=int, default=3, help="random permutations per image")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--out", type=Path, help="JSON results file")
    return parser.parse_args(argv)


def _maps(engine, method: str, pixels, answers) -> tuple[list, float]:
    start = time.perf_counter()
    if method == "gradient-x-input":
        grids = [relevance.gradient(engine, pixel[None], answer.prefix, relative=False)[0]
                 for pixel, answer in zip(pixels, answers, strict=True)]
    else:
        grids = engine.relevance(pixels, answers, method, chunk=32)
    return grids, (time.perf_counter() - start) / len(pixels)


def _order(grid) -> list[int]:
    import numpy as np

    return [int(i) for i in np.argsort(-np.asarray(grid).reshape(-1), kind="stable")]


def measure(engine, toys, pixels, answers, method: str, args) -> dict:
    import numpy as np

    geo = relevance.geometry(engine.model)
    steps = geo.grid * geo.grid
    crop = (0.0, 0.0, float(toy.IMAGE_SIZE), float(toy.IMAGE_SIZE))
    rng = np.random.default_rng(0)
    if method in ("random", "centre prior"):
        grids, seconds = None, 0.0
    else:
        grids, seconds = _maps(engine, method, pixels, answers)
    deletion, insertion, hits, energy = [], [], [], []
    for i, (item, pixel, answer) in enumerate(zip(toys, pixels, answers, strict=True)):
        box = [item.box]
        if method == "random":
            orders = [[int(k) for k in rng.permutation(steps)] for _ in range(args.random_orders)]
        elif method == "centre prior":
            prior = localise.centre_prior((geo.grid, geo.grid))
            hits.append(localise.pointing_hit(prior, crop, box))
            energy.append(localise.energy_inside(prior, crop, box))
            continue
        else:
            grid = grids[i]
            orders = [_order(grid)]
            hits.append(localise.pointing_hit(grid, crop, box))
            energy.append(localise.energy_inside(grid, crop, box))
        for order in orders:
            d, n = relevance.curves(engine, pixel, answer.prefix, order, steps=steps, chunk=64)
            deletion.append(relevance.area(d))
            insertion.append(relevance.area(n))

    def mean(xs):
        xs = [x for x in xs if x is not None]
        return round(statistics.fmean(xs), 4) if xs else None

    def sem(xs):
        xs = [x for x in xs if x is not None]
        return round(statistics.stdev(xs) / len(xs) ** 0.5, 4) if len(xs) > 1 else None

    return {"method": method, "per_image": {"deletion": [round(x, 5) for x in deletion],
                                            "insertion": [round(x, 5) for x in insertion]},
            "deletion_auc": mean(deletion), "deletion_sem": sem(deletion),
            "insertion_auc": mean(insertion), "insertion_sem": sem(insertion),
            "pointing_game": mean(hits), "energy_in_box": mean(energy),
            "seconds_per_image": round(seconds, 4) if grids is not None else None}


def paired(rows: list[dict], draws: int = 4000) -> dict:
    """The method with the lowest deletion AUC against each other offered method, image by image: the mean
    difference (best minus other; negative deletion and positive insertion favour the best), a 95% bootstrap
    interval, and on how many images the best is better."""
    import numpy as np

    offered = [r for r in rows if r["method"] in relevance.METHODS]
    best = min(offered, key=lambda r: r["deletion_auc"])
    rng = np.random.default_rng(0)
    against = {}
    for other in offered:
        if other is best:
            continue
        stats: dict = {"n": len(best["per_image"]["deletion"])}
        for curve, sign in (("deletion", -1), ("insertion", 1)):
            diff = np.asarray(best["per_image"][curve]) - np.asarray(other["per_image"][curve])
            boots = [diff[rng.integers(0, diff.size, diff.size)].mean() for _ in range(draws)]
            low, high = np.percentile(boots, [2.5, 97.5])
            stats[curve] = {"mean": round(float(diff.mean()), 4), "ci95": [round(float(low), 4), round(float(high), 4)],
                            "better": int((sign * diff > 0).sum())}
        against[other["method"]] = stats
    return {"best": best["method"], "against": against}


def _cell(row: dict, key: str, sem: str | None = None) -> str:
    value = row.get(key)
    if value is None:
        return "—"
    return f"{value:.3f} ± {row[sem]:.3f}" if sem and row.get(sem) is not None else f"{value:.3f}"


def main(argv=None) -> int:
    args = parse_args(argv)
    import torch

    from fakevlm_cli.core.options import EngineOptions
    from fakevlm_cli.model.engine import Engine

    threads = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    try:
        engine = Engine.load(EngineOptions(model=str(toy.cached_toy_fakevlm()), device="cpu", dtype="float32"))
        return _measure_all(engine, args)
    finally:
        torch.set_num_threads(threads)


def _measure_all(engine, args) -> int:
    import torch

    toys = [toy.toy_image(SEED_BASE + i, True) for i in range(args.fakes)]
    pixels = [engine.preprocess(t.image) for t in toys]
    answers = engine.verdicts(pixels)
    kept = [i for i, a in enumerate(answers) if a.p_fake is not None and a.p_fake >= 0.5]
    toys, pixels, answers = [toys[i] for i in kept], [pixels[i] for i in kept], [answers[i] for i in kept]
    rows = [measure(engine, toys, pixels, answers, method, args)
            for method in (*relevance.METHODS, "gradient-x-input", "random", "centre prior")]
    doc = {"date": _dt.date.today().isoformat(), "machine": platform.processor() or platform.machine(),
           "python": platform.python_version(), "torch": torch.__version__, "fakes": args.fakes,
           "judged_fake": len(kept), "steps": "one patch per step (81)", "random_orders": args.random_orders,
           "rows": rows}
    print(f"{len(kept)} of {args.fakes} fresh toy fakes judged fake (P(fake) >= 0.5)\n")
    print("| method | deletion AUC ↓ | insertion AUC ↑ | pointing game | energy in box | s / image |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['method']} | {_cell(row, 'deletion_auc', 'deletion_sem')} "
              f"| {_cell(row, 'insertion_auc', 'insertion_sem')} | {_cell(row, 'pointing_game')} "
              f"| {_cell(row, 'energy_in_box')} | {_cell(row, 'seconds_per_image')} |")
    doc["paired"] = paired(rows)
    best = doc["paired"]["best"]
    print(f"\npaired against {best} (mean difference per image, 95% bootstrap interval; images where {best} is "
          "better):")
    for other, stats in doc["paired"]["against"].items():
        print(f"- {other}: deletion {stats['deletion']['mean']:+.4f} {stats['deletion']['ci95']} "
              f"({stats['deletion']['better']}/{stats['n']}), insertion {stats['insertion']['mean']:+.4f} "
              f"{stats['insertion']['ci95']} ({stats['insertion']['better']}/{stats['n']})")
    out = args.out or RESULTS_DIR / f"localisation-{doc['date']}.json"
    out.write_text(json.dumps(doc, indent=1) + "\n")
    print(f"\nwritten: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
