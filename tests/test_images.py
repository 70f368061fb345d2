import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from fakevlm_cli.core.errors import ImageError
from fakevlm_cli.media.images import load_image, sniff_format, to_rgb


def encode(im: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **kw)
    return buf.getvalue()


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def test_exif_rotated_jpeg_is_turned_upright():
    im = Image.new("RGB", (40, 20), (255, 0, 0))
    im.paste((0, 0, 255), (0, 0, 20, 20))  # left half blue
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to view"
    loaded = load_image(encode(im, "JPEG", exif=exif.tobytes(), quality=95))
    assert (loaded.width, loaded.height) == (40, 20)  # as stored
    assert loaded.image.size == (20, 40)  # as seen
    top = loaded.image.getpixel((10, 5))
    assert top[2] > 200 and top[0] < 60  # blue (the stored left half) is now on top


def test_cmyk_jpeg_converts_to_rgb():
    im = Image.new("CMYK", (16, 16), (0, 255, 255, 0))  # pure red in CMYK
    loaded = load_image(encode(im, "JPEG", quality=95))
    assert loaded.image.mode == "RGB"
    r, g, b = loaded.image.getpixel((8, 8))
    assert r > 200 and g < 60 and b < 60


def test_16_bit_png_is_scaled_not_clipped():
    arr = np.full((8, 8), 32768, dtype=np.uint16)  # mid grey in 16 bits
    im = Image.fromarray(arr)  # mode I;16
    loaded = load_image(encode(im, "PNG"))
    value = loaded.image.getpixel((4, 4))
    assert loaded.image.mode == "RGB"
    assert 120 <= value[0] <= 135 and value[0] == value[1] == value[2]


def test_palette_png_with_transparency_is_composited_on_white():
    im = Image.new("P", (8, 8), 0)
    im.putpalette([0, 0, 0] + [255, 0, 0] * 255)
    im.info["transparency"] = 0  # index 0 (black) is fully transparent
    loaded = load_image(encode(im, "PNG", transparency=0))
    assert loaded.image.getpixel((0, 0)) == (255, 255, 255)


def test_rgba_alpha_composited_on_white():
    im = Image.new("RGBA", (4, 4), (0, 0, 0, 0))
    assert to_rgb(im).getpixel((1, 1)) == (255, 255, 255)


def test_animated_gif_gives_first_frame():
    frames = [Image.new("RGB", (10, 10), c) for c in ((255, 0, 0), (0, 255, 0), (0, 0, 255))]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:], duration=50)
    loaded = load_image(buf.getvalue())
    assert loaded.frames == 3
    r, g, _b = loaded.image.getpixel((5, 5))
    assert r > 200 and g < 50


def test_truncated_jpeg_raises_project_error():
    data = encode(Image.effect_noise((256, 256), 64).convert("RGB"), "JPEG")
    with pytest.raises(ImageError, match=r"truncated|corrupt"):
        load_image(data[: len(data) // 2])


def test_text_file_is_not_an_image():
    with pytest.raises(ImageError, match="not an image"):
        load_image(b"hello, I am a text file named photo.jpg\n")


def test_empty_file():
    with pytest.raises(ImageError, match="empty"):
        load_image(b"")


def test_decompression_bomb_header_is_refused_before_decoding():
    ihdr = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0)
    data = b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", zlib.compress(b"")) \
        + png_chunk(b"IEND", b"")
    with pytest.raises(ImageError, match=r"bomb|max-pixels"):
        load_image(data)


def test_max_pixels_limit_is_ours():
    data = encode(Image.new("RGB", (100, 100)), "PNG")
    with pytest.raises(ImageError, match="max-pixels"):
        load_image(data, max_pixels=5_000)
    assert load_image(data, max_pixels=10_000).image.size == (100, 100)


@pytest.mark.parametrize(("fmt", "name"), [("JPEG", "JPEG"), ("PNG", "PNG"), ("GIF", "GIF"), ("WEBP", "WEBP"),
                                      ("TIFF", "TIFF"), ("BMP", "BMP")])
def test_sniff_by_content(fmt, name):
    assert sniff_format(encode(Image.new("RGB", (4, 4)), fmt)[:32]) == name


def test_sniff_rejects_text_and_heif_is_named():
    assert sniff_format(b"BM is also how this sentence starts") is None
    assert sniff_format(b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00") == "HEIF"
    with pytest.raises(ImageError, match="HEIF"):
        load_image(b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic")


@pytest.mark.slow
def test_fast_decode_reduces_only_big_jpegs_and_keeps_their_stored_size(tmp_path):
    """--fast-decode: a 12 MP JPEG is decoded at a reduced DCT scale (pixels close to, not equal to, a full
    decode); a small JPEG and any PNG are decoded exactly as without it; the record keeps the stored size."""
    import io

    import numpy as np
    from benchmarks_files import photo_like

    big = io.BytesIO()
    photo_like(2400, 1800, seed=3).save(big, "JPEG", quality=90)
    exact = load_image(big.getvalue())
    fast = load_image(big.getvalue(), draft_short=336)
    assert (fast.width, fast.height) == (exact.width, exact.height) == (2400, 1800)
    assert min(fast.image.size) >= 672 and fast.image.size != exact.image.size  # decoded at 1/2 scale
    shrunk = np.asarray(exact.image.resize(fast.image.size), dtype=float)
    assert np.abs(np.asarray(fast.image, dtype=float) - shrunk).mean() < 3  # the same picture, in levels
    small = io.BytesIO()
    photo_like(640, 480, seed=4).save(small, "JPEG", quality=90)
    assert load_image(small.getvalue(), draft_short=336).image.tobytes() == load_image(small.getvalue()).image.tobytes()
    png = io.BytesIO()
    photo_like(2400, 1800, seed=5).save(png, "PNG")
    assert load_image(png.getvalue(), draft_short=336).image.size == (2400, 1800)


def test_a_decoders_message_over_several_lines_is_one_line_in_the_error(monkeypatch):
    """libheif's messages end in a newline (and some span lines): a record's `error` is one line."""
    buffer = io.BytesIO()
    Image.new("RGB", (4, 4)).save(buffer, "PNG")

    def fails(self):
        raise OSError("Invalid input: Unexpected end of file\n  Extent in iloc box (points to file position 378)\n")

    monkeypatch.setattr(Image.Image, "load", fails)
    with pytest.raises(ImageError) as caught:
        load_image(buffer.getvalue())
    assert str(caught.value) == ("corrupt PNG image data: Invalid input: Unexpected end of file Extent in iloc box "
                                 "(points to file position 378)")


def test_a_libheif_refusal_is_the_files_error_not_an_unexpected_exception(monkeypatch):
    """libheif's errors reach Pillow as RuntimeError: the record said 'unexpected RuntimeError'."""
    import io

    import pillow_heif
    from PIL import Image

    from fakevlm_cli.core.errors import ImageError
    from fakevlm_cli.media.images import load_image

    buf = io.BytesIO()
    pillow_heif.from_pillow(Image.new("RGB", (32, 32), "red")).save(buf, quality=-1)

    def refuse(self):
        raise RuntimeError("Unsupported feature: Unsupported codec")

    monkeypatch.setattr(Image.Image, "load", refuse)
    with pytest.raises(ImageError, match="corrupt HEIF image data: libheif refuses it: Unsupported feature"):
        load_image(buf.getvalue())


def test_pixel_counts_read_as_people_say_them():
    from fakevlm_cli.core.text import megapixels

    assert [megapixels(n) for n in (256_000_000, 4_000_000, 1_000_000, 250_000, 0)] == [
        "256 MP", "4.0 MP", "1.0 MP", "250,000 pixels", "0 pixels"]
