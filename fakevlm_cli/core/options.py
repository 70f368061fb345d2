"""Every command-line option, declared once: its flags, default, type and help, and the typed request each
command receives. cli.py turns these declarations into Click options (`--help`, completions and
docs/cli.md are generated from them); the commands get frozen dataclasses.

Plain data only — no Click, no torch — so the engine, the run layer and the commands can all import it.
A default lives here and nowhere else (the model's own, such as DEFAULT_THRESHOLD, in engine_types, which this
imports): other modules import the DEFAULT_* below; the one per-command difference (eval feeds upstream's
pixels) is declared once, in `COMMANDS`.
"""

from __future__ import annotations

import os
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import IO, Any

from fakevlm_cli.core.engine_types import (
    DEFAULT_MAX_NEW_TOKENS,
    DEFAULT_MODEL,
    DEFAULT_PROMPT,
    DEFAULT_RELEVANCE_METHOD,
    DEFAULT_THRESHOLD,
    DEFAULT_VERDICT_STEPS,
    DTYPES,
    QUANTS,
    RELEVANCE_METHODS,
)

DEFAULT_MAX_PIXELS = 200_000_000  # 200 MP: above any camera sensor sold today, far below a bomb's size
DEFAULT_FRAMES = 8  # video frames sampled evenly from a clip
DEFAULT_THUMBNAIL_SIZE = 160  # longest side of a report's thumbnails
PIXEL_MODES = ("viewer", "upstream")
FORMATS = ("table", "jsonl", "csv")
BENCHES = ("fakeclue", "loki", "ddvqa", "folder")
PAPER_ROWS = ("fakeclue", "loki", "ddvqa", "dmimage", "ffpp")
# eval --verdict-from: P(fake) at the threshold, fakevlm's reading of the text, or upstream eval.py's parse of it
VERDICT_FROM = ("score", "text", "upstream")
DEFAULT_SEED = 0  # eval --seed: upstream's random labels, made repeatable


def unescape(text: str | None) -> str | None:
    """A shell cannot easily pass a newline: a written "\\n" in --prompt/--answer-prefix means one."""
    return None if text is None else text.replace("\\n", "\n")


def default_workers() -> int:
    return min(8, os.cpu_count() or 2)


def opt(default: Any, *flags: str, help: str, **spec: Any) -> Any:  # noqa: A002 - Click's name for it
    """Declare one option: a dataclass field whose metadata says how the command line spells and parses it.

    spec keys: choices, range=(lo, hi) (min_open: lo itself refused), kind ("flag", "path", "dir",
    "existing-path", "existing-file", "existing-dir", "rfile", "bytesize", "band", "argument", "arguments",
    "optional-value": a value that may be left out, which gives flag_value), multiple, envvar, metavar,
    show_default, flag_value, parse (a function applied to the parsed value).
    """
    return field(default=default, metadata={"flags": flags, "help": help, **spec})


# ---- the model ------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class EngineOptions:
    """What a user chooses about the model; defaults are what the paper's evaluation used."""

    model: str = opt(DEFAULT_MODEL, "--model", "-m", envvar="FAKEVLM_MODEL",
                     help="Hugging Face hub id or local directory of the checkpoint (env FAKEVLM_MODEL).")
    revision: str | None = opt(None, "--revision", help="Hub revision (branch, tag or commit) of the model.")
    processor: str | None = opt(None, "--processor",
                                help="Processor to pair with the model (default: llava-hf/llava-1.5-7b-hf at a272c74 "
                                     "for lingcco/fakeVLM, as the upstream evaluation; the checkpoint's own for "
                                     "others).")
    processor_revision: str | None = opt(None, "--processor-revision", help="Hub revision of --processor.")
    device: str = opt("auto", "--device", help="auto, cpu, cuda, cuda:N or mps.")
    dtype: str = opt("auto", "--dtype", choices=DTYPES,
                     help="auto = bfloat16 on a GPU (float16 where unsupported), float32 on the CPU.")
    quant: str = opt("none", "--quant", choices=QUANTS, help="Load 8-bit or 4-bit (NF4) weights with bitsandbytes.")
    prompt: str = opt(DEFAULT_PROMPT, "--prompt", parse=unescape, show_default=False,
                      help="Replace the question (default: FakeClue's '<image>Does the image looks real/fake?').")
    answer_prefix: str | None = opt(None, "--answer-prefix", parse=unescape,
                                    help="Force this start of the answer and read P(fake) from the next token "
                                         "(default: nothing forced; P(fake) is read where the model writes its "
                                         "verdict).")
    verdict_steps: int = opt(DEFAULT_VERDICT_STEPS, "--verdict-steps", range=(1, 256),
                             help="New tokens within which the model must state its verdict.")
    compile: bool = opt(False, "--compile", kind="flag",
                        help="torch.compile the decode step of long explanations (CUDA only; each new batch "
                             "size compiles first, so it pays off on long runs).")


# ---- judging images (the run layer) --------------------------------------------------------------------------

@dataclass(frozen=True)
class JudgeOptions:
    """How each image is judged: what the run layer (`run.predict`) needs besides the engine."""

    threshold: float = opt(DEFAULT_THRESHOLD, "--threshold", range=(0.0, 1.0),
                           help="P(fake) at or above which the model's verdict is fake.")
    explain: bool = opt(False, "--explain", kind="flag", help="Also generate the artifact explanation (slower).")
    max_new_tokens: int = opt(DEFAULT_MAX_NEW_TOKENS, "--max-new-tokens", range=(1, 4096),
                              help="Longest explanation to generate.")
    batch_size: int = opt(8, "--batch-size", range=(1, 1024), help="Images per model call.")
    workers: int | None = opt(None, "--workers", range=(1, 64),
                              help="Loader threads (default: the cores, at most 8).")
    pixels: str = opt("viewer", "--pixels", choices=PIXEL_MODES,
                      help="viewer: EXIF orientation applied, transparency on white (as people see the file); "
                           "upstream: exactly as the upstream FakeVLM evaluation fed the model (no orientation).")
    # --video-frames/--video-fps in every command (eval's --frames is DD-VQA's folder); scan's and explain's
    # earlier --frames/--fps still work
    video_frames: int = opt(DEFAULT_FRAMES, "--video-frames", "--frames", range=(1, 256),
                            help="Frames sampled evenly from each video.")
    video_fps: float | None = opt(None, "--video-fps", "--fps", range=(0.001, 60.0),
                                  help="Sample video frames at this rate instead (at most 256 a clip).")
    fast_decode: bool = opt(False, "--fast-decode", kind="flag",
                            help="Decode big JPEGs at a reduced scale before the model's resize: about 1.3x the scan "
                                 "rate on 12 MP photos (measured), pixels slightly different (docs/performance.md).")
    max_pixels: int = opt(DEFAULT_MAX_PIXELS, "--max-pixels", range=(1, None),
                          help="Refuse images with more pixels (a decompression bomb is refused before decoding).")
    max_memory: int | None = opt(None, "--max-memory", kind="bytesize", metavar="SIZE",
                                 help="Memory the loader threads may use at once to read and decode files, e.g. 4G "
                                      "(default: a quarter of RAM, at least 1G); a file that alone needs more is "
                                      "an error record.")
    localise: bool = opt(False, "--localise", kind="flag",
                         help="Also map where in the image the verdict comes from (the record's localisation "
                              "field: top regions as boxes, the map over the model's image tokens; "
                              "docs/localisation.md).")
    heatmap_method: str = opt(DEFAULT_RELEVANCE_METHOD, "--heatmap-method", choices=RELEVANCE_METHODS,
                              help="How --localise maps relevance (the default measured most faithful).")
    calibration: Path | None = opt(None, "--calibration", kind="existing-file", metavar="FILE",
                                   help="Apply a calibration made by `eval --fit-calibration`: its threshold (for "
                                        "its target false-positive rate), calibrated P(fake) and inconclusive "
                                        "band; refused if fitted for another model, processor or prompt.")
    inconclusive: tuple[float, float] | None = opt(None, "--inconclusive", kind="band", metavar="LO,HI",
                                                   help="No model verdict for P(fake) in [LO, HI) (calibrated "
                                                        "P(fake) with --calibration): the record says inconclusive "
                                                        "(verdict unknown). Must contain the threshold.")
    trust_anchors: Path | None = opt(None, "--trust-anchors", kind="existing-file", metavar="PEM",
                                     help="C2PA: a signer whose certificate chains to one in this PEM bundle is "
                                          "reported trusted, any other untrusted (checked offline; without it: "
                                          "unknown).")
    # not an option: whether --threshold was given on the command line (cli.py asks Click), so that run.prepare
    # refuses `--threshold 0.5 --calibration f` as it refuses any other threshold beside a calibration
    threshold_given: bool = False

    @property
    def loader_threads(self) -> int:
        return self.workers or default_workers()


# ---- running on a Ray cluster (scan and eval) -------------------------------------------------------------------

LOCAL_CLUSTER = "local"  # --ray with no address: start a Ray instance on this machine


@dataclass(frozen=True)
class ClusterOptions:
    """Where the work runs: this process (default), or a Ray cluster (distributed.py, docs/ray.md)."""

    ray: str | None = opt(None, "--ray", kind="optional-value", flag_value=LOCAL_CLUSTER, metavar="[ADDRESS]",
                          help="Run on Ray Data: --ray alone starts a local Ray, --ray auto joins the cluster this "
                               "machine belongs to (ray start), --ray HOST:PORT or ray://HOST:10001 a given one. "
                               "Needs fakevlm-cli[ray].")
    replicas: int | None = opt(None, "--replicas", range=(1, 4096),
                               help="With --ray: model replicas, each an actor holding one copy of the model (default: "
                                    "one per GPU in the cluster, else 1).")


# ---- scan -----------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ScanInputs:
    """Which files `scan` looks at (discover.py)."""

    paths: tuple[str, ...] = opt((), "paths", kind="arguments", help="Files and folders; '-' reads paths from stdin.")
    from_file: IO[bytes] | None = opt(None, "--from-file", kind="rfile",
                                      help="Read paths from FILE, one per line ('-' for stdin).")
    nul: bool = opt(False, "-0", "--null", kind="flag", help="Paths in --from-file / stdin are NUL-separated.")
    max_depth: int | None = opt(None, "--max-depth", range=(0, None), help="How deep to descend into folders.")
    include: tuple[str, ...] = opt((), "--include", multiple=True, metavar="GLOB",
                                   help="Only scan files matching GLOB (repeatable).")
    exclude: tuple[str, ...] = opt((), "--exclude", multiple=True, metavar="GLOB",
                                   help="Skip files and folders matching GLOB (repeatable).")
    hidden: bool = opt(False, "--hidden", kind="flag", help="Also scan hidden files and folders.")
    follow_symlinks: bool = opt(False, "--follow-symlinks", kind="flag",
                                help="Follow symbolic links while walking folders.")


@dataclass(frozen=True)
class ScanOutputs:
    """Where `scan` writes (sinks.py) and what it shows."""

    fmt: str | None = opt(None, "--format", choices=FORMATS,
                          help="Output format (default: table on a terminal, JSONL when piped).")
    output: Path | None = opt(None, "-o", "--output", kind="path",
                              help="Write records to FILE (.jsonl or .csv; '-' is stdout); the terminal still shows "
                                   "the table.")
    resume: bool = opt(False, "--resume", kind="flag", help="With -o FILE.jsonl: skip files already recorded there.")
    force: bool = opt(False, "--force", kind="flag",
                      help="Let -o overwrite an existing file that is not a fakevlm results file.")
    no_model: bool = opt(False, "--no-model", kind="flag", help="Metadata only: never loads torch or the model.")
    heatmaps: Path | None = opt(None, "--heatmaps", kind="dir", metavar="DIR",
                                help="Write a heatmap picture per image into DIR (implies --localise).")
    report: Path | None = opt(None, "--report", kind="path", metavar="FILE.html",
                              help="Also write a self-contained HTML report of the records (docs/report.md).")
    quiet: bool = opt(False, "-q", "--quiet", kind="flag",
                      help="No progress, summary or library warnings on stderr; errors only.")


@dataclass(frozen=True)
class ScanRequest:
    inputs: ScanInputs
    outputs: ScanOutputs
    judge: JudgeOptions
    engine: EngineOptions
    cluster: ClusterOptions = ClusterOptions()


# ---- explain --------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ExplainArgs:
    image: Path = opt(MISSING, "image", kind="argument", help="The image or video to explain.")
    as_json: bool = opt(False, "--json", kind="flag", help="Print one JSON object (the scan record schema).")
    heatmap: Path | None = opt(None, "--heatmap", kind="path", metavar="FILE.png",
                               help="Write the heatmap picture to FILE.png (implies --localise).")
    force: bool = opt(False, "--force", kind="flag",
                      help="Let --heatmap overwrite an existing file that is not a fakevlm heatmap (never the "
                           "image explained).")
    no_model: bool = opt(False, "--no-model", kind="flag",
                         help="Metadata only: the file's evidence and what it decides; never loads torch or the model.")


@dataclass(frozen=True)
class ExplainRequest:
    args: ExplainArgs
    judge: JudgeOptions
    engine: EngineOptions


# ---- eval -----------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class EvalArgs:
    bench: str = opt(MISSING, "--bench", choices=BENCHES, help="Benchmark format of --data.")
    data: Path = opt(MISSING, "--data", kind="existing-dir", help="Local copy of the benchmark (docs/benchmarks.md).")
    annotations: Path | None = opt(None, "--annotations", kind="existing-path",
                                   help="Dataset JSON file, when not at its usual place under --data.")
    frames: Path | None = opt(None, "--frames", kind="existing-dir",
                              help="DD-VQA: folder of extracted FF++ frames (default DATA/frames).")
    limit: int | None = opt(None, "--limit", range=(1, None), help="Only the first N items.")
    categories: str | None = opt(None, "--categories", help="Comma-separated categories to keep.")
    output: Path | None = opt(None, "-o", "--output", kind="path",
                              help="Write every number, the config and versions to this JSON file.")
    predictions: Path | None = opt(None, "--predictions", kind="path",
                                   help="Write per-item predictions as JSONL (the scan record schema).")
    from_predictions: Path | None = opt(None, "--from-predictions", kind="existing-file",
                                        help="Re-score a predictions file instead of running the model.")
    fit_calibration: Path | None = opt(None, "--fit-calibration", kind="path", metavar="FILE",
                                       help="Fit a calibration on this labelled set (a threshold for --target-fpr "
                                            "and a calibrated P(fake)) and save it for scan/explain --calibration.")
    target_fpr: float = opt(0.01, "--target-fpr", range=(0.0, 0.5), min_open=True,
                            help="With --fit-calibration: the false-positive rate (real images judged fake) the "
                                 "threshold is fitted for.")
    compare_to: str | None = opt(None, "--compare-to", choices=PAPER_ROWS,
                                 help="Paper figures to print beside ours (default: the benchmark's own; "
                                      "folder: none).")
    verdict_from: str = opt("score", "--verdict-from", choices=VERDICT_FROM,
                            help="score: P(fake) >= threshold. text (with --explain): fakevlm's reading of the "
                                 "verdict sentence the model wrote (negations, echoed questions); unreadable "
                                 "text counts as unknown. upstream (with --explain): upstream scripts/eval.py's "
                                 "parse ('real' before 'fake', a random label when neither; see --seed).")
    seed: int = opt(DEFAULT_SEED, "--seed", range=(0, None),
                    help="Seed of the random labels --verdict-from upstream gives answers with neither word "
                         "(default 0, so a run repeats; written in the results and printed).")
    css_model: str | None = opt(None, "--css-model",
                                help="sentence-transformers model for CSS (default: all-MiniLM-L6-v2, offline).")
    text_compare: str = opt("explanation", "--text-compare", choices=("explanation", "whole"),
                            help="With --explain: what ROUGE-L and CSS compare: the explanation (the verdict "
                                 "sentence stripped from answer and references) or the whole answer.")
    rouge: str = opt("rouge-score", "--rouge", choices=("rouge-score", "coco"),
                     help="ROUGE-L implementation: rouge_score's F1, or pycocoevalcap's ROUGE_L (coco: F with "
                          "beta 1.2 on whitespace tokens). The paper names neither.")
    quiet: bool = opt(False, "-q", "--quiet", kind="flag", help="No progress bar or library warnings.")
    force: bool = opt(False, "--force", kind="flag",
                      help="Let -o, --predictions and --fit-calibration overwrite an existing file that fakevlm "
                           "did not write.")


@dataclass(frozen=True)
class EvalRequest:
    args: EvalArgs
    judge: JudgeOptions
    engine: EngineOptions
    cluster: ClusterOptions = ClusterOptions()


# ---- report ---------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ReportArgs:
    results: Path = opt(MISSING, "results", kind="argument", help="JSONL records written by fakevlm.")
    output: Path = opt(MISSING, "-o", "--output", kind="path", metavar="FILE.html", help="The HTML file to write.")
    images_from: Path | None = opt(None, "--images-from", kind="existing-dir", metavar="DIR",
                                   help="Folder that relative paths in the records are relative to (default: the "
                                        "current folder, then the results file's folder).")
    thumbnail_size: int = opt(DEFAULT_THUMBNAIL_SIZE, "--thumbnail-size", range=(0, 1024), metavar="PX",
                              help="Longest side of the embedded thumbnails (0: none).")
    title: str | None = opt(None, "--title", help="Title of the report (default: the results file's name).")
    force: bool = opt(False, "--force", kind="flag",
                      help="Let -o overwrite an existing file that is not a fakevlm report.")


@dataclass(frozen=True)
class ReportRequest:
    args: ReportArgs


# ---- which groups each command takes ----------------------------------------------------------------------------

@dataclass(frozen=True)
class CommandSpec:
    request: type
    groups: tuple[tuple[str, type], ...]  # (request attribute, options dataclass), in --help order
    exclude: frozenset[str] = frozenset()  # options of those groups the command does not offer
    defaults: dict = field(default_factory=dict)  # this command's own defaults (declared nowhere else)
    fixed: dict = field(default_factory=dict)  # values the command sets itself (not options)
    flags: dict = field(default_factory=dict)  # this command's own spelling of an option (a clash with its own)


COMMANDS: dict[str, CommandSpec] = {
    "explain": CommandSpec(
        ExplainRequest, (("args", ExplainArgs), ("judge", JudgeOptions), ("engine", EngineOptions)),
        exclude=frozenset({"explain", "batch_size", "workers", "max_memory"}),
        fixed={"explain": True, "batch_size": 1, "workers": 1},
    ),
    "scan": CommandSpec(
        ScanRequest, (("inputs", ScanInputs), ("outputs", ScanOutputs), ("judge", JudgeOptions),
                      ("engine", EngineOptions), ("cluster", ClusterOptions)),
    ),
    "eval": CommandSpec(
        EvalRequest, (("args", EvalArgs), ("judge", JudgeOptions), ("engine", EngineOptions),
                      ("cluster", ClusterOptions)),
        exclude=frozenset({"max_memory", "trust_anchors"}),  # eval reads no metadata
        defaults={"pixels": "upstream"},  # eval measures what the paper measured: upstream's pixels
        flags={"video_frames": ("--video-frames",), "video_fps": ("--video-fps",)},  # --frames: DD-VQA's folder
    ),
    "report": CommandSpec(ReportRequest, (("args", ReportArgs),)),
}


def declared(command: str) -> list[tuple[str, Any]]:
    """(group attribute, dataclass field) of every option `command` offers, in --help order."""
    spec = COMMANDS[command]
    return [(attr, f) for attr, group in spec.groups for f in fields(group)
            if f.name not in spec.exclude and "flags" in f.metadata]


def flags_of(command: str, f) -> tuple[str, ...]:
    """The flags `command` spells option field `f` with."""
    return COMMANDS[command].flags.get(f.name, f.metadata["flags"])


def default_of(command: str, f) -> Any:
    """The default `command` shows and uses for option field `f`."""
    return COMMANDS[command].defaults.get(f.name, f.default)


def build(command: str, values: dict[str, Any]):
    """The typed request for `command` from parsed option values (by field name); absent ones take defaults."""
    spec = COMMANDS[command]
    parts = {}
    for attr, group in spec.groups:
        kwargs = {}
        for f in fields(group):
            if f.name in spec.fixed:
                kwargs[f.name] = spec.fixed[f.name]
            elif f.name in values and f.name not in spec.exclude:
                parse = f.metadata.get("parse")
                value = values[f.name]
                kwargs[f.name] = parse(value) if parse and value is not None else value
            elif f.name in spec.defaults:
                kwargs[f.name] = spec.defaults[f.name]
        parts[attr] = group(**kwargs)
    return spec.request(**parts)
