"""The documentation cannot drift from the code: docs/cli.md is what `--help` prints, and every relative link
in the README and docs/ leads to a file that exists."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from fakevlm_cli.cli import reference_markdown

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def test_cli_reference_is_what_help_prints():
    assert (ROOT / "docs" / "cli.md").read_text() == reference_markdown(), (
        "docs/cli.md is stale: run python -c \"from fakevlm_cli.cli import reference_markdown; "
        "print(reference_markdown(), end='')\" > docs/cli.md")


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_relative_links_lead_somewhere(page):
    text = page.read_text()
    broken = []
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+:", target) or target.startswith("#"):
            continue
        path = (page.parent / target.split("#")[0]).resolve()
        if not path.exists():
            broken.append(target)
    assert broken == []


def test_the_readme_stays_a_five_minute_read():
    assert len((ROOT / "README.md").read_bytes()) < 12_000
