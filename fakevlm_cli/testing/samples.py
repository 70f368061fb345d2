"""A folder of sample files for `fakevlm demo`: each kind of evidence fakevlm reads, with its right answer known.

The pictures are the toy FakeVLM's own (testing/toy.py): fakes carry the toy's planted 1-px checkerboard, reals
do not, so the toy judges them right. The other files are decided by what they carry, whatever their pixels:
a generator's PNG parameters chunk, an XMP DigitalSourceType, a C2PA manifest signed with a throwaway local
certificate (valid signature, untrusted signer: nothing is fetched, no real key is involved), camera EXIF, a
phone HEIC, a short clip with one fake frame, and a broken file. Everything is made here, offline, in a second.

`Sample.expected` is what a scan should conclude (the demo's test checks it): "fake" or "real", or "error".
"""

from __future__ import annotations

import datetime
import io
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, PngImagePlugin

from fakevlm_cli.testing import toy

# Seeds far from the toy's training and test seeds (toy.FRESH_SEEDS is where fresh images start).
_SEED = toy.FRESH_SEEDS + 900_000
A1111_PARAMETERS = ("a photo of a lighthouse at dusk\nNegative prompt: blurry\n"
                    "Steps: 20, Sampler: Euler a, CFG scale: 7, Seed: 42, Size: 512x512, Model: sd15")
AI_SOURCE = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
_XMP = """<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>
<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
<rdf:Description rdf:about="" xmlns:Iptc4xmpExt="http://iptc.org/std/Iptc4xmpExt/2008-02-29/"
 Iptc4xmpExt:DigitalSourceType="{uri}"/></rdf:RDF></x:xmpmeta><?xpacket end="w"?>"""


@dataclass(frozen=True)
class Sample:
    name: str
    expected: str  # what a scan concludes: "fake", "real" or "error"
    why: str  # what decides it, in a few words
    make: Callable[[Path], None]


def _picture(n: int, fake: bool) -> Image.Image:
    return toy.toy_image(_SEED + n, fake=fake).image


def _png(n: int, fake: bool) -> Callable[[Path], None]:
    return lambda path: _picture(n, fake).save(path, "PNG")


def _camera_jpeg(path: Path) -> None:
    exif = Image.Exif()
    exif[0x010F], exif[0x0110], exif[0x0131] = "Canon", "Canon EOS R5", "Firmware 1.2"
    _picture(10, False).save(path, "JPEG", exif=exif.tobytes(), quality=100, subsampling=0)


def _generator_png(path: Path) -> None:
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", A1111_PARAMETERS)
    _picture(11, False).save(path, "PNG", pnginfo=info)  # pixels the toy calls real: the chunk decides


def _xmp_jpeg(path: Path) -> None:
    xmp = _XMP.format(uri=AI_SOURCE).encode("utf-8")
    _picture(12, False).save(path, "JPEG", xmp=xmp, quality=100, subsampling=0)


def _c2pa_jpeg(path: Path) -> None:
    buf = io.BytesIO()
    _picture(13, False).save(buf, "JPEG", quality=100, subsampling=0)
    sign_c2pa(buf.getvalue(), path, "image/jpeg")


def _heic(path: Path) -> None:
    import pillow_heif

    exif = Image.Exif()
    exif[0x010F], exif[0x0110] = "Apple", "iPhone 15 Pro"
    pillow_heif.from_pillow(_picture(14, True)).save(str(path), quality=-1, chroma=444, exif=exif.tobytes())


def _clip(path: Path) -> None:
    """Three seconds at 1 fps, the middle frame fake (near-lossless H.264: the checkerboard survives)."""
    import av

    container = av.open(str(path), "w")
    stream = container.add_stream("libx264", rate=1)
    stream.width = stream.height = toy.IMAGE_SIZE
    stream.pix_fmt, stream.options = "yuv420p", {"crf": "10"}
    for i, fake in enumerate((False, True, False)):
        for packet in stream.encode(av.VideoFrame.from_image(_picture(20 + i, fake))):
            container.mux(packet)
    for packet in stream.encode(None):
        container.mux(packet)
    container.close()


def _broken(path: Path) -> None:
    buf = io.BytesIO()
    _picture(15, False).save(buf, "JPEG", quality=90)
    path.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])


SAMPLES = (
    Sample("toy-fake-1.png", "fake", "the toy's checkerboard artifact", _png(1, True)),
    Sample("toy-fake-2.png", "fake", "the toy's checkerboard artifact", _png(2, True)),
    Sample("toy-fake-3.png", "fake", "the toy's checkerboard artifact", _png(3, True)),
    Sample("toy-real-1.png", "real", "no artifact", _png(4, False)),
    Sample("toy-real-2.png", "real", "no artifact", _png(5, False)),
    Sample("toy-real-3.png", "real", "no artifact", _png(6, False)),
    Sample("camera.jpg", "real", "camera EXIF (not decisive) and the model", _camera_jpeg),
    Sample("stable-diffusion.png", "fake", "a generator's parameters chunk (decisive)", _generator_png),
    Sample("xmp-ai-source.jpg", "fake", "XMP DigitalSourceType: trainedAlgorithmicMedia (decisive)", _xmp_jpeg),
    Sample("c2pa-ai-source.jpg", "fake", "a C2PA manifest: created by a generator (decisive)", _c2pa_jpeg),
    Sample("phone.heic", "fake", "a HEIC from a phone, its pixels judged by the model", _heic),
    Sample("clip.mp4", "fake", "one fake frame in a three-second clip", _clip),
    Sample("broken.jpg", "error", "a truncated JPEG", _broken),
)


def write_samples(folder: Path) -> list[Path]:
    """Make every sample in `folder` that is not there yet (a second run reuses them); returns their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    made = []
    for sample in SAMPLES:
        path = folder / sample.name
        if not path.exists():
            tmp = path.with_name(f".{path.name}.part{path.suffix}")
            sample.make(tmp)
            tmp.replace(path)
        made.append(path)
    return made


def sign_c2pa(data: bytes, dst: Path, mime: str, source_type: str = AI_SOURCE, *,
              ca_pem: Path | None = None) -> Path:
    """`data` (a JPEG or PNG) with a C2PA manifest ("c2pa.created" by `source_type`) signed by a throwaway ES256
    certificate issued by a throwaway CA key — a valid signature that nobody trusts — written to `dst` by
    c2pa-python. `ca_pem`, when given, receives the issuing CA's certificate (a trust anchor for the file)."""
    import c2pa
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    leaf = _certificate("fakevlm sample signer", "fakevlm sample CA", key, ca_key, ca=False)
    if ca_pem is not None:
        ca = _certificate("fakevlm sample CA", "fakevlm sample CA", ca_key, ca_key, ca=True)
        ca_pem.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    signer = c2pa.Signer.from_info(c2pa.C2paSignerInfo(
        alg=b"es256", sign_cert=leaf.public_bytes(serialization.Encoding.PEM), ta_url=None,
        private_key=key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption())))
    manifest = {"claim_generator_info": [{"name": "fakevlm-samples", "version": "1"}], "title": dst.name,
                "assertions": [{"label": "c2pa.actions", "data": {"actions": [
                    {"action": "c2pa.created", "digitalSourceType": source_type}]}}]}
    with io.BytesIO(data) as source, open(dst, "w+b") as out:
        c2pa.Builder(json.dumps(manifest)).sign(signer, mime, source, out)
    return dst


def _certificate(name: str, issuer: str, key, signing_key, *, ca: bool):
    """A week-long certificate for `key`, issued by `signing_key`: a CA, or a signer with the C2PA signer
    profile (digitalSignature, an allowed extended key usage)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    def dn(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn),
                          x509.NameAttribute(NameOID.ORGANIZATION_NAME, "fakevlm samples")])

    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (x509.CertificateBuilder().subject_name(dn(name)).issuer_name(dn(issuer))
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=7))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
               .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False))
    if ca:
        builder = builder.add_extension(x509.KeyUsage(True, False, False, False, False, True, True, False, False),
                                        critical=True)
    else:
        builder = (builder
                   .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(signing_key.public_key()),
                                  critical=False)
                   .add_extension(x509.KeyUsage(True, False, False, False, False, False, False, False, False),
                                  critical=True)
                   .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False))
    return builder.sign(signing_key, hashes.SHA256())
