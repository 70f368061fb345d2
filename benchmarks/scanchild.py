"""One scan in a fresh process, for the ``scan`` row: `python scanchild.py SPEC_JSON` prints one JSON line.

It imports `fakevlm_cli` from whatever tree PYTHONPATH names (this checkout, or the previous code checked
out beside it), loads the benchmark checkpoint with the answer start forced (random weights state no
verdict), scans the folder through `run.predict` with the CLI's default options (plus --fast-decode when
asked), writes the P(fake) values to the spec's output file, and reports the scan's own wall and CPU time
(model load and imports excluded, so both trees are timed on the same work).
"""

import json
import sys
import time


def main() -> None:
    spec = json.loads(sys.argv[1])
    import torch  # noqa: F401 - imported before the clock starts, as the model is loaded before it

    try:  # the package grouped in layer folders
        from fakevlm_cli.core.options import EngineOptions, JudgeOptions
        from fakevlm_cli.media.discover import discover
        from fakevlm_cli.model.engine import Engine
        from fakevlm_cli.run import predict
    except ImportError:  # a baseline from before the regrouping (flat modules)
        from fakevlm_cli.discover import discover  # type: ignore[no-redef]
        from fakevlm_cli.engine import Engine  # type: ignore[no-redef]
        from fakevlm_cli.options import EngineOptions, JudgeOptions  # type: ignore[no-redef]
        from fakevlm_cli.run import predict

    engine = Engine.load(EngineOptions(model=spec["checkpoint"], device="cpu", dtype="float32",
                                       answer_prefix="\nThis is a"))
    options = JudgeOptions(**spec.get("options", {}))
    wall0, cpu0 = time.perf_counter(), time.process_time()
    records = list(predict(discover([spec["folder"]]), options, engine))
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    with open(spec["out"], "w") as fh:
        json.dump({r.path: r.p_fake for r in records}, fh)
    print(json.dumps({"items": len(records), "wall_s": wall, "cpu_s": cpu,
                      "errors": sum(r.verdict == "error" for r in records)}))


if __name__ == "__main__":
    main()
