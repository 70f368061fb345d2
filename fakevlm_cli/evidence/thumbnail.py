"""The EXIF thumbnail against the picture: a thumbnail that shows other content, a wider view or another
orientation than the image is the classic trace of an edit that kept the camera's thumbnail.

Both are compared grey and normalised (`compare_thumbnail`); the thumbnail is extracted by exifread, the main
image decoded at most at 1/8 scale (libjpeg's DCT scaling). A thumbnail that matches proves nothing: editors
rewrite it, and a forger can too. Part of the JPEG reader (jpeg.py), which walks the segments once.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import TYPE_CHECKING, BinaryIO, Literal, cast

import exifread
import numpy as np

from fakevlm_cli.core import library_warnings

from ._common import clip
from .segments import frame_header, jpeg_segments
from .types import Evidence

if TYPE_CHECKING:  # pragma: no cover
    from .jpeg import Structure

SOI = b"\xff\xd8"

# What the comparison works on: both pictures as grey GRID × GRID, each normalised to mean 0 and deviation 1
# (a thumbnail's own tone curve and JPEG noise are not content), then differences per CELL × CELL block.
GRID = 64
CELL = 8
# Thresholds, set on 54 camera JPEGs with their EXIF thumbnails (the exif-samples and exif.org collections, and
# one file of the shared C2PA corpus): the 51 whose picture was not changed reach a correlation of 0.927 or more
# and a block difference of at most 0.69, also after re-saving at quality 70; the other three were found (one
# cropped, one with another photo's thumbnail, one with damaged image data). A region copied over another part
# of the same photo is found in 78 % of those files when it covers 6 % of the picture, 93 % at 12 %, and
# rarely below 2 % (docs/evidence.md).
MIN_CORRELATION = 0.90
MAX_BLOCK_DIFFERENCE = 0.80
MAX_THUMB_SIDE = 1024  # an EXIF thumbnail lives in a 64 KiB segment; one claiming more is not decoded
MAX_MAIN_PIXELS = 400_000_000  # the main image is decoded at 1/8 scale at most: at most 6 MP of grey here
_ROTATIONS = {1: "90° anticlockwise", 2: "180°", 3: "90° clockwise"}
_REGIONS = ("top left", "top", "top right", "left", "centre", "right", "bottom left", "bottom", "bottom right")


def _has_ifd1(tiff: bytes) -> bool:
    """Whether IFD0 links to a next IFD (IFD1, where a thumbnail lives): three integers of the TIFF header, so
    the many files without one never cost a second exifread pass."""
    order: Literal["little", "big"] = "little" if tiff[:2] == b"II" else "big"
    ifd0 = int.from_bytes(tiff[4:8], order)
    if ifd0 + 2 > len(tiff):
        return False
    link = ifd0 + 2 + 12 * int.from_bytes(tiff[ifd0:ifd0 + 2], order)
    return 0 < int.from_bytes(tiff[link:link + 4], order) < len(tiff)


def exif_thumbnail(data: bytes) -> bytes | None:
    """The JPEG thumbnail of a JPEG's EXIF (IFD1), extracted by exifread from the APP1 segment alone."""
    for marker, start, end in jpeg_segments(data):
        if marker == 0xE1 and data[start:start + 6] == b"Exif\x00\x00":
            if not _has_ifd1(data[start + 6:end]):
                return None
            segment = SOI + data[start - 4:end] + b"\xff\xd9"  # exifread wants a JPEG: SOI, APP1, EOI
            tags = exifread.process_file(cast(BinaryIO, io.BytesIO(segment)), details=False,
                                         extract_thumbnail=True)
            thumb = tags.get("JPEGThumbnail")
            return thumb if isinstance(thumb, bytes) and thumb[:2] == SOI else None
    return None


def _grey(data: bytes, want: tuple[int, int] | None = None) -> np.ndarray:
    """A JPEG as a float grey array, as stored (no EXIF rotation); `want`: decode reduced, to at least that size."""
    from PIL import Image

    with library_warnings.silenced(), Image.open(io.BytesIO(data)) as im:
        if want is not None:
            im.draft("L", want)  # DCT scaling: a 12 MP photo decodes at 1/8 in a few milliseconds
        return np.asarray(im.convert("L"), dtype=np.float64)


def _without_bars(a: np.ndarray) -> np.ndarray:
    """Drop the black bars cameras pad a thumbnail with when its shape differs from the photo's."""
    def dark(line: np.ndarray) -> bool:
        return bool(line.mean() < 20 and line.std() < 6)

    top, bottom, left, right = 0, a.shape[0], 0, a.shape[1]
    while bottom - top > 8 and dark(a[top, left:right]):
        top += 1
    while bottom - top > 8 and dark(a[bottom - 1, left:right]):
        bottom -= 1
    while right - left > 8 and dark(a[top:bottom, left]):
        left += 1
    while right - left > 8 and dark(a[top:bottom, right - 1]):
        right -= 1
    return a[top:bottom, left:right]


def _normalised(a: np.ndarray, size: tuple[int, int] = (GRID, GRID)) -> np.ndarray:
    from PIL import Image

    resized = np.asarray(Image.fromarray(a.astype(np.float32), "F").resize(size, Image.Resampling.BOX),
                         dtype=np.float64)
    return (resized - resized.mean()) / (resized.std() + 1e-6)


@dataclass(frozen=True)
class ThumbnailCheck:
    """How the EXIF thumbnail compares with the image."""

    outcome: str  # "match", "rotated", "cropped", "differs", "flat" (no content to compare)
    correlation: float
    block_difference: float
    region: str | None = None  # "differs": where the largest difference is
    rotation: str | None = None  # "rotated": how the image is turned relative to its thumbnail
    coverage: float | None = None  # "cropped": the image's share of the thumbnail's area
    thumb_size: tuple[int, int] = (0, 0)


def compare_thumbnail(thumb: np.ndarray, main: np.ndarray) -> ThumbnailCheck:
    """Compare a thumbnail and a (reduced) main image, both grey arrays as stored."""
    shown = _without_bars(thumb)
    size = (int(thumb.shape[1]), int(thumb.shape[0]))
    if shown.std() < 2 or main.std() < 2:
        return ThumbnailCheck("flat", 1.0, 0.0, thumb_size=size)
    a, b = _normalised(shown), _normalised(main)
    correlation, blocks = _similarity(a, b)
    if correlation >= MIN_CORRELATION and blocks.max() <= MAX_BLOCK_DIFFERENCE:
        return ThumbnailCheck("match", correlation, float(blocks.max()), thumb_size=size)
    for k in (1, 2, 3):  # the picture was turned after the thumbnail was made (or the thumbnail was)
        turned = _normalised(np.rot90(main, -k))
        r, turned_blocks = _similarity(a, turned)
        if r >= MIN_CORRELATION and turned_blocks.max() <= MAX_BLOCK_DIFFERENCE:
            return ThumbnailCheck("rotated", r, float(turned_blocks.max()), rotation=_ROTATIONS[k], thumb_size=size)
    crop = _find_crop(shown, main)
    if crop is not None:
        return ThumbnailCheck("cropped", crop[0], 0.0, coverage=crop[1], thumb_size=size)
    worst = np.unravel_index(int(blocks.argmax()), blocks.shape)
    third = blocks.shape[0] / 3
    region = _REGIONS[int(worst[0] // third) * 3 + int(worst[1] // third)]
    return ThumbnailCheck("differs", correlation, float(blocks.max()), region=region, thumb_size=size)


def _similarity(a: np.ndarray, b: np.ndarray) -> tuple[float, np.ndarray]:
    """Correlation of two normalised grids and the mean absolute difference of each CELL × CELL block."""
    n = a.shape[0] // CELL
    blocks = np.abs(a - b).reshape(n, CELL, n, CELL).mean(axis=(1, 3))
    return float((a * b).mean()), blocks


def _find_crop(thumb: np.ndarray, main: np.ndarray) -> tuple[float, float] | None:
    """(correlation, share of the thumbnail's area) where the main image matches a part of the thumbnail.

    The main image, at its own aspect ratio, is slid over the thumbnail (reduced to at most 96 px wide) at
    40–100 % of the largest size that fits, scoring every position by normalised cross-correlation (numpy's
    sliding windows: a few million multiplications). The full size counts only when the shapes differ.
    """
    from numpy.lib.stride_tricks import sliding_window_view
    from PIL import Image

    scale = min(1.0, 96 / thumb.shape[1])
    small = np.asarray(Image.fromarray(thumb.astype(np.float32), "F").resize(
        (max(8, round(thumb.shape[1] * scale)), max(8, round(thumb.shape[0] * scale))), Image.Resampling.BOX),
        dtype=np.float64)
    aspect = main.shape[1] / main.shape[0]
    fit_w = min(small.shape[1], small.shape[0] * aspect)
    same_shape = abs(aspect / (small.shape[1] / small.shape[0]) - 1) < 0.03
    best: tuple[float, float] | None = None
    for share in np.arange(0.40, 1.001 if not same_shape else 0.96, 0.05):
        w = min(small.shape[1], round(fit_w * share))
        h = min(small.shape[0], round(w / aspect))
        if h < 4 or w < 4:
            continue
        template = _normalised(main, (w, h))  # mean 0: sum(window · template) needs no window mean
        dot = np.einsum("ijkl,kl->ij", sliding_window_view(small, (h, w)), template)
        n = h * w
        total, squares = _box_sums(small, h, w), _box_sums(small * small, h, w)
        std = np.sqrt(np.maximum(squares / n - (total / n) ** 2, 0)) + 1e-6
        scores = dot / (n * std)
        r = float(scores.max())
        if r >= MIN_CORRELATION and (best is None or r > best[0]):
            best = (r, w * h / (small.shape[0] * small.shape[1]))
    return best


def _box_sums(a: np.ndarray, h: int, w: int) -> np.ndarray:
    """The sum of every h × w window of `a` (an integral image)."""
    c = np.pad(a, ((1, 0), (1, 0))).cumsum(axis=0).cumsum(axis=1)
    return c[h:, w:] - c[:-h, w:] - c[h:, :-w] + c[:-h, :-w]


def check_thumbnail(data: bytes, found: Structure) -> ThumbnailCheck | None:
    """The EXIF thumbnail against the image, or None when there is no thumbnail to compare."""
    thumb_bytes = exif_thumbnail(data)
    if thumb_bytes is None:
        return None
    thumb_frame = frame_header(io.BytesIO(thumb_bytes))  # (width, height, components), None without one
    if thumb_frame is None or not (0 < thumb_frame[0] <= MAX_THUMB_SIDE and 0 < thumb_frame[1] <= MAX_THUMB_SIDE):
        return None
    if not (0 < found.width * found.height <= MAX_MAIN_PIXELS):
        return None
    thumb = _grey(thumb_bytes)
    main = _grey(data, (2 * thumb.shape[1], 2 * thumb.shape[0]))
    return compare_thumbnail(thumb, main)


def describe_thumbnail(check: ThumbnailCheck) -> Evidence:
    """The evidence item for a thumbnail check, worded with what it can and cannot tell."""
    tw, th = check.thumb_size
    if check.outcome == "match":
        return Evidence("jpeg", "thumbnail", f"EXIF thumbnail ({tw}×{th}) shows the same picture as the image "
                        "(consistent; an editor that rewrites the thumbnail leaves no trace here)", "info")
    if check.outcome == "flat":
        return Evidence("jpeg", "thumbnail", f"EXIF thumbnail ({tw}×{th}) or image too uniform to compare", "info")
    if check.outcome == "rotated":
        text = (f"the image is the EXIF thumbnail's picture turned {check.rotation}: it was rotated after the "
                "thumbnail was written (a lossless rotation leaves this trace too)")
    elif check.outcome == "cropped":
        text = (f"the image shows only part of what its EXIF thumbnail ({tw}×{th}) shows (about "
                f"{check.coverage:.0%} of its area): cropped after the thumbnail was written, by an editor or "
                "by a camera's own aspect-ratio mode")
    else:
        text = (f"the EXIF thumbnail ({tw}×{th}) shows different content than the image (largest difference: "
                f"{check.region}; correlation {check.correlation:.2f}): the picture was changed after the "
                "thumbnail was written, the metadata came from another photo, or the image data is damaged. Says "
                "nothing about AI")
    return Evidence("jpeg", "thumbnail", clip(text, 300), "edited")
