"""Pictures for people: heatmap overlays (`explain --heatmap`, `scan --heatmaps`) and the HTML report's
thumbnails. Pillow and numpy only; the pixels come from images.py's safe decoding.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    from PIL import Image

HEATMAP_MAX_SIDE = 1024  # the longest side of a heatmap picture, px
HEATMAP_MIN_SIDE = 384  # a smaller image is enlarged to this, so its boxes and numbers stay legible
PREVIEW_MAX_SIDE = HEATMAP_MAX_SIDE  # what the loader keeps of an image for its heatmap

# A perceptually ordered dark-to-bright ramp (after matplotlib's "inferno"), as (position, RGB) stops.
RAMP = ((0.0, (0, 0, 4)), (0.25, (87, 16, 110)), (0.5, (188, 55, 84)), (0.75, (249, 142, 9)),
        (1.0, (252, 255, 164)))


def colour_ramp(values: np.ndarray) -> np.ndarray:
    """RGB (uint8) of values in [0, 1] along the ramp."""
    import numpy as np

    stops = np.array([s for s, _ in RAMP])
    colours = np.array([c for _, c in RAMP], dtype=np.float64)
    v = np.clip(values, 0, 1)
    channels = [np.interp(v, stops, colours[:, i]) for i in range(3)]
    return np.stack(channels, axis=-1).round().astype(np.uint8)


def downscaled(image: Image.Image, max_side: int) -> Image.Image:
    """A copy no larger than `max_side` on its longest side (the image itself when it already fits)."""
    from PIL import Image

    width, height = image.size
    scale = max_side / max(width, height)
    if scale >= 1:
        return image
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return image.resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0)


def thumbnail(image: Image.Image, max_side: int, *, quality: int = 70) -> bytes:
    """A small JPEG of the picture (longest side `max_side`), for embedding in the report."""
    # convert() to the same mode is a full-size copy: skipped for RGB (what the loaders hand over)
    small = downscaled(image if image.mode == "RGB" else image.convert("RGB"), max_side)
    out = io.BytesIO()
    small.save(out, "JPEG", quality=quality, optimize=True, progressive=False)
    return out.getvalue()


def render_heatmap(image: Image.Image, localisation: dict, *, boxes: bool = True,
                   max_side: int = HEATMAP_MAX_SIDE) -> Image.Image:
    """The picture `--heatmap`/`--heatmaps` write: the image, what the model never saw shaded, the positive
    part of the map over the crop (more opaque where stronger), the crop outlined, and (`boxes`) the top
    regions boxed and numbered. `image` is the picture the model was given, at any scale."""
    import numpy as np
    from PIL import Image, ImageDraw

    width, height = localisation["image_size"]
    scale = min(1.0, max_side / max(width, height))
    if max(width, height) < HEATMAP_MIN_SIDE:
        scale = HEATMAP_MIN_SIDE / max(width, height)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    picture = image.convert("RGB")
    picture = picture.resize(size, Image.Resampling.BILINEAR) if picture.size != size else picture.copy()
    x0, y0, x1, y1 = (round(v * scale) for v in localisation["crop"])
    outside = Image.new("L", size, 170)
    outside.paste(0, (x0, y0, x1, y1))
    picture = Image.composite(Image.new("RGB", size, (32, 32, 32)), picture, outside)
    grid = np.asarray(localisation["grid"], dtype=np.float64).clip(min=0)
    if grid.size and grid.max() > 0 and x1 > x0 and y1 > y0:
        small = Image.fromarray((grid / grid.max() * 255).round().astype(np.uint8), "L")
        strength = np.asarray(small.resize((x1 - x0, y1 - y0), Image.Resampling.BILINEAR), dtype=np.float64) / 255
        colour = Image.fromarray(colour_ramp(strength), "RGB")
        alpha = Image.fromarray((strength * 190).round().astype(np.uint8), "L")
        picture.paste(Image.composite(colour, picture.crop((x0, y0, x1, y1)), alpha), (x0, y0))
    draw = ImageDraw.Draw(picture)
    line = max(1, round(max(size) / 400))
    draw.rectangle((x0, y0, x1 - 1, y1 - 1), outline=(255, 255, 255), width=line)
    for number, region in enumerate(localisation.get("regions") or [] if boxes else [], 1):
        bx0, by0, bx1, by1 = (round(v * scale) for v in region["box"])
        draw.rectangle((bx0, by0, max(bx0, bx1 - 1), max(by0, by1 - 1)), outline=(0, 230, 255), width=line + 1)
        draw.text((bx0 + 2 * line + 1, by0 + line + 1), str(number), fill=(0, 230, 255))
    return picture


# The PNG text chunk every heatmap carries, so that a later run knows the file is one it may replace.
HEATMAP_SOFTWARE = "fakevlm heatmap"


def heatmap_png(image: Image.Image, localisation: dict, *, boxes: bool = True) -> bytes:
    """The heatmap picture as PNG bytes, tagged as fakevlm's (outputs/ writes them: outputs/guard.py). Regions
    are boxed only for an image the model judged fake (`boxes`): on any other verdict they would point at
    evidence for a conclusion it did not reach."""
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("Software", HEATMAP_SOFTWARE)
    out = io.BytesIO()
    render_heatmap(image, localisation, boxes=boxes).save(out, "PNG", pnginfo=info)
    return out.getvalue()


def is_heatmap(path) -> bool:
    """Whether `path` is a heatmap fakevlm wrote (its PNG Software chunk; the pixels are not decoded)."""
    from PIL import Image

    try:
        with Image.open(path) as picture:
            return picture.format == "PNG" and picture.info.get("Software") == HEATMAP_SOFTWARE
    except (OSError, ValueError, Image.DecompressionBombError):
        return False
