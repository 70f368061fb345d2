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
def cli():
    """The command line in this process: `cli("scan", path, "--no-model", input=…)` → Click's Result. Arguments
    are stringified (paths welcome); an exception that escapes the command fails the test rather than hiding in
    the result (catch_exceptions=True to look at it); other keywords go to CliRunner.invoke."""
    from click.testing import CliRunner

    from fakevlm_cli.cli import cli as group

    def invoke(*args, catch_exceptions: bool = False, **kwargs):
        return CliRunner().invoke(group, [str(a) for a in args], catch_exceptions=catch_exceptions, **kwargs)

    return invoke


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """Directory of a tiny random LLaVA saved with save_pretrained (loaded like the real model)."""
    from fakevlm_cli.testing.synthetic import build_tiny_llava

    return build_tiny_llava(tmp_path_factory.mktemp("tiny-llava"))


@pytest.fixture(scope="session")
def toy_model() -> Path:
    """Directory of the toy FakeVLM: a tiny LLaVA trained on synthetic images whose answers are known.

    Trained once (about 25 s on two idle cores) and cached in $FAKEVLM_TOY_CACHE or ~/.cache/fakevlm/toy-<key>.
    """
    from fakevlm_cli.testing.toy import cached_toy_fakevlm

    return cached_toy_fakevlm()


@pytest.fixture(scope="session")
def toy_engine(toy_model):
    """The toy FakeVLM loaded as users load a checkpoint: it states a verdict, and the right one on toy images."""
    from fakevlm_cli.core.options import EngineOptions
    from fakevlm_cli.model.engine import Engine

    return Engine.load(EngineOptions(model=str(toy_model), device="cpu", dtype="float32"))


@pytest.fixture(scope="session")
def engine(tiny_model):
    from fakevlm_cli.core.options import EngineOptions
    from fakevlm_cli.model.engine import Engine

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


@pytest.fixture(scope="session")
def s3_server():
    """An S3-compatible server on localhost (moto's server mode), found by boto3/s3fs through AWS_ENDPOINT_URL,
    as a real deployment's would be (the libraries' own environment, never fakevlm options). Yields a boto3
    client; tests make their own buckets."""
    import logging

    pytest.importorskip("s3fs")
    moto_server = pytest.importorskip("moto.server")
    import boto3

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no request log on the test's stderr
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    env = {"AWS_ENDPOINT_URL": f"http://{host}:{port}", "AWS_ACCESS_KEY_ID": "testing",
           "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
    saved = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    try:
        yield boto3.client("s3")
    finally:
        server.stop()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture(scope="session")
def ray_cluster(s3_server):
    """One local Ray (2 CPUs) for the whole session: `--ray` finds it initialised and uses it, so each test
    pays for its replicas, not for a cluster. Started after the S3 server, so its workers see the endpoint;
    the tests folder is on their path (tests/ray_faults.py)."""
    ray = pytest.importorskip("ray")
    tests = str(Path(__file__).resolve().parent)
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (tests, os.environ.get("PYTHONPATH")) if p)
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    try:
        yield ray
    finally:
        ray.shutdown()
