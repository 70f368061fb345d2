"""The fusion rule table (README "How the verdict is fused")."""

from fakevlm_cli.evidence.types import Evidence
from fakevlm_cli.run.fusion import fuse


def words(fused):
    return [r.word() for r in fused.reasons]

SD = Evidence("png", "parameters", "Steps: 20", "ai_generated", strong=True, generator="Stable Diffusion (A1111)")
COMPOSITE = Evidence("xmp", "DigitalSourceType", "compositeWithTrainedAlgorithmicMedia", "ai_edited", strong=True)
CAMERA = Evidence("exif", "Make", "Canon", "camera")
WEAK_AI = Evidence("exif", "Software", "Midjourney", "ai_generated", strong=False)
INVALID = Evidence("c2pa", "validation", "manifest does not validate: claimSignature.mismatch", "edited")


def test_rule1_strong_generator_marker_overrules_a_real_model_verdict():
    fused = fuse("real", 0.1, [SD, CAMERA])
    assert fused.verdict == "fake" and fused.disagreement
    assert [r.rule for r in fused.reasons] == ["decisive", "model", "camera"]  # structured: nothing to parse
    assert fused.reasons[0].cited[0].generator == "Stable Diffusion (A1111)" and fused.reasons[1].overruled
    assert words(fused)[0] == "AI-generated per png parameters: Steps: 20 (Stable Diffusion (A1111))"
    assert words(fused)[1] == "model says real (P(fake) = 10.0%) — overruled by the metadata"


def test_rule1_agreeing_model_is_no_disagreement():
    fused = fuse("fake", 0.9, [SD])
    assert fused.verdict == "fake" and not fused.disagreement


def test_rule2_ai_edited_is_fake():
    assert fuse("real", 0.2, [COMPOSITE]).verdict == "fake"
    assert fuse(None, None, [COMPOSITE]).verdict == "fake"


def test_rule3_model_decides_and_camera_never_makes_real():
    assert fuse("fake", 0.8, [CAMERA]).verdict == "fake"
    assert fuse(None, None, [CAMERA]).verdict == "unknown"  # --no-model: camera EXIF proves nothing
    assert words(fuse(None, None, [CAMERA]))[-1] == ("camera metadata, not proof of a real photo (easily forged): "
                                                    "exif Make: Canon")


def test_weak_hints_and_failed_validation_are_listed_not_decisive():
    fused = fuse("real", 0.3, [WEAK_AI, INVALID])
    assert fused.verdict == "real" and not fused.disagreement
    assert [r.rule for r in fused.reasons] == ["model", "hint", "invalid_credentials"]
    assert words(fused)[1] == "hint only (AI-generated?): exif Software: Midjourney"
    assert words(fused)[2] == "content credentials fail validation: manifest does not validate: claimSignature.mismatch"


def test_no_model_no_evidence():
    fused = fuse(None, None, [])
    assert fused.verdict == "unknown" and words(fused) == ["no model run, and no decisive provenance metadata"]


def test_a_model_that_stated_no_verdict_is_said_so():
    fused = fuse("unknown", None, [])
    assert fused.verdict == "unknown" and words(fused) == ["the model stated no verdict"]


def test_probabilities_are_never_rounded_to_a_certainty_the_model_did_not_state():
    assert words(fuse("real", 0.00004, []))[0] == "model says real (P(fake) = <0.1%)"
    assert words(fuse("fake", 0.99996, []))[0] == "model says fake (P(fake) = >99.9%)"
    assert words(fuse("fake", 1.0, []))[0] == "model says fake (P(fake) = 100.0%)"
    assert words(fuse("real", 0.0, []))[0] == "model says real (P(fake) = 0.0%)"
