"""Every command's options have distinct field names and distinct flags: the typed request is built by field
name, so a clash would hand one option's value to another."""

import pytest

from fakevlm_cli.core import options


@pytest.mark.parametrize("command", sorted(options.COMMANDS))
def test_names_and_flags_are_unique_per_command(command):
    fields = options.declared(command)
    names = [f.name for _, f in fields]
    flags = [flag for _, f in fields for flag in options.flags_of(command, f) if flag.startswith("-")]
    assert len(names) == len(set(names)) and len(flags) == len(set(flags))
