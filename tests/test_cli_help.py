"""`nnio-tui --help` and each subcommand's --help describe every option."""

from __future__ import annotations

import pytest

from nnio_tui import cli


@pytest.mark.parametrize("command", [None, *cli.SUBCOMMANDS])
def test_every_option_says_what_it_does(command):
    parser = cli.build_parser(command)
    assert parser.description
    undescribed = [a.dest for a in parser._actions if not a.help]
    assert undescribed == []


@pytest.mark.parametrize("command", [None, "train"])
def test_preset_choices_are_the_model_presets(command):
    from model.config import PRESETS

    preset = cli.build_parser(command)._option_string_actions["--preset"]
    assert preset.choices == tuple(PRESETS)
