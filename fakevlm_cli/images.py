"""Safe image opening: recognise by content, refuse bombs, orient, and convert to plain RGB.

Evidence comes in every shape — phone JPEGs with rotation tags, CMYK scans, 16-bit PNG exports, palette
GIFs with transparency, truncated downloads — and the model wants one thing: an upright 8-bit RGB picture.
Everything that can go wrong here is raised as `ImageError` with a message that names the problem, so a
scan can record it and go on.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

from PIL import Image, ImageOps, UnidentifiedImageError

from fakevlm_cli.errors import ImageError

DEFAULT_MAX_PIXELS = 200_000_000  # 200 MP: above any camera sensor sold today, far below a bomb's size
# How decoded pixels become the RGB picture the model sees:
#   viewer   — as a person sees the file: EXIF orientation applied, transparency composited on white, 16-bit
#              data scaled to 8 bits (scan and explain);
#   upstream — as the upstream evaluation fed FakeVLM (transformers 4.45: `Image.open(path)`, then
#              `image.convert("RGB")` in the processor; no EXIF orientation): eval's default, so the paper's
#              numbers are measured on the same pixels.
PIXEL_MODES = ("viewer", "upstream")

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
    if head[:2] == b"BM" and len(head) >= 14:
        # "BM" alone is too common a text prefix; require a plausible header size field.
        if int.from_bytes(head[14:18], "little") not in (12, 40, 52, 56, 64, 108, 124):
            return None
    for offset, magic, name in _SIGNATURES:
        if head[offset : offset + len(magic)] == magic:
            return name
    return None


@dataclass
class LoadedImage:
    """An upright RGB image plus the facts about the file it came from."""

    image: Image.Image
    format: str
    width: int  # of the stored image, before orientation
    height: int
    frames: int = 1


def load_image(data: bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS, mode: str = "viewer") -> LoadedImage:
    """Decode `data` into an 8-bit RGB image (see PIXEL_MODES), or raise `ImageError` saying why not."""
    if not data:
        raise ImageError("empty file (0 bytes)")
    fmt = sniff_format(data[:SNIFF_BYTES])
    if fmt is None:
        raise ImageError("not an image (unrecognised content)")
    if fmt == "HEIF":
        raise ImageError("HEIF/HEIC images are not supported by Pillow; convert to JPEG or PNG first")
    # Our --max-pixels check below, on the header's size before any decoding, replaces Pillow's global one.
    Image.MAX_IMAGE_PIXELS = None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            im = Image.open(io.BytesIO(data))
        except Image.DecompressionBombError as exc:
            raise ImageError(f"decompression bomb refused: {exc}") from None
        except UnidentifiedImageError:
            raise ImageError(f"corrupt {fmt} header: cannot be decoded") from None
        except (OSError, ValueError, SyntaxError) as exc:
            raise ImageError(f"corrupt {fmt} file: {exc}") from None
        width, height = im.size
        if width <= 0 or height <= 0:
            raise ImageError(f"invalid image size {width}x{height}")
        if width * height > max_pixels:
            raise ImageError(
                f"image is {width}x{height} ({width * height / 1e6:.0f} MP), over the --max-pixels limit "
                f"of {max_pixels / 1e6:.0f} MP (possible decompression bomb)"
            )
        frames = getattr(im, "n_frames", 1)
        try:
            im.seek(0)  # animated GIF/WebP/APNG: the first frame is the picture people see first
            im.load()
            rgb = upstream_rgb(im) if mode == "upstream" else to_rgb(ImageOps.exif_transpose(im))
            # Pillow carries a palette's transparent index into an RGB copy's info; transformers 5 would then
            # composite that colour onto white. The conversion above has already decided about transparency.
            rgb.info.pop("transparency", None)
        except Image.DecompressionBombError as exc:
            raise ImageError(f"decompression bomb refused: {exc}") from None
        except (OSError, ValueError, SyntaxError, EOFError) as exc:
            text = str(exc) or type(exc).__name__
            if "truncated" in text:
                raise ImageError(f"truncated {fmt} file: image data ends early") from None
            raise ImageError(f"corrupt {fmt} image data: {text}") from None
    return LoadedImage(image=rgb, format=fmt, width=width, height=height, frames=frames)


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
