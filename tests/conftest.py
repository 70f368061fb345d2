"""Shared fixtures: a tiny random LLaVA built once per session, a trained toy FakeVLM (cached), small images."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Tests never touch the network: a fallback to the hub must fail fast, not hang.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
os.environ.pop("FAKEVLM_MODEL", None)

SHARED = Path(os.environ.get("FAKEVLM_SHARED") or Path(__file__).resolve().parents[2] / "shared")
CORPUS = Path(os.environ.get("FAKEVLM_CORPUS") or SHARED / "corpus")


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """Directory of a tiny random LLaVA saved with save_pretrained (loaded like the real model)."""
    from fakevlm_cli.synthetic import build_tiny_llava

    return build_tiny_llava(tmp_path_factory.mktemp("tiny-llava"))


@pytest.fixture(scope="session")
def toy_model() -> Path:
    """Directory of the toy FakeVLM: a tiny LLaVA trained on synthetic images whose answers are known.

    Trained once (about 25 s on two idle cores) and cached in $FAKEVLM_TOY_CACHE or ~/.cache/fakevlm/toy-<key>.
    """
    from fakevlm_cli.toy import cached_toy_fakevlm

    return cached_toy_fakevlm()


@pytest.fixture(scope="session")
def toy_engine(toy_model):
    """The toy FakeVLM loaded as users load a checkpoint: it states a verdict, and the right one on toy images."""
    from fakevlm_cli.engine import Engine
    from fakevlm_cli.options import EngineOptions

    return Engine.load(EngineOptions(model=str(toy_model), device="cpu", dtype="float32"))


@pytest.fixture(scope="session")
def engine(tiny_model):
    from fakevlm_cli.engine import Engine
    from fakevlm_cli.options import EngineOptions

    return Engine.load(EngineOptions(model=str(tiny_model), device="cpu", dtype="float32"))


def noise_image(seed: int, size=(64, 48)):
    """A deterministic random RGB image (different seeds give different model inputs)."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8), "RGB")


@pytest.fixture
def photo(tmp_path) -> Path:
    path = tmp_path / "photo.jpg"
    noise_image(1).save(path, "JPEG", quality=90)
    return path
