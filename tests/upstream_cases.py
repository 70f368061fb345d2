"""Image files whose pixels, as the upstream FakeVLM evaluation fed them to the model, are pinned in
tests/data/upstream_pixels.json (made by tests/make_upstream_pixels.py under transformers 4.45.2).

Each case is written from a seeded array, so the same file comes out on any machine; lossless formats are
used where the decoded pixels must not depend on the codec version (the JPEG case is guarded: its test
skips if this machine's Pillow decodes the file to different pixels than the one that made the fixture).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def _smooth(seed: int, width: int, height: int, channels: int = 3) -> np.ndarray:
    """Seeded content with both gradients and edges, so resampling differences would show ((h, w) for one
    channel, else (h, w, channels))."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (max(2, height // 16), max(2, width // 16), channels), dtype=np.uint8)
    big = np.asarray(Image.fromarray(small.squeeze()).resize((width, height), Image.NEAREST))
    noise = rng.integers(-12, 13, big.shape)
    return np.clip(big.astype(int) + noise, 0, 255).astype(np.uint8)


def write_cases(folder: Path) -> dict[str, Path]:
    """Write every case into `folder`; return name -> path."""
    folder.mkdir(parents=True, exist_ok=True)
    out: dict[str, Path] = {}

    def save(name: str, image: Image.Image, fmt: str, **kwargs) -> None:
        path = folder / f"{name}.{fmt.lower()}"
        image.save(path, fmt, **kwargs)
        out[name] = path

    save("rgb_landscape", Image.fromarray(_smooth(1, 500, 375)), "PNG")
    save("rgb_portrait_odd", Image.fromarray(_smooth(2, 301, 451)), "PNG")
    save("rgb_small_upscaled", Image.fromarray(_smooth(3, 100, 80)), "PNG")
    save("rgb_exact_336", Image.fromarray(_smooth(4, 336, 336)), "PNG")
    rgba = np.dstack([_smooth(5, 400, 300), _smooth(6, 400, 300, 1)])
    save("rgba_alpha", Image.fromarray(rgba, "RGBA"), "PNG")
    save("la_alpha", Image.fromarray(np.dstack([_smooth(7, 350, 350, 1),
                                                _smooth(8, 350, 350, 1)]), "LA"), "PNG")
    save("gray_l", Image.fromarray(_smooth(9, 420, 360, 1), "L"), "PNG")
    palette = Image.fromarray(_smooth(10, 360, 400)).quantize(64)
    save("palette_transparent", palette, "PNG", transparency=3)
    save("cmyk_tiff", Image.fromarray(_smooth(11, 380, 340)).convert("CMYK"), "TIFF")
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90° clockwise to view; upstream never applies it
    save("jpeg_exif_rotated", Image.fromarray(_smooth(12, 480, 320)), "JPEG", quality=92, exif=exif.tobytes())
    return out


def decoded_digest(path: Path) -> str:
    """sha256 of the pixels Pillow decodes from `path` (mode, size and bytes): the guard for codec drift."""
    import hashlib

    with Image.open(path) as im:
        im.load()
        return hashlib.sha256(f"{im.mode}{im.size}".encode() + im.tobytes()).hexdigest()
