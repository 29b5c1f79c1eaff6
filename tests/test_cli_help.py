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
