"""Videos: recognised by content, sampled by seeking, judged frame by frame in the scan's batches, one record
per clip. Clips are made here with PyAV; toy clips are made of toy-model images, so their verdicts are known."""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import subprocess
from fractions import Fraction
from pathlib import Path

import jsonschema
import pytest
from factories import (
    XMP_TEMPLATE,
    audio_only,
    c2pa_signed,
    heic_photo,
    numbered_frames,
    small_header_mjpeg,
    video_clip,
)
from PIL import Image

from fakevlm_cli.core.errors import ImageError
from fakevlm_cli.core.options import JudgeOptions
from fakevlm_cli.core.record import load_schema
from fakevlm_cli.media import video
from fakevlm_cli.media.discover import Candidate
from fakevlm_cli.run.pipeline import Scanner
from fakevlm_cli.testing import toy

pytestmark = pytest.mark.video

SEED = toy.FRESH_SEEDS + 60_000


def toy_frames(n: int, fake: set[int], seed: int) -> list[toy.ToyImage]:
    """n toy images of one scene each (fresh seeds), frame i fake when i is in `fake`."""
    return [toy.toy_image(SEED + seed * 100 + i, fake=i in fake) for i in range(n)]


def toy_clip(path: Path, n: int, fake: set[int], seed: int, **kw) -> list[toy.ToyImage]:
    frames = toy_frames(n, fake, seed)
    video_clip(path, [f.image for f in frames], rate=1, **kw)
    return frames


def scan(engine, *paths: Path, **options):
    return list(Scanner(engine, JudgeOptions(**options)).run([Candidate(p, explicit=True) for p in paths]))


def grey(image: Image.Image) -> int:
    return image.getpixel((30, 30))[0]


# ---- recognising and sampling (no model) -------------------------------------------------------------------

@pytest.mark.parametrize(("name", "codec", "fmt"), [("a.mp4", "libx264", "MP4"), ("a.mov", "libx264", "MOV"),
                                                   ("a.mkv", "libx264", "MATROSKA"), ("a.webm", "libvpx-vp9", "WEBM"),
                                                   ("a.avi", "mpeg4", "AVI")])
def test_containers_are_recognised_by_content_and_sampled(tmp_path, name, codec, fmt):
    path = video_clip(tmp_path / name, numbered_frames(10), rate=5, codec=codec)
    disguised = tmp_path / "clip.dat"  # the name says nothing: the bytes decide
    shutil.copy(path, disguised)
    assert video.sniff_video(disguised.read_bytes()[:64]) == fmt
    with open(disguised, "rb") as fh, video.Clip(fh, fmt, max_pixels=10**6) as clip:
        info = clip.info()
        samples = clip.sample(info, frames=4)
    assert (info.width, info.height, info.fps, info.duration_s) == (64, 48, 5.0, 2.0)
    # at 0.25, 0.75, 1.25, 1.75 s the frames on screen (one every 0.2 s) are frames 1, 3, 6 and 8
    assert [round(s.t, 2) for s in samples] == [0.2, 0.6, 1.2, 1.6]
    assert [grey(s.image) for s in samples] == pytest.approx([20, 60, 120, 160], abs=3)


def test_image_brands_are_not_videos(tmp_path):
    heic = heic_photo(tmp_path / "p.heic", numbered_frames(1)[0])
    assert video.sniff_video(heic.read_bytes()[:64]) is None
    assert video.sniff_video(b"\x00\x00\x00\x1cftypavif\x00\x00\x00\x00") is None
    assert video.sniff_video(b"RIFF\x00\x00\x00\x00WEBPVP8 ") is None


def test_sampling_seeks_instead_of_decoding_everything(tmp_path):
    """A minute at 25 fps, keyframe every second: 8 samples decode about 8 seconds' worth, not 1,500 frames."""
    path = video_clip(tmp_path / "long.mp4", numbered_frames(1500, size=(32, 32)), rate=25, gop=25)
    with open(path, "rb") as fh, video.Clip(fh, "MP4", max_pixels=10**6) as clip:
        info = clip.info()
        samples = clip.sample(info, frames=8)
    assert info.frame_count == 1500 and len(samples) == 8
    # the frames on screen (one every 0.04 s) at 3.75 s, 11.25 s, …
    assert [round(s.t, 2) for s in samples] == [math.floor((3.75 + 7.5 * i) * 25) / 25 for i in range(8)]
    assert clip.decoded <= 8 * 26


def test_fps_sampling_and_its_bound():
    assert video.sample_times(4.0, fps=2) == [0.25, 0.75, 1.25, 1.75, 2.25, 2.75, 3.25, 3.75]
    assert len(video.sample_times(7200.0, fps=30)) == video.MAX_SAMPLES
    assert video.sample_times(10.0, frames=5) == [1.0, 3.0, 5.0, 7.0, 9.0]
    assert video.sample_times(None) == [] and video.sample_times(float("nan")) == []
    assert video.sample_times(2.04, fps=2) == [0.25, 0.75, 1.25, 1.75, 2.25]  # the last frame's 0.04 s share too


def test_rotation_is_undone_as_players_show_it(tmp_path):
    """A display matrix of 90° counter-clockwise (exiftool: Rotation 270, clockwise) turns the stored 64×48
    frame into a 48×64 picture whose top-left marker sits at the bottom left."""
    path = video_clip(tmp_path / "turned.mp4", numbered_frames(4), rate=2, rotation=90)
    if shutil.which("exiftool"):  # an independent reader of the same matrix
        out = subprocess.run(["exiftool", "-s3", "-Rotation", str(path)], capture_output=True, text=True).stdout
        assert out.strip() == "270"
    with open(path, "rb") as fh, video.Clip(fh, "MP4", max_pixels=10**6) as clip:
        info = clip.info()
        (sample, *_) = clip.sample(info, frames=2)
    assert info.rotation == 90 and sample.image.size == (48, 64)
    assert sample.image.getpixel((3, 60))[0] > 200 and sample.image.getpixel((3, 52))[0] < 50  # white, then black
    stored = numbered_frames(1)[0]
    assert stored.rotate(-270, expand=True).getpixel((3, 60)) == (255, 255, 255)  # = clockwise by exiftool's 270


def test_aggregate_is_the_mean_of_the_top_third():
    assert video.aggregate([0.0] * 8) == 0.0
    assert video.aggregate([1.0, 1.0] + [0.0] * 6) == 2 / 3  # a manipulated quarter: fake at 0.5
    assert video.aggregate([1.0] + [0.0] * 7) == 1 / 3  # one spurious frame: real
    assert video.aggregate([0.9]) == 0.9
    with pytest.raises(ValueError, match="no frames"):
        video.aggregate([])


# ---- judged with the toy FakeVLM ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def toy_clips(tmp_path_factory):
    folder = tmp_path_factory.mktemp("clips")
    kinds = {"real": set(), "fake": set(range(8)), "quarter": {5, 6}, "spurious": {3}}
    return {kind: (folder / f"{kind}.mp4", toy_clip(folder / f"{kind}.mp4", 8, fake, seed))
            for seed, (kind, fake) in enumerate(kinds.items())}


@pytest.mark.slow
def test_toy_clips_get_the_right_verdict(toy_engine, toy_clips):
    records = scan(toy_engine, *(path for path, _ in toy_clips.values()))
    verdicts = {r.path.rsplit("/", 1)[-1]: r.verdict for r in records}
    assert verdicts == {"real.mp4": "real", "fake.mp4": "fake", "quarter.mp4": "fake", "spurious.mp4": "real"}
    schema = load_schema()
    for record, (_, frames) in zip(records, toy_clips.values(), strict=True):
        row = record.to_dict()
        jsonschema.validate(row, schema)
        assert row["media"] == "video" and row["format"] == "MP4" and row["video"]["codec"] == "h264"
        sampled = row["video"]["sampled"]
        assert [f["t"] for f in sampled] == [float(i) for i in range(8)]  # 1 fps, 8 frames: each one once
        assert [f["p_fake"] >= 0.5 for f in sampled] == [f.fake for f in frames]  # each frame judged right
        top = row["video"]["most_suspicious"]
        assert top == max(sampled, key=lambda f: f["p_fake"])
        assert row["p_fake"] == pytest.approx(video.aggregate([f["p_fake"] for f in sampled]), abs=1e-6)
        assert row["video"]["aggregate"] == video.AGGREGATE


def test_a_clip_is_hashed_whole_and_never_read_into_memory_at_once(toy_engine, toy_clips):
    path, _ = toy_clips["real"]
    (record,) = scan(None, path)
    assert record.sha256 == hashlib.sha256(path.read_bytes()).hexdigest() and record.size == path.stat().st_size
    assert record.video["frame_count"] == 8 and "sampled" not in record.video  # --no-model: nothing sampled
    assert record.verdict == "unknown" and record.p_fake is None


def test_frames_and_fps_options_choose_the_samples(toy_engine, toy_clips):
    path, _ = toy_clips["quarter"]
    (three,) = scan(toy_engine, path, video_frames=3)
    (every_two,) = scan(toy_engine, path, video_fps=0.5)
    assert [f["t"] for f in three.video["sampled"]] == [1.0, 4.0, 6.0]  # on screen at 4/3, 4 and 20/3 s
    assert [f["t"] for f in every_two.video["sampled"]] == [1.0, 3.0, 5.0, 7.0]


def test_explain_names_the_most_suspicious_frame_and_its_artifact(toy_engine, tmp_path):
    """One fake frame in eight (frame 6): the explanation is about that frame, and names where its artifact is."""
    frames = toy_clip(tmp_path / "one.mp4", 8, {6}, seed=20)
    (record,) = scan(toy_engine, tmp_path / "one.mp4", explain=True, max_new_tokens=40)
    assert record.video["explained_frame"]["t"] == 6.0 == record.video["most_suspicious"]["t"]
    assert record.verdict == "real"  # one frame of eight does not make the clip fake
    assert record.text_verdict == "fake" and frames[6].region in record.explanation


@pytest.mark.slow
def test_cli_explain_takes_a_video(cli, toy_model, tmp_path, monkeypatch):
    toy_clip(tmp_path / "clip.mp4", 4, {0, 1, 2, 3}, seed=21)
    monkeypatch.setenv("COLUMNS", "120")
    result = cli("explain", tmp_path / "clip.mp4", "-m", toy_model, "--device", "cpu", "--frames", "4")
    assert result.exit_code == 1, result.output  # fake
    assert "Video: MP4 h264 126x126" in result.output and "4 frames judged" in result.output
    assert "The explanation below is about the most suspicious frame, at" in result.output
    bad = cli("explain", audio_only(tmp_path / "song.mp4"), "-m", toy_model)
    assert bad.exit_code == 2 and "song.mp4: no video stream in this MP4 file (it holds audio)" in bad.output


@pytest.mark.slow
def test_a_scan_mixes_images_heic_photos_and_clips(toy_engine, tmp_path):
    """`fakevlm scan ./mixed`: one record per file, each with the right verdict."""
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    real, fake = toy.toy_image(SEED + 5000, fake=False), toy.toy_image(SEED + 5001, fake=True)
    real.image.save(mixed / "real.png")
    heic_photo(mixed / "IMG_0001.HEIC", fake.image)
    toy_clip(mixed / "fake.mov", 4, {0, 1, 2, 3}, seed=22, fmt="mov")
    toy_clip(mixed / "real.mkv", 4, set(), seed=23, fmt="matroska")
    (mixed / "notes.txt").write_text("not media")
    from fakevlm_cli.media.discover import discover

    records = list(Scanner(toy_engine, JudgeOptions()).run(discover([mixed])))
    got = {Path(r.path).name: (r.media, r.format, r.verdict) for r in records}
    assert got == {"real.png": ("image", "PNG", "real"), "IMG_0001.HEIC": ("image", "HEIF", "fake"),
                   "fake.mov": ("video", "MOV", "fake"), "real.mkv": ("video", "MATROSKA", "real")}
    heic = next(r for r in records if r.format == "HEIF")
    assert heic.exif["make"] == "Apple" and heic.exif["model"] == "iPhone 15 Pro"
    assert any(e["signal"] == "camera" and e["value"] == "Apple" for e in heic.evidence)
    assert not heic.notes, heic.notes


def test_heic_orientation_is_applied_as_for_jpeg(toy_engine, tmp_path):
    """A HEIC stored turned (EXIF Orientation 6) is judged upright, as a viewer shows it."""
    fake = toy.toy_image(SEED + 5002, fake=True)
    stored = fake.image.transpose(Image.Transpose.ROTATE_90)  # Orientation 6 = turn 90° clockwise to view
    path = heic_photo(tmp_path / "turned.heic", stored, orientation=6)
    (record,) = scan(toy_engine, path, explain=True, max_new_tokens=40)
    assert record.verdict == "fake" and fake.region in record.explanation


# ---- provenance from the container ---------------------------------------------------------------------------

def test_container_tags_are_evidence_and_generator_names_stay_weak(tmp_path):
    path = video_clip(tmp_path / "gen.mp4", numbered_frames(3), metadata={"comment": "Made with Sora",
                                                                           "title": "holiday"})
    (record,) = scan(None, path)
    found = {(e["source"], e["key"], e["signal"], e["strong"]) for e in record.evidence}
    assert ("container", "comment", "ai_generated", False) in found
    assert any(e["key"] == "encoder" and e["value"].startswith("Lavf") and e["signal"] == "info"
               for e in record.evidence)
    assert record.verdict == "unknown"  # a free-text tag anyone can write never decides alone


@pytest.mark.parametrize(("name", "mime"), [("clip.mp4", "video/mp4"), ("clip.mov", "video/quicktime"),
                                           ("photo.heic", "image/heic")])
def test_c2pa_in_videos_and_heic_decides_as_in_jpegs(tmp_path, name, mime):
    """A signed manifest declaring trainedAlgorithmicMedia (c2pa-python wrote it) makes a clip or HEIC fake."""
    src = tmp_path / f"plain{Path(name).suffix}"
    if mime.startswith("video"):
        video_clip(src, numbered_frames(3), fmt="mov" if name.endswith(".mov") else None)
    else:
        heic_photo(src, numbered_frames(1)[0])
    signed = c2pa_signed(src, tmp_path / name, mime)
    (record,) = scan(None, signed)
    assert record.verdict == "fake" and record.error is None, record.notes
    assert any(e["source"] == "c2pa" and e["signal"] == "ai_generated" and e["strong"] for e in record.evidence)
    (plain,) = scan(None, src)
    assert plain.verdict == "unknown" and not any(e["source"] == "c2pa" for e in plain.evidence)


def test_video_c2pa_signers_are_checked_against_trust_anchors(tmp_path):
    """--trust-anchors reaches a clip's manifest as it reaches an image's: the CA that issued the signer's
    certificate makes it trusted; without anchors it is unknown."""
    from fakevlm_cli import evidence
    from fakevlm_cli.evidence.c2pa import read_anchors

    video_clip(tmp_path / "plain.mp4", numbered_frames(3))
    signed = c2pa_signed(tmp_path / "plain.mp4", tmp_path / "signed.mp4", "video/mp4", ca_pem=tmp_path / "ca.pem")
    trust = {}
    for label, anchors in (("none", None), ("ca", read_anchors(tmp_path / "ca.pem"))):
        with open(signed, "rb") as fh:
            report = evidence.read_container(fh, "MP4", trust_anchors=anchors)
        (signer,) = [e for e in report.items if e.source == "c2pa" and e.key == "signer"]
        trust[label] = signer.trust
    assert trust == {"none": "unknown", "ca": "trusted"}


def test_xmp_in_a_heic_is_read(tmp_path):
    import pillow_heif

    heif = pillow_heif.from_pillow(numbered_frames(1)[0])
    xmp = XMP_TEMPLATE.format(uri="http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia")
    heif.save(str(tmp_path / "gen.heic"), quality=-1, xmp=xmp.encode())
    (record,) = scan(None, tmp_path / "gen.heic")
    assert record.verdict == "fake" and record.evidence[0]["source"] == "xmp"


def test_quicktime_camera_tags_are_camera_hints():
    from fakevlm_cli.evidence.container import describe

    items = describe({"com.apple.quicktime.make": "Apple", "com.apple.quicktime.model": "iPhone 15 Pro",
                      "encoder": "Runway Gen-3 export", "handler_name": "Core Media Video"})
    assert [(e.key, e.signal, e.strong) for e in items] == [
        ("com.apple.quicktime.make", "camera", False), ("com.apple.quicktime.model", "camera", False),
        ("encoder", "ai_generated", False), ("handler_name", "info", False)]
    assert items[2].to_dict()["generator"] == "Runway"
    assert describe({"comment": "veoh.com upload", "title": "pikachu"}) == []  # whole words only


# ---- bad input: one error record or a note each, bounded -------------------------------------------------

def test_hostile_clips_give_one_record_each(tmp_path):
    good = video_clip(tmp_path / "good.mp4", numbered_frames(20), rate=5)
    data = good.read_bytes()
    (tmp_path / "empty.mp4").write_bytes(b"")
    (tmp_path / "cut.mp4").write_bytes(data[: len(data) // 3])
    (tmp_path / "header.mp4").write_bytes(data[:40])
    audio_only(tmp_path / "audio.m4a")
    paths = sorted(p for p in tmp_path.iterdir() if p.name != "good.mp4")
    records = {Path(r.path).name: r for r in scan(None, *paths)}
    assert records["empty.mp4"].error == "empty file (0 bytes)"
    assert records["audio.m4a"].error == "no video stream in this MP4 file (it holds audio)"
    assert records["header.mp4"].error == "corrupt MP4 file: Invalid data found when processing input"
    for name, record in records.items():
        jsonschema.validate(record.to_dict(), load_schema())
        assert "\n" not in (record.error or ""), name
    # a truncated clip whose header survived: read as far as it goes, never a hang
    assert records["cut.mp4"].verdict in ("unknown", "error")


def test_a_truncated_clip_is_judged_on_the_frames_it_has(engine, tmp_path):
    good = video_clip(tmp_path / "good.mkv", numbered_frames(40, size=(32, 32)), rate=10, fmt="matroska")
    cut = tmp_path / "cut.mkv"  # Matroska has its index at the start: the first half still plays
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    (record,) = scan(engine, cut)
    assert record.verdict in ("real", "fake", "unknown") and record.video["sampled"]
    assert max(f["t"] for f in record.video["sampled"]) < 4.0
    assert any("frames end at" in n or "sampled times had a frame" in n for n in record.notes), record.notes


def test_frames_over_max_pixels_are_refused_before_decoding(tmp_path):
    path = video_clip(tmp_path / "big.mp4", numbered_frames(2, size=(256, 256)))
    (record,) = scan(None, path, max_pixels=50_000)
    assert record.error == "video frames are 256x256 (65,536 pixels), over the --max-pixels limit of 50,000 pixels"


def test_a_clip_claiming_100_hours_is_sampled_over_what_it_has(engine, tmp_path):
    """An AVI whose headers claim 9 million frames (100 hours): sampled over its real 12 s, quickly."""
    import struct

    path = video_clip(tmp_path / "claim.avi", numbered_frames(300, size=(32, 32)), rate=25, gop=25, codec="mpeg4")
    data = bytearray(path.read_bytes())
    for box, offset in ((b"avih", 8 + 16), (b"strh", 8 + 32)):  # dwTotalFrames, dwLength
        at = data.find(box)
        data[at + offset:at + offset + 4] = struct.pack("<I", 25 * 3600 * 100)
    path.write_bytes(bytes(data))
    (record,) = scan(engine, path)
    assert record.video["duration_s"] == 360000.0 and record.video["frame_count"] == 9_000_000
    assert len(record.video["sampled"]) == 8 and max(f["t"] for f in record.video["sampled"]) < 12.0
    assert any("the file declares 100.0 hours" in n for n in record.notes)
    assert any("frames end at 12.0 s" in n for n in record.notes)
    (metadata_only,) = scan(None, path)  # --no-model: what the container claims is said too
    assert any("the file declares 100.0 hours" in n for n in metadata_only.notes)


SPARSE = [("a.mkv", "matroska", "mjpeg"), ("a.mp4", None, "libx264")]


@pytest.mark.parametrize(("name", "fmt", "codec"), SPARSE)
@pytest.mark.parametrize("seconds", [[0, 1, 2], [0, 1, 2, 3, 4], [0, 0.5, 2.5, 3]])
@pytest.mark.parametrize("sampling", [{"frames": 8}, {"fps": 2}, {"fps": 1}])
def test_every_frame_of_a_sparse_clip_can_be_reached(tmp_path, name, fmt, codec, seconds, sampling):
    """Frames seconds apart in a stream declaring 25 fps: the last one (often the one that matters) is sampled,
    at its own time. Sampling over [0, last + 1/25 s] used to miss it, and a second pass dropped it."""
    frames = numbered_frames(len(seconds))
    path = video_clip(tmp_path / name, frames, rate=25, pts=[int(t * 1000) for t in seconds],
                      time_base=Fraction(1, 1000), fmt=fmt, codec=codec)
    with open(path, "rb") as fh, video.Clip(fh, "X", max_pixels=10**6) as clip:
        samples = clip.sample(clip.info(), **sampling)
    # one sample a share: with --fps 1 the frame at 0 s gives way to the one on screen at 0.5 s
    wanted = [0.5, 2.5, 3] if sampling == {"fps": 1} and seconds[1] == 0.5 else seconds
    assert [s.t for s in samples] == wanted
    assert abs(grey(samples[-1].image) - 20 * (len(seconds) - 1)) <= 4  # the last frame's own picture


def test_times_up_to_the_last_frame_reach_it():
    assert video.times_up_to(2.0, frames=8)[-1] == 2.0 and len(video.times_up_to(2.0, frames=8)) == 8
    assert video.times_up_to(2.0, fps=2) == [0.25, 0.75, 1.25, 1.75, 2.0]
    assert video.times_up_to(7.0, frames=1) == [3.5] and video.times_up_to(0.0) == [0.0]
    assert len(video.times_up_to(7200.0, fps=30)) == video.MAX_SAMPLES


def test_the_last_frame_of_a_sparse_clip_decides_its_verdict(toy_engine, tmp_path):
    """Three toy frames 1 s apart in a stream declaring 25 fps, the third fake: the clip is fake."""
    frames = toy_frames(3, {2}, seed=77)
    path = video_clip(tmp_path / "sparse.mkv", [f.image for f in frames], rate=25, pts=[0, 1000, 2000],
                      time_base=Fraction(1, 1000), fmt="matroska", codec="ffv1")
    for options in ({}, {"video_fps": 2.0}):
        (record,) = scan(toy_engine, path, **options)
        assert [f["t"] for f in record.video["sampled"]] == [0.0, 1.0, 2.0], options
        assert record.verdict == "fake", (options, record.to_dict())


@pytest.mark.parametrize(("ends", "declared", "said"), [(0.04, 0.05, ("0.040 s", "0.050 s")),
                                                        (12.0, 15.0, ("12.0 s", "15.0 s")),
                                                        (1.0004, 1.0012, ("1.000 s", "1.001 s")),
                                                        (12.0, 360000.0, ("12.0 s", "100.0 hours"))])
def test_durations_in_a_note_are_told_apart(ends, declared, said):
    assert video._two(ends, declared) == said


# ---- frames bigger than the container header (issue 23, item 4) ---------------------------------------------

def test_frames_bigger_than_the_header_are_held_to_max_pixels(engine, tmp_path):
    path = small_header_mjpeg(tmp_path / "liar.mkv")
    (record,) = scan(engine, path, max_pixels=1_000_000)
    assert record.verdict == "error" and record.error == (
        "a video frame is 2000x2000 (4.0 MP), over the --max-pixels limit of 1.0 MP (the container header says 64x64)")
    (record,) = scan(engine, path)  # within the limit: judged, and the record gives the frames' real size
    assert record.verdict != "error" and (record.width, record.height) == (2000, 2000)
    assert (record.video["width"], record.video["height"]) == (2000, 2000)
    assert "video: frames are 2000x2000, not the 64x64 the container header says" in record.notes


def test_a_frame_bigger_than_the_header_is_refused_by_its_own_frame_index(tmp_path):
    path = small_header_mjpeg(tmp_path / "liar.mkv")
    with open(path, "rb") as fh, video.Clip(fh, "MATROSKA", max_pixels=1_000_000) as clip:
        assert clip.info().width == 64
        assert clip.frame_at_index(0).image.size == (64, 64)
        with pytest.raises(ImageError, match="a video frame is 2000x2000"):
            clip.frame_at_index(1)


def test_frames_bigger_than_the_header_count_their_real_bytes_against_max_memory(engine, tmp_path):
    from fakevlm_cli.media.loader import Inspector

    path = small_header_mjpeg(tmp_path / "liar.mkv")
    real = video.frame_bytes(2000, 2000)  # 48 MB; the header's 64x64 would be 49 kB
    (record,) = scan(engine, path, max_memory=real // 2)
    assert record.verdict == "error" and "more than --max-memory allows" in record.error, record.error
    inspector = Inspector(engine, JudgeOptions(max_memory=4 * real))
    job = inspector.inspect(Candidate(path, explicit=True))
    assert job.record.error is None and inspector.memory.peak >= real and inspector.memory.used == 0
    assert len(job.pixels) == 3 and not any("frames end" in n for n in job.record.notes)


def test_a_variable_frame_rate_clip_is_sampled_in_time_order(engine, tmp_path):
    path = video_clip(tmp_path / "vfr.mp4", numbered_frames(6), rate=25, pts=[0, 40, 500, 520, 3000, 3010],
                      time_base=Fraction(1, 1000))
    (record,) = scan(engine, path, video_frames=4)
    times = [f["t"] for f in record.video["sampled"]]
    assert times == sorted(set(times)) and record.verdict != "error"


def test_video_record_renders_in_the_table_and_csv(toy_engine, toy_clips):
    import csv
    import io

    from rich.console import Console

    from fakevlm_cli.outputs.output import CsvSink
    from fakevlm_cli.outputs.render import TableSink

    (record,) = scan(toy_engine, toy_clips["quarter"][0])
    console = Console(record=True, width=160, color_system=None)
    TableSink(console).write(record)
    assert "8 frames, top at" in console.export_text()
    buf = io.BytesIO()
    sink = CsvSink(buf, "out.csv")
    sink.write(record)
    (row,) = list(csv.DictReader(io.StringIO(buf.getvalue().decode())))
    assert (row["media"], row["duration_s"], row["frames_judged"]) == ("video", "8.0", "8")
    assert float(row["most_suspicious_s"]) in (5.0, 6.0)


def test_jsonl_of_a_clip_round_trips(toy_engine, toy_clips):
    from fakevlm_cli.core.record import Record

    (record,) = scan(toy_engine, toy_clips["fake"][0])
    row = json.loads(json.dumps(record.to_dict()))
    assert Record.from_dict(row).to_dict() == row


def test_the_clip_sampler_raises_image_errors_only(tmp_path):
    with open(audio_only(tmp_path / "a.mp4"), "rb") as fh, pytest.raises(ImageError):
        video.Clip(fh, "MP4", max_pixels=10**6).__enter__()


# ---- eval from clips ---------------------------------------------------------------------------------------

def _ddvqa_from_clips(root: Path) -> Path:
    """Deepfakes video 114_102 (3 frames): frame 1 fake, the others real; its verdict questions are at positions
    1, 2 and 3 (the first question is a part question), so only a loader that hands question i frame i gets
    fake, real, and a missing frame. Original video 044: all real, its verdict question first."""
    verdict = {"question": "Does the image looks real/fake?", "answer": ["The image looks fake. The skin is odd."]}
    part = {"question": "Does the person's nose look real/fake?", "answer": ["The nose looks fake."]}
    deepfakes = {"0": part, "1": verdict, "7": verdict, "9": verdict}
    for method, key, questions, fake in (("Deepfakes", "0_114_102", deepfakes, {1}),
                                         ("Original", "5_044", {"0": verdict}, set())):
        folder = root / "test_set" / method
        folder.mkdir(parents=True)
        (folder / f"{method}.json").write_text(json.dumps({key: questions}))
        (root / "frames" / method).mkdir(parents=True)
        toy_clip(root / "frames" / method / f"{key.split('_', 1)[1]}.mp4", 3, fake, seed=30 + len(method))
    return root


def test_ddvqa_takes_clips_and_gives_the_ith_question_the_ith_frame(tmp_path):
    from fakevlm_cli.datasets.loaders import load_ddvqa

    result = load_ddvqa(_ddvqa_from_clips(tmp_path / "DQ_FF++"))
    got = {i.id: (i.image.name, i.frame_index, i.label) for i in result.items}
    assert got == {"Deepfakes/0_114_102/1": ("114_102.mp4", 1, "fake"),
                   "Deepfakes/0_114_102/7": ("114_102.mp4", 2, "fake"), "Original/5_044/0": ("044.mp4", 0, "real")}
    (missing,) = result.missing
    assert missing.endswith("frame #3 for question 9 (3 frames in 114_102.mp4)")


@pytest.mark.slow
def test_eval_ddvqa_and_folder_from_clips(cli, toy_model, tmp_path):
    data = _ddvqa_from_clips(tmp_path / "DQ_FF++")
    out = tmp_path / "ddvqa.json"
    preds = tmp_path / "preds.jsonl"
    result = cli("eval", "--bench", "ddvqa", "--data", data, "-m", toy_model, "-o", out, "--predictions", preds)
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in preds.read_text().splitlines()]
    assert {r["item_id"]: (r["video"]["frame"]["index"], r["verdict"]) for r in rows} == {
        "Deepfakes/0_114_102/1": (1, "fake"), "Deepfakes/0_114_102/7": (2, "real"),
        "Original/5_044/0": (0, "real")}
    folder = tmp_path / "bench"
    toy_clip((folder / "real").mkdir(parents=True) or folder / "real" / "r.mp4", 3, set(), seed=40)
    toy_clip((folder / "fake" / "gen").mkdir(parents=True) or folder / "fake" / "gen" / "f.webm", 3, {0, 1, 2},
             seed=41, codec="libvpx-vp9")
    toy.toy_image(SEED + 5003, fake=True).image.save(folder / "fake" / "gen" / "still.png")
    result = cli("eval", "--bench", "folder", "--data", folder, "-m", toy_model, "-o", tmp_path / "folder.json",
                 "--video-frames", "3")
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "folder.json").read_text())["metrics"]["overall"]
    assert metrics["n"] == 3 and metrics["accuracy"] == 1.0



def test_one_frame_of_a_turned_clip_is_a_picture_in_the_shape_it_is_shown(tmp_path):
    """DD-VQA judges one frame of a clip as a picture: its map is laid over the frame as shown (48×64 for a
    64×48 clip turned 90°), and --heatmaps / --report get its preview and thumbnail, as for an image file."""
    import stub_engine

    from fakevlm_cli.media.loader import Inspector

    path = video_clip(tmp_path / "turned.mp4", numbered_frames(4), rate=2, rotation=90)
    inspector = Inspector(stub_engine.StubEngine(), JudgeOptions(), preview=True, thumbnails=32)
    job = inspector.inspect(Candidate(path, explicit=True, frame_index=1))
    assert job.record.error is None and job.record.video["frame"]["index"] == 1 and len(job.pixels) == 1
    assert job.input_size == (48, 64) and job.preview.size == (48, 64) and job.record.thumbnail


@pytest.mark.parametrize(("threshold", "red"), [(0.9, ["0.0 s"]), (0.3, ["0.0 s", "1.0 s", "2.0 s"])])
def test_the_panels_frame_strip_is_red_where_the_runs_threshold_says_fake(threshold, red):
    """A frame is drawn red when its P(fake) reaches the threshold the record was judged by (a calibrated one
    too), not a fixed 0.5: at 0.9 a 60% frame is not fake, at 0.3 a 40% one is."""
    from rich.console import Group

    from fakevlm_cli.core.record import Record
    from fakevlm_cli.outputs.render import explain_panel

    sampled = [{"t": 0.0, "p_fake": 0.95}, {"t": 1.0, "p_fake": 0.6}, {"t": 2.0, "p_fake": 0.4},
               {"t": 3.0, "p_fake": 0.1}]
    record = Record(path="clip.mp4", verdict="fake", p_fake=0.95, threshold=threshold, model_verdict="fake",
                    media="video", video={"container": "MP4", "codec": "h264", "width": 8, "height": 8,
                                          "sampled": sampled, "most_suspicious": {"t": 3.0}})
    panel = explain_panel(record)
    assert isinstance(panel.renderable, Group)
    strip = next(t for t in panel.renderable.renderables if str(t).strip().startswith("0.0 s"))
    shown = [(str(strip)[s.start:s.end].split()[0] + " s", s.style) for s in strip.spans]
    assert [t for t, style in shown if style == "red"] == red
