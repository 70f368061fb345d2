"""Safe image opening: recognise by content, refuse bombs, orient, and convert to plain RGB.

Evidence comes in every shape — phone JPEGs with rotation tags, CMYK scans, 16-bit PNG exports, palette
GIFs with transparency, truncated downloads — and the model wants one thing: an upright 8-bit RGB picture.
Everything that can go wrong here is raised as `ImageError` with a message that names the problem, so a
scan can record it and go on.
"""

from __future__ import annotations

import io
import math
import struct
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Literal

from PIL import Image, ImageOps, PngImagePlugin, UnidentifiedImageError

from fakevlm_cli.core import library_warnings
from fakevlm_cli.core.errors import ImageError, one_line
from fakevlm_cli.core.options import DEFAULT_MAX_PIXELS
from fakevlm_cli.core.text import megapixels
from fakevlm_cli.evidence import segments

# How decoded pixels become the RGB picture the model sees (options.PIXEL_MODES):
#   viewer   — as a person sees the file: EXIF orientation applied, transparency composited on white, 16-bit
#              data scaled to 8 bits (scan and explain);
#   upstream — as the upstream evaluation fed FakeVLM (transformers 4.45: `Image.open(path)`, then
#              `image.convert("RGB")` in the processor; no EXIF orientation): eval's default, so the paper's
#              numbers are measured on the same pixels.
# Our --max-pixels check, made on the header's size before any decoding (load_image, and the header-only reads
# of --no-model scans), replaces Pillow's global one, which would refuse a 179 MP TIFF under our 200 MP limit.
Image.MAX_IMAGE_PIXELS = None
# No image within --max-pixels needs more bytes than this per pixel in any format (uncompressed 16-bit RGBA is
# 8), plus room for metadata: a bigger file is refused before it is read (see `max_file_bytes`).
MAX_FILE_BYTES_PER_PIXEL = 8
FILE_METADATA_SLACK = 64 * 1024 * 1024
MAX_FRAMES_COUNTED = 10_000  # TIFF pages are counted by walking the IFD chain, at most this far

# Magic numbers of the formats Pillow can decode (plus HEIF/AVIF, which need a plugin).
_SIGNATURES: tuple[tuple[int, bytes, str], ...] = (
    (0, b"\xff\xd8\xff", "JPEG"),
    (0, b"\x89PNG\r\n\x1a\n", "PNG"),
    (0, b"GIF87a", "GIF"),
    (0, b"GIF89a", "GIF"),
    (0, b"II*\x00", "TIFF"),
    (0, b"MM\x00*", "TIFF"),
    (0, b"BM", "BMP"),
    (0, b"\x00\x00\x01\x00", "ICO"),
    (0, b"\x00\x00\x00\x0cjP  \r\n\x87\n", "JPEG2000"),
    (0, b"\xff\x4f\xff\x51", "JPEG2000"),
)
_HEIF_BRANDS = {b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1"}
_AVIF_BRANDS = {b"avif", b"avis"}
SNIFF_BYTES = 32


_BMP_HEADER_SIZES = (12, 40, 52, 56, 64, 108, 124)  # BITMAPCOREHEADER ... BITMAPV5HEADER


def sniff_format(head: bytes) -> str | None:
    """Return the Pillow format name for a file's first bytes, or None when it is not an image we know.

    Content decides, not the extension: a `.jpg` that is really a PNG is a PNG, and `notes.jpg` full of text
    is not an image at all.
    """
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP"
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in _AVIF_BRANDS:
            return "AVIF"
        if brand in _HEIF_BRANDS:
            return "HEIF"
        return None
    # "BM" alone is too common a text prefix; require a plausible header size field.
    if head[:2] == b"BM" and len(head) >= 14 and int.from_bytes(head[14:18], "little") not in _BMP_HEADER_SIZES:
        return None
    for offset, magic, name in _SIGNATURES:
        if head[offset : offset + len(magic)] == magic:
            return name
    return None


@dataclass
class LoadedImage:
    """An upright RGB image plus the facts about the file it came from."""

    image: Image.Image
    width: int  # of the stored image, before orientation
    height: int
    frames: int = 1
    notes: list[str] = field(default_factory=list)  # metadata Pillow refused, frame counts it could not trust


def load_image(data: bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS, mode: str = "viewer",
               draft_short: int | None = None) -> LoadedImage:
    """Decode `data` into an 8-bit RGB image (see options.PIXEL_MODES), or raise `ImageError` saying why not.

    `draft_short` (``--fast-decode``): a JPEG whose short side is more than twice that is decoded at a reduced
    DCT scale (1/2, 1/4 or 1/8) that keeps its short side at least twice that, before the model's resize.
    Pixels then differ slightly from a full decode (measured in docs/performance.md), so it is opt-in.
    """
    if not data:
        raise ImageError("empty file (0 bytes)")
    fmt = sniff_format(data[:SNIFF_BYTES])
    if fmt is None:
        raise ImageError("not an image (unrecognised content)")
    with opened(data, fmt) as (im, data, notes):
        width, height = im.size
        check_size(width, height, max_pixels)
        frames, frame_notes = count_frames(im, data, fmt)
        if draft_short and fmt == "JPEG" and min(width, height) > 2 * draft_short:
            scale = 2 * draft_short / min(width, height)
            im.draft("RGB", (math.ceil(width * scale), math.ceil(height * scale)))
        rgb = _decode_rgb(im, fmt, mode)
    return LoadedImage(image=rgb, width=width, height=height, frames=frames, notes=notes + frame_notes)


@contextmanager
def opened(data: bytes, fmt: str) -> Iterator[tuple[Image.Image, bytes, list[str]]]:
    """Pillow's handle on `data`, a `fmt` image: its header read, nothing decoded yet (HEIF's opener
    registered, a PNG's refused chunks dropped first: the bytes Pillow reads and the notes saying so come
    with it). A header Pillow cannot read is an `ImageError`; its warnings go to the file's record
    (library_warnings), but for the decompression-bomb warning: --max-pixels decides. The handle is not closed
    here: the decoded picture may be the handle itself."""
    if fmt == "HEIF":
        heif_opener()
    data, notes = without_refused_png_chunks(data) if fmt == "PNG" else (data, [])
    if fmt in ("JPEG", "MPO"):
        data = _without_fill(data)
    try:
        im = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as exc:
        raise ImageError(f"decompression bomb refused: {exc}") from None
    except UnidentifiedImageError:
        raise ImageError(f"corrupt {fmt} header: cannot be decoded") from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise ImageError(f"corrupt {fmt} file: {one_line(str(exc))}") from None
    yield im, data, notes


def _without_fill(data: bytes) -> bytes:
    """A JPEG as Pillow should read it: the fill bytes before its markers dropped (Pillow skips them one byte at
    a time in Python: 20 MB of fill cost 10 s), and refused past MAX_SEGMENTS marker segments (so are its
    other segments)."""
    compact, walked = segments.compacted(data)
    if walked.capped:
        raise ImageError(f"JPEG header has more than {segments.MAX_SEGMENTS:,} marker segments before the image "
                         "data: not decoded")
    return compact


_LIBHEIF_FORMATS = ("HEIF", "AVIF")  # decoded by pillow-heif (libheif)


def _decode_rgb(im: Image.Image, fmt: str, mode: str) -> Image.Image:
    """The first frame, decoded and converted to RGB as `mode` says; decoding errors become `ImageError`."""
    try:
        im.seek(0)  # animated GIF/WebP/APNG: the first frame is the picture people see first
        im.load()
        if mode != "upstream":  # in place: no full-size copy of the (usual) picture that needs no turning
            ImageOps.exif_transpose(im, in_place=True)
        rgb = upstream_rgb(im) if mode == "upstream" else to_rgb(im)
    except Image.DecompressionBombError as exc:
        raise ImageError(f"decompression bomb refused: {exc}") from None
    except RuntimeError as exc:  # pillow-heif's libheif errors; any other RuntimeError is a bug, not the file's
        if fmt not in _LIBHEIF_FORMATS:
            raise
        raise ImageError(f"corrupt {fmt} image data: libheif refuses it: {one_line(str(exc))}") from None
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        text = one_line(str(exc)) or type(exc).__name__
        if "truncated" in text:
            raise ImageError(f"truncated {fmt} file: image data ends early") from None
        raise ImageError(f"corrupt {fmt} image data: {text}") from None
    # Pillow carries a palette's transparent index into an RGB copy's info; transformers 5 would then composite
    # that colour onto white. The conversion above has already decided about transparency.
    rgb.info.pop("transparency", None)
    return rgb


_HEIF_READY = False


def heif_opener() -> None:
    """Teach Pillow HEIF/HEIC (iPhone photos) through pillow-heif, once; its wheels bundle libheif. libheif turns
    the picture upright itself (its `irot`/`imir` boxes), and leaves EXIF orientation at 1, so nothing is
    turned twice."""
    global _HEIF_READY
    if _HEIF_READY:
        return
    try:
        import pillow_heif
    except ImportError:
        raise ImageError("HEIF/HEIC images need pillow-heif (pip install pillow-heif)") from None
    pillow_heif.register_heif_opener()
    _HEIF_READY = True


def check_size(width: int, height: int, max_pixels: int) -> None:
    """Raise `ImageError` for a header size that is invalid or over --max-pixels."""
    if width <= 0 or height <= 0:
        raise ImageError(f"invalid image size {width}x{height}")
    if width * height > max_pixels:
        raise ImageError(
            f"image is {width}x{height} ({megapixels(width * height)}), over the --max-pixels limit "
            f"of {megapixels(max_pixels)} (possible decompression bomb)"
        )


def max_file_bytes(max_pixels: int) -> int:
    """The largest file worth reading as an image within `max_pixels`; bigger files are refused unread."""
    return max_pixels * MAX_FILE_BYTES_PER_PIXEL + FILE_METADATA_SLACK


# ---- what Pillow must not be shown: PNG chunks over its own limits ---------------------------------------

def without_refused_png_chunks(data: bytes) -> tuple[bytes, list[str]]:
    """`data` without the PNG chunks Pillow would refuse, and a note for each, so metadata never stops the pixels.

    Pillow raises while opening or decoding a PNG whose compressed text (zTXt, iTXt) or ICC profile (iCCP)
    inflates past ``PngImagePlugin.MAX_TEXT_CHUNK``, whose text adds up past ``MAX_TEXT_MEMORY``, or that names
    an unknown compression method: one 1 KB chunk would make an otherwise good picture an error. Those chunks
    carry no pixels (the metadata readers see the original bytes), so they are cut from the copy Pillow
    decodes. A PNG without such chunks is returned as it is, uncopied.
    """
    per_chunk, total_limit = PngImagePlugin.MAX_TEXT_CHUNK, PngImagePlugin.MAX_TEXT_MEMORY
    refused: list[tuple[int, int, str]] = []
    total = 0
    for ctype, start, end in _png_chunks(data):
        if ctype not in (b"tEXt", b"zTXt", b"iTXt", b"iCCP"):
            continue
        body = data[start:end]
        size, problem = _pillow_text_size(ctype, body, per_chunk)
        if problem is None and ctype != b"iCCP":
            total += size
            if total > total_limit:
                problem = f"text chunks add up to more than Pillow's {total_limit // 2**20} MiB"
        if problem:
            keyword = body[:79].partition(b"\0")[0].decode("latin-1")
            refused.append((start - 8, end + 4, f"{ctype.decode()} chunk {keyword!r}: {problem}"))
    if not refused:
        return data, []
    parts, pos = [], 0
    for cut_start, cut_end, _ in refused:
        parts.append(data[pos:cut_start])
        pos = cut_end
    parts.append(data[pos:])
    notes = [f"png: {why}; the pixels were decoded without it" for _, _, why in refused[:5]]
    if len(refused) > 5:
        notes.append(f"png: {len(refused) - 5} more chunks left out for the same reasons")
    return b"".join(parts), notes


def _pillow_text_size(ctype: bytes, body: bytes, per_chunk: int) -> tuple[int, str | None]:
    """(text size Pillow would count, why Pillow would refuse the chunk or None), as PngImagePlugin judges."""
    _key, _sep, rest = body.partition(b"\0")
    if ctype == b"tEXt":
        return len(rest), None
    if ctype in (b"zTXt", b"iCCP"):
        method, stream = (rest[0], rest[1:]) if rest else (0, b"")
        if method != 0:
            return 0, f"unknown compression method {method}"
    else:  # iTXt: flag, method, language\0, translated keyword\0, text
        if len(rest) < 2:
            return 0, None
        flag, method = rest[0], rest[1]
        parts = rest[2:].split(b"\0", 2)
        if len(parts) < 3:
            return 0, None
        if not flag:
            return len(parts[2]), None
        if method != 0:
            return 0, None  # Pillow skips it quietly
        stream = parts[2]
    try:
        inflated = len(zlib.decompressobj().decompress(stream, per_chunk + 1))
    except zlib.error:
        return 0, None  # Pillow reads it as empty
    if inflated > per_chunk:
        return inflated, f"inflates past Pillow's {per_chunk // 1024} KiB limit"
    return inflated, None


def _png_chunks(data: bytes, limit: int = 100_000):
    """(type, body start, body end) of each PNG chunk up to IEND or the first chunk that runs off the end."""
    pos = 8
    for _ in range(limit):
        if pos + 8 > len(data):
            return
        length = int.from_bytes(data[pos:pos + 4], "big")
        ctype = data[pos + 4:pos + 8]
        end = pos + 8 + length
        if ctype == b"IEND" or end + 4 > len(data):
            return
        yield ctype, pos + 8, end
        pos = end + 4


# ---- frame counts --------------------------------------------------------------------------------------

def count_frames(im: Image.Image, data: bytes, fmt: str) -> tuple[int, list[str]]:
    """How many frames the file really holds, and notes when that differs from what it declares.

    Pillow's ``n_frames`` walks a TIFF's IFD chain in quadratic time (100,000 pages: a minute) and reports an
    APNG's *declared* frame count (2,147,483,647 for a hostile acTL chunk); both are counted here from the
    bytes instead, linearly and with a cap.
    """
    if fmt == "TIFF":
        return _tiff_pages(data)
    declared = getattr(im, "n_frames", 1)
    if fmt == "PNG" and declared > 1:
        held = sum(1 for ctype, _, _ in _png_chunks(data) if ctype == b"fcTL")
        if held != declared:
            return max(held, 1), [f"png: the APNG declares {declared} frames but holds {held}"]
    return declared, []


def _tiff_pages(data: bytes) -> tuple[int, list[str]]:
    order: Literal["little", "big"] = "little" if data[:2] == b"II" else "big"
    if data[:2] not in (b"II", b"MM"):
        return 1, []
    offset, seen, pages = int.from_bytes(data[4:8], order), set(), 0
    while offset and offset not in seen and offset + 2 <= len(data):
        if pages == MAX_FRAMES_COUNTED:
            return pages, [f"tiff: more than {MAX_FRAMES_COUNTED} pages; counting stopped there"]
        seen.add(offset)
        pages += 1
        entries = int.from_bytes(data[offset:offset + 2], order)
        offset = int.from_bytes(data[offset + 2 + 12 * entries:offset + 6 + 12 * entries] or b"\0", order)
    return max(pages, 1), []


# ---- cost of decoding, from the header -------------------------------------------------------------------

# Peak bytes per pixel of load_image (decode, EXIF rotation, conversion to RGB), measured with Pillow 13 at
# 20 MP plus a rotation's copy: RGB 8 + 4, RGBA 24 + 4 (compositing on white), 16-bit 30 + 4 (scaled in floats).
_DECODE_BYTES_PER_PIXEL = {"1": 10, "L": 10, "P": 25, "RGB": 12, "YCbCr": 12, "LAB": 12, "HSV": 12, "RGBX": 12,
                           "CMYK": 16, "RGBA": 28, "RGBa": 28, "LA": 28, "La": 28, "PA": 28, "F": 32}
_UNKNOWN_MODE_BYTES_PER_PIXEL = 40  # I, I;16* and anything unlisted
MODEL_EDGE = 336  # LLaVA-1.5's processor resizes the short side to this, the long side in proportion
_PREPROCESS_BYTES_PER_PIXEL = 24  # the resized RGB image and the processor's float arrays


def decode_bytes(width: int, height: int, mode: str) -> int:
    """About how much memory decoding an image of this header and preparing it for the model takes at peak.

    The second term is the model's resize: a 1 x 100,000,000 strip becomes 336 x 33.6 billion pixels before
    the centre crop, which no machine can hold; this makes such a file an error instead of an out-of-memory.
    """
    per = _DECODE_BYTES_PER_PIXEL.get(mode, _UNKNOWN_MODE_BYTES_PER_PIXEL)
    short, long = sorted((max(width, 1), max(height, 1)))
    resized = MODEL_EDGE * math.ceil(MODEL_EDGE * long / short)
    return width * height * per + resized * _PREPROCESS_BYTES_PER_PIXEL


_JPEG_MODES = {1: "L", 3: "RGB", 4: "CMYK"}  # by the frame header's component count
_PNG_MODES = {(0, 16): "I;16", (0, 1): "1", (2, 8): "RGB", (2, 16): "RGB", (3, 8): "P", (4, 8): "LA", (4, 16): "LA",
              (6, 8): "RGBA", (6, 16): "RGBA"}


def probe(head: bytes, fh, fmt: str) -> tuple[int, int, str] | None:
    """(width, height, mode) from the header alone, without reading pixel data, or None when it cannot be told.

    A PNG's IHDR sits at a fixed place in `head` (Pillow would read every text chunk before the image data); a
    JPEG's frame header is found by `segments.frame_header` (seeking past payloads, skipping fill in bulk, at
    most MAX_SEGMENTS segments); other formats are opened by Pillow on `fh`, which reads only their headers.
    """
    if fmt == "PNG" and head[12:16] == b"IHDR" and len(head) >= 26:
        width, height, depth, color = struct.unpack(">IIBB", head[16:26])
        return width, height, _PNG_MODES.get((color, depth), "L" if color == 0 else "RGBA")
    if fmt in ("JPEG", "MPO"):  # not Pillow's header walk: it steps over fill and junk one byte at a time
        frame = segments.frame_header(fh)
        return None if frame is None else (frame[0], frame[1], _JPEG_MODES.get(frame[2], "RGB"))
    try:
        if fmt == "HEIF":
            heif_opener()
        with library_warnings.silenced(), Image.open(fh) as im:
            return im.size[0], im.size[1], im.mode
    except Exception:  # noqa: BLE001 - a header Pillow cannot read fails the same way in load_image
        return None


def upstream_rgb(im: Image.Image) -> Image.Image:
    """transformers 4.45's `convert_to_rgb`: Pillow's own conversion (alpha dropped, not composited).

    Modes Pillow cannot convert to RGB directly (some high-bit-depth ones) are converted as `to_rgb` does.
    """
    if im.mode == "RGB":
        return im
    try:
        return im.convert("RGB")
    except ValueError:
        return to_rgb(im)


def to_rgb(im: Image.Image) -> Image.Image:
    """Convert any Pillow mode to 8-bit RGB the way a viewer would show it.

    Transparency is composited on white (a transparent PNG shown on a web page), 16-bit and 32-bit integer
    images are scaled to 8 bits rather than clipped (a plain convert turns most of a 16-bit image white), and
    float images are stretched to their range.
    """
    mode = im.mode
    if mode == "RGB" and "transparency" not in im.info:
        return im
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        return _high_bit_depth_to_rgb(im)
    if mode in ("P", "RGB", "L") and "transparency" in im.info:  # a transparent index or colour (tRNS)
        im = im.convert("RGBA")
        mode = "RGBA"
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = im.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return im.convert("RGB")


def _high_bit_depth_to_rgb(im: Image.Image) -> Image.Image:
    import numpy as np

    arr = np.asarray(im)
    if im.mode == "F":
        lo, hi = float(np.nanmin(arr)), float(np.nanmax(arr))
        scaled = np.zeros(arr.shape) if hi <= lo else (np.nan_to_num(arr) - lo) / (hi - lo) * 255.0
    else:
        # 16-bit data stored in mode "I" still tops out at 65535; wider data is stretched to its maximum.
        peak = max(int(arr.max()), 1)
        full = 65535 if peak <= 65535 else peak
        scaled = arr.astype("float64") / full * 255.0
    gray = Image.fromarray(np.clip(scaled + 0.5, 0, 255).astype("uint8"), mode="L")
    return gray.convert("RGB")
