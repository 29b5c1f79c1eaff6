"""The `nnio-tui` command: the app by default, plus headless tokenize, train, predict, sample."""

from __future__ import annotations

import argparse
import math
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path

from nnio_tui import commands

SUBCOMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "tokenize": commands.tokenize,
    "train": commands.train,
    "predict": commands.predict,
    "sample": commands.sample,
}


# model/config.py's PRESETS, which this module may not import (tests check they agree).
PRESET_NAMES = ("tiny", "cpu", "gpu", "gpt2")

# Model and training fields the flags set, and the flag that sets each.
FIELD_FLAGS = {"block_size": "--block-size", "n_layer": "--n-layer", "n_head": "--n-head",
               "n_embd": "--n-embd", "batch_size": "--batch-size", "learning_rate": "--lr"}

# Counts (steps, tokens, sizes) beyond this are typing slips; progress bars count in floats.
MAX_COUNT = 10**12

# Seeds reach torch.manual_seed and numpy's SeedSequence; 63 bits suit both.
MAX_SEED = 2**63 - 1

SUBCOMMAND_HELP = {
    "tokenize": "Print a text as coloured token chunks, or as ids with --ids.",
    "train": "Train headless with a progress bar, then save the checkpoint.",
    "predict": "Print the next-token probabilities after a context.",
    "sample": "Continue a prompt token by token.",
}


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line (what is wrong, where to look), exit code 2."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


class _Version(argparse.Action):
    """--version, which looks the version up only when asked: the lookup takes ~50 ms."""

    def __init__(self, option_strings, dest, **kwargs) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        from importlib.metadata import PackageNotFoundError, version

        try:
            number = version("nnio-tui")
        except PackageNotFoundError:  # run from a source tree that pip never installed
            number = "(version unknown: not installed; pip install -e . records it)"
        print(f"nnio-tui {number}")
        parser.exit()


def _positive(kind: type) -> Callable[[str], int | float]:
    def parse(text: str):
        value = _parsed(text, kind, "a whole number" if kind is int else "a number")
        if kind is float and not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"must be a finite number greater than 0, got {text}")
        if not value > 0:
            raise argparse.ArgumentTypeError(f"must be greater than 0, got {text}")
        if kind is int and value > MAX_COUNT:
            raise argparse.ArgumentTypeError(f"must be at most {MAX_COUNT:,}, got {text}")
        return value

    return parse


def _token_id(text: str) -> int:
    value = _parsed(text, int, "a token id (a whole number)")
    if value < 0:
        raise argparse.ArgumentTypeError(f"token ids are 0 or more, got {text}")
    return value


def _parsed(text: str, kind: type, what: str):
    try:
        return kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None


def _seed(text: str) -> int:
    value = _parsed(text, int, "a whole number")
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {text}")
    if value > MAX_SEED:
        raise argparse.ArgumentTypeError(f"must be at most {MAX_SEED}, got {text}")
    return value


def _non_negative_float(text: str) -> float:
    value = _parsed(text, float, "a number")
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {text}")
    if math.isinf(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text}")
    return value


def _fraction(text: str) -> float:
    value = _parsed(text, float, "a number")
    if not 0 < value <= 1:  # also rejects NaN
        raise argparse.ArgumentTypeError(f"must be greater than 0 and at most 1, got {text}")
    return value


def _device_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda", "mps"),
                        help="where the model runs; auto: cuda, then mps, then cpu (default auto)")


def _model_flags(parser: argparse.ArgumentParser) -> None:
    # None defaults tell a flag the user gave from one left alone, which matters on resume.
    parser.add_argument("--encoding",
                        help="tiktoken encoding name or path to NAME.tiktoken (default cl100k_base)")
    parser.add_argument("--preset", choices=PRESET_NAMES,
                        help="model size: tiny, cpu, gpu, gpt2 (default cpu)")
    _device_flag(parser)
    parser.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16"),
                        help="matmul precision while training; auto: bf16 on Ampere+ GPUs"
                             " and on CPUs with bf16 instructions, else fp32")
    parser.add_argument("--seed", type=_seed,
                        help="seeds a new run's weights and windows; CPU runs repeat exactly"
                             " (default 0)")
    parser.add_argument("--block-size", type=_positive(int), help="the model's longest context")
    parser.add_argument("--n-layer", type=_positive(int), help="transformer blocks")
    parser.add_argument("--n-head", type=_positive(int), help="attention heads per block")
    parser.add_argument("--n-embd", type=_positive(int),
                        help="width of each token's vector (a multiple of --n-head)")
    parser.add_argument("--batch-size", type=_positive(int), help="windows per training step")
    parser.add_argument("--lr", type=_positive(float),
                        help="peak learning rate; training decays to a tenth of it")


def overrides_from(args: argparse.Namespace) -> dict:
    """Model and training fields the user set on the command line."""
    given = {field: getattr(args, flag[2:].replace("-", "_")) for field, flag in FIELD_FLAGS.items()}
    return {k: v for k, v in given.items() if v is not None}


def in_flag_names(message: str) -> str:
    """A model/ message about settings, with each field a flag sets called by that flag."""
    pattern = r"\b(" + "|".join(FIELD_FLAGS) + r")\b"
    return re.sub(pattern, lambda match: FIELD_FLAGS[match.group(1)], message)


def expected_from(args: argparse.Namespace) -> dict:
    """Everything the user set that a resumed checkpoint must agree with."""
    from model.api import encoding_name

    encoding = None if args.encoding is None else encoding_name(args.encoding)
    given = {"encoding": encoding, "preset": args.preset, "seed": args.seed}
    return {**{k: v for k, v in given.items() if v is not None}, **overrides_from(args)}


def build_parser(command: str | None) -> argparse.ArgumentParser:
    """The parser for the app (command None) or for one subcommand."""
    if command is None:
        p = _Parser(
            prog="nnio-tui",
            description="Watch a language model's next-token probabilities change while it trains. "
            "Subcommands: tokenize, train, predict, sample (nnio-tui SUBCOMMAND --help).",
        )
        p.add_argument("corpus", nargs="?", help="text file, folder, .jsonl or .parquet"
                       " (default: a resumed run's own, else the bundled sample corpus)")
        p.add_argument("--version", action=_Version, help="print the version and exit")
        _model_flags(p)
        p.add_argument("--context", type=_positive(int), help="context window length to start with")
        p.add_argument("--checkpoint", help="checkpoint to resume, and where to save")
        # Windows cannot hand a child the pipes that model.remote uses.
        p.add_argument("--worker", default="thread" if sys.platform == "win32" else "process",
                       choices=("process", "thread"),
                       help="where training runs: a child process (default), so the UI"
                            " never slows it, or a thread of the app")
        return p
    p = _Parser(prog=f"nnio-tui {command}", description=SUBCOMMAND_HELP[command])
    if command == "tokenize":
        p.add_argument("path", nargs="?", default=None,
                       help="text file, folder, .jsonl, .parquet or -"
                            " (default: the bundled sample)")
        p.add_argument("--encoding", default="cl100k_base",
                       help="tiktoken encoding name or path to NAME.tiktoken (default cl100k_base)")
        p.add_argument("--ids", action="store_true", help="print ids separated by spaces")
    elif command == "train":
        p.add_argument("corpus", nargs="?", help="text file, folder, .jsonl, .parquet or -"
                       " (default: a resumed run's own, else the bundled sample)")
        p.add_argument("--steps", type=_positive(int), required=True, help="training steps to run")
        _model_flags(p)
        p.add_argument("--checkpoint", help="where to save (default: the run's path)")
        p.add_argument("--eval-every", type=_positive(int), default=50,
                       help="print the validation loss every N steps (default 50)")
    elif command == "predict":
        p.add_argument("--checkpoint", required=True, help="a .safetensors file saved by nnio-tui")
        what = p.add_mutually_exclusive_group(required=True)
        what.add_argument("--text", help="the context, as text")
        what.add_argument("--ids", type=_token_id, nargs="+", help="the context, as token ids")
        p.add_argument("--top", type=_positive(int), default=10,
                       help="how many of the likeliest next tokens to list (default 10; over"
                            " 1,000, as tab-separated lines)")
        p.add_argument("--json", action="store_true", help="print one JSON object instead")
        _device_flag(p)
    elif command == "sample":
        p.add_argument("--checkpoint", required=True, help="a .safetensors file saved by nnio-tui")
        p.add_argument("--prompt", required=True, help="text to continue")
        p.add_argument("--max-tokens", type=_positive(int), default=50,
                       help="tokens to add (default 50)")
        p.add_argument("--temperature", type=_non_negative_float, default=1.0,
                       help="0 always takes the likeliest token; above 1 flattens (default 1)")
        p.add_argument("--top-k", type=_positive(int), help="draw only from the K likeliest")
        p.add_argument("--top-p", type=_fraction,
                       help="draw only from the likeliest tokens whose probabilities add up to P")
        p.add_argument("--seed", type=_seed,
                       help="the same seed draws the same tokens (default: new ones each run)")
        p.add_argument("--json", action="store_true", help="print one JSON object instead")
        _device_flag(p)
    if command in ("predict", "sample"):
        p.add_argument("--encoding", metavar="PATH",
                       help="the checkpoint's encoding file (NAME.tiktoken), where it is not"
                            " found offline by its name")
    return p


def command_hint(corpus: str | None, argv: list[str]) -> str | None:
    """What to say when the app's CORPUS is no path but a command, misplaced or misspelt.

    Args:
        corpus: the app's CORPUS argument as parsed.
        argv: the whole command line, without the program name.

    Returns:
        The error line, or None when corpus is no such mistake.
    """
    # Only a bare word can be a command; a missing data.txt or ./train gets "corpus not found".
    if corpus is None or not re.fullmatch(r"[a-z]+", corpus) or Path(corpus).exists():
        return None
    import difflib
    import shlex

    if corpus in SUBCOMMANDS:
        at = argv.index(corpus)
        return f"put the command first: nnio-tui {shlex.join([corpus, *argv[:at], *argv[at + 1:]])}"
    close = difflib.get_close_matches(corpus, [*SUBCOMMANDS, "help"], n=1)
    if not close:
        return None
    if close[0] == "help":
        return f"no corpus or command named {corpus!r}: for help run `nnio-tui --help`"
    return f"no corpus or command named {corpus!r}: did you mean `nnio-tui {close[0]}`?"


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and run; returns the process exit code.

    Args:
        argv: arguments without the program name (default sys.argv[1:]).

    Returns:
        0 on success, 2 on a usage or input error (one line on stderr), 128 + the signal's
        number when train is stopped by Ctrl+C (130), SIGTERM (143) or SIGHUP (129).
    """
    from model.api import NnioError, tune_allocator

    argv = sys.argv[1:] if argv is None else argv
    command = argv[0] if argv and argv[0] in SUBCOMMANDS else None
    parser = build_parser(command)
    if command is None:
        # Before argparse's own complaint, which for `nnio-tui tokenise FILE` is about FILE.
        hint = command_hint(parser.parse_known_args(argv)[0].corpus, argv)
        if hint is not None:
            print(f"nnio-tui: error: {hint}", file=sys.stderr)
            return 2
    args = parser.parse_args(argv[1:] if command else argv)
    if command in (None, "train"):
        # Before any thread starts: worker threads pick their malloc arena on first use.
        tune_allocator()
    try:
        if command is None:
            return commands.app(args, overrides_from(args))
        return SUBCOMMANDS[command](args)
    except NnioError as err:
        print(f"nnio-tui: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("nnio-tui: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # `nnio-tui tokenize | head` closes the pipe early; that is not an error. What is
        # still buffered for stdout goes nowhere, so the flush at exit cannot fail (exit 120).
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
