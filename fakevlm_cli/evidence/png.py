"""PNG text chunks (tEXt, zTXt, iTXt): the generation parameters that SD front ends write.

The chunk list is walked in the bytes; the image is never decoded. The walk goes on past IDAT (text chunks
are legal after the image data, and skipping an IDAT is one addition) and stops at IEND, at a length that
runs past the end of the file, or after MAX_CHUNKS. CRCs of text chunks are checked only to add a note:
a bad CRC does not stop the read. Compressed text is inflated with a cap per chunk (MAX_TEXT) and in total
(MAX_TOTAL_TEXT), so neither one zTXt bomb nor a thousand of them costs much.
"""

from __future__ import annotations

import re
import zlib

from . import xmp
from ._common import (
    classify_software,
    clip,
    describe_json_parameters,
    describe_parameters,
    dict_at,
    loads_json,
    summary,
)
from .types import Evidence, MetadataReport

SIGNATURE = b"\x89PNG\r\n\x1a\n"
MAX_CHUNKS = 100_000
MAX_TEXT = 4 * 1024 * 1024  # bytes of one chunk's inflated text
MAX_TOTAL_TEXT = 16 * 1024 * 1024  # bytes of text read from all of a file's chunks together
XMP_KEYWORD = "XML:com.adobe.xmp"
_JOB_ID = re.compile(r"Job ID:\s*[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\s*$", re.I)


def _inflate(blob: bytes, limit: int = MAX_TEXT) -> bytes:
    return zlib.decompressobj().decompress(blob, limit)  # at most `limit` bytes out


def _decode_latin(raw: bytes) -> str:
    """tEXt is Latin-1 by the spec, but several writers put UTF-8 there: prefer UTF-8 when it decodes."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def _text_chunk(ctype: bytes, body: bytes, limit: int = MAX_TEXT) -> tuple[str, str] | None:
    """(keyword, text) of one chunk, the text at most `limit` bytes."""
    keyword, sep, rest = body.partition(b"\x00")
    if not sep:
        return None
    key = keyword[:79].decode("latin-1")
    if ctype == b"tEXt":
        return key, _decode_latin(rest[:limit])
    if ctype == b"zTXt":
        return key, _decode_latin(_inflate(rest[1:], limit))
    # iTXt: compression flag, method, language\0, translated keyword\0, UTF-8 text
    if len(rest) < 2:
        return None
    compressed, rest = rest[0], rest[2:]
    _lang, _, rest = rest.partition(b"\x00")
    _translated, _, text = rest.partition(b"\x00")
    text = _inflate(text, limit) if compressed else text[:limit]
    return key, text.decode("utf-8", errors="replace")


def walk(data: bytes, notes: list[str]):
    """(chunk type, body start, body end) for each chunk before IEND; problems become notes."""
    if data[:8] != SIGNATURE:
        notes.append("png: not a PNG signature: chunks not read")
        return
    pos = 8
    for _ in range(MAX_CHUNKS):
        if pos + 8 > len(data):
            notes.append("png: chunk list truncated before IEND")
            return
        length = int.from_bytes(data[pos:pos + 4], "big")
        ctype = data[pos + 4:pos + 8]
        end = pos + 8 + length
        if ctype == b"IEND":
            return
        if end + 4 > len(data):
            notes.append(f"png: chunk {ctype.decode('latin-1')!r} declares {length} bytes past the end of the file")
            return
        yield ctype, pos + 8, end
        pos = end + 4


def text_chunks(data: bytes, notes: list[str]) -> list[tuple[str, str]]:
    """(keyword, text) of every text chunk in file order, MAX_TOTAL_TEXT bytes of text at most; problems
    become notes."""
    found, bad_crc = [], set()
    budget = MAX_TOTAL_TEXT
    for ctype, start, end in walk(data, notes):
        if ctype not in (b"tEXt", b"zTXt", b"iTXt"):
            continue
        if budget <= 0:
            notes.append(f"png: text chunks past the first {MAX_TOTAL_TEXT // 2**20} MiB of text were not read")
            break
        if zlib.crc32(data[start - 4:end]) != int.from_bytes(data[end:end + 4], "big"):
            bad_crc.add(ctype.decode())
        try:
            chunk = _text_chunk(ctype, data[start:end], min(MAX_TEXT, budget))
        except zlib.error as exc:
            notes.append(f"png: bad compressed {ctype.decode()} chunk: {exc}")
            chunk = None
        if chunk:
            found.append(chunk)
            budget -= max(len(chunk[1]), 1)
    for ctype in sorted(bad_crc):
        notes.append(f"png: bad CRC in a {ctype} chunk (read anyway)")
    return found


def read(data: bytes, report: MetadataReport) -> None:
    """Report generator markers in the PNG's text chunks, and its XMP packet."""
    chunks: dict[str, str] = {}
    for key, text in text_chunks(data, report.notes):
        chunks.setdefault(key, text)
    if XMP_KEYWORD in chunks:
        xmp.read_packet(chunks.pop(XMP_KEYWORD).encode("utf-8"), report)
    report.items.extend(describe_chunks(chunks))


def _item(key: str, value: str, generator: str) -> Evidence:
    return Evidence("png", key, value, "ai_generated", True, generator)


def describe_chunks(chunks: dict[str, str]) -> list[Evidence]:
    """Evidence for the known generator keywords in a keyword -> text map."""
    items: list[Evidence] = []
    low = {k.lower(): v for k, v in chunks.items()}
    if "parameters" in chunks:
        found = describe_parameters(chunks["parameters"], strict=False)
        if found:
            generator = "Fooocus" if "fooocus_scheme" in low else found[0]
            items.append(_item("parameters", found[1], generator))
    comfy = [_item(key, graph, "ComfyUI") for key in ("prompt", "workflow")
             if key in chunks and (graph := describe_comfy(key, chunks[key]))]
    items.extend(comfy or _easy_diffusion(low))  # Easy Diffusion's prompt chunk is text, not a graph
    items.extend(_invokeai(chunks))
    comment = chunks.get("Comment")
    if comment is not None:
        items.extend(_comment(comment, chunks))
    description = chunks.get("Description", "")
    if _JOB_ID.search(description):
        items.append(_item("Description", clip(description, 200), "Midjourney"))
    if "aesthetic_score" in chunks:
        items.append(_item("aesthetic_score", f"aesthetic_score={clip(chunks['aesthetic_score'], 30)}",
                           "Stable Diffusion"))
    software = chunks.get("Software", "").strip()
    if software and not any(i.generator == "NovelAI" for i in items):
        signal, maker = classify_software(software)
        items.append(Evidence("png", "Software", clip(software), signal, False, maker))
    return items


def _easy_diffusion(low: dict[str, str]) -> list[Evidence]:
    """Easy Diffusion's chunks: ``prompt`` beside ``negative_prompt`` or ``use_stable_diffusion_model`` (keywords
    lower-cased; a ``prompt`` that is a ComfyUI graph is not looked at here)."""
    if "prompt" not in low or not ("negative_prompt" in low or "use_stable_diffusion_model" in low):
        return []
    fields = {"model": low.get("use_stable_diffusion_model"), "sampler": low.get("sampler_name"),
              "steps": low.get("num_inference_steps")}
    return [_item("prompt", summary(fields, low["prompt"]), "Easy Diffusion")]


def describe_comfy(key: str, text: str) -> str | None:
    """Summary of a ComfyUI API graph (``prompt``) or UI graph (``workflow``); None if it is not one."""
    graph = loads_json(text)
    if key == "workflow":
        if isinstance(graph, dict) and isinstance(graph.get("nodes"), list):
            return f"UI workflow with {len(graph['nodes'])} nodes"
        return None
    if not isinstance(graph, dict):
        return None
    nodes = [n for n in graph.values() if isinstance(n, dict) and "class_type" in n]
    if not nodes:
        return None
    fields: dict[str, object] = {}
    prompt = None
    for node in nodes:
        inputs = dict_at(node, "inputs")
        for name, field in (("ckpt_name", "model"), ("unet_name", "model"), ("sampler_name", "sampler"),
                            ("steps", "steps")):
            value = inputs.get(name)
            if isinstance(value, (str, int)) and field not in fields:
                fields[field] = value
        if prompt is None and "CLIPTextEncode" in str(node.get("class_type")) and isinstance(inputs.get("text"), str):
            prompt = inputs["text"]
    return f"{len(nodes)} nodes; " + summary(fields, prompt)


def _invokeai(chunks: dict[str, str]) -> list[Evidence]:
    meta = chunks.get("invokeai_metadata")
    if meta is not None:
        obj = loads_json(meta)
        if isinstance(obj, dict):
            model = obj.get("model")
            model = (model.get("name") or model.get("model_name")) if isinstance(model, dict) else model
            text = summary({"model": model, "scheduler": obj.get("scheduler"), "steps": obj.get("steps")},
                           obj.get("positive_prompt"))
        else:
            text = "present"
        return [_item("invokeai_metadata", text, "InvokeAI")]
    if "invokeai_graph" in chunks:
        return [_item("invokeai_graph", "node graph present", "InvokeAI")]
    if "sd-metadata" in chunks:
        obj = loads_json(chunks["sd-metadata"])
        image = dict_at(obj, "image")
        prompt = image.get("prompt")
        if isinstance(prompt, list) and prompt and isinstance(prompt[0], dict):
            prompt = prompt[0].get("prompt")
        model = obj.get("model_weights") if isinstance(obj, dict) else None
        return [_item("sd-metadata", summary({"model": model, "sampler": image.get("sampler"),
                                              "steps": image.get("steps")}, prompt), "InvokeAI")]
    if "Dream" in chunks:
        return [_item("Dream", clip(chunks["Dream"]), "InvokeAI")]
    return []


def _comment(comment: str, chunks: dict[str, str]) -> list[Evidence]:
    """NovelAI (Software "NovelAI" + Comment JSON) or Fooocus (Comment JSON)."""
    obj = loads_json(comment)
    if not isinstance(obj, dict):
        return []
    if chunks.get("Software", "").strip().lower() == "novelai":
        prompt = obj.get("prompt") if isinstance(obj.get("prompt"), str) else chunks.get("Description")
        text = summary({"model": chunks.get("Source"), "sampler": obj.get("sampler"), "steps": obj.get("steps")},
                       prompt)
        return [_item("Comment", text, "NovelAI")]
    found = describe_json_parameters(obj)
    if found and found[0] == "Fooocus":
        return [_item("Comment", found[1], "Fooocus")]
    return []
