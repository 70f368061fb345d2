"""The HTML report: one self-contained, offline file a person reviews in a browser (docs/report.md).

`fakevlm report results.jsonl -o report.html` builds it from any JSONL fakevlm wrote (thumbnails read back from
the files, checked against their recorded hash); `scan --report report.html` builds it from the scan's own
records (thumbnails made while the pixels were in memory).

Safety, for a page built from untrusted strings (file names, EXIF/XMP/C2PA text, model text, and the JSONL
itself): the server-side parts are rendered by Jinja2 with autoescaping; the records travel as JSON inside a
``<script type="application/json">`` block with ``<``, ``>`` and ``&`` escaped, and the page's own script shows
every string with ``textContent``, never as HTML. A Content-Security-Policy allows only the page's own inline
script and style (by hash) and ``data:`` images: no network request, no other script, no form, no base URL.
Control and bidirectional-override characters are shown as visible escapes (``\\u202e``), so a name cannot
pose as another. Thumbnails are JPEGs this code encoded; nothing from a record is ever used as a URL.

Size: the records are paged in the browser (50 a page), so only one page of thumbnails is decoded at a time.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import secrets
import tempfile
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path
from typing import IO, Any

import orjson

from fakevlm_cli import __version__
from fakevlm_cli.core import library_warnings
from fakevlm_cli.core.errors import FakevlmError, ImageError, OutputError
from fakevlm_cli.core.files import file_key, same_file
from fakevlm_cli.core.options import DEFAULT_MAX_PIXELS
from fakevlm_cli.core.record import VERDICTS, Record, raw_path
from fakevlm_cli.core.text import byte_size, safe_text
from fakevlm_cli.media.images import load_image, max_file_bytes
from fakevlm_cli.media.pictures import RAMP, thumbnail
from fakevlm_cli.outputs.report.charts import evaluation_panels, histogram
from fakevlm_cli.outputs.results_file import is_record

PAGE_SIZE = 50
THUMBNAIL_SIZE = 160
GENERATOR = b'<meta name="generator" content="fakevlm'
_DATA_MARKER = "<!--fakevlm:data-->"
# Caps on what one record may put into the page, so a hostile file cannot make the report unusable.
_MAX_TEXT, _MAX_ITEM, _MAX_ITEMS = 8000, 600, 40
_TRUST = {"trusted": "trusted (chains to a trust anchor)", "untrusted": "NOT trusted (no trust anchor vouches for it)",
          "unknown": "trust unknown (no trust anchors given)"}
_MAX_FRAMES = 256  # a clip's sampled frames shown (scan samples at most 256)
_EXIF_LABELS = {"make": "make", "model": "model", "lens_model": "lens", "datetime_original": "taken",
                "software": "software", "gps_present": "GPS", "makernote_present": "maker note"}


# ---- untrusted text -> what the page shows ------------------------------------------------------------------

def visible(value: Any, limit: int = _MAX_ITEM) -> str:
    """Text made safe to look at: control, format and bidi-override characters as visible escapes (line breaks
    kept), and long text cut with an ellipsis."""
    text = "" if value is None else str(value)
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return "\n".join(safe_text(line) for line in text.split("\n"))


def _items(values: Any, limit: int = _MAX_ITEMS) -> list[str]:
    if not isinstance(values, list):
        return []
    out = [visible(v) for v in values[:limit]]
    if len(values) > limit:
        out.append(f"… and {len(values) - limit} more")
    return out


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        return None
    return float(value)


def _choice(value: Any, allowed: Iterable[str]) -> str | None:
    return value if isinstance(value, str) and value in allowed else None


def _size(n: Any) -> str:
    """A record's size as shown; nothing for a value that is not a size (records are untrusted input)."""
    return byte_size(n) if isinstance(n, int) and not isinstance(n, bool) and n >= 0 else ""


def _facts(data: dict) -> str:
    parts = []
    if isinstance(data.get("format"), str):
        parts.append(visible(data["format"], 20))
    width, height = data.get("width"), data.get("height")
    if isinstance(width, int) and isinstance(height, int):
        parts.append(f"{width}×{height}")
    if _size(data.get("size")):
        parts.append(_size(data.get("size")))
    if isinstance(data.get("sha256"), str):
        parts.append("sha256 " + visible(data["sha256"], 64))
    model = data.get("model")
    if isinstance(model, dict) and isinstance(model.get("id"), str):
        parts.append("model " + visible(model["id"], 120))
    return " · ".join(parts)


def _provenance(evidence: Any) -> list[dict]:
    out = []
    for item in evidence[:_MAX_ITEMS] if isinstance(evidence, list) else []:
        if not isinstance(item, dict):
            continue
        source, key = visible(item.get("source"), 120), visible(item.get("key"), 120)
        value = visible(item.get("value"), _MAX_ITEM)
        signal, generator = visible(item.get("signal"), 40), item.get("generator")
        text = f"{source} {key}: {value}" + (f" ({visible(generator, 120)})" if generator else "")
        trust = _choice(item.get("trust"), _TRUST)
        if trust is not None:  # a C2PA signer: whether its certificate chains to a trusted anchor
            text += f" · signer {_TRUST[trust]}"
        out.append({"text": f"[{signal}] {text}",
                    "strong": bool(item.get("strong")) and str(item.get("signal", "")).startswith("ai_")})
    return out


def _exif(exif: Any) -> list[list[str]]:
    if not isinstance(exif, dict):
        return []
    return [[_EXIF_LABELS.get(str(k), visible(k, 60)), visible(v, 200)] for k, v in list(exif.items())[:_MAX_ITEMS]
            if v not in (None, "", False)]


def _localisation(loc: Any) -> dict | None:
    """The map as the page draws it: crop and boxes as fractions of the picture, the grid's positive part as
    bytes (0–255), base64. Anything malformed is dropped, never drawn."""
    try:
        import numpy as np

        width, height = (float(v) for v in loc["image_size"])
        grid = np.asarray(loc["grid"], dtype=np.float64)
        if width <= 0 or height <= 0 or grid.ndim != 2 or not 0 < grid.size <= 4096:
            return None
        positive = np.nan_to_num(grid, nan=0.0, posinf=0.0, neginf=0.0).clip(min=0)
        peak = positive.max()
        strength = (positive / peak * 255).round().astype(np.uint8) if peak > 0 else positive.astype(np.uint8)

        def fraction(box) -> list[float]:
            x0, y0, x1, y1 = (float(v) for v in box)
            return [round(min(max(v, 0.0), 1.0), 5) for v in (x0 / width, y0 / height, x1 / width, y1 / height)]

        regions = []
        for region in (loc.get("regions") or [])[:5]:
            x0, y0, x1, y1 = (round(float(v)) for v in region["box"])
            regions.append({"box": fraction(region["box"]), "score": float(region.get("score") or 0),
                            "px": f"({x0}, {y0})–({x1}, {y1}) px"})
        return {"method": visible(loc.get("method"), 40), "crop": fraction(loc["crop"]), "rows": int(grid.shape[0]),
                "cols": int(grid.shape[1]), "g": base64.b64encode(strength.tobytes()).decode("ascii"),
                "regions": regions, "heatmap": visible(loc.get("heatmap"), 300) if loc.get("heatmap") else None}
    except (KeyError, TypeError, ValueError, IndexError, AttributeError):
        return None


def _seconds(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value < 1e7:
        return None
    return round(float(value), 3)


def _frame(value: Any) -> dict | None:
    """One sampled frame {t, p}: t in seconds, p its P(fake) (None if the model stated no verdict on it)."""
    if not isinstance(value, dict) or _seconds(value.get("t")) is None:
        return None
    return {"t": _seconds(value.get("t")), "p": _number(value.get("p_fake"))}


def _video(video: Any) -> dict | None:
    """A clip as the page draws it: duration, the sampled frames' P(fake) at their times, the most suspicious
    and explained frames; every number checked, every string made visible-safe."""
    if not isinstance(video, dict):
        return None
    sampled: list = video["sampled"] if isinstance(video.get("sampled"), list) else []
    frames = [f for f in (_frame(v) for v in sampled[:_MAX_FRAMES]) if f is not None]
    fps = video.get("fps")
    facts = [visible(video.get(k), 40) for k in ("container", "codec") if isinstance(video.get(k), str)]
    if isinstance(fps, (int, float)) and not isinstance(fps, bool) and 0 < fps < 10_000:
        facts.append(f"{fps:.3g} fps")
    if isinstance(video.get("frame_count"), int) and not isinstance(video.get("frame_count"), bool):
        facts.append(f"{video['frame_count']} frames")
    single = _frame({**video["frame"], "p_fake": None}) if isinstance(video.get("frame"), dict) else None
    return {"duration": _seconds(video.get("duration_s")), "frames": frames,
            "top": _frame(video.get("most_suspicious")), "explained": _frame(video.get("explained_frame")),
            "aggregate": visible(video.get("aggregate"), 200) if video.get("aggregate") else None,
            "facts": " · ".join(facts), "frame": single}


def _calibration(data: dict) -> dict | None:
    """Calibrated P(fake) and the inconclusive band, when the record was judged with them."""
    cal: dict = data["calibration"] if isinstance(data.get("calibration"), dict) else {}
    band = cal.get("inconclusive")
    band = [_number(v) for v in band] if isinstance(band, list) and len(band) == 2 else None
    out = {"p": _number(data.get("calibrated_p_fake")), "inconclusive": data.get("inconclusive") is True,
           "band": band if band and None not in band else None,
           "file": visible(cal.get("file"), 300) if isinstance(cal.get("file"), str) else None}
    return out if out["p"] is not None or out["inconclusive"] or out["band"] else None


def _explained(loc: dict, model_verdict: Any) -> dict:
    """What the colours mean, in words; regions are outlined only where the model judged the image fake (on
    any other verdict they would point at evidence for a conclusion the model did not reach)."""
    signed = loc["method"] != "attention"
    if model_verdict == "fake":
        loc["explains"] = ("what pushed the verdict towards fake" if signed
                           else "where the model looked as it wrote its verdict")
        return loc
    loc["explains"] = ("what looked most fake to the model, though it did not judge the image fake" if signed
                       else "where the model looked as it wrote its verdict")
    loc["regions"] = []
    loc["note"] = "no regions outlined: the model did not judge this image fake"
    return loc


def entry(data: dict, index: int, thumb: bytes | None, thumb_note: str | None = None) -> dict:
    """What the page gets for one record: every string visible-safe, every number checked, nothing else."""
    verdict = _choice(data.get("verdict"), VERDICTS) or "unknown"
    answer = data.get("answer") or data.get("explanation")
    reasons = _items(data.get("reasons"))
    loc = _localisation(data.get("localisation")) if data.get("localisation") else None
    if loc is not None:
        loc = _explained(loc, data.get("model_verdict"))
    return {
        "i": index, "path": visible(data.get("path"), 2000), "verdict": verdict, "p": _number(data.get("p_fake")),
        "disagreement": data.get("disagreement") is True,
        "answer": visible(answer, _MAX_TEXT) if answer else None,
        "lead_in": visible(data.get("lead_in"), 200) if data.get("lead_in") and answer else None,
        "reasons": reasons, "provenance": _provenance(data.get("evidence")), "exif": _exif(data.get("exif")),
        "notes": _items(data.get("notes")), "error": visible(data.get("error"), 1000) if data.get("error") else None,
        "facts": _facts(data), "label": _choice(data.get("label"), ("real", "fake")),
        "category": visible(data.get("category"), 120) if data.get("category") is not None else None,
        "media": _choice(data.get("media"), ("image", "video")), "video": _video(data.get("video")),
        "cal": _calibration(data),
        "loc": loc, "thumb": base64.b64encode(thumb).decode("ascii") if thumb else None,
        "thumb_note": thumb_note,
    }


# ---- the summary (counts, histogram, evaluation) ------------------------------------------------------------

@dataclass
class Summary:
    total: int = 0
    skipped: int = 0  # input lines that are not fakevlm records
    counts: dict[str, int] = field(default_factory=dict)
    scores: list[tuple[float, str]] = field(default_factory=list)  # (p_fake, verdict)
    truths: list[tuple[str, str, float | None, str]] = field(default_factory=list)  # label, verdict, p, category
    models: list[str] = field(default_factory=list)
    methods: list[str] = field(default_factory=list)
    localised: int = 0
    threshold: float | None = None
    inconclusive: int = 0
    videos: int = 0
    band: list | None = None
    calibrated: bool = False  # the band is on calibrated P(fake)

    def add(self, page_entry: dict, data: dict) -> None:
        self.total += 1
        verdict = page_entry["verdict"]
        self.counts[verdict] = self.counts.get(verdict, 0) + 1
        if page_entry["p"] is not None:
            self.scores.append((page_entry["p"], verdict))
        if page_entry["label"] is not None:
            self.truths.append((page_entry["label"], verdict, page_entry["p"], page_entry["category"] or "default"))
        model = data.get("model")
        if isinstance(model, dict) and isinstance(model.get("id"), str) and len(self.models) < 5:
            name = visible(model["id"], 120)
            if name not in self.models:
                self.models.append(name)
        if page_entry["loc"] is not None:
            self.localised += 1
            if page_entry["loc"]["method"] not in self.methods:
                self.methods.append(page_entry["loc"]["method"])
        if self.threshold is None:
            self.threshold = _number(data.get("threshold"))
        cal = page_entry["cal"]
        self.inconclusive += bool(cal and cal["inconclusive"])
        if cal and cal["band"] and self.band is None:
            self.band, self.calibrated = cal["band"], cal["file"] is not None
        self.videos += page_entry["media"] == "video"


# ---- writing ------------------------------------------------------------------------------------------------

def is_ours(path: Path) -> bool:
    """Whether `path` may be replaced by a report without --force: absent, empty, or a fakevlm report (OSError
    when it cannot be read)."""
    if not path.exists() or not path.stat().st_size:
        return True
    with open(path, "rb") as handle:
        return GENERATOR in handle.read(2048)


def check_target(path: Path, *, force: bool = False, inputs: Iterable[Path] = ()) -> None:
    """Refuse, before any work, to write the report where it would destroy something: over one of the inputs,
    over a folder, or over an existing file that is not a fakevlm report (unless `force`)."""
    try:
        for other in inputs:
            if same_file(path, other):
                raise OutputError(f"{path}: is also an input ({other}): refusing to write the report over it")
        if path.is_dir():
            raise OutputError(f"{path}: is a folder")
        if path.exists() and not path.is_file():  # /dev/null, a FIFO: the page would replace the node itself
            raise OutputError(f"{path}: is not a regular file (a device or a pipe): refusing to replace it")
        if not force and not is_ours(path):
            raise OutputError(f"{path}: exists and is not a fakevlm report: refusing to overwrite it (use --force)")
        folder = path.resolve().parent
        if not folder.is_dir():
            raise OutputError(f"{path.parent}: no such folder")
        if not os.access(folder, os.W_OK):  # the page is written beside it, then renamed over it
            raise OutputError(f"{path}: permission denied, cannot write the report in {folder}")
    except OSError as exc:
        raise OutputError(f"{path}: cannot check: {exc.strerror or exc}") from None


class ReportWriter:
    """Collects page entries on disk (a temporary file: memory stays flat at any size) and writes the page at
    the end, atomically: a run that fails leaves no half-written report."""

    def __init__(self, path: Path, *, title: str, source: str):
        self.path = Path(path)
        # through a symbolic link to the file it names (renaming over the link would replace the link itself)
        self._target = Path(os.path.realpath(path)) if Path(path).is_symlink() else Path(path)
        self.title, self.source = title, source
        self.summary = Summary()
        self._spool: IO[bytes] | None = tempfile.TemporaryFile()  # noqa: SIM115 - closed by finish/abandon
        self._count = 0

    def add(self, data: dict, thumb: bytes | None, thumb_note: str | None = None) -> None:
        page_entry = entry(data, self._count, thumb, thumb_note)
        self._count += 1
        self.summary.add(page_entry, data)
        assert self._spool is not None
        self._spool.write(_json(page_entry) + b"\n")

    def skip(self) -> None:
        self.summary.skipped += 1

    def abandon(self) -> None:
        if self._spool is not None:
            self._spool.close()
            self._spool = None

    def finish(self) -> Path:
        if self._spool is None:
            raise RuntimeError("the report was already written or abandoned")
        before, after = _page(self.title, self.source, self.summary).rsplit(_DATA_MARKER, 1)
        tmp = self._target.with_name(f".{self._target.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
        created = False
        try:
            # created as any new file is (0666 less the umask), unlike mkstemp's 0600; renamed into place at the end
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
            created = True
            with os.fdopen(fd, "wb") as out:
                out.write(before.encode("utf-8"))
                out.write(b'{"records":[')
                self._spool.seek(0)
                for number, line in enumerate(self._spool):
                    out.write((b"," if number else b"") + line.rstrip(b"\n"))
                out.write(b"]}")
                out.write(after.encode("utf-8"))
            os.replace(tmp, self._target)
            created = False
        except OSError as exc:
            raise OutputError(f"{self.path}: cannot write the report: {exc.strerror or exc}") from None
        finally:
            if created:
                with contextlib.suppress(OSError):
                    tmp.unlink()
            self.abandon()
        return self.path


def _json(value: Any) -> bytes:
    """JSON that is safe inside a <script> block: <, > and & as \\u escapes (the same string to JSON.parse)."""
    raw = orjson.dumps(value)
    return raw.replace(b"<", b"\\u003c").replace(b">", b"\\u003e").replace(b"&", b"\\u0026")


def _asset(name: str) -> str:
    return resources.files("fakevlm_cli.outputs.report").joinpath(name).read_text("utf-8")


def _hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("ascii") + "'"


def content_security_policy(script: str, style: str) -> str:
    """Only the page's own inline script and style (by hash) and data: images; nothing can be fetched."""
    return (f"default-src 'none'; script-src {_hash(script)}; style-src {_hash(style)}; img-src data:; "
            "base-uri 'none'; form-action 'none'")


def _page(title: str, source: str, summary: Summary) -> str:
    import jinja2

    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    template = env.from_string(_asset("page.html.j2"))
    script, style = _asset("page.js"), _asset("page.css")
    meta = {"page_size": PAGE_SIZE, "ramp": [[s, list(c)] for s, c in RAMP], "threshold": summary.threshold}
    return template.render(
        csp=content_security_policy(script, style), css=jinja2.utils.markupsafe.Markup(style),
        js=jinja2.utils.markupsafe.Markup(script), title=visible(title, 300), source=visible(source, 500),
        created=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), version=__version__, summary=summary,
        verdicts=VERDICTS, histogram=histogram(summary.scores, summary.threshold),
        evaluation=evaluation_panels(summary.truths), meta=meta)


# ---- the two ways in ----------------------------------------------------------------------------------------

class ReportSink:
    """`scan --report`: each record (and the thumbnail the loader made) goes to the report as it comes; the page
    is written when the scan ends, interrupted or not."""

    def __init__(self, path: Path, *, source: str, title: str | None = None):
        self.writer = ReportWriter(path, title=title or "fakevlm scan", source=source)

    def write(self, record: Record) -> None:
        note = None if record.thumbnail else ("no picture (not decodable)" if record.verdict == "error" else None)
        self.writer.add(record.to_dict(), record.thumbnail, note)

    def close(self) -> None:
        self.writer.finish()

    def abandon(self) -> None:
        """No record came: an earlier report at this path stays as it was."""
        self.writer.abandon()


@dataclass
class Built:
    path: Path
    records: int
    skipped: int
    thumbnails: int
    missing: int  # pictures not found, unreadable, or changed since they were recorded


def read_records(path: Path) -> Iterator[dict | None]:
    """Each line of a JSONL results file as a record dict, or None for a line that is not a fakevlm record.
    A file holding one JSON object (`explain --json`) is read as one record."""
    try:
        handle = open(path, "rb")  # noqa: SIM115 - closed by the with below, after the error is worded
    except OSError as exc:
        raise FakevlmError(f"{path}: cannot read: {exc.strerror or exc}") from None
    with handle:
        first = handle.read(1)
        handle.seek(0)
        if first == b"{" and not _first_line_is_json(handle):
            handle.seek(0)
            try:
                whole = orjson.loads(handle.read())
            except orjson.JSONDecodeError:
                raise FakevlmError(f"{path}: neither JSON Lines nor one JSON object") from None
            yield whole if is_record(whole) else None
            return
        handle.seek(0)
        for line in handle:
            if not line.strip():
                continue
            try:
                data = orjson.loads(line)
            except orjson.JSONDecodeError:
                yield None
                continue
            yield data if is_record(data) else None


def _first_line_is_json(handle) -> bool:
    line = handle.readline()
    try:
        orjson.loads(line)
        return True
    except orjson.JSONDecodeError:
        return False


def _record_files(data: dict, roots: list[Path]) -> list[bytes] | None:
    """Where the record's file may be on disk (its absolute path, or its relative path under each root); None
    when the record's path cannot be read."""
    try:
        name = raw_path(data["path"], data.get("path_bytes"))
    except (ValueError, TypeError, KeyError):
        return None
    return [name] if os.path.isabs(name) else [os.path.join(os.fsencode(root), name) for root in roots]


def _refuse_if_recorded(output_key: tuple[int, int], data: dict, roots: list[Path], output: Path) -> None:
    """The page must not replace a file the results record (with --force over "not a report", an image)."""
    for candidate in _record_files(data, roots) or []:
        if file_key(candidate) == output_key:
            raise OutputError(f"{output}: is a file the results record ({visible(data.get('path'))}): refusing to "
                              "write the report over it")


def _picture(data: dict, roots: list[Path], size: int) -> tuple[bytes | None, str | None]:
    """The record's file read back from disk and checked against its recorded hash, as a thumbnail; or why not."""
    if not size:
        return None, None
    if data.get("media") == "video":  # a clip has no one picture: the page draws its frames' P(fake) instead
        return None, None
    candidates = _record_files(data, roots)
    if candidates is None:
        return None, "no picture (unreadable path)"
    limit = max_file_bytes(DEFAULT_MAX_PIXELS)
    for candidate in candidates:
        try:
            if not os.path.isfile(candidate):
                continue
            if os.path.getsize(candidate) > limit:
                return None, "no picture (file too big)"
            with open(candidate, "rb") as handle:
                raw = handle.read(limit + 1)
        except OSError:
            continue
        if isinstance(data.get("sha256"), str) and hashlib.sha256(raw).hexdigest() != data["sha256"]:
            return None, "no picture: the file has changed since it was recorded"
        model = data.get("model")
        pixels = model.get("pixels") if isinstance(model, dict) else None
        mode = pixels if pixels in ("viewer", "upstream") else "viewer"
        try:
            with library_warnings.silenced():  # the record says what there was to say about the file
                return thumbnail(load_image(raw, mode=mode).image, size), None
        except (ImageError, OSError, ValueError):
            return None, "no picture (the file does not decode)"
    return None, "no picture (file not found)"


def build_report(results: Path, output: Path, *, images_from: Path | None = None,
                 thumbnail_size: int = THUMBNAIL_SIZE, title: str | None = None, force: bool = False,
                 workers: int = 4) -> Built:
    """`fakevlm report`: the page for every record in `results`, pictures read back from disk (`workers`
    threads, a bounded window ahead, in record order)."""
    check_target(output, force=force, inputs=[results])
    roots = [images_from] if images_from is not None else [Path.cwd(), results.resolve().parent]
    writer = ReportWriter(output, title=title or results.name, source=results.name)
    output_key = file_key(output)
    pictures = missing = 0
    try:
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="fakevlm-report") as pool:
            window: list = []

            def drain(keep: int) -> None:
                nonlocal pictures, missing
                while len(window) > keep:
                    data, future = window.pop(0)
                    thumb, note = future.result()
                    pictures += thumb is not None
                    missing += note is not None
                    writer.add(data, thumb, note)

            for data in read_records(results):
                if data is None:
                    writer.skip()
                    continue
                if output_key is not None:
                    _refuse_if_recorded(output_key, data, roots, output)
                window.append((data, pool.submit(_picture, data, roots, thumbnail_size)))
                drain(4 * workers)
            drain(0)
        writer.finish()
    except BaseException:
        writer.abandon()
        raise
    return Built(path=output, records=writer.summary.total, skipped=writer.summary.skipped, thumbnails=pictures,
                 missing=missing)


__all__ = ["PAGE_SIZE", "THUMBNAIL_SIZE", "Built", "ReportSink", "ReportWriter", "build_report", "check_target",
           "content_security_policy", "entry", "read_records", "visible"]
