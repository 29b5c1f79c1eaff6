"""The app under bad input and abuse: start-up failures show one line, a diverged or out-of-
memory step pauses and tells, 1,000 fast keys stay exact, and few-colour terminals stay readable."""

from __future__ import annotations

import asyncio
import dataclasses
import random
import time

import pytest
from rich.color import ColorSystem
from textual import events
from textual.message import Message
from textual.widgets import Static

from model.api import CheckpointError, Session
from nnio_tui import cli, commands, messages
from nnio_tui.app import NnioApp
from nnio_tui.widgets.token_chunks import TokenChunks
from tests.fakes import FakeSession
from tests.test_app import SIZE, settle, shown


def real_app(*argv: str) -> NnioApp:
    """The app as `nnio-tui ARGV` builds it, opening its session the same way."""
    args = cli.build_parser(None).parse_args([*argv, "--device", "cpu"])
    app = NnioApp(open_session=commands.session_opener(args, lambda *a, **kw: app.notify(*a, **kw)),
                  context=args.context)
    return app


def _short(p):
    (p / "s.txt").write_text("word " * 100)
    return p / "s.txt"


def _truncated(p):
    path = Session.open(None, preset="tiny", device="cpu").save(p / "t.safetensors")
    path.write_bytes(path.read_bytes()[:3000])
    return path


@pytest.mark.parametrize("argv, message", [
    (lambda p: [str(p / "gone.txt")], "corpus not found: {p}/gone.txt (check the path)"),
    (lambda p: [str(_short(p)), "--preset", "tiny"], "too short for a context of 16 plus its "
                                                     "label in both splits: use --block-size 9"),
    (lambda p: ["--encoding", "klingon"], "unknown encoding 'klingon': choose one of"),
    (lambda p: ["--checkpoint", str(_truncated(p))], "{p}/t.safetensors is not a nnio-tui "
                                                     "checkpoint (safetensors) or is damaged"),
])
async def test_start_up_failure_shows_one_line_and_q_quits(tmp_path, argv, message):
    app = real_app(*argv(tmp_path))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        shown = str(app.query_one("#loading-error").render())
        assert message.format(p=tmp_path) in shown.splitlines()[0]
        await pilot.press("s", "space", "q")
    assert app.return_code == 2


async def test_a_long_start_up_error_wraps_on_screen(tmp_path):
    (tmp_path / "short.txt").write_text("hi there\n")
    app = real_app(str(tmp_path / "short.txt"))
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        error = app.query_one("#loading-error")
        assert error.region.right <= app.screen.region.right  # not cut at the screen's edge
        words = " ".join(shown(error).split())
        assert words.endswith("use a corpus of at least 650 tokens (a tenth is kept for validation)"
                              " press q to quit")
        await pilot.press("q")


class BracketSampler(FakeSession):
    """Samples "[/", a real cl100k token (id 25130) that is also the start of a markup tag."""

    def sample(self, context_ids, **kwargs):
        sampled = super().sample(context_ids, **kwargs)
        return dataclasses.replace(sampled, token=dataclasses.replace(sampled.token, text="[/"))


async def test_a_sampled_bracket_token_is_shown_as_text(tmp_path):
    app = NnioApp(session=BracketSampler(checkpoint_dir=tmp_path))
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await settle(pilot)
        await pilot.press("g")
        await settle(pilot)
        await pilot.pause(0.1)  # the toast is drawn
        assert [n.message for n in app._notifications][-1].startswith("sampled [/ (")
        await pilot.press("q")
    assert app.return_code == 0


def _saved_within(fake: FakeSession, seconds: float) -> bool:
    deadline = time.monotonic() + seconds  # a guard against a hang, not a timing
    while not fake.saves and time.monotonic() < deadline:
        time.sleep(0.02)
    return bool(fake.saves)


async def test_an_app_that_ends_without_quitting_still_saves(tmp_path):
    fake = FakeSession(checkpoint_dir=tmp_path)
    app = NnioApp(session=fake)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("s")
        await settle(pilot)
        assert fake.dirty
        app.exit()  # as a crash ends it: no quit command reaches the worker
    assert await asyncio.to_thread(_saved_within, fake, 30)
    assert not fake.dirty


async def test_corpus_warnings_are_shown(tmp_path):
    path = tmp_path / "latin1.txt"
    path.write_bytes(b"caf\xe9 au lait, " * 400)
    app = real_app(str(path), "--preset", "tiny")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert any(n.message == f"{path}: invalid UTF-8 bytes were replaced with U+FFFD"
                   for n in app._notifications)


async def test_a_diverged_step_pauses_keeps_the_weights_and_tells(tmp_path, monkeypatch):
    from model import train

    real_lr_at = train.lr_at
    monkeypatch.setattr(train, "lr_at",
                        lambda step, cfg: 1e30 if step >= 3 else real_lr_at(step, cfg))
    session = Session.open(None, preset="tiny", device="cpu", checkpoint=tmp_path / "r")
    seen: list[Message] = []
    app = NnioApp(session=session)
    async with app.run_test(size=SIZE, message_hook=seen.append) as pilot:
        await settle(pilot)
        await pilot.press("space")
        await settle(pilot)
        assert not app.running and app.step == session.step_count == 3
        assert any("the update at step 3 made the weights infinite; kept the last good weights"
                   in n.message for n in app._notifications)
        assert messages.TrainingStopped in [type(m) for m in seen]
        await pilot.press("right")
        await settle(pilot)
        assert app.window_start == 1 and 0 < app.probe.top[0].prob <= 1


async def test_out_of_memory_pauses_keeps_the_model_and_suggests_smaller(tmp_path):
    import torch

    session = Session.open(None, preset="tiny", device="cpu", checkpoint=tmp_path / "r")

    def out_of_memory():
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    app = NnioApp(session=session)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        before = app.probe
        session._trainer.train_step = out_of_memory
        await pilot.press("s")
        await settle(pilot)
        assert session.step_count == 0 and not session.dirty
        assert any("cpu ran out of memory during a training step; the model is kept: use a "
                   "smaller --batch-size (now 4) or --block-size (now 16)" == n.message
                   for n in app._notifications)
        await pilot.press("right", "left")
        await settle(pilot)
        assert app.probe == before


class Unwritable(FakeSession):
    def save(self, path=None):
        raise CheckpointError("cannot write /locked/run.safetensors: permission denied; save "
                              "somewhere else (--checkpoint PATH)")


async def test_a_failed_save_is_shown_and_the_app_stays_usable(tmp_path):
    app = NnioApp(session=Unwritable(checkpoint_dir=tmp_path))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("s", "ctrl+s", "s")
        await settle(pilot)
        assert app.step == 2
        assert any(n.message.startswith("cannot write /locked/run.safetensors: permission "
                                        "denied") for n in app._notifications)


async def test_a_thousand_fast_keys_leave_the_app_exact(tmp_path):
    """1,000 keys posted at once, as a terminal delivers a burst: every s is exactly one step."""
    fake = FakeSession(checkpoint_dir=tmp_path)
    keys = random.Random(0).choices(list(BURST), k=1000)
    app = NnioApp(session=fake)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        for key in keys:
            app.post_message(events.Key(key, BURST[key]))
        await settle(pilot)
        assert await asyncio.to_thread(app.bridge.wait_idle, 30)
        await settle(pilot)
        assert fake.info().step == app.step == keys.count("s")
        assert app.probe.context_ids == tuple(
            fake.token_ids(app.window_start, app.window_start + app.context))
        await pilot.press("s")
        await settle(pilot)
        assert app.step == keys.count("s") + 1


BURST = {"s": "s", "right": None, "left": None, "n": "n", "i": "i", "u": "u", "g": "g",
         "left_square_bracket": "[", "right_square_bracket": "]"}


def _chunk_styles(app: NnioApp):
    tokens = app.query_one(TokenChunks)
    return [tokens.get_component_rich_style(f"token-chunks--{name}")
            for name in ("even", "odd", "window-even", "window-odd", "label")]


def _looks(style, system: ColorSystem | None):
    """What a terminal can show of a style: its 16-colour (or no) background, and attributes."""
    bg = None
    if system is not None and style.bgcolor is not None:
        bg = style.bgcolor.downgrade(system).number
    return (bg, bool(style.bold), bool(style.underline), bool(style.reverse))


async def test_sixteen_colour_terminal_keeps_chunks_apart(tmp_path):
    app = NnioApp(session=FakeSession(checkpoint_dir=tmp_path), low_colour=True)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        looks = [_looks(s, ColorSystem.STANDARD) for s in _chunk_styles(app)]
        assert len(set(looks)) == 5, looks


async def test_no_color_keeps_chunks_apart(tmp_path, monkeypatch):
    monkeypatch.setenv("NO_COLOR", "1")
    app = NnioApp(session=FakeSession(checkpoint_dir=tmp_path))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert app.no_color and app.screen.has_class("-low-colour")
        looks = [_looks(s, None) for s in _chunk_styles(app)]
        assert len(set(looks)) == 5, looks


async def test_full_colour_is_unchanged(tmp_path):
    app = NnioApp(session=FakeSession(checkpoint_dir=tmp_path))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert not app.screen.has_class("-low-colour")
        assert not any(s.underline for s in _chunk_styles(app))


async def test_quitting_when_the_save_fails_says_so_with_exit_code_2(tmp_path):
    app = NnioApp(session=Unwritable(checkpoint_dir=tmp_path))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("s", "q")
        await settle(pilot)
    assert app.return_code == 2 and app.saved_path is None


async def test_reset_then_quit_starts_the_next_launch_fresh_and_keeps_the_saved_run(tmp_path):
    run_path = tmp_path / "run.safetensors"
    session = Session.open(None, preset="tiny", device="cpu", checkpoint=run_path)
    app = NnioApp(session=session)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await settle(pilot)
        await pilot.press("s")
        await settle(pilot)
        app.notify("a toast from before", severity="error", timeout=60)
        await pilot.press("r")
        await settle(pilot)
        toasts = list(app.screen.query_one("ToastRack").children)
        assert toasts and not any(t.display for t in toasts)  # none sits on the question
        assert [n.message for n in app._notifications] == ["a toast from before"]  # kept
        assert "unsaved training is lost" in str(
            app.screen.query_one("#confirm-box Static", Static).content)
        assert "kept as" not in str(app.screen.query_one("#confirm-box Static", Static).content)
        await pilot.press("n", "ctrl+s")
        await settle(pilot)
        await pilot.press("r")
        await settle(pilot)
        question = str(app.screen.query_one("#confirm-box Static", Static).content)
        assert "kept as run-before-reset.safetensors" in question
        assert "unsaved training is lost" not in question  # ctrl+s saved it all
        await pilot.press("y")
        await settle(pilot)
        assert app.step == 0
        await pilot.press("r")  # fresh weights, not saved yet: no training is lost
        await settle(pilot)
        question = str(app.screen.query_one("#confirm-box Static", Static).content)
        assert "kept as run-before-reset.safetensors" in question  # still the step-1 run
        assert "unsaved training is lost" not in question
        await pilot.press("n", "u")  # a nudge at step 0 is training all the same
        await settle(pilot)
        await pilot.press("r")
        await settle(pilot)
        question = str(app.screen.query_one("#confirm-box Static", Static).content)
        assert "unsaved training is lost" in question
        await pilot.press("n")
        await pilot.press("q")
        await settle(pilot)
    assert app.return_code == 0 and app.saved_path == run_path
    assert Session.load(run_path, device="cpu").info().step == 0
    assert Session.load(tmp_path / "run-before-reset.safetensors", device="cpu").info().step == 1


async def test_a_resumed_run_shows_its_learning_rate_before_its_first_step(tmp_path):
    run_path = tmp_path / "run.safetensors"
    run = Session.open(None, preset="tiny", device="cpu", checkpoint=run_path)
    last = run.train(3)
    run.save()
    assert Session.open(None, preset="tiny", device="cpu").info().lr is None  # no step yet
    resumed = Session.load(run_path, device="cpu")
    assert resumed.info().lr == pytest.approx(last.lr)  # the last step's, as a step reports
    app = NnioApp(session=resumed)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert app.training.lr == pytest.approx(last.lr)
        assert "lr -" not in " ".join(shown(app.query_one("#loss")).split())
