"""Snapshot tests of the main screen at three sizes, after a nudge, and of the help screen."""

from __future__ import annotations

import pytest

from nnio_tui.app import NnioApp
from tests.fakes import FakeSession
from tests.test_app import settle


def fake_app(tmp_path) -> NnioApp:
    return NnioApp(session=FakeSession(checkpoint_dir=tmp_path))


@pytest.mark.parametrize("size", [(80, 24), (100, 30), (120, 40)])
def test_main_screen(snap_compare, tmp_path, size):
    assert snap_compare(fake_app(tmp_path), terminal_size=size, run_before=settle)


def test_after_steps_and_a_nudge(snap_compare, tmp_path):
    async def run_before(pilot):
        await settle(pilot)
        await pilot.press("s", "s", "right", "u")
        await settle(pilot)

    assert snap_compare(fake_app(tmp_path), terminal_size=(100, 30), run_before=run_before)


def test_ids_and_a_sample(snap_compare, tmp_path):
    async def run_before(pilot):
        await settle(pilot)
        await pilot.press("i", "n", "right_square_bracket", "g")
        await settle(pilot)
        pilot.app.clear_notifications()

    assert snap_compare(fake_app(tmp_path), terminal_size=(120, 40), run_before=run_before)


def test_help_screen(snap_compare, tmp_path):
    async def run_before(pilot):
        await settle(pilot)
        await pilot.press("question_mark")

    # the app's least size, where the whole list must still fit
    assert snap_compare(fake_app(tmp_path), terminal_size=(80, 24), run_before=run_before)
