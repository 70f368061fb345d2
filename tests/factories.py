"""Small files with known metadata, made on the fly (no binary fixtures in the repo)."""

from __future__ import annotations

import io
import json
import struct
import zlib
from pathlib import Path

from conftest import noise_image
from PIL import Image, PngImagePlugin

A1111 = ("a photo of an astronaut riding a horse\nNegative prompt: blurry\n"
         "Steps: 20, Sampler: Euler a, CFG scale: 7, Seed: 42, Size: 512x512, Model hash: abc123, Model: sd15")
COMFY_PROMPT = json.dumps({"3": {"class_type": "KSampler", "inputs": {"seed": 1, "steps": 20}},
                           "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "sdxl.safetensors"}}})
XMP_TEMPLATE = """<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>
<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
<rdf:Description rdf:about="" xmlns:Iptc4xmpExt="http://iptc.org/std/Iptc4xmpExt/2008-02-29/"
 Iptc4xmpExt:DigitalSourceType="{uri}"/></rdf:RDF></x:xmpmeta><?xpacket end="w"?>"""


def camera_jpeg(path: Path, seed: int = 1, make: str = "Canon", model: str = "Canon EOS R5") -> Path:
    exif = Image.Exif()
    exif[0x010F] = make
    exif[0x0110] = model
    exif[0x0131] = "Firmware 1.2"
    noise_image(seed).save(path, "JPEG", exif=exif.tobytes(), quality=90)
    return path


def a1111_png(path: Path, seed: int = 2) -> Path:
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", A1111)
    noise_image(seed).save(path, "PNG", pnginfo=info)
    return path


def comfy_png(path: Path, seed: int = 3) -> Path:
    info = PngImagePlugin.PngInfo()
    info.add_text("prompt", COMFY_PROMPT)
    info.add_text("workflow", json.dumps({"nodes": [], "links": []}))
    noise_image(seed).save(path, "PNG", pnginfo=info)
    return path


def xmp_jpeg(path: Path, code: str = "trainedAlgorithmicMedia", seed: int = 4) -> Path:
    uri = f"http://cv.iptc.org/newscodes/digitalsourcetype/{code}"
    noise_image(seed).save(path, "JPEG", xmp=XMP_TEMPLATE.format(uri=uri).encode("utf-8"), quality=90)
    return path


def plain_png(path: Path, seed: int = 5) -> Path:
    noise_image(seed).save(path, "PNG")
    return path


def truncated_jpeg(path: Path) -> Path:
    buf = io.BytesIO()
    noise_image(6, (160, 160)).save(buf, "JPEG", quality=95)
    path.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    return path


def bomb_png(path: Path) -> Path:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", 60_000, 60_000, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
                     + chunk(b"IEND", b""))
    return path
