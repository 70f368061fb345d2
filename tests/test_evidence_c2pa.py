"""Content Credentials: the real c2pa-rs test images in the shared corpus, a remote manifest, no c2pa-python."""

from __future__ import annotations

import io
import os
import sys
from pathlib import Path

import pytest
from PIL import Image

from fakevlm_cli import evidence
from fakevlm_cli.evidence import c2pa as c2pa_reader

CORPUS = Path(os.environ.get("FAKEVLM_CORPUS") or Path(__file__).resolve().parents[2] / "shared" / "corpus") / "c2pa"
needs_c2pa = pytest.mark.skipif(__import__("importlib").util.find_spec("c2pa") is None,
                                reason="c2pa-python is not installed")


def _corpus(name: str) -> evidence.MetadataReport:
    path = CORPUS / name
    if not path.is_file():
        pytest.skip(f"C2PA corpus file {path} is absent (set FAKEVLM_CORPUS to the corpus folder)")
    return evidence.collect(path, path.read_bytes(), "JPEG")


def _c2pa_items(report, **match):
    return [i for i in report.items if i.source == "c2pa" and all(getattr(i, k) == v for k, v in match.items())]


@needs_c2pa
def test_algorithmic_media_is_not_generative_ai():
    report = _corpus("C_algorithmicMedia.jpg")
    (action,) = _c2pa_items(report, key="c2pa.actions")
    assert action.value.startswith("c2pa.created: algorithmicMedia") and "Make Test Images" in action.value
    assert (action.signal, action.strong) == ("info", False)
    assert not any(i.signal.startswith("ai_") for i in report.items)
    assert _c2pa_items(report, key="validation")[0].value.startswith("manifest validates")


@needs_c2pa
def test_digital_capture():
    report = _corpus("C_digitalCapture_cawg.jpg")  # its URI carries a leading space: normalised
    (action,) = _c2pa_items(report, key="c2pa.actions")
    assert (action.signal, action.strong) == ("camera", False) and "digitalCapture" in action.value


@needs_c2pa
def test_no_source_type():
    report = _corpus("C_no_source_type.jpg")
    actions = {i.value: i.signal for i in _c2pa_items(report, key="c2pa.actions")}
    assert actions == {"c2pa.created": "info", "c2pa.drawing": "edited"}
    assert _c2pa_items(report, key="claim_generator")[0].value.startswith("make_test_images/0.6.1")


@needs_c2pa
def test_with_ingredient():
    report = _corpus("CA_with_ingredient.jpg")
    (ingredients,) = _c2pa_items(report, key="ingredients")
    assert ingredients.value == "1 ingredient(s): A.jpg"
    assert _c2pa_items(report, key="validation", signal="info")


@needs_c2pa
def test_invalid_signature_is_reported():
    report = _corpus("E-sig-CA_invalid_signature.jpg")
    (validation,) = _c2pa_items(report, key="validation")
    assert (validation.signal, validation.strong) == ("edited", False)
    assert "does not validate" in validation.value and "claimSignature.mismatch" in validation.value
    assert "signingCredential.untrusted" not in validation.value  # expected offline, not the failure
    assert "validation state: Invalid" in _c2pa_items(report, key="manifest")[0].value


def test_no_manifest_means_no_c2pa_items():
    report = _corpus("no_manifest.jpg")
    assert _c2pa_items(report) == [] and report.notes == []


def test_without_c2pa_python(monkeypatch):
    monkeypatch.setitem(sys.modules, "c2pa", None)  # makes `import c2pa` raise ImportError
    report = _corpus("C_algorithmicMedia.jpg")
    assert c2pa_reader.NOT_INSTALLED in report.notes
    assert [i.value for i in _c2pa_items(report)] == ["C2PA manifest present (not verified)"]


def test_without_c2pa_python_plain_file_has_no_note(monkeypatch):
    monkeypatch.setitem(sys.modules, "c2pa", None)
    buf = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buf, "JPEG")
    assert evidence.collect(None, buf.getvalue(), "JPEG").notes == []


@needs_c2pa
def test_remote_manifest_is_not_fetched(tmp_path):
    xmp = (b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
           b'<rdf:Description xmlns:dcterms="http://purl.org/dc/terms/" '
           b'dcterms:provenance="https://example.invalid/manifests/abc.c2pa"/></rdf:RDF></x:xmpmeta>')
    path = tmp_path / "remote.jpg"
    Image.new("RGB", (8, 8)).save(path, "JPEG", xmp=xmp)
    report = evidence.collect(path, path.read_bytes(), "JPEG")
    assert c2pa_reader.REMOTE_NOTE in report.notes
    (item,) = _c2pa_items(report)
    assert item.signal == "info" and "example.invalid" in item.value and "not fetched" in item.value


def test_describe_store_generative_ai_and_legacy_adobe():
    store = {"active_manifest": "m", "validation_state": "Valid", "manifests": {
        "m": {"claim_generator": "Adobe_Firefly/2.0", "assertions": [
            {"label": "c2pa.actions", "data": {"actions": [
                {"action": "c2pa.created", "softwareAgent": {"name": "Adobe Firefly", "version": "3"},
                 "parameters": {"com.adobe.digitalSourceType":
                                "https://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"}}]}},
            {"label": "com.adobe.generative-ai", "data": {"description": "Adobe Firefly"}}],
            "ingredients": [{"title": "parent.jpg"}]},
        "ing": {"assertions": [{"label": "c2pa.actions.v2", "data": {"actions": [
            {"action": "c2pa.created",
             "digitalSourceType": "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"}]}}]}}}
    items = {i.key: i for i in c2pa_reader.describe_store(store)}
    action = items["c2pa.actions"]
    assert (action.signal, action.strong, action.generator) == ("ai_generated", True, "Adobe Firefly 3")
    assert items["com.adobe.generative-ai"].signal == "ai_generated" and items["com.adobe.generative-ai"].strong
    assert items["claim_generator"].generator == "Adobe Firefly" and not items["claim_generator"].strong
    assert items["ingredient c2pa.actions"].signal == "ai_edited"


def test_describe_store_tolerates_junk():
    for store in ({}, {"manifests": []}, {"active_manifest": 3, "manifests": {"3": "x"}},
                  {"active_manifest": "m", "manifests": {"m": {"assertions": [None, {"label": "c2pa.actions",
                                                                                    "data": {"actions": "x"}}]}},
                   "validation_state": "Invalid", "validation_results": "?"}):
        items = c2pa_reader.describe_store(store)
        assert items[0].key == "manifest" and all(isinstance(i.value, str) for i in items)


# ---- signer trust (--trust-anchors) ------------------------------------------------------------------------------


def _issuing_cas(*names: str) -> str:
    """PEM of the CA certificates (not the signers') embedded in the corpus files' signatures: the test
    intermediates of c2pa-rs, an anchor an organisation could choose to trust."""
    import re

    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    found = {}
    for name in names:
        path = CORPUS / name
        if not path.is_file():
            pytest.skip(f"C2PA corpus file {path} is absent (set FAKEVLM_CORPUS to the corpus folder)")
        data = path.read_bytes()
        for m in re.finditer(rb"\x30\x82", data):  # DER certificates in the COSE x5chain
            der = data[m.start():m.start() + 4 + int.from_bytes(data[m.start() + 2:m.start() + 4], "big")]
            try:
                cert = x509.load_der_x509_certificate(der)
            except ValueError:
                continue
            if "Intermediate" in cert.subject.rfc4514_string():
                found[cert.serial_number] = cert.public_bytes(Encoding.PEM).decode("ascii")
    assert found, "no issuing CA found in the corpus signatures"
    return "".join(found.values())


def _unrelated_ca() -> str:
    """A freshly made self-signed CA that signed none of the corpus."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import Encoding
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fakevlm test root")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now)
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    return cert.public_bytes(Encoding.PEM).decode("ascii")


VALID = ("C_algorithmicMedia.jpg", "C_digitalCapture_cawg.jpg", "C_no_source_type.jpg", "CA_with_ingredient.jpg")


def _signer(name: str, anchors: str | None):
    path = CORPUS / name
    if not path.is_file():
        pytest.skip(f"C2PA corpus file {path} is absent (set FAKEVLM_CORPUS to the corpus folder)")
    report = evidence.collect(path, path.read_bytes(), "JPEG", trust_anchors=anchors)
    (signer,) = _c2pa_items(report, key="signer")
    (validation,) = _c2pa_items(report, key="validation")
    return signer, validation


@needs_c2pa
@pytest.mark.parametrize("name", VALID)
def test_signer_trust_without_anchors_is_unknown(name):
    signer, validation = _signer(name, None)
    assert (signer.trust, signer.signal, signer.strong) == ("unknown", "info", False)
    assert "signed by C2PA Signer" in signer.value and "no trust anchors given" in signer.value
    assert validation.value == "manifest validates (signer not checked against trust anchors)"
    assert signer.to_dict()["trust"] == "unknown"


@needs_c2pa
@pytest.mark.parametrize("name", VALID)
def test_signer_chaining_to_an_anchor_is_trusted(name):
    signer, validation = _signer(name, _issuing_cas(*VALID))
    assert (signer.trust, signer.signal, signer.strong) == ("trusted", "info", False)
    assert "chains to a --trust-anchors certificate" in signer.value
    assert validation.value == "manifest validates and its signer is trusted (see signer)"


@needs_c2pa
@pytest.mark.parametrize("name", VALID)
def test_signer_chaining_to_no_anchor_is_untrusted(name):
    signer, validation = _signer(name, _unrelated_ca())
    assert signer.trust == "untrusted" and "no more than unsigned metadata" in signer.value
    assert validation.value == "manifest validates, but its signer is not trusted (see signer)"


@needs_c2pa
def test_a_trusted_signer_of_an_invalid_manifest_vouches_for_nothing():
    signer, validation = _signer("E-sig-CA_invalid_signature.jpg", _issuing_cas(*VALID))
    assert signer.trust == "trusted" and "the signature vouches for nothing in this file" in signer.value
    assert validation.signal == "edited" and "claimSignature.mismatch" in validation.value


@needs_c2pa
def test_trust_anchors_never_decide_a_verdict():
    from fakevlm_cli.run.fusion import fuse

    path = CORPUS / "C_digitalCapture_cawg.jpg"
    if not path.is_file():
        pytest.skip(f"C2PA corpus file {path} is absent")
    report = evidence.collect(path, path.read_bytes(), "JPEG", trust_anchors=_issuing_cas(*VALID))
    assert fuse(None, None, report.items).verdict == "unknown"  # a trusted camera signature is still not "real"


def test_read_anchors(tmp_path):
    good, bad, empty = tmp_path / "good.pem", tmp_path / "bad.pem", tmp_path / "empty.pem"
    pem = _unrelated_ca()
    good.write_text("comment lines around PEM blocks are allowed\n" + pem + pem)
    bad.write_text("-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n")
    empty.write_text("")
    assert c2pa_reader.read_anchors(good).count("BEGIN CERTIFICATE") == 2
    for path in (bad, empty, tmp_path / "missing.pem"):
        with pytest.raises(ValueError, match=r"not a PEM bundle|cannot read"):
            c2pa_reader.read_anchors(path)


def test_ingredient_signers_are_listed_with_their_own_trust():
    store = {"active_manifest": "m", "validation_state": "Valid",
             "validation_results": {"activeManifest": {"success": [{"code": "signingCredential.trusted"}]}},
             "manifests": {
                 "m": {"signature_info": {"common_name": "Newsroom", "issuer": "Newsroom CA"},
                       "ingredients": [{"title": "in.jpg", "active_manifest": "ing", "validation_results": {
                           "activeManifest": {"failure": [{"code": "signingCredential.untrusted"}]}}}]},
                 "ing": {"signature_info": {"common_name": "Someone"}}}}
    items = [i for i in c2pa_reader.describe_store(store, anchored=True) if i.key == "signer"]
    assert [(i.trust, i.value.split(":")[0]) for i in items] == [
        ("trusted", "active manifest signed by Newsroom (issuer Newsroom CA)"),
        ("untrusted", "ingredient manifest signed by Someone")]


@needs_c2pa
def test_scan_trust_anchors_end_to_end(cli, tmp_path):
    import json

    import jsonschema

    from fakevlm_cli.core.record import load_schema

    anchors = tmp_path / "anchors.pem"
    anchors.write_text(_issuing_cas(*VALID))
    path = CORPUS / "C_algorithmicMedia.jpg"
    result = cli("scan", "--no-model", "--format", "jsonl", "--trust-anchors", anchors, path)
    assert result.exit_code == 0, result.output
    (record,) = [json.loads(line) for line in result.stdout.splitlines()]
    jsonschema.validate(record, load_schema())
    (signer,) = [e for e in record["evidence"] if e["key"] == "signer"]
    assert signer["trust"] == "trusted" and record["verdict"] == "unknown"

    bad = tmp_path / "bad.pem"
    bad.write_text("hello")
    result = cli("scan", "--no-model", "--trust-anchors", bad, path)
    assert result.exit_code == 2
    assert result.stderr.strip() == (f"fakevlm: error: {bad}: not a PEM bundle of X.509 certificates "
                                     "(-----BEGIN CERTIFICATE----- blocks)")


# ---- the c2pa library's settings limit (issue 23, item 2) -------------------------------------------------------


def _bundle(tmp_path: Path, count: int) -> Path:
    """A PEM bundle of `count` certificates (one certificate repeated: the library counts bytes, not keys)."""
    path = tmp_path / f"anchors-{count}.pem"
    path.write_text(_unrelated_ca() * count)
    return path


@pytest.mark.parametrize("count", [1, 2000])
def test_a_bundle_within_the_c2pa_settings_limit_is_taken(tmp_path, count):
    assert c2pa_reader.read_anchors(_bundle(tmp_path, count)).count("BEGIN CERTIFICATE") == count


@pytest.mark.parametrize("count", [2300, 20_000])
def test_a_bundle_past_the_c2pa_settings_limit_is_refused_up_front(tmp_path, count):
    """c2pa-python refuses a settings string over 1 MiB; such a bundle used to turn C2PA off for every file."""
    with pytest.raises(ValueError, match=r"certificates make [\d,]+ bytes of c2pa trust settings, over the c2pa "
                                         r"library's limit of 1,048,576 bytes") as caught:
        c2pa_reader.read_anchors(_bundle(tmp_path, count))
    assert "\n" not in str(caught.value) and f"its {count:,} certificates" in str(caught.value)


@needs_c2pa
def test_the_settings_limit_is_the_c2pa_librarys_own():
    """MAX_SETTINGS_BYTES is what c2pa-python really takes: settings of that many bytes build, one more fails."""
    import json

    import c2pa

    fits = {"pad": "x" * (c2pa_reader.MAX_SETTINGS_BYTES - len('{"pad": ""}'))}
    assert len(json.dumps(fits)) == c2pa_reader.MAX_SETTINGS_BYTES
    c2pa.Context.from_dict(fits)
    fits["pad"] += "x"
    with pytest.raises(c2pa.C2paError, match="StringTooLong"):
        c2pa.Context.from_dict(fits)


@needs_c2pa
def test_scan_refuses_a_bundle_past_the_limit_before_any_work(cli, tmp_path):
    from factories import camera_jpeg

    anchors, photo = _bundle(tmp_path, 2300), camera_jpeg(tmp_path / "photo.jpg")
    result = cli("scan", "--no-model", "--format", "jsonl", "--trust-anchors", anchors, photo)
    assert result.exit_code == 2 and result.stdout == ""
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"fakevlm: error: {anchors}: its 2,300 certificates make ") and "1,048,576 bytes" in line


@needs_c2pa
def test_a_c2pa_settings_failure_at_run_time_is_the_records_error(tmp_path, monkeypatch):
    """Provenance switched off for every file is loud: an error record (a still and a clip), never a note."""
    import c2pa
    from factories import c2pa_signed, plain_png, video_clip

    from fakevlm_cli.core.errors import ImageError
    from fakevlm_cli.core.options import JudgeOptions
    from fakevlm_cli.media.discover import Candidate
    from fakevlm_cli.run.pipeline import Scanner

    src = tmp_path / "src.jpg"
    Image.open(plain_png(tmp_path / "p.png")).convert("RGB").save(src)
    signed = c2pa_signed(src, tmp_path / "signed.jpg", "image/jpeg")
    clip = video_clip(tmp_path / "clip.mp4", [Image.new("RGB", (32, 32))] * 2)

    def refuse(config):
        raise c2pa.C2paError("StringTooLong: settings_str")

    monkeypatch.setattr(c2pa.Context, "from_dict", refuse)
    monkeypatch.setattr(c2pa_reader, "_contexts", {})
    for anchors in (None, "PEM"):
        with pytest.raises(ImageError, match="the c2pa library refused its settings"):
            evidence.collect(signed, signed.read_bytes(), "JPEG", trust_anchors=anchors)
    records = list(Scanner(None, JudgeOptions()).run([Candidate(p, explicit=True) for p in (signed, clip)]))
    assert len(records) == 2
    for record in records:
        assert record.verdict == "error" and "content credentials cannot be checked" in record.error, record
        assert "StringTooLong" in record.error and "\n" not in record.error
