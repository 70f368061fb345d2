"""Synthetic image files for the benchmarks, made fast.

Each kind of file is encoded once per size; every file written is that encoding with its own metadata
segment (a different timestamp, seed or prompt) spliced in at the byte level, so thousands of distinct files
cost milliseconds, and their decode cost is that of a real encoded picture of the stated size.

Kinds (cycled in this order by `make_metadata_folder`):

* ``camera.jpg`` - EXIF IFD0 Make / Model / DateTime and ExifIFD DateTimeOriginal (a camera photo)
* ``xmp.jpg`` - XMP ``Iptc4xmpExt:DigitalSourceType`` = trainedAlgorithmicMedia (a generator's marker)
* ``a1111.png`` - PNG tEXt ``parameters`` (AUTOMATIC1111 / Forge)
* ``comfy.png`` - PNG tEXt ``prompt`` and ``workflow`` (ComfyUI)
"""

from __future__ import annotations

import io
import json
import struct
import zlib
from pathlib import Path

XMP_DST = """<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>
<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
<rdf:Description rdf:about="" xmlns:Iptc4xmpExt="http://iptc.org/std/Iptc4xmpExt/2008-02-29/"
 xmlns:xmp="http://ns.adobe.com/xap/1.0/" xmp:CreateDate="{date}"
 Iptc4xmpExt:DigitalSourceType="http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"/>
</rdf:RDF></x:xmpmeta><?xpacket end="w"?>"""

A1111 = ("a photo of an astronaut riding a horse, file {i}\nNegative prompt: blurry, lowres\n"
         "Steps: 20, Sampler: Euler a, CFG scale: 7, Seed: {seed}, Size: 512x512, Model hash: 6ce0161689, "
         "Model: v1-5-pruned-emaonly")

KINDS = ("camera.jpg", "xmp.jpg", "a1111.png", "comfy.png")


def photo_like(width: int, height: int, seed: int = 0):
    """A photo-like RGB picture: smooth colour fields plus fine grain, so JPEG/PNG sizes are realistic."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    small = Image.fromarray(rng.integers(0, 256, (12, 16, 3), dtype=np.uint8), "RGB")
    base = np.asarray(small.resize((width, height), Image.BICUBIC), dtype=np.int16)
    grain = rng.integers(-12, 13, (height, width, 1), dtype=np.int16)
    return Image.fromarray(np.clip(base + grain, 0, 255).astype(np.uint8), "RGB")


def encode(image, fmt: str, **kwargs) -> bytes:
    buf = io.BytesIO()
    image.save(buf, fmt, **kwargs)
    return buf.getvalue()


# ---- byte-level metadata splicing -----------------------------------------------------------------------

def _jpeg_segment(marker: int, payload: bytes) -> bytes:
    if len(payload) + 2 > 0xFFFF:
        raise ValueError("JPEG segment too large")
    return bytes((0xFF, marker)) + struct.pack(">H", len(payload) + 2) + payload


def jpeg_with(jpeg: bytes, *, exif: bytes | None = None, xmp: str | None = None) -> bytes:
    """`jpeg` with APP1 EXIF and/or XMP segments inserted right after SOI (where cameras put them)."""
    assert jpeg[:2] == b"\xff\xd8", "not a JPEG"
    segments = b""
    if exif is not None:
        segments += _jpeg_segment(0xE1, exif if exif.startswith(b"Exif\x00\x00") else b"Exif\x00\x00" + exif)
    if xmp is not None:
        segments += _jpeg_segment(0xE1, b"http://ns.adobe.com/xap/1.0/\x00" + xmp.encode("utf-8"))
    return jpeg[:2] + segments + jpeg[2:]


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_with_text(png: bytes, items: dict[str, str]) -> bytes:
    """`png` with one tEXt chunk per item inserted before the first IDAT (as Pillow and A1111 write them)."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    at = png.index(b"IDAT") - 4
    chunks = b"".join(_png_chunk(b"tEXt", k.encode("latin-1") + b"\x00" + v.encode("latin-1"))
                      for k, v in items.items())
    return png[:at] + chunks + png[at:]


def camera_exif(i: int, make: str = "Canon", model: str = "Canon EOS R5") -> bytes:
    from PIL import Image

    when = f"2024:{1 + i % 12:02d}:{1 + i % 28:02d} {i % 24:02d}:{i % 60:02d}:{(i * 7) % 60:02d}"
    exif = Image.Exif()
    exif[0x010F] = make  # Make
    exif[0x0110] = model  # Model
    exif[0x0132] = when  # DateTime
    exif[0x0131] = "Firmware Version 1.8.1"  # Software
    ifd = exif.get_ifd(0x8769)  # Exif IFD
    ifd[0x9003] = when  # DateTimeOriginal
    ifd[0x9004] = when  # DateTimeDigitized
    return exif.tobytes()


def comfy_items(i: int) -> dict[str, str]:
    prompt = {"3": {"class_type": "KSampler", "inputs": {"seed": i, "steps": 20, "cfg": 7.0,
                                                         "sampler_name": "euler", "model": ["4", 0]}},
              "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "sd_xl_base_1.0.safetensors"}},
              "6": {"class_type": "CLIPTextEncode", "inputs": {"text": f"a cat in a hat, {i}", "clip": ["4", 1]}}}
    workflow = {"last_node_id": 6, "nodes": [{"id": n, "type": v["class_type"]} for n, v in prompt.items()],
                "links": []}
    return {"prompt": json.dumps(prompt), "workflow": json.dumps(workflow)}


class MetadataFactory:
    """Writes the four kinds of metadata-bearing files; encodes each base picture once."""

    def __init__(self, jpeg_size=(640, 480), png_size=(512, 512), seed: int = 0):
        self._jpeg = encode(photo_like(*jpeg_size, seed=seed), "JPEG", quality=88)
        self._png = encode(photo_like(*png_size, seed=seed + 1), "PNG", compress_level=1)

    def data(self, kind: str, i: int) -> bytes:
        if kind == "camera.jpg":
            return jpeg_with(self._jpeg, exif=camera_exif(i))
        if kind == "xmp.jpg":
            date = f"2025-{1 + i % 12:02d}-{1 + i % 28:02d}T10:{i % 60:02d}:00"
            return jpeg_with(self._jpeg, xmp=XMP_DST.format(date=date))
        if kind == "a1111.png":
            return png_with_text(self._png, {"parameters": A1111.format(i=i, seed=1000 + i)})
        if kind == "comfy.png":
            return png_with_text(self._png, comfy_items(i))
        raise ValueError(kind)


def make_metadata_folder(root: Path, n: int, *, per_dir: int = 250, seed: int = 0) -> dict:
    """`n` files cycling through `KINDS`, `per_dir` to a subfolder. Returns counts per kind and bytes."""
    root = Path(root)
    factory = MetadataFactory(seed=seed)
    counts = dict.fromkeys(KINDS, 0)
    total = 0
    for i in range(n):
        kind = KINDS[i % len(KINDS)]
        folder = root / f"d{i // per_dir:03d}"
        if i % per_dir == 0:
            folder.mkdir(parents=True, exist_ok=True)
        stem, ext = kind.split(".")
        data = factory.data(kind, i)
        (folder / f"{i:06d}-{stem}.{ext}").write_bytes(data)
        counts[kind] += 1
        total += len(data)
    return {"files": n, "kinds": counts, "bytes": total}


def make_photo_folder(root: Path, n: int, *, large_every: int = 8, size=(1024, 768), large=(4000, 3000),
                      seed: int = 0) -> dict:
    """`n` camera JPEGs with EXIF: every `large_every`-th one `large`, the rest `size` (0 = never large)."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    normal = encode(photo_like(*size, seed=seed), "JPEG", quality=90)
    big = encode(photo_like(*large, seed=seed + 1), "JPEG", quality=90) if large_every else b""
    counts = {f"{size[0]}x{size[1]}": 0, f"{large[0]}x{large[1]}": 0}
    total = 0
    for i in range(n):
        is_big = bool(large_every) and i % large_every == large_every - 1
        data = jpeg_with(big if is_big else normal, exif=camera_exif(i, "Sony", "ILCE-7M4"))
        (root / f"img{i:05d}.jpg").write_bytes(data)
        counts[f"{large[0]}x{large[1]}" if is_big else f"{size[0]}x{size[1]}"] += 1
        total += len(data)
    return {"files": n, "sizes": counts, "bytes": total,
            "bytes_each": {"normal": len(normal), "large": len(big)}}
