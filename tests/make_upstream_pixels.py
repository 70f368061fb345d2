"""Pin the pixels the upstream FakeVLM evaluation fed the model, for tests/test_fidelity.py.

Run under the upstream stack, not the project's environment:

    pip install --target /tmp/t445 --no-deps transformers==4.45.2 tokenizers==0.20.3 huggingface_hub==0.25.2
    PYTHONPATH=/tmp/t445 python tests/make_upstream_pixels.py ../shared/models/llava-1.5-processor-replica

It does what opendatalab/FakeVLM `scripts/eval.py` does to an image — `Image.open(path)` handed to the
llava-1.5 processor (CLIPImageProcessor: convert_to_rgb, resize shortest edge 336 bicubic, centre crop,
rescale, normalise) — and writes the sha256 of each case's float32 pixel values to
tests/data/upstream_pixels.json, with the decoded-input digest that guards against codec drift.
"""

import hashlib
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import transformers
from PIL import Image
from transformers import AutoProcessor

sys.path.insert(0, str(Path(__file__).resolve().parent))
from upstream_cases import decoded_digest, write_cases


def main(processor_dir: str) -> None:
    processor = AutoProcessor.from_pretrained(processor_dir)
    cases = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, path in write_cases(Path(tmp)).items():
            image = Image.open(path)
            pixels = processor.image_processor(images=image, return_tensors="np")["pixel_values"][0]
            pixels = np.ascontiguousarray(pixels, dtype=np.float32)
            cases[name] = {"decoded": decoded_digest(path), "shape": list(pixels.shape),
                           "pixels_sha256": hashlib.sha256(pixels.tobytes()).hexdigest()}
    out = Path(__file__).resolve().parent / "data" / "upstream_pixels.json"
    doc = {"made_with": {"transformers": transformers.__version__, "pillow": Image.__version__,
                         "processor": "llava-1.5 processor replica (CLIPImageProcessor, 336 px)"},
           "cases": cases}
    out.write_text(json.dumps(doc, indent=1) + "\n")
    print(f"wrote {len(cases)} cases to {out}")


if __name__ == "__main__":
    main(sys.argv[1])
