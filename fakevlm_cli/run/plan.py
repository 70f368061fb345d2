"""What a run judges and how, decided once by the command: the `Plan` every executor (executor.py) carries out.

A plan is data, frozen and picklable (a Ray run ships it to every task and replica): the judge options, the
engine to load (an `EngineSpec`; None for metadata only), the files the options name as `prepare` read them,
what an earlier run recorded (--resume), where heatmap pictures go, the thumbnail size and whether metadata is
read. What changes while it runs — the sources, the stats, the progress callback — is handed to the executor's
`run`, not kept here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from fakevlm_cli.core.engine_types import HeatmapWriter
from fakevlm_cli.core.options import EngineOptions, JudgeOptions
from fakevlm_cli.run.calibration import Decision

if TYPE_CHECKING:  # pragma: no cover
    from fakevlm_cli.core.engine_types import EngineLike, Preprocessor


@dataclass(frozen=True)
class Prepared:
    """What the judge options name in files, read and checked once, before any model loads."""

    decision: Decision
    trust_anchors: str | None = None  # the PEM text of --trust-anchors


@dataclass(frozen=True)
class EngineSpec:
    """How an executor makes its engine (a Ray replica too) and a Ray CPU task its preprocessing; picklable.

    This is the seam for other inference backends: a vLLM or SGLang engine is another spec whose `load`
    returns an `engine_types.EngineLike` (its `verdicts` / `explain_pixels` over the pixels `load_pixels`
    makes), with `gpus` saying what one replica needs. Nothing else in the pipeline changes.
    """

    options: EngineOptions
    gpus: float = 1.0  # a replica's GPUs, when the cluster has any

    def load(self, notify: Callable[[str], None] | None = None) -> EngineLike:
        """The engine (`run.load_engine`, the tests' seam); its notices (no GPU here, a dtype chosen) go to
        `notify`."""
        from fakevlm_cli import run

        return run.load_engine(self.options, notify=notify)

    def load_pixels(self) -> Preprocessor:
        from fakevlm_cli import run

        return run.load_pixels(self.options)


@dataclass(frozen=True)
class Plan:
    """What to judge and how. `engine` None: metadata only (no model is loaded, torch never imported).

    `prepared`: the files the options name, as `run.prepare` read them (None: the options' threshold alone, no
    trust anchors). `resume` maps files an earlier run recorded (results_file.ResumeIndex) to their hashes.
    `heatmaps` writes heatmap pictures (a `core.engine_types.HeatmapWriter`, outputs/heatmaps.py's
    `HeatmapFolder` in a scan); it is used only with `judge.localise`. `thumbnails` > 0 puts a thumbnail
    of that size on each record (in memory only, for the HTML report). `read_metadata` False judges the pixels
    alone (eval)."""

    judge: JudgeOptions = JudgeOptions()
    engine: EngineSpec | None = None
    prepared: Prepared | None = None
    resume: Mapping[bytes, frozenset] | None = field(default=None, compare=False)
    heatmaps: HeatmapWriter | None = None
    thumbnails: int = 0
    read_metadata: bool = True

    @property
    def decision(self) -> Decision:
        """How P(fake) becomes the model's verdict: the prepared one, else the options' threshold."""
        return self.prepared.decision if self.prepared is not None else Decision(threshold=self.judge.threshold)

    @property
    def trust_anchors(self) -> str | None:
        return self.prepared.trust_anchors if self.prepared is not None else None

    @property
    def heatmap_writer(self) -> HeatmapWriter | None:
        """The heatmap writer when maps are made (--localise), else None."""
        return self.heatmaps if self.judge.localise else None
