"""Pilot tests of NnioApp over FakeSession: every key, the worker and the odd sizes."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest
from rich.style import Style
from textual.app import App
from textual.geometry import Region
from textual.message import Message
from textual.widgets import Sparkline

from model.api import CorpusError
from model.records import Probe, TokenProb
from nnio_tui import messages
from nnio_tui.app import HELP_EXTRAS, KEYS, NnioApp, help_rows
from nnio_tui.corpus_view import CorpusView
from nnio_tui.percent import pct
from nnio_tui.widgets.context_window import ContextWindow, cut_to_width, wrap_parts
from nnio_tui.widgets.help_screen import HelpScreen
from nnio_tui.widgets.loading_view import LoadingView
from nnio_tui.widgets.loss_chart import LossChart
from nnio_tui.widgets.next_token_bars import NextTokenBars
from nnio_tui.widgets.token_chunks import TokenChunks
from nnio_tui.widgets.too_small import TooSmall
from tests.fakes import FakeSession

SIZE = (100, 30)


async def settle(pilot) -> None:
    """Wait until the worker has handled every command, then let the UI take its messages."""
    # a deadline against a hang, not a timing: a real session's child opened in 5.6 s on Zen 3
    assert await asyncio.to_thread(pilot.app.bridge.wait_idle, 60)
    await pilot.pause()
    await pilot.pause()


async def switch_theme(pilot) -> None:
    """Change the app's theme and let every widget restyle."""
    app = pilot.app
    app.theme = "textual-light" if app.theme != "textual-light" else "nord"
    await pilot.pause()
    await pilot.pause()


def shown(widget) -> str:
    """The text a line-drawn widget shows, row by row."""
    return "\n".join("".join(seg.text for seg in widget.render_line(y))
                     for y in range(widget.size.height))


async def hold_a_step(pilot, fake: FakeSession) -> None:
    """Start training and hold its first step open until fake.gate is set again."""
    fake.gate.clear()
    await pilot.press("space")
    assert await asyncio.to_thread(fake.in_step.wait, 5)


def kinds(seen: list[Message]) -> list[type]:
    return [type(m) for m in seen]


async def test_step_key_is_exactly_one_step(tmp_path):
    fake = FakeSession(checkpoint_dir=tmp_path)
    app = NnioApp(session=fake)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert app.probe is not None and fake.prepared  # training was readied after the probe
        await pilot.press("s", "s", "s")
        await settle(pilot)
        assert fake.info().step == 3
        assert app.step == 3 and app.training.losses[0] > app.training.losses[-1]
        assert app.before is not None and app.probe.label.prob > app.before.label.prob


async def test_space_runs_then_pauses(tmp_path):
    seen: list[Message] = []
    app = NnioApp(session=FakeSession(checkpoint_dir=tmp_path))
    async with app.run_test(size=SIZE, message_hook=seen.append) as pilot:
        await settle(pilot)
        await pilot.press("space")
        await pilot.pause(0.3)
        assert app.running and app.screen.has_class("-training")
        await pilot.press("space")
        await settle(pilot)
        assert not app.running and app.step > 10
        assert app.training.step == app.step and not app.training.running
        assert kinds(seen).count(messages.TrainingStarted) == 1
        assert kinds(seen).count(messages.TrainingStopped) == 1


async def test_nudge_raises_label_probability(tmp_path):
    fake = FakeSession(checkpoint_dir=tmp_path)
    app = NnioApp(session=fake)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        before = app.probe.label.prob
        await pilot.press("u")
        await settle(pilot)
        assert app.nudge.before == before < app.nudge.after == app.probe.label.prob
        assert app.before.label.prob == before
        assert "p(label)" in app.query_one("#context").shown()
        await pilot.press("g")
        await settle(pilot)
        assert "sampled" in app.query_one("#context").shown()
        await pilot.press("u")  # the sample was drawn from the weights before this nudge
        await settle(pilot)
        assert app.sampled is None and app.nudge is not None
        await pilot.press("g")
        await settle(pilot)
        await hold_a_step(pilot, fake)  # training moves the weights on: both go stale
        await pilot.pause()
        assert app.nudge is None and app.sampled is None
        await pilot.press("space")
        fake.gate.set()
        await settle(pilot)
        assert "p(label)" not in app.query_one("#context").shown()


async def test_a_nudge_on_a_held_out_window_is_refused_and_says_why(tmp_path):
    fake = FakeSession(checkpoint_dir=tmp_path)
    app = NnioApp(session=fake)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        split = app.info.train_tokens
        app._set_window(split - app.context, app.context)  # the label is held out
        await settle(pilot)
        assert app.held_out
        await pilot.press("u")
        await settle(pilot)
        assert app.nudge is None and not fake.dirty
        assert any("held out for validation" in n.message for n in app._notifications)
        await pilot.press("left", "u")  # one token left: the label is training text again
        await settle(pilot)
        assert not app.held_out and app.nudge is not None


async def test_a_nudge_pauses_training_so_its_result_stays_in_sight(tmp_path):
    fake = FakeSession(checkpoint_dir=tmp_path)
    app = NnioApp(session=fake)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("space")
        await pilot.pause()
        assert app.bridge.running
        await pilot.press("u")
        await settle(pilot)
        assert not app.bridge.running and app.nudge is not None
        stepped = fake._step
        await settle(pilot)
        assert fake._step == stepped and "p(label)" in app.query_one("#context").shown()
        assert any("space runs on" in n.message for n in app._notifications)


async def test_a_nudge_and_a_sample_made_while_training_runs_clear_at_its_next_step(tmp_path):
    app = NnioApp(session=FakeSession(checkpoint_dir=tmp_path))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("s", "s")
        await settle(pilot)
        app.step = 0  # while training runs, the app's step lags the worker's
        await pilot.press("u", "g")
        await settle(pilot)
        assert app.nudge is not None and app.sampled is not None
        assert app.nudge.step == 2

        def progress(step: int) -> messages.TrainingProgress:
            return messages.TrainingProgress(messages.TrainingSnapshot(
                step, 5.0, None, 1e-3, 900.0, (5.0,), (), running=True, dirty=True))

        app.post_message(progress(app.step))  # news of the same weights: the lines hold
        await pilot.pause()
        assert app.nudge is not None and app.sampled is not None
        app.post_message(progress(app.step + 1))  # the weights moved on: both are stale
        await pilot.pause()
        assert app.nudge is None and app.sampled is None
        assert "p(label)" not in app.query_one("#context").shown()


async def test_a_window_whose_label_is_held_out_says_so_on_the_label_line(tmp_path):
    fake = FakeSession(checkpoint_dir=tmp_path)
    app = NnioApp(session=fake)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        panel = app.query_one(ContextWindow)
        assert "held out" not in panel.shown()
        split = app.info.train_tokens
        app._set_window(split - 9, 8)  # the label is the last training token
        await settle(pilot)
        assert "held out" not in panel.shown()
        await pilot.press("right")  # now it is the first validation token
        await settle(pilot)
        label_row = next(line for line in shown(panel).splitlines() if "label" in line)
        assert label_row.rstrip().endswith(" · held out")
        label = app.window_chunks[-1]  # bracketed like the chips: ":" is not read as "label:"
        assert f"label [{label.text}] {label.token_id} · held out" in label_row


async def test_new_window_moves_the_window_and_probes_it(tmp_path):
    fake = FakeSession(checkpoint_dir=tmp_path)
    app = NnioApp(session=fake)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("n")
        await settle(pilot)
        assert app.window_start > 0 and app.context == 8
        assert app.probe.context_ids == tuple(fake.token_ids(app.window_start, app.window_start + 8))


async def test_a_slide_right_after_new_window_wins_in_the_app_and_the_worker(tmp_path):
    fake = FakeSession(checkpoint_dir=tmp_path)
    app = NnioApp(session=fake)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        app.action_new_window()
        # blocks the app's loop: the worker's WindowChosen waits while the key slides the window
        assert app.bridge.wait_idle(60)
        app.action_slide(1)
        await settle(pilot)
        assert (app.window_start, app.context) == (1, 8)
        await pilot.press("s")
        await settle(pilot)
        assert app.step == 1 and app.probe.context_ids == tuple(fake.token_ids(1, 9))


async def test_a_slide_past_the_corpus_start_keeps_the_bars_before_and_after(tmp_path):
    app = NnioApp(session=FakeSession(checkpoint_dir=tmp_path))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("s")
        await settle(pilot)
        before = app.before
        assert before is not None and app.window_start == 0
        await pilot.press("left")  # nothing to move to
        await settle(pilot)
        assert app.window_start == 0 and app.before is before


async def test_left_and_right_slide_one_token(tmp_path):
    app = NnioApp(session=FakeSession(checkpoint_dir=tmp_path))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("right", "right", "left")
        await settle(pilot)
        assert app.window_start == 1
        await pilot.press("left", "left")
        await settle(pilot)
        assert app.window_start == 0
        assert app.probe.context_ids == tuple(FakeSession().token_ids(0, 8))


async def test_brackets_change_context_within_bounds(tmp_path):
    app = NnioApp(session=FakeSession(block_size=10, checkpoint_dir=tmp_path), context=3)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press(*"]" * 20)
        await settle(pilot)
        assert app.context == 10 and len(app.probe.context_ids) == 10
        await pilot.press(*"[" * 20)
        await settle(pilot)
        assert app.context == 1 and app.window_start + app.context == 10


async def test_i_toggles_ids_under_the_tokens(tmp_path):
    app = NnioApp(session=FakeSession(checkpoint_dir=tmp_path))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("i")
        assert app.query_one(TokenChunks).show_ids
        assert "82727" in shown(app.query_one(TokenChunks))
        await pilot.press("i")
        assert "82727" not in shown(app.query_one(TokenChunks))


async def test_at_80x24_the_sampled_line_shows_what_it_was_drawn_from(tmp_path):
    from model.records import Sampled

    fake = FakeSession(checkpoint_dir=tmp_path)
    real = fake.sample

    def untrained(*args, **kwargs):  # a long token at an untrained net's tiny probability
        drawn = real(*args, **kwargs)
        token = TokenProb(78_517, ".sharedInstance", 0.0000057)
        return Sampled(token=token, top=drawn.top, temperature=drawn.temperature)

    fake.sample = untrained
    app = NnioApp(session=fake)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("g")
        await settle(pilot)
        drawn = shown(app.query_one(ContextWindow))
        assert "sampled" in drawn and "-> ?" in drawn  # the chips keep their place too
        after_from = drawn.split(" from", 1)[1]
        assert "%" in after_from, drawn  # at least one candidate with its probability


def test_the_sample_line_wraps_between_candidates_into_the_rows_it_is_given():
    parts = [[("sampled x", None)], [(" p 9%", None)]] + [
        [(" ", None), (f"c{i}", None), (" 1%", None)] for i in range(6)]
    text = [["".join(t for t, _ in row) for row in wrap_parts(parts, 20, n)] for n in (1, 2, 9)]
    assert text[0] == ["sampled x p 9% c0 1…"]
    assert text[1] == ["sampled x p 9% c0 1%", "c1 1% c2 1% c3 1% c…"]
    assert text[2] == ["sampled x p 9% c0 1%", "c1 1% c2 1% c3 1%", "c4 1% c5 1%"]
    # a part that starts a row loses its leading space, whichever segment holds it
    narrow = ["".join(t for t, _ in row) for row in wrap_parts(parts, 10, 9)]
    assert narrow[:2] == ["sampled x", "p 9% c0 1%"]


async def test_g_samples_a_token_from_the_candidates(tmp_path):
    app = NnioApp(session=FakeSession(checkpoint_dir=tmp_path))
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await settle(pilot)
        await pilot.press("g")
        await settle(pilot)
        assert app.sampled is not None and app.sampled.token in app.sampled.top
        assert app.query_one("#bars").sampled == app.sampled
        drawn = " ".join(shown(app.query_one("#context")).split())
        token = app.sampled.token
        assert f"sampled [{token.text}] {token.token_id}" in drawn
        assert f"from [{app.sampled.top[0].text}] {pct(app.sampled.top[0].prob)}" in drawn
        # its message leaves the bars (the label row and rank line) in sight
        toasts = list(app.screen.query("Toast"))
        bars = app.query_one(NextTokenBars)
        assert toasts and all(not t.region.overlaps(bars.region) for t in toasts)


async def test_ctrl_s_saves_and_notifies(tmp_path):
    fake = FakeSession(checkpoint_dir=tmp_path)
    app = NnioApp(session=fake)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("s", "ctrl+s")
        await settle(pilot)
        assert fake.saves == [tmp_path / "fake.nnio"] and not fake.dirty
        assert any(str(tmp_path) in n.message for n in app._notifications)


async def test_r_resets_only_after_yes(tmp_path):
    app = NnioApp(session=FakeSession(checkpoint_dir=tmp_path))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("s", "s", "r")
        await settle(pilot)
        footer = [(key.key_display, key.description) for key in app.screen.query("FooterKey")]
        assert footer == [("y", "Reset"), ("n/esc", "Keep")]  # not the keys the dialog holds off
        await pilot.press("n")
        await settle(pilot)
        assert app.step == 2
        await pilot.press("r", "y")
        await settle(pilot)
        assert app.step == 0 and app.training.losses == ()


async def test_q_saves_when_dirty_and_exits(tmp_path):
    fake = FakeSession(checkpoint_dir=tmp_path)
    app = NnioApp(session=fake)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("s", "q")
        await settle(pilot)
    assert app.return_code == 0 and app.saved_path == tmp_path / "fake.nnio"
    assert fake.saves == [app.saved_path]


async def test_q_without_training_saves_nothing(tmp_path):
    fake = FakeSession(checkpoint_dir=tmp_path)
    app = NnioApp(session=fake)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("q")
        await settle(pilot)
    assert app.return_code == 0 and app.saved_path is None and fake.saves == []


async def test_q_mid_step_waits_for_the_step_then_saves(tmp_path):
    fake = FakeSession(checkpoint_dir=tmp_path)
    app = NnioApp(session=fake)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await hold_a_step(pilot, fake)
        await pilot.press("q")
        fake.gate.set()
        await settle(pilot)
    assert app.return_code == 0 and app.saved_path is not None
    assert fake.info().step >= 1 and not fake.dirty


async def test_q_pressed_again_while_stopping_warns_then_quits_at_once(tmp_path, monkeypatch):
    import os
    import signal

    from nnio_tui import app as app_module

    exits: list[int] = []
    monkeypatch.setattr(app_module, "_exit_now", exits.append)
    fake = FakeSession(checkpoint_dir=tmp_path)
    app = NnioApp(session=fake)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await hold_a_step(pilot, fake)
        chart = app.query_one(LossChart)
        assert "running ▶" in border_row(chart, -1)
        await pilot.press("q")
        await pilot.pause()
        assert "stopping ■" in border_row(chart, -1)  # not "running" while it waits for the step
        assert footer_keys(app) == ["?", "q", "^p"]  # the keys that would be ignored are gone
        for _ in range(3):  # a signal always waits for the save: it never forces
            os.kill(os.getpid(), signal.SIGTERM)
            await pilot.pause()
        assert exits == [] and not any("still stopping" in n.message for n in app._notifications)
        await pilot.press("q")
        assert any("Press q again to quit now (training since the last save is lost)"
                   in n.message for n in app._notifications)
        assert exits == []
        await pilot.press("ctrl+c")
        assert exits == [130]
        fake.gate.set()
        await settle(pilot)


async def test_one_step_says_stepping_until_it_ends_and_stopping_after_q(tmp_path):
    fake = FakeSession(checkpoint_dir=tmp_path)
    app = NnioApp(session=fake)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        chart = app.query_one(LossChart)
        assert "paused ⏸" in border_row(chart, -1)
        fake.gate.clear()
        await pilot.press("s")
        assert await asyncio.to_thread(fake.in_step.wait, 5)
        await pilot.pause()
        await pilot.pause()
        assert "stepping…" in border_row(chart, -1)  # a big model's step takes minutes
        await pilot.press("q")
        await pilot.pause()
        assert "stopping ■" in border_row(chart, -1)
        fake.gate.set()
        await pilot.pause()
    assert app.return_code == 0 and fake.info().step == 1


async def test_a_defect_in_the_last_step_still_saves_what_came_before(tmp_path):
    fake = FakeSession(checkpoint_dir=tmp_path)
    app = NnioApp(session=fake)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("s")
        await settle(pilot)
        await hold_a_step(pilot, fake)
        await pilot.press("q")
        fake.bug = RuntimeError("a defect")
        fake.gate.set()
        await settle(pilot)
    assert fake.saves == [tmp_path / "fake.nnio"] and app.saved_path == fake.saves[0]
    assert app.return_code == 1  # the defect still fails the run


async def test_clicking_a_token_makes_it_the_label(tmp_path):
    app = NnioApp(session=FakeSession(checkpoint_dir=tmp_path))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        tokens = app.query_one(TokenChunks)
        cell = tokens._lines[2][3]
        await pilot.click(TokenChunks, offset=(cell.x + 2, 2 + 1))
        await settle(pilot)
        assert app.window_start + app.context == cell.index and app.context == 8
        assert app.probe.label.token_id == cell.chunk.token_id


def footer_keys(app) -> list[str]:
    return [key.key_display for key in app.screen.query("FooterKey")]


async def test_small_terminal_asks_for_more_room(tmp_path):
    app = NnioApp(session=FakeSession(checkpoint_dir=tmp_path))
    async with app.run_test(size=(70, 20)) as pilot:
        await settle(pilot)
        assert app.query_one(TooSmall).display and not app.query_one("#main").display
        assert "have 70x20" in app.query_one(TooSmall).render().plain
        # keys that would change what cannot be seen do nothing, and are not offered
        await pilot.press("space", "s", "n")
        await settle(pilot)
        assert (app.step, app.running, footer_keys(app)) == (0, False, ["?", "q", "^p"])
        await pilot.resize_terminal(100, 30)
        await pilot.pause()
        assert not app.query_one(TooSmall).display and app.query_one("#main").display
        assert "s" in footer_keys(app)
        await pilot.press("s")
        await settle(pilot)
        assert app.step == 1


async def test_loading_view_shows_before_the_session_opens(tmp_path):
    release = threading.Event()

    def open_session(on_progress):
        on_progress("importing torch", 0.5)
        release.wait(5)
        return FakeSession(checkpoint_dir=tmp_path)

    app = NnioApp(open_session=open_session, title_hint="sample_data")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause(0.1)
        assert app.query_one(LoadingView).display and "sample_data" in app.query_one("InfoHeader").render().plain
        release.set()
        await settle(pilot)
        assert not app.query_one(LoadingView).display and app.probe is not None


async def test_open_failure_shows_one_line_and_q_quits(capsys):
    def open_session(on_progress):
        raise CorpusError("corpus not found: nowhere.txt")

    app = NnioApp(open_session=open_session, title_hint="nowhere.txt")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert "corpus not found: nowhere.txt" in str(app.query_one("#loading-error").render())
        assert app.query_one("InfoHeader").render().plain.endswith("nowhere.txt  not opened")
        assert footer_keys(app) == ["?", "q", "^p"]  # nothing else works without a session
        offered = {c.title for c in app.get_system_commands(app.screen)}
        assert {"Help (?)", "Quit (q)"} <= offered and "Step (s)" not in offered  # nor listed
        await pilot.press("s", "q")
    assert app.return_code == 2
    # said again after the screen is gone, where the shell keeps it
    assert capsys.readouterr().err.strip() == "nnio-tui: error: corpus not found: nowhere.txt"


async def test_diverged_step_pauses_and_stays_usable(tmp_path):
    seen: list[Message] = []
    app = NnioApp(session=FakeSession(checkpoint_dir=tmp_path, diverge_at=2))
    async with app.run_test(size=SIZE, message_hook=seen.append) as pilot:
        await settle(pilot)
        await pilot.press("space")
        await settle(pilot)
        assert not app.running and app.step == 1
        assert messages.CommandFailed in kinds(seen)
        await pilot.press("right")
        await settle(pilot)
        assert app.window_start == 1 and app.probe.context_ids[0] == 82727


async def test_unexpected_worker_error_is_reported_and_worker_restarts(tmp_path):
    class Flaky(FakeSession):
        def sample(self, *args, **kwargs):
            raise RuntimeError("boom")

    app = NnioApp(session=Flaky(checkpoint_dir=tmp_path))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("g")
        await settle(pilot)
        assert any("RuntimeError: boom" in n.message for n in app._notifications)
        await pilot.press("s")
        await settle(pilot)
        assert app.step == 1


async def test_help_screen_lists_keys_and_closes(tmp_path):
    app = NnioApp(session=FakeSession(checkpoint_dir=tmp_path))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        await settle(pilot)
        listed = " ".join(shown(app.screen.query_one("#help-keys")).split())  # rows may wrap
        rows = help_rows()
        for key, text in rows:
            assert f"{key} {text}" in listed
        keys_listed = {key for keys, _ in rows for key in keys.split()}
        assert {shown for _, shown, *_ in KEYS} | {key for key, _ in HELP_EXTRAS} <= keys_listed
        await pilot.resize_terminal(80, 24)  # the app's least size: the whole list fits
        await settle(pilot)
        box = app.screen.query_one("#help-box")
        assert box.max_scroll_y == 0 and box.region.height <= 24
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)
        await pilot.press("f1")  # the help key of many terminal programs
        assert isinstance(app.screen, HelpScreen)


@pytest.mark.parametrize("theme", ["textual-dark", "textual-light", "solarized-light"])
async def test_panel_outlines_stand_out_in_dark_and_light_themes(tmp_path, theme):
    app = NnioApp(session=FakeSession(checkpoint_dir=tmp_path))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        app.theme = theme
        await settle(pilot)
        for panel in ("#tokens", "#context", "#loss", "#bars"):
            widget = app.query_one(panel)
            _, line = widget.styles.border_top
            behind, _ = widget.background_colors
            line = behind + line  # the border colour as drawn over what is behind it
            # the light themes' lighter panel colour was paler than their background (1.1:1)
            assert contrast(line, behind) > 1.8, (panel, line.hex, behind.hex)


async def test_the_theme_picked_is_the_next_launch_s_theme(tmp_path):
    app = NnioApp(session=FakeSession(checkpoint_dir=tmp_path))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert app.theme == "textual-dark"
        app.theme = "solarized-light"  # as the palette's theme picker does
        await settle(pilot)
    again = NnioApp(session=FakeSession(checkpoint_dir=tmp_path))
    async with again.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert again.theme == "solarized-light"


async def test_a_damaged_settings_file_leaves_the_default_theme(tmp_path):
    import platformdirs

    settings = Path(platformdirs.user_config_dir("nnio-tui")) / "settings.json"
    settings.parent.mkdir(parents=True)
    for text in ("{oops", '{"theme": "no-such-theme"}', '["theme"]', '{"theme": 3}'):
        settings.write_text(text)
        app = NnioApp(session=FakeSession(checkpoint_dir=tmp_path))
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            assert app.theme == "textual-dark"


def contrast(a, b) -> float:
    """WCAG's contrast ratio of two colours."""
    def luminance(color) -> float:
        def channel(value: int) -> float:
            x = value / 255
            return x / 12.92 if x <= 0.03928 else ((x + 0.055) / 1.055) ** 2.4
        return 0.2126 * channel(color.r) + 0.7152 * channel(color.g) + 0.0722 * channel(color.b)
    high, low = sorted((luminance(a), luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


async def test_commands_are_in_the_palette(tmp_path):
    app = NnioApp(session=FakeSession(checkpoint_dir=tmp_path))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        titles = {c.title: c for c in app.get_system_commands(app.screen)}
        assert {"Step (s)", "Nudge (u)", "Sample (g)", "Slide (→)", "Quit (q)"} <= set(titles)
        assert not {"Quit", "Keys"} & set(titles)  # Textual's twins of ours are left out
        titles["Slide (→)"].callback()
        await settle(pilot)
        assert app.window_start == 1


async def test_a_screenshot_without_a_downloads_folder_goes_to_the_current_one(
        tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # a server's home: no Downloads
    monkeypatch.delenv("XDG_DOWNLOAD_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    app = NnioApp(session=FakeSession(checkpoint_dir=tmp_path))
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await settle(pilot)
        {c.title: c for c in app.get_system_commands(app.screen)}["Screenshot"].callback()
        for _ in range(50):  # the file is written by a thread of Textual's
            if list(tmp_path.glob("*.svg")):
                break
            await asyncio.sleep(0.1)
        await pilot.pause()
        saved = list(tmp_path.glob("*.svg"))
        assert len(saved) == 1 and "<svg" in saved[0].read_text()
        assert any(str(saved[0]) in n.message for n in app._notifications)


async def test_token_view_reads_only_what_it_shows(tmp_path):
    fake = FakeSession(n_tokens=25_000_000, checkpoint_dir=tmp_path)
    app = NnioApp(session=fake)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("n")
        await settle(pilot)
        assert app.window_start > 1000
        spans = [int(c.split()[2]) - int(c.split()[1]) for c in fake.calls]
        assert max(spans) <= 256 and len(spans) < 10


async def test_page_keys_scroll_the_token_view(tmp_path):
    app = NnioApp(session=FakeSession(checkpoint_dir=tmp_path))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        view = app.query_one(TokenChunks)
        first = view.top
        await pilot.press("pagedown")
        await pilot.pause()
        assert view.top > first
        await pilot.press("pageup")
        await pilot.pause()
        assert view.top == first


@pytest.mark.parametrize("ids", [False, True])
async def test_a_page_moves_a_screenful_less_one_line_with_or_without_ids(tmp_path, ids):
    app = NnioApp(session=FakeSession(checkpoint_dir=tmp_path))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        if ids:
            await pilot.press("i")
            await pilot.pause()
        view = app.query_one(TokenChunks)
        assert view._rows_per_line == (2 if ids else 1)
        tops = []
        for _ in range(3):
            shown = [line[0].index for line in view._lines]
            tops.append(view.top)
            await pilot.press("pagedown")
            await pilot.pause()
            assert view.top == shown[-1]  # the last line shown is now the first: none skipped
        for top in reversed(tops):
            await pilot.press("pageup")
            await pilot.pause()
            assert view.top == top  # and back, page by page


async def test_page_down_stops_at_the_page_that_ends_the_corpus(tmp_path):
    app = NnioApp(session=FakeSession(n_tokens=1_500, checkpoint_dir=tmp_path))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        view = app.query_one(TokenChunks)
        rows = view.size.height // view._rows_per_line
        for _ in range(40):  # far more pages than the corpus has
            await pilot.press("pagedown")
        await pilot.pause()
        assert view._lines[-1][-1].index == 1_499  # the last token shows...
        assert len(view._lines) == rows  # ...at the foot of a full page, not atop a short one
        bottom = view.top
        await pilot.press("pagedown")
        await pilot.pause()
        assert view.top == bottom


async def test_a_resumed_run_shows_its_loss_curves(tmp_path):
    fake = FakeSession(checkpoint_dir=tmp_path)
    fake.history = ((9.0, 8.0, 7.5), (8.2, 7.9))
    app = NnioApp(session=fake)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert app.training.losses == (9.0, 8.0, 7.5)
        assert app.training.val_losses == (8.2, 7.9)
        assert app.training.loss == 7.5 and app.training.val_loss == 7.9


async def test_a_curve_is_drawn_only_once_it_has_two_points(tmp_path):
    # one point would fill the sparkline's box and read as a high, flat loss
    fake = FakeSession(checkpoint_dir=tmp_path)
    fake.history = ((9.0,), (8.2,))
    app = NnioApp(session=fake)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        train, val = app.query_one("#train-loss", Sparkline), app.query_one("#val-loss", Sparkline)
        assert app.training.losses == (9.0,) and not train.data and not val.data
        # and none is no flat line of lows either: the row stays blank
        assert not train.visible and not val.visible
        await pilot.press("s")
        await settle(pilot)
        assert len(train.data) == 2 and not val.data
        assert train.visible and not val.visible


async def test_a_narrow_header_keeps_device_and_precision(tmp_path):
    # At 80 columns something must go: the tokenizer (the bars' title gives the vocab size)
    # before the device and precision, which nothing else on screen shows.
    app = NnioApp(session=FakeSession(checkpoint_dir=tmp_path))
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        line = app.query_one("InfoHeader").render().plain
        assert "cpu fp32" in line and "step 0" in line and "sample_data" in line
        assert "cl100k_base" not in line
    app = NnioApp(session=FakeSession(checkpoint_dir=tmp_path))
    async with app.run_test(size=(120, 30)) as pilot:
        await settle(pilot)
        assert "cl100k_base (100,277)" in app.query_one("InfoHeader").render().plain


async def test_a_dead_training_process_does_not_crash_the_corpus_view(tmp_path):
    fake = FakeSession(n_tokens=20_000, checkpoint_dir=tmp_path)
    app = NnioApp(session=fake)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)

        def dead(start, stop):
            raise CorpusError("the training process was killed by signal 9 (out of memory?)")

        fake.chunks = dead
        await pilot.press("n")  # a random window, far into the corpus: pages not read yet
        await settle(pilot)
        assert app.window_start >= 2 * CorpusView.PAGE
        assert app.is_running and {c.text for c in app.window_chunks} == {"?"}
        await pilot.press("pagedown", "pagedown", "pagedown")
        await settle(pilot)
        assert app.is_running
        notes = [n for n in app._notifications if "killed by signal 9" in n.message]
        assert len(notes) == 1
        assert notes[0].title == "cannot show the tokens"  # training was not paused by it


async def test_the_start_up_heap_is_frozen_out_of_the_collectors_way(tmp_path):
    # a full collection of it took 33 ms on 2 busy cores: a visible hitch in the keys
    import gc

    gc.unfreeze()
    app = NnioApp(session=FakeSession(checkpoint_dir=tmp_path))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert gc.get_freeze_count() > 10_000


def hold_probes(monkeypatch, fake: FakeSession) -> threading.Event:
    """Make the fake's probes wait until the returned event is set."""
    release = threading.Event()
    probe = fake.probe
    monkeypatch.setattr(fake, "probe", lambda *a, **kw: release.wait(30) and probe(*a, **kw))
    return release


async def test_old_bars_dim_only_while_a_new_windows_probe_is_late(monkeypatch):
    fake = FakeSession()
    app = NnioApp(session=fake)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        bars = app.query_one(NextTokenBars)
        dimmed: list[str] = []
        monkeypatch.setattr(bars, "add_class", lambda *names, **kw: dimmed.extend(names))
        bars.DIM_AFTER_S = 30.0  # the probe comes long before: no restyle, no redraw
        await pilot.press("right")
        await settle(pilot)
        assert dimmed == [] and not app.probe_stale
        release = hold_probes(monkeypatch, fake)
        bars.DIM_AFTER_S = 0.05
        await pilot.press("right")
        await pilot.pause(0.3)
        assert dimmed == ["-stale"] and app.probe_stale
        release.set()
        await settle(pilot)
        assert not app.probe_stale


async def test_a_slide_does_not_redraw_the_bars_until_the_new_probe_comes(monkeypatch):
    fake = FakeSession()
    app = NnioApp(session=fake)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        bars = app.query_one(NextTokenBars)
        bars.DIM_AFTER_S = 30.0
        drawn: list[object] = []
        render_line = bars.render_line
        monkeypatch.setattr(bars, "render_line", lambda y: drawn.append(app.probe) or render_line(y))
        release = hold_probes(monkeypatch, fake)
        await pilot.press("right")
        await pilot.pause(0.3)
        assert app.probe_stale and drawn == []
        release.set()
        await settle(pilot)
        assert not app.probe_stale and drawn and drawn[-1] is app.probe


async def test_bars_are_drawn_anew_for_a_new_probe_and_a_new_theme():
    app = NnioApp(session=FakeSession())
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        bars = app.query_one(NextTokenBars)
        first = shown(bars)
        assert "▶" in first and "rank" in first and "→" not in first

        def bar_colour():
            segments = (seg for y in range(bars.size.height) for seg in bars.render_line(y))
            return next(seg.style.color for seg in segments if "█" in seg.text)

        colour = bar_colour()
        await pilot.press("s")
        await settle(pilot)
        assert "→" in shown(bars)  # each bar beside where it was before the step
        await switch_theme(pilot)
        assert bar_colour() != colour


class BarsAlone(App):
    def compose(self):
        yield NextTokenBars()


def _long_probe(scale: float) -> Probe:
    top = tuple(TokenProb(100_100 + i, "·relationship", p * scale)
                for i, p in enumerate([0.000096, 0.00009, 0.00008]))
    return Probe(context_ids=(1, 2), top=top, label=None, label_rank=None, entropy=11.5,
                 loss=None, vocab_size=100_277)


async def test_narrow_bars_cut_the_token_texts_and_keep_every_value_whole():
    app = BarsAlone()
    async with app.run_test(size=(40, 8)) as pilot:  # the bars' width at 80x24
        bars = app.query_one(NextTokenBars)
        bars.before, bars.probe = _long_probe(0.9), _long_probe(1.0)
        await pilot.pause()
        rows = shown(bars).splitlines()[:3]
        assert [row.split()[-1] for row in rows] == ["0.0086→0.0096%", "0.0081→0.0090%",
                                                     "0.0072→0.0080%"]
        assert all("·relation…" in row and "█" in row for row in rows)


async def test_values_longer_than_the_usual_width_are_shown_whole():
    app = BarsAlone()
    async with app.run_test(size=(40, 8)) as pilot:
        bars = app.query_one(NextTokenBars)
        bars.probe = _long_probe(0.09)  # 0.00086% and below: one character past 7
        await pilot.pause()
        assert [row.split()[-1] for row in shown(bars).splitlines()[:3]] == [
            "0.00086%", "0.00081%", "0.00072%"]
        bars.before = _long_probe(0.08)
        await pilot.pause()
        assert shown(bars).splitlines()[0].split()[-1] == "0.00077→0.00086%"


async def test_the_bars_say_what_their_before_values_are_from(tmp_path):
    fake = FakeSession(checkpoint_dir=tmp_path)
    app = NnioApp(session=fake)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        bars = app.query_one(NextTokenBars)
        assert bars.border_subtitle == ""  # nothing to compare with yet
        await pilot.press("s")
        await settle(pilot)
        assert bars.border_subtitle == "changes since the step"
        await pilot.press("u")
        await settle(pilot)
        assert bars.border_subtitle == "changes since the nudge"
        await pilot.press("space")
        await pilot.pause(1.0)  # a post or two while it runs
        await pilot.press("space")
        await settle(pilot)
        assert bars.border_subtitle == "changes since training started"
        await pilot.press("right")
        await settle(pilot)
        assert bars.border_subtitle == ""  # a new window: nothing before it


class ContextAlone(App):
    def compose(self):
        yield ContextWindow()


async def test_one_line_of_chips_leaves_room_for_the_arrow_at_every_width():
    app = ContextAlone()
    async with app.run_test(size=(20, 3)) as pilot:  # three rows: one line of chips
        panel = app.query_one(ContextWindow)
        panel.block_size = 64
        for n in (20, 30, 50):
            panel.window_chunks = tuple(FakeSession().chunks(0, n + 1))
            for width in range(20, 60):
                await pilot.resize_terminal(width, 3)
                first = shown(panel).splitlines()[0]
                assert first.startswith("+") and first.rstrip().endswith("-> ?"), (n, first)


def test_context_lines_end_in_an_ellipsis_styled_as_the_cell_it_replaces():
    a, b = Style(bold=True), Style(italic=True)
    line = [("abc", a), ("def", b)]
    assert cut_to_width(line, 6) == line
    assert cut_to_width(line, 5) == [("abc", a), ("d", b), ("…", b)]
    assert cut_to_width(line, 4) == [("abc", a), ("…", b)]
    assert cut_to_width(line, 3) == [("ab", a), ("…", a)]


async def test_context_panel_follows_the_window_and_a_new_theme():
    app = NnioApp(session=FakeSession())
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        panel = app.query_one(ContextWindow)

        def label_cells():
            row = next(y for y in range(panel.size.height)
                       if "".join(seg.text for seg in panel.render_line(y)).startswith("label"))
            return [(seg.text, seg.style.color) for seg in panel.render_line(row)]

        first = label_cells()
        await pilot.press("right")
        await settle(pilot)
        label = app.window_chunks[-1]
        moved = label_cells()
        assert moved != first and moved[1][0] == f"[{label.text}]"
        assert moved[2][0].strip() == str(label.token_id)
        await switch_theme(pilot)
        assert [text for text, _ in label_cells()] == [text for text, _ in moved]
        assert [colour for _, colour in label_cells()] != [colour for _, colour in moved]


async def test_sliding_redraws_only_the_token_lines_that_changed(tmp_path, monkeypatch):
    app = NnioApp(session=FakeSession(checkpoint_dir=tmp_path))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        tokens = app.query_one(TokenChunks)
        drawn: list[int] = []
        render_line = tokens.render_line
        monkeypatch.setattr(tokens, "render_line", lambda y: drawn.append(y) or render_line(y))
        await pilot.press("right")
        await settle(pilot)
        line_of = {cell.index: n for n, line in enumerate(tokens._lines) for cell in line}
        first, label = app.window_start, app.window_start + app.context
        assert set(drawn) == {line_of[first - 1], line_of[label - 1], line_of[label]}
        assert len(set(drawn)) < len(tokens._lines)


async def test_token_view_takes_new_styles_from_a_screen_class_and_a_theme():
    app = NnioApp(session=FakeSession(), low_colour=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        view = app.query_one(TokenChunks)

        def first_line_styles():
            return [seg.style for seg in view.render_line(0) if seg.text.strip()]

        plain = first_line_styles()
        assert not any(style.underline for style in plain)
        app.screen.set_class(True, "-low-colour")  # odd chunks get underlined
        await pilot.pause()
        await pilot.pause()
        low = first_line_styles()
        assert any(style.underline for style in low)
        await switch_theme(pilot)
        assert [s.bgcolor for s in first_line_styles()] != [s.bgcolor for s in low]


def border_row(widget, y: int) -> str:
    """A row of the widget as drawn, border and its title or subtitle included; -1 is the last."""
    y %= widget.outer_size.height
    strips = widget.render_lines(Region(0, y, widget.outer_size.width, 1))
    return "".join(seg.text for seg in strips[0])


async def test_loss_panel_subtitle_follows_running_and_unsaved(tmp_path):
    app = NnioApp(session=FakeSession(checkpoint_dir=tmp_path))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        chart = app.query_one(LossChart)
        assert "paused ⏸" in border_row(chart, -1) and "unsaved" not in border_row(chart, -1)
        await pilot.press("s")
        await settle(pilot)
        assert "unsaved · paused ⏸" in border_row(chart, -1)
        await pilot.press("space")
        await pilot.pause(0.3)
        assert "unsaved · running ▶" in border_row(chart, -1)
        await pilot.press("space")
        await settle(pilot)
        assert "unsaved · paused ⏸" in border_row(chart, -1)
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert border_row(chart, -1).strip("─╯╰ ") == "paused ⏸"


async def test_panel_titles_follow_the_context_length_and_the_vocabulary():
    app = NnioApp(session=FakeSession())
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        panel, bars = app.query_one(ContextWindow), app.query_one(NextTokenBars)
        n = app.context
        assert f"context: {n} of max {app.block_size}" in border_row(panel, 0)
        assert f"next token: {app.probe.vocab_size:,} outputs" in border_row(bars, 0)
        await pilot.press("left_square_bracket")
        await settle(pilot)
        assert f"context: {n - 1} of max {app.block_size}" in border_row(panel, 0)
        await pilot.press("right")
        await settle(pilot)
        assert f"context: {n - 1} of max {app.block_size}" in border_row(panel, 0)
