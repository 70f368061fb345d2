"""The FakeVLM paper's published figures, to print beside ours.

Source: Wen et al., "Spot the Fake: Large Multimodal Model-Based Synthetic Image Detection with Artifact
Explanation", arXiv 2503.14905: the FakeVLM row, and the best other model where the paper gives one, of its
FakeClue, LOKI and DD-VQA tables, its FF++ per-method AUC table and its DMimage table. All values are fractions
(the paper prints FF++ AUC and DMimage in percent: 97.2 is stored as 0.972), so they compare directly with
`metrics.evaluate`.
"""

from __future__ import annotations

from typing import Any

SOURCE = "FakeVLM, arXiv 2503.14905"

# paper metric -> where `metrics.evaluate` puts ours, inside a result block
_OURS = {"accuracy": ("accuracy",), "f1": ("f1_real_positive",), "rouge_l": ("text", "rouge_l_f"),
         "css": ("text", "css")}

FAKEVLM: dict[str, dict[str, float]] = {
    "fakeclue": {"accuracy": 0.986, "f1": 0.981, "rouge_l": 0.580, "css": 0.877},
    "loki": {"accuracy": 0.843, "f1": 0.837, "rouge_l": 0.201, "css": 0.582},
    "ddvqa": {"accuracy": 0.932, "f1": 0.931, "rouge_l": 0.704, "css": 0.866},
    "dmimage": {"accuracy": 0.940, "f1": 0.943},
}

# Context: the strongest non-FakeVLM row the paper reports on the same benchmark, chosen by accuracy.
BEST_OTHER_CRITERION = "best by accuracy"
BEST_OTHER: dict[str, tuple[str, dict[str, float]]] = {
    "fakeclue": ("Qwen2-VL-72B", {"accuracy": 0.578, "f1": 0.565, "rouge_l": 0.175, "css": 0.544}),
    "loki": ("GPT-4o", {"accuracy": 0.634, "f1": 0.572, "rouge_l": 0.147, "css": 0.354}),
}
# Other rows of the same tables that lead one metric where the best-by-accuracy row does not (only those known).
LEADERS: dict[str, dict[str, tuple[str, float]]] = {
    "fakeclue": {"f1": ("Qwen2-VL-7B", 0.592), "rouge_l": ("Qwen2-VL-7B", 0.266), "css": ("InternVL2-8B", 0.581)},
    "loki": {"rouge_l": ("InternVL2-40B", 0.184), "css": ("InternVL2-40B", 0.473)},
}
# The paper publishes neither its ROUGE-L implementation, nor which text it compares, nor its CSS embedding
# model: a difference there may be protocol, not a failure to reproduce.
PROTOCOL_UNKNOWN = frozenset({"rouge_l", "css"})
SUBSET_NOTE = "subset: not comparable"
PROTOCOL_NOTE = "protocol unknown"

# FF++ frame-level ROC-AUC per manipulation (fakes of one method against the real frames).
FFPP_AUC: dict[str, float] = {"Deepfakes": 0.972, "Face2Face": 0.960, "FaceSwap": 0.968,
                              "NeuralTextures": 0.950}
FFPP_AUC_AVERAGE = 0.963
_FFPP_ALIASES = {"df": "Deepfakes", "deepfakes": "Deepfakes", "f2f": "Face2Face", "face2face": "Face2Face",
                 "fs": "FaceSwap", "faceswap": "FaceSwap", "nt": "NeuralTextures",
                 "neuraltextures": "NeuralTextures", "neuraltexture": "NeuralTextures"}


def _dig(block: dict[str, Any], path: tuple[str, ...]) -> float | None:
    value: Any = block
    for key in path:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value if isinstance(value, (int, float)) else None


def _row(metric: str, ours: float | None, paper: float, best: tuple[str, dict[str, float]] | None,
         leader: tuple[str, float] | None = None, subset: str | None = None) -> dict:
    """One metric beside the paper. On a subset (``subset`` says why) there is no diff: the paper's figure is
    over the whole test set. Text metrics keep their diff but are labelled: the paper's protocol is unknown."""
    note = SUBSET_NOTE if subset else (PROTOCOL_NOTE if metric in PROTOCOL_UNKNOWN else None)
    return {
        "metric": metric, "ours": ours, "paper": paper,
        "diff": None if ours is None or subset else ours - paper,
        "comparable": not subset and metric not in PROTOCOL_UNKNOWN,
        "note": note, "subset": subset,
        "best_other_model": best[0] if best and metric in best[1] else None,
        "best_other": best[1].get(metric) if best else None,
        "best_other_criterion": BEST_OTHER_CRITERION if best else None,
        "leader_model": leader[0] if leader else None,
        "leader": leader[1] if leader else None,
        "source": SOURCE,
    }


def compare(bench: str, result: dict[str, Any], subset: str | None = None) -> list[dict[str, Any]]:
    """Rows of ours vs the paper (``diff`` = ours - paper) for a result of `metrics.evaluate`. ``bench`` is
    fakeclue, loki, ddvqa, dmimage (a folder run on DMimage) or ffpp (per-method AUC, matched on category
    names such as Deepfakes / DF, from ``overall.roc_auc_fake_category_vs_all_real``). ``subset``: why the
    run covers only part of the test set (--limit, --categories, missing images), or None; then no diffs."""
    bench = bench.lower().replace("-", "").replace("_", "").replace("+", "p")
    overall = result.get("overall", {})
    if bench == "ffpp":
        ours_by_method: dict[str, list[float]] = {}
        for category, auc in (overall.get("roc_auc_fake_category_vs_all_real") or {}).items():
            method = _FFPP_ALIASES.get(category.lower())
            if method and auc is not None:
                ours_by_method.setdefault(method, []).append(auc)
        rows = []
        for method, paper in FFPP_AUC.items():
            values = ours_by_method.get(method)
            rows.append(_row(f"auc_{method}", values[0] if values and len(values) == 1 else None, paper, None,
                             subset=subset))
        found = [row["ours"] for row in rows if row["ours"] is not None]
        rows.append(_row("auc_average", sum(found) / len(found) if len(found) == len(FFPP_AUC) else None,
                         FFPP_AUC_AVERAGE, None, subset=subset))
        return rows
    if bench not in FAKEVLM:
        raise ValueError(f"no paper figures for {bench!r}; known: {', '.join([*FAKEVLM, 'ffpp'])}")
    best, leaders = BEST_OTHER.get(bench), LEADERS.get(bench, {})
    return [_row(metric, _dig(overall, _OURS[metric]), paper, best, leaders.get(metric), subset)
            for metric, paper in FAKEVLM[bench].items()]
