"""Files built to exhaust memory or time, and metadata that must not stop the pixels.

Memory is checked in a child process: its peak RSS (VmHWM) must stay under a generous bound, and its
address space is capped (RLIMIT_AS) so a regression fails fast instead of swapping. "Huge" files are sparse.
"""

from __future__ import annotations

import io
import json
import logging
import os
import struct
import subprocess
import sys
import textwrap
import threading
import tracemalloc
import zlib
from pathlib import Path

import factories as f
import numpy as np
import pytest
from conftest import noise_image
from PIL import Image

from fakevlm_cli.core.options import JudgeOptions
from fakevlm_cli.media.discover import Candidate, read_path_list
from fakevlm_cli.media.images import load_image
from fakevlm_cli.media.reading import MemoryBudget
from fakevlm_cli.run.pipeline import Scanner

REPO = Path(__file__).resolve().parents[1]
MiB = 2**20


def chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_with(before_idat: bytes = b"", im: Image.Image | None = None) -> bytes:
    buf = io.BytesIO()
    (im or noise_image(7, (16, 12))).save(buf, "PNG")
    data = buf.getvalue()
    return data[:33] + before_idat + data[33:]


def bounded(code: str, *, address_space_mib: int = 1536) -> tuple[dict, int]:
    """Run `code` in a child with capped address space; return what it printed (JSON) and its peak RSS in MiB."""
    prelude = textwrap.dedent(f"""
        import json, resource, sys
        resource.setrlimit(resource.RLIMIT_AS, ({address_space_mib} * 2**20, {address_space_mib} * 2**20))
        sys.path.insert(0, {str(REPO)!r})
    """)
    # VmHWM is the peak RSS of this program since its exec; ru_maxrss would include the forked parent's (pytest's).
    tail = textwrap.dedent("""
        peak = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:"))
        print(json.dumps({"result": result, "rss_mib": peak // 1024}))
    """)
    proc = subprocess.run([sys.executable, "-c", prelude + textwrap.dedent(code) + tail], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    return out["result"], out["rss_mib"]


SCAN_IN_CHILD = """
from fakevlm_cli.media.discover import Candidate
from fakevlm_cli.core.options import JudgeOptions
from fakevlm_cli.run.pipeline import Scanner
records = list(Scanner(None, JudgeOptions(**{config})).run([Candidate({path!r}, explicit={explicit})]))
result = [r.to_dict() for r in records]
"""


def scan_in_child(path: Path, *, explicit: bool = True, config: str = "", address_space_mib: int = 1536):
    return bounded(SCAN_IN_CHILD.format(path=str(path), explicit=explicit, config="{" + config + "}"),
                   address_space_mib=address_space_mib)


# ---- files are not read whole before they are known to be images ---------------------------------------------

@pytest.mark.slow
def test_huge_non_image_is_never_read(tmp_path):
    archive = tmp_path / "backup.zip"
    with open(archive, "wb") as fh:  # 6 GB, sparse
        fh.write(b"PK\x03\x04")
        fh.truncate(6 * 2**30)
    found, rss = scan_in_child(archive, explicit=False)
    assert found == [] and rss < 300  # skipped from a folder: one small read
    (named,), rss = scan_in_child(archive, explicit=True)
    assert named["error"].startswith("not an image") and named["sha256"] is None and named["size"] == 6 * 2**30
    assert rss < 300


@pytest.mark.slow
@pytest.mark.video
def test_a_huge_broken_video_costs_bounded_memory(tmp_path):
    """A 3 GB file that starts like an MP4 is a video: hashed in pieces, never held; its error is one record."""
    video = tmp_path / "clip.mp4"
    with open(video, "wb") as fh:  # sparse: an ftyp box, then nothing a demuxer can use
        fh.write(b"\x00\x00\x00\x18ftypmp42")
        fh.truncate(3 * 2**30)
    (record,), rss = scan_in_child(video, explicit=False)
    assert record["verdict"] == "error" and record["media"] == "video" and record["format"] == "MP4"
    assert len(record["sha256"]) == 64 and rss < 300


@pytest.mark.slow
@pytest.mark.parametrize("magic", [b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff\xe0", b"II*\x00"])
def test_file_bigger_than_any_image_within_max_pixels_is_refused_unread(tmp_path, magic):
    path = tmp_path / "huge.img"
    with open(path, "wb") as fh:
        fh.write(magic)
        fh.truncate(3 * 2**30)
    (record,), rss = scan_in_child(path)
    assert record["verdict"] == "error" and "bigger than any image within --max-pixels" in record["error"]
    assert record["sha256"] is None and rss < 300
    small = tmp_path / "small-limit.png"
    small.write_bytes(png_with() + b"\x00" * (3 * MiB))
    (record,), _ = scan_in_child(small, config="'max_pixels': 1000, 'max_memory': 2**40")
    assert "bigger than any image" not in (record["error"] or "")  # 3 MiB < 1000 px x 8 B + 64 MiB slack


# ---- metadata text has a total budget --------------------------------------------------------------------------

@pytest.mark.slow
def test_many_ztxt_chunks_cannot_add_up_to_gigabytes(tmp_path):
    bomb = zlib.compress(b"A" * (4 * MiB), 9)  # 4 MiB of text in 4 KiB
    path = tmp_path / "text.png"
    path.write_bytes(png_with(b"".join(chunk(b"zTXt", b"k%d\x00\x00" % i + bomb) for i in range(300))))
    (record,), rss = scan_in_child(path)
    assert any("text chunks past the first 16 MiB" in n for n in record["notes"])
    assert record["verdict"] == "unknown" and record["width"] == 16
    assert rss < 400  # 1.2 GB of text before the budget


@pytest.mark.slow
def test_exif_fields_pointing_at_one_big_string_cannot_add_up(tmp_path):
    n_tags, size = 600, MiB
    blob_at = 8 + 2 + 12 * n_tags + 4
    tiff = b"II*\x00" + struct.pack("<IH", 8, n_tags)
    tiff += b"".join(struct.pack("<HHII", 0xC000 + i, 2, size, blob_at) for i in range(n_tags))
    tiff += b"\x00" * 4 + b"A" * size
    path = tmp_path / "exif.tif"
    path.write_bytes(tiff)
    (record,), rss = scan_in_child(path)
    assert any(n.startswith("exif: stopped after reading 16 MiB") for n in record["notes"])
    assert rss < 400  # 600 MiB of strings before the budget


# ---- decoding memory --------------------------------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("mode", ["I;16", "RGBA"])
def test_decode_cost_is_checked_per_image_not_only_pixels(tmp_path, toy_engine, mode):
    arr = np.zeros((1500, 2000), np.uint16) if mode == "I;16" else np.zeros((1500, 2000, 4), np.uint8)
    path = tmp_path / f"{mode.replace(';', '')}.png"
    Image.fromarray(arr).save(path)
    tight = JudgeOptions(max_memory=50 * MiB, workers=1)
    (record,) = Scanner(toy_engine, tight).run([Candidate(path, explicit=True)])
    assert record.verdict == "error" and "more than --max-memory allows" in record.error
    assert (record.width, record.height) == (2000, 1500)
    (record,) = Scanner(toy_engine, JudgeOptions(workers=1)).run([Candidate(path, explicit=True)])
    assert record.verdict != "error" and record.p_fake is not None


def test_extreme_aspect_ratio_is_refused_before_the_model_resize(tmp_path, engine):
    path = tmp_path / "strip.png"
    Image.new("RGB", (4, 40_000)).save(path)  # the processor would make it 336 x 3,360,000 before cropping
    (record,) = Scanner(engine, JudgeOptions(max_memory=4 * 2**30)).run([Candidate(path, explicit=True)])
    assert record.verdict == "error" and "--max-memory" in record.error


@pytest.mark.slow
def test_loader_threads_share_one_memory_budget(tmp_path):
    for i in range(4):  # 12 MP 16-bit: about 400 MB each to decode
        Image.fromarray(np.full((3000, 4000), i * 1000, np.uint16)).save(tmp_path / f"g{i}.png")
    code = f"""
        import glob
        from fakevlm_cli.media.discover import Candidate
        from fakevlm_cli.core.options import JudgeOptions
        from fakevlm_cli.run.pipeline import Scanner
        class Engine:  # decodes for real; the model step is a stub
            info = type("Info", (), {{"to_dict": lambda self: {{"id": "stub"}}}})()
            verdict_steps = 16
            def preprocess(self, image):
                return image.resize((4, 4))
            def verdicts(self, pixels):
                from fakevlm_cli.core.engine_types import Answer
                return [Answer(p_fake=0.25, verdict_step=0)] * len(pixels)
            def sharing_cpu(self, loader_threads):
                import contextlib
                return contextlib.nullcontext()
        files = sorted(glob.glob({str(tmp_path)!r} + "/*.png"))
        scanner = Scanner(Engine(), JudgeOptions(workers=4, batch_size=4, max_memory=600 * 2**20))
        records = list(scanner.run([Candidate(p, explicit=True) for p in files]))
        result = [[r.verdict for r in records], scanner.memory.peak, scanner.memory.total]
    """
    (verdicts, peak, total), rss = bounded(code, address_space_mib=2048)
    assert verdicts == ["real"] * 4
    assert peak <= total  # never more held at once than the budget: one image at a time
    assert rss < 700  # measured: 530 MB; the four threads at once without the budget: 960-1130 MB


def test_memory_budget_blocks_an_overflowing_share_and_lets_a_lone_one_through():
    budget = MemoryBudget(100)
    inside, leave = threading.Event(), threading.Event()

    def second():
        with budget.hold(50):
            inside.set()
            leave.wait()

    with budget.hold(70):
        worker = threading.Thread(target=second)
        worker.start()
        with budget._cond:  # no sleeping: wait until the worker is parked, waiting for room
            assert budget._cond.wait_for(lambda: budget.waiting == 1, timeout=30)
        assert not inside.is_set() and budget.used == 70
    assert inside.wait(timeout=30) and budget.used == 50 and budget.peak == 70
    leave.set()
    worker.join()
    assert budget.used == 0
    with MemoryBudget(10).hold(500):  # more than the whole budget, nothing else held: it runs (callers refuse first)
        pass


# ---- frame counts -----------------------------------------------------------------------------------------------

def tiff_chain(pages: int) -> bytes:
    buf = io.BytesIO()
    Image.new("L", (1, 1)).save(buf, "TIFF")
    data = bytearray(buf.getvalue())
    first = struct.unpack("<I", data[4:8])[0]
    entries = struct.unpack("<H", data[first:first + 2])[0]
    ifd = bytes(data[first:first + 2 + 12 * entries])
    link = first + 2 + 12 * entries
    for _ in range(pages - 1):
        struct.pack_into("<I", data, link, len(data))
        link = len(data) + len(ifd)
        data += ifd + b"\x00\x00\x00\x00"
    return bytes(data)


@pytest.mark.parametrize(("pages", "frames", "noted"), [(3, 3, False), (500, 500, False), (20_000, 10_000, True)])
def test_tiff_pages_are_counted_linearly_and_capped(tmp_path, engine, pages, frames, noted):
    path = tmp_path / "pages.tif"
    path.write_bytes(tiff_chain(pages))
    loaded = load_image(path.read_bytes())
    assert loaded.frames == frames and bool(loaded.notes) == noted
    for eng in (None, engine):
        (record,) = Scanner(eng, JudgeOptions()).run([Candidate(path, explicit=True)])
        assert record.frames == frames and record.verdict != "error"


@pytest.mark.parametrize(("declared", "held"), [(2**31 - 1, 1), (5, 2), (2, 2)])
def test_apng_frames_are_the_ones_it_holds(tmp_path, declared, held):
    actl = chunk(b"acTL", struct.pack(">II", declared, 0))
    fctl = b"".join(chunk(b"fcTL", struct.pack(">IIIIIHHBB", i, 16, 12, 0, 0, 1, 1, 0, 0)) for i in range(held))
    path = tmp_path / "anim.png"
    path.write_bytes(png_with(actl + fctl))
    (record,) = Scanner(None, JudgeOptions()).run([Candidate(path, explicit=True)])
    assert record.frames == held
    assert any(f"declares {declared} frames but holds {held}" in n for n in record.notes) == (declared != held)


# ---- header reading uses our pixel limit -----------------------------------------------------------------------

def tiff_header_only(width: int, height: int) -> bytes:
    """A TIFF whose IFD claims width x height 8-bit grey pixels; the strip itself is absent."""
    tags = [(256, 4, 1, width), (257, 4, 1, height), (258, 3, 1, 8), (259, 3, 1, 1), (262, 3, 1, 1),
            (273, 4, 1, 200), (278, 4, 1, height), (279, 4, 1, width * height)]
    ifd = struct.pack("<H", len(tags)) + b"".join(struct.pack("<HHII", *t) for t in tags) + b"\x00" * 4
    return b"II*\x00" + struct.pack("<I", 8) + ifd


@pytest.mark.parametrize(("width", "height"), [(15_000, 12_000), (20_000, 9_500)])  # 180 and 190 MP
def test_metadata_scan_reads_sizes_over_pillows_limit(tmp_path, width, height):
    path = tmp_path / "big.tif"
    path.write_bytes(tiff_header_only(width, height))
    (record,) = Scanner(None, JudgeOptions()).run([Candidate(path, explicit=True)])
    assert (record.width, record.height) == (width, height) and record.verdict == "unknown"
    assert not any("size unknown" in n for n in record.notes)
    (over,) = Scanner(None, JudgeOptions(max_pixels=100_000_000)).run([Candidate(path, explicit=True)])
    assert over.verdict == "error" and "over the --max-pixels limit" in over.error


# ---- metadata limits must not stop the pixels --------------------------------------------------------------------

def refused_chunks() -> dict[str, bytes]:
    inflating = zlib.compress(b"B" * (2 * MiB), 9)  # 2 KB that inflates past Pillow's 1 MiB per-chunk limit
    return {
        "zTXt": chunk(b"zTXt", b"Comment\x00\x00" + inflating),
        "iTXt": chunk(b"iTXt", b"Description\x00\x01\x00en\x00\x00" + inflating),
        "iCCP": chunk(b"iCCP", b"icc\x00\x00" + inflating),
        "zTXt method 7": chunk(b"zTXt", b"Comment\x00\x07" + b"xx"),
    }


@pytest.mark.parametrize("kind", sorted(refused_chunks()))
def test_a_chunk_pillow_refuses_does_not_stop_the_pixels(tmp_path, toy_engine, kind):
    path = tmp_path / "p.png"
    path.write_bytes(png_with(refused_chunks()[kind]))
    with pytest.raises((ValueError, OSError, SyntaxError)):
        Image.open(path).load()  # Pillow alone refuses the whole picture
    (record,) = Scanner(toy_engine, JudgeOptions()).run([Candidate(path, explicit=True)])
    assert record.verdict in ("real", "fake") and record.p_fake is not None and record.error is None
    assert any("the pixels were decoded without it" in n for n in record.notes)
    (meta,) = Scanner(None, JudgeOptions()).run([Candidate(path, explicit=True)])
    assert (meta.width, meta.height) == (16, 12)


def a1111_png_with(tail: bytes) -> bytes:
    params = chunk(b"tEXt", b"parameters\x00" + f.A1111.encode())
    return png_with(params) + tail


@pytest.mark.parametrize("case", ["refused chunk", "truncated pixels", "over --max-pixels"])
def test_model_and_metadata_scans_agree_on_a_file_with_generator_parameters(tmp_path, engine, case):
    path = tmp_path / "sd.png"
    if case == "refused chunk":
        path.write_bytes(png_with(chunk(b"tEXt", b"parameters\x00" + f.A1111.encode()) + refused_chunks()["zTXt"]))
    elif case == "truncated pixels":
        whole = a1111_png_with(b"")
        path.write_bytes(whole[:len(whole) - 40])
    else:
        path.write_bytes(png_with(chunk(b"tEXt", b"parameters\x00" + f.A1111.encode())))
    config = JudgeOptions(max_pixels=100) if case == "over --max-pixels" else JudgeOptions()
    with_model = next(iter(Scanner(engine, config).run([Candidate(path, explicit=True)])))
    metadata_only = next(iter(Scanner(None, config).run([Candidate(path, explicit=True)])))
    assert with_model.verdict == metadata_only.verdict == "fake"
    assert with_model.error is None and metadata_only.error is None
    if case != "refused chunk":
        assert any(n.startswith("pixels not judged") for n in with_model.notes)


def test_unjudgeable_pixels_without_decisive_metadata_stay_an_error(tmp_path, engine):
    whole = png_with()
    path = tmp_path / "cut.png"
    path.write_bytes(whole[:len(whole) - 40])
    (record,) = Scanner(engine, JudgeOptions()).run([Candidate(path, explicit=True)])
    assert record.verdict == "error" and record.error


@pytest.mark.parametrize("head", [b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n"], ids=["jpeg-soi", "png-signature"])
def test_a_header_that_does_not_decode_is_an_error_in_both_kinds_of_scan(tmp_path, engine, head):
    """A metadata-only scan called such a file "unknown" (with a note) where a scan with the model said
    "error": both kinds of scan agree on what a file is."""
    path = tmp_path / ("broken.jpg" if head.startswith(b"\xff") else "broken.png")
    path.write_bytes(head)
    for judge in (engine, None):
        (record,) = Scanner(judge, JudgeOptions()).run([Candidate(path, explicit=True)])
        assert record.verdict == "error" and "header" in record.error, (judge, record.error)


# ---- path lists --------------------------------------------------------------------------------------------------

class Endless(io.RawIOBase):
    """A stream of `fill` bytes, `total` of them, as a pipe would deliver them."""

    def __init__(self, fill: bytes, total: int):
        self.fill, self.left = fill, total

    def readable(self):
        return True

    def readinto(self, buffer):
        n = min(len(buffer), self.left)
        buffer[:n] = self.fill * n
        self.left -= n
        return n


@pytest.mark.parametrize(("fill", "nul"), [(b"a", True), (b"a", False), (b"\x00", False)])
def test_path_list_without_separators_is_read_in_bounded_memory(fill, nul):
    warnings_seen = []
    tracemalloc.start()
    try:
        paths = list(read_path_list(io.BufferedReader(Endless(fill, 16 * MiB)), nul=nul,
                                    warn=warnings_seen.append))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert paths == [] and warnings_seen == [(f"{'entry' if nul else 'line'} 1 is longer than 4096 bytes: not a "
                                             "path, skipped")]
    assert peak < 2 * MiB  # the old reader held (and re-joined, quadratically) all 16 MiB


@pytest.mark.slow
@pytest.mark.parametrize(("fill", "nul"), [(b"\x00", True), (b"\n", False)])
def test_path_list_of_separators_only_yields_nothing(fill, nul):
    warned = []
    assert list(read_path_list(io.BufferedReader(Endless(fill, 16 * MiB)), nul=nul, warn=warned.append)) == []
    assert warned == []


def test_path_list_entry_longer_than_path_max_is_skipped_with_a_warning():
    ok, limit = "/x/" + "a" * 4093, "/y/" + "b" * 4094
    for nul in (False, True):
        sep = b"\0" if nul else b"\r\n"
        warned = []
        data = sep.join([b"first.png", ok.encode(), limit.encode(), b"last.png", b""])
        got = list(read_path_list(io.BytesIO(data), nul=nul, warn=warned.append))
        assert got == ["first.png", ok, "last.png"]
        assert warned == [f"{'entry' if nul else 'line'} 3 is longer than 4096 bytes: not a path, skipped"]


def test_scan_from_a_list_with_an_overlong_line_scans_the_rest(cli, tmp_path):
    good = f.a1111_png(tmp_path / "sd.png")
    listing = tmp_path / "list.txt"
    listing.write_bytes(b"x" * 100_000 + b"\n" + str(good).encode() + b"\n")
    result = cli("scan", "--from-file", listing, "--no-model", "--format", "jsonl")
    assert result.exit_code == 1 and json.loads(result.stdout)["path"] == str(good)
    assert "line 1 is longer than 4096 bytes" in result.stderr


# ---- -q silences library warnings ------------------------------------------------------------------------------

@pytest.mark.slow
def test_pillows_warnings_are_notes_on_the_files_record_and_never_raw_lines(cli, tmp_path, tiny_model, monkeypatch):
    """Pillow warns from the loader threads ("Invalid APNG, will use default PNG image"): the warning goes to
    that file's record as a note, with or without -q, and never reaches stderr as a raw Python warning (a
    site-packages path and a source line, no file name: catch_warnings is not thread-safe and leaked them, even
    under -q). Our own errors still do."""
    monkeypatch.setenv("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    monkeypatch.setenv("TRANSFORMERS_VERBOSITY", "error")
    bad_actl = chunk(b"acTL", struct.pack(">II", 0, 0))
    for i in range(6):  # several, so that loader threads warn at once
        (tmp_path / f"apng{i}.png").write_bytes(png_with(bad_actl))
    (tmp_path / "broken.jpg").write_bytes(b"not a jpeg")
    args = ["scan", str(tmp_path), "-m", str(tiny_model), "--format", "jsonl", "--workers", "3"]
    try:
        for extra in ([], ["-q"], ["--no-model"]):  # the header read of a metadata-only scan notes them too
            result = cli(*args, *extra)
            assert result.exit_code in (0, 1) and "broken.jpg: not an image" in result.stderr
            assert "Warning" not in result.stderr and "warnings.warn" not in result.stderr
            rows = [json.loads(line) for line in result.stdout.splitlines()]
            apngs = [r for r in rows if "apng" in r["path"]]
            assert len(apngs) == 6
            assert all(len([n for n in r["notes"] if n.startswith("Pillow: Invalid APNG")]) == 1 for r in apngs)
    finally:
        logging.disable(logging.NOTSET)


def test_a_pillow_warning_outside_any_file_is_one_line_and_none_when_quiet(capsys, monkeypatch):
    import warnings

    from fakevlm_cli.core import library_warnings

    library_warnings.install()
    monkeypatch.setattr(library_warnings, "_said", set())
    monkeypatch.setattr(library_warnings, "_quiet", False)
    from PIL import TiffImagePlugin

    def warn_as_pillow(text):  # raised from a module inside the PIL package, as Pillow's own are
        exec(compile("warnings.warn(text)", TiffImagePlugin.__file__, "exec"),
             {"warnings": warnings, "text": text, "__name__": "PIL.TiffImagePlugin"})

    warn_as_pillow("Corrupt EXIF data.")
    warn_as_pillow("Corrupt EXIF data.")  # once
    assert capsys.readouterr().err == "fakevlm: warning: Pillow: Corrupt EXIF data.\n"
    monkeypatch.setattr(library_warnings, "_quiet", True)
    warn_as_pillow("Another one.")
    assert capsys.readouterr().err == ""


# ---- everything at once -----------------------------------------------------------------------------------------

@pytest.mark.slow
def test_a_folder_of_every_hostile_file_gives_one_record_each_in_bounded_memory(tmp_path):
    """The README's bound: a scan of all of the above in one folder stays under 800 MiB peak RSS (measured:
    see the README), finishes, and writes exactly one record per file that can be an image."""
    d = tmp_path / "hostile"
    d.mkdir()
    for name, magic, size in (("backup.zip", b"PK\x03\x04", 6 * 2**30),
                              ("huge.jpg", b"\xff\xd8\xff\xe0", 3 * 2**30)):
        with open(d / name, "wb") as fh:  # sparse
            fh.write(magic)
            fh.truncate(size)
    bomb = zlib.compress(b"A" * (4 * MiB), 9)
    (d / "text.png").write_bytes(png_with(b"".join(chunk(b"zTXt", b"k%d\x00\x00" % i + bomb) for i in range(300))))
    (d / "refused.png").write_bytes(png_with(refused_chunks()["zTXt"]))
    Image.fromarray(np.full((3000, 4000), 40_000, np.uint16)).save(d / "deep16.png")
    (d / "pages.tif").write_bytes(tiff_chain(100_000))
    (d / "anim.png").write_bytes(png_with(chunk(b"acTL", struct.pack(">II", 2**31 - 1, 0))))
    Image.new("RGB", (4, 40_000)).save(d / "strip.png")
    f.bomb_png(d / "bomb.png")
    f.truncated_jpeg(d / "truncated.jpg")
    (d / "empty.jpg").write_bytes(b"")
    (d / os.fsdecode(b"bad\xff\xfename.png")).write_bytes(png_with())
    f.a1111_png(d / "sd.png")
    tiff = b"II*\x00" + struct.pack("<IH", 8, 600)
    tiff += b"".join(struct.pack("<HHII", 0xC000 + i, 2, MiB, 8 + 2 + 12 * 600 + 4) for i in range(600))
    (d / "exif.tif").write_bytes(tiff + b"\x00" * 4 + b"A" * MiB)
    # the second red team's files: JPEG fill walked a byte at a time (20 MB: 30 s), empty COM segments by the
    # million, and a clip whose frames are far bigger than its header says
    jpeg = (d / "truncated.jpg").read_bytes()
    (d / "fill.jpg").write_bytes(jpeg[:2] + b"\xff" * (20 * MiB) + jpeg[2:])
    (d / "comments.jpg").write_bytes(jpeg[:2] + b"\xff\xfe\x00\x02" * (5 * MiB // 4) + jpeg[2:])
    f.small_header_mjpeg(d / "liar.mkv")
    expected = sorted(p.name for p in d.iterdir() if p.name != "backup.zip")
    code = f"""
        sys.path.insert(0, {str(REPO / "tests")!r})
        from stub_engine import StubEngine
        from fakevlm_cli.media.discover import discover
        from fakevlm_cli.core.options import JudgeOptions
        from fakevlm_cli.run import predict
        records = list(predict(discover([{str(d)!r}]), JudgeOptions(workers=2), StubEngine()))
        result = [[r.path.rsplit("/", 1)[-1], r.verdict, r.error] for r in records]
    """
    result, rss = bounded(code, address_space_mib=2560)
    assert sorted(name for name, _, _ in result) == sorted(n.encode("utf-8", "surrogateescape").decode(
        "utf-8", "backslashreplace") for n in expected)  # one record per file; the archive is skipped
    verdicts = {name: (verdict, error) for name, verdict, error in result}
    assert verdicts["sd.png"][0] == "fake" and verdicts["deep16.png"][0] in ("real", "fake")
    for bad in ("huge.jpg", "bomb.png", "truncated.jpg", "empty.jpg", "strip.png"):
        assert verdicts[bad][0] == "error", (bad, verdicts[bad])
    assert "marker segments" in verdicts["comments.jpg"][1]
    assert verdicts["liar.mkv"][0] != "error" and verdicts["fill.jpg"][1] == verdicts["truncated.jpg"][1]
    print(f"peak RSS {rss} MiB")
    assert rss < 800
