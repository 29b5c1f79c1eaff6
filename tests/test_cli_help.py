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


@pytest.mark.parametrize("argv, message", [
    (["tokenise", "README.md"],
     "no corpus or command named 'tokenise': did you mean `nnio-tui tokenize`?"),
    (["help"], "no corpus or command named 'help': for help run `nnio-tui --help`"),
    (["--preset", "tiny", "train", "--steps", "5"],
     "put the command first: nnio-tui train --preset tiny --steps 5"),
    (["--checkpoint", "my run.safetensors", "sample", "--prompt", "Hi"],
     "put the command first: nnio-tui sample --checkpoint 'my run.safetensors' --prompt Hi"),
])
def test_a_misspelt_or_misplaced_command_says_what_to_type(argv, message, capsys):
    assert cli.main(argv) == 2
    assert capsys.readouterr().err == f"nnio-tui: error: {message}\n"


def test_a_path_named_like_a_command_is_a_corpus(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sample").mkdir()
    assert cli.command_hint("sample", ["--preset", "tiny", "sample"]) is None
    assert cli.command_hint("missing.txt", ["missing.txt"]) is None


def test_version(capsys, monkeypatch):
    from importlib import metadata

    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out == f"nnio-tui {metadata.version('nnio-tui')}\n"

    def not_installed(name):
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(metadata, "version", not_installed)
    with pytest.raises(SystemExit):
        cli.main(["--version"])
    assert capsys.readouterr().out.startswith("nnio-tui (version unknown: not installed")
