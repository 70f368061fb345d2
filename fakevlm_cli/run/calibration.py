"""Calibration you can carry: a threshold fitted for a target false-positive rate, a monotone map from P(fake) to
a calibrated probability, and an inconclusive band — saved with what they were fitted for and on, and refused
for any other model, processor or prompt (docs/calibration.md).

* **Threshold.** Fitted on the real images of a labelled set: with n reals, the threshold sits just above the
  (j+1)-th highest real score, j = ⌊target·(n+1)⌋ - 1, so that j reals score at or above it. A new real image
  from the same source scores above the (j+1)-th highest of n with probability (j+1)/(n+1) ≤ target (order
  statistics; no assumption about the score's distribution), which is the false-positive rate expected on
  new images like those. Fewer than 1/target - 1 reals cannot promise the target: the file says so.
* **Probability.** Platt scaling on the logit: calibrated = sigmoid(a·logit(P(fake)) + b), a > 0, fitted by Newton's
  method on the log-loss with Platt's smoothed targets ((N₊+1)/(N₊+2) and 1/(N₋+2), as scikit-learn's
  sigmoid calibration). Two parameters, so a few hundred images fit it without overfitting, and strictly
  increasing, so it never reorders images: the threshold is kept on the raw P(fake) (the record's
  `threshold` keeps its schema-1 meaning) and only the probability shown changes. Isotonic regression was
  not chosen: its steps tie distinct scores and it needs far more data.
* **Inconclusive band** [lo, hi): a score shown (calibrated when a map is fitted) in it gives no model verdict
  (`unknown`, with `inconclusive` true); it must contain the threshold, so outside it the side decides.

Hand-written (two Newton steps' worth of numpy and an order statistic) because scikit-learn would be a
runtime dependency for two functions; tests check both against scikit-learn.
"""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from fakevlm_cli import __version__
from fakevlm_cli.core.engine_types import DEFAULT_THRESHOLD
from fakevlm_cli.core.errors import FakevlmError

FORMAT = "fakevlm-calibration"
VERSION = 1
# What a calibration is refused for when it differs: these change the scores themselves.
IDENTITY = ("id", "revision", "processor", "processor_revision", "prompt", "answer_prefix", "quant")
# What only shifts scores a little (precision, EXIF orientation and transparency, --fast-decode's reduced-scale
# JPEG decoding), or may change the prompt's ids (tokenizer.json or the transformers tokenizer): a notice, not a
# refusal.
NOTICED = ("dtype", "pixels", "fast_decode", "prompt_ids_from")
EPS = 1e-6  # P(fake) is clipped to [EPS, 1 - EPS] before its logit (records keep 6 decimals: 0 and 1 occur)
MAX_FILE_BYTES = 4 * 1024 * 1024


def _logit(p: float) -> float:
    p = min(max(p, EPS), 1 - EPS)
    return math.log(p / (1 - p))


def _sigmoid(z: float) -> float:
    return 1 / (1 + math.exp(-z)) if z >= 0 else math.exp(z) / (1 + math.exp(z))


@dataclass(frozen=True)
class Platt:
    """calibrated = sigmoid(a · logit(P(fake)) + b), a > 0."""

    a: float
    b: float

    def __call__(self, p: float) -> float:
        return _sigmoid(self.a * _logit(p) + self.b)

    def to_dict(self) -> dict:
        return {"method": "platt", "a": self.a, "b": self.b,
                "formula": f"sigmoid(a * logit(clip(P(fake), {EPS}, 1 - {EPS})) + b)"}


def fit_platt(p_fake: Sequence[float], is_fake: Sequence[bool], iterations: int = 100) -> Platt:
    """Platt scaling on logit(P(fake)) with smoothed targets, by Newton's method with step halving."""
    import numpy as np

    x = np.array([_logit(p) for p in p_fake])
    y = np.asarray(is_fake, dtype=bool)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    t = np.where(y, (n_pos + 1) / (n_pos + 2), 1 / (n_neg + 2))
    params = np.array([1.0, 0.0])

    def loss(w) -> float:
        z = w[0] * x + w[1]
        return float(np.sum(np.logaddexp(0, z) - t * z))  # minus the sum of t log s(z) + (1 - t) log(1 - s(z))

    current = loss(params)
    for _ in range(iterations):
        q = 1 / (1 + np.exp(-(params[0] * x + params[1])))
        gradient = np.array([np.sum((q - t) * x), np.sum(q - t)])
        weight = q * (1 - q)
        hessian = np.array([[np.sum(weight * x * x), np.sum(weight * x)], [np.sum(weight * x), np.sum(weight)]])
        hessian += np.eye(2) * 1e-12
        step = np.linalg.solve(hessian, gradient)
        scale = 1.0
        while scale > 1e-10:
            candidate = params - scale * step
            value = loss(candidate)
            if value <= current:
                break
            scale /= 2
        else:
            break
        params, done = candidate, current - value < 1e-12
        current = value
        if done:
            break
    return Platt(a=float(params[0]), b=float(params[1]))


@dataclass(frozen=True)
class ThresholdFit:
    threshold: float
    false_positives: int  # reals at or above the threshold in the fitting data
    n_real: int
    expected_fpr: float  # (j + 1) / (n + 1): what new reals from the same source are expected to give
    reaches_target: bool


def fit_threshold(real_scores: Sequence[float], target_fpr: float) -> ThresholdFit:
    """The lowest threshold (P(fake) >= threshold is fake) whose expected false-positive rate on new real images
    is at most `target_fpr` (see the module's docstring)."""
    ranked = sorted(real_scores, reverse=True)
    n = len(ranked)
    if n == 0:
        raise FakevlmError("calibration needs real images with a P(fake): there are none")
    allowed = math.floor(target_fpr * (n + 1) + 1e-9) - 1
    reaches = allowed >= 0
    j = max(allowed, 0)
    if j >= n:  # a target so high that every real may be a false positive
        return ThresholdFit(0.0, n, n, 1.0, True)
    threshold = min(math.nextafter(ranked[j], math.inf), 1.0)
    false_positives = sum(s >= threshold for s in ranked)
    if false_positives > j:  # reals at P(fake) = 1 (as records round it): no threshold passes them
        return ThresholdFit(threshold, false_positives, n, min(1.0, (false_positives + 1) / (n + 1)), False)
    return ThresholdFit(threshold, false_positives, n, (j + 1) / (n + 1), reaches)


# ---- the file ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Calibration:
    """A loaded (or freshly fitted) calibration file."""

    threshold: float
    target_fpr: float | None
    mapping: Platt | None
    inconclusive: tuple[float, float] | None
    fitted_for: dict
    data: dict = field(default_factory=dict)
    fit: dict = field(default_factory=dict)
    path: str | None = None
    sha256: str | None = None

    def check(self, model: dict) -> list[str]:
        """Refuse (FakevlmError, one line) a model other than the one this was fitted for; notices for what
        only shifts scores a little."""
        where = self.path or "calibration"
        for key in IDENTITY:
            fitted, now = _normal(key, self.fitted_for.get(key)), _normal(key, model.get(key))
            if key == "revision" and (fitted is None or now is None):
                continue  # a local folder has no revision: its path (id) decides
            if fitted != now:
                raise FakevlmError(f"{where}: fitted for {_describe(self.fitted_for)}, not for this run's "
                                   f"{_describe(model)} ({key} differs: {_short(fitted)} vs {_short(now)}); fit "
                                   "one for this model with: fakevlm eval ... --fit-calibration FILE")
        return [f"{where}: fitted with {key} {self.fitted_for.get(key)}, this run uses {model.get(key)}: scores "
                "may shift slightly" for key in NOTICED
                if self.fitted_for.get(key) is not None and model.get(key) is not None
                and self.fitted_for.get(key) != model.get(key)]

    def summary(self) -> dict:
        """What a record says about the calibration it was judged with."""
        return {"file": self.path, "sha256": self.sha256, "target_fpr": self.target_fpr,
                "mapping": self.mapping.to_dict()["method"] if self.mapping else None}


def _normal(key: str, value: Any) -> Any:
    """Model and processor ids that are local folders compare as absolute paths (./m and /home/u/m are one)."""
    if key in ("id", "processor") and isinstance(value, str) and value and os.path.isdir(value):
        return os.path.realpath(value)
    return value


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "…'"


def _describe(model: dict) -> str:
    return f"model {model.get('id')!s} with prompt {_short(model.get('prompt'))}"


def fit(records: Sequence[tuple[str, float | None, str]], *, model: dict, target_fpr: float,
        inconclusive: tuple[float, float] | None, data: dict, mapping: bool = True) -> Calibration:
    """A calibration from (label, P(fake), category) triples of a labelled set, for `model` (a record's model)."""
    scored = [(label, float(p), category) for label, p, category in records if p is not None]
    reals = [p for label, p, _ in scored if label == "real"]
    fakes = [p for label, p, _ in scored if label == "fake"]
    if not reals or not fakes:
        raise FakevlmError(f"calibration needs real and fake images with a P(fake): found {len(reals)} real, "
                           f"{len(fakes)} fake")
    found = fit_threshold(reals, target_fpr)
    platt = fit_platt([p for _, p, _ in scored], [label == "fake" for label, _, _ in scored]) if mapping else None
    if platt is not None and platt.a <= 0:
        raise FakevlmError("P(fake) does not rank fake images above real ones on this data: no calibration fitted")
    categories: dict[str, dict[str, int]] = {}
    for label, _, category in scored:
        categories.setdefault(category, {"real": 0, "fake": 0})[label] += 1
    tpr = sum(p >= found.threshold for p in fakes) / len(fakes)
    fit_info: dict[str, Any] = {
        "fpr": found.false_positives / found.n_real, "tpr": tpr, "false_positives": found.false_positives,
        "expected_fpr": found.expected_fpr, "reaches_target": found.reaches_target,
        "threshold_calibrated": platt(found.threshold) if platt else None, "warning": None,
    }
    if not found.reaches_target and found.threshold >= 1.0 and found.false_positives:
        fit_info["warning"] = (f"{found.false_positives} real images score P(fake) = 1 (6 decimals): no threshold "
                               f"passes them, so the false-positive rate to expect is about "
                               f"{found.expected_fpr:.3%}, above the {target_fpr:.2%} asked for")
    elif not found.reaches_target:
        fit_info["warning"] = (f"only {found.n_real} real images: the lowest false-positive rate this can promise "
                               f"is 1/(n+1) = {found.expected_fpr:.3%}; {math.ceil(1 / target_fpr) - 1} are needed "
                               f"for {target_fpr:.2%}")
    stats = {**data, "n": len(records), "n_real": len(reals), "n_fake": len(fakes),
             "n_without_p_fake": len(records) - len(scored), "categories": categories}
    fitted_for = {key: model.get(key) for key in (*IDENTITY, *NOTICED)}
    calibration = Calibration(threshold=found.threshold, target_fpr=target_fpr, mapping=platt, inconclusive=None,
                              fitted_for=fitted_for, data=stats, fit=fit_info)
    if inconclusive is not None:
        check_band(inconclusive, calibration)
        calibration = replace(calibration, inconclusive=inconclusive)
    return calibration


def to_document(calibration: Calibration) -> dict:
    return {
        "format": FORMAT, "version": VERSION,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "tool": {"name": "fakevlm", "version": __version__},
        "fitted_for": calibration.fitted_for,
        "data": calibration.data,
        "target_fpr": calibration.target_fpr,
        "threshold": calibration.threshold,
        "fit": calibration.fit,
        "mapping": calibration.mapping.to_dict() if calibration.mapping else None,
        "inconclusive": list(calibration.inconclusive) if calibration.inconclusive else None,
    }


def document_bytes(calibration: Calibration) -> bytes:
    """The calibration file's bytes (eval --fit-calibration writes them through outputs/guard.py)."""
    import orjson

    return orjson.dumps(to_document(calibration), option=orjson.OPT_INDENT_2) + b"\n"


def load(path: Path) -> Calibration:
    """A calibration file, checked; FakevlmError with one line naming the problem."""
    import orjson

    try:
        with open(path, "rb") as fh:
            raw = fh.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise FakevlmError(f"{path}: cannot read the calibration: {exc.strerror or exc}") from None
    try:
        doc = orjson.loads(raw) if len(raw) <= MAX_FILE_BYTES else None
    except orjson.JSONDecodeError:
        doc = None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise FakevlmError(f"{path}: not a fakevlm calibration file (make one with: fakevlm eval ... "
                           "--fit-calibration FILE)")
    if doc.get("version") != VERSION:
        raise FakevlmError(f"{path}: calibration format version {doc.get('version')!r}; this fakevlm reads "
                           f"version {VERSION}")
    try:
        calibration = _from_document(doc, str(path), hashlib.sha256(raw).hexdigest())
    except (TypeError, ValueError, KeyError) as exc:
        raise FakevlmError(f"{path}: damaged calibration file: {exc}") from None
    if calibration.inconclusive is not None:
        check_band(calibration.inconclusive, calibration)
    return calibration


def _probability(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1 or math.isnan(value):
        raise ValueError(f"{name} must be a number in [0, 1], found {_short(value)}")
    return float(value)


def _dict(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def _from_document(doc: dict, path: str, sha256: str) -> Calibration:
    mapping = None
    if doc.get("mapping") is not None:
        m = doc["mapping"]
        if not isinstance(m, dict) or m.get("method") != "platt":
            raise ValueError("mapping must be {method: platt, a, b}")
        a, b = float(m["a"]), float(m["b"])
        if not (a > 0 and math.isfinite(a) and math.isfinite(b)):
            raise ValueError("mapping a must be a positive number and b finite")
        mapping = Platt(a, b)
    band = doc.get("inconclusive")
    if band is not None:
        if not (isinstance(band, list) and len(band) == 2):
            raise ValueError("inconclusive must be [lo, hi]")
        band = (_probability(band[0], "inconclusive lo"), _probability(band[1], "inconclusive hi"))
    fitted_for = doc.get("fitted_for")
    if not isinstance(fitted_for, dict) or not fitted_for.get("id"):
        raise ValueError("fitted_for must name the model (id)")
    target = doc.get("target_fpr")
    return Calibration(threshold=_probability(doc.get("threshold"), "threshold"),
                       target_fpr=None if target is None else _probability(target, "target_fpr"),
                       mapping=mapping, inconclusive=band, fitted_for=fitted_for,
                       data=_dict(doc.get("data")), fit=_dict(doc.get("fit")),
                       path=path, sha256=sha256)


def check_band(band: tuple[float, float], calibration: Calibration | None, threshold: float | None = None) -> None:
    """An inconclusive band must be lo < hi within [0, 1] and contain the threshold (on the scale shown)."""
    lo, hi = band
    if not 0 <= lo < hi <= 1:
        raise FakevlmError(f"inconclusive band {lo:g},{hi:g}: needs 0 <= LO < HI <= 1")
    shown = threshold if calibration is None else (
        calibration.mapping(calibration.threshold) if calibration.mapping else calibration.threshold)
    if shown is not None and not lo <= shown <= hi:
        scale = "calibrated P(fake)" if calibration is not None and calibration.mapping else "P(fake)"
        raise FakevlmError(f"inconclusive band {lo:g},{hi:g} must contain the threshold ({scale} {shown:.4g}): "
                           "outside the band the side of the threshold decides")


# ---- deciding ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Judged:
    verdict: str  # the model's verdict: "real", "fake" or "unknown" (inconclusive)
    calibrated: float | None
    inconclusive: bool


@dataclass(frozen=True)
class Decision:
    """How a P(fake) becomes the model's verdict: the threshold (raw P(fake)), an optional map to a calibrated
    probability, an optional inconclusive band (on the probability shown)."""

    threshold: float = DEFAULT_THRESHOLD
    mapping: Platt | None = None
    band: tuple[float, float] | None = None
    calibration: Calibration | None = None

    @property
    def active(self) -> bool:
        return self.calibration is not None or self.band is not None

    def judge(self, p_fake: float, greedy: str | None = None) -> Judged:
        """`greedy`: the word greedy decoding wrote at the verdict step, when known. P(fake) exactly 0.5 at the
        default threshold is a tie of the two logits (or within the record's rounding of one): the verdict is
        then greedy's word, as upstream reads it (transformers' argmax takes the lower token id at an exact tie:
        "real" for the released model), not "fake" by the >= rule."""
        calibrated = round(self.mapping(p_fake), 6) if self.mapping is not None else None
        shown = p_fake if calibrated is None else calibrated
        if self.band is not None and self.band[0] <= shown < self.band[1]:
            return Judged("unknown", calibrated, True)
        if greedy in ("real", "fake") and p_fake == self.threshold == DEFAULT_THRESHOLD:
            return Judged(greedy, calibrated, False)
        return Judged("fake" if p_fake >= self.threshold else "real", calibrated, False)

    def summary(self) -> dict | None:
        """The record's `calibration` object (None when neither --calibration nor --inconclusive is used)."""
        if not self.active:
            return None
        base = self.calibration.summary() if self.calibration is not None else {
            "file": None, "sha256": None, "target_fpr": None, "mapping": None}
        return {**base, "inconclusive": list(self.band) if self.band else None}


def decision(threshold: float, calibration: Calibration | None, band: tuple[float, float] | None) -> Decision:
    """The decision for a run: --calibration's threshold, map and band (a --inconclusive band replaces the
    file's), else --threshold and --inconclusive."""
    if calibration is None:
        if band is not None:
            check_band(band, None, threshold)
        return Decision(threshold=threshold, band=band)
    band = band if band is not None else calibration.inconclusive
    if band is not None:
        check_band(band, calibration)
    return Decision(threshold=calibration.threshold, mapping=calibration.mapping, band=band, calibration=calibration)
