"""Operating points and calibration error in `eval`'s metrics, against scikit-learn's ROC curve and reliability
curve on scores with ties, saturation and one-class sets."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.calibration import calibration_curve
from sklearn.metrics import roc_curve

from fakevlm_cli.datasets.metrics import Prediction, evaluate, operating_points, reliability


def _scores(seed: int, n: int = 400):
    rng = np.random.default_rng(seed)
    truth = rng.random(n) < 0.5
    scores = np.clip(rng.normal(np.where(truth, 0.65, 0.35), 0.2), 0, 1)
    return truth, np.round(scores, 2)  # rounding makes ties, as FakeVLM's saturated P(fake) does


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_tpr_at_fpr_and_eer_are_sklearns(seed):
    truth, scores = _scores(seed)
    ours = operating_points(truth, scores)
    fpr, tpr, thresholds = roc_curve(truth, scores, drop_intermediate=False)
    for target in (0.01, 0.05):
        within = np.nonzero(fpr <= target)[0]
        best = int(within[np.nonzero(tpr[within] == tpr[within].max())[0][0]])  # best TPR, then fewest FPs
        row = ours["tpr_at_fpr"][f"{target:g}"]
        assert row["tpr"] == pytest.approx(tpr[best]) and row["fpr"] == pytest.approx(fpr[best])
        assert row["threshold"] == pytest.approx(thresholds[best])
        assert np.mean(scores[~truth] >= row["threshold"]) <= target  # the threshold does what it says
    worst = np.maximum(fpr, 1 - tpr)[1:]  # sklearn's first point is the threshold above every score
    assert ours["eer"] == pytest.approx(worst.min())


def test_separable_scores_spend_no_false_positives_for_nothing():
    """Every fake above every real: the 5 % point catches all fakes at FPR 0, not at a threshold inside the
    reals that would call 5 % of them fake for no fake more."""
    truth = [False] * 40 + [True] * 40
    scores = [i / 1000 for i in range(40)] + [0.99 + i / 10000 for i in range(40)]
    row = operating_points(truth, scores)["tpr_at_fpr"]["0.05"]
    assert row == {"threshold": 0.99, "tpr": 1.0, "fpr": 0.0}


def test_operating_points_with_one_class_or_no_room():
    assert operating_points([False, False], [0.1, 0.2])["tpr_at_fpr"]["0.01"] is None
    top_real = operating_points([False, True, True], [0.9, 0.5, 0.4])  # the highest score is a real image
    assert top_real["tpr_at_fpr"]["0.01"] == {"threshold": None, "tpr": 0.0, "fpr": 0.0}


@pytest.mark.parametrize("seed", [3, 4])
def test_reliability_is_sklearns_calibration_curve(seed):
    truth, scores = _scores(seed)
    scores = np.minimum(scores + 0.001, 0.999)  # off the bin edges, where the two binning conventions may differ
    ece, diagram = reliability(truth, scores)
    fraction, mean = calibration_curve(truth, scores, n_bins=10, strategy="uniform")
    filled = [row for row in diagram if row["n"]]
    assert [row["fraction_fake"] for row in filled] == pytest.approx(list(fraction))
    assert [row["mean_p_fake"] for row in filled] == pytest.approx(list(mean))
    weights = np.array([row["n"] for row in filled]) / len(scores)
    assert ece == pytest.approx(float(np.sum(weights * np.abs(fraction - mean))))


def test_a_perfectly_calibrated_score_has_no_calibration_error():
    truth = [True] * 3 + [False] * 7 + [True] * 7 + [False] * 3  # 30 % fake at P = 0.35, 70 % at P = 0.75
    ece, _ = reliability(truth, [0.3] * 10 + [0.7] * 10)
    assert ece == pytest.approx(0.0)


def test_evaluate_reports_them_overall_and_per_category():
    truth, scores = _scores(5, 60)
    preds = [Prediction(label="fake" if t else "real", verdict="fake" if s >= 0.5 else "real", p_fake=float(s),
                        category="a" if i % 2 else "b", calibrated=float(s) / 2)
             for i, (t, s) in enumerate(zip(truth, scores, strict=True))]
    metrics = evaluate(preds, text=False)
    overall = metrics["overall"]
    assert set(overall["operating_points"]["tpr_at_fpr"]) == {"0.01", "0.05"}
    assert len(overall["reliability"]) == 10 and sum(row["n"] for row in overall["reliability"]) == 60
    assert overall["ece_calibrated"] is not None and "reliability_calibrated" in overall
    assert metrics["categories"]["a"]["operating_points"]["eer"] is not None
