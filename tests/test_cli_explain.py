"""`fakevlm explain`, `--help`, `--version` through CliRunner and subprocesses."""

import json
import subprocess
import sys

import jsonschema
import pytest
from click.testing import CliRunner

from fakevlm_cli import __version__
from fakevlm_cli.cli import cli
from fakevlm_cli.record import load_schema


@pytest.fixture
def run():
    def invoke(*args):
        return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)

    return invoke


def test_explain_panel(run, tiny_model, photo):
    result = run("explain", photo, "--model", tiny_model, "--device", "cpu", "--max-new-tokens", "6")
    assert result.exit_code in (0, 1)
    out = result.output
    assert "Verdict:" in out and "P(fake):" in out and "%" in out
    assert "photo.jpg" in out and str(tiny_model)[-20:] in out.replace("\n", "")
    assert ("REAL" in out) != ("FAKE" in out)
    assert result.exit_code == (1 if "FAKE" in out else 0)  # exit code follows the verdict


def test_explain_json_follows_record_schema(run, tiny_model, photo):
    result = run("explain", photo, "--model", tiny_model, "--device", "cpu", "--max-new-tokens", "6", "--json")
    record = json.loads(result.stdout)
    jsonschema.validate(record, load_schema())
    assert record["path"].endswith("photo.jpg")
    assert 0 <= record["p_fake"] <= 1
    assert record["verdict"] == record["model_verdict"] == ("fake" if record["p_fake"] >= 0.5 else "real")
    assert record["explanation"] is not None and record["text_verdict"] in ("real", "fake", "unknown")
    assert record["model"]["id"] == str(tiny_model) and record["model"]["dtype"] == "float32"
    assert len(record["sha256"]) == 64 and record["format"] == "JPEG"


def test_explain_threshold_changes_verdict(run, tiny_model, photo):
    low = json.loads(run("explain", photo, "-m", tiny_model, "--max-new-tokens", "1", "--json",
                         "--threshold", "0").stdout)
    high = json.loads(run("explain", photo, "-m", tiny_model, "--max-new-tokens", "1", "--json",
                          "--threshold", "1").stdout)
    assert low["verdict"] == "fake" and (high["verdict"] == "real" or high["p_fake"] == 1.0)


def test_explain_missing_image(run, tiny_model, tmp_path):
    result = run("explain", tmp_path / "nope.jpg", "--model", tiny_model)
    assert result.exit_code == 2
    assert result.stderr.strip() == f"fakevlm: error: {tmp_path / 'nope.jpg'}: no such file"


def test_explain_non_image(run, tiny_model, tmp_path):
    fake_jpg = tmp_path / "notes.jpg"
    fake_jpg.write_text("not a picture")
    result = run("explain", fake_jpg, "--model", tiny_model)
    assert result.exit_code == 2
    assert "notes.jpg" in result.stderr and "not an image" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_explain_truncated_image(run, tiny_model, tmp_path):
    from conftest import noise_image

    path = tmp_path / "cut.png"
    noise_image(3, (128, 128)).save(path)
    path.write_bytes(path.read_bytes()[:300])
    result = run("explain", path, "--model", tiny_model)
    assert result.exit_code == 2 and "cut.png" in result.stderr
    assert "truncated" in result.stderr or "corrupt" in result.stderr


def test_explain_missing_model_directory(run, tmp_path, photo):
    result = run("explain", photo, "--model", tmp_path / "models" / "fakevlm")
    assert result.exit_code == 2
    assert result.stderr.strip() == f"fakevlm: error: model directory '{tmp_path / 'models' / 'fakevlm'}' does not exist"


def test_model_from_environment(tiny_model, photo, monkeypatch):
    monkeypatch.setenv("FAKEVLM_MODEL", str(tiny_model))
    result = CliRunner().invoke(cli, ["explain", str(photo), "--json", "--max-new-tokens", "1"])
    assert json.loads(result.stdout)["model"]["id"] == str(tiny_model)


def test_version(run):
    result = run("--version")
    assert result.exit_code == 0 and __version__ in result.output


def _python(code: str) -> str:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout


def test_help_does_not_import_torch_or_transformers():
    code = ("import sys\nfrom fakevlm_cli.cli import main\nsys.argv=['fakevlm','--help']\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\n"
            "print('LOADED', [m for m in ('torch', 'transformers') if m in sys.modules])")
    out = _python(code)
    assert "Usage: fakevlm" in out
    assert "LOADED []" in out


def test_python_dash_m_works():
    out = subprocess.run([sys.executable, "-m", "fakevlm_cli", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and __version__ in out.stdout


def test_prompt_and_answer_prefix_accept_a_written_newline(tiny_model, photo):
    from fakevlm_cli.cli import load_engine

    engine = load_engine(str(tiny_model), None, None, "cpu", "float32", "none",
                         "<image>Does the person's nose look real/fake?", "\\nThe nose looks", quiet=True)
    assert engine.answer_prefix == "\nThe nose looks"
    result = CliRunner().invoke(cli, ["explain", str(photo), "-m", str(tiny_model), "--json", "--max-new-tokens",
                                      "3", "--answer-prefix", "\\nThe nose looks"])
    assert json.loads(result.stdout)["explanation"] is not None
