"""`fakevlm explain`, `--help`, `--version` through CliRunner and subprocesses."""

import json
import subprocess
import sys

import jsonschema
import pytest

from fakevlm_cli import __version__
from fakevlm_cli.core.record import load_schema


@pytest.fixture(scope="module")
def toy_files(tmp_path_factory):
    """A fake and a real toy image saved as PNG: the toy FakeVLM's right answers are known."""
    from fakevlm_cli.testing import toy

    folder = tmp_path_factory.mktemp("toy-files")
    fake, real = toy.toy_image(toy.FRESH_SEEDS + 101, True), toy.toy_image(toy.FRESH_SEEDS + 102, False)
    fake.image.save(folder / "fake.png")
    real.image.save(folder / "real.png")
    return {"fake": folder / "fake.png", "real": folder / "real.png", "region": fake.region}


@pytest.mark.slow
def test_explain_panel_shows_the_models_answer(cli, toy_model, toy_files):
    result = cli("explain", toy_files["fake"], "--model", toy_model, "--device", "cpu")
    out = " ".join(result.output.replace("│", " ").split())  # the panel wraps lines inside its border
    assert result.exit_code == 1  # fake
    assert "Verdict: FAKE" in out and "P(fake):" in out and "%" in out
    assert "This is a fake image." in out and f"in the {toy_files['region']} of the image" in out
    assert "fake.png" in out and str(toy_model)[-20:] in out.replace(" ", "")
    result = cli("explain", toy_files["real"], "--model", toy_model, "--device", "cpu")
    assert result.exit_code == 0 and "Verdict: REAL" in result.output and "This is a real image." in result.output


def test_explain_json_follows_record_schema(cli, toy_model, toy_files):
    result = cli("explain", toy_files["fake"], "--model", toy_model, "--device", "cpu", "--json")
    record = json.loads(result.stdout)
    jsonschema.validate(record, load_schema())
    assert record["path"].endswith("fake.png")
    assert record["p_fake"] > 0.9
    assert record["verdict"] == record["model_verdict"] == record["text_verdict"] == "fake"
    assert record["answer"].startswith("This is a fake image.") and record["lead_in"] in ("", "ASSISTANT:")
    assert toy_files["region"] in record["explanation"]
    model = record["model"]
    assert model["id"] == str(toy_model) and model["dtype"] == "float32" and model["pixels"] == "viewer"
    assert model["processor"] == str(toy_model) and model["prompt_ids_from"] == "tokenizer.json"
    assert len(record["sha256"]) == 64 and record["format"] == "PNG"


def test_explain_threshold_changes_verdict(cli, toy_model, toy_files):
    low = json.loads(cli("explain", toy_files["real"], "-m", toy_model, "--json", "--threshold", "0").stdout)
    high = json.loads(cli("explain", toy_files["fake"], "-m", toy_model, "--json", "--threshold", "1").stdout)
    assert low["verdict"] == "fake" and low["text_verdict"] == "real"  # the threshold decides, the text is kept
    assert high["verdict"] == "real" or high["p_fake"] == 1.0


def test_explain_missing_image(cli, tiny_model, tmp_path):
    result = cli("explain", tmp_path / "nope.jpg", "--model", tiny_model)
    assert result.exit_code == 2
    assert result.stderr.strip() == f"fakevlm: error: {tmp_path / 'nope.jpg'}: no such file"


def test_explain_non_image(cli, tiny_model, tmp_path):
    fake_jpg = tmp_path / "notes.jpg"
    fake_jpg.write_text("not a picture")
    result = cli("explain", fake_jpg, "--model", tiny_model)
    assert result.exit_code == 2
    assert "notes.jpg" in result.stderr and "not an image" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_explain_truncated_image(cli, tiny_model, tmp_path):
    from conftest import noise_image

    path = tmp_path / "cut.png"
    noise_image(3, (128, 128)).save(path)
    path.write_bytes(path.read_bytes()[:300])
    result = cli("explain", path, "--model", tiny_model)
    assert result.exit_code == 2 and "cut.png" in result.stderr
    assert "truncated" in result.stderr or "corrupt" in result.stderr


def test_explain_missing_model_directory(cli, tmp_path, photo):
    result = cli("explain", photo, "--model", tmp_path / "models" / "fakevlm")
    assert result.exit_code == 2
    missing = tmp_path / "models" / "fakevlm"
    assert result.stderr.strip() == f"fakevlm: error: model directory '{missing}' does not exist"


def test_model_from_environment(cli, tiny_model, photo, monkeypatch):
    monkeypatch.setenv("FAKEVLM_MODEL", str(tiny_model))
    result = cli("explain", photo, "--json", "--max-new-tokens", "1")
    record = json.loads(result.stdout)
    assert record["model"]["id"] == str(tiny_model)
    # a random model writes no verdict: P(fake) is null and the verdict unknown, never a guess
    assert record["p_fake"] is None and record["verdict"] == "unknown" and result.exit_code == 0
    assert any("stated no verdict" in n for n in record["notes"])


def test_version(cli):
    result = cli("--version")
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


def test_prompt_and_answer_prefix_accept_a_written_newline(cli, tiny_model, photo):
    from fakevlm_cli.core.options import build

    request = build("explain", {"image": photo, "model": str(tiny_model), "device": "cpu",
                                "prompt": "<image>Does the person's nose look real/fake?",
                                "answer_prefix": "\\nThe nose looks"})
    assert request.engine.answer_prefix == "\nThe nose looks" and request.engine.prompt.endswith("real/fake?")
    result = cli("explain", photo, "-m", tiny_model, "--json", "--max-new-tokens", "3", "--answer-prefix",
                 "\\nThe nose looks")
    record = json.loads(result.stdout)
    assert record["model"]["answer_prefix"] == "\nThe nose looks"
    assert 0 <= record["p_fake"] <= 1  # forced: read at the next token even from a random model
    assert record["answer"].startswith("The nose looks")


def test_a_file_whose_pixels_fail_but_whose_metadata_decides_gets_that_verdict_as_in_a_scan(cli, tmp_path):
    """A truncated Stable Diffusion PNG: `scan` calls it fake on its parameters chunk, so `explain` must too
    (it said "error", exit 2), with the reason the pixels were not judged; no model is loaded for it. A broken
    file with nothing decisive stays an error."""
    import factories as f

    data = f.a1111_png(tmp_path / "sd.png").read_bytes()
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(data[:data.find(b"IDAT") + 40])
    result = cli("explain", truncated, "--json", "-m", tmp_path / "never-loaded")
    assert result.exit_code == 1, result.stderr
    record = json.loads(result.stdout)
    jsonschema.validate(record, load_schema())
    assert record["verdict"] == "fake" and record["p_fake"] is None and record["model"] is None
    assert any(n.startswith("pixels not judged (truncated PNG") for n in record["notes"])
    panel = cli("explain", truncated, "-m", tmp_path / "never-loaded")
    text = " ".join(panel.output.replace("│", " ").split())
    assert "Verdict: FAKE" in text and "pixels not judged" in text and "metadata only" in text
    plain = tmp_path / "plain.png"
    plain.write_bytes(data[:data.find(b"IDAT") + 40].replace(b"parameters", b"parameterz"))
    result = cli("explain", plain, "-m", tmp_path / "never-loaded")
    assert result.exit_code == 2 and result.stderr.startswith(f"fakevlm: error: {plain}: ")


def test_explain_on_a_folder_is_one_line_pointing_at_scan(cli, tmp_path):
    result = cli("explain", tmp_path, "-m", tmp_path / "never-loaded")
    assert result.exit_code == 2
    assert result.stderr == (f"fakevlm: error: {tmp_path}: is a folder: explain takes one image or video "
                             "(scan reads folders)\n")


@pytest.mark.slow
@pytest.mark.parametrize(("args", "said"), [
    (["scan", "--bogus"], "No such option '--bogus'"),
    (["scan", ".", "--max-memory", "0.5"], "Invalid value for '--max-memory': '0.5' is less than one byte"),
    (["explain"], "Missing argument 'IMAGE'"),
])
def test_a_usage_error_is_one_line_and_exit_2(args, said):
    """The README promises scripts one `fakevlm: error:` line for a usage error, not Click's usage block."""
    result = subprocess.run([sys.executable, "-m", "fakevlm_cli", *args], capture_output=True, text=True,
                            check=False)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.startswith(f"fakevlm: error: {said}") and result.stderr.count("\n") == 1
    assert f"(see 'fakevlm {args[0]} --help')" in result.stderr


@pytest.mark.slow
def test_usage_errors_stay_one_line_on_a_click_without_no_args_is_help_error():
    """Click 8.1 (which pyproject allows) has no NoArgsIsHelpError: naming it in an except clause made every
    usage error an AttributeError traceback, exit 1."""
    code = ("import sys, click.exceptions as e; del e.NoArgsIsHelpError; sys.argv = ['fakevlm', 'scan', '--bogus']; "
            "from fakevlm_cli.cli import main; main()")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert result.returncode == 2 and result.stderr.startswith("fakevlm: error: No such option '--bogus'")


def test_report_on_a_folder_says_it_is_one(cli, tmp_path):
    result = cli("report", tmp_path, "-o", tmp_path / "r.html")
    assert result.exit_code == 2 and "is a folder" in result.stderr


def test_explain_no_model_reads_the_metadata_alone_and_never_imports_torch(tmp_path):
    import factories as f

    sd = f.a1111_png(tmp_path / "sd.png")
    code = ("import sys, json\nfrom fakevlm_cli.cli import main\n"
            f"sys.argv=['fakevlm','explain',{str(sd)!r},'--no-model','--json']\n"
            "try:\n    main()\nexcept SystemExit as e:\n    code = e.code\n"
            "print('EXIT', code, [m for m in ('torch', 'transformers') if m in sys.modules], file=sys.stderr)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert "EXIT 1 []" in out.stderr, out.stderr  # judged fake by its generator chunk, torch never imported
    record = json.loads(out.stdout)
    assert record["verdict"] == "fake" and record["p_fake"] is None and record["model"] is None


def test_explain_no_model_refuses_what_needs_the_model(cli, tmp_path):
    import factories as f

    photo = f.camera_jpeg(tmp_path / "cam.jpg")
    result = cli("explain", photo, "--no-model")
    assert result.exit_code == 0 and "unknown" in result.stdout and "no model ran" in result.stdout
    for extra, needs in ((["--heatmap", tmp_path / "h.png"], "--heatmap and --localise need the model"),
                         (["--inconclusive", "0.3,0.7"], "--calibration and --inconclusive apply")):
        result = cli("explain", photo, "--no-model", *extra)
        assert result.exit_code == 2 and needs in result.stderr
    assert not (tmp_path / "h.png").exists()


def test_video_options_have_one_spelling_in_every_command(cli, tmp_path):
    """scan and explain said --frames/--fps where eval says --video-frames/--video-fps; the old spellings stay."""
    for command in ("scan", "explain", "eval"):
        text = cli(command, "--help", terminal_width=120).stdout
        assert "--video-frames" in text and "--video-fps" in text, command
    assert "--video-frames, --frames" in cli("scan", "--help", terminal_width=120).stdout
    clip = tmp_path / "x.png"
    clip.write_bytes(b"")  # any path: only the parsing is checked
    for spelling in ("--frames", "--video-frames"):
        result = cli("scan", clip, "--no-model", spelling, "3", "--format", "jsonl", catch_exceptions=True)
        assert "No such option" not in result.stderr, spelling
