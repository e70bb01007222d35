"""SIGTERM stops the work as Ctrl-C does, in the processes the project starts.

The command lines (and so the dashboard's background jobs, which run them) call ``stop_on_sigterm()`` first. Library
functions never touch signals: they catch KeyboardInterrupt, keep what they made and record themselves cancelled,
whichever of the two stopped them. A timer that must stop the main thread (a stage's time limit) interrupts it with
``interrupt_main_thread()``, which works with or without an entry point's handler.
"""

from __future__ import annotations

import os
import signal


def stop_on_sigterm() -> None:
    """From now on SIGTERM raises KeyboardInterrupt in the main thread. For entry points only: it is process-wide."""
    signal.signal(signal.SIGTERM, _raise_interrupt)


def interrupt_main_thread() -> None:
    """Raise KeyboardInterrupt in the main thread, waking it from a blocking wait (a real SIGINT, not a flag)."""
    os.kill(os.getpid(), signal.SIGINT)


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt
