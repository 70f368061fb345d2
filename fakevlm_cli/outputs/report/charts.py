"""The report's charts as numbers for its template (inline SVG drawn by Jinja2, text autoescaped): the P(fake)
histogram, and for eval predictions the ROC curve, the confusion matrix and a per-category table, computed by
the same metrics as `fakevlm eval` (datasets/metrics.py)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fakevlm_cli.datasets.metrics import VERDICTS, Prediction, classification, operating_points, reliability, roc_auc

BINS = 20
COLOURS = {"fake": "#c62828", "real": "#2e7d32", "unknown": "#b26a00", "error": "#6a1b9a"}


def _fmt(value: float | None, digits: int = 3) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def histogram(scores: Sequence[tuple[float, str]], threshold: float | None, *, width: int = 340,
              height: int = 150) -> dict[str, Any]:
    """Bars of P(fake) in 20 bins of 5 %, stacked by final verdict."""
    left, right, top, bottom = 6, width - 6, 16, height - 20
    counts = [dict.fromkeys(COLOURS, 0) for _ in range(BINS)]
    for p, verdict in scores:
        counts[min(BINS - 1, int(p * BINS))][verdict if verdict in COLOURS else "unknown"] += 1
    peak = max((sum(c.values()) for c in counts), default=0)
    step = (right - left) / BINS
    bars = []
    for i, count in enumerate(counts):
        y = float(bottom)
        for verdict in ("real", "unknown", "error", "fake"):
            n = count[verdict]
            if not n:
                continue
            h = (bottom - top) * n / peak
            y -= h
            bars.append({"x": round(left + i * step + 1, 2), "y": round(y, 2), "w": round(step - 2, 2),
                         "h": round(h, 2), "verdict": verdict, "fill": COLOURS[verdict],
                         "title": f"{n} {verdict}, P(fake) {i * 5}–{(i + 1) * 5}%"})
    return {"width": width, "height": height, "left": left, "right": right, "top": top, "bottom": bottom,
            "bars": bars, "peak": peak,
            "threshold": None if threshold is None else round(left + threshold * (right - left), 2),
            "threshold_text": "" if threshold is None else f"{threshold:.0%}"}


def roc_points(truths: Sequence[tuple[bool, float]], *, most: int = 300) -> list[tuple[float, float]]:
    """(false positive rate, true positive rate) as the threshold falls past each distinct score."""
    positives = sum(1 for is_fake, _ in truths if is_fake)
    negatives = len(truths) - positives
    if not positives or not negatives:
        return []
    points, tp, fp = [(0.0, 0.0)], 0, 0
    ordered = sorted(truths, key=lambda t: -t[1])
    for i, (is_fake, score) in enumerate(ordered):
        tp += is_fake
        fp += not is_fake
        if i + 1 == len(ordered) or ordered[i + 1][1] != score:
            points.append((fp / negatives, tp / positives))
    if len(points) > most:
        stride = len(points) / most
        points = [points[int(k * stride)] for k in range(most)] + [points[-1]]
    return points


def evaluation_panels(truths: Sequence[tuple[str, str, float | None, str]]) -> dict[str, Any] | None:
    """ROC, confusion matrix and per-category table of eval predictions (label, verdict, p_fake, category);
    None when no record carries a label."""
    if not truths:
        return None
    preds = [Prediction(label=label, verdict=verdict, p_fake=p, category=category)
             for label, verdict, p, category in truths]
    overall = classification(preds)
    scored = [(pred.label == "fake", pred.p_fake) for pred in preds if pred.p_fake is not None]
    size, pad = 220, 18
    inner = size - 2 * pad
    points = roc_points(scored)
    roc = None
    if points:
        roc = {"size": size, "pad": pad, "inner": inner, "auc": _fmt(overall["roc_auc_fake_positive"]),
               "points": " ".join(f"{pad + x * inner:.1f},{pad + (1 - y) * inner:.1f}" for x, y in points)}
    matrix = overall["confusion"]["matrix"]
    confusion = [{"truth": truth, "cells": [{"n": n, "cls": "hit" if truth == verdict and n else
                                             ("miss" if n else "")} for verdict, n in zip(VERDICTS, row, strict=True)]}
                 for truth, row in zip(("real", "fake"), matrix, strict=True)]
    categories = []
    for name in sorted({pred.category for pred in preds}):
        group = [pred for pred in preds if pred.category == name]
        block = classification(group)
        auc = roc_auc([p.label == "fake" for p in group if p.p_fake is not None],
                      [p.p_fake for p in group if p.p_fake is not None])
        categories.append({"name": name, "n": len(group), "accuracy": _fmt(block["accuracy"]), "auc": _fmt(auc)})
    return {"roc": roc, "operating": _operating(scored), "reliability": _reliability(scored),
            "confusion": confusion, "categories": categories, "n": len(preds),
            "accuracy": _fmt(overall["accuracy"]), "f1": _fmt(overall["f1_real_positive"])}


def _operating(scored: Sequence[tuple[bool, float]]) -> dict[str, Any] | None:
    """TPR at 1 % and 5 % FPR and the EER of "fake if P(fake) >= t", as `fakevlm eval` reports them."""
    if not scored:
        return None
    points = operating_points([f for f, _ in scored], [p for _, p in scored])
    rows = []
    for target, row in points["tpr_at_fpr"].items():
        name = f"TPR at FPR ≤ {float(target):.0%}"
        if row is None:
            rows.append({"name": name, "value": "—", "detail": "needs real and fake truths"})
        else:
            at = "no threshold that low" if row["threshold"] is None else f"threshold {row['threshold']:.4g}"
            rows.append({"name": name, "value": _fmt(row["tpr"]), "detail": f"{at}, FPR {row['fpr']:.3f}"})
    eer = points["eer"]
    rows.append({"name": "EER", "value": _fmt(eer),
                 "detail": "" if eer is None else f"threshold {points['eer_threshold']:.4g}"})
    return {"rows": rows, "n_real": points["n_real"], "n_fake": points["n_fake"]}


def _reliability(scored: Sequence[tuple[bool, float]], *, size: int = 220, pad: int = 18) -> dict[str, Any] | None:
    """The reliability diagram (fraction fake against mean P(fake), 10 bins) and the ECE."""
    if not scored:
        return None
    ece, diagram = reliability([f for f, _ in scored], [p for _, p in scored])
    inner = size - 2 * pad
    step = inner / len(diagram)
    bars = []
    for k, row in enumerate(diagram):
        if not row["n"]:
            continue
        h = inner * row["fraction_fake"]
        bars.append({"x": round(pad + k * step + 1, 2), "y": round(pad + inner - h, 2), "w": round(step - 2, 2),
                     "h": round(h, 2), "cx": round(pad + row["mean_p_fake"] * inner, 2),
                     "cy": round(pad + (1 - row["fraction_fake"]) * inner, 2),
                     "title": f"P(fake) {row['lo']:.0%}–{row['hi']:.0%}: {row['n']} predictions, mean P(fake) "
                              f"{row['mean_p_fake']:.3f}, fraction fake {row['fraction_fake']:.3f}"})
    return {"size": size, "pad": pad, "inner": inner, "bars": bars, "ece": _fmt(ece)}
