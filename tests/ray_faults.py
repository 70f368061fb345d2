"""An engine spec whose replica dies the first time it is handed a batch (as one killed by the OOM killer or a
lost node would), for tests/test_ray.py. Imported by Ray's worker processes: the session's Ray has this folder
on its path (conftest.ray_cluster)."""

from __future__ import annotations

import os
from dataclasses import dataclass

from fakevlm_cli.run.plan import EngineSpec


@dataclass(frozen=True)
class DiesOnceSpec(EngineSpec):
    marker: str = ""  # a file: created by the replica that dies, so only the first one does

    def load(self, notify=None):
        return _DiesOnce(super().load(notify), self.marker)


class _DiesOnce:
    def __init__(self, engine, marker: str):
        self.engine, self.marker = engine, marker

    def __getattr__(self, name):
        return getattr(self.engine, name)

    def verdicts(self, pixels):
        try:
            os.close(os.open(self.marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            return self.engine.verdicts(pixels)
        os._exit(137)  # the whole worker process, mid-batch, with no chance to clean up
