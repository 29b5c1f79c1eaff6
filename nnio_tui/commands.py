"""What each `nnio-tui` subcommand does: tokenize, train, predict, sample, and the app itself."""

from __future__ import annotations

import argparse
import functools
import json
import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table
from rich.text import Text

from model.errors import count
from nnio_tui.percent import pct

# Two alternating chunk colours that stay distinct on 16-colour terminals too.
CHUNK_STYLES = ("black on cyan", "black on yellow")


class _StdoutConsole(Console):
    """Rich on stdout, where a reader that stops early (`| head`) ends the command, exit 0."""

    def __init__(self, **kwargs) -> None:
        super().__init__(highlight=False, **kwargs)

    def on_broken_pipe(self) -> None:
        raise BrokenPipeError  # Rich's own handler exits 1; cli.main ends with 0


def _err() -> Console:
    return Console(stderr=True, highlight=False, soft_wrap=True)


def _home_as_tilde(path: Path) -> str:
    """A path under the home folder written from ~, as shells print it: shorter to read."""
    try:
        return str(Path("~") / path.relative_to(Path.home()))
    except (ValueError, RuntimeError):  # elsewhere, or no home to speak of
        return str(path)


def _warn(lines) -> None:
    for line in lines:
        print(f"nnio-tui: warning: {line}", file=sys.stderr)


class _ProgressBar:
    """An on_progress(what, fraction) callback drawing a Rich bar on stderr."""

    def __init__(self) -> None:
        self._progress = Progress(TextColumn("{task.description}"), BarColumn(),
                                  TaskProgressColumn(), TimeElapsedColumn(), console=_err(),
                                  transient=True)
        self._tasks: dict[str, int] = {}

    def __enter__(self):
        # Only draw on a terminal; a redirected stderr gets no bar and no stray blank lines.
        if self._progress.console.is_terminal:
            self._progress.start()
        return self

    def __exit__(self, *exc) -> None:
        if self._progress.live.is_started:
            self._progress.stop()

    def __call__(self, what: str, fraction: float) -> None:
        if what not in self._tasks:
            self._tasks[what] = self._progress.add_task(what, total=1.0)
        self._progress.update(self._tasks[what], completed=fraction)


def tokenize(args: argparse.Namespace) -> int:
    """Print a source's tokens as coloured chunks (or ids), then the counts on stderr."""
    from model.api import tokenize_source

    with _ProgressBar() as bar:
        source = tokenize_source(args.path, args.encoding, on_progress=bar)
    _warn(source.warnings)
    out = _StdoutConsole(soft_wrap=True)
    step, ends_line = 65536, False
    for start in range(0, source.n_tokens, step):
        if args.ids:
            ids = source.ids(start, start + step)
            sys.stdout.write((" " if start else "") + " ".join(map(str, ids)))
        else:
            text = Text()
            for i, chunk in enumerate(source.chunks(start, start + step), start):
                text.append(chunk.text, style=CHUNK_STYLES[i % 2])
                ends_line = chunk.text.endswith("⏎")
                if ends_line:
                    text.append("\n")
            out.print(text, end="")
    if not ends_line:
        sys.stdout.write("\n")
    sys.stdout.flush()
    per = source.n_chars / source.n_tokens if source.n_tokens else 0.0
    _err().print(f"{count(source.n_tokens, 'token')}  {count(source.n_chars, 'character')}  "
                 f"{count(source.n_bytes, 'byte')}  {per:.2f} characters per token"
                 f"  ({source.encoding})")
    return 0


class _StopFlag:
    """Ctrl+C, SIGTERM or SIGHUP sets a flag that the training loop checks between steps;
    a second one aborts."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._on_terminal = os.isatty(2)

    def __call__(self) -> bool:
        return self.signum is not None

    def handle(self, signum, frame) -> None:
        if self.signum is not None:
            raise KeyboardInterrupt
        self.signum = signum
        if self._on_terminal and not os.isatty(2):
            # The terminal hung up (an SSH link dropped): writing to it would fail with EIO
            # before the checkpoint is saved, and nobody can read it any more.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 2)
            os.close(devnull)

    def why(self) -> str:
        return "Ctrl+C" if self.signum == signal.SIGINT else signal.Signals(self.signum).name


def _stop_signals() -> list[signal.Signals]:
    """The signals that stop training with a save; one already ignored (`nohup`) stays so."""
    names = ("SIGINT", "SIGTERM", "SIGHUP")  # Windows has no SIGHUP
    found = [getattr(signal, name) for name in names if hasattr(signal, name)]
    return [signum for signum in found if signal.getsignal(signum) != signal.SIG_IGN]


def open_for_training(args: argparse.Namespace, on_progress, say=None):
    """The session `train` and the app use: resume --checkpoint if it exists, else start fresh.

    Without --checkpoint the run lives at the default path, and a run saved there is resumed,
    so starting `nnio-tui` twice never throws training away. The save path is checked before
    anything slow, so no training is spent on a run that could not be saved.

    Args:
        args: parsed flags of the app or of `train`.
        on_progress: (what, fraction) callback for slow work.
        say: called with a one-line notice (resumed, or saving elsewhere); may be None.
    """
    from model.api import (
        DamagedCheckpoint,
        Session,
        check_encoding,
        check_save_path,
        default_run_path,
        encoding_name,
    )
    from nnio_tui.cli import expected_from, overrides_from

    if args.encoding is not None and encoding_name(args.encoding) != args.encoding:
        check_encoding(args.encoding)  # a folder or a missing file is said before any notice
    if args.checkpoint is None:
        resumed = _resume_default_run(args, on_progress, say or (lambda line: None))
        if resumed is not None:
            return resumed
    if args.checkpoint is not None:
        check_save_path(args.checkpoint)
        if Path(args.checkpoint).expanduser().exists():
            try:
                session = Session.load(args.checkpoint, corpus=args.corpus, device=args.device,
                                       on_progress=on_progress, expect=expected_from(args),
                                       precision=args.precision, encoding=args.encoding)
            except DamagedCheckpoint as error:
                raise DamagedCheckpoint(f"{error}: move it aside to start a new run there, or"
                                        " give another --checkpoint path") from error
            (say or (lambda line: None))(
                f"resumed {args.checkpoint} at step {session.step_count:,}")
            return session
    else:
        check_save_path(default_run_path(args.corpus, args.preset or "cpu"))
    return Session.open(args.corpus, encoding=args.encoding or "cl100k_base",
                        preset=args.preset or "cpu", device=args.device, seed=args.seed or 0,
                        overrides=overrides_from(args), checkpoint=args.checkpoint,
                        on_progress=on_progress, precision=args.precision)


def _resume_default_run(args: argparse.Namespace, on_progress, say):
    """Resume the run at the default path; None when there is none or it cannot be resumed.

    A saved run made with other settings or on other text (another file of the same name,
    or stdin, which is never resumed), or one that cannot be read, is never overwritten: a
    run beside it saved with the settings and corpus asked for is resumed, or else
    args.checkpoint is pointed at a free path beside it; the user is told either way.
    """
    from model.api import (
        CheckpointError,
        Session,
        default_run_path,
        first_free,
        first_mismatch,
        saved_settings,
    )
    from nnio_tui.cli import expected_from

    path = default_run_path(args.corpus, args.preset or "cpu")
    if not path.is_file():
        return None
    expect = expected_from(args)

    def load(at: Path):
        return Session.load(at, corpus=args.corpus, device=args.device,
                            on_progress=on_progress, expect=expect, precision=args.precision,
                            encoding=args.encoding)

    saved = saved_settings(path)
    same_run = _run_settings(args)
    mismatch = None if saved is None else first_mismatch(same_run, saved)
    if args.corpus == "-":
        why = "text from stdin is never resumed: it may be other text"
    elif mismatch is not None:  # known from the header: the run's tensors are never read
        why = f"saved with {mismatch}"
        resumed = _resume_beside(path, same_run, load, say, why)  # made with these settings?
        if resumed is not None:
            return resumed
    else:
        try:
            session = load(path)
        except CheckpointError as error:  # unreadable, or a setting the header did not show
            why = str(error)
            # a run saved beside it last time, since it could not be read, goes on
            resumed = _resume_beside(path, same_run, load, say, "not readable")
            if resumed is not None:
                return resumed
        else:
            say(f"resumed {_home_as_tilde(path)} at step {session.step_count:,}"
                " (--checkpoint NEW.safetensors starts another run)")
            return session
    free = first_free(path)  # path itself is taken: a name beside it
    if free is None:
        raise CheckpointError(f"every run name beside {path} is taken: remove old runs from"
                              f" {path.parent}, or give --checkpoint FILE")
    args.checkpoint = str(free)
    # A folder that moved, or another copy of the same text, may still be the run wanted.
    other_text = (f"; --checkpoint {_home_as_tilde(path)} goes on with that run on this text"
                  if mismatch is not None and mismatch.startswith("corpus ") else "")
    say(f"not resuming {_home_as_tilde(path)} ({why}); this run saves to"
        f" {_home_as_tilde(free)}{other_text}")
    return None


def _run_settings(args: argparse.Namespace) -> dict:
    """What a saved run must have been made with to be resumed for these flags: the
    settings given, and the corpus (runs are named by the corpus's file name, and notes.txt
    from another folder is other text)."""
    from model.api import corpus_source_label
    from nnio_tui.cli import expected_from

    return {**expected_from(args), "corpus": corpus_source_label(args.corpus)}


def _saved_beside(path: Path, expect: dict) -> Iterator[Path]:
    """The runs beside path (NAME-2, NAME-3, ... up to the first gap) whose headers show the
    settings expected; no run's tensors are read."""
    from model.api import first_mismatch, numbered_beside, saved_settings

    for other in numbered_beside(path):
        if not other.exists():
            return
        saved = saved_settings(other)
        if saved is not None and first_mismatch(expect, saved) is None:
            yield other


def _resume_beside(path: Path, expect: dict, load, say, why: str):
    """Resume the first run beside path saved with the settings expected; None if none is."""
    from model.api import CheckpointError

    for other in _saved_beside(path, expect):
        try:
            session = load(other)  # saves back to other, as a resumed run does
        except CheckpointError:
            continue
        say(f"resumed {_home_as_tilde(other)} at step {session.step_count:,}, the run with"
            f" these settings ({_home_as_tilde(path)} was {why}; --checkpoint"
            " NEW.safetensors starts another run)")
        return session
    return None


def train(args: argparse.Namespace) -> int:
    """Train headless with a progress bar; save at the end and on Ctrl+C, SIGTERM or SIGHUP."""
    from nnio_tui.cli import overrides_from

    check_shape_flags(args, overrides_from(args))
    err = _err()
    with _ProgressBar() as bar:
        session = open_for_training(args, bar, lambda line: err.print(f"nnio-tui: {line}"))
    slow = session.slow_warning
    _warn([*session.warnings, *([slow] if slow else [])])
    info = session.info()
    err.print(f"{info.corpus_name}: {count(info.n_tokens, 'token')}, {info.encoding} "
              f"({info.vocab_size:,}), {info.preset} {info.n_params / 1e6:.1f}M params, "
              f"{info.device} {info.precision}")
    stop = _StopFlag()
    previous = {signum: signal.signal(signum, stop.handle) for signum in _stop_signals()}
    val = None
    # The run's own step (a resumed run starts past 0), then how far this command has got.
    columns = (TextColumn("step {task.fields[step]:>6}  {task.completed:.0f}/{task.total:.0f}"),
               BarColumn(),
               TextColumn("loss {task.fields[loss]}  val {task.fields[val]}  "
                          "{task.fields[tps]} tok/s"), TimeElapsedColumn())
    try:
        with Progress(*columns, console=err) as progress:
            task = progress.add_task("train", total=args.steps, loss="-", val="-", tps="-",
                                     step=session.step_count)

            started = time.perf_counter()

            def on_step(report) -> None:
                nonlocal val
                if report.val_loss is not None:
                    val = report.val_loss
                    # A line per evaluation stays in the scrollback and in redirected logs.
                    progress.console.print(
                        f"step {report.step:>6}  train {report.loss:.3f}  val {val:.3f}  "
                        f"{report.tokens_per_s:,.0f} tok/s  {time.perf_counter() - started:.0f} s")
                progress.update(task, advance=1, step=report.step, loss=f"{report.loss:.3f}",
                                val="-" if val is None else f"{val:.3f}",
                                tps=f"{report.tokens_per_s:,.0f}")

            session.train(args.steps, on_step=on_step, should_stop=stop,
                          eval_every=args.eval_every)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        if session.dirty:
            path = session.save_or_rescue()
            err.print(f"saved checkpoint to {path}")
    if stop():
        err.print(f"stopped by {stop.why()}")
        return 128 + stop.signum  # the shell's code for death by that signal; 130 for Ctrl+C
    err.print(f"validation loss {session.evaluate():.3f}")
    return 0


def _open_checkpoint(args: argparse.Namespace):
    from model.api import Session

    return Session.load(args.checkpoint, device=args.device, corpus_optional=True,
                        encoding=args.encoding)


TABLE_ROWS = 1_000  # predict lists more as tab-separated lines


def predict(args: argparse.Namespace) -> int:
    """Print the next-token distribution for a context."""
    from model.api import ConfigError

    if args.text == "":
        # An empty context has no prediction to show, only a made-up uniform one.
        raise ConfigError("--text is empty: give the model some text to predict from")
    session = _open_checkpoint(args)
    ids = args.ids if args.ids is not None else session.encode(args.text)
    probe = session.probe_ids(ids, None, k=min(args.top, session.vocab_size))
    if args.json:
        print(json.dumps({
            "input_tokens": len(ids),
            "context_ids": list(probe.context_ids),
            "top": [{"id": t.token_id, "text": session.decode([t.token_id]), "prob": t.prob}
                    for t in probe.top],
            "entropy": probe.entropy,
        }))
        return 0
    # the title on a line of its own: as the table's title it wraps to the table's width
    print(f"next token after {_context_used(len(probe.context_ids), len(ids))},"
          f" of {probe.vocab_size:,} outputs")
    if len(probe.top) > TABLE_ROWS:
        # Rich lays a table out whole: 100,277 rows would take minutes. Lines stream.
        print("rank\ttoken\tid\tprob")
        for rank, t in enumerate(probe.top, 1):
            print(f"{rank}\t{t.text}\t{t.token_id}\t{pct(t.prob)}")
    else:
        table = Table()
        for name in ("rank", "token", "id", "prob"):
            table.add_column(name, justify="left" if name == "token" else "right")
        for rank, t in enumerate(probe.top, 1):
            table.add_row(str(rank), Text(t.text), str(t.token_id), pct(t.prob))
        _StdoutConsole().print(table)
    print(f"entropy {probe.entropy:.3f} nats")
    return 0


def _context_used(used: int, given: int) -> str:
    """'725 tokens', or 'the last 64 of 725 tokens' when the model's block size cut them."""
    if used == given:
        return count(given, "token")
    return f"the last {used:,} of {given:,} tokens"


def sample(args: argparse.Namespace) -> int:
    """Continue a prompt token by token and show each token as it is chosen."""
    from model.api import ConfigError

    if args.prompt == "":
        raise ConfigError("--prompt is empty: give the model some text to continue")
    session = _open_checkpoint(args)
    ids = session.encode(args.prompt)
    picks = session.generate_each(ids, args.max_tokens, temperature=args.temperature,
                                  top_k=args.top_k, top_p=args.top_p, seed=args.seed)
    if args.json:
        picks = list(picks)
        new_ids = [p.token.token_id for p in picks]
        print(json.dumps({
            "prompt_ids": ids, "ids": new_ids, "text": session.decode(new_ids),
            "tokens": [{"id": p.token.token_id, "text": session.decode([p.token.token_id]),
                        "prob": p.token.prob} for p in picks],
        }))
        return 0
    out = _StdoutConsole(soft_wrap=True)
    out.print(Text(args.prompt, style="bold"), end="")
    for i, pick in enumerate(picks):
        # One write a token, so a long --max-tokens shows its progress instead of a wait.
        out.print(Text(session.decode([pick.token.token_id]), style=CHUNK_STYLES[i % 2]), end="")
    out.print()
    return 0


def session_opener(args: argparse.Namespace, notify):
    """The app's open_session: open_for_training, then the corpus warnings as notifications.

    With --worker process (the default) the session opens in a child process
    (model.remote.RemoteSession) and this process never imports torch.

    Args:
        args: the app's parsed flags.
        notify: App.notify, which is safe to call from the worker thread.
    """

    def say(line: str) -> None:
        notify(line, title="run", timeout=8, markup=False)

    def open_session(on_progress):
        if getattr(args, "worker", "thread") == "process":
            from model.remote import RemoteSession
            from model.run_files import training_log_path

            session = RemoteSession(functools.partial(open_for_training, args), on_progress,
                                    say, log=training_log_path())
        else:
            session = open_for_training(args, on_progress, say)
        for line in session.warnings:
            notify(line, title="corpus", severity="warning", timeout=10, markup=False)
        slow = session.slow_warning  # a round trip when the session is in a child process
        if slow is not None:
            notify(slow, title="model", severity="warning", timeout=15, markup=False)
        return session

    return open_session


def check_shape_flags(args: argparse.Namespace, overrides: dict) -> None:
    """Refuse, before anything slow, a preset and flags that make no model, in flag names.

    An existing --checkpoint is left to Session.load: its own shape decides, and the flags
    are compared with it there.
    """
    from model.api import ConfigError, context_limit
    from nnio_tui.cli import in_flag_names

    if args.checkpoint is not None and Path(args.checkpoint).expanduser().is_file():
        return
    try:
        context_limit(args.preset or "cpu", overrides)  # validates the settings it builds
    except ConfigError as error:
        raise ConfigError(in_flag_names(str(error))) from None


def check_app_flags(args: argparse.Namespace, overrides: dict) -> None:
    """Refuse, before the UI starts, what can be refused quickly: a corpus on stdin or not
    there, a missing --device, model flags that do not fit together, a --context longer than
    the block size of the model that will open, and a --checkpoint that cannot be written."""
    from model.api import (
        ConfigError,
        check_device,
        check_save_path,
        context_limit,
        existing_corpus_path,
    )

    if args.corpus == "-":
        # The app reads its keys from the terminal; the child that trains has no stdin.
        raise ConfigError("the app cannot read its corpus from stdin: save the text to a file"
                          " and name it (nnio-tui train - and tokenize - read stdin)")
    if args.corpus is not None:
        existing_corpus_path(args.corpus)
    check_device(args.device)
    check_shape_flags(args, overrides)
    if args.checkpoint is not None:
        check_save_path(args.checkpoint)
    if args.context is not None:
        limit = context_limit(args.preset or "cpu", overrides, _run_to_resume(args))
        if limit is not None and args.context > limit:
            raise ConfigError(
                f"--context {args.context} is longer than the model's block size {limit}: use"
                f" --context {limit} or less, or a larger --block-size for a new run")


def _run_to_resume(args: argparse.Namespace) -> str | Path | None:
    """The saved run the app will open, told from headers alone as open_for_training tells
    it: --checkpoint, else the default run or the first run beside it saved with these
    settings and corpus; None when a new run starts."""
    from model.api import default_run_path, first_mismatch, saved_settings

    if args.checkpoint is not None:
        return args.checkpoint
    path = default_run_path(args.corpus, args.preset or "cpu")
    if not path.is_file():
        return None
    expect = _run_settings(args)
    saved = saved_settings(path)
    if saved is not None and first_mismatch(expect, saved) is None:
        return path
    # as _resume_default_run looks beside it; else a header only loading can judge (it may
    # load, or not): no limit is known yet
    return next(_saved_beside(path, expect), path if saved is None else None)


def app(args: argparse.Namespace, overrides: dict) -> int:
    """Open the full-screen app; the model loads in a worker so the first frame comes first."""
    from model.api import ConfigError

    check_app_flags(args, overrides)
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        # Textual would draw into a pipe and wait for keys that never come.
        raise ConfigError("the app needs a terminal for its screen and keys; in a script or"
                          " a pipe use nnio-tui train, predict or sample")
    from nnio_tui.app import NnioApp

    title = args.corpus or "sample_data"
    nnio = NnioApp(open_session=session_opener(args, lambda *a, **kw: nnio.notify(*a, **kw)),
                   context=args.context, title_hint=title)
    nnio.run()
    if nnio.terminal_gone:
        # The terminal hung up (SIGHUP): the checkpoint is saved, but nobody can read a line.
        return nnio.return_code or 0
    if nnio.saved_path is not None:
        print(f"nnio-tui: saved checkpoint to {nnio.saved_path}", file=sys.stderr)
    return nnio.return_code or 0
