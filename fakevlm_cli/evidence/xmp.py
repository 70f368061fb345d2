"""XMP evidence: IPTC digital source type, creator tool, Google's credit line, edit history, Draw Things.

The packet is located without decoding the image (JPEG APP1, WebP ``XMP `` chunk, PNG iTXt via png.py, or
a raw ``<x:xmpmeta`` search for other containers) and parsed by defusedxml's ElementTree parser with DTDs,
entity declarations and external references refused, plus a size, a depth and an element limit of our own,
so entity-expansion bombs and pathological nesting are refused, not expanded.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import DefusedXMLParser

from . import sourcetypes
from ._common import classify_software, clip, describe_parameters
from .segments import jpeg_segments
from .types import Evidence, MetadataReport, Signal

MAX_PACKET = 2 * 1024 * 1024
MAX_DEPTH = 64
MAX_ELEMENTS = 50_000

RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
IPTC_EXT = "http://iptc.org/std/Iptc4xmpExt/2008-02-29/"
DST = f"{{{IPTC_EXT}}}DigitalSourceType"
DSFT = f"{{{IPTC_EXT}}}DigitalSourceFileType"  # Google's deprecated spelling
CREATOR_TOOL = "{http://ns.adobe.com/xap/1.0/}CreatorTool"
CREDIT = "{http://ns.adobe.com/photoshop/1.0/}Credit"
HISTORY = "{http://ns.adobe.com/xap/1.0/mm/}History"
ST_EVT = "http://ns.adobe.com/xap/1.0/sType/ResourceEvent#"
USER_COMMENT = "{http://ns.adobe.com/exif/1.0/}UserComment"
_WANTED = (DST, DSFT, CREATOR_TOOL, CREDIT, USER_COMMENT)

_APP1_XMP = b"http://ns.adobe.com/xap/1.0/\x00"


def riff_chunk(data: bytes, fourcc: bytes) -> bytes | None:
    """The payload of the first WebP (RIFF) chunk with this FourCC."""
    pos = 12
    while pos + 8 <= len(data):
        size = int.from_bytes(data[pos + 4:pos + 8], "little")
        if data[pos:pos + 4] == fourcc:
            return data[pos + 8:pos + 8 + size]
        pos += 8 + size + (size & 1)
    return None


def find_packet(data: bytes, fmt: str) -> bytes | None:
    """The XMP packet's bytes, or None. JPEG and WebP are walked (stopping at the image data); other
    containers keep the packet verbatim, so a byte search finds it."""
    if fmt in ("JPEG", "MPO") and data[:2] == b"\xff\xd8":
        for marker, start, end in jpeg_segments(data):
            if marker == 0xE1 and data[start:start + len(_APP1_XMP)] == _APP1_XMP:
                return data[start + len(_APP1_XMP):end]
        return None
    if fmt == "WEBP" and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return riff_chunk(data, b"XMP ")
    # Other containers (TIFF, HEIF, AVIF, GIF, ...): the packet is stored as-is somewhere in the file.
    start = data.find(b"<x:xmpmeta")
    if start < 0:
        return None
    end = data.find(b"</x:xmpmeta>", start)
    return data[start:end + len(b"</x:xmpmeta>") if end >= 0 else start + MAX_PACKET + 1]


def read(data: bytes, fmt: str, report: MetadataReport) -> None:
    """Find the packet in ``data`` and report what it says."""
    packet = find_packet(data, fmt)
    if packet:
        read_packet(packet, report)


class _BoundedTree:
    """The parser's target: an ElementTree builder that refuses deep nesting and too many elements, which
    defusedxml does not limit (a packet of ``<a>`` * 5000 is well-formed and entity-free)."""

    def __init__(self) -> None:
        self._builder = ET.TreeBuilder()
        self._depth = self._count = 0

    def start(self, tag: str, attrs: dict[str, str]) -> ET.Element:
        self._depth += 1
        self._count += 1
        if self._depth > MAX_DEPTH or self._count > MAX_ELEMENTS:
            raise ValueError("XML nested too deep or too many elements")
        return self._builder.start(tag, attrs)

    def end(self, tag: str) -> ET.Element:
        self._depth -= 1
        return self._builder.end(tag)

    def data(self, text: str) -> None:
        self._builder.data(text)

    def close(self) -> ET.Element:
        return self._builder.close()


def parse(packet: bytes) -> ET.Element:
    """Parse an XMP packet safely; raises ValueError on anything refused or malformed."""
    if len(packet) > MAX_PACKET:
        raise ValueError(f"packet too large ({len(packet)} bytes)")
    utf16 = packet[:2] in (b"\xff\xfe", b"\xfe\xff") or b"\x00" in packet[:4]
    parser = DefusedXMLParser(target=_BoundedTree(), forbid_dtd=True, forbid_entities=True, forbid_external=True)
    try:
        parser.feed(packet if utf16 else packet.rstrip(b"\x00 \t\r\n"))  # JPEG packets may be NUL-padded
        return parser.close()
    except DefusedXmlException:
        raise ValueError("DOCTYPE/ENTITY declarations are refused (entity expansion)") from None
    except ET.ParseError as exc:
        raise ValueError(f"malformed XML: {exc}") from None


def _text_of(el: ET.Element) -> str:
    """A property's value: rdf:resource, its text, or its first rdf:li (Alt/Seq/Bag)."""
    value = el.get(f"{{{RDF}}}resource") or (el.text or "").strip()
    if not value:
        value = next(((li.text or "").strip() for li in el.iter(f"{{{RDF}}}li") if (li.text or "").strip()), "")
    return value


def _first(el: ET.Element, name: str) -> str:
    """Value of ``name`` as an attribute or element anywhere under ``el`` (both RDF forms)."""
    for sub in el.iter():
        if name in sub.attrib:
            return sub.attrib[name]
        if sub.tag == name:
            return _text_of(sub)
    return ""


def read_packet(packet: bytes, report: MetadataReport) -> None:
    """Report the markers in one packet; a refused or broken packet becomes a note."""
    try:
        root = parse(packet)
    except (ValueError, RecursionError) as exc:
        report.notes.append(f"xmp: could not parse: {clip(exc, 200)}")
        return
    values = _values(root)
    tool = next((v.strip() for v in values[CREATOR_TOOL] if v.strip()), "")
    items = report.items
    for name, key in ((DST, "DigitalSourceType"), (DSFT, "DigitalSourceFileType")):
        for value in dict.fromkeys(v for v in values[name] if v.strip()):
            signal, strong, shown = sourcetypes.classify(value)
            generator = (tool or None) if signal.startswith("ai_") else None
            items.append(Evidence("xmp", key, shown, signal, strong, generator))
    if tool:
        signal, generator = classify_software(tool)
        items.append(Evidence("xmp", "CreatorTool", clip(tool), signal, False, generator))
    for credit in dict.fromkeys(values[CREDIT]):
        if "made with google ai" in credit.lower():
            items.append(Evidence("xmp", "Credit", clip(credit), "ai_generated", True, "Google AI"))
    for comment in values[USER_COMMENT]:
        found = describe_parameters(comment, strict=True)
        if found:
            items.append(Evidence("xmp", "UserComment", found[1], "ai_generated", True, found[0]))
    history = next(root.iter(HISTORY), None)
    if history is not None:
        _history(history, report)


def _values(root: ET.Element) -> dict[str, list[str]]:
    """Every value of the wanted properties, in document order, whichever RDF form holds them (an attribute
    of rdf:Description or a child element)."""
    values: dict[str, list[str]] = {name: [] for name in _WANTED}
    for el in root.iter():
        for name in _WANTED:
            if name in el.attrib:
                values[name].append(el.attrib[name])
        if el.tag in values:
            values[el.tag].append(_text_of(el))
    return values


def _history(history: ET.Element, report: MetadataReport) -> None:
    """xmpMM:History: how many events, which actions, which software agents."""
    events = list(history.iter(f"{{{RDF}}}li"))
    if not events:
        return
    actions = dict.fromkeys(a for a in (_first(li, f"{{{ST_EVT}}}action") for li in events) if a)
    agents = dict.fromkeys(a for a in (_first(li, f"{{{ST_EVT}}}softwareAgent") for li in events) if a)
    signal: Signal = "info"
    generator = None
    for agent in agents:
        agent_signal, agent_generator = classify_software(agent)
        if agent_signal == "ai_generated":
            signal, generator = agent_signal, agent_generator
            break
    if signal == "info" and set(actions) - {"created"}:
        signal = "edited"
    value = f"{len(events)} events ({', '.join(actions) or 'no action'})"
    if agents:
        value += f"; software: {', '.join(agents)}"
    report.items.append(Evidence("xmp", "History", clip(value, 200), signal, False, generator))
