"""How a scan ends, in a separate process: records stream as they are final; Ctrl-C, SIGTERM, a reader that
goes away and failed writes each end it with the documented exit code and every finished record intact.

The processes run `tests/stub_cli.py` (the real command line with the stub engine: no torch) and are kept in
step through their pipes — a test waits for the lines it needs, never for a time.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

# every test starts the command line in a child process and waits on it (a second or more each)
pytestmark = pytest.mark.slow

STUB_CLI = str(Path(__file__).resolve().parent / "stub_cli.py")


@pytest.fixture
def pictures(tmp_path) -> list[Path]:
    """Eight small PNGs: even ones red (the stub judges them fake), odd ones blue (real)."""
    folder = tmp_path / "pictures"
    folder.mkdir()
    paths = []
    for i in range(8):
        path = folder / f"p{i}.png"
        Image.new("RGB", (8, 8), (255, 0, 0) if i % 2 == 0 else (0, 0, 255)).save(path)
        paths.append(path)
    return paths


def start(*args, env=None, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, STUB_CLI, "scan", *map(str, args)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, **(env or {})},
                            **kwargs)


def feed(proc: subprocess.Popen, paths) -> None:
    proc.stdin.write(b"".join(os.fsencode(p) + b"\n" for p in paths))
    proc.stdin.flush()


def names(lines) -> list[str]:
    return [Path(json.loads(line)["path"]).name for line in lines]


@pytest.mark.parametrize("model", [True, False], ids=["model", "no-model"])
def test_records_stream_while_paths_still_arrive(pictures, model):
    """Paths trickling in on stdin are judged and written at once, not held for a batch or for the end."""
    proc = start("-", "--format", "jsonl", "--batch-size", "8", *([] if model else ["--no-model"]))
    feed(proc, pictures[:3])
    first = [proc.stdout.readline() for _ in range(3)]  # returns only because the records were written
    assert names(first) == ["p0.png", "p1.png", "p2.png"]
    if model:
        assert [json.loads(line)["verdict"] for line in first] == ["fake", "real", "fake"]
    feed(proc, pictures[3:])
    out, err = proc.communicate()
    assert names(out.splitlines()) == [f"p{i}.png" for i in range(3, 8)]
    assert proc.returncode == (1 if model else 0), err


@pytest.mark.parametrize(("signum", "code", "said"), [(signal.SIGINT, 130, "interrupted"),
                                                 (signal.SIGTERM, 143, "terminated"),
                                                 (signal.SIGHUP, 129, "hung up")])
def test_a_signal_stops_the_scan_with_every_finished_record_whole(pictures, signum, code, said):
    proc = start("-", "--format", "jsonl")
    feed(proc, pictures[:3])
    first = [proc.stdout.readline() for _ in range(3)]
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == code
    assert err.decode().strip() == f"fakevlm: {said}" and b"Traceback" not in err
    assert out == b""  # nothing torn after the three whole records
    assert names(first) == ["p0.png", "p1.png", "p2.png"]


def judged(proc: subprocess.Popen, n: int) -> None:
    """Read the stub's stderr until it has judged `n` more images."""
    while n > 0:
        line = proc.stderr.readline()
        assert line.startswith(b"stub: judged "), line
        n -= int(line.split()[-1])


def test_under_nohup_a_hangup_is_still_ignored(pictures):
    """`nohup fakevlm scan …` ignores SIGHUP: the scan must not start handling it again."""
    proc = start("-", "--format", "jsonl", preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_IGN))
    feed(proc, pictures[:2])
    first = [proc.stdout.readline() for _ in range(2)]
    proc.send_signal(signal.SIGHUP)
    feed(proc, pictures[2:4])
    out, err = proc.communicate(timeout=60)  # closes stdin: the list ends
    assert proc.returncode == 1 and names(first + out.splitlines()) == [f"p{i}.png" for i in range(4)], err


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130), (signal.SIGHUP, 129)])
def test_a_signal_leaves_a_resumable_results_file(pictures, tmp_path, signum, code):
    out = tmp_path / "out.jsonl"
    proc = start("-", "-o", out, env={"STUB_SAY_JUDGED": "1"})
    feed(proc, pictures[:3])
    judged(proc, 3)
    feed(proc, pictures[3:4])
    judged(proc, 1)  # the model is at the 4th image: the first three records are on disk
    proc.send_signal(signum)
    proc.communicate(timeout=60)
    assert proc.returncode == code
    data = out.read_bytes()
    assert data.endswith(b"\n")
    assert 3 <= len(data.splitlines()) <= 4 and all(json.loads(line) for line in data.splitlines())
    again = start("-", "-o", out, "--resume", "-q")
    feed(again, pictures)
    again.stdin.close()
    again.wait(timeout=60)
    rows = [json.loads(line) for line in out.read_bytes().splitlines()]
    assert sorted(Path(r["path"]).name for r in rows) == [f"p{i}.png" for i in range(8)]  # none lost, none twice


def test_kill_9_then_resume_loses_nothing_and_writes_nothing_twice(pictures, tmp_path):
    """SIGKILL cannot be handled: whatever was flushed is whole but for at most a torn last line, and --resume
    repairs that and judges exactly what is missing."""
    out = tmp_path / "out.jsonl"
    proc = start("-", "-o", out, "--batch-size", "2", env={"STUB_SAY_JUDGED": "1"})
    feed(proc, pictures[:5])
    judged(proc, 5)
    proc.kill()
    proc.wait()
    assert len(out.read_bytes().splitlines()) < 8
    again = start("-", "-o", out, "--resume", "-q")
    feed(again, pictures)
    again.stdin.close()
    again.wait(timeout=60)
    rows = [json.loads(line) for line in out.read_bytes().splitlines()]
    assert sorted(Path(r["path"]).name for r in rows) == [f"p{i}.png" for i in range(8)]


@pytest.mark.parametrize(("signum", "code", "said"), [(signal.SIGINT, 130, "interrupted"),
                                                 (signal.SIGTERM, 143, "terminated")])
def test_a_signal_while_the_model_loads(pictures, tmp_path, signum, code, said):
    """Ctrl-C during a (long) model load exits 130 — not click's "Aborted!" and 1 — and costs no results."""
    out = tmp_path / "earlier.jsonl"
    earlier = subprocess.run([sys.executable, STUB_CLI, "scan", str(pictures[0]), "-o", str(out)])
    assert earlier.returncode == 1
    before = out.read_bytes()
    proc = start(*pictures, "-o", out, env={"STUB_SLOW_LOAD": "1"})
    assert proc.stderr.readline() == b"stub: loading\n"
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == code and err.decode().strip() == f"fakevlm: {said}"
    assert out.read_bytes() == before  # the file is cut back only after the model has loaded


def test_a_signal_before_the_first_record_leaves_the_earlier_results_and_report(pictures, tmp_path):
    """Ctrl-C after the model has loaded but before anything was judged (on Ray: while the replicas load the
    model) keeps what an earlier run wrote, and says so."""
    out, report = tmp_path / "earlier.jsonl", tmp_path / "earlier.html"
    earlier = subprocess.run([sys.executable, STUB_CLI, "scan", str(pictures[0]), "-o", str(out), "--report",
                              str(report)])
    assert earlier.returncode == 1
    before = out.read_bytes(), report.read_bytes()
    proc = start(*pictures, "-o", out, "--report", report, env={"STUB_SLOW_JUDGE": "1"})
    assert proc.stderr.readline() == b"stub: judging\n"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    note = f"fakevlm: note: {out}: left as it was (the run stopped before its first record)"
    assert err.decode().splitlines() == [note, "fakevlm: interrupted"]
    assert (out.read_bytes(), report.read_bytes()) == before


@pytest.mark.parametrize("fmt", ["jsonl", "table"])
def test_a_reader_that_goes_away_is_not_an_error(pictures, fmt):
    """`fakevlm scan … | head -1`: exit 141 (128 + SIGPIPE), as a process killed by SIGPIPE; nothing on stderr.
    The table too: Rich's own answer to a closed pipe is exit 1, which here means "something fake"."""
    many = [p.parent / f"copy{i:04d}.png" for i in range(400) for p in pictures[:1]]
    for path in many:  # 400 records, ~1 KB each: far more than a pipe buffer holds
        path.write_bytes(pictures[0].read_bytes())
    big = subprocess.Popen([sys.executable, STUB_CLI, "scan", "--no-model", "--format", fmt, "-"],
                           stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    big.stdin.write(b"".join(os.fsencode(p) + b"\n" for p in many))
    big.stdin.close()
    big.stdout.readline()
    big.stdout.close()
    err = big.stderr.read()
    big.wait(timeout=60)
    assert big.returncode == 141 and err == b""  # no traceback, no error message


def test_a_full_disk_on_stdout_is_one_error_line_and_exit_2(pictures):
    with open("/dev/full", "wb") as full:
        result = subprocess.run([sys.executable, STUB_CLI, "scan", "--no-model", "--format", "jsonl",
                                 *map(str, pictures)], stdout=full, stderr=subprocess.PIPE)
    assert result.returncode == 2
    assert result.stderr.decode() == "fakevlm: error: stdout: cannot write results: No space left on device\n"


def test_a_full_disk_on_the_results_file_keeps_the_records_before_it(pictures, tmp_path):
    """A results file that stops growing (RLIMIT_FSIZE: writes fail with EFBIG) ends the run: exit 2, one
    line naming the file; the records before the failure are whole, and --resume completes the file."""
    out = tmp_path / "out.jsonl"

    def limit_file_size():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a failed write, not a killed process
        resource.setrlimit(resource.RLIMIT_FSIZE, (3000, 3000))

    result = subprocess.run([sys.executable, STUB_CLI, "scan", *map(str, pictures), "-o", str(out), "-q"],
                            stderr=subprocess.PIPE, preexec_fn=limit_file_size)
    assert result.returncode == 2
    assert result.stderr.decode() == f"fakevlm: error: {out}: cannot write results: File too large\n"
    lines = out.read_bytes().split(b"\n")
    whole = [json.loads(line) for line in lines[:-1]]
    assert 1 <= len(whole) < 8
    resumed = subprocess.run([sys.executable, STUB_CLI, "scan", *map(str, pictures), "-o", str(out), "--resume",
                              "-q"])
    assert resumed.returncode == 1
    rows = [json.loads(line) for line in out.read_bytes().splitlines()]
    assert sorted(Path(r["path"]).name for r in rows) == [f"p{i}.png" for i in range(8)]


def test_a_closed_stdout_is_an_error_before_any_work(pictures):
    result = subprocess.run([sys.executable, STUB_CLI, "scan", "--no-model", "--format", "jsonl", str(pictures[0])],
                            stderr=subprocess.PIPE, preexec_fn=lambda: os.close(1))
    assert result.returncode == 2
    assert result.stderr.decode() == "fakevlm: error: stdout: is closed, nowhere to write results (use -o FILE)\n"


def test_a_closed_stderr_costs_messages_not_results(pictures, tmp_path):
    out = tmp_path / "out.jsonl"
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    result = subprocess.run([sys.executable, STUB_CLI, "scan", *map(str, pictures), str(broken), "-o", str(out)],
                            preexec_fn=lambda: os.close(2))
    assert result.returncode == 1
    rows = [json.loads(line) for line in out.read_bytes().splitlines()]
    assert len(rows) == 9 and rows[-1]["verdict"] == "error"


def test_a_bug_is_one_error_line_and_exit_2_never_the_1_that_means_fake(capsys, monkeypatch):
    """An exception fakevlm did not expect (a bug) would end Python with status 1, which scripts read as
    "something judged fake": it is one `fakevlm: error:` line and exit 2; --debug shows the traceback."""
    from fakevlm_cli.commands import run_command

    def body(diag):
        raise KeyError("unexpected\nsecond line")

    monkeypatch.delenv("FAKEVLM_DEBUG", raising=False)
    assert run_command(body) == 2
    err = capsys.readouterr().err
    assert err.startswith("fakevlm: error: internal error: KeyError: ") and err.count("\n") == 1
    assert "--debug" in err
    monkeypatch.setenv("FAKEVLM_DEBUG", "1")
    with pytest.raises(KeyError):
        run_command(body)
