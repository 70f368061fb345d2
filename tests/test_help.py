"""--help in sections: every declared option shown, under the section of what it is about."""

from __future__ import annotations

import re

import pytest

from fakevlm_cli.core import options


def help_sections(cli, command: str) -> dict[str, str]:
    text = cli(command, "--help", terminal_width=100).stdout
    parts = re.split(r"^([A-Z][\w ()-]+):$", text, flags=re.M)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


@pytest.mark.parametrize(("command", "sections"), [
    ("scan", ["Input", "Output", "Judging", "Video", "Model", "Scale-out (Ray)", "Other"]),
    ("eval", ["Options", "Judging", "Video", "Model", "Scale-out (Ray)", "Other"]),
    ("explain", ["Options", "Judging", "Video", "Model", "Other"]),
])
def test_options_are_grouped_in_sections_and_none_is_lost(cli, command, sections):
    found = help_sections(cli, command)
    assert list(found) == sections
    shown = " ".join(found.values())
    for _, field in options.declared(command):
        if field.metadata.get("kind") in ("argument", "arguments"):
            continue
        flag = options.flags_of(command, field)[-1]
        assert len(re.findall(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", shown)) >= 1, flag
    video = found["Video"]
    assert ("--video-frames" if command == "eval" else "--frames") in video and "--no-model" not in video
    assert "--model" in found["Model"] and "-h, --help" in found["Other"]
