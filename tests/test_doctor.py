"""`fakevlm doctor`: what it finds on this machine, a missing library, and where the weights are."""

from __future__ import annotations

import sys

import pytest
import torch


def lines(result) -> dict[str, str]:
    """The check lines by what they are about (the word after the level)."""
    found = {}
    for line in result.stdout.splitlines():
        level, _, text = line.partition(" ")
        if level in ("ok", "note", "warn", "fail"):
            found[text.strip().split(":")[0].split(" ")[0]] = f"{level} {text.strip()}"
    return found


def test_ready_with_a_local_checkpoint(cli, toy_model):
    result = cli("doctor", "-m", toy_model)
    assert result.exit_code == 0, result.stdout
    found = lines(result)
    assert found["torch"] == f"ok torch {torch.__version__}"
    assert found["weights"] == f"ok weights: {toy_model} (a local folder)"
    want = "ok device: " if torch.cuda.is_available() else "warn device: CPU, float32 — no CUDA GPU"
    assert found["device"].startswith(want)
    assert result.stdout.splitlines()[-1].startswith("ready: ")


def test_a_missing_library_is_a_failure_that_says_what_to_install(cli, toy_model, monkeypatch):
    monkeypatch.setitem(sys.modules, "transformers", None)  # importing it now raises ImportError
    result = cli("doctor", "-m", toy_model)
    assert result.exit_code == 1
    assert lines(result)["transformers"] == "fail transformers: not installed: pip install 'transformers>=5,<6'"
    assert result.stdout.splitlines()[-1].startswith("not ready: 1 problem above")


def test_weights_neither_cached_nor_reachable_offline(cli, tmp_path, monkeypatch):
    huggingface_hub = pytest.importorskip("huggingface_hub")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    result = cli("doctor", "-m", "someone/weights")
    assert result.exit_code == 1
    assert lines(result)["weights"].startswith("fail weights: someone/weights is not in the cache")
    assert "HF_HUB_OFFLINE is set" in lines(result)["weights"]
    # the same id, cached: found, ready
    snapshot = tmp_path / "models--someone--weights" / "snapshots" / "abc123"
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text("{}")
    (tmp_path / "models--someone--weights" / "refs").mkdir()
    (tmp_path / "models--someone--weights" / "refs" / "main").write_text("abc123")
    result = cli("doctor", "-m", "someone/weights")
    assert lines(result)["weights"].startswith("ok weights: someone/weights in the Hugging Face cache")
    assert result.exit_code == 0


def test_a_folder_that_is_no_checkpoint_fails(cli, tmp_path):
    result = cli("doctor", "-m", tmp_path)
    assert result.exit_code == 1
    want = f"fail weights: {tmp_path} (a local folder with no config.json: not a checkpoint)"
    assert lines(result)["weights"] == want
