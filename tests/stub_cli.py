"""`python tests/stub_cli.py scan …`: the real command line with the stub engine (tests/stub_engine.py), for
tests that need a separate process (signals, kill -9) but not a model. Never imports torch."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import os
import threading

from stub_engine import StubEngine

import fakevlm_cli.run as run


def load_engine(options, *, notify=None):
    if os.environ.get("STUB_SLOW_LOAD"):  # a load that lasts until a signal ends it (Ctrl-C-while-loading tests)
        print("stub: loading", file=sys.stderr, flush=True)
        threading.Event().wait()
    engine = StubEngine()
    engine.asked_for = options
    return engine


run.load_engine = load_engine

from fakevlm_cli.cli import main  # noqa: E402

main()
