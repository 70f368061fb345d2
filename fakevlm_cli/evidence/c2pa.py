"""Content Credentials (C2PA) through c2pa-python, read from the bytes already in memory.

c2pa-python is imported only when the bytes show a C2PA marker (a JUMBF ``jumb`` box labelled ``c2pa``, a
PNG ``caBX`` chunk, or an XMP ``provenance`` reference to a remote manifest), so ordinary files cost a walk
of their metadata boxes. The Reader gets a Context that forbids remote manifest fetches, OCSP and every network host: a
remote manifest is reported as such and never fetched (privacy, and these machines have no network).

Assertions keep their strength whether or not the manifest validates: an AI source type written by a
generator is as explicit as a PNG ``parameters`` chunk, which is not signed at all. Validation is reported
separately; an invalid manifest is an ``edited`` hint (the file or its manifest changed after signing).

Each manifest's signer is reported with its trust: with ``--trust-anchors FILE`` (a PEM bundle handed to the
c2pa library's own trust settings, ``trust.trust_anchors``; checked offline) a signer whose certificate
chains to one of them is ``trusted``, any other ``untrusted``; without anchors it is ``unknown`` unless the
library's own trust list vouches for it. Trust says who signed, not whether the picture is real: a trusted
camera maker's signature on ``digitalCapture`` is still only ``camera`` evidence, and a trusted generator's
signature on ``trainedAlgorithmicMedia`` was already decisive without it.
"""

from __future__ import annotations

import io
import json
import re

from fakevlm_cli.core.errors import ImageError

from . import png, sourcetypes
from ._common import classify_software, clip, dict_at, list_at
from .segments import jpeg_segments
from .types import Evidence, MetadataReport, Trust
from .xmp import riff_chunk

NOT_INSTALLED = "c2pa-python is not installed: content credentials were not checked"
REMOTE_NOTE = "remote manifest, not fetched"
_MIME = {"JPEG": "image/jpeg", "MPO": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp", "GIF": "image/gif",
         "TIFF": "image/tiff", "HEIF": "image/heif", "AVIF": "image/avif", "JXL": "image/jxl",
         "MP4": "video/mp4", "M4V": "video/mp4", "MOV": "video/quicktime", "AVI": "video/x-msvideo"}
# Actions that record where the asset came from rather than a change to it.
_NEUTRAL_ACTIONS = {"c2pa.created", "c2pa.opened", "c2pa.placed", "c2pa.published", "c2pa.transcoded",
                    "c2pa.repackaged", "c2pa.converted", "c2pa.watermarked", "c2pa.unknown"}
TRUSTED_CODE, UNTRUSTED_CODE = "signingCredential.trusted", "signingCredential.untrusted"
_UNTRUSTED = (UNTRUSTED_CODE,)  # reported on the signer item, not as a validation failure
MAX_ACTIONS = 32
MAX_ANCHORS_BYTES = 16 * 1024 * 1024  # read no more of a --trust-anchors file (comments around PEM blocks count)
# c2pa-python hands its settings to the native library as one JSON string of at most 1 MiB (longer: C2paError
# "StringTooLong: settings_str"; measured with c2pa-python 0.38.1: 1,048,576 bytes accepted, 1,048,578 refused).
# The anchors' PEM is most of it: about 2,100 typical certificates.
MAX_SETTINGS_BYTES = 1024 * 1024
_contexts: dict[str | None, object] = {}  # one c2pa Context per trust-anchor bundle (None: no anchors)


def read_anchors(path) -> str:
    """The PEM bundle of trust anchors in `path`, checked: ValueError (a one-line reason) when it is unreadable,
    too big, or holds no certificate that parses."""
    from cryptography import x509

    try:
        with open(path, "rb") as fh:
            raw = fh.read(MAX_ANCHORS_BYTES + 1)
    except OSError as exc:
        raise ValueError(f"cannot read: {exc.strerror or exc}") from None
    if len(raw) > MAX_ANCHORS_BYTES:
        raise ValueError(f"bigger than {MAX_ANCHORS_BYTES // 2**20} MiB: not a PEM bundle of trust anchors")
    try:
        certificates = x509.load_pem_x509_certificates(raw)
    except ValueError:
        raise ValueError("not a PEM bundle of X.509 certificates (-----BEGIN CERTIFICATE----- blocks)") from None
    pem = "".join(c.public_bytes(_pem()).decode("ascii") for c in certificates)
    size = len(json.dumps(_settings(pem)))  # what c2pa-python's Context.from_dict hands to the native library
    if size > MAX_SETTINGS_BYTES:
        raise ValueError(f"its {len(certificates):,} certificates make {size:,} bytes of c2pa trust settings, over "
                         f"the c2pa library's limit of {MAX_SETTINGS_BYTES:,} bytes (1 MiB, about 2,100 "
                         "certificates): keep only the roots you trust")
    try:
        import c2pa
    except ImportError:
        return pem
    try:
        _context_for(c2pa, pem)  # built now, so a bundle the library refuses stops the run before any work
    except C2paSettingsError as exc:
        raise ValueError(str(exc)) from None
    return pem


class C2paSettingsError(ImageError):
    """The c2pa library refused fakevlm's settings: provenance cannot be checked at all. Never a note: a file
    with a manifest gets an error record rather than a verdict that silently ignored its manifest."""


def _pem():
    from cryptography.hazmat.primitives.serialization import Encoding

    return Encoding.PEM


def _settings(trust_anchors: str | None) -> dict:
    """The Reader settings: no network ever; trust anchors, when given, through the library's trust settings."""
    settings: dict = {"verify": {"remote_manifest_fetch": False, "ocsp_fetch": False},
                      "core": {"allowed_network_hosts": []}}
    if trust_anchors:
        settings["trust"] = {"trust_anchors": trust_anchors}
        settings["verify"]["verify_trust"] = True
    return settings


def _context_for(c2pa, trust_anchors: str | None):
    """The Reader context for these anchors (one per bundle), or C2paSettingsError when the library refuses it."""
    if trust_anchors not in _contexts:
        try:
            _contexts[trust_anchors] = c2pa.Context.from_dict(_settings(trust_anchors))
        except c2pa.C2paError as exc:
            what = "its settings with these trust anchors" if trust_anchors else "its settings"
            raise C2paSettingsError(f"content credentials cannot be checked: the c2pa library refused {what} "
                                    f"({clip(str(exc), 120)})") from None
    return _contexts[trust_anchors]


def markers(data: bytes, fmt: str) -> tuple[bool, bool]:
    """(embedded manifest marker, remote manifest hint) from the bytes alone.

    JPEG, PNG and WebP are walked to the boxes that can hold a manifest or the XMP that can point to a
    remote one (a search of a whole 3 MB file costs about a millisecond per pattern); other containers
    are searched whole.
    """
    if fmt in ("JPEG", "MPO") and data[:2] == b"\xff\xd8":
        app = [data[a:b] for m, a, b in jpeg_segments(data) if m in (0xE1, 0xEB)]  # XMP, JUMBF
        return any(b"jumb" in s and b"c2pa" in s for s in app), any(b"provenance" in s for s in app)
    if fmt == "PNG" and data[:8] == png.SIGNATURE:
        chunks = [(t, a, b) for t, a, b in png.walk(data, []) if t in (b"caBX", b"iTXt", b"tEXt")]
        return (any(t == b"caBX" for t, _, _ in chunks),
                any(b"provenance" in data[a:b] for t, a, b in chunks if t != b"caBX"))
    if fmt == "WEBP" and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return riff_chunk(data, b"C2PA") is not None, b"provenance" in (riff_chunk(data, b"XMP ") or b"")
    return data.find(b"jumb") >= 0 and data.find(b"c2pa") >= 0, data.find(b"provenance") >= 0


def read(data: bytes, fmt: str, report: MetadataReport, *, trust_anchors: str | None = None) -> None:
    """Report the manifest store of ``data`` when it has one; signers are checked against ``trust_anchors``."""
    embedded, remote = markers(data, fmt)
    if not (embedded or remote):
        return
    mime = _MIME.get(fmt)
    _read_with(lambda c2pa, context: (c2pa.Reader.try_create(mime, io.BytesIO(data), context=context) if mime
                                      else c2pa.Reader.try_create(io.BytesIO(data), context=context)),
               embedded, report, trust_anchors)


def read_stream(stream, fmt: str, report: MetadataReport, *, trust_anchors: str | None = None) -> None:
    """Report the manifest store of a file read as a stream (a video, never held in memory whole)."""
    mime = _MIME.get(fmt)
    if mime is not None:
        _read_with(lambda c2pa, context: c2pa.Reader.try_create(mime, stream, context=context), False, report,
                   trust_anchors)


def _read_with(make_reader, embedded: bool, report: MetadataReport, trust_anchors: str | None) -> None:
    try:
        import c2pa
    except ImportError:
        report.notes.append(NOT_INSTALLED)
        if embedded:
            report.items.append(Evidence("c2pa", "manifest", "C2PA manifest present (not verified)", "info"))
        return
    context = _context_for(c2pa, trust_anchors)
    try:
        reader = make_reader(c2pa, context)
        if reader is None:
            return
        with reader:
            store = json.loads(reader.json())
            if not reader.is_embedded():  # cannot happen with fetching off; kept as a guard
                report.notes.append(REMOTE_NOTE)
    except c2pa.C2paError as exc:
        message = str(exc)
        if isinstance(exc, c2pa.C2paError.RemoteManifest) or message.startswith("Remote"):
            report.notes.append(REMOTE_NOTE)
            url = re.search(r"https?://[^\s\"']+", message)
            where = f" at {clip(url.group(0), 160)}" if url else ""
            report.items.append(Evidence("c2pa", "manifest", f"remote manifest{where}, not fetched", "info"))
        else:
            report.notes.append(f"c2pa: could not read the manifest: {clip(message, 200)}")
            if embedded:
                report.items.append(Evidence("c2pa", "manifest", "C2PA manifest present (unreadable)", "info"))
        return
    report.items.extend(describe_store(store, anchored=bool(trust_anchors)))


def describe_store(store: dict, anchored: bool = False) -> list[Evidence]:
    """Evidence from a manifest store as ``Reader.json()`` gives it; `anchored`: trust anchors were given."""
    manifests = dict_at(store, "manifests")
    active_label = store.get("active_manifest")
    active = manifests.get(active_label) if isinstance(active_label, str) else None
    state = str(store.get("validation_state") or "unknown")
    items = [Evidence("c2pa", "manifest", f"Content Credentials present (validation state: {state})", "info")]
    if isinstance(active, dict):
        items.extend(_claim_generator(active))
        items.extend(_assertions(active))
        ingredients = list_at(active, "ingredients")
        if ingredients:
            titles = ", ".join(str(i.get("title", "?")) for i in ingredients[:5] if isinstance(i, dict))
            items.append(Evidence("c2pa", "ingredients", clip(f"{len(ingredients)} ingredient(s): {titles}"), "info"))
    for label, manifest in manifests.items():  # an ingredient made by AI makes the result AI-edited
        if label != active_label and isinstance(manifest, dict):
            for item in _assertions(manifest):
                if item.signal == "ai_generated" and item.strong:
                    items.append(Evidence("c2pa", "ingredient " + item.key, item.value, "ai_edited", True,
                                          item.generator))
    labels = [active_label] if isinstance(active, dict) and isinstance(active_label, str) else []
    labels += [label for label in manifests if label != active_label and isinstance(manifests[label], dict)]
    signers = [_signer(store, label, label == active_label, anchored, state) for label in labels]
    active_trust = signers[0].trust if labels and labels[0] == active_label else None
    return [*items, _validation(store, state, anchored, active_trust), *signers]


def _codes(results: object) -> tuple[set[str], set[str]]:
    """(success codes, failure codes) of a `validation_results`-style block."""
    def codes(key: str) -> set[str]:
        return {str(c.get("code")) for c in list_at(results, key) if isinstance(c, dict)}

    return codes("success"), codes("failure")


def _trust_codes(store: dict, label: str, active: bool) -> tuple[set[str], set[str]]:
    """The success and failure codes that speak for one manifest's signing credential."""
    if active:
        success, failure = _codes(dict_at(dict_at(store, "validation_results"), "activeManifest"))
        failure |= {str(c.get("code")) for c in list_at(store, "validation_status") if isinstance(c, dict)}
        if store.get("validation_state") == "Trusted":
            success.add(TRUSTED_CODE)
        return success, failure
    for owner in dict_at(store, "manifests").values():  # an ingredient's own results, where its parent lists it
        for ingredient in list_at(owner, "ingredients"):
            if isinstance(ingredient, dict) and ingredient.get("active_manifest") == label:
                success, failure = _codes(dict_at(dict_at(ingredient, "validation_results"), "activeManifest"))
                failure |= {str(c.get("code")) for c in list_at(ingredient, "validation_status")
                            if isinstance(c, dict)}
                return success, failure
    return set(), set()


def _signer(store: dict, label: str, active: bool, anchored: bool, state: str) -> Evidence:
    """Who signed one manifest, and whether their certificate chains to a trust anchor."""
    info = dict_at(dict_at(store, "manifests").get(label), "signature_info")
    name = str(info.get("common_name") or info.get("issuer") or "unknown signer")
    about = ", ".join(f"{k} {info[k]}" for k in ("issuer", "time") if info.get(k) and info[k] != name)
    who = f"{'active manifest' if active else 'ingredient manifest'} signed by {name}" + (f" ({about})" if about
                                                                                             else "")
    success, failure = _trust_codes(store, label, active)
    trust: Trust
    if TRUSTED_CODE in success:
        trust = "trusted"
        text = "trusted: its certificate chains to " + ("a --trust-anchors certificate" if anchored
                                                          else "the c2pa library's own trust list")
    elif anchored and UNTRUSTED_CODE in failure:
        trust = "untrusted"
        text = ("untrusted: its certificate chains to none of the --trust-anchors, so its claims weigh no more "
                "than unsigned metadata")
    else:
        trust = "unknown"
        text = ("trust unknown: no trust anchors given (--trust-anchors FILE)" if not anchored
                else "trust unknown: the signing credential was not checked")
    if active and state == "Invalid":
        text += "; the manifest does not validate, so the signature vouches for nothing in this file"
    return Evidence("c2pa", "signer", clip(f"{who}: {text}", 300), "info", False, None, trust)


def _claim_generator(manifest: dict) -> list[Evidence]:
    name = manifest.get("claim_generator")
    if not isinstance(name, str) or not name:
        info = manifest.get("claim_generator_info")
        names = [str(i.get("name")) for i in info if isinstance(i, dict) and i.get("name")] \
            if isinstance(info, list) else []
        name = " ".join(names)
    if not name:
        return []
    signal, generator = classify_software(name)
    return [Evidence("c2pa", "claim_generator", clip(name), signal, False, generator)]


def _agent_name(agent: object) -> str:
    if isinstance(agent, dict):
        return " ".join(str(agent[k]) for k in ("name", "version") if agent.get(k))
    return str(agent) if agent else ""


def _assertions(manifest: dict) -> list[Evidence]:
    items: list[Evidence] = []
    for assertion in list_at(manifest, "assertions"):
        if not isinstance(assertion, dict):
            continue
        label, data = str(assertion.get("label", "")), assertion.get("data")
        data = data if isinstance(data, dict) else {}
        if label.startswith("c2pa.actions"):
            for action in list_at(data, "actions")[:MAX_ACTIONS]:
                if isinstance(action, dict):
                    items.append(_action(action))
        elif label.startswith("com.adobe.generative-ai"):
            name = _agent_name(data.get("description") or data.get("name")) or "Adobe Firefly"
            items.append(Evidence("c2pa", label, clip(f"generative AI assertion: {name}"), "ai_generated", True,
                                  name))
    return items


def _action(action: dict) -> Evidence:
    name = str(action.get("action", "?"))
    params = dict_at(action, "parameters")
    source = action.get("digitalSourceType") or params.get("com.adobe.digitalSourceType")
    agent = _agent_name(action.get("softwareAgent"))
    if isinstance(source, str) and source.strip():
        signal, strong, shown = sourcetypes.classify(source)
        value = f"{name}: {shown}"
    else:
        signal, strong, value = ("info" if name in _NEUTRAL_ACTIONS else "edited"), False, name
    if agent:
        value += f"; softwareAgent: {agent}"
    generator = (agent or None) if signal.startswith("ai_") else None
    # One key for every version of the assertion (labels are versioned: c2pa.actions, c2pa.actions.v2).
    generator = clip(generator, 60) if generator else None
    return Evidence("c2pa", "c2pa.actions", clip(value, 200), signal, strong, generator)


def _validation(store: dict, state: str, anchored: bool = False, trust: str | None = None) -> Evidence:
    if state != "Invalid":
        if state in ("Valid", "Trusted") and trust == "trusted":
            text = "manifest validates and its signer is trusted (see signer)"
        elif state in ("Valid", "Trusted"):
            text = ("manifest validates, but its signer is not trusted (see signer)" if anchored
                    else "manifest validates (signer not checked against trust anchors)")
        else:
            text = f"validation state: {state}"
        return Evidence("c2pa", "validation", text, "info")
    results = store.get("validation_results")
    active = results.get("activeManifest") if isinstance(results, dict) else None
    failures = active.get("failure") if isinstance(active, dict) else store.get("validation_status")
    codes = [str(f.get("code")) for f in failures if isinstance(f, dict)] if isinstance(failures, list) else []
    codes = [c for c in codes if c not in _UNTRUSTED] or codes
    text = f"manifest does not validate: {', '.join(dict.fromkeys(codes)) or 'no failure code given'}"
    return Evidence("c2pa", "validation", clip(text, 200), "edited", False)
