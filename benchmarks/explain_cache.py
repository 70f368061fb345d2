"""Explain on a GPU: which KV cache decodes fastest. `python benchmarks/explain_cache.py OUT.json [--arch ...]`.

Runs `Engine.explain` (256 new tokens, every answer made that long) at batch 8 and 16 with three decodes, in
paired rounds (`measure.paired_rounds`: each round runs every variant back to back, the order rotating): a
dynamic cache (transformers' default), the static cache fakevlm uses on the CPU, and the static cache with
`--compile`. The first call of each variant and batch size is timed apart (for `--compile`, that is the
compilation) and written at once, so a run cut short still says that much.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

VARIANTS = ("dynamic", "static", "static+compile")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("out", type=Path)
    p.add_argument("--arch", default="llava-1.5-7b")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--batches", default="8,16")
    p.add_argument("--tokens", type=int, default=256)
    a = p.parse_args()
    import torch

    from benchmarks import context, measure, models
    from fakevlm_cli.model import engine as engine_module

    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = "bfloat16" if device == "cuda" else "float32"
    built = models.build(a.arch, device, dtype, Path(tempfile.mkdtemp()), max_new_tokens=a.tokens)
    engine = built.engine
    models.equal_lengths(engine, a.tokens)
    batches = [int(b) for b in a.batches.split(",")]
    images = context.make_images(max(batches))
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)

    def call(variant: str, batch: int):
        engine_module.STATIC_CACHE_FROM = 10**9 if variant == "dynamic" else 32
        engine.compile_decode = variant == "static+compile"
        sync()
        start = time.perf_counter()
        answers = engine.explain(images[:batch], a.tokens)
        sync()
        return time.perf_counter() - start, [x.text for x in answers]

    out: dict = {"arch": a.arch, "device": torch.cuda.get_device_name() if device == "cuda" else "cpu",
                 "dtype": dtype, "tokens": a.tokens, "versions": {"torch": torch.__version__},
                 "first_call_s": {}, "rounds": [], "same_text_as_dynamic": {}}
    import transformers

    out["versions"]["transformers"] = transformers.__version__
    texts: dict = {}
    for batch in batches:
        for variant in VARIANTS:
            seconds, texts[(variant, batch)] = call(variant, batch)
            out["first_call_s"][f"{variant}/{batch}"] = seconds
            print(f"first call {variant}/{batch}: {seconds:.1f} s", flush=True)
        for variant in VARIANTS[1:]:
            same = sum(x == y for x, y in zip(texts[(variant, batch)], texts[("dynamic", batch)], strict=True))
            out["same_text_as_dynamic"][f"{variant}/{batch}"] = f"{same}/{batch}"
    a.out.write_text(json.dumps(out, indent=1))
    sides = {f"{variant}/{batch}": (lambda v=variant, b=batch: (call(v, b), b)[1])
             for batch in batches for variant in VARIANTS}
    rounds = measure.paired_rounds(sides, a.rounds, sync=measure.cuda_sync_for(device),
                                   log=lambda text: print(text, flush=True))
    out["rounds"] = rounds
    out["summary"] = {name: {"images_per_s": measure.rate(rounds, name)["median"],
                             "vs_dynamic": measure.ratio(rounds, name, f"dynamic/{name.split('/')[1]}")}
                      for name in sides}
    for name, row in out["summary"].items():
        spread = row["vs_dynamic"]
        print(f"{name}: {row['images_per_s']:.2f} img/s, {spread['median']:.2f}x dynamic "
              f"({spread['min']:.2f}-{spread['max']:.2f})", flush=True)
    a.out.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
