"""Calibration you can carry: the threshold for a target false-positive rate, Platt scaling, the inconclusive
band, the calibration file (and its refusal for another model), end to end on the toy FakeVLM.

The toy's P(fake) is nearly 0 or 1 on its own images, so the fakes here carry its checkerboard artifact at
reduced contrast (`faint`: the real picture plus a fraction of the artifact), which the toy scores anywhere
between the two. Reals are the toy's own real images; the false-positive rate depends on them alone.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import factories as f
import jsonschema
import numpy as np
import pytest

from fakevlm_cli.core.errors import FakevlmError
from fakevlm_cli.core.record import load_schema
from fakevlm_cli.run import calibration
from fakevlm_cli.run.calibration import Decision, Platt, fit_platt, fit_threshold

SCHEMA = load_schema()
FIT_SEEDS, HELD_OUT_SEEDS = 3_000_000, 4_000_000  # fresh toy images (FRESH_SEEDS and up), apart from other tests
N_FIT = 600  # real images the toy calibration is fitted on


def faint(seed: int, strength: float):
    """Toy image `seed` with its fake artifact at `strength` (0: the real image, 1: the toy's fake)."""
    from PIL import Image

    from fakevlm_cli.testing import toy

    if strength == 0:
        return toy.toy_image(toy.FRESH_SEEDS + seed, False).image
    real = np.asarray(toy.toy_image(toy.FRESH_SEEDS + seed, False).image, dtype=np.float32)
    fake = np.asarray(toy.toy_image(toy.FRESH_SEEDS + seed, True).image, dtype=np.float32)
    return Image.fromarray(np.clip(np.rint(real + strength * (fake - real)), 0, 255).astype(np.uint8), "RGB")


def labelled(start: int, n_real: int, n_fake: int):
    """(label, image) pairs: toy reals, and fakes whose artifact strength is spread over 0.05–0.4."""
    rng = np.random.default_rng(start)
    reals = [("real", faint(start + i, 0.0)) for i in range(n_real)]
    fakes = [("fake", faint(start + n_real + i, float(rng.uniform(0.05, 0.4)))) for i in range(n_fake)]
    return reals + fakes


@pytest.fixture(scope="module")
def toy_scores(toy_engine):
    """P(fake) of the toy FakeVLM, rounded as records keep it, for a fitting set and a held-out set."""
    def score(pairs):
        pixels = [toy_engine.preprocess(image) for _, image in pairs]
        answers = [a for i in range(0, len(pixels), 64) for a in toy_engine.verdicts(pixels[i:i + 64])]
        assert all(a.p_fake is not None for a in answers)
        return [(label, round(float(a.p_fake), 6), "toy") for (label, _), a in zip(pairs, answers, strict=True)]

    return {"fit": score(labelled(FIT_SEEDS, N_FIT, 200)), "held_out": score(labelled(HELD_OUT_SEEDS, 1000, 200))}


# ---- the threshold ---------------------------------------------------------------------------------------------


def test_threshold_is_an_order_statistic():
    reals = [i / 100 for i in range(100)]  # 0.00 .. 0.99
    found = fit_threshold(reals, 0.05)  # j = floor(0.05 * 101) - 1 = 4: four reals at or above it
    assert found.false_positives == 4 and 0.95 < found.threshold <= 0.96 and found.reaches_target
    assert found.expected_fpr == pytest.approx(5 / 101)
    assert fit_threshold(reals, 0.0).threshold > 0.99  # no false positive at all: above every real


def test_too_few_reals_cannot_promise_the_target():
    found = fit_threshold([0.1 * i for i in range(10)], 0.01)
    assert not found.reaches_target and found.false_positives == 0 and found.expected_fpr == pytest.approx(1 / 11)


def test_reals_at_p_fake_one_are_not_promised_away():
    """Records round P(fake) to 6 places, so a real can score exactly 1: no threshold passes it, and the fit
    must say so rather than promise the target."""
    reals = [1.0] * 5 + [i / 100 for i in range(95)]
    found = fit_threshold(reals, 0.05)  # j = 4: the fifth highest real is 1.0
    assert found.threshold == 1.0 and found.false_positives == 5 and not found.reaches_target
    assert found.expected_fpr == pytest.approx(6 / 101)
    assert fit_threshold([0.99] * 5 + reals[5:], 0.05).reaches_target  # below 1, the rule holds


@pytest.mark.slow
def test_held_out_false_positive_rate_meets_the_target_on_average():
    """The order-statistic rule on continuous scores: over many draws, new reals exceed the threshold at the
    expected rate (j+1)/(n+1), never above the target (no model: 4000 synthetic draws, fixed seed)."""
    rng = np.random.default_rng(0)
    rates = []
    for _ in range(4000):
        found = fit_threshold(list(rng.beta(2, 8, 200)), 0.05)
        rates.append(float(np.mean(rng.beta(2, 8, 400) >= found.threshold)))
    assert np.mean(rates) == pytest.approx(10 / 201, abs=0.0015) and np.mean(rates) <= 0.05


@pytest.mark.slow
@pytest.mark.parametrize("target", [0.01, 0.05])
def test_toy_model_held_out_fpr_is_within_tolerance_of_the_target(toy_scores, target):
    """Fitted on 600 toy reals, checked on 1000 others. The tolerance is three standard deviations of what a
    perfect rule would show: the threshold's own spread (Beta(j+1, n-j)) and the held-out sample's (binomial)."""
    fitted = calibration.fit(toy_scores["fit"], model={"id": "toy"}, target_fpr=target, inconclusive=None,
                             data={})
    held_reals = [p for label, p, _ in toy_scores["held_out"] if label == "real"]
    held_fakes = [p for label, p, _ in toy_scores["held_out"] if label == "fake"]
    fpr = float(np.mean(np.asarray(held_reals) >= fitted.threshold))
    n = N_FIT
    j = math.floor(target * (n + 1)) - 1
    expected = (j + 1) / (n + 1)
    spread = math.sqrt(expected * (1 - expected) / (n + 2) + expected * (1 - expected) / len(held_reals))
    assert abs(fpr - expected) <= 3 * spread, (fpr, expected, spread)
    assert fitted.fit["fpr"] <= target and fitted.fit["reaches_target"]
    assert 0.2 < float(np.mean(np.asarray(held_fakes) >= fitted.threshold)) < 1  # faint fakes: some caught


@pytest.mark.slow
def test_calibrated_probability_is_better_calibrated_on_held_out_toy_scores(toy_scores):
    from fakevlm_cli.datasets.metrics import reliability

    fitted = calibration.fit(toy_scores["fit"], model={"id": "toy"}, target_fpr=0.05, inconclusive=None, data={})
    truth = [label == "fake" for label, _, _ in toy_scores["held_out"]]
    raw = [p for _, p, _ in toy_scores["held_out"]]
    ece_raw, _ = reliability(truth, raw)
    ece_calibrated, _ = reliability(truth, [fitted.mapping(p) for p in raw])
    assert fitted.mapping.a > 0 and ece_calibrated < ece_raw
    ranks = np.argsort(raw, kind="stable")
    assert np.all(np.diff([fitted.mapping(raw[i]) for i in ranks]) >= 0)  # monotone: never reorders images


# ---- Platt scaling ----------------------------------------------------------------------------------------------


def test_platt_is_scikit_learns_logistic_regression_with_platts_targets():
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(1)
    is_fake = rng.random(300) < 0.4
    p = 1 / (1 + np.exp(-rng.normal(np.where(is_fake, 2.0, -1.0), 2.5)))
    ours = fit_platt(list(p), list(is_fake))
    n_pos, n_neg = int(is_fake.sum()), int((~is_fake).sum())
    target = np.where(is_fake, (n_pos + 1) / (n_pos + 2), 1 / (n_neg + 2))
    x = np.log(np.clip(p, 1e-6, 1 - 1e-6) / (1 - np.clip(p, 1e-6, 1 - 1e-6)))
    features = np.concatenate([x, x])[:, None]  # each image once as fake (weight t), once as real (1 - t)
    reference = LogisticRegression(C=np.inf, tol=1e-10, max_iter=10_000).fit(
        features, np.r_[np.ones(300), np.zeros(300)], sample_weight=np.r_[target, 1 - target])
    assert ours.a == pytest.approx(reference.coef_[0][0], rel=1e-4)
    assert ours.b == pytest.approx(reference.intercept_[0], abs=1e-4)


def test_platt_on_saturated_scores_stays_finite():
    ours = fit_platt([0.0] * 50 + [1.0] * 50, [False] * 50 + [True] * 50)  # 6-decimal records give 0 and 1
    assert math.isfinite(ours.a) and ours.a > 0 and 0 < ours(0.0) < 0.05 and 0.95 < ours(1.0) < 1


# ---- deciding ---------------------------------------------------------------------------------------------------


def test_decision_threshold_band_and_map():
    plain = Decision(threshold=0.5)
    assert plain.judge(0.5).verdict == "fake" and plain.judge(0.4999).verdict == "real" and not plain.active
    band = Decision(threshold=0.5, band=(0.3, 0.7))
    assert [band.judge(p).verdict for p in (0.29, 0.3, 0.69, 0.7)] == ["real", "unknown", "unknown", "fake"]
    assert band.judge(0.5).inconclusive and band.summary()["inconclusive"] == [0.3, 0.7]
    mapped = Decision(threshold=0.9, mapping=Platt(1.0, -2.0), band=(0.5, 0.8))
    judged = mapped.judge(0.95)  # calibrated sigmoid(logit(0.95) - 2) = 0.72: in the band, though above 0.9 raw
    assert judged.calibrated == pytest.approx(0.72, abs=0.01) and judged.inconclusive


def test_band_must_contain_the_threshold():
    with pytest.raises(FakevlmError, match="must contain the threshold"):
        calibration.decision(0.5, None, (0.6, 0.8))
    with pytest.raises(FakevlmError, match="LO < HI"):
        calibration.check_band((0.7, 0.3), None, 0.5)


# ---- the file ----------------------------------------------------------------------------------------------------


def _fitted(tmp_path, model=None, **kw) -> Path:
    """A calibration fitted on made-up scores (no model), for the file's own tests."""
    triples = [("real", p, "a") for p in np.linspace(0, 0.5, 50)] + [("fake", p, "b") for p in np.linspace(0.3, 1, 50)]
    fitted = calibration.fit(triples, model=model or {"id": "m", "prompt": "q", "dtype": "bfloat16",
                                                      "pixels": "upstream"},
                             target_fpr=0.05, inconclusive=kw.get("band"), data={"bench": "folder"})
    path = tmp_path / "cal.json"
    path.write_bytes(calibration.document_bytes(fitted))
    return path


def test_file_round_trip_records_what_it_was_fitted_for_and_on(tmp_path):
    path = _fitted(tmp_path, band=(0.2, 0.9))
    doc = json.loads(path.read_text())
    assert doc["format"] == "fakevlm-calibration" and doc["fitted_for"]["id"] == "m"
    assert doc["data"]["n_real"] == 50 and doc["data"]["categories"] == {"a": {"real": 50, "fake": 0},
                                                                          "b": {"real": 0, "fake": 50}}
    loaded = calibration.load(path)
    assert loaded.threshold == doc["threshold"] and loaded.inconclusive == (0.2, 0.9)
    assert loaded.mapping == Platt(doc["mapping"]["a"], doc["mapping"]["b"])


def test_mismatched_model_or_prompt_is_refused_in_one_line(tmp_path):
    loaded = calibration.load(_fitted(tmp_path))
    assert loaded.check({"id": "m", "prompt": "q", "dtype": "bfloat16", "pixels": "upstream"}) == []
    for other in ({"id": "other", "prompt": "q"}, {"id": "m", "prompt": "another question"}):
        with pytest.raises(FakevlmError) as caught:
            loaded.check(other)
        assert "\n" not in str(caught.value) and "differs" in str(caught.value)
    notices = loaded.check({"id": "m", "prompt": "q", "dtype": "float32", "pixels": "viewer"})
    assert len(notices) == 2 and "may shift slightly" in notices[0]


@pytest.mark.parametrize(("content", "message"), [
    ("not json", "not a fakevlm calibration file"),
    ('{"format": "fakevlm-calibration", "version": 9}', "format version 9"),
    ('{"format": "fakevlm-calibration", "version": 1, "threshold": 2, "fitted_for": {"id": "m"}}',
     "threshold must be a number in [0, 1]"),
    (('{"format": "fakevlm-calibration", "version": 1, "threshold": 0.5, "fitted_for": {"id": "m"}, '
      '"mapping": {"method": "platt", "a": -1, "b": 0}}'), "a must be a positive number"),
])
def test_broken_files_are_one_line_errors(tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(FakevlmError, match=message.replace("[", r"\[").replace("]", r"\]")) as caught:
        calibration.load(path)
    assert "\n" not in str(caught.value)


# ---- end to end: eval --fit-calibration, scan/explain --calibration, --inconclusive --------------------------


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """A labelled folder bench to fit on and a folder of other toy images to scan."""
    root = tmp_path_factory.mktemp("calibration")
    for i, (label, image) in enumerate(labelled(FIT_SEEDS + 50_000, 120, 60)):
        (root / "bench" / label / ("cam" if label == "real" else "gen")).mkdir(parents=True, exist_ok=True)
        image.save(root / "bench" / label / ("cam" if label == "real" else "gen") / f"{i:03d}.png")
    (root / "scan").mkdir()
    for i, (label, image) in enumerate(labelled(HELD_OUT_SEEDS + 50_000, 20, 20)):
        image.save(root / "scan" / f"{label}{i:02d}.png")
    return root


@pytest.fixture(scope="module")
def fitted(cli, folders, toy_model, tmp_path_factory):
    """`eval --fit-calibration` on the toy bench, once: the calibration, the predictions, the results."""
    out = tmp_path_factory.mktemp("fitted")
    paths = {"cal": out / "cal.json", "preds": out / "preds.jsonl", "results": out / "results.json"}
    result = cli("eval", "--bench", "folder", "--data", folders / "bench", "-m", toy_model, "--fit-calibration",
                 paths["cal"], "--target-fpr", "0.05", "-o", paths["results"], "--predictions", paths["preds"],
                 "--batch-size", "32")
    assert result.exit_code == 0, result.output
    return {**paths, "stdout": result.stdout}


@pytest.mark.slow
def test_eval_fits_and_saves_a_calibration(fitted, toy_model):
    assert "calibration fitted: threshold P(fake) >=" in fitted["stdout"]
    assert "operating points" in fitted["stdout"] and "EER" in fitted["stdout"]
    doc = json.loads(fitted["cal"].read_text())
    assert doc["fitted_for"]["id"] == str(toy_model) and doc["fitted_for"]["pixels"] == "upstream"
    assert doc["fitted_for"]["prompt"] == "<image>Does the image looks real/fake?"
    assert doc["data"]["n_real"] == 120 and doc["data"]["n_fake"] == 60 and doc["data"]["bench"] == "folder"
    assert doc["data"]["categories"] == {"cam": {"real": 120, "fake": 0}, "gen": {"real": 0, "fake": 60}}
    assert doc["fit"]["fpr"] <= 0.05 and doc["mapping"]["a"] > 0
    results = json.loads(fitted["results"].read_text())
    assert results["calibration"]["fitted"]["threshold"] == doc["threshold"]
    assert set(results["metrics"]["overall"]["operating_points"]["tpr_at_fpr"]) == {"0.01", "0.05"}


@pytest.mark.slow
def test_scan_with_the_calibration(cli, fitted, folders, toy_model):
    loaded = calibration.load(fitted["cal"])
    scanned = cli("scan", folders / "scan", "-m", toy_model, "--calibration", fitted["cal"], "--format", "jsonl")
    rows = [json.loads(line) for line in scanned.stdout.splitlines()]
    assert len(rows) == 40
    for row in rows:
        jsonschema.validate(row, SCHEMA)
        assert row["threshold"] == loaded.threshold and row["calibration"]["sha256"] == loaded.sha256
        assert row["model_verdict"] == ("fake" if row["p_fake"] >= loaded.threshold else "real")
        assert row["calibrated_p_fake"] == pytest.approx(loaded.mapping(row["p_fake"]), abs=1e-6)
        assert row["inconclusive"] is False and "calibrated P(fake) =" in row["reasons"][0]
    notes = scanned.stderr  # fitted on upstream pixels, scanned on viewer pixels: said, not refused
    assert "fitted with pixels upstream, this run uses viewer" in notes and "fast_decode" not in notes
    fast = cli("explain", folders / "scan" / "real00.png", "-m", toy_model, "--calibration", fitted["cal"],
               "--pixels", "upstream", "--fast-decode", "--json")
    assert fast.exit_code == 0, fast.stderr  # --fast-decode on this side only: said, not refused
    assert "fitted with fast_decode False, this run uses True: scores may shift slightly" in fast.stderr


@pytest.mark.parametrize("command", ["scan", "explain", "eval"])
@pytest.mark.parametrize("threshold", ["0.5", "0.7"])
def test_a_written_threshold_beside_a_calibration_is_refused_even_the_default(cli, command, threshold, tmp_path):
    """The calibration brings its own threshold: a --threshold the user wrote is refused, 0.5 (the default's value)
    as well as any other, in one line and before the calibration file or the model is read."""
    cal = tmp_path / "cal.json"
    cal.write_text("{}")
    picture = f.plain_png(tmp_path / "a.png")
    target = {"scan": [tmp_path], "explain": [picture], "eval": ["--bench", "folder", "--data", tmp_path]}
    result = cli(command, *target[command], "--calibration", cal, "--threshold", threshold, "-m", tmp_path / "none")
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr == ("fakevlm: error: give --threshold or --calibration, not both (the calibration has its "
                             "own threshold)\n")


@pytest.mark.slow
def test_eval_rescores_predictions_under_the_calibration(cli, fitted, folders, tmp_path):
    results = tmp_path / "r.json"
    loaded = calibration.load(fitted["cal"])
    shown = loaded.mapping(loaded.threshold)  # the band must contain the threshold, as shown (calibrated)
    band = (round(max(0.0, shown - 0.1), 3), round(min(1.0, shown + 0.1), 3))
    again = cli("eval", "--bench", "folder", "--data", folders / "bench", "--from-predictions", fitted["preds"],
                "--calibration", fitted["cal"], "--inconclusive", f"{band[0]},{band[1]}", "-o", results)
    assert again.exit_code == 0, again.output
    doc = json.loads(results.read_text())
    assert doc["calibration"]["applied"]["inconclusive"] == list(band)
    overall = doc["metrics"]["overall"]
    assert overall["ece_calibrated"] is not None and len(overall["reliability_calibrated"]) == 10
    assert overall["n_unknown"] > 0  # the inconclusive ones count as no answer, as the paper counts unknown


@pytest.mark.slow
@pytest.mark.parametrize(("extra", "differs"), [
    (["--prompt", "<image>Is this photo real?"], "prompt differs"),
    (["--answer-prefix", "This is a"], "answer_prefix differs"),
])
def test_mismatched_calibration_is_refused_before_any_record(cli, fitted, folders, toy_model, tmp_path, extra, differs):
    out = tmp_path / "out.jsonl"
    result = cli("scan", folders / "scan", "-m", toy_model, *extra, "--calibration", fitted["cal"], "-o", out)
    assert result.exit_code == 2
    (line,) = result.stderr.strip().splitlines()[-1:]
    assert line.startswith(f"fakevlm: error: {fitted['cal']}: fitted for model") and differs in line
    assert not out.exists() or out.read_text() == ""


@pytest.mark.slow
def test_another_model_is_refused(cli, fitted, folders, tiny_model):
    result = cli("explain", next(iter(sorted((folders / "scan").glob("*.png")))), "-m", tiny_model, "--calibration",
                 fitted["cal"])
    assert result.exit_code == 2 and "id differs" in result.stderr


@pytest.mark.slow
def test_explain_inconclusive(cli, fitted, folders, toy_model):
    image = folders / "scan" / "real00.png"
    result = cli("explain", image, "-m", toy_model, "--calibration", fitted["cal"], "--inconclusive", "0,1", "--json")
    record = json.loads(result.stdout)
    jsonschema.validate(record, SCHEMA)
    assert result.exit_code == 0 and record["inconclusive"] and record["verdict"] == "unknown"
    assert record["reasons"][0].startswith("model inconclusive: calibrated P(fake) =")
    panel = cli("explain", image, "-m", toy_model, "--calibration", fitted["cal"], "--inconclusive", "0,1")
    assert "Verdict: inconclusive" in panel.stdout and "calibrated (raw" in panel.stdout


# ---- --inconclusive and its refusals, with the stub engine (P(fake) = mean red) ----------------------------------


@pytest.fixture
def reds(tmp_path):
    from PIL import Image

    for name, red in (("low", 50), ("mid", 128), ("high", 220)):
        Image.new("RGB", (16, 16), (red, 0, 0)).save(tmp_path / f"{name}.png")
    return tmp_path


def test_inconclusive_band_on_the_command_line(cli, reds, monkeypatch):
    import stub_engine

    stub_engine.install(monkeypatch)
    result = cli("scan", reds, "--inconclusive", "0.3,0.7", "--format", "jsonl")
    rows = {Path(r["path"]).stem: r for r in map(json.loads, result.stdout.splitlines())}
    assert result.exit_code == 1  # "high" is fake
    assert [(rows[n]["verdict"], rows[n]["inconclusive"]) for n in ("low", "mid", "high")] == [
        ("real", False), ("unknown", True), ("fake", False)]
    assert rows["mid"]["model_verdict"] == "unknown" and rows["mid"]["calibration"]["inconclusive"] == [0.3, 0.7]
    assert rows["mid"]["reasons"] == ["model inconclusive: P(fake) = 50.2% lies in the inconclusive band 30.0%–70.0%"]
    for row in rows.values():
        jsonschema.validate(row, SCHEMA)
    table = cli("scan", reds, "--inconclusive", "30%,70%", "--format", "table")
    assert "inconclusive" in table.stdout and "(1 of them inconclusive)" in table.stdout


@pytest.mark.parametrize(("args", "message"), [
    (["--inconclusive", "0.6,0.8"], "must contain the threshold"),
    (["--inconclusive", "0.3,0.7", "--no-model"], "drop --no-model"),
    (["--inconclusive", "0.8,0.2"], "needs 0 <= LO < HI <= 1"),
    (["--inconclusive", "half"], "is not LO,HI"),
])
def test_band_refusals(cli, reds, monkeypatch, args, message):
    import stub_engine

    stub_engine.install(monkeypatch)
    result = cli("scan", reds, *args)
    assert result.exit_code == 2 and message in result.stderr


def test_a_calibration_used_with_prompt_ids_from_another_tokenizer_gets_a_notice():
    """Fitted on tokenizer.json's ids (upstream's), used where only transformers' tokenizer was found (ids that
    may differ): said, as for precision or pixels."""
    model = {"id": "m", "revision": None, "processor": "m", "processor_revision": None, "prompt": "p",
             "answer_prefix": None, "quant": "none", "dtype": "float32", "pixels": "viewer", "fast_decode": False}
    fitted = calibration.Calibration(threshold=0.5, target_fpr=0.05, mapping=None, inconclusive=None,
                                     fitted_for={**model, "prompt_ids_from": "tokenizer.json"}, path="c.json")
    assert fitted.check({**model, "prompt_ids_from": "tokenizer.json"}) == []
    (notice,) = fitted.check({**model, "prompt_ids_from": "transformers"})
    assert "fitted with prompt_ids_from tokenizer.json, this run uses transformers" in notice
