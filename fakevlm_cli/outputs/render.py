"""Everything Rich: the streaming scan table, the `explain` panel, summaries and the eval report.

All untrusted text goes through `plain` (a `rich.text.Text`, never parsed as markup, with control characters
made visible by `output.safe_text`).
"""

from __future__ import annotations

import contextlib
import os
import sys

from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from fakevlm_cli.core.engine_types import DEFAULT_THRESHOLD
from fakevlm_cli.core.errors import OutputError, PipeClosedError
from fakevlm_cli.core.record import Record, evidence_rank
from fakevlm_cli.core.text import first_line, percent, safe_text, seconds
from fakevlm_cli.outputs.output import evidence_cell, video_cell

NARROW = 100  # terminal columns below which the table's evidence and note share one column
VERDICT_STYLE = {"fake": "bold red", "real": "bold green", "unknown": "bold yellow", "error": "bold magenta"}


def plain(value: object, *, style: str | None = None, max_len: int | None = None) -> Text:
    """Untrusted text as a Rich `Text` (never parsed as markup), made terminal-safe."""
    return Text(safe_text(value, max_len=max_len), style=style or "")


def verdict_text(verdict: str) -> Text:
    return Text(verdict.upper() if verdict in ("fake", "real") else verdict, style=VERDICT_STYLE.get(verdict, ""))


def record_verdict(record: Record) -> Text:
    """The verdict as shown: "inconclusive" when the model's P(fake) fell in the band (the record says unknown)."""
    if record.inconclusive and record.verdict == "unknown":
        return Text("inconclusive", style=VERDICT_STYLE["unknown"])
    return verdict_text(record.verdict)


def shown_p_fake(record: Record) -> float | None:
    """The P(fake) shown: the calibrated one when a --calibration map applied."""
    return record.calibrated_p_fake if record.calibrated_p_fake is not None else record.p_fake


class TableSink:
    """A Rich table printed row by row, so results appear as they come and nothing waits for the end."""

    def __init__(self, console: Console, *, explain: bool = False):
        self.console = console
        self.explain = explain
        self._header_done = False

    def _table(self, header: bool) -> Table:
        """The same columns for every row of a run (each row is printed as its own table, as it comes). Below
        NARROW columns, evidence and note share one column, the decisive evidence first: at 80 columns a
        generator's name must not be cut to make room for a sentence that repeats the verdict."""
        width = self.console.width
        table = Table(show_header=header, header_style="bold", box=None, pad_edge=False, expand=True,
                      show_edge=False)
        table.add_column("file", ratio=2 if width < NARROW else 3, overflow="fold", no_wrap=False)
        table.add_column("verdict", width=8, no_wrap=True)  # "inconclusive" shows as "inconcl…"
        table.add_column("P(fake)", width=7, justify="right", no_wrap=True)
        if width < NARROW and not self.explain:
            table.add_column("why", ratio=3, overflow="ellipsis", no_wrap=True)
            return table
        table.add_column("evidence", ratio=2, overflow="ellipsis", no_wrap=True)
        table.add_column("explanation" if self.explain else "note", ratio=3 if width > 100 else 2,
                         overflow="ellipsis", no_wrap=True)
        return table

    def write(self, record: Record) -> None:
        table = self._table(header=not self._header_done)
        self._header_done = True
        if record.verdict == "error":
            note = plain(record.error, style="magenta")
        elif self.explain and record.explanation:
            note = plain(first_line(record.explanation))
        else:
            note = plain(record.reasons[0].word() if record.reasons else "")
        if record.video and record.verdict != "error":
            note = Text.assemble((video_cell(record), "cyan"), " ", note)
        flag = Text(" !", style="bold red") if record.disagreement else Text("")
        evidence = evidence_cell(record, strong_only=record.verdict == "error")
        cells: list[Text | str] = [plain(record.path), record_verdict(record) + flag, percent(shown_p_fake(record))]
        if len(table.columns) == 4:  # one "why" column: what decided first
            decisive = evidence and (record.strongest_evidence or {}).get("strong")
            cells.append(Text.assemble(plain(evidence, style="bold"), "; ", note) if decisive and note.plain
                         else plain(evidence) if decisive else note)
        else:
            cells += [plain(evidence), note]
        table.add_row(*cells)
        self.console.print(table)

    def close(self) -> None:
        pass


class PanelSink:
    """`explain`: each record as a panel."""

    def __init__(self, console: Console):
        self.console = console

    def write(self, record: Record) -> None:
        self.console.print(explain_panel(record))

    def close(self) -> None:
        pass


class _Console(Console):
    def on_broken_pipe(self) -> None:
        """The reader of stdout went away (`| head`): Rich would exit 1 (our "something fake"); say it as the
        JSONL sink does, so the command exits 141 and writes what it still can (-o, the report)."""
        self.quiet = True
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, (sys.stderr if self.stderr else sys.stdout).fileno())  # no second error at exit
        raise PipeClosedError("stderr" if self.stderr else "stdout")


    def print(self, *args, **kwargs) -> None:
        """A stream that cannot be written (a full device) is one error line, as for the JSONL sink."""
        try:
            super().print(*args, **kwargs)
        except PipeClosedError:
            raise
        except OSError as exc:
            self.quiet = True
            raise OutputError(f"{'stderr' if self.stderr else 'stdout'}: cannot write: {exc.strerror or exc}") from None


def console(*, stderr: bool = False) -> Console:
    """A console that colours only real terminals and honours NO_COLOR; highlighting off (data is data).

    On a terminal whose encoding is not UTF-8 (LC_ALL=C, latin-1) Rich draws its boxes in ASCII; a character
    of ours or of a file name that the encoding lacks ("—", "•") is replaced, never an error that ends the run."""
    stream = sys.stderr if stderr else sys.stdout
    encoding = (getattr(stream, "encoding", None) or "").lower().replace("-", "")
    if stream is not None and not encoding.startswith("utf") and hasattr(stream, "reconfigure"):
        with contextlib.suppress(ValueError, OSError):
            stream.reconfigure(errors="replace")
    return _Console(stderr=stderr, highlight=False, soft_wrap=False)


def explain_panel(record: Record) -> Panel:
    """Verdict in colour, P(fake) as a percentage, the model's answer wrapped, evidence, reasons, the model id."""
    parts: list = [*_verdict_lines(record), *_video_lines(record), *_answer_lines(record), *_where_lines(record),
                   *_evidence_lines(record)]
    reasons = [r for r in record.reasons if r.rule != "model"]  # the head line already gives the model's
    if reasons:
        parts += [Text(""), Text("Why", style="bold")]
        parts += [plain(f"• {r.word()}", style="red" if r.rule == "decisive" else None) for r in reasons]
    if record.notes:
        parts += [Text(""), Text("Notes", style="bold")] + [plain(f"• {n}", style="dim") for n in record.notes]
    model = record.model
    footer = (f"{model.get('id', '?')} · {model.get('dtype', '?')} · quant {model.get('quant', '?')}" if model
              else "metadata only: no model ran")
    return Panel(Group(*parts), title=plain(record.path), title_align="left",
                 subtitle=plain(footer, style="dim"), subtitle_align="right",
                 border_style=VERDICT_STYLE.get(record.verdict, "").replace("bold ", ""))


def _verdict_lines(record: Record) -> list:
    head = Text.assemble("Verdict: ", record_verdict(record), "   P(fake): ",
                         (percent(shown_p_fake(record)), "bold"))
    if record.calibrated_p_fake is not None:
        head.append(f" calibrated (raw {percent(record.p_fake)})", style="dim")
    if record.disagreement:
        head.append("   metadata overrules the model", style="bold red")
    lines: list = [head]
    band = (record.calibration or {}).get("inconclusive")
    if record.inconclusive and band:
        lines.append(plain(f"Inconclusive: P(fake) lies in the band {percent(band[0])}–{percent(band[1])} where "
                           "the model's verdict is not trusted", style="yellow"))
    if record.model_verdict and record.model_verdict != record.verdict:
        lines.append(plain(f"Model alone: {record.model_verdict}", style="dim"))
    if record.text_verdict and record.model_verdict and record.text_verdict != record.model_verdict:
        lines.append(plain(f"The generated text says: {record.text_verdict} (the verdict above follows "
                           f"P(fake) and the threshold)", style="yellow"))
    if record.p_fake is None and record.model_verdict == "unknown":
        lines.append(plain("The model stated no verdict ('fake' or 'real') where it was expected.", style="yellow"))
    return lines


def _video_lines(record: Record) -> list:
    """A clip: what it is, each judged frame's P(fake), and which frame the explanation is about."""
    video = record.video
    if not video:
        return []
    fps = f" at {video['fps']:.3g} fps" if video.get("fps") else ""
    length = f", {seconds(video['duration_s'])}" if video.get("duration_s") else ""
    lines: list = [Text(""), plain(f"Video: {video['container']} {video['codec']} {video['width']}x{video['height']}"
                                   f"{length}{fps}", style="bold")]
    if "frame" in video:
        lines.append(plain(f"Judged frame #{video['frame']['index']} (at {seconds(video['frame']['t'])})"))
    sampled = video.get("sampled") or []
    if sampled:
        lines.append(plain(f"{len(sampled)} frames judged; the clip's P(fake) is the {video.get('aggregate', '?')}"))
        strip = Text("  ")
        top = (video.get("most_suspicious") or {}).get("t")
        # a frame is red where the run's decision would call it fake: the record's own (maybe calibrated) threshold
        threshold = DEFAULT_THRESHOLD if record.threshold is None else record.threshold
        for i, frame in enumerate(sampled):
            style = "bold red" if frame["t"] == top else "dim" if (frame["p_fake"] or 0) < threshold else "red"
            strip.append(("  " if i else "") + f"{seconds(frame['t'])} {percent(frame['p_fake'])}", style=style)
        lines.append(strip)
    if video.get("explained_frame"):
        lines.append(plain(f"The explanation below is about the most suspicious frame, at "
                           f"{seconds(video['explained_frame']['t'])}.", style="dim"))
    return lines


def _answer_lines(record: Record) -> list:
    if record.answer or record.explanation:
        return [Text(""), plain(record.answer or record.explanation)]
    if record.text_verdict is not None:
        return [Text(""), Text("(the model gave no answer)", style="dim")]
    return []


def _where_lines(record: Record) -> list:
    """--localise: the map's top regions, in the image's pixels, and the heatmap picture's path."""
    loc = record.localisation
    if not loc:
        return []
    lines: list = [Text(""), plain(f"Where ({loc.get('method')}, in the centre crop the model saw)", style="bold")]
    if record.model_verdict != "fake":
        lines.append(Text("no regions: the model did not judge this image fake", style="dim"))
    for number, region in enumerate(loc.get("regions") or [] if record.model_verdict == "fake" else [], 1):
        x0, y0, x1, y1 = (round(v) for v in region["box"])
        lines.append(plain(f"• region {number}: ({x0}, {y0})–({x1}, {y1}) px, {region['score']:.0%} of the map"))
    if loc.get("heatmap"):
        lines.append(plain(f"heatmap: {loc['heatmap']}", style="dim"))
    return lines


def _evidence_lines(record: Record) -> list:
    if not record.evidence:
        return []
    lines: list = [Text(""), Text("Metadata evidence", style="bold")]
    for ev in sorted(record.evidence, key=evidence_rank, reverse=True):  # decisive first, info last
        style = "red" if ev.get("strong") and ev["signal"].startswith("ai_") else ""
        lines.append(plain(f"• [{ev['signal']}] {ev['source']} {ev['key']}: {ev['value']}", style=style))
    return lines


_SKIP_LABEL = {"symlinks": "symlinks not followed", "not_regular": "not regular files",
               "loops": "symlink loops", "duplicates": "duplicates"}


def summary_table(stats, *, discovery=None, interrupted: bool = False) -> Table:
    """Counts per verdict, errors, skipped, elapsed and throughput, for the end of a scan."""
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold")
    table.add_column()
    counts = ", ".join(f"{stats.verdicts.get(v, 0)} {v}" for v in ("fake", "real", "unknown", "error"))
    inconclusive = stats.inconclusive
    table.add_row("scanned", f"{stats.records} files: {counts}" + (f" ({inconclusive} of them inconclusive)"
                                                                   if inconclusive else ""))
    extras = []
    if stats.skipped:
        extras.append(f"{stats.skipped} not images")
    if stats.resumed:
        extras.append(f"{stats.resumed} already in the output (resumed"
                      + (f", {stats.resumed_fake} of them fake)" if stats.resumed_fake else ")"))
    if discovery is not None:
        for name in ("hidden", "symlinks", "excluded", "duplicates", "not_regular", "loops"):
            n = getattr(discovery, name, 0)
            if n:
                extras.append(f"{n} {_SKIP_LABEL.get(name, name)}")
        if getattr(discovery, "outputs", None):
            extras.append(f"{len(discovery.outputs)} the -o results file itself")
    if extras:
        table.add_row("skipped", ", ".join(extras))
    elapsed = stats.elapsed
    rate = stats.records / elapsed if elapsed > 0 else 0.0
    timing = f"{elapsed:.1f} s, {rate:.1f} files/s"
    if stats.model_images:
        timing += f", model busy {stats.model_seconds / elapsed:.0%} of the time" if elapsed > 0 else ""
    table.add_row("time", timing)
    if interrupted:
        table.add_row("stopped", Text("interrupted: every finished record was written", style="yellow"))
    return table


class Progress:
    """A transient bar: files (or items) done of the total, the rate and the time left, on a terminal only."""

    def __init__(self, console: Console, total: int, label: str = "scanning"):
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.progress = Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), TimeRemainingColumn(),
                                 console=console, transient=True, redirect_stdout=False, redirect_stderr=False)
        self.task = self.progress.add_task(label, total=total, rate="")

    def __enter__(self) -> Progress:
        self.progress.start()
        return self

    def __exit__(self, *exc) -> None:
        self.progress.stop()

    def update(self, stats) -> None:
        """From the run's counters: candidates looked at, and records per second."""
        rate = stats.records / stats.elapsed if stats.elapsed > 0 else 0.0
        self.progress.update(self.task, completed=stats.files, rate=f"{rate:.1f} files/s")
