"""The `fakevlm` command line: parse options, call the pipeline, render. Nothing else lives here.

Only torch-free modules are imported at the top, so `fakevlm --help`, `--version`, `completion` and
`scan --no-model` never pay for torch or transformers. Every known failure is a `FakevlmError` whose
message is printed as one line (`--debug` or FAKEVLM_DEBUG=1 shows the traceback); exit codes are
0 (nothing judged fake), 1 (at least one fake), 2 (usage or fatal error), 130 (interrupted).
"""

from __future__ import annotations

import functools
import os
import sys
from pathlib import Path

import click

from fakevlm_cli import __version__
from fakevlm_cli.errors import EXIT_CLEAN, EXIT_ERROR, EXIT_FAKE, EXIT_INTERRUPTED, FakevlmError

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}
PIXEL_MODES = ("viewer", "upstream")  # images.PIXEL_MODES, spelled here so --help never imports Pillow
PIXELS_HELP = ("viewer: EXIF orientation applied, transparency on white (as people see the file); upstream: "
               "exactly as the upstream FakeVLM evaluation fed the model (no orientation).")


def _debug() -> bool:
    return os.environ.get("FAKEVLM_DEBUG", "") not in ("", "0")


def fail(message: str) -> "click.exceptions.Exit":
    """Print one `error:` line on stderr and exit 2."""
    from fakevlm_cli.output import safe_text

    click.echo(f"fakevlm: error: {safe_text(message)}", err=True)
    return click.exceptions.Exit(EXIT_ERROR)


def silence_libraries() -> None:
    """-q: library warnings (Pillow's "Invalid APNG", "Corrupt EXIF data", transformers' notices) go unprinted.

    Our own errors are printed directly, not through `warnings` or `logging`, so they still reach stderr.
    """
    import logging
    import warnings

    warnings.simplefilter("ignore")
    logging.disable(logging.WARNING)
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")


class ByteSize(click.ParamType):
    """A size in bytes: 1073741824, 512M, 4G, 1.5G (K/M/G/T are powers of 1024; a trailing B or iB is ignored)."""

    name = "size"
    _UNITS = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}

    def convert(self, value, param, ctx):
        if isinstance(value, int):
            return value
        text = str(value).strip().upper().removesuffix("B").removesuffix("I")
        unit = text[-1:] if text[-1:] in self._UNITS else ""
        try:
            number = float(text[: len(text) - len(unit)])
        except ValueError:
            self.fail(f"{value!r} is not a size (examples: 512M, 4G)", param, ctx)
        if not 0 < number < 2**60:
            self.fail(f"{value!r} is not a positive size", param, ctx)
        return int(number * self._UNITS[unit])


def handle_errors(func):
    """Turn the project's own errors into one line and exit 2, instead of a traceback."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except FakevlmError as exc:
            if _debug():
                raise
            raise fail(str(exc)) from None

    return wrapper


def engine_options(func):
    """The model options every model-running command shares."""
    from fakevlm_cli.engine_types import DEFAULT_MODEL, DEFAULT_VERDICT_STEPS, DTYPES, QUANTS

    options = [
        click.option("--model", "-m", envvar="FAKEVLM_MODEL", default=DEFAULT_MODEL, show_default=True,
                     help="Hugging Face hub id or local directory of the checkpoint (env FAKEVLM_MODEL)."),
        click.option("--revision", default=None, help="Hub revision (branch, tag or commit) of the model."),
        click.option("--processor", default=None,
                     help="Processor to pair with the model (default: llava-hf/llava-1.5-7b-hf at a272c74 for "
                          "lingcco/fakeVLM, as the upstream evaluation; the checkpoint's own for others)."),
        click.option("--processor-revision", default=None, help="Hub revision of --processor."),
        click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:N or mps."),
        click.option("--dtype", type=click.Choice(DTYPES), default="auto", show_default=True,
                     help="auto = bfloat16 on a GPU (float16 where unsupported), float32 on the CPU."),
        click.option("--quant", type=click.Choice(QUANTS), default="none", show_default=True,
                     help="Load 8-bit or 4-bit (NF4) weights with bitsandbytes."),
        click.option("--prompt", default=None,
                     help="Replace the question (default: FakeClue's '<image>Does the image looks real/fake?')."),
        click.option("--answer-prefix", default=None,
                     help="Force this start of the answer and read P(fake) from the next token (default: "
                          "nothing forced; P(fake) is read where the model writes its verdict)."),
        click.option("--verdict-steps", type=click.IntRange(1, 256), default=DEFAULT_VERDICT_STEPS,
                     show_default=True, help="New tokens within which the model must state its verdict."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def load_engine(model, revision, processor, processor_revision, device, dtype, quant, prompt, answer_prefix,
                verdict_steps, *, quiet=False):
    """Load the engine (this is where torch is first imported) and print its notices on stderr."""
    from fakevlm_cli.engine import Engine
    from fakevlm_cli.engine_types import DEFAULT_PROMPT, EngineOptions

    def unescape(text: str) -> str:  # a shell cannot easily pass a newline: accept a written "\n"
        return text.replace("\\n", "\n")

    options = EngineOptions(model=model, revision=revision, processor=processor,
                            processor_revision=processor_revision, device=device, dtype=dtype, quant=quant,
                            prompt=unescape(prompt) if prompt else DEFAULT_PROMPT,
                            answer_prefix=None if answer_prefix is None else unescape(answer_prefix),
                            verdict_steps=verdict_steps)
    engine = Engine.load(options)
    if not quiet:
        for notice in engine.notices:
            click.echo(f"fakevlm: note: {notice}", err=True)
    return engine


@click.group(context_settings=CONTEXT)
@click.version_option(__version__, "-V", "--version", prog_name="fakevlm")
@click.option("--debug", is_flag=True, expose_value=False, is_eager=True,
              callback=lambda ctx, p, v: v and os.environ.__setitem__("FAKEVLM_DEBUG", "1"),
              help="Show tracebacks instead of one-line errors.")
def cli():
    """Tell real photos from AI-generated or deep-faked ones with FakeVLM, explain why, and read provenance
    metadata (EXIF, generator PNG chunks, XMP DigitalSourceType, C2PA content credentials).

    \b
    Examples:
      fakevlm explain photo.jpg
      fakevlm scan ./photos -o results.jsonl
      fakevlm scan ./photos --no-model          # metadata only, no GPU needed
      fakevlm eval --bench fakeclue --data ./FakeClue
    """


# ---- explain ---------------------------------------------------------------------------------------------

@cli.command(context_settings=CONTEXT)
@click.argument("image", type=click.Path(dir_okay=False, path_type=Path))
@engine_options
@click.option("--max-new-tokens", type=click.IntRange(1, 4096), default=256, show_default=True,
              help="Longest explanation to generate.")
@click.option("--threshold", type=click.FloatRange(0, 1), default=0.5, show_default=True,
              help="P(fake) at or above which the model's verdict is fake.")
@click.option("--max-pixels", type=click.IntRange(1), default=None, help="Refuse images larger than this.")
@click.option("--pixels", type=click.Choice(PIXEL_MODES), default="viewer", show_default=True,
              help=PIXELS_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (the scan record schema).")
@handle_errors
def explain(image, max_new_tokens, threshold, max_pixels, pixels, as_json, **engine_kwargs):
    """Give one image's verdict, P(fake) and the model's artifact explanation."""
    from fakevlm_cli import render
    from fakevlm_cli.discover import Candidate
    from fakevlm_cli.images import DEFAULT_MAX_PIXELS
    from fakevlm_cli.errors import ImageError
    from fakevlm_cli.pipeline import ScanConfig, Scanner, check_image

    try:  # a bad file is reported before the (slow) model load
        check_image(image, max_pixels or DEFAULT_MAX_PIXELS)
    except ImageError as exc:
        raise fail(f"{image}: {exc}") from None
    engine = load_engine(**engine_kwargs)
    config = ScanConfig(explain=True, batch_size=1, threshold=threshold, max_new_tokens=max_new_tokens,
                        max_pixels=max_pixels or DEFAULT_MAX_PIXELS, workers=1, pixels=pixels)
    record = next(iter(Scanner(engine, config).run([Candidate(path=image, explicit=True)])))
    if record.verdict == "error":
        raise fail(f"{record.path}: {record.error}")
    if as_json:
        import orjson

        sys.stdout.buffer.write(orjson.dumps(record.to_dict(), option=orjson.OPT_INDENT_2) + b"\n")
        sys.stdout.flush()
    else:
        render.console().print(render.explain_panel(record))
    sys.exit(EXIT_FAKE if record.verdict == "fake" else EXIT_CLEAN)


# ---- scan ------------------------------------------------------------------------------------------------

@cli.command(context_settings=CONTEXT)
@click.argument("paths", nargs=-1, type=click.Path(path_type=str))
@click.option("--from-file", "from_file", type=click.File("rb"), default=None,
              help="Read paths from FILE, one per line ('-' for stdin).")
@click.option("-0", "--null", "nul", is_flag=True, help="Paths in --from-file / stdin are NUL-separated.")
@click.option("--max-depth", type=click.IntRange(0), default=None, help="How deep to descend into folders.")
@click.option("--include", multiple=True, metavar="GLOB", help="Only scan files matching GLOB (repeatable).")
@click.option("--exclude", multiple=True, metavar="GLOB", help="Skip files and folders matching GLOB.")
@click.option("--hidden", is_flag=True, help="Also scan hidden files and folders.")
@click.option("--follow-symlinks", is_flag=True, help="Follow symbolic links while walking folders.")
@click.option("--format", "fmt", type=click.Choice(["table", "jsonl", "csv"]), default=None,
              help="Output format (default: table on a terminal, JSONL when piped).")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write records to FILE (.jsonl or .csv; '-' for stdout); the terminal still shows the table.")
@click.option("--resume", is_flag=True, help="With -o FILE.jsonl: skip files already recorded there.")
@click.option("--force", is_flag=True,
              help="Let -o overwrite an existing file that is not a fakevlm results file (never an input).")
@click.option("--explain", "with_explain", is_flag=True, help="Also generate the artifact explanation (slower).")
@click.option("--no-model", is_flag=True, help="Metadata only: never loads torch or the model.")
@click.option("--batch-size", type=click.IntRange(1, 1024), default=8, show_default=True)
@click.option("--threshold", type=click.FloatRange(0, 1), default=0.5, show_default=True,
              help="P(fake) at or above which the model's verdict is fake.")
@click.option("--max-new-tokens", type=click.IntRange(1, 4096), default=256, show_default=True)
@click.option("--max-pixels", type=click.IntRange(1), default=None,
              help="Refuse images with more pixels than this (default 200 MP).")
@click.option("--workers", type=click.IntRange(1, 64), default=None, help="Loader threads (default: cores, max 8).")
@click.option("--max-memory", type=ByteSize(), default=None, metavar="SIZE",
              help="Memory the loader threads may use at once to read and decode files, e.g. 4G (default: a "
                   "quarter of RAM, at least 1G); a file that alone needs more is an error record.")
@click.option("--pixels", type=click.Choice(PIXEL_MODES), default="viewer", show_default=True,
              help=PIXELS_HELP)
@click.option("-q", "--quiet", is_flag=True, help="No progress, summary or library warnings on stderr; errors only.")
@engine_options
@handle_errors
def scan(paths, from_file, nul, max_depth, include, exclude, hidden, follow_symlinks, fmt, output, resume, force,
         with_explain, no_model, batch_size, threshold, max_new_tokens, max_pixels, workers, max_memory, pixels,
         quiet,
         **engine_kwargs):
    """Scan files and folders: model verdict + metadata evidence for every image.

    PATHS are files or folders (walked recursively); '-' reads a list of paths from stdin.
    """
    from fakevlm_cli.scan_command import ScanRequest, run_scan

    if quiet:
        silence_libraries()
    request = ScanRequest(
        paths=paths, from_file=from_file, nul=nul, max_depth=max_depth, include=include, exclude=exclude,
        hidden=hidden, follow_symlinks=follow_symlinks, fmt=fmt, output=output, resume=resume, force=force,
        explain=with_explain, no_model=no_model, batch_size=batch_size, threshold=threshold,
        max_new_tokens=max_new_tokens, max_pixels=max_pixels, workers=workers, max_memory=max_memory,
        pixels=pixels, quiet=quiet,
    )
    if not paths and from_file is None:
        raise click.UsageError("give at least one PATH, '-' or --from-file FILE")
    loader = None if no_model else functools.partial(load_engine, quiet=quiet, **engine_kwargs)
    sys.exit(run_scan(request, loader))


# ---- eval ------------------------------------------------------------------------------------------------

@cli.command(name="eval", context_settings=CONTEXT)
@click.option("--bench", type=click.Choice(["fakeclue", "loki", "ddvqa", "folder"]), required=True,
              help="Benchmark format of --data.")
@click.option("--data", type=click.Path(exists=True, file_okay=False, path_type=Path), required=True,
              help="Local copy of the benchmark (see README: Benchmarks).")
@click.option("--annotations", type=click.Path(exists=True, path_type=Path), default=None,
              help="Dataset JSON file, when not at its usual place under --data.")
@click.option("--frames", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="DD-VQA: folder of extracted FF++ frames (default DATA/frames).")
@click.option("--limit", type=click.IntRange(1), default=None, help="Only the first N items.")
@click.option("--categories", default=None, help="Comma-separated categories to keep.")
@click.option("--explain", "with_explain", is_flag=True, help="Also generate explanations: ROUGE-L and CSS.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write every number, the config and versions to this JSON file.")
@click.option("--predictions", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write per-item predictions as JSONL (the scan record schema).")
@click.option("--from-predictions", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Re-score a predictions file instead of running the model.")
@click.option("--compare-to", type=click.Choice(["fakeclue", "loki", "ddvqa", "dmimage", "ffpp"]), default=None,
              help="Paper figures to print beside ours (default: the benchmark's own; folder: none).")
@click.option("--verdict-from", type=click.Choice(["score", "text"]), default="score", show_default=True,
              help="Judge by P(fake) >= threshold, or (with --explain) by the verdict sentence the model wrote, "
                   "as the paper's scripts do; unreadable text counts as unknown.")
@click.option("--css-model", default=None,
              help="sentence-transformers model for CSS (default: all-MiniLM-L6-v2, offline).")
@click.option("--batch-size", type=click.IntRange(1, 1024), default=8, show_default=True)
@click.option("--threshold", type=click.FloatRange(0, 1), default=0.5, show_default=True)
@click.option("--max-new-tokens", type=click.IntRange(1, 4096), default=256, show_default=True)
@click.option("--workers", type=click.IntRange(1, 64), default=None, help="Loader threads.")
@click.option("--pixels", type=click.Choice(PIXEL_MODES), default="upstream", show_default=True,
              help=PIXELS_HELP)
@click.option("-q", "--quiet", is_flag=True, help="No progress bar or library warnings.")
@engine_options
@handle_errors
def eval_(bench, data, annotations, frames, limit, categories, with_explain, output, predictions,
          from_predictions, compare_to, verdict_from, css_model, batch_size, threshold, max_new_tokens, workers,
          pixels, quiet, **engine_kwargs):
    """Score the model on a local benchmark copy with the paper's metrics, beside the paper's figures."""
    from fakevlm_cli import render
    from fakevlm_cli.eval_command import EvalRequest, run_eval, write_results

    if quiet:
        silence_libraries()
    request = EvalRequest(
        bench=bench, data=data, annotations=annotations, frames=frames, limit=limit, categories=categories,
        explain=with_explain, output=output, predictions=predictions, from_predictions=from_predictions,
        compare_to=compare_to, verdict_from=verdict_from, css_model=css_model, batch_size=batch_size,
        threshold=threshold, max_new_tokens=max_new_tokens, workers=workers, pixels=pixels, quiet=quiet,
    )
    show_bar = not quiet and sys.stderr.isatty()
    run = run_eval(request, functools.partial(load_engine, quiet=quiet, **engine_kwargs),
                   progress_factory=_progress_bar if show_bar else None)
    con = render.console()
    for part in render.eval_tables(run):
        con.print(part)
    if output is not None:
        write_results(output, run)


def _progress_bar(total: int):
    from tqdm import tqdm

    bar = tqdm(total=total, unit="img", file=sys.stderr, dynamic_ncols=True, desc="evaluating")
    bar.update_to = lambda n: bar.update(n - bar.n)
    return bar


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
    return cls(cli, {}, "fakevlm", "_FAKEVLM_COMPLETE").source()


def main() -> None:
    try:
        cli(prog_name="fakevlm")
    except KeyboardInterrupt:
        click.echo("fakevlm: interrupted", err=True)
        sys.exit(EXIT_INTERRUPTED)


if __name__ == "__main__":  # pragma: no cover
    main()
