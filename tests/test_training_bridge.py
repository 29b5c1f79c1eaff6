"""TrainingBridge on its own: the order in which the worker does things while training runs."""

from __future__ import annotations

import contextlib
import threading
import time

from model.api import TrainingDiverged
from model.remote import TrainingProcessError
from nnio_tui.looker import Looker
from nnio_tui.messages import (
    CommandFailed,
    ProbeReady,
    SessionOpened,
    SessionReset,
    TrainingProgress,
    TrainingStopped,
    WindowChosen,
)
from nnio_tui.training import TrainingBridge
from nnio_tui.training_commands import Look, NewWindow, Reset, Step
from tests.fakes import FakeSession


def wait_for(condition, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.005)
    return False


def log_calls(fake: FakeSession, *names: str, before=None) -> list[tuple]:
    """Record (name, first argument...) of each call to these session methods, in order.

    before(name), if given, runs before each call is passed on (to hold one, say).
    """
    order: list[tuple] = []
    for name in names:
        real = getattr(fake, name)

        def logged(*args, _name=name, _real=real, **kwargs):
            order.append((_name, *args[:1]))
            if before is not None:
                before(_name)
            return _real(*args, **kwargs)

        setattr(fake, name, logged)
    return order


@contextlib.contextmanager
def serving(bridge: TrainingBridge):
    """The bridge's worker on a thread of its own; asked to quit and joined on the way out."""
    worker = threading.Thread(target=bridge.serve, args=(lambda: False,), daemon=True)
    worker.start()
    try:
        yield worker
    finally:
        bridge.request_quit()
        worker.join(5)
    assert not worker.is_alive()


@contextlib.contextmanager
def step_held(bridge: TrainingBridge, fake: FakeSession):
    """Training runs, its step held in progress until the block ends (or leaves early)."""
    try:
        assert bridge.wait_idle(30)
        fake.gate.clear()
        bridge.resume()
        assert fake.in_step.wait(5)
        yield
    finally:
        fake.gate.set()


def test_a_window_moved_during_a_step_is_probed_before_validation():
    # Validation takes several batches; a key pressed during the step before it should get
    # its probe first, so the new window's bars never wait for a validation. (Where the
    # probe cannot run beside the step: with dropout, or on MPS.)
    fake = FakeSession()
    order = log_calls(fake, "probe", "evaluate")
    bridge = TrainingBridge(lambda message: None, session=fake)
    bridge.PROBE_BESIDE = False
    bridge.EVAL_EVERY = 1  # every step is due a validation
    with serving(bridge):
        with step_held(bridge, fake):
            order.clear()
            bridge.send(Look(7, 4))  # arrives while the step runs
        assert wait_for(lambda: ("probe", 7) in order and ("evaluate",) in order)
    assert order.index(("probe", 7)) < order.index(("evaluate",))


def test_a_window_moved_during_validation_is_probed_before_the_next_step():
    fake = FakeSession()
    in_validation, release = threading.Event(), threading.Event()

    def hold_first_validation(name):
        if name == "evaluate":
            in_validation.set()
            release.wait(5)  # the first validation is held until the key is in

    order = log_calls(fake, "probe", "evaluate", "step", before=hold_first_validation)
    bridge = TrainingBridge(lambda message: None, session=fake)
    bridge.PROBE_BESIDE = False
    bridge.EVAL_EVERY = 1
    with serving(bridge):
        try:
            assert bridge.wait_idle(30)
            bridge.resume()
            assert in_validation.wait(5)
            order.clear()
            bridge.send(Look(7, 4))  # arrives while the validation runs
            release.set()
            assert wait_for(lambda: ("probe", 7) in order and ("step",) in order)
        finally:
            release.set()
    assert order.index(("probe", 7)) < order.index(("step",))


def test_pausing_validates_a_due_step_before_the_last_snapshot():
    fake = FakeSession()
    posted: list = []
    bridge = TrainingBridge(posted.append, session=fake)
    bridge.EVAL_EVERY = 1
    with serving(bridge):
        assert bridge.wait_idle(30)
        bridge.resume()
        assert wait_for(lambda: fake.info().step >= 3)
        bridge.pause()
        assert bridge.wait_idle(30)
        steps = fake.info().step
    last = [m.snapshot for m in posted if isinstance(m, TrainingProgress)][-1]
    # one validation per step, into the curve, the last one included though the loop had
    # left it for later
    assert last.step == steps and len(last.val_losses) == steps


def test_a_reset_while_training_compares_the_bars_with_the_fresh_weights():
    fake = FakeSession()
    posted: list = []
    bridge = TrainingBridge(posted.append, session=fake)
    with serving(bridge):
        assert bridge.wait_idle(30)
        bridge.resume()
        assert wait_for(lambda: fake.info().step >= 3)
        bridge.send(Reset())
        assert wait_for(lambda: any(isinstance(m, SessionReset) for m in posted))
        assert wait_for(lambda: fake.info().step >= 3)  # trained on from the reset
        bridge.pause()
        assert bridge.wait_idle(30)
    reset_at = next(i for i, m in enumerate(posted) if isinstance(m, SessionReset))
    old = {id(m.probe) for m in posted[:reset_at] if isinstance(m, ProbeReady)}
    after = [m for m in posted[reset_at:] if isinstance(m, ProbeReady)]
    assert after and all(m.before is None or id(m.before) not in old for m in after)
    assert [m.since for m in after if m.before is not None][-1] == "the reset"


def test_a_reopened_run_shows_the_window_it_was_closed_on(tmp_path):
    fake = FakeSession(checkpoint_dir=tmp_path)

    def opened_at(context=None) -> tuple[int, int]:
        posted: list = []
        bridge = TrainingBridge(posted.append, session=fake, context=context)
        with serving(bridge):
            assert bridge.wait_idle(30)
            opened = next(m for m in posted if isinstance(m, SessionOpened))
            if context is None:
                bridge.send(Look(1_500, 5))  # where the user leaves it
                assert bridge.wait_idle(30)
        return opened.start, opened.length

    assert opened_at() == (0, 8)
    assert opened_at() == (1_500, 5)
    assert opened_at(context=12) == (0, 12)  # a --context given asks for a fresh window
    other = FakeSession(checkpoint_dir=tmp_path / "other")
    bridge = TrainingBridge([].append, session=other)
    with serving(bridge):
        assert bridge.wait_idle(30)
    assert bridge._window == (0, 8)  # each run its own


def test_a_store_of_windows_that_cannot_be_read_is_as_good_as_none(tmp_path, monkeypatch):
    from nnio_tui import last_window

    store = tmp_path / "windows.json"
    monkeypatch.setattr(last_window, "_store", lambda: store)
    store.write_bytes(b"\x00 not json")
    assert last_window.recall("run") is None
    last_window.remember("run", 3, 4)
    assert last_window.recall("run") == (3, 4)
    store.write_text('{"run": [-1, 4], "b": [1, true], "c": "x"}')
    assert [last_window.recall(k) for k in ("run", "b", "c")] == [None, None, None]
    store.chmod(0o400)
    store.parent.chmod(0o500)
    try:
        last_window.remember("run", 5, 6)  # unwritable: forgotten, no error
    finally:
        store.parent.chmod(0o700)
    for n in range(last_window.KEPT + 5):
        last_window.remember(f"run{n}", n, 1)
    assert last_window.recall("run0") is None and last_window.recall(f"run{n}") == (n, 1)


def test_quitting_while_the_session_opens_ends_the_open():
    reports: list[float] = []
    posted: list = []

    def open_session(on_progress):
        # a long open that reports as it goes, as tokenizing a big corpus does
        for i in range(2000):
            on_progress("tokenizing", i / 2000)
            reports.append(i)
            time.sleep(0.005)
        return FakeSession()

    bridge = TrainingBridge(posted.append, open_session=open_session)
    with serving(bridge):
        assert wait_for(lambda: len(reports) > 5)
    assert len(reports) < 1000
    assert not any(isinstance(m, SessionOpened) for m in posted)


def probed_starts(posted: list) -> list[int]:
    return [m.start for m in posted if isinstance(m, ProbeReady)]


def test_a_window_moved_during_a_step_is_probed_before_the_step_ends():
    fake = FakeSession()
    posted: list = []
    bridge = TrainingBridge(posted.append, session=fake)
    with serving(bridge), step_held(bridge, fake):
        steps = fake.info().step
        bridge.send(Look(7, 4))
        assert wait_for(lambda: 7 in probed_starts(posted), timeout=10)
        assert fake.info().step == steps  # the step is still held


def test_the_last_window_sent_wins_whichever_thread_gets_it():
    # The looker is held in a probe of window 5 while a key sends window 7 (left for the
    # looker), training pauses and a key sends window 9 (for the worker, which gets there
    # first). Neither the probe of 5 nor window 7 may be shown after 9.
    fake = FakeSession()
    posted: list = []
    held, release = threading.Event(), threading.Event()

    def hold_the_lookers_first_probe(name):
        if threading.current_thread().name == "nnio-looker" and not held.is_set():
            held.set()
            release.wait(5)

    log_calls(fake, "probe", before=hold_the_lookers_first_probe)
    bridge = TrainingBridge(posted.append, session=fake)
    with serving(bridge):
        try:
            assert bridge.wait_idle(30)
            bridge.resume()
            bridge.send(Look(5, 4))
            assert held.wait(5)
            bridge.send(Look(7, 4))
            bridge.pause()
            bridge.send(Look(9, 4))
            assert wait_for(lambda: 9 in probed_starts(posted))
        finally:
            release.set()
        assert bridge.wait_idle(30)
        bridge.send(Step())  # the worker's own probes are of window 9 too
        assert bridge.wait_idle(30)
    starts = probed_starts(posted)
    assert 7 not in starts
    assert set(starts[starts.index(9):]) == {9}
    assert starts.count(9) >= 2


def test_a_new_random_window_gives_way_to_a_key_sent_after_it():
    # n then right, both before the worker gets to them: the app has already moved right,
    # so a random window would leave the app and the bridge on different windows
    fake = FakeSession()
    posted: list = []
    bridge = TrainingBridge(posted.append, session=fake)
    with serving(bridge):
        assert bridge.wait_idle(30)
        with bridge._wakeup:  # both arrive while the worker is busy
            bridge.send(NewWindow(4))
            bridge.send(Look(11, 4))
        assert bridge.wait_idle(30)
        bridge.send(Step())
        assert bridge.wait_idle(30)
    assert not any(isinstance(m, WindowChosen) for m in posted)
    assert probed_starts(posted)[-2:] == [11, 11]


def test_a_probe_the_looker_cannot_make_is_reported_once_by_the_worker():
    fake = FakeSession()
    posted: list = []
    broken = threading.Event()

    def fail_once_broken(name):
        if broken.is_set():
            raise TrainingDiverged("the model outputs NaN: reset it")

    log_calls(fake, "probe", before=fail_once_broken)
    bridge = TrainingBridge(posted.append, session=fake)
    bridge.POST_EVERY_S = 1000  # no periodic probe: the window's is the one that fails
    with serving(bridge):
        assert bridge.wait_idle(30)
        bridge.resume()
        assert wait_for(lambda: fake.info().step >= 1)
        broken.set()
        bridge.send(Look(7, 4))
        # the worker takes the window over, meets the error and pauses training
        assert wait_for(lambda: any(isinstance(m, TrainingStopped) for m in posted))
        assert bridge.wait_idle(30)
        assert not bridge.running
    failures = [m for m in posted if isinstance(m, CommandFailed)]
    assert [m.error for m in failures] == ["the model outputs NaN: reset it"]


class DyingSession(FakeSession):
    """A session whose training process dies when told to: every call then fails."""

    dead = False

    def _check(self):
        if self.dead:
            raise TrainingProcessError("the training process was killed by signal 9")

    @property
    def dirty(self) -> bool:
        self._check()
        return super().dirty

    def info(self):
        self._check()
        return super().info()

    def step(self):
        self._check()
        return super().step()

    def probe(self, *args, **kwargs):
        self._check()
        return super().probe(*args, **kwargs)


def test_a_training_process_that_dies_while_training_pauses_the_loss_panel_too():
    fake = DyingSession()
    posted: list = []
    bridge = TrainingBridge(posted.append, session=fake)
    with serving(bridge) as worker:
        assert bridge.wait_idle(30)
        bridge.resume()
        assert wait_for(lambda: fake._step >= 2)
        fake.dead = True
        assert wait_for(lambda: any(isinstance(m, TrainingStopped) for m in posted))
        assert bridge.wait_idle(30)
        assert worker.is_alive()  # the worker lives on: the next key gets a one-line error
        fake.dead = False  # so that quitting can save
    last = [m.snapshot for m in posted if isinstance(m, TrainingProgress)][-1]
    assert not last.running and last.dirty
    assert [m.error for m in posted if isinstance(m, CommandFailed)] == [
        "the training process was killed by signal 9"]


def test_the_looker_probes_only_the_newest_window_waiting():
    # keys held down offer windows faster than they can be probed
    seen: list[int] = []
    started, release = threading.Event(), threading.Event()

    def look(number, window):
        seen.append(window.start)
        started.set()
        release.wait(5)

    looker = Looker(look)
    looker.start()
    try:
        looker.offer(1, Look(1, 4))
        assert started.wait(5)
        looker.offer(2, Look(2, 4))
        looker.offer(3, Look(3, 4))
        release.set()
        assert looker.idle.wait(5)
    finally:
        release.set()
        looker.stop()
    assert seen == [1, 3]


def test_a_held_key_is_probed_at_the_lookers_rate_and_ends_on_its_last_window():
    # a key held down sends some 30 windows a second: probing each would take a third of
    # the CPU from training
    seen: list[int] = []

    class Quick(Looker):
        RATE, BURST = 20.0, 2

    looker = Quick(lambda number, window: seen.append(window.start))
    looker.start()
    t = time.monotonic()
    try:
        for i in range(100):
            looker.offer(i, Look(i, 4))
            time.sleep(0.005)
        elapsed = time.monotonic() - t
        assert looker.idle.wait(5)
    finally:
        looker.stop()
    assert len(seen) <= Quick.BURST + Quick.RATE * elapsed + 1
    assert seen[0] == 0 and seen[-1] == 99
