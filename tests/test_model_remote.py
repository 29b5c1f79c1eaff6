"""RemoteSession: a Session in a child process answers as the local one does."""

import functools
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from model.api import ConfigError, CorpusError, Session
from model.remote import RemoteSession, TrainingProcessError, open_new
from tests.fakes import slow_opener


def _options(tmp_path, **more):
    return dict(corpus=None, preset="tiny", device="cpu", seed=0,
                checkpoint=str(tmp_path / "run.safetensors"), **more)


@pytest.fixture
def remote(tmp_path):
    session = RemoteSession(functools.partial(open_new, _options(tmp_path)), threads=1)
    yield session
    session.close()


def test_same_answers_as_a_local_session(remote, tmp_path):
    local = Session.open(**_options(tmp_path / "local"))
    assert remote.n_tokens == local.n_tokens
    assert remote.block_size == local.block_size
    assert remote.chunks(10, 20) == local.chunks(10, 20)
    assert remote.probe(5, 8, k=4) == local.probe(5, 8, k=4)
    for _ in range(3):
        assert remote.step().loss == pytest.approx(local.step().loss, rel=1e-5)
    assert remote.step_count == 3
    assert remote.dirty
    saved = remote.save()
    assert not remote.dirty
    assert Session.load(saved).step_count == 3


def test_errors_keep_their_type_and_line(remote):
    with pytest.raises(ConfigError, match="a window holds 1 to .* tokens of context, not 1,000,000,000"):
        remote.random_window(10**9)
    # the session is still usable after an error
    assert remote.random_window(4) >= 0


def test_a_bug_in_the_child_is_one_line(remote):
    with pytest.raises(TrainingProcessError,
                       match=r"failed in session\.no_such_call: AttributeError"):
        remote.no_such_call()
    assert remote.step().step == 1


def test_opening_errors_are_raised_in_the_parent(tmp_path):
    options = _options(tmp_path) | {"corpus": str(tmp_path / "missing.txt")}
    progress = []
    with pytest.raises(CorpusError):
        RemoteSession(functools.partial(open_new, options),
                      on_progress=lambda what, f: progress.append(what))


def test_progress_reaches_the_parent(tmp_path):
    progress = []
    session = RemoteSession(functools.partial(open_new, _options(tmp_path)),
                            on_progress=lambda what, f: progress.append((what, f)))
    session.close()
    assert progress and all(0.0 <= f <= 1.0 for _, f in progress)


def test_chunks_and_probes_are_answered_while_a_call_runs(remote):
    assert remote.probes_beside_steps
    before = remote.probe(5, 8, k=3)
    # a long call is in flight on the main pipe...
    with remote._lock:
        remote._conn.send(("train", (10**6,), {}))
        assert remote.chunks(0, 3) == remote.chunks(0, 3)
        changed = []

        def probe_until_changed():
            while (probe := remote.probe(5, 8, k=3)) == before:
                pass
            changed.append(probe)  # the weights moved: training runs meanwhile

        prober = threading.Thread(target=probe_until_changed, daemon=True)
        prober.start()
        prober.join(60)
        assert changed
        # ...and both came back before it ended
        assert not remote._conn.poll()
    remote.close(timeout=0)


def test_a_parent_that_goes_away_leaves_its_training_saved(remote, tmp_path):
    remote.step()
    remote.step()
    # the parent ends without a word: the child sees the pipe close
    remote._conn.close()
    for conn, _ in remote._side.values():
        conn.close()
    assert remote._process.wait(60) == 0
    assert Session.load(tmp_path / "run.safetensors").step_count == 2


def test_a_killed_child_is_a_clear_error(remote):
    remote._process.send_signal(signal.SIGKILL)
    remote._process.wait(30)
    with pytest.raises(TrainingProcessError, match="killed by signal 9"):
        remote.step()


def test_the_parent_never_imports_torch(tmp_path):
    code = textwrap.dedent(f"""
        import functools, sys
        from model.remote import RemoteSession, open_new
        session = RemoteSession(functools.partial(open_new, {_options(tmp_path)!r}))
        session.step()
        session.probe(0, 4)
        session.close()
        print("torch" in sys.modules)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"


def test_a_model_package_in_the_working_directory_is_not_imported(tmp_path, monkeypatch):
    # people train in their own project folders, which often have a model/ of their own
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "__init__.py").write_text("raise ImportError('the wrong model')\n")
    # and modules named like the standard library's (traceback imports tokenize)
    (tmp_path / "tokenize.py").write_text("raise ImportError('the wrong tokenize')\n")
    monkeypatch.chdir(tmp_path)
    session = RemoteSession(functools.partial(open_new, _options(tmp_path)))
    try:
        assert session.step().step == 1
    finally:
        session.close()


def test_a_signal_to_the_whole_group_leaves_the_child_to_the_app(remote):
    # systemctl stop or a scheduler's cancel signals every process: the app then saves
    # through the child, so the child must not die of it
    remote.step()
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        remote._process.send_signal(sig)
    time.sleep(0.5)
    assert remote._process.poll() is None
    assert remote.step().step == 2
    assert remote.save().is_file()


def test_close_does_not_wait_for_a_call_in_another_thread(remote):
    raised: list[BaseException] = []

    def train_forever():
        try:
            remote.train(10**6)
        except TrainingProcessError as error:
            raised.append(error)

    worker = threading.Thread(target=train_forever)
    worker.start()
    time.sleep(1.0)
    closer = threading.Thread(target=remote.close, kwargs={"timeout": 1.0}, daemon=True)
    closer.start()
    closer.join(15)
    hung = closer.is_alive()
    if hung:
        remote._process.kill()  # so that a failing test does not leave training running
    worker.join(10)
    assert not hung
    assert not worker.is_alive() and raised


class _GiveUp(Exception):
    pass


def test_giving_up_while_the_child_opens_ends_it_at_once(monkeypatch):
    started: list[subprocess.Popen] = []
    real_popen = subprocess.Popen

    def popen(*args, **kwargs):
        started.append(real_popen(*args, **kwargs))
        return started[-1]

    monkeypatch.setattr("model.remote.subprocess.Popen", popen)
    reports: list[str] = []

    def on_progress(what, fraction):
        reports.append(what)
        if len(reports) == 3:
            raise _GiveUp  # as the app's bridge does when it is closing

    # close() waits up to 10 s for a child that does not listen: the kill must come first
    calls: list[str] = []
    real_close, real_kill = RemoteSession.close, real_popen.kill

    def close(self, *args, **kwargs):
        calls.append("close")
        return real_close(self, *args, **kwargs)

    def kill(proc):
        calls.append("kill")
        return real_kill(proc)

    monkeypatch.setattr(RemoteSession, "close", close)
    monkeypatch.setattr(real_popen, "kill", kill)
    with pytest.raises(_GiveUp):
        RemoteSession(slow_opener, on_progress)
    assert calls[:2] == ["kill", "close"]
    assert started and started[0].poll() is not None  # the child is gone


def test_a_child_that_cannot_start_leaves_no_open_pipes(monkeypatch):
    import model.remote as remote_mod

    made = []
    real_pipe = remote_mod._pipe

    def pipe():
        made.append(real_pipe())
        return made[-1]

    def no_python(*args, **kwargs):
        raise OSError("no such interpreter")

    monkeypatch.setattr(remote_mod, "_pipe", pipe)
    monkeypatch.setattr(remote_mod.subprocess, "Popen", no_python)
    with pytest.raises(OSError, match="no such interpreter"):
        RemoteSession(slow_opener)
    assert made and all(end.closed for pair in made for end in pair)
