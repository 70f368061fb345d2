"""A stand-in engine for command-line tests, like `llm`'s MockModel: no torch, instant, predictable.

P(fake) is the image's mean red level (0–1), so a test picks a verdict by the colour it paints; explain writes
FakeVLM's sentence for that verdict; its relevance map (`--localise`) is hot in the top-left corner of a red
image. `install(monkeypatch)` makes `fakevlm_cli.run.load_engine` hand it out;
`tests/stub_cli.py` does the same for a subprocess (signal tests). The real engine is tested on the tiny
random LLaVA (plumbing) and the toy FakeVLM (right answers).
"""

from __future__ import annotations

import os
import sys
import threading
from dataclasses import replace

from fakevlm_cli.core.engine_types import Answer, ModelInfo

_INFO = ModelInfo(id="stub", revision=None, dtype="float32", quant="none", device="cpu", processor="stub",
                  prompt="<image>Does the image looks real/fake?", prompt_ids_from="tokenizer.json")


class StubEngine:
    verdict_steps = 16

    @property
    def info(self) -> ModelInfo:
        """As the real engine: its records name the model it was asked for (--resume compares them)."""
        return replace(_INFO, id=self.asked_for.model) if self.asked_for is not None else _INFO

    def __init__(self):
        self.notices: list[str] = []
        self.batches: list[int] = []  # sizes of the batches it was called with
        self.asked_for = None  # the EngineOptions it was loaded with

    def preprocess(self, image):
        from PIL import ImageStat

        return ImageStat.Stat(image.convert("RGB")).mean[0] / 255.0

    def verdicts(self, pixels):
        self.batches.append(len(pixels))
        if os.environ.get("STUB_SLOW_JUDGE"):  # a first batch that lasts until a signal ends the run
            print("stub: judging", file=sys.stderr, flush=True)
            threading.Event().wait()
        if os.environ.get("STUB_SAY_JUDGED"):  # lets a test in another process keep in step, without sleeping
            print(f"stub: judged {len(pixels)}", file=sys.stderr, flush=True)
        return [Answer(p_fake=p, verdict_step=0) for p in pixels]

    def explain_pixels(self, pixels, max_new_tokens=256):
        self.batches.append(len(pixels))
        answers = []
        for p in pixels:
            verdict = "fake" if p >= 0.5 else "real"
            text = f"This is a {verdict} image. The red channel is at {p:.0%}."
            answers.append(Answer(p_fake=p, verdict_step=0, lead_in="", text=text,
                                  verdict_sentence=f"This is a {verdict} image.",
                                  explanation=f"The red channel is at {p:.0%}.", text_verdict=verdict))
        return answers

    @property
    def view(self):
        from fakevlm_cli.model.localise import View

        return View(shortest_edge=None, crop_width=None, crop_height=None)  # the whole image, as it is

    def relevance(self, pixels, answers, method, chunk=8):
        """A 4 × 4 map, hottest in the top-left cell for a red image and the bottom-right one otherwise."""
        if os.environ.get("STUB_MAP_FAILS"):
            raise RuntimeError("no map today")
        maps = []
        for p in pixels:
            grid = [[0.0] * 4 for _ in range(4)]
            if p >= 0.5:
                grid[0][0] = 1.0
            else:
                grid[3][3] = 1.0
            maps.append(grid)
        return maps

    def sharing_cpu(self, loader_threads):
        import contextlib

        return contextlib.nullcontext()

    def free_memory(self) -> None:
        pass


def install(monkeypatch, on_load=None) -> StubEngine:
    """Make every command load this stub instead of a model; `on_load()` runs at load time."""
    from fakevlm_cli import run

    engine = StubEngine()

    def load_engine(options, *, notify=None):
        if on_load is not None:
            on_load()
        engine.asked_for = options
        return engine

    monkeypatch.setattr(run, "load_engine", load_engine)
    return engine
