"""The `fakevlm` command line: parse, build the typed request, hand it to its command. Nothing else lives here.

Every option comes from the declarations in options.py (flags, default, type, help), so `--help`, the shell
completions and docs/cli.md cannot drift from what the commands receive. Only torch-free modules are
imported at the top, so `fakevlm --help`, `--version`, `completion` and `scan --no-model` never pay for torch
or transformers. Exit codes (errors.py): 0 nothing judged fake, 1 something fake, 2 usage or fatal error,
130 interrupted, 141 stdout closed by its reader, 143 terminated, 129 hung up (SIGHUP).
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Callable
from dataclasses import MISSING
from pathlib import Path
from typing import Any, ClassVar

import click
from click.core import ParameterSource

from fakevlm_cli import __version__
from fakevlm_cli.core import options
from fakevlm_cli.core.errors import EXIT_INTERRUPTED
from fakevlm_cli.core.text import safe_text

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


class ByteSize(click.ParamType):
    """A size in bytes: 1073741824, 512M, 4G, 1.5G (K/M/G/T are powers of 1024; a trailing B or iB is ignored)."""

    name = "size"
    _UNITS: ClassVar[dict[str, int]] = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}

    def convert(self, value, param, ctx):
        if isinstance(value, int):
            return value
        text = str(value).strip().upper().removesuffix("B").removesuffix("I")
        unit = text[-1:] if text[-1:] in self._UNITS else ""
        try:
            number = float(text[: len(text) - len(unit)])
        except ValueError:
            self.fail(f"{value!r} is not a size (examples: 512M, 4G)", param, ctx)
        if not number > 0:  # NaN too
            self.fail(f"{value!r} is not a positive size", param, ctx)
        size = number * self._UNITS[unit]
        if size < 1:
            self.fail(f"{value!r} is less than one byte", param, ctx)
        if size >= 2**60:
            self.fail(f"{value!r} is too large (at most 1048575T)", param, ctx)
        return int(size)


class Band(click.ParamType):
    """Two probabilities LO,HI with 0 <= LO < HI <= 1, e.g. 0.3,0.7 (a percent sign is allowed: 30%,70%)."""

    name = "band"

    def convert(self, value, param, ctx):
        if isinstance(value, tuple):
            return value
        parts = str(value).replace(" ", "").split(",")
        try:
            lo, hi = (float(p[:-1]) / 100 if p.endswith("%") else float(p) for p in parts)
        except ValueError:
            self.fail(f"{value!r} is not LO,HI (example: 0.3,0.7)", param, ctx)
        if not 0 <= lo < hi <= 1:
            self.fail(f"{value!r}: needs 0 <= LO < HI <= 1", param, ctx)
        return (lo, hi)


_PATH_KINDS = {
    "path": {"dir_okay": False},
    "dir": {"file_okay": False},
    "existing-file": {"exists": True, "dir_okay": False},
    "existing-dir": {"exists": True, "file_okay": False},
    "existing-path": {"exists": True},
}


def _param(command: str, f) -> Callable:
    """The Click argument or option for one declared field (options.opt)."""
    meta = f.metadata
    kind = meta.get("kind")
    if kind == "argument":
        # existence, kind and permissions are the loader's to check: one line naming the file (Click would abort with
        # its usage message), and in a scan one error record while the other files go on
        return click.argument(f.name, type=click.Path(readable=False, path_type=Path))
    if kind == "arguments":
        return click.argument(f.name, nargs=-1, type=click.Path(readable=False, path_type=str))
    default = options.default_of(command, f)
    kwargs: dict[str, Any] = {"help": meta["help"]}
    if default is MISSING:
        kwargs["required"] = True
    else:
        kwargs["default"] = default
        kwargs["show_default"] = meta.get("show_default", default not in (None, False, ()))
    if kind == "flag":
        kwargs["is_flag"] = True
    elif kind == "optional-value":  # --ray alone, or --ray ADDRESS
        kwargs.update(is_flag=False, flag_value=meta["flag_value"])
    else:
        kwargs["type"] = _click_type(f)
    kwargs.update({key: meta[key] for key in ("multiple", "envvar", "metavar") if key in meta})
    return click.option(*options.flags_of(command, f), f.name, **kwargs)


def _click_type(f) -> Any:
    """The Click type of a declared option (None: Click infers it from the default)."""
    meta = f.metadata
    kind = meta.get("kind")
    if kind in _PATH_KINDS:
        return click.Path(path_type=Path, **_PATH_KINDS[kind])
    if kind == "rfile":
        return click.File("rb")
    if kind == "bytesize":
        return ByteSize()
    if kind == "band":
        return Band()
    if "choices" in meta:
        return click.Choice(meta["choices"])
    if "range" in meta:
        bounds = {"min_open": True} if meta.get("min_open") else {}
        return (FiniteFloatRange if "float" in str(f.type) else click.IntRange)(*meta["range"], **bounds)
    return None


class FiniteFloatRange(click.FloatRange):
    """FloatRange that refuses NaN: NaN compares false with both bounds, so FloatRange lets it through, and then
    `P(fake) >= nan` judged every image real."""

    def convert(self, value, param, ctx):
        number = super().convert(value, param, ctx)
        if math.isnan(number):
            self.fail(f"{value!r} is not a number", param, ctx)
        return number


# --help's sections: by the options' group (core/options.py), video options apart whatever group holds them.
SECTIONS = {"inputs": "Input", "args": "Options", "outputs": "Output", "judge": "Judging", "engine": "Model",
            "cluster": "Scale-out (Ray)"}
VIDEO_FIELDS = {"video_frames", "video_fps"}


def section_of(group: str, name: str) -> str:
    return "Video" if name in VIDEO_FIELDS else SECTIONS.get(group, "Options")


class Sectioned(click.Command):
    """A command whose --help lists its options in sections (Input, Output, Model, Video, …) instead of one list
    of ninety lines; the sections follow the order the options are declared in."""

    sections: ClassVar[dict[str, str]] = {}

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        grouped: dict[str, list[tuple[str, str]]] = {}
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx) if isinstance(param, click.Option) else None
            if record is not None:
                grouped.setdefault(self.sections.get(param.name or "", "Other"), []).append(record)
        for title, rows in grouped.items():
            with formatter.section(title):
                formatter.write_dl(rows)


def declared_options(command: str) -> Callable:
    """Decorate a Click command with every option options.COMMANDS[command] declares, in order, and say which
    --help section each belongs to (the command must be made with `cls=sectioned(command)`)."""
    def decorate(func):
        for _, f in reversed(options.declared(command)):
            func = _param(command, f)(func)
        return func

    return decorate


def sectioned(command: str) -> type[Sectioned]:
    """The Click command class for `command`, knowing its options' sections."""
    sections = {f.name: section_of(group, f.name) for group, f in options.declared(command)}
    return type(f"Sectioned_{command}", (Sectioned,), {"sections": sections})


def _run(command: str, values: dict) -> None:
    """Build the typed request and run its command; exit with the code it returns."""
    from fakevlm_cli.commands import run_command

    ctx = click.get_current_context()
    if "threshold" in values:  # a default --threshold beside --calibration is fine; a written one, even 0.5, is not
        values["threshold_given"] = ctx.get_parameter_source("threshold") not in (
            ParameterSource.DEFAULT, ParameterSource.DEFAULT_MAP, None)
    request = options.build(command, values)
    body: Callable[..., int]
    if command == "scan":
        from fakevlm_cli.commands.scan import scan as body
    elif command == "explain":
        from fakevlm_cli.commands.explain import explain as body
    elif command == "report":
        from fakevlm_cli.commands.report import report as body
    else:
        from fakevlm_cli.commands.eval import eval_command as body
    sys.exit(run_command(lambda diag: body(request, diag)))


def _debug_flag(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    if value:
        os.environ["FAKEVLM_DEBUG"] = "1"


@click.group(context_settings=CONTEXT)
@click.version_option(__version__, "-V", "--version", prog_name="fakevlm")
@click.option("--debug", is_flag=True, expose_value=False, is_eager=True,
              callback=_debug_flag,
              help="Show tracebacks instead of one-line errors.")
def cli():
    """Tell real photos from AI-generated or deep-faked ones with FakeVLM, explain why, and read provenance
    metadata (EXIF, generator PNG chunks, XMP DigitalSourceType, C2PA content credentials).

    \b
    Examples:
      fakevlm demo                              # offline, a toy model: see it work in a minute
      fakevlm explain photo.jpg
      fakevlm explain clip.mp4                  # the most suspicious of 8 sampled frames
      fakevlm scan ./photos -o results.jsonl
      fakevlm scan ./photos --no-model          # metadata only, no GPU needed
      fakevlm eval --bench fakeclue --data ./FakeClue
      fakevlm scan ./photos -o results.jsonl --localise --report report.html
    """


@cli.command(cls=sectioned("explain"), context_settings=CONTEXT)
@declared_options("explain")
def explain(**values):
    """Give one image's verdict, P(fake) and the model's artifact explanation.

    A video is judged on its sampled frames (--frames, --fps); the explanation is of its most suspicious
    frame, named by its time. Exit code 0 (real or no verdict), 1 (fake), 2 (error).
    """
    _run("explain", values)


@cli.command(cls=sectioned("scan"), context_settings=CONTEXT)
@declared_options("scan")
def scan(**values):
    """Scan files and folders: model verdict + metadata evidence for every image and video.

    PATHS are files or folders (walked recursively); '-' reads a list of paths from stdin. Exit code 0
    (nothing judged fake), 1 (something fake), 2 (fatal error), 130/143/129 (Ctrl-C, SIGTERM, SIGHUP; records
    kept).
    """
    _run("scan", values)


@cli.command(name="eval", cls=sectioned("eval"), context_settings=CONTEXT)
@declared_options("eval")
def eval_(**values):
    """Score the model on a local benchmark copy with the paper's metrics, beside the paper's figures."""
    _run("eval", values)


@cli.command(cls=sectioned("report"), context_settings=CONTEXT)
@declared_options("report")
def report(**values):
    """Write a self-contained HTML report (thumbnails, verdicts, heatmaps, metadata) from JSONL records.

    RESULTS is any JSONL file fakevlm wrote (scan -o, eval --predictions). No model is loaded. The report
    opens offline from disk and fetches nothing.
    """
    _run("report", values)


@cli.command(context_settings=CONTEXT)
@click.argument("folder", required=False, type=click.Path(file_okay=False, path_type=Path))
def demo(folder):
    """See fakevlm work offline, without the released weights: a TOY model and sample files.

    Trains (once, about 30 s, then cached) the toy FakeVLM the tests use, writes sample files into FOLDER
    (default ./fakevlm-demo): toy fakes and reals, camera EXIF, a generator PNG, XMP and C2PA AI sources, a
    HEIC, a clip and a broken file, then scans them into FOLDER/results.jsonl, FOLDER/report.html and
    heatmaps. The toy knows only its own planted artifact: it is not a detector. Exit code 0, or 2 on error.
    """
    from fakevlm_cli.commands import run_command
    from fakevlm_cli.commands.demo import demo as body

    sys.exit(run_command(lambda diag: body(folder, diag)))


@cli.command(context_settings=CONTEXT)
@click.option("--model", "-m", metavar="ID_OR_DIR", envvar="FAKEVLM_MODEL",
              help="The checkpoint to look for (default: the released weights; env FAKEVLM_MODEL).")
def doctor(model):
    """Check that the model can run here: versions, the device and precision it would use, whether the weights
    are cached, video/HEIC/C2PA support, optional extras. Exit code 0 (ready), 1 (cannot run the model: the
    line says what to install), 2 (error).
    """
    from fakevlm_cli.commands import run_command
    from fakevlm_cli.commands.doctor import doctor as body

    sys.exit(run_command(lambda diag: body(diag, model=model)))


# ---- completion ------------------------------------------------------------------------------------------

@cli.command(context_settings=CONTEXT)
@click.argument("shell", type=click.Choice(["bash", "zsh", "fish"]))
def completion(shell):
    """Print the shell completion script for SHELL.

    \b
    bash:  fakevlm completion bash > ~/.local/share/bash-completion/completions/fakevlm
    zsh:   fakevlm completion zsh > "${fpath[1]}/_fakevlm"
    fish:  fakevlm completion fish > ~/.config/fish/completions/fakevlm.fish
    """
    click.echo(completion_script(shell), nl=False)


def completion_script(shell: str) -> str:
    from click.shell_completion import get_completion_class

    cls = get_completion_class(shell)
    if cls is None:  # pragma: no cover - the Choice above allows only shells Click knows
        raise click.BadParameter(f"no completion for {shell}")
    return cls(cli, {}, "fakevlm", "_FAKEVLM_COMPLETE").source()


def reference_markdown() -> str:
    """docs/cli.md: the `--help` of every command, as Click prints it at 100 columns (drift-checked in tests)."""
    from click.testing import CliRunner

    parts = ["# Command-line reference", "",
             ("Generated from `fakevlm --help` (`python -c \"from fakevlm_cli.cli import reference_markdown; "
             "print(reference_markdown(), end='')\" > docs/cli.md`); the options are declared once, in "
             "`fakevlm_cli/core/options.py`."), ""]
    for name in ([], ["explain"], ["scan"], ["eval"], ["report"], ["demo"], ["doctor"], ["completion"]):
        result = CliRunner().invoke(cli, [*name, "--help"], prog_name="fakevlm", terminal_width=100)
        title = " ".join(["fakevlm", *name])
        parts += [f"## `{title}`", "", "```text", result.output.rstrip(), "```", ""]
    return "\n".join(parts)


# Click >= 8.2 raises this for a group called with nothing (8.1, which pyproject allows, exits 0 with the help)
_NO_ARGS_IS_HELP: Any = getattr(click.exceptions, "NoArgsIsHelpError", ())


def main() -> None:
    """The `fakevlm` command. A usage error is one `fakevlm: error:` line naming the help to read, exit 2 (as the
    README promises scripts), not Click's usage block."""
    try:
        code = cli.main(prog_name="fakevlm", standalone_mode=False)
    except KeyboardInterrupt:  # only while Click itself parses: the commands handle their own
        click.echo("fakevlm: interrupted", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except _NO_ARGS_IS_HELP as exc:  # `fakevlm` alone: the help, as Click shows it
        exc.show()
        sys.exit(exc.exit_code)
    except click.UsageError as exc:
        where = exc.ctx.command_path if exc.ctx is not None else "fakevlm"
        click.echo(f"fakevlm: error: {safe_text(exc.format_message())} (see '{where} --help')", err=True)
        sys.exit(exc.exit_code)
    except click.ClickException as exc:  # a file option Click itself opens (--from-file) that cannot be read
        click.echo(f"fakevlm: error: {safe_text(exc.format_message())}", err=True)
        sys.exit(exc.exit_code)
    except click.Abort:  # Click's own prompt interrupted (none is used; kept for completeness)
        click.echo("fakevlm: interrupted", err=True)
        sys.exit(EXIT_INTERRUPTED)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":  # pragma: no cover
    main()
