"""JPEG structure evidence: quality from the quantisation tables (against exiftool's JPEGQualityEstimate) and the
EXIF thumbnail compared with the image (crafted files: an edited image that kept its old thumbnail)."""

from __future__ import annotations

import io
import re
import shutil
import struct
import subprocess
from pathlib import Path

import pytest
from factories import exif_with_thumbnail, jpeg_with_thumbnail, scene
from PIL import Image, ImageDraw

from fakevlm_cli import evidence
from fakevlm_cli.evidence import jpeg, thumbnail
from fakevlm_cli.run.fusion import fuse

# exiftool 12.57's JPEGQualityEstimate of Pillow 13 files saved at quality 1..100 ("-" = <unknown>), 4:2:0 colour
# and greyscale: recorded once with `exiftool -s3 -JPEGQualityEstimate` (test_agrees_with_exiftool re-checks
# them live where exiftool is installed).
EXIFTOOL_COLOUR = [1, 1, *[None] * 10, *range(13, 101)]
EXIFTOOL_GREY = [1, 1, None, None, None, 5, None, None, None, None, None, 10, *range(13, 101)]


def _jpeg(quality: int | str = 90, *, mode: str = "RGB", size=(64, 48), **params) -> bytes:
    import numpy as np

    rng = np.random.default_rng(0)
    im = Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8), "RGB").convert(mode)
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=quality, **params)
    return buf.getvalue()


def _quality_items(data: bytes):
    report = evidence.collect(None, data, "JPEG")
    return [i for i in report.items if i.source == "jpeg" and i.key == "quantization"]


@pytest.mark.parametrize("subsampling", [0, 1, 2])
@pytest.mark.parametrize("quality", [1, 2, 10, 25, 49, 50, 51, 75, 90, 95, 99, 100])
def test_standard_tables_give_back_the_quality_they_were_saved_at(quality, subsampling):
    found = jpeg.structure(_jpeg(quality, subsampling=subsampling))
    assert jpeg.ijg_quality(found.tables) == quality
    assert jpeg.subsampling(found.components) == {0: "4:4:4", 1: "4:2:2", 2: "4:2:0"}[subsampling]


@pytest.mark.parametrize(("mode", "expected"), [("RGB", EXIFTOOL_COLOUR), ("L", EXIFTOOL_GREY)])
def test_estimate_is_exiftools(mode, expected):
    ours = [jpeg.exiftool_quality(jpeg.structure(_jpeg(q, mode=mode)).segments) for q in range(1, 101)]
    assert ours == expected


@pytest.mark.skipif(shutil.which("exiftool") is None, reason="exiftool is not installed (apt libimage-exiftool-perl)")
def test_agrees_with_exiftool(tmp_path):
    """Live cross-check: every quality, three subsamplings, greyscale, progressive and optimised files."""
    paths = []
    for q in range(1, 101):
        for name, params in (("420", {}), ("444", {"subsampling": 0}), ("prog", {"progressive": True, "optimize": True,
                                                                                 "subsampling": 1})):
            paths.append(tmp_path / f"{name}_{q}.jpg")
            paths[-1].write_bytes(_jpeg(q, **params))
        paths.append(tmp_path / f"grey_{q}.jpg")
        paths[-1].write_bytes(_jpeg(q, mode="L"))
    out = subprocess.run(["exiftool", "-q", "-m", "-T", "-FilePath", "-JPEGQualityEstimate", *map(str, paths)],
                         capture_output=True, text=True, check=True).stdout
    theirs = {line.split("\t")[0]: line.split("\t")[1] for line in out.splitlines()}
    for path in paths:
        ours = jpeg.exiftool_quality(jpeg.structure(path.read_bytes()).segments)
        assert ("<unknown>" if ours is None else str(ours)) == theirs[str(path)], path.name


def test_quality_item_is_weak_and_says_what_it_means():
    (item,) = _quality_items(_jpeg(80))
    assert (item.signal, item.strong) == ("info", False)
    assert item.value.startswith("quality ≈ 80 (exiftool's estimate); standard IJG tables at quality 80")
    assert item.value.endswith("4:2:0, baseline")


def test_own_tables_are_not_called_standard():
    custom = [list(range(1, 65)), [50] * 64]  # a camera's own tables: neither Annex K table at any quality
    (item,) = _quality_items(_jpeg(qtables=custom, progressive=True))
    assert "not the standard IJG tables" in item.value and item.value.endswith("progressive")


def test_low_quality_that_exiftool_cannot_estimate_still_has_its_ijg_quality():
    (item,) = _quality_items(_jpeg(5))
    assert item.value.startswith("quality not estimable; standard IJG tables at quality 5")


def test_dqt_layouts():
    """One segment per table or both in one, 16-bit entries, a table cut short: parsed, never raised."""
    luma, chroma = jpeg.ijg_table(jpeg.STD_LUMINANCE, 60), jpeg.ijg_table(jpeg.STD_CHROMINANCE, 60)

    def table(table_id: int, natural: tuple[int, ...], precision: int = 0) -> bytes:
        stored = [natural[jpeg.ZIGZAG[k]] for k in range(64)]
        return bytes([precision << 4 | table_id]) + b"".join(v.to_bytes(2 if precision else 1, "big") for v in stored)

    def segment(body: bytes) -> bytes:
        return b"\xff\xdb" + struct.pack(">H", len(body) + 2) + body

    both = b"\xff\xd8" + segment(table(0, luma) + table(1, chroma))
    apart = b"\xff\xd8" + segment(table(0, luma)) + segment(table(1, chroma))
    for data in (both, apart):
        found = jpeg.structure(data)
        assert jpeg.ijg_quality(found.tables) == 60 and jpeg.exiftool_quality(found.segments) == 60
    wide = jpeg.structure(b"\xff\xd8" + segment(table(0, luma, precision=1)))
    assert wide.tables[0] == luma  # 16-bit entries read as such
    cut = jpeg.structure(b"\xff\xd8" + segment(table(0, luma)[:30]))
    assert cut.tables == {} and jpeg.describe_quality(cut) is None


# ---- the EXIF thumbnail ---------------------------------------------------------------------------------------


def _thumbnail_item(path):
    report = evidence.collect(path, path.read_bytes(), "JPEG")
    found = [i for i in report.items if i.source == "jpeg" and i.key == "thumbnail"]
    return (found[0] if found else None), report


def test_unedited_file_matches_its_thumbnail(tmp_path):
    picture = scene()
    item, report = _thumbnail_item(jpeg_with_thumbnail(tmp_path / "cam.jpg", picture, picture))
    assert (item.signal, item.strong) == ("info", False) and "shows the same picture" in item.value
    assert report.exif["make"] == "Canon" and report.notes == []


def test_edited_image_with_its_old_thumbnail_is_flagged(tmp_path):
    """The classic trace: the picture was retouched (a shape added, about 6 % of it), the thumbnail was kept."""
    picture = scene()
    edited = picture.copy()
    ImageDraw.Draw(edited).rectangle((40, 330, 200, 450), fill=(250, 20, 20))
    item, _ = _thumbnail_item(jpeg_with_thumbnail(tmp_path / "edited.jpg", edited, picture))
    assert (item.signal, item.strong) == ("edited", False)
    assert "shows different content than the image" in item.value and "bottom left" in item.value
    assert "Says nothing about AI" in item.value
    verdict = fuse("real", 0.1, evidence.collect(None, (tmp_path / "edited.jpg").read_bytes(), "JPEG").items)
    assert verdict.verdict == "real" and any(r.rule == "edited" for r in verdict.reasons)  # weak: never decides


def test_picture_from_another_photo(tmp_path):
    item, _ = _thumbnail_item(jpeg_with_thumbnail(tmp_path / "swap.jpg", scene(seed=8), scene(seed=9)))
    assert item.signal == "edited" and "different content" in item.value


def test_rotated_after_the_thumbnail(tmp_path):
    picture = scene()
    item, _ = _thumbnail_item(jpeg_with_thumbnail(tmp_path / "rot.jpg", picture.transpose(Image.Transpose.ROTATE_90),
                                                  picture))
    assert item.signal == "edited" and "turned 90° anticlockwise" in item.value


def test_cropped_after_the_thumbnail(tmp_path):
    picture = scene()
    item, _ = _thumbnail_item(jpeg_with_thumbnail(tmp_path / "crop.jpg", picture.crop((160, 100, 520, 370)),
                                                  picture))
    assert item.signal == "edited" and "cropped after the thumbnail was written" in item.value
    share = int(re.search(r"about (\d+)% of its area", item.value).group(1))
    assert 27 <= share <= 37  # 360 × 270 of 640 × 480 is 32 %; searched in steps of 5 % of the side


def test_letterboxed_thumbnail_of_a_wider_photo_matches(tmp_path):
    """A 3:2 photo with a 4:3 thumbnail padded with black bars, as many cameras write it."""
    picture = scene((720, 480))
    item, _ = _thumbnail_item(jpeg_with_thumbnail(tmp_path / "wide.jpg", picture, picture))
    assert item.signal == "info" and "shows the same picture" in item.value


def test_no_thumbnail_no_item(tmp_path):
    path = tmp_path / "plain.jpg"
    scene().save(path, "JPEG")
    item, report = _thumbnail_item(path)
    assert item is None and report.notes == []


def test_damaged_thumbnail_is_a_note(tmp_path):
    thumb = io.BytesIO()
    scene().resize((160, 120)).save(thumb, "JPEG")
    path = tmp_path / "damaged.jpg"
    scene().save(path, "JPEG", exif=exif_with_thumbnail(thumb.getvalue()[:600]))
    item, report = _thumbnail_item(path)
    assert item is None and any(n.startswith("jpeg: EXIF thumbnail not compared") for n in report.notes)


def test_thumbnail_claiming_a_huge_size_is_not_decoded(tmp_path):
    thumb = bytearray(_jpeg(80, size=(16, 16)))
    sof = thumb.index(b"\xff\xc0")
    thumb[sof + 5:sof + 9] = struct.pack(">HH", 60000, 60000)  # height, width
    path = tmp_path / "bomb.jpg"
    scene().save(path, "JPEG", exif=exif_with_thumbnail(bytes(thumb)))
    item, report = _thumbnail_item(path)
    assert item is None and report.notes == []


def test_exif_without_ifd1_costs_no_second_exif_pass(tmp_path, monkeypatch):
    """Most EXIF has no IFD1 (Pillow, phones' edits, web tools): the thumbnail search stops at the TIFF header."""
    from factories import camera_jpeg

    def refuse(*args, **kwargs):
        raise AssertionError("exifread was asked for a thumbnail that IFD0 says is not there")

    path = camera_jpeg(tmp_path / "cam.jpg")
    monkeypatch.setattr(thumbnail.exifread, "process_file", refuse)
    assert thumbnail.exif_thumbnail(path.read_bytes()) is None


# ---- hostile padding in the header (issue 23, item 10) ---------------------------------------------------------


def _padded(path, padding: bytes) -> bytes:
    """A JPEG with an XMP packet (and Pillow's EXIF-less header) with `padding` right after SOI."""
    from factories import xmp_jpeg

    data = xmp_jpeg(path).read_bytes()
    return data[:2] + padding + data[2:]


def _evidence_lines(data: bytes) -> int:
    """Python lines run inside fakevlm_cli/evidence while every reader reads `data`: a measure of work, not time."""
    import sys

    count = 0

    def tracer(frame, event, arg):
        nonlocal count
        if "fakevlm_cli/evidence" in frame.f_code.co_filename.replace("\\", "/"):
            if event == "line":
                count += 1
            return tracer
        return None

    sys.settrace(tracer)
    try:
        evidence.collect(Path("x.jpg"), data, "JPEG")
    finally:
        sys.settrace(None)
    return count


@pytest.mark.parametrize("padding", [b"\xff" * 2**20, b"\xff" * 2**18 + b"\xff\xfe\x00\x02" + b"\xff" * 2**18])
def test_fill_bytes_are_skipped_in_bulk_and_the_segments_after_them_read(tmp_path, padding):
    """Fill bytes (FF) before a marker cost the Python walk nothing per byte; what follows them is still read."""
    plain = _padded(tmp_path / "a.jpg", b"")
    data = plain[:2] + padding + plain[2:]
    report = evidence.collect(Path("x.jpg"), data, "JPEG")
    assert any(i.source == "xmp" and i.signal == "ai_generated" for i in report.items)
    assert any(i.key == "quantization" for i in report.items)
    assert _evidence_lines(data) < 2 * _evidence_lines(plain) + 500  # not a line per fill byte (was ~4 a byte)
    from fakevlm_cli.media.images import load_image

    assert load_image(data).image.tobytes() == load_image(plain).image.tobytes()  # Pillow gets the same picture


def test_one_walk_of_the_header_serves_every_reader(tmp_path, monkeypatch):
    from fakevlm_cli.evidence import segments

    data = _padded(tmp_path / "a.jpg", b"\xff" * 1000)
    calls = []
    real = segments.walk
    monkeypatch.setattr(segments, "walk", lambda d: calls.append(len(d)) or real(d))
    evidence.collect(Path("x.jpg"), data, "JPEG")
    assert calls == [len(data)]  # XMP, C2PA markers, JPEG structure and the EXIF thumbnail: one walk
    evidence.collect(Path("x.jpg"), data, "JPEG")
    assert len(calls) == 2  # and nothing is kept from one file to the next


@pytest.mark.parametrize("count", [5000, 300_000])
def test_a_header_of_countless_segments_is_capped(tmp_path, count):
    """Empty COM segments by the hundred thousand: at most MAX_SEGMENTS are read; the pixels are refused in one line."""
    from fakevlm_cli.core.errors import ImageError
    from fakevlm_cli.evidence import segments
    from fakevlm_cli.media.images import load_image

    data = _padded(tmp_path / "a.jpg", b"\xff\xfe\x00\x02" * count)
    walked = segments.walk(data)
    assert len(walked) == segments.MAX_SEGMENTS and walked.capped and walked.steps == segments.MAX_SEGMENTS
    report = evidence.collect(Path("x.jpg"), data, "JPEG")
    assert "jpeg: more than 4,096 marker segments before the image data: the rest were not read" in report.notes
    with pytest.raises(ImageError, match=r"^JPEG header has more than 4,096 marker segments before the image data"):
        load_image(data)
    assert _evidence_lines(data) < 40 * segments.MAX_SEGMENTS


def test_a_normal_header_is_walked_as_before(tmp_path):
    from fakevlm_cli.evidence import segments

    data = _padded(tmp_path / "a.jpg", b"")
    walked = segments.walk(data)
    assert [m for m, _, _ in walked][:2] == [0xE0, 0xE1] and not walked.capped and walked.fill == 0
    assert segments.compacted(data)[0] is data
    assert data[walked.end:walked.end + 2] == b"\xff\xda"  # stopped at the first scan


@pytest.mark.parametrize("padding", [b"", b"\xff" * 3_000_000, b"\xff\xfe\x00\x02" * 300_000])
def test_the_loaders_header_probe_walks_jpeg_markers_itself(tmp_path, monkeypatch, padding):
    """The size probe before a JPEG is read whole never hands it to Pillow's byte-at-a-time header walk."""
    import PIL.Image

    from fakevlm_cli.media.images import probe

    data = _padded(tmp_path / "a.jpg", padding)

    def no_pillow(*args, **kwargs):
        raise AssertionError("Pillow opened the JPEG")

    monkeypatch.setattr(PIL.Image, "open", no_pillow)
    seeks = []
    stream = io.BytesIO(data)
    real_seek = stream.seek
    stream.seek = lambda *a: seeks.append(a) or real_seek(*a)  # type: ignore[method-assign]
    expected = None if padding[:2] == b"\xff\xfe" else (64, 48, "RGB")  # past MAX_SEGMENTS: not told
    assert probe(data[:4096], stream, "JPEG") == expected
    assert len(seeks) < 2 * 4096 + len(padding) // 4096 + 10
