"""Smoke test of the benchmark harness (benchmarks/): its pieces run and return the right shapes.

No timing is asserted anywhere: numbers belong to `python benchmarks/run.py`, not to the test suite.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # benchmarks/ is a folder of the repository, not part of the installed package
    sys.path.insert(0, str(REPO))


@pytest.mark.slow
def test_benchmark_pieces_run(engine, tmp_path):
    from benchmarks import baseline, context, files, measure, models, run
    from fakevlm_cli.evidence import collect

    images = context.make_images(2)

    # The upstream loop re-created: 1,024 padded ids whose one <image> the model expands, greedy generate,
    # the first-then-second-sentence parse.
    result = baseline.upstream_eval_loop(engine.model, engine.processor, images, max_new_tokens=4)
    assert len(result.texts) == 2 and len(result.labels) == 2
    assert set(result.labels) <= {0, 1}
    assert result.prompt_tokens == baseline.UPSTREAM_MAX_LENGTH + engine.model.config.image_seq_length - 1
    assert result.new_tokens and 1 <= max(result.new_tokens) <= 4
    assert engine.processor.tokenizer.padding_side == "left"  # the shared processor is left as it was

    # Our score path on the same images (forced answer start: random weights state no verdict of their own).
    from fakevlm_cli.model.engine import Engine

    forced = Engine(engine.model, engine.processor, info=engine.info, codec=engine.codec,
                    answer_prefix=models.RANDOM_PREFIX)
    probs = forced.score(images)
    assert len(probs) == 2 and all(0.0 <= p <= 1.0 for p in probs)

    # The metadata folder generator: N files, the four kinds, readable by the package's own readers.
    made = files.make_metadata_folder(tmp_path / "meta", 5)
    written = sorted(p for p in (tmp_path / "meta").rglob("*") if p.is_file())
    assert made["files"] == 5 and len(written) == 5
    assert {p.suffix for p in written} == {".jpg", ".png"}
    camera = next(p for p in written if "camera" in p.name)
    assert collect(camera, camera.read_bytes(), "JPEG").exif.get("make") == "Canon"
    a1111 = next(p for p in written if "a1111" in p.name)
    assert any(e.to_dict().get("signal") == "ai_generated"
               for e in collect(a1111, a1111.read_bytes(), "PNG").items)

    # The upstream parse, defects included: "real" before "fake", the second sentence, then a coin toss.
    import random

    rng = random.Random(0)
    assert baseline.upstream_parse("Does it? This is not real. Fake.", rng) == 1
    assert baseline.upstream_parse("Hmm. This is a fake image.", rng) == 0
    assert baseline.upstream_parse("Hmm. Fake, not real.", rng) == 1  # the second sentence; "real" checked first

    # Paired rounds: every side once a round, ratios per round with their spread.
    counts = iter(range(100))
    rounds = measure.paired_rounds({"a": lambda: 4, "b": lambda: {"items": 2, "wall_s": 1.0, "cpu_s": 0.5,
                                                                   "n": next(counts)}}, 3)
    assert [len(rounds["a"]), len(rounds["b"])] == [3, 3] and rounds["b"][0]["wall_s"] == 1.0
    r = measure.ratio(rounds, "a", "b")
    assert r["min"] <= r["median"] <= r["max"] and len(r["rounds"]) == 3

    # The command line parses (every row has its function), and the table renders.
    assert set(run.ROWS) == {"score", "explain", "scan", "memory", "startup", "metadata"}
    args = run.parse_args(["--quick", "--skip", "memory,startup"])
    assert args.skip_set == {"memory", "startup"} and args.n_files == run.DEFAULTS["quick"]["n_files"]
    table = run.render_table([["score", "ours images/s, batch 8", "1.0", "2.0", "0.50x", "", ""]])
    assert table.splitlines()[0].split()[:2] == ["row", "measure"] and "batch 8" in table


@pytest.mark.slow
@pytest.mark.video
def test_video_aggregate_benchmark_picks_apart_the_aggregators(capsys):
    """One toy clip of each kind: the aggregator the scan uses is the one that tells all four apart."""
    from benchmarks import video_aggregate

    results = video_aggregate.main(clips_per_kind=1)
    assert results["real"]["top third mean"] == 0 and results["fake"]["top third mean"] == 1
    assert results["quarter fake"] == {"mean": 0, "max": 1, "top quarter mean": 1, "top third mean": 1}
    assert results["one spurious frame"] == {"mean": 0, "max": 1, "top quarter mean": 1, "top third mean": 0}
    assert "top third mean" in capsys.readouterr().out


def test_markdown_table_of_two_runs(tmp_path, capsys):
    """docs/performance.md's table is printed from results files; a second run adds its ratio column."""
    from benchmarks import markdown

    row = {"row": "score", "measure": "ours | batch 8", "ours": "79.5", "baseline": "6.10", "ratio": "13.1x",
           "target": ">= 1.6x", "status": "MET"}
    runs = []
    for i, ratio in enumerate(("13.1x", "12.7x")):
        path = tmp_path / f"r{i}.json"
        path.write_text(json.dumps({"table": [dict(row, ratio=ratio)]}))
        runs.append(str(path))
    assert markdown.main(runs) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].count("|") == 8 and "ratio, run 2" in lines[0]
    assert lines[2] == "| score | ours \\| batch 8 | 79.5 | 6.10 | 13.1x | 12.7x | >= 1.6x MET |"
