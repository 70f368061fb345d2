"""`python tests/stub_cli.py scan …`: the real command line with the stub engine (tests/stub_engine.py), for
tests that need a separate process (signals, kill -9) but not a model. Never imports torch."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from stub_engine import StubEngine  # noqa: E402

import fakevlm_cli.run as run  # noqa: E402

run.load_engine = lambda options, *, notify=None: StubEngine()

from fakevlm_cli.cli import main  # noqa: E402

main()
