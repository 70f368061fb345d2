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


def exif_with_thumbnail(thumbnail: bytes, make: str = "Canon", model: str = "Canon EOS R5") -> bytes:
    """An APP1 EXIF payload (little-endian TIFF) with Make and Model in IFD0 and a JPEG thumbnail in IFD1, as
    cameras write it; Pillow's Exif writer has no IFD1, so it is packed here."""
    def ascii_entry(tag: int, text: str, offset: int) -> tuple[bytes, bytes]:
        raw = text.encode("ascii") + b"\x00"
        return struct.pack("<HHII", tag, 2, len(raw), offset), raw

    ifd0_at = 8
    ifd0_size = 2 + 2 * 12 + 4
    data_at = ifd0_at + ifd0_size
    make_entry, make_raw = ascii_entry(0x010F, make, data_at)
    model_entry, model_raw = ascii_entry(0x0110, model, data_at + len(make_raw))
    ifd1_at = data_at + len(make_raw) + len(model_raw)
    ifd1_size = 2 + 3 * 12 + 4
    thumb_at = ifd1_at + ifd1_size
    ifd0 = struct.pack("<H", 2) + make_entry + model_entry + struct.pack("<I", ifd1_at)
    ifd1 = (struct.pack("<H", 3) + struct.pack("<HHIHH", 0x0103, 3, 1, 6, 0)
            + struct.pack("<HHII", 0x0201, 4, 1, thumb_at) + struct.pack("<HHII", 0x0202, 4, 1, len(thumbnail))
            + struct.pack("<I", 0))
    tiff = b"II*\x00" + struct.pack("<I", ifd0_at) + ifd0 + make_raw + model_raw + ifd1 + thumbnail
    return b"Exif\x00\x00" + tiff


def scene(size: tuple[int, int] = (640, 480), seed: int = 7) -> Image.Image:
    """A smooth picture with shapes in it: content a 160-px thumbnail still shows (noise would average out)."""
    import numpy as np
    from PIL import ImageDraw

    rng = np.random.default_rng(seed)
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w] / max(w, h)
    base = np.stack([120 + 80 * np.sin(3 * xx + c) * np.cos(2 * yy - c) for c in (0.0, 1.0, 2.0)], axis=-1)
    im = Image.fromarray(np.clip(base, 0, 255).astype("uint8"), "RGB")
    draw = ImageDraw.Draw(im)
    for _ in range(6):
        x0, y0 = int(rng.integers(0, w - w // 5)), int(rng.integers(0, h - h // 5))
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        draw.ellipse((x0, y0, x0 + int(rng.integers(w // 12, w // 5)), y0 + int(rng.integers(h // 12, h // 5))),
                     fill=colour)
    return im


def jpeg_with_thumbnail(path: Path, main: Image.Image, shown_in_thumbnail: Image.Image, *,
                        size: tuple[int, int] = (160, 120), quality: int = 90) -> Path:
    """A camera-style JPEG: `main` as the image, `shown_in_thumbnail` (fitted with black bars) as its EXIF
    thumbnail. Different pictures make the classic trace of an edit that kept the old thumbnail."""
    from PIL import ImageOps

    thumb = io.BytesIO()
    ImageOps.pad(shown_in_thumbnail.convert("RGB"), size, color=(0, 0, 0)).save(thumb, "JPEG", quality=75)
    main.convert("RGB").save(path, "JPEG", quality=quality, exif=exif_with_thumbnail(thumb.getvalue()))
    return path
