"""A Session that lives in a child process: the same calls, answered over a pipe.

The app's UI and training share the CPU. In one process they also share the GIL, and a
training loop that is mostly Python between short kernels (a small model, or any model on a
GPU) waits for every redraw: bench/app_overhead.py measured the tiny preset at 77% of its
headless speed with training in a thread and 92% in a child process. In a child, training
has an interpreter of its own, and the UI process never imports torch.

Only plain data crosses the pipe (ids, strings, floats, the records of model.records).
multiprocessing's connections pickle it, which is safe here: both ends are this program,
and nothing read from a file is ever unpickled.
"""

from __future__ import annotations

import functools
import signal
import socket
import subprocess
import sys
import threading
import traceback
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from model.errors import NnioError

Opener = Callable[[Callable[[str, float], None], Callable[[str], None]], Any]
"""Builds the Session in the child, given on_progress(what, fraction) and say(line).

It must be picklable: a module-level function, or a functools.partial of one."""

# Session attributes that are properties: read, not called.
_PROPERTIES = frozenset({"warnings", "slow_warning", "n_tokens", "block_size", "vocab_size",
                         "step_count", "dirty", "probes_beside_steps"})

# Session calls that the child answers on a thread and a pipe of their own, without waiting
# for the call in progress (a training step, say): chunks() reads token ids and the
# tokenizer only; probe() is safe beside a step where probes_beside_steps says so.
_SIDE_CALLS = ("chunks", "probe")


class TrainingProcessError(NnioError):
    """The training process ended, or failed in a way the session could not report."""


class RemoteSession:
    """Drives a Session in a child process; each call blocks until the child answers.

    Any thread may call. Calls are served one at a time, in order, except chunks() and
    probe(): each has a thread of its own in the child, which answers it at once, even
    while a training step runs (see _SIDE_CALLS).
    """

    # If this process ends without close() (killed, or quit without waiting), the child
    # finishes its call and saves unsaved training on its own (serve, _save_orphan).
    saves_if_abandoned = True

    def __init__(self, opener: Opener, on_progress: Callable[[str, float], None] | None = None,
                 say: Callable[[str], None] | None = None, *, log: Path | None = None,
                 threads: int | None = None) -> None:
        """Start the child and open the session there; raises what opening raised.

        Args:
            opener: builds the session in the child (see Opener).
            on_progress: (what, fraction) while the session opens.
            say: one-line notices from the opener (resumed, saving elsewhere).
            log: a file the child's stderr is appended to (warnings, tracebacks); None
                shares this process's stderr, which a full-screen app must not do.
            threads: torch threads in the child; None keeps torch's default.
        """
        self._log = log
        self._lock = threading.Lock()
        self._closed = False
        # A plain child (python -c _CHILD) on inherited sockets rather than
        # multiprocessing's spawn, which would re-run the parent's main module. Its own
        # session keeps a terminal's hang-up and Ctrl+C away: the parent decides when it
        # saves, and if the parent dies, the child saves on its own.
        self._conn, child_conn = _pipe()
        side = {name: _pipe() for name in _SIDE_CALLS}
        self._side = {name: (ours, threading.Lock()) for name, (ours, _) in side.items()}
        child_ends = [child_conn, *(theirs for _, theirs in side.values())]
        fds = tuple(end.fileno() for end in child_ends)
        stderr = self._open_log()
        try:
            self._process = subprocess.Popen(
                # -P: the working directory is not on the child's sys.path (see _CHILD)
                [sys.executable, "-P", "-c", _CHILD, *map(str, fds), str(threads or 0)],
                pass_fds=fds, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=stderr, start_new_session=True)
        except BaseException:
            for ours in (self._conn, *(end for end, _ in self._side.values())):
                ours.close()  # no child will ever answer on them
            raise
        finally:
            for end in child_ends:
                end.close()
            if stderr is not None and stderr != subprocess.DEVNULL:
                stderr.close()
        try:
            with self._lock:
                self._conn.send(opener)
                self._n_tokens = self._reply(self._conn, on_progress, say)
        except NnioError:
            self.close()  # the child said why, and has stopped
            raise
        except BaseException:
            # this side gave up (a progress callback raised: the app is closing; or Ctrl+C)
            # while the child is still opening: it has nothing to save, so it is not waited for
            self._process.kill()
            self.close()
            raise

    LOG_LIMIT = 1 << 20
    """A log larger than this (bytes) is emptied when the next child starts."""

    def _open_log(self):
        if self._log is None:
            return None
        try:
            self._log.parent.mkdir(parents=True, exist_ok=True)
            if self._log.is_file() and self._log.stat().st_size > self.LOG_LIMIT:
                self._log.unlink()
            # appended, so that two apps at once do not write over each other
            return self._log.open("a")
        except OSError:
            self._log = None  # no log rather than no app
            return subprocess.DEVNULL

    @property
    def n_tokens(self) -> int:
        """Tokens in the corpus; it never changes, so it is not asked for again."""
        return self._n_tokens

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        if name in _PROPERTIES:
            return self._call(name)
        return functools.partial(self._call, name)

    def chunks(self, start: int, stop: int):
        """Display chunks for corpus tokens [start, stop), without waiting for a step."""
        return self._side_call("chunks", start, stop)

    def probe(self, start: int, length: int, k: int = 10):
        """Session.probe, answered on a pipe of its own: without waiting for a call from
        another thread, which is safe only where probes_beside_steps is True."""
        return self._side_call("probe", start, length, k=k)

    def close(self, timeout: float = 10.0) -> None:
        """End the child and wait for it; it does not save, so call save() first.

        A call still running in another thread after timeout seconds is cut short: the
        child is killed and that call raises TrainingProcessError.
        """
        if self._closed:
            return
        self._closed = True
        if self._lock.acquire(timeout=timeout):
            try:
                self._conn.send(None)
            except OSError:
                pass
            finally:
                self._lock.release()
        else:
            self._process.kill()
        try:
            self._process.wait(timeout)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._conn.close()
        for conn, _ in self._side.values():
            conn.close()

    def _call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            self._send(self._conn, (name, args, kwargs))
            return self._reply(self._conn)

    def _side_call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        conn, lock = self._side[name]
        with lock:
            self._send(conn, (args, kwargs))
            return self._reply(conn)

    def _send(self, conn: Connection, message: object) -> None:
        if self._closed:
            raise TrainingProcessError("the training process was closed")
        try:
            conn.send(message)
        except OSError:
            raise self._ended() from None

    def _reply(self, conn: Connection, on_progress=None, say=None) -> Any:
        while True:
            try:
                kind, value = conn.recv()
            except (EOFError, OSError):
                raise self._ended() from None
            if kind == "ok":
                return value
            if kind == "error":
                raise value
            if kind == "crash":
                raise TrainingProcessError(value + self._see_log())
            if kind == "progress" and on_progress is not None:
                on_progress(*value)
            elif kind == "say" and say is not None:
                say(value)

    def _ended(self) -> TrainingProcessError:
        try:
            code = self._process.wait(1.0)
        except subprocess.TimeoutExpired:
            code = None
        how = "stopped answering" if code is None else (
            f"was killed by signal {-code}" if code < 0 else f"exited with code {code}")
        hint = " (out of memory?)" if code == -9 else ""
        return TrainingProcessError(
            f"the training process {how}{hint}; the last saved checkpoint is intact"
            + self._see_log())

    def _see_log(self) -> str:
        return f" (details in {self._log})" if self._log is not None else ""


def _pipe() -> tuple[Connection, Connection]:
    """Two connected ends, as multiprocessing.Pipe makes them, that a child can inherit."""
    ours, theirs = socket.socketpair()
    return Connection(ours.detach()), Connection(theirs.detach())


def serve(opener: Opener, conn: Connection, side_conns: dict[str, Connection],
          threads: int | None = None) -> None:
    """The child's side: open the session, then answer calls until told to stop.

    If the parent goes away without a word (it crashed or was killed), the pipe ends; a run
    with unsaved training is then saved, so nothing is lost.
    """
    from model.api import tune_allocator, tune_cpu

    tune_allocator()
    tune_cpu(threads)
    try:
        session = opener(lambda what, f: conn.send(("progress", (what, f))),
                         lambda line: conn.send(("say", line)))
    except NnioError as error:
        conn.send(("error", error))
        return
    except Exception:  # noqa: BLE001 - any bug must reach the parent as a line, not a hang
        conn.send(("crash", _crash_line("opening the session")))
        return
    conn.send(("ok", session.n_tokens))
    for name, side_conn in side_conns.items():
        threading.Thread(target=_serve_side, args=(session, name, side_conn), daemon=True,
                         name=name).start()
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            _save_orphan(session)
            return
        if message is None:
            return
        name, args, kwargs = message
        try:
            value = getattr(session, name)
            if callable(value):
                value = value(*args, **kwargs)
            reply = ("ok", value)
        except NnioError as error:
            reply = ("error", error)
        except Exception:  # noqa: BLE001 - as above
            reply = ("crash", _crash_line(f"session.{name}"))
        try:
            _send_reply(conn, reply, name)
        except OSError:  # the parent went away while this call ran
            _save_orphan(session)
            return


def _serve_side(session, name: str, conn: Connection) -> None:
    """Answer one kind of call (see _SIDE_CALLS) beside the main loop."""
    call = getattr(session, name)
    while True:
        try:
            args, kwargs = conn.recv()
        except (EOFError, OSError):
            return
        try:
            reply = ("ok", call(*args, **kwargs))
        except NnioError as error:
            reply = ("error", error)
        except Exception:  # noqa: BLE001 - as above
            reply = ("crash", _crash_line(f"session.{name}"))
        try:
            _send_reply(conn, reply, name)
        except OSError:  # the parent went away; the main loop saves
            return


def _send_reply(conn: Connection, reply: tuple[str, Any], name: str) -> None:
    """Send a reply; one that cannot be pickled goes as a one-line crash instead.

    Pickling happens before any byte is written, so the pipe stays in step.
    """
    try:
        conn.send(reply)
    except OSError:
        raise
    except Exception:  # noqa: BLE001 - a bug must reach the parent as a line, not a hang
        conn.send(("crash", _crash_line(f"sending the reply of session.{name}")))


def _save_orphan(session) -> None:
    try:
        if session.dirty:
            path = session.save_or_rescue()
            print(f"nnio-tui: the app went away; saved checkpoint to {path}", file=sys.stderr)
    except NnioError as error:
        print(f"nnio-tui: the app went away and saving failed: {error}", file=sys.stderr)


def _crash_line(what: str) -> str:
    """The last line of the traceback; the whole of it goes to stderr (the log)."""
    traceback.print_exc()
    last = traceback.format_exc().strip().splitlines()[-1]
    return f"the training process failed in {what}: {last}"


def open_new(options: dict[str, Any], on_progress, say) -> Any:
    """An Opener for a fresh run: functools.partial(open_new, {Session.open's keywords})."""
    from model.api import Session

    return Session.open(on_progress=on_progress, **options)


def _main(argv: list[str]) -> None:
    # The parent decides when training stops and saves. A signal sent to the whole group
    # (systemctl stop, a batch scheduler's cancel) reaches the app too, which then saves
    # through this process, so this one must outlive it; if the app dies instead, the
    # pipe closes and serve() saves on its own.
    for name in ("SIGTERM", "SIGINT", "SIGHUP"):
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), signal.SIG_IGN)
    n = 1 + len(_SIDE_CALLS)
    conn, *side = (Connection(int(fd)) for fd in argv[:n])
    serve(conn.recv(), conn, dict(zip(_SIDE_CALLS, side)), int(argv[n]) or None)


# The child imports this very copy of the package: its folder goes first on sys.path, and
# the working directory, which may hold a `model` package or a `tokenize.py` of the user's
# own, is left off it (python -P).
_CHILD = (f"import sys; sys.path.insert(0, {str(Path(__file__).resolve().parent.parent)!r}); "
          "from model.remote import _main; _main(sys.argv[1:])")
