"""Shared test setup: keep caches and run folders out of the user's home."""

import gc
import os

import pytest


@pytest.fixture(autouse=True)
def _unfreeze_the_heap():
    # the app freezes its start-up objects (gc.freeze); a test run holds many apps
    yield
    gc.unfreeze()


@pytest.fixture(autouse=True)
def _private_dirs(tmp_path_factory, monkeypatch):
    base = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("NNIO_TUI_CACHE_DIR", str(base / "cache"))
    monkeypatch.setenv("XDG_DATA_HOME", str(base / "data"))
    monkeypatch.setenv("XDG_STATE_HOME", str(base / "state"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(base / "config"))
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(base / "tiktoken"))


@pytest.fixture
def unprivileged() -> list[str]:
    """A command prefix that runs a program without root's power to ignore file permissions
    (none needed when not root); skips the test where that cannot be had."""
    setpriv = "/usr/bin/setpriv"
    if os.geteuid() != 0:
        return []
    if not os.path.exists(setpriv):
        pytest.skip("running as root without setpriv: permissions cannot be enforced")
    return [setpriv, "--bounding-set=-dac_override,-dac_read_search"]
