"""Object-store inputs without Ray: a bucket on a local S3-compatible server (moto, tests/conftest.py) is scanned
by URI — a prefix like a folder, objects one by one, in --from-file lists — and gives the records the same files
give on disk, with the URI as `path`."""

from __future__ import annotations

import json
from pathlib import Path

import factories as f
import pytest
import stub_engine

BUCKET = "evidence"


@pytest.fixture(scope="module")
def bucket(s3_server, tmp_path_factory) -> tuple[Path, str]:
    """The same files in a local folder and under s3://evidence/case-1/ (a hidden one and a text file too)."""
    local = tmp_path_factory.mktemp("case-1")
    (local / "sub").mkdir()
    f.camera_jpeg(local / "camera.jpg")
    f.a1111_png(local / "sd.png")
    f.comfy_png(local / "sub" / "comfy.png")
    f.truncated_jpeg(local / "truncated.jpg")
    f.plain_png(local / ".hidden.png")
    (local / "notes.txt").write_text("not an image")
    s3_server.create_bucket(Bucket=BUCKET)
    for path in sorted(p for p in local.rglob("*") if p.is_file()):
        s3_server.upload_file(str(path), BUCKET, f"case-1/{path.relative_to(local).as_posix()}")
    return local, f"s3://{BUCKET}/case-1"


def rows(output: str) -> list[dict]:
    return [json.loads(line) for line in output.splitlines() if line.strip()]


def comparable(row: dict, root: str) -> dict:
    """A record without its timing, its path relative to the folder or prefix scanned."""
    return {**{k: v for k, v in row.items() if k != "elapsed_ms"}, "path": row["path"].removeprefix(root)}


@pytest.mark.slow
def test_a_prefix_scans_like_the_folder_it_was_copied_from(cli, bucket, monkeypatch):
    stub_engine.install(monkeypatch)
    local, uri = bucket
    on_disk = cli("scan", local, "--format", "jsonl")
    in_bucket = cli("scan", uri, "--format", "jsonl")
    assert in_bucket.exit_code == on_disk.exit_code == 1  # sd.png's generator chunk: fake
    expected = [comparable(r, str(local)) for r in rows(on_disk.stdout)]
    got = [comparable(r, uri) for r in rows(in_bucket.stdout)]
    assert got == expected and len(got) == 4  # hidden skipped, notes.txt skipped, sub/ walked
    assert all(r["path"].startswith(uri + "/") for r in rows(in_bucket.stdout))
    assert "truncated.jpg: " in in_bucket.stderr  # the bad object's one-line error names its URI


@pytest.mark.slow
def test_from_file_lists_objects_and_a_missing_one_is_an_error_record(cli, bucket, tmp_path):
    _, uri = bucket
    listing = tmp_path / "list.txt"
    listing.write_text(f"{uri}/sd.png\n{uri}/no-such.jpg\n{uri}/sub/comfy.png\n")
    result = cli("scan", "--from-file", listing, "--no-model", "--format", "jsonl")
    got = rows(result.stdout)
    assert [r["path"] for r in got] == [f"{uri}/sd.png", f"{uri}/no-such.jpg", f"{uri}/sub/comfy.png"]
    assert got[0]["verdict"] == "fake" and got[2]["verdict"] == "fake"  # metadata read through the store
    assert got[1]["verdict"] == "error" and got[1]["error"] == "no such object or prefix"
    assert f"fakevlm: error: {uri}/no-such.jpg: no such object or prefix" in result.stderr


def test_a_scheme_no_library_handles_is_an_error_record(cli):
    result = cli("scan", "nosuchstore://bucket/a.jpg", "--no-model", "--format", "jsonl")
    (row,) = rows(result.stdout)
    assert row["path"] == "nosuchstore://bucket/a.jpg" and row["verdict"] == "error"
    assert row["error"].startswith("no filesystem for nosuchstore://")


def test_resume_matches_objects_by_uri(cli, bucket, tmp_path, monkeypatch):
    stub_engine.install(monkeypatch)
    _, uri = bucket
    out = tmp_path / "out.jsonl"
    cli("scan", uri, "-o", out)
    first = out.read_text().splitlines()
    out.write_text("\n".join(first[:2]) + "\n")  # as if the run had stopped after two records
    again = cli("scan", uri, "-o", out, "--resume")
    assert again.exit_code == 1
    after = out.read_text().splitlines()
    assert after[:2] == first[:2]  # the records already there are kept as they were
    assert [r["path"] for r in rows("\n".join(after))] == [r["path"] for r in rows("\n".join(first))]
    for got, expected in zip(rows("\n".join(after)), rows("\n".join(first)), strict=True):
        assert {k: (v, expected[k]) for k, v in comparable(got, uri).items() if v != comparable(expected, uri)[k]} == {}
