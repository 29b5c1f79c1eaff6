"""Surviving a terminal that goes away (an SSH link that drops) long enough to save."""

from __future__ import annotations

import errno
import sys

from textual.driver import Driver

# Private in Textual 8; pinned by textual>=8,<9 in pyproject.toml.
from textual.drivers._writer_thread import WriterThread


class HangUpSafeWriter(WriterThread):
    """Textual's output thread, except that a terminal which went away (an SSH link dropped)
    ends the drawing instead of the thread: Textual's own dies on EIO, and the app then hangs
    on its full queue before it can save."""

    terminal_gone = False

    def run(self) -> None:
        try:
            super().run()
        except OSError as error:
            if error.errno not in (errno.EIO, errno.EPIPE, errno.ENXIO, errno.EBADF):
                raise
            HangUpSafeWriter.terminal_gone = True
            # Nothing can be shown any more: take the rest so that writers never block.
            while self._queue.get() is not None:
                continue


def hang_up_safe(driver_class: type[Driver]) -> type[Driver]:
    if sys.platform == "win32":
        return driver_class
    from textual.drivers.linux_driver import LinuxDriver

    if not issubclass(driver_class, LinuxDriver):
        return driver_class

    class HangUpSafeDriver(driver_class):  # type: ignore[misc, valid-type]
        def start_application_mode(self) -> None:
            super().start_application_mode()
            # Swap in the safe thread; the old one writes what it has queued, then ends.
            assert self._writer_thread is not None
            self._writer_thread.stop()
            self._writer_thread = HangUpSafeWriter(self._file)
            self._writer_thread.start()

    return HangUpSafeDriver
