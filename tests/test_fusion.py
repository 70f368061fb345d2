"""The fusion rule table (README "How the verdict is fused")."""

from fakevlm_cli.evidence.types import Evidence
from fakevlm_cli.fusion import fuse

SD = Evidence("png", "parameters", "Steps: 20", "ai_generated", strong=True, generator="Stable Diffusion (A1111)")
COMPOSITE = Evidence("xmp", "DigitalSourceType", "compositeWithTrainedAlgorithmicMedia", "ai_edited", strong=True)
CAMERA = Evidence("exif", "Make", "Canon", "camera")
WEAK_AI = Evidence("exif", "Software", "Midjourney", "ai_generated", strong=False)
INVALID = Evidence("c2pa", "validation", "manifest does not validate: claimSignature.mismatch", "edited")


def test_rule1_strong_generator_marker_overrules_a_real_model_verdict():
    fused = fuse("real", 0.1, [SD, CAMERA])
    assert fused.verdict == "fake" and fused.disagreement
    assert fused.reasons[0].startswith("AI-generated per png parameters")
    assert any("overruled" in r for r in fused.reasons)


def test_rule1_agreeing_model_is_no_disagreement():
    fused = fuse("fake", 0.9, [SD])
    assert fused.verdict == "fake" and not fused.disagreement


def test_rule2_ai_edited_is_fake():
    assert fuse("real", 0.2, [COMPOSITE]).verdict == "fake"
    assert fuse(None, None, [COMPOSITE]).verdict == "fake"


def test_rule3_model_decides_and_camera_never_makes_real():
    assert fuse("fake", 0.8, [CAMERA]).verdict == "fake"
    assert fuse(None, None, [CAMERA]).verdict == "unknown"  # --no-model: camera EXIF proves nothing
    reasons = fuse(None, None, [CAMERA]).reasons
    assert any("not proof" in r for r in reasons)


def test_weak_hints_and_failed_validation_are_listed_not_decisive():
    fused = fuse("real", 0.3, [WEAK_AI, INVALID])
    assert fused.verdict == "real" and not fused.disagreement
    assert any(r.startswith("hint only") for r in fused.reasons)
    assert any("fail validation" in r for r in fused.reasons)


def test_no_model_no_evidence():
    fused = fuse(None, None, [])
    assert fused.verdict == "unknown" and fused.reasons == ["no model run, and no decisive provenance metadata"]
