"""How a clip's frames become one P(fake): the aggregators compared on toy clips whose truth is known.

    python benchmarks/video_aggregate.py            # about a minute on 2 cores (the toy model is cached)

Clips of 8 frames at 1 frame a second (so `--frames 8` samples each frame once), made of toy images: real
clips, fully fake clips, clips with a manipulated quarter (2 fake frames), and real clips with one spurious
frame (1 fake frame: a glitch a detector should not call a fake video). For each aggregator the share of
clips judged fake at the default threshold 0.5 is printed: a good one says fake for the fully fake and the
quarter-fake clips and real for the others. The toy's per-frame P(fake) is close to 0 or 1, so this measures
how each aggregator treats *how many* frames look fake, which is the choice being made.
"""

from __future__ import annotations

import math
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

AGGREGATORS = {
    "mean": lambda ps: sum(ps) / len(ps),
    "max": max,
    "top quarter mean": lambda ps: _top(ps, math.ceil(len(ps) / 4)),
    "top third mean": lambda ps: _scans(ps),  # what the scan uses: fakevlm_cli.media.video.aggregate
}
KINDS = {"real": 0, "fake": 8, "quarter fake": 2, "one spurious frame": 1}  # fake frames among 8


def _scans(ps):
    from fakevlm_cli.media.video import aggregate

    return aggregate(ps)


def _top(ps, k):
    top = sorted(ps, reverse=True)[: max(1, k)]
    return sum(top) / len(top)


def make_clip(path: Path, seed: int, fake_frames: int) -> None:
    import av

    from fakevlm_cli.testing import toy

    container = av.open(str(path), "w")
    stream = container.add_stream("libx264", rate=1)
    stream.width = stream.height = toy.IMAGE_SIZE
    stream.pix_fmt, stream.options = "yuv420p", {"crf": "10"}
    fakes = set(range(8 - fake_frames, 8))
    for i in range(8):
        image = toy.toy_image(toy.FRESH_SEEDS + 40_000 + seed * 8 + i, fake=i in fakes).image
        for packet in stream.encode(av.VideoFrame.from_image(image)):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)
    container.close()


def main(clips_per_kind: int = 10) -> dict:
    from fakevlm_cli.core.options import EngineOptions, JudgeOptions
    from fakevlm_cli.media.discover import Candidate
    from fakevlm_cli.model.engine import Engine
    from fakevlm_cli.run.pipeline import Scanner
    from fakevlm_cli.testing import toy

    engine = Engine.load(EngineOptions(model=str(toy.cached_toy_fakevlm()), device="cpu", dtype="float32"))
    results: dict = {}
    with tempfile.TemporaryDirectory(prefix="fakevlm-clips-") as tmp:
        folder = Path(tmp)
        for k, (kind, fakes) in enumerate(KINDS.items()):
            paths = []
            for c in range(clips_per_kind):
                path = folder / f"{kind.replace(' ', '_')}_{c}.mp4"
                make_clip(path, k * 1000 + c, fakes)
                paths.append(Candidate(path, explicit=True))
            records = list(Scanner(engine, JudgeOptions(video_frames=8)).run(paths))
            frames = [[f["p_fake"] for f in r.video["sampled"]] for r in records]
            assert all(len(ps) == 8 for ps in frames), "each of the 8 frames sampled once"
            results[kind] = {name: sum(agg(ps) >= 0.5 for ps in frames) / len(frames)
                             for name, agg in AGGREGATORS.items()}
    print(f"share of clips judged fake ({clips_per_kind} clips a kind, 8 frames each, threshold 0.5)")
    print(f"{'aggregator':<18}" + "".join(f"{kind:>22}" for kind in KINDS))
    for name in AGGREGATORS:
        print(f"{name:<18}" + "".join(f"{results[kind][name]:>22.2f}" for kind in KINDS))
    return results


if __name__ == "__main__":
    main()
