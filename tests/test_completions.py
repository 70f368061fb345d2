"""The checked-in completion scripts must be exactly what the Click app generates today."""

from pathlib import Path

import pytest

from fakevlm_cli.cli import completion_script

COMPLETIONS = Path(__file__).resolve().parents[1] / "completions"
FILES = {"bash": "fakevlm.bash", "zsh": "_fakevlm", "fish": "fakevlm.fish"}


@pytest.mark.parametrize("shell", sorted(FILES))
def test_checked_in_completion_matches_generated(shell):
    generated = completion_script(shell)
    checked_in = (COMPLETIONS / FILES[shell]).read_text()
    assert checked_in == generated, (
        f"completions/{FILES[shell]} is stale: run `fakevlm completion {shell} > completions/{FILES[shell]}`")


@pytest.mark.parametrize("shell", sorted(FILES))
def test_completion_command_prints_script(cli, shell):
    result = cli("completion", shell)
    assert result.exit_code == 0 and "_FAKEVLM_COMPLETE" in result.output


def test_completion_completes_subcommands_and_options():
    import os
    import subprocess
    import sys

    env = {**os.environ, "_FAKEVLM_COMPLETE": "bash_complete", "COMP_WORDS": "fakevlm scan --no", "COMP_CWORD": "2"}
    out = subprocess.run([sys.executable, "-m", "fakevlm_cli"], env=env, capture_output=True, text=True).stdout
    assert "--no-model" in out
