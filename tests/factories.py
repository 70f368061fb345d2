"""Small files with known metadata, made on the fly (no binary fixtures in the repo)."""

from __future__ import annotations

import io
import json
import struct
import zlib
from fractions import Fraction
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


# ---- video and phone media (PyAV and pillow-heif, imported here only) ------------------------------------

def video_clip(path: Path, frames, *, rate: int = 1, codec: str = "libx264", fmt: str | None = None,
               rotation: int | None = None, metadata: dict | None = None, gop: int | None = None,
               pts: list[int] | None = None, time_base=None) -> Path:
    """A clip of `frames` (PIL images, all one size) at `rate` fps; `pts` (in `time_base` units) makes it
    variable-frame-rate; `rotation` writes a display matrix (counter-clockwise degrees, as PyAV reads it back)."""
    import av

    container = av.open(str(path), "w", format=fmt)
    container.metadata.update(metadata or {})
    stream = container.add_stream(codec, rate=rate)
    stream.width, stream.height = frames[0].size
    stream.pix_fmt = "yuvj420p" if codec == "mjpeg" else "yuv420p"
    if codec == "libx264":
        stream.options = {"crf": "10"}  # near-lossless: the toy's 1-px checkerboard survives
    if gop:
        stream.codec_context.gop_size = gop
    if time_base is not None:
        stream.time_base = stream.codec_context.time_base = time_base
    if rotation is not None:
        stream.set_display_rotation(rotation)
    for i, image in enumerate(frames):
        frame = av.VideoFrame.from_image(image.convert("RGB"))
        if pts is not None:
            frame.pts, frame.time_base = pts[i], time_base
        _mux(container, stream, frame)
    _mux(container, stream, None)  # flush the encoder
    container.close()
    return path


def small_header_mjpeg(path: Path, sizes=((64, 64), (2000, 2000), (2000, 2000))) -> Path:
    """An MJPEG Matroska (1 fps) whose frames have `sizes` while its track header says the first one's: a
    container that lies about its frames' size (each JPEG is muxed as it is, not rescaled by the encoder).
    Flat frames keep the file small."""
    import av

    container = av.open(str(path), "w", format="matroska")
    stream = container.add_stream("mjpeg", rate=1)
    stream.width, stream.height = sizes[0]
    stream.pix_fmt = "yuvj420p"
    for i, size in enumerate(sizes):
        buffer = io.BytesIO()
        Image.new("RGB", size, (40 * i % 256, 90, 160)).save(buffer, "JPEG", quality=70)
        packet = av.Packet(buffer.getvalue())
        packet.stream, packet.time_base = stream, Fraction(1, 1)
        packet.pts = packet.dts = i
        packet.duration = 1
        packet.is_keyframe = True
        container.mux(packet)
    container.close()
    return path


def _mux(container, stream, frame) -> None:
    for packet in stream.encode(frame):
        container.mux(packet)


def numbered_frames(n: int, size=(64, 48)) -> list[Image.Image]:
    """Frames whose grey level says their number (frame i is 20 * i % 256), with a white top-left marker."""
    frames = []
    for i in range(n):
        image = Image.new("RGB", size, ((20 * i) % 256,) * 3)
        image.paste((255, 255, 255), (0, 0, 8, 8))
        image.paste((0, 0, 0), (8, 0, 16, 8))
        frames.append(image)
    return frames


def audio_only(path: Path, fmt: str = "mp4") -> Path:
    """One second of silence in an MP4 (AAC): a container with no video stream."""
    import av
    import numpy as np

    container = av.open(str(path), "w", format=fmt)
    stream = container.add_stream("aac", rate=8000)
    stream.layout = "mono"
    for start in range(0, 8000, 1024):
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        frame.sample_rate, frame.pts = 8000, start
        _mux(container, stream, frame)
    _mux(container, stream, None)  # flush the encoder
    container.close()
    return path


def heic_photo(path: Path, image: Image.Image, *, make: str = "Apple", model: str = "iPhone 15 Pro",
               orientation: int | None = None) -> Path:
    """A lossless HEIC (pillow-heif), with EXIF Make/Model (and Orientation) as an iPhone writes them."""
    import pillow_heif

    exif = Image.Exif()
    exif[0x010F], exif[0x0110] = make, model
    if orientation is not None:
        exif[0x0112] = orientation
    heif = pillow_heif.from_pillow(image.convert("RGB"))
    heif.save(str(path), quality=-1, chroma=444, exif=exif.tobytes())
    return path


def c2pa_signed(src: Path, dst: Path, mime: str,
                source_type: str = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia",
                *, ca_pem: Path | None = None) -> Path:
    """`src` with a C2PA manifest ("c2pa.created" by `source_type`) signed by a throwaway ES256 certificate
    (issued by a throwaway CA key, so the signature is valid but nobody trusts it), written to `dst` by
    c2pa-python. `ca_pem`, when given, receives the issuing CA's certificate (a trust anchor for the file).
    The test kit's signer, the one `fakevlm demo` uses too."""
    from fakevlm_cli.testing.samples import sign_c2pa

    return sign_c2pa(src.read_bytes(), dst, mime, source_type, ca_pem=ca_pem)


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
